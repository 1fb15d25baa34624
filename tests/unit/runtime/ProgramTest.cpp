// Program loading, input checking, buffer reuse, constants, states, and the
// run/inspect commands end to end on a small program.
#include "TestProgramBuilder.h"

#include "runtime-stub/io/Npy.h"
#include "runtime-stub/tools/Commands.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <sys/stat.h>
#include <unistd.h>

using namespace kiln;
using namespace kiln::test;
using kiln::rt::DType;
using kiln::rt::Tensor;

namespace {

// forward(x f32[1,3]) = (linear(x, W, b) + x_state_free) ; W constant [2,3], b constant [2].
TProgram smallProgram() {
  TProgram p;
  std::vector<float> w = {1, 0, 1, 0, 1, 0};
  std::vector<float> b = {0.5f, -1};
  p.segments.push_back(std::vector<uint8_t>((uint8_t *)w.data(), (uint8_t *)(w.data() + 6)));
  p.segments.push_back(std::vector<uint8_t>((uint8_t *)b.data(), (uint8_t *)(b.data() + 2)));
  p.states.push_back({"counter", fb::DType::Float32, {2}});
  TMethod m;
  int x = m.add({"x", fb::DType::Float32, 2, {1, 3}, fb::ValueKind::Input});
  int vw = m.add({"w", fb::DType::Float32, 2, {2, 3}, fb::ValueKind::Constant, 0});
  int vb = m.add({"b", fb::DType::Float32, 1, {2}, fb::ValueKind::Constant, 1});
  int st = m.add({"counter", fb::DType::Float32, 1, {2}, fb::ValueKind::State, -1, 0});
  int y = m.add({"y", fb::DType::Float32, 2, {1, 2}, fb::ValueKind::Intermediate});
  int z = m.add({"z", fb::DType::Unknown, -1, {}, fb::ValueKind::Output});
  int s = m.add({"s", fb::DType::Float32, 1, {-1}, fb::ValueKind::Output});
  m.inputs = {x};
  m.outputs = {z, s};
  m.instrs.push_back({"linear", {x, vw, vb}, {y}, {}, "model.py:10"});
  m.instrs.push_back({"binary", {y, st}, {z}, {attrStr("fn", "add")}, "model.py:11"});
  m.instrs.push_back({"reduce", {z}, {s}, {attrStr("fn", "sum"), attrInts("dims", {0})}, "model.py:12"});
  p.methods.push_back(m);
  TMethod other = m;
  other.name = "other";
  p.methods.push_back(other);
  p.metadata.push_back({"producer", "test \"quoted\""});
  return p;
}

std::string tempDir() {
  char tmpl[] = "/tmp/kiln-rt-test-XXXXXX";
  char *d = mkdtemp(tmpl);
  return d ? d : "/tmp";
}

void writeBytes(const std::string &path, const std::vector<uint8_t> &bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write((const char *)bytes.data(), (std::streamsize)bytes.size());
}

} // namespace

TEST(Program, RunChecksInputsAndReusesBuffers) {
  auto bytes = smallProgram().build();
  auto prog = rt::Program::loadFromBytes(bytes.data(), bytes.size());
  ASSERT_TRUE(prog.ok()) << prog.error().message();
  rt::Program &p = **prog;
  EXPECT_EQ(p.methodNames(), (std::vector<std::string>{"forward", "other"}));
  const rt::MethodInfo *info = p.methodInfo("forward");
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->inputs[0].str(), "f32[1,3]");
  EXPECT_EQ(info->outputs[0].str(), "?[*]");
  EXPECT_EQ(info->outputs[1].str(), "f32[?]");

  auto r1 = p.run("forward", {f32({1, 3}, {1, 2, 3})});
  ASSERT_TRUE(r1.ok()) << r1.error().message();
  // y = [1+3+0.5, 2-1] = [4.5, 1]; state is zero.
  EXPECT_EQ(floatsOf((*r1)[0]), (std::vector<float>{4.5f, 1.0f}));
  EXPECT_EQ(floatsOf((*r1)[1]), (std::vector<float>{4.5f, 1.0f}));
  auto r2 = p.run("forward", {f32({1, 3}, {0, 0, 0})});
  ASSERT_TRUE(r2.ok()) << r2.error().message();
  // The first results are still intact (buffers shared with the caller are not reused).
  EXPECT_EQ(floatsOf((*r1)[0]), (std::vector<float>{4.5f, 1.0f}));
  EXPECT_EQ(floatsOf((*r2)[0]), (std::vector<float>{0.5f, -1.0f}));

  auto bad = p.run("forward", {f32({2, 3}, {1, 2, 3, 4, 5, 6})});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message(), "method forward: input 0 (x) has shape [2,3], expected [1,3]");
  auto badType = p.run("forward", {i64({1, 3}, {1, 2, 3})});
  ASSERT_FALSE(badType.ok());
  EXPECT_EQ(badType.error().message(), "method forward: input 0 (x) has dtype i64, expected f32");
  auto badCount = p.run("forward", {});
  ASSERT_FALSE(badCount.ok());
  EXPECT_EQ(badCount.error().message(), "method forward: expected 1 inputs, got 0");
  auto noMethod = p.run("decode", {});
  ASSERT_FALSE(noMethod.ok());
  EXPECT_NE(noMethod.error().message().find("methods: forward, other"), std::string::npos);
}

