//===- Pipeline.cpp - the kiln compile pipeline ---------------------------===//

#include "passes/Passes.h"

#include "mlir/Transforms/Passes.h"

namespace kiln {

void buildCompilePipeline(mlir::OpPassManager &pm, const PipelineOptions &options) {
  pm.addPass(mlir::createCanonicalizerPass());
  pm.addPass(mlir::createCSEPass());
  if (options.fuse) {
    pm.addPass(createFuseOps(FuseOpsOptions{options.report}));
    pm.addPass(mlir::createCanonicalizerPass());
  }
  if (options.dedupWeights)
    pm.addPass(createDedupWeights(DedupWeightsOptions{options.report}));
  // After dedup (a tied embedding/head is one constant, quantized once) and
  // before memory planning.
  if (options.quantize != "none") {
    QuantizeOptions quantize;
    quantize.mode = options.quantize;
    quantize.groupSize = options.groupSize;
    quantize.report = options.report;
    pm.addPass(createQuantize(quantize));
  }
  // Last: lifetimes are taken over the final op order.
  if (options.planMemory)
    pm.addPass(createPlanMemory(PlanMemoryOptions{options.report}));
}

} // namespace kiln
