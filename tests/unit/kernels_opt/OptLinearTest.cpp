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
// ~4e-6 of that magnitude). When the quantized GEMV applies (int8/int4, rows <=
// 8, in and group multiples of 32: OptQuant.h) x is rounded to int8 blocks of
// 32 with scale xs_b = max|x_b| / 127, i.e. by at most xs_b / 2 per value, so
// the tolerance adds sum_b (xs_b / 2) * sum_{c in b} |w_c| (w dequantized).
#include "runtime-stub/core/DType.h"
#include "runtime-stub/core/Tensor.h"
#include "runtime-stub/core/ThreadPool.h"
#include "runtime-stub/kernels/Kernel.h"
#include "runtime-stub/kernels/QuantizedKernels.h"
#include "runtime-stub/kernels/opt/OptLinear.h"
#include "runtime-stub/kernels/opt/OptQuant.h"

// The optimized kernels are compiled with AVX3_DL (VNNI); list it here too.
#ifndef HWY_WANT_AVX3_DL
#define HWY_WANT_AVX3_DL
#endif
#include "OptTestUtil.h"
#include "hwy/targets.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>

#include <chrono>
#include <ctime>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

using namespace kiln;
using kiln::test::compiledTargets;
using kiln::test::ForcedTargetTest;
using kiln::rt::DType;
using kiln::rt::Shape;
using kiln::rt::Tensor;
namespace opt = kiln::rt::opt;

namespace {

constexpr double kRelTol = 1e-5;

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
  // Int4Strip16 / Int8Strip16 copy of bytes / scales (core/QuantLayout.h) when
  // strip16 is set: view() and argsFor() then hand the kernels the repacked weight.
  bool strip16 = false;
  std::vector<uint8_t> packedBytes, packedScales;

  const void *scales() const {
    if (strip16)
      return packedScales.data();
    return scalesF16 ? static_cast<const void *>(scalesH.data()) : scalesF.data();
  }
  const void *quantBytes() const { return strip16 ? packedBytes.data() : bytes.data(); }
  void packStrip16() {
    strip16 = true;
    packedBytes.resize(bytes.size());
    if (kind == opt::WeightKind::Int8)
      strip16::packData8(bytes.data(), out, in, packedBytes.data());
    else
      strip16::packData(bytes.data(), out, in, packedBytes.data());
    const int64_t elem = scalesF16 ? 2 : 4;
    const uint8_t *rows = scalesF16 ? reinterpret_cast<const uint8_t *>(scalesH.data())
                                    : reinterpret_cast<const uint8_t *>(scalesF.data());
    packedScales.resize(static_cast<size_t>(out * (in / group) * elem));
    strip16::packScales(rows, out, in / group, elem, packedScales.data());
  }
  float scale(int64_t i) const { return scalesF16 ? rt::halfToFloat(scalesH[i]) : scalesF[i]; }

  Tensor view() const {
    if (kind == opt::WeightKind::F32)
      return Tensor::borrow(DType::Float32, Shape{out, in}, f32.data());
    rt::QuantParams q;
    q.groupSize = group;
    q.scalesDType = scalesF16 ? DType::Float16 : DType::Float32;
    q.scales = scales();
    q.layout = !strip16                         ? QuantLayout::Rows
               : kind == opt::WeightKind::Int8 ? QuantLayout::Int8Strip16
                                               : QuantLayout::Int4Strip16;
    return Tensor::borrowQuantized(kind == opt::WeightKind::Int8 ? DType::Int8 : DType::Int4,
                                   Shape{out, in}, quantBytes(), q);
  }
};

/// " (Int4Strip16)" / " (Int8Strip16)" for a repacked weight, "" for rows.
std::string layoutName(const Weight &w) {
  if (!w.strip16)
    return "";
  return w.kind == opt::WeightKind::Int8 ? " (Int8Strip16)" : " (Int4Strip16)";
}

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
    w.scalesH.push_back(rt::floatToHalf(s));
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
  std::vector<float> got = kiln::test::toVector(kiln::test::runKernel(
      "linear", rt::OpAttrs(), {&xt, &wt, bias ? &bt : nullptr}, true));
  if (got.size() == y.size())
    y = got;
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
                                       : w.quantBytes();
  a.scales = w.kind == opt::WeightKind::F32 ? nullptr : w.scales();
  a.scalesF16 = w.scalesF16;
  a.group = w.group;
  a.strip16 = w.strip16;
  a.bias = bias ? bias->data() : nullptr;
  a.y = y->data();
  a.ldy = w.out;
  return a;
}

/// True when opt::linear takes the quantized-activation GEMV for this call.
bool quantPath(const Weight &w, int64_t rows) {
  opt::LinearArgs a;
  a.rows = rows;
  a.in = w.in;
  a.out = w.out;
  a.kind = w.kind;
  a.group = w.group;
  a.strip16 = w.strip16;
  return opt::quantGemvApplies(a);
}

/// Bound on the effect of rounding x to int8 blocks of 32 on output o of row r:
/// sum_b (max|x_b| / 127 / 2) * sum_{c in b} |w[o][c]|.
double quantTolerance(const Weight &w, const float *x, int64_t o) {
  double tol = 0.0;
  for (int64_t b = 0; b < w.in / opt::kQuantBlock; ++b) {
    double m = 0.0, sw = 0.0;
    for (int64_t c = b * opt::kQuantBlock; c < (b + 1) * opt::kQuantBlock; ++c) {
      m = std::max(m, static_cast<double>(std::fabs(x[c])));
      sw += std::fabs(w.dequant[o * w.in + c]);
    }
    tol += m / 127.0 / 2.0 * sw;
  }
  return tol;
}

