// The kernel thread pool (ThreadPool.h).
//
// Protocol. One atomic word `ticket` holds (generation, number of ranges,
// claimed ranges: a mask of up to 16 ranges, each thread trying its own index
// first, else the index of the next range).
// The caller of parallelFor writes the job (fn, n, number of ranges; atomics,
// so a late reader never races), resets `done` and publishes the job by storing
// a ticket with the next generation and range 0. Workers spin on the ticket's
// generation for a bounded time (ThreadPool::kSpinMicros, then they sleep on a
// condition variable) and claim ranges with a compare-and-swap that also checks
// the generation; the caller claims ranges the same way. A range counts in
// `done` when finished, and the caller returns when every range of its job is
// done. A worker that is asleep or preempted never delays the caller: the caller
// runs the ranges nobody claimed, and a worker arriving late finds a different
// generation or no range left and touches nothing. The job is read only after
// a successful claim, which pins the generation until that range is done.
// Nothing is allocated per call.
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

/// How long an idle worker spins before it sleeps. Decode runs one op after
/// another, microseconds to a few hundred microseconds apart (single-threaded
/// ops, sampling between tokens): spinning through those gaps keeps every
/// hand-off at ~1 us instead of a 40-240 us futex wake-up, and the bound keeps
/// an idle program (waiting for input) from burning a core.
constexpr std::chrono::microseconds kSpinTime(ThreadPool::kSpinMicros);

/// Cache lines an idle worker prefetches for a hint between two looks at the
/// ticket: a job waits at most for these few prefetches to issue.
constexpr size_t kHintLinesPerLook = 4;

/// Set while a thread runs ranges of a job: a nested parallelFor runs inline.
thread_local bool tInsideJob = false;

} // namespace

struct ThreadPool::Impl {
  int numThreads = 1;
  std::vector<std::thread> workers;

  // generation << 32 | number of ranges << 16 | claimed ranges (a mask for
  // up to kMaxHomeRanges ranges, else the next range index)
  std::atomic<uint64_t> ticket{0};
  std::atomic<int64_t> done{0};     // ranges finished in this generation
  std::atomic<bool> busy{false};    // a caller is inside parallelFor
  std::atomic<bool> stop{false};
  std::atomic<int> sleepers{0};
  std::mutex mutex;
  std::condition_variable wake;
  // Stats (relaxed: counters only).
  std::atomic<uint64_t> parallelCalls{0}, inlineCalls{0}, sleeps{0}, hintLines{0};

  // The pending prefetch hint (prefetchHint), a seqlock: hintSeq is odd while
  // the caller rewrites the ranges; a worker copies them and keeps the copy
  // only if hintSeq did not move meanwhile.
  std::atomic<uint64_t> hintSeq{0};
  std::atomic<int> hintCount{0};
  std::atomic<const void *> hintData[kMaxPrefetchRanges] = {};
  std::atomic<size_t> hintBytes[kMaxPrefetchRanges] = {};

  /// A worker's share of a hint and how far it got: lines [line, end) of the
  /// hint's ranges laid end to end.
  struct HintWork {
    uint64_t seq = 0; // the hint copied (0: none yet)
    PrefetchRange r[kMaxPrefetchRanges];
    int n = 0;
    size_t line = 0, end = 0;
    int range = 0;        // range of `line`
    size_t rangeFirst = 0; // global index of that range's first line
    uint64_t done = 0;     // lines prefetched, not yet counted in hintLines
  };

  static size_t linesOf(const PrefetchRange &r) { return (r.bytes + 63) / 64; }

  /// Picks up a new hint (this worker's share of its lines) if one was posted.
  void takeHint(HintWork &w, int home) {
    const uint64_t s = hintSeq.load(std::memory_order_acquire);
    if (s == w.seq || (s & 1))
      return;
    PrefetchRange r[kMaxPrefetchRanges];
    const int n = std::min(hintCount.load(std::memory_order_relaxed), kMaxPrefetchRanges);
    for (int i = 0; i < n; ++i) {
      r[i].data = hintData[i].load(std::memory_order_relaxed);
      r[i].bytes = hintBytes[i].load(std::memory_order_relaxed);
    }
    std::atomic_thread_fence(std::memory_order_acquire);
    if (hintSeq.load(std::memory_order_relaxed) != s)
      return; // rewritten meanwhile: next time
    w.seq = s;
    w.n = n;
    size_t total = 0;
    for (int i = 0; i < n; ++i) {
      w.r[i] = r[i];
      total += linesOf(r[i]);
    }
    const size_t workers = (size_t)std::max(1, numThreads - 1), k = (size_t)(home - 1);
    w.line = total * k / workers;
    w.end = total * (k + 1) / workers;
    w.range = 0;
    w.rangeFirst = 0;
  }

