// The prefill GEMM (runtime-stub/kernels/opt/OptGemm.h) against the portable
// linear kernels (LinearAlgebra.cpp runLinear for f32, QuantizedLinear.cpp
// quantizedLinear for int8 / int4) on random shapes that are multiples of
// nothing (rows 1..200, in 1..300, out 1..100, plus a few large ones), with and
// without bias, f16 / f32 scales, per-row and group-wise int8 scales, y row
// stride ldy > out — once for every SIMD target Highway compiled and this CPU
// supports (dispatch forced with hwy::SetSupportedTargetsForTest), on the
// calling thread and on pools of 1, 2 and 3 threads.
//
// Tolerance: |gemm - portable| <= 1e-5 * (sum_c |x_c * w_c| + |bias|) + 1e-30 per
// output (both sides sum in f32 in different orders and with / without FMA; a
// random-walk rounding error of a 576-term sum is ~1e-6 of that magnitude).
#include "runtime-stub/core/DType.h"
#include "runtime-stub/core/Tensor.h"
#include "runtime-stub/core/ThreadPool.h"
#include "runtime-stub/kernels/Kernel.h"
#include "runtime-stub/kernels/QuantizedKernels.h"
#include "runtime-stub/kernels/opt/OptGemm.h"
#include "runtime-stub/kernels/opt/OptLinear.h"
#include "runtime-stub/kernels/opt/OptQuant.h"

#include "OptTestUtil.h"
#include "hwy/targets.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
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

std::string kindName(opt::WeightKind k) {
  return k == opt::WeightKind::F32 ? "f32" : k == opt::WeightKind::Int8 ? "int8" : "int4";
}

/// One random product with its portable result and per-output tolerance.
struct Case {
  opt::WeightKind kind = opt::WeightKind::F32;
  int64_t rows = 0, in = 0, out = 0, group = 0, ldy = 0;
  bool scalesF16 = false, withBias = false;
  std::vector<float> x, f32, bias, scalesF, dequant, want, tol;
  std::vector<uint8_t> bytes;
  std::vector<uint16_t> scalesH;

  const void *scales() const {
    return scalesF16 ? static_cast<const void *>(scalesH.data()) : scalesF.data();
  }
  std::string name() const {
    std::ostringstream s;
    s << "linear " << kindName(kind) << " x[" << rows << "," << in << "] w[" << out << "," << in
      << "]";
    if (kind != opt::WeightKind::F32)
      s << " group " << group << (scalesF16 ? " f16" : " f32") << " scales";
    s << " bias " << withBias << " ldy " << ldy;
    return s.str();
  }