/// Compares got with the portable result; returns the number of mismatches.
int compare(const Weight &w, const std::vector<float> &x, int64_t rows,
            const std::vector<float> *bias, const std::vector<float> &got,
            const std::vector<float> &want, const std::string &what) {
  int bad = 0;
  const bool quant = quantPath(w, rows);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < w.out; ++o) {
      double mag = bias ? std::fabs((*bias)[o]) : 0.0;
      for (int64_t c = 0; c < w.in; ++c)
        mag += std::fabs(static_cast<double>(x[r * w.in + c]) * w.dequant[o * w.in + c]);
      const double g = got[r * w.out + o], e = want[r * w.out + o];
      const double qtol = quant ? quantTolerance(w, x.data() + r * w.in, o) : 0.0;
      const double tol = kRelTol * mag + qtol + 1e-30;
      if (!(std::fabs(g - e) <= tol) && bad++ < 3)
        ADD_FAILURE() << what << " linear " << kindName(w.kind)
                      << layoutName(w) << " x[" << rows << "," << w.in
                      << "] w[" << w.out << "," << w.in << "] group " << w.group
                      << (w.scalesF16 ? " f16" : " f32") << " scales, bias " << (bias != nullptr)
                      << ": y[" << r << "][" << o << "] = " << g << ", portable " << e
                      << ", |diff| " << std::fabs(g - e) << " > tol " << tol << " (rel "
                      << kRelTol << " of " << mag << " + x-quantization bound " << qtol
                      << (quant ? ", quantized GEMV" : ", f32 path") << ")";
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

class OptLinear : public ForcedTargetTest {};

TEST_F(OptLinear, DefaultDispatchPicksBestTarget) {
  std::vector<int64_t> ts = compiledTargets();
  ASSERT_FALSE(ts.empty());
  // SupportedAndGeneratedTargets lists bits low to high; lower bits are better.
  EXPECT_STREQ(opt::selectedTargetName(), hwy::TargetName(ts.front()));
  std::mt19937 rng(1);
  EXPECT_GT(runRandomCases(rng, nullptr, std::string("default target ") +
                                           opt::selectedTargetName()),
            0);
}

TEST_F(OptLinear, EveryTargetMatchesPortable) {
  std::vector<int64_t> ts = compiledTargets();
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
  std::vector<int64_t> ts = compiledTargets();
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
    rt::OpAttrs attrs;
    rt::Error e = test::runKernelInto("linear", attrs, {&xt, &wt, nullptr}, {&yt}, false);
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
  for (int variant = 0; variant < 5; ++variant) {
    // int8 per output channel (one scale per row), int4 group 32, each in rows
    // and in its strip layout; f16 scales.
    const opt::WeightKind kind = variant == 0                  ? opt::WeightKind::F32
                                 : variant == 1 || variant == 3 ? opt::WeightKind::Int8
                                                                : opt::WeightKind::Int4;
    const int64_t group = kind == opt::WeightKind::F32 ? 0 : kind == opt::WeightKind::Int8 ? in : 32;
    Weight w = makeWeight(rng, kind, out, in, group, true);
    if (variant >= 3)
      w.packStrip16();
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
    std::printf("GEMV %-4s%s %lldx%lld: portable %7.1f us %6.2f GB/s\n", kindName(kind).c_str(),
                layoutName(w).c_str(), (long long)out, (long long)in, tPort * 1e6,
                bytes / tPort / 1e9);
    for (int64_t t : compiledTargets()) {
      hwy::SetSupportedTargetsForTest(t);
      double tOpt = time([&] { opt::linear(a, nullptr); });
      std::printf("  opt %-6s %7.1f us %6.2f GB/s\n", hwy::TargetName(t), tOpt * 1e6,
                  bytes / tOpt / 1e9);
    }
    hwy::SetSupportedTargetsForTest(0);
  }
}


// ---------------------------------------------------------------------------
// Quantized GEMV (OptQuant.h): int8 / int4 weights times x quantized to int8
// blocks of 32, integer dot products.

/// The integer value of weight [o][c] (int8 byte or sign-extended int4 nibble).
int weightInt(const Weight &w, int64_t o, int64_t c) {
  if (w.kind == opt::WeightKind::Int8)
    return static_cast<int8_t>(w.bytes[o * w.in + c]);
  const uint8_t b = w.bytes[o * (w.in / 2) + c / 2];
  return (((c & 1) ? (b >> 4) : (b & 0x0F)) ^ 8) - 8;
}

/// Independent reference of the quantized GEMV's math, in double: x rounded
/// per block of 32 (xs = max|x| / 127 in f32, q = round-half-even(x * (127 /
/// max|x|)) as the kernel does), exact integer block dots, then sum_b xs_b *
/// ws * dot_b + bias. mag[i] = |bias| + sum_c |xs_b * ws * q_c * w_c|: the
/// kernel rounds partial sums of a few columns (per SIMD lane) in f32, which
/// may cancel, so the tolerance is relative to the sum of |products|.
std::vector<double> quantReference(const Weight &w, const std::vector<float> &x, int64_t rows,
                                   const std::vector<float> *bias, std::vector<double> *mag) {
  const int64_t in = w.in, blocks = in / opt::kQuantBlock;
  std::vector<double> y(static_cast<size_t>(rows * w.out));
  mag->assign(y.size(), 0.0);
  std::vector<int> q(static_cast<size_t>(in));
  std::vector<float> xs(static_cast<size_t>(blocks));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t b = 0; b < blocks; ++b) {
      float m = 0.0f;
      for (int64_t c = b * 32; c < b * 32 + 32; ++c)
        m = std::max(m, std::fabs(x[r * in + c]));
      const float inv = m > 0.0f ? 127.0f / m : 0.0f;
      for (int64_t c = b * 32; c < b * 32 + 32; ++c)
        q[c] = static_cast<int>(std::max(-127L, std::min(127L, std::lrint(x[r * in + c] * inv))));
      xs[b] = m / 127.0f;
    }
    for (int64_t o = 0; o < w.out; ++o) {
      double acc = bias ? (*bias)[o] : 0.0, m = bias ? std::fabs((*bias)[o]) : 0.0;
      for (int64_t b = 0; b < blocks; ++b) {
        int64_t dot = 0, absDot = 0;
        for (int64_t c = b * 32; c < b * 32 + 32; ++c) {
          const int64_t p = static_cast<int64_t>(q[c]) * weightInt(w, o, c);
          dot += p;
          absDot += p < 0 ? -p : p;
        }
        const double f = static_cast<double>(xs[b]) * w.scale(o * (in / w.group) + b * 32 / w.group);
        acc += f * static_cast<double>(dot);
        m += std::fabs(f) * static_cast<double>(absDot);
      }
      y[r * w.out + o] = acc;
      (*mag)[r * w.out + o] = m;
    }
  }
  return y;
}

