// Kernels of the fused ops that kiln-fuse forms (docs/dialect.md): swiglu,
// rope and attention. Each computes in f32 in one pass over its inputs and
// writes the operands' dtype; each gives the same numbers as the unfused
// composition of the portable kernels up to f32 rounding (tests compare them).
#include "runtime-stub/kernels/KernelUtil.h"
#include "runtime-stub/kernels/opt/OptElementwise.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace kiln {
namespace rt {
namespace {

enum RopeStyle : int { RotateHalf = 0, Interleaved = 1 };

/// Checks that every present input is a float tensor of the first one's dtype
/// and returns f32 views of them (converted copies in tmps when needed).
Error floatInputs(const KernelCall &call, const char *const *names, int n, Tensor *tmps,
                  const float **data) {
  const Tensor *first = call.input(0);
  if (!isFloating(first->dtype()))
    return call.fail(std::string(names[0]) + " must be a float tensor, got " +
                     first->describe());
  for (int i = 0; i < n; ++i) {
    const Tensor *t = call.input(i);
    if (t->dtype() != first->dtype())
      return call.fail(std::string(names[i]) + " " + t->describe() + " must have the dtype of " +
                       names[0] + " " + first->describe());
    Result<const Tensor *> c = asDType(*t, DType::Float32, &tmps[i]);
    if (!c.ok())
      return c.error();
    data[i] = (*c)->dataAs<float>();
  }
  return Error::success();
}

/// Allocates the f32 result: the output itself when the dtype is f32, else
/// *tmp (cast into the output by finishOutput).
Result<float *> allocateResult(const KernelCall &call, DType dtype, const Shape &shape,
                               Tensor *tmp) {
  Tensor *dst = dtype == DType::Float32 ? call.out[0] : tmp;
  Error e = dst->allocate(DType::Float32, shape);
  if (!e.ok())
    return e;
  return dst->mutableDataAs<float>();
}

Error finishOutput(const KernelCall &call, DType dtype, const Tensor &tmp) {
  if (dtype == DType::Float32)
    return Error::success();
  return castInto(tmp, dtype, call.out[0]);
}

//===----------------------------------------------------------------------===//
// swiglu: silu(gate) * up, broadcasting
//===----------------------------------------------------------------------===//

inline float silu(float v) { return v / (1.0f + std::exp(-v)); }

Error runSwiglu(const KernelCall &call) {
  const Tensor *gate, *up;
  KILN_TRY(requireInput(call, 0, "gate", &gate));
  KILN_TRY(requireInput(call, 1, "up", &up));
  static const char *const kNames[] = {"gate", "up"};
  Tensor tmps[2], res;
  const float *data[2];
  KILN_TRY(floatInputs(call, kNames, 2, tmps, data));
  Shape out;
  const Shape *shapes[2] = {&gate->shape(), &up->shape()};
  KILN_TRY(broadcastShapes(call, shapes, 2, &out));
  Result<float *> dst = allocateResult(call, gate->dtype(), out, &res);
  if (!dst.ok())
    return dst.error();
  float *po = *dst;
  const float *g = data[0], *u = data[1];
  if (gate->shape() == out && up->shape() == out && !call.portableOnly) {
    opt::swiglu(g, u, po, out.numel(), call.pool); // SIMD kernel (kernels/opt/)
  } else if (gate->shape() == out && up->shape() == out) {
    int64_t n = out.numel();
    for (int64_t i = 0; i < n; ++i)
      po[i] = silu(g[i]) * u[i];
  } else {
    int64_t strides[2][kMaxRank];
    broadcastStrides(gate->shape(), out, strides[0]);
    broadcastStrides(up->shape(), out, strides[1]);
    forEachBroadcast<2>(out, strides, [&](int64_t i, const std::array<int64_t, 2> &off) {
      po[i] = silu(g[off[0]]) * u[off[1]];
    });
  }
  return finishOutput(call, gate->dtype(), res);
}

//===----------------------------------------------------------------------===//
// rope: x * cos + rotate(x) * sin, broadcasting, rotate on x's last dim
//===----------------------------------------------------------------------===//

Error parseRope(const AttrSet &a, OpAttrs *o) {
  std::string style;
  KILN_TRY(a.getString("style", true, &style));
  if (style == "rotate_half")
    o->fn = RotateHalf;
  else if (style == "interleaved")
    o->fn = Interleaved;
  else
    return invalidProgram("rope: unknown style '" + style +
                          "' (expected rotate_half or interleaved)");
  return Error::success();
}

Error runRope(const KernelCall &call) {
  const Tensor *x, *cosT, *sinT;
  KILN_TRY(requireInput(call, 0, "x", &x));
  KILN_TRY(requireInput(call, 1, "cos", &cosT));
  KILN_TRY(requireInput(call, 2, "sin", &sinT));
  static const char *const kNames[] = {"x", "cos", "sin"};
  Tensor tmps[3], res;
  const float *data[3];
  KILN_TRY(floatInputs(call, kNames, 3, tmps, data));
  if (x->rank() == 0)
    return call.fail("x must have at least 1 dim, got " + x->describe());
  Shape out;
  const Shape *shapes[3] = {&x->shape(), &cosT->shape(), &sinT->shape()};
  KILN_TRY(broadcastShapes(call, shapes, 3, &out));
  int r = out.rank();
  int64_t d = x->dim(x->rank() - 1);
  if (out[r - 1] != d)
    return call.fail("the last dim of x " + x->describe() + " would be broadcast to " +
                     out.str() + " by cos " + cosT->describe() + " / sin " + sinT->describe());
  bool interleaved = call.attrs->fn == Interleaved;
  if (interleaved && d % 2 != 0)
    return call.fail("interleaved rope needs an even last dim, got x " + x->describe());
  Result<float *> dst = allocateResult(call, x->dtype(), out, &res);
  if (!dst.ok())
    return dst.error();
  float *po = *dst;
  // Rows of the output (all dims but the last) with the row offsets of each
  // input; within a row x is contiguous and cos/sin step by 1 or 0.
  int64_t strides[3][kMaxRank];
  for (int k = 0; k < 3; ++k)
    broadcastStrides(*shapes[k], out, strides[k]);
  int64_t cosStep = strides[1][r - 1], sinStep = strides[2][r - 1];
  Shape rows = Result<Shape>(Shape::make(out.data(), (size_t)r - 1)).take();
  int64_t h = d / 2, firstPart = d - h;
  const float *px = data[0], *pc = data[1], *ps = data[2];
  int64_t row = 0;
  auto rotateRow = [&](const std::array<int64_t, 3> &off) {
    const float *xr = px + off[0];
    const float *cr = pc + off[1];
    const float *sr = ps + off[2];
    float *o = po + row * d;
    for (int64_t j = 0; j < d; ++j) {
      float rotated;
      if (interleaved)
        rotated = (j % 2 == 0) ? -xr[j + 1] : xr[j - 1];
      else
        rotated = j < firstPart ? -xr[h + j] : xr[j - firstPart];
      float direct = xr[j] * cr[j * cosStep];
      float turned = rotated * sr[j * sinStep];
      o[j] = direct + turned;
    }
    ++row;
  };
  if (out.numel() > 0) {
    if (r == 1)
      rotateRow({0, 0, 0});
    else
      forEachBroadcast<3>(rows, strides, [&](int64_t, const std::array<int64_t, 3> &off) {
        rotateRow(off);
      });
  }
  return finishOutput(call, x->dtype(), res);
}

//===----------------------------------------------------------------------===//
// attention: grouped-query, causal, online softmax in f32
//===----------------------------------------------------------------------===//

Error parseAttention(const AttrSet &a, OpAttrs *o) {
  KILN_TRY(a.getFloat("scale", true, &o->scale));
  return a.getBool("causal", true, &o->causal);
}

Error runAttention(const KernelCall &call) {
  const Tensor *q, *k, *v;
  KILN_TRY(requireInput(call, 0, "q", &q));
  KILN_TRY(requireInput(call, 1, "k", &k));
  KILN_TRY(requireInput(call, 2, "v", &v));
  const Tensor *mask = call.input(3);
  static const char *const kNames[] = {"q", "k", "v"};
  Tensor tmps[3], res, tmpMask;
  const float *data[3];
  KILN_TRY(floatInputs(call, kNames, 3, tmps, data));
  if (q->rank() != 4 || k->rank() != 4 || v->rank() != 4)
    return call.fail("q, k and v must be 4-d [B, H, T, D], got " + q->describe() + ", " +
                     k->describe() + ", " + v->describe());
  int64_t qb = q->dim(0), hq = q->dim(1), t = q->dim(2), dk = q->dim(3);
  int64_t kb = k->dim(0), hkv = k->dim(1), s = k->dim(2);
  int64_t vb = v->dim(0), dv = v->dim(3);
  if (k->dim(3) != dk || v->dim(1) != hkv || v->dim(2) != s)
    return call.fail("shapes do not fit q [B, Hq, T, D], k [B, Hkv, S, D], v [B, Hkv, S, Dv]: " +
                     q->describe() + ", " + k->describe() + ", " + v->describe());
  if (hkv == 0 || hq % hkv != 0)
    return call.fail("query heads " + std::to_string(hq) + " are not a multiple of kv heads " +
                     std::to_string(hkv));
  int64_t batch = 1;
  for (int64_t b : {qb, kb, vb}) {
    if (b == 1)
      continue;
    if (batch != 1 && batch != b)
      return call.fail("batch sizes do not broadcast: " + q->describe() + ", " + k->describe() +
                       ", " + v->describe());
    batch = b;
  }
  if (qb == 0 || kb == 0 || vb == 0)
    batch = 0;
  Shape outShape{batch, hq, t, dv};
  Shape scoreShape{batch, hq, t, s};
  // The mask: bool keeps where true, float is added; broadcast to the scores.
  const float *maskAdd = nullptr;
  const uint8_t *maskKeep = nullptr;
  int64_t maskStrides[kMaxRank] = {};
  if (mask) {
    if (mask->rank() > 4)
      return call.fail("mask must have at most 4 dims, got " + mask->describe());
    Shape both;
    const Shape *shapes[2] = {&mask->shape(), &scoreShape};
    KILN_TRY(broadcastShapes(call, shapes, 2, &both));
    if (both != scoreShape)
      return call.fail("mask " + mask->describe() + " does not broadcast to the scores " +
                       scoreShape.str());
    broadcastStrides(mask->shape(), scoreShape, maskStrides);
    if (mask->dtype() == DType::Bool) {
      maskKeep = mask->dataAs<uint8_t>();
    } else if (isFloating(mask->dtype())) {
      Result<const Tensor *> c = asDType(*mask, DType::Float32, &tmpMask);
      if (!c.ok())
        return c.error();
      maskAdd = (*c)->dataAs<float>();
    } else {
      return call.fail("mask must be bool or float, got " + mask->describe());
    }
  }
  Result<float *> dst = allocateResult(call, q->dtype(), outShape, &res);
  if (!dst.ok())
    return dst.error();
  float *po = *dst;
  const float *pq = data[0], *pk = data[1], *pv = data[2];
  int64_t group = hq / hkv;
  float scale = (float)call.attrs->scale;
  bool causal = call.attrs->causal;
  static thread_local std::vector<float> acc; // kept between calls: no allocation per call
  if (acc.size() < (size_t)dv)
    acc.resize((size_t)dv);
  for (int64_t b = 0; b < batch; ++b) {
    const float *qB = pq + (qb == 1 ? 0 : b) * hq * t * dk;
    const float *kB = pk + (kb == 1 ? 0 : b) * hkv * s * dk;
    const float *vB = pv + (vb == 1 ? 0 : b) * hkv * s * dv;
    for (int64_t h = 0; h < hq; ++h) {
      const float *kH = kB + (h / group) * s * dk;
      const float *vH = vB + (h / group) * s * dv;
      for (int64_t i = 0; i < t; ++i) {
        const float *qRow = qB + (h * t + i) * dk;
        // Keys j <= i + (S - T) when causal.
        int64_t end = causal ? std::min<int64_t>(s, std::max<int64_t>(0, i + (s - t) + 1)) : s;
        int64_t maskRow = b * maskStrides[0] + h * maskStrides[1] + i * maskStrides[2];
        float runningMax = -INFINITY, sum = 0.0f;
        std::fill(acc.begin(), acc.begin() + dv, 0.0f);
        for (int64_t j = 0; j < end; ++j) {
          int64_t m = maskRow + j * maskStrides[3];
          if (maskKeep && !maskKeep[m])
            continue;
          const float *kRow = kH + j * dk;
          float dot = 0.0f;
          for (int64_t c = 0; c < dk; ++c)
            dot += qRow[c] * kRow[c];
          float score = dot * scale;
          if (maskAdd)
            score += maskAdd[m];
          if (std::isinf(score) && score < 0)
            continue; // weight 0
          if (score > runningMax) {
            // Rescale what was accumulated against the new maximum.
            float correction = std::exp(runningMax - score);
            sum *= correction;
            for (int64_t c = 0; c < dv; ++c)
              acc[(size_t)c] *= correction;
            runningMax = score;
          }
          float p = std::exp(score - runningMax);
          sum += p;
          const float *vRow = vH + j * dv;
          for (int64_t c = 0; c < dv; ++c)
            acc[(size_t)c] += p * vRow[c];
        }
        float *o = po + ((b * hq + h) * t + i) * dv;
        // No attended key: softmax of all -inf is NaN, as in PyTorch.
        float inv = sum > 0.0f ? 1.0f / sum : NAN;
        for (int64_t c = 0; c < dv; ++c)
          o[c] = sum > 0.0f ? acc[(size_t)c] * inv : NAN;
      }
    }
  }
  return finishOutput(call, q->dtype(), res);
}

} // namespace

extern const KernelDef kSwigluKernel = {"swiglu", 2, 2, 1, 1, 0, parseNoAttrs, runSwiglu};
extern const KernelDef kRopeKernel = {"rope", 3, 3, 1, 1, 0, parseRope, runRope};
extern const KernelDef kAttentionKernel = {"attention", 3, 4, 1, 1, 0x8u, parseAttention,
                                           runAttention};

} // namespace rt
} // namespace kiln