TEST(Program, ConstantsAreBorrowedFromTheFile) {
  TProgram tp = smallProgram();
  tp.methods[0].outputs = {1}; // return the constant W directly
  auto bytes = tp.build();
  auto prog = rt::Program::loadFromBytes(bytes.data(), bytes.size());
  ASSERT_TRUE(prog.ok()) << prog.error().message();
  auto r = (*prog)->run("forward", {f32({1, 3}, {1, 2, 3})});
  ASSERT_TRUE(r.ok()) << r.error().message();
  const Tensor &w = (*r)[0];
  EXPECT_TRUE(w.isBorrowed());
  const uint8_t *base = (*prog)->view().fileData;
  EXPECT_TRUE(w.dataAs<uint8_t>() >= base &&
              w.dataAs<uint8_t>() < base + (*prog)->view().fileSize);
  EXPECT_EQ(floatsOf(w), (std::vector<float>{1, 0, 1, 0, 1, 0}));
}

TEST(Program, LoadErrorsNameTheProblem) {
  {
    TProgram tp = smallProgram();
    tp.methods[0].instrs[1].op = "frobnicate";
    auto bytes = tp.build();
    auto prog = rt::Program::loadFromBytes(bytes.data(), bytes.size());
    ASSERT_FALSE(prog.ok());
    EXPECT_EQ(prog.error().message(),
              "method forward: instruction 1 (frobnicate at model.py:11): unknown op 'frobnicate' "
              "(no kernel in this runtime)");
  }
  {
    TProgram tp = smallProgram();
    tp.methods[0].instrs[0].inputs[1] = 42;
    auto bytes = tp.build();
    auto prog = rt::Program::loadFromBytes(bytes.data(), bytes.size());
    ASSERT_FALSE(prog.ok());
    EXPECT_NE(prog.error().message().find("input 1 refers to value 42, but the method has 7 values"),
              std::string::npos) << prog.error().message();
  }
  {
    TProgram tp = smallProgram();
    tp.methods[0].values[1].shape = {3, 3}; // segment holds 24 bytes, not 36
    auto bytes = tp.build();
    auto prog = rt::Program::loadFromBytes(bytes.data(), bytes.size());
    ASSERT_FALSE(prog.ok());
    EXPECT_NE(prog.error().message().find("needs 36 bytes but segment 0 has 24"), std::string::npos)
        << prog.error().message();
  }
  {
    TProgram tp = smallProgram();
    tp.methods[0].instrs[1].attrs = {attrStr("fn", "plus")};
    auto bytes = tp.build();
    auto prog = rt::Program::loadFromBytes(bytes.data(), bytes.size());
    ASSERT_FALSE(prog.ok());
    EXPECT_NE(prog.error().message().find("unknown fn 'plus'"), std::string::npos);
  }
  {
    auto bytes = smallProgram().build();
    // Segment offsets must be multiples of 64: corrupt the header's segments_offset.
    rt::Result<std::unique_ptr<rt::Program>> prog = rt::Program::loadFromBytes(bytes.data(), 10);
    ASSERT_FALSE(prog.ok());
    EXPECT_NE(prog.error().message().find("smaller than the 64-byte header"), std::string::npos);
    FileHeader h;
    std::memcpy(&h, bytes.data(), sizeof(h));
    h.segments_offset += 8;
    std::memcpy(bytes.data(), &h, sizeof(h));
    prog = rt::Program::loadFromBytes(bytes.data(), bytes.size());
    ASSERT_FALSE(prog.ok());
    EXPECT_NE(prog.error().message().find("segments_offset"), std::string::npos);
  }
}