/// One quantized-GEMV case: opt::linear vs the exact reference (tolerance 1e-5
/// of the summed |products|: f32 products and sums) and vs the portable kernel
/// (tolerance: the x-quantization bound + 1e-5 relative, see the top).
/// Returns the number of mismatches.
int checkQuantCase(const Weight &w, const std::vector<float> &x, int64_t rows,
                   const std::vector<float> *bias, rt::ThreadPool *pool, const std::string &what) {
  std::vector<float> got;
  opt::LinearArgs a = argsFor(w, x, rows, bias, &got);
  EXPECT_TRUE(opt::quantGemvApplies(a)) << what;
  opt::linear(a, pool);
  std::vector<double> mag;
  std::vector<double> ref = quantReference(w, x, rows, bias, &mag);
  int bad = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double tol = kRelTol * mag[i] + 1e-30;
    if (!(std::fabs(got[i] - ref[i]) <= tol) && bad++ < 3)
      ADD_FAILURE() << what << " quantized GEMV " << kindName(w.kind)
                    << layoutName(w) << " x[" << rows << ","
                    << w.in << "] w[" << w.out << "," << w.in << "] group " << w.group
                    << (w.scalesF16 ? " f16" : " f32") << " scales, bias " << (bias != nullptr)
                    << ": y[" << i / w.out << "][" << i % w.out << "] = " << got[i]
                    << ", exact quantized reference " << ref[i] << ", |diff| "
                    << std::fabs(got[i] - ref[i]) << " > tol " << tol << " (rel " << kRelTol
                    << " of " << mag[i] << ")";
  }
  std::vector<float> want = portable(w, x, rows, bias);
  return bad + compare(w, x, rows, bias, got, want, what);
}

/// Random quantized-GEMV shapes: in = 32 * k (32..2048, many not multiples of
/// 64 or 128), out 1..67, rows 1..8, group 32 / 64 / 128 / 96 / per-row,
/// int8 and int4, f16 and f32 scales, with and without bias. Returns cases run.
int runQuantCases(std::mt19937 &rng, rt::ThreadPool *pool, int iters, const std::string &what) {
  std::uniform_int_distribution<int> outD(1, 67), rowsD(1, 8), kD(1, 64), smallK(1, 8);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  int cases = 0;
  for (int iter = 0; iter < iters; ++iter)
    for (opt::WeightKind kind : {opt::WeightKind::Int8, opt::WeightKind::Int4}) {
      const int64_t groups[5] = {32, 64, 128, 96, 0};
      int64_t group = groups[iter % 5];
      const int64_t k = iter % 3 == 0 ? kD(rng) : smallK(rng); // big and small rows
      int64_t in = group == 0 ? 32 * k : group * ((32 * k + group - 1) / group);
      if (group == 0)
        group = in; // one scale per output channel
      const int64_t out = outD(rng), rows = rowsD(rng);
      Weight w = makeWeight(rng, kind, out, in, group, iter % 2 == 0);
      std::vector<float> x(static_cast<size_t>(rows * in)), bias(static_cast<size_t>(out));
      for (auto &v : x)
        v = normal(rng) * (iter % 4 == 1 ? 100.0f : 1.0f);
      if (iter % 7 == 3) // a block of zeros (scale 0)
        std::fill(x.begin(), x.begin() + std::min<int64_t>(in, 32), 0.0f);
      for (auto &v : bias)
        v = normal(rng);
      const std::vector<float> *b = iter % 2 ? &bias : nullptr;
      if (checkQuantCase(w, x, rows, b, pool, what) > 0)
        return cases;
      ++cases;
    }
  return cases;
}

TEST_F(OptLinear, QuantGemvEveryTargetMatchesReference) {
  std::ostringstream names;
  for (int64_t t : compiledTargets()) {
    hwy::SetSupportedTargetsForTest(t);
    ASSERT_STREQ(opt::quantTargetName(), hwy::TargetName(t))
        << "quantized GEMV dispatch was not forced to " << hwy::TargetName(t);
    std::mt19937 rng(static_cast<unsigned>(t & 0xFFFF) + 11);
    EXPECT_EQ(runQuantCases(rng, nullptr, 30, std::string("target ") + hwy::TargetName(t)), 60)
        << "target " << hwy::TargetName(t);
    names << hwy::TargetName(t) << " ";
  }
  hwy::SetSupportedTargetsForTest(HWY_STATIC_TARGET);
  std::mt19937 rng(12);
  EXPECT_EQ(runQuantCases(rng, nullptr, 10, "static target"), 20);
  std::printf("[ targets  ] quantized GEMV compared on: %s+ static %s\n", names.str().c_str(),
              hwy::TargetName(HWY_STATIC_TARGET));
}

TEST_F(OptLinear, QuantGemvThreadPoolMatchesReference) {
  rt::ThreadPool pool(3);
  std::mt19937 rng(13);
  EXPECT_EQ(runQuantCases(rng, &pool, 10, "3 threads"), 20);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (opt::WeightKind kind : {opt::WeightKind::Int8, opt::WeightKind::Int4}) {
    const int64_t out = 517, in = 1536, rows = 2; // split into several ranges
    Weight w = makeWeight(rng, kind, out, in, 32, true);
    std::vector<float> x(static_cast<size_t>(rows * in)), bias(static_cast<size_t>(out));
    for (auto &v : x)
      v = normal(rng);
    for (auto &v : bias)
      v = normal(rng);
    EXPECT_EQ(checkQuantCase(w, x, rows, &bias, &pool, "3 threads, big"), 0);
  }
}

