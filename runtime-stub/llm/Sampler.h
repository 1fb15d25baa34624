// Next-token selection for the LLM runner (docs/llm.md §3): greedy argmax with the
// lowest id winning ties, or temperature + nucleus (top-p) sampling from a seeded
// std::mt19937_64. All buffers are allocated once, at construction.
#ifndef KILN_RUNTIME_LLM_SAMPLER_H
#define KILN_RUNTIME_LLM_SAMPLER_H

#include <cstdint>
#include <random>
#include <vector>

namespace kiln {
namespace rt {

/// Index of the largest of `n` logits; the lowest index wins ties. NaNs never win
/// (all-NaN logits give 0).
int32_t argmaxLowestId(const float *logits, int32_t n);

class Sampler {
public:
  /// `temperature` <= 0 means greedy; `topP` is clamped to (0, 1].
  Sampler(int32_t vocabSize, float temperature, float topP, uint64_t seed);

  /// Picks the next id from `vocabSize` logits.
  ///
  /// Sampling: p_i = exp((l_i - max) / T) / Z. With topP < 1 the candidates are the
  /// ids in decreasing logit order (ties: lower id first) up to and including the
  /// first at which the cumulative probability reaches topP (so a tiny topP keeps
  /// only the greedy choice). One draw u = (rng() >> 11) * 2^-53 (the same on every
  /// platform, unlike std::uniform_real_distribution) picks from the candidates
  /// in proportion to their probability.
  int32_t sample(const float *logits);

  bool greedy() const { return temperature_ <= 0.0f; }

private:
  int32_t vocabSize_;
  float temperature_;
  float topP_;
  std::mt19937_64 rng_;
  std::vector<float> probs_;   // unnormalised exp((l - max) / T)
  std::vector<int32_t> order_; // candidate ids (top-p)
};

} // namespace rt
} // namespace kiln

#endif // KILN_RUNTIME_LLM_SAMPLER_H
