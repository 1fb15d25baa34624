//===- Pipeline.cpp - the kiln compile pipeline ---------------------------===//

#include "passes/Passes.h"

#include "mlir/Transforms/Passes.h"

namespace kiln {

void buildCompilePipeline(mlir::OpPassManager &pm, const PipelineOptions &options) {
  pm.addPass(mlir::createCanonicalizerPass());
  pm.addPass(mlir::createCSEPass());
  if (options.dedupWeights)
    pm.addPass(createDedupWeights(DedupWeightsOptions{options.report}));
}

} // namespace kiln
