// Program::runViews (issue 6, per-token overhead): outputs handed out as views
// valid until the next run, one arena shared by all methods, skipped outputs,
// input checks that stay on every run, and states kept in zero pages.
#include "TestProgramBuilder.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace kiln;
using namespace kiln::test;
using kiln::rt::Tensor;

namespace {

/// forward(x f32[2,4]) = -exp(x) + x (arena 128: a, b at 0, c at 64);
/// small(x f32[2,4]) = exp(x) (arena 64); stateful(x f32[1,2], pos i64[1]):
/// writes x into row pos of state s f32[4,2], returns exp(x) (not planned).
TProgram program() {
  TProgram p;
  p.states.push_back({"s", fb::DType::Float32, {4, 2}});
  {
    TMethod m;
    m.arenaBytes = m.arenaLowerBoundBytes = 128;
    m.naiveBytes = 192;
    int x = m.add({"x", fb::DType::Float32, 2, {2, 4}, fb::ValueKind::Input});
    TValue a{"a", fb::DType::Float32, 2, {2, 4}, fb::ValueKind::Intermediate};
    a.arenaOffset = 0;
    TValue b{"b", fb::DType::Float32, 2, {2, 4}, fb::ValueKind::Intermediate};
    b.arenaOffset = 0;
    TValue c{"c", fb::DType::Float32, 2, {2, 4}, fb::ValueKind::Output};
    c.arenaOffset = 64;
    int va = m.add(a), vb = m.add(b), vc = m.add(c);
    m.inputs = {x};
    m.outputs = {vc};
    m.instrs.push_back({"unary", {x}, {va}, {attrStr("fn", "exp")}});
    m.instrs.push_back({"unary", {va}, {vb}, {attrStr("fn", "neg")}});
    m.instrs.push_back({"binary", {vb, x}, {vc}, {attrStr("fn", "add")}});
    p.methods.push_back(m);
  }
  {
    TMethod m;
    m.name = "small";
    m.arenaBytes = m.arenaLowerBoundBytes = m.naiveBytes = 64;
    int x = m.add({"x", fb::DType::Float32, 2, {2, 4}, fb::ValueKind::Input});
    TValue y{"y", fb::DType::Float32, 2, {2, 4}, fb::ValueKind::Output};
    y.arenaOffset = 0;
    int vy = m.add(y);
    m.inputs = {x};
    m.outputs = {vy};
    m.instrs.push_back({"unary", {x}, {vy}, {attrStr("fn", "exp")}});
    p.methods.push_back(m);
  }
  {
    TMethod m;
    m.name = "stateful";
    int x = m.add({"x", fb::DType::Float32, 2, {1, 2}, fb::ValueKind::Input});
    int pos = m.add({"pos", fb::DType::Int64, 1, {1}, fb::ValueKind::Input});
    TValue s{"s", fb::DType::Float32, 2, {4, 2}, fb::ValueKind::State};
    s.state = 0;
    int vs = m.add(s);
    int vo = m.add({"o", fb::DType::Float32, 2, {1, 2}, fb::ValueKind::Output});
    m.inputs = {x, pos};
    m.outputs = {vo};
    m.instrs.push_back({"cache_write", {vs, pos, x}, {vs}, {attrInt("dim", 0)}});
    m.instrs.push_back({"unary", {x}, {vo}, {attrStr("fn", "exp")}});
    p.methods.push_back(m);
  }
  return p;
}

std::vector<float> forwardOf(const std::vector<float> &x) {
  std::vector<float> y;
  for (float v : x)
    y.push_back(-std::exp(v) + v);
  return y;
}

std::vector<float> expOf(const std::vector<float> &x) {
  std::vector<float> y;
  for (float v : x)
    y.push_back(std::exp(v));
  return y;
}

void expectNear(const std::vector<float> &got, const std::vector<float> &want,
                const std::string &what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], 1e-6f) << what << " element " << i << " (tolerance 1e-6)";
}

class RunViews : public ::testing::Test {
protected:
  void SetUp() override {
    bytes = program().build();
    auto loaded = rt::Program::loadFromBytes(bytes.data(), bytes.size());
    ASSERT_TRUE(loaded.ok()) << loaded.error().message();
    prog = loaded.take();
  }
  std::vector<uint8_t> bytes;
  std::unique_ptr<rt::Program> prog;
};

} // namespace

