#include "runtime-stub/core/Program.h"

#include "runtime-stub/kernels/Kernel.h"
#include "runtime-stub/kernels/KernelUtil.h"

#include <cerrno>
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <unordered_set>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace kiln {
namespace rt {

/// Declared type of a value, for checks after each kernel.
struct ValueDecl {
  DType dtype = DType::Unknown;
  int rank = -1;
  int64_t dims[kMaxRank] = {};
  std::string name;
};

struct PlannedInstruction {
  const KernelDef *kernel = nullptr;
  OpAttrs attrs;
  std::string op;
  std::string loc;
  std::string label; // "instruction 3 (linear at m.py:4)"
  std::vector<int> outIdx;
  std::vector<int> inIdx;         // -1 = absent operand
  std::vector<const Tensor *> in; // null = absent operand
  std::vector<Tensor *> out;
  /// Built once at load (pointers into the vectors above, never resized);
  /// run() only sets pool/portableOnly.
  KernelCall call;
  /// Every output is declared with a known dtype and fully static shape: once
  /// a run with static inputs checked them, later runs skip the check.
  bool staticOutputs = false;
  /// First `linear` of a run of consecutive linears reading the same input
  /// (findLinearGroups): the run's length, else 0.
  int linearGroup = 0;
  /// A view whose result the memory plan put on its operand, with the same
  /// bytes (findNoopViews): nothing to do, execute() skips it.
  bool noopView = false;
  /// Before this instruction runs, execute() asks the pool's idle workers to
  /// prefetch the KV cache rows that decode attention instruction kvHintFor
  /// will read (planKvPrefetch); -1: none.
  int kvHintFor = -1;
};

struct MethodPlan {
  MethodInfo info;
  std::vector<Tensor> slots; // one per value; never resized after load
  std::vector<ValueDecl> decls;
  std::vector<uint8_t> isStateOrConst;
  std::vector<int> inputIdx;
  std::vector<int> outputIdx;
  /// Per output: which input it is (-1 = not an input), precomputed at load.
  std::vector<int> outputIsInput;
  std::vector<Tensor *> valuePtr; // slot or program state, per value
  std::vector<PlannedInstruction> instrs;
  std::vector<int64_t> arenaOffset; // per value; -1 = allocated by the kernels
  uint8_t *arena = nullptr;         // null until bound
  bool ownArena = false;            // setArena gave this method its own
  /// Every input is declared with a known dtype and static shape.
  bool staticInputs = false;
  /// A run with (static) inputs passed every output check.
  bool outputsVerified = false;
  /// Which instructions run for the outputs not in liveSkip (runViews'
  /// skipOutputs); recomputed when the mask changes.
  uint64_t liveSkip = 0;
  std::vector<uint8_t> live; // empty = all
  /// Per instruction, while profiling (Program::setProfiling).
  std::vector<uint64_t> profNs, profCalls;
};

namespace {
/// KernelCall::weightReadAgain for every `linear` whose weight (a constant: same
/// data) a later linear of the method reads too. Decode streams each weight
/// once per token, so on AMD CPUs the int4 kernels prefetch weights
/// non-temporally and keep the caches for the KV cache and activations; the
/// shared blocks of MobileLLM-LS run twice in a row and their first run must
/// leave the weights in cache for the second.
void markWeightsReadAgain(MethodPlan &plan) {
  std::unordered_set<const void *> later;
  for (auto it = plan.instrs.rbegin(); it != plan.instrs.rend(); ++it) {
    if (it->op != "linear" || it->in.size() < 2 || !it->in[1] || !it->in[1]->data())
      continue;
    it->call.weightReadAgain = !later.insert(it->in[1]->data()).second;
    plan.info.numWeightsReadAgain += it->call.weightReadAgain ? 1 : 0;
  }
}

/// Runs of consecutive `linear` instructions that read the same input value
/// (q / k / v, gate / up: kiln-group-linears puts them next to each other):
/// execute() hands each run to runLinearGroup as one parallel job.
void findLinearGroups(MethodPlan &plan) {
  // Arena bytes [offset, offset + size) of value v, or {-1, 0} when unplanned.
  auto range = [&](int v) -> std::pair<int64_t, int64_t> {
    if (v < 0 || (size_t)v >= plan.arenaOffset.size() || plan.arenaOffset[(size_t)v] < 0)
      return {-1, 0};
    const ValueDecl &d = plan.decls[(size_t)v];
    int64_t bytes = d.dtype == DType::Unknown ? 0 : (int64_t)dtypeSize(d.dtype);
    for (int i = 0; i < d.rank; ++i)
      bytes *= std::max<int64_t>(d.dims[i], 0);
    return {plan.arenaOffset[(size_t)v], bytes};
  };
  // Members run at once: their outputs must not share arena bytes with each
  // other or with x (a compiled plan never does that, as every output lives
  // past the run; a hand-made one might).
  auto disjoint = [&](size_t k, size_t end) {
    std::vector<std::pair<int64_t, int64_t>> used;
    used.push_back(range(plan.instrs[k].inIdx.empty() ? -1 : plan.instrs[k].inIdx[0]));
    for (size_t j = k; j < end; ++j)
      used.push_back(range(plan.instrs[j].outIdx.empty() ? -1 : plan.instrs[j].outIdx[0]));
    for (size_t a = 0; a < used.size(); ++a)
      for (size_t b = a + 1; b < used.size(); ++b)
        if (used[a].first >= 0 && used[b].first >= 0 &&
            used[a].first < used[b].first + used[b].second &&
            used[b].first < used[a].first + used[a].second)
          return false;
    return true;
  };
  const size_t n = plan.instrs.size();
  for (size_t k = 0; k < n;) {
    const PlannedInstruction &first = plan.instrs[k];
    size_t end = k + 1;
    if (first.op == "linear" && !first.in.empty() && first.in[0])
      while (end < n && end - k < (size_t)kMaxLinearGroupSize && plan.instrs[end].op == "linear" &&
             !plan.instrs[end].in.empty() && plan.instrs[end].in[0] == first.in[0] &&
             disjoint(k, end + 1))
        ++end;
    if (end - k >= 2) {
      plan.instrs[k].linearGroup = (int)(end - k);
      ++plan.info.numLinearGroups;
      plan.info.numGroupedLinears += end - k;
    }
    k = end;
  }
}

bool isStaticDecl(const ValueDecl &d); // below

/// Views (reshape, flatten, unsqueeze, squeeze; transpose / permute moving only
/// size-1 dims) whose result kiln-plan-memory put on their operand's offset,
/// both static with the same dtype and element count: the bound result already
/// holds the operand's bytes under its declared shape, so the instruction has
/// nothing left to do (a decode step's [1,1,H,D] reshapes and transposes).
void findNoopViews(MethodPlan &plan) {
  for (PlannedInstruction &pi : plan.instrs) {
    const std::string &op = pi.op;
    const bool transpose = op == "transpose" || op == "permute";
    if (!transpose && op != "reshape" && op != "flatten" && op != "unsqueeze" && op != "squeeze")
      continue;
    if (pi.outIdx.size() != 1 || pi.inIdx.empty() || pi.inIdx[0] < 0)
      continue;
    const size_t o = (size_t)pi.outIdx[0], i = (size_t)pi.inIdx[0];
    if (plan.arenaOffset.size() <= std::max(o, i) || plan.arenaOffset[o] < 0 ||
        plan.arenaOffset[o] != plan.arenaOffset[i])
      continue;
    const ValueDecl &od = plan.decls[o], &id = plan.decls[i];
    if (!isStaticDecl(od) || !isStaticDecl(id) || od.dtype != id.dtype)
      continue;
    int64_t on = 1, in = 1;
    for (int k = 0; k < od.rank; ++k)
      on *= od.dims[k];
    for (int k = 0; k < id.rank; ++k)
      in *= id.dims[k];
    if (on != in)
      continue;
    if (transpose) {
      // The permutation must keep the dims of size > 1 in order.
      int perm[kMaxRank];
      const int r = id.rank;
      if (op == "transpose") {
        int64_t d0 = pi.attrs.dim0 < 0 ? pi.attrs.dim0 + r : pi.attrs.dim0;
        int64_t d1 = pi.attrs.dim1 < 0 ? pi.attrs.dim1 + r : pi.attrs.dim1;
        if (d0 < 0 || d0 >= r || d1 < 0 || d1 >= r)
          continue;
        for (int k = 0; k < r; ++k)
          perm[k] = k;
        std::swap(perm[d0], perm[d1]);
      } else {
        if ((int)pi.attrs.ints.size() != r)
          continue;
        bool ok = true;
        for (int k = 0; k < r; ++k) {
          int64_t p = pi.attrs.ints[(size_t)k];
          p = p < 0 ? p + r : p;
          ok = ok && p >= 0 && p < r;
          perm[k] = ok ? (int)p : 0;
        }
        if (!ok)
          continue;
      }
      bool shapeOk = od.rank == r;
      for (int k = 0; k < r && shapeOk; ++k)
        shapeOk = od.dims[k] == id.dims[perm[k]];
      if (!shapeOk || !permutationKeepsBytes(id.dims, r, perm))
        continue;
    }
    pi.noopView = true;
    ++plan.info.numNoopViews;
  }
}

/// Decode steps read each layer's KV cache from memory: the weights streamed
/// since the layer's previous step have pushed it out of the caches, and the
/// attention then waits on memory latency (~3x its time on cached rows). Each
/// decode `cached_attention` (one query row; start_pos a method input, so its
/// value is known when the step starts) gets a hint point: the instruction
/// after the previous attention (the first instruction for the first one).
/// There execute() posts the rows 0..start_pos of its caches as a prefetch
/// hint, which an idle worker pulls into its cache during the single-threaded
/// ops of the layer (docs/runtime-threads.md "Prefetch hints").
void planKvPrefetch(MethodPlan &plan) {
  size_t hintAt = 0;
  for (size_t k = 0; k < plan.instrs.size(); ++k) {
    PlannedInstruction &pi = plan.instrs[k];
    if (pi.op != "cached_attention" || pi.inIdx.size() != 4 || pi.in.size() != 4)
      continue;
    const size_t next = k + 1;
    const int qIdx = pi.inIdx[0], startIdx = pi.inIdx[3];
    const bool decode = qIdx >= 0 && plan.decls[(size_t)qIdx].rank == 4 &&
                        plan.decls[(size_t)qIdx].dims[2] == 1;
    const bool startIsInput = std::find(plan.inputIdx.begin(), plan.inputIdx.end(), startIdx) !=
                              plan.inputIdx.end();
    const bool caches = pi.in[1] && pi.in[2] && pi.inIdx[1] >= 0 && pi.inIdx[2] >= 0 &&
                        plan.isStateOrConst[(size_t)pi.inIdx[1]] &&
                        plan.isStateOrConst[(size_t)pi.inIdx[2]];
    if (decode && startIsInput && caches && hintAt < k && plan.instrs[hintAt].kvHintFor < 0) {
      plan.instrs[hintAt].kvHintFor = (int)k;
      ++plan.info.numKvPrefetchHints;
    }
    hintAt = next;
  }
}

/// Posts the KV cache rows that decode attention `attn` will read (positions
/// 0..start_pos of each head of both caches) as the pool's prefetch hint.
void postKvHint(const PlannedInstruction &attn, ThreadPool *pool) {
  const Tensor *k = attn.in[1], *v = attn.in[2], *sp = attn.in[3];
  if (!k || !v || !sp || !k->data() || !v->data() || !sp->data() || k->rank() != 4 ||
      v->shape() != k->shape() || sp->dtype() != DType::Int64 || sp->numel() != 1)
    return;
  const int64_t start = sp->dataAs<int64_t>()[0], s = k->dim(2);
  const int64_t heads = k->dim(0) * k->dim(1);
  if (start < 0 || start >= s || 2 * heads > ThreadPool::kMaxPrefetchRanges)
    return;
  const size_t rowBytes = (size_t)k->dim(3) * dtypeSize(k->dtype());
  PrefetchRange ranges[ThreadPool::kMaxPrefetchRanges];
  int n = 0;
  for (const Tensor *cache : {k, v})
    for (int64_t h = 0; h < heads; ++h)
      ranges[n++] = {static_cast<const uint8_t *>(cache->data()) + (size_t)(h * s) * rowBytes,
                     (size_t)(start + 1) * rowBytes};
  pool->prefetchHint(ranges, n);
}

/// Marks the instructions needed for the outputs not in `skip`: those that
/// write a state (the KV cache) or feed a needed value.
void computeLiveness(MethodPlan &plan, uint64_t skip) {
  plan.liveSkip = skip;
  plan.live.clear();
  if (skip == 0)
    return;
  std::vector<uint8_t> needed(plan.slots.size(), 0);
  for (size_t i = 0; i < plan.outputIdx.size(); ++i)
    if (i >= 64 || !((skip >> i) & 1u))
      needed[(size_t)plan.outputIdx[i]] = 1;
  plan.live.assign(plan.instrs.size(), 0);
  for (size_t k = plan.instrs.size(); k-- > 0;) {
    const PlannedInstruction &pi = plan.instrs[k];
    bool live = pi.outIdx.empty();
    for (int idx : pi.outIdx)
      if (needed[(size_t)idx] || plan.isStateOrConst[(size_t)idx])
        live = true;
    if (!live)
      continue;
    plan.live[k] = 1;
    for (int idx : pi.inIdx)
      if (idx >= 0)
        needed[(size_t)idx] = 1;
  }
}
} // namespace

namespace {
/// Binds every planned value's slot to its slice of `arena` (verified by the
/// reader: offset + static byte size <= arenaBytes).
void bindArena(MethodPlan &plan, void *arena) {
  plan.arena = static_cast<uint8_t *>(arena);
  for (size_t v = 0; v < plan.arenaOffset.size(); ++v) {
    if (plan.arenaOffset[v] < 0)
      continue;
    const ValueDecl &d = plan.decls[v];
    Shape shape;
    for (int i = 0; i < d.rank; ++i)
      shape.push(d.dims[i]);
    plan.slots[v] = Tensor::bindToArena(d.dtype, shape, plan.arena + plan.arenaOffset[v]);
  }
}
} // namespace

std::string ValueInfo::str() const {
  std::string s = dtype == DType::Unknown ? "?" : dtypeName(dtype);
  if (rank < 0)
    return s + "[*]";
  s += "[";
  for (int i = 0; i < rank; ++i) {
    if (i)
      s += ",";
    s += dims[i] < 0 ? "?" : std::to_string(dims[i]);
  }
  return s + "]";
}

Error KernelCall::fail(const std::string &message, ErrorCode code) const {
  // The executor prefixes "method M: instruction I (OP at LOC)".
  return Error::make(code, message);
}

namespace {

ValueDecl declOf(const fb::Value *v) {
  ValueDecl d;
  d.dtype = static_cast<DType>(v->dtype());
  d.rank = v->rank();
  for (int i = 0; i < d.rank; ++i)
    d.dims[i] = v->shape()->Get((uint32_t)i);
  d.name = v->name() ? v->name()->str() : std::string();
  return d;
}

ValueInfo infoOf(const ValueDecl &d) {
  ValueInfo info;
  info.name = d.name;
  info.dtype = d.dtype;
  info.rank = d.rank;
  for (int i = 0; i < d.rank; ++i)
    info.dims.push_back(d.dims[i]);
  return info;
}

std::string declShape(const ValueDecl &d) {
  std::string s = "[";
  for (int i = 0; i < d.rank; ++i) {
    if (i)
      s += ",";
    s += d.dims[i] < 0 ? "?" : std::to_string(d.dims[i]);
  }
  return s + "]";
}

/// Known dtype and rank, no dynamic dim.
bool isStaticDecl(const ValueDecl &d) {
  if (d.dtype == DType::Unknown || d.rank < 0)
    return false;
  for (int i = 0; i < d.rank; ++i)
    if (d.dims[i] < 0)
      return false;
  return true;
}

bool matchesDecl(const ValueDecl &d, const Tensor &t) {
  if (d.rank < 0)
    return true;
  if (t.rank() != d.rank)
    return false;
  for (int i = 0; i < d.rank; ++i)
    if (d.dims[i] >= 0 && d.dims[i] != t.dim(i))
      return false;
  return true;
}

} // namespace

Program::~Program() {
  pool_.reset();
  methods_.clear();
  states_.clear();
  if (sharedArena_)
    munmap(sharedArena_, sharedArenaSize_);
  if (stateMapping_)
    munmap(stateMapping_, stateMappingSize_);
  if (mapping_)
    munmap(mapping_, mappingSize_);
}

Result<std::unique_ptr<Program>> Program::load(const std::string &path,
                                               const LoadOptions &options) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return ioError("cannot open " + path + ": " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    return ioError("cannot stat " + path + ": " + std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return ioError(path + " is not a regular file");
  }
  size_t size = (size_t)st.st_size;
  if (size < kProgramHeaderSize) {
    ::close(fd);
    return invalidProgram(path + ": file is " + std::to_string(size) +
                          " bytes, smaller than the " + std::to_string(kProgramHeaderSize) +
                          "-byte header");
  }
  void *m = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  int e = errno;
  ::close(fd);
  if (m == MAP_FAILED)
    return ioError("cannot mmap " + path + ": " + std::strerror(e));
  std::unique_ptr<Program> p(new Program());
  p->mapping_ = m;
  p->mappingSize_ = size;
  p->bytes_ = static_cast<const uint8_t *>(m);
  p->size_ = size;
  Result<std::unique_ptr<Program>> r = finishLoad(std::move(p), options);
  if (!r.ok())
    return r.error().withContext(path);
  return r;
}

Result<std::unique_ptr<Program>> Program::loadFromBytes(const void *data, size_t size,
                                                        const LoadOptions &options) {
  std::unique_ptr<Program> p(new Program());
  p->ownedBytes_.reset(new Storage());
  size_t cap = (size + 63) / 64 * 64;
  p->ownedBytes_->ptr = std::aligned_alloc(64, cap ? cap : 64);
  if (!p->ownedBytes_->ptr)
    return outOfMemory("cannot allocate " + std::to_string(size) + " bytes for the program");
  p->ownedBytes_->capacity = cap;
  if (size)
    std::memcpy(p->ownedBytes_->ptr, data, size);
  p->bytes_ = static_cast<const uint8_t *>(p->ownedBytes_->ptr);
  p->size_ = size;
  return finishLoad(std::move(p), options);
}

Result<std::unique_ptr<Program>> Program::finishLoad(std::unique_ptr<Program> p,
                                                     const LoadOptions &options) {
  KILN_TRY(p->setNumThreads(options.numThreads));
  p->portableKernels_ = options.portableKernels;
  p->profiling_ = options.profile;
  ReadOptions ro;
  ro.verifySegmentHashes = options.verifySegmentHashes;
  std::string err;
  if (!readProgram(p->bytes_, p->size_, ro, &p->view_, &err))
    return invalidProgram(err);
  const fb::Program *prog = p->view_.program;

  // Program-level state: zero-initialised, shared by all methods. All states
  // live in one anonymous mapping, each starting on a page: pages are zero
  // until written, so a KV cache only costs memory for the positions used, and
  // resetState gives the pages back (MADV_DONTNEED) instead of writing zeros.
  if (const auto *states = prog->states()) {
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    std::vector<Shape> shapes;
    std::vector<size_t> offsets;
    size_t total = 0;
    for (uint32_t i = 0; i < states->size(); ++i) {
      const fb::StateDecl *s = states->Get(i);
      std::vector<int64_t> dims;
      if (s->shape())
        dims.assign(s->shape()->begin(), s->shape()->end());
      Result<Shape> shape = Shape::make(dims);
      if (!shape.ok())
        return shape.error().withContext("state " + s->name()->str());
      DType dt = static_cast<DType>(s->dtype());
      if (dt == DType::Unknown || dt == DType::Int4)
        return invalidProgram("state " + s->name()->str() + " has dtype " + dtypeName(dt) +
                              ", which a state cannot have");
      uint64_t bytes = (uint64_t)shape->numel() * dtypeSize(dt);
      uint64_t rounded = (bytes + page - 1) / page * page;
      if (!checkedAdd(total, rounded, &rounded) || rounded > (uint64_t)1 << 46)
        return invalidProgram("the states need more than 64 TiB");
      shapes.push_back(*shape);
      offsets.push_back(total);
      total = (size_t)rounded;
    }
    if (total > 0) {
      void *m = ::mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (m == MAP_FAILED)
        return outOfMemory("cannot allocate the " + std::to_string(total) +
                           " bytes of the program's states (KV cache)");
      p->stateMapping_ = m;
      p->stateMappingSize_ = total;
    }
    p->states_.reserve(states->size());
    for (uint32_t i = 0; i < states->size(); ++i) {
      const fb::StateDecl *s = states->Get(i);
      uint8_t *base = static_cast<uint8_t *>(p->stateMapping_);
      p->states_.push_back(Tensor::bindToArena(static_cast<DType>(s->dtype()), shapes[i],
                                               base ? base + offsets[i] : nullptr));
      p->stateNames_.push_back(s->name()->str());
    }
  }

  if (const auto *metadata = prog->metadata())
    for (uint32_t i = 0; i < metadata->size(); ++i) {
      const fb::KeyValue *kv = metadata->Get(i);
      p->metadata_.emplace_back(kv->key()->str(), kv->value() ? kv->value()->str() : "");
    }

  if (const auto *methods = prog->methods()) {
    for (uint32_t mi = 0; mi < methods->size(); ++mi) {
      const fb::Method *m = methods->Get(mi);
      auto plan = std::make_unique<MethodPlan>();
      plan->info.name = m->name()->str();
      std::string where = "method " + plan->info.name;
      uint32_t nvalues = m->values() ? m->values()->size() : 0;
      plan->slots.resize(nvalues);
      plan->decls.resize(nvalues);
      plan->isStateOrConst.assign(nvalues, 0);
      plan->valuePtr.assign(nvalues, nullptr);
      plan->arenaOffset.assign(nvalues, -1);
      plan->info.arenaBytes = m->arena_bytes();
      plan->info.arenaLowerBoundBytes = m->arena_lower_bound_bytes();
      plan->info.naiveBytes = m->naive_bytes();
      for (uint32_t v = 0; v < nvalues; ++v) {
        const fb::Value *val = m->values()->Get(v);
        plan->decls[v] = declOf(val);
        plan->valuePtr[v] = &plan->slots[v];
        // Planned (checked by the reader: intermediate/output, static shape,
        // known dtype, inside the arena); bound at the first run or setArena.
        if (val->arena_offset() >= 0) {
          plan->arenaOffset[v] = val->arena_offset();
          ++plan->info.numPlannedValues;
        }
        if (val->kind() == fb::ValueKind::Constant) {
          std::vector<int64_t> dims;
          if (val->shape())
            dims.assign(val->shape()->begin(), val->shape()->end());
          Result<Shape> shape = Shape::make(dims);
          if (!shape.ok())
            return shape.error().withContext(where + ": value " + std::to_string(v));
          // Borrowed view into the mapping: constants are never copied.
          plan->slots[v] = Tensor::borrow(static_cast<DType>(val->dtype()), *shape,
                                          p->view_.segmentData((uint32_t)val->segment()));
          if (val->scales_segment() >= 0) {
            // A quantized weight (checked by the reader): data and scales stay
            // in the mapping; kernels dequantize on the fly.
            QuantParams quant;
            quant.groupSize = val->quant_group_size();
            quant.scalesDType = static_cast<DType>(val->scales_dtype());
            quant.scales = p->view_.segmentData((uint32_t)val->scales_segment());
            quant.layout = static_cast<QuantLayout>(val->quant_layout());
            plan->slots[v] = Tensor::borrowQuantized(static_cast<DType>(val->dtype()), *shape,
                                                     plan->slots[v].data(), quant);
          }
          plan->isStateOrConst[v] = 1;
        } else if (val->kind() == fb::ValueKind::State) {
          plan->valuePtr[v] = &p->states_[(size_t)val->state()];
          plan->isStateOrConst[v] = 1;
        }
      }
      if (m->inputs())
        for (int32_t idx : *m->inputs()) {
          plan->inputIdx.push_back(idx);
          plan->info.inputs.push_back(infoOf(plan->decls[(size_t)idx]));
        }
      if (m->outputs())
        for (int32_t idx : *m->outputs()) {
          plan->outputIdx.push_back(idx);
          plan->info.outputs.push_back(infoOf(plan->decls[(size_t)idx]));
          auto at = std::find(plan->inputIdx.begin(), plan->inputIdx.end(), idx);
          plan->outputIsInput.push_back(
              at == plan->inputIdx.end() ? -1 : (int)(at - plan->inputIdx.begin()));
        }
      plan->staticInputs = true;
      for (int idx : plan->inputIdx)
        if (!isStaticDecl(plan->decls[(size_t)idx]))
          plan->staticInputs = false;
      uint32_t ninstr = m->instructions() ? m->instructions()->size() : 0;
      plan->instrs.resize(ninstr);
      plan->info.numInstructions = ninstr;
      for (uint32_t ii = 0; ii < ninstr; ++ii) {
        const fb::Instruction *ins = m->instructions()->Get(ii);
        PlannedInstruction &pi = plan->instrs[ii];
        pi.op = ins->op()->str();
        pi.loc = ins->loc() ? ins->loc()->str() : std::string();
        pi.label = "instruction " + std::to_string(ii) + " (" + pi.op +
                   (pi.loc.empty() ? "" : " at " + pi.loc) + ")";
        std::string iw = where + ": " + pi.label;
        pi.kernel = findKernel(pi.op);
        if (!pi.kernel)
          return unsupported(iw + ": unknown op '" + pi.op + "' (no kernel in this runtime)");
        int nin = ins->inputs() ? (int)ins->inputs()->size() : 0;
        int nout = ins->outputs() ? (int)ins->outputs()->size() : 0;
        const KernelDef &k = *pi.kernel;
        if (nin < k.minInputs || (k.maxInputs >= 0 && nin > k.maxInputs))
          return invalidProgram(iw + ": has " + std::to_string(nin) + " inputs, op '" + pi.op +
                                "' takes " + std::to_string(k.minInputs) +
                                (k.maxInputs < 0 ? " or more"
                                                 : (k.maxInputs == k.minInputs
                                                        ? ""
                                                        : " to " + std::to_string(k.maxInputs))));
        if (nout < k.minOutputs || (k.maxOutputs >= 0 && nout > k.maxOutputs))
          return invalidProgram(iw + ": has " + std::to_string(nout) + " outputs, op '" +
                                pi.op + "' produces " + std::to_string(k.minOutputs) +
                                (k.maxOutputs < 0 ? " or more"
                                                  : (k.maxOutputs == k.minOutputs
                                                         ? ""
                                                         : " to " + std::to_string(k.maxOutputs))));
        for (int i = 0; i < nin; ++i) {
          int32_t idx = ins->inputs()->Get((uint32_t)i);
          if (idx < 0) {
            if (i >= 32 || !((k.optionalInputs >> i) & 1u))
              return invalidProgram(iw + ": input " + std::to_string(i) +
                                    " is absent but is not optional");
            pi.in.push_back(nullptr);
            pi.inIdx.push_back(-1);
          } else {
            pi.inIdx.push_back(idx);
            const Tensor *t = plan->valuePtr[(size_t)idx];
            if (t->isQuantized() && (i >= 32 || !((k.quantizedInputs >> i) & 1u)))
              return invalidProgram(iw + ": input " + std::to_string(i) + " is the quantized weight " +
                                    t->describe() + " (value " + std::to_string(idx) +
                                    "), which op '" + pi.op +
                                    "' does not take (only linear weights and embedding "
                                    "tables may be quantized)");
            pi.in.push_back(t);
          }
        }
        for (int i = 0; i < nout; ++i) {
          int32_t idx = ins->outputs()->Get((uint32_t)i);
          pi.outIdx.push_back(idx);
          pi.out.push_back(plan->valuePtr[(size_t)idx]);
        }
        Error e = k.parse(AttrSet(ins->attrs()), &pi.attrs);
        if (e.failed())
          return e.withContext(iw);
        pi.staticOutputs = true;
        for (int idx : pi.outIdx)
          if (!isStaticDecl(plan->decls[(size_t)idx]))
            pi.staticOutputs = false;
        pi.call.op = pi.op.c_str();
        pi.call.loc = &pi.loc;
        pi.call.attrs = &pi.attrs;
        pi.call.in = pi.in.data();
        pi.call.nIn = (int)pi.in.size();
        pi.call.out = pi.out.data();
        pi.call.nOut = (int)pi.out.size();
      }
      markWeightsReadAgain(*plan);
      findLinearGroups(*plan);
      findNoopViews(*plan);
      planKvPrefetch(*plan);
      p->methods_.push_back(std::move(plan));
    }
  }
  return p;
}

Error Program::setNumThreads(int n) {
  if (n < 0 || n > kMaxThreads)
    return invalidArgument("number of threads must be 0 (physical cores) to " +
                           std::to_string(kMaxThreads) + ", got " + std::to_string(n));
  int threads = n == 0 ? ThreadPool::physicalCores() : n;
  if (threads == numThreads_ && (threads == 1) == !pool_)
    return Error::success();
  pool_.reset();
  if (threads > 1)
    pool_ = std::make_unique<ThreadPool>(threads);
  numThreads_ = threads;
  return Error::success();
}

Error Program::setArena(const std::string &method, void *data, size_t size) {
  for (auto &m : methods_) {
    if (m->info.name != method)
      continue;
    if (size < m->info.arenaBytes)
      return invalidArgument("method " + method + ": the arena given has " +
                             std::to_string(size) + " bytes, the memory plan needs " +
                             std::to_string(m->info.arenaBytes));
    if (!data && m->info.numPlannedValues > 0)
      return invalidArgument("method " + method + ": the arena given is null");
    if (reinterpret_cast<uintptr_t>(data) % 64 != 0)
      return invalidArgument("method " + method + ": the arena given is not 64-byte aligned");
    if (m->info.numPlannedValues > 0)
      bindArena(*m, data);
    m->ownArena = true;
    return Error::success();
  }
  return invalidArgument("no method '" + method + "'");
}

std::vector<std::string> Program::methodNames() const {
  std::vector<std::string> names;
  for (const auto &m : methods_)
    names.push_back(m->info.name);
  return names;
}

const MethodInfo *Program::methodInfo(const std::string &name) const {
  for (const auto &m : methods_)
    if (m->info.name == name)
      return &m->info;
  return nullptr;
}

const Tensor *Program::state(const std::string &name) const {
  for (size_t i = 0; i < stateNames_.size(); ++i)
    if (stateNames_[i] == name)
      return &states_[i];
  return nullptr;
}

std::vector<std::string> Program::stateNames() const { return stateNames_; }

Error Program::resetState() {
  // Zero pages again, without touching them (see finishLoad).
  if (stateMapping_ && ::madvise(stateMapping_, stateMappingSize_, MADV_DONTNEED) == 0)
    return Error::success();
  for (Tensor &t : states_)
    if (t.numel() > 0) {
      void *data = t.mutableData();
      if (!data)
        return invalidProgram("a state buffer is not writable");
      std::memset(data, 0, t.nbytes());
    }
  return Error::success();
}

const std::string *Program::metadata(const std::string &key) const {
  for (const auto &kv : metadata_)
    if (kv.first == key)
      return &kv.second;
  return nullptr;
}

std::vector<std::pair<std::string, std::string>> Program::metadataEntries() const {
  return metadata_;
}

std::vector<std::string> Program::assetNames() const {
  std::vector<std::string> names;
  if (const auto *assets = view_.program->assets())
    for (uint32_t i = 0; i < assets->size(); ++i)
      names.push_back(assets->Get(i)->name()->str());
  return names;
}

Result<std::pair<const uint8_t *, size_t>> Program::asset(const std::string &name) const {
  if (const auto *assets = view_.program->assets())
    for (uint32_t i = 0; i < assets->size(); ++i) {
      const fb::Asset *a = assets->Get(i);
      if (a->name()->str() != name)
        continue;
      // The reader verified the segment index and the segment bounds.
      uint32_t segment = (uint32_t)a->segment();
      return std::make_pair(view_.segmentData(segment), (size_t)view_.segmentSize(segment));
    }
  std::string names;
  for (const std::string &n : assetNames())
    names += (names.empty() ? "" : ", ") + n;
  return invalidArgument("the program has no asset '" + name + "' (assets: " +
                         (names.empty() ? "none" : names) + ")");
}

int Program::methodIndex(const std::string &method) const {
  for (size_t i = 0; i < methods_.size(); ++i)
    if (methods_[i]->info.name == method)
      return (int)i;
  return -1;
}

uint64_t Program::sharedArenaBytes() const {
  uint64_t bytes = 0;
  for (const auto &m : methods_)
    if (!m->ownArena)
      bytes = std::max(bytes, m->info.arenaBytes);
  return bytes;
}

namespace {
Error noMethodError(const std::vector<std::unique_ptr<MethodPlan>> &methods,
                    const std::string &method) {
  std::string names;
  for (const auto &m : methods)
    names += (names.empty() ? "" : ", ") + m->info.name;
  return invalidArgument("no method '" + method + "' (methods: " + names + ")");
}
} // namespace

void Program::unbindInputs(MethodPlan &plan) {
  // Drop references to the caller's input storage.
  for (int idx : plan.inputIdx)
    plan.slots[(size_t)idx] = Tensor();
}

Error Program::execute(MethodPlan &plan, const std::vector<Tensor> &inputs, uint64_t skip) {
  const std::string &method = plan.info.name;
  if (inputs.size() != plan.inputIdx.size())
    return invalidArgument("method " + method + ": expected " +
                           std::to_string(plan.inputIdx.size()) + " inputs, got " +
                           std::to_string(inputs.size()));
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor &t = inputs[i];
    const ValueDecl &d = plan.decls[(size_t)plan.inputIdx[i]];
    bool dtypeOk = d.dtype == DType::Unknown || t.dtype() == d.dtype;
    if (t.defined() && (t.data() != nullptr || t.numel() == 0) && dtypeOk && matchesDecl(d, t))
      continue;
    std::string iw = "method " + method + ": input " + std::to_string(i) +
                     (d.name.empty() ? "" : " (" + d.name + ")");
    if (!t.defined())
      return invalidArgument(iw + " is an undefined tensor");
    if (t.data() == nullptr && t.numel() > 0)
      return invalidArgument(iw + " has no data");
    if (!dtypeOk)
      return invalidArgument(iw + " has dtype " + dtypeName(t.dtype()) + ", expected " +
                             dtypeName(d.dtype));
    return invalidArgument(iw + " has shape " + t.shape().str() + ", expected " + declShape(d));
  }
  if (plan.info.numPlannedValues > 0 && !plan.arena) {
    KILN_TRY(ensureSharedArena().withContext("method " + method));
    bindArena(plan, sharedArena_);
  }
  for (size_t i = 0; i < inputs.size(); ++i)
    plan.slots[(size_t)plan.inputIdx[i]] = inputs[i];

  ThreadPool *pool = pool_.get();
  const bool portableOnly = portableKernels_;
  // With static input shapes every static output shape was checked by the
  // first run; later runs compute the same shapes.
  const bool skipStatic = plan.outputsVerified;
  if (skip != plan.liveSkip)
    computeLiveness(plan, skip);
  const uint8_t *live = plan.live.empty() ? nullptr : plan.live.data();
  size_t groupedUntil = 0; // instructions below this ran as members of a linear group
  for (size_t k = 0; k < plan.instrs.size(); ++k) {
    if (live && !live[k])
      continue;
    PlannedInstruction &pi = plan.instrs[k];
    pi.call.pool = pool;
    pi.call.portableOnly = portableOnly;
    if (pi.kvHintFor >= 0 && pool)
      postKvHint(plan.instrs[(size_t)pi.kvHintFor], pool);
    std::chrono::steady_clock::time_point t0;
    if (profiling_)
      t0 = std::chrono::steady_clock::now();
    Error e;
    if (k < groupedUntil || pi.noopView) {
      // Computed by its group's first linear / a view already in place.
    } else if (pi.linearGroup > 1 && !portableOnly &&
               (!live || std::all_of(live + k, live + k + pi.linearGroup, [](uint8_t l) { return l != 0; }))) {
      const KernelCall *calls[kMaxLinearGroupSize];
      for (int j = 0; j < pi.linearGroup; ++j) {
        PlannedInstruction &member = plan.instrs[k + (size_t)j];
        member.call.pool = pool;
        member.call.portableOnly = portableOnly;
        calls[j] = &member.call;
      }
      bool ran = false;
      e = runLinearGroup(calls, pi.linearGroup, &ran);
      if (ran)
        groupedUntil = k + (size_t)pi.linearGroup;
      else
        e = pi.kernel->run(pi.call);
    } else {
      e = pi.kernel->run(pi.call);
    }
    if (profiling_) {
      if (plan.profNs.size() != plan.instrs.size()) {
        plan.profNs.assign(plan.instrs.size(), 0);
        plan.profCalls.assign(plan.instrs.size(), 0);
      }
      plan.profNs[k] += static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0)
              .count());
      ++plan.profCalls[k];
    }
    if (e.failed()) {
      unbindInputs(plan);
      return e.withContext("method " + method + ": " + pi.label);
    }
    if (skipStatic && pi.staticOutputs)
      continue;
    for (size_t k = 0; k < pi.out.size(); ++k) {
      const Tensor &t = *pi.out[k];
      const ValueDecl &d = plan.decls[(size_t)pi.outIdx[k]];
      bool dtypeOk = d.dtype == DType::Unknown || t.dtype() == d.dtype;
      if (!t.defined() || !dtypeOk || !matchesDecl(d, t)) {
        unbindInputs(plan);
        return invalidProgram(
            "method " + method + ": " + pi.label + ": output " + std::to_string(k) + " is " +
            t.describe() + " but the program declares value " + std::to_string(pi.outIdx[k]) +
            (d.name.empty() ? "" : " (" + d.name + ")") + " as " +
            (d.dtype == DType::Unknown ? "?" : dtypeName(d.dtype)) +
            (d.rank < 0 ? "[*]" : declShape(d)));
      }
    }
  }
  if (plan.staticInputs && !live)
    plan.outputsVerified = true;
  return Error::success();
}

