// The fused kernels (swiglu, rope, attention) against the unfused composition of
// the portable kernels they replace, on random data of several shapes (odd sizes,
// broadcasting, grouped-query heads, decode against a longer key sequence).
#include "TestProgramBuilder.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>

using namespace kiln;
using namespace kiln::test;
using kiln::rt::DType;
using kiln::rt::Shape;
using kiln::rt::Tensor;

namespace {

std::string errorOf(const char *op, std::vector<Tensor> in, std::vector<TAttr> attrs) {
  auto r = runOp(op, in, attrs);
  EXPECT_FALSE(r.ok()) << op << " should fail";
  return r.ok() ? std::string() : r.error().message();
}

/// Same shape and values within `tol` (relative to the largest reference value).
void expectClose(const std::string &what, const Tensor &got, const Tensor &want, double tol) {
  ASSERT_EQ(got.dtype(), want.dtype()) << what;
  ASSERT_EQ(got.shape(), want.shape())
      << what << ": shape " << got.shape().str() << ", unfused " << want.shape().str();
  std::vector<float> g = floatsOf(got), w = floatsOf(want);
  double scale = 0;
  for (float x : w)
    scale = std::max(scale, (double)std::fabs(x));
  scale = std::max(scale, 1e-30);
  for (size_t i = 0; i < w.size(); ++i) {
    if (std::isnan(w[i])) {
      EXPECT_TRUE(std::isnan(g[i])) << what << " element " << i << ": " << g[i] << " not NaN";
      continue;
    }
    ASSERT_LE(std::fabs((double)g[i] - w[i]) / scale, tol)
        << what << " " << want.shape().str() << " element " << i << ": fused " << g[i]
        << ", unfused " << w[i] << " (relative tolerance " << tol << ")";
  }
}

Tensor scalarI64(int64_t v) { return i64({}, {v}); }

Tensor binary(const char *fn, const Tensor &a, const Tensor &b) {
  return runOne("binary", {a, b}, {attrStr("fn", fn)});
}

/// cat(-x[..., h:], x[..., :h], -1) with h = D // 2, from portable kernels.
Tensor rotateHalfUnfused(const Tensor &x) {
  int64_t d = x.dim(x.rank() - 1), h = d / 2;
  Tensor x1 = runOne("slice", {x, scalarI64(0), scalarI64(h)},
                  {attrInt("dim", -1), attrInt("step", 1)});
  Tensor x2 = runOne("slice", {x, scalarI64(h), scalarI64(INT64_MAX)},
                  {attrInt("dim", -1), attrInt("step", 1)});
  Tensor neg = runOne("unary", {x2}, {attrStr("fn", "neg")});
  return runOne("concat", {neg, x1}, {attrInt("dim", -1)});
}

/// The attention pieces as traced: repeat_interleave, transpose, matmul,
/// scale, masked_fill(mask, -inf), softmax, matmul.
Tensor attentionUnfused(const Tensor &q, const Tensor &k, const Tensor &v, double scale,
                        const Tensor *boolMask, const Tensor *addMask) {
  int64_t group = q.dim(1) / k.dim(1);
  Tensor kr = k, vr = v;
  if (group > 1) {
    kr = runOne("repeat_interleave", {k}, {attrInt("repeats", group), attrInt("dim", 1)});
    vr = runOne("repeat_interleave", {v}, {attrInt("repeats", group), attrInt("dim", 1)});
  }
  Tensor kt = runOne("transpose", {kr}, {attrInt("dim0", -2), attrInt("dim1", -1)});
  Tensor s = runOne("matmul", {q, kt}, {});
  s = binary("mul", s, f32({}, {(float)scale}));
  if (addMask)
    s = binary("add", s, *addMask);
  if (boolMask) {
    Tensor masked = runOne("compare", {*boolMask, i1({}, {false})}, {attrStr("fn", "eq")});
    s = runOne("where", {masked, f32({}, {-INFINITY}), s}, {});
  }
  Tensor p = runOne("softmax", {s}, {attrInt("dim", -1), attrBool("log", false)});
  return runOne("matmul", {p, vr}, {});
}

/// The causal mask of T queries over S keys as "keep" booleans: j <= i + S - T.
Tensor causalKeep(int64_t t, int64_t s) {
  std::vector<bool> keep;
  for (int64_t i = 0; i < t; ++i)
    for (int64_t j = 0; j < s; ++j)
      keep.push_back(j <= i + (s - t));
  return i1({t, s}, keep);
}

} // namespace