TEST_F(OptLinear, QuantGemvNotUsedOutsideItsDomain) {
  // The f32 path keeps: in or group not multiples of 32, more than 8 rows, f32
  // weights; these shapes then match portable within 1e-5 relative (compare()).
  std::mt19937 rng(14);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  struct Case {
    opt::WeightKind kind;
    int64_t in, group, rows;
  } cases[] = {{opt::WeightKind::Int8, 48, 48, 1}, {opt::WeightKind::Int8, 64, 16, 2},
               {opt::WeightKind::Int4, 80, 16, 1}, {opt::WeightKind::Int4, 64, 32, 9},
               {opt::WeightKind::Int8, 96, 96, 9}, {opt::WeightKind::F32, 64, 0, 1}};
  for (const Case &c : cases) {
    Weight w = makeWeight(rng, c.kind, 19, c.in, c.group, false);
    EXPECT_FALSE(quantPath(w, c.rows)) << kindName(c.kind) << " in " << c.in << " group "
                                       << c.group << " rows " << c.rows;
    std::vector<float> x(static_cast<size_t>(c.rows * c.in));
    for (auto &v : x)
      v = normal(rng);
    std::vector<float> want = portable(w, x, c.rows, nullptr), got;
    opt::linear(argsFor(w, x, c.rows, nullptr, &got), nullptr);
    EXPECT_EQ(compare(w, x, c.rows, nullptr, got, want, "outside quantized GEMV"), 0);
  }
}

TEST_F(OptLinear, QuantGemvNonFiniteInputFallsBackToF32) {
  // An inf / nan in x cannot be quantized: quantLinear declines and the f32
  // kernels give the portable kernel's inf / nan outputs (int8 and int4, each
  // in rows and in its strip layout).
  std::mt19937 rng(15);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int variant = 0; variant < 4; ++variant) {
    const opt::WeightKind kind = variant % 2 == 0 ? opt::WeightKind::Int8 : opt::WeightKind::Int4;
    Weight w = makeWeight(rng, kind, 32, 64, 32, true);
    if (variant >= 2)
      w.packStrip16();
    const std::string what = kindName(kind) + layoutName(w);
    std::vector<float> x(64);
    for (auto &v : x)
      v = normal(rng);
    x[5] = std::numeric_limits<float>::infinity();
    x[40] = std::nanf("");
    std::vector<float> got;
    opt::LinearArgs a = argsFor(w, x, 1, nullptr, &got);
    EXPECT_FALSE(opt::quantLinear(a, nullptr)) << what;
    opt::linear(a, nullptr);
    std::vector<float> want = portable(w, x, 1, nullptr);
    for (int64_t o = 0; o < w.out; ++o)
      EXPECT_EQ(std::isnan(got[o]), std::isnan(want[o])) << what << " y[" << o << "]";
  }
}

// ---------------------------------------------------------------------------
// Int4Strip16 / Int8Strip16 weights (core/QuantLayout.h): the compiler's
// repacked int4 and int8 layouts.

/// Random strip-layout cases of `kind`: out = 16 * (1..12), in = group * k
/// (32..1536), group 32 / 64 / 128 (int8 also group = in: one scale per row),
/// rows 1..8 (quantized GEMV) or 9..40 (GEMM, every fourth case), f16 / f32
/// scales, with and without bias. Each is compared with the exact quantized
/// reference (GEMV) and with the portable kernel reading the same repacked
/// bytes. Returns cases run.
int runStrip16Cases(std::mt19937 &rng, opt::WeightKind kind, rt::ThreadPool *pool, int iters,
                    const std::string &what) {
  std::uniform_int_distribution<int> stripsD(1, 12), rowsD(1, 8), bigRowsD(9, 40), kD(1, 12);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  int cases = 0;
  for (int iter = 0; iter < iters; ++iter) {
    const int64_t groups[3] = {32, 64, 128};
    const int64_t k = kD(rng), out = 16 * stripsD(rng);
    const bool perRow = kind == opt::WeightKind::Int8 && iter % 4 == 1;
    const int64_t in = groups[iter % 3] * k, group = perRow ? in : groups[iter % 3];
    const bool gemm = iter % 4 == 3;
    const int64_t rows = gemm ? bigRowsD(rng) : rowsD(rng);
    Weight w = makeWeight(rng, kind, out, in, group, iter % 2 == 0);
    w.packStrip16();
    std::vector<float> x(static_cast<size_t>(rows * in)), bias(static_cast<size_t>(out));
    for (auto &v : x)
      v = normal(rng) * (iter % 5 == 1 ? 100.0f : 1.0f);
    if (iter % 7 == 3) // a block of zeros (scale 0)
      std::fill(x.begin(), x.begin() + 32, 0.0f);
    for (auto &v : bias)
      v = normal(rng);
    const std::vector<float> *b = iter % 2 ? &bias : nullptr;
    int bad = 0;
    if (gemm) {
      std::vector<float> got;
      opt::linear(argsFor(w, x, rows, b, &got), pool);
      bad = compare(w, x, rows, b, got, portable(w, x, rows, b), what + " (GEMM)");
    } else {
      bad = checkQuantCase(w, x, rows, b, pool, what);
    }
    if (bad > 0)
      return cases;
    ++cases;
  }
  return cases;
}

TEST_F(OptLinear, Strip16EveryTargetMatchesReference) {
  for (opt::WeightKind kind : {opt::WeightKind::Int4, opt::WeightKind::Int8}) {
    const std::string name = kindName(kind) + " strips, ";
    for (int64_t t : compiledTargets()) {
      hwy::SetSupportedTargetsForTest(t);
      std::mt19937 rng(static_cast<unsigned>(t & 0xFFFF) + 21);
      EXPECT_EQ(runStrip16Cases(rng, kind, nullptr, 24, name + "target " + hwy::TargetName(t)), 24)
          << name << "target " << hwy::TargetName(t);
    }
    hwy::SetSupportedTargetsForTest(HWY_STATIC_TARGET);
    std::mt19937 rng(22);
    EXPECT_EQ(runStrip16Cases(rng, kind, nullptr, 8, name + "static target"), 8);
  }
  hwy::SetSupportedTargetsForTest(0);
}

