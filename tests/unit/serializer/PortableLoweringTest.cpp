// writePortableProgram: a module of kiln ops becomes a program whose methods,
// values, instructions (operands placed by declared position, attributes
// converted generically), constants (dense, splat, i1, resource blobs,
// deduplicated across methods), locations and metadata are checked by reading
// the file back with the verifying reader. The ops are parsed in generic form
// with unregistered dialects allowed, so this tests the lowering alone.
#include "lowering/portable/PortableLowering.h"
#include "serializer/ProgramReader.h"

#include "kiln/Dialect/KilnDialect.h"
#include "kiln/Dialect/KilnOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace kiln {
namespace {

std::vector<uint8_t> readFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

std::string tempPath(const std::string &name) {
  const char *base = std::getenv("TMPDIR");
  return std::string(base && *base ? base : "/tmp") + "/kiln-lowering-" +
         std::to_string(::getpid()) + "-" + name;
}

std::vector<int32_t> ints32(const flatbuffers::Vector<int32_t> *v) {
  return v ? std::vector<int32_t>(v->begin(), v->end()) : std::vector<int32_t>();
}
std::vector<int64_t> ints64(const flatbuffers::Vector<int64_t> *v) {
  return v ? std::vector<int64_t>(v->begin(), v->end()) : std::vector<int64_t>();
}

const fb::Attribute *findAttr(const fb::Instruction *inst, const char *name) {
  if (!inst->attrs())
    return nullptr;
  for (const fb::Attribute *a : *inst->attrs())
    if (a->name()->str() == name)
      return a;
  return nullptr;
}

class PortableLoweringTest : public ::testing::Test {
protected:
  PortableLoweringTest() {
    context.loadDialect<mlir::func::FuncDialect>();
    context.allowUnregisteredDialects(true);
  }

  /// Parses `source`, lowers it to `path`; collects diagnostics in `diagnostics`.
  mlir::LogicalResult lower(const std::string &source, const std::string &path,
                            const ProgramOptions &options = {}) {
    mlir::ScopedDiagnosticHandler handler(&context, [&](mlir::Diagnostic &diag) {
      std::string loc;
      llvm::raw_string_ostream os(loc);
      os << diag.getLocation();
      diagnostics += os.str() + ": " + diag.str() + "\n";
      return mlir::success();
    });
    mlir::OwningOpRef<mlir::ModuleOp> module =
        mlir::parseSourceString<mlir::ModuleOp>(source, &context);
    if (!module) {
      ADD_FAILURE() << "test module does not parse:\n" << diagnostics;
      return mlir::failure();
    }
    return writePortableProgram(*module, path, options);
  }

  /// Reads and verifies the program at `path` into `bytes` / `view`.
  void read(const std::string &path) {
    bytes = readFile(path);
    std::string error;
    ASSERT_TRUE(readProgram(bytes.data(), bytes.size(), ReadOptions(), &view, &error)) << error;
  }

