// The optimized cached_attention (runtime-stub/kernels/opt/OptAttention) against
// the portable kernel (Cache.cpp with portableOnly) on random grouped-query
// shapes: D not a multiple of any vector width (1..67 and 64), decode (T = 1)
// and prefill chunks (T up to 64, causal within the chunk) at random start
// positions, batch 1 and 2 — once for every SIMD target Highway compiled and
// this CPU supports, and split over a thread pool. Cache rows after the last
// query position hold NaN: reading one would poison the output.
//
// Tolerance per output o[c] of a query row with softmax weights p_j:
//   |opt - portable| <= 1e-5 * sum_j p_j |v_j[c]| + 1e-30
// i.e. 1e-5 relative to the magnitude of the weighted sum. The two sides sum
// scores, exponentials and products in different orders in f32 and use
// different exp implementations (<= 1 ulp each): a few times 6e-8 per term of
// the dot products (D <= 67) feeds into p_j through exp of a score of size ~1..10,
// well below 1e-5 of the magnitude.
#include "OptTestUtil.h"

#include "runtime-stub/kernels/opt/OptAttention.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

using namespace kiln;
using namespace kiln::test;
using kiln::rt::DType;
using kiln::rt::Shape;
using kiln::rt::Tensor;
namespace opt = kiln::rt::opt;

