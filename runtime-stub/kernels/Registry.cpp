#include "runtime-stub/kernels/Kernel.h"

#include <cstring>

namespace kiln {
namespace rt {

// Defined next to their implementations.
extern const KernelDef kConstantKernel, kUnaryKernel, kBinaryKernel, kCompareKernel,
    kWhereKernel, kCastKernel, kCastLikeKernel, kClampKernel, kReduceKernel, kArgmaxKernel, kSoftmaxKernel,
    kLayerNormKernel, kRmsNormKernel, kLinearKernel, kMatmulKernel, kEmbeddingKernel,
    kIndexSelectKernel, kReshapeKernel, kExpandKernel, kPermuteKernel, kTransposeKernel,
    kUnsqueezeKernel, kSqueezeKernel, kFlattenKernel, kSliceKernel, kSelectKernel,
    kSplitKernel, kConcatKernel, kStackKernel, kRepeatInterleaveKernel, kRepeatKernel,
    kTriangularKernel, kArangeKernel, kFullKernel, kFullLikeKernel, kDimSizeKernel,
    kShapeOfKernel, kCopyKernel;
// Fused ops (kernels/Fused.cpp), formed by kiln-fuse.
extern const KernelDef kSwigluKernel, kRopeKernel, kAttentionKernel;
// rope_perm (kernels/Rope.cpp), formed by kiln-fuse.
extern const KernelDef kRopePermKernel;
// KV-cache ops (kernels/Cache.cpp), docs/llm.md.
extern const KernelDef kCacheWriteKernel, kCachedAttentionKernel;

const std::vector<const KernelDef *> &allKernels() {
  static const std::vector<const KernelDef *> kAll = {
      &kConstantKernel, &kUnaryKernel, &kBinaryKernel, &kCompareKernel, &kWhereKernel,
      &kCastKernel, &kCastLikeKernel, &kClampKernel, &kReduceKernel, &kArgmaxKernel, &kSoftmaxKernel,
      &kLayerNormKernel, &kRmsNormKernel, &kLinearKernel, &kMatmulKernel, &kEmbeddingKernel,
      &kIndexSelectKernel, &kReshapeKernel, &kExpandKernel, &kPermuteKernel,
      &kTransposeKernel, &kUnsqueezeKernel, &kSqueezeKernel, &kFlattenKernel, &kSliceKernel,
      &kSelectKernel, &kSplitKernel, &kConcatKernel, &kStackKernel,
      &kRepeatInterleaveKernel, &kRepeatKernel, &kTriangularKernel, &kArangeKernel,
      &kFullKernel, &kFullLikeKernel, &kDimSizeKernel, &kShapeOfKernel, &kCopyKernel,
      &kSwigluKernel, &kRopeKernel, &kAttentionKernel, &kCacheWriteKernel,
      &kCachedAttentionKernel, &kRopePermKernel};
  return kAll;
}

const KernelDef *findKernel(const std::string &name) {
  for (const KernelDef *k : allKernels())
    if (name == k->name)
      return k;
  return nullptr;
}

} // namespace rt
} // namespace kiln
