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
  // Sibling linears (q/k/v, gate/up) next to each other: the runtime runs
  // each run of them as one parallel job. Only reorders; before the plan.
  if (options.groupLinears)
    pm.addPass(createGroupLinears(GroupLinearsOptions{options.report}));
  // Last: lifetimes are taken over the final op order.
  if (options.planMemory)
    pm.addPass(createPlanMemory(PlanMemoryOptions{options.report}));
}

} // namespace kiln
