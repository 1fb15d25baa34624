//===- KilnTypes.cpp - kiln dialect types ---------------------------------===//
//
// `!kiln.qweight<i8, [out, in]>` and `!kiln.qweight<i4, [out, in], group = G>`:
// parsing, printing and the verifier (docs/dialect.md, "Quantized weights").
//
//===----------------------------------------------------------------------===//

#include "kiln/Dialect/KilnTypes.h"
#include "kiln/Dialect/KilnDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace kiln;

#define GET_TYPEDEF_CLASSES
#include "kiln/Dialect/KilnTypes.cpp.inc"

void KilnDialect::registerTypes() {
  addTypes<
#define GET_TYPEDEF_LIST
#include "kiln/Dialect/KilnTypes.cpp.inc"
      >();
}

LogicalResult QWeightType::verify(function_ref<InFlightDiagnostic()> emitError,
                                  unsigned bits, ArrayRef<int64_t> shape,
                                  int64_t groupSize) {
  if (bits != 8 && bits != 4)
    return emitError() << "qweight element type must be i8 or i4, got i" << bits;
  if (shape.size() != 2)
    return emitError() << "qweight must be 2-d [out, in], got rank "
                       << shape.size();
  if (shape[0] <= 0 || shape[1] <= 0)
    return emitError() << "qweight dims must be static and positive, got ["
                       << shape[0] << ", " << shape[1] << "]";
  if (bits == 8 && groupSize != shape[1])
    return emitError() << "i8 qweight has one scale per row: group must be the "
                          "in-features ("
                       << shape[1] << "), got " << groupSize;
  if (bits == 4) {
    if (groupSize != 32 && groupSize != 64 && groupSize != 128)
      return emitError() << "i4 qweight group must be 32, 64 or 128, got "
                         << groupSize;
    if (shape[1] % groupSize != 0)
      return emitError() << "i4 qweight group " << groupSize
                         << " does not divide the in-features " << shape[1];
  }
  return success();
}

RankedTensorType QWeightType::getDataTensorType() const {
  Builder b(getContext());
  return RankedTensorType::get({getShape()[0], getShape()[1] * getBits() / 8},
                               b.getIntegerType(8));
}

RankedTensorType QWeightType::getScalesTensorType() const {
  Builder b(getContext());
  return RankedTensorType::get({getShape()[0], getGroupsPerRow()}, b.getF16Type());
}

/// `<i8, [out, in]>` or `<i4, [out, in], group = G>`.
Type QWeightType::parse(AsmParser &parser) {
  SMLoc loc = parser.getCurrentLocation();
  Type element;
  int64_t out = 0, in = 0;
  if (parser.parseLess() || parser.parseType(element) || parser.parseComma() ||
      parser.parseLSquare() || parser.parseInteger(out) || parser.parseComma() ||
      parser.parseInteger(in) || parser.parseRSquare())
    return {};
  auto integer = llvm::dyn_cast<IntegerType>(element);
  if (!integer || !integer.isSignless() ||
      (integer.getWidth() != 8 && integer.getWidth() != 4)) {
    parser.emitError(loc) << "qweight element type must be i8 or i4, got "
                          << element;
    return {};
  }
  int64_t group = in;
  if (succeeded(parser.parseOptionalComma())) {
    if (parser.parseKeyword("group") || parser.parseEqual() ||
        parser.parseInteger(group))
      return {};
  } else if (integer.getWidth() == 4) {
    parser.emitError(loc) << "i4 qweight needs `group = 32|64|128`";
    return {};
  }
  if (parser.parseGreater())
    return {};
  SmallVector<int64_t, 2> shape = {out, in};
  return getChecked([&] { return parser.emitError(loc); }, parser.getContext(),
                    integer.getWidth(), ArrayRef<int64_t>(shape), group);
}

void QWeightType::print(AsmPrinter &printer) const {
  printer << "<i" << getBits() << ", [" << getShape()[0] << ", "
          << getShape()[1] << "]";
  if (getBits() != 8 || getGroupSize() != getShape()[1])
    printer << ", group = " << getGroupSize();
  printer << ">";
}
