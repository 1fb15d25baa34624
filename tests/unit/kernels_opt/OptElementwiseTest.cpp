// The optimized elementwise kernels (runtime-stub/kernels/opt/OptElementwise)
// against the portable ones (the registered kernels with portableOnly), on
// random sizes that are not multiples of any vector width (1..67, 575, 577 ...),
// once for every SIMD target Highway compiled and this CPU supports (dispatch
// forced with hwy::SetSupportedTargetsForTest, see OptLinearTest.cpp).
//
// Tolerances:
//  - binary add/sub/mul/div and quantized-row dequantization: exact (bit for
//    bit): both sides do the same single IEEE operation per element.
//  - rms_norm: |opt - portable| <= 1e-6 * |portable|. Both sum the squares in
//    f64 (different order: ~1e-16 relative), so the f32 scale is the same or
//    1 ulp apart, and the output is the same two f32 products: <= ~2 ulp
//    (2.4e-7 relative).
//  - swiglu: |opt - portable| <= 1e-6 * |portable| + 1e-37. The SIMD exp is
//    within 1 ulp of std::exp (Highway contrib/math), which changes
//    g / (1 + e^-g) by at most that relative amount; plus the division and the
//    product: a few ulp (<= ~5e-7 relative). The 1e-37 floor covers results
//    that underflow (g < -87).
#include "OptTestUtil.h"

#include "runtime-stub/core/DType.h"
#include "runtime-stub/kernels/QuantizedKernels.h"
#include "runtime-stub/kernels/opt/OptElementwise.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <sstream>

using namespace kiln;
using namespace kiln::test;
using kiln::rt::DType;
using kiln::rt::Shape;
using kiln::rt::Tensor;
namespace opt = kiln::rt::opt;

namespace {

const char *opName(opt::BinaryOp op) {
  switch (op) {
  case opt::BinaryOp::Add: return "add";
  case opt::BinaryOp::Sub: return "sub";
  case opt::BinaryOp::Mul: return "mul";
  case opt::BinaryOp::Div: return "div";
  }
  return "?";
}

std::string shapeStr(const std::vector<int64_t> &s) {
  std::ostringstream o;
  o << "[";
  for (size_t i = 0; i < s.size(); ++i)
    o << (i ? "," : "") << s[i];
  o << "]";
  return o.str();
}

Shape makeShape(const std::vector<int64_t> &s) {
  return rt::Result<Shape>(Shape::make(s.data(), s.size())).take();
}

int64_t numelOf(const std::vector<int64_t> &s) {
  int64_t n = 1;
  for (int64_t d : s)
    n *= d;
  return n;
}

/// Bitwise comparison; returns the number of mismatches (reports up to 3).
int compareExact(const std::vector<float> &got, const std::vector<float> &want,
                 const std::string &what) {
  if (got.size() != want.size()) {
    ADD_FAILURE() << what << ": " << got.size() << " elements, portable " << want.size();
    return 1;
  }
  int bad = 0;
  for (size_t i = 0; i < got.size(); ++i)
    if (std::memcmp(&got[i], &want[i], 4) != 0 && bad++ < 3)
      ADD_FAILURE() << what << ": [" << i << "] = " << got[i] << ", portable " << want[i]
                    << " (tolerance: exact)";
  return bad;
}

/// |got - want| <= rel * |want| + abs per element; returns the mismatches.
int compareRel(const std::vector<float> &got, const std::vector<float> &want, double rel,
               double abs, const std::string &what) {
  if (got.size() != want.size()) {
    ADD_FAILURE() << what << ": " << got.size() << " elements, portable " << want.size();
    return 1;
  }
  int bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double g = got[i], e = want[i], tol = rel * std::fabs(e) + abs;
    const bool same = (std::isnan(g) && std::isnan(e)) || g == e || std::fabs(g - e) <= tol;
    if (!same && bad++ < 3)
      ADD_FAILURE() << what << ": [" << i << "] = " << g << ", portable " << e << ", |diff| "
                    << std::fabs(g - e) << " > tol " << tol << " (rel " << rel << ", abs " << abs
                    << ")";
  }
  return bad;
}