TEST_F(RunViews, OutputsAreViewsValidUntilTheNextRun) {
  const std::vector<float> x1 = {0, 1, 2, 3, -1, -2, 0.5f, 0.25f};
  const std::vector<float> x2 = {1, 1, 1, 1, 2, 2, 2, 2};
  int forward = prog->methodIndex("forward");
  ASSERT_EQ(forward, 0);
  EXPECT_EQ(prog->methodIndex("nope"), -1);
  std::vector<Tensor> out;
  ASSERT_FALSE(prog->runViews(forward, {f32({2, 4}, x1)}, &out).failed());
  ASSERT_EQ(out.size(), 1u);
  expectNear(floatsOf(out[0]), forwardOf(x1), "view after run 1");
  const void *where = out[0].data();
  // run() hands out a copy that outlives later runs.
  auto copy = prog->run("forward", {f32({2, 4}, x1)});
  ASSERT_TRUE(copy.ok()) << copy.error().message();
  EXPECT_NE((*copy)[0].data(), where);
  std::vector<Tensor> out2;
  ASSERT_FALSE(prog->runViews("forward", {f32({2, 4}, x2)}, &out2).failed());
  expectNear(floatsOf(out2[0]), forwardOf(x2), "view after run 2");
  // Same arena slice, no allocation: the first view now shows run 2's values.
  EXPECT_EQ(out2[0].data(), where);
  expectNear(floatsOf(out[0]), forwardOf(x2), "run 1's view after run 2 (documented)");
  expectNear(floatsOf((*copy)[0]), forwardOf(x1), "run()'s copy after run 2");
}

TEST_F(RunViews, MethodsShareOneArena) {
  // The largest plan (forward's 128 bytes); stateful plans nothing.
  EXPECT_EQ(prog->sharedArenaBytes(), 128u);
  const std::vector<float> x = {0.5f, -1, 2, 0, 1, 1.5f, -0.25f, 3};
  std::vector<Tensor> a, b;
  for (int round = 0; round < 3; ++round) {
    ASSERT_FALSE(prog->runViews("small", {f32({2, 4}, x)}, &b).failed());
    expectNear(floatsOf(b[0]), expOf(x), "small, round " + std::to_string(round));
    const void *smallOut = b[0].data();
    ASSERT_FALSE(prog->runViews("forward", {f32({2, 4}, x)}, &a).failed());
    expectNear(floatsOf(a[0]), forwardOf(x), "forward, round " + std::to_string(round));
    // Both plans start at the same arena: small's output (offset 0) is where
    // forward kept a and b.
    EXPECT_EQ(static_cast<const char *>(smallOut) + 64, static_cast<const char *>(a[0].data()));
  }
  // A method given its own arena leaves the shared one.
  alignas(64) static float own[32];
  ASSERT_FALSE(prog->setArena("forward", own, sizeof(own)).failed());
  EXPECT_EQ(prog->sharedArenaBytes(), 64u);
  ASSERT_FALSE(prog->runViews("forward", {f32({2, 4}, x)}, &a).failed());
  // c sits at offset 64 of the caller's arena.
  EXPECT_EQ(a[0].data(), static_cast<const void *>(own + 16));
  expectNear(floatsOf(a[0]), forwardOf(x), "forward in its own arena");
}

TEST_F(RunViews, BadInputsFailOnEveryRun) {
  const std::vector<float> x(8, 1.0f);
  std::vector<Tensor> out;
  // Two good runs first: later runs skip the per-instruction output checks,
  // never the input checks.
  for (int i = 0; i < 2; ++i)
    ASSERT_FALSE(prog->runViews("forward", {f32({2, 4}, x)}, &out).failed());
  rt::Error shape = prog->runViews("forward", {f32({4, 2}, x)}, &out);
  ASSERT_TRUE(shape.failed());
  EXPECT_EQ(shape.message(), "method forward: input 0 (x) has shape [4,2], expected [2,4]");
  rt::Error dtype = prog->runViews("forward", {i64({2, 4}, {1, 2, 3, 4, 5, 6, 7, 8})}, &out);
  ASSERT_TRUE(dtype.failed());
  EXPECT_EQ(dtype.message(), "method forward: input 0 (x) has dtype i64, expected f32");
  rt::Error count = prog->runViews("forward", {}, &out);
  ASSERT_TRUE(count.failed());
  EXPECT_EQ(count.message(), "method forward: expected 1 inputs, got 0");
  rt::Error name = prog->runViews("nope", {}, &out);
  ASSERT_TRUE(name.failed());
  EXPECT_EQ(name.message(), "no method 'nope' (methods: forward, small, stateful)");
  rt::Error index = prog->runViews(7, {}, &out);
  ASSERT_TRUE(index.failed());
  EXPECT_EQ(index.message(), "no method with index 7 (3 methods)");
  auto viaRun = prog->run("forward", {f32({2, 3}, {1, 2, 3, 4, 5, 6})});
  ASSERT_FALSE(viaRun.ok());
  EXPECT_EQ(viaRun.error().message(), "method forward: input 0 (x) has shape [2,3], expected [2,4]");
  // And a good run still works afterwards.
  ASSERT_FALSE(prog->runViews("forward", {f32({2, 4}, x)}, &out).failed());
  expectNear(floatsOf(out[0]), forwardOf(x), "after the errors");
}