  /// y = x . w^T + bias from the portable kernels ([rows, out]).
  void computeReference() {
    want.assign(static_cast<size_t>(rows * out), 0.0f);
    const float *b = withBias ? bias.data() : nullptr;
    Tensor wt;
    if (kind == opt::WeightKind::F32) {
      wt = Tensor::borrow(DType::Float32, Shape{out, in}, f32.data());
    } else {
      rt::QuantParams q;
      q.groupSize = group;
      q.scalesDType = scalesF16 ? DType::Float16 : DType::Float32;
      q.scales = scales();
      wt = Tensor::borrowQuantized(kind == opt::WeightKind::Int8 ? DType::Int8 : DType::Int4,
                                   Shape{out, in}, bytes.data(), q);
      rt::quantizedLinear(x.data(), rows, wt, b, want.data());
    }
    if (kind == opt::WeightKind::F32) {
      Tensor xt = Tensor::borrow(DType::Float32, Shape{rows, in}, x.data());
      Tensor bt = withBias ? Tensor::borrow(DType::Float32, Shape{out}, bias.data()) : Tensor();
      std::vector<float> got = kiln::test::toVector(kiln::test::runKernel(
          "linear", rt::OpAttrs(), {&xt, &wt, withBias ? &bt : nullptr}, true));
      ASSERT_EQ(got.size(), want.size()) << "portable linear failed";
      want = got;
    }
    tol.assign(want.size(), 0.0f);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t o = 0; o < out; ++o) {
        double mag = withBias ? std::fabs(bias[o]) : 0.0;
        for (int64_t c = 0; c < in; ++c)
          mag += std::fabs(static_cast<double>(x[r * in + c]) * dequant[o * in + c]);
        tol[r * out + o] = static_cast<float>(kRelTol * mag + 1e-30);
      }
  }

  opt::LinearArgs args(std::vector<float> *y) const {
    y->assign(static_cast<size_t>(rows * ldy), std::nanf(""));
    opt::LinearArgs a;
    a.x = x.data();
    a.rows = rows;
    a.in = in;
    a.out = out;
    a.kind = kind;
    a.w = kind == opt::WeightKind::F32 ? static_cast<const void *>(f32.data())
                                       : static_cast<const void *>(bytes.data());
    a.scales = kind == opt::WeightKind::F32 ? nullptr : scales();
    a.scalesF16 = scalesF16;
    a.group = group;
    a.bias = withBias ? bias.data() : nullptr;
    a.y = y->data();
    a.ldy = ldy;
    return a;
  }

  /// Number of outputs outside the tolerance (first 3 reported), padding
  /// columns [out, ldy) must stay untouched (NaN).
  int check(const std::vector<float> &y, const std::string &what) const {
    int bad = 0;
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t o = 0; o < out; ++o) {
        const double g = y[r * ldy + o], e = want[r * out + o], t = tol[r * out + o];
        if (!(std::fabs(g - e) <= t) && bad++ < 3)
          ADD_FAILURE() << what << " " << name() << ": y[" << r << "][" << o << "] = " << g
                        << ", portable " << e << ", |diff| " << std::fabs(g - e) << " > tol "
                        << t << " (rel " << kRelTol << " of sum|x*w|+|bias|)";
      }
      for (int64_t o = out; o < ldy; ++o)
        if (!std::isnan(y[r * ldy + o]) && bad++ < 3)
          ADD_FAILURE() << what << " " << name() << ": wrote padding y[" << r << "][" << o << "]";
    }
    return bad;
  }
};

Case makeCase(std::mt19937 &rng, opt::WeightKind kind, int64_t rows, int64_t in, int64_t out,
              int64_t group, bool scalesF16, bool withBias, int64_t ldyExtra) {
  Case c;
  c.kind = kind;
  c.rows = rows;
  c.in = in;
  c.out = out;
  c.group = group;
  c.scalesF16 = scalesF16;
  c.withBias = withBias;
  c.ldy = out + ldyExtra;
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> byte(0, 255);
  c.x.resize(static_cast<size_t>(rows * in));
  for (auto &v : c.x)
    v = normal(rng);
  c.bias.resize(static_cast<size_t>(out));
  for (auto &v : c.bias)
    v = normal(rng);
  c.dequant.resize(static_cast<size_t>(out * in));
  if (kind == opt::WeightKind::F32) {
    c.f32.resize(c.dequant.size());
    for (size_t i = 0; i < c.f32.size(); ++i)
      c.dequant[i] = c.f32[i] = normal(rng);
  } else {
    for (int64_t i = 0; i < out * (in / group); ++i) {
      float s = std::exp2(static_cast<float>(byte(rng) % 8) - 9.0f) * (1.0f + byte(rng) / 512.0f);
      c.scalesH.push_back(rt::floatToHalf(s));
      c.scalesF.push_back(scalesF16 ? rt::halfToFloat(c.scalesH.back()) : s);
    }
    // Every byte value: int8 covers -128..127, int4 nibbles -8..7.
    c.bytes.resize(static_cast<size_t>(kind == opt::WeightKind::Int8 ? out * in : out * in / 2));
    for (auto &b : c.bytes)
      b = static_cast<uint8_t>(byte(rng));
    for (int64_t o = 0; o < out; ++o)
      for (int64_t k = 0; k < in; ++k) {
        int q;
        if (kind == opt::WeightKind::Int8) {
          q = static_cast<int8_t>(c.bytes[o * in + k]);
        } else {
          const uint8_t b = c.bytes[o * (in / 2) + k / 2];
          q = (((k & 1) ? (b >> 4) : (b & 0x0F)) ^ 8) - 8;
        }
        c.dequant[o * in + k] = static_cast<float>(q) * c.scalesF[o * (in / group) + k / group];
      }
  }
  c.computeReference();
  return c;
}

