// Lowers `kiln` ops to a program: one Method per public function, one Value per
// SSA tensor value, one Instruction per op (except `kiln.constant`, which
// becomes a Constant value backed by a deduplicated segment). The lowering is
// generic: op name, operands (placed by their declared operand segments) and
// attributes are converted without per-op code, so a new kiln op needs no change
// here.
#include "lowering/portable/PortableLowering.h"

#include "serializer/ProgramWriter.h"
#include "runtime-stub/core/QuantLayout.h"
#include "kiln/Dialect/KilnTypeRules.h"
#include "kiln/Dialect/KilnOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/AsmState.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Location.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/raw_ostream.h"

#include <cstring>
#include <optional>

#ifndef KILN_VERSION_STRING
#define KILN_VERSION_STRING "0.1.0"
#endif

using namespace mlir;

namespace kiln {
namespace {

constexpr llvm::StringLiteral kDialectPrefix = "kiln";
/// The function argument attribute holding the TorchScript input name.
constexpr llvm::StringLiteral kNameAttr = "kiln.name";
// Set by the front end on arguments whose element type it could only guess (a
// bare traced archive carries no input dtypes): the program declares their
// dtype Unknown and the runtime takes whatever dtype the caller passes.
constexpr llvm::StringLiteral kDtypeGuessedAttr = "kiln.dtype_guessed";
// Per-op memory plan of kiln-plan-memory: one arena offset per result, -1 = none.
constexpr llvm::StringLiteral kArenaOffsetsAttr = "kiln.arena_offsets";

/// Declared operand counts of ops whose trailing operands are optional but
/// that carry no `operandSegmentSizes` (ODS needs it only with two or more
/// optional/variadic groups). Absent trailing operands are written as -1.
const llvm::StringMap<unsigned> &getDeclaredOperandCounts() {
  static const llvm::StringMap<unsigned> counts = {
      {"linear", 3}, {"rms_norm", 2}, {"layer_norm", 3}};
  return counts;
}

std::optional<fb::DType> getDType(Type type) {
  if (type.isF32())
    return fb::DType::Float32;
  if (type.isF16())
    return fb::DType::Float16;
  if (type.isBF16())
    return fb::DType::BFloat16;
  if (auto intType = dyn_cast<IntegerType>(type)) {
    bool isUnsigned = intType.isUnsigned();
    switch (intType.getWidth()) {
    case 1:
      return fb::DType::Bool;
    case 8:
      return isUnsigned ? fb::DType::UInt8 : fb::DType::Int8;
    case 32:
      if (!isUnsigned)
        return fb::DType::Int32;
      break;
    case 64:
      if (!isUnsigned)
        return fb::DType::Int64;
      break;
    default:
      break;
    }
  }
  return std::nullopt;
}

std::string toString(Type type) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << type;
  return os.str();
}

std::optional<FileLineColLoc> findFileLineColLoc(Location loc) {
  if (auto fileLoc = dyn_cast<FileLineColLoc>(loc))
    return fileLoc;
  if (auto nameLoc = dyn_cast<NameLoc>(loc))
    return findFileLineColLoc(nameLoc.getChildLoc());
  if (auto callLoc = dyn_cast<CallSiteLoc>(loc)) {
    // The callee location is where the op itself is; the caller is a fallback.
    if (auto found = findFileLineColLoc(callLoc.getCallee()))
      return found;
    return findFileLineColLoc(callLoc.getCaller());
  }
  if (auto fusedLoc = dyn_cast<FusedLoc>(loc)) {
    for (Location inner : fusedLoc.getLocations())
      if (auto found = findFileLineColLoc(inner))
        return found;
  }
  return std::nullopt;
}

/// The debug name of an op result: the name of a NameLoc, if the op has one.
std::string getResultName(Operation *op) {
  Location loc = op->getLoc();
  while (true) {
    if (auto nameLoc = dyn_cast<NameLoc>(loc))
      return nameLoc.getName().str();
    if (auto callLoc = dyn_cast<CallSiteLoc>(loc)) {
      loc = callLoc.getCallee();
      continue;
    }
    return "";
  }
}

/// The name a constant is shown under (`kiln inspect` groups constants by
/// layer with it): its NameLoc, else the key of its resource blob, which the
/// front end takes from the TorchScript value ("self.layers.0.mlp.w1.weight").
std::string getConstantName(Operation *op) {
  std::string name = getResultName(op);
  if (!name.empty())
    return name;
  for (NamedAttribute attr : op->getAttrs())
    if (auto resource = dyn_cast<DenseResourceElementsAttr>(attr.getValue()))
      return resource.getRawHandle().getKey().str();
  return "";
}

/// Program-level states (`kiln.state`), shared by every method by name.
struct ProgramStates {
  llvm::StringMap<int32_t> index; // name -> Program.states index
  llvm::StringMap<RankedTensorType> type;
  std::vector<std::string> names; // by index
};

/// Lowers one function to one program method.
class MethodLowering {
public:
  MethodLowering(func::FuncOp func, ProgramWriter &writer, ProgramStates &states)
      : func(func), writer(writer), states(states) {}