Result<std::vector<Tensor>> Program::run(const std::string &method,
                                         const std::vector<Tensor> &inputs) {
  int mi = methodIndex(method);
  if (mi < 0)
    return noMethodError(methods_, method);
  MethodPlan &plan = *methods_[(size_t)mi];
  KILN_TRY(execute(plan, inputs, 0));
  unbindInputs(plan);

  std::vector<Tensor> results;
  results.reserve(plan.outputIdx.size());
  for (size_t i = 0; i < plan.outputIdx.size(); ++i) {
    size_t idx = (size_t)plan.outputIdx[i];
    const Tensor *t = plan.valuePtr[idx];
    if (plan.outputIsInput[i] >= 0) {
      results.push_back(inputs[(size_t)plan.outputIsInput[i]]);
    } else if (t->isArenaBound() || (plan.isStateOrConst[idx] && !t->isBorrowed())) {
      // An arena slice is overwritten by the next run, and state changes on
      // later calls: hand out a copy.
      Result<Tensor> c = t->clone();
      if (!c.ok())
        return c.error().withContext("method " + method);
      results.push_back(c.take());
    } else {
      // Shares the slot's storage; the next run allocates a fresh buffer for this
      // value while the caller still holds it.
      results.push_back(*t);
    }
  }
  return results;
}

