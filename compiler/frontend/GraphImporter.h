//===- GraphImporter.h - one TorchScript graph -> one func.func -*- C++ -*-===//
//
// Internal to the front end. GraphImporter walks the nodes of a frozen,
// inlined TorchScript graph and builds `kiln` ops. It keeps the mapping from
// TorchScript values to MLIR values and offers the operand helpers that the
// per-operator conversions (AtenConversions.cpp) use:
//
// * Tensors map to MLIR tensor values.
// * int/float/bool values computed at run time (aten::size, aten::Int, ...)
//   are 0-d tensors; constant ones stay TorchScript constants and are
//   materialised as 0-d `kiln.constant`s of the type their use needs.
// * int lists become 1-d i64 tensors (a constant, or `kiln.stack` of 0-d
//   values); tensor lists (prim::ListConstruct, split results) are lists of
//   MLIR values.
// * Identity nodes (prim::NumToTensor, aten::Int on i64, contiguous, ...)
//   alias their input instead of emitting ops.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_COMPILER_FRONTEND_GRAPHIMPORTER_H
#define KILN_COMPILER_FRONTEND_GRAPHIMPORTER_H

#include "compiler/frontend/InputSpecs.h"
#include "compiler/frontend/TensorConstants.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/SmallVector.h"

#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/ir.h>

#include <map>
#include <optional>
#include <set>
#include <string>

namespace kiln::frontend {

class GraphImporter;

/// Converts one node. Returns failure after emitting a diagnostic.
using NodeConversion = mlir::LogicalResult (*)(GraphImporter &, torch::jit::Node *);

/// The conversions of aten/prim operators, by qualified name ("aten::add").
const std::map<std::string, NodeConversion> &getNodeConversions();

class GraphImporter {
public:
  GraphImporter(mlir::ModuleOp module, TensorConstantImporter &constants,
                llvm::StringRef archivePath);

  /// Imports `graph` as a public func.func named `name` at the end of the
  /// module. Returns failure after emitting diagnostics (all unsupported
  /// operators of the graph are reported). With `inputSpecs` (one per tensor
  /// input, in order) the tensor arguments get those static shapes and
  /// dtypes; without, they are unranked with guessed dtypes.
  mlir::LogicalResult importMethod(llvm::StringRef name, torch::jit::Graph &graph,
                                   const std::vector<TensorInputSpec> *inputSpecs = nullptr);

  /// The frozen module whose methods are imported: module attributes that
  /// survived freezing (mutated buffers such as KV caches) are read from it
  /// to declare program states. Without it, such attributes are an error.
  void setModule(const torch::jit::Module *frozenModule) { frozen = frozenModule; }

  /// prim::GetAttr: a submodule on the path to an attribute, or a tensor
  /// attribute that becomes the program state named by its path
  /// ("layers.0.k_cache"): `kiln.state`, read once per method and then
  /// threaded through the writes.
  mlir::LogicalResult importGetAttr(torch::jit::Node *node);
  /// aten::index_copy_(state, dim, positions, values): `kiln.cache_write`;
  /// every later use of any TorchScript value aliasing the state sees it.
  mlir::LogicalResult importStateWrite(torch::jit::Node *node);
  /// The program state that `value` aliases, or null.
  const std::string *getStateName(const torch::jit::Value *value);

  //===--------------------------------------------------------------------===//
  // Helpers for the conversions
  //===--------------------------------------------------------------------===//

  mlir::MLIRContext *getContext() { return builder.getContext(); }
  mlir::OpBuilder &getBuilder() { return builder; }
  /// Location of the node being converted.
  mlir::Location getLoc() { return currentLoc; }
  /// The location of a node: its Python source line when the archive has it.
  mlir::Location getLocation(const torch::jit::Node *node);

  /// Emits an error at the current node.
  mlir::InFlightDiagnostic emitError();
  /// Emits "unsupported operator X (schema: ...)" for `node`, once per
  /// operator and location.
  mlir::LogicalResult emitUnsupported(const torch::jit::Node *node,
                                      llvm::StringRef detail = "");

  template <typename OpT, typename... Args>
  OpT create(Args &&...args) {
    OpT op = builder.create<OpT>(currentLoc, std::forward<Args>(args)...);
    noteGuessedElementTypes(op.getOperation());
    return op;
  }

  /// Whether `value`'s element type derives from an argument whose dtype the
  /// importer had to guess (a bare trace has no input dtypes). Such a value's
  /// real dtype is only known at run time, so the importer must not insert
  /// conversions into its guessed type (kernels promote at run time).
  bool hasGuessedElementType(mlir::Value value) const {
    return guessedElementTypes.contains(value);
  }

  // Types. Shapes are static or unranked (see docs/dialect.md).
  mlir::Type f32() { return builder.getF32Type(); }
  mlir::Type i64() { return builder.getI64Type(); }
  mlir::Type i1() { return builder.getI1Type(); }
  mlir::TensorType unrankedOf(mlir::Type elementType) {
    return mlir::UnrankedTensorType::get(elementType);
  }
  mlir::TensorType tensorOf(mlir::Type elementType,
                            std::optional<llvm::ArrayRef<int64_t>> shape);

