// The optimized linear kernels (runtime-stub/kernels/opt/) against the portable
// ones (LinearAlgebra.cpp runLinear, QuantizedLinear.cpp quantizedLinear) on
// random shapes that are not multiples of any vector width or unroll factor,
// with and without bias, f32 / int8 / int4 weights, f16 / f32 scales — once for
// every SIMD target Highway compiled and this CPU supports (the dispatch forced
// to each with hwy::SetSupportedTargetsForTest, the baseline included), and
// split over a thread pool.
//
// Tolerance: |opt - portable| <= 1e-5 * (sum_c |x_c * w_c| + |bias|) + 1e-30 per
// output, i.e. 1e-5 relative to the magnitude of the f32 sum (both sides sum
// in f32 in different orders; the worst-case rounding of a 67-term sum is
// ~4e-6 of that magnitude).
#include "runtime-stub/core/DType.h"
#include "runtime-stub/core/Tensor.h"
#include "runtime-stub/core/ThreadPool.h"
#include "runtime-stub/kernels/Kernel.h"
#include "runtime-stub/kernels/QuantizedKernels.h"
#include "runtime-stub/kernels/opt/OptLinear.h"

#include "hwy/targets.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

using namespace kiln;
using kiln::rt::DType;
using kiln::rt::Shape;
using kiln::rt::Tensor;
namespace opt = kiln::rt::opt;

namespace {

constexpr double kRelTol = 1e-5;

uint16_t floatToHalf(float f) { // round-to-nearest for normal values (test scales)
  uint32_t b;
  std::memcpy(&b, &f, 4);
  uint32_t sign = (b >> 16) & 0x8000u;
  int32_t exp = static_cast<int32_t>((b >> 23) & 0xFF) - 127 + 15;
  uint32_t mant = b & 0x7FFFFFu;
  if (exp <= 0)
    return static_cast<uint16_t>(sign);
  uint32_t h = sign | (static_cast<uint32_t>(exp) << 10) | (mant >> 13);
  if (mant & 0x1000u)
    ++h;
  return static_cast<uint16_t>(h);
}

/// A random weight of one kind with its f32 dequantized values (for the
/// magnitude used by the tolerance).
struct Weight {
  opt::WeightKind kind = opt::WeightKind::F32;
  int64_t out = 0, in = 0, group = 0;
  bool scalesF16 = false;
  std::vector<float> f32;
  std::vector<uint8_t> bytes;
  std::vector<float> scalesF;
  std::vector<uint16_t> scalesH;
  std::vector<float> dequant;

  const void *scales() const {
    return scalesF16 ? static_cast<const void *>(scalesH.data()) : scalesF.data();
  }
  float scale(int64_t i) const { return scalesF16 ? rt::halfToFloat(scalesH[i]) : scalesF[i]; }

