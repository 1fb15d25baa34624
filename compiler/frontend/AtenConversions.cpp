//===- AtenConversions.cpp - aten/prim operators -> kiln ops --------------===//
//
// One conversion per TorchScript operator (all overloads of a name share
// one). The table at the end is the front end's operator coverage; README.md
// lists it. Result element types follow the rules of docs/dialect.md
// (kiln/Dialect/KilnTypeRules.h); result shapes are static when every operand
// shape is static and the rule is simple, else unranked.
//
//===----------------------------------------------------------------------===//

#include "compiler/frontend/GraphImporter.h"

#include "kiln/Dialect/KilnOps.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"

#include <limits>

using namespace mlir;
namespace jit = torch::jit;
using Shape = llvm::SmallVector<int64_t>;
using OptShape = std::optional<Shape>;

namespace kiln::frontend {
namespace {

//===----------------------------------------------------------------------===//
// Type and shape helpers
//===----------------------------------------------------------------------===//

Type elementTypeOf(Value value) {
  return cast<TensorType>(value.getType()).getElementType();
}

bool isZeroDim(Value value) {
  auto type = dyn_cast<RankedTensorType>(value.getType());
  return type && type.getRank() == 0;
}

std::optional<int64_t> getRank(Value value) {
  if (auto type = dyn_cast<RankedTensorType>(value.getType()))
    return type.getRank();
  return std::nullopt;
}

OptShape staticShape(Value value) {
  auto type = dyn_cast<RankedTensorType>(value.getType());
  if (!type || !type.hasStaticShape())
    return std::nullopt;
  return Shape(type.getShape().begin(), type.getShape().end());
}

std::optional<llvm::ArrayRef<int64_t>> asRef(const OptShape &shape) {
  if (!shape)
    return std::nullopt;
  return llvm::ArrayRef<int64_t>(*shape);
}

/// Normalises a PyTorch dim for `rank` (negative counts from the end);
/// nullopt when out of range.
std::optional<int64_t> normalizeDim(int64_t dim, int64_t rank) {
  if (dim < 0)
    dim += rank;
  if (dim < 0 || dim >= rank)
    return std::nullopt;
  return dim;
}

/// NumPy broadcasting of static shapes.
OptShape broadcastShapes(llvm::ArrayRef<Value> operands) {
  Shape result;
  for (Value operand : operands) {
    OptShape shape = staticShape(operand);
    if (!shape)
      return std::nullopt;
    if (shape->size() > result.size())
      result.insert(result.begin(), shape->size() - result.size(), 1);
    size_t offset = result.size() - shape->size();
    for (size_t i = 0; i < shape->size(); ++i) {
      int64_t &dim = result[offset + i];
      int64_t other = (*shape)[i];
      if (dim == other || other == 1)
        continue;
      if (dim != 1)
        return std::nullopt; // Not broadcastable: let the verifier say so.
      dim = other;
    }
  }
  return result;
}

bool isFloatOnlyUnary(llvm::StringRef fn) {
  return llvm::is_contained(
      llvm::ArrayRef<llvm::StringRef>{"exp", "log", "sqrt", "rsqrt", "reciprocal",
                                      "sin", "cos", "tanh", "sigmoid", "silu",
                                      "gelu", "gelu_tanh", "erf"},
      fn);
}

/// The element type named by a TorchScript dtype constant (a ScalarType int).
FailureOr<Type> getDtype(GraphImporter &imp, const jit::Value *value) {
  std::optional<int64_t> code = imp.getConstantInt(value);
  if (!code) {
    imp.emitError() << "the dtype must be a compile-time constant";
    return failure();
  }
  auto scalarType = static_cast<c10::ScalarType>(*code);
  Type type = getElementType(imp.getContext(), scalarType);
  if (!type) {
    imp.emitError() << "unsupported dtype " << c10::toString(scalarType)
                    << " (Kiln supports float32, float16, bfloat16, int64, "
                       "int32 and bool; float64 becomes float32)";
    return failure();
  }
  return type;
}

/// The optional `dtype` argument of a node: null type when absent or None.
FailureOr<Type> getOptionalDtype(GraphImporter &imp, const jit::Node *node) {
  const jit::Value *dtype = imp.getNamedInput(node, "dtype");
  if (!dtype || imp.isNone(dtype))
    return Type();
  return getDtype(imp, dtype);
}

/// The natural element type of a number constant (int -> i64, float -> f32,
/// bool -> i1).
Type naturalType(GraphImporter &imp, const c10::IValue &constant) {
  if (constant.isBool())
    return imp.i1();
  if (constant.isInt())
    return imp.i64();
  return imp.f32();
}

//===----------------------------------------------------------------------===//
// Op builders with result type inference
//===----------------------------------------------------------------------===//

Value emitUnary(GraphImporter &imp, Value x, llvm::StringRef fn) {
  Type elementType = elementTypeOf(x);
  if (fn == "logical_not")
    elementType = imp.i1();
  else if (isFloatOnlyUnary(fn) && !isa<FloatType>(elementType))
    elementType = imp.f32();
  return imp
      .create<kiln::UnaryOp>(imp.tensorOf(elementType, asRef(staticShape(x))), x,
                             imp.getBuilder().getStringAttr(fn))
      .getResult();
}

Type binaryResultType(GraphImporter &imp, Value a, Value b, llvm::StringRef fn) {
  Type type = kiln::promoteOperandTypes(elementTypeOf(a), isZeroDim(a),
                                        elementTypeOf(b), isZeroDim(b));
  if (fn == "div" && !isa<FloatType>(type))
    type = imp.f32();
  return type;
}

/// A 0-d constant next to a tensor of the result type is converted to that
/// type at compile time (PyTorch computes in the result type anyway), so
/// kernels mostly see operands of one type.
void harmonizeScalarConstants(GraphImporter &imp, Value &a, Value &b, Type type) {
  auto isScalarConstant = [](Value v) {
    return isZeroDim(v) && v.getDefiningOp<kiln::ConstantOp>();
  };
  // Not next to a value whose type is a guess: the kernel promotes at run time.
  if (isScalarConstant(b) && elementTypeOf(a) == type && elementTypeOf(b) != type &&
      !imp.hasGuessedElementType(a))
    b = imp.castTo(b, type);
  if (isScalarConstant(a) && elementTypeOf(b) == type && elementTypeOf(a) != type &&
      !imp.hasGuessedElementType(b))
    a = imp.castTo(a, type);
}

Value emitBinary(GraphImporter &imp, Value a, Value b, llvm::StringRef fn) {
  Type elementType = binaryResultType(imp, a, b, fn);
  if (fn != "div")
    harmonizeScalarConstants(imp, a, b, elementType);
  return imp
      .create<kiln::BinaryOp>(imp.tensorOf(elementType, asRef(broadcastShapes({a, b}))),
                              a, b, imp.getBuilder().getStringAttr(fn))
      .getResult();
}

Value emitCompare(GraphImporter &imp, Value a, Value b, llvm::StringRef fn) {
  // Kernels also compare in the promoted type; the conversion is made explicit
  // here unless an operand's type is a guess (then only the kernel knows it).
  if (!fn.starts_with("logical_") && elementTypeOf(a) != elementTypeOf(b) &&
      !imp.hasGuessedElementType(a) && !imp.hasGuessedElementType(b)) {
    // Compare in the promoted type, as PyTorch does.
    Type common = binaryResultType(imp, a, b, "add");
    a = imp.castTo(a, common);
    b = imp.castTo(b, common);
  }
  return imp
      .create<kiln::CompareOp>(imp.tensorOf(imp.i1(), asRef(broadcastShapes({a, b}))),
                               a, b, imp.getBuilder().getStringAttr(fn))
      .getResult();
}

Value emitUnsqueeze(GraphImporter &imp, Value x, int64_t dim) {
  OptShape shape = staticShape(x);
  if (shape) {
    int64_t rank = shape->size();
    std::optional<int64_t> d = normalizeDim(dim, rank + 1);
    if (d)
      shape->insert(shape->begin() + *d, 1);
    else
      shape.reset();
  }
  return imp
      .create<kiln::UnsqueezeOp>(imp.tensorOf(elementTypeOf(x), asRef(shape)), x,
                                 imp.getBuilder().getI64IntegerAttr(dim))
      .getResult();
}

Value emitSqueeze(GraphImporter &imp, Value x, llvm::ArrayRef<int64_t> dims) {
  OptShape shape = staticShape(x);
  if (shape) {
    int64_t rank = shape->size();
    Shape result;
    for (int64_t i = 0; i < rank; ++i) {
      bool listed = dims.empty();
      for (int64_t d : dims)
        listed |= normalizeDim(d, rank) == i;
      if (!(listed && (*shape)[i] == 1))
        result.push_back((*shape)[i]);
    }
    shape = result;
  }
  return imp
      .create<kiln::SqueezeOp>(imp.tensorOf(elementTypeOf(x), asRef(shape)), x,
                               imp.getBuilder().getDenseI64ArrayAttr(dims))
      .getResult();
}

Value emitFlatten(GraphImporter &imp, Value x, int64_t start, int64_t end) {
  OptShape shape = staticShape(x);
  if (shape) {
    int64_t rank = shape->size();
    if (rank == 0) {
      shape = Shape{1};
    } else {
      std::optional<int64_t> s = normalizeDim(start, rank), e = normalizeDim(end, rank);
      if (s && e && *s <= *e) {
        Shape result(shape->begin(), shape->begin() + *s);
        int64_t product = 1;
        for (int64_t i = *s; i <= *e; ++i)
          product *= (*shape)[i];
        result.push_back(product);
        result.append(shape->begin() + *e + 1, shape->end());
        shape = result;
      } else {
        shape.reset();
      }
    }
  }
  return imp
      .create<kiln::FlattenOp>(imp.tensorOf(elementTypeOf(x), asRef(shape)), x,
                               imp.getBuilder().getI64IntegerAttr(start),
                               imp.getBuilder().getI64IntegerAttr(end))
      .getResult();
}

Value emitReduce(GraphImporter &imp, Value x, llvm::StringRef fn,
                 llvm::ArrayRef<int64_t> dims, bool keepdim) {
  Type elementType = elementTypeOf(x);
  if ((fn == "sum" || fn == "prod") && !isa<FloatType>(elementType))
    elementType = imp.i64();
  OptShape shape = staticShape(x);
  if (shape) {
    int64_t rank = shape->size();
    llvm::SmallVector<bool> reduced(rank, dims.empty());
    for (int64_t d : dims) {
      std::optional<int64_t> n = normalizeDim(d, rank);
      if (!n) {
        shape.reset();
        break;
      }
      reduced[*n] = true;
    }
    if (shape) {
      Shape result;
      for (int64_t i = 0; i < rank; ++i) {
        if (!reduced[i])
          result.push_back((*shape)[i]);
        else if (keepdim)
          result.push_back(1);
      }
      shape = result;
    }
  }
  auto &b = imp.getBuilder();
  return imp
      .create<kiln::ReduceOp>(imp.tensorOf(elementType, asRef(shape)), x,
                              b.getStringAttr(fn), b.getDenseI64ArrayAttr(dims),
                              b.getBoolAttr(keepdim))
      .getResult();
}

Value emitArgmax(GraphImporter &imp, Value x, int64_t dim, bool keepdim) {
  OptShape shape = staticShape(x);
  if (shape) {
    std::optional<int64_t> d = normalizeDim(dim, shape->size());
    if (!d)
      shape.reset();
    else if (keepdim)
      (*shape)[*d] = 1;
    else
      shape->erase(shape->begin() + *d);
  }
  auto &b = imp.getBuilder();
  return imp
      .create<kiln::ArgmaxOp>(imp.tensorOf(imp.i64(), asRef(shape)), x,
                              b.getI64IntegerAttr(dim), b.getBoolAttr(keepdim))
      .getResult();
}

Value emitMatmul(GraphImporter &imp, Value a, Value b) {
  Type elementType = kiln::promoteElementTypes(elementTypeOf(a), elementTypeOf(b));
  OptShape shape;
  OptShape sa = staticShape(a), sb = staticShape(b);
  if (sa && sb && !sa->empty() && !sb->empty()) {
    Shape x = *sa, y = *sb;
    bool vectorA = x.size() == 1, vectorB = y.size() == 1;
    if (vectorA)
      x.insert(x.begin(), 1);
    if (vectorB)
      y.push_back(1);
    if (x.back() == y[y.size() - 2]) {
      Shape batchA(x.begin(), x.end() - 2), batchB(y.begin(), y.end() - 2);
      Shape batch;
      size_t n = std::max(batchA.size(), batchB.size());
      bool ok = true;
      for (size_t i = 0; i < n; ++i) {
        int64_t da = i + batchA.size() >= n ? batchA[i + batchA.size() - n] : 1;
        int64_t db = i + batchB.size() >= n ? batchB[i + batchB.size() - n] : 1;
        if (da != db && da != 1 && db != 1)
          ok = false;
        batch.push_back(da == 1 ? db : da);
      }
      if (ok) {
        if (!vectorA)
          batch.push_back(x[x.size() - 2]);
        if (!vectorB)
          batch.push_back(y.back());
        shape = batch;
      }
    }
  }
  return imp.create<kiln::MatmulOp>(imp.tensorOf(elementType, asRef(shape)), a, b)
      .getResult();
}

Value emitTranspose(GraphImporter &imp, Value x, int64_t dim0, int64_t dim1) {
  OptShape shape = staticShape(x);
  if (shape) {
    std::optional<int64_t> d0 = normalizeDim(dim0, shape->size()),
                           d1 = normalizeDim(dim1, shape->size());
    if (d0 && d1)
      std::swap((*shape)[*d0], (*shape)[*d1]);
    else
      shape.reset();
  }
  auto &b = imp.getBuilder();
  return imp
      .create<kiln::TransposeOp>(imp.tensorOf(elementTypeOf(x), asRef(shape)), x,
                                 b.getI64IntegerAttr(dim0), b.getI64IntegerAttr(dim1))
      .getResult();
}

/// `reshape(x, shape)`, with a static result when the shape is known.
Value emitReshape(GraphImporter &imp, Value x, const jit::Value *shapeList) {
  Value shape = imp.getIntList(shapeList);
  if (!shape)
    return shape;
  OptShape result;
  if (auto dims = imp.getConstantIntList(shapeList)) {
    int64_t known = 1, inferred = -1;
    bool ok = true;
    for (auto [i, d] : llvm::enumerate(*dims)) {
      if (d == -1 && inferred < 0)
        inferred = i;
      else if (d >= 0)
        known *= d;
      else
        ok = false;
    }
    if (ok && inferred < 0) {
      result = *dims;
    } else if (ok) {
      if (OptShape in = staticShape(x)) {
        int64_t total = 1;
        for (int64_t d : *in)
          total *= d;
        if (known != 0 && total % known == 0) {
          result = *dims;
          (*result)[inferred] = total / known;
        }
      }
    }
  }
  return imp.create<kiln::ReshapeOp>(imp.tensorOf(elementTypeOf(x), asRef(result)), x,
                                     shape)
      .getResult();
}

Value emitExpand(GraphImporter &imp, Value x, Value shape,
                 std::optional<llvm::SmallVector<int64_t>> dims) {
  OptShape result;
  OptShape in = staticShape(x);
  if (dims && in && dims->size() >= in->size()) {
    result = *dims;
    size_t offset = dims->size() - in->size();
    for (size_t i = 0; i < dims->size(); ++i) {
      int64_t &d = (*result)[i];
      if (d == -1) {
        if (i < offset) {
          result.reset();
          break;
        }
        d = (*in)[i - offset];
      }
    }
  }
  return imp.create<kiln::ExpandOp>(imp.tensorOf(elementTypeOf(x), asRef(result)), x,
                                    shape)
      .getResult();
}

/// Python slice length of [start:end:step) on a dim of `size`.
int64_t sliceLength(int64_t size, int64_t start, int64_t end, int64_t step) {
  auto clampIndex = [&](int64_t index) {
    if (index < 0)
      index = std::max<int64_t>(index + size, 0);
    return std::min(index, size);
  };
  start = clampIndex(start);
  end = clampIndex(end);
  return end > start ? (end - start + step - 1) / step : 0;
}

Value emitSlice(GraphImporter &imp, Value x, int64_t dim, Value start, Value end,
                std::optional<int64_t> constStart, std::optional<int64_t> constEnd,
                int64_t step) {
  OptShape shape = staticShape(x);
  if (shape) {
    std::optional<int64_t> d = normalizeDim(dim, shape->size());
    if (d && constStart && constEnd && step > 0)
      (*shape)[*d] = sliceLength((*shape)[*d], *constStart, *constEnd, step);
    else
      shape.reset();
  }
  auto &b = imp.getBuilder();
  return imp
      .create<kiln::SliceOp>(imp.tensorOf(elementTypeOf(x), asRef(shape)), x, start,
                             end, b.getI64IntegerAttr(dim), b.getI64IntegerAttr(step))
      .getResult();
}

Value emitSelect(GraphImporter &imp, Value x, int64_t dim, Value index) {
  OptShape shape = staticShape(x);
  if (getRank(x) == 1) {
    shape = Shape{}; // An element of a 1-d tensor (a shape list) is 0-d.
  } else if (shape) {
    std::optional<int64_t> d = normalizeDim(dim, shape->size());
    if (d)
      shape->erase(shape->begin() + *d);
    else
      shape.reset();
  }
  return imp
      .create<kiln::SelectOp>(imp.tensorOf(elementTypeOf(x), asRef(shape)), x, index,
                              imp.getBuilder().getI64IntegerAttr(dim))
      .getResult();
}

Value emitCast(GraphImporter &imp, Value x, Type elementType) {
  return imp.castTo(x, elementType, /*explicitConversion=*/true);
}

//===----------------------------------------------------------------------===//
// Operand helpers
//===----------------------------------------------------------------------===//

/// The two operands of a binary operator: a Python number next to a tensor
/// takes the tensor's type (see GraphImporter::getScalarLike).
LogicalResult getBinaryOperands(GraphImporter &imp, const jit::Value *lhs,
                                const jit::Value *rhs, Value &a, Value &b) {
  bool lhsTensor = GraphImporter::isTensorValue(lhs);
  bool rhsTensor = GraphImporter::isTensorValue(rhs);
  if (lhsTensor || !rhsTensor) {
    a = imp.getTensor(lhs);
    if (!a)
      return failure();
    b = rhsTensor ? imp.getTensor(rhs) : imp.getScalarLike(rhs, elementTypeOf(a));
    return success(static_cast<bool>(b));
  }
  b = imp.getTensor(rhs);
  if (!b)
    return failure();
  a = imp.getScalarLike(lhs, elementTypeOf(b));
  return success(static_cast<bool>(a));
}

/// Multiplies `value` by the `alpha`/`beta` argument `name` when it is not 1.
FailureOr<Value> scaleBy(GraphImporter &imp, const jit::Node *node, Value value,
                         llvm::StringRef name) {
  const jit::Value *factor = imp.getNamedInput(node, name);
  if (!factor)
    return value;
  std::optional<double> constant = imp.getConstantDouble(factor);
  if (constant && *constant == 1.0)
    return value;
  Value scale = imp.getScalarLike(factor, elementTypeOf(value));
  if (!scale)
    return failure();
  return emitBinary(imp, value, scale, "mul");
}

/// Number of results of a list-producing node: fixed by its prim::ListUnpack
/// user, or computed from a static shape by `fromShape`.
FailureOr<int64_t> getListLength(GraphImporter &imp, const jit::Node *node,
                                 std::optional<int64_t> fromShape) {
  for (const jit::Use &use : node->output()->uses())
    if (use.user->kind() == c10::prim::ListUnpack)
      return static_cast<int64_t>(use.user->outputs().size());
  if (fromShape)
    return *fromShape;
  imp.emitError() << "cannot tell how many tensors " << node->kind().toQualString()
                  << " returns: the list is not unpacked and the input shape is "
                     "not static";
  return failure();
}

//===----------------------------------------------------------------------===//
// Conversions
//===----------------------------------------------------------------------===//

LogicalResult convertAlias(GraphImporter &imp, jit::Node *node) {
  imp.mapAlias(node->output(), node->input(0));
  return success();
}

LogicalResult convertNothing(GraphImporter &, jit::Node *) { return success(); }

LogicalResult convertUnary(GraphImporter &imp, jit::Node *node, llvm::StringRef fn) {
  Value x = imp.getTensor(node->input(0));
  if (!x)
    return failure();
  imp.mapValue(node->output(), emitUnary(imp, x, fn));
  return success();
}

LogicalResult convertGelu(GraphImporter &imp, jit::Node *node) {
  std::string approximate = "none";
  if (const jit::Value *arg = imp.getNamedInput(node, "approximate")) {
    std::optional<std::string> value = imp.getConstantString(arg);
    if (!value) {
      imp.emitError() << "gelu's 'approximate' must be a constant string";
      return failure();
    }
    approximate = *value;
  }
  if (approximate != "none" && approximate != "tanh")
    return imp.emitUnsupported(node, "approximate='" + approximate + "'");
  return convertUnary(imp, node, approximate == "tanh" ? "gelu_tanh" : "gelu");
}

LogicalResult convertNot(GraphImporter &imp, jit::Node *node) {
  Value x = imp.getTensor(node->input(0));
  if (!x)
    return failure();
  if (!elementTypeOf(x).isInteger(1))
    return imp.emitUnsupported(node, "bitwise not of a non-bool tensor");
  imp.mapValue(node->output(), emitUnary(imp, x, "logical_not"));
  return success();
}

LogicalResult convertSquare(GraphImporter &imp, jit::Node *node) {
  Value x = imp.getTensor(node->input(0));
  if (!x)
    return failure();
  imp.mapValue(node->output(), emitBinary(imp, x, x, "mul"));
  return success();
}

LogicalResult convertBinary(GraphImporter &imp, jit::Node *node, llvm::StringRef fn) {
  if (node->inputs().size() < 2)
    return imp.emitUnsupported(node);
  Value a, b;
  if (failed(getBinaryOperands(imp, node->input(0), node->input(1), a, b)))
    return failure();
  if (fn == "add" || fn == "sub") {
    FailureOr<Value> scaled = scaleBy(imp, node, b, "alpha");
    if (failed(scaled))
      return failure();
    b = *scaled;
  }
  if (fn == "div") {
    if (const jit::Value *mode = imp.getNamedInput(node, "rounding_mode")) {
      if (!imp.isNone(mode)) {
        std::optional<std::string> value = imp.getConstantString(mode);
        if (value == "floor")
          fn = "floor_div";
        else if (value == "trunc")
          fn = "trunc_div";
        else
          return imp.emitUnsupported(node, "rounding_mode must be a constant "
                                           "None, 'floor' or 'trunc'");
      }
    }
  }
  imp.mapValue(node->output(), emitBinary(imp, a, b, fn));
  return success();
}

LogicalResult convertRsub(GraphImporter &imp, jit::Node *node) {
  // rsub(self, other, alpha) = other - alpha * self
  Value self, other;
  if (failed(getBinaryOperands(imp, node->input(0), node->input(1), self, other)))
    return failure();
  FailureOr<Value> scaled = scaleBy(imp, node, self, "alpha");
  if (failed(scaled))
    return failure();
  imp.mapValue(node->output(), emitBinary(imp, other, *scaled, "sub"));
  return success();
}

LogicalResult convertNeg(GraphImporter &imp, jit::Node *node) {
  return convertUnary(imp, node, "neg");
}

LogicalResult convertCompare(GraphImporter &imp, jit::Node *node, llvm::StringRef fn) {
  Value a, b;
  if (failed(getBinaryOperands(imp, node->input(0), node->input(1), a, b)))
    return failure();
  imp.mapValue(node->output(), emitCompare(imp, a, b, fn));
  return success();
}

/// `&`, `|`, `^`: logical on bools; bitwise integer ops are not in the dialect.
LogicalResult convertBitwise(GraphImporter &imp, jit::Node *node, llvm::StringRef fn) {
  Value a, b;
  if (failed(getBinaryOperands(imp, node->input(0), node->input(1), a, b)))
    return failure();
  if (!elementTypeOf(a).isInteger(1) || !elementTypeOf(b).isInteger(1))
    return imp.emitUnsupported(node, "bitwise operators are supported on bool "
                                     "tensors only");
  imp.mapValue(node->output(), emitCompare(imp, a, b, fn));
  return success();
}

LogicalResult convertWhere(GraphImporter &imp, jit::Node *node) {
  if (node->inputs().size() != 3)
    return imp.emitUnsupported(node, "only the three-operand form is supported");
  Value cond = imp.getTensor(node->input(0));
  if (!cond)
    return failure();
  cond = imp.castTo(cond, imp.i1());
  Value a, b;
  if (failed(getBinaryOperands(imp, node->input(1), node->input(2), a, b)))
    return failure();
  Type elementType = binaryResultType(imp, a, b, "add");
  harmonizeScalarConstants(imp, a, b, elementType);
  imp.mapValue(node->output(),
               imp.create<kiln::WhereOp>(
                      imp.tensorOf(elementType, asRef(broadcastShapes({cond, a, b}))),
                      cond, a, b)
                   .getResult());
  return success();
}

LogicalResult convertMaskedFill(GraphImporter &imp, jit::Node *node) {
  Value self = imp.getTensor(node->input(0));
  Value mask = imp.getTensor(node->input(1));
  if (!self || !mask)
    return failure();
  Type elementType = elementTypeOf(self);
  Value value = imp.getScalarLike(node->input(2), elementType);
  if (!value)
    return failure();
  // masked_fill keeps self's dtype whatever the value's type (when self's
  // type is a guess, `where` promotes at run time instead).
  if (!imp.hasGuessedElementType(self))
    value = imp.castTo(value, elementType);
  mask = imp.castTo(mask, imp.i1());
  imp.mapValue(node->output(),
               imp.create<kiln::WhereOp>(
                      imp.tensorOf(elementType, asRef(broadcastShapes({mask, value, self}))),
                      mask, value, self)
                   .getResult());
  return success();
}

LogicalResult convertClamp(GraphImporter &imp, jit::Node *node) {
  Value x = imp.getTensor(node->input(0));
  if (!x)
    return failure();
  std::string kind = node->kind().toQualString();
  const jit::Value *minArg = nullptr, *maxArg = nullptr;
  if (kind == "aten::clamp_min") {
    minArg = node->input(1);
  } else if (kind == "aten::clamp_max") {
    maxArg = node->input(1);
  } else { // clamp, hardtanh
    minArg = node->input(1);
    maxArg = node->input(2);
  }
  FloatAttr minAttr, maxAttr;
  auto &b = imp.getBuilder();
  for (auto [arg, attr] : {std::make_pair(minArg, &minAttr), std::make_pair(maxArg, &maxAttr)}) {
    if (!arg || imp.isNone(arg))
      continue;
    std::optional<double> bound = imp.getConstantDouble(arg);
    if (!bound)
      return imp.emitUnsupported(node, "clamp bounds must be compile-time constants");
    *attr = b.getF64FloatAttr(*bound);
  }
  if (!minAttr && !maxAttr) {
    imp.mapValue(node->output(), x);
    return success();
  }
  imp.mapValue(node->output(),
               imp.create<kiln::ClampOp>(x.getType(), x, minAttr, maxAttr).getResult());
  return success();
}

/// `x` converted to `like`'s element type, which only the run time knows.
Value emitCastLike(GraphImporter &imp, Value x, Value like) {
  return imp
      .create<kiln::CastLikeOp>(cast<TensorType>(x.getType()).clone(elementTypeOf(like)), x,
                                like)
      .getResult();
}

LogicalResult convertTo(GraphImporter &imp, jit::Node *node) {
  Value x = imp.getTensor(node->input(0));
  if (!x)
    return failure();
  Type target;
  if (const jit::Value *other = imp.getNamedInput(node, "other")) {
    Value otherTensor = imp.getTensor(other);
    if (!otherTensor)
      return failure();
    if (imp.hasGuessedElementType(otherTensor)) {
      imp.mapValue(node->output(), emitCastLike(imp, x, otherTensor));
      return success();
    }
    target = elementTypeOf(otherTensor);
  } else if (const jit::Value *dtype = imp.getNamedInput(node, "dtype")) {
    if (!imp.isNone(dtype)) {
      FailureOr<Type> type = getDtype(imp, dtype);
      if (failed(type))
        return failure();
      target = *type;
    }
  }
  imp.mapValue(node->output(), target ? emitCast(imp, x, target) : x);
  return success();
}

LogicalResult convertTypeAs(GraphImporter &imp, jit::Node *node) {
  Value x = imp.getTensor(node->input(0));
  Value other = imp.getTensor(node->input(1));
  if (!x || !other)
    return failure();
  if (imp.hasGuessedElementType(other)) {
    imp.mapValue(node->output(), emitCastLike(imp, x, other));
    return success();
  }
  imp.mapValue(node->output(), emitCast(imp, x, elementTypeOf(other)));
  return success();
}

/// aten::Int / aten::Float / aten::Bool: numbers are 0-d tensors.
LogicalResult convertNumberCast(GraphImporter &imp, jit::Node *node, Type target) {
  const jit::Value *input = node->input(0);
  if (std::optional<c10::IValue> constant = imp.getConstant(input)) {
    if (target.isInteger(64)) {
      if (std::optional<double> v = imp.getConstantDouble(input)) {
        imp.mapConstant(node->output(), c10::IValue(static_cast<int64_t>(*v)));
        return success();
      }
    } else if (target.isInteger(1)) {
      if (std::optional<double> v = imp.getConstantDouble(input)) {
        imp.mapConstant(node->output(), c10::IValue(*v != 0.0));
        return success();
      }
    } else if (std::optional<double> v = imp.getConstantDouble(input)) {
      imp.mapConstant(node->output(), c10::IValue(*v));
      return success();
    }
  }
  Value x = imp.getTensor(input);
  if (!x)
    return failure();
  imp.mapValue(node->output(), imp.castTo(x, target));
  return success();
}

LogicalResult convertClone(GraphImporter &imp, jit::Node *node) {
  Value x = imp.getTensor(node->input(0));
  if (!x)
    return failure();
  imp.mapValue(node->output(), imp.create<kiln::CopyOp>(x.getType(), x).getResult());
  return success();
}

//---- Reductions ---------------------------------------------------------===//

/// mean / sum / prod (+ amax / amin): `dim` None or absent means all dims.
LogicalResult convertReduce(GraphImporter &imp, jit::Node *node, llvm::StringRef fn) {
  Value x = imp.getTensor(node->input(0));
  if (!x)
    return failure();
  FailureOr<Type> dtype = getOptionalDtype(imp, node);
  if (failed(dtype))
    return failure();
  if (*dtype)
    x = emitCast(imp, x, *dtype);
  llvm::SmallVector<int64_t> dims;
  if (const jit::Value *dim = imp.getNamedInput(node, "dim")) {
    if (!imp.isNone(dim)) {
      auto list = imp.getConstantIntList(dim);
      if (!list) {
        imp.emitError() << "reduction dims must be compile-time constants";
        return failure();
      }
      dims = *list;
    }
  }
  bool keepdim = false;
  if (const jit::Value *keep = imp.getNamedInput(node, "keepdim")) {
    std::optional<bool> value = imp.getConstantBool(keep);
    if (!value) {
      imp.emitError() << "keepdim must be a compile-time constant";
      return failure();
    }
    keepdim = *value;
  }
  imp.mapValue(node->output(), emitReduce(imp, x, fn, dims, keepdim));
  return success();
}

/// max / min: all elements, elementwise with another tensor, or along a dim
/// (values + indices).
LogicalResult convertMaxMin(GraphImporter &imp, jit::Node *node, llvm::StringRef fn) {
  Value x = imp.getTensor(node->input(0));
  if (!x)
    return failure();
  if (node->inputs().size() == 1) {
    imp.mapValue(node->output(), emitReduce(imp, x, fn, {}, false));
    return success();
  }
  if (node->inputs().size() == 2 && GraphImporter::isTensorValue(node->input(1))) {
    Value other = imp.getTensor(node->input(1));
    if (!other)
      return failure();
    imp.mapValue(node->output(),
                 emitBinary(imp, x, other, fn == "max" ? "maximum" : "minimum"));
    return success();
  }
  if (node->inputs().size() != 3 || node->outputs().size() != 2)
    return imp.emitUnsupported(node);
  FailureOr<int64_t> dim = imp.requireInt(node, 1);
  FailureOr<bool> keepdim = imp.requireBool(node, 2);
  if (failed(dim) || failed(keepdim))
    return failure();
  imp.mapValue(node->output(0), emitReduce(imp, x, fn, {*dim}, *keepdim));
  if (node->output(1)->hasUses()) {
    if (fn != "max")
      return imp.emitUnsupported(node, "the indices of min(dim) (no argmin op)");
    imp.mapValue(node->output(1), emitArgmax(imp, x, *dim, *keepdim));
  }
  return success();
}

LogicalResult convertArgmax(GraphImporter &imp, jit::Node *node) {
  Value x = imp.getTensor(node->input(0));
  if (!x)
    return failure();
  FailureOr<bool> keepdim = imp.requireBool(node, 2);
  if (failed(keepdim))
    return failure();
  if (imp.isNone(node->input(1))) {
    // argmax over all elements: of the flattened tensor.
    Value flat = emitFlatten(imp, x, 0, -1);
    imp.mapValue(node->output(), emitArgmax(imp, flat, 0, false));
    return success();
  }
  FailureOr<int64_t> dim = imp.requireInt(node, 1);
  if (failed(dim))
    return failure();
  imp.mapValue(node->output(), emitArgmax(imp, x, *dim, *keepdim));
  return success();
}

LogicalResult convertSoftmax(GraphImporter &imp, jit::Node *node, bool log) {
  Value x = imp.getTensor(node->input(0));
  if (!x)
    return failure();
  FailureOr<int64_t> dim = imp.requireInt(node, 1);
  if (failed(dim))
    return failure();
  std::string kind = node->kind().toQualString();
  if (kind == "aten::_softmax" || kind == "aten::_log_softmax") {
    FailureOr<bool> halfToFloat = imp.requireBool(node, 2);
    if (failed(halfToFloat))
      return failure();
    if (*halfToFloat)
      x = emitCast(imp, x, imp.f32());
  } else {
    FailureOr<Type> dtype = getOptionalDtype(imp, node);
    if (failed(dtype))
      return failure();
    if (*dtype)
      x = emitCast(imp, x, *dtype);
  }
  if (!isa<FloatType>(elementTypeOf(x)))
    x = emitCast(imp, x, imp.f32());
  auto &b = imp.getBuilder();
  imp.mapValue(node->output(),
               imp.create<kiln::SoftmaxOp>(x.getType(), x, b.getI64IntegerAttr(*dim),
                                           b.getBoolAttr(log))
                   .getResult());
  return success();
}

LogicalResult convertLayerNorm(GraphImporter &imp, jit::Node *node) {
  Value x = imp.getTensor(node->input(0));
  if (!x)
    return failure();
  FailureOr<llvm::SmallVector<int64_t>> normalizedShape = imp.requireIntList(node, 1);
  FailureOr<double> eps = imp.requireDouble(node, 4);
  if (failed(normalizedShape) || failed(eps))
    return failure();
  Value weight, bias;
  if (!imp.isNone(node->input(2)) && !(weight = imp.getTensor(node->input(2))))
    return failure();
  if (!imp.isNone(node->input(3)) && !(bias = imp.getTensor(node->input(3))))
    return failure();
  auto &b = imp.getBuilder();
  imp.mapValue(node->output(),
               imp.create<kiln::LayerNormOp>(
                      x.getType(), x, weight, bias,
                      b.getI64IntegerAttr(normalizedShape->size()),
                      b.getF64FloatAttr(*eps))
                   .getResult());
  return success();
}

//---- Linear algebra -----------------------------------------------------===//

LogicalResult convertLinear(GraphImporter &imp, jit::Node *node) {
  Value x = imp.getTensor(node->input(0));
  Value w = imp.getTensor(node->input(1));
  if (!x || !w)
    return failure();
  Value bias;
  if (node->inputs().size() > 2 && !imp.isNone(node->input(2)) &&
      !(bias = imp.getTensor(node->input(2))))
    return failure();
  OptShape shape;
  OptShape sx = staticShape(x), sw = staticShape(w);
  if (sx && sw && !sx->empty() && sw->size() == 2 && sx->back() == (*sw)[1]) {
    shape = *sx;
    shape->back() = (*sw)[0];
  }
  Type elementType = kiln::promoteElementTypes(elementTypeOf(x), elementTypeOf(w));
  imp.mapValue(node->output(),
               imp.create<kiln::LinearOp>(imp.tensorOf(elementType, asRef(shape)), x, w,
                                          bias)
                   .getResult());
  return success();
}

LogicalResult convertMatmul(GraphImporter &imp, jit::Node *node) {
  Value a = imp.getTensor(node->input(0));
  Value b = imp.getTensor(node->input(1));
  if (!a || !b)
    return failure();
  imp.mapValue(node->output(), emitMatmul(imp, a, b));
  return success();
}

/// addmm / baddbmm: beta * self + alpha * (mat1 @ mat2).
LogicalResult convertAddMatmul(GraphImporter &imp, jit::Node *node) {
  Value self = imp.getTensor(node->input(0));
  Value a = imp.getTensor(node->input(1));
  Value b = imp.getTensor(node->input(2));
  if (!self || !a || !b)
    return failure();
  FailureOr<Value> product = scaleBy(imp, node, emitMatmul(imp, a, b), "alpha");
  FailureOr<Value> addend = scaleBy(imp, node, self, "beta");
  if (failed(product) || failed(addend))
    return failure();
  imp.mapValue(node->output(), emitBinary(imp, *product, *addend, "add"));
  return success();
}

LogicalResult convertOuter(GraphImporter &imp, jit::Node *node) {
  Value a = imp.getTensor(node->input(0));
  Value b = imp.getTensor(node->input(1));
  if (!a || !b)
    return failure();
  imp.mapValue(node->output(), emitBinary(imp, emitUnsqueeze(imp, a, 1), b, "mul"));
  return success();
}

LogicalResult convertEmbedding(GraphImporter &imp, jit::Node *node) {
  Value weight = imp.getTensor(node->input(0));
  Value indices = imp.getTensor(node->input(1));
  if (!weight || !indices)
    return failure();
  OptShape shape;
  OptShape sw = staticShape(weight), si = staticShape(indices);
  if (sw && si && sw->size() == 2) {
    shape = *si;
    shape->push_back((*sw)[1]);
  }
  imp.mapValue(node->output(),
               imp.create<kiln::EmbeddingOp>(
                      imp.tensorOf(elementTypeOf(weight), asRef(shape)), weight, indices)
                   .getResult());
  return success();
}

Value emitIndexSelect(GraphImporter &imp, Value x, Value index, int64_t dim) {
  OptShape shape;
  OptShape sx = staticShape(x), si = staticShape(index);
  if (sx && si) {
    if (std::optional<int64_t> d = normalizeDim(dim, sx->size())) {
      shape = Shape(sx->begin(), sx->begin() + *d);
      shape->append(si->begin(), si->end());
      shape->append(sx->begin() + *d + 1, sx->end());
    }
  }
  return imp
      .create<kiln::IndexSelectOp>(imp.tensorOf(elementTypeOf(x), asRef(shape)), x,
                                   index, imp.getBuilder().getI64IntegerAttr(dim))
      .getResult();
}

LogicalResult convertIndexSelect(GraphImporter &imp, jit::Node *node) {
  Value x = imp.getTensor(node->input(0));
  Value index = imp.getTensor(node->input(2));
  FailureOr<int64_t> dim = imp.requireInt(node, 1);
  if (!x || !index || failed(dim))
    return failure();
  imp.mapValue(node->output(), emitIndexSelect(imp, x, index, *dim));
  return success();
}

/// x[idx] with one integer tensor index (other positions `:`).
LogicalResult convertIndex(GraphImporter &imp, jit::Node *node) {
  auto elements = imp.getListElements(node->input(1));
  if (!elements)
    return imp.emitUnsupported(node, "the index list must be built in the graph");
  std::optional<int64_t> position;
  for (auto [i, element] : llvm::enumerate(*elements)) {
    if (imp.isNone(element))
      continue;
    if (position)
      return imp.emitUnsupported(node, "indexing with more than one tensor index");
    position = i;
  }
  if (!position)
    return imp.emitUnsupported(node, "indexing without a tensor index");
  Value x = imp.getTensor(node->input(0));
  Value index = imp.getTensor((*elements)[*position]);
  if (!x || !index)
    return failure();
  if (elementTypeOf(index).isInteger(1))
    return imp.emitUnsupported(node, "indexing with a bool mask");
  imp.mapValue(node->output(), emitIndexSelect(imp, x, index, *position));
  return success();
}

//---- Shapes -------------------------------------------------------------===//

LogicalResult convertReshape(GraphImporter &imp, jit::Node *node) {
  Value x = imp.getTensor(node->input(0));
  if (!x)
    return failure();
  Value result = emitReshape(imp, x, node->input(1));
  if (!result)
    return failure();
  imp.mapValue(node->output(), result);
  return success();
}

Value emitShapeOf(GraphImporter &imp, Value x) {
  std::optional<int64_t> rank = getRank(x);
  return imp
      .create<kiln::ShapeOfOp>(
          imp.tensorOf(imp.i64(), llvm::ArrayRef<int64_t>{rank ? *rank
                                                               : ShapedType::kDynamic}),
          x)
      .getResult();
}

/// view_as / reshape_as / expand_as: to the run-time shape of `other`.
LogicalResult convertShapeAs(GraphImporter &imp, jit::Node *node) {
  Value x = imp.getTensor(node->input(0));
  Value other = imp.getTensor(node->input(1));
  if (!x || !other)
    return failure();
  OptShape shape = staticShape(other);
  Value target = shape ? imp.createIndexList(*shape) : emitShapeOf(imp, other);
  bool expand = node->kind() == c10::aten::expand_as;
  Value result =
      expand ? emitExpand(imp, x, target, shape)
             : imp.create<kiln::ReshapeOp>(imp.tensorOf(elementTypeOf(x), asRef(shape)),
                                           x, target)
                   .getResult();
  imp.mapValue(node->output(), result);
  return success();
}

LogicalResult convertExpand(GraphImporter &imp, jit::Node *node) {
  Value x = imp.getTensor(node->input(0));
  if (!x)
    return failure();
  Value shape = imp.getIntList(node->input(1));
  if (!shape)
    return failure();
  imp.mapValue(node->output(),
               emitExpand(imp, x, shape, imp.getConstantIntList(node->input(1))));
  return success();
}

LogicalResult convertFlatten(GraphImporter &imp, jit::Node *node) {
  Value x = imp.getTensor(node->input(0));
  FailureOr<int64_t> start = imp.requireInt(node, 1);
  FailureOr<int64_t> end = imp.requireInt(node, 2);
  if (!x || failed(start) || failed(end))
    return failure();
  imp.mapValue(node->output(), emitFlatten(imp, x, *start, *end));
  return success();
}

/// unflatten(x, dim, sizes): reshape to shape[:dim] + sizes + shape[dim+1:].
LogicalResult convertUnflatten(GraphImporter &imp, jit::Node *node) {
  Value x = imp.getTensor(node->input(0));
  FailureOr<int64_t> dim = imp.requireInt(node, 1);
  FailureOr<llvm::SmallVector<int64_t>> sizes = imp.requireIntList(node, 2);
  if (!x || failed(dim) || failed(sizes))
    return failure();
  // A static input (declared input shapes) reshapes to a constant shape, so
  // no run-time shape arithmetic is left behind.
  if (OptShape in = staticShape(x)) {
    std::optional<int64_t> d = normalizeDim(*dim, in->size());
    int64_t known = 1, inferred = -1;
    for (auto [i, size] : llvm::enumerate(*sizes)) {
      if (size == -1 && inferred < 0)
        inferred = i;
      else
        known *= size;
    }
    if (d && known > 0 && (*in)[*d] % known == 0 &&
        (inferred >= 0 || known == (*in)[*d]) &&
        llvm::all_of(*sizes, [](int64_t s) { return s >= -1; })) {
      Shape middle(sizes->begin(), sizes->end());
      if (inferred >= 0)
        middle[inferred] = (*in)[*d] / known;
      Shape result(in->begin(), in->begin() + *d);
      result.append(middle.begin(), middle.end());
      result.append(in->begin() + *d + 1, in->end());
      imp.mapValue(node->output(),
                   imp.create<kiln::ReshapeOp>(imp.tensorOf(elementTypeOf(x), asRef(result)),
                                               x, imp.createIndexList(result))
                       .getResult());
      return success();
    }
  }
  Value shape = emitShapeOf(imp, x);
  auto scalar = [&](int64_t v) { return imp.createScalarConstant(imp.i64(), v); };
  constexpr int64_t kEnd = std::numeric_limits<int64_t>::max();
  int64_t afterStart = *dim + 1 == 0 ? kEnd : *dim + 1;
  Value before = emitSlice(imp, shape, 0, scalar(0), scalar(*dim), std::nullopt,
                           std::nullopt, 1);
  Value after = emitSlice(imp, shape, 0, scalar(afterStart), scalar(kEnd),
                          std::nullopt, std::nullopt, 1);
  Value middle = imp.createIndexList(*sizes);
  Value newShape =
      imp.create<kiln::ConcatOp>(imp.tensorOf(imp.i64(), llvm::ArrayRef<int64_t>{
                                                             ShapedType::kDynamic}),
                                 ValueRange{before, middle, after},
                                 imp.getBuilder().getI64IntegerAttr(0))
          .getResult();
  imp.mapValue(node->output(),
               imp.create<kiln::ReshapeOp>(imp.unrankedOf(elementTypeOf(x)), x, newShape)
                   .getResult());
  return success();
}

LogicalResult convertTranspose(GraphImporter &imp, jit::Node *node) {
  Value x = imp.getTensor(node->input(0));
  FailureOr<int64_t> dim0 = imp.requireInt(node, 1);
  FailureOr<int64_t> dim1 = imp.requireInt(node, 2);
  if (!x || failed(dim0) || failed(dim1))
    return failure();
  imp.mapValue(node->output(), emitTranspose(imp, x, *dim0, *dim1));
  return success();
}

LogicalResult convertT(GraphImporter &imp, jit::Node *node) {
  Value x = imp.getTensor(node->input(0));
  if (!x)
    return failure();
  std::optional<int64_t> rank = getRank(x);
  // t() of a 0-d or 1-d tensor is the tensor itself.
  imp.mapValue(node->output(), rank && *rank < 2 ? x : emitTranspose(imp, x, 0, 1));
  return success();
}

LogicalResult convertPermute(GraphImporter &imp, jit::Node *node) {
  Value x = imp.getTensor(node->input(0));
  FailureOr<llvm::SmallVector<int64_t>> perm = imp.requireIntList(node, 1);
  if (!x || failed(perm))
    return failure();
  OptShape shape = staticShape(x);
  if (shape) {
    Shape result;
    for (int64_t p : *perm) {
      std::optional<int64_t> d = normalizeDim(p, shape->size());
      if (!d || perm->size() != shape->size())
        break;
      result.push_back((*shape)[*d]);
    }
    if (result.size() == shape->size())
      shape = result;
    else
      shape.reset();
  }
  imp.mapValue(node->output(),
               imp.create<kiln::PermuteOp>(imp.tensorOf(elementTypeOf(x), asRef(shape)),
                                           x, imp.getBuilder().getDenseI64ArrayAttr(*perm))
                   .getResult());
  return success();
}

LogicalResult convertUnsqueeze(GraphImporter &imp, jit::Node *node) {
  Value x = imp.getTensor(node->input(0));
  FailureOr<int64_t> dim = imp.requireInt(node, 1);
  if (!x || failed(dim))
    return failure();
  imp.mapValue(node->output(), emitUnsqueeze(imp, x, *dim));
  return success();
}

LogicalResult convertSqueeze(GraphImporter &imp, jit::Node *node) {
  Value x = imp.getTensor(node->input(0));
  if (!x)
    return failure();
  llvm::SmallVector<int64_t> dims;
  if (node->inputs().size() > 1) {
    FailureOr<llvm::SmallVector<int64_t>> list = imp.requireIntList(node, 1);
    if (failed(list))
      return failure();
    dims = *list;
  }
  imp.mapValue(node->output(), emitSqueeze(imp, x, dims));
  return success();
}

LogicalResult convertSlice(GraphImporter &imp, jit::Node *node) {
  if (!GraphImporter::isTensorValue(node->input(0)))
    return imp.emitUnsupported(node, "slicing a list");
  Value x = imp.getTensor(node->input(0));
  FailureOr<int64_t> dim = imp.requireInt(node, 1);
  FailureOr<int64_t> step = imp.requireInt(node, 4);
  if (!x || failed(dim) || failed(step))
    return failure();
  if (*step <= 0)
    return imp.emitUnsupported(node, "slice step must be positive");
  auto bound = [&](const jit::Value *value, int64_t absent,
                   std::optional<int64_t> &constant) -> Value {
    if (imp.isNone(value)) {
      constant = absent;
      return imp.createScalarConstant(imp.i64(), absent);
    }
    constant = imp.getConstantInt(value);
    return imp.getIndexScalar(value);
  };
  constexpr int64_t kEnd = std::numeric_limits<int64_t>::max();
  // x[:, :] style no-op slices are dropped.
  auto isFull = [&](const jit::Value *value, int64_t full) {
    return imp.isNone(value) || imp.getConstantInt(value) == full;
  };
  if (isFull(node->input(2), 0) && isFull(node->input(3), kEnd) && *step == 1) {
    imp.mapValue(node->output(), x);
    return success();
  }
  std::optional<int64_t> constStart, constEnd;
  Value start = bound(node->input(2), 0, constStart);
  Value end = bound(node->input(3), kEnd, constEnd);
  if (!start || !end)
    return failure();
  imp.mapValue(node->output(),
               emitSlice(imp, x, *dim, start, end, constStart, constEnd, *step));
  return success();
}

LogicalResult convertNarrow(GraphImporter &imp, jit::Node *node) {
  Value x = imp.getTensor(node->input(0));
  FailureOr<int64_t> dim = imp.requireInt(node, 1);
  Value start = imp.getIndexScalar(node->input(2));
  if (!x || failed(dim) || !start)
    return failure();
  Value length = imp.getIndexScalar(node->input(3));
  if (!length)
    return failure();
  std::optional<int64_t> constStart = imp.getConstantInt(node->input(2));
  std::optional<int64_t> constLength = imp.getConstantInt(node->input(3));
  std::optional<int64_t> constEnd;
  Value end;
  if (constStart && constLength && *constStart >= 0) {
    constEnd = *constStart + *constLength;
    end = imp.createScalarConstant(imp.i64(), *constEnd);
  } else {
    end = emitBinary(imp, start, length, "add");
  }
  imp.mapValue(node->output(),
               emitSlice(imp, x, *dim, start, end, constStart, constEnd, 1));
  return success();
}

LogicalResult convertSelect(GraphImporter &imp, jit::Node *node) {
  if (!GraphImporter::isTensorValue(node->input(0)))
    return imp.emitUnsupported(node, "selecting from a list");
  Value x = imp.getTensor(node->input(0));
  FailureOr<int64_t> dim = imp.requireInt(node, 1);
  Value index = imp.getIndexScalar(node->input(2));
  if (!x || failed(dim) || !index)
    return failure();
  imp.mapValue(node->output(), emitSelect(imp, x, *dim, index));
  return success();
}

/// split / chunk / split_with_sizes / unsafe_* / prim::ConstantChunk.
LogicalResult convertSplit(GraphImporter &imp, jit::Node *node) {
  Value x = imp.getTensor(node->input(0));
  if (!x)
    return failure();
  auto &b = imp.getBuilder();
  std::string kind = node->kind().toQualString();
  int64_t dim;
  IntegerAttr splitSize, chunks;
  DenseI64ArrayAttr sizes;
  int64_t count;
  OptShape shape = staticShape(x);
  if (kind == "prim::ConstantChunk") {
    dim = node->i(c10::attr::dim);
    chunks = b.getI64IntegerAttr(node->i(c10::attr::chunks));
    count = node->outputs().size();
  } else {
    FailureOr<int64_t> d = imp.requireInt(node, 2);
    if (failed(d))
      return failure();
    dim = *d;
    std::optional<int64_t> dimSize;
    if (shape)
      if (std::optional<int64_t> n = normalizeDim(dim, shape->size()))
        dimSize = (*shape)[*n];
    if (kind == "aten::chunk" || kind == "aten::unsafe_chunk") {
      FailureOr<int64_t> n = imp.requireInt(node, 1);
      if (failed(n))
        return failure();
      chunks = b.getI64IntegerAttr(*n);
      std::optional<int64_t> fromShape;
      if (dimSize && *n > 0) {
        int64_t piece = std::max<int64_t>((*dimSize + *n - 1) / *n, 1);
        fromShape = (*dimSize + piece - 1) / piece;
      }
      FailureOr<int64_t> length = getListLength(imp, node, fromShape);
      if (failed(length))
        return failure();
      count = *length;
    } else if (auto list = imp.getConstantIntList(node->input(1));
               list && !GraphImporter::isTensorValue(node->input(1)) &&
               node->input(1)->type()->kind() == c10::TypeKind::ListType) {
      sizes = b.getDenseI64ArrayAttr(*list);
      count = list->size();
    } else {
      FailureOr<int64_t> n = imp.requireInt(node, 1);
      if (failed(n))
        return failure();
      splitSize = b.getI64IntegerAttr(*n);
      std::optional<int64_t> fromShape;
      if (dimSize && *n > 0)
        fromShape = std::max<int64_t>((*dimSize + *n - 1) / *n, 1);
      FailureOr<int64_t> length = getListLength(imp, node, fromShape);
      if (failed(length))
        return failure();
      count = *length;
    }
  }
  // Static piece shapes when the input shape is static.
  llvm::SmallVector<Type> types;
  std::optional<int64_t> d = shape ? normalizeDim(dim, shape->size()) : std::nullopt;
  for (int64_t i = 0; i < count; ++i) {
    OptShape piece;
    if (d) {
      int64_t size = (*shape)[*d];
      int64_t length = -1;
      if (sizes) {
        length = sizes.asArrayRef()[i];
      } else {
        int64_t step = splitSize ? splitSize.getInt()
                                 : std::max<int64_t>((size + chunks.getInt() - 1) /
                                                         chunks.getInt(),
                                                     1);
        length = std::min(step, size - i * step);
      }
      if (length >= 0) {
        piece = shape;
        (*piece)[*d] = length;
      }
    }
    types.push_back(imp.tensorOf(elementTypeOf(x), asRef(piece)));
  }
  auto split = imp.create<kiln::SplitOp>(types, x, b.getI64IntegerAttr(dim), splitSize,
                                         sizes, chunks);
  llvm::SmallVector<Value> results(split.getResults().begin(), split.getResults().end());
  if (kind == "prim::ConstantChunk") {
    for (auto [output, result] : llvm::zip(node->outputs(), results))
      imp.mapValue(output, result);
  } else {
    imp.mapList(node->output(), results);
  }
  return success();
}

LogicalResult convertUnbind(GraphImporter &imp, jit::Node *node) {
  Value x = imp.getTensor(node->input(0));
  FailureOr<int64_t> dim = imp.requireInt(node, 1);
  if (!x || failed(dim))
    return failure();
  std::optional<int64_t> fromShape;
  OptShape pieceShape;
  if (OptShape shape = staticShape(x))
    if (std::optional<int64_t> d = normalizeDim(*dim, shape->size())) {
      fromShape = (*shape)[*d];
      pieceShape = *shape;
      (*pieceShape)[*d] = 1;
    }
  FailureOr<int64_t> count = getListLength(imp, node, fromShape);
  if (failed(count))
    return failure();
  auto &b = imp.getBuilder();
  llvm::SmallVector<Type> types(*count, imp.tensorOf(elementTypeOf(x), asRef(pieceShape)));
  auto split = imp.create<kiln::SplitOp>(types, x, b.getI64IntegerAttr(*dim),
                                         b.getI64IntegerAttr(1), DenseI64ArrayAttr(),
                                         IntegerAttr());
  llvm::SmallVector<Value> results;
  for (Value piece : split.getResults())
    results.push_back(emitSqueeze(imp, piece, {*dim}));
  imp.mapList(node->output(), results);
  return success();
}

LogicalResult convertConcat(GraphImporter &imp, jit::Node *node, bool stack) {
  FailureOr<llvm::SmallVector<Value>> tensors = imp.getTensorList(node->input(0));
  FailureOr<int64_t> dim = imp.requireInt(node, 1);
  if (failed(tensors) || failed(dim))
    return failure();
  if (tensors->empty()) {
    imp.emitError() << "cannot concatenate an empty list";
    return failure();
  }
  Type elementType = elementTypeOf(tensors->front());
  for (Value tensor : *tensors)
    elementType = kiln::promoteElementTypes(elementType, elementTypeOf(tensor));
  OptShape shape = staticShape(tensors->front());
  for (Value tensor : *tensors) {
    OptShape other = staticShape(tensor);
    if (!shape || !other || other->size() != shape->size()) {
      shape.reset();
      break;
    }
  }
  if (shape) {
    int64_t rank = shape->size();
    std::optional<int64_t> d = normalizeDim(*dim, stack ? rank + 1 : rank);
    if (!d) {
      shape.reset();
    } else if (stack) {
      shape->insert(shape->begin() + *d, static_cast<int64_t>(tensors->size()));
    } else {
      int64_t total = 0;
      for (Value tensor : *tensors)
        total += (*staticShape(tensor))[*d];
      (*shape)[*d] = total;
    }
  }
  TensorType type = imp.tensorOf(elementType, asRef(shape));
  IntegerAttr dimAttr = imp.getBuilder().getI64IntegerAttr(*dim);
  Value result = stack ? imp.create<kiln::StackOp>(type, *tensors, dimAttr).getResult()
                       : imp.create<kiln::ConcatOp>(type, *tensors, dimAttr).getResult();
  imp.mapValue(node->output(), result);
  return success();
}

LogicalResult convertRepeatInterleave(GraphImporter &imp, jit::Node *node) {
  if (node->inputs().size() < 3)
    return imp.emitUnsupported(node, "repeat_interleave(repeats) without self");
  Value x = imp.getTensor(node->input(0));
  if (!x)
    return failure();
  std::optional<int64_t> repeats = imp.getConstantInt(node->input(1));
  if (!repeats)
    return imp.emitUnsupported(node, "repeats must be a compile-time constant int");
  int64_t dim = 0;
  if (imp.isNone(node->input(2))) {
    x = emitFlatten(imp, x, 0, -1);
  } else {
    FailureOr<int64_t> d = imp.requireInt(node, 2);
    if (failed(d))
      return failure();
    dim = *d;
  }
  OptShape shape = staticShape(x);
  if (shape) {
    if (std::optional<int64_t> d = normalizeDim(dim, shape->size()))
      (*shape)[*d] *= *repeats;
    else
      shape.reset();
  }
  auto &b = imp.getBuilder();
  imp.mapValue(node->output(),
               imp.create<kiln::RepeatInterleaveOp>(
                      imp.tensorOf(elementTypeOf(x), asRef(shape)), x,
                      b.getI64IntegerAttr(*repeats), b.getI64IntegerAttr(dim))
                   .getResult());
  return success();
}

LogicalResult convertRepeat(GraphImporter &imp, jit::Node *node) {
  Value x = imp.getTensor(node->input(0));
  FailureOr<llvm::SmallVector<int64_t>> repeats = imp.requireIntList(node, 1);
  if (!x || failed(repeats))
    return failure();
  OptShape shape = staticShape(x);
  if (shape && repeats->size() >= shape->size()) {
    Shape result(*repeats);
    size_t offset = repeats->size() - shape->size();
    for (size_t i = 0; i < shape->size(); ++i)
      result[offset + i] *= (*shape)[i];
    shape = result;
  } else {
    shape.reset();
  }
  imp.mapValue(node->output(),
               imp.create<kiln::RepeatOp>(imp.tensorOf(elementTypeOf(x), asRef(shape)), x,
                                          imp.getBuilder().getDenseI64ArrayAttr(*repeats))
                   .getResult());
  return success();
}

LogicalResult convertTriangular(GraphImporter &imp, jit::Node *node, bool upper) {
  Value x = imp.getTensor(node->input(0));
  FailureOr<int64_t> diagonal = imp.requireInt(node, 1);
  if (!x || failed(diagonal))
    return failure();
  auto &b = imp.getBuilder();
  imp.mapValue(node->output(),
               imp.create<kiln::TriangularOp>(x.getType(), x, b.getBoolAttr(upper),
                                              b.getI64IntegerAttr(*diagonal))
                   .getResult());
  return success();
}

//---- Creation -----------------------------------------------------------===//

LogicalResult convertArange(GraphImporter &imp, jit::Node *node) {
  const jit::Value *startArg = imp.getNamedInput(node, "start");
  const jit::Value *endArg = imp.getNamedInput(node, "end");
  const jit::Value *stepArg = imp.getNamedInput(node, "step");
  if (!endArg)
    return imp.emitUnsupported(node);
  // Float if any bound is a float (PyTorch's default dtype inference).
  bool anyFloat = false;
  for (const jit::Value *arg : {startArg, endArg, stepArg}) {
    if (!arg)
      continue;
    if (std::optional<c10::IValue> constant = imp.getConstant(arg)) {
      anyFloat |= constant->isDouble() ||
                  (constant->isTensor() && constant->toTensor().is_floating_point());
    } else {
      Value value = imp.getTensor(arg);
      if (!value)
        return failure();
      anyFloat |= isa<FloatType>(elementTypeOf(value));
    }
  }
  Type operandType = anyFloat ? imp.f32() : imp.i64();
  FailureOr<Type> dtype = getOptionalDtype(imp, node);
  if (failed(dtype))
    return failure();
  Type resultType = *dtype ? *dtype : operandType;
  auto operand = [&](const jit::Value *arg, int64_t absent) -> Value {
    if (!arg)
      return imp.createScalarConstant(operandType, absent);
    Value value = imp.getScalarLike(arg, operandType);
    return value ? imp.castTo(value, operandType) : value;
  };
  Value start = operand(startArg, 0), end = operand(endArg, 0), step = operand(stepArg, 1);
  if (!start || !end || !step)
    return failure();
  OptShape shape;
  std::optional<double> s = startArg ? imp.getConstantDouble(startArg) : 0.0;
  std::optional<double> e = imp.getConstantDouble(endArg);
  std::optional<double> st = stepArg ? imp.getConstantDouble(stepArg) : 1.0;
  if (s && e && st && *st != 0.0)
    shape = Shape{std::max<int64_t>(
        0, static_cast<int64_t>(std::ceil((*e - *s) / *st)))};
  imp.mapValue(node->output(),
               imp.create<kiln::ArangeOp>(
                      imp.tensorOf(resultType, asRef(shape)), start, end, step,
                      imp.getBuilder().getStringAttr(kiln::getDtypeName(resultType)))
                   .getResult());
  return success();
}

/// The fill value and its default element type.
FailureOr<std::pair<double, Type>> getFillValue(GraphImporter &imp, const jit::Node *node,
                                                const jit::Value *fill) {
  std::optional<c10::IValue> constant = imp.getConstant(fill);
  std::optional<double> value = imp.getConstantDouble(fill);
  if (!constant || !value) {
    (void)imp.emitUnsupported(node, "the fill value must be a compile-time constant");
    return failure();
  }
  Type type = constant->isTensor() ? getElementType(imp.getContext(),
                                                    constant->toTensor().scalar_type())
                                   : naturalType(imp, *constant);
  return std::make_pair(*value, type ? type : imp.f32());
}

/// ones / zeros / full / empty and their new_* forms.
LogicalResult convertFull(GraphImporter &imp, jit::Node *node, std::optional<double> fill) {
  std::string kind = node->kind().toQualString();
  bool isNew = llvm::StringRef(kind).starts_with("aten::new_");
  const jit::Value *sizeArg = imp.getNamedInput(node, "size");
  if (!sizeArg || !imp.getNamedInput(node, "dtype"))
    return imp.emitUnsupported(node);
  Type defaultType = imp.f32();
  if (isNew) {
    Value self = imp.getTensor(node->input(0));
    if (!self)
      return failure();
    defaultType = elementTypeOf(self);
  }
  double value = fill.value_or(0.0);
  if (!fill) {
    FailureOr<std::pair<double, Type>> fillValue =
        getFillValue(imp, node, imp.getNamedInput(node, "fill_value"));
    if (failed(fillValue))
      return failure();
    value = fillValue->first;
    if (!isNew)
      defaultType = fillValue->second;
  }
  FailureOr<Type> dtype = getOptionalDtype(imp, node);
  if (failed(dtype))
    return failure();
  Type elementType = *dtype ? *dtype : defaultType;
  Value shape = imp.getIntList(sizeArg);
  if (!shape)
    return failure();
  auto staticSize = imp.getConstantIntList(sizeArg);
  auto &b = imp.getBuilder();
  imp.mapValue(node->output(),
               imp.create<kiln::FullOp>(imp.tensorOf(elementType, asRef(staticSize)), shape,
                                        b.getF64FloatAttr(value),
                                        b.getStringAttr(kiln::getDtypeName(elementType)))
                   .getResult());
  return success();
}

/// ones_like / zeros_like / full_like / empty_like.
LogicalResult convertFullLike(GraphImporter &imp, jit::Node *node,
                              std::optional<double> fill) {
  Value x = imp.getTensor(node->input(0));
  if (!x)
    return failure();
  double value = fill.value_or(0.0);
  if (!fill) {
    FailureOr<std::pair<double, Type>> fillValue =
        getFillValue(imp, node, imp.getNamedInput(node, "fill_value"));
    if (failed(fillValue))
      return failure();
    value = fillValue->first;
  }
  FailureOr<Type> dtype = getOptionalDtype(imp, node);
  if (failed(dtype))
    return failure();
  Type elementType = *dtype ? *dtype : elementTypeOf(x);
  auto &b = imp.getBuilder();
  imp.mapValue(node->output(),
               imp.create<kiln::FullLikeOp>(
                      cast<TensorType>(x.getType()).clone(elementType), x,
                      b.getF64FloatAttr(value),
                      b.getStringAttr(*dtype ? kiln::getDtypeName(*dtype) : ""))
                   .getResult());
  return success();
}

/// scalar_tensor(s) / tensor(number): a 0-d tensor.
LogicalResult convertScalarTensor(GraphImporter &imp, jit::Node *node) {
  const jit::Value *input = node->input(0);
  if (input->type()->kind() == c10::TypeKind::ListType)
    return imp.emitUnsupported(node, "torch.tensor of a list");
  FailureOr<Type> dtype = getOptionalDtype(imp, node);
  if (failed(dtype))
    return failure();
  Value value = imp.getTensor(input);
  if (!value)
    return failure();
  Type elementType = *dtype ? *dtype : elementTypeOf(value);
  if (node->kind() == c10::aten::scalar_tensor && !*dtype)
    elementType = imp.f32();
  imp.mapValue(node->output(), imp.castTo(value, elementType));
  return success();
}

//---- Sizes and value plumbing -------------------------------------------===//

LogicalResult convertSize(GraphImporter &imp, jit::Node *node) {
  Value x = imp.getTensor(node->input(0));
  if (!x)
    return failure();
  OptShape shape = staticShape(x);
  if (node->inputs().size() == 1) {
    if (shape) {
      imp.mapConstant(node->output(), c10::IValue(std::vector<int64_t>(shape->begin(),
                                                                       shape->end())));
      return success();
    }
    imp.mapValue(node->output(), emitShapeOf(imp, x));
    return success();
  }
  FailureOr<int64_t> dim = imp.requireInt(node, 1);
  if (failed(dim))
    return failure();
  if (shape)
    if (std::optional<int64_t> d = normalizeDim(*dim, shape->size())) {
      imp.mapConstant(node->output(), c10::IValue((*shape)[*d]));
      return success();
    }
  imp.mapValue(node->output(),
               imp.create<kiln::DimSizeOp>(imp.tensorOf(imp.i64(), llvm::ArrayRef<int64_t>{}),
                                           x, imp.getBuilder().getI64IntegerAttr(*dim))
                   .getResult());
  return success();
}

LogicalResult convertDim(GraphImporter &imp, jit::Node *node) {
  Value x = imp.getTensor(node->input(0));
  if (!x)
    return failure();
  std::optional<int64_t> rank = getRank(x);
  if (!rank)
    return imp.emitUnsupported(node, "the rank of an input of unknown shape");
  imp.mapConstant(node->output(), c10::IValue(*rank));
  return success();
}

LogicalResult convertNumel(GraphImporter &imp, jit::Node *node) {
  Value x = imp.getTensor(node->input(0));
  if (!x)
    return failure();
  if (OptShape shape = staticShape(x)) {
    int64_t numel = 1;
    for (int64_t d : *shape)
      numel *= d;
    imp.mapConstant(node->output(), c10::IValue(numel));
    return success();
  }
  imp.mapValue(node->output(), emitReduce(imp, emitShapeOf(imp, x), "prod", {}, false));
  return success();
}

LogicalResult convertDtype(GraphImporter &imp, jit::Node *node) {
  Value x = imp.getTensor(node->input(0));
  if (!x)
    return failure();
  c10::optional<c10::ScalarType> scalarType = getScalarType(elementTypeOf(x));
  if (!scalarType)
    return imp.emitUnsupported(node);
  imp.mapConstant(node->output(), c10::IValue(static_cast<int64_t>(*scalarType)));
  return success();
}

LogicalResult convertDevice(GraphImporter &imp, jit::Node *node) {
  imp.mapConstant(node->output(), c10::IValue(c10::Device(c10::kCPU)));
  return success();
}

/// prim::ListUnpack / prim::TupleUnpack.
LogicalResult convertUnpack(GraphImporter &imp, jit::Node *node) {
  const jit::Value *input = imp.resolve(node->input(0));
  const jit::Node *producer = input->node();
  size_t count = node->outputs().size();
  if (producer->kind() == c10::prim::ListConstruct ||
      producer->kind() == c10::prim::TupleConstruct) {
    if (producer->inputs().size() != count) {
      imp.emitError() << "unpacking " << producer->inputs().size() << " values into "
                      << count;
      return failure();
    }
    for (size_t i = 0; i < count; ++i)
      imp.mapAlias(node->output(i), producer->input(i));
    return success();
  }
  if (std::optional<c10::IValue> constant = imp.getConstant(input)) {
    std::vector<c10::IValue> items;
    if (constant->isList())
      items = constant->toListRef().vec();
    else if (constant->isTuple())
      items = constant->toTupleRef().elements().vec();
    if (items.size() != count) {
      imp.emitError() << "unpacking a constant of " << items.size() << " values into "
                      << count;
      return failure();
    }
    for (size_t i = 0; i < count; ++i)
      imp.mapConstant(node->output(i), items[i]);
    return success();
  }
  FailureOr<llvm::SmallVector<Value>> list = failure();
  if (input->type()->kind() == c10::TypeKind::ListType &&
      input->type()->containedType(0)->kind() == c10::TypeKind::IntType) {
    // A run-time int list (x.size()): pick its elements.
    Value shape = imp.getTensor(input);
    if (!shape)
      return failure();
    for (size_t i = 0; i < count; ++i)
      imp.mapValue(node->output(i),
                   emitSelect(imp, shape, 0, imp.createScalarConstant(imp.i64(), int64_t(i))));
    return success();
  }
  list = imp.getTensorList(input);
  if (failed(list))
    return failure();
  if (list->size() != count) {
    imp.emitError() << "unpacking " << list->size() << " tensors into " << count;
    return failure();
  }
  for (size_t i = 0; i < count; ++i)
    imp.mapValue(node->output(i), (*list)[i]);
  return success();
}

LogicalResult convertTupleIndex(GraphImporter &imp, jit::Node *node) {
  const jit::Value *input = imp.resolve(node->input(0));
  std::optional<int64_t> index = imp.getConstantInt(node->input(1));
  if (input->node()->kind() != c10::prim::TupleConstruct || !index ||
      *index < 0 || *index >= static_cast<int64_t>(input->node()->inputs().size()))
    return imp.emitUnsupported(node, "only constant indices into tuples built in the graph");
  imp.mapAlias(node->output(), input->node()->input(*index));
  return success();
}

/// list[index] (aten::__getitem__ in scripted code).
LogicalResult convertGetItem(GraphImporter &imp, jit::Node *node) {
  const jit::Value *list = node->input(0);
  if (list->type()->kind() != c10::TypeKind::ListType)
    return imp.emitUnsupported(node);
  std::optional<int64_t> index = imp.getConstantInt(node->input(1));
  if (auto elements = imp.getListElements(list)) {
    int64_t size = elements->size();
    if (!index || *index < -size || *index >= size)
      return imp.emitUnsupported(node, "a non-constant or out of range list index");
    imp.mapAlias(node->output(), (*elements)[*index < 0 ? *index + size : *index]);
    return success();
  }
  if (auto constant = imp.getConstantIntList(list)) {
    int64_t size = constant->size();
    if (!index || *index < -size || *index >= size)
      return imp.emitUnsupported(node, "a non-constant or out of range list index");
    imp.mapConstant(node->output(), c10::IValue((*constant)[*index < 0 ? *index + size
                                                                       : *index]));
    return success();
  }
  if (list->type()->containedType(0)->kind() == c10::TypeKind::IntType) {
    Value shape = imp.getTensor(list);
    Value position = imp.getIndexScalar(node->input(1));
    if (!shape || !position)
      return failure();
    imp.mapValue(node->output(), emitSelect(imp, shape, 0, position));
    return success();
  }
  FailureOr<llvm::SmallVector<Value>> tensors = imp.getTensorList(list);
  if (failed(tensors))
    return failure();
  int64_t size = tensors->size();
  if (!index || *index < -size || *index >= size)
    return imp.emitUnsupported(node, "a non-constant or out of range list index");
  imp.mapValue(node->output(), (*tensors)[*index < 0 ? *index + size : *index]);
  return success();
}

LogicalResult convertLen(GraphImporter &imp, jit::Node *node) {
  const jit::Value *list = node->input(0);
  if (auto elements = imp.getListElements(list)) {
    imp.mapConstant(node->output(), c10::IValue(static_cast<int64_t>(elements->size())));
    return success();
  }
  if (auto constant = imp.getConstantIntList(list)) {
    imp.mapConstant(node->output(), c10::IValue(static_cast<int64_t>(constant->size())));
    return success();
  }
  if (GraphImporter::isTensorValue(list)) {
    // len(tensor) = size(0)
    Value x = imp.getTensor(list);
    if (!x)
      return failure();
    imp.mapValue(node->output(),
                 imp.create<kiln::DimSizeOp>(imp.tensorOf(imp.i64(), llvm::ArrayRef<int64_t>{}),
                                             x, imp.getBuilder().getI64IntegerAttr(0))
                     .getResult());
    return success();
  }
  return imp.emitUnsupported(node, "the length of a run-time list");
}

LogicalResult convertGetAttr(GraphImporter &imp, jit::Node *node) {
  return imp.importGetAttr(node);
}

LogicalResult convertIndexCopyInPlace(GraphImporter &imp, jit::Node *node) {
  return imp.importStateWrite(node);
}

/// kiln::cached_attention(q, k_cache, v_cache, start_pos, scale): the custom
/// op of docs/llm.md (python/kiln/ops.py).
LogicalResult convertCachedAttention(GraphImporter &imp, jit::Node *node) {
  Value q = imp.getTensor(node->input(0));
  Value k = imp.getTensor(node->input(1));
  Value v = imp.getTensor(node->input(2));
  Value start = imp.getTensor(node->input(3));
  if (!q || !k || !v || !start)
    return failure();
  FailureOr<double> scale = imp.requireDouble(node, 4);
  if (failed(scale))
    return failure();
  if (elementTypeOf(start) != imp.i64())
    start = imp.castTo(start, imp.i64());
  imp.mapValue(node->output(),
               imp.create<kiln::CachedAttentionOp>(q.getType(), q, k, v, start,
                                                   imp.getBuilder().getF64FloatAttr(*scale))
                   .getResult());
  return success();
}

} // namespace

//===----------------------------------------------------------------------===//
// The table
//===----------------------------------------------------------------------===//

const std::map<std::string, NodeConversion> &getNodeConversions() {
#define UNARY(NAME, FN)                                                        \
  {NAME, [](GraphImporter &imp, jit::Node *node) { return convertUnary(imp, node, FN); }}
#define BINARY(NAME, FN)                                                       \
  {NAME, [](GraphImporter &imp, jit::Node *node) { return convertBinary(imp, node, FN); }}
#define COMPARE(NAME, FN)                                                      \
  {NAME, [](GraphImporter &imp, jit::Node *node) { return convertCompare(imp, node, FN); }}
#define BITWISE(NAME, FN)                                                      \
  {NAME, [](GraphImporter &imp, jit::Node *node) { return convertBitwise(imp, node, FN); }}
#define REDUCE(NAME, FN)                                                       \
  {NAME, [](GraphImporter &imp, jit::Node *node) { return convertReduce(imp, node, FN); }}
#define WITH(NAME, FUNC, ...)                                                  \
  {NAME, [](GraphImporter &imp, jit::Node *node) { return FUNC(imp, node, __VA_ARGS__); }}
  static const std::map<std::string, NodeConversion> table = {
      // Value plumbing and identities.
      {"prim::ListConstruct", convertNothing},
      {"prim::TupleConstruct", convertNothing},
      {"prim::ListUnpack", convertUnpack},
      {"prim::TupleUnpack", convertUnpack},
      {"prim::TupleIndex", convertTupleIndex},
      {"aten::__getitem__", convertGetItem},
      {"aten::len", convertLen},
      {"prim::NumToTensor", convertAlias},
      {"aten::ScalarImplicit", convertAlias},
      {"aten::item", convertAlias},
      {"aten::contiguous", convertAlias},
      {"aten::detach", convertAlias},
      {"aten::alias", convertAlias},
      {"aten::lift_fresh", convertAlias},
      {"aten::dropout", convertAlias},
      {"aten::feature_dropout", convertAlias},
      {"aten::alpha_dropout", convertAlias},
      {"aten::clone", convertClone},
      {"aten::Int", [](GraphImporter &imp, jit::Node *node) {
         return convertNumberCast(imp, node, imp.i64());
       }},
      {"aten::Float", [](GraphImporter &imp, jit::Node *node) {
         return convertNumberCast(imp, node, imp.f32());
       }},
      {"aten::Bool", [](GraphImporter &imp, jit::Node *node) {
         return convertNumberCast(imp, node, imp.i1());
       }},
      {"aten::size", convertSize},
      {"aten::dim", convertDim},
      {"aten::numel", convertNumel},
      {"prim::dtype", convertDtype},
      {"prim::device", convertDevice},
      {"prim::GetAttr", convertGetAttr},
      {"aten::index_copy_", convertIndexCopyInPlace},
      {"kiln::cached_attention", convertCachedAttention},
      // Elementwise.
      UNARY("aten::abs", "abs"),
      UNARY("aten::exp", "exp"),
      UNARY("aten::log", "log"),
      UNARY("aten::sqrt", "sqrt"),
      UNARY("aten::rsqrt", "rsqrt"),
      UNARY("aten::reciprocal", "reciprocal"),
      UNARY("aten::sin", "sin"),
      UNARY("aten::cos", "cos"),
      UNARY("aten::tanh", "tanh"),
      UNARY("aten::sigmoid", "sigmoid"),
      UNARY("aten::relu", "relu"),
      UNARY("aten::silu", "silu"),
      UNARY("aten::erf", "erf"),
      UNARY("aten::floor", "floor"),
      UNARY("aten::ceil", "ceil"),
      UNARY("aten::round", "round"),
      UNARY("aten::logical_not", "logical_not"),
      {"aten::neg", convertNeg},
      {"aten::bitwise_not", convertNot},
      {"aten::__not__", convertNot},
      {"aten::gelu", convertGelu},
      {"aten::square", convertSquare},
      BINARY("aten::add", "add"),
      BINARY("aten::sub", "sub"),
      BINARY("aten::mul", "mul"),
      BINARY("aten::div", "div"),
      BINARY("aten::true_divide", "div"),
      BINARY("aten::floor_divide", "floor_div"),
      BINARY("aten::floordiv", "floor_div"),
      BINARY("aten::remainder", "remainder"),
      BINARY("aten::pow", "pow"),
      BINARY("aten::maximum", "maximum"),
      BINARY("aten::minimum", "minimum"),
      BINARY("prim::max", "maximum"),
      BINARY("prim::min", "minimum"),
      {"aten::rsub", convertRsub},
      COMPARE("aten::eq", "eq"),
      COMPARE("aten::ne", "ne"),
      COMPARE("aten::lt", "lt"),
      COMPARE("aten::le", "le"),
      COMPARE("aten::gt", "gt"),
      COMPARE("aten::ge", "ge"),
      COMPARE("aten::logical_and", "logical_and"),
      COMPARE("aten::logical_or", "logical_or"),
      COMPARE("aten::logical_xor", "logical_xor"),
      BITWISE("aten::__and__", "logical_and"),
      BITWISE("aten::bitwise_and", "logical_and"),
      BITWISE("aten::__or__", "logical_or"),
      BITWISE("aten::bitwise_or", "logical_or"),
      BITWISE("aten::__xor__", "logical_xor"),
      BITWISE("aten::bitwise_xor", "logical_xor"),
      {"aten::where", convertWhere},
      {"aten::masked_fill", convertMaskedFill},
      {"aten::clamp", convertClamp},
      {"aten::clip", convertClamp},
      {"aten::clamp_min", convertClamp},
      {"aten::clamp_max", convertClamp},
      {"aten::hardtanh", convertClamp},
      {"aten::to", convertTo},
      {"aten::type_as", convertTypeAs},
      // Reductions and normalizations.
      REDUCE("aten::mean", "mean"),
      REDUCE("aten::sum", "sum"),
      REDUCE("aten::prod", "prod"),
      REDUCE("aten::amax", "max"),
      REDUCE("aten::amin", "min"),
      WITH("aten::max", convertMaxMin, "max"),
      WITH("aten::min", convertMaxMin, "min"),
      {"aten::argmax", convertArgmax},
      WITH("aten::softmax", convertSoftmax, false),
      WITH("aten::_softmax", convertSoftmax, false),
      WITH("aten::log_softmax", convertSoftmax, true),
      WITH("aten::_log_softmax", convertSoftmax, true),
      {"aten::layer_norm", convertLayerNorm},
      // Linear algebra and gathers.
      {"aten::linear", convertLinear},
      {"aten::matmul", convertMatmul},
      {"aten::mm", convertMatmul},
      {"aten::bmm", convertMatmul},
      {"aten::mv", convertMatmul},
      {"aten::addmm", convertAddMatmul},
      {"aten::baddbmm", convertAddMatmul},
      {"aten::outer", convertOuter},
      {"aten::ger", convertOuter},
      {"aten::embedding", convertEmbedding},
      {"aten::index_select", convertIndexSelect},
      {"aten::index", convertIndex},
      // Shapes.
      {"aten::view", convertReshape},
      {"aten::reshape", convertReshape},
      {"aten::_reshape_alias", convertReshape},
      {"aten::view_as", convertShapeAs},
      {"aten::reshape_as", convertShapeAs},
      {"aten::expand_as", convertShapeAs},
      {"aten::expand", convertExpand},
      {"aten::flatten", convertFlatten},
      {"aten::unflatten", convertUnflatten},
      {"aten::transpose", convertTranspose},
      {"aten::swapaxes", convertTranspose},
      {"aten::t", convertT},
      {"aten::permute", convertPermute},
      {"aten::unsqueeze", convertUnsqueeze},
      {"aten::squeeze", convertSqueeze},
      {"aten::slice", convertSlice},
      {"aten::narrow", convertNarrow},
      {"aten::select", convertSelect},
      {"aten::split", convertSplit},
      {"aten::unsafe_split", convertSplit},
      {"aten::split_with_sizes", convertSplit},
      {"aten::unsafe_split_with_sizes", convertSplit},
      {"aten::chunk", convertSplit},
      {"aten::unsafe_chunk", convertSplit},
      {"prim::ConstantChunk", convertSplit},
      {"aten::unbind", convertUnbind},
      WITH("aten::cat", convertConcat, false),
      WITH("aten::concat", convertConcat, false),
      WITH("aten::stack", convertConcat, true),
      {"aten::repeat_interleave", convertRepeatInterleave},
      {"aten::repeat", convertRepeat},
      WITH("aten::triu", convertTriangular, true),
      WITH("aten::tril", convertTriangular, false),
      // Creation.
      {"aten::arange", convertArange},
      WITH("aten::ones", convertFull, 1.0),
      WITH("aten::zeros", convertFull, 0.0),
      WITH("aten::empty", convertFull, 0.0),
      WITH("aten::full", convertFull, std::nullopt),
      WITH("aten::new_ones", convertFull, 1.0),
      WITH("aten::new_zeros", convertFull, 0.0),
      WITH("aten::new_empty", convertFull, 0.0),
      WITH("aten::new_full", convertFull, std::nullopt),
      WITH("aten::ones_like", convertFullLike, 1.0),
      WITH("aten::zeros_like", convertFullLike, 0.0),
      WITH("aten::empty_like", convertFullLike, 0.0),
      WITH("aten::full_like", convertFullLike, std::nullopt),
      {"aten::scalar_tensor", convertScalarTensor},
      {"aten::tensor", convertScalarTensor},
  };
#undef UNARY
#undef BINARY
#undef COMPARE
#undef BITWISE
#undef REDUCE
#undef WITH
  return table;
}

} // namespace kiln::frontend