TEST(Program, RuntimeShapeErrorNamesOpAndLocation) {
  TProgram tp = smallProgram();
  tp.methods[0].values[0].shape = {1, -1}; // x: dynamic feature dim
  auto bytes = tp.build();
  auto prog = rt::Program::loadFromBytes(bytes.data(), bytes.size());
  ASSERT_TRUE(prog.ok()) << prog.error().message();
  auto r = (*prog)->run("forward", {f32({1, 2}, {1, 2})});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(),
            "method forward: instruction 0 (linear at model.py:10): x "
            "f32[1,2] has 2 features but weight f32[2,3] expects 3");
}

TEST(Program, RunAndInspectCommands) {
  std::string dir = tempDir();
  std::string prog = dir + "/p.kiln";
  writeBytes(prog, smallProgram().build());
  ASSERT_TRUE(rt::writeNpy(dir + "/x.npy", f32({1, 3}, {1, 2, 3})).ok());
  std::string outDir = dir + "/out/nested";
  std::vector<std::string> args = {"run", prog, "--input", dir + "/x.npy", "--output-dir", outDir};
  std::vector<char *> argv;
  for (auto &a : args)
    argv.push_back(&a[0]);
  // Two methods, one of them forward: forward is the default.
  ASSERT_EQ(rt::kilnRunCommand((int)argv.size(), argv.data()), 0);
  auto y = rt::readNpy(outDir + "/output0.npy");
  ASSERT_TRUE(y.ok()) << y.error().message();
  EXPECT_EQ(floatsOf(*y), (std::vector<float>{4.5f, 1.0f}));
  EXPECT_TRUE(rt::readNpy(outDir + "/output1.npy").ok());

  // A wrong input writes nothing.
  std::string outDir2 = dir + "/out2";
  ASSERT_TRUE(rt::writeNpy(dir + "/bad.npy", f32({2}, {1, 2})).ok());
  std::vector<std::string> bad = {"run", prog, "--input", dir + "/bad.npy", "--output-dir", outDir2};
  std::vector<char *> badv;
  for (auto &a : bad)
    badv.push_back(&a[0]);
  EXPECT_EQ(rt::kilnRunCommand((int)badv.size(), badv.data()), 1);
  struct stat st;
  EXPECT_NE(stat((outDir2 + "/output0.npy").c_str(), &st), 0);

  std::vector<std::string> unk = {"run", prog, "--bogus"};
  std::vector<char *> unkv;
  for (auto &a : unk)
    unkv.push_back(&a[0]);
  EXPECT_EQ(rt::kilnRunCommand((int)unkv.size(), unkv.data()), 1);

  // inspect --json to a file via stdout redirection.
  std::string jsonPath = dir + "/inspect.json";
  fflush(stdout);
  int saved = dup(1);
  FILE *f = fopen(jsonPath.c_str(), "w");
  ASSERT_NE(f, nullptr);
  dup2(fileno(f), 1);
  std::vector<std::string> ins = {"inspect", prog, "--json"};
  std::vector<char *> insv;
  for (auto &a : ins)
    insv.push_back(&a[0]);
  int rc = rt::kilnInspectCommand((int)insv.size(), insv.data());
  fflush(stdout);
  dup2(saved, 1);
  close(saved);
  fclose(f);
  ASSERT_EQ(rc, 0);
  std::ifstream in(jsonPath);
  std::string json((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(json.find("\"format_version\": 2"), std::string::npos) << json;
  EXPECT_NE(json.find("\"constant_bytes\": 32"), std::string::npos) << json;
  EXPECT_NE(json.find("\"ops\": {\"binary\": 1, \"linear\": 1, \"reduce\": 1}"), std::string::npos) << json;
  EXPECT_NE(json.find("\"instructions\": 3"), std::string::npos) << json;
  EXPECT_NE(json.find("\"producer\": \"test \\\"quoted\\\"\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"shape\": [1, 3]"), std::string::npos) << json;

  for (const std::string &f : {outDir + "/output0.npy", outDir + "/output1.npy", prog,
                               dir + "/x.npy", dir + "/bad.npy", jsonPath})
    unlink(f.c_str());
  for (const std::string &d : {outDir, dir + "/out", outDir2, dir})
    rmdir(d.c_str());
}
