//===- Passes.td - the kiln passes -------------------------*- tablegen -*-===//
//
// Every kiln pass: its flag (kiln-...), summary, description, options and
// statistics. One pass per .cpp file in passes/, named after the pass, using
// the generated GEN_PASS_DEF_<NAME> base. Each has a lit test named after it
// in tests/lit/passes/.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_PASSES
#define KILN_PASSES

include "mlir/Pass/PassBase.td"

def DedupWeights : Pass<"kiln-dedup-weights", "mlir::ModuleOp"> {
  let summary = "store constants with identical bytes once";
  let description = [{
    Finds `kiln.constant` ops whose values have the same type and the same
    bytes (a content hash, then a byte comparison) and makes them one: within
    a function, every use moves to the first such constant and the others are
    erased; across functions (methods), every copy is rewritten to refer to the
    first one's value (the same resource blob), so the program stores it once.
    This covers tied embeddings (embedding table and output head), blocks
    executed several times with shared weights (MobileLLM-LS), and any weight
    that tracing duplicated. Constants of different types or shapes never merge,
    even when their bytes are equal.
  }];
  let dependentDialects = ["kiln::KilnDialect"];
  let options = [
    Option<"report", "report", "bool", /*default=*/"false",
           "Emit a remark with what the pass did (the statistics below are "
           "compiled out of release LLVM builds such as Debian's)">,
  ];
  let statistics = [
    Statistic<"numConstants", "constants", "Number of constants examined">,
    Statistic<"numMerged", "merged", "Number of constants merged into another">,
    Statistic<"bytesSaved", "bytes-saved", "Bytes of constant data no longer stored twice">,
  ];
}

#endif // KILN_PASSES