TEST(FusedKernels, SwigluMatchesSiluTimesUp) {
  struct Case {
    Shape gate, up;
  };
  for (const Case &c : {Case{{3, 7}, {3, 7}}, Case{{2, 1, 5}, {4, 5}}, Case{{1}, {2, 3}},
                        Case{{4, 33}, {33}}}) {
    Tensor g = randomF32(c.gate, 1), u = randomF32(c.up, 2);
    Tensor fused = runOne("swiglu", {g, u}, {});
    Tensor unfused = binary("mul", runOne("unary", {g}, {attrStr("fn", "silu")}), u);
    expectClose("swiglu " + c.gate.str() + " x " + c.up.str(), fused, unfused, 1e-6);
  }
  std::string e = errorOf("swiglu", {randomF32({3}, 1), randomF32({4}, 2)}, {});
  EXPECT_NE(e.find("cannot be broadcast"), std::string::npos) << e;
  e = errorOf("swiglu", {randomF32({3}, 1), i64({3}, {1, 2, 3})}, {});
  EXPECT_NE(e.find("must have the dtype of gate"), std::string::npos) << e;
}

TEST(FusedKernels, RopeRotateHalfMatchesUnfused) {
  struct Case {
    Shape x, table;
  };
  // [B, H, T, D] with [T, D] tables; an odd D (7: halves 3 and 4); a 3-d x with
  // tables of the same shape; tables broadcasting x up ([2,5,6] over [5,6]).
  for (const Case &c : {Case{{2, 3, 5, 6}, {5, 6}}, Case{{1, 2, 4, 7}, {4, 7}},
                        Case{{3, 4, 8}, {3, 4, 8}}, Case{{5, 6}, {2, 5, 6}},
                        Case{{1, 1, 1, 2}, {1, 2}}}) {
    Tensor x = randomF32(c.x, 3), cos = randomF32(c.table, 4), sin = randomF32(c.table, 5);
    Tensor fused = runOne("rope", {x, cos, sin}, {attrStr("style", "rotate_half")});
    Tensor unfused = binary("add", binary("mul", x, cos), binary("mul", rotateHalfUnfused(x), sin));
    expectClose("rope rotate_half x " + c.x.str() + " tables " + c.table.str(), fused, unfused,
                1e-6);
  }
}

TEST(FusedKernels, RopeInterleavedRotatesPairs) {
  Tensor x = randomF32({2, 3, 4}, 6), cos = randomF32({3, 4}, 7), sin = randomF32({3, 4}, 8);
  Tensor fused = runOne("rope", {x, cos, sin}, {attrStr("style", "interleaved")});
  // rotate(x) pairs (x0, x1) -> (-x1, x0), written out element by element.
  std::vector<float> px = floatsOf(x), pc = floatsOf(cos), ps = floatsOf(sin), want;
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t t = 0; t < 3; ++t)
      for (int64_t j = 0; j < 4; ++j) {
        const float *row = px.data() + (b * 3 + t) * 4;
        float rotated = j % 2 == 0 ? -row[j + 1] : row[j - 1];
        want.push_back(row[j] * pc[t * 4 + j] + rotated * ps[t * 4 + j]);
      }
  expectClose("rope interleaved [2,3,4]", fused, f32({2, 3, 4}, want), 1e-6);
  std::string e = errorOf("rope", {randomF32({3, 5}, 1), randomF32({3, 5}, 2), randomF32({3, 5}, 3)},
                          {attrStr("style", "interleaved")});
  EXPECT_NE(e.find("even last dim"), std::string::npos) << e;
}

TEST(FusedKernels, RopeRejectsBadInputs) {
  std::string e = errorOf("rope", {randomF32({3, 1}, 1), randomF32({3, 4}, 2), randomF32({3, 4}, 3)},
                          {attrStr("style", "rotate_half")});
  EXPECT_NE(e.find("last dim of x"), std::string::npos) << e;
  e = errorOf("rope", {randomF32({3, 4}, 1), randomF32({3, 4}, 2), randomF32({3, 4}, 3)},
              {attrStr("style", "spiral")});
  EXPECT_NE(e.find("unknown style 'spiral'"), std::string::npos) << e;
}