  /// Prefetches up to `lines` more lines of the worker's share; false when
  /// nothing is left.
  bool advanceHint(HintWork &w, size_t lines) {
    for (size_t k = 0; k < lines && w.line < w.end; ++k, ++w.line) {
      while (w.range < w.n && w.line >= w.rangeFirst + linesOf(w.r[w.range]))
        w.rangeFirst += linesOf(w.r[w.range++]);
      if (w.range >= w.n) {
        w.line = w.end;
        break;
      }
      __builtin_prefetch(static_cast<const char *>(w.r[w.range].data) +
                             (w.line - w.rangeFirst) * 64,
                         0, 2);
      ++w.done;
    }
    if (w.line < w.end)
      return true;
    if (w.done) {
      hintLines.fetch_add(w.done, std::memory_order_relaxed);
      w.done = 0;
    }
    return false;
  }

  // The current job (its range count is in the ticket): written by the caller
  // before it publishes a generation, read after a successful claim.
  std::atomic<const RangeFn *> fn{nullptr};
  std::atomic<int64_t> n{0};

  static uint32_t generationOf(uint64_t t) { return (uint32_t)(t >> 32); }

  /// Claims and runs ranges of generation `gen` until none is left; `home` is
  /// the thread's index (the caller 0, worker k k). The ticket carries the
  /// range count, so deciding to claim reads nothing else (the job fields may
  /// already be rewritten for the next generation).
  ///
  /// Jobs of at most kMaxHomeRanges ranges keep a mask of claimed ranges in
  /// the ticket's low 16 bits, and each thread claims its home range
  /// (home % count) first, then any other: a thread gets the same piece of the
  /// same op whenever it is free to, so the second run of a MobileLLM-LS block
  /// reads its half of the weights from the core that read it the first time
  /// (docs/runtime-threads.md). Bigger jobs keep a counter of claimed ranges.
  void runRanges(uint32_t gen, int home) {
    uint64_t t = ticket.load(std::memory_order_acquire);
    for (;;) {
      if (generationOf(t) != gen)
        return;
      const int64_t count = (int64_t)((t >> 16) & 0xffff);
      const uint64_t low = t & 0xffff;
      int64_t i;
      uint64_t claimed;
      if (count <= kMaxHomeRanges) {
        i = homeRangeToClaim((uint32_t)low, (int)count, home);
        if (i < 0)
          return;
        claimed = t | (uint64_t)1 << i;
      } else {
        i = (int64_t)low;
        if (i >= count)
          return;
        claimed = t + 1;
      }
      if (!ticket.compare_exchange_weak(t, claimed, std::memory_order_acq_rel,
                                        std::memory_order_acquire))
        continue; // t reloaded
      // Claimed range i of `gen`: the job cannot change until it is done.
      const int64_t total = n.load(std::memory_order_relaxed);
      const int64_t base = total / count, rem = total % count;
      int64_t begin = i * base + std::min(i, rem);
      int64_t end = begin + base + (i < rem ? 1 : 0);
      (*fn.load(std::memory_order_relaxed))(begin, end);
      done.fetch_add(1, std::memory_order_release);
      t = ticket.load(std::memory_order_acquire);
    }
  }

  void workerLoop(int home) {
    uint32_t seen = 0;
    HintWork hint;
    for (;;) {
      // Wait for the next generation: spin (prefetching what a hint asks
      // for, a few lines between two looks at the ticket), then sleep.
      auto start = std::chrono::steady_clock::now();
      bool fresh = false;
      for (int spins = 0;; ++spins) {
        if (stop.load(std::memory_order_relaxed))
          return;
        if (generationOf(ticket.load(std::memory_order_acquire)) != seen) {
          fresh = true;
          break;
        }
        takeHint(hint, home);
        if (!advanceHint(hint, kHintLinesPerLook))
          cpuRelax();
        if ((spins & 63) == 63 && std::chrono::steady_clock::now() - start > kSpinTime)
          break;
      }
      if (!fresh) {
        sleeps.fetch_add(1, std::memory_order_relaxed);
        std::unique_lock<std::mutex> lock(mutex);
        sleepers.fetch_add(1);
        wake.wait(lock, [&] {
          return stop.load() || generationOf(ticket.load()) != seen;
        });
        sleepers.fetch_sub(1);
        if (stop.load())
          return;
      }
      seen = generationOf(ticket.load(std::memory_order_acquire));
      tInsideJob = true;
      runRanges(seen, home);
      tInsideJob = false;
    }
  }
};