// ---- binary ---------------------------------------------------------------------

struct BinaryCase {
  std::vector<int64_t> a, b, out;
};

/// The broadcast forms the optimized path takes (LLM residual adds and RoPE):
/// same shape, scalar either side, [.., T, D] against [T, D] or [1, D].
std::vector<BinaryCase> binaryCases(std::mt19937 &rng) {
  std::uniform_int_distribution<int> small(1, 67), heads(1, 9), rows(1, 5);
  std::vector<BinaryCase> cases;
  for (int64_t n : {1, 2, 3, 15, 16, 17, 31, 33, 575, 576, 577})
    cases.push_back({{n}, {n}, {n}});
  for (int i = 0; i < 8; ++i) {
    const int64_t n = small(rng), h = heads(rng), t = rows(rng), d = small(rng);
    cases.push_back({{1, t, n}, {1, t, n}, {1, t, n}});
    cases.push_back({{h, n}, {1}, {h, n}});
    cases.push_back({{1}, {h, n}, {h, n}});
    cases.push_back({{}, {n}, {n}});
    cases.push_back({{1, h, t, d}, {t, d}, {1, h, t, d}});
    cases.push_back({{t, d}, {1, h, t, d}, {1, h, t, d}});
    cases.push_back({{1, h, 1, d}, {1, d}, {1, h, 1, d}});
    cases.push_back({{h, t, d}, {1, 1, d}, {h, t, d}});
  }
  cases.push_back({{1, 9, 64, 64}, {64, 64}, {1, 9, 64, 64}}); // RoPE, prefill chunk
  cases.push_back({{1, 3, 1, 64}, {1, 64}, {1, 3, 1, 64}});    // RoPE, decode
  return cases;
}

/// Optimized (direct call) and kernel hook vs portable kernel, exact. Returns
/// the number of cases compared.
int runBinaryCases(std::mt19937 &rng, const std::string &what) {
  int cases = 0;
  for (const BinaryCase &c : binaryCases(rng)) {
    const int64_t na = numelOf(c.a), nb = numelOf(c.b), n = numelOf(c.out);
    std::vector<float> a = normalFloats(rng, na), b = normalFloats(rng, nb);
    for (auto &v : b) // no zero divisors; exact either way, but keeps values finite
      if (v == 0.0f)
        v = 1.0f;
    Tensor ta = Tensor::borrow(DType::Float32, makeShape(c.a), a.data());
    Tensor tb = Tensor::borrow(DType::Float32, makeShape(c.b), b.data());
    for (opt::BinaryOp op :
         {opt::BinaryOp::Add, opt::BinaryOp::Sub, opt::BinaryOp::Mul, opt::BinaryOp::Div}) {
      rt::OpAttrs attrs;
      attrs.fn = static_cast<int>(op); // BinaryFn mirrors opt::BinaryOp (static_assert)
      std::vector<float> want = toVector(runKernel("binary", attrs, {&ta, &tb}, true));
      std::vector<float> direct(static_cast<size_t>(n), std::nanf(""));
      opt::binary(op, a.data(), na, b.data(), nb, direct.data(), n);
      std::vector<float> hooked = toVector(runKernel("binary", attrs, {&ta, &tb}, false));
      const std::string name = what + " binary " + opName(op) + " a" + shapeStr(c.a) + " b" +
                               shapeStr(c.b);
      if (compareExact(direct, want, name + " (opt::binary)") +
              compareExact(hooked, want, name + " (kernel)") >
          0)
        return cases;
      ++cases;
    }
  }
  return cases;
}

// ---- rms_norm, swiglu -----------------------------------------------------------