/// Random cases of every kind: rows 1..200, in 1..300, out 1..100 (quantized:
/// in a multiple of the group 2 / 32 / 64, int8 also per-row with any in),
/// then a few large prefill-like shapes.
std::vector<Case> makeCases() {
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> rowsD(1, 200), inD(1, 300), outD(1, 100), extraD(0, 3);
  std::vector<Case> cases;
  for (int iter = 0; iter < 12; ++iter) {
    for (opt::WeightKind kind :
         {opt::WeightKind::F32, opt::WeightKind::Int8, opt::WeightKind::Int4}) {
      int64_t in = inD(rng), group = 0;
      if (kind != opt::WeightKind::F32) {
        const int64_t groups[3] = {2, 32, 64};
        group = groups[iter % 3];
        if (kind == opt::WeightKind::Int8 && iter % 4 == 3)
          group = in; // per-row scales, any in
        else
          in = std::max<int64_t>(group, in / group * group);
      }
      cases.push_back(makeCase(rng, kind, rowsD(rng), in, outD(rng), group, iter % 2 == 0,
                               iter % 3 != 1, iter % 2 ? extraD(rng) : 0));
    }
  }
  // Prefill-like: rows = one chunk (64) and a ragged 2-chunk count, in the
  // model's widths (576 / 1536), out not a multiple of the channel group.
  cases.push_back(makeCase(rng, opt::WeightKind::F32, 64, 576, 301, 0, false, true, 0));
  cases.push_back(makeCase(rng, opt::WeightKind::Int8, 130, 576, 97, 576, true, false, 5));
  cases.push_back(makeCase(rng, opt::WeightKind::Int4, 67, 1536, 61, 32, true, true, 0));
  cases.push_back(makeCase(rng, opt::WeightKind::Int8, 33, 1536, 50, 64, false, true, 0));
  // Several row chunks with the pool (x chunks of 64 rows for in = 1536, the
  // last one 8 rows); int4 whose split halves (48 packed columns each) are 3
  // whole 16-column blocks, and one whose halves (40) end in a partial block;
  // 16-row blocks of x plus a ragged rest (AVX-512 transposed packing and
  // output).
  cases.push_back(makeCase(rng, opt::WeightKind::F32, 200, 1536, 45, 0, false, true, 2));
  cases.push_back(makeCase(rng, opt::WeightKind::Int4, 48, 96, 40, 32, false, true, 0));
  cases.push_back(makeCase(rng, opt::WeightKind::Int4, 35, 80, 70, 16, true, false, 1));
  cases.push_back(makeCase(rng, opt::WeightKind::Int8, 128, 600, 130, 600, false, true, 0));
  // An f32 weight over 16 MB (copied to scratch per channel group, like the LM head).
  cases.push_back(makeCase(rng, opt::WeightKind::F32, 17, 576, 7301, 0, false, true, 1));
  return cases;
}

const std::vector<Case> &cases() {
  static const std::vector<Case> all = makeCases();
  return all;
}

class OptGemm : public ForcedTargetTest {};