ThreadPool::ThreadPool(int numThreads) : impl_(new Impl) {
  impl_->numThreads = std::max(1, numThreads);
  impl_->workers.reserve(impl_->numThreads - 1);
  for (int i = 1; i < impl_->numThreads; ++i)
    impl_->workers.emplace_back([this, i] { impl_->workerLoop(i); });
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

int ThreadPool::homeRangeToClaim(uint32_t claimed, int count, int home) {
  const uint32_t all = count >= 32 ? ~0u : (1u << count) - 1;
  const uint32_t left = ~claimed & all;
  if (count <= 0 || left == 0)
    return -1;
  const int own = home % count;
  return (left >> own & 1) ? own : __builtin_ctz(left);
}

void ThreadPool::parallelFor(int64_t n, int64_t grain, RangeFn fn) {
  if (n <= 0)
    return;
  grain = std::max<int64_t>(grain, 1);
  Impl &p = *impl_;
  // Small ops, one thread, nested calls and a concurrent second caller run inline.
  if (p.numThreads == 1 || n < 2 * grain || tInsideJob || p.busy.exchange(true)) {
    p.inlineCalls.fetch_add(1, std::memory_order_relaxed);
    fn(0, n);
    return;
  }
  p.parallelCalls.fetch_add(1, std::memory_order_relaxed);
  // (At most 0xffff ranges: the count lives in 16 bits of the ticket.)
  const int64_t count = std::min<int64_t>({p.numThreads, n / grain, 0xffff});
  p.fn.store(&fn, std::memory_order_relaxed);
  p.n.store(n, std::memory_order_relaxed);
  p.done.store(0, std::memory_order_relaxed);
  const uint32_t gen = Impl::generationOf(p.ticket.load(std::memory_order_relaxed)) + 1;
  p.ticket.store((uint64_t)gen << 32 | (uint64_t)count << 16,
                 std::memory_order_seq_cst); // publish
  if (p.sleepers.load() > 0) {
    { std::lock_guard<std::mutex> lock(p.mutex); }
    p.wake.notify_all();
  }

  tInsideJob = true;
  p.runRanges(gen, 0);
  tInsideJob = false;

  // Every range is claimed; wait for the ones workers are still running.
  // (Yield after a while: the worker may need this core.)
  for (int spins = 0; p.done.load(std::memory_order_acquire) != count; ++spins) {
    if (spins < 4096)
      cpuRelax();
    else
      std::this_thread::yield();
  }
  p.busy.store(false, std::memory_order_release);
}

void ThreadPool::prefetchHint(const PrefetchRange *ranges, int n) {
  Impl &p = *impl_;
  if (p.numThreads <= 1)
    return;
  n = std::max(0, std::min(n, kMaxPrefetchRanges));
  const uint64_t s = p.hintSeq.load(std::memory_order_relaxed);
  p.hintSeq.store(s + 1, std::memory_order_relaxed); // odd: being rewritten
  std::atomic_thread_fence(std::memory_order_release);
  for (int i = 0; i < n; ++i) {
    p.hintData[i].store(ranges[i].data, std::memory_order_relaxed);
    p.hintBytes[i].store(ranges[i].bytes, std::memory_order_relaxed);
  }
  p.hintCount.store(n, std::memory_order_relaxed);
  p.hintSeq.store(s + 2, std::memory_order_release);
}

ThreadPool::Stats ThreadPool::stats() const {
  Stats s;
  s.parallelCalls = impl_->parallelCalls.load(std::memory_order_relaxed);
  s.inlineCalls = impl_->inlineCalls.load(std::memory_order_relaxed);
  s.sleeps = impl_->sleeps.load(std::memory_order_relaxed);
  s.hintLines = impl_->hintLines.load(std::memory_order_relaxed);
  return s;
}

void ThreadPool::resetStats() {
  impl_->parallelCalls.store(0);
  impl_->inlineCalls.store(0);
  impl_->sleeps.store(0);
  impl_->hintLines.store(0);
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
