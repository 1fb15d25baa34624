// Helpers for the optimized-kernel gtests: calling a registered kernel with the
// portable or the optimized path, random data, SIMD target enumeration, timing.
#ifndef KILN_TESTS_UNIT_KERNELS_OPT_OPTTESTUTIL_H
#define KILN_TESTS_UNIT_KERNELS_OPT_OPTTESTUTIL_H

#include "runtime-stub/core/Tensor.h"
#include "runtime-stub/core/ThreadPool.h"
#include "runtime-stub/kernels/Kernel.h"

#include "hwy/targets.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace kiln {
namespace test {

/// Runs the registered kernel `op` on `inputs` (null = absent) into `outputs`
/// (the caller's tensors, e.g. a state bound to memory for cache_write) and
/// returns the kernel's error; portableOnly selects the portable kernels.
inline rt::Error runKernelInto(const char *op, const rt::OpAttrs &attrs,
                               std::vector<const rt::Tensor *> inputs,
                               std::vector<rt::Tensor *> outputs, bool portableOnly,
                               rt::ThreadPool *pool = nullptr) {
  std::string loc = "test";
  rt::KernelCall call;
  call.op = op;
  call.loc = &loc;
  call.attrs = &attrs;
  call.in = inputs.data();
  call.nIn = static_cast<int>(inputs.size());
  call.out = outputs.data();
  call.nOut = static_cast<int>(outputs.size());
  call.pool = pool;
  call.portableOnly = portableOnly;
  const rt::KernelDef *def = rt::findKernel(op);
  EXPECT_NE(def, nullptr) << op;
  if (!def)
    return rt::Error::make(rt::ErrorCode::Unsupported, std::string("no kernel ") + op);
  return def->run(call);
}

/// runKernelInto with one output of its own, which it returns (the kernel must
/// succeed).
inline rt::Tensor runKernel(const char *op, const rt::OpAttrs &attrs,
                            std::vector<const rt::Tensor *> inputs, bool portableOnly,
                            rt::ThreadPool *pool = nullptr) {
  rt::Tensor out;
  rt::Error e = runKernelInto(op, attrs, std::move(inputs), {&out}, portableOnly, pool);
  EXPECT_FALSE(e.failed()) << op << ": " << e.message();
  return out;
}

inline std::vector<float> toVector(const rt::Tensor &t) {
  if (t.dtype() != rt::DType::Float32 || !t.data())
    return {};
  const float *p = t.dataAs<float>();
  return std::vector<float>(p, p + t.numel());
}

inline std::vector<float> normalFloats(std::mt19937 &rng, int64_t n, float sigma = 1.0f) {
  std::normal_distribution<float> normal(0.0f, sigma);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto &x : v)
    x = normal(rng);
  return v;
}

/// Targets Highway compiled into the runtime that this CPU can run (best first).
inline std::vector<int64_t> compiledTargets() { return hwy::SupportedAndGeneratedTargets(); }

/// Fixture of tests that force Highway's dispatch to one target after another
/// (hwy::SetSupportedTargetsForTest): the default dispatch comes back afterwards.
class ForcedTargetTest : public ::testing::Test {
protected:
  void TearDown() override { hwy::SetSupportedTargetsForTest(0); }
};

inline double threadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/// Seconds per call of fn: the fastest of 10 batches of reps / 10 calls (after
/// one warm-up call), so that time slices lost to other processes on a shared
/// machine count as little as possible. threadCpu: this thread's CPU time
/// instead of wall time (for single-threaded calls on a loaded machine).
template <typename F> double secondsPerCall(int reps, F &&fn, bool threadCpu = false) {
  fn();
  const int batch = reps / 10 > 0 ? reps / 10 : 1;
  double best = 1e30;
  for (int b = 0; b < 10; ++b) {
    auto t0 = std::chrono::steady_clock::now();
    const double c0 = threadCpuSeconds();
    for (int i = 0; i < batch; ++i)
      fn();
    std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
    const double secs = threadCpu ? threadCpuSeconds() - c0 : dt.count();
    best = std::min(best, secs / batch);
  }
  return best;
}

} // namespace test
} // namespace kiln

#endif // KILN_TESTS_UNIT_KERNELS_OPT_OPTTESTUTIL_H
