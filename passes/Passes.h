//===- Passes.h - the kiln passes -------------------------------*- C++ -*-===//
//
// Exposes what TableGen generates from Passes.td (pass declarations, options,
// factory functions, registration) plus the compile pipeline.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_PASSES_PASSES_H
#define KILN_PASSES_PASSES_H

#include "kiln/Dialect/KilnDialect.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassManager.h"

#include <memory>
#include <string>

namespace kiln {

#define GEN_PASS_DECL
#include "passes/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "passes/Passes.h.inc"

/// The choices of `kiln compile` that shape the pass pipeline.
struct PipelineOptions {
  bool dedupWeights = true;
  /// Weight-only quantization (kiln-quantize): "none", "int8" or "int4".
  std::string quantize = "none";
  /// int4: in-features per scale (32, 64 or 128).
  int64_t groupSize = 32;
  /// kiln-plan-memory (runs last: it plans over the final op order).
  bool planMemory = true;
  /// kiln-group-linears: linears reading the same input become consecutive.
  bool groupLinears = true;
  /// kiln-fuse: RMSNorm, SwiGLU, RoPE and attention become fused ops.
  bool fuse = true;
  /// Each kiln pass emits a remark saying what it did.
  bool report = false;
};

/// The pass pipeline `kiln compile` runs between the front end and the
/// lowering: canonicalize + CSE, then the kiln passes in order.
void buildCompilePipeline(mlir::OpPassManager &pm, const PipelineOptions &options);

} // namespace kiln

#endif // KILN_PASSES_PASSES_H
