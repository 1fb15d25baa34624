//===- KilnOps.cpp - kiln dialect ops -------------------------------------===//
//
// Verifiers and folders of the kiln ops. A verifier checks every invariant
// that the known part of the types allows: element types always, ranks when
// the operands are ranked, sizes when they are static. Whatever is unknown is
// checked by the runtime kernels (docs/decisions.md, section 1).
//
//===----------------------------------------------------------------------===//

#include "kiln/Dialect/KilnOps.h"

#include "mlir/Dialect/Traits.h"
#include "mlir/IR/TypeUtilities.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallBitVector.h"
#include "llvm/ADT/StringExtras.h"

#include <functional>
#include <optional>

using namespace mlir;
using namespace kiln;

#define GET_OP_CLASSES
#include "kiln/Dialect/KilnOps.cpp.inc"

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

namespace {

constexpr int64_t kDynamic = ShapedType::kDynamic;

/// The rank of a tensor type, or std::nullopt if it is unranked.
std::optional<int64_t> knownRank(Type type) {
  if (auto ranked = dyn_cast<RankedTensorType>(type))
    return ranked.getRank();
  return std::nullopt;
}

/// The shape of a ranked tensor type, or std::nullopt if it is unranked.
std::optional<SmallVector<int64_t>> knownShape(Type type) {
  if (auto ranked = dyn_cast<RankedTensorType>(type))
    return llvm::to_vector(ranked.getShape());
  if (auto qweight = dyn_cast<QWeightType>(type))
    return llvm::to_vector(qweight.getShape());
  return std::nullopt;
}

bool isFloatElement(Type type) {
  return isa<FloatType>(getElementTypeOrSelf(type));
}

/// Integer element types usable as indices and sizes (not bool).
bool isIndexElement(Type type) {
  Type element = getElementTypeOrSelf(type);
  return isa<IntegerType>(element) && !element.isInteger(1);
}

/// Formats a shape for diagnostics: [2, ?, 4].
std::string formatShape(ArrayRef<int64_t> shape) {
  std::string text = "[";
  llvm::raw_string_ostream os(text);
  llvm::interleaveComma(shape, os, [&](int64_t size) {
    if (ShapedType::isDynamic(size))
      os << "?";
    else
      os << size;
  });
  os << "]";
  return os.str();
}

/// Checks the `fn` selector of an op family against its allowed set.
LogicalResult verifyFn(Operation *op, StringRef fn,
                       ArrayRef<StringRef> allowed) {
  if (llvm::is_contained(allowed, fn))
    return success();
  return op->emitOpError() << "unknown fn \"" << fn
                           << "\"; expected one of: "
                           << llvm::join(allowed, " ");
}

/// The element type named by `dtype`, or an error listing the valid names.
FailureOr<Type> verifyDtype(Operation *op, StringRef dtype) {
  Type element = getElementTypeForDtype(op->getContext(), dtype);
  if (!element) {
    (void)(op->emitOpError() << "unknown dtype \"" << dtype
                             << "\"; expected one of: " << getDtypeNames());
    return failure();
  }
  return element;
}

/// Normalises a PyTorch dim (negative counts from the end) against `rank`.
/// `wrapScalar` accepts dim 0 and -1 on a 0-d tensor, as PyTorch does for
/// most ops. `extra` widens the range for ops that insert a dim (unsqueeze,
/// stack): the valid range is [-(rank + extra), rank + extra).
FailureOr<int64_t> normalizeDim(Operation *op, StringRef name, int64_t dim,
                                int64_t rank, bool wrapScalar = true,
                                int64_t extra = 0) {
  int64_t bound = rank + extra;
  if (wrapScalar && bound == 0)
    bound = 1;
  if (dim < -bound || dim >= bound) {
    (void)(op->emitOpError()
           << "'" << name << "' " << dim << " is out of range for rank "
           << rank << " (expected [" << -bound << ", " << bound - 1 << "])");
    return failure();
  }
  return dim < 0 ? dim + bound : dim;
}

/// Checks that the result element type is `expected`.
LogicalResult verifyElementType(Operation *op, StringRef what, Type type,
                                Type expected, StringRef rule) {
  Type actual = getElementTypeOrSelf(type);
  if (actual == expected)
    return success();
  return op->emitOpError() << what << " element type " << actual
                           << " does not match the expected " << expected
                           << " (" << rule << ")";
}

/// Checks that the result shape is compatible with `expected` (dynamic dims
/// on either side match anything). Unranked results always pass.
LogicalResult verifyResultShape(Operation *op, Type result,
                                ArrayRef<int64_t> expected,
                                StringRef what = "result") {
  std::optional<SmallVector<int64_t>> actual = knownShape(result);
  if (!actual)
    return success();
  if (succeeded(verifyCompatibleShape(*actual, expected)))
    return success();
  return op->emitOpError() << what << " shape " << formatShape(*actual)
                           << " is incompatible with the expected shape "
                           << formatShape(expected);
}

/// Checks the result rank when both it and the expected rank are known.
LogicalResult verifyResultRank(Operation *op, Type result, int64_t expected) {
  std::optional<int64_t> rank = knownRank(result);
  if (!rank || *rank == expected)
    return success();
  return op->emitOpError() << "result rank " << *rank
                           << " does not match the expected rank " << expected;
}

/// Checks that the result has the operand's element type and a compatible
/// shape (the common rule of shape-preserving ops).
LogicalResult verifySameElementTypeAndShape(Operation *op, Type operand,
                                            Type result) {
  if (failed(verifyElementType(op, "result", result,
                               getElementTypeOrSelf(operand),
                               "same as the input")))
    return failure();
  if (std::optional<SmallVector<int64_t>> shape = knownShape(operand))
    return verifyResultShape(op, result, *shape);
  return success();
}

/// Checks that an operand is a 0-d tensor (when ranked) of an index type.
LogicalResult verifyScalarIndex(Operation *op, StringRef name, Type type) {
  if (!isIndexElement(type))
    return op->emitOpError() << "'" << name
                             << "' must have an integer element type, got "
                             << getElementTypeOrSelf(type);
  std::optional<int64_t> rank = knownRank(type);
  if (rank && *rank != 0)
    return op->emitOpError() << "'" << name
                             << "' must be a 0-d tensor, got rank " << *rank;
  return success();
}

/// Checks that an operand is a 1-d (when ranked) integer shape list.
LogicalResult verifyShapeList(Operation *op, StringRef name, Type type) {
  std::optional<int64_t> rank = knownRank(type);
  if (!isIndexElement(type) || (rank && *rank != 1))
    return op->emitOpError() << "'" << name
                             << "' must be a 1-d integer tensor, got " << type;
  return success();
}

/// The static length of a 1-d shape list, if known.
std::optional<int64_t> getShapeListLength(Type type) {
  std::optional<SmallVector<int64_t>> shape = knownShape(type);
  if (!shape || shape->size() != 1 || ShapedType::isDynamic((*shape)[0]))
    return std::nullopt;
  return (*shape)[0];
}

/// The broadcast shape of ranked operands, or failure with an error.
/// Returns std::nullopt (success, nothing known) if any operand is unranked.
FailureOr<std::optional<SmallVector<int64_t>>>
broadcastShapes(Operation *op, TypeRange operands) {
  SmallVector<int64_t> shape;
  for (Type type : operands) {
    std::optional<SmallVector<int64_t>> operandShape = knownShape(type);
    if (!operandShape)
      return std::optional<SmallVector<int64_t>>();
    SmallVector<int64_t> next;
    if (!OpTrait::util::getBroadcastedShape(shape, *operandShape, next)) {
      (void)(op->emitOpError() << "operand shapes do not broadcast: "
                               << formatShape(shape) << " and "
                               << formatShape(*operandShape));
      return failure();
    }
    shape = std::move(next);
  }
  return std::optional<SmallVector<int64_t>>(std::move(shape));
}

/// Checks that the result shape is the broadcast of the operand shapes.
LogicalResult verifyBroadcastResult(Operation *op, TypeRange operands,
                                    Type result) {
  FailureOr<std::optional<SmallVector<int64_t>>> shape =
      broadcastShapes(op, operands);
  if (failed(shape))
    return failure();
  if (!*shape)
    return success();
  return verifyResultShape(op, result, **shape);
}

/// The element types a two-operand elementwise op may produce. With both
/// ranks known the PyTorch rule gives one answer; when a rank is unknown the
/// operand may or may not be 0-d, so each reading is accepted.
SmallVector<Type, 3> getPromotionCandidates(Type lhs, Type rhs) {
  Type lhsElement = getElementTypeOrSelf(lhs);
  Type rhsElement = getElementTypeOrSelf(rhs);
  std::optional<int64_t> lhsRank = knownRank(lhs);
  std::optional<int64_t> rhsRank = knownRank(rhs);
  SmallVector<Type, 3> candidates;
  auto add = [&](bool lhsZeroDim, bool rhsZeroDim) {
    Type type =
        promoteOperandTypes(lhsElement, lhsZeroDim, rhsElement, rhsZeroDim);
    if (!llvm::is_contained(candidates, type))
      candidates.push_back(type);
  };
  for (bool lhsZeroDim : {false, true}) {
    if (lhsRank && (*lhsRank == 0) != lhsZeroDim)
      continue;
    for (bool rhsZeroDim : {false, true}) {
      if (rhsRank && (*rhsRank == 0) != rhsZeroDim)
        continue;
      add(lhsZeroDim, rhsZeroDim);
    }
  }
  return candidates;
}

/// Checks a promoted result element type; `toFloat` maps a non-float
/// promotion to f32 (true division).
LogicalResult verifyPromotedResult(Operation *op, Type lhs, Type rhs,
                                   Type result, bool toFloat = false) {
  SmallVector<Type, 3> candidates = getPromotionCandidates(lhs, rhs);
  if (toFloat)
    for (Type &type : candidates)
      if (!isa<FloatType>(type))
        type = Float32Type::get(op->getContext());
  Type actual = getElementTypeOrSelf(result);
  if (llvm::is_contained(candidates, actual))
    return success();
  return op->emitOpError()
         << "result element type " << actual
         << " does not match the expected " << candidates.front()
         << " (PyTorch promotion of " << getElementTypeOrSelf(lhs) << " and "
         << getElementTypeOrSelf(rhs) << (toFloat ? ", true division" : "")
         << ")";
}

/// Normalises a list of dims and checks that none repeats.
FailureOr<SmallVector<int64_t>> normalizeDimList(Operation *op, StringRef name,
                                                 ArrayRef<int64_t> dims,
                                                 int64_t rank) {
  SmallVector<int64_t> normalized;
  for (int64_t dim : dims) {
    FailureOr<int64_t> d = normalizeDim(op, name, dim, rank);
    if (failed(d))
      return failure();
    if (llvm::is_contained(normalized, *d)) {
      (void)(op->emitOpError() << "'" << name << "' repeats dim " << dim);
      return failure();
    }
    normalized.push_back(*d);
  }
  return normalized;
}

/// The shape left by reducing `dims` (empty = all) of `shape`.
SmallVector<int64_t> getReducedShape(ArrayRef<int64_t> shape,
                                     ArrayRef<int64_t> dims, bool keepdim) {
  SmallVector<int64_t> result;
  for (auto [i, size] : llvm::enumerate(shape)) {
    bool reduced = dims.empty() || llvm::is_contained(dims, (int64_t)i);
    if (!reduced)
      result.push_back(size);
    else if (keepdim)
      result.push_back(1);
  }
  return result;
}

int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

const StringRef kFloatOnlyUnaryFns[] = {
    "exp",     "log",  "sqrt", "rsqrt",    "reciprocal", "sin", "cos",
    "tanh",    "sigmoid", "silu", "gelu", "gelu_tanh", "erf"};

} // namespace