  LogicalResult lower();

private:
  /// Adds a value of `type` (which must be a tensor with a program dtype).
  FailureOr<int32_t> addValue(Type type, fb::ValueKind kind, std::string name,
                              Location loc, llvm::StringRef what);
  LogicalResult lowerConstant(Operation *op);
  /// kiln.qconstant: one Constant value with a data and a scales segment.
  LogicalResult lowerQuantizedConstant(Operation *op);
  /// Adds the bytes of `elements` (dense, splat or resource) as a segment.
  FailureOr<int32_t> addElementsSegment(Operation *op, ElementsAttr elements,
                                        size_t elemSize);
  /// The bytes of `elements` (a splat is expanded into `storage`).
  FailureOr<ArrayRef<char>> elementsBytes(Operation *op, ElementsAttr elements, size_t elemSize,
                                          std::vector<uint8_t> &storage);
  LogicalResult lowerInstruction(Operation *op);
  /// kiln.state: the method's State value of that name (declared once per
  /// program; every method and every read of one name share it).
  LogicalResult lowerState(kiln::StateOp op);
  /// Checks that `operand`, when it is a state, is its latest contents: the
  /// runtime holds one buffer per state, so a read of the value from before a
  /// kiln.cache_write placed after that write would see the new contents.
  LogicalResult checkStateOrder(Operation *user, Value operand);
  LogicalResult lowerReturn(func::ReturnOp op);
  LogicalResult convertAttribute(Operation *op, NamedAttribute attr,
                                 std::vector<AttrSpec> &attrs);
  FailureOr<int32_t> getIndex(Operation *user, Value value);

