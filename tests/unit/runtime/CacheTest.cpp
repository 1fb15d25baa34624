// KV-cache kernels and the Program state/metadata/asset API (docs/llm.md):
// programs written with ProgramWriter, loaded with Program, run several times.
// cached_attention is compared with a direct softmax over keys 0..p computed
// here in double; cache rows after p are filled with NaN to prove they are
// never read.
#include "TestProgramBuilder.h"
#include "WriterTestUtil.h"

#include "serializer/ProgramWriter.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <unistd.h>

using namespace kiln;
using namespace kiln::test;
using kiln::rt::DType;
using kiln::rt::ErrorCode;
using kiln::rt::Program;
using kiln::rt::Shape;
using kiln::rt::Tensor;

namespace {

constexpr int64_t kHq = 4, kHkv = 2, kS = 8, kD = 3;

/// Method `attend_T`(q [1,Hq,T,D], k, v [1,Hkv,T,D], positions [T], start [1]):
/// writes k/v into the caches at `positions`, returns cached_attention.
MethodSpec attendMethod(int64_t t, int32_t kState, int32_t vState) {
  MethodSpec m;
  m.name = "attend_" + std::to_string(t);
  int32_t q = m.addValue(value(fb::DType::Float32, {1, kHq, t, kD}, fb::ValueKind::Input, "q"));
  int32_t k = m.addValue(value(fb::DType::Float32, {1, kHkv, t, kD}, fb::ValueKind::Input, "k"));
  int32_t v = m.addValue(value(fb::DType::Float32, {1, kHkv, t, kD}, fb::ValueKind::Input, "v"));
  int32_t pos = m.addValue(value(fb::DType::Int64, {t}, fb::ValueKind::Input, "positions"));
  int32_t start = m.addValue(value(fb::DType::Int64, {1}, fb::ValueKind::Input, "start_pos"));
  int32_t kc = m.addValue(
      value(fb::DType::Float32, {1, kHkv, kS, kD}, fb::ValueKind::State, "k_cache", kState));
  int32_t vc = m.addValue(
      value(fb::DType::Float32, {1, kHkv, kS, kD}, fb::ValueKind::State, "v_cache", vState));
  int32_t out = m.addValue(value(fb::DType::Float32, {1, kHq, t, kD}, fb::ValueKind::Output));
  m.inputs = {q, k, v, pos, start};
  m.outputs = {out};
  m.instructions.push_back({"cache_write", {kc, pos, k}, {kc}, {AttrSpec::makeInt("dim", 2)}, "m.py:1"});
  m.instructions.push_back({"cache_write", {vc, pos, v}, {vc}, {AttrSpec::makeInt("dim", 2)}, "m.py:2"});
  m.instructions.push_back({"cached_attention", {q, kc, vc, start}, {out},
                            {AttrSpec::makeFloat("scale", 0.5)}, "m.py:3"});
  return m;
}

class CacheProgram : public ::testing::Test {
protected:
  void SetUp() override {
    path = ::testing::TempDir() + "/cache_test_" + std::to_string(::getpid()) + ".kiln";
    ProgramWriter w;
    int32_t kState = w.addState({"k_cache", fb::DType::Float32, {1, kHkv, kS, kD}});
    int32_t vState = w.addState({"v_cache", fb::DType::Float32, {1, kHkv, kS, kD}});
    w.addMethod(attendMethod(3, kState, vState));
    w.addMethod(attendMethod(1, kState, vState));
    w.setMetadata("kiln.llm.max_seq_len", "8");
    w.setMetadata("kiln.tokenizer.kind", "none");
    asset = {'t', 'o', 'k', 0, 1, 2, 255};
    w.addAsset("tokenizer", asset.data(), asset.size());
    w.addAsset("empty", nullptr, 0);
    WriteResult r = w.writeToFile(path);
    ASSERT_TRUE(r.ok()) << r.error;
    auto loaded = Program::load(path);
    ASSERT_TRUE(loaded.ok()) << loaded.error().message();
    program = loaded.take();
  }
  void TearDown() override { std::remove(path.c_str()); }