//===----------------------------------------------------------------------===//
// ConstantOp
//===----------------------------------------------------------------------===//

LogicalResult ConstantOp::verify() {
  // The serializer writes constant bytes into segments: only dense storage.
  if (!isa<DenseElementsAttr, DenseResourceElementsAttr>(getValue()))
    return emitOpError(
        "value must be a DenseElementsAttr or a DenseResourceElementsAttr");
  return success();
}

OpFoldResult ConstantOp::fold(FoldAdaptor) { return getValueAttr(); }

//===----------------------------------------------------------------------===//
// Elementwise
//===----------------------------------------------------------------------===//

LogicalResult UnaryOp::verify() {
  static const StringRef allowed[] = {
      "neg",     "abs",  "exp",  "log",       "sqrt",        "rsqrt", "reciprocal",
      "sin",     "cos",  "tanh", "sigmoid",   "relu",        "silu",  "gelu",
      "gelu_tanh", "erf", "logical_not", "floor", "ceil", "round"};
  if (failed(verifyFn(*this, getFn(), allowed)))
    return failure();
  Type input = getElementTypeOrSelf(getX().getType());
  Type expected = input;
  StringRef rule = "same as the input";
  if (getFn() == "logical_not") {
    expected = IntegerType::get(getContext(), 1);
    rule = "logical_not gives i1";
  } else if (!isa<FloatType>(input) &&
             llvm::is_contained(kFloatOnlyUnaryFns, getFn())) {
    expected = Float32Type::get(getContext());
    rule = "a float-only fn of an integer input gives f32";
  }
  if (failed(verifyElementType(*this, "result", getResult().getType(),
                               expected, rule)))
    return failure();
  if (std::optional<SmallVector<int64_t>> shape = knownShape(getX().getType()))
    return verifyResultShape(*this, getResult().getType(), *shape);
  return success();
}

LogicalResult BinaryOp::verify() {
  static const StringRef allowed[] = {
      "add",       "sub",       "mul", "div",     "floor_div",
      "trunc_div", "remainder", "pow", "maximum", "minimum"};
  if (failed(verifyFn(*this, getFn(), allowed)))
    return failure();
  if (failed(verifyPromotedResult(*this, getA().getType(), getB().getType(),
                                  getResult().getType(),
                                  /*toFloat=*/getFn() == "div")))
    return failure();
  return verifyBroadcastResult(*this, {getA().getType(), getB().getType()},
                               getResult().getType());
}

OpFoldResult BinaryOp::fold(FoldAdaptor adaptor) {
  // Only integer add/sub/mul without broadcasting or promotion: exact, and
  // what the size arithmetic of static traced graphs needs.
  auto type = dyn_cast<RankedTensorType>(getResult().getType());
  if (!type || !type.hasStaticShape() ||
      !isa<IntegerType>(type.getElementType()) ||
      getA().getType() != type || getB().getType() != type)
    return {};
  auto a = dyn_cast_or_null<DenseIntElementsAttr>(adaptor.getA());
  auto b = dyn_cast_or_null<DenseIntElementsAttr>(adaptor.getB());
  if (!a || !b)
    return {};
  std::function<APInt(const APInt &, const APInt &)> apply;
  if (getFn() == "add")
    apply = [](const APInt &x, const APInt &y) { return x + y; };
  else if (getFn() == "sub")
    apply = [](const APInt &x, const APInt &y) { return x - y; };
  else if (getFn() == "mul")
    apply = [](const APInt &x, const APInt &y) { return x * y; };
  else
    return {};
  SmallVector<APInt> values;
  for (auto [x, y] : llvm::zip_equal(a.getValues<APInt>(), b.getValues<APInt>()))
    values.push_back(apply(x, y));
  return DenseElementsAttr::get(type, values);
}

LogicalResult CompareOp::verify() {
  static const StringRef allowed[] = {"eq", "ne", "lt", "le", "gt", "ge",
                                      "logical_and", "logical_or",
                                      "logical_xor"};
  if (failed(verifyFn(*this, getFn(), allowed)))
    return failure();
  if (failed(verifyElementType(*this, "result", getResult().getType(),
                               IntegerType::get(getContext(), 1),
                               "compare gives i1")))
    return failure();
  return verifyBroadcastResult(*this, {getA().getType(), getB().getType()},
                               getResult().getType());
}

LogicalResult WhereOp::verify() {
  if (failed(verifyElementType(*this, "condition", getCond().getType(),
                               IntegerType::get(getContext(), 1),
                               "the condition is bool")))
    return failure();
  if (failed(verifyPromotedResult(*this, getA().getType(), getB().getType(),
                                  getResult().getType())))
    return failure();
  return verifyBroadcastResult(
      *this, {getCond().getType(), getA().getType(), getB().getType()},
      getResult().getType());
}

LogicalResult CastOp::verify() {
  FailureOr<Type> element = verifyDtype(*this, getDtype());
  if (failed(element))
    return failure();
  if (failed(verifyElementType(*this, "result", getResult().getType(),
                               *element, "the dtype attribute")))
    return failure();
  if (std::optional<SmallVector<int64_t>> shape = knownShape(getX().getType()))
    return verifyResultShape(*this, getResult().getType(), *shape);
  return success();
}

