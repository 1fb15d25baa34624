//===- GroupLinears.cpp - kiln-group-linears ------------------------------===//
//
// Linears that read the same input (q / k / v, gate / up) are moved next to
// the first of them, so the runtime can run each run of them as one parallel
// job over all their output channels (one hand-off instead of several, the
// input quantized once). Only the op order changes.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "kiln/Dialect/KilnOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/SmallVector.h"

namespace kiln {
#define GEN_PASS_DEF_GROUPLINEARS
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace kiln {
namespace {

/// Whether `value` is available right after `pos`: a block argument, or
/// defined by `pos` or an op before it. A constant-like op without operands
/// (a weight) defined later is moved up before `first` to make it so.
bool makeAvailable(Value value, Operation *pos, Operation *first) {
  Operation *def = value.getDefiningOp();
  if (!def || def == pos || def->isBeforeInBlock(pos))
    return true;
  if (def->getNumOperands() == 0 && isa<ConstantOp, QConstantOp>(def)) {
    def->moveBefore(first);
    return true;
  }
  return false;
}

class GroupLinearsPass : public impl::GroupLinearsBase<GroupLinearsPass> {
public:
  using GroupLinearsBase::GroupLinearsBase;

  void runOnOperation() override {
    uint64_t moved = 0, groups = 0;
    for (auto func : getOperation().getOps<func::FuncOp>()) {
      llvm::SmallVector<LinearOp> linears;
      func.walk([&](LinearOp op) { linears.push_back(op); });
      llvm::DenseSet<Operation *> placed;
      for (LinearOp first : linears) {
        if (placed.contains(first))
          continue;
        placed.insert(first);
        // Later linears of the same block reading the same x, in op order.
        llvm::SmallVector<LinearOp> siblings;
        for (Operation *user : first.getX().getUsers())
          if (auto other = dyn_cast<LinearOp>(user))
            if (other != first && other->getBlock() == first->getBlock() &&
                first->isBeforeInBlock(other) && !placed.contains(other) &&
                other.getX() == first.getX())
              siblings.push_back(other);
        llvm::sort(siblings, [](LinearOp a, LinearOp b) { return a->isBeforeInBlock(b); });
        Operation *pos = first;
        int64_t run = 1;
        for (LinearOp other : siblings) {
          bool ok = true;
          for (Value operand : other->getOperands())
            ok = ok && makeAvailable(operand, pos, first);
          if (!ok)
            continue;
          if (pos->getNextNode() != other.getOperation()) {
            other->moveAfter(pos);
            ++numMoved;
            ++moved;
          }
          placed.insert(other);
          pos = other;
          ++run;
        }
        if (run > 1) {
          ++numGroups;
          ++groups;
        }
      }
    }
    if (report)
      emitRemark(getOperation().getLoc())
          << "kiln-group-linears: " << groups << " groups of linears sharing an input, "
          << moved << " linears moved";
  }
};

} // namespace
} // namespace kiln