TEST(FusedKernels, AttentionCausalGroupedQueryMatchesUnfused) {
  struct Case {
    int64_t b, hq, hkv, t, s, d;
  };
  // Prefill (T == S), decode of one and of 3 queries against longer keys, odd
  // head dims, multi-head (Hq == Hkv) and one kv head for all (multi-query).
  for (const Case &c : {Case{1, 4, 2, 6, 6, 8}, Case{2, 4, 2, 1, 9, 8}, Case{2, 6, 3, 3, 7, 5},
                        Case{1, 3, 3, 5, 5, 3}, Case{3, 4, 1, 4, 4, 7}}) {
    Tensor q = randomF32({c.b, c.hq, c.t, c.d}, 11);
    Tensor k = randomF32({c.b, c.hkv, c.s, c.d}, 12);
    Tensor v = randomF32({c.b, c.hkv, c.s, c.d}, 13);
    double scale = 1.0 / std::sqrt((double)c.d);
    Tensor fused = runOne("attention", {q, k, v}, {attrFloat("scale", scale), attrBool("causal", true)});
    Tensor keep = causalKeep(c.t, c.s);
    Tensor unfused = attentionUnfused(q, k, v, scale, &keep, nullptr);
    expectClose("attention causal q " + q.shape().str() + " k " + k.shape().str(), fused, unfused,
                1e-5);
  }
}

TEST(FusedKernels, AttentionMasksAndBroadcastBatch) {
  // Value dim differs from the key dim; q's batch of 2 against k/v batch 1.
  Tensor q = randomF32({2, 4, 3, 5}, 21);
  Tensor k = randomF32({1, 2, 4, 5}, 22);
  Tensor v = randomF32({1, 2, 4, 3}, 23);
  std::vector<bool> keepValues = {true, false, true, true, false, true, true, true,
                                  true, true, false, true};
  Tensor keep = i1({3, 4}, keepValues);
  Tensor fused = runOne("attention", {q, k, v, keep},
                     {attrFloat("scale", 0.25), attrBool("causal", false)});
  expectClose("attention bool mask [3,4], batch 2 over 1", fused,
              attentionUnfused(q, k, v, 0.25, &keep, nullptr), 1e-5);

  Tensor bias = randomF32({1, 4, 3, 4}, 24);
  Tensor fusedAdd = runOne("attention", {q, k, v, bias},
                        {attrFloat("scale", 0.5), attrBool("causal", false)});
  expectClose("attention additive mask [1,4,3,4]", fusedAdd,
              attentionUnfused(q, k, v, 0.5, nullptr, &bias), 1e-5);

  // Causal and a mask together: both apply.
  Tensor q2 = randomF32({1, 2, 4, 5}, 25);
  Tensor k2 = randomF32({1, 2, 4, 5}, 26);
  Tensor v2 = randomF32({1, 2, 4, 5}, 27);
  std::vector<bool> both;
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < 4; ++j)
      both.push_back(j <= i && j != 1);
  Tensor keepSome = i1({4, 4}, {true, true, true, true, true, true, true, true, true, false, true,
                                true, true, false, true, true});
  Tensor fusedBoth = runOne("attention", {q2, k2, v2, keepSome},
                         {attrFloat("scale", 1.0), attrBool("causal", true)});
  Tensor bothMask = i1({4, 4}, [&] {
    std::vector<bool> m;
    std::vector<int> ks = boolsOf(keepSome);
    for (int64_t i = 0; i < 4; ++i)
      for (int64_t j = 0; j < 4; ++j)
        m.push_back(ks[(size_t)(i * 4 + j)] && j <= i);
    return m;
  }());
  expectClose("attention causal + bool mask", fusedBoth,
              attentionUnfused(q2, k2, v2, 1.0, &bothMask, nullptr), 1e-5);
}