  // TorchScript values.
  /// The value `value` stands for after following identity aliases.
  const torch::jit::Value *resolve(const torch::jit::Value *value);
  /// The compile-time constant of `value`, if it has one.
  std::optional<c10::IValue> getConstant(const torch::jit::Value *value);
  bool isNone(const torch::jit::Value *value);
  std::optional<int64_t> getConstantInt(const torch::jit::Value *value);
  std::optional<double> getConstantDouble(const torch::jit::Value *value);
  std::optional<bool> getConstantBool(const torch::jit::Value *value);
  std::optional<std::string> getConstantString(const torch::jit::Value *value);
  std::optional<llvm::SmallVector<int64_t>>
  getConstantIntList(const torch::jit::Value *value);
  /// Like getConstant*, but emit "operand 'NAME' of OP must be a compile-time
  /// constant" on failure.
  mlir::FailureOr<int64_t> requireInt(const torch::jit::Node *node, size_t index);
  mlir::FailureOr<double> requireDouble(const torch::jit::Node *node, size_t index);
  mlir::FailureOr<bool> requireBool(const torch::jit::Node *node, size_t index);
  mlir::FailureOr<llvm::SmallVector<int64_t>>
  requireIntList(const torch::jit::Node *node, size_t index);

  /// The input of `node` whose schema argument is `name`, or null when the
  /// node has no schema or no such argument.
  const torch::jit::Value *getNamedInput(const torch::jit::Node *node,
                                         llvm::StringRef name);
  /// Whether a TorchScript value is a tensor (as opposed to a number/list).
  static bool isTensorValue(const torch::jit::Value *value);

  /// A tensor operand: a mapped tensor, a run-time number (0-d) or a
  /// constant (tensor constants become `kiln.constant`, numbers 0-d constants
  /// of their natural type: i64, f32, i1). Null after an error.
  mlir::Value getTensor(const torch::jit::Value *value);
  /// A number operand used with a tensor of element type `tensorType`: a
  /// Python number becomes a 0-d constant of the tensor's type when its
  /// category is not higher (PyTorch's rule for wrapped numbers), else of
  /// the default type of its category (f32/i64). Tensors pass through.
  mlir::Value getScalarLike(const torch::jit::Value *value, mlir::Type tensorType);
  /// A 0-d i64 operand (sizes, slice bounds, indices).
  mlir::Value getIndexScalar(const torch::jit::Value *value);
  /// An int list as a 1-d i64 tensor.
  mlir::Value getIntList(const torch::jit::Value *value);
  /// The elements of a prim::ListConstruct list, or none.
  std::optional<llvm::SmallVector<const torch::jit::Value *>>
  getListElements(const torch::jit::Value *value);
  /// A tensor list operand (prim::ListConstruct or a split result).
  mlir::FailureOr<llvm::SmallVector<mlir::Value>>
  getTensorList(const torch::jit::Value *value);

  /// Records results.
  void mapValue(const torch::jit::Value *value, mlir::Value mlirValue);
  void mapList(const torch::jit::Value *value, llvm::ArrayRef<mlir::Value> values);
  void mapAlias(const torch::jit::Value *value, const torch::jit::Value *target);
  void mapConstant(const torch::jit::Value *value, c10::IValue constant);

  // Building.
  /// A 0-d constant of element type `elementType` holding `value`.
  mlir::Value createScalarConstant(mlir::Type elementType, const c10::Scalar &value);
  /// A 1-d i64 constant.
  mlir::Value createIndexList(llvm::ArrayRef<int64_t> values);
  /// `value` converted to `elementType`; no op when it already has it. An
  /// `explicitConversion` (aten::to, type_as, ...) of a function argument is
  /// kept even then: argument element types are guesses.
  mlir::Value castTo(mlir::Value value, mlir::Type elementType,
                     bool explicitConversion = false);

private:
  /// A 0-d constant for the TorchScript constant `value`, created once per
  /// element type.
  mlir::Value getCachedScalar(const torch::jit::Value *value, mlir::Type type,
                              const c10::Scalar &scalar);
  mlir::LogicalResult importNode(torch::jit::Node *node);
  /// Gives the tensor outputs of `node` the static shapes TorchScript's shape
  /// propagation found, where the conversion could not compute them.
  mlir::LogicalResult refineOutputShapes(const torch::jit::Node *node);
  mlir::FailureOr<mlir::Type> getArgumentType(const torch::jit::Value *input);
  mlir::LogicalResult collectResults(const torch::jit::Value *output,
                                     llvm::SmallVectorImpl<mlir::Value> &results);

  mlir::ModuleOp module;
  TensorConstantImporter &constants;
  std::string archivePath;
  mlir::OpBuilder builder;
  mlir::Location currentLoc;
  const torch::jit::Node *currentNode = nullptr;

  llvm::DenseMap<const torch::jit::Value *, mlir::Value> values;
  llvm::DenseMap<const torch::jit::Value *, llvm::SmallVector<mlir::Value>> lists;
  llvm::DenseMap<const torch::jit::Value *, const torch::jit::Value *> aliases;
  std::map<const torch::jit::Value *, c10::IValue> constantOverrides;
  // 0-d constants materialised per (TorchScript value, element type).
  llvm::DenseMap<std::pair<const torch::jit::Value *, mlir::Type>, mlir::Value>
      scalarConstants;
  // Values whose producer failed: their users are skipped silently.
  llvm::DenseSet<const torch::jit::Value *> poisoned;
  /// Values whose element type is a guess (see hasGuessedElementType).
  llvm::DenseSet<mlir::Value> guessedElementTypes;
  void noteGuessedElementTypes(mlir::Operation *op);
  // Program state (KV caches): the frozen module, the state each TorchScript
  // value aliases, the current MLIR value of each state in this method, and
  // the attribute path of each submodule value.
  const torch::jit::Module *frozen = nullptr;
  llvm::DenseMap<const torch::jit::Value *, std::string> stateOf;
  std::map<std::string, mlir::Value> currentState;
  llvm::DenseMap<const torch::jit::Value *, std::vector<std::string>> submodulePaths;
  // (operator, location) pairs already reported as unsupported.
  std::set<std::string> reportedUnsupported;
};

} // namespace kiln::frontend

#endif // KILN_COMPILER_FRONTEND_GRAPHIMPORTER_H
