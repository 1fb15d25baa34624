// KV-cache kernels (docs/llm.md, docs/dialect.md): cache_write updates a
// program-level state in place; cached_attention attends each query to the
// valid prefix of the caches only.
#include "runtime-stub/core/ThreadPool.h"
#include "runtime-stub/kernels/KernelUtil.h"
#include "runtime-stub/kernels/opt/OptAttention.h"
#include "runtime-stub/kernels/opt/OptElementwise.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include <sys/mman.h>
#include <unistd.h>

namespace kiln {
namespace rt {
namespace {

//===----------------------------------------------------------------------===//
// cache_write(state, positions, values) {dim}: state.index_copy_(dim, ...)
//===----------------------------------------------------------------------===//

Error parseCacheWrite(const AttrSet &a, OpAttrs *o) {
  o->hasDim = true;
  return a.getInt("dim", true, &o->dim);
}

// A prefill chunk writes rows [p, p + n) of each of the `outer` slices of a
// state that lives in zero pages (docs/runtime-kernels.md "Per-token
// overhead"): fault each slice's pages in with one call instead of one page
// fault per 4 KiB (advisory; only for runs of consecutive positions spanning
// at least a page; a decode step's single row keeps the plain write).
template <class PosAt>
void prefaultRows(uint8_t *dst, int64_t outer, int64_t capacity, size_t rowBytes, int64_t n,
                  const PosAt &posAt) {
#ifdef MADV_POPULATE_WRITE
  static const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  if (n < 2 || (size_t)n * rowBytes < page || posAt(n - 1) - posAt(0) != n - 1)
    return;
  const int64_t p0 = posAt(0);
  for (int64_t o = 0; o < outer; ++o) {
    const uintptr_t begin = reinterpret_cast<uintptr_t>(dst + (size_t)(o * capacity + p0) * rowBytes);
    const uintptr_t end = begin + (size_t)n * rowBytes;
    const uintptr_t first = begin / page * page, last = (end + page - 1) / page * page;
    ::madvise(reinterpret_cast<void *>(first), last - first, MADV_POPULATE_WRITE);
  }
#else
  (void)dst, (void)outer, (void)capacity, (void)rowBytes, (void)n, (void)posAt;
#endif
}

Error runCacheWrite(const KernelCall &call) {
  const Tensor *state, *positions, *values;
  KILN_TRY(requireInput(call, 0, "state", &state));
  KILN_TRY(requireInput(call, 1, "positions", &positions));
  KILN_TRY(requireInput(call, 2, "values", &values));
  Tensor *out = call.out[0];
  // The result is the state itself (the lowering maps both to one State
  // value): the write happens in place, nothing is allocated or copied.
  if (out != state || out->mutableData() == nullptr)
    return call.fail("the result must be the state " + state->describe() +
                     " itself, written in place (a program State value)");
  int rank = state->rank();
  int dim = 0;
  KILN_TRY(normalizeDim(call, call.attrs->dim, rank, &dim));
  // A float state may be written from another float type: each element is
  // rounded to the state's type (an f16 KV cache fed by f32 k / v).
  const bool convert = values->dtype() != state->dtype();
  if (convert && !(isFloating(values->dtype()) && isFloating(state->dtype())))
    return call.fail("values " + values->describe() + " must have the dtype of the state " +
                     state->describe() + " (or, for a float state, another float type)");
  if (positions->rank() != 1)
    return call.fail("positions must be 1-d, got " + positions->describe());
  // Not readIntList: that helper reads shape lists (at most kMaxRank entries),
  // and a prefill chunk writes as many positions as it has tokens. Read in
  // place: nothing is allocated per call (decode runs this twice per layer).
  if (positions->dtype() != DType::Int64 && positions->dtype() != DType::Int32)
    return call.fail("positions must be an i64 tensor, got " + positions->describe());
  const bool pos64 = positions->dtype() == DType::Int64;
  auto posAt = [&](int64_t i) {
    return pos64 ? positions->dataAs<int64_t>()[i] : (int64_t)positions->dataAs<int32_t>()[i];
  };
  int64_t n = positions->numel();
  bool shapeOk = values->rank() == rank && values->dim(dim) == n;
  for (int i = 0; shapeOk && i < rank; ++i)
    if (i != dim && values->dim(i) != state->dim(i))
      shapeOk = false;
  if (!shapeOk)
    return call.fail("values " + values->describe() + " must have the state's shape " +
                     state->shape().str() + " with " + std::to_string(n) +
                     " (the number of positions) at dim " + std::to_string(dim));
  int64_t capacity = state->dim(dim);
  for (int64_t i = 0; i < n; ++i)
    if (posAt(i) < 0 || posAt(i) >= capacity)
      return call.fail("position " + std::to_string(posAt(i)) + " is out of range for " +
                           "the cache capacity " + std::to_string(capacity) + " (dim " +
                           std::to_string(dim) + " of " + state->describe() + ")",
                       ErrorCode::OutOfRange);
  int64_t outer = dimProduct(state->shape(), 0, dim);
  size_t rowBytes = (size_t)dimProduct(state->shape(), dim + 1, rank) * dtypeSize(state->dtype());
  uint8_t *dst = static_cast<uint8_t *>(out->mutableData());
  const uint8_t *src = values->dataAs<uint8_t>();
  prefaultRows(dst, outer, capacity, rowBytes, n, posAt);
  if (convert) {
    const int64_t rowElems = dimProduct(state->shape(), dim + 1, rank);
    const size_t srcRowBytes = (size_t)rowElems * dtypeSize(values->dtype());
    const bool simd = !call.portableOnly && values->dtype() == DType::Float32 &&
                      state->dtype() == DType::Float16;
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < n; ++i) {
        const uint8_t *from = src + (size_t)(o * n + i) * srcRowBytes;
        uint8_t *to = dst + (size_t)(o * capacity + posAt(i)) * rowBytes;
        if (simd) // (an f16 KV cache written from f32 k / v)
          opt::floatsToHalf(reinterpret_cast<const float *>(from), reinterpret_cast<uint16_t *>(to),
                            rowElems);
        else
          convertElements(from, values->dtype(), to, state->dtype(), rowElems);
      }
    return Error::success();
  }
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < n; ++i)
      std::memcpy(dst + (size_t)(o * capacity + posAt(i)) * rowBytes,
                  src + (size_t)(o * n + i) * rowBytes, rowBytes);
  return Error::success();
}

//===----------------------------------------------------------------------===//
// cached_attention(q, k_cache, v_cache, start_pos) {scale}
//===----------------------------------------------------------------------===//

Error parseCachedAttention(const AttrSet &a, OpAttrs *o) {
  return a.getFloat("scale", true, &o->scale);
}

/// A float tensor as f32 data (no copy when it already is f32).
Error asFloat(const KernelCall &call, const Tensor &t, const char *name, Tensor *tmp,
              const float **data) {
  if (!isFloating(t.dtype()))
    return call.fail(std::string(name) + " must be a float tensor, got " + t.describe());
  Result<const Tensor *> c = asDType(t, DType::Float32, tmp);
  if (!c.ok())
    return c.error();
  *data = (*c)->dataAs<float>();
  return Error::success();
}

Error runCachedAttention(const KernelCall &call) {
  const Tensor *q, *k, *v, *startPos;
  KILN_TRY(requireInput(call, 0, "q", &q));
  KILN_TRY(requireInput(call, 1, "k_cache", &k));
  KILN_TRY(requireInput(call, 2, "v_cache", &v));
  KILN_TRY(requireInput(call, 3, "start_pos", &startPos));
  if (q->rank() != 4 || k->rank() != 4 || v->rank() != 4)
    return call.fail("q, k_cache and v_cache must be 4-d [B, H, T, D], got " + q->describe() +
                     ", " + k->describe() + ", " + v->describe());
  int64_t batch = q->dim(0), hq = q->dim(1), t = q->dim(2), d = q->dim(3);
  int64_t hkv = k->dim(1), s = k->dim(2);
  if (k->shape() != v->shape() || k->dim(0) != batch || k->dim(3) != d)
    return call.fail("shapes do not fit q [B, Hq, T, D] and caches [B, Hkv, S, D]: " +
                     q->describe() + ", " + k->describe() + ", " + v->describe());
  if (hkv == 0 || hq % hkv != 0)
    return call.fail("query heads " + std::to_string(hq) + " are not a multiple of kv heads " +
                     std::to_string(hkv));
  if (startPos->rank() != 1 || startPos->numel() != 1 || startPos->dtype() != DType::Int64)
    return call.fail("start_pos must be i64 [1], got " + startPos->describe());
  int64_t start = startPos->dataAs<int64_t>()[0];
  if (start < 0 || start + t > s)
    return call.fail("query positions " + std::to_string(start) + ".." +
                         std::to_string(start + t - 1) + " do not fit in the cache of " +
                         std::to_string(s) + " positions",
                     ErrorCode::OutOfRange);
  if (k->dtype() != v->dtype())
    return call.fail("k_cache and v_cache element types differ: " + k->describe() + ", " +
                     v->describe());
  Tensor tmpQ, tmpK, tmpV, res;
  const float *pq, *pk = nullptr, *pv = nullptr;
  KILN_TRY(asFloat(call, *q, "q", &tmpQ, &pq));
  // f16 caches are read in place (rows widened as they are used); other
  // float types are converted whole.
  const bool cacheF16 = k->dtype() == DType::Float16;
  const uint16_t *hk = cacheF16 ? k->dataAs<uint16_t>() : nullptr;
  const uint16_t *hv = cacheF16 ? v->dataAs<uint16_t>() : nullptr;
  if (!cacheF16) {
    KILN_TRY(asFloat(call, *k, "k_cache", &tmpK, &pk));
    KILN_TRY(asFloat(call, *v, "v_cache", &tmpV, &pv));
  }
  Tensor *dstTensor = q->dtype() == DType::Float32 ? call.out[0] : &res;
  KILN_TRY(dstTensor->allocate(DType::Float32, q->shape()));
  float *po = dstTensor->mutableDataAs<float>();
  int64_t group = hq / hkv;
  float scale = (float)call.attrs->scale;
  // Heads (b, h) are independent: each is computed by one thread, in the same
  // order as on one thread, so the result does not depend on the thread count.
  // A range should carry some tens of thousands of flops to be worth a hand-off.
  int64_t headWork = std::max<int64_t>(1, t * (start + (t + 1) / 2) * d * 4);
  int64_t grain = std::max<int64_t>(1, (int64_t(1) << 15) / headWork);
  auto heads = [&](int64_t begin, int64_t end) {
    // Per thread, kept between calls: nothing is allocated per decode step.
    static thread_local std::vector<float> scores, wide;
    if (scores.size() < (size_t)s)
      scores.resize((size_t)s);
    if (wide.size() < (size_t)d)
      wide.resize((size_t)d);
    for (int64_t bh = begin; bh < end; ++bh) {
      int64_t b = bh / hq, h = bh % hq;
      // Query head h reads kv head h / group: no repeated heads are built.
      const int64_t head = ((b * hkv) + h / group) * s * d;
      // Row j of a cache as f32 (an f16 row is widened into `wide`).
      auto row = [&](const float *f, const uint16_t *hf, int64_t j) -> const float * {
        if (!hf)
          return f + head + j * d;
        for (int64_t c = 0; c < d; ++c)
          wide[(size_t)c] = halfToFloat(hf[head + j * d + c]);
        return wide.data();
      };
      for (int64_t i = 0; i < t; ++i) {
        const float *qRow = pq + ((b * hq + h) * t + i) * d;
        int64_t p = start + i; // attends cache positions 0..p only
        float maxScore = -INFINITY;
        for (int64_t j = 0; j <= p; ++j) {
          const float *kRow = row(pk, hk, j);
          float dot = 0.0f;
          for (int64_t c = 0; c < d; ++c)
            dot += qRow[c] * kRow[c];
          scores[(size_t)j] = dot * scale;
          maxScore = std::max(maxScore, scores[(size_t)j]);
        }
        float *o = po + ((b * hq + h) * t + i) * d;
        std::fill(o, o + d, 0.0f);
        float sum = 0.0f;
        for (int64_t j = 0; j <= p; ++j) {
          float w = std::exp(scores[(size_t)j] - maxScore);
          sum += w;
          const float *vRow = row(pv, hv, j);
          for (int64_t c = 0; c < d; ++c)
            o[c] += w * vRow[c];
        }
        float inv = 1.0f / sum;
        for (int64_t c = 0; c < d; ++c)
          o[c] *= inv;
      }
    }
  };
  if (!call.portableOnly) { // SIMD kernel chosen by CPU features (kernels/opt/)
    opt::CachedAttentionArgs args;
    args.q = pq;
    args.k = pk;
    args.v = pv;
    args.kHalf = hk;
    args.vHalf = hv;
    args.out = po;
    args.batch = batch;
    args.hq = hq;
    args.hkv = hkv;
    args.t = t;
    args.s = s;
    args.d = d;
    args.start = start;
    args.scale = scale;
    opt::cachedAttention(args, call.pool);
  } else if (call.pool)
    call.pool->parallelFor(batch * hq, grain, heads);
  else
    heads(0, batch * hq);
  if (q->dtype() != DType::Float32)
    return castInto(res, q->dtype(), call.out[0]);
  return Error::success();
}

} // namespace

extern const KernelDef kCacheWriteKernel = {"cache_write", 3, 3, 1, 1, 0, parseCacheWrite,
                                            runCacheWrite};
extern const KernelDef kCachedAttentionKernel = {"cached_attention", 4, 4, 1, 1, 0,
                                                 parseCachedAttention, runCachedAttention};

} // namespace rt
} // namespace kiln