  /// Runs attend_T; `poison` writes NaN keys and values.
  rt::Result<std::vector<Tensor>> attend(int64_t t, int64_t start, uint32_t seed,
                                         std::vector<int64_t> positions = {},
                                         bool poison = false) {
    if (positions.empty())
      for (int64_t i = 0; i < t; ++i)
        positions.push_back(start + i);
    std::vector<float> qv = randomFloats((size_t)(kHq * t * kD), seed);
    std::vector<float> kv = randomFloats((size_t)(kHkv * t * kD), seed + 1);
    std::vector<float> vv = randomFloats((size_t)(kHkv * t * kD), seed + 2);
    if (poison) {
      std::fill(kv.begin(), kv.end(), NAN);
      std::fill(vv.begin(), vv.end(), NAN);
    }
    lastQ = qv;
    // The reference caches follow the writes.
    for (int64_t h = 0; h < kHkv; ++h)
      for (int64_t i = 0; i < t; ++i)
        for (int64_t c = 0; c < kD; ++c) {
          int64_t p = positions[(size_t)i];
          if (p < 0 || p >= kS)
            continue;
          refK[(size_t)((h * kS + p) * kD + c)] = kv[(size_t)((h * t + i) * kD + c)];
          refV[(size_t)((h * kS + p) * kD + c)] = vv[(size_t)((h * t + i) * kD + c)];
        }
    return program->run("attend_" + std::to_string(t),
                        {f32({1, kHq, t, kD}, qv), f32({1, kHkv, t, kD}, kv),
                         f32({1, kHkv, t, kD}, vv), i64({t}, positions), i64({1}, {start})});
  }

  /// softmax(q . k * 0.5) . v over cache positions 0..start+i, in double.
  std::vector<double> reference(int64_t t, int64_t start) const {
    std::vector<double> out((size_t)(kHq * t * kD), 0.0);
    for (int64_t h = 0; h < kHq; ++h) {
      int64_t g = h / (kHq / kHkv);
      for (int64_t i = 0; i < t; ++i) {
        int64_t p = start + i;
        std::vector<double> w((size_t)p + 1);
        double mx = -INFINITY, sum = 0;
        for (int64_t j = 0; j <= p; ++j) {
          double dot = 0;
          for (int64_t c = 0; c < kD; ++c)
            dot += (double)lastQ[(size_t)((h * t + i) * kD + c)] *
                   refK[(size_t)((g * kS + j) * kD + c)];
          w[(size_t)j] = dot * 0.5;
          mx = std::max(mx, w[(size_t)j]);
        }
        for (double &x : w)
          sum += (x = std::exp(x - mx));
        for (int64_t j = 0; j <= p; ++j)
          for (int64_t c = 0; c < kD; ++c)
            out[(size_t)((h * t + i) * kD + c)] +=
                w[(size_t)j] / sum * refV[(size_t)((g * kS + j) * kD + c)];
      }
    }
    return out;
  }

  void expectMatches(const Tensor &got, int64_t t, int64_t start) {
    std::vector<double> want = reference(t, start);
    std::vector<float> g = floatsOf(got);
    ASSERT_EQ(g.size(), want.size());
    for (size_t i = 0; i < g.size(); ++i)
      ASSERT_NEAR(g[i], want[i], 1e-5) << "cached_attention T=" << t << " start " << start
                                       << " element " << i;
  }

