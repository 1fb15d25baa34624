// Sampler: greedy ties, NaN, nucleus truncation, seeded reproducibility, and the
// sampled frequencies against softmax(logits / T).
#include "runtime-stub/llm/Sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <vector>

using namespace kiln::rt;

TEST(Sampler, GreedyLowestIdWinsTies) {
  std::vector<float> logits = {0.5f, 2.0f, -1.0f, 2.0f, 1.0f};
  EXPECT_EQ(argmaxLowestId(logits.data(), 5), 1);
  Sampler greedy(5, 0.0f, 1.0f, 123);
  EXPECT_EQ(greedy.sample(logits.data()), 1);
}

TEST(Sampler, NaNNeverWins) {
  std::vector<float> logits = {NAN, -3.0f, NAN, -2.0f};
  EXPECT_EQ(argmaxLowestId(logits.data(), 4), 3);
  std::vector<float> all = {NAN, NAN};
  EXPECT_EQ(argmaxLowestId(all.data(), 2), 0);
  Sampler s(4, 1.0f, 1.0f, 0);
  for (int i = 0; i < 50; ++i) {
    int32_t id = s.sample(logits.data());
    EXPECT_TRUE(id == 1 || id == 3) << id;
  }
}

TEST(Sampler, SameSeedSameDraws) {
  std::vector<float> logits(100);
  for (int i = 0; i < 100; ++i)
    logits[i] = std::sin(0.37f * i);
  Sampler a(100, 0.9f, 0.95f, 42), b(100, 0.9f, 0.95f, 42), c(100, 0.9f, 0.95f, 43);
  std::vector<int32_t> da, db, dc;
  for (int i = 0; i < 64; ++i) {
    da.push_back(a.sample(logits.data()));
    db.push_back(b.sample(logits.data()));
    dc.push_back(c.sample(logits.data()));
  }
  EXPECT_EQ(da, db);
  EXPECT_NE(da, dc);
}

TEST(Sampler, FrequenciesFollowTheSoftmax) {
  // T = 2: p = softmax(logits / 2); 40000 draws, each frequency within 0.01.
  std::vector<float> logits = {1.0f, 0.0f, 2.0f, -1.0f, 1.5f};
  const float T = 2.0f;
  std::vector<double> p(5);
  double z = 0;
  for (int i = 0; i < 5; ++i)
    z += p[i] = std::exp(logits[i] / T);
  Sampler s(5, T, 1.0f, 7);
  std::vector<int> counts(5);
  const int n = 40000;
  for (int i = 0; i < n; ++i)
    counts[s.sample(logits.data())]++;
  for (int i = 0; i < 5; ++i)
    EXPECT_NEAR(counts[i] / (double)n, p[i] / z, 0.01) << "id " << i;
}

TEST(Sampler, TopPKeepsTheNucleusOnly) {
  // probabilities (T = 1) ~ 0.64, 0.24, 0.09, 0.03: top-p 0.8 keeps ids 2 and 0,
  // renormalised to 0.73 / 0.27.
  std::vector<float> logits = {1.0f, -1.0f, 2.0f, 0.0f};
  Sampler s(4, 1.0f, 0.8f, 5);
  std::map<int32_t, int> counts;
  const int n = 20000;
  for (int i = 0; i < n; ++i)
    counts[s.sample(logits.data())]++;
  EXPECT_EQ(counts.size(), 2u);
  double p2 = std::exp(2.0), p0 = std::exp(1.0);
  EXPECT_NEAR(counts[2] / (double)n, p2 / (p2 + p0), 0.015);
  EXPECT_NEAR(counts[0] / (double)n, p0 / (p2 + p0), 0.015);
}

TEST(Sampler, TinyTopPIsGreedyEvenOnTies) {
  std::vector<float> logits(1000, 0.0f);
  logits[617] = 3.0f;
  logits[311] = 3.0f; // tie with 617: the lower id, like greedy
  Sampler s(1000, 1.5f, 1e-6f, 99);
  for (int i = 0; i < 20; ++i)
    EXPECT_EQ(s.sample(logits.data()), 311);
}

TEST(Sampler, TopPOnALargeFlatVocabulary) {
  // 50000 equal logits: the nucleus of 0.5 is the 25000 lowest ids.
  std::vector<float> logits(50000, 0.25f);
  Sampler s(50000, 1.0f, 0.5f, 1);
  for (int i = 0; i < 200; ++i) {
    int32_t id = s.sample(logits.data());
    EXPECT_GE(id, 0);
    EXPECT_LT(id, 25001);
  }
}
