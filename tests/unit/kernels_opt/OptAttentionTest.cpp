// The optimized cached_attention (runtime-stub/kernels/opt/OptAttention) against
// the portable kernel (Cache.cpp with portableOnly) on random grouped-query
// shapes: D not a multiple of any vector width (1..67 and 64), decode (T = 1)
// and prefill chunks (T up to 64, causal within the chunk) at random start
// positions, batch 1 and 2 — once for every SIMD target Highway compiled and
// this CPU supports, and split over a thread pool. The decode split (key
// ranges of all kv heads cut into equal pieces, partial softmax states merged)
// is tested with pools of 1-3 threads at key counts around each task-count
// threshold, with odd counts and sets cut into up to 3 pieces, for every target.
// Cache rows after the last query position hold NaN: reading one would poison
// the output. f16 caches: HalfCachesMatchWidenedF32 below.
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

#include "runtime-stub/core/DType.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <utility>

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

/// The kernel arguments of case c on data a (null pointers when a is null).
opt::CachedAttentionArgs argsOf(const AttnCase &c, const AttnData *a = nullptr,
                                float *out = nullptr) {
  opt::CachedAttentionArgs args;
  if (a) {
    args.q = a->q.data();
    args.k = a->k.data();
    args.v = a->v.data();
  }
  args.out = out;
  args.batch = c.batch;
  args.hq = c.hq;
  args.hkv = c.hkv;
  args.t = c.t;
  args.s = c.s;
  args.d = c.d;
  args.start = c.start;
  args.scale = c.scale;
  return args;
}

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

/// f16 copies of a case's caches (HalfCachesMatchWidenedF32).
struct HalfCaches {
  std::vector<uint16_t> k, v;
};

/// The registered cached_attention kernel on case c (portable or optimized
/// path), over a's f32 caches or, when given, the f16 caches h.
std::vector<float> viaRegisteredKernel(const AttnCase &c, const AttnData &a, bool portableOnly,
                                       rt::ThreadPool *pool, const HalfCaches *h = nullptr) {
  const Shape cacheShape{c.batch, c.hkv, c.s, c.d};
  Tensor q = Tensor::borrow(DType::Float32, Shape{c.batch, c.hq, c.t, c.d}, a.q.data());
  Tensor k = h ? Tensor::borrow(DType::Float16, cacheShape, h->k.data())
               : Tensor::borrow(DType::Float32, cacheShape, a.k.data());
  Tensor v = h ? Tensor::borrow(DType::Float16, cacheShape, h->v.data())
               : Tensor::borrow(DType::Float32, cacheShape, a.v.data());
  std::vector<int64_t> start = {c.start};
  Tensor sp = Tensor::borrow(DType::Int64, Shape{1}, start.data());
  rt::OpAttrs attrs;
  attrs.scale = c.scale;
  return toVector(runKernel("cached_attention", attrs, {&q, &k, &v, &sp}, portableOnly, pool));
}

std::vector<float> portable(const AttnCase &c, const AttnData &a) {
  return viaRegisteredKernel(c, a, true, nullptr);
}