TEST_F(OptLinear, Strip16ThreadPoolMatchesReference) {
  rt::ThreadPool pool(3);
  std::mt19937 rng(23);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (opt::WeightKind kind : {opt::WeightKind::Int4, opt::WeightKind::Int8}) {
    const std::string name = kindName(kind) + " strips, 3 threads";
    EXPECT_EQ(runStrip16Cases(rng, kind, &pool, 12, name), 12);
    // MobileLLM-125M up (int8: one scale per row, as export-hf writes it).
    Weight w = makeWeight(rng, kind, 1536, 576, kind == opt::WeightKind::Int8 ? 576 : 32, true);
    w.packStrip16();
    std::vector<float> x(576), bias(1536);
    for (auto &v : x)
      v = normal(rng);
    for (auto &v : bias)
      v = normal(rng);
    EXPECT_EQ(checkQuantCase(w, x, 1, &bias, &pool, name + ", 1536 x 576"), 0);
  }
}

// ---------------------------------------------------------------------------
// Linear groups (opt::linearGroup): linears sharing x run as one job.

/// Runs n random linears of `kind` sharing one x through linearGroup and each
/// through linear(); returns the number of output values whose bits differ
/// (each failure is reported with kind, member, shape and index).
int groupMismatches(std::mt19937 &rng, opt::WeightKind kind, bool strip16, int n, int64_t rows,
                    bool nonFinite, rt::ThreadPool *pool) {
  std::uniform_int_distribution<int> outD(1, 70), kD(1, 6);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int64_t in = 32 * kD(rng);
  std::vector<Weight> ws;
  std::vector<std::vector<float>> biases(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    const int64_t out = strip16 ? 16 * (1 + outD(rng) % 6) : outD(rng);
    ws.push_back(makeWeight(rng, kind, out, in, 32, i % 2 == 0));
    if (strip16)
      ws.back().packStrip16();
    biases[static_cast<size_t>(i)].resize(static_cast<size_t>(out));
    for (auto &v : biases[static_cast<size_t>(i)])
      v = normal(rng);
  }
  std::vector<float> x(static_cast<size_t>(rows * in));
  for (auto &v : x)
    v = normal(rng);
  if (nonFinite)
    x[static_cast<size_t>(in / 2)] = std::numeric_limits<float>::infinity();
  std::vector<std::vector<float>> want(static_cast<size_t>(n)), got(static_cast<size_t>(n));
  std::vector<opt::LinearArgs> args;
  for (int i = 0; i < n; ++i) {
    const std::vector<float> *b = i == 1 ? &biases[static_cast<size_t>(i)] : nullptr;
    opt::linear(argsFor(ws[static_cast<size_t>(i)], x, rows, b, &want[static_cast<size_t>(i)]), pool);
    args.push_back(argsFor(ws[static_cast<size_t>(i)], x, rows, b, &got[static_cast<size_t>(i)]));
  }
  std::vector<const opt::LinearArgs *> ptrs;
  for (const auto &a : args)
    ptrs.push_back(&a);
  opt::linearGroup(ptrs.data(), n, pool);
  int bad = 0;
  for (int i = 0; i < n; ++i)
    for (size_t k = 0; k < want[static_cast<size_t>(i)].size(); ++k) {
      const float a = got[static_cast<size_t>(i)][k], b = want[static_cast<size_t>(i)][k];
      if (std::memcmp(&a, &b, sizeof a) != 0 && bad++ < 3)
        ADD_FAILURE() << "linearGroup " << kindName(kind) << layoutName(ws[static_cast<size_t>(i)])
                      << " member " << i << " of " << n << ": weight [" << ws[static_cast<size_t>(i)].out
                      << ", " << in << "], rows " << rows << ", y[" << k << "] = " << a
                      << ", linear() alone gives " << b << " (must be bit-identical)";
    }
  return bad;
}

TEST_F(OptLinear, GroupGivesEachLinearItsOwnBits) {
  // Decode-sized rows take the one-job path (f32 GEMV, quantized GEMV with x
  // quantized once), 20 rows the grouped GEMM (x packed once); non-finite x
  // runs member by member.
  rt::ThreadPool pool(3);
  std::mt19937 rng(31);
  struct Kind {
    opt::WeightKind kind;
    bool strip16;
  } kinds[] = {{opt::WeightKind::F32, false},
               {opt::WeightKind::Int8, false},
               {opt::WeightKind::Int4, false},
               {opt::WeightKind::Int4, true},
               {opt::WeightKind::Int8, true}};
  for (int64_t t : {static_cast<int64_t>(0), static_cast<int64_t>(HWY_STATIC_TARGET)}) {
    if (t != 0)
      hwy::SetSupportedTargetsForTest(t);
    for (const Kind &k : kinds)
      for (rt::ThreadPool *p : {static_cast<rt::ThreadPool *>(nullptr), &pool})
        for (int n : {2, 3, 5})
          for (int64_t rows : {1, 3, 20})
            EXPECT_EQ(groupMismatches(rng, k.kind, k.strip16, n, rows, false, p), 0);
    for (const Kind &k : kinds)
      EXPECT_EQ(groupMismatches(rng, k.kind, k.strip16, 3, 1, true, &pool), 0);
  }
  hwy::SetSupportedTargetsForTest(0);
}

TEST_F(OptLinear, GroupRunsAsOneParallelJob) {
  // q / k / v of MobileLLM-125M (576 -> 576, 192, 192), int4 strips: one
  // hand-off to the pool for all three instead of three, decode and prefill.
  rt::ThreadPool pool(2);
  std::mt19937 rng(32);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<Weight> ws;
  for (int64_t out : {576, 192, 192}) {
    ws.push_back(makeWeight(rng, opt::WeightKind::Int4, out, 576, 32, true));
    ws.back().packStrip16();
  }
  std::vector<float> x(576);
  for (auto &v : x)
    v = normal(rng);
  std::vector<std::vector<float>> ys(3);
  std::vector<opt::LinearArgs> args;
  for (size_t i = 0; i < 3; ++i)
    args.push_back(argsFor(ws[i], x, 1, nullptr, &ys[i]));
  const opt::LinearArgs *ptrs[3] = {&args[0], &args[1], &args[2]};
  pool.resetStats();
  opt::linearGroup(ptrs, 3, &pool);
  EXPECT_EQ(pool.stats().parallelCalls, 1u);
  pool.resetStats();
  for (const auto &a : args)
    opt::linear(a, &pool);
  EXPECT_EQ(pool.stats().parallelCalls, 3u);
  // A 64-token prefill chunk (GEMM): one job for the three, not three.
  std::vector<float> x64(64 * 576);
  for (auto &v : x64)
    v = normal(rng);
  args.clear();
  for (size_t i = 0; i < 3; ++i)
    args.push_back(argsFor(ws[i], x64, 64, nullptr, &ys[i]));
  pool.resetStats();
  opt::linearGroup(ptrs, 3, &pool);
  EXPECT_EQ(pool.stats().parallelCalls, 1u);
}