int runRmsNormCases(std::mt19937 &rng, const std::string &what) {
  std::uniform_int_distribution<int> small(1, 67), rowsD(1, 5);
  std::vector<int64_t> sizes = {1, 2, 7, 8, 9, 575, 576, 577};
  for (int i = 0; i < 10; ++i)
    sizes.push_back(small(rng));
  int cases = 0;
  for (int64_t n : sizes) {
    const int64_t rows = rowsD(rng);
    std::vector<float> x = normalFloats(rng, rows * n, 3.0f), w = normalFloats(rng, n);
    Tensor tx = Tensor::borrow(DType::Float32, Shape{1, rows, n}, x.data());
    Tensor tw = Tensor::borrow(DType::Float32, Shape{n}, w.data());
    for (bool withWeight : {true, false}) {
      rt::OpAttrs attrs;
      attrs.eps = 1e-5;
      std::vector<const Tensor *> ins = {&tx, withWeight ? &tw : nullptr};
      std::vector<float> want = toVector(runKernel("rms_norm", attrs, ins, true));
      std::vector<float> got = toVector(runKernel("rms_norm", attrs, ins, false));
      std::vector<float> direct(static_cast<size_t>(rows * n));
      opt::rmsNorm(x.data(), withWeight ? w.data() : nullptr, rows, n, attrs.eps, direct.data());
      std::ostringstream name;
      name << what << " rms_norm x[1," << rows << "," << n << "] weight " << withWeight;
      if (compareRel(got, want, 1e-6, 0.0, name.str()) > 0 ||
          compareExact(got, direct, name.str() + " kernel vs opt::rmsNorm") > 0)
        return cases;
      ++cases;
    }
  }
  return cases;
}

int runSwigluCases(std::mt19937 &rng, rt::ThreadPool *pool, const std::string &what) {
  std::uniform_int_distribution<int> small(1, 67);
  std::vector<int64_t> sizes = {1, 3, 16, 17, 575, 577, 1536};
  for (int i = 0; i < 10; ++i)
    sizes.push_back(small(rng));
  if (pool)
    sizes.push_back(64 * 1536 + 5); // split over the pool
  int cases = 0;
  for (int64_t n : sizes) {
    std::vector<float> g = normalFloats(rng, n, 4.0f), u = normalFloats(rng, n);
    // The exp clamp and overflow/underflow region, infinities.
    const float extremes[] = {-200.0f, -104.5f, -100.0f, -89.0f, -88.0f, -87.0f, -20.0f, 0.0f,
                              -0.0f,   20.0f,   90.0f,   200.0f, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof(extremes) / sizeof(extremes[0]) && i < g.size(); ++i)
      g[(i * 7919) % g.size()] = extremes[i];
    Tensor tg = Tensor::borrow(DType::Float32, Shape{1, n}, g.data());
    Tensor tu = Tensor::borrow(DType::Float32, Shape{1, n}, u.data());
    rt::OpAttrs attrs;
    std::vector<float> want = toVector(runKernel("swiglu", attrs, {&tg, &tu}, true));
    std::vector<float> got = toVector(runKernel("swiglu", attrs, {&tg, &tu}, false, pool));
    std::ostringstream name;
    name << what << " swiglu [1," << n << "]";
    if (compareRel(got, want, 1e-6, 1e-37, name.str()) > 0)
      return cases;
    ++cases;
  }
  return cases;
}

// ---- quantized rows -------------------------------------------------------------