  mlir::MLIRContext context;
  std::string diagnostics;
  std::vector<uint8_t> bytes;
  ProgramView view;
};

const char *kTwoMethods = R"mlir(
module {
  func.func @forward(%x: tensor<?x3xf32> {kiln.name = "x"}, %pos: tensor<*xi64>)
      -> (tensor<?x2xf32>, tensor<*xi64>, tensor<2xf32>, tensor<?x2xf32>) {
    %w = "kiln.constant"() {value = dense<[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]> : tensor<2x3xf32>}
        : () -> tensor<2x3xf32> loc("model.py":3:1)
    %b = "kiln.constant"() {value = dense<0.5> : tensor<2xf32>} : () -> tensor<2xf32>
    %m = "kiln.constant"() {value = dense<[true, false, true, true]> : tensor<4xi1>} : () -> tensor<4xi1>
    %ms = "kiln.constant"() {value = dense<true> : tensor<2x2xi1>} : () -> tensor<2x2xi1>
    %r = "kiln.constant"() {value = dense_resource<blob1> : tensor<2xf32>} : () -> tensor<2xf32>
    %l = "kiln.linear"(%x, %w) : (tensor<?x3xf32>, tensor<2x3xf32>) -> tensor<?x2xf32>
        loc(fused["model.py":12:5, "other.py":3:4])
    %n = "kiln.layer_norm"(%l, %b) {normalized_ndim = 1 : i64, eps = 1.0e-05 : f64,
                                    operandSegmentSizes = array<i32: 1, 0, 1>}
        : (tensor<?x2xf32>, tensor<2xf32>) -> tensor<?x2xf32>
        loc(callsite("inner.py":7:1 at "model.py":20:1))
    %s = "kiln.reduce"(%n) {fn = "sum", dims = array<i64: 0, -1>, keepdim = true,
                            scales = array<f64: 0.5, 2.0>, list = [1, -2], flist = [1.5],
                            flag, kiln.name = "ignored"}
        : (tensor<?x2xf32>) -> tensor<?x2xf32> loc("y"("model.py":30:2))
    %parts:2 = "kiln.split"(%s) {dim = 1 : i64, chunks = 2 : i64}
        : (tensor<?x2xf32>) -> (tensor<?x1xf32>, tensor<?x1xf32>)
    %c = "kiln.concat"(%parts#0, %parts#1, %m, %ms, %r) {dim = 1 : i64}
        : (tensor<?x1xf32>, tensor<?x1xf32>, tensor<4xi1>, tensor<2x2xi1>, tensor<2xf32>)
        -> tensor<?x2xf32>
    return %s, %pos, %b, %c : tensor<?x2xf32>, tensor<*xi64>, tensor<2xf32>, tensor<?x2xf32>
  }
  func.func @decode(%x: tensor<1x3xf32>) -> tensor<1x2xf32> {
    %w = "kiln.constant"() {value = dense<[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]> : tensor<2x3xf32>}
        : () -> tensor<2x3xf32>
    %l = "kiln.linear"(%x, %w) : (tensor<1x3xf32>, tensor<2x3xf32>) -> tensor<1x2xf32>
    return %l : tensor<1x2xf32>
  }
  func.func private @helper(%x: f64) -> f64 {
    return %x : f64
  }
}
{-#
  dialect_resources: {
    builtin: {
      blob1: "0x040000000000803F00000040"
    }
  }
#-}
)mlir";

TEST_F(PortableLoweringTest, LowersMethodsValuesInstructionsAndConstants) {
  const std::string path = tempPath("two-methods.kiln");
  ProgramOptions options;
  options.metadata = {{"model", "tiny"}, {"source", "test"}};
  ASSERT_TRUE(mlir::succeeded(lower(kTwoMethods, path, options))) << diagnostics;
  read(path);
  std::remove(path.c_str());
  const fb::Program *p = view.program;

  // Metadata: producer first, then the options in order.
  ASSERT_EQ(p->metadata()->size(), 3u);
  EXPECT_EQ(p->metadata()->Get(0)->key()->str(), "producer");
  EXPECT_EQ(p->metadata()->Get(0)->value()->str().rfind("kiln ", 0), 0u);
  EXPECT_EQ(p->metadata()->Get(1)->key()->str(), "model");
  EXPECT_EQ(p->metadata()->Get(1)->value()->str(), "tiny");
  EXPECT_EQ(p->metadata()->Get(2)->key()->str(), "source");

  // Segments: weight (shared by both methods), expanded splat bias, i1 as bytes,
  // expanded i1 splat, resource blob.
  ASSERT_EQ(view.numSegments(), 5u);
  const float weight[] = {1, 2, 3, 4, 5, 6};
  const float bias[] = {0.5f, 0.5f};
  const uint8_t mask[] = {1, 0, 1, 1};
  const uint8_t maskSplat[] = {1, 1, 1, 1};
  const float blob[] = {1.0f, 2.0f};
  auto expectSegment = [&](uint32_t i, const void *data, size_t size) {
    SCOPED_TRACE("segment " + std::to_string(i));
    ASSERT_EQ(view.segmentSize(i), size);
    EXPECT_EQ(std::memcmp(view.segmentData(i), data, size), 0);
  };
  expectSegment(0, weight, sizeof(weight));
  expectSegment(1, bias, sizeof(bias));
  expectSegment(2, mask, sizeof(mask));
  expectSegment(3, maskSplat, sizeof(maskSplat));
  expectSegment(4, blob, sizeof(blob));

  ASSERT_EQ(p->methods()->size(), 2u); // the private helper is not lowered
  const fb::Method *fwd = p->methods()->Get(0);
  EXPECT_EQ(fwd->name()->str(), "forward");
  // Values: x, pos, 5 constants, l, n, s, parts#0, parts#1, c, copy(pos), copy(b).
  ASSERT_EQ(fwd->values()->size(), 15u);
  const fb::Value *x = fwd->values()->Get(0);
  EXPECT_EQ(x->name()->str(), "x");
  EXPECT_EQ(x->kind(), fb::ValueKind::Input);
  EXPECT_EQ(x->dtype(), fb::DType::Float32);
  EXPECT_EQ(x->rank(), 2);
  EXPECT_EQ(ints64(x->shape()), (std::vector<int64_t>{-1, 3}));
  const fb::Value *pos = fwd->values()->Get(1);
  EXPECT_EQ(pos->kind(), fb::ValueKind::Input);
  EXPECT_EQ(pos->dtype(), fb::DType::Int64);
  EXPECT_EQ(pos->rank(), -1);
  EXPECT_EQ(ints32(fwd->inputs()), (std::vector<int32_t>{0, 1}));

  const fb::Value *w = fwd->values()->Get(2);
  EXPECT_EQ(w->kind(), fb::ValueKind::Constant);
  EXPECT_EQ(w->segment(), 0);
  EXPECT_EQ(ints64(w->shape()), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(fwd->values()->Get(4)->dtype(), fb::DType::Bool);
  EXPECT_EQ(fwd->values()->Get(4)->segment(), 2);
  EXPECT_EQ(fwd->values()->Get(5)->segment(), 3);
  EXPECT_EQ(ints64(fwd->values()->Get(5)->shape()), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(fwd->values()->Get(6)->segment(), 4);

  // Instructions: linear, layer_norm, reduce, split, concat, copy, copy.
  ASSERT_EQ(fwd->instructions()->size(), 7u);
  const fb::Instruction *linear = fwd->instructions()->Get(0);
  EXPECT_EQ(linear->op()->str(), "linear");
  // Without a bias the program still lists all three declared operands.
  EXPECT_EQ(ints32(linear->inputs()), (std::vector<int32_t>{0, 2, -1}));
  EXPECT_EQ(ints32(linear->outputs()), (std::vector<int32_t>{7}));
  EXPECT_EQ(linear->loc()->str(), "model.py:12");
  EXPECT_EQ(linear->attrs()->size(), 0u);

  const fb::Instruction *norm = fwd->instructions()->Get(1);
  EXPECT_EQ(norm->op()->str(), "layer_norm");
  // operandSegmentSizes [1, 0, 1]: (x, weight absent, bias).
  EXPECT_EQ(ints32(norm->inputs()), (std::vector<int32_t>{7, -1, 3}));
  EXPECT_EQ(norm->loc()->str(), "inner.py:7");
  ASSERT_EQ(norm->attrs()->size(), 2u); // operandSegmentSizes is not an op attribute
  EXPECT_EQ(norm->attrs()->Get(0)->name()->str(), "eps");
  EXPECT_EQ(norm->attrs()->Get(0)->kind(), fb::AttrKind::Float);
  EXPECT_DOUBLE_EQ(norm->attrs()->Get(0)->f(), 1.0e-05);
  EXPECT_EQ(norm->attrs()->Get(1)->name()->str(), "normalized_ndim");
  EXPECT_EQ(norm->attrs()->Get(1)->kind(), fb::AttrKind::Int);
  EXPECT_EQ(norm->attrs()->Get(1)->i(), 1);

  const fb::Instruction *reduce = fwd->instructions()->Get(2);
  EXPECT_EQ(reduce->op()->str(), "reduce");
  EXPECT_EQ(reduce->loc()->str(), "model.py:30");
  EXPECT_EQ(fwd->values()->Get(9)->name()->str(), "y"); // from the NameLoc
  std::vector<std::string> names;
  for (const fb::Attribute *a : *reduce->attrs())
    names.push_back(a->name()->str());
  // Sorted by name; the discardable `kiln.name` is dropped.
  EXPECT_EQ(names, (std::vector<std::string>{"dims", "flag", "flist", "fn", "keepdim", "list",
                                             "scales"}));
  const fb::Attribute *a = findAttr(reduce, "dims");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->kind(), fb::AttrKind::Ints);
  EXPECT_EQ(ints64(a->ints()), (std::vector<int64_t>{0, -1}));
  a = findAttr(reduce, "flag"); // unit attribute
  ASSERT_TRUE(a);
  EXPECT_EQ(a->kind(), fb::AttrKind::Bool);
  EXPECT_EQ(a->i(), 1);
  a = findAttr(reduce, "flist");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->kind(), fb::AttrKind::Floats);
  ASSERT_EQ(a->floats()->size(), 1u);
  EXPECT_EQ(a->floats()->Get(0), 1.5);
  a = findAttr(reduce, "fn");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->kind(), fb::AttrKind::String);
  EXPECT_EQ(a->s()->str(), "sum");
  a = findAttr(reduce, "keepdim");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->kind(), fb::AttrKind::Bool);
  EXPECT_EQ(a->i(), 1);
  a = findAttr(reduce, "list");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->kind(), fb::AttrKind::Ints);
  EXPECT_EQ(ints64(a->ints()), (std::vector<int64_t>{1, -2}));
  a = findAttr(reduce, "scales");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->kind(), fb::AttrKind::Floats);
  ASSERT_EQ(a->floats()->size(), 2u);
  EXPECT_EQ(a->floats()->Get(1), 2.0);

  const fb::Instruction *split = fwd->instructions()->Get(3);
  EXPECT_EQ(split->op()->str(), "split");
  EXPECT_EQ(ints32(split->outputs()), (std::vector<int32_t>{10, 11}));
  const fb::Instruction *concat = fwd->instructions()->Get(4);
  EXPECT_EQ(ints32(concat->inputs()), (std::vector<int32_t>{10, 11, 4, 5, 6}));

  // Returned input and constant are copied into fresh outputs.
  const fb::Instruction *copyPos = fwd->instructions()->Get(5);
  EXPECT_EQ(copyPos->op()->str(), "copy");
  EXPECT_EQ(ints32(copyPos->inputs()), (std::vector<int32_t>{1}));
  EXPECT_EQ(ints32(copyPos->outputs()), (std::vector<int32_t>{13}));
  const fb::Instruction *copyB = fwd->instructions()->Get(6);
  EXPECT_EQ(ints32(copyB->inputs()), (std::vector<int32_t>{3}));
  EXPECT_EQ(ints32(copyB->outputs()), (std::vector<int32_t>{14}));
  EXPECT_EQ(ints32(fwd->outputs()), (std::vector<int32_t>{9, 13, 14, 12}));
  for (int32_t out : {9, 12, 13, 14})
    EXPECT_EQ(fwd->values()->Get(out)->kind(), fb::ValueKind::Output) << "value " << out;
  EXPECT_EQ(fwd->values()->Get(13)->rank(), -1);
  EXPECT_EQ(fwd->values()->Get(13)->dtype(), fb::DType::Int64);
  EXPECT_EQ(fwd->values()->Get(14)->segment(), -1);
  EXPECT_EQ(ints64(fwd->values()->Get(14)->shape()), (std::vector<int64_t>{2}));

  const fb::Method *decode = p->methods()->Get(1);
  EXPECT_EQ(decode->name()->str(), "decode");
  ASSERT_EQ(decode->values()->size(), 3u);
  EXPECT_EQ(decode->values()->Get(1)->segment(), 0); // deduplicated with forward's weight
  EXPECT_EQ(ints32(decode->outputs()), (std::vector<int32_t>{2}));
  // No explicit loc: the parser's own location of the op ("-" is the buffer name).
  EXPECT_EQ(decode->instructions()->Get(0)->loc()->str().rfind("-:", 0), 0u);
}

