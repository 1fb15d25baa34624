// The memory plan in the runtime: planned values bound to one arena per method
// (the runtime's or the caller's), in-place results, outputs copied out of the
// arena, and the reader's checks of Value.arena_offset / Method.arena_bytes.
#include "TestProgramBuilder.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>

using namespace kiln;
using namespace kiln::test;
using kiln::rt::Tensor;

namespace {

// forward(x f32[2,4]): a = exp(x) @0; b = neg(a) @0 (in place over a, which
// dies there); c = add(b, x) @64, returned. Arena 128 bytes (two 32-byte
// values, each at a multiple of 64).
TProgram plannedProgram(int64_t offsetA = 0, int64_t offsetB = 0, int64_t offsetC = 64,
                        uint64_t arenaBytes = 128) {
  TProgram p;
  TMethod m;
  m.arenaBytes = arenaBytes;
  m.arenaLowerBoundBytes = 128;
  m.naiveBytes = 192;
  int x = m.add({"x", fb::DType::Float32, 2, {2, 4}, fb::ValueKind::Input});
  TValue a{"a", fb::DType::Float32, 2, {2, 4}, fb::ValueKind::Intermediate};
  a.arenaOffset = offsetA;
  TValue b{"b", fb::DType::Float32, 2, {2, 4}, fb::ValueKind::Intermediate};
  b.arenaOffset = offsetB;
  TValue c{"c", fb::DType::Float32, 2, {2, 4}, fb::ValueKind::Output};
  c.arenaOffset = offsetC;
  int va = m.add(a), vb = m.add(b), vc = m.add(c);
  m.inputs = {x};
  m.outputs = {vc};
  m.instrs.push_back({"unary", {x}, {va}, {attrStr("fn", "exp")}});
  m.instrs.push_back({"unary", {va}, {vb}, {attrStr("fn", "neg")}});
  m.instrs.push_back({"binary", {vb, x}, {vc}, {attrStr("fn", "add")}});
  p.methods.push_back(m);
  return p;
}

std::vector<float> expected(const std::vector<float> &x) {
  std::vector<float> y;
  for (float v : x)
    y.push_back(-std::exp(v) + v);
  return y;
}

std::vector<float> floats(const Tensor &t) {
  const float *p = t.dataAs<float>();
  return std::vector<float>(p, p + t.numel());
}

void expectNear(const std::vector<float> &got, const std::vector<float> &want, const char *what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], 1e-6f) << what << " element " << i;
}

std::string loadError(const TProgram &tp) {
  auto bytes = tp.build();
  auto prog = rt::Program::loadFromBytes(bytes.data(), bytes.size());
  return prog.ok() ? std::string("(loaded)") : prog.error().message();
}

} // namespace

TEST(MemoryPlan, RunsInTheArenaAndCopiesOutputsOut) {
  auto bytes = plannedProgram().build();
  auto prog = rt::Program::loadFromBytes(bytes.data(), bytes.size());
  ASSERT_TRUE(prog.ok()) << prog.error().message();
  rt::Program &p = **prog;
  const rt::MethodInfo *info = p.methodInfo("forward");
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->arenaBytes, 128u);
  EXPECT_EQ(info->arenaLowerBoundBytes, 128u);
  EXPECT_EQ(info->naiveBytes, 192u);
  EXPECT_EQ(info->numPlannedValues, 3u);

  std::vector<float> x1 = {0, 1, 2, 3, -1, -2, 0.5f, 0.25f};
  std::vector<float> x2 = {1, 1, 1, 1, 2, 2, 2, 2};
  auto r1 = p.run("forward", {f32({2, 4}, x1)});
  ASSERT_TRUE(r1.ok()) << r1.error().message();
  expectNear(floats((*r1)[0]), expected(x1), "run 1 (in place neg over exp)");
  EXPECT_FALSE((*r1)[0].isArenaBound());
  auto r2 = p.run("forward", {f32({2, 4}, x2)});
  ASSERT_TRUE(r2.ok()) << r2.error().message();
  expectNear(floats((*r2)[0]), expected(x2), "run 2");
  // The first output was copied out of the arena: the second run left it intact.
  expectNear(floats((*r1)[0]), expected(x1), "run 1 output after run 2");
}