LogicalResult CastLikeOp::verify() {
  if (failed(verifyElementType(*this, "result", getResult().getType(),
                               getElementTypeOrSelf(getLike().getType()),
                               "the element type of 'like'")))
    return failure();
  if (std::optional<SmallVector<int64_t>> shape = knownShape(getX().getType()))
    return verifyResultShape(*this, getResult().getType(), *shape);
  return success();
}

OpFoldResult CastOp::fold(FoldAdaptor) {
  // A cast to the type the input already has is the input, unless that type
  // is a guess of the front end (then the cast is a real conversion).
  if (getX().getType() == getResult().getType() && !mayHaveGuessedElementType(getX()))
    return getX();
  return {};
}

LogicalResult ClampOp::verify() {
  if (!getMin() && !getMax())
    return emitOpError("needs at least one of 'min' and 'max'");
  return verifySameElementTypeAndShape(*this, getX().getType(),
                                       getResult().getType());
}

//===----------------------------------------------------------------------===//
// Reductions and normalizations
//===----------------------------------------------------------------------===//

LogicalResult ReduceOp::verify() {
  static const StringRef allowed[] = {"sum", "mean", "max", "min", "prod"};
  if (failed(verifyFn(*this, getFn(), allowed)))
    return failure();
  Type input = getElementTypeOrSelf(getX().getType());
  Type expected = input;
  StringRef rule = "same as the input";
  if (!isa<FloatType>(input)) {
    if (getFn() == "mean")
      return emitOpError() << "mean needs a float input, got " << input
                           << " (cast first, like PyTorch)";
    if (getFn() == "sum" || getFn() == "prod") {
      expected = IntegerType::get(getContext(), 64);
      rule = "sum/prod of an integer or bool input gives i64";
    }
  }
  if (failed(verifyElementType(*this, "result", getResult().getType(),
                               expected, rule)))
    return failure();
  std::optional<SmallVector<int64_t>> shape = knownShape(getX().getType());
  if (!shape)
    return success();
  FailureOr<SmallVector<int64_t>> dims =
      normalizeDimList(*this, "dims", getDims(), shape->size());
  if (failed(dims))
    return failure();
  return verifyResultShape(*this, getResult().getType(),
                           getReducedShape(*shape, *dims, getKeepdim()));
}

LogicalResult ArgmaxOp::verify() {
  if (failed(verifyElementType(*this, "result", getResult().getType(),
                               IntegerType::get(getContext(), 64),
                               "argmax gives i64")))
    return failure();
  std::optional<SmallVector<int64_t>> shape = knownShape(getX().getType());
  if (!shape)
    return success();
  FailureOr<int64_t> dim =
      normalizeDim(*this, "dim", (int64_t)getDim(), shape->size());
  if (failed(dim))
    return failure();
  if (shape->empty())
    return verifyResultShape(*this, getResult().getType(), {});
  return verifyResultShape(*this, getResult().getType(),
                           getReducedShape(*shape, {*dim}, getKeepdim()));
}

LogicalResult SoftmaxOp::verify() {
  if (!isFloatElement(getX().getType()))
    return emitOpError() << "needs a float input, got "
                         << getElementTypeOrSelf(getX().getType());
  if (std::optional<int64_t> rank = knownRank(getX().getType()))
    if (failed(normalizeDim(*this, "dim", (int64_t)getDim(), *rank)))
      return failure();
  return verifySameElementTypeAndShape(*this, getX().getType(),
                                       getResult().getType());
}

/// Checks an optional norm parameter against the trailing `ndim` dims of x.
static LogicalResult verifyNormParameter(Operation *op, StringRef name,
                                         Value param, Type x, int64_t ndim) {
  if (!param)
    return success();
  std::optional<SmallVector<int64_t>> paramShape = knownShape(param.getType());
  if (!paramShape)
    return success();
  if ((int64_t)paramShape->size() != ndim)
    return op->emitOpError() << "'" << name << "' must have rank " << ndim
                             << ", got " << paramShape->size();
  std::optional<SmallVector<int64_t>> xShape = knownShape(x);
  if (!xShape)
    return success();
  ArrayRef<int64_t> trailing = ArrayRef<int64_t>(*xShape).take_back(ndim);
  if (failed(verifyCompatibleShape(*paramShape, trailing)))
    return op->emitOpError()
           << "'" << name << "' shape " << formatShape(*paramShape)
           << " does not match the normalized dims " << formatShape(trailing);
  return success();
}

LogicalResult LayerNormOp::verify() {
  int64_t ndim = getNormalizedNdim();
  if (ndim < 1)
    return emitOpError() << "'normalized_ndim' must be at least 1, got "
                         << ndim;
  if (std::optional<int64_t> rank = knownRank(getX().getType()))
    if (ndim > *rank)
      return emitOpError() << "'normalized_ndim' " << ndim
                           << " exceeds the input rank " << *rank;
  if (getEps().isNegative())
    return emitOpError("'eps' must be non-negative");
  if (!isFloatElement(getX().getType()))
    return emitOpError() << "needs a float input, got "
                         << getElementTypeOrSelf(getX().getType());
  if (failed(verifyNormParameter(*this, "weight", getWeight(),
                                 getX().getType(), ndim)) ||
      failed(verifyNormParameter(*this, "bias", getBias(), getX().getType(),
                                 ndim)))
    return failure();
  return verifySameElementTypeAndShape(*this, getX().getType(),
                                       getResult().getType());
}

LogicalResult RmsNormOp::verify() {
  if (getEps().isNegative())
    return emitOpError("'eps' must be non-negative");
  if (!isFloatElement(getX().getType()))
    return emitOpError() << "needs a float input, got "
                         << getElementTypeOrSelf(getX().getType());
  if (std::optional<int64_t> rank = knownRank(getX().getType()))
    if (*rank < 1)
      return emitOpError("needs an input of rank at least 1");
  if (failed(verifyNormParameter(*this, "weight", getWeight(),
                                 getX().getType(), 1)))
    return failure();
  return verifySameElementTypeAndShape(*this, getX().getType(),
                                       getResult().getType());
}

//===----------------------------------------------------------------------===//
// Contractions and gathers
//===----------------------------------------------------------------------===//

LogicalResult QConstantOp::verify() {
  QWeightType type = getResult().getType();
  auto check = [&](StringRef what, ElementsAttr attr,
                   RankedTensorType expected) -> LogicalResult {
    if (attr.getShapedType() == expected)
      return success();
    return emitOpError() << what << " must be " << expected << " for " << type
                         << ", got " << attr.getShapedType();
  };
  if (failed(check("data", getData(), type.getDataTensorType())))
    return failure();
  return check("scales", getScales(), type.getScalesTensorType());
}

LogicalResult LinearOp::verify() {
  std::optional<SmallVector<int64_t>> xShape = knownShape(getX().getType());
  std::optional<SmallVector<int64_t>> wShape = knownShape(getW().getType());
  if (wShape && wShape->size() != 2)
    return emitOpError() << "weight must be 2-d [out, in], got rank "
                         << wShape->size();
  if (xShape && xShape->empty())
    return emitOpError("input must have rank at least 1");
  int64_t out = wShape ? (*wShape)[0] : kDynamic;
  // A quantized weight reads as f32, so it multiplies f32 inputs only.
  if (isa<QWeightType>(getW().getType()) &&
      !getElementTypeOrSelf(getX().getType()).isF32())
    return emitOpError() << "a quantized weight needs an f32 input, got "
                         << getElementTypeOrSelf(getX().getType());
  if (xShape && wShape &&
      failed(verifyCompatibleShape({xShape->back()}, {(*wShape)[1]})))
    return emitOpError() << "in-features mismatch: input has "
                         << xShape->back() << ", weight has " << (*wShape)[1];
  if (Value b = getB()) {
    if (std::optional<SmallVector<int64_t>> bShape = knownShape(b.getType())) {
      if (bShape->size() != 1)
        return emitOpError() << "bias must be 1-d [out], got rank "
                             << bShape->size();
      if (failed(verifyCompatibleShape(*bShape, {out})))
        return emitOpError() << "bias size " << (*bShape)[0]
                             << " does not match out-features " << out;
    }
  }
  if (failed(verifyElementType(*this, "result", getResult().getType(),
                               getElementTypeOrSelf(getX().getType()),
                               "same as the input")))
    return failure();
  if (!xShape)
    return success();
  SmallVector<int64_t> expected(xShape->begin(), xShape->end() - 1);
  expected.push_back(out);
  return verifyResultShape(*this, getResult().getType(), expected);
}