TEST_F(PortableLoweringTest, OutputIsDeterministic) {
  // Two compiles of the same input are two processes, so each lowering gets a
  // fresh context: parsing the module twice into one context would rename the
  // second copy's resource blobs (w -> w_1), and constants are named after them.
  auto lowerInFreshContext = [](const std::string &path) {
    mlir::MLIRContext fresh;
    fresh.loadDialect<mlir::func::FuncDialect>();
    fresh.allowUnregisteredDialects(true);
    mlir::OwningOpRef<mlir::ModuleOp> module =
        mlir::parseSourceString<mlir::ModuleOp>(kTwoMethods, &fresh);
    return module && mlir::succeeded(writePortableProgram(*module, path, ProgramOptions()));
  };
  const std::string a = tempPath("det-a.kiln"), b = tempPath("det-b.kiln");
  ASSERT_TRUE(lowerInFreshContext(a));
  ASSERT_TRUE(lowerInFreshContext(b));
  std::vector<uint8_t> bytesA = readFile(a), bytesB = readFile(b);
  std::remove(a.c_str());
  std::remove(b.c_str());
  ASSERT_FALSE(bytesA.empty());
  EXPECT_EQ(bytesA, bytesB);
}

// The same conversion through the registered dialect, whose inherent
// attributes (and operandSegmentSizes) are stored as op properties.
TEST(PortableLoweringRegisteredTest, ReadsInherentAttributesAndOperandSegments) {
  mlir::MLIRContext context;
  context.loadDialect<mlir::func::FuncDialect, ::kiln::KilnDialect>();
  std::string diagnostics;
  mlir::ScopedDiagnosticHandler handler(&context, [&](mlir::Diagnostic &diag) {
    diagnostics += diag.str() + "\n";
    return mlir::success();
  });
  const char *source = R"mlir(
    func.func @forward(%x: tensor<2x8xf32>) -> (tensor<2x8xf32>, tensor<2x4xf32>, tensor<2x4xf32>) {
      %b = kiln.constant dense<0.25> : tensor<8xf32>
      %w = kiln.constant dense<1.0> : tensor<4x8xf32>
      %n = kiln.layer_norm %x bias %b normalized_ndim 1 eps 1.000000e-05
          : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xf32>
      %r = kiln.rms_norm %n eps 1.000000e-06 : (tensor<2x8xf32>) -> tensor<2x8xf32>
      %c = kiln.clamp %r max 6.000000e+00 : (tensor<2x8xf32>) -> tensor<2x8xf32>
      %l = kiln.linear %c, %w : (tensor<2x8xf32>, tensor<4x8xf32>) -> tensor<2x4xf32>
      %s:2 = kiln.split %c dim 1 chunks 2 : (tensor<2x8xf32>) -> (tensor<2x4xf32>, tensor<2x4xf32>)
      return %c, %l, %s#1 : tensor<2x8xf32>, tensor<2x4xf32>, tensor<2x4xf32>
    })mlir";
  mlir::OwningOpRef<mlir::ModuleOp> module =
      mlir::parseSourceString<mlir::ModuleOp>(source, &context);
  ASSERT_TRUE(module) << diagnostics;
  const std::string path = tempPath("registered.kiln");
  ASSERT_TRUE(mlir::succeeded(writePortableProgram(*module, path, {}))) << diagnostics;
  std::vector<uint8_t> bytes = readFile(path);
  std::remove(path.c_str());
  ProgramView view;
  std::string error;
  ASSERT_TRUE(readProgram(bytes.data(), bytes.size(), ReadOptions(), &view, &error)) << error;

  const fb::Method *m = view.program->methods()->Get(0);
  // Values: x 0, b 1, w 2, n 3, r 4, c 5, l 6, s#0 7, s#1 8.
  ASSERT_EQ(m->instructions()->size(), 5u);
  const fb::Instruction *norm = m->instructions()->Get(0);
  EXPECT_EQ(norm->op()->str(), "layer_norm");
  EXPECT_EQ(ints32(norm->inputs()), (std::vector<int32_t>{0, -1, 1})); // weight absent
  std::vector<std::string> names;
  for (const fb::Attribute *a : *norm->attrs())
    names.push_back(a->name()->str());
  EXPECT_EQ(names, (std::vector<std::string>{"eps", "normalized_ndim"}));

  const fb::Instruction *rms = m->instructions()->Get(1);
  EXPECT_EQ(rms->op()->str(), "rms_norm");
  EXPECT_EQ(ints32(rms->inputs()), (std::vector<int32_t>{3, -1})); // weight absent
  ASSERT_EQ(rms->attrs()->size(), 1u);
  EXPECT_DOUBLE_EQ(rms->attrs()->Get(0)->f(), 1e-6);

  const fb::Instruction *clamp = m->instructions()->Get(2);
  EXPECT_EQ(clamp->op()->str(), "clamp");
  ASSERT_EQ(clamp->attrs()->size(), 1u); // the absent optional `min` is not written
  EXPECT_EQ(clamp->attrs()->Get(0)->name()->str(), "max");
  EXPECT_EQ(clamp->attrs()->Get(0)->f(), 6.0);

  const fb::Instruction *linear = m->instructions()->Get(3);
  EXPECT_EQ(ints32(linear->inputs()), (std::vector<int32_t>{5, 2, -1}));

  const fb::Instruction *split = m->instructions()->Get(4);
  ASSERT_NE(findAttr(split, "chunks"), nullptr);
  EXPECT_EQ(findAttr(split, "chunks")->kind(), fb::AttrKind::Int);
  EXPECT_EQ(findAttr(split, "chunks")->i(), 2);
  EXPECT_EQ(findAttr(split, "dim")->i(), 1);
  EXPECT_EQ(findAttr(split, "sizes"), nullptr);
  EXPECT_EQ(ints32(split->outputs()), (std::vector<int32_t>{7, 8}));
  EXPECT_EQ(ints32(m->outputs()), (std::vector<int32_t>{5, 6, 8}));

  // Splats are expanded: 8 x 0.25f and 32 x 1.0f.
  ASSERT_EQ(view.numSegments(), 2u);
  ASSERT_EQ(view.segmentSize(0), 32u);
  ASSERT_EQ(view.segmentSize(1), 128u);
  float f;
  std::memcpy(&f, view.segmentData(0) + 28, 4);
  EXPECT_EQ(f, 0.25f);
  std::memcpy(&f, view.segmentData(1) + 124, 4);
  EXPECT_EQ(f, 1.0f);
}