  func::FuncOp func;
  ProgramWriter &writer;
  ProgramStates &states;
  MethodSpec method;
  llvm::DenseMap<Value, int32_t> valueIndex;
  /// Per state (program index): this method's State value, and the SSA values
  /// that hold its current contents (kiln.state reads and the latest write).
  llvm::DenseMap<int32_t, int32_t> stateValue;
  llvm::DenseMap<Value, int32_t> stateOfValue;
  llvm::DenseMap<int32_t, llvm::SmallVector<Value>> currentStateValues;
};

LogicalResult MethodLowering::lowerState(kiln::StateOp op) {
  llvm::StringRef name = op.getName();
  auto type = cast<RankedTensorType>(op.getResult().getType());
  std::optional<fb::DType> dtype = getDType(type.getElementType());
  if (!dtype)
    return op.emitError() << "cannot lower state '" << name << "': element type "
                          << type.getElementType() << " has no program dtype";
  auto known = states.type.find(name);
  if (known != states.type.end() && known->second != type)
    return op.emitError() << "state '" << name << "' has type " << type
                          << " here but " << known->second
                          << " elsewhere in the module (one state, one type)";
  if (known == states.type.end()) {
    StateSpec spec;
    spec.name = name.str();
    spec.dtype = *dtype;
    spec.shape.assign(type.getShape().begin(), type.getShape().end());
    states.index[name] = writer.addState(std::move(spec));
    states.type[name] = type;
    states.names.push_back(name.str());
  }
  int32_t stateIndex = states.index[name];
  auto existing = stateValue.find(stateIndex);
  int32_t index;
  if (existing != stateValue.end()) {
    index = existing->second;
  } else {
    ValueSpec spec;
    spec.name = name.str();
    spec.dtype = *dtype;
    spec.kind = fb::ValueKind::State;
    spec.rank = static_cast<int32_t>(type.getRank());
    spec.shape.assign(type.getShape().begin(), type.getShape().end());
    spec.state = stateIndex;
    index = method.addValue(std::move(spec));
    stateValue[stateIndex] = index;
  }
  valueIndex[op.getResult()] = index;
  stateOfValue[op.getResult()] = stateIndex;
  // A read sees every earlier write, so it is as current as the latest write.
  currentStateValues[stateIndex].push_back(op.getResult());
  return success();
}

LogicalResult MethodLowering::checkStateOrder(Operation *user, Value operand) {
  auto it = stateOfValue.find(operand);
  if (it == stateOfValue.end())
    return success();
  if (llvm::is_contained(currentStateValues[it->second], operand))
    return success();
  return user->emitError() << "cannot lower '" << user->getName()
                           << "': it reads state '" << states.names[it->second]
                           << "' as it was before a later kiln.cache_write (the runtime "
                              "updates a state in place; use the write's result)";
}

FailureOr<int32_t> MethodLowering::addValue(Type type, fb::ValueKind kind, std::string name,
                                            Location loc, llvm::StringRef what) {
  auto tensorType = dyn_cast<TensorType>(type);
  if (!tensorType)
    return emitError(loc) << "cannot lower " << what << " of type " << type
                          << " to the portable program: only tensor types are supported";
  std::optional<fb::DType> dtype = getDType(tensorType.getElementType());
  if (!dtype)
    return emitError(loc) << "cannot lower " << what << " of type " << type
                          << " to the portable program: element type "
                          << tensorType.getElementType()
                          << " has no program dtype (supported: f32 f16 bf16 i64 i32 i8 "
                             "ui8 i1)";
  ValueSpec spec;
  spec.name = std::move(name);
  spec.dtype = *dtype;
  spec.kind = kind;
  if (tensorType.hasRank()) {
    spec.rank = static_cast<int32_t>(tensorType.getRank());
    for (int64_t dim : tensorType.getShape())
      spec.shape.push_back(ShapedType::isDynamic(dim) ? -1 : dim);
  }
  return method.addValue(std::move(spec));
}

FailureOr<int32_t> MethodLowering::getIndex(Operation *user, Value value) {
  auto it = valueIndex.find(value);
  if (it == valueIndex.end())
    return user->emitError() << "cannot lower '" << user->getName()
                             << "': an operand is not defined by a lowered op in this function";
  return it->second;
}

LogicalResult MethodLowering::lowerConstant(Operation *op) {
  if (op->getNumResults() != 1)
    return op->emitError() << "cannot lower '" << op->getName() << "': expected one result";
  auto elements = dyn_cast_or_null<ElementsAttr>(op->getAttr("value"));
  if (!elements)
    return op->emitError() << "cannot lower '" << op->getName()
                           << "': missing elements attribute 'value'";
  ShapedType type = elements.getShapedType();
  if (!type.hasStaticShape())
    return op->emitError() << "cannot lower '" << op->getName() << "': constant type " << type
                           << " is not statically shaped";
  std::optional<fb::DType> dtype = getDType(type.getElementType());
  if (!dtype)
    return op->emitError() << "cannot lower '" << op->getName() << "': element type "
                           << type.getElementType() << " has no program dtype";
  const size_t elemSize = ProgramWriter::getDTypeSize(*dtype);
  const size_t numElements = static_cast<size_t>(type.getNumElements());
  const size_t numBytes = numElements * elemSize;

  int32_t segment = -1;
  if (auto dense = dyn_cast<DenseElementsAttr>(elements)) {
    if (*dtype == fb::DType::Bool) {
      // MLIR packs i1 as bits; the program stores one byte (0 or 1) per element.
      std::vector<uint8_t> bytes;
      bytes.reserve(numElements);
      for (bool b : dense.getValues<bool>())
        bytes.push_back(b ? 1 : 0);
      segment = writer.addOwnedSegment(std::move(bytes));
    } else if (dense.isSplat()) {
      ArrayRef<char> raw = dense.getRawData();
      if (raw.size() != elemSize)
        return op->emitError() << "cannot lower '" << op->getName() << "': splat of "
                               << raw.size() << " bytes for element type "
                               << type.getElementType();
      std::vector<uint8_t> bytes(numBytes);
      for (size_t i = 0; i < numElements; ++i)
        std::memcpy(bytes.data() + i * elemSize, raw.data(), elemSize);
      segment = writer.addOwnedSegment(std::move(bytes));
    } else {
      ArrayRef<char> raw = dense.getRawData();
      if (raw.size() != numBytes)
        return op->emitError() << "cannot lower '" << op->getName() << "': dense data of "
                               << raw.size() << " bytes, expected " << numBytes << " for "
                               << type;
      // Borrowed: the attribute storage outlives the write.
      segment = writer.addSegment(raw.data(), raw.size());
    }
  } else if (auto resource = dyn_cast<DenseResourceElementsAttr>(elements)) {
    DenseResourceElementsHandle handle = resource.getRawHandle();
    const AsmResourceBlob *blob = handle.getBlob();
    if (!blob)
      return op->emitError() << "cannot lower '" << op->getName() << "': resource '"
                             << handle.getKey() << "' has no data";
    ArrayRef<char> data = blob->getData();
    if (data.size() != numBytes)
      return op->emitError() << "cannot lower '" << op->getName() << "': resource '"
                             << handle.getKey() << "' holds " << data.size()
                             << " bytes, expected " << numBytes << " for " << type
                             << " (one byte per i1 element)";
    // Borrowed: the blob outlives the write.
    segment = writer.addSegment(data.data(), data.size());
  } else {
    return op->emitError() << "cannot lower '" << op->getName()
                           << "': 'value' must be a DenseElementsAttr or "
                              "DenseResourceElementsAttr";
  }

  ValueSpec spec;
  spec.name = getConstantName(op);
  spec.dtype = *dtype;
  spec.kind = fb::ValueKind::Constant;
  spec.rank = static_cast<int32_t>(type.getRank());
  spec.shape.assign(type.getShape().begin(), type.getShape().end());
  spec.segment = segment;
  valueIndex[op->getResult(0)] = method.addValue(std::move(spec));
  return success();
}

FailureOr<ArrayRef<char>> MethodLowering::elementsBytes(Operation *op, ElementsAttr elements,
                                                         size_t elemSize,
                                                         std::vector<uint8_t> &storage) {
  ShapedType type = elements.getShapedType();
  const size_t numBytes = static_cast<size_t>(type.getNumElements()) * elemSize;
  if (auto dense = dyn_cast<DenseElementsAttr>(elements)) {
    ArrayRef<char> raw = dense.getRawData();
    if (dense.isSplat() && raw.size() == elemSize) {
      storage.assign(numBytes, 0);
      for (size_t i = 0; i < numBytes; i += elemSize)
        std::memcpy(storage.data() + i, raw.data(), elemSize);
      return ArrayRef<char>(reinterpret_cast<const char *>(storage.data()), storage.size());
    }
    if (raw.size() != numBytes)
      return op->emitError() << "cannot lower '" << op->getName() << "': dense data of "
                             << raw.size() << " bytes, expected " << numBytes << " for " << type;
    return raw;
  }
  if (auto resource = dyn_cast<DenseResourceElementsAttr>(elements)) {
    const AsmResourceBlob *blob = resource.getRawHandle().getBlob();
    if (!blob || blob->getData().size() != numBytes)
      return op->emitError() << "cannot lower '" << op->getName() << "': resource '"
                             << resource.getRawHandle().getKey() << "' does not hold the "
                             << numBytes << " bytes of " << type;
    return blob->getData();
  }
  return op->emitError() << "cannot lower '" << op->getName()
                         << "': expected a DenseElementsAttr or DenseResourceElementsAttr";
}

FailureOr<int32_t> MethodLowering::addElementsSegment(Operation *op, ElementsAttr elements,
                                                     size_t elemSize) {
  std::vector<uint8_t> storage;
  FailureOr<ArrayRef<char>> bytes = elementsBytes(op, elements, elemSize, storage);
  if (failed(bytes))
    return failure();
  if (!storage.empty())
    return writer.addOwnedSegment(std::move(storage));
  // Borrowed: the attribute / blob outlives the write.
  return writer.addSegment(bytes->data(), bytes->size());
}

LogicalResult MethodLowering::lowerQuantizedConstant(Operation *op) {
  auto qconst = dyn_cast<kiln::QConstantOp>(op);
  if (!qconst)
    return op->emitError() << "cannot lower '" << op->getName() << "': not a kiln.qconstant";
  kiln::QWeightType type = qconst.getResult().getType();
  const int64_t out = type.getShape()[0], in = type.getShape()[1], group = type.getGroupSize();
  FailureOr<int32_t> data, scales;
  fb::QuantLayout layout = fb::QuantLayout::Rows;
  if (strip16::applies(out, in, group)) {
    // Repacked here, once, into the decode kernel's layout (strips of 16
    // output channels, Int4Strip16 / Int8Strip16, docs/program-format.md); the
    // file pays, not the load.
    const bool i4 = type.getBits() == 4;
    std::vector<uint8_t> dataStore, scaleStore;
    FailureOr<ArrayRef<char>> rows = elementsBytes(op, qconst.getData(), 1, dataStore);
    FailureOr<ArrayRef<char>> rowScales = elementsBytes(op, qconst.getScales(), 2, scaleStore);
    if (failed(rows) || failed(rowScales))
      return failure();
    if (rows->size() != static_cast<size_t>(i4 ? out * in / 2 : out * in) ||
        rowScales->size() != static_cast<size_t>(out * (in / group) * 2))
      return op->emitError() << "cannot lower '" << op->getName() << "': " << rows->size()
                             << " data and " << rowScales->size() << " scale bytes for " << type;
    std::vector<uint8_t> packed(rows->size()), packedScales(rowScales->size());
    if (i4)
      strip16::packData(reinterpret_cast<const uint8_t *>(rows->data()), out, in, packed.data());
    else
      strip16::packData8(reinterpret_cast<const uint8_t *>(rows->data()), out, in, packed.data());
    strip16::packScales(reinterpret_cast<const uint8_t *>(rowScales->data()), out, in / group, 2,
                        packedScales.data());
    data = writer.addOwnedSegment(std::move(packed));
    scales = writer.addOwnedSegment(std::move(packedScales));
    layout = i4 ? fb::QuantLayout::Int4Strip16 : fb::QuantLayout::Int8Strip16;
  } else {
    data = addElementsSegment(op, qconst.getData(), 1);
    scales = addElementsSegment(op, qconst.getScales(), 2);
    if (failed(data) || failed(scales))
      return failure();
  }
  ValueSpec spec;
  spec.name = getConstantName(op);
  spec.dtype = type.getBits() == 4 ? fb::DType::Int4 : fb::DType::Int8;
  spec.kind = fb::ValueKind::Constant;
  spec.rank = 2;
  spec.shape.assign(type.getShape().begin(), type.getShape().end());
  spec.segment = *data;
  spec.quantGroupSize = static_cast<int32_t>(type.getGroupSize());
  spec.scalesSegment = *scales;
  spec.scalesDType = fb::DType::Float16;
  spec.quantLayout = layout;
  valueIndex[op->getResult(0)] = method.addValue(std::move(spec));
  return success();
}

LogicalResult MethodLowering::convertAttribute(Operation *op, NamedAttribute named,
                                               std::vector<AttrSpec> &attrs) {
  std::string name = named.getName().str();
  Attribute attr = named.getValue();
  auto fail = [&](llvm::StringRef why) {
    return op->emitError() << "cannot lower attribute '" << name << "' of '"
                           << op->getName() << "' to a program attribute: " << why;
  };

  if (auto b = dyn_cast<BoolAttr>(attr)) {
    attrs.push_back(AttrSpec::makeBool(name, b.getValue()));
  } else if (auto i = dyn_cast<IntegerAttr>(attr)) {
    if (i.getType().isUnsignedInteger()) {
      if (i.getValue().getActiveBits() > 63)
        return fail("unsigned value does not fit in i64");
      attrs.push_back(AttrSpec::makeInt(name, static_cast<int64_t>(i.getValue().getZExtValue())));
    } else {
      if (i.getValue().getSignificantBits() > 64)
        return fail("value does not fit in i64");
      attrs.push_back(AttrSpec::makeInt(name, i.getValue().getSExtValue()));
    }
  } else if (auto f = dyn_cast<FloatAttr>(attr)) {
    attrs.push_back(AttrSpec::makeFloat(name, f.getValueAsDouble()));
  } else if (auto s = dyn_cast<StringAttr>(attr)) {
    attrs.push_back(AttrSpec::makeString(name, s.str()));
  } else if (isa<UnitAttr>(attr)) {
    attrs.push_back(AttrSpec::makeBool(name, true));
  } else if (auto t = dyn_cast<TypeAttr>(attr)) {
    attrs.push_back(AttrSpec::makeString(name, toString(t.getValue())));
  } else if (auto a = dyn_cast<DenseI64ArrayAttr>(attr)) {
    attrs.push_back(AttrSpec::makeInts(name, {a.asArrayRef().begin(), a.asArrayRef().end()}));
  } else if (auto a = dyn_cast<DenseI32ArrayAttr>(attr)) {
    attrs.push_back(AttrSpec::makeInts(name, {a.asArrayRef().begin(), a.asArrayRef().end()}));
  } else if (auto a = dyn_cast<DenseI16ArrayAttr>(attr)) {
    attrs.push_back(AttrSpec::makeInts(name, {a.asArrayRef().begin(), a.asArrayRef().end()}));
  } else if (auto a = dyn_cast<DenseI8ArrayAttr>(attr)) {
    attrs.push_back(AttrSpec::makeInts(name, {a.asArrayRef().begin(), a.asArrayRef().end()}));
  } else if (auto a = dyn_cast<DenseBoolArrayAttr>(attr)) {
    attrs.push_back(AttrSpec::makeInts(name, {a.asArrayRef().begin(), a.asArrayRef().end()}));
  } else if (auto a = dyn_cast<DenseF64ArrayAttr>(attr)) {
    attrs.push_back(AttrSpec::makeFloats(name, {a.asArrayRef().begin(), a.asArrayRef().end()}));
  } else if (auto a = dyn_cast<DenseF32ArrayAttr>(attr)) {
    attrs.push_back(AttrSpec::makeFloats(name, {a.asArrayRef().begin(), a.asArrayRef().end()}));
  } else if (auto a = dyn_cast<ArrayAttr>(attr)) {
    bool allInts = llvm::all_of(a, [](Attribute e) { return isa<IntegerAttr>(e); });
    bool allFloats = llvm::all_of(a, [](Attribute e) { return isa<FloatAttr>(e); });
    if (allInts) { // also the empty array
      std::vector<int64_t> values;
      for (Attribute e : a) {
        APInt v = cast<IntegerAttr>(e).getValue();
        if (v.getSignificantBits() > 64)
          return fail("element does not fit in i64");
        values.push_back(v.getSExtValue());
      }
      attrs.push_back(AttrSpec::makeInts(name, std::move(values)));
    } else if (allFloats) {
      std::vector<double> values;
      for (Attribute e : a)
        values.push_back(cast<FloatAttr>(e).getValueAsDouble());
      attrs.push_back(AttrSpec::makeFloats(name, std::move(values)));
    } else {
      return fail("array elements must be all integers or all floats");
    }
  } else if (auto d = dyn_cast<DenseIntElementsAttr>(attr)) {
    if (d.getType().getRank() > 1)
      return fail("dense integer elements must be 0-d or 1-d");
    std::vector<int64_t> values;
    for (const APInt &v : d.getValues<APInt>())
      values.push_back(d.getElementType().isUnsignedInteger()
                           ? static_cast<int64_t>(v.getZExtValue())
                           : v.getSExtValue());
    attrs.push_back(AttrSpec::makeInts(name, std::move(values)));
  } else if (auto d = dyn_cast<DenseFPElementsAttr>(attr)) {
    if (d.getType().getRank() > 1)
      return fail("dense float elements must be 0-d or 1-d");
    std::vector<double> values;
    for (const APFloat &v : d.getValues<APFloat>())
      values.push_back(v.convertToDouble());
    attrs.push_back(AttrSpec::makeFloats(name, std::move(values)));
  } else {
    std::string s;
    llvm::raw_string_ostream os(s);
    os << "unsupported attribute " << attr;
    return fail(os.str());
  }
  return success();
}

LogicalResult MethodLowering::lowerInstruction(Operation *op) {
  for (Value operand : op->getOperands())
    if (failed(checkStateOrder(op, operand)))
      return failure();
  if (auto write = dyn_cast<kiln::CacheWriteOp>(op)) {
    // The result is the same State value, written in place; from here on only
    // it holds the state's current contents.
    int32_t stateIndex = stateOfValue.lookup(write.getState());
    InstructionSpec inst;
    inst.op = op->getName().stripDialect().str();
    inst.loc = getSourceLineString(op->getLoc());
    for (Value operand : op->getOperands()) {
      FailureOr<int32_t> index = getIndex(op, operand);
      if (failed(index))
        return failure();
      inst.inputs.push_back(*index);
    }
    inst.attrs.push_back(AttrSpec::makeInt("dim", static_cast<int64_t>(write.getDim())));
    int32_t stateValueIndex = valueIndex.lookup(write.getState());
    inst.outputs.push_back(stateValueIndex);
    valueIndex[write.getResult()] = stateValueIndex;
    stateOfValue[write.getResult()] = stateIndex;
    currentStateValues[stateIndex] = {write.getResult()};
    method.instructions.push_back(std::move(inst));
    return success();
  }
  InstructionSpec inst;
  inst.op = op->getName().stripDialect().str();
  inst.loc = getSourceLineString(op->getLoc());

  // Operands: every declared operand position, absent optional = -1.
  if (auto segments = op->getAttrOfType<DenseI32ArrayAttr>("operandSegmentSizes")) {
    unsigned position = 0;
    for (int32_t size : segments.asArrayRef()) {
      if (size == 0)
        inst.inputs.push_back(-1);
      for (int32_t i = 0; i < size; ++i) {
        if (position >= op->getNumOperands())
          return op->emitError() << "cannot lower '" << op->getName()
                                 << "': operandSegmentSizes exceeds the operand count";
        FailureOr<int32_t> index = getIndex(op, op->getOperand(position++));
        if (failed(index))
          return failure();
        inst.inputs.push_back(*index);
      }
    }
  } else {
    for (Value operand : op->getOperands()) {
      FailureOr<int32_t> index = getIndex(op, operand);
      if (failed(index))
        return failure();
      inst.inputs.push_back(*index);
    }
    auto declared = getDeclaredOperandCounts().find(inst.op);
    if (declared != getDeclaredOperandCounts().end())
      while (inst.inputs.size() < declared->second)
        inst.inputs.push_back(-1);
  }

  // Attributes (inherent ones included); discardable dialect attributes such as
  // `kiln.name` (they have a dialect prefix) are annotations, not op semantics.
  for (NamedAttribute attr : op->getAttrs()) {
    llvm::StringRef name = attr.getName().getValue();
    if (name == "operandSegmentSizes" || name == "resultSegmentSizes" || name.contains('.'))
      continue;
    if (failed(convertAttribute(op, attr, inst.attrs)))
      return failure();
  }

  // A result computed from a value of unknown dtype has an unknown dtype too,
  // unless the op fixes its result dtype (comparisons, casts, sizes, ...).
  bool unknownDtype = false;
  if (!kiln::hasFixedResultElementType(op))
    for (int32_t input : inst.inputs)
      if (input >= 0 && method.values[input].dtype == fb::DType::Unknown)
        unknownDtype = true;

  std::string resultName = getResultName(op);
  for (OpResult result : op->getResults()) {
    std::string name = resultName;
    if (!name.empty() && op->getNumResults() > 1)
      name += "." + std::to_string(result.getResultNumber());
    FailureOr<int32_t> index =
        addValue(result.getType(), fb::ValueKind::Intermediate, std::move(name), op->getLoc(),
                 "result #" + std::to_string(result.getResultNumber()) + " of '" +
                     op->getName().getStringRef().str() + "'");
    if (failed(index))
      return failure();
    if (unknownDtype)
      method.values[*index].dtype = fb::DType::Unknown;
    // Memory plan (kiln-plan-memory); a value whose dtype is decided at run
    // time has no known size, so it is never bound to the arena.
    if (auto offsets = op->getAttrOfType<DenseI64ArrayAttr>(kArenaOffsetsAttr)) {
      if (offsets.size() != static_cast<int64_t>(op->getNumResults()))
        return op->emitError() << "cannot lower '" << op->getName() << "': "
                               << kArenaOffsetsAttr << " has " << offsets.size()
                               << " entries for " << op->getNumResults() << " results";
      if (!unknownDtype)
        method.values[*index].arenaOffset = offsets[result.getResultNumber()];
    }
    valueIndex[result] = *index;
    inst.outputs.push_back(*index);
  }
  method.instructions.push_back(std::move(inst));
  return success();
}

LogicalResult MethodLowering::lowerReturn(func::ReturnOp op) {
  for (Value operand : op.getOperands()) {
    if (failed(checkStateOrder(op, operand)))
      return failure();
    FailureOr<int32_t> index = getIndex(op, operand);
    if (failed(index))
      return failure();
    ValueSpec &value = method.values[*index];
    if (value.kind == fb::ValueKind::Intermediate || value.kind == fb::ValueKind::Output) {
      value.kind = fb::ValueKind::Output;
      method.outputs.push_back(*index);
      continue;
    }
    // An input or a constant returned as is: the runtime must still produce an
    // output of its own, so copy it into a fresh Output value.
    ValueSpec copy = value;
    copy.kind = fb::ValueKind::Output;
    copy.segment = -1;
    copy.state = -1;
    int32_t outIndex = method.addValue(std::move(copy));
    InstructionSpec inst;
    inst.op = "copy";
    inst.inputs = {*index};
    inst.outputs = {outIndex};
    inst.loc = getSourceLineString(op.getLoc());
    method.instructions.push_back(std::move(inst));
    method.outputs.push_back(outIndex);
  }
  return success();
}

LogicalResult MethodLowering::lower() {
  if (func.isExternal())
    return func.emitError() << "cannot lower external function '" << func.getSymName()
                            << "' to the portable program: it has no body";
  if (!func.getBody().hasOneBlock())
    return func.emitError() << "cannot lower function '" << func.getSymName()
                            << "': expected a single block";
  method.name = func.getSymName().str();
  // Memory plan sizes (kiln-plan-memory); absent = nothing planned.
  auto getPlanBytes = [&](llvm::StringRef name) -> uint64_t {
    auto attr = func->getAttrOfType<IntegerAttr>(name);
    return attr && attr.getInt() > 0 ? static_cast<uint64_t>(attr.getInt()) : 0;
  };
  method.arenaBytes = getPlanBytes("kiln.arena_bytes");
  method.arenaLowerBoundBytes = getPlanBytes("kiln.arena_lower_bound_bytes");
  method.naiveBytes = getPlanBytes("kiln.naive_bytes");

  Block &block = func.getBody().front();
  for (BlockArgument arg : block.getArguments()) {
    std::string name;
    if (auto nameAttr = func.getArgAttrOfType<StringAttr>(arg.getArgNumber(), kNameAttr))
      name = nameAttr.str();
    FailureOr<int32_t> index =
        addValue(arg.getType(), fb::ValueKind::Input, std::move(name), arg.getLoc(),
                 "argument #" + std::to_string(arg.getArgNumber()) + " of '" +
                     func.getSymName().str() + "'");
    if (failed(index))
      return failure();
    if (func.getArgAttr(arg.getArgNumber(), kDtypeGuessedAttr))
      method.values[*index].dtype = fb::DType::Unknown;
    valueIndex[arg] = *index;
    method.inputs.push_back(*index);
  }

  for (Operation &op : block) {
    if (auto ret = dyn_cast<func::ReturnOp>(op)) {
      if (failed(lowerReturn(ret)))
        return failure();
      continue;
    }
    if (op.getName().getDialectNamespace() != kDialectPrefix)
      return op.emitError() << "cannot lower '" << op.getName()
                            << "' to the portable program: only kiln ops and func.return "
                               "are supported (run the kiln pipeline first)";
    if (op.getNumRegions() != 0)
      return op.emitError() << "cannot lower '" << op.getName()
                            << "' to the portable program: ops with regions are not supported";
    if (auto state = dyn_cast<kiln::StateOp>(op)) {
      if (failed(lowerState(state)))
        return failure();
      continue;
    }
    LogicalResult result = op.getName().stripDialect() == "constant" ? lowerConstant(&op)
                           : op.getName().stripDialect() == "qconstant"
                               ? lowerQuantizedConstant(&op)
                               : lowerInstruction(&op);
    if (failed(result))
      return failure();
  }
  writer.addMethod(std::move(method));
  return success();
}

} // namespace