TEST(MemoryPlan, CallerArenaHoldsThePlannedValues) {
  auto bytes = plannedProgram().build();
  auto prog = rt::Program::loadFromBytes(bytes.data(), bytes.size());
  ASSERT_TRUE(prog.ok()) << prog.error().message();
  rt::Program &p = **prog;
  void *arena = std::aligned_alloc(64, 256);
  ASSERT_NE(arena, nullptr);
  std::memset(arena, 0, 256);

  rt::Error small = p.setArena("forward", arena, 64);
  ASSERT_TRUE(small.failed());
  EXPECT_EQ(small.message(), "method forward: the arena given has 64 bytes, the memory plan needs 128");
  rt::Error misaligned = p.setArena("forward", static_cast<char *>(arena) + 4, 128);
  ASSERT_TRUE(misaligned.failed());
  EXPECT_EQ(misaligned.message(), "method forward: the arena given is not 64-byte aligned");
  rt::Error noMethod = p.setArena("decode", arena, 128);
  ASSERT_TRUE(noMethod.failed());
  EXPECT_EQ(noMethod.message(), "no method 'decode'");

  ASSERT_FALSE(p.setArena("forward", arena, 128).failed());
  std::vector<float> x = {0, 1, 2, 3, 4, 5, 6, 7};
  auto r = p.run("forward", {f32({2, 4}, x)});
  ASSERT_TRUE(r.ok()) << r.error().message();
  expectNear(floats((*r)[0]), expected(x), "output");
  // The kernels wrote into the caller's arena: b = -exp(x) at offset 0 (over
  // a = exp(x)), c = b + x at offset 64.
  const float *slots = static_cast<const float *>(arena);
  std::vector<float> atB(slots, slots + 8), atC(slots + 16, slots + 24);
  std::vector<float> negExp;
  for (float v : x)
    negExp.push_back(-std::exp(v));
  expectNear(atB, negExp, "arena bytes [0, 32)");
  expectNear(atC, expected(x), "arena bytes [64, 96)");
  // The returned tensor does not alias the arena.
  EXPECT_NE((*r)[0].data(), static_cast<const void *>(slots + 16));
  // Drop the program before the arena it uses.
  (*prog).reset();
  std::free(arena);
}

TEST(MemoryPlan, ReaderChecksThePlan) {
  EXPECT_NE(loadError(plannedProgram(32)).find("value 1: arena_offset 32 is not a non-negative "
                                               "multiple of 64"),
            std::string::npos)
      << loadError(plannedProgram(32));
  EXPECT_NE(loadError(plannedProgram(0, 0, 128)).find("value 3: planned at arena offset 128 with "
                                                      "32 bytes, past the arena of 128 bytes"),
            std::string::npos)
      << loadError(plannedProgram(0, 0, 128));
  EXPECT_NE(loadError(plannedProgram(0, 0, 64, 64)).find("past the arena of 64 bytes"),
            std::string::npos);
  EXPECT_NE(loadError(plannedProgram(-5)).find("arena_offset -5 is not a non-negative multiple"),
            std::string::npos);
  {
    TProgram tp = plannedProgram();
    tp.methods[0].values[0].arenaOffset = 0; // the input
    EXPECT_NE(loadError(tp).find("value 0: arena_offset is set on a value that is not an "
                                 "intermediate or output"),
              std::string::npos)
        << loadError(tp);
  }
  {
    TProgram tp = plannedProgram();
    tp.methods[0].values[1].shape = {-1, 4}; // dynamic
    EXPECT_NE(loadError(tp).find("value 1: a planned value needs a static shape"),
              std::string::npos)
        << loadError(tp);
  }
  {
    TProgram tp = plannedProgram();
    tp.methods[0].values[1].dtype = fb::DType::Unknown;
    EXPECT_NE(loadError(tp).find("value 1: a planned value needs a known dtype"),
              std::string::npos)
        << loadError(tp);
  }
  {
    TProgram tp = plannedProgram();
    tp.methods[0].arenaBytes = (1ULL << 48) + 64;
    EXPECT_NE(loadError(tp).find("exceeds the limit"), std::string::npos) << loadError(tp);
  }
}