/// Lowering `source` fails with a diagnostic containing `needle` and writes no file.
void expectLoweringError(mlir::LogicalResult result, const std::string &diagnostics,
                         const std::string &path, const std::string &needle) {
  EXPECT_TRUE(mlir::failed(result));
  EXPECT_NE(diagnostics.find(needle), std::string::npos)
      << "expected '" << needle << "' in:\n" << diagnostics;
  struct stat st;
  EXPECT_NE(::stat(path.c_str(), &st), 0) << "a file was written at " << path;
}

TEST_F(PortableLoweringTest, RejectsNonKilnOps) {
  const std::string path = tempPath("bad-op.kiln");
  auto r = lower(R"mlir(
    func.func @f(%x: tensor<2xf32>) -> tensor<2xf32> {
      %y = "arith.addf"(%x, %x) : (tensor<2xf32>, tensor<2xf32>) -> tensor<2xf32> loc("m.py":4:1)
      return %y : tensor<2xf32>
    })mlir",
                 path);
  expectLoweringError(r, diagnostics, path,
                      "loc(\"m.py\":4:1): cannot lower 'arith.addf' to the portable program");
}

TEST_F(PortableLoweringTest, RejectsNonTensorTypes) {
  const std::string path = tempPath("bad-type.kiln");
  auto r = lower(R"mlir(
    func.func @f(%x: i64) -> i64 {
      return %x : i64
    })mlir",
                 path);
  expectLoweringError(r, diagnostics, path,
                      "cannot lower argument #0 of 'f' of type 'i64' to the portable program: "
                      "only tensor types are supported");
}