int runDequantizeCases(std::mt19937 &rng, const std::string &what) {
  std::uniform_int_distribution<int> byte(0, 255), mul(1, 5), small(1, 67);
  int cases = 0;
  for (int iter = 0; iter < 16; ++iter) {
    for (bool int4 : {false, true}) {
      const int64_t groups[4] = {2, 32, 64, 6};
      int64_t group = groups[iter % 4], in = group * mul(rng);
      if (!int4 && iter % 5 == 4) {
        in = small(rng); // per-row scales, any in
        group = in;
      }
      const int64_t rows = 3;
      const bool f16 = iter % 2 == 0;
      std::vector<uint8_t> bytes(static_cast<size_t>(int4 ? rows * in / 2 : rows * in));
      for (auto &b : bytes)
        b = static_cast<uint8_t>(byte(rng));
      std::vector<float> scalesF;
      std::vector<uint16_t> scalesH;
      for (int64_t i = 0; i < rows * (in / group); ++i) {
        const float s = std::ldexp(1.0f + byte(rng) / 256.0f, -(byte(rng) % 10));
        scalesF.push_back(s);
        scalesH.push_back(rt::floatToHalf(s));
      }
      rt::QuantParams q;
      q.groupSize = group;
      q.scalesDType = f16 ? DType::Float16 : DType::Float32;
      q.scales = f16 ? static_cast<const void *>(scalesH.data()) : scalesF.data();
      Tensor w = Tensor::borrowQuantized(int4 ? DType::Int4 : DType::Int8, Shape{rows, in},
                                         bytes.data(), q);
      for (int64_t row = 0; row < rows; ++row) {
        std::vector<float> want(static_cast<size_t>(in)), got(static_cast<size_t>(in));
        rt::dequantizeSpan(w, row, 0, in, want.data());
        opt::dequantizeRow(int4, bytes.data(), q.scales, f16, group, in, row, got.data());
        std::ostringstream name;
        name << what << " dequantize " << (int4 ? "int4" : "int8") << " [" << rows << "," << in
             << "] group " << group << (f16 ? " f16" : " f32") << " scales, row " << row;
        if (compareExact(got, want, name.str()) > 0)
          return cases;
      }
      // The embedding kernel: gathered rows, portable vs optimized.
      std::vector<int64_t> idx = {2, 0, 2, 1};
      Tensor ti = Tensor::borrow(DType::Int64, Shape{1, 4}, idx.data());
      rt::OpAttrs attrs;
      std::vector<float> want = toVector(runKernel("embedding", attrs, {&w, &ti}, true));
      std::vector<float> got = toVector(runKernel("embedding", attrs, {&w, &ti}, false));
      if (compareExact(got, want, what + " embedding kernel") > 0)
        return cases;
      ++cases;
    }
  }
  return cases;
}

class OptElementwise : public ForcedTargetTest {};

TEST_F(OptElementwise, EveryTargetMatchesPortable) {
  std::ostringstream names;
  for (int64_t t : compiledTargets()) {
    hwy::SetSupportedTargetsForTest(t);
    const std::string target = hwy::TargetName(t);
    ASSERT_EQ(target, opt::elementwiseTargetName()) << "dispatch was not forced to " << target;
    std::mt19937 rng(static_cast<unsigned>(t & 0xFFFF) + 11);
    EXPECT_EQ(runBinaryCases(rng, "target " + target), (11 + 8 * 8 + 2) * 4) << target;
    EXPECT_EQ(runRmsNormCases(rng, "target " + target), 18 * 2) << target;
    EXPECT_EQ(runSwigluCases(rng, nullptr, "target " + target), 17) << target;
    EXPECT_EQ(runDequantizeCases(rng, "target " + target), 32) << target;
    names << target << " ";
  }
  std::printf("[ targets  ] compared on: %s\n", names.str().c_str());
}

TEST_F(OptElementwise, SwigluThreadPoolSplitMatchesPortable) {
  rt::ThreadPool pool(3);
  std::mt19937 rng(21);
  EXPECT_EQ(runSwigluCases(rng, &pool, "3 threads"), 18);
}

TEST_F(OptElementwise, BroadcastsOutsideTheFastFormsStayCorrect) {
  // [H, 1] op [1, D] is not a repeat of either operand: the kernel must take
  // the general portable loop (and agree with the portable kernel exactly).
  std::mt19937 rng(22);
  std::vector<float> a = normalFloats(rng, 5), b = normalFloats(rng, 7);
  Tensor ta = Tensor::borrow(DType::Float32, Shape{5, 1}, a.data());
  Tensor tb = Tensor::borrow(DType::Float32, Shape{1, 7}, b.data());
  rt::OpAttrs attrs;
  attrs.fn = static_cast<int>(opt::BinaryOp::Mul);
  std::vector<float> want = toVector(runKernel("binary", attrs, {&ta, &tb}, true));
  std::vector<float> got = toVector(runKernel("binary", attrs, {&ta, &tb}, false));
  ASSERT_EQ(got.size(), 35u);
  for (int64_t i = 0; i < 5; ++i)
    for (int64_t j = 0; j < 7; ++j)
      EXPECT_EQ(got[i * 7 + j], a[i] * b[j]) << "mul [5,1] x [1,7] at " << i << "," << j;
  EXPECT_EQ(compareExact(got, want, "mul [5,1] x [1,7]"), 0);
}

