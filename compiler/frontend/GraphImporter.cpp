//===- GraphImporter.cpp - one TorchScript graph -> one func.func ---------===//

#include "compiler/frontend/GraphImporter.h"

#include "kiln/Dialect/KilnOps.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/TypeUtilities.h"
#include "llvm/ADT/StringExtras.h"

#include <ATen/Functions.h>
#include <torch/csrc/jit/ir/constants.h>

#include <sstream>

using namespace mlir;
namespace jit = torch::jit;

namespace kiln::frontend {

GraphImporter::GraphImporter(ModuleOp module, TensorConstantImporter &constants,
                             llvm::StringRef archivePath)
    : module(module), constants(constants), archivePath(archivePath.str()),
      builder(module.getContext()),
      currentLoc(FileLineColLoc::get(module.getContext(), archivePath, 0, 0)) {}

//===----------------------------------------------------------------------===//
// Locations and diagnostics
//===----------------------------------------------------------------------===//

Location GraphImporter::getLocation(const jit::Node *node) {
  MLIRContext *context = getContext();
  auto toLocation = [&](const jit::SourceRange &range) -> std::optional<Location> {
    auto fileLineCol = range.file_line_col();
    if (!fileLineCol)
      return std::nullopt;
    const std::string &file = std::get<0>(*fileLineCol);
    if (file.empty())
      return std::nullopt;
    return FileLineColLoc::get(context, file, std::get<1>(*fileLineCol),
                               std::get<2>(*fileLineCol));
  };
  try {
    const jit::SourceRange &range = node->sourceRange();
    // Archives keep the serialized code's ranges plus a map back to the
    // Python source that generated them; prefer the Python line.
    if (c10::optional<jit::SourceRange> generated =
            range.findSourceRangeThatGenerated())
      if (auto loc = toLocation(*generated))
        return *loc;
    if (auto loc = toLocation(range))
      return *loc;
  } catch (const std::exception &) {
    // Missing or unreadable debug info: fall back to the archive.
  }
  return FileLineColLoc::get(context, archivePath, 0, 0);
}

InFlightDiagnostic GraphImporter::emitError() {
  return mlir::emitError(currentLoc);
}

LogicalResult GraphImporter::emitUnsupported(const jit::Node *node,
                                             llvm::StringRef detail) {
  std::string op = node->kind().toQualString();
  std::string key;
  llvm::raw_string_ostream keyStream(key);
  keyStream << op << " at " << currentLoc << " " << detail;
  if (!reportedUnsupported.insert(keyStream.str()).second)
    return failure();
  InFlightDiagnostic diag = mlir::emitError(currentLoc)
                            << "unsupported operator " << op;
  if (const c10::FunctionSchema *schema = node->maybeSchema()) {
    std::ostringstream schemaText;
    schemaText << *schema;
    diag << " (schema: " << schemaText.str() << ")";
  }
  if (!detail.empty())
    diag << ": " << detail;
  return failure();
}

//===----------------------------------------------------------------------===//
// TorchScript values
//===----------------------------------------------------------------------===//

TensorType GraphImporter::tensorOf(Type elementType,
                                   std::optional<llvm::ArrayRef<int64_t>> shape) {
  if (!shape)
    return UnrankedTensorType::get(elementType);
  return RankedTensorType::get(*shape, elementType);
}

const jit::Value *GraphImporter::resolve(const jit::Value *value) {
  for (auto it = aliases.find(value); it != aliases.end(); it = aliases.find(value))
    value = it->second;
  return value;
}

std::optional<c10::IValue> GraphImporter::getConstant(const jit::Value *value) {
  value = resolve(value);
  auto it = constantOverrides.find(value);
  if (it != constantOverrides.end())
    return it->second;
  if (value->node()->kind() != c10::prim::Constant)
    return std::nullopt;
  c10::optional<c10::IValue> constant = jit::toIValue(value);
  if (!constant)
    return std::nullopt;
  return *constant;
}

bool GraphImporter::isNone(const jit::Value *value) {
  if (value->type()->kind() == c10::TypeKind::NoneType)
    return true;
  std::optional<c10::IValue> constant = getConstant(value);
  return constant && constant->isNone();
}

std::optional<int64_t> GraphImporter::getConstantInt(const jit::Value *value) {
  std::optional<c10::IValue> constant = getConstant(value);
  if (!constant)
    return std::nullopt;
  if (constant->isInt())
    return constant->toInt();
  if (constant->isBool())
    return constant->toBool() ? 1 : 0;
  if (constant->isTensor()) {
    const at::Tensor &tensor = constant->toTensor();
    if (tensor.numel() == 1 && tensor.dim() == 0 &&
        (c10::isIntegralType(tensor.scalar_type(), /*includeBool=*/true)))
      return tensor.item<int64_t>();
  }
  return std::nullopt;
}

std::optional<double> GraphImporter::getConstantDouble(const jit::Value *value) {
  std::optional<c10::IValue> constant = getConstant(value);
  if (!constant)
    return std::nullopt;
  if (constant->isDouble())
    return constant->toDouble();
  if (constant->isInt())
    return static_cast<double>(constant->toInt());
  if (constant->isBool())
    return constant->toBool() ? 1.0 : 0.0;
  if (constant->isTensor()) {
    const at::Tensor &tensor = constant->toTensor();
    if (tensor.numel() == 1 && tensor.dim() == 0)
      return tensor.item<double>();
  }
  return std::nullopt;
}

std::optional<bool> GraphImporter::getConstantBool(const jit::Value *value) {
  std::optional<c10::IValue> constant = getConstant(value);
  if (constant && constant->isBool())
    return constant->toBool();
  if (constant && constant->isInt())
    return constant->toInt() != 0;
  return std::nullopt;
}

std::optional<std::string> GraphImporter::getConstantString(const jit::Value *value) {
  std::optional<c10::IValue> constant = getConstant(value);
  if (constant && constant->isString())
    return constant->toStringRef();
  return std::nullopt;
}

std::optional<llvm::SmallVector<int64_t>>
GraphImporter::getConstantIntList(const jit::Value *value) {
  if (std::optional<c10::IValue> constant = getConstant(value)) {
    if (constant->isIntList()) {
      std::vector<int64_t> list = constant->toIntVector();
      return llvm::SmallVector<int64_t>(list.begin(), list.end());
    }
    if (constant->isInt()) // `int[1]` arguments accept a bare int.
      return llvm::SmallVector<int64_t>{constant->toInt()};
    return std::nullopt;
  }
  if (auto elements = getListElements(value)) {
    llvm::SmallVector<int64_t> list;
    for (const jit::Value *element : *elements) {
      std::optional<int64_t> item = getConstantInt(element);
      if (!item || GraphImporter::isTensorValue(element))
        return std::nullopt;
      list.push_back(*item);
    }
    return list;
  }
  return std::nullopt;
}

static std::string describeOperand(const jit::Node *node, size_t index) {
  std::string name;
  if (const c10::FunctionSchema *schema = node->maybeSchema())
    if (index < schema->arguments().size())
      name = schema->arguments()[index].name();
  if (name.empty())
    name = "#" + std::to_string(index);
  return "operand '" + name + "' of " + node->kind().toQualString();
}

FailureOr<int64_t> GraphImporter::requireInt(const jit::Node *node, size_t index) {
  if (std::optional<int64_t> value = getConstantInt(node->input(index)))
    return *value;
  emitError() << describeOperand(node, index)
              << " must be a compile-time constant int";
  return failure();
}

FailureOr<double> GraphImporter::requireDouble(const jit::Node *node, size_t index) {
  if (std::optional<double> value = getConstantDouble(node->input(index)))
    return *value;
  emitError() << describeOperand(node, index)
              << " must be a compile-time constant number";
  return failure();
}

FailureOr<bool> GraphImporter::requireBool(const jit::Node *node, size_t index) {
  if (std::optional<bool> value = getConstantBool(node->input(index)))
    return *value;
  emitError() << describeOperand(node, index)
              << " must be a compile-time constant bool";
  return failure();
}

FailureOr<llvm::SmallVector<int64_t>>
GraphImporter::requireIntList(const jit::Node *node, size_t index) {
  if (auto value = getConstantIntList(node->input(index)))
    return *value;
  emitError() << describeOperand(node, index)
              << " must be a compile-time constant int list";
  return failure();
}

const jit::Value *GraphImporter::getNamedInput(const jit::Node *node,
                                               llvm::StringRef name) {
  const c10::FunctionSchema *schema = node->maybeSchema();
  if (!schema)
    return nullptr;
  c10::optional<int> index = schema->argumentIndexWithName(name.str());
  if (!index || static_cast<size_t>(*index) >= node->inputs().size())
    return nullptr;
  return node->input(*index);
}

bool GraphImporter::isTensorValue(const jit::Value *value) {
  return value->type()->kind() == c10::TypeKind::TensorType;
}

Value GraphImporter::getTensor(const jit::Value *value) {
  value = resolve(value);
  // A value aliasing a program state reads its latest contents: later uses of
  // the attribute (or of an index_copy_ result) see every write before them.
  if (auto state = stateOf.find(value); state != stateOf.end())
    return currentState[state->second];
  auto it = values.find(value);
  if (it != values.end())
    return it->second;
  if (std::optional<c10::IValue> constant = getConstant(value)) {
    if (constant->isTensor()) {
      std::string error;
      std::string name = value->hasDebugName() ? value->debugName() : "constant";
      FailureOr<ElementsAttr> attr =
          constants.import(constant->toTensor(), name, error);
      if (failed(attr)) {
        emitError() << error;
        return Value();
      }
      // Weights keep their TorchScript name in the location.
      Location loc = value->hasDebugName()
                         ? Location(NameLoc::get(builder.getStringAttr(name), currentLoc))
                         : currentLoc;
      Value result = builder.create<kiln::ConstantOp>(loc, attr->getShapedType(), *attr).getResult();
      values[value] = result;
      return result;
    }
    if (constant->isInt())
      return getCachedScalar(value, i64(), constant->toInt());
    if (constant->isDouble())
      return getCachedScalar(value, f32(), constant->toDouble());
    if (constant->isBool())
      return getCachedScalar(value, i1(), constant->toBool());
    emitError() << "expected a tensor or number, got a constant of type "
                << constant->tagKind();
    return Value();
  }
  if (lists.count(value) || getListElements(value)) {
    emitError() << "a list is used where a tensor is expected";
    return Value();
  }
  emitError() << "internal error: value %" << value->debugName()
              << " has not been imported";
  return Value();
}

static kiln::TypeCategory getCategory(const c10::IValue &constant) {
  if (constant.isBool())
    return kiln::TypeCategory::Bool;
  if (constant.isInt())
    return kiln::TypeCategory::Integer;
  return kiln::TypeCategory::Float;
}

Value GraphImporter::getScalarLike(const jit::Value *value, Type tensorType) {
  std::optional<c10::IValue> constant = getConstant(value);
  if (!constant || !(constant->isInt() || constant->isDouble() || constant->isBool()))
    return getTensor(value);
  // A wrapped number of a higher category than the tensor takes its category's
  // default type; of a lower category it keeps its own (natural) type, which
  // the tensor's category outranks at run time either way. That keeps the
  // result right when the tensor's type is a guess (an argument of a bare
  // trace may really be i64 where f32 was assumed).
  kiln::TypeCategory category = getCategory(*constant);
  kiln::TypeCategory tensorCategory = kiln::getTypeCategory(tensorType);
  Type type = tensorType;
  if (category != tensorCategory)
    type = category == kiln::TypeCategory::Float     ? f32()
           : category == kiln::TypeCategory::Integer ? i64()
                                                     : i1();
  c10::Scalar scalar = constant->isInt()    ? c10::Scalar(constant->toInt())
                       : constant->isBool() ? c10::Scalar(constant->toBool())
                                            : c10::Scalar(constant->toDouble());
  return getCachedScalar(value, type, scalar);
}

Value GraphImporter::getCachedScalar(const jit::Value *value, Type type,
                                     const c10::Scalar &scalar) {
  // The graph is one straight-line block, so the first materialisation
  // dominates every later use of the same constant.
  auto key = std::make_pair(resolve(value), type);
  auto it = scalarConstants.find(key);
  if (it != scalarConstants.end())
    return it->second;
  Value result = createScalarConstant(type, scalar);
  scalarConstants[key] = result;
  return result;
}

Value GraphImporter::getIndexScalar(const jit::Value *value) {
  if (!isTensorValue(value))
    if (std::optional<int64_t> constant = getConstantInt(value))
      return getCachedScalar(value, i64(), *constant);
  Value tensor = getTensor(value);
  if (!tensor)
    return tensor;
  return castTo(tensor, i64());
}

Value GraphImporter::getIntList(const jit::Value *value) {
  if (auto list = getConstantIntList(value))
    return createIndexList(*list);
  if (auto elements = getListElements(value)) {
    llvm::SmallVector<Value> parts;
    for (const jit::Value *element : *elements) {
      Value part = getIndexScalar(element);
      if (!part)
        return part;
      parts.push_back(part);
    }
    int64_t size = parts.size();
    return create<kiln::StackOp>(tensorOf(i64(), llvm::ArrayRef<int64_t>{size}),
                                 parts, builder.getI64IntegerAttr(0))
        .getResult();
  }
  Value tensor = getTensor(value);
  if (tensor)
    tensor = castTo(tensor, i64());
  return tensor;
}

std::optional<llvm::SmallVector<const jit::Value *>>
GraphImporter::getListElements(const jit::Value *value) {
  value = resolve(value);
  if (value->node()->kind() != c10::prim::ListConstruct)
    return std::nullopt;
  return llvm::SmallVector<const jit::Value *>(value->node()->inputs().begin(),
                                               value->node()->inputs().end());
}

FailureOr<llvm::SmallVector<Value>>
GraphImporter::getTensorList(const jit::Value *value) {
  if (auto elements = getListElements(value)) {
    llvm::SmallVector<Value> result;
    for (const jit::Value *element : *elements) {
      Value tensor = getTensor(element);
      if (!tensor)
        return failure();
      result.push_back(tensor);
    }
    return result;
  }
  value = resolve(value);
  auto it = lists.find(value);
  if (it != lists.end())
    return it->second;
  emitError() << "expected a list of tensors built in the graph (prim::ListConstruct "
                 "or a split), got %"
              << value->debugName();
  return failure();
}

void GraphImporter::mapValue(const jit::Value *value, Value mlirValue) {
  values[value] = mlirValue;
}

void GraphImporter::mapList(const jit::Value *value, llvm::ArrayRef<Value> list) {
  lists[value] = llvm::SmallVector<Value>(list.begin(), list.end());
}

void GraphImporter::mapAlias(const jit::Value *value, const jit::Value *target) {
  aliases[value] = target;
}

void GraphImporter::mapConstant(const jit::Value *value, c10::IValue constant) {
  constantOverrides[value] = std::move(constant);
}

//===----------------------------------------------------------------------===//
// Building
//===----------------------------------------------------------------------===//

Value GraphImporter::createScalarConstant(Type elementType, const c10::Scalar &value) {
  auto type = RankedTensorType::get({}, elementType);
  Attribute element;
  if (isa<FloatType>(elementType)) {
    element = builder.getFloatAttr(elementType, value.toDouble());
  } else if (elementType.isInteger(1)) {
    bool bit = value.isFloatingPoint() ? value.toDouble() != 0.0
                                       : value.isBoolean() ? value.toBool()
                                                           : value.toLong() != 0;
    element = builder.getIntegerAttr(elementType, bit ? 1 : 0);
  } else {
    int64_t integer = value.isFloatingPoint()
                          ? static_cast<int64_t>(value.toDouble())
                          : value.isBoolean() ? value.toBool() : value.toLong();
    element = builder.getIntegerAttr(elementType, integer);
  }
  auto attr = DenseElementsAttr::get(type, element);
  return create<kiln::ConstantOp>(attr.getType(), cast<ElementsAttr>(attr)).getResult();
}

Value GraphImporter::createIndexList(llvm::ArrayRef<int64_t> list) {
  auto type = RankedTensorType::get({static_cast<int64_t>(list.size())}, i64());
  auto attr = DenseElementsAttr::get(type, list);
  return create<kiln::ConstantOp>(attr.getType(), cast<ElementsAttr>(attr)).getResult();
}

void GraphImporter::noteGuessedElementTypes(Operation *op) {
  if (kiln::hasFixedResultElementType(op))
    return;
  if (llvm::any_of(op->getOperands(),
                   [&](Value operand) { return guessedElementTypes.contains(operand); }))
    for (Value result : op->getResults())
      guessedElementTypes.insert(result);
}

Value GraphImporter::castTo(Value value, Type elementType, bool explicitConversion) {
  auto type = cast<TensorType>(value.getType());
  // A function argument's element type is a guess (archives carry no input
  // dtypes), so an explicit conversion of one is kept.
  if (type.getElementType() == elementType &&
      !(explicitConversion && isa<BlockArgument>(value) &&
        guessedElementTypes.contains(value)))
    return value;
  // Conversions of 0-d constants are folded.
  if (auto constant = value.getDefiningOp<kiln::ConstantOp>()) {
    auto dense = dyn_cast<DenseElementsAttr>(constant.getValue());
    if (dense && dense.getType().getRank() == 0) {
      Attribute element = dense.getSplatValue<Attribute>();
      if (auto floatAttr = dyn_cast<FloatAttr>(element))
        return createScalarConstant(elementType, floatAttr.getValueAsDouble());
      if (auto intAttr = dyn_cast<IntegerAttr>(element)) {
        if (intAttr.getType().isInteger(1))
          return createScalarConstant(elementType, intAttr.getValue().getBoolValue());
        return createScalarConstant(elementType, intAttr.getValue().getSExtValue());
      }
    }
  }
  TensorType resultType = type.clone(elementType);
  return create<kiln::CastOp>(resultType, value,
                              builder.getStringAttr(kiln::getDtypeName(elementType)))
      .getResult();
}

//===----------------------------------------------------------------------===//
// Methods
//===----------------------------------------------------------------------===//

/// Whether the tensor argument `input` is used directly as integer indices.
static bool isUsedAsIndices(const jit::Value *input) {
  for (const jit::Use &use : input->uses()) {
    c10::Symbol kind = use.user->kind();
    if (kind == c10::aten::embedding && use.offset == 1)
      return true;
    if (kind == c10::aten::index_select && use.offset == 2)
      return true;
    if (kind == c10::prim::ListConstruct)
      for (const jit::Use &listUse : use.user->output()->uses())
        if (listUse.user->kind() == c10::aten::index && listUse.offset == 1)
          return true;
  }
  return false;
}

FailureOr<Type> GraphImporter::getArgumentType(const jit::Value *input) {
  switch (input->type()->kind()) {
  case c10::TypeKind::TensorType:
    return Type(unrankedOf(isUsedAsIndices(input) ? i64() : f32()));
  case c10::TypeKind::IntType:
    return Type(RankedTensorType::get({}, i64()));
  case c10::TypeKind::FloatType:
  case c10::TypeKind::NumberType:
    return Type(RankedTensorType::get({}, f32()));
  case c10::TypeKind::BoolType:
    return Type(RankedTensorType::get({}, i1()));
  default:
    emitError() << "unsupported type " << input->type()->repr_str()
                << " of method argument '" << input->debugNameBase()
                << "' (arguments are tensors or numbers; tuples and lists of "
                   "tensors are flattened by tracing)";
    return failure();
  }
}

LogicalResult GraphImporter::collectResults(const jit::Value *output,
                                            llvm::SmallVectorImpl<Value> &results) {
  const jit::Value *value = resolve(output);
  if (poisoned.count(value))
    return failure();
  auto listIt = lists.find(value);
  if (listIt != lists.end()) {
    results.append(listIt->second.begin(), listIt->second.end());
    return success();
  }
  c10::Symbol kind = value->node()->kind();
  if (kind == c10::prim::ListConstruct || kind == c10::prim::TupleConstruct) {
    for (const jit::Value *element : value->node()->inputs())
      if (failed(collectResults(element, results)))
        return failure();
    return success();
  }
  if (isNone(value)) {
    emitError() << "the method returns None; Kiln methods return tensors";
    return failure();
  }
  Value tensor = getTensor(value);
  if (!tensor)
    return failure();
  results.push_back(tensor);
  return success();
}

LogicalResult GraphImporter::importMethod(llvm::StringRef name, jit::Graph &graph,
                                          const std::vector<TensorInputSpec> *inputSpecs) {
  MLIRContext *context = getContext();
  Location funcLoc = NameLoc::get(builder.getStringAttr(name),
                                  FileLineColLoc::get(context, archivePath, 0, 0));
  currentLoc = funcLoc;
  values.clear();
  lists.clear();
  aliases.clear();
  constantOverrides.clear();
  scalarConstants.clear();
  poisoned.clear();
  guessedElementTypes.clear();
  stateOf.clear();
  currentState.clear();
  submodulePaths.clear();

  // The module itself (`self`) is the first input of a method graph.
  llvm::SmallVector<const jit::Value *> inputs;
  for (const jit::Value *input : graph.inputs())
    if (input->type()->kind() != c10::TypeKind::ClassType)
      inputs.push_back(input);
  llvm::SmallVector<Type> argTypes;
  llvm::SmallVector<bool> declared;
  size_t tensorIndex = 0;
  for (const jit::Value *input : inputs) {
    bool isTensor = input->type()->kind() == c10::TypeKind::TensorType;
    if (isTensor && inputSpecs) {
      if (tensorIndex >= inputSpecs->size()) {
        emitError() << "internal error: method " << name << " has more tensor "
                    << "inputs than input specs";
        return failure();
      }
      const TensorInputSpec &spec = (*inputSpecs)[tensorIndex++];
      argTypes.push_back(RankedTensorType::get(
          spec.shape, kiln::getElementTypeForDtype(context, spec.dtype)));
      declared.push_back(true);
      continue;
    }
    FailureOr<Type> type = getArgumentType(input);
    if (failed(type))
      return failure();
    argTypes.push_back(*type);
    declared.push_back(false);
  }

  builder.setInsertionPointToEnd(module.getBody());
  auto func = builder.create<func::FuncOp>(funcLoc, name,
                                           builder.getFunctionType(argTypes, {}));
  Block *entry = func.addEntryBlock();
  for (auto [index, input] : llvm::enumerate(inputs)) {
    std::string argName = input->hasDebugName() ? input->debugNameBase()
                                                : "arg" + std::to_string(index);
    func.setArgAttr(index, "kiln.name", builder.getStringAttr(argName));
    // Tensor arguments' dtypes are inferred from their uses, not known,
    // unless an input spec declares them.
    if (input->type()->kind() == c10::TypeKind::TensorType && !declared[index]) {
      func.setArgAttr(index, "kiln.dtype_guessed", builder.getUnitAttr());
      guessedElementTypes.insert(entry->getArgument(index));
    }
    values[input] = entry->getArgument(index);
  }
  builder.setInsertionPointToStart(entry);

  bool hadError = false;
  for (jit::Node *node : graph.nodes())
    if (failed(importNode(node)))
      hadError = true;

  currentLoc = funcLoc;
  llvm::SmallVector<Value> results;
  if (!hadError)
    for (const jit::Value *output : graph.outputs())
      if (failed(collectResults(output, results)))
        hadError = true;
  if (hadError) {
    func.erase();
    return failure();
  }
  builder.create<func::ReturnOp>(funcLoc, results);
  func.setFunctionType(builder.getFunctionType(argTypes, ValueRange(results).getTypes()));
  return success();
}

LogicalResult GraphImporter::refineOutputShapes(const jit::Node *node) {
  for (const jit::Value *output : node->outputs()) {
    auto torchType = output->type()->cast<c10::TensorType>();
    if (!torchType)
      continue;
    c10::optional<std::vector<int64_t>> sizes = torchType->sizes().concrete_sizes();
    auto it = values.find(output);
    if (!sizes || it == values.end())
      continue;
    Value value = it->second;
    auto type = cast<TensorType>(value.getType());
    llvm::ArrayRef<int64_t> known(*sizes);
    if (type.hasRank() && type.hasStaticShape()) {
      if (type.getShape() != known) {
        InFlightDiagnostic diag = emitError()
                                  << "internal error: Kiln computed the shape [";
        llvm::interleave(type.getShape(), diag, ", ");
        diag << "] for the result of " << node->kind().toQualString()
             << ", TorchScript's shape propagation [";
        llvm::interleave(known, diag, ", ");
        diag << "] (please report it; compiling without input specs leaves "
                "the shapes to the runtime)";
        return failure();
      }
      continue;
    }
    // Arguments keep their declared types. A value an earlier node produced
    // (an identity conversion maps its output to it) may be refined too: a
    // more precise operand type keeps its users valid.
    auto result = dyn_cast<OpResult>(value);
    if (!result || (type.hasRank() && type.getRank() != static_cast<int64_t>(known.size())))
      continue;
    value.setType(RankedTensorType::get(known, type.getElementType()));
  }
  return success();
}

LogicalResult GraphImporter::importNode(jit::Node *node) {
  currentNode = node;
  currentLoc = getLocation(node);
  auto poisonOutputs = [&] {
    for (const jit::Value *output : node->outputs())
      poisoned.insert(output);
  };
  for (const jit::Value *input : node->inputs()) {
    if (poisoned.count(resolve(input))) {
      // The producer already reported an error; stay quiet.
      poisonOutputs();
      return failure();
    }
  }
  if (node->kind() == c10::prim::Constant)
    return success(); // Materialised where used, in the type the use needs.

  const std::string kind = node->kind().toQualString();
  LogicalResult result = failure();
  const std::string *writtenState =
      node->inputs().empty() ? nullptr : getStateName(node->input(0));
  if (!node->blocks().empty()) {
    result = emitUnsupported(node, "control flow is not supported; trace the "
                                   "model, or make the condition a constant");
  } else if (writtenState && kind != "aten::index_copy_" &&
             llvm::StringRef(kind).ends_with("_") && !llvm::StringRef(kind).ends_with("__")) {
    result = emitUnsupported(node, "in-place operator on the program state '" + *writtenState +
                                       "' (a mutated module buffer); only index_copy_ (a "
                                       "KV-cache write, docs/llm.md) may change a state");
  } else {
    const auto &conversions = getNodeConversions();
    auto it = conversions.find(kind);
    result = it == conversions.end() ? emitUnsupported(node) : it->second(*this, node);
  }
  if (failed(result)) {
    poisonOutputs();
    return failure();
  }
  if (failed(refineOutputShapes(node))) {
    poisonOutputs();
    return failure();
  }
  for (const jit::Value *output : node->outputs()) {
    if (!output->hasUses())
      continue;
    const jit::Value *target = resolve(output);
    if (!values.count(target) && !lists.count(target) &&
        !constantOverrides.count(target) && !stateOf.count(target) &&
        !submodulePaths.count(target) && target == output &&
        !(kind == "prim::ListConstruct" || kind == "prim::TupleConstruct")) {
      emitError() << "internal error: " << kind << " produced no value for %"
                  << output->debugName();
      poisonOutputs();
      return failure();
    }
  }
  return success();
}

//===----------------------------------------------------------------------===//
// Program state
//===----------------------------------------------------------------------===//

const std::string *GraphImporter::getStateName(const jit::Value *value) {
  auto it = stateOf.find(resolve(value));
  return it == stateOf.end() ? nullptr : &it->second;
}

LogicalResult GraphImporter::importGetAttr(jit::Node *node) {
  std::string name = node->s(c10::attr::name);
  const jit::Value *object = resolve(node->input(0));
  std::vector<std::string> path;
  if (auto it = submodulePaths.find(object); it != submodulePaths.end()) {
    path = it->second;
  } else if (object->node()->kind() != c10::prim::Param) {
    return emitUnsupported(node, "attribute '" + name + "' of a value that is not the module "
                                 "or one of its submodules");
  }
  path.push_back(name);
  std::string joined = llvm::join(path, ".");
  const jit::Value *output = node->output();
  if (output->type()->kind() == c10::TypeKind::ClassType) {
    submodulePaths[output] = path;
    return success();
  }
  if (!frozen)
    return emitUnsupported(node, "module attribute '" + joined + "' is read at run time");
  c10::IValue attribute;
  try {
    jit::Module owner = *frozen;
    for (size_t i = 0; i + 1 < path.size(); ++i)
      owner = owner.attr(path[i]).toModule();
    attribute = owner.attr(path.back());
  } catch (const std::exception &error) {
    emitError() << "cannot read module attribute '" << joined << "': " << error.what();
    return failure();
  }
  if (!attribute.isTensor())
    return emitUnsupported(node, "module attribute '" + joined + "' is still read at run "
                                 "time after freezing and is not a tensor (" +
                                 attribute.tagKind() + "); only mutated tensor buffers "
                                 "(KV caches) can be program state");
  at::Tensor tensor = attribute.toTensor();
  Type elementType = getElementType(getContext(), tensor.scalar_type());
  if (!elementType) {
    emitError() << "program state '" << joined << "' (a mutated module buffer) has dtype "
                << c10::toString(tensor.scalar_type()) << ", which Kiln does not support";
    return failure();
  }
  if (tensor.numel() > 0 && at::count_nonzero(tensor).item<int64_t>() != 0) {
    emitError() << "program state '" << joined << "' (a mutated module buffer) has a nonzero "
                << "value in the archive; program state starts at zero, so zero the "
                   "buffer before saving (tracing runs the methods, which write it)";
    return failure();
  }
  stateOf[output] = joined;
  if (!currentState.count(joined)) {
    auto type = RankedTensorType::get(llvm::ArrayRef<int64_t>(tensor.sizes().vec()),
                                      elementType);
    Location loc = NameLoc::get(builder.getStringAttr(joined), currentLoc);
    currentState[joined] =
        builder.create<kiln::StateOp>(loc, type, builder.getStringAttr(joined)).getResult();
  }
  return success();
}

LogicalResult GraphImporter::importStateWrite(jit::Node *node) {
  const std::string *state = getStateName(node->input(0));
  if (!state)
    return emitUnsupported(node, "index_copy_ on a tensor that is not program state (a "
                                 "mutated module buffer)");
  std::string name = *state;
  FailureOr<int64_t> dim = requireInt(node, 1);
  if (failed(dim))
    return failure();
  Value positions = getTensor(node->input(2));
  Value rows = getTensor(node->input(3));
  if (!positions || !rows)
    return failure();
  Value current = currentState[name];
  auto stateType = cast<RankedTensorType>(current.getType());
  if (getElementTypeOrSelf(rows.getType()) != stateType.getElementType())
    rows = castTo(rows, stateType.getElementType());
  Value written = create<kiln::CacheWriteOp>(stateType, current, positions, rows,
                                             builder.getI64IntegerAttr(*dim))
                      .getResult();
  currentState[name] = written;
  stateOf[node->output()] = name;
  return success();
}

} // namespace kiln::frontend
