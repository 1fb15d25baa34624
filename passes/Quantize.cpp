//===- Quantize.cpp - kiln-quantize ---------------------------------------===//
//
// Weight-only quantization: f32 `kiln.constant`s read only as `linear`
// weights or `embedding` tables become `kiln.qconstant`s of type
// `!kiln.qweight<i8|i4, ...>` (symmetric, f16 scales; see Passes.td and
// docs/dialect.md). Dense inputs give dense outputs (readable in lit tests);
// resource-backed weights (the front end's) give resource blobs.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "kiln/Dialect/KilnOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/AsmState.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "llvm/ADT/APFloat.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/SmallVector.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace kiln {
#define GEN_PASS_DEF_QUANTIZE
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace kiln {
namespace {

/// Rounds `value` to f16 and returns the f16 bits and the rounded value.
std::pair<uint16_t, float> roundToHalf(float value) {
  llvm::APFloat half(value);
  bool losesInfo = false;
  half.convert(llvm::APFloat::IEEEhalf(), llvm::APFloat::rmNearestTiesToEven,
               &losesInfo);
  uint16_t bits = static_cast<uint16_t>(half.bitcastToAPInt().getZExtValue());
  half.convert(llvm::APFloat::IEEEsingle(), llvm::APFloat::rmNearestTiesToEven,
               &losesInfo);
  return {bits, half.convertToFloat()};
}

/// The f32 values of a constant, row-major; nullopt if unavailable.
std::optional<std::vector<float>> readFloats(ElementsAttr value) {
  auto type = cast<ShapedType>(value.getType());
  size_t count = static_cast<size_t>(type.getNumElements());
  if (auto resource = dyn_cast<DenseResourceElementsAttr>(value)) {
    AsmResourceBlob *blob = resource.getRawHandle().getBlob();
    if (!blob || blob->getData().size() != count * sizeof(float))
      return std::nullopt;
    std::vector<float> floats(count);
    std::memcpy(floats.data(), blob->getData().data(), count * sizeof(float));
    return floats;
  }
  if (auto dense = dyn_cast<DenseFPElementsAttr>(value)) {
    std::vector<float> floats;
    floats.reserve(count);
    for (float f : dense.getValues<float>())
      floats.push_back(f);
    return floats;
  }
  return std::nullopt;
}

/// Quantized data and f16 scale bits of one weight.
struct QuantizedWeight {
  std::vector<int8_t> data;     // i8 values, or packed i4 bytes
  std::vector<uint16_t> scales; // f16 bits, [out, in / group]
};

/// Symmetric quantization of a row-major [out, in] weight with one scale per
/// `group` consecutive in-features (group = in for per-row int8).
QuantizedWeight quantizeWeight(ArrayRef<float> w, int64_t out, int64_t in,
                               unsigned bits, int64_t group) {
  const int qmax = bits == 8 ? 127 : 7;
  const int qmin = bits == 8 ? -127 : -8;
  QuantizedWeight q;
  q.scales.reserve(static_cast<size_t>(out * (in / group)));
  std::vector<int8_t> values(static_cast<size_t>(out * in));
  for (int64_t r = 0; r < out; ++r) {
    for (int64_t g = 0; g < in / group; ++g) {
      const float *src = w.data() + r * in + g * group;
      float maxAbs = 0.0f;
      for (int64_t c = 0; c < group; ++c)
        maxAbs = std::max(maxAbs, std::fabs(src[c]));
      auto [scaleBits, scale] = roundToHalf(maxAbs / qmax);
      q.scales.push_back(scaleBits);
      int8_t *dst = values.data() + r * in + g * group;
      for (int64_t c = 0; c < group; ++c) {
        long v = scale > 0.0f ? std::lround(src[c] / scale) : 0;
        dst[c] = static_cast<int8_t>(std::clamp<long>(v, qmin, qmax));
      }
    }
  }
  if (bits == 8) {
    q.data = std::move(values);
    return q;
  }
  // Two int4 values per byte: element 2k in the low nibble, 2k+1 in the high.
  q.data.resize(values.size() / 2);
  for (size_t i = 0; i < q.data.size(); ++i) {
    uint8_t lo = static_cast<uint8_t>(values[2 * i]) & 0x0F;
    uint8_t hi = static_cast<uint8_t>(values[2 * i + 1]) & 0x0F;
    q.data[i] = static_cast<int8_t>(lo | (hi << 4));
  }
  return q;
}

/// A short name for the weight in diagnostics and resource keys.
std::string getWeightName(ConstantOp op) {
  if (auto resource = dyn_cast<DenseResourceElementsAttr>(op.getValue()))
    return resource.getRawHandle().getKey().str();
  Location loc = op.getLoc();
  if (auto name = dyn_cast<NameLoc>(loc))
    return name.getName().str();
  return "";
}

/// True if every use of `op` reads it as a quantizable weight: the weight of
/// a `linear` with an f32 input, or the table of an `embedding`.
bool hasOnlyWeightUses(ConstantOp op) {
  for (OpOperand &use : op.getResult().getUses()) {
    Operation *user = use.getOwner();
    if (auto linear = dyn_cast<LinearOp>(user)) {
      if (use.getOperandNumber() != 1 ||
          !getElementTypeOrSelf(linear.getX().getType()).isF32())
        return false;
    } else if (isa<EmbeddingOp>(user)) {
      if (use.getOperandNumber() != 0)
        return false;
    } else {
      return false;
    }
  }
  return !op.getResult().use_empty();
}

class QuantizePass : public impl::QuantizeBase<QuantizePass> {
public:
  using QuantizeBase::QuantizeBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    unsigned bits = 0;
    if (mode == "none")
      return;
    if (mode == "int8") {
      bits = 8;
    } else if (mode == "int4") {
      bits = 4;
    } else {
      module.emitError() << "kiln-quantize: unknown mode '" << mode
                         << "' (expected none, int8 or int4)";
      return signalPassFailure();
    }

    // One quantized value per distinct f32 value: the same weight in several
    // functions (methods) is quantized once and its data shared.
    llvm::DenseMap<Attribute, std::pair<ElementsAttr, ElementsAttr>> done;
    uint64_t quantized = 0, keptF32 = 0, before = 0, after = 0;
    bool failed = false;

    module.walk([&](ConstantOp op) -> WalkResult {
      auto type = dyn_cast<RankedTensorType>(op.getType());
      if (!type || type.getRank() != 2 || !type.hasStaticShape() ||
          !type.getElementType().isF32())
        return WalkResult::advance();
      bool weightUse = llvm::any_of(op->getUses(), [](OpOperand &use) {
        return (isa<LinearOp>(use.getOwner()) && use.getOperandNumber() == 1) ||
               (isa<EmbeddingOp>(use.getOwner()) && use.getOperandNumber() == 0);
      });
      if (!weightUse)
        return WalkResult::advance();
      if (!hasOnlyWeightUses(op)) {
        ++keptF32;
        ++numKeptF32;
        return WalkResult::advance();
      }
      int64_t out = type.getDimSize(0), in = type.getDimSize(1);
      int64_t group = bits == 8 ? in : (int64_t)groupSize;
      std::string name = getWeightName(op);
      auto describe = [&](InFlightDiagnostic &diag) {
        diag << "weight " << (name.empty() ? "" : "'" + name + "' ") << "["
             << out << ", " << in << "]";
      };
      if (bits == 4 && group != 32 && group != 64 && group != 128) {
        InFlightDiagnostic diag = op.emitError()
                                  << "kiln-quantize: cannot quantize ";
        describe(diag);
        diag << " to int4 with group size " << group
             << ": the group size must be 32, 64 or 128";
        failed = true;
        // The same for every weight: report it once.
        return WalkResult::interrupt();
      }
      if (bits == 4 && in % group != 0) {
        InFlightDiagnostic diag = op.emitError()
                                  << "kiln-quantize: cannot quantize ";
        describe(diag);
        diag << " to int4 with group size " << group << ": " << group
             << " does not divide the in-features " << in;
        failed = true;
        return WalkResult::advance();
      }
      auto qtype = QWeightType::get(op.getContext(), bits,
                                    ArrayRef<int64_t>{out, in}, group);
      auto [it, inserted] = done.try_emplace(op.getValue());
      if (inserted) {
        std::optional<std::vector<float>> floats = readFloats(op.getValue());
        if (!floats) {
          op.emitError() << "kiln-quantize: cannot read the f32 data of "
                         << (name.empty() ? "this weight" : "'" + name + "'");
          failed = true;
          return WalkResult::advance();
        }
        QuantizedWeight q = quantizeWeight(*floats, out, in, bits, group);
        it->second = makeAttributes(op, qtype, name, q);
        before += static_cast<uint64_t>(out * in) * 4;
        after += q.data.size() + q.scales.size() * 2;
      }
      OpBuilder builder(op);
      auto qconst = builder.create<QConstantOp>(op.getLoc(), qtype,
                                                it->second.first,
                                                it->second.second);
      op.getResult().replaceAllUsesWith(qconst.getResult());
      op.erase();
      ++quantized;
      ++numQuantized;
      return WalkResult::advance();
    });
    if (failed)
      return signalPassFailure();
    bytesBefore += before;
    bytesAfter += after;
    if (report)
      emitRemark(module.getLoc())
          << "kiln-quantize (" << mode
          << (bits == 4 ? ", group " + std::to_string(groupSize) : "")
          << "): quantized " << quantized << " weight constants ("
          << done.size() << " distinct), " << before << " -> " << after
          << " bytes; kept f32: " << keptF32 << " (read by other ops)";
  }

private:
  /// The data and scales attributes: dense for a dense source, resource
  /// blobs (no uniquing of large data) for a resource-backed one.
  std::pair<ElementsAttr, ElementsAttr>
  makeAttributes(ConstantOp op, QWeightType qtype, StringRef name,
                 const QuantizedWeight &q) {
    RankedTensorType dataType = qtype.getDataTensorType();
    RankedTensorType scalesType = qtype.getScalesTensorType();
    if (isa<DenseResourceElementsAttr>(op.getValue())) {
      std::string base = name.empty() ? "weight" : name.str();
      auto data = DenseResourceElementsAttr::get(
          dataType, base + "_q",
          HeapAsmResourceBlob::allocateAndCopyInferAlign(ArrayRef<int8_t>(q.data)));
      auto scales = DenseResourceElementsAttr::get(
          scalesType, base + "_scales",
          HeapAsmResourceBlob::allocateAndCopyInferAlign(
              ArrayRef<uint16_t>(q.scales)));
      return {data, scales};
    }
    auto data = DenseElementsAttr::get(dataType, ArrayRef<int8_t>(q.data));
    SmallVector<APFloat> halves;
    halves.reserve(q.scales.size());
    for (uint16_t bits : q.scales)
      halves.push_back(APFloat(APFloat::IEEEhalf(), APInt(16, bits)));
    auto scales = DenseElementsAttr::get(scalesType, halves);
    return {cast<ElementsAttr>(data), cast<ElementsAttr>(scales)};
  }
};

} // namespace
} // namespace kiln
