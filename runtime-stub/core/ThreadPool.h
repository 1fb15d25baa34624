// A small thread pool for kernels (issue 6): workers spin briefly, then sleep, so
// that one parallel op costs microseconds of synchronisation, not tens. Kernels
// split work by output channels: parallelFor(n, grain, fn) calls fn(begin, end)
// on contiguous ranges covering [0, n), at most numThreads() of them, each of at
// least `grain` items (small ops run inline on the caller's thread).
#ifndef KILN_RUNTIME_CORE_THREADPOOL_H
#define KILN_RUNTIME_CORE_THREADPOOL_H

#include <cstddef>
#include <cstdint>
#include <memory>

namespace kiln {
namespace rt {

/// A memory range an idle worker reads into its caches (ThreadPool::prefetchHint).
struct PrefetchRange {
  const void *data = nullptr;
  size_t bytes = 0;
};

/// A non-owning callable reference (no allocation per call, unlike std::function).
class RangeFn {
public:
  template <typename F>
  RangeFn(const F &f) // NOLINT: implicit on purpose
      : obj_(&f), call_([](const void *o, int64_t b, int64_t e) { (*static_cast<const F *>(o))(b, e); }) {}
  void operator()(int64_t begin, int64_t end) const { call_(obj_, begin, end); }

private:
  const void *obj_;
  void (*call_)(const void *, int64_t, int64_t);
};

class ThreadPool {
public:
  /// numThreads >= 1 (the caller's thread counts as one: numThreads - 1 workers).
  explicit ThreadPool(int numThreads);
  ~ThreadPool();
  ThreadPool(const ThreadPool &) = delete;
  ThreadPool &operator=(const ThreadPool &) = delete;

  int numThreads() const;
  /// Runs fn over [0, n) and returns when every range is done. One caller at a time.
  void parallelFor(int64_t n, int64_t grain, RangeFn fn);

  /// Most ranges of one prefetchHint (a decode attention's k and v rows per
  /// kv head: 2 x 6 for the largest MobileLLM).
  static constexpr int kMaxPrefetchRanges = 16;

  /// Asks the workers to prefetch `ranges` (at most kMaxPrefetchRanges) into
  /// their caches while they wait for the next job, replacing any earlier
  /// hint; the idle workers split the lines between them. Advisory: a worker
  /// stops at once for a job and resumes after it, a newer hint replaces the
  /// rest, a sleeping worker ignores it, nothing waits for it, and the memory
  /// is only prefetched (never read or written: any address is harmless).
  /// Decode posts the KV cache rows of the next attention
  /// (docs/runtime-threads.md "Prefetch hints").
  void prefetchHint(const PrefetchRange *ranges, int n);

  /// Physical cores of this machine (not hyper-threads), at least 1.
  static int physicalCores();

  /// How long an idle worker spins for the next job before it sleeps
  /// (docs/runtime-threads.md): longer than the gap between two ops of a
  /// decode step, short enough that an idle program uses no CPU.
  static constexpr int kSpinMicros = 200;

  /// Jobs of up to this many ranges are claimed home range first: each thread
  /// (the caller 0, worker k k) runs the same piece of an op whenever it is free
  /// to (docs/runtime-threads.md "Home ranges"). Bigger jobs: in index order.
  static constexpr int kMaxHomeRanges = 16;

  /// The range a thread with index `home` claims next in a job of `count`
  /// <= kMaxHomeRanges ranges, given the mask of ranges already claimed: its
  /// own (home % count) if free, else the lowest free one; -1 when none is.
  static int homeRangeToClaim(uint32_t claimed, int count, int home);

  /// Counters since construction or resetStats (for measurements and tests).
  struct Stats {
    uint64_t parallelCalls = 0; // parallelFor calls handed to the workers
    uint64_t inlineCalls = 0;   // calls run inline (small, nested, 1 thread, busy)
    uint64_t sleeps = 0;        // times a worker's spin timed out and it slept
    uint64_t hintLines = 0;     // cache lines prefetched for prefetchHint
  };
  Stats stats() const;
  void resetStats();

private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

} // namespace rt
} // namespace kiln

#endif // KILN_RUNTIME_CORE_THREADPOOL_H