TEST(QuantLayout, Strip16PackingKeepsEveryValueAndScale) {
  // Every element and scale of a packed weight (int4 and int8) reads back as
  // the row-layout one.
  std::mt19937 rng(25);
  for (opt::WeightKind kind : {opt::WeightKind::Int4, opt::WeightKind::Int8})
  for (int64_t group : {32, 64}) {
    Weight w = makeWeight(rng, kind, 48, 128, group, true);
    w.packStrip16();
    const int bits = kind == opt::WeightKind::Int8 ? 8 : 4;
    const int64_t groups = w.in / group;
    for (int64_t o = 0; o < w.out; ++o)
      for (int64_t c = 0; c < w.in; ++c) {
        ASSERT_EQ(strip16::value(bits, w.packedBytes.data(), w.in, o, c), weightInt(w, o, c))
            << kindName(kind) << " element (" << o << ", " << c << ") group " << group;
        uint16_t h;
        std::memcpy(&h, w.packedScales.data() + 2 * strip16::scaleIndex(groups, o, c / group), 2);
        ASSERT_EQ(h, w.scalesH[o * groups + c / group]) << "scale (" << o << ", " << c / group << ")";
      }
  }
  EXPECT_TRUE(strip16::applies(1536, 576, 32));
  EXPECT_FALSE(strip16::applies(40, 576, 32)); // out not a multiple of 16
  EXPECT_FALSE(strip16::applies(48, 80, 16));  // group not a multiple of 32
  EXPECT_FALSE(strip16::applies(48, 96, 64));  // group does not divide in
}

TEST(QuantLayout, LayoutProblemNamesTheLayoutAndAcceptsOnlyItsDtype) {
  // The writer and the reader both reject strip layouts through layoutProblem.
  const int i4 = static_cast<int>(QuantLayout::Int4Strip16), i8 = static_cast<int>(QuantLayout::Int8Strip16);
  EXPECT_EQ(strip16::layoutProblem(i4, true, false, 1536, 576, 32), nullptr);
  EXPECT_EQ(strip16::layoutProblem(i8, false, true, 576, 1536, 1536), nullptr); // one scale per row
  EXPECT_EQ(strip16::layoutProblem(static_cast<int>(QuantLayout::Rows), true, false, 7, 9, 3), nullptr);
  const struct {
    int layout;
    bool int4, int8;
    int64_t out, in, group;
    const char *name;
  } bad[] = {{i4, false, true, 1536, 576, 32, "Int4Strip16 needs an i4"},  // int8 weight
             {i8, true, false, 1536, 576, 32, "Int8Strip16 needs an i8"},  // int4 weight
             {i4, true, false, 40, 576, 32, "Int4Strip16 needs an i4"},    // out % 16
             {i8, false, true, 48, 80, 16, "Int8Strip16 needs an i8"},     // group % 32
             {i4, true, false, 48, 96, 64, "Int4Strip16 needs an i4"}};    // group does not divide in
  for (const auto &b : bad) {
    const char *problem = strip16::layoutProblem(b.layout, b.int4, b.int8, b.out, b.in, b.group);
    ASSERT_NE(problem, nullptr) << b.name << " [" << b.out << ", " << b.in << "] group " << b.group;
    EXPECT_EQ(std::string(problem).rfind(b.name, 0), 0u) << problem;
  }
}

// Working-set sweep (run with --gtest_also_run_disabled_tests
// --gtest_filter='*BenchmarkStripWorkingSet*'): 1 and 2 threads, int4 Int4Strip16 GEMV
// 576x1536 group 32 (f16 scales) cycling over n distinct copies, so that the
// weights come from L1/L2 (n = 1), L2/L3 (2-8: 0.5-4 MB) or DRAM (256: 127 MB);
// prints weight GB/s and G multiply-adds/s for a weight read again (T0
// prefetch) and one read once (NTA prefetch on AMD, T0 elsewhere:
// opt::quantStreamsNonTemporal).
TEST_F(OptLinear, DISABLED_BenchmarkStripWorkingSet) {
  std::mt19937 rng(17);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int64_t out = 576, in = 1536;
  Weight w0 = makeWeight(rng, opt::WeightKind::Int4, out, in, 32, true);
  w0.packStrip16();
  const double bytes = static_cast<double>(w0.packedBytes.size() + w0.packedScales.size());
  std::vector<float> x(static_cast<size_t>(in)), y;
  for (auto &v : x)
    v = normal(rng);
  std::printf("quantized GEMV target %s, int4 strips %lldx%lld (%.2f MB per copy)\n",
              opt::quantTargetName(), (long long)out, (long long)in, bytes / 1e6);
  rt::ThreadPool pool2(2);
  for (rt::ThreadPool *pool : {static_cast<rt::ThreadPool *>(nullptr), &pool2}) {
    for (int copies : {1, 2, 3, 4, 8, 256}) {
      std::vector<std::vector<uint8_t>> ws(static_cast<size_t>(copies), w0.packedBytes);
      std::vector<std::vector<uint8_t>> ss(static_cast<size_t>(copies), w0.packedScales);
      for (bool readAgain : {true, false}) {
        double best = 1e9;
        for (int trial = 0; trial < 5; ++trial) {
          const int reps = std::max(copies * 4, 400);
          const double c0 = kiln::test::threadCpuSeconds();
          const auto t0 = std::chrono::steady_clock::now();
          for (int i = 0; i < reps; ++i) {
            opt::LinearArgs a = argsFor(w0, x, 1, nullptr, &y);
            a.w = ws[static_cast<size_t>(i % copies)].data();
            a.scales = ss[static_cast<size_t>(i % copies)].data();
            a.weightReadAgain = readAgain;
            opt::quantLinear(a, pool);
          }
          // 1 thread: this thread's CPU time; 2 threads: wall time.
          const std::chrono::duration<double> wall = std::chrono::steady_clock::now() - t0;
          best = std::min(best, (pool ? wall.count() : kiln::test::threadCpuSeconds() - c0) / reps);
        }
        std::printf("  %d thr %3d copies (%7.2f MB) %s: %7.2f us %6.2f GB/s %6.1f GMAC/s\n",
                    pool ? 2 : 1, copies, copies * bytes / 1e6, readAgain ? "again T0 " : opt::quantStreamsNonTemporal() ? "once NTA " : "once T0  ",
                    best * 1e6, bytes / best / 1e9, out * in / best / 1e9);
      }
    }
  }
}