  std::string path;
  std::vector<uint8_t> asset;
  std::unique_ptr<Program> program;
  std::vector<float> refK = std::vector<float>((size_t)(kHkv * kS * kD), 0.0f);
  std::vector<float> refV = std::vector<float>((size_t)(kHkv * kS * kD), 0.0f);
  std::vector<float> lastQ;
};

TEST_F(CacheProgram, PrefillThenDecodeKeepsState) {
  const Tensor *kState = program->state("k_cache");
  ASSERT_NE(kState, nullptr);
  const void *storage = kState->data();
  auto r = attend(3, 0, 1);
  ASSERT_TRUE(r.ok()) << r.error().message();
  expectMatches((*r)[0], 3, 0);
  for (int64_t step = 3; step < kS; ++step) {
    auto d = attend(1, step, 10 + (uint32_t)step);
    ASSERT_TRUE(d.ok()) << d.error().message();
    expectMatches((*d)[0], 1, step);
  }
  // Written in place: the same buffer, holding the writes.
  EXPECT_EQ(program->state("k_cache")->data(), storage);
  std::vector<float> k = floatsOf(*program->state("k_cache"));
  for (size_t i = 0; i < k.size(); ++i)
    ASSERT_EQ(k[i], refK[i]) << "k_cache element " << i;
}

// The decode method's attention (one query row, start_pos a method input)
// gets a KV prefetch hint at load, the 3-row one does not; decode results are
// those above either way (PrefillThenDecodeKeepsState runs with the pool).
TEST_F(CacheProgram, DecodeAttentionGetsAKvPrefetchHint) {
  ASSERT_NE(program->methodInfo("attend_1"), nullptr);
  EXPECT_EQ(program->methodInfo("attend_1")->numKvPrefetchHints, 1u);
  EXPECT_EQ(program->methodInfo("attend_3")->numKvPrefetchHints, 0u);
}

TEST_F(CacheProgram, RowsAfterThePositionAreNeverRead) {
  // Poison rows 3..7 with NaN keys and values, then write rows 0..2 and attend
  // from start 0: queries read rows 0..p only, so the result is finite.
  ASSERT_TRUE(attend(3, 3, 1, {3, 4, 5}, /*poison=*/true).ok());
  ASSERT_TRUE(attend(3, 5, 2, {5, 6, 7}, /*poison=*/true).ok());
  auto r = attend(3, 0, 3);
  ASSERT_TRUE(r.ok()) << r.error().message();
  for (float x : floatsOf((*r)[0]))
    ASSERT_TRUE(std::isfinite(x)) << "cached_attention read a cache row after p";
  expectMatches((*r)[0], 3, 0);
}

TEST_F(CacheProgram, ResetStateZeroes) {
  ASSERT_TRUE(attend(3, 0, 1).ok());
  bool nonzero = false;
  for (float x : floatsOf(*program->state("v_cache")))
    nonzero |= x != 0.0f;
  ASSERT_TRUE(nonzero);
  ASSERT_TRUE(program->resetState().ok());
  for (const std::string &name : program->stateNames())
    for (float x : floatsOf(*program->state(name)))
      ASSERT_EQ(x, 0.0f) << name;
}

TEST_F(CacheProgram, OutOfRangePositionIsAnError) {
  auto r = attend(1, 7, 3, {8});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::OutOfRange);
  EXPECT_NE(r.error().message().find("position 8 is out of range for the cache capacity 8"),
            std::string::npos)
      << r.error().message();
  EXPECT_NE(r.error().message().find("cache_write at m.py:1"), std::string::npos)
      << r.error().message();
  auto neg = attend(1, 0, 3, {-1});
  ASSERT_FALSE(neg.ok());
  EXPECT_NE(neg.error().message().find("position -1"), std::string::npos);
  // A query past the cache: start 8 with one query.
  auto q = attend(1, 8, 3, {0});
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.error().code(), ErrorCode::OutOfRange);
  EXPECT_NE(q.error().message().find("query positions 8..8 do not fit in the cache of 8"),
            std::string::npos)
      << q.error().message();
}

TEST_F(CacheProgram, MetadataAndAssets) {
  EXPECT_EQ(program->stateNames(), (std::vector<std::string>{"k_cache", "v_cache"}));
  const std::string *s = program->metadata("kiln.llm.max_seq_len");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(*s, "8");
  EXPECT_EQ(program->metadata("missing"), nullptr);
  auto entries = program->metadataEntries();
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[1].first, "kiln.tokenizer.kind");
  auto a = program->asset("tokenizer");
  ASSERT_TRUE(a.ok()) << a.error().message();
  ASSERT_EQ(a->second, asset.size());
  EXPECT_EQ(std::vector<uint8_t>(a->first, a->first + a->second), asset);
  auto e = program->asset("empty");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->second, 0u);
  auto missing = program->asset("vocab");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message().find("no asset 'vocab' (assets: tokenizer, empty)"),
            std::string::npos)
      << missing.error().message();
  EXPECT_EQ(program->assetNames(), (std::vector<std::string>{"tokenizer", "empty"}));
}

TEST(CacheWriter, DuplicateAssetNameIsRejected) {
  ProgramWriter w;
  MethodSpec m;
  m.name = "f";
  int32_t x = m.addValue(value(fb::DType::Float32, {1}, fb::ValueKind::Input));
  int32_t y = m.addValue(value(fb::DType::Float32, {1}, fb::ValueKind::Output));
  m.inputs = {x};
  m.outputs = {y};
  m.instructions.push_back({"copy", {x}, {y}, {}, ""});
  w.addMethod(m);
  uint8_t b = 1;
  w.addAsset("a", &b, 1);
  w.addAsset("a", &b, 1);
  std::string path = ::testing::TempDir() + "/dup_asset.kiln";
  WriteResult r = w.writeToFile(path);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error.find("duplicate asset name 'a'"), std::string::npos) << r.error;
  EXPECT_NE(::access(path.c_str(), F_OK), 0) << "a file was written despite the error";
}

} // namespace