TEST_F(RunViews, SkippedOutputsDoNotRunButStatesAreWritten) {
  const Tensor *s = prog->state("s");
  ASSERT_NE(s, nullptr);
  expectNear(floatsOf(*s), std::vector<float>(8, 0.0f), "state at load");
  std::vector<Tensor> out;
  ASSERT_FALSE(
      prog->runViews("stateful", {f32({1, 2}, {3, 4}), i64({1}, {2})}, &out, /*skip=*/1).failed());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_FALSE(out[0].defined()) << "a skipped output comes back undefined";
  expectNear(floatsOf(*s), {0, 0, 0, 0, 3, 4, 0, 0}, "state after the skipped-output run");
  ASSERT_FALSE(prog->runViews("stateful", {f32({1, 2}, {5, 6}), i64({1}, {0})}, &out).failed());
  ASSERT_TRUE(out[0].defined());
  expectNear(floatsOf(out[0]), expOf({5, 6}), "output when wanted");
  expectNear(floatsOf(*s), {5, 6, 0, 0, 3, 4, 0, 0}, "state after the full run");
  // resetState gives zero pages back; later writes work as at load.
  ASSERT_FALSE(prog->resetState().failed());
  expectNear(floatsOf(*s), std::vector<float>(8, 0.0f), "state after resetState");
  ASSERT_FALSE(prog->runViews("stateful", {f32({1, 2}, {7, 8}), i64({1}, {3})}, &out).failed());
  expectNear(floatsOf(*s), {0, 0, 0, 0, 0, 0, 7, 8}, "state written after resetState");
}

TEST_F(RunViews, ProfileCountsEveryInstructionRun) {
  const std::vector<float> x = {0.5f, -1, 2, 0, 1, 1.5f, -0.25f, 3};
  std::vector<Tensor> out;
  // Off by default: nothing recorded.
  ASSERT_FALSE(prog->runViews("forward", {f32({2, 4}, x)}, &out).failed());
  EXPECT_FALSE(prog->profiling());
  EXPECT_TRUE(prog->profile("forward").empty());
  prog->setProfiling(true);
  for (int i = 0; i < 3; ++i)
    ASSERT_FALSE(prog->runViews("forward", {f32({2, 4}, x)}, &out).failed());
  ASSERT_FALSE(prog->runViews("small", {f32({2, 4}, x)}, &out).failed());
  std::vector<rt::InstructionProfile> f = prog->profile("forward");
  ASSERT_EQ(f.size(), 3u);
  const char *ops[] = {"unary", "unary", "binary"};
  for (uint32_t k = 0; k < 3; ++k) {
    EXPECT_EQ(f[k].index, k);
    EXPECT_EQ(f[k].op, ops[k]) << "instruction " << k;
    EXPECT_EQ(f[k].calls, 3u) << "instruction " << k;
    EXPECT_GT(f[k].nanoseconds, 0u) << "instruction " << k;
    EXPECT_EQ(f[k].output, "f32[2,4]") << "instruction " << k;
  }
  std::vector<rt::InstructionProfile> s = prog->profile("small");
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].calls, 1u);
  EXPECT_TRUE(prog->profile("stateful").empty()) << "a method that never ran";
  EXPECT_TRUE(prog->profile("nope").empty());
  // Skipped instructions are not counted; switching on again clears the figures.
  prog->setProfiling(false);
  ASSERT_FALSE(prog->runViews("forward", {f32({2, 4}, x)}, &out).failed());
  EXPECT_EQ(prog->profile("forward")[0].calls, 3u) << "off: no more counting";
  prog->setProfiling(true);
  EXPECT_TRUE(prog->profile("forward").empty()) << "cleared when switched on again";
}