TEST_F(OptGemm, EveryTargetAndPoolMatchesPortable) {
  std::unique_ptr<rt::ThreadPool> pools[3] = {std::make_unique<rt::ThreadPool>(1),
                                              std::make_unique<rt::ThreadPool>(2),
                                              std::make_unique<rt::ThreadPool>(3)};
  std::ostringstream names;
  for (int64_t t : compiledTargets()) {
    hwy::SetSupportedTargetsForTest(t);
    int64_t tileRows = 0, tileChannels = 0;
    opt::gemmTile(&tileRows, &tileChannels);
    names << hwy::TargetName(t) << " (tile " << tileRows << "x" << tileChannels << ") ";
    int bad = 0;
    for (size_t i = 0; i < cases().size() && bad == 0; ++i) {
      const Case &c = cases()[i];
      for (int p = 0; p <= 3 && bad == 0; ++p) {
        rt::ThreadPool *pool = p == 0 ? nullptr : pools[p - 1].get();
        std::vector<float> y;
        opt::gemm(c.args(&y), pool);
        bad += c.check(y, std::string("target ") + hwy::TargetName(t) + ", " +
                              std::to_string(p) + " pool threads:");
      }
    }
    EXPECT_EQ(bad, 0) << "target " << hwy::TargetName(t);
  }
  std::printf("[ targets  ] compared %zu shapes on: %s\n", cases().size(), names.str().c_str());
}

TEST_F(OptGemm, LinearRoutesManyRowsToGemm) {
  // opt::linear (and so the `linear` kernel) hands rows >= kGemmMinRows* to
  // gemm (same bits). Fewer rows stay on the GEMV kernels (OptLinear / OptQuant,
  // tested in their own files: the int8-activation GEMV has a wider tolerance).
  rt::ThreadPool pool(2);
  int checked = 0;
  for (const Case &c : cases()) {
    std::vector<float> viaLinear, direct;
    opt::linear(c.args(&viaLinear), &pool);
    opt::gemm(c.args(&direct), &pool);
    const int64_t minRows =
        c.kind == opt::WeightKind::F32 ? opt::kGemmMinRowsF32 : opt::kGemmMinRowsQuant;
    std::vector<float> scratch;
    EXPECT_EQ(opt::gemmPreferred(c.args(&scratch)), c.rows >= minRows) << c.name();
    if (c.rows >= minRows) {
      EXPECT_EQ(0, std::memcmp(viaLinear.data(), direct.data(), direct.size() * sizeof(float)))
          << c.name() << ": opt::linear did not use the GEMM";
      EXPECT_EQ(c.check(viaLinear, "opt::linear"), 0);
      ++checked;
    }
  }
  EXPECT_GT(checked, 10);
}

TEST_F(OptGemm, EmptyShapesWriteNothingOrBias) {
  std::vector<float> x(4, 1.0f), w(4, 1.0f), bias = {3.0f, 4.0f}, y(8, -1.0f);
  opt::LinearArgs a;
  a.x = x.data();
  a.w = w.data();
  a.rows = 0;
  a.in = 2;
  a.out = 2;
  a.y = y.data();
  a.ldy = 2;
  opt::gemm(a, nullptr); // no rows: nothing written
  for (float v : y)
    EXPECT_EQ(v, -1.0f);
  a.rows = 2;
  a.in = 0;
  a.bias = bias.data();
  opt::linear(a, nullptr); // in = 0: y = bias (GEMV path, gemmPreferred is false)
  EXPECT_FALSE(opt::gemmPreferred(a));
  EXPECT_EQ(y[0], 3.0f);
  EXPECT_EQ(y[3], 4.0f);
}