// MobileLLM-LS block micro-benchmark (--gtest_also_run_disabled_tests
// --gtest_filter='*BenchmarkRepeatedBlock*'): the seven int4 strip GEMVs of a
// 125M block (q/k/v and gate/up grouped, as the runtime runs them) on 2
// threads, each block run twice in a row (the second run's x is the first's
// output, as in LS) over 30 distinct blocks (71 MB: the first runs stream from
// DRAM, or from an L3 as large as the Xeon's); prints the time of the first
// and of the second runs per block, then each GEMV of one block run back to
// back on 1 and 2 threads (the floor of a second run).
TEST_F(OptLinear, DISABLED_BenchmarkRepeatedBlock) {
  std::mt19937 rng(18);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int64_t d = 576, h = 1536, kv = 192;
  const int64_t shapes[7][2] = {{d, d}, {kv, d}, {kv, d}, {d, d}, {h, d}, {h, d}, {d, h}};
  const int blocks = 30;
  std::vector<std::vector<Weight>> ws(blocks);
  for (int b = 0; b < blocks; ++b)
    for (const auto &sh : shapes) {
      ws[b].push_back(makeWeight(rng, opt::WeightKind::Int4, sh[0], sh[1], 32, true));
      ws[b].back().packStrip16();
    }
  std::vector<float> x(static_cast<size_t>(h));
  for (auto &v : x)
    v = normal(rng);
  std::vector<std::vector<float>> ys(7);
  rt::ThreadPool pool(2);
  // Optionally each run reads its own 245 KB "KV cache" between q/k/v and o
  // (125M decode attention at 160 positions: 3 heads x 64 x 160 x f32, K and V).
  const size_t kvFloats = 2 * 3 * 64 * 160;
  std::vector<std::vector<float>> kvs(2 * blocks, std::vector<float>(kvFloats, 1.0f));
  bool readKv = false;
  float kvSink = 0.0f;
  double kvSeconds = 0.0;
  // Runs block b's GEMVs on `p`; with `stamps`, takes the time before, between
  // and after its four calls (q/k/v, o, gate/up, down).
  using Clock = std::chrono::steady_clock;
  auto runBlock = [&](int b, bool readAgain, rt::ThreadPool *p, Clock::time_point *stamps) {
    std::vector<opt::LinearArgs> a;
    for (int i = 0; i < 7; ++i) {
      a.push_back(argsFor(ws[b][static_cast<size_t>(i)], x, 1, nullptr, &ys[static_cast<size_t>(i)]));
      a.back().weightReadAgain = readAgain;
    }
    const opt::LinearArgs *qkv[3] = {&a[0], &a[1], &a[2]}, *gu[2] = {&a[4], &a[5]};
    auto stamp = [&](int k) {
      if (stamps)
        stamps[k] = Clock::now();
    };
    stamp(0);
    opt::linearGroup(qkv, 3, p);
    stamp(1);
    if (readKv) { // timed apart: only the GEMVs count
      const auto k0 = Clock::now();
      const std::vector<float> &kvb = kvs[static_cast<size_t>(2 * b + (readAgain ? 0 : 1))];
      float acc = 0.0f;
      for (size_t i = 0; i < kvFloats; i += 16)
        acc += kvb[i];
      kvSink += acc;
      kvSeconds += std::chrono::duration<double>(Clock::now() - k0).count();
    }
    opt::linear(a[3], p);
    stamp(2);
    opt::linearGroup(gu, 2, p);
    stamp(3);
    opt::linear(a[6], p);
    stamp(4);
  };
  for (bool kv : {false, true}) {
    readKv = kv;
    double best1 = 1e9, best2 = 1e9;
    for (int trial = 0; trial < 8; ++trial) {
      double t1 = 0, t2 = 0;
      for (int b = 0; b < blocks; ++b) {
        kvSeconds = 0.0;
        auto t0 = Clock::now();
        runBlock(b, true, &pool, nullptr);
        const double kv1 = kvSeconds;
        auto tm = Clock::now();
        runBlock(b, false, &pool, nullptr);
        auto te = Clock::now();
        t1 += std::chrono::duration<double>(tm - t0).count() - kv1;
        t2 += std::chrono::duration<double>(te - tm).count() - (kvSeconds - kv1);
      }
      best1 = std::min(best1, t1 / blocks);
      best2 = std::min(best2, t2 / blocks);
    }
    std::printf("int4 strips, 125M block GEMVs, 2 threads, best of 8 sweeps over %d blocks%s:\n"
                "  first run %7.2f us per block, second run %7.2f us (%.1f G multiply-adds/s)\n",
                blocks, kv ? ", a 245 KB KV read after q/k/v" : "", best1 * 1e6, best2 * 1e6,
                3538944 / best2 / 1e9);
  }
  EXPECT_TRUE(std::isfinite(kvSink));
  // The floor of a second run: block 0 run back to back 200 times (its
  // weights as hot as they get: 1.9 MB, ~1 MB per core on 2 threads; each run
  // reads them again, as an LS first run does), no KV read, each GEMV call
  // timed, best of the 200, on 1 and on 2 threads.
  readKv = false;
  for (int threads : {1, 2}) {
    rt::ThreadPool hotPool(threads);
    double best[5] = {1e9, 1e9, 1e9, 1e9, 1e9}; // q/k/v, o, gate/up, down, block
    for (int rep = 0; rep < 200; ++rep) {
      Clock::time_point t[5];
      runBlock(0, true, &hotPool, t);
      for (int k = 0; k < 4; ++k)
        best[k] = std::min(best[k], std::chrono::duration<double>(t[k + 1] - t[k]).count());
      best[4] = std::min(best[4], std::chrono::duration<double>(t[4] - t[0]).count());
    }
    std::printf("int4 strips, one 125M block run back to back, %d thread(s), best of 200 (us):\n"
                "  q/k/v %.2f, o %.2f, gate/up %.2f, down %.2f; block %.2f (%.1f G multiply-adds/s)\n",
                threads, best[0] * 1e6, best[1] * 1e6, best[2] * 1e6, best[3] * 1e6, best[4] * 1e6,
                3538944 / best[4] / 1e9);
  }
}