LogicalResult MatmulOp::verify() {
  Type aElement = getElementTypeOrSelf(getA().getType());
  Type bElement = getElementTypeOrSelf(getB().getType());
  if (aElement != bElement)
    return emitOpError() << "operand element types differ: " << aElement
                         << " and " << bElement;
  if (failed(verifyElementType(*this, "result", getResult().getType(),
                               aElement, "same as the operands")))
    return failure();
  std::optional<SmallVector<int64_t>> a = knownShape(getA().getType());
  std::optional<SmallVector<int64_t>> b = knownShape(getB().getType());
  if ((a && a->empty()) || (b && b->empty()))
    return emitOpError("operands must not be 0-d");
  if (getTransposeB() && b) {
    if (b->size() < 2)
      return emitOpError() << "transpose_b needs 'b' of rank at least 2, got "
                           << b->size();
    std::swap((*b)[b->size() - 1], (*b)[b->size() - 2]);
  }
  if (!a || !b)
    return success();
  int64_t aContract = a->back();
  int64_t bContract = b->size() == 1 ? (*b)[0] : (*b)[b->size() - 2];
  if (failed(verifyCompatibleShape({aContract}, {bContract})))
    return emitOpError() << "contracting dims differ: " << aContract << " and "
                         << bContract;
  ArrayRef<int64_t> aBatch =
      a->size() > 2 ? ArrayRef<int64_t>(*a).drop_back(2) : ArrayRef<int64_t>();
  ArrayRef<int64_t> bBatch =
      b->size() > 2 ? ArrayRef<int64_t>(*b).drop_back(2) : ArrayRef<int64_t>();
  SmallVector<int64_t> expected;
  if (!OpTrait::util::getBroadcastedShape(aBatch, bBatch, expected))
    return emitOpError() << "batch dims do not broadcast: "
                         << formatShape(aBatch) << " and "
                         << formatShape(bBatch);
  if (a->size() > 1)
    expected.push_back((*a)[a->size() - 2]);
  if (b->size() > 1)
    expected.push_back(b->back());
  return verifyResultShape(*this, getResult().getType(), expected);
}

LogicalResult EmbeddingOp::verify() {
  std::optional<SmallVector<int64_t>> weight = knownShape(getWeight().getType());
  if (weight && weight->size() != 2)
    return emitOpError() << "weight must be 2-d [num, dim], got rank "
                         << weight->size();
  if (!isIndexElement(getIndices().getType()))
    return emitOpError() << "indices must have an integer element type, got "
                         << getElementTypeOrSelf(getIndices().getType());
  // A quantized table (!kiln.qweight) reads as f32.
  Type weightElement = isa<QWeightType>(getWeight().getType())
                           ? Type(Float32Type::get(getContext()))
                           : getElementTypeOrSelf(getWeight().getType());
  if (failed(verifyElementType(*this, "result", getResult().getType(),
                               weightElement, "same as the weight")))
    return failure();
  std::optional<SmallVector<int64_t>> indices =
      knownShape(getIndices().getType());
  if (!indices)
    return success();
  SmallVector<int64_t> expected = *indices;
  expected.push_back(weight ? (*weight)[1] : kDynamic);
  return verifyResultShape(*this, getResult().getType(), expected);
}

LogicalResult IndexSelectOp::verify() {
  if (!isIndexElement(getIndex().getType()))
    return emitOpError() << "'index' must have an integer element type, got "
                         << getElementTypeOrSelf(getIndex().getType());
  if (failed(verifyElementType(*this, "result", getResult().getType(),
                               getElementTypeOrSelf(getX().getType()),
                               "same as the input")))
    return failure();
  std::optional<SmallVector<int64_t>> x = knownShape(getX().getType());
  if (!x)
    return success();
  FailureOr<int64_t> dim =
      normalizeDim(*this, "dim", (int64_t)getDim(), x->size());
  if (failed(dim))
    return failure();
  std::optional<SmallVector<int64_t>> index = knownShape(getIndex().getType());
  if (!index)
    return success();
  // A 0-d input behaves as 1-d for the gather and keeps the index shape.
  SmallVector<int64_t> expected;
  if (x->empty()) {
    expected = *index;
  } else {
    expected.append(x->begin(), x->begin() + *dim);
    expected.append(index->begin(), index->end());
    expected.append(x->begin() + *dim + 1, x->end());
  }
  return verifyResultShape(*this, getResult().getType(), expected);
}

//===----------------------------------------------------------------------===//
// Shape manipulation
//===----------------------------------------------------------------------===//

LogicalResult ReshapeOp::verify() {
  if (failed(verifyShapeList(*this, "shape", getShape().getType())))
    return failure();
  if (failed(verifyElementType(*this, "result", getResult().getType(),
                               getElementTypeOrSelf(getX().getType()),
                               "same as the input")))
    return failure();
  if (std::optional<int64_t> length = getShapeListLength(getShape().getType()))
    if (failed(verifyResultRank(*this, getResult().getType(), *length)))
      return failure();
  auto x = dyn_cast<RankedTensorType>(getX().getType());
  auto result = dyn_cast<RankedTensorType>(getResult().getType());
  if (x && result && x.hasStaticShape() && result.hasStaticShape() &&
      x.getNumElements() != result.getNumElements())
    return emitOpError() << "element count changes: "
                         << formatShape(x.getShape()) << " has "
                         << x.getNumElements() << ", "
                         << formatShape(result.getShape()) << " has "
                         << result.getNumElements();
  return success();
}

LogicalResult ExpandOp::verify() {
  if (failed(verifyShapeList(*this, "shape", getShape().getType())))
    return failure();
  if (failed(verifyElementType(*this, "result", getResult().getType(),
                               getElementTypeOrSelf(getX().getType()),
                               "same as the input")))
    return failure();
  if (std::optional<int64_t> length = getShapeListLength(getShape().getType()))
    if (failed(verifyResultRank(*this, getResult().getType(), *length)))
      return failure();
  std::optional<SmallVector<int64_t>> x = knownShape(getX().getType());
  std::optional<SmallVector<int64_t>> result =
      knownShape(getResult().getType());
  if (!x || !result)
    return success();
  if (result->size() < x->size())
    return emitOpError() << "cannot expand rank " << x->size()
                         << " to the smaller rank " << result->size();
  // Align trailing dims; a static input dim other than 1 is kept.
  int64_t offset = result->size() - x->size();
  for (auto [i, size] : llvm::enumerate(*x)) {
    int64_t target = (*result)[offset + i];
    if (ShapedType::isDynamic(size) || ShapedType::isDynamic(target) ||
        size == 1 || size == target)
      continue;
    return emitOpError() << "input dim " << i << " of size " << size
                         << " cannot expand to " << target;
  }
  return success();
}

LogicalResult PermuteOp::verify() {
  if (failed(verifyElementType(*this, "result", getResult().getType(),
                               getElementTypeOrSelf(getX().getType()),
                               "same as the input")))
    return failure();
  std::optional<SmallVector<int64_t>> x = knownShape(getX().getType());
  if (!x)
    return verifyResultRank(*this, getResult().getType(), getPerm().size());
  int64_t rank = x->size();
  llvm::SmallBitVector seen(rank);
  SmallVector<int64_t> expected;
  for (int64_t entry : getPerm()) {
    int64_t dim = entry < 0 ? entry + rank : entry;
    if ((int64_t)getPerm().size() != rank || dim < 0 || dim >= rank ||
        seen.test(dim))
      return emitOpError() << "'perm' " << formatShape(getPerm())
                           << " is not a permutation of rank " << rank;
    seen.set(dim);
    expected.push_back((*x)[dim]);
  }
  if ((int64_t)getPerm().size() != rank)
    return emitOpError() << "'perm' " << formatShape(getPerm())
                         << " is not a permutation of rank " << rank;
  return verifyResultShape(*this, getResult().getType(), expected);
}

LogicalResult TransposeOp::verify() {
  if (failed(verifyElementType(*this, "result", getResult().getType(),
                               getElementTypeOrSelf(getX().getType()),
                               "same as the input")))
    return failure();
  std::optional<SmallVector<int64_t>> x = knownShape(getX().getType());
  if (!x)
    return success();
  FailureOr<int64_t> dim0 =
      normalizeDim(*this, "dim0", (int64_t)getDim0(), x->size());
  FailureOr<int64_t> dim1 = failed(dim0) ? FailureOr<int64_t>(failure())
                                         : normalizeDim(*this, "dim1",
                                                        (int64_t)getDim1(),
                                                        x->size());
  if (failed(dim1))
    return failure();
  SmallVector<int64_t> expected = *x;
  if (!x->empty())
    std::swap(expected[*dim0], expected[*dim1]);
  return verifyResultShape(*this, getResult().getType(), expected);
}