TEST(MemoryPlan, KernelOutputOfAnotherSizeIsAnError) {
  // x is declared f32[?,4]; a = exp(x) is planned as f32[2,4]. Given x of
  // shape [3,4], the kernel would need 48 bytes: an error, not a reallocation.
  TProgram tp = plannedProgram();
  tp.methods[0].values[0].shape = {-1, 4};
  auto bytes = tp.build();
  auto prog = rt::Program::loadFromBytes(bytes.data(), bytes.size());
  ASSERT_TRUE(prog.ok()) << prog.error().message();
  auto r = (*prog)->run("forward", {f32({3, 4}, std::vector<float>(12, 1.0f))});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("instruction 0 (unary at test.py:1)"), std::string::npos)
      << r.error().message();
  EXPECT_NE(r.error().message().find("the memory plan reserved 32 bytes for this value, but the "
                                     "kernel produced f32[3,4] (48 bytes)"),
            std::string::npos)
      << r.error().message();
}

TEST(MemoryPlan, ViewsOnTheirOperandAreSkipped) {
  // forward(x f32[1,1,3,4], y f32[1,2,3,4]):
  //   a = exp(x) @0; t = transpose(a, 1, 2) @0: [1,3,1,4], only a size-1 dim
  //   moves, planned on a (kiln-plan-memory does this): nothing to run;
  //   b = exp(y) @64; u = transpose(b, 1, 2) @192: reorders data, runs;
  //   c = neg(t) @320, d = neg(u) @384: the outputs.
  TProgram tp;
  TMethod m;
  m.arenaBytes = 512;
  m.arenaLowerBoundBytes = 512;
  m.naiveBytes = 512;
  int x = m.add({"x", fb::DType::Float32, 4, {1, 1, 3, 4}, fb::ValueKind::Input});
  int y = m.add({"y", fb::DType::Float32, 4, {1, 2, 3, 4}, fb::ValueKind::Input});
  auto planned = [&](const char *name, std::vector<int64_t> dims, int64_t offset,
                     fb::ValueKind kind = fb::ValueKind::Intermediate) {
    TValue v{name, fb::DType::Float32, (int)dims.size(), dims, kind};
    v.arenaOffset = offset;
    return m.add(v);
  };
  int a = planned("a", {1, 1, 3, 4}, 0), t = planned("t", {1, 3, 1, 4}, 0);
  int b = planned("b", {1, 2, 3, 4}, 64), u = planned("u", {1, 3, 2, 4}, 192);
  int c = planned("c", {1, 3, 1, 4}, 320, fb::ValueKind::Output);
  int d = planned("d", {1, 3, 2, 4}, 384, fb::ValueKind::Output);
  m.inputs = {x, y};
  m.outputs = {c, d};
  m.instrs.push_back({"unary", {x}, {a}, {attrStr("fn", "exp")}});
  m.instrs.push_back({"transpose", {a}, {t}, {attrInt("dim0", 1), attrInt("dim1", 2)}});
  m.instrs.push_back({"unary", {y}, {b}, {attrStr("fn", "exp")}});
  m.instrs.push_back({"transpose", {b}, {u}, {attrInt("dim0", 1), attrInt("dim1", -2)}});
  m.instrs.push_back({"unary", {t}, {c}, {attrStr("fn", "neg")}});
  m.instrs.push_back({"unary", {u}, {d}, {attrStr("fn", "neg")}});
  tp.methods.push_back(m);
  auto bytes = tp.build();
  auto prog = rt::Program::loadFromBytes(bytes.data(), bytes.size());
  ASSERT_TRUE(prog.ok()) << prog.error().message();
  EXPECT_EQ((*prog)->methodInfo("forward")->numNoopViews, 1u);
  std::vector<float> xv(12), yv(24);
  for (size_t i = 0; i < xv.size(); ++i)
    xv[i] = 0.1f * (float)i;
  for (size_t i = 0; i < yv.size(); ++i)
    yv[i] = -0.05f * (float)i;
  for (int run = 0; run < 2; ++run) {
    auto r = (*prog)->run("forward", {f32({1, 1, 3, 4}, xv), f32({1, 2, 3, 4}, yv)});
    ASSERT_TRUE(r.ok()) << r.error().message();
    ASSERT_EQ((*r)[0].shape().str(), "[1,3,1,4]");
    std::vector<float> want;
    for (float v : xv)
      want.push_back(-std::exp(v));
    expectNear(floats((*r)[0]), want, "neg(transpose(exp(x), 1, 2)), skipped transpose");
    want.clear();
    for (int h = 0; h < 3; ++h)
      for (int s = 0; s < 2; ++s)
        for (int k = 0; k < 4; ++k)
          want.push_back(-std::exp(yv[(size_t)((s * 3 + h) * 4 + k)]));
    expectNear(floats((*r)[1]), want, "neg(transpose(exp(y), 1, 2)), gathered");
  }
}