TEST(FusedKernels, AttentionRejectsBadShapes) {
  Tensor q = randomF32({1, 3, 2, 4}, 1), k = randomF32({1, 2, 2, 4}, 2);
  std::string e = errorOf("attention", {q, k, k}, {attrFloat("scale", 1.0), attrBool("causal", true)});
  EXPECT_NE(e.find("query heads 3 are not a multiple of kv heads 2"), std::string::npos) << e;
  Tensor q3 = randomF32({3, 2, 4}, 3);
  e = errorOf("attention", {q3, q3, q3}, {attrFloat("scale", 1.0), attrBool("causal", true)});
  EXPECT_NE(e.find("must be 4-d"), std::string::npos) << e;
  Tensor q4 = randomF32({1, 2, 2, 4}, 4), v = randomF32({1, 2, 3, 4}, 5);
  e = errorOf("attention", {q4, q4, v}, {attrFloat("scale", 1.0), attrBool("causal", true)});
  EXPECT_NE(e.find("shapes do not fit"), std::string::npos) << e;
  Tensor badMask = i1({3, 3}, std::vector<bool>(9, true));
  e = errorOf("attention", {q4, q4, q4, badMask}, {attrFloat("scale", 1.0), attrBool("causal", false)});
  EXPECT_NE(e.find("cannot be broadcast"), std::string::npos) << e;
  // A mask that broadcasts with the scores but would enlarge them.
  Tensor wideMask = i1({2, 1, 2, 2}, std::vector<bool>(8, true));
  e = errorOf("attention", {q4, q4, q4, wideMask}, {attrFloat("scale", 1.0), attrBool("causal", false)});
  EXPECT_NE(e.find("does not broadcast to the scores [1,2,2,2]"), std::string::npos) << e;
}

TEST(FusedKernels, AttentionWithNoKeyGivesNaNLikeSoftmax) {
  // Causal with more queries than keys: query 0 of 3 over 2 keys sees j <= -1.
  Tensor q = randomF32({1, 1, 3, 2}, 1), k = randomF32({1, 1, 2, 2}, 2);
  Tensor out = runOne("attention", {q, k, k}, {attrFloat("scale", 1.0), attrBool("causal", true)});
  std::vector<float> o = floatsOf(out);
  ASSERT_EQ(o.size(), 6u);
  EXPECT_TRUE(std::isnan(o[0]) && std::isnan(o[1])) << "row 0: " << o[0] << ", " << o[1];
  EXPECT_FALSE(std::isnan(o[2])) << "row 1 attends key 0";
}

TEST(FusedKernels, MatmulTransposeBMatchesTransposeThenMatmul) {
  struct Case {
    Shape a, b;
  };
  // 2-d, batched with broadcasting, a 1-d a, odd sizes.
  for (const Case &c : {Case{{3, 5}, {7, 5}}, Case{{2, 1, 4, 3}, {3, 6, 3}}, Case{{5}, {2, 4, 5}},
                        Case{{1, 4, 6, 8}, {1, 4, 9, 8}}}) {
    Tensor a = randomF32(c.a, 31), b = randomF32(c.b, 32);
    Tensor fused = runOne("matmul", {a, b}, {attrBool("transpose_b", true)});
    Tensor bt = runOne("transpose", {b}, {attrInt("dim0", -2), attrInt("dim1", -1)});
    Tensor unfused = runOne("matmul", {a, bt}, {attrBool("transpose_b", false)});
    expectClose("matmul transpose_b a " + c.a.str() + " b " + c.b.str(), fused, unfused, 1e-6);
  }
  Tensor ints = runOne("matmul", {i64({2, 2}, {1, 2, 3, 4}), i64({2, 2}, {5, 6, 7, 8})},
                    {attrBool("transpose_b", true)});
  EXPECT_EQ(int64sOf(ints), (std::vector<int64_t>{17, 23, 39, 53})) << "matmul transpose_b i64 [2,2]";
  std::string e = errorOf("matmul", {randomF32({2, 3}, 1), randomF32({3}, 2)},
                          {attrBool("transpose_b", true)});
  EXPECT_NE(e.find("b of rank >= 2"), std::string::npos) << e;
  e = errorOf("matmul", {randomF32({2, 3}, 1), randomF32({3, 4}, 2)}, {attrBool("transpose_b", true)});
  EXPECT_NE(e.find("(transposed) cannot be multiplied (3 vs 4)"), std::string::npos) << e;
}