LogicalResult UnsqueezeOp::verify() {
  if (failed(verifyElementType(*this, "result", getResult().getType(),
                               getElementTypeOrSelf(getX().getType()),
                               "same as the input")))
    return failure();
  std::optional<SmallVector<int64_t>> x = knownShape(getX().getType());
  if (!x)
    return success();
  FailureOr<int64_t> dim = normalizeDim(*this, "dim", (int64_t)getDim(),
                                        x->size(), /*wrapScalar=*/false,
                                        /*extra=*/1);
  if (failed(dim))
    return failure();
  SmallVector<int64_t> expected = *x;
  expected.insert(expected.begin() + *dim, 1);
  return verifyResultShape(*this, getResult().getType(), expected);
}

LogicalResult SqueezeOp::verify() {
  if (failed(verifyElementType(*this, "result", getResult().getType(),
                               getElementTypeOrSelf(getX().getType()),
                               "same as the input")))
    return failure();
  std::optional<SmallVector<int64_t>> x = knownShape(getX().getType());
  if (!x)
    return success();
  FailureOr<SmallVector<int64_t>> dims =
      normalizeDimList(*this, "dims", getDims(), x->size());
  if (failed(dims))
    return failure();
  // The result shape is known unless a candidate dim is dynamic.
  SmallVector<int64_t> expected;
  for (auto [i, size] : llvm::enumerate(*x)) {
    bool candidate = dims->empty() || llvm::is_contained(*dims, (int64_t)i);
    if (candidate && ShapedType::isDynamic(size))
      return success();
    if (!(candidate && size == 1))
      expected.push_back(size);
  }
  return verifyResultShape(*this, getResult().getType(), expected);
}

LogicalResult FlattenOp::verify() {
  if (failed(verifyElementType(*this, "result", getResult().getType(),
                               getElementTypeOrSelf(getX().getType()),
                               "same as the input")))
    return failure();
  std::optional<SmallVector<int64_t>> x = knownShape(getX().getType());
  if (!x)
    return success();
  FailureOr<int64_t> start =
      normalizeDim(*this, "start_dim", (int64_t)getStartDim(), x->size());
  if (failed(start))
    return failure();
  FailureOr<int64_t> end =
      normalizeDim(*this, "end_dim", (int64_t)getEndDim(), x->size());
  if (failed(end))
    return failure();
  if (*start > *end)
    return emitOpError() << "'start_dim' " << (int64_t)getStartDim()
                         << " comes after 'end_dim' " << (int64_t)getEndDim();
  if (x->empty())
    return verifyResultShape(*this, getResult().getType(), {1});
  SmallVector<int64_t> expected(x->begin(), x->begin() + *start);
  int64_t merged = 1;
  for (int64_t i = *start; i <= *end; ++i)
    merged = ShapedType::isDynamic((*x)[i]) || ShapedType::isDynamic(merged)
                 ? kDynamic
                 : merged * (*x)[i];
  expected.push_back(merged);
  expected.append(x->begin() + *end + 1, x->end());
  return verifyResultShape(*this, getResult().getType(), expected);
}

LogicalResult SliceOp::verify() {
  if (failed(verifyScalarIndex(*this, "start", getStart().getType())) ||
      failed(verifyScalarIndex(*this, "end", getEnd().getType())))
    return failure();
  if ((int64_t)getStep() <= 0)
    return emitOpError() << "'step' must be positive, got "
                         << (int64_t)getStep();
  if (failed(verifyElementType(*this, "result", getResult().getType(),
                               getElementTypeOrSelf(getX().getType()),
                               "same as the input")))
    return failure();
  std::optional<SmallVector<int64_t>> x = knownShape(getX().getType());
  if (!x)
    return success();
  if (x->empty())
    return emitOpError("cannot slice a 0-d tensor");
  FailureOr<int64_t> dim =
      normalizeDim(*this, "dim", (int64_t)getDim(), x->size());
  if (failed(dim))
    return failure();
  // The sliced dim depends on run-time bounds; it is at most the input's.
  SmallVector<int64_t> expected = *x;
  expected[*dim] = kDynamic;
  if (failed(verifyResultShape(*this, getResult().getType(), expected)))
    return failure();
  std::optional<SmallVector<int64_t>> result = knownShape(getResult().getType());
  if (result && !ShapedType::isDynamic((*x)[*dim]) &&
      !ShapedType::isDynamic((*result)[*dim]) &&
      (*result)[*dim] > (*x)[*dim])
    return emitOpError() << "result dim " << *dim << " of size "
                         << (*result)[*dim] << " exceeds the input's "
                         << (*x)[*dim];
  return success();
}

LogicalResult SelectOp::verify() {
  if (failed(verifyScalarIndex(*this, "index", getIndex().getType())))
    return failure();
  if (failed(verifyElementType(*this, "result", getResult().getType(),
                               getElementTypeOrSelf(getX().getType()),
                               "same as the input")))
    return failure();
  std::optional<SmallVector<int64_t>> x = knownShape(getX().getType());
  if (!x)
    return success();
  if (x->empty())
    return emitOpError("cannot select from a 0-d tensor");
  FailureOr<int64_t> dim =
      normalizeDim(*this, "dim", (int64_t)getDim(), x->size());
  if (failed(dim))
    return failure();
  SmallVector<int64_t> expected = *x;
  expected.erase(expected.begin() + *dim);
  return verifyResultShape(*this, getResult().getType(), expected);
}

LogicalResult SplitOp::verify() {
  int modes = (getSplitSize() ? 1 : 0) + (getSizes() ? 1 : 0) +
              (getChunks() ? 1 : 0);
  if (modes != 1)
    return emitOpError(
        "needs exactly one of 'split_size', 'sizes' and 'chunks'");
  int64_t numResults = getNumResults();
  if (numResults < 1)
    return emitOpError("needs at least one result");
  if (getSplitSize() && (int64_t)*getSplitSize() <= 0)
    return emitOpError() << "'split_size' must be positive, got "
                         << (int64_t)*getSplitSize();
  if (getChunks() && (int64_t)*getChunks() <= 0)
    return emitOpError() << "'chunks' must be positive, got "
                         << (int64_t)*getChunks();
  if (getChunks() && numResults > (int64_t)*getChunks())
    return emitOpError() << "has " << numResults << " results but only "
                         << (int64_t)*getChunks() << " chunks";
  if (std::optional<ArrayRef<int64_t>> sizes = getSizes()) {
    if ((int64_t)sizes->size() != numResults)
      return emitOpError() << "has " << numResults << " results but "
                           << sizes->size() << " sizes";
    if (llvm::any_of(*sizes, [](int64_t size) { return size < 0; }))
      return emitOpError() << "'sizes' " << formatShape(*sizes)
                           << " has a negative entry";
  }
  Type element = getElementTypeOrSelf(getX().getType());
  for (Type type : getResultTypes())
    if (failed(verifyElementType(*this, "result", type, element,
                                 "same as the input")))
      return failure();

  std::optional<SmallVector<int64_t>> x = knownShape(getX().getType());
  if (!x)
    return success();
  if (x->empty())
    return emitOpError("cannot split a 0-d tensor");
  FailureOr<int64_t> dim =
      normalizeDim(*this, "dim", (int64_t)getDim(), x->size());
  if (failed(dim))
    return failure();
  int64_t total = (*x)[*dim];
  // The size of each piece along `dim`, when known at compile time.
  SmallVector<int64_t> pieces(numResults, kDynamic);
  if (std::optional<ArrayRef<int64_t>> sizes = getSizes()) {
    pieces.assign(sizes->begin(), sizes->end());
    int64_t sum = 0;
    for (int64_t size : *sizes)
      sum += size;
    if (!ShapedType::isDynamic(total) && sum != total)
      return emitOpError() << "'sizes' " << formatShape(*sizes) << " sum to "
                           << sum << ", but dim " << *dim << " has size "
                           << total;
  } else if (!ShapedType::isDynamic(total)) {
    int64_t piece = getSplitSize() ? (int64_t)*getSplitSize()
                                   : ceilDiv(total, (int64_t)*getChunks());
    int64_t expectedCount = piece == 0 ? 1 : std::max<int64_t>(
                                                 1, ceilDiv(total, piece));
    if (numResults != expectedCount)
      return emitOpError() << "has " << numResults << " results, but dim "
                           << *dim << " of size " << total << " splits into "
                           << expectedCount << " pieces";
    for (int64_t i = 0; i < numResults; ++i)
      pieces[i] = std::min(piece, total - i * piece);
  }
  for (auto [i, type] : llvm::enumerate(getResultTypes())) {
    SmallVector<int64_t> expected = *x;
    expected[*dim] = pieces[i];
    if (failed(verifyResultShape(*this, type, expected,
                                 ("result #" + Twine(i)).str())))
      return failure();
  }
  return success();
}

