// The loader on hostile input: every truncation and byte flips of a small valid
// program must give an error or a program that runs (or fails) cleanly; never
// a crash or a hang. Run under ctest (and ideally ASan/UBSan).
#include "TestProgramBuilder.h"

#include <gtest/gtest.h>

#include <random>

using namespace kiln;
using namespace kiln::test;
using kiln::rt::Tensor;

namespace {

// A program exercising constants (two segments), a state, attributes, optional
// operands, dynamic shapes, metadata and two methods.
std::vector<uint8_t> fuzzSeed() {
  TProgram p;
  std::vector<float> w = {1, 2, 3, 4, 5, 6};
  std::vector<int64_t> shape = {3, 2};
  p.segments.push_back(std::vector<uint8_t>((uint8_t *)w.data(), (uint8_t *)(w.data() + 6)));
  p.segments.push_back(std::vector<uint8_t>((uint8_t *)shape.data(), (uint8_t *)(shape.data() + 2)));
  p.states.push_back({"cache", fb::DType::Float32, {2}});
  TMethod m;
  int x = m.add({"x", fb::DType::Float32, 2, {-1, 3}, fb::ValueKind::Input});
  int vw = m.add({"w", fb::DType::Float32, 2, {2, 3}, fb::ValueKind::Constant, 0});
  int vs = m.add({"shape", fb::DType::Int64, 1, {2}, fb::ValueKind::Constant, 1});
  int st = m.add({"cache", fb::DType::Float32, 1, {2}, fb::ValueKind::State, -1, 0});
  int y = m.add({"y", fb::DType::Float32, 2, {-1, 2}});
  int z = m.add({"z", fb::DType::Unknown, -1, {}});
  int s = m.add({"s", fb::DType::Unknown, -1, {}, fb::ValueKind::Output});
  int r = m.add({"r", fb::DType::Float32, -1, {}, fb::ValueKind::Output});
  m.inputs = {x};
  m.outputs = {s, r};
  m.instrs.push_back({"linear", {x, vw, -1}, {y}, {}, "m.py:1"});
  m.instrs.push_back({"binary", {y, st}, {z}, {attrStr("fn", "mul")}, "m.py:2"});
  m.instrs.push_back({"softmax", {z}, {s}, {attrInt("dim", -1), attrBool("log", false)}, "m.py:3"});
  m.instrs.push_back({"reshape", {vw, vs}, {r}, {}, "m.py:4"});
  p.methods.push_back(m);
  TMethod d = m;
  d.name = "decode";
  p.methods.push_back(d);
  p.metadata.push_back({"producer", "fuzz"});
  return p.build();
}

// Loads and, if that works, runs every method; returns true if it loaded.
bool loadAndRun(const std::vector<uint8_t> &bytes, bool verifyHashes) {
  rt::LoadOptions opts;
  opts.verifySegmentHashes = verifyHashes;
  auto prog = rt::Program::loadFromBytes(bytes.data(), bytes.size(), opts);
  if (!prog.ok()) {
    EXPECT_FALSE(prog.error().message().empty());
    return false;
  }
  Tensor x = f32({2, 3}, {1, 0, -1, 0.5f, 2, 3});
  for (const std::string &name : (*prog)->methodNames()) {
    auto r = (*prog)->run(name, {x});
    if (!r.ok()) {
      EXPECT_FALSE(r.error().message().empty());
    }
    (void)(*prog)->run(name, {});
  }
  return true;
}

} // namespace

TEST(LoaderFuzz, SeedIsValid) {
  auto bytes = fuzzSeed();
  auto prog = rt::Program::loadFromBytes(bytes.data(), bytes.size());
  ASSERT_TRUE(prog.ok()) << prog.error().message();
  auto r = (*prog)->run("forward", {f32({2, 3}, {1, 0, -1, 0.5f, 2, 3})});
  ASSERT_TRUE(r.ok()) << r.error().message();
  // state is zero: softmax of zeros over 2 = 0.5 each.
  EXPECT_EQ(floatsOf((*r)[0]), (std::vector<float>{0.5f, 0.5f, 0.5f, 0.5f}));
  EXPECT_EQ((*r)[1].shape(), rt::Shape({3, 2}));
}

TEST(LoaderFuzz, EveryTruncationIsRejected) {
  auto bytes = fuzzSeed();
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::vector<uint8_t> prefix(bytes.begin(), bytes.begin() + (long)n);
    EXPECT_FALSE(loadAndRun(prefix, true)) << "prefix of " << n << " bytes loaded";
  }
}

TEST(LoaderFuzz, EveryByteFlipIsHandled) {
  auto bytes = fuzzSeed();
  size_t loaded = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::vector<uint8_t> b = bytes;
    b[i] ^= 0xff;
    loaded += loadAndRun(b, /*verifyHashes=*/(i % 2) == 0);
  }
  std::printf("byte flips: %zu of %zu variants still loaded\n", loaded, bytes.size());
}

TEST(LoaderFuzz, SeededRandomCorruptions) {
  auto bytes = fuzzSeed();
  std::mt19937 rng(20240601);
  for (int iter = 0; iter < 2000; ++iter) {
    std::vector<uint8_t> b = bytes;
    int flips = 1 + (int)(rng() % 4);
    for (int k = 0; k < flips; ++k) {
      size_t pos = rng() % b.size();
      switch (rng() % 3) {
      case 0: b[pos] ^= (uint8_t)(1u << (rng() % 8)); break;
      case 1: b[pos] = (uint8_t)rng(); break;
      default: b[pos] = (rng() % 2) ? 0xff : 0x00; break;
      }
    }
    loadAndRun(b, /*verifyHashes=*/false);
  }
}