namespace {

constexpr double kRelTol = 1e-5;

struct AttnCase {
  int64_t batch, hq, hkv, t, s, d, start;
  float scale;
  std::string str() const {
    std::ostringstream o;
    o << "cached_attention B=" << batch << " Hq=" << hq << " Hkv=" << hkv << " T=" << t
      << " S=" << s << " D=" << d << " start=" << start;
    return o.str();
  }
};

struct AttnData {
  std::vector<float> q, k, v;
};

AttnData makeData(std::mt19937 &rng, const AttnCase &c) {
  AttnData a;
  a.q = normalFloats(rng, c.batch * c.hq * c.t * c.d);
  a.k = normalFloats(rng, c.batch * c.hkv * c.s * c.d);
  a.v = normalFloats(rng, c.batch * c.hkv * c.s * c.d);
  // Rows after the last query position are never valid keys.
  for (int64_t bh = 0; bh < c.batch * c.hkv; ++bh)
    for (int64_t j = c.start + c.t; j < c.s; ++j)
      for (int64_t x = 0; x < c.d; ++x) {
        a.k[(bh * c.s + j) * c.d + x] = NAN;
        a.v[(bh * c.s + j) * c.d + x] = NAN;
      }
  return a;
}

std::vector<float> portable(const AttnCase &c, const AttnData &a) {
  Tensor q = Tensor::borrow(DType::Float32, Shape{c.batch, c.hq, c.t, c.d}, a.q.data());
  Tensor k = Tensor::borrow(DType::Float32, Shape{c.batch, c.hkv, c.s, c.d}, a.k.data());
  Tensor v = Tensor::borrow(DType::Float32, Shape{c.batch, c.hkv, c.s, c.d}, a.v.data());
  std::vector<int64_t> start = {c.start};
  Tensor sp = Tensor::borrow(DType::Int64, Shape{1}, start.data());
  rt::OpAttrs attrs;
  attrs.scale = c.scale;
  return toVector(runKernel("cached_attention", attrs, {&q, &k, &v, &sp}, true));
}

std::vector<float> optimized(const AttnCase &c, const AttnData &a, rt::ThreadPool *pool,
                             bool viaKernel) {
  if (viaKernel) {
    Tensor q = Tensor::borrow(DType::Float32, Shape{c.batch, c.hq, c.t, c.d}, a.q.data());
    Tensor k = Tensor::borrow(DType::Float32, Shape{c.batch, c.hkv, c.s, c.d}, a.k.data());
    Tensor v = Tensor::borrow(DType::Float32, Shape{c.batch, c.hkv, c.s, c.d}, a.v.data());
    std::vector<int64_t> start = {c.start};
    Tensor sp = Tensor::borrow(DType::Int64, Shape{1}, start.data());
    rt::OpAttrs attrs;
    attrs.scale = c.scale;
    return toVector(runKernel("cached_attention", attrs, {&q, &k, &v, &sp}, false, pool));
  }
  std::vector<float> out(a.q.size(), std::nanf(""));
  opt::CachedAttentionArgs args;
  args.q = a.q.data();
  args.k = a.k.data();
  args.v = a.v.data();
  args.out = out.data();
  args.batch = c.batch;
  args.hq = c.hq;
  args.hkv = c.hkv;
  args.t = c.t;
  args.s = c.s;
  args.d = c.d;
  args.start = c.start;
  args.scale = c.scale;
  opt::cachedAttention(args, pool);
  return out;
}

/// Compares with the portable result under the tolerance above (magnitudes
/// from softmax weights computed here in double); returns the mismatches.
int compare(const AttnCase &c, const AttnData &a, const std::vector<float> &got,
            const std::vector<float> &want, const std::string &what) {
  if (got.size() != want.size()) {
    ADD_FAILURE() << what << " " << c.str() << ": " << got.size() << " outputs, portable "
                  << want.size();
    return 1;
  }
  int bad = 0;
  const int64_t group = c.hq / c.hkv;
  for (int64_t b = 0; b < c.batch; ++b)
    for (int64_t h = 0; h < c.hq; ++h) {
      const float *kH = a.k.data() + (b * c.hkv + h / group) * c.s * c.d;
      const float *vH = a.v.data() + (b * c.hkv + h / group) * c.s * c.d;
      for (int64_t i = 0; i < c.t; ++i) {
        const float *q = a.q.data() + ((b * c.hq + h) * c.t + i) * c.d;
        const int64_t n = c.start + i + 1;
        std::vector<double> p(static_cast<size_t>(n));
        double mx = -INFINITY, sum = 0.0;
        for (int64_t j = 0; j < n; ++j) {
          double dot = 0.0;
          for (int64_t x = 0; x < c.d; ++x)
            dot += static_cast<double>(q[x]) * kH[j * c.d + x];
          p[j] = dot * c.scale;
          mx = std::max(mx, p[j]);
        }
        for (auto &w : p)
          sum += (w = std::exp(w - mx));
        for (int64_t x = 0; x < c.d; ++x) {
          double mag = 0.0;
          for (int64_t j = 0; j < n; ++j)
            mag += p[j] / sum * std::fabs(vH[j * c.d + x]);
          const size_t at = static_cast<size_t>(((b * c.hq + h) * c.t + i) * c.d + x);
          const double g = got[at], e = want[at], tol = kRelTol * mag + 1e-30;
          if (!(std::fabs(g - e) <= tol) && bad++ < 3)
            ADD_FAILURE() << what << " " << c.str() << ": out[" << b << "][" << h << "][" << i
                          << "][" << x << "] = " << g << ", portable " << e << ", |diff| "
                          << std::fabs(g - e) << " > tol " << tol << " (rel " << kRelTol
                          << " of sum p|v| " << mag << ")";
        }
      }
    }
  return bad;
}

std::vector<AttnCase> randomCases(std::mt19937 &rng) {
  const int64_t headPairs[5][2] = {{9, 3}, {4, 2}, {2, 2}, {3, 1}, {1, 1}};
  std::uniform_int_distribution<int> dD(1, 67), sD(1, 90), tD(1, 9), pick(0, 4);
  std::vector<AttnCase> cases;
  for (int i = 0; i < 20; ++i) {
    AttnCase c;
    c.batch = i % 5 == 4 ? 2 : 1;
    const int64_t hp = pick(rng);
    c.hq = headPairs[hp][0];
    c.hkv = headPairs[hp][1];
    c.d = i % 4 == 0 ? 64 : dD(rng);
    c.t = i % 3 == 0 ? 1 : tD(rng);
    c.s = std::max<int64_t>(c.t, sD(rng));
    c.start = std::uniform_int_distribution<int64_t>(0, c.s - c.t)(rng);
    c.scale = 1.0f / std::sqrt(static_cast<float>(c.d));
    cases.push_back(c);
  }
  // MobileLLM-125M shapes: decode at positions 0, 128, 255; a prefill chunk.
  cases.push_back({1, 9, 3, 1, 256, 64, 0, 0.125f});
  cases.push_back({1, 9, 3, 1, 256, 64, 128, 0.125f});
  cases.push_back({1, 9, 3, 1, 256, 64, 255, 0.125f});
  cases.push_back({1, 9, 3, 64, 256, 64, 64, 0.125f});
  return cases;
}

int runCases(std::mt19937 &rng, rt::ThreadPool *pool, const std::string &what) {
  int n = 0;
  for (const AttnCase &c : randomCases(rng)) {
    AttnData a = makeData(rng, c);
    std::vector<float> want = portable(c, a);
    if (compare(c, a, optimized(c, a, pool, false), want, what + " (opt::cachedAttention)") +
            compare(c, a, optimized(c, a, pool, true), want, what + " (kernel)") >
        0)
      return n;
    ++n;
  }
  return n;
}

class OptAttention : public ::testing::Test {
protected:
  void TearDown() override { hwy::SetSupportedTargetsForTest(0); }
};

TEST_F(OptAttention, EveryTargetMatchesPortable) {
  std::ostringstream names;
  for (int64_t t : compiledTargets()) {
    hwy::SetSupportedTargetsForTest(t);
    std::mt19937 rng(static_cast<unsigned>(t & 0xFFFF) + 31);
    EXPECT_EQ(runCases(rng, nullptr, std::string("target ") + hwy::TargetName(t)), 24)
        << hwy::TargetName(t);
    names << hwy::TargetName(t) << " ";
  }
  std::printf("[ targets  ] compared on: %s\n", names.str().c_str());
}

TEST_F(OptAttention, ThreadPoolSplitMatchesPortable) {
  rt::ThreadPool pool(3);
  std::mt19937 rng(32);
  EXPECT_EQ(runCases(rng, &pool, "3 threads"), 24);
}

// Micro-benchmark (run with --gtest_also_run_disabled_tests): MobileLLM-125M
// attention (Hq=9, Hkv=3, D=64, S=256), decode at positions 128 and 255 and a
// prefill chunk of 64 rows at start 0 and 192, portable vs optimized kernel,
// 1 and 2 threads.
TEST_F(OptAttention, DISABLED_Benchmark) {
  std::mt19937 rng(33);
  rt::ThreadPool pool2(2);
  std::printf("target %s\n", hwy::TargetName(compiledTargets().front()));
  for (AttnCase c : {AttnCase{1, 9, 3, 1, 256, 64, 128, 0.125f},
                     AttnCase{1, 9, 3, 1, 256, 64, 255, 0.125f},
                     AttnCase{1, 9, 3, 64, 256, 64, 0, 0.125f},
                     AttnCase{1, 9, 3, 64, 256, 64, 192, 0.125f}}) {
    AttnData a = makeData(rng, c);
    Tensor q = Tensor::borrow(DType::Float32, Shape{c.batch, c.hq, c.t, c.d}, a.q.data());
    Tensor k = Tensor::borrow(DType::Float32, Shape{c.batch, c.hkv, c.s, c.d}, a.k.data());
    Tensor v = Tensor::borrow(DType::Float32, Shape{c.batch, c.hkv, c.s, c.d}, a.v.data());
    std::vector<int64_t> start = {c.start};
    Tensor sp = Tensor::borrow(DType::Int64, Shape{1}, start.data());
    rt::OpAttrs attrs;
    attrs.scale = c.scale;
    const int reps = c.t == 1 ? 2000 : 50;
    auto run = [&](bool portableOnly, rt::ThreadPool *pool) {
      return 1e6 * secondsPerCall(reps, [&] {
        runKernel("cached_attention", attrs, {&q, &k, &v, &sp}, portableOnly, pool);
      }, pool == nullptr);
    };
    std::printf("%s: portable %.1f us (2 threads, wall %.1f us), optimized %.1f us (2 threads, "
                "wall %.1f us); 1 thread: thread CPU time\n",
                c.str().c_str(), run(true, nullptr), run(true, &pool2), run(false, nullptr),
                run(false, &pool2));
  }
}

} // namespace
