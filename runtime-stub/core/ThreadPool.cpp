// The kernel thread pool (ThreadPool.h).
//
// Protocol. The caller of parallelFor writes the job (fn, n, ranges), resets
// the range counter, sets `pending` to the number of workers and publishes the
// job by incrementing the atomic generation counter. Every worker takes part in
// every generation: it notices the new generation by spinning for a bounded
// time (then it sleeps on a condition variable), claims ranges from the atomic
// counter until none are left, and decrements `pending`. The caller claims
// ranges too and returns when `pending` is zero: then every range is finished
// and no worker reads the job any more, so the next call may rewrite it.
// Generations are seen one by one (the next is published only after every
// worker acknowledged the last). Nothing is allocated per call.
#include "runtime-stub/core/ThreadPool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <dirent.h>
#include <fstream>
#include <mutex>
#include <sched.h>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace kiln {
namespace rt {

namespace {

inline void cpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__) || defined(__arm__)
  asm volatile("yield" ::: "memory");
#endif
}

/// How long an idle worker spins before it sleeps. Decode runs one small op
/// after another, microseconds apart: spinning keeps the hand-off cheap, and the
/// bound keeps an idle program from burning a core.
constexpr std::chrono::microseconds kSpinTime(100);

/// Set while a thread runs ranges of a job: a nested parallelFor runs inline.
thread_local bool tInsideJob = false;

} // namespace

struct ThreadPool::Impl {
  int numThreads = 1;
  std::vector<std::thread> workers;

  std::atomic<uint64_t> generation{0};
  std::atomic<int64_t> nextRange{0};
  std::atomic<int> pending{0};     // workers that have not finished this generation
  std::atomic<bool> busy{false};   // a caller is inside parallelFor
  std::atomic<bool> stop{false};
  std::atomic<int> sleepers{0};
  std::mutex mutex;
  std::condition_variable wake;

  // The current job; written only while every worker is waiting.
  const RangeFn *fn = nullptr;
  int64_t n = 0;
  int64_t nRanges = 0;

  void runRanges() {
    const int64_t base = n / nRanges, rem = n % nRanges;
    for (;;) {
      int64_t i = nextRange.fetch_add(1);
      if (i >= nRanges)
        return;
      int64_t begin = i * base + std::min(i, rem);
      int64_t end = begin + base + (i < rem ? 1 : 0);
      (*fn)(begin, end);
    }
  }

  void workerLoop() {
    uint64_t seen = 0;
    for (;;) {
      // Wait for the next generation: spin, then sleep.
      auto start = std::chrono::steady_clock::now();
      bool fresh = false;
      for (int spins = 0;; ++spins) {
        if (stop.load(std::memory_order_relaxed))
          return;
        if (generation.load(std::memory_order_acquire) != seen) {
          fresh = true;
          break;
        }
        cpuRelax();
        if ((spins & 63) == 63 && std::chrono::steady_clock::now() - start > kSpinTime)
          break;
      }
      if (!fresh) {
        std::unique_lock<std::mutex> lock(mutex);
        sleepers.fetch_add(1);
        wake.wait(lock, [&] { return stop.load() || generation.load() != seen; });
        sleepers.fetch_sub(1);
        if (stop.load())
          return;
      }
      seen = generation.load();
      tInsideJob = true;
      runRanges();
      tInsideJob = false;
      pending.fetch_sub(1); // release: our writes are visible to the caller
    }
  }
};

ThreadPool::ThreadPool(int numThreads) : impl_(new Impl) {
  impl_->numThreads = std::max(1, numThreads);
  impl_->workers.reserve(impl_->numThreads - 1);
  for (int i = 1; i < impl_->numThreads; ++i)
    impl_->workers.emplace_back([this] { impl_->workerLoop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->stop.store(true);
  }
  impl_->wake.notify_all();
  for (std::thread &t : impl_->workers)
    t.join();
}

int ThreadPool::numThreads() const { return impl_->numThreads; }

void ThreadPool::parallelFor(int64_t n, int64_t grain, RangeFn fn) {
  if (n <= 0)
    return;
  grain = std::max<int64_t>(grain, 1);
  Impl &p = *impl_;
  // Small ops, one thread, nested calls and a concurrent second caller run inline.
  if (p.numThreads == 1 || n < 2 * grain || tInsideJob || p.busy.exchange(true)) {
    fn(0, n);
    return;
  }
  p.fn = &fn;
  p.n = n;
  p.nRanges = std::min<int64_t>(p.numThreads, n / grain);
  p.nextRange.store(0);
  p.pending.store(p.numThreads - 1);
  p.generation.fetch_add(1); // publish (seq_cst)
  if (p.sleepers.load() > 0) {
    { std::lock_guard<std::mutex> lock(p.mutex); }
    p.wake.notify_all();
  }

  tInsideJob = true;
  p.runRanges();
  tInsideJob = false;

  // Wait until every worker has finished with this generation.
  // (Yield after a while: a worker that was asleep may need this core to wake.)
  for (int spins = 0; p.pending.load(std::memory_order_acquire) != 0; ++spins) {
    if (spins < 4096)
      cpuRelax();
    else
      std::this_thread::yield();
  }
  p.fn = nullptr;
  p.busy.store(false);
}

int ThreadPool::physicalCores() {
  static const int cores = [] {
    // Unique (package, core) pairs of the CPUs this process may run on.
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    bool haveMask = sched_getaffinity(0, sizeof(allowed), &allowed) == 0;
    std::set<std::pair<long, long>> pairs;
    if (DIR *dir = opendir("/sys/devices/system/cpu")) {
      while (dirent *e = readdir(dir)) {
        std::string name = e->d_name;
        if (name.size() < 4 || name.compare(0, 3, "cpu") != 0 ||
            name.find_first_not_of("0123456789", 3) != std::string::npos)
          continue;
        int cpu = std::atoi(name.c_str() + 3);
        if (haveMask && cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &allowed))
          continue;
        std::string topo = "/sys/devices/system/cpu/" + name + "/topology/";
        long core = -1, package = -1;
        std::ifstream(topo + "core_id") >> core;
        std::ifstream(topo + "physical_package_id") >> package;
        if (core >= 0)
          pairs.emplace(package, core);
      }
      closedir(dir);
    }
    int n = static_cast<int>(pairs.size());
    if (n < 1)
      n = static_cast<int>(std::thread::hardware_concurrency());
    if (haveMask)
      n = std::min(n, CPU_COUNT(&allowed));
    return std::max(1, n);
  }();
  return cores;
}

} // namespace rt
} // namespace kiln
