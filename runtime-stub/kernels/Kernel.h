// The kernel interface: one KernelDef per dialect op (docs/dialect.md). At load
// time the executor resolves each instruction's KernelDef by op name and calls
// `parse` to turn the generic attributes into an OpAttrs struct; at run time it
// calls `run`, which computes output shapes/dtypes from the inputs, allocates the
// outputs and fills them. Kernels never throw; failures are Errors naming the op,
// its source location and the shapes involved.
#ifndef KILN_RUNTIME_KERNELS_KERNEL_H
#define KILN_RUNTIME_KERNELS_KERNEL_H

#include "runtime-stub/core/Error.h"
#include "runtime-stub/core/Tensor.h"
#include "runtime-stub/kernels/Attributes.h"

#include <string>
#include <vector>

namespace kiln {
namespace rt {

class ThreadPool;

enum class SplitMode : uint8_t { SplitSize, Sizes, Chunks };

/// Pre-parsed attributes of one instruction (only the fields of its op are set).
struct OpAttrs {
  int fn = 0;               // UnaryFn / BinaryFn / CompareFn / ReduceFn value
  bool hasDim = false;
  int64_t dim = 0;
  int64_t dim0 = 0, dim1 = 0;
  std::vector<int64_t> ints; // dims / perm / repeats / sizes / constant shape
  std::vector<double> floats; // constant payload (float)
  bool keepdim = false;
  bool log = false;
  bool upper = false;
  int64_t normalizedNdim = 1;
  double eps = 1e-5;
  bool hasDtype = false;
  DType dtype = DType::Unknown;
  bool hasMin = false, hasMax = false;
  double minValue = 0, maxValue = 0;
  int64_t step = 1;
  SplitMode splitMode = SplitMode::SplitSize;
  int64_t count = 0;        // split_size / chunks / repeats (repeat_interleave)
  int64_t startDim = 0, endDim = -1;
  int64_t diagonal = 0;
  double value = 0;
  double scale = 1.0;       // attention
  bool causal = false;      // attention
  bool transposeB = false;  // matmul
};

/// One kernel invocation. in[i] is null for an absent optional operand.
struct KernelCall {
  const char *op = "";
  const std::string *loc = nullptr;
  const OpAttrs *attrs = nullptr;
  const Tensor *const *in = nullptr;
  int nIn = 0;
  Tensor *const *out = nullptr;
  int nOut = 0;
  /// Threads for this call (core/ThreadPool.h); null = run on the caller's thread.
  ThreadPool *pool = nullptr;
  /// Use only the portable scalar kernels (LoadOptions::portableKernels).
  bool portableOnly = false;
  /// `linear` only, set at load (core/Program.cpp): a later linear of the same
  /// method reads this call's weight again (MobileLLM-LS runs each block twice),
  /// so the kernel keeps it in cache; otherwise, on AMD CPUs, int4 weights
  /// stream past the caches with the NTA prefetch hint (docs/runtime-kernels.md
  /// "Weights in cache").
  bool weightReadAgain = false;

  const Tensor *input(int i) const { return i < nIn ? in[i] : nullptr; }
  /// An Error with `message`; the executor adds method, instruction, op and
  /// source location in front (InvalidArgument unless `code` is given).
  Error fail(const std::string &message, ErrorCode code = ErrorCode::InvalidArgument) const;
};

/// Runs n consecutive `linear` calls that read the same x as one parallel job
/// (opt::linearGroup; the program finds them at load, kiln-group-linears makes
/// them consecutive). *ran is false, and nothing was computed, when some call
/// needs the general path (portable kernels, other dtypes, invalid operands):
/// the caller then runs each call on its own. kernels/LinearAlgebra.cpp.
Error runLinearGroup(const KernelCall *const *calls, int n, bool *ran);
/// Most calls in one linear group (opt::kMaxLinearGroup).
constexpr int kMaxLinearGroupSize = 8;

struct KernelDef {
  const char *name;
  int minInputs;
  int maxInputs;  // -1: variadic
  int minOutputs;
  int maxOutputs; // -1: any number
  /// Which inputs may be absent (-1 index): bit i set = input i optional.
  uint32_t optionalInputs;
  Error (*parse)(const AttrSet &attrs, OpAttrs *out);
  Error (*run)(const KernelCall &call);
  /// Which inputs may be quantized weights (Tensor::isQuantized): bit i set =
  /// input i. Any other use of a quantized weight is rejected at load.
  uint32_t quantizedInputs = 0;
};

/// The kernel for a dialect op name, or null if there is none.
const KernelDef *findKernel(const std::string &name);
/// All kernels (for listing and tests).
const std::vector<const KernelDef *> &allKernels();

} // namespace rt
} // namespace kiln

#endif // KILN_RUNTIME_KERNELS_KERNEL_H