// f32 -> f16 (an f16 KV cache written from f32 k / v): opt::floatsToHalf on
// every target against the portable rt::floatToHalf, bit for bit, on values
// around every rounding case (ties to even, the largest finite half 65504 and
// the first values that overflow, subnormals and the smallest ones that round
// to zero, signed zeros, infinities) and random ones, lengths 1..70 (vector
// tails); NaN stays NaN (its payload may differ).
std::vector<float> halfEdgeValues(std::mt19937 &rng) {
  std::vector<float> v = {0.0f, -0.0f, 1.0f, -1.0f, 65504.0f, -65504.0f, 65519.0f, 65520.0f,
                          70000.0f, 1e30f, INFINITY, -INFINITY, 6.1035156e-5f /* min normal */,
                          6.0975552e-5f /* largest subnormal */, 5.9604645e-8f /* min subnormal */,
                          2.9802322e-8f /* half of it: ties to 0 */, 2.98023259e-8f, 1e-10f,
                          1.00048828125f /* tie, even below */, 1.00146484375f /* tie, even above */,
                          0.33333334f, -2.7182817f};
  for (float x : normalFloats(rng, 200, 1.0f))
    v.push_back(x);
  for (float x : normalFloats(rng, 200, 1e-5f)) // subnormal halves
    v.push_back(x);
  for (float x : normalFloats(rng, 100, 3e4f)) // near overflow
    v.push_back(x);
  return v;
}

TEST_F(OptElementwise, FloatsToHalfMatchesPortable) {
  for (int64_t t : compiledTargets()) {
    hwy::SetSupportedTargetsForTest(t);
    const std::string target = hwy::TargetName(t);
    std::mt19937 rng(static_cast<unsigned>(t & 0xFFFF) + 61);
    const std::vector<float> values = halfEdgeValues(rng);
    for (size_t n : {size_t(1), size_t(7), size_t(16), size_t(17), size_t(70), values.size()}) {
      for (size_t off = 0; off + n <= values.size(); off += std::max<size_t>(n, 37)) {
        std::vector<uint16_t> got(n, 0xDEAD);
        opt::floatsToHalf(values.data() + off, got.data(), static_cast<int64_t>(n));
        for (size_t i = 0; i < n; ++i)
          ASSERT_EQ(got[i], rt::floatToHalf(values[off + i]))
              << "floatsToHalf on " << target << ", n=" << n << ": value " << values[off + i]
              << " (index " << off + i << ")";
      }
    }
    uint16_t nan = 0;
    const float qnan = std::nanf("");
    opt::floatsToHalf(&qnan, &nan, 1);
    EXPECT_TRUE(std::isnan(rt::halfToFloat(nan))) << target;
  }
}

// cache_write of f32 values into an f16 state (the registered kernel, portable
// and optimized): the written rows hold floatToHalf of each value, the other
// rows are untouched; integer values into a float state are refused.
TEST_F(OptElementwise, CacheWriteRoundsIntoAHalfState) {
  std::mt19937 rng(62);
  const int64_t H = 3, S = 10, D = 37; // state [1, H, S, D], 2 rows at positions 4, 7
  std::vector<float> vals = normalFloats(rng, H * 2 * D);
  vals[0] = 70000.0f;    // overflows to inf
  vals[1] = 2.9802322e-8f; // ties to zero
  std::vector<int64_t> pos = {4, 7};
  for (bool portableOnly : {true, false}) {
    std::vector<uint16_t> state(static_cast<size_t>(H * S * D), 0x3C00); // 1.0
    Tensor st = Tensor::bindToArena(DType::Float16, Shape{1, H, S, D}, state.data());
    Tensor tv = Tensor::borrow(DType::Float32, Shape{1, H, 2, D}, vals.data());
    Tensor tp = Tensor::borrow(DType::Int64, Shape{2}, pos.data());
    rt::OpAttrs attrs;
    attrs.hasDim = true;
    attrs.dim = 2;
    rt::Error e = runKernelInto("cache_write", attrs, {&st, &tp, &tv}, {&st}, portableOnly);
    ASSERT_FALSE(e.failed()) << e.message();
    for (int64_t h = 0; h < H; ++h)
      for (int64_t j = 0; j < S; ++j)
        for (int64_t x = 0; x < D; ++x) {
          const int64_t row = j == 4 ? 0 : j == 7 ? 1 : -1;
          const uint16_t want =
              row < 0 ? 0x3C00 : rt::floatToHalf(vals[static_cast<size_t>((h * 2 + row) * D + x)]);
          ASSERT_EQ(state[static_cast<size_t>((h * S + j) * D + x)], want)
              << "cache_write f32 -> f16 state [1," << H << "," << S << "," << D << "] "
              << (portableOnly ? "portable" : "optimized") << " at head " << h << " position "
              << j << " column " << x;
        }
    std::vector<int32_t> ints(static_cast<size_t>(H * 2 * D), 1);
    Tensor ti = Tensor::borrow(DType::Int32, Shape{1, H, 2, D}, ints.data());
    e = runKernelInto("cache_write", attrs, {&st, &tp, &ti}, {&st}, portableOnly);
    ASSERT_TRUE(e.failed()) << "i32 values into an f16 state were accepted";
    EXPECT_NE(e.message().find("must have the dtype of the state"), std::string::npos)
        << e.message();
  }
}

