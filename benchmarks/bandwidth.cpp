// kiln-bandwidth: streaming-read memory bandwidth, the limit of LLM decode speed.
//
//   kiln-bandwidth [--threads N] [--mib M] [--repeats R]
//
// Allocates an M MiB buffer (default 512: far beyond the caches), fills it, then
// has N threads each sum their contiguous slice (float adds in 8 independent
// accumulators so the compiler vectorizes and the loads are the limit). Each
// repeat is timed from a common start to the last thread's finish. The sweeps
// alternate between plain loads and loads with a software prefetch 4 KB ahead
// (as Kiln's weight-streaming kernels do): on some machines the hardware
// prefetchers alone leave bandwidth unused (an Intel Xeon with AMX read 14.5
// GB/s on 2 threads without, 24-27.5 GB/s with). The best sweep of either kind
// is printed as one line: `bandwidth_gbs <GB/s>` (GB = 1e9 bytes); stderr says
// which kind it was.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

namespace {

// Prefetch distance of the prefetching sweeps.
constexpr size_t kPrefetchFloats = 4096 / sizeof(float);

float sumSlice(const float *p, size_t n, bool prefetch) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  if (prefetch)
    for (; i + 16 <= n; i += 16) { // one cache line per step
      __builtin_prefetch(p + i + kPrefetchFloats, 0, 3);
      for (int k = 0; k < 8; ++k)
        acc[k] += p[i + k] + p[i + 8 + k];
    }
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k)
      acc[k] += p[i + k];
  for (; i < n; ++i)
    acc[0] += p[i];
  float s = 0;
  for (float a : acc)
    s += a;
  return s;
}

bool parseArg(const char *s, long min, long max, long *out) {
  char *end = nullptr;
  long v = std::strtol(s, &end, 10);
  if (!end || *end || v < min || v > max)
    return false;
  *out = v;
  return true;
}

} // namespace

int main(int argc, char **argv) {
  long threads = 1, mib = 512, repeats = 5;
  for (int i = 1; i < argc; ++i) {
    long *target = nullptr;
    long lo = 1, hi = 0;
    if (!std::strcmp(argv[i], "--threads")) {
      target = &threads;
      hi = 256;
    } else if (!std::strcmp(argv[i], "--mib")) {
      target = &mib;
      hi = 1 << 16;
    } else if (!std::strcmp(argv[i], "--repeats")) {
      target = &repeats;
      hi = 1000;
    } else {
      std::fprintf(stderr, "usage: kiln-bandwidth [--threads N] [--mib M] [--repeats R]\n");
      return 2;
    }
    if (i + 1 >= argc || !parseArg(argv[i + 1], lo, hi, target)) {
      std::fprintf(stderr, "error: %s needs an integer in [%ld, %ld]\n", argv[i], lo, hi);
      return 2;
    }
    ++i;
  }
  const size_t n = (size_t)mib * 1024 * 1024 / sizeof(float);
  std::vector<float> buf;
  buf.resize(n);
  for (size_t i = 0; i < n; ++i)
    buf[i] = (float)(i & 1023) * 1e-3f;

  std::vector<float> partial((size_t)threads, 0.0f);
  double best = 0;
  bool bestPrefetch = false;
  float checksum = 0;
  for (long r = 0; r < 2 * repeats; ++r) {
    const bool prefetch = r % 2 == 1;
    std::atomic<bool> go{false};
    std::vector<std::thread> pool;
    for (long t = 0; t < threads; ++t) {
      size_t lo = n * (size_t)t / (size_t)threads, hi = n * (size_t)(t + 1) / (size_t)threads;
      pool.emplace_back([&, t, lo, hi] {
        while (!go.load(std::memory_order_acquire)) {
        }
        partial[(size_t)t] = sumSlice(buf.data() + lo, hi - lo, prefetch);
      });
    }
    auto start = std::chrono::steady_clock::now();
    go.store(true, std::memory_order_release);
    for (std::thread &th : pool)
      th.join();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    for (float p : partial)
      checksum += p;
    const double gbs = (double)n * sizeof(float) / s / 1e9;
    if (gbs > best) {
      best = gbs;
      bestPrefetch = prefetch;
    }
  }
  std::printf("bandwidth_gbs %.2f\n", best);
  std::fprintf(stderr, "threads %ld, %ld MiB, best of %ld plain and %ld prefetching sweeps: %s (checksum %g)\n",
               threads, mib, repeats, repeats, bestPrefetch ? "prefetching" : "plain", (double)checksum);
  return 0;
}