std::vector<float> optimized(const AttnCase &c, const AttnData &a, rt::ThreadPool *pool,
                             bool viaKernel) {
  if (viaKernel)
    return viaRegisteredKernel(c, a, false, pool);
  std::vector<float> out(a.q.size(), std::nanf(""));
  opt::cachedAttention(argsOf(c, &a, out.data()), pool);
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

class OptAttention : public ForcedTargetTest {};

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

// f16 caches (kiln export-hf --kv-cache-dtype f16): k and v rounded to f16
// (NaN rows stay NaN), and the same values widened back to f32. Attention
// over the f16 caches must equal attention over the widened f32 caches bit
// for bit -- both in the optimized kernel (every target, with and without a
// pool: the rows are widened on load, then the same math, the same chunks)
// and in the portable one -- and the optimized f16 result must match the
// portable f16 result within the tolerance above.
HalfCaches roundToHalf(AttnData *a) {
  HalfCaches h;
  for (auto [from, to] : {std::pair(&a->k, &h.k), std::pair(&a->v, &h.v)}) {
    to->resize(from->size());
    for (size_t i = 0; i < from->size(); ++i) {
      (*to)[i] = rt::floatToHalf((*from)[i]);
      (*from)[i] = rt::halfToFloat((*to)[i]);
    }
  }
  return h;
}

std::vector<float> halfViaKernel(const AttnCase &c, const AttnData &a, const HalfCaches &h,
                                 bool portableOnly, rt::ThreadPool *pool) {
  return viaRegisteredKernel(c, a, portableOnly, pool, &h);
}

bool sameBits(const std::vector<float> &a, const std::vector<float> &b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST_F(OptAttention, HalfCachesMatchWidenedF32) {
  rt::ThreadPool pool(2);
  for (int64_t target : compiledTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    std::mt19937 rng(static_cast<unsigned>(target & 0xFFFF) + 51);
    const std::string tn = std::string("target ") + hwy::TargetName(target);
    for (const AttnCase &c : randomCases(rng)) {
      AttnData a = makeData(rng, c);
      const HalfCaches h = roundToHalf(&a);
      for (rt::ThreadPool *p : {static_cast<rt::ThreadPool *>(nullptr), &pool}) {
        const std::string what = tn + (p ? ", 2 threads" : ", no pool");
        std::vector<float> f32 = optimized(c, a, p, false);
        opt::CachedAttentionArgs args = argsOf(c, &a);
        std::vector<float> f16(a.q.size(), std::nanf(""));
        args.out = f16.data();
        args.k = args.v = nullptr;
        args.kHalf = h.k.data();
        args.vHalf = h.v.data();
        opt::cachedAttention(args, p);
        ASSERT_TRUE(sameBits(f16, f32))
            << what << " " << c.str() << ": f16 caches differ from the same values in f32 caches";
        ASSERT_TRUE(sameBits(halfViaKernel(c, a, h, false, p), f32))
            << what << " " << c.str() << ": kernel with f16 caches differs from f32 caches";
      }
      std::vector<float> portableHalf = halfViaKernel(c, a, h, true, nullptr);
      ASSERT_TRUE(sameBits(portableHalf, portable(c, a)))
          << c.str() << ": portable kernel, f16 caches differ from the same values in f32";
      ASSERT_EQ(compare(c, a, halfViaKernel(c, a, h, false, &pool), portableHalf,
                        tn + " f16 caches (kernel)"),
                0);
    }
  }
}

// Smallest key count n (= start + 1) at which a decode step of c's heads and D
// is split into `tasks` tasks (tasks * kDecodeBytesPerTask bytes of K and V).
int64_t keysForTasks(const AttnCase &c, int64_t tasks) {
  const int64_t sets = c.batch * c.hkv * ((c.hq / c.hkv + 3) / 4);
  const int64_t perKey = sets * c.d * 2 * static_cast<int64_t>(sizeof(float));
  return (tasks * opt::kDecodeBytesPerTask + perKey - 1) / perKey;
}

TEST_F(OptAttention, DecodeSplitTaskCounts) {
  // MobileLLM-125M decode (9 query heads, 3 kv heads, D = 64): one thread up
  // to position 41 (tiny caches never pay a hand-off), two from 42 on.
  opt::CachedAttentionArgs a;
  a.batch = 1;
  a.hq = 9;
  a.hkv = 3;
  a.t = 1;
  a.s = 256;
  a.d = 64;
  for (int64_t start : {0, 31, 41})
    for (int threads : {1, 2, 3}) {
      a.start = start;
      EXPECT_EQ(opt::cachedAttentionDecodeTasks(a, threads), 1)
          << "125M decode at position " << start << ", " << threads << " threads";
    }
  for (int64_t start : {42, 64, 128, 160, 255}) {
    a.start = start;
    // The chunks follow the data only (bit-identical results for any --threads).
    EXPECT_EQ(opt::cachedAttentionDecodeChunks(a), opt::kDecodeMaxChunks) << "position " << start;
    EXPECT_EQ(opt::cachedAttentionDecodeTasks(a, 1), 1) << "position " << start;
    EXPECT_EQ(opt::cachedAttentionDecodeTasks(a, 2), 2) << "position " << start;
    EXPECT_EQ(opt::cachedAttentionDecodeTasks(a, 3), 2) << "position " << start;
  }
  a.t = 2; // prefill chunks are split by heads, not by keys
  EXPECT_EQ(opt::cachedAttentionDecodeChunks(a), 1);
  EXPECT_EQ(opt::cachedAttentionDecodeTasks(a, 2), 1);
}

// Decode steps (T = 1) around the split thresholds on pools of 1-3 threads,
// for every target: kv-head layouts where sets do not divide over the threads
// (9/3, 3/1: 1 and 3 sets; 8/1: 2 sets of 4 rows per kv head; 5/1: 4 + 1
// rows; 4/2 with batch 2), D = 64 and odd D, odd key counts, one set cut into
// 2 pieces, and the last cache position. The pool must have been used exactly
// when the step has more than one task, and the result must equal the one
// computed without a pool bit for bit.
TEST_F(OptAttention, DecodeSplitMatchesPortable) {
  std::vector<AttnCase> shapes = {
      {1, 9, 3, 1, 0, 64, 0, 0.125f}, {1, 3, 1, 1, 0, 64, 0, 0.125f},
      {1, 8, 1, 1, 0, 64, 0, 0.125f}, {1, 5, 1, 1, 0, 37, 0, 0.2f},
      {2, 4, 2, 1, 0, 67, 0, 0.15f},  {1, 1, 1, 1, 0, 64, 0, 0.125f},
      {1, 2, 2, 1, 0, 9, 0, 0.3f},
  };
  rt::ThreadPool pools[3] = {rt::ThreadPool(1), rt::ThreadPool(2), rt::ThreadPool(3)};
  for (int64_t target : compiledTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    std::mt19937 rng(static_cast<unsigned>(target & 0xFFFF) + 41);
    int split = 0;
    for (rt::ThreadPool &pool : pools) {
      const int threads = pool.numThreads();
      for (const AttnCase &shape : shapes) {
        std::vector<int64_t> counts;
        for (int64_t tasks = 2; tasks <= 3; ++tasks)
          for (int64_t dn : {-1, 0, 1})
            counts.push_back(keysForTasks(shape, tasks) + dn);
        counts.push_back(keysForTasks(shape, 3) + 2 * (rng() % 50) + 1);
        for (int64_t n : counts) {
          AttnCase c = shape;
          c.start = n - 1;
          c.s = n + static_cast<int64_t>(rng() % 3); // sometimes the last position
          const int64_t tasks = opt::cachedAttentionDecodeTasks(argsOf(c), threads);
          const int64_t chunks = std::min<int64_t>(
              opt::kDecodeMaxChunks,
              n >= keysForTasks(c, 3) ? 3 : n >= keysForTasks(c, 2) ? 2 : 1);
          ASSERT_EQ(opt::cachedAttentionDecodeChunks(argsOf(c)), chunks) << c.str();
          const int64_t want = std::min<int64_t>(threads, chunks);
          const std::string what = std::string("target ") + hwy::TargetName(target) + ", " +
                                   std::to_string(threads) + " threads, " +
                                   std::to_string(tasks) + " tasks";
          ASSERT_EQ(tasks, want) << what << " " << c.str();
          split += tasks > 1;
          AttnData a = makeData(rng, c);
          std::vector<float> ref = portable(c, a);
          pool.resetStats();
          std::vector<float> got = optimized(c, a, &pool, false);
          EXPECT_EQ(pool.stats().parallelCalls, tasks > 1 ? 1u : 0u) << what << " " << c.str();
          ASSERT_EQ(compare(c, a, got, ref, what + " (opt::cachedAttention)") +
                        compare(c, a, optimized(c, a, &pool, true), ref, what + " (kernel)"),
                    0);
          // The same chunks on the calling thread alone: bit for bit the same.
          std::vector<float> alone = optimized(c, a, nullptr, false);
          ASSERT_EQ(0, std::memcmp(alone.data(), got.data(), got.size() * sizeof(float)))
              << what << " " << c.str() << ": differs from the same step without a pool";
        }
      }
    }
    EXPECT_GT(split, 50) << hwy::TargetName(target);
  }
}

// Micro-benchmark (run with --gtest_also_run_disabled_tests): MobileLLM-125M
// attention (Hq=9, Hkv=3, D=64, S=256), decode at positions 31..255 and a
// prefill chunk of 64 rows at start 0 and 192, portable vs optimized kernel,
// 1 and 2 threads.
TEST_F(OptAttention, DISABLED_Benchmark) {
  std::mt19937 rng(33);
  rt::ThreadPool pool2(2);
  std::printf("target %s\n", hwy::TargetName(compiledTargets().front()));
  for (AttnCase c : {AttnCase{1, 9, 3, 1, 256, 64, 31, 0.125f},
                     AttnCase{1, 9, 3, 1, 256, 64, 64, 0.125f},
                     AttnCase{1, 9, 3, 1, 256, 64, 128, 0.125f},
                     AttnCase{1, 9, 3, 1, 256, 64, 160, 0.125f},
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

// Micro-benchmark of decode steps on caches that are not in any CPU cache, as
// in a real decode step (the weights streamed since a layer's previous step
// have evicted its caches): 30 layers of MobileLLM-125M caches, and 64 MB read
// over the pool before each timed call (which also keeps the pool's worker
// spinning, as the decode step's other ops do). Median and minimum of 300
// calls, 1 thread (thread CPU time) and 2 threads (wall time; on a shared
// machine the minimum shows the time when both threads got a core).
TEST_F(OptAttention, DISABLED_BenchmarkColdDecode) {
  std::mt19937 rng(34);
  rt::ThreadPool pool2(2);
  constexpr int kLayers = 30;
  std::vector<float> flush(static_cast<size_t>(16) << 20, 1.0f);
  volatile float sink = 0.0f;
  auto evict = [&] {
    float part[2] = {0.0f, 0.0f};
    pool2.parallelFor(2, 1, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        float acc = 0.0f;
        const size_t half = flush.size() / 2;
        for (size_t i = t * half; i < (t + 1) * half; i += 16)
          acc += flush[i];
        part[t] = acc;
      }
    });
    sink = sink + part[0] + part[1];
  };
  for (int64_t start : {64, 128, 160, 255}) {
    AttnCase c{1, 9, 3, 1, 256, 64, start, 0.125f};
    std::vector<AttnData> layers;
    for (int l = 0; l < kLayers; ++l)
      layers.push_back(makeData(rng, c));
    std::vector<float> out(static_cast<size_t>(c.hq * c.d));
    double med[2], best[2];
    for (int threads = 1; threads <= 2; ++threads) {
      std::vector<double> us;
      for (int rep = 0; rep < 300; ++rep) {
        const AttnData &a = layers[rep % kLayers];
        opt::CachedAttentionArgs args = argsOf(c, &a, out.data());
        args.batch = 1;
        args.t = 1;
        evict();
        const auto t0 = std::chrono::steady_clock::now();
        const double c0 = threadCpuSeconds();
        opt::cachedAttention(args, threads == 1 ? nullptr : &pool2);
        const std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
        us.push_back(1e6 * (threads == 1 ? threadCpuSeconds() - c0 : dt.count()));
      }
      std::sort(us.begin(), us.end());
      med[threads - 1] = us[us.size() / 2];
      best[threads - 1] = us[0];
    }
    std::printf("cold decode %s: 1 thread %.1f us (min %.1f), 2 threads %.1f us (min %.1f)\n",
                c.str().c_str(), med[0], best[0], med[1], best[1]);
  }
}

} // namespace