/// Common checks of concat and stack: at least one operand, all ranked
/// operands of one rank, result element type the promotion of all. Returns
/// the common rank if known.
static FailureOr<std::optional<int64_t>>
verifyTensorList(Operation *op, ValueRange xs, Type result) {
  if (xs.empty()) {
    (void)op->emitOpError("needs at least one operand");
    return failure();
  }
  std::optional<int64_t> rank;
  Type element = getElementTypeOrSelf(xs.front().getType());
  for (Value x : xs) {
    element = promoteElementTypes(element, getElementTypeOrSelf(x.getType()));
    std::optional<int64_t> xRank = knownRank(x.getType());
    if (!xRank)
      continue;
    if (rank && *rank != *xRank) {
      (void)(op->emitOpError() << "operands have different ranks: " << *rank
                               << " and " << *xRank);
      return failure();
    }
    rank = xRank;
  }
  if (failed(verifyElementType(op, "result", result, element,
                               "PyTorch promotion of the operands")))
    return failure();
  return rank;
}

LogicalResult ConcatOp::verify() {
  FailureOr<std::optional<int64_t>> rank =
      verifyTensorList(*this, getXs(), getResult().getType());
  if (failed(rank))
    return failure();
  if (!*rank)
    return success();
  if (**rank == 0)
    return emitOpError("cannot concatenate 0-d tensors");
  FailureOr<int64_t> dim = normalizeDim(*this, "dim", (int64_t)getDim(), **rank);
  if (failed(dim))
    return failure();
  // Other dims agree; the concatenated dim is the sum when all are known.
  SmallVector<int64_t> expected(**rank, kDynamic);
  int64_t sum = 0;
  for (Value x : getXs()) {
    std::optional<SmallVector<int64_t>> shape = knownShape(x.getType());
    if (!shape) {
      sum = kDynamic;
      continue;
    }
    for (int64_t i = 0; i < **rank; ++i) {
      if (i == *dim)
        continue;
      if (failed(verifyCompatibleShape({expected[i]}, {(*shape)[i]})))
        return emitOpError() << "operand dim " << i << " sizes differ: "
                             << expected[i] << " and " << (*shape)[i];
      if (ShapedType::isDynamic(expected[i]))
        expected[i] = (*shape)[i];
    }
    int64_t size = (*shape)[*dim];
    sum = ShapedType::isDynamic(sum) || ShapedType::isDynamic(size)
              ? kDynamic
              : sum + size;
  }
  expected[*dim] = sum;
  return verifyResultShape(*this, getResult().getType(), expected);
}

LogicalResult StackOp::verify() {
  FailureOr<std::optional<int64_t>> rank =
      verifyTensorList(*this, getXs(), getResult().getType());
  if (failed(rank))
    return failure();
  if (!*rank)
    return success();
  FailureOr<int64_t> dim =
      normalizeDim(*this, "dim", (int64_t)getDim(), **rank,
                   /*wrapScalar=*/false, /*extra=*/1);
  if (failed(dim))
    return failure();
  SmallVector<int64_t> common(**rank, kDynamic);
  for (Value x : getXs()) {
    std::optional<SmallVector<int64_t>> shape = knownShape(x.getType());
    if (!shape)
      continue;
    if (failed(verifyCompatibleShape(common, *shape)))
      return emitOpError() << "operand shapes differ: " << formatShape(common)
                           << " and " << formatShape(*shape);
    for (int64_t i = 0; i < **rank; ++i)
      if (ShapedType::isDynamic(common[i]))
        common[i] = (*shape)[i];
  }
  common.insert(common.begin() + *dim, (int64_t)getXs().size());
  return verifyResultShape(*this, getResult().getType(), common);
}

OpFoldResult StackOp::fold(FoldAdaptor adaptor) {
  // Stacking constants along dim 0 lays their elements out one after the
  // other. Only operands of the result's element type and one static shape.
  auto type = dyn_cast<RankedTensorType>(getResult().getType());
  if (!type || !type.hasStaticShape())
    return {};
  Type operandType = getXs().front().getType();
  auto ranked = dyn_cast<RankedTensorType>(operandType);
  if (!ranked || ranked.getElementType() != type.getElementType())
    return {};
  int64_t dim = (int64_t)getDim();
  if (dim != 0 && !(ranked.getRank() == 0 && dim == -1))
    return {};
  SmallVector<Attribute> values;
  for (auto [x, attr] : llvm::zip_equal(getXs(), adaptor.getXs())) {
    auto elements = dyn_cast_or_null<DenseElementsAttr>(attr);
    if (x.getType() != operandType || !elements)
      return {};
    llvm::append_range(values, elements.getValues<Attribute>());
  }
  if ((int64_t)values.size() != type.getNumElements())
    return {};
  return DenseElementsAttr::get(type, values);
}

LogicalResult RepeatInterleaveOp::verify() {
  int64_t repeats = getRepeats();
  if (repeats <= 0)
    return emitOpError() << "'repeats' must be positive, got " << repeats;
  if (failed(verifyElementType(*this, "result", getResult().getType(),
                               getElementTypeOrSelf(getX().getType()),
                               "same as the input")))
    return failure();
  std::optional<SmallVector<int64_t>> x = knownShape(getX().getType());
  if (!x)
    return success();
  FailureOr<int64_t> dim =
      normalizeDim(*this, "dim", (int64_t)getDim(), x->size());
  if (failed(dim))
    return failure();
  SmallVector<int64_t> expected = *x;
  if (expected.empty())
    expected.push_back(repeats);
  else if (!ShapedType::isDynamic(expected[*dim]))
    expected[*dim] *= repeats;
  return verifyResultShape(*this, getResult().getType(), expected);
}

LogicalResult RepeatOp::verify() {
  ArrayRef<int64_t> repeats = getRepeats();
  if (llvm::any_of(repeats, [](int64_t r) { return r < 0; }))
    return emitOpError() << "'repeats' " << formatShape(repeats)
                         << " has a negative entry";
  if (failed(verifyElementType(*this, "result", getResult().getType(),
                               getElementTypeOrSelf(getX().getType()),
                               "same as the input")))
    return failure();
  std::optional<SmallVector<int64_t>> x = knownShape(getX().getType());
  if (!x)
    return verifyResultRank(*this, getResult().getType(), repeats.size());
  if (repeats.size() < x->size())
    return emitOpError() << "'repeats' has " << repeats.size()
                         << " entries, fewer than the input rank "
                         << x->size();
  // Leading repeats add dims of size 1 before tiling.
  SmallVector<int64_t> expected;
  int64_t offset = repeats.size() - x->size();
  for (auto [i, r] : llvm::enumerate(repeats)) {
    int64_t size = (int64_t)i < offset ? 1 : (*x)[i - offset];
    expected.push_back(ShapedType::isDynamic(size) ? kDynamic : size * r);
  }
  return verifyResultShape(*this, getResult().getType(), expected);
}

LogicalResult TriangularOp::verify() {
  if (std::optional<int64_t> rank = knownRank(getX().getType()))
    if (*rank < 2)
      return emitOpError() << "needs an input of rank at least 2, got "
                           << *rank;
  return verifySameElementTypeAndShape(*this, getX().getType(),
                                       getResult().getType());
}

//===----------------------------------------------------------------------===//
// Creation and sizes
//===----------------------------------------------------------------------===//

LogicalResult ArangeOp::verify() {
  for (auto [name, value] :
       {std::pair<StringRef, Value>{"start", getStart()},
        {"end", getEnd()},
        {"step", getStep()}}) {
    std::optional<int64_t> rank = knownRank(value.getType());
    if (rank && *rank != 0)
      return emitOpError() << "'" << name << "' must be a 0-d tensor, got rank "
                           << *rank;
  }
  FailureOr<Type> element = verifyDtype(*this, getDtype());
  if (failed(element))
    return failure();
  if (failed(verifyElementType(*this, "result", getResult().getType(),
                               *element, "the dtype attribute")))
    return failure();
  return verifyResultRank(*this, getResult().getType(), 1);
}