TEST_F(PortableLoweringTest, RejectsElementTypesWithoutDType) {
  const std::string path = tempPath("bad-dtype.kiln");
  auto r = lower(R"mlir(
    func.func @f(%x: tensor<2xf32>) -> tensor<2xf64> {
      %y = "kiln.cast"(%x) {dtype = "f64"} : (tensor<2xf32>) -> tensor<2xf64>
      return %y : tensor<2xf64>
    })mlir",
                 path);
  expectLoweringError(r, diagnostics, path,
                      "cannot lower result #0 of 'kiln.cast' of type 'tensor<2xf64>' to the "
                      "portable program: element type 'f64' has no program dtype");
}

TEST_F(PortableLoweringTest, RejectsUnsupportedAttributes) {
  const std::string path = tempPath("bad-attr.kiln");
  auto r = lower(R"mlir(
    func.func @f(%x: tensor<2xf32>) -> tensor<2xf32> {
      %y = "kiln.unary"(%x) {fn = "neg", mixed = [1, 2.0]} : (tensor<2xf32>) -> tensor<2xf32>
      return %y : tensor<2xf32>
    })mlir",
                 path);
  expectLoweringError(r, diagnostics, path,
                      "cannot lower attribute 'mixed' of 'kiln.unary' to a program attribute: "
                      "array elements must be all integers or all floats");
}

TEST_F(PortableLoweringTest, ReportsUnwritablePath) {
  const std::string path = tempPath("missing-dir") + "/p.kiln";
  auto r = lower(R"mlir(
    func.func @f(%x: tensor<2xf32>) -> tensor<2xf32> {
      %y = "kiln.unary"(%x) {fn = "neg"} : (tensor<2xf32>) -> tensor<2xf32>
      return %y : tensor<2xf32>
    })mlir",
                 path);
  expectLoweringError(r, diagnostics, path, "cannot write program '" + path + "'");
}

} // namespace
} // namespace kiln
