// A small thread pool for kernels (issue 6): workers spin briefly, then sleep, so
// that one parallel op costs microseconds of synchronisation, not tens. Kernels
// split work by output channels: parallelFor(n, grain, fn) calls fn(begin, end)
// on contiguous ranges covering [0, n), at most numThreads() of them, each of at
// least `grain` items (small ops run inline on the caller's thread).
#ifndef KILN_RUNTIME_CORE_THREADPOOL_H
#define KILN_RUNTIME_CORE_THREADPOOL_H

#include <cstdint>
#include <memory>

namespace kiln {
namespace rt {

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

  /// Physical cores of this machine (not hyper-threads), at least 1.
  static int physicalCores();

  /// How long an idle worker spins for the next job before it sleeps
  /// (docs/runtime-threads.md): longer than the gap between two ops of a
  /// decode step, short enough that an idle program uses no CPU.
  static constexpr int kSpinMicros = 200;

  /// Counters since construction or resetStats (for measurements and tests).
  struct Stats {
    uint64_t parallelCalls = 0; // parallelFor calls handed to the workers
    uint64_t inlineCalls = 0;   // calls run inline (small, nested, 1 thread, busy)
    uint64_t sleeps = 0;        // times a worker's spin timed out and it slept
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