LogicalResult FullOp::verify() {
  if (failed(verifyShapeList(*this, "shape", getShape().getType())))
    return failure();
  FailureOr<Type> element = verifyDtype(*this, getDtype());
  if (failed(element))
    return failure();
  if (failed(verifyElementType(*this, "result", getResult().getType(),
                               *element, "the dtype attribute")))
    return failure();
  if (std::optional<int64_t> length = getShapeListLength(getShape().getType()))
    return verifyResultRank(*this, getResult().getType(), *length);
  return success();
}

LogicalResult FullLikeOp::verify() {
  Type element = getElementTypeOrSelf(getX().getType());
  StringRef rule = "same as the input when dtype is empty";
  if (!getDtype().empty()) {
    FailureOr<Type> dtype = verifyDtype(*this, getDtype());
    if (failed(dtype))
      return failure();
    element = *dtype;
    rule = "the dtype attribute";
  }
  if (failed(verifyElementType(*this, "result", getResult().getType(), element,
                               rule)))
    return failure();
  if (std::optional<SmallVector<int64_t>> shape = knownShape(getX().getType()))
    return verifyResultShape(*this, getResult().getType(), *shape);
  return success();
}

LogicalResult DimSizeOp::verify() {
  if (failed(verifyElementType(*this, "result", getResult().getType(),
                               IntegerType::get(getContext(), 64),
                               "sizes are i64")) ||
      failed(verifyResultRank(*this, getResult().getType(), 0)))
    return failure();
  std::optional<int64_t> rank = knownRank(getX().getType());
  if (!rank)
    return success();
  if (*rank == 0)
    return emitOpError("cannot take a dim size of a 0-d tensor");
  return normalizeDim(*this, "dim", (int64_t)getDim(), *rank);
}

OpFoldResult DimSizeOp::fold(FoldAdaptor) {
  auto x = dyn_cast<RankedTensorType>(getX().getType());
  auto result = dyn_cast<RankedTensorType>(getResult().getType());
  if (!x || !result || x.getRank() == 0)
    return {};
  int64_t dim = (int64_t)getDim();
  if (dim < 0)
    dim += x.getRank();
  if (dim < 0 || dim >= x.getRank() || x.isDynamicDim(dim))
    return {};
  return DenseElementsAttr::get(result, APInt(64, x.getDimSize(dim)));
}

LogicalResult ShapeOfOp::verify() {
  if (failed(verifyElementType(*this, "result", getResult().getType(),
                               IntegerType::get(getContext(), 64),
                               "sizes are i64")) ||
      failed(verifyResultRank(*this, getResult().getType(), 1)))
    return failure();
  if (std::optional<int64_t> rank = knownRank(getX().getType()))
    return verifyResultShape(*this, getResult().getType(), {*rank});
  return success();
}

OpFoldResult ShapeOfOp::fold(FoldAdaptor) {
  auto x = dyn_cast<RankedTensorType>(getX().getType());
  auto result = dyn_cast<RankedTensorType>(getResult().getType());
  if (!x || !result || !x.hasStaticShape() || !result.hasStaticShape())
    return {};
  SmallVector<APInt> sizes;
  for (int64_t size : x.getShape())
    sizes.push_back(APInt(64, size));
  return DenseElementsAttr::get(result, sizes);
}

LogicalResult CopyOp::verify() {
  return verifySameElementTypeAndShape(*this, getX().getType(),
                                       getResult().getType());
}

//===----------------------------------------------------------------------===//
// Fused ops (targets of kiln-fuse)
//===----------------------------------------------------------------------===//

namespace {

/// Checks that every operand is a float tensor of the same element type as
/// the first one, and that the result has it too.
LogicalResult verifySameFloatElementTypes(Operation *op, ValueRange operands,
                                          ArrayRef<StringRef> names) {
  Type element = getElementTypeOrSelf(operands.front().getType());
  if (!isa<FloatType>(element))
    return op->emitOpError() << "'" << names.front()
                             << "' must be a float tensor, got " << element;
  for (auto [operand, name] : llvm::zip(operands, names)) {
    Type other = getElementTypeOrSelf(operand.getType());
    if (other != element)
      return op->emitOpError()
             << "'" << name << "' element type " << other
             << " differs from '" << names.front() << "' element type "
             << element;
  }
  return verifyElementType(op, "result", op->getResult(0).getType(), element,
                           "same as the operands");
}

} // namespace

LogicalResult SwigluOp::verify() {
  if (failed(verifySameFloatElementTypes(*this, {getGate(), getUp()},
                                         {"gate", "up"})))
    return failure();
  return verifyBroadcastResult(*this, {getGate().getType(), getUp().getType()},
                               getResult().getType());
}

LogicalResult RopeOp::verify() {
  StringRef style = getStyle();
  if (failed(verifyFn(*this, style, {"rotate_half", "interleaved"})))
    return failure();
  if (failed(verifySameFloatElementTypes(*this, {getX(), getCos(), getSin()},
                                         {"x", "cos", "sin"})))
    return failure();
  std::optional<SmallVector<int64_t>> x = knownShape(getX().getType());
  if (x && x->empty())
    return emitOpError("'x' must have rank at least 1");
  if (x && style == "interleaved" && !ShapedType::isDynamic(x->back()) &&
      x->back() % 2 != 0)
    return emitOpError() << "interleaved style needs an even last dim, got "
                         << x->back();
  FailureOr<std::optional<SmallVector<int64_t>>> shape = broadcastShapes(
      *this, {getX().getType(), getCos().getType(), getSin().getType()});
  if (failed(shape))
    return failure();
  if (!*shape)
    return success();
  if (x && !ShapedType::isDynamic(x->back()) &&
      !ShapedType::isDynamic((*shape)->back()) && (*shape)->back() != x->back())
    return emitOpError() << "the last dim of 'x' (" << x->back()
                         << ") must not be broadcast (to "
                         << (*shape)->back() << ")";
  return verifyResultShape(*this, getResult().getType(), **shape);
}

LogicalResult RopePermOp::verify() {
  if (failed(verifySameFloatElementTypes(*this, {getX(), getCos(), getSin()},
                                         {"x", "cos", "sin"})))
    return failure();
  ArrayRef<int64_t> perm = getPerm();
  int64_t d = static_cast<int64_t>(perm.size());
  llvm::SmallBitVector seen(d);
  for (int64_t entry : perm) {
    if (entry < 0 || entry >= d || seen.test(entry))
      return emitOpError() << "'perm' " << formatShape(perm)
                           << " is not a permutation of 0.." << d - 1;
    seen.set(entry);
  }
  if (d == 0)
    return emitOpError("'perm' must not be empty");
  std::optional<SmallVector<int64_t>> x = knownShape(getX().getType());
  if (x && x->empty())
    return emitOpError("'x' must have rank at least 1");
  if (x && !ShapedType::isDynamic(x->back()) && x->back() != d)
    return emitOpError() << "'perm' has " << d
                         << " entries but the last dim of 'x' is "
                         << x->back();
  FailureOr<std::optional<SmallVector<int64_t>>> shape = broadcastShapes(
      *this, {getX().getType(), getCos().getType(), getSin().getType()});
  if (failed(shape))
    return failure();
  if (!*shape)
    return success();
  if (!ShapedType::isDynamic((*shape)->back()) && (*shape)->back() != d)
    return emitOpError() << "the last dim of 'x' (" << d
                         << ") must not be broadcast (to " << (*shape)->back()
                         << ")";
  return verifyResultShape(*this, getResult().getType(), **shape);
}