TEST(MemoryPlan, LinearGroupsNeedDisjointOutputs) {
  // forward(x f32[1,8]): y1 = linear(x, w1), y2 = linear(x, w2), both read x,
  // y = y1 + y2. With y1 @0 and y2 @64 the two linears form a group (run as one
  // job); a hand-made plan that puts y2 on y1's bytes must not be grouped
  // (the members run at once) and still runs them one after the other.
  for (int64_t offsetY2 : {64, 0}) {
    TProgram tp;
    TMethod m;
    m.arenaBytes = 192;
    m.arenaLowerBoundBytes = 128;
    m.naiveBytes = 192;
    tp.segments.push_back(std::vector<uint8_t>(8 * 8 * 4));
    tp.segments.push_back(std::vector<uint8_t>(8 * 8 * 4));
    for (int s = 0; s < 2; ++s) {
      float *w = reinterpret_cast<float *>(tp.segments[(size_t)s].data());
      for (int i = 0; i < 64; ++i)
        w[i] = (float)((i * (s + 3)) % 7) - 3.0f;
    }
    int x = m.add({"x", fb::DType::Float32, 2, {1, 8}, fb::ValueKind::Input});
    TValue w1{"w1", fb::DType::Float32, 2, {8, 8}, fb::ValueKind::Constant};
    w1.segment = 0;
    TValue w2{"w2", fb::DType::Float32, 2, {8, 8}, fb::ValueKind::Constant};
    w2.segment = 1;
    int vw1 = m.add(w1), vw2 = m.add(w2);
    TValue y1{"y1", fb::DType::Float32, 2, {1, 8}, fb::ValueKind::Intermediate};
    y1.arenaOffset = 0;
    TValue y2{"y2", fb::DType::Float32, 2, {1, 8}, fb::ValueKind::Intermediate};
    y2.arenaOffset = offsetY2;
    TValue y{"y", fb::DType::Float32, 2, {1, 8}, fb::ValueKind::Output};
    y.arenaOffset = 128;
    int v1 = m.add(y1), v2 = m.add(y2), vy = m.add(y);
    m.inputs = {x};
    m.outputs = {vy};
    m.instrs.push_back({"linear", {x, vw1}, {v1}, {}});
    m.instrs.push_back({"linear", {x, vw2}, {v2}, {}});
    m.instrs.push_back({"binary", {v1, v2}, {vy}, {attrStr("fn", "add")}});
    tp.methods.push_back(m);
    auto bytes = tp.build();
    auto prog = rt::Program::loadFromBytes(bytes.data(), bytes.size());
    ASSERT_TRUE(prog.ok()) << prog.error().message();
    ASSERT_FALSE((*prog)->setNumThreads(2).failed());
    EXPECT_EQ((*prog)->methodInfo("forward")->numLinearGroups, offsetY2 == 64 ? 1u : 0u)
        << "y2 at offset " << offsetY2;
    std::vector<float> xv = {1, -2, 3, 0.5f, -1, 2, 0.25f, 4};
    auto r = (*prog)->run("forward", {f32({1, 8}, xv)});
    ASSERT_TRUE(r.ok()) << r.error().message();
    if (offsetY2 != 64)
      continue; // overlapping y1 / y2: the sum reads y2 twice, no reference
    std::vector<float> want(8, 0.0f);
    for (int s = 0; s < 2; ++s) {
      const float *w = reinterpret_cast<const float *>(tp.segments[(size_t)s].data());
      for (int o = 0; o < 8; ++o)
        for (int c = 0; c < 8; ++c)
          want[(size_t)o] += xv[(size_t)c] * w[o * 8 + c];
    }
    expectNear(floats((*r)[0]), want, "y1 + y2 from a linear group");
  }
}