// Cold-cache GEMV micro-benchmark (run with --gtest_also_run_disabled_tests
// --gtest_filter='*BenchmarkQuantGemv*'): cycles through > 64 MB of distinct
// weight matrices (so they stream from DRAM), 1 and 2 threads; prints weight
// GB/s of the f32-activation kernels (before) and the quantized GEMV (after);
// 1 thread timed by this thread's CPU time, 2 threads by wall time.
TEST_F(OptLinear, DISABLED_BenchmarkQuantGemvColdCache) {
  std::mt19937 rng(16);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::printf("quantized GEMV target %s, f32 path target %s\n", opt::quantTargetName(),
              opt::selectedTargetName());
  const int64_t shapes[3][2] = {{576, 1536}, {1536, 576}, {32000, 576}}; // out, in
  for (opt::WeightKind kind : {opt::WeightKind::Int8, opt::WeightKind::Int4}) {
    for (const auto &sh : shapes)
    for (bool strip : {false, true}) {
      const int64_t out = sh[0], in = sh[1];
      const int64_t group = kind == opt::WeightKind::Int8 ? in : 32;
      Weight w0 = makeWeight(rng, kind, out, in, group, true);
      if (strip)
        w0.packStrip16(); // the f32-x column then reads rows: timing only
      const double bytes = static_cast<double>(w0.bytes.size()) +
                           static_cast<double>(w0.scalesH.size()) * 2.0;
      const int copies = std::max(2, static_cast<int>(std::ceil(96e6 / bytes)));
      const uint8_t *q0 = static_cast<const uint8_t *>(w0.quantBytes());
      const uint8_t *s0 = static_cast<const uint8_t *>(w0.scales());
      std::vector<std::vector<uint8_t>> ws(static_cast<size_t>(copies),
                                           std::vector<uint8_t>(q0, q0 + w0.bytes.size()));
      std::vector<std::vector<uint8_t>> ss(static_cast<size_t>(copies),
                                           std::vector<uint8_t>(s0, s0 + w0.scalesH.size() * 2));
      std::vector<float> x(static_cast<size_t>(in)), y(static_cast<size_t>(out)),
          split(static_cast<size_t>(in));
      for (auto &v : x)
        v = normal(rng);
      opt::splitInt4X(x.data(), 1, in, split.data());
      for (int threads : {1, 2}) {
        rt::ThreadPool pool(threads);
        auto run = [&](bool quant) {
          const int reps = std::max(copies * 2, 60);
          auto t0 = std::chrono::steady_clock::now();
          const double c0 = kiln::test::threadCpuSeconds();
          for (int i = 0; i < reps; ++i) {
            opt::LinearArgs a = argsFor(w0, x, 1, nullptr, &y);
            a.w = ws[i % copies].data();
            a.scales = ss[i % copies].data();
            if (quant) {
              opt::quantLinear(a, &pool);
            } else {
              pool.parallelFor(out, 16, [&](int64_t b, int64_t e) {
                opt::linearRange(a, split.data(), b, e);
              });
            }
          }
          std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
          // 1 thread: CPU time of this thread (robust to other processes
          // taking the core); 2 threads: wall time.
          const double cpu = kiln::test::threadCpuSeconds() - c0;
          return (threads == 1 ? cpu : dt.count()) / reps;
        };
        run(false);
        const double tOld = run(false);
        run(true);
        const double tNew = run(true);
        std::printf("GEMV %-4s%-14s %5lldx%-5lld (%5.2f MB) %d thr: f32-x %8.1f us %6.2f GB/s | "
                    "int-dot %8.1f us %6.2f GB/s\n",
                    kindName(kind).c_str(), layoutName(w0).c_str(), (long long)out, (long long)in,
                    bytes / 1e6, threads,
                    tOld * 1e6, bytes / tOld / 1e9, tNew * 1e6, bytes / tNew / 1e9);
      }
    }
  }
}

} // namespace

// The kernels' inline half conversion (OptLinear.h) against the runtime's
// reference rt::halfToFloat, bit for bit, for all 65536 halves (subnormals,
// infinities and nan payloads included).
TEST(OptHalf, InlineConversionMatchesRuntimeForEveryHalf) {
  int mismatches = 0;
  for (uint32_t h = 0; h <= 0xFFFFu; ++h) {
    const float got = opt::halfBitsToFloat(static_cast<uint16_t>(h));
    const float want = rt::halfToFloat(static_cast<uint16_t>(h));
    uint32_t gb, wb;
    std::memcpy(&gb, &got, 4);
    std::memcpy(&wb, &want, 4);
    if (gb != wb && ++mismatches <= 5)
      ADD_FAILURE() << "half 0x" << std::hex << h << ": inline 0x" << gb << ", runtime 0x" << wb;
  }
  EXPECT_EQ(mismatches, 0);
}