// Micro-benchmarks (run with --gtest_also_run_disabled_tests): one decode-sized
// rms_norm (576), swiglu (1536) and add (576), optimized per target vs
// portable, 1 thread, thread CPU time.
TEST_F(OptElementwise, DISABLED_Benchmark) {
  std::mt19937 rng(23);
  std::vector<float> x = normalFloats(rng, 576), w = normalFloats(rng, 576);
  std::vector<float> g = normalFloats(rng, 1536), u = normalFloats(rng, 1536);
  Tensor tx = Tensor::borrow(DType::Float32, Shape{1, 1, 576}, x.data());
  Tensor tw = Tensor::borrow(DType::Float32, Shape{576}, w.data());
  Tensor tg = Tensor::borrow(DType::Float32, Shape{1, 1, 1536}, g.data());
  Tensor tu = Tensor::borrow(DType::Float32, Shape{1, 1, 1536}, u.data());
  std::vector<float> y(1536), a2 = normalFloats(rng, 576);
  rt::OpAttrs norm;
  norm.eps = 1e-5;
  rt::OpAttrs none;
  const int reps = 20000;
  std::printf("rms_norm 576: kernel portable %.3f us, optimized %.3f us\n",
              1e6 * secondsPerCall(reps, [&] { runKernel("rms_norm", norm, {&tx, &tw}, true); }, true),
              1e6 * secondsPerCall(reps, [&] { runKernel("rms_norm", norm, {&tx, &tw}, false); }, true));
  std::printf("swiglu 1536:  kernel portable %.3f us, optimized %.3f us\n",
              1e6 * secondsPerCall(reps, [&] { runKernel("swiglu", none, {&tg, &tu}, true); }, true),
              1e6 * secondsPerCall(reps, [&] { runKernel("swiglu", none, {&tg, &tu}, false); }, true));
  Tensor ta = Tensor::borrow(DType::Float32, Shape{1, 1, 576}, a2.data());
  rt::OpAttrs add;
  add.fn = static_cast<int>(opt::BinaryOp::Add);
  std::printf("add 576:      kernel portable %.3f us, optimized %.3f us\n",
              1e6 * secondsPerCall(reps, [&] { runKernel("binary", add, {&tx, &ta}, true); }, true),
              1e6 * secondsPerCall(reps, [&] { runKernel("binary", add, {&tx, &ta}, false); }, true));
  for (int64_t t : compiledTargets()) {
    hwy::SetSupportedTargetsForTest(t);
    std::printf("  %-6s rms_norm %.3f us, swiglu %.3f us (opt functions only)\n",
                hwy::TargetName(t),
                1e6 * secondsPerCall(reps, [&] { opt::rmsNorm(x.data(), w.data(), 1, 576, 1e-5, y.data()); }, true),
                1e6 * secondsPerCall(reps, [&] { opt::swiglu(g.data(), u.data(), y.data(), 1536, nullptr); }, true));
  }
}

} // namespace