  Tensor view() const {
    if (kind == opt::WeightKind::F32)
      return Tensor::borrow(DType::Float32, Shape{out, in}, f32.data());
    rt::QuantParams q;
    q.groupSize = group;
    q.scalesDType = scalesF16 ? DType::Float16 : DType::Float32;
    q.scales = scales();
    return Tensor::borrowQuantized(kind == opt::WeightKind::Int8 ? DType::Int8 : DType::Int4,
                                   Shape{out, in}, bytes.data(), q);
  }
};

Weight makeWeight(std::mt19937 &rng, opt::WeightKind kind, int64_t out, int64_t in,
                  int64_t group, bool scalesF16) {
  Weight w;
  w.kind = kind;
  w.out = out;
  w.in = in;
  w.group = group;
  w.scalesF16 = scalesF16;
  w.dequant.resize(static_cast<size_t>(out * in));
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> byte(0, 255);
  if (kind == opt::WeightKind::F32) {
    w.f32.resize(w.dequant.size());
    for (size_t i = 0; i < w.f32.size(); ++i)
      w.dequant[i] = w.f32[i] = normal(rng);
    return w;
  }
  const int64_t groups = out * (in / group);
  for (int64_t i = 0; i < groups; ++i) {
    float s = std::exp2(static_cast<float>(byte(rng) % 8) - 9.0f) * (1.0f + byte(rng) / 512.0f);
    w.scalesF.push_back(s);
    w.scalesH.push_back(floatToHalf(s));
  }
  // Every byte value: int8 covers -128..127, int4 nibbles -8..7.
  w.bytes.resize(static_cast<size_t>(kind == opt::WeightKind::Int8 ? out * in : out * in / 2));
  for (auto &b : w.bytes)
    b = static_cast<uint8_t>(byte(rng));
  for (int64_t o = 0; o < out; ++o)
    for (int64_t c = 0; c < in; ++c) {
      int q;
      if (kind == opt::WeightKind::Int8) {
        q = static_cast<int8_t>(w.bytes[o * in + c]);
      } else {
        uint8_t b = w.bytes[o * (in / 2) + c / 2];
        q = (((c & 1) ? (b >> 4) : (b & 0x0F)) ^ 8) - 8;
      }
      w.dequant[o * in + c] = static_cast<float>(q) * w.scale(o * (in / group) + c / group);
    }
  return w;
}

std::string kindName(opt::WeightKind k) {
  return k == opt::WeightKind::F32 ? "f32" : k == opt::WeightKind::Int8 ? "int8" : "int4";
}

/// The portable kernel's result for y = x . w^T + bias ([rows, out]).
std::vector<float> portable(const Weight &w, const std::vector<float> &x, int64_t rows,
                            const std::vector<float> *bias) {
  std::vector<float> y(static_cast<size_t>(rows * w.out));
  Tensor wt = w.view();
  if (w.kind != opt::WeightKind::F32) {
    rt::quantizedLinear(x.data(), rows, wt, bias ? bias->data() : nullptr, y.data());
    return y;
  }
  Tensor xt = Tensor::borrow(DType::Float32, Shape{rows, w.in}, x.data());
  Tensor bt = bias ? Tensor::borrow(DType::Float32, Shape{w.out}, bias->data()) : Tensor();
  Tensor yt;
  const Tensor *in[3] = {&xt, &wt, bias ? &bt : nullptr};
  Tensor *outs[1] = {&yt};
  rt::OpAttrs attrs;
  std::string loc = "test";
  rt::KernelCall call;
  call.op = "linear";
  call.loc = &loc;
  call.attrs = &attrs;
  call.in = in;
  call.nIn = 3;
  call.out = outs;
  call.nOut = 1;
  call.portableOnly = true;
  rt::Error e = rt::findKernel("linear")->run(call);
  EXPECT_FALSE(e.failed()) << e.message();
  if (!e.failed())
    std::memcpy(y.data(), yt.dataAs<float>(), y.size() * sizeof(float));
  return y;
}

opt::LinearArgs argsFor(const Weight &w, const std::vector<float> &x, int64_t rows,
                        const std::vector<float> *bias, std::vector<float> *y) {
  y->assign(static_cast<size_t>(rows * w.out), std::nanf(""));
  opt::LinearArgs a;
  a.x = x.data();
  a.rows = rows;
  a.in = w.in;
  a.out = w.out;
  a.kind = w.kind;
  a.w = w.kind == opt::WeightKind::F32 ? static_cast<const void *>(w.f32.data())
                                       : static_cast<const void *>(w.bytes.data());
  a.scales = w.kind == opt::WeightKind::F32 ? nullptr : w.scales();
  a.scalesF16 = w.scalesF16;
  a.group = w.group;
  a.bias = bias ? bias->data() : nullptr;
  a.y = y->data();
  a.ldy = w.out;
  return a;
}

/// Compares got with the portable result; returns the number of mismatches.
int compare(const Weight &w, const std::vector<float> &x, int64_t rows,
            const std::vector<float> *bias, const std::vector<float> &got,
            const std::vector<float> &want, const std::string &what) {
  int bad = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < w.out; ++o) {
      double mag = bias ? std::fabs((*bias)[o]) : 0.0;
      for (int64_t c = 0; c < w.in; ++c)
        mag += std::fabs(static_cast<double>(x[r * w.in + c]) * w.dequant[o * w.in + c]);
      const double g = got[r * w.out + o], e = want[r * w.out + o];
      const double tol = kRelTol * mag + 1e-30;
      if (!(std::fabs(g - e) <= tol) && bad++ < 3)
        ADD_FAILURE() << what << " linear " << kindName(w.kind) << " x[" << rows << "," << w.in
                      << "] w[" << w.out << "," << w.in << "] group " << w.group
                      << (w.scalesF16 ? " f16" : " f32") << " scales, bias " << (bias != nullptr)
                      << ": y[" << r << "][" << o << "] = " << g << ", portable " << e
                      << ", |diff| " << std::fabs(g - e) << " > tol " << tol << " (rel "
                      << kRelTol << " of " << mag << ")";
    }
  return bad;
}

