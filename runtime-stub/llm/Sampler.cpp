#include "runtime-stub/llm/Sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace kiln {
namespace rt {

int32_t argmaxLowestId(const float *logits, int32_t n) {
  int32_t best = 0;
  bool found = false;
  for (int32_t i = 0; i < n; ++i) {
    float v = logits[i];
    if (std::isnan(v))
      continue;
    if (!found || v > logits[best]) { // strict: an equal later value does not win
      best = i;
      found = true;
    }
  }
  return best;
}

namespace {
float clampTopP(float topP) {
  if (topP > 1.0f)
    return 1.0f;
  if (!(topP > 0.0f)) // 0, negative or NaN: keep the single most likely id
    return 1e-9f;
  return topP;
}
} // namespace

Sampler::Sampler(int32_t vocabSize, float temperature, float topP, uint64_t seed)
    : vocabSize_(vocabSize), temperature_(temperature), topP_(clampTopP(topP)), rng_(seed) {
  if (!greedy()) {
    probs_.resize((size_t)vocabSize);
    order_.resize((size_t)vocabSize);
  }
}

int32_t Sampler::sample(const float *logits) {
  const int32_t n = vocabSize_;
  if (greedy() || n <= 1)
    return argmaxLowestId(logits, n);

  const int32_t top = argmaxLowestId(logits, n);
  const float maxLogit = logits[top];
  if (!std::isfinite(maxLogit))
    return top; // +inf (or all NaN): the softmax is degenerate, take the argmax
  const double invT = 1.0 / (double)temperature_;
  double total = 0.0;
  for (int32_t i = 0; i < n; ++i) {
    float v = logits[i];
    float p = std::isnan(v) ? 0.0f : (float)std::exp(((double)v - maxLogit) * invT);
    probs_[(size_t)i] = p;
    total += p;
  }

  // Candidates: every id, or the nucleus in decreasing logit order.
  int32_t count = n;
  int32_t *ids = order_.data();
  std::iota(order_.begin(), order_.end(), 0);
  if (topP_ < 1.0f) {
    auto before = [logits](int32_t a, int32_t b) {
      float la = std::isnan(logits[a]) ? -INFINITY : logits[a];
      float lb = std::isnan(logits[b]) ? -INFINITY : logits[b];
      return la > lb || (la == lb && a < b);
    };
    // Most of the mass sits in few ids: sort a growing prefix, not the whole vocabulary.
    int32_t sorted = std::min<int32_t>(n, 64);
    double threshold = (double)topP_ * total;
    double cumulative = 0.0;
    int32_t k = 0;
    for (;;) {
      // Ids [k, sorted) in order: select them (linear), then sort just those.
      if (sorted < n)
        std::nth_element(order_.begin() + k, order_.begin() + sorted, order_.end(), before);
      std::sort(order_.begin() + k, order_.begin() + sorted, before);
      for (; k < sorted; ++k) {
        cumulative += probs_[(size_t)order_[(size_t)k]];
        if (cumulative >= threshold) {
          ++k;
          break;
        }
      }
      if (cumulative >= threshold || sorted == n)
        break;
      sorted = std::min<int32_t>(n, sorted * 4);
    }
    count = std::max<int32_t>(1, k);
    total = 0.0;
    for (int32_t i = 0; i < count; ++i)
      total += probs_[(size_t)ids[i]];
  }

  const double u = (double)(rng_() >> 11) * (1.0 / 9007199254740992.0); // [0, 1)
  const double target = u * total;
  double cumulative = 0.0;
  for (int32_t i = 0; i < count; ++i) {
    cumulative += probs_[(size_t)ids[i]];
    if (target < cumulative)
      return ids[i];
  }
  // Rounding left target at the very end: the last candidate with mass.
  for (int32_t i = count - 1; i >= 0; --i)
    if (probs_[(size_t)ids[i]] > 0.0f)
      return ids[i];
  return top;
}

} // namespace rt
} // namespace kiln
