//===- DedupWeights.cpp - kiln-dedup-weights ------------------------------===//
//
// Constants with the same type and bytes become one. Dense attributes are
// uniqued by MLIR (equal content = the same attribute); resource blobs (the
// weights) are compared by content hash, then byte for byte.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "kiln/Dialect/KilnOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/Support/xxhash.h"

namespace kiln {
#define GEN_PASS_DEF_DEDUPWEIGHTS
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace kiln {
namespace {

/// The bytes behind a resource-backed constant, if its blob is available.
std::optional<ArrayRef<char>> getResourceBytes(ElementsAttr value) {
  auto resource = dyn_cast<DenseResourceElementsAttr>(value);
  if (!resource)
    return std::nullopt;
  AsmResourceBlob *blob = resource.getRawHandle().getBlob();
  if (!blob)
    return std::nullopt;
  return blob->getData();
}

/// Bytes a constant occupies in the program (for the statistic).
uint64_t getStoredBytes(ElementsAttr value) {
  if (std::optional<ArrayRef<char>> bytes = getResourceBytes(value))
    return bytes->size();
  auto type = cast<ShapedType>(value.getType());
  unsigned bits = type.getElementType().getIntOrFloatBitWidth();
  return static_cast<uint64_t>(type.getNumElements()) * std::max(1u, bits / 8);
}

class DedupWeightsPass : public impl::DedupWeightsBase<DedupWeightsPass> {
public:
  using DedupWeightsBase::DedupWeightsBase;

  void runOnOperation() override {
    uint64_t examined = 0, merged = 0, saved = 0;
    auto countMerge = [&](ElementsAttr value) {
      uint64_t bytes = getStoredBytes(value);
      ++numMerged;
      bytesSaved += bytes;
      ++merged;
      saved += bytes;
    };
    // Canonical values seen so far, by type and content hash.
    llvm::DenseMap<std::pair<Type, uint64_t>, llvm::SmallVector<ElementsAttr, 1>> canonical;

    auto findCanonical = [&](ElementsAttr value) -> ElementsAttr {
      std::optional<ArrayRef<char>> bytes = getResourceBytes(value);
      // Dense attributes are uniqued: equal content is the same attribute.
      uint64_t hash = bytes ? llvm::xxh3_64bits(ArrayRef<uint8_t>(
                                  reinterpret_cast<const uint8_t *>(bytes->data()), bytes->size()))
                            : reinterpret_cast<uintptr_t>(value.getAsOpaquePointer());
      auto &group = canonical[{value.getType(), hash}];
      for (ElementsAttr candidate : group) {
        if (candidate == value)
          return candidate;
        std::optional<ArrayRef<char>> other = getResourceBytes(candidate);
        if (bytes && other && *bytes == *other)
          return candidate;
      }
      group.push_back(value);
      return value;
    };

    for (auto func : getOperation().getOps<func::FuncOp>()) {
      // The op of this function that holds each canonical value.
      llvm::DenseMap<Attribute, ConstantOp> holder;
      llvm::SmallVector<ConstantOp> toErase;
      func.walk([&](ConstantOp op) {
        ++numConstants;
        ++examined;
        ElementsAttr value = op.getValue();
        ElementsAttr canon = findCanonical(value);
        if (canon != value) {
          // Same bytes as a constant seen before (maybe in another method):
          // refer to that value, so it is stored once.
          countMerge(value);
          op.setValueAttr(canon);
        }
        auto [it, inserted] = holder.try_emplace(canon, op);
        if (!inserted) {
          // Functions are one straight-line block: the first holder dominates.
          if (canon == value)
            countMerge(value);
          op.getResult().replaceAllUsesWith(it->second.getResult());
          toErase.push_back(op);
        }
      });
      for (ConstantOp op : toErase)
        op.erase();
    }
    if (report)
      emitRemark(getOperation().getLoc())
          << "kiln-dedup-weights: " << merged << " of " << examined
          << " constants merged, " << saved << " bytes no longer stored twice";
  }
};

} // namespace
} // namespace kiln
