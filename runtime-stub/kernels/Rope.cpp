// rope_perm (docs/dialect.md): y[..., i] = x[..., i] * cos[..., i] +
// x[..., perm[i]] * sin[..., i], broadcasting x, cos and sin like `binary`,
// x's last dim D not broadcast, perm a permutation of 0..D-1 (checked once at
// load). kiln-fuse forms it from MobileLLM's RoPE
// `x * cos + x.index_select(-1, perm) * sin`. Computed in f32: each product is
// rounded to f32 and then summed, as the unfused f32 ops do.
#include "runtime-stub/core/ThreadPool.h"
#include "runtime-stub/kernels/KernelUtil.h"

#include <algorithm>
#include <array>
#include <string>
#include <vector>

namespace kiln {
namespace rt {
namespace {

Error parseRopePerm(const AttrSet &a, OpAttrs *o) {
  KILN_TRY(a.getInts("perm", true, &o->ints));
  const std::vector<int64_t> &perm = o->ints;
  int64_t d = (int64_t)perm.size();
  if (d == 0)
    return invalidProgram("rope_perm: 'perm' must not be empty");
  std::vector<bool> seen((size_t)d, false);
  for (int64_t p : perm) {
    if (p < 0 || p >= d || seen[(size_t)p])
      return invalidProgram("rope_perm: 'perm' is not a permutation of 0.." +
                            std::to_string(d - 1) + " (entry " + std::to_string(p) + ")");
    seen[(size_t)p] = true;
  }
  return Error::success();
}

// One output row: contiguous x row, cos/sin rows with lane step 1 or 0.
// The products are kept in separate f32 variables so that they are rounded
// like the unfused mul, mul, add. With contiguous tables and D <= kGather the
// permuted row is gathered first, so that the main loop vectorises.
constexpr int64_t kGather = 1024;
// Elements from which a call is split over the pool by rows (a 64-token prefill
// chunk's q is [1, 9, 64, 64] = 36864; a decode step's never).
constexpr int64_t kSplitElements = 16 * 1024;

inline void ropeRow(const float *x, const float *c, int64_t cStep, const float *s,
                    int64_t sStep, const int64_t *perm, int64_t d, float *o) {
  if (cStep == 1 && sStep == 1 && d <= kGather) {
    float turned[kGather];
    for (int64_t j = 0; j < d; ++j)
      turned[j] = x[perm[j]];
    for (int64_t j = 0; j < d; ++j) {
      float direct = x[j] * c[j];
      float rotated = turned[j] * s[j];
      o[j] = direct + rotated;
    }
    return;
  }
  for (int64_t j = 0; j < d; ++j) {
    float direct = x[j] * c[j * cStep];
    float rotated = x[perm[j]] * s[j * sStep];
    o[j] = direct + rotated;
  }
}

Error runRopePerm(const KernelCall &call) {
  const Tensor *in[3];
  static const char *const kNames[] = {"x", "cos", "sin"};
  for (int k = 0; k < 3; ++k)
    KILN_TRY(requireInput(call, k, kNames[k], &in[k]));
  const Tensor *x = in[0];
  if (!isFloating(x->dtype()))
    return call.fail("x must be a float tensor, got " + x->describe());
  for (int k = 1; k < 3; ++k)
    if (in[k]->dtype() != x->dtype())
      return call.fail(std::string(kNames[k]) + " " + in[k]->describe() +
                       " must have the dtype of x " + x->describe());
  if (x->rank() == 0)
    return call.fail("x must have at least 1 dim, got " + x->describe());
  const std::vector<int64_t> &perm = call.attrs->ints;
  int64_t d = x->dim(x->rank() - 1);
  if ((int64_t)perm.size() != d)
    return call.fail("perm has " + std::to_string(perm.size()) +
                     " entries but the last dim of x " + x->describe() + " is " +
                     std::to_string(d));
  Shape out;
  const Shape *shapes[3] = {&x->shape(), &in[1]->shape(), &in[2]->shape()};
  KILN_TRY(broadcastShapes(call, shapes, 3, &out));
  int r = out.rank();
  if (out[r - 1] != d)
    return call.fail("the last dim of x " + x->describe() + " would be broadcast to " +
                     out.str() + " by cos " + in[1]->describe() + " / sin " +
                     in[2]->describe());
  // f32 views (converted copies for f16/bf16).
  Tensor tmps[3], res;
  const float *data[3];
  for (int k = 0; k < 3; ++k) {
    Result<const Tensor *> c = asDType(*in[k], DType::Float32, &tmps[k]);
    if (!c.ok())
      return c.error();
    data[k] = (*c)->dataAs<float>();
  }
  bool f32 = x->dtype() == DType::Float32;
  Tensor *dst = f32 ? call.out[0] : &res;
  KILN_TRY(dst->allocate(DType::Float32, out));
  float *po = dst->mutableDataAs<float>();
  if (out.numel() > 0) {
    int64_t strides[3][kMaxRank];
    for (int k = 0; k < 3; ++k)
      broadcastStrides(*shapes[k], out, strides[k]);
    int64_t cStep = strides[1][r - 1], sStep = strides[2][r - 1];
    const int64_t *pp = perm.data();
    if (r == 1) {
      ropeRow(data[0], data[1], cStep, data[2], sStep, pp, d, po);
    } else {
      Shape rows = Result<Shape>(Shape::make(out.data(), (size_t)r - 1)).take();
      const int64_t nrows = rows.numel();
      if (!call.pool || call.pool->numThreads() <= 1 || nrows < 2 || nrows * d < kSplitElements) {
        int64_t row = 0;
        forEachBroadcast<3>(rows, strides, [&](int64_t, const std::array<int64_t, 3> &off) {
          ropeRow(data[0] + off[0], data[1] + off[1], cStep, data[2] + off[2], sStep, pp, d,
                  po + row * d);
          ++row;
        });
      } else {
        // A prefill chunk ([1, H, 64, D]): the rows' operand offsets first
        // (kept per thread, no allocation once warm), then rows split over the
        // pool; each row is computed exactly as above.
        static thread_local std::vector<std::array<int64_t, 3>> offsets;
        offsets.resize((size_t)nrows);
        forEachBroadcast<3>(rows, strides, [&](int64_t i, const std::array<int64_t, 3> &off) {
          offsets[(size_t)i] = off;
        });
        const std::array<int64_t, 3> *offs = offsets.data();
        call.pool->parallelFor(nrows, std::max<int64_t>(1, kSplitElements / (2 * d)),
                               [&](int64_t r0, int64_t r1) {
                                 for (int64_t row = r0; row < r1; ++row) {
                                   const std::array<int64_t, 3> &off = offs[row];
                                   ropeRow(data[0] + off[0], data[1] + off[1], cStep,
                                           data[2] + off[2], sStep, pp, d, po + row * d);
                                 }
                               });
      }
    }
  }
  if (f32)
    return Error::success();
  return castInto(res, x->dtype(), call.out[0]);
}

} // namespace

extern const KernelDef kRopePermKernel = {"rope_perm", 3, 3, 1, 1, 0, parseRopePerm,
                                          runRopePerm};

} // namespace rt
} // namespace kiln
