//===- FuseOps.cpp - kiln-fuse --------------------------------------------===//
//
// Recognises RMSNorm, SwiGLU, RoPE (rotate-half and interleaved, or as a
// constant lane permutation with a signed sin table) and causal
// grouped-query attention in the pieces the front end imports from traced
// PyTorch code and replaces each with one fused op; folds a transpose of the
// last two dims of a matmul's b into `transpose_b`. Every pattern checks all its
// preconditions (which operand is which, dims, constants, single uses of the
// intermediates) and leaves anything else alone. Shapes are often unknown
// (a bare trace has unranked arguments), so ranks and dims are inferred from
// the ops that produce a value (reshape to a shape list of known length,
// transpose, ...) where that is certain.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "kiln/Dialect/KilnOps.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/IR/TypeUtilities.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"
#include "llvm/ADT/SmallBitVector.h"
#include "llvm/ADT/StringExtras.h"

#include <cmath>
#include <limits>

namespace kiln {
#define GEN_PASS_DEF_FUSEOPS
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace kiln {
namespace {

//===----------------------------------------------------------------------===//
// Facts about values
//===----------------------------------------------------------------------===//

/// The single element of a constant with one element (0-d or [1, ...]).
std::optional<Attribute> getSingleConstant(Value value) {
  auto constant = value.getDefiningOp<ConstantOp>();
  if (!constant)
    return std::nullopt;
  auto dense = dyn_cast<DenseElementsAttr>(constant.getValue());
  if (!dense || dense.getNumElements() != 1)
    return std::nullopt;
  return *dense.value_begin<Attribute>();
}

std::optional<int64_t> getConstantInt(Value value) {
  std::optional<Attribute> element = getSingleConstant(value);
  if (!element)
    return std::nullopt;
  if (auto integer = dyn_cast<IntegerAttr>(*element))
    if (!integer.getType().isInteger(1))
      return integer.getInt();
  return std::nullopt;
}

std::optional<double> getConstantFloat(Value value) {
  std::optional<Attribute> element = getSingleConstant(value);
  if (!element)
    return std::nullopt;
  if (auto real = dyn_cast<FloatAttr>(*element))
    return real.getValueAsDouble();
  return std::nullopt;
}

/// The rank of `value` when its type or its producer makes it certain.
std::optional<int64_t> inferRank(Value value, int depth = 0) {
  if (auto ranked = dyn_cast<RankedTensorType>(value.getType()))
    return ranked.getRank();
  Operation *op = value.getDefiningOp();
  if (!op || depth > 16)
    return std::nullopt;
  auto same = [&](Value x) { return inferRank(x, depth + 1); };
  if (auto reshape = dyn_cast<ReshapeOp>(op)) {
    auto shape = dyn_cast<RankedTensorType>(reshape.getShape().getType());
    if (shape && shape.getRank() == 1 && shape.hasStaticShape())
      return shape.getDimSize(0);
    return std::nullopt;
  }
  if (auto transpose = dyn_cast<TransposeOp>(op))
    return same(transpose.getX());
  if (auto permute = dyn_cast<PermuteOp>(op))
    return static_cast<int64_t>(permute.getPerm().size());
  if (auto repeat = dyn_cast<RepeatInterleaveOp>(op))
    return same(repeat.getX());
  if (auto unsqueeze = dyn_cast<UnsqueezeOp>(op)) {
    std::optional<int64_t> rank = same(unsqueeze.getX());
    return rank ? std::optional<int64_t>(*rank + 1) : std::nullopt;
  }
  if (isa<UnaryOp, CastOp, SoftmaxOp, CopyOp, RmsNormOp, ConcatOp>(op))
    return same(op->getOperand(0));
  if (isa<BinaryOp, RopeOp, RopePermOp, SwigluOp>(op)) {
    std::optional<int64_t> rank = 0;
    for (Value operand : op->getOperands()) {
      std::optional<int64_t> operandRank = same(operand);
      if (!operandRank)
        return std::nullopt;
      rank = std::max(*rank, *operandRank);
    }
    return rank;
  }
  if (isa<ArangeOp>(op))
    return 1;
  return std::nullopt;
}

/// Normalises `dim` against a known rank; std::nullopt if out of range.
std::optional<int64_t> normalizeDim(int64_t dim, std::optional<int64_t> rank) {
  if (dim >= 0)
    return dim;
  if (!rank || dim < -*rank)
    return std::nullopt;
  return dim + *rank;
}

/// Whether `dim` of a value is its last dim (-1, or rank - 1 when the rank
/// is known).
bool isLastDim(Value value, int64_t dim) {
  if (dim == -1)
    return true;
  std::optional<int64_t> rank = inferRank(value);
  return rank && dim == *rank - 1;
}

/// A dim of a value that is certain: a constant or the 0-d i64 value it was
/// built from (one entry of the shape list a reshape took).
struct DimFact {
  std::optional<int64_t> constant;
  Value symbol;

  bool known() const { return constant || symbol; }
};

/// The dim `dim` (normalised, rank known) of `value`, when certain.
DimFact inferDim(Value value, int64_t dim, int depth = 0) {
  if (auto ranked = dyn_cast<RankedTensorType>(value.getType()))
    if (dim < ranked.getRank() && !ranked.isDynamicDim(dim))
      return {ranked.getDimSize(dim), Value()};
  Operation *op = value.getDefiningOp();
  if (!op || depth > 16)
    return {};
  std::optional<int64_t> rank = inferRank(value);
  if (!rank || dim < 0 || dim >= *rank)
    return {};
  if (auto reshape = dyn_cast<ReshapeOp>(op)) {
    if (auto stack = reshape.getShape().getDefiningOp<StackOp>()) {
      if (stack.getDim() != 0 || dim >= static_cast<int64_t>(stack.getXs().size()))
        return {};
      Value entry = stack.getXs()[dim];
      if (std::optional<int64_t> constant = getConstantInt(entry))
        return *constant >= 0 ? DimFact{*constant, Value()} : DimFact{};
      return {std::nullopt, entry};
    }
    return {};
  }
  if (auto transpose = dyn_cast<TransposeOp>(op)) {
    std::optional<int64_t> d0 =
        normalizeDim(static_cast<int64_t>(transpose.getDim0()), rank);
    std::optional<int64_t> d1 =
        normalizeDim(static_cast<int64_t>(transpose.getDim1()), rank);
    if (!d0 || !d1)
      return {};
    int64_t source = dim == *d0 ? *d1 : dim == *d1 ? *d0 : dim;
    return inferDim(transpose.getX(), source, depth + 1);
  }
  if (isa<UnaryOp, CastOp, CopyOp>(op))
    return inferDim(op->getOperand(0), dim, depth + 1);
  if (isa<BinaryOp, RopeOp, RopePermOp, SwigluOp>(op)) {
    // A dim that no other operand reaches (they have fewer dims counted from
    // the end) is the dim of the one operand that has it.
    int64_t fromEnd = *rank - dim;
    Value owner;
    for (Value operand : op->getOperands()) {
      std::optional<int64_t> operandRank = inferRank(operand);
      if (!operandRank)
        return {};
      if (*operandRank >= fromEnd) {
        if (owner)
          return {};
        owner = operand;
      }
    }
    if (!owner)
      return {};
    return inferDim(owner, *inferRank(owner) - fromEnd, depth + 1);
  }
  return {};
}

bool sameDim(const DimFact &a, const DimFact &b) {
  if (a.constant && b.constant)
    return *a.constant == *b.constant;
  return a.symbol && a.symbol == b.symbol;
}

/// The op defining `value` if it is an `OpTy` whose only use is `value`'s
/// single consumer (an intermediate that fusion may erase).
template <typename OpTy> OpTy getSingleUseProducer(Value value) {
  if (!value.hasOneUse())
    return nullptr;
  return value.getDefiningOp<OpTy>();
}

bool isFloat(Value value) {
  return isa<FloatType>(getElementTypeOrSelf(value.getType()));
}

bool haveSameElementType(ValueRange values) {
  Type element = getElementTypeOrSelf(values.front().getType());
  return llvm::all_of(values, [&](Value v) {
    return getElementTypeOrSelf(v.getType()) == element;
  });
}

BinaryOp getBinary(Value value, StringRef fn) {
  auto op = getSingleUseProducer<BinaryOp>(value);
  return op && op.getFn() == fn ? op : nullptr;
}

UnaryOp getUnary(Value value, StringRef fn) {
  auto op = getSingleUseProducer<UnaryOp>(value);
  return op && op.getFn() == fn ? op : nullptr;
}

/// Whether a transpose swaps the last two dims of its (rank >= 2) input.
bool transposesLastTwoDims(TransposeOp transpose) {
  int64_t d0 = static_cast<int64_t>(transpose.getDim0());
  int64_t d1 = static_cast<int64_t>(transpose.getDim1());
  if (std::min(d0, d1) == -2 && std::max(d0, d1) == -1)
    return true;
  std::optional<int64_t> rank = inferRank(transpose.getX());
  if (!rank || *rank < 2)
    return false;
  std::optional<int64_t> n0 = normalizeDim(d0, rank);
  std::optional<int64_t> n1 = normalizeDim(d1, rank);
  return n0 && n1 && std::min(*n0, *n1) == *rank - 2 &&
         std::max(*n0, *n1) == *rank - 1;
}

/// Counts of fused ops, for the `report` remark.
struct FusionCounts {
  int64_t rmsNorm = 0, swiglu = 0, rope = 0, attention = 0, transposeB = 0;
};

//===----------------------------------------------------------------------===//
// RMSNorm
//===----------------------------------------------------------------------===//

/// `x * rsqrt(mean(x^2, -1, keepdim) + eps)` (either operand order of the
/// muls and the add; `x^2` as `pow(x, 2)` or `x * x`) -> `rms_norm x`.
struct FuseRmsNormPattern : OpRewritePattern<BinaryOp> {
  FuseRmsNormPattern(MLIRContext *context, FusionCounts &counts)
      : OpRewritePattern(context), counts(counts) {}

  /// The normalised input `x` if `rsqrtValue` is rsqrt(mean(x^2)+eps).
  static std::optional<std::pair<Value, double>> matchInvRms(Value rsqrtValue) {
    UnaryOp rsqrt = getUnary(rsqrtValue, "rsqrt");
    if (!rsqrt)
      return std::nullopt;
    BinaryOp add = getBinary(rsqrt.getX(), "add");
    if (!add)
      return std::nullopt;
    for (auto [meanValue, epsValue] :
         {std::pair(add.getA(), add.getB()), std::pair(add.getB(), add.getA())}) {
      std::optional<double> eps = getConstantFloat(epsValue);
      auto mean = getSingleUseProducer<ReduceOp>(meanValue);
      if (!eps || *eps < 0 || !mean || mean.getFn() != "mean" ||
          !mean.getKeepdim() || mean.getDims().size() != 1)
        continue;
      auto square = getSingleUseProducer<BinaryOp>(mean.getX());
      if (!square)
        continue;
      Value x;
      if (square.getFn() == "pow" && getConstantFloat(square.getB()) == 2.0)
        x = square.getA();
      else if (square.getFn() == "mul" && square.getA() == square.getB())
        x = square.getA();
      if (!x || !isLastDim(x, mean.getDims()[0]))
        continue;
      return std::pair(x, *eps);
    }
    return std::nullopt;
  }

  LogicalResult matchAndRewrite(BinaryOp op,
                                PatternRewriter &rewriter) const override {
    if (op.getFn() != "mul")
      return failure();
    for (auto [xValue, rsqrtValue] :
         {std::pair(op.getA(), op.getB()), std::pair(op.getB(), op.getA())}) {
      std::optional<std::pair<Value, double>> match = matchInvRms(rsqrtValue);
      if (!match || match->first != xValue)
        continue;
      Value x = xValue;
      if (!isFloat(x) || !haveSameElementType({x, op.getResult()}) ||
          failed(verifyCompatibleShape(x.getType(), op.getType())))
        continue;
      rewriter.replaceOpWithNewOp<RmsNormOp>(op, op.getType(), x, Value(),
                                             APFloat(match->second));
      ++counts.rmsNorm;
      return success();
    }
    return failure();
  }

  FusionCounts &counts;
};

/// `w * rms_norm(x)` (either order, the norm without weight and used once,
/// `w` 1-d) -> `rms_norm x weight w`.
struct FuseRmsNormWeightPattern : OpRewritePattern<BinaryOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(BinaryOp op,
                                PatternRewriter &rewriter) const override {
    if (op.getFn() != "mul")
      return failure();
    for (auto [wValue, normValue] :
         {std::pair(op.getA(), op.getB()), std::pair(op.getB(), op.getA())}) {
      auto norm = getSingleUseProducer<RmsNormOp>(normValue);
      auto wType = dyn_cast<RankedTensorType>(wValue.getType());
      if (!norm || norm.getWeight() || !wType || wType.getRank() != 1 ||
          !haveSameElementType({norm.getX(), wValue, op.getResult()}))
        continue;
      auto xType = dyn_cast<RankedTensorType>(norm.getX().getType());
      if (xType && (xType.getRank() < 1 ||
                    failed(verifyCompatibleShape({xType.getShape().back()},
                                                 wType.getShape()))))
        continue;
      if (failed(verifyCompatibleShape(norm.getX().getType(), op.getType())))
        continue;
      rewriter.replaceOpWithNewOp<RmsNormOp>(op, op.getType(), norm.getX(),
                                             wValue, norm.getEps());
      rewriter.eraseOp(norm);
      return success();
    }
    return failure();
  }
};

//===----------------------------------------------------------------------===//
// SwiGLU
//===----------------------------------------------------------------------===//

/// `silu(gate) * up` or `gate * sigmoid(gate) * up` (any operand order)
/// -> `swiglu gate, up`.
struct FuseSwigluPattern : OpRewritePattern<BinaryOp> {
  FuseSwigluPattern(MLIRContext *context, FusionCounts &counts)
      : OpRewritePattern(context), counts(counts) {}

  /// The gate `g` if `value` is silu(g) or g * sigmoid(g), used once.
  static Value matchSilu(Value value) {
    if (UnaryOp silu = getUnary(value, "silu"))
      return silu.getX();
    BinaryOp mul = getBinary(value, "mul");
    if (!mul)
      return Value();
    for (auto [gate, other] :
         {std::pair(mul.getA(), mul.getB()), std::pair(mul.getB(), mul.getA())})
      if (UnaryOp sigmoid = getUnary(other, "sigmoid"))
        if (sigmoid.getX() == gate)
          return gate;
    return Value();
  }

  LogicalResult matchAndRewrite(BinaryOp op,
                                PatternRewriter &rewriter) const override {
    if (op.getFn() != "mul")
      return failure();
    for (auto [siluValue, up] :
         {std::pair(op.getA(), op.getB()), std::pair(op.getB(), op.getA())}) {
      Value gate = matchSilu(siluValue);
      if (!gate || !isFloat(gate) ||
          !haveSameElementType({gate, up, op.getResult()}))
        continue;
      rewriter.replaceOpWithNewOp<SwigluOp>(op, op.getType(), gate, up);
      ++counts.swiglu;
      return success();
    }
    return failure();
  }

  FusionCounts &counts;
};

//===----------------------------------------------------------------------===//
// RoPE
//===----------------------------------------------------------------------===//

/// The operands of RoPE's `x * cos + rotated * sin`, in any operand order of
/// the add and of both muls. `rotation(value)` returns the rotated input x of
/// a candidate `rotated` operand, or null (it may record how x was rotated:
/// the last call before success is the matching one); the first candidate
/// whose x also multiplies cos, with one float element type throughout, wins.
struct RopeOperands {
  Value x, cos, sin;
};
template <typename Rotation>
std::optional<RopeOperands> matchRopeSum(BinaryOp add, Rotation &&rotation) {
  if (add.getFn() != "add")
    return std::nullopt;
  for (auto [directValue, rotatedValue] :
       {std::pair(add.getA(), add.getB()), std::pair(add.getB(), add.getA())}) {
    BinaryOp direct = getBinary(directValue, "mul");
    BinaryOp rotated = getBinary(rotatedValue, "mul");
    if (!direct || !rotated)
      continue;
    for (auto [rotValue, sin] : {std::pair(rotated.getA(), rotated.getB()),
                                 std::pair(rotated.getB(), rotated.getA())}) {
      Value x = rotation(rotValue);
      if (!x)
        continue;
      Value cos;
      if (direct.getA() == x)
        cos = direct.getB();
      else if (direct.getB() == x)
        cos = direct.getA();
      if (!cos || !isFloat(x) ||
          !haveSameElementType({x, cos, sin, add.getResult()}))
        continue;
      return RopeOperands{x, cos, sin};
    }
  }
  return std::nullopt;
}

/// `x * cos + cat(-x[..., h:], x[..., :h], -1) * sin` with `h = D // 2`
/// -> `rope x, cos, sin style "rotate_half"`, and `x * cos +
/// stack(-x[..., 1::2], x[..., ::2], -1).flatten(-2) * sin` -> `style
/// "interleaved"` (any operand order of the muls and the add).
struct FuseRopePattern : OpRewritePattern<BinaryOp> {
  FuseRopePattern(MLIRContext *context, FusionCounts &counts)
      : OpRewritePattern(context), counts(counts) {}

  /// Whether `split` is certainly half of the last dim of `x`.
  static bool isHalfOfLastDim(Value x, Value split) {
    std::optional<int64_t> rank = inferRank(x);
    if (auto div = split.getDefiningOp<BinaryOp>()) {
      if ((div.getFn() != "floor_div" && div.getFn() != "trunc_div") ||
          getConstantInt(div.getB()) != 2)
        return false;
      auto size = div.getA().getDefiningOp<DimSizeOp>();
      return size && size.getX() == x &&
             isLastDim(x, static_cast<int64_t>(size.getDim()));
    }
    std::optional<int64_t> half = getConstantInt(split);
    if (!half || !rank)
      return false;
    DimFact last = inferDim(x, *rank - 1);
    return last.constant && *half == *last.constant / 2;
  }

  /// The rotated input `x` if `value` is `cat(-x[..., h:], x[..., :h], -1)`.
  static Value matchRotateHalf(Value value) {
    auto cat = getSingleUseProducer<ConcatOp>(value);
    if (!cat || cat.getXs().size() != 2)
      return Value();
    UnaryOp neg = getUnary(cat.getXs()[0], "neg");
    if (!neg)
      return Value();
    auto high = getSingleUseProducer<SliceOp>(neg.getX());
    auto low = getSingleUseProducer<SliceOp>(cat.getXs()[1]);
    if (!high || !low || high.getX() != low.getX())
      return Value();
    Value x = low.getX();
    if (!isLastDim(x, static_cast<int64_t>(cat.getDim())) ||
        !isLastDim(x, static_cast<int64_t>(high.getDim())) ||
        !isLastDim(x, static_cast<int64_t>(low.getDim())) ||
        high.getStep() != 1 || low.getStep() != 1)
      return Value();
    // low = x[..., 0:h], high = x[..., h:end].
    std::optional<int64_t> lowStart = getConstantInt(low.getStart());
    std::optional<int64_t> highEnd = getConstantInt(high.getEnd());
    if (lowStart != 0 || !highEnd ||
        *highEnd != std::numeric_limits<int64_t>::max() ||
        low.getEnd() != high.getStart() ||
        !isHalfOfLastDim(x, low.getEnd()))
      return Value();
    return x;
  }

  /// The rotated input `x` if `value` is the interleaved-pairs rotation
  /// `stack(-x[..., 1::2], x[..., 0::2], -1).flatten(-2)` (GPT-J form).
  static Value matchRotateInterleaved(Value value) {
    auto flatten = getSingleUseProducer<FlattenOp>(value);
    if (!flatten)
      return Value();
    auto stack = getSingleUseProducer<StackOp>(flatten.getX());
    if (!stack || stack.getXs().size() != 2)
      return Value();
    UnaryOp neg = getUnary(stack.getXs()[0], "neg");
    if (!neg)
      return Value();
    auto odd = getSingleUseProducer<SliceOp>(neg.getX());
    auto even = getSingleUseProducer<SliceOp>(stack.getXs()[1]);
    if (!odd || !even || odd.getX() != even.getX())
      return Value();
    Value x = even.getX();
    std::optional<int64_t> rank = inferRank(x);
    auto isNewLast = [&](int64_t dim) {
      return dim == -1 || (rank && dim == *rank);
    };
    auto isFlattenedLast = [&](int64_t start, int64_t end) {
      return (start == -2 || (rank && start == *rank - 1)) &&
             (end == -1 || (rank && end == *rank));
    };
    auto isStepTwoFrom = [&](SliceOp slice, int64_t start) {
      return slice.getStep() == 2 &&
             isLastDim(x, static_cast<int64_t>(slice.getDim())) &&
             getConstantInt(slice.getStart()) == start &&
             getConstantInt(slice.getEnd()) ==
                 std::numeric_limits<int64_t>::max();
    };
    if (!isNewLast(static_cast<int64_t>(stack.getDim())) ||
        !isFlattenedLast(static_cast<int64_t>(flatten.getStartDim()),
                         static_cast<int64_t>(flatten.getEndDim())) ||
        !isStepTwoFrom(odd, 1) || !isStepTwoFrom(even, 0))
      return Value();
    return x;
  }

  LogicalResult matchAndRewrite(BinaryOp op,
                                PatternRewriter &rewriter) const override {
    StringRef style;
    std::optional<RopeOperands> m = matchRopeSum(op, [&](Value rotated) {
      style = "rotate_half";
      if (Value x = matchRotateHalf(rotated))
        return x;
      style = "interleaved";
      return matchRotateInterleaved(rotated);
    });
    if (!m)
      return failure();
    rewriter.replaceOpWithNewOp<RopeOp>(op, op.getType(), m->x, m->cos, m->sin,
                                        style);
    ++counts.rope;
    return success();
  }

  FusionCounts &counts;
};

/// `x * cos + index_select(x, -1, perm) * sin` with `perm` a constant
/// permutation of x's last dim (any operand order of the muls and the add)
/// -> `rope_perm x, cos, sin perm [...]`: the form of RoPE that MobileLLM's
/// export writes for both rotate-half and interleaved pairs, with the signs
/// in the sin table.
struct FusePermutedRopePattern : OpRewritePattern<BinaryOp> {
  FusePermutedRopePattern(MLIRContext *context, FusionCounts &counts)
      : OpRewritePattern(context), counts(counts) {}

  /// The entries of `index` if it is a constant 1-d integer tensor holding a
  /// permutation of 0..n-1.
  static std::optional<SmallVector<int64_t>> matchPermutation(Value index) {
    DenseIntElementsAttr values;
    if (!matchPattern(index, m_Constant(&values)))
      return std::nullopt;
    auto type = dyn_cast<RankedTensorType>(values.getType());
    if (!type || type.getRank() != 1 || type.getElementType().isInteger(1))
      return std::nullopt;
    int64_t n = type.getDimSize(0);
    SmallVector<int64_t> perm;
    llvm::SmallBitVector seen(n);
    for (const APInt &value : values.getValues<APInt>()) {
      int64_t entry = type.getElementType().isUnsignedInteger()
                          ? static_cast<int64_t>(value.getZExtValue())
                          : value.getSExtValue();
      if (entry < 0 || entry >= n || seen.test(entry))
        return std::nullopt;
      seen.set(entry);
      perm.push_back(entry);
    }
    return perm;
  }

  LogicalResult matchAndRewrite(BinaryOp op,
                                PatternRewriter &rewriter) const override {
    SmallVector<int64_t> perm;
    std::optional<RopeOperands> m = matchRopeSum(op, [&](Value selected) {
      auto select = getSingleUseProducer<IndexSelectOp>(selected);
      if (!select)
        return Value();
      Value x = select.getX();
      if (!isLastDim(x, static_cast<int64_t>(select.getDim())))
        return Value();
      std::optional<SmallVector<int64_t>> entries =
          matchPermutation(select.getIndex());
      if (!entries)
        return Value();
      // perm must cover x's last dim exactly. When that dim is unknown, a
      // permutation of n >= 2 entries is enough: with another size the
      // unfused ops fail at run time too (an index out of range, or an add
      // of last dims n and D that do not broadcast), as the fused kernel
      // does. (n == 1 could broadcast against cos/sin: left alone.)
      int64_t n = static_cast<int64_t>(entries->size());
      std::optional<int64_t> rank = inferRank(x);
      DimFact last = rank && *rank >= 1 ? inferDim(x, *rank - 1) : DimFact{};
      if (n < 2 || (last.constant && *last.constant != n))
        return Value();
      perm = std::move(*entries);
      return x;
    });
    if (!m)
      return failure();
    rewriter.replaceOpWithNewOp<RopePermOp>(op, op.getType(), m->x, m->cos,
                                            m->sin, perm);
    ++counts.rope;
    return success();
  }

  FusionCounts &counts;
};

//===----------------------------------------------------------------------===//
// Attention
//===----------------------------------------------------------------------===//

/// `softmax(q @ k^T * scale [masked_fill(triu(ones(n, n), 1), -inf)], -1) @ v`
/// with k and v optionally `repeat_interleave`d by the same factor on the
/// head dim (grouped-query attention) -> `attention q, k, v`.
struct FuseAttentionPattern : OpRewritePattern<MatmulOp> {
  FuseAttentionPattern(MLIRContext *context, FusionCounts &counts)
      : OpRewritePattern(context), counts(counts) {}

  /// `x` and the factor if `value` is repeat_interleave(x, r, 1) of a 4-d
  /// x, used once; else `value` itself and 1.
  static std::pair<Value, int64_t> stripHeadRepeat(Value value) {
    auto repeat = getSingleUseProducer<RepeatInterleaveOp>(value);
    if (!repeat || inferRank(repeat.getX()) != 4)
      return {value, 1};
    std::optional<int64_t> dim =
        normalizeDim(static_cast<int64_t>(repeat.getDim()), 4);
    if (dim != 1)
      return {value, 1};
    return {repeat.getX(), static_cast<int64_t>(repeat.getRepeats())};
  }

  /// Whether `mask` is `triu(ones(n, n, bool), 1)` (the causal mask of a
  /// square score matrix), n matching the static score dims if known.
  static bool isCausalMask(Value mask, Value scores) {
    // A constant mask (a static trace folds triu(ones) to one): [1.., T, S]
    // true exactly where key j > i + (S - T), the scores statically [.., T, S].
    DenseElementsAttr constant;
    if (matchPattern(mask, m_Constant(&constant))) {
      auto type = dyn_cast<RankedTensorType>(constant.getType());
      auto scoresType = dyn_cast<RankedTensorType>(scores.getType());
      if (!type || !type.getElementType().isInteger(1) || type.getRank() < 2 ||
          !scoresType || !scoresType.hasStaticShape() ||
          type.getRank() > scoresType.getRank())
        return false;
      int64_t rank = type.getRank();
      int64_t t = type.getDimSize(rank - 2), s = type.getDimSize(rank - 1);
      if (llvm::any_of(type.getShape().drop_back(2),
                       [](int64_t d) { return d != 1; }) ||
          scoresType.getDimSize(scoresType.getRank() - 2) != t ||
          scoresType.getDimSize(scoresType.getRank() - 1) != s)
        return false;
      auto values = constant.getValues<bool>();
      for (int64_t i = 0; i < t; ++i)
        for (int64_t j = 0; j < s; ++j)
          if (values[i * s + j] != (j > i + (s - t)))
            return false;
      return true;
    }
    // The mask may be shared (CSE merges the masks of all blocks): it is only
    // read here, and erased by the driver once nothing uses it.
    auto triu = mask.getDefiningOp<TriangularOp>();
    if (!triu || !triu.getUpper() || triu.getDiagonal() != 1)
      return false;
    auto full = triu.getX().getDefiningOp<FullOp>();
    if (!full || full.getValue().convertToDouble() == 0.0 ||
        !getElementTypeOrSelf(full.getType()).isInteger(1))
      return false;
    DimFact rows, cols;
    if (auto stack = full.getShape().getDefiningOp<StackOp>()) {
      if (stack.getXs().size() != 2)
        return false;
      rows = {getConstantInt(stack.getXs()[0]), stack.getXs()[0]};
      cols = {getConstantInt(stack.getXs()[1]), stack.getXs()[1]};
    } else {
      DenseIntElementsAttr shape;
      if (!matchPattern(full.getShape(), m_Constant(&shape)) ||
          shape.getNumElements() != 2)
        return false;
      auto values = llvm::to_vector(shape.getValues<int64_t>());
      rows.constant = values[0];
      cols.constant = values[1];
    }
    if (!sameDim(rows, cols))
      return false;
    // With static score dims, the mask must be exactly [T, T] with S == T.
    if (auto type = dyn_cast<RankedTensorType>(scores.getType())) {
      if (type.getRank() < 2)
        return false;
      int64_t t = type.getDimSize(type.getRank() - 2);
      int64_t s = type.getDimSize(type.getRank() - 1);
      if (!ShapedType::isDynamic(t) && !ShapedType::isDynamic(s) &&
          (t != s || (rows.constant && *rows.constant != t)))
        return false;
    }
    return true;
  }

  LogicalResult matchAndRewrite(MatmulOp op,
                                PatternRewriter &rewriter) const override {
    auto softmax = getSingleUseProducer<SoftmaxOp>(op.getA());
    if (!softmax || softmax.getLog() ||
        !isLastDim(softmax.getX(), static_cast<int64_t>(softmax.getDim())))
      return failure();
    Value scores = softmax.getX();
    bool causal = false;
    if (auto where = getSingleUseProducer<WhereOp>(scores)) {
      std::optional<double> fill = getConstantFloat(where.getA());
      if (!fill || !std::isinf(*fill) || *fill > 0 ||
          !isCausalMask(where.getCond(), where.getB()))
        return failure();
      causal = true;
      scores = where.getB();
    }
    double scale = 1.0;
    if (auto scaled = getSingleUseProducer<BinaryOp>(scores)) {
      std::optional<double> factor;
      Value product;
      if (scaled.getFn() == "div") {
        factor = getConstantFloat(scaled.getB());
        product = scaled.getA();
        if (factor && *factor != 0.0)
          factor = 1.0 / *factor;
      } else if (scaled.getFn() == "mul") {
        if ((factor = getConstantFloat(scaled.getB())))
          product = scaled.getA();
        else if ((factor = getConstantFloat(scaled.getA())))
          product = scaled.getB();
      }
      if (!factor || !std::isfinite(*factor) || *factor == 0.0 ||
          !haveSameElementType({product, scaled.getResult()}))
        return failure();
      scale = *factor;
      scores = product;
    }
    auto qk = getSingleUseProducer<MatmulOp>(scores);
    if (!qk)
      return failure();
    // k^T: a transpose of the last two dims, or already folded into the
    // matmul as transpose_b.
    Value kRepeated;
    if (qk.getTransposeB()) {
      kRepeated = qk.getB();
    } else {
      auto kT = getSingleUseProducer<TransposeOp>(qk.getB());
      if (!kT || !transposesLastTwoDims(kT))
        return failure();
      kRepeated = kT.getX();
    }
    auto [k, kRepeats] = stripHeadRepeat(kRepeated);
    auto [v, vRepeats] = stripHeadRepeat(op.getB());
    Value q = qk.getA();
    if (op.getTransposeB() || kRepeats != vRepeats || inferRank(q) != 4 ||
        inferRank(k) != 4 || inferRank(v) != 4)
      return failure();
    // With repeated kv heads, q must have exactly Hkv * repeats heads (else
    // matmul would have broadcast heads differently).
    if (kRepeats != 1) {
      DimFact qHeads = inferDim(q, 1), kHeads = inferDim(k, 1),
              vHeads = inferDim(v, 1);
      if (!qHeads.constant || !kHeads.constant || !sameDim(kHeads, vHeads) ||
          *qHeads.constant != *kHeads.constant * kRepeats)
        return failure();
    }
    if (!isFloat(q) || !haveSameElementType({q, k, v, scores, op.getResult()}))
      return failure();
    rewriter.replaceOpWithNewOp<AttentionOp>(op, op.getType(), q, k, v,
                                             /*mask=*/Value(), APFloat(scale),
                                             causal);
    ++counts.attention;
    return success();
  }

  FusionCounts &counts;
};

//===----------------------------------------------------------------------===//
// Casts folded into cache writes
//===----------------------------------------------------------------------===//

/// `cache_write(state, pos, cast(x))` with x float and the cast to the float
/// type of the state -> `cache_write(state, pos, x)`: the write rounds x to
/// the state's type itself (an f16 KV cache fed by f32 k / v costs no extra
/// instruction). The cast stays while something else uses it.
struct FoldCastIntoCacheWritePattern : OpRewritePattern<CacheWriteOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(CacheWriteOp op,
                                PatternRewriter &rewriter) const override {
    auto cast = op.getValues().getDefiningOp<CastOp>();
    if (!cast || !isa<FloatType>(getElementTypeOrSelf(cast.getX().getType())) ||
        getElementTypeOrSelf(cast.getResult().getType()) !=
            getElementTypeOrSelf(op.getState().getType()))
      return failure();
    rewriter.modifyOpInPlace(op, [&] { op.getValuesMutable().assign(cast.getX()); });
    if (cast->use_empty())
      rewriter.eraseOp(cast);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// Transposes folded into matmul
//===----------------------------------------------------------------------===//

/// `matmul(a, transpose(b, -2, -1))` (the transpose used once) ->
/// `matmul a, b {transpose_b = true}`: the kernel reads b transposed.
struct FoldTransposeIntoMatmulPattern : OpRewritePattern<MatmulOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(MatmulOp op,
                                PatternRewriter &rewriter) const override {
    if (op.getTransposeB())
      return failure();
    auto transpose = getSingleUseProducer<TransposeOp>(op.getB());
    if (!transpose || !transposesLastTwoDims(transpose))
      return failure();
    // (The attention pattern accepts q @ k^T in this folded form too.)
    rewriter.modifyOpInPlace(op, [&] {
      op.getBMutable().assign(transpose.getX());
      op.setTransposeB(true);
    });
    rewriter.eraseOp(transpose);
    return success();
  }
};

class FuseOpsPass : public impl::FuseOpsBase<FuseOpsPass> {
public:
  using FuseOpsBase::FuseOpsBase;

  void runOnOperation() override {
    FusionCounts counts;
    // Folded transposes are counted as the matmuls with transpose_b that are
    // left (attention absorbs those of q @ k^T).
    auto countTransposeB = [&] {
      int64_t count = 0;
      getOperation()->walk([&](MatmulOp op) { count += op.getTransposeB(); });
      return count;
    };
    int64_t transposeBBefore = countTransposeB();
    RewritePatternSet patterns(&getContext());
    patterns.add<FuseRmsNormPattern, FuseSwigluPattern, FuseRopePattern,
                 FusePermutedRopePattern, FuseAttentionPattern>(&getContext(),
                                                                counts);
    patterns.add<FuseRmsNormWeightPattern, FoldTransposeIntoMatmulPattern,
                 FoldCastIntoCacheWritePattern>(&getContext());
    if (failed(applyPatternsAndFoldGreedily(getOperation(),
                                            std::move(patterns)))) {
      getOperation()->emitError("kiln-fuse did not converge");
      return signalPassFailure();
    }
    counts.transposeB = countTransposeB() - transposeBBefore;
    numRmsNorm += counts.rmsNorm;
    numSwiglu += counts.swiglu;
    numRope += counts.rope;
    numAttention += counts.attention;
    numTransposeB += counts.transposeB;
    if (report)
      getOperation()->emitRemark()
          << "kiln-fuse: rms_norm " << counts.rmsNorm << ", swiglu "
          << counts.swiglu << ", rope " << counts.rope << ", attention "
          << counts.attention << ", matmul transpose_b " << counts.transposeB;
  }
};

} // namespace
} // namespace kiln
