// A loaded Kiln program: the mmapped, verified file plus one executable plan per
// method (kernels resolved and attributes parsed at load time).
#ifndef KILN_RUNTIME_CORE_PROGRAM_H
#define KILN_RUNTIME_CORE_PROGRAM_H

#include "runtime-stub/core/Error.h"
#include "runtime-stub/core/Tensor.h"
#include "runtime-stub/core/ThreadPool.h"
#include "serializer/ProgramReader.h"

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace kiln {
namespace rt {

struct LoadOptions {
  /// Check every constant segment's FNV-1a 64 hash at load (reads all weights).
  bool verifySegmentHashes = true;
  /// Threads the kernels may use (docs/runtime-threads.md): 0 = the machine's
  /// physical cores (ThreadPool::physicalCores), 1 = the caller's thread only.
  int numThreads = 0;
  /// Run the portable scalar kernels even where optimized (SIMD) ones exist.
  bool portableKernels = false;
  /// Time every instruction from the first run on (Program::setProfiling).
  bool profile = false;
};

/// Declared type of a method input/output. rank -1 = unknown; dim -1 = dynamic;
/// dtype Unknown = decided at run time.
struct ValueInfo {
  std::string name;
  DType dtype = DType::Unknown;
  int rank = -1;
  std::vector<int64_t> dims;
  /// "f32[1,?,3]", "f32[*]" (unknown rank), "?[2]" (unknown dtype).
  std::string str() const;
};

struct MethodInfo {
  std::string name;
  std::vector<ValueInfo> inputs;
  std::vector<ValueInfo> outputs;
  size_t numInstructions = 0;
  /// Memory plan (docs/program-format.md): the arena one run needs (0 = no
  /// planned values), its lower bound, the bytes without reuse, and how many
  /// values are bound to the arena.
  uint64_t arenaBytes = 0;
  uint64_t arenaLowerBoundBytes = 0;
  uint64_t naiveBytes = 0;
  size_t numPlannedValues = 0;
  /// `linear` calls whose weight a later linear of the method reads again
  /// (kept in cache instead of streamed past it: MobileLLM-LS blocks).
  size_t numWeightsReadAgain = 0;
  /// Runs of 2 or more consecutive `linear` calls reading the same input,
  /// each run as one parallel job (kernels: runLinearGroup), and the calls in them.
  size_t numLinearGroups = 0;
  size_t numGroupedLinears = 0;
  /// Views whose result the memory plan put on their operand with the same
  /// bytes: skipped at run time (nothing to copy).
  size_t numNoopViews = 0;
  /// Decode attentions whose KV cache rows an idle worker is asked to
  /// prefetch while the ops before them run (ThreadPool::prefetchHint).
  size_t numKvPrefetchHints = 0;
};

struct MethodPlan; // internal

/// Time spent in one instruction of a method since profiling was switched on
/// (Program::setProfiling): wall time of the kernel call, pool included.
struct InstructionProfile {
  uint32_t index = 0; // instruction index in the method
  std::string op;     // "linear"
  std::string loc;    // source location, may be empty
  std::string output; // the first output as last computed, e.g. "f32[1, 1, 576]"
  uint64_t calls = 0;
  uint64_t nanoseconds = 0;
};

class Program {
public:
  /// Maps `path` read-only, verifies it and builds the method plans.
  static Result<std::unique_ptr<Program>> load(const std::string &path,
                                               const LoadOptions &options = {});
  /// Same from bytes in memory (copied into an aligned buffer the Program owns).
  static Result<std::unique_ptr<Program>> loadFromBytes(const void *data, size_t size,
                                                        const LoadOptions &options = {});
  ~Program();
  Program(const Program &) = delete;
  Program &operator=(const Program &) = delete;

  std::vector<std::string> methodNames() const;
  /// Null if there is no such method.
  const MethodInfo *methodInfo(const std::string &name) const;

  /// Runs a method. Inputs are checked against the declared dtype/rank/static
  /// dims. Returned tensors own (or share) their storage, except outputs that
  /// are constants: those borrow the mapped file and live as long as the Program.
  /// Not thread-safe: one run at a time per Program (buffers are reused).
  /// Planned values (memory plan) live in one arena shared by all methods (they
  /// never run at once; docs/program-format.md "At run time"), allocated at the
  /// first run unless setArena gave the method one; outputs are copied out of
  /// the arena, so they stay valid after later runs.
  Result<std::vector<Tensor>> run(const std::string &method, const std::vector<Tensor> &inputs);

  /// Index of `method` for runViews (stable for the Program's life), -1 if none.
  int methodIndex(const std::string &method) const;
  /// Runs a method like run(), but without copying: `outputs` receives views of
  /// the runtime's buffers (arena slices, states, constants, the inputs' data),
  /// valid until the next run of ANY method of this Program, setArena,
  /// resetState or the Program's destruction; clone() what must live longer.
  /// Nothing is allocated per call once `outputs` has the right size (decode
  /// loops: docs/runtime-kernels.md "Per-token overhead"). Input checks are the
  /// same as run()'s. Bit i of `skipOutputs` set = output i is not needed: the
  /// instructions that only feed skipped outputs (and write no state) do not
  /// run, and those outputs come back undefined (e.g. prefill chunks whose
  /// logits nobody reads: the KV cache is still written).
  Error runViews(int method, const std::vector<Tensor> &inputs, std::vector<Tensor> *outputs,
                 uint64_t skipOutputs = 0);
  Error runViews(const std::string &method, const std::vector<Tensor> &inputs,
                 std::vector<Tensor> *outputs, uint64_t skipOutputs = 0);
  /// Bytes of the arena the methods share (the largest arenaBytes of the
  /// methods without an arena of their own); allocated at the first run.
  uint64_t sharedArenaBytes() const;
  /// Gives the shared arena's memory past its first keepBytes back to the OS
  /// (the arena is scratch between runs; later runs fault the pages in again).
  /// E.g. the LLM runner after prefill, whose arena (the [1, C, V] logits) is
  /// far larger than decode's. Invalidates runViews outputs.
  void releaseArenaMemory(uint64_t keepBytes = 0);

  /// Gives `method` the caller's memory as its arena instead of one the runtime
  /// allocates: `data` must be 64-byte aligned and `size` at least
  /// methodInfo(method)->arenaBytes. The caller keeps it alive (and does not
  /// use it) while the Program runs this method. Replaces an earlier arena.
  Error setArena(const std::string &method, void *data, size_t size);

  /// Threads for the kernels of later runs: 0 = physical cores, 1 = the
  /// caller's thread only. InvalidArgument outside [0, kMaxThreads].
  Error setNumThreads(int n);
  int numThreads() const { return numThreads_; }
  /// The kernels' pool (null with one thread), e.g. for its stats().
  ThreadPool *threadPool() const { return pool_.get(); }
  static constexpr int kMaxThreads = 256;

  /// Per-instruction timing of later runs (off by default: one clock read
  /// per instruction when on). Switching it on clears earlier figures.
  void setProfiling(bool on);
  bool profiling() const { return profiling_; }
  /// The figures of `method` since profiling was switched on, in instruction
  /// order (instructions that never ran are left out); empty if none.
  std::vector<InstructionProfile> profile(const std::string &method) const;

  /// The verified file (header, flatbuffer, segments).
  const ProgramView &view() const { return view_; }
  /// Program-level mutable state by name (zero at load), or null.
  const Tensor *state(const std::string &name) const;
  /// Names of the program-level states (KV caches), in file order.
  std::vector<std::string> stateNames() const;
  /// Sets every state to zero (as at load), e.g. before a new generation.
  /// Methods update states in place; run() copies a state only when a method
  /// returns it as an output.
  Error resetState();

  /// Program.metadata value of `key`, or null when the program has no such key.
  const std::string *metadata(const std::string &key) const;
  /// All metadata (key, value) pairs, in file order.
  std::vector<std::pair<std::string, std::string>> metadataEntries() const;
  /// The bytes of the named asset (Program.assets, e.g. "tokenizer"): a view
  /// into the program file, valid while the Program lives. An InvalidArgument
  /// error naming the available assets when there is none of that name.
  Result<std::pair<const uint8_t *, size_t>> asset(const std::string &name) const;
  /// Names of the assets, in file order.
  std::vector<std::string> assetNames() const;

private:
  Program() = default;
  static Result<std::unique_ptr<Program>> finishLoad(std::unique_ptr<Program> p,
                                                     const LoadOptions &options);
  /// Checks the inputs, binds the arena and runs every instruction of `plan`;
  /// the outputs are then in the plan's slots (inputs stay bound: unbindInputs).
  Error execute(MethodPlan &plan, const std::vector<Tensor> &inputs, uint64_t skipOutputs);
  void unbindInputs(MethodPlan &plan);

  // Exactly one of mapping_ / ownedBytes_ holds the file.
  void *mapping_ = nullptr;
  size_t mappingSize_ = 0;
  std::unique_ptr<Storage> ownedBytes_;
  const uint8_t *bytes_ = nullptr;
  size_t size_ = 0;

  ProgramView view_;
  std::vector<std::string> stateNames_;
  std::vector<Tensor> states_; // bound to stateMapping_
  void *stateMapping_ = nullptr;
  size_t stateMappingSize_ = 0;
  std::vector<std::pair<std::string, std::string>> metadata_;
  std::vector<std::unique_ptr<MethodPlan>> methods_;
  /// Maps the shared arena if it is missing or too small (sharedArenaBytes).
  Error ensureSharedArena();
  void *sharedArena_ = nullptr; // the methods' arena (unless setArena), mapped
  size_t sharedArenaSize_ = 0;
  int numThreads_ = 1;
  std::unique_ptr<ThreadPool> pool_; // null when numThreads_ == 1
  bool portableKernels_ = false;
  bool profiling_ = false;
};

} // namespace rt
} // namespace kiln

#endif // KILN_RUNTIME_CORE_PROGRAM_H
