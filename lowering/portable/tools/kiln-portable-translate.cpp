// kiln-portable-translate: lowers a kiln-dialect MLIR file to a program file
// with the portable backend, and optionally prints the program it wrote (read
// back through the verifying reader) as text, for lit tests and debugging.
//
//   kiln-portable-translate in.mlir -o out.kiln [--dump] [--metadata key=value]...
#include "lowering/portable/PortableLowering.h"
#include "serializer/ProgramReader.h"

#include "kiln/Dialect/KilnDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <cinttypes>

using namespace llvm;

static cl::opt<std::string> inputPath(cl::Positional, cl::desc("<input .mlir>"),
                                      cl::init("-"));
static cl::opt<std::string> outputPath("o", cl::desc("Output program path"), cl::Required);
static cl::opt<bool> dump("dump", cl::desc("Print the written program as text on stdout"));
static cl::list<std::string> metadata("metadata", cl::desc("Extra metadata key=value"));

static const char *kindName(kiln::fb::ValueKind kind) {
  switch (kind) {
  case kiln::fb::ValueKind::Intermediate: return "intermediate";
  case kiln::fb::ValueKind::Input: return "input";
  case kiln::fb::ValueKind::Output: return "output";
  case kiln::fb::ValueKind::Constant: return "constant";
  case kiln::fb::ValueKind::State: return "state";
  }
  return "?";
}

static void printIndices(raw_ostream &os, const flatbuffers::Vector<int32_t> *v) {
  os << "(";
  if (v)
    for (uint32_t i = 0; i < v->size(); ++i)
      os << (i ? ", " : "") << v->Get(i);
  os << ")";
}

static void printAttr(raw_ostream &os, const kiln::fb::Attribute *a) {
  os << a->name()->str() << " = ";
  switch (a->kind()) {
  case kiln::fb::AttrKind::Int: os << a->i(); break;
  case kiln::fb::AttrKind::Bool: os << (a->i() ? "true" : "false"); break;
  case kiln::fb::AttrKind::Float: os << format("%g", a->f()); break;
  case kiln::fb::AttrKind::String: os << '"' << (a->s() ? a->s()->str() : "") << '"'; break;
  case kiln::fb::AttrKind::Ints:
    os << "[";
    if (a->ints())
      for (uint32_t i = 0; i < a->ints()->size(); ++i)
        os << (i ? ", " : "") << a->ints()->Get(i);
    os << "]";
    break;
  case kiln::fb::AttrKind::Floats:
    os << "[";
    if (a->floats())
      for (uint32_t i = 0; i < a->floats()->size(); ++i)
        os << (i ? ", " : "") << format("%g", a->floats()->Get(i));
    os << "]";
    break;
  }
}

static int dumpProgram(const std::string &path) {
  auto buffer = MemoryBuffer::getFile(path, /*IsText=*/false, /*RequiresNullTerminator=*/false);
  if (!buffer) {
    errs() << "error: cannot read '" << path << "': " << buffer.getError().message() << "\n";
    return 1;
  }
  kiln::ProgramView view;
  std::string error;
  if (!kiln::readProgram((*buffer)->getBufferStart(), (*buffer)->getBufferSize(),
                         kiln::ReadOptions(), &view, &error)) {
    errs() << "error: '" << path << "' does not verify: " << error << "\n";
    return 1;
  }
  raw_ostream &os = outs();
  const kiln::fb::Program *p = view.program;
  os << "program version " << p->version() << " segments_offset "
     << view.header.segments_offset << "\n";
  if (p->metadata())
    for (const kiln::fb::KeyValue *kv : *p->metadata())
      os << "metadata " << kv->key()->str() << " = \"" << (kv->value() ? kv->value()->str() : "")
         << "\"\n";
  for (uint32_t i = 0; i < view.numSegments(); ++i) {
    const kiln::fb::Segment *s = p->segments()->Get(i);
    os << "segment " << i << " offset " << s->offset() << " size " << s->size() << " hash "
       << format_hex(s->hash(), 18) << "\n";
  }
  if (p->states())
    for (uint32_t i = 0; i < p->states()->size(); ++i)
      os << "state " << i << " " << p->states()->Get(i)->name()->str() << "\n";
  if (p->methods()) {
    for (const kiln::fb::Method *m : *p->methods()) {
      os << "method " << m->name()->str() << " inputs ";
      printIndices(os, m->inputs());
      os << " outputs ";
      printIndices(os, m->outputs());
      os << "\n";
      if (m->values())
        for (uint32_t i = 0; i < m->values()->size(); ++i) {
          const kiln::fb::Value *v = m->values()->Get(i);
          os << "  value " << i << " \"" << (v->name() ? v->name()->str() : "") << "\" "
             << kiln::dtypeShortName(v->dtype());
          if (v->rank() < 0) {
            os << " [*]";
          } else {
            os << " [";
            for (uint32_t d = 0; d < v->shape()->size(); ++d) {
              int64_t dim = v->shape()->Get(d);
              os << (d ? ", " : "");
              if (dim < 0)
                os << "?";
              else
                os << dim;
            }
            os << "]";
          }
          os << " " << kindName(v->kind());
          if (v->segment() >= 0)
            os << " segment " << v->segment();
          if (v->state() >= 0)
            os << " state " << v->state();
          os << "\n";
        }
      if (m->instructions())
        for (uint32_t i = 0; i < m->instructions()->size(); ++i) {
          const kiln::fb::Instruction *inst = m->instructions()->Get(i);
          os << "  inst " << i << " " << inst->op()->str() << " ";
          printIndices(os, inst->inputs());
          os << " -> ";
          printIndices(os, inst->outputs());
          os << " {";
          if (inst->attrs())
            for (uint32_t k = 0; k < inst->attrs()->size(); ++k) {
              os << (k ? ", " : "");
              printAttr(os, inst->attrs()->Get(k));
            }
          os << "}";
          if (inst->loc() && inst->loc()->size())
            os << " @ " << inst->loc()->str();
          os << "\n";
        }
    }
  }
  return 0;
}

int main(int argc, char **argv) {
  InitLLVM init(argc, argv);
  cl::ParseCommandLineOptions(argc, argv, "kiln portable lowering driver\n");

  mlir::MLIRContext context;
  context.loadDialect<mlir::func::FuncDialect, kiln::KilnDialect>();
  std::string errorMessage;
  std::unique_ptr<MemoryBuffer> input = mlir::openInputFile(inputPath, &errorMessage);
  if (!input) {
    errs() << "error: " << errorMessage << "\n";
    return 1;
  }
  SourceMgr sourceMgr;
  sourceMgr.AddNewSourceBuffer(std::move(input), SMLoc());
  mlir::SourceMgrDiagnosticHandler diagHandler(sourceMgr, &context);
  mlir::OwningOpRef<mlir::ModuleOp> module =
      mlir::parseSourceFile<mlir::ModuleOp>(sourceMgr, &context);
  if (!module)
    return 1;

  kiln::ProgramOptions options;
  for (const std::string &kv : metadata) {
    size_t eq = kv.find('=');
    if (eq == std::string::npos) {
      errs() << "error: --metadata expects key=value, got '" << kv << "'\n";
      return 1;
    }
    options.metadata.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
  }
  if (mlir::failed(kiln::writePortableProgram(*module, outputPath, options)))
    return 1;
  return dump ? dumpProgram(outputPath) : 0;
}
