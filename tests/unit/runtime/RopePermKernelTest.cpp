// The rope_perm kernel (kernels/Rope.cpp) against a naive element-by-element
// reference written here, against the unfused portable kernels it replaces
// (index_select, mul, mul, add: the same f32 roundings, so equal bit for bit),
// and against `rope` with MobileLLM's rotate-half / interleaved permutations and
// signed sin tables; plus every error it reports.
#include "TestProgramBuilder.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

using namespace kiln;
using namespace kiln::test;
using kiln::rt::DType;
using kiln::rt::Shape;
using kiln::rt::Tensor;

namespace {

/// A deterministic permutation of 0..d-1 (Fisher-Yates).
std::vector<int64_t> randomPerm(int64_t d, uint32_t seed) {
  std::vector<int64_t> p((size_t)d);
  for (int64_t i = 0; i < d; ++i)
    p[(size_t)i] = i;
  uint32_t s = seed * 747796405u + 1u;
  for (int64_t i = d - 1; i > 0; --i) {
    s = s * 1664525u + 1013904223u;
    std::swap(p[(size_t)i], p[(size_t)((s >> 8) % (uint32_t)(i + 1))]);
  }
  return p;
}

std::string errorOf(std::vector<Tensor> in, std::vector<int64_t> perm) {
  auto r = runOp("rope_perm", in, {attrInts("perm", perm)});
  EXPECT_FALSE(r.ok()) << "rope_perm should fail";
  return r.ok() ? std::string() : r.error().message();
}

Tensor ropePerm(const Tensor &x, const Tensor &c, const Tensor &s,
                const std::vector<int64_t> &perm) {
  return runOne("rope_perm", {x, c, s}, {attrInts("perm", perm)});
}

/// Index of the element of a (right-aligned, broadcast) operand of shape `in`
/// for the output multi-index `idx` of rank `r`.
int64_t broadcastOffset(const Shape &in, const std::vector<int64_t> &idx) {
  int r = (int)idx.size(), k = in.rank();
  int64_t off = 0;
  for (int j = 0; j < k; ++j) {
    int64_t dim = in[j];
    int64_t i = idx[(size_t)(r - k + j)];
    off = off * dim + (dim == 1 ? 0 : i);
  }
  return off;
}

/// y[..., i] = x[..., i] * cos[..., i] + x[..., perm[i]] * sin[..., i], one
/// element at a time from multi-indices (f32 products, then the sum).
Tensor naive(const Tensor &x, const Tensor &c, const Tensor &s, const std::vector<int64_t> &perm,
             const Shape &out) {
  std::vector<float> px = floatsOf(x), pc = floatsOf(c), ps = floatsOf(s);
  std::vector<float> y((size_t)out.numel());
  int r = out.rank();
  std::vector<int64_t> idx((size_t)r, 0);
  for (int64_t n = 0; n < out.numel(); ++n) {
    int64_t rem = n;
    for (int d = r - 1; d >= 0; --d) {
      idx[(size_t)d] = rem % out[d];
      rem /= out[d];
    }
    std::vector<int64_t> turned = idx;
    turned[(size_t)r - 1] = perm[(size_t)idx[(size_t)r - 1]];
    float direct = px[(size_t)broadcastOffset(x.shape(), idx)] *
                   pc[(size_t)broadcastOffset(c.shape(), idx)];
    float rotated = px[(size_t)broadcastOffset(x.shape(), turned)] *
                    ps[(size_t)broadcastOffset(s.shape(), idx)];
    y[(size_t)n] = direct + rotated;
  }
  return f32(out, y);
}

/// Equal shapes and values bit for bit (both compute the same f32 roundings).
void expectSame(const std::string &what, const Tensor &got, const Tensor &want) {
  ASSERT_EQ(got.dtype(), want.dtype()) << what;
  ASSERT_EQ(got.shape(), want.shape())
      << what << ": shape " << got.shape().str() << ", reference " << want.shape().str();
  std::vector<float> g = floatsOf(got), w = floatsOf(want);
  for (size_t i = 0; i < w.size(); ++i)
    ASSERT_EQ(std::memcmp(&g[i], &w[i], sizeof(float)), 0)
        << what << " element " << i << ": rope_perm " << g[i] << ", reference " << w[i]
        << " (tolerance: exact)";
}

struct Case {
  Shape x, cos, sin, out;
};

// Decode [1, 9, 1, 64] and prefill [1, 9, 16, 64] with [T, 64] tables (the
// 125M shapes), an odd D = 7, a rank-1 x, x broadcast up by the tables, a cos
// with one lane (lane step 0) and a sin of another rank, a D of 1030.
const Case kCases[] = {
    {{1, 9, 1, 64}, {1, 64}, {1, 64}, {1, 9, 1, 64}},
    {{1, 9, 16, 64}, {16, 64}, {16, 64}, {1, 9, 16, 64}},
    {{2, 3, 5, 7}, {5, 7}, {5, 7}, {2, 3, 5, 7}},
    {{6}, {6}, {6}, {6}},
    {{5, 6}, {2, 5, 6}, {2, 5, 6}, {2, 5, 6}},
    {{2, 4, 8}, {4, 1}, {1, 4, 8}, {2, 4, 8}},
    {{2, 1030}, {1030}, {1030}, {2, 1030}}, // D above the kernel's gather buffer
    // Many rows with the tables broadcast differently (each row its own offsets).
    {{2, 3, 70, 10}, {70, 10}, {1, 3, 70, 10}, {2, 3, 70, 10}},
};

TEST(RopePermKernel, MatchesNaiveReference) {
  uint32_t seed = 1;
  for (const Case &c : kCases) {
    int64_t d = c.x[c.x.rank() - 1];
    std::vector<int64_t> perm = randomPerm(d, seed);
    Tensor x = randomF32(c.x, seed + 1), cs = randomF32(c.cos, seed + 2),
           sn = randomF32(c.sin, seed + 3);
    seed += 4;
    expectSame("rope_perm x " + c.x.str() + " cos " + c.cos.str() + " sin " + c.sin.str(),
               ropePerm(x, cs, sn, perm), naive(x, cs, sn, perm, c.out));
  }
}

TEST(RopePermKernel, MatchesUnfusedPortableKernels) {
  uint32_t seed = 100;
  for (const Case &c : kCases) {
    int64_t d = c.x[c.x.rank() - 1];
    std::vector<int64_t> perm = randomPerm(d, seed);
    Tensor x = randomF32(c.x, seed + 1), cs = randomF32(c.cos, seed + 2),
           sn = randomF32(c.sin, seed + 3);
    seed += 4;
    Tensor selected = runOne("index_select", {x, i64({d}, perm)}, {attrInt("dim", -1)});
    Tensor direct = runOne("binary", {x, cs}, {attrStr("fn", "mul")});
    Tensor turned = runOne("binary", {selected, sn}, {attrStr("fn", "mul")});
    Tensor unfused = runOne("binary", {direct, turned}, {attrStr("fn", "add")});
    expectSame("rope_perm vs index_select/mul/mul/add x " + c.x.str(), ropePerm(x, cs, sn, perm),
               unfused);
  }
}

// MobileLLM's tables (python/kiln/models/mobilellm.py rope_tables): perm swaps
// the halves (rotate-half) or the pairs (interleaved) and sin is negative on
// the first half / even lanes; rope_perm then equals `rope` with the unsigned
// sin (the same products up to a sign, so equal bit for bit).
TEST(RopePermKernel, MobileLLMTablesEqualRopeStyles) {
  const int64_t d = 8, t = 3;
  Tensor x = randomF32({1, 2, t, d}, 7), cs = randomF32({t, d}, 8), sn = randomF32({t, d}, 9);
  std::vector<float> sv = floatsOf(sn);
  for (bool interleaved : {false, true}) {
    std::vector<int64_t> perm((size_t)d);
    std::vector<float> signedSin = sv;
    for (int64_t j = 0; j < d; ++j) {
      perm[(size_t)j] = interleaved ? (j ^ 1) : (j + d / 2) % d;
      bool negative = interleaved ? j % 2 == 0 : j < d / 2;
      for (int64_t r = 0; r < t; ++r)
        if (negative)
          signedSin[(size_t)(r * d + j)] = -signedSin[(size_t)(r * d + j)];
    }
    const char *style = interleaved ? "interleaved" : "rotate_half";
    Tensor want = runOne("rope", {x, cs, sn}, {attrStr("style", style)});
    expectSame(std::string("rope_perm with the ") + style + " table",
               ropePerm(x, cs, f32({t, d}, signedSin), perm), want);
  }
}

// f16 operands: computed in f32 from the f16 values, rounded once to f16.
TEST(RopePermKernel, HalfPrecisionRoundsOnce) {
  std::vector<int64_t> perm = randomPerm(6, 42);
  Tensor x = randomF32({2, 3, 6}, 1), cs = randomF32({3, 6}, 2), sn = randomF32({3, 6}, 3);
  auto toF16 = [](const Tensor &t) { return runOne("cast", {t}, {attrStr("dtype", "float16")}); };
  auto toF32 = [](const Tensor &t) { return runOne("cast", {t}, {attrStr("dtype", "float32")}); };
  Tensor xh = toF16(x), ch = toF16(cs), sh = toF16(sn);
  Tensor got = ropePerm(xh, ch, sh, perm);
  ASSERT_EQ(got.dtype(), DType::Float16);
  Tensor want = toF16(naive(toF32(xh), toF32(ch), toF32(sh), perm, Shape{2, 3, 6}));
  expectSame("rope_perm f16 [2,3,6]", toF32(got), toF32(want));
}

TEST(RopePermKernel, RejectsBadInputs) {
  Tensor x = randomF32({3, 4}, 1), c = randomF32({3, 4}, 2);
  std::string e = errorOf({x, c, c}, {0, 0, 2, 3});
  EXPECT_NE(e.find("not a permutation of 0..3"), std::string::npos) << e;
  e = errorOf({x, c, c}, {0, 1, 2, 4});
  EXPECT_NE(e.find("not a permutation"), std::string::npos) << e;
  e = errorOf({x, c, c}, {});
  EXPECT_NE(e.find("must not be empty"), std::string::npos) << e;
  e = errorOf({x, c, c}, {1, 0});
  EXPECT_NE(e.find("perm has 2 entries but the last dim of x"), std::string::npos) << e;
  e = errorOf({randomF32({3, 1}, 1), c, c}, {0});
  EXPECT_NE(e.find("would be broadcast"), std::string::npos) << e;
  e = errorOf({x, randomF32({2, 4}, 2), c}, {1, 0, 3, 2});
  EXPECT_NE(e.find("broadcast"), std::string::npos) << e;
  e = errorOf({i64({4}, {1, 2, 3, 4}), c, c}, {1, 0, 3, 2});
  EXPECT_NE(e.find("x must be a float tensor"), std::string::npos) << e;
  e = errorOf({x, c, runOne("cast", {c}, {attrStr("dtype", "float16")})}, {1, 0, 3, 2});
  EXPECT_NE(e.find("sin"), std::string::npos) << e;
  EXPECT_NE(e.find("must have the dtype of x"), std::string::npos) << e;
  e = errorOf({f32({}, {1.0f}), f32({}, {1.0f}), f32({}, {1.0f})}, {0});
  EXPECT_NE(e.find("at least 1 dim"), std::string::npos) << e;
}

} // namespace