// Micro-benchmark (run with --gtest_also_run_disabled_tests): GFLOP/s of the
// prefill shapes of MobileLLM-125M (plus the LM head), best target:
//  - GEMM on 1 thread, timed by the thread's CPU clock (robust when other jobs
//    share the machine), with hot weights (one copy, L3-resident) and cold ones
//    (copies cycled through 96 MB: a real prefill chunk reads each linear's
//    weights from DRAM), against the row-tiled GEMV kernel (opt::linearRange);
//  - GEMM on a 2-thread pool, wall clock, cold weights (best of the repetitions:
//    only meaningful when both cores are free).
// The machine's f32 peak for comparison: Zen 4 runs one 512-bit FMA per cycle
// (~117 GFLOP/s per core at 3.7 GHz, measured with 12 independent FMA chains).
TEST_F(OptGemm, DISABLED_BenchmarkPrefillShapes) {
  std::mt19937 rng(6);
  struct Shape3 {
    int64_t rows, in, out;
  };
  const Shape3 shapes[] = {{64, 576, 576},   {64, 576, 192},    {64, 576, 1536},
                           {64, 1536, 576},  {64, 576, 32000},  {128, 576, 1536}};
  rt::ThreadPool pool2(2);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  std::uniform_int_distribution<int> byte(0, 255);
  auto wallSeconds = [] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  };
  constexpr double kColdBytes = 96e6;
  for (const Shape3 &s : shapes) {
    const int64_t wf = s.out * s.in;
    const int64_t copies = std::max<int64_t>(1, static_cast<int64_t>(kColdBytes / (4.0 * wf)));
    std::vector<float> x(static_cast<size_t>(s.rows * s.in)), w(static_cast<size_t>(copies * wf));
    for (auto &v : x)
      v = uni(rng);
    for (auto &v : w)
      v = uni(rng);
    // int8 and int4 copies both fill ~kColdBytes; int4 has the most scales.
    const int64_t copies8 = std::max<int64_t>(1, static_cast<int64_t>(kColdBytes / wf));
    const int64_t copies4 = std::max<int64_t>(1, static_cast<int64_t>(kColdBytes / (0.5 * wf)));
    std::vector<uint8_t> q(static_cast<size_t>(std::max(copies8 * wf, copies4 * wf / 2)));
    for (auto &b : q)
      b = static_cast<uint8_t>(byte(rng));
    std::vector<uint16_t> scales(static_cast<size_t>(copies4 * wf / 32), rt::floatToHalf(0.01f));
    std::vector<float> y(static_cast<size_t>(s.rows * s.out));
    for (opt::WeightKind kind :
         {opt::WeightKind::F32, opt::WeightKind::Int8, opt::WeightKind::Int4}) {
      const int64_t kindCopies = kind == opt::WeightKind::F32    ? copies
                                 : kind == opt::WeightKind::Int8 ? copies8
                                                                 : copies4;
      opt::LinearArgs a;
      a.x = x.data();
      a.rows = s.rows;
      a.in = s.in;
      a.out = s.out;
      a.kind = kind;
      a.scalesF16 = true;
      a.group = kind == opt::WeightKind::Int8 ? s.in : 32;
      a.y = y.data();
      a.ldy = s.out;
      // Points a at weight copy c (scales of copy c for the quantized kinds).
      auto useCopy = [&](int64_t c) {
        if (kind == opt::WeightKind::F32) {
          a.w = w.data() + c * wf;
        } else {
          const int64_t bytes = kind == opt::WeightKind::Int8 ? wf : wf / 2;
          a.w = q.data() + c * bytes;
          a.scales = scales.data() + c * (wf / a.group);
        }
      };
      const double flops = 2.0 * s.rows * s.in * s.out;
      const int n = std::max(1, static_cast<int>(2e8 / flops));
      // Best seconds per call over 7 repetitions of n calls; calls cycle through
      // `nCopies` weight copies.
      auto time = [&](auto &&fn, int64_t nCopies, bool wall) {
        int64_t c = 0;
        useCopy(0);
        fn();
        double best = 1e9;
        for (int rep = 0; rep < 7; ++rep) {
          const double t0 = wall ? wallSeconds() : kiln::test::threadCpuSeconds();
          for (int i = 0; i < n; ++i) {
            useCopy(c);
            c = (c + 1) % nCopies;
            fn();
          }
          best = std::min(best, ((wall ? wallSeconds() : kiln::test::threadCpuSeconds()) - t0) / n);
        }
        return flops / best / 1e9;
      };
      std::vector<float> xs(static_cast<size_t>(s.rows * s.in));
      opt::splitInt4X(x.data(), s.rows, s.in, xs.data());
      const double hot1 = time([&] { opt::gemm(a, nullptr); }, 1, false);
      const double cold1 = time([&] { opt::gemm(a, nullptr); }, kindCopies, false);
      const double cold2 = time([&] { opt::gemm(a, &pool2); }, kindCopies, true);
      const double tiles = time([&] { opt::linearRange(a, xs.data(), 0, s.out); }, 1, false);
      std::printf("%-4s %4lldx%4lldx%5lld: gemm 1 thr %6.1f GFLOP/s hot, %6.1f cold | 2 thr "
                  "%6.1f cold | gemv-tiles 1 thr %6.1f hot\n",
                  kindName(kind).c_str(), (long long)s.rows, (long long)s.in, (long long)s.out,
                  hot1, cold1, cold2, tiles);
    }
  }
  const rt::ThreadPool::Stats st = pool2.stats();
  std::printf("2-thread pool: %llu parallel calls, %llu inline\n",
              (unsigned long long)st.parallelCalls, (unsigned long long)st.inlineCalls);
}