void Program::setProfiling(bool on) {
  if (on && !profiling_)
    for (auto &m : methods_) {
      m->profNs.clear();
      m->profCalls.clear();
    }
  profiling_ = on;
}

std::vector<InstructionProfile> Program::profile(const std::string &method) const {
  std::vector<InstructionProfile> out;
  const int mi = methodIndex(method);
  if (mi < 0)
    return out;
  const MethodPlan &plan = *methods_[(size_t)mi];
  for (size_t k = 0; k < plan.profCalls.size(); ++k) {
    if (plan.profCalls[k] == 0)
      continue;
    const PlannedInstruction &pi = plan.instrs[k];
    InstructionProfile ip;
    ip.index = static_cast<uint32_t>(k);
    ip.op = pi.op;
    ip.loc = pi.loc;
    if (!pi.out.empty() && pi.out[0] && pi.out[0]->defined())
      ip.output = pi.out[0]->describe();
    ip.calls = plan.profCalls[k];
    ip.nanoseconds = plan.profNs[k];
    out.push_back(std::move(ip));
  }
  return out;
}

Error Program::ensureSharedArena() {
  // One arena for every method without its own: methods never run at once,
  // so the largest plan fits them all. Allocated once, reused by every run.
  size_t bytes = (size_t)sharedArenaBytes();
  if (sharedArena_ && sharedArenaSize_ >= bytes)
    return Error::success();
  // (A method given its own arena later only shrinks the need.) Mapped, not
  // malloc'ed: page-aligned, so releaseArenaMemory can return pages.
  const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t cap = std::max<size_t>((bytes + page - 1) / page * page, page);
  void *m = ::mmap(nullptr, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED)
    return outOfMemory("cannot allocate the " + std::to_string(bytes) +
                       "-byte arena of the memory plan");
  for (auto &m2 : methods_)
    if (!m2->ownArena)
      m2->arena = nullptr; // rebound at their next run
  if (sharedArena_)
    ::munmap(sharedArena_, sharedArenaSize_);
  sharedArena_ = m;
  sharedArenaSize_ = cap;
  return Error::success();
}