std::string getSourceLineString(Location loc) {
  std::optional<FileLineColLoc> fileLoc = findFileLineColLoc(loc);
  if (!fileLoc)
    return "";
  return fileLoc->getFilename().str() + ":" + std::to_string(fileLoc->getLine());
}

LogicalResult writePortableProgram(ModuleOp module, llvm::StringRef outputPath,
                                   const ProgramOptions &options) {
  ProgramWriter writer;
  ProgramStates states;
  bool lowered = false;
  for (func::FuncOp func : module.getOps<func::FuncOp>()) {
    if (!func.isPublic())
      continue;
    if (failed(MethodLowering(func, writer, states).lower()))
      return failure();
    lowered = true;
  }
  if (!lowered)
    return module.emitError() << "no public function to lower to a program";

  writer.setMetadata("producer", std::string("kiln ") + KILN_VERSION_STRING);
  for (const auto &kv : options.metadata)
    writer.setMetadata(kv.first, kv.second);
  for (const auto &asset : options.assets)
    writer.addAsset(asset.first, asset.second.data(), asset.second.size());

  WriteResult result = writer.writeToFile(outputPath.str());
  if (!result.ok())
    return module.emitError() << "cannot write program '" << outputPath << "': " << result.error;
  return success();
}

} // namespace kiln
