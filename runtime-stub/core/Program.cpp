#include "runtime-stub/core/Program.h"

#include "runtime-stub/kernels/Kernel.h"

#include <cerrno>
#include <algorithm>
#include <cstdlib>
#include <cstring>
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
  std::vector<const Tensor *> in; // null = absent operand
  std::vector<Tensor *> out;
};

struct MethodPlan {
  MethodInfo info;
  std::vector<Tensor> slots; // one per value; never resized after load
  std::vector<ValueDecl> decls;
  std::vector<uint8_t> isStateOrConst;
  std::vector<int> inputIdx;
  std::vector<int> outputIdx;
  std::vector<Tensor *> valuePtr; // slot or program state, per value
  std::vector<PlannedInstruction> instrs;
  std::vector<int64_t> arenaOffset; // per value; -1 = allocated by the kernels
  std::unique_ptr<Storage> ownedArena; // when the caller gave none
  uint8_t *arena = nullptr;            // null until bound
};

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
  ReadOptions ro;
  ro.verifySegmentHashes = options.verifySegmentHashes;
  std::string err;
  if (!readProgram(p->bytes_, p->size_, ro, &p->view_, &err))
    return invalidProgram(err);
  const fb::Program *prog = p->view_.program;

  // Program-level state: zero-initialised, shared by all methods.
  if (const auto *states = prog->states()) {
    p->states_.reserve(states->size());
    for (uint32_t i = 0; i < states->size(); ++i) {
      const fb::StateDecl *s = states->Get(i);
      std::vector<int64_t> dims;
      if (s->shape())
        dims.assign(s->shape()->begin(), s->shape()->end());
      Result<Shape> shape = Shape::make(dims);
      if (!shape.ok())
        return shape.error().withContext("state " + s->name()->str());
      Result<Tensor> t = Tensor::zeros(static_cast<DType>(s->dtype()), *shape);
      if (!t.ok())
        return t.error().withContext("state " + s->name()->str());
      p->states_.push_back(t.take());
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
        }
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
          } else {
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
      }
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
    m->ownedArena.reset();
    if (m->info.numPlannedValues > 0)
      bindArena(*m, data);
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

Result<std::vector<Tensor>> Program::run(const std::string &method,
                                         const std::vector<Tensor> &inputs) {
  MethodPlan *plan = nullptr;
  for (auto &m : methods_)
    if (m->info.name == method)
      plan = m.get();
  if (!plan) {
    std::string names;
    for (const auto &m : methods_)
      names += (names.empty() ? "" : ", ") + m->info.name;
    return invalidArgument("no method '" + method + "' (methods: " + names + ")");
  }
  std::string where = "method " + method;
  if (inputs.size() != plan->inputIdx.size())
    return invalidArgument(where + ": expected " + std::to_string(plan->inputIdx.size()) +
                           " inputs, got " + std::to_string(inputs.size()));
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor &t = inputs[i];
    const ValueDecl &d = plan->decls[(size_t)plan->inputIdx[i]];
    std::string iw = where + ": input " + std::to_string(i) + (d.name.empty() ? "" : " (" + d.name + ")");
    if (!t.defined())
      return invalidArgument(iw + " is an undefined tensor");
    if (t.data() == nullptr && t.numel() > 0)
      return invalidArgument(iw + " has no data");
    if (d.dtype != DType::Unknown && t.dtype() != d.dtype)
      return invalidArgument(iw + " has dtype " + dtypeName(t.dtype()) + ", expected " +
                             dtypeName(d.dtype));
    if (!matchesDecl(d, t))
      return invalidArgument(iw + " has shape " + t.shape().str() + ", expected " + declShape(d));
  }
  for (size_t i = 0; i < inputs.size(); ++i)
    plan->slots[(size_t)plan->inputIdx[i]] = inputs[i];
  if (plan->info.numPlannedValues > 0 && !plan->arena) {
    // One arena per method, allocated once and reused by every later run.
    size_t bytes = (size_t)plan->info.arenaBytes;
    size_t cap = (bytes + 63) / 64 * 64;
    auto arena = std::make_unique<Storage>();
    arena->ptr = std::aligned_alloc(64, cap ? cap : 64);
    if (!arena->ptr) {
      for (size_t i = 0; i < inputs.size(); ++i)
        plan->slots[(size_t)plan->inputIdx[i]] = Tensor();
      return outOfMemory(where + ": cannot allocate the " + std::to_string(bytes) +
                         "-byte arena of the memory plan");
    }
    arena->capacity = cap;
    plan->ownedArena = std::move(arena);
    bindArena(*plan, plan->ownedArena->ptr);
  }

  Error failure;
  ThreadPool *pool = pool_.get();
  const bool portableOnly = portableKernels_;
  for (PlannedInstruction &pi : plan->instrs) {
    KernelCall call;
    call.pool = pool;
    call.portableOnly = portableOnly;
    call.op = pi.op.c_str();
    call.loc = &pi.loc;
    call.attrs = &pi.attrs;
    call.in = pi.in.data();
    call.nIn = (int)pi.in.size();
    call.out = pi.out.data();
    call.nOut = (int)pi.out.size();
    Error e = pi.kernel->run(call);
    if (e.failed()) {
      failure = e.withContext(where + ": " + pi.label);
      break;
    }
    for (size_t k = 0; k < pi.out.size(); ++k) {
      const Tensor &t = *pi.out[k];
      const ValueDecl &d = plan->decls[(size_t)pi.outIdx[k]];
      bool dtypeOk = d.dtype == DType::Unknown || t.dtype() == d.dtype;
      if (!t.defined() || !dtypeOk || !matchesDecl(d, t)) {
        failure = invalidProgram(
            where + ": " + pi.label + ": output " + std::to_string(k) + " is " + t.describe() +
            " but the program declares value " + std::to_string(pi.outIdx[k]) +
            (d.name.empty() ? "" : " (" + d.name + ")") + " as " +
            (d.dtype == DType::Unknown ? "?" : dtypeName(d.dtype)) +
            (d.rank < 0 ? "[*]" : declShape(d)));
        break;
      }
    }
    if (failure.failed())
      break;
  }
  // Drop references to the caller's input storage.
  for (size_t i = 0; i < inputs.size(); ++i)
    plan->slots[(size_t)plan->inputIdx[i]] = Tensor();
  if (failure.failed())
    return failure;

  std::vector<Tensor> results;
  results.reserve(plan->outputIdx.size());
  for (size_t i = 0; i < plan->outputIdx.size(); ++i) {
    size_t idx = (size_t)plan->outputIdx[i];
    const Tensor *t = plan->valuePtr[idx];
    bool isInput = false;
    for (size_t k = 0; k < plan->inputIdx.size(); ++k)
      if ((size_t)plan->inputIdx[k] == idx)
        isInput = true;
    if (isInput) {
      results.push_back(inputs[std::find(plan->inputIdx.begin(), plan->inputIdx.end(),
                                         (int)idx) - plan->inputIdx.begin()]);
    } else if (t->isArenaBound() || (plan->isStateOrConst[idx] && !t->isBorrowed())) {
      // An arena slice is overwritten by the next run, and state changes on
      // later calls: hand out a copy.
      Result<Tensor> c = t->clone();
      if (!c.ok())
        return c.error().withContext(where);
      results.push_back(c.take());
    } else {
      // Shares the slot's storage; the next run allocates a fresh buffer for this
      // value while the caller still holds it.
      results.push_back(*t);
    }
  }
  return results;
}

} // namespace rt
} // namespace kiln