// Crossover (run with --gtest_also_run_disabled_tests): for few rows, GEMM vs
// the kernels opt::linear used before it (quantLinear for int8 / int4 up to
// kQuantGemvMaxRows rows, else the row-tiled f32 kernel), 1 thread, 576x1536.
TEST_F(OptGemm, DISABLED_BenchmarkCrossover) {
  std::mt19937 rng(7);
  const int64_t in = 576, out = 1536;
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> byte(0, 255);
  std::vector<float> x(static_cast<size_t>(64 * in)), w(static_cast<size_t>(out * in));
  for (auto &v : x)
    v = normal(rng);
  for (auto &v : w)
    v = normal(rng);
  std::vector<uint8_t> q(static_cast<size_t>(out * in));
  for (auto &b : q)
    b = static_cast<uint8_t>(byte(rng));
  std::vector<uint16_t> scales(static_cast<size_t>(out * in / 32), rt::floatToHalf(0.01f));
  std::vector<float> y(static_cast<size_t>(64 * out)), xs(x.size());
  for (int64_t rows : {1, 2, 4, 8, 12, 16, 24, 32, 48}) {
    for (opt::WeightKind kind :
         {opt::WeightKind::F32, opt::WeightKind::Int8, opt::WeightKind::Int4}) {
      opt::LinearArgs a;
      a.x = x.data();
      a.rows = rows;
      a.in = in;
      a.out = out;
      a.kind = kind;
      a.w = kind == opt::WeightKind::F32 ? static_cast<const void *>(w.data()) : q.data();
      a.scales = scales.data();
      a.scalesF16 = true;
      a.group = 32;
      a.y = y.data();
      a.ldy = out;
      opt::splitInt4X(x.data(), rows, in, xs.data());
      auto time = [&](auto &&fn) {
        fn();
        double best = 1e9;
        for (int rep = 0; rep < 7; ++rep) {
          auto t0 = std::chrono::steady_clock::now();
          for (int i = 0; i < 10; ++i)
            fn();
          std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
          best = std::min(best, dt.count() / 10);
        }
        return best * 1e6;
      };
      const double tg = time([&] { opt::gemm(a, nullptr); });
      const bool quant = opt::quantGemvApplies(a);
      const double to = time([&] {
        if (!quant || !opt::quantLinear(a, nullptr))
          opt::linearRange(a, xs.data(), 0, out);
      });
      std::printf("rows %2lld %-4s: gemm %8.1f us | %s %8.1f us\n", (long long)rows,
                  kindName(kind).c_str(), tg, quant ? "quant-gemv" : "f32-tiles ", to);
    }
  }
}

} // namespace