/// Random shapes (in 1..67, out 1..37, rows 1..9; for quantized weights the
/// group is 2, 32 or 64 and in a multiple of it, or per-row for int8) of all
/// kinds, each compared with the portable kernel. Returns the number of cases.
int runRandomCases(std::mt19937 &rng, rt::ThreadPool *pool, const std::string &what) {
  std::uniform_int_distribution<int> inD(1, 67), outD(1, 37), rowsD(1, 9), mulD(1, 3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  int cases = 0;
  for (int iter = 0; iter < 24; ++iter) {
    for (opt::WeightKind kind :
         {opt::WeightKind::F32, opt::WeightKind::Int8, opt::WeightKind::Int4}) {
      int64_t in = inD(rng), group = 0;
      if (kind != opt::WeightKind::F32) {
        const int64_t groups[3] = {2, 32, 64};
        group = groups[iter % 3];
        if (kind == opt::WeightKind::Int8 && iter % 4 == 3)
          group = in; // per-row scales (any in, odd included)
        else
          in = group * (group == 2 ? (in + 1) / 2 : mulD(rng));
      }
      const int64_t out = outD(rng), rows = rowsD(rng);
      Weight w = makeWeight(rng, kind, out, in, group, iter % 2 == 0);
      std::vector<float> x(static_cast<size_t>(rows * in)), bias(static_cast<size_t>(out));
      for (auto &v : x)
        v = normal(rng);
      for (auto &v : bias)
        v = normal(rng);
      for (bool withBias : {false, true}) {
        const std::vector<float> *b = withBias ? &bias : nullptr;
        std::vector<float> want = portable(w, x, rows, b), got;
        opt::LinearArgs a = argsFor(w, x, rows, b, &got);
        opt::linear(a, pool);
        if (compare(w, x, rows, b, got, want, what) > 0)
          return cases;
        ++cases;
      }
    }
  }
  return cases;
}

/// Targets Highway compiled into the runtime that this CPU can run.
std::vector<int64_t> targets() { return hwy::SupportedAndGeneratedTargets(); }

class OptLinear : public ::testing::Test {
protected:
  void TearDown() override { hwy::SetSupportedTargetsForTest(0); }
};

TEST_F(OptLinear, DefaultDispatchPicksBestTarget) {
  std::vector<int64_t> ts = targets();
  ASSERT_FALSE(ts.empty());
  // SupportedAndGeneratedTargets lists bits low to high; lower bits are better.
  EXPECT_STREQ(opt::selectedTargetName(), hwy::TargetName(ts.front()));
  std::mt19937 rng(1);
  EXPECT_GT(runRandomCases(rng, nullptr, std::string("default target ") +
                                           opt::selectedTargetName()),
            0);
}

TEST_F(OptLinear, EveryTargetMatchesPortable) {
  std::vector<int64_t> ts = targets();
  std::ostringstream names;
  for (int64_t t : ts) {
    hwy::SetSupportedTargetsForTest(t);
    ASSERT_STREQ(opt::selectedTargetName(), hwy::TargetName(t))
        << "dispatch was not forced to " << hwy::TargetName(t);
    std::mt19937 rng(static_cast<unsigned>(t & 0xFFFF) + 7);
    const int cases = runRandomCases(rng, nullptr, std::string("target ") + hwy::TargetName(t));
    EXPECT_EQ(cases, 24 * 3 * 2) << "target " << hwy::TargetName(t);
    names << hwy::TargetName(t) << " ";
  }
  std::printf("[ targets  ] compared on: %s\n", names.str().c_str());
}

TEST_F(OptLinear, BaselineTargetFallback) {
  // The weakest target compiled in (the static/baseline one, e.g. SSE2 or
  // EMU128): what a CPU without any of the better extensions gets.
  std::vector<int64_t> ts = targets();
  ASSERT_FALSE(ts.empty());
  hwy::SetSupportedTargetsForTest(ts.back());
  EXPECT_STREQ(opt::selectedTargetName(), hwy::TargetName(ts.back()));
  hwy::SetSupportedTargetsForTest(HWY_STATIC_TARGET);
  EXPECT_STREQ(opt::selectedTargetName(), hwy::TargetName(HWY_STATIC_TARGET));
  std::mt19937 rng(3);
  EXPECT_EQ(runRandomCases(rng, nullptr, std::string("static target ") +
                                           hwy::TargetName(HWY_STATIC_TARGET)),
            24 * 3 * 2);
}

TEST_F(OptLinear, ThreadPoolSplitMatchesPortable) {
  rt::ThreadPool pool(3);
  std::mt19937 rng(4);
  EXPECT_EQ(runRandomCases(rng, &pool, "3 threads"), 24 * 3 * 2);
  // A shape big enough to be split into several ranges.
  for (opt::WeightKind kind : {opt::WeightKind::F32, opt::WeightKind::Int8, opt::WeightKind::Int4}) {
    const int64_t out = 301, in = 256, rows = 5;
    Weight w = makeWeight(rng, kind, out, in, kind == opt::WeightKind::F32 ? 0 : 64, true);
    std::vector<float> x(static_cast<size_t>(rows * in)), bias(static_cast<size_t>(out));
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (auto &v : x)
      v = normal(rng);
    for (auto &v : bias)
      v = normal(rng);
    std::vector<float> want = portable(w, x, rows, &bias), got;
    opt::linear(argsFor(w, x, rows, &bias, &got), &pool);
    EXPECT_EQ(compare(w, x, rows, &bias, got, want, "3 threads, big"), 0);
  }
}

TEST_F(OptLinear, KernelHookUsesOptimizedPath) {
  // The `linear` kernel with portableOnly = false equals opt::linear bit for bit.
  std::mt19937 rng(5);
  for (opt::WeightKind kind : {opt::WeightKind::F32, opt::WeightKind::Int8, opt::WeightKind::Int4}) {
    const int64_t out = 13, in = 64, rows = 3;
    Weight w = makeWeight(rng, kind, out, in, kind == opt::WeightKind::F32 ? 0 : 32, false);
    std::vector<float> x(static_cast<size_t>(rows * in));
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (auto &v : x)
      v = normal(rng);
    std::vector<float> direct;
    opt::linear(argsFor(w, x, rows, nullptr, &direct), nullptr);
    Tensor xt = Tensor::borrow(DType::Float32, Shape{rows, in}, x.data()), wt = w.view(), yt;
    const Tensor *ins[3] = {&xt, &wt, nullptr};
    Tensor *outs[1] = {&yt};
    rt::OpAttrs attrs;
    std::string loc = "test";
    rt::KernelCall call;
    call.op = "linear";
    call.loc = &loc;
    call.attrs = &attrs;
    call.in = ins;
    call.nIn = 3;
    call.out = outs;
    call.nOut = 1;
    rt::Error e = rt::findKernel("linear")->run(call);
    ASSERT_FALSE(e.failed()) << e.message();
    ASSERT_EQ(yt.numel(), rows * out);
    EXPECT_EQ(0, std::memcmp(yt.dataAs<float>(), direct.data(), direct.size() * sizeof(float)))
        << kindName(kind) << ": kernel result differs from opt::linear";
  }
}

// Micro-benchmark (run with --gtest_also_run_disabled_tests): GEMV (1 row of x)
// over a 576x1536 weight on 1 thread, optimized vs portable, in weight GB/s.
TEST_F(OptLinear, DISABLED_BenchmarkGemv576x1536) {
  std::mt19937 rng(6);
  const int64_t out = 576, in = 1536;
  std::vector<float> x(static_cast<size_t>(in));
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (auto &v : x)
    v = normal(rng);
  std::printf("target %s (int8: per-row scales, int4: group 32, f16 scales)\n",
              opt::selectedTargetName());
  for (opt::WeightKind kind : {opt::WeightKind::F32, opt::WeightKind::Int8, opt::WeightKind::Int4}) {
    // int8 per output channel (one scale per row), int4 group 32; f16 scales.
    const int64_t group = kind == opt::WeightKind::F32 ? 0 : kind == opt::WeightKind::Int8 ? in : 32;
    Weight w = makeWeight(rng, kind, out, in, group, true);
    const double bytes = kind == opt::WeightKind::F32 ? out * in * 4.0
                         : kind == opt::WeightKind::Int8 ? out * in * 1.0
                                                          : out * in * 0.5;
    auto time = [&](auto &&fn) {
      fn();
      const int reps = 200;
      auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < reps; ++i)
        fn();
      std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
      return dt.count() / reps;
    };
    std::vector<float> y;
    opt::LinearArgs a = argsFor(w, x, 1, nullptr, &y);
    double tPort = time([&] { portable(w, x, 1, nullptr); });
    std::printf("GEMV %-4s %lldx%lld: portable %7.1f us %6.2f GB/s\n", kindName(kind).c_str(),
                (long long)out, (long long)in, tPort * 1e6, bytes / tPort / 1e9);
    for (int64_t t : targets()) {
      hwy::SetSupportedTargetsForTest(t);
      double tOpt = time([&] { opt::linear(a, nullptr); });
      std::printf("  opt %-6s %7.1f us %6.2f GB/s\n", hwy::TargetName(t), tOpt * 1e6,
                  bytes / tOpt / 1e9);
    }
    hwy::SetSupportedTargetsForTest(0);
  }
}

} // namespace