LogicalResult AttentionOp::verify() {
  SmallVector<Value> operands = {getQ(), getK(), getV()};
  if (failed(verifySameFloatElementTypes(*this, operands, {"q", "k", "v"})))
    return failure();
  if (getScale().isNaN())
    return emitOpError("'scale' must be a number");
  if (Value mask = getMask()) {
    Type element = getElementTypeOrSelf(mask.getType());
    if (!element.isInteger(1) && !isa<FloatType>(element))
      return emitOpError() << "'mask' must be a bool or float tensor, got "
                           << element;
    if (std::optional<int64_t> rank = knownRank(mask.getType()))
      if (*rank > 4)
        return emitOpError() << "'mask' must have rank at most 4, got "
                             << *rank;
  }
  StringRef names[] = {"q", "k", "v"};
  SmallVector<SmallVector<int64_t>> shapes;
  for (auto [operand, name] : llvm::zip(operands, names)) {
    std::optional<SmallVector<int64_t>> shape =
        knownShape(operand.getType());
    if (!shape)
      continue;
    if (shape->size() != 4)
      return emitOpError() << "'" << name << "' must be 4-d, got rank "
                           << shape->size();
    shapes.push_back(*shape);
  }
  if (failed(verifyResultRank(*this, getResult().getType(), 4)))
    return failure();
  if (shapes.size() != 3)
    return success();
  ArrayRef<int64_t> q = shapes[0], k = shapes[1], v = shapes[2];
  auto known = [](int64_t d) { return !ShapedType::isDynamic(d); };
  if (failed(verifyCompatibleShape({q[3]}, {k[3]})))
    return emitOpError() << "q and k head dims differ: " << q[3] << " and "
                         << k[3];
  if (failed(verifyCompatibleShape({k[1], k[2]}, {v[1], v[2]})))
    return emitOpError() << "k and v differ in heads or length: "
                         << formatShape(k) << " and " << formatShape(v);
  if (known(q[1]) && known(k[1]) && (k[1] == 0 || q[1] % k[1] != 0))
    return emitOpError() << "query heads " << q[1]
                         << " are not a multiple of the kv heads " << k[1];
  int64_t batch = kDynamic;
  SmallVector<int64_t> batches = {q[0], k[0], v[0]};
  for (int64_t b : batches) {
    if (!known(b) || b == 1)
      continue;
    if (known(batch) && batch != b)
      return emitOpError() << "batch sizes do not broadcast: "
                           << formatShape(batches);
    batch = b;
  }
  if (llvm::all_of(batches, [&](int64_t b) { return known(b); }) &&
      !known(batch))
    batch = 1;
  return verifyResultShape(*this, getResult().getType(),
                           {batch, q[1], q[2], v[3]});
}

//===----------------------------------------------------------------------===//
// Program state
//===----------------------------------------------------------------------===//

LogicalResult StateOp::verify() {
  if (getName().empty())
    return emitOpError("'name' must not be empty");
  if (isa<QWeightType>(getResult().getType()))
    return emitOpError("a state cannot be a quantized weight");
  return success();
}

LogicalResult CacheWriteOp::verify() {
  Operation *def = getState().getDefiningOp();
  if (!def || !isa<StateOp, CacheWriteOp>(def))
    return emitOpError("'state' must be the result of kiln.state or kiln.cache_write");
  if (getState().getType() != getResult().getType())
    return emitOpError() << "result type " << getResult().getType()
                         << " differs from the state type " << getState().getType();
  if (!isIndexElement(getPositions().getType()))
    return emitOpError() << "'positions' must have an integer element type, got "
                         << getElementTypeOrSelf(getPositions().getType());
  Type valuesElement = getElementTypeOrSelf(getValues().getType());
  Type stateElement = getElementTypeOrSelf(getState().getType());
  // A float state may be written from another float type (rounded on write).
  if (valuesElement != stateElement &&
      !(isa<FloatType>(valuesElement) && isa<FloatType>(stateElement)))
    return emitOpError() << "'values' element type "
                         << getElementTypeOrSelf(getValues().getType())
                         << " differs from the state's "
                         << getElementTypeOrSelf(getState().getType());
  ArrayRef<int64_t> state = cast<RankedTensorType>(getState().getType()).getShape();
  FailureOr<int64_t> dim = normalizeDim(*this, "dim", getDim(), state.size());
  if (failed(dim))
    return failure();
  std::optional<SmallVector<int64_t>> positions = knownShape(getPositions().getType());
  if (positions && positions->size() != 1)
    return emitOpError() << "'positions' must be 1-d, got rank " << positions->size();
  std::optional<SmallVector<int64_t>> values = knownShape(getValues().getType());
  if (!values)
    return success();
  if (values->size() != state.size())
    return emitOpError() << "'values' has rank " << values->size() << ", the state "
                         << state.size();
  for (size_t i = 0; i < state.size(); ++i) {
    if ((int64_t)i == *dim || ShapedType::isDynamic((*values)[i]))
      continue;
    if ((*values)[i] != state[i])
      return emitOpError() << "'values' shape " << formatShape(*values)
                           << " differs from the state shape " << formatShape(state)
                           << " outside dim " << *dim;
  }
  int64_t n = (*values)[*dim];
  if (positions && !ShapedType::isDynamic((*positions)[0]) && !ShapedType::isDynamic(n) &&
      (*positions)[0] != n)
    return emitOpError() << (*positions)[0] << " positions for " << n
                         << " rows of 'values' along dim " << *dim;
  if (!ShapedType::isDynamic(n) && n > state[*dim])
    return emitOpError() << n << " rows do not fit in the state's " << state[*dim]
                         << " along dim " << *dim;
  return success();
}

LogicalResult CachedAttentionOp::verify() {
  SmallVector<Value> operands = {getQ(), getKCache(), getVCache()};
  // q and the caches are float tensors; the caches share one element type,
  // which may differ from q's (an f16 cache for f32 activations).
  StringRef operandNames[] = {"q", "k_cache", "v_cache"};
  for (auto [operand, name] : llvm::zip(operands, operandNames))
    if (!isa<FloatType>(getElementTypeOrSelf(operand.getType())))
      return emitOpError() << "'" << name << "' must be a float tensor, got "
                           << getElementTypeOrSelf(operand.getType());
  if (getElementTypeOrSelf(getKCache().getType()) != getElementTypeOrSelf(getVCache().getType()))
    return emitOpError() << "'v_cache' element type "
                         << getElementTypeOrSelf(getVCache().getType())
                         << " differs from 'k_cache' element type "
                         << getElementTypeOrSelf(getKCache().getType());
  if (getScale().isNaN())
    return emitOpError("'scale' must be a number");
  if (getElementTypeOrSelf(getStartPos().getType()) != IntegerType::get(getContext(), 64))
    return emitOpError() << "'start_pos' must be i64, got "
                         << getElementTypeOrSelf(getStartPos().getType());
  if (std::optional<SmallVector<int64_t>> s = knownShape(getStartPos().getType()))
    if (s->size() != 1 || (!ShapedType::isDynamic((*s)[0]) && (*s)[0] != 1))
      return emitOpError() << "'start_pos' must have shape [1], got " << formatShape(*s);
  if (failed(verifyElementType(*this, "result", getResult().getType(),
                               getElementTypeOrSelf(getQ().getType()), "same as q")))
    return failure();
  StringRef names[] = {"q", "k_cache", "v_cache"};
  SmallVector<SmallVector<int64_t>> shapes;
  for (auto [operand, name] : llvm::zip(operands, names)) {
    std::optional<SmallVector<int64_t>> shape = knownShape(operand.getType());
    if (!shape)
      continue;
    if (shape->size() != 4)
      return emitOpError() << "'" << name << "' must be 4-d, got rank " << shape->size();
    shapes.push_back(*shape);
  }
  if (failed(verifyResultRank(*this, getResult().getType(), 4)))
    return failure();
  if (std::optional<SmallVector<int64_t>> q = knownShape(getQ().getType()))
    if (failed(verifyResultShape(*this, getResult().getType(), *q)))
      return failure();
  if (shapes.size() != 3)
    return success();
  ArrayRef<int64_t> q = shapes[0], k = shapes[1], v = shapes[2];
  if (failed(verifyCompatibleShape(k, v)))
    return emitOpError() << "k_cache and v_cache shapes differ: " << formatShape(k)
                         << " and " << formatShape(v);
  if (failed(verifyCompatibleShape({q[0], q[3]}, {k[0], k[3]})))
    return emitOpError() << "q " << formatShape(q) << " and the caches " << formatShape(k)
                         << " differ in batch or head dim";
  auto known = [](int64_t d) { return !ShapedType::isDynamic(d); };
  if (known(q[1]) && known(k[1]) && (k[1] == 0 || q[1] % k[1] != 0))
    return emitOpError() << "query heads " << q[1] << " are not a multiple of the kv heads "
                         << k[1];
  if (known(q[2]) && known(k[2]) && q[2] > k[2])
    return emitOpError() << q[2] << " queries do not fit in a cache of " << k[2]
                         << " positions";
  return success();
}