void Program::releaseArenaMemory(uint64_t keepBytes) {
  if (!sharedArena_)
    return;
  const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t from = (size_t)std::min<uint64_t>(keepBytes, sharedArenaSize_);
  from = (from + page - 1) / page * page;
  if (from < sharedArenaSize_)
    ::madvise(static_cast<uint8_t *>(sharedArena_) + from, sharedArenaSize_ - from,
              MADV_DONTNEED); // advisory: on failure the pages just stay
}

Error Program::runViews(const std::string &method, const std::vector<Tensor> &inputs,
                        std::vector<Tensor> *outputs, uint64_t skipOutputs) {
  int mi = methodIndex(method);
  if (mi < 0)
    return noMethodError(methods_, method);
  return runViews(mi, inputs, outputs, skipOutputs);
}

Error Program::runViews(int method, const std::vector<Tensor> &inputs,
                        std::vector<Tensor> *outputs, uint64_t skipOutputs) {
  if (method < 0 || (size_t)method >= methods_.size())
    return invalidArgument("no method with index " + std::to_string(method) + " (" +
                           std::to_string(methods_.size()) + " methods)");
  MethodPlan &plan = *methods_[(size_t)method];
  if (plan.outputIdx.size() < 64)
    skipOutputs &= ((uint64_t)1 << plan.outputIdx.size()) - 1;
  KILN_TRY(execute(plan, inputs, skipOutputs));
  unbindInputs(plan);
  outputs->resize(plan.outputIdx.size());
  for (size_t i = 0; i < plan.outputIdx.size(); ++i) {
    if (i < 64 && ((skipOutputs >> i) & 1u)) {
      (*outputs)[i] = Tensor();
      continue;
    }
    const Tensor &t = plan.outputIsInput[i] >= 0 ? inputs[(size_t)plan.outputIsInput[i]]
                                                 : *plan.valuePtr[(size_t)plan.outputIdx[i]];
    // A borrowed view: no reference count, so the next run reuses the buffer
    // instead of allocating a new one for a value the caller still holds.
    (*outputs)[i] = t.isQuantized() ? t : Tensor::borrow(t.dtype(), t.shape(), t.data());
  }
  return Error::success();
}

} // namespace rt
} // namespace kiln
