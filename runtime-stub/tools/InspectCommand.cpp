#include "runtime-stub/tools/Commands.h"

#include "serializer/ProgramReader.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <set>
#include <string>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace kiln {
namespace rt {

const char *kilnInspectUsage() {
  return "usage: inspect PROGRAM.kiln [--json] [--no-verify-hashes]\n"
         "Prints the methods (inputs, outputs, op counts), sizes, states, assets and\n"
         "metadata of a program (--json: full metadata values).\n";
}

namespace {

int fail(const std::string &message) {
  std::fprintf(stderr, "error: %s\n", message.c_str());
  return 1;
}

std::string jsonString(const std::string &s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
    case '"': out += "\\\""; break;
    case '\\': out += "\\\\"; break;
    case '\n': out += "\\n"; break;
    case '\r': out += "\\r"; break;
    case '\t': out += "\\t"; break;
    case '\b': out += "\\b"; break;
    case '\f': out += "\\f"; break;
    default:
      if (c < 0x20) {
        char buf[8];
        std::snprintf(buf, sizeof(buf), "\\u%04x", c);
        out += buf;
      } else {
        out += (char)c; // UTF-8 passes through
      }
    }
  }
  return out + "\"";
}

struct ValueDesc {
  std::string name, dtype;
  int rank;
  std::vector<int64_t> dims;
  std::string typeStr() const {
    if (rank < 0)
      return dtype + "[*]";
    std::string s = dtype + "[";
    for (size_t i = 0; i < dims.size(); ++i)
      s += (i ? "," : "") + (dims[i] < 0 ? std::string("?") : std::to_string(dims[i]));
    return s + "]";
  }
  std::string json() const {
    std::string s = "{\"name\": " + jsonString(name) + ", \"dtype\": " + jsonString(dtype) +
                    ", \"rank\": " + std::to_string(rank) + ", \"shape\": ";
    if (rank < 0) {
      s += "null";
    } else {
      s += "[";
      for (size_t i = 0; i < dims.size(); ++i)
        s += (i ? ", " : "") + (dims[i] < 0 ? std::string("\"?\"") : std::to_string(dims[i]));
      s += "]";
    }
    return s + "}";
  }
};

ValueDesc describeValue(const fb::Method *m, int32_t idx) {
  const fb::Value *v = m->values()->Get((uint32_t)idx);
  ValueDesc d;
  d.name = v->name() ? v->name()->str() : std::string();
  d.dtype = v->dtype() == fb::DType::Unknown ? "?" : dtypeShortName(v->dtype());
  d.rank = v->rank();
  if (v->rank() >= 0 && v->shape())
    d.dims.assign(v->shape()->begin(), v->shape()->end());
  return d;
}

/// The layer a constant belongs to, from its name: the path up to the first
/// numeric component ("self.layers.3.mlp.w1.weight" -> "layers.3"), else the
/// module path without the parameter ("self.embed.weight" -> "embed").
std::string layerOf(const std::string &name) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= name.size()) {
    size_t dot = name.find('.', start);
    if (dot == std::string::npos)
      dot = name.size();
    parts.push_back(name.substr(start, dot - start));
    start = dot + 1;
  }
  if (!parts.empty() && parts[0] == "self")
    parts.erase(parts.begin());
  if (parts.empty() || (parts.size() == 1 && parts[0].empty()))
    return "(unnamed)";
  size_t end = parts.size() > 1 ? parts.size() - 1 : 1;
  for (size_t i = 1; i < parts.size(); ++i)
    if (!parts[i].empty() &&
        parts[i].find_first_not_of("0123456789") == std::string::npos) {
      end = i + 1;
      break;
    }
  std::string layer;
  for (size_t i = 0; i < end; ++i)
    layer += (i ? "." : "") + parts[i];
  return layer;
}

struct MethodDesc {
  std::string name;
  std::vector<ValueDesc> inputs, outputs;
  std::map<std::string, uint64_t> ops;
  uint64_t instructions = 0;
  uint64_t values = 0;
  // Memory plan (kiln-plan-memory).
  uint64_t arenaBytes = 0, arenaLowerBoundBytes = 0, naiveBytes = 0, plannedValues = 0;
};

} // namespace

int kilnInspectCommand(int argc, char **argv) {
  std::string path;
  bool json = false;
  ReadOptions options;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kilnInspectUsage(), stdout);
      return 0;
    } else if (a == "--json") {
      json = true;
    } else if (a == "--no-verify-hashes") {
      options.verifySegmentHashes = false;
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "error: unknown option '%s'\n%s", a.c_str(), kilnInspectUsage());
      return 1;
    } else if (path.empty()) {
      path = a;
    } else {
      std::fprintf(stderr, "error: unexpected argument '%s'\n%s", a.c_str(), kilnInspectUsage());
      return 1;
    }
  }
  if (path.empty()) {
    std::fprintf(stderr, "error: missing PROGRAM.kiln\n%s", kilnInspectUsage());
    return 1;
  }
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return fail("cannot open " + path + ": " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return fail(path + " is not a regular file");
  }
  size_t size = (size_t)st.st_size;
  if (size < kProgramHeaderSize) {
    ::close(fd);
    return fail(path + ": file is " + std::to_string(size) + " bytes, smaller than the header");
  }
  void *map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED)
    return fail("cannot mmap " + path + ": " + std::strerror(errno));
  ProgramView view;
  std::string err;
  if (!readProgram(map, size, options, &view, &err)) {
    ::munmap(map, size);
    return fail(path + ": " + err);
  }
  const fb::Program *p = view.program;

  uint64_t constantBytes = 0;
  uint32_t nseg = view.numSegments();
  std::set<std::pair<uint64_t, uint64_t>> seen; // unique (offset, size)
  for (uint32_t i = 0; i < nseg; ++i) {
    const fb::Segment *s = p->segments()->Get(i);
    if (seen.insert({s->offset(), s->size()}).second)
      constantBytes += s->size();
  }
  // Constant bytes by layer: each unique segment (data or scales) counts for
  // the first constant that refers to it; layers in order of first appearance.
  std::vector<std::pair<std::string, uint64_t>> layers;
  {
    std::set<std::pair<uint64_t, uint64_t>> counted;
    std::map<std::string, size_t> layerIndex;
    auto count = [&](const std::string &name, int32_t segment) {
      if (segment < 0 || (uint32_t)segment >= nseg)
        return;
      const fb::Segment *s = p->segments()->Get((uint32_t)segment);
      if (!counted.insert({s->offset(), s->size()}).second)
        return;
      std::string layer = layerOf(name);
      auto it = layerIndex.find(layer);
      if (it == layerIndex.end()) {
        it = layerIndex.emplace(layer, layers.size()).first;
        layers.push_back({layer, 0});
      }
      layers[it->second].second += s->size();
    };
    if (p->methods())
      for (const fb::Method *m : *p->methods())
        if (m->values())
          for (const fb::Value *v : *m->values())
            if (v->kind() == fb::ValueKind::Constant) {
              std::string name = v->name() ? v->name()->str() : std::string();
              count(name, v->segment());
              count(name, v->scales_segment());
            }
  }
  // Sections of the file: header, flatbuffer, unique constant bytes, and the
  // rest (alignment padding between and inside the segment area).
  uint64_t headerBytes = view.header.header_size;
  uint64_t flatbufferBytes = view.header.flatbuffer_size;
  uint64_t paddingBytes = size - headerBytes - flatbufferBytes - constantBytes;

  std::vector<MethodDesc> methods;
  if (p->methods()) {
    for (const fb::Method *m : *p->methods()) {
      MethodDesc md;
      md.name = m->name()->str();
      md.values = m->values() ? m->values()->size() : 0;
      md.arenaBytes = m->arena_bytes();
      md.arenaLowerBoundBytes = m->arena_lower_bound_bytes();
      md.naiveBytes = m->naive_bytes();
      if (m->values())
        for (const fb::Value *v : *m->values())
          md.plannedValues += v->arena_offset() >= 0 ? 1 : 0;
      if (m->inputs())
        for (int32_t idx : *m->inputs())
          md.inputs.push_back(describeValue(m, idx));
      if (m->outputs())
        for (int32_t idx : *m->outputs())
          md.outputs.push_back(describeValue(m, idx));
      if (m->instructions()) {
        md.instructions = m->instructions()->size();
        for (const fb::Instruction *ins : *m->instructions())
          ++md.ops[ins->op()->str()];
      }
      methods.push_back(std::move(md));
    }
  }
  // Quantized weights (docs/program-format.md) by kind ("i4 group 32"): distinct
  // data segments and their data + scales bytes.
  std::map<std::string, std::pair<uint64_t, uint64_t>> quantized;
  {
    std::set<int32_t> seenData;
    if (p->methods())
      for (const fb::Method *m : *p->methods())
        if (m->values())
          for (const fb::Value *v : *m->values()) {
            if (v->kind() != fb::ValueKind::Constant || v->scales_segment() < 0 ||
                !seenData.insert(v->segment()).second)
              continue;
            std::string kind = std::string(dtypeShortName(v->dtype())) + " group " +
                               std::to_string(v->quant_group_size());
            quantized[kind].first += 1;
            quantized[kind].second += view.segmentSize((uint32_t)v->segment()) +
                                      view.segmentSize((uint32_t)v->scales_segment());
          }
  }
  std::vector<std::pair<std::string, std::string>> metadata;
  if (p->metadata())
    for (const fb::KeyValue *kv : *p->metadata())
      metadata.push_back({kv->key()->str(), kv->value() ? kv->value()->str() : std::string()});
  struct StateDesc {
    std::string name, type, dtype, shape; // shape as a JSON list "[1, 2]"
    uint64_t bytes = 0;
  };
  std::vector<StateDesc> states;
  uint64_t stateBytes = 0;
  if (p->states())
    for (const fb::StateDecl *s : *p->states()) {
      StateDesc sd;
      sd.name = s->name()->str();
      sd.dtype = dtypeShortName(s->dtype());
      std::string t = sd.dtype + "[";
      sd.shape = "[";
      uint64_t bytes = dtypeByteSize(s->dtype());
      if (s->shape())
        for (uint32_t i = 0; i < s->shape()->size(); ++i) {
          t += (i ? "," : "") + std::to_string(s->shape()->Get(i));
          sd.shape += (i ? ", " : "") + std::to_string(s->shape()->Get(i));
          bytes *= (uint64_t)s->shape()->Get(i); // the reader checked for overflow
        }
      sd.type = t + "]";
      sd.shape += "]";
      sd.bytes = bytes;
      stateBytes += bytes;
      states.push_back(sd);
    }
  // Assets (docs/llm.md §2): name and byte size of their segment.
  std::vector<std::pair<std::string, uint64_t>> assets;
  if (p->assets())
    for (const fb::Asset *a : *p->assets())
      assets.push_back({a->name()->str(), view.segmentSize((uint32_t)a->segment())});
  // Text output shortens long metadata values (a config.json) to one line.
  auto shortened = [](const std::string &v) {
    std::string oneLine;
    for (char c : v)
      oneLine += c == '\n' ? std::string("\\n") : std::string(1, c);
    if (oneLine.size() <= 72)
      return oneLine;
    return oneLine.substr(0, 60) + "... (" + std::to_string(v.size()) + " bytes)";
  };

  if (json) {
    std::string o = "{\n";
    o += "  \"file\": " + jsonString(path) + ",\n";
    o += "  \"format_version\": " + std::to_string(view.header.format_version) + ",\n";
    o += "  \"file_bytes\": " + std::to_string(size) + ",\n";
    o += "  \"flatbuffer_bytes\": " + std::to_string(view.header.flatbuffer_size) + ",\n";
    o += "  \"constant_bytes\": " + std::to_string(constantBytes) + ",\n";
    o += "  \"segments\": " + std::to_string(nseg) + ",\n";
    o += "  \"sections\": {\"header\": " + std::to_string(headerBytes) +
         ", \"flatbuffer\": " + std::to_string(flatbufferBytes) +
         ", \"constants\": " + std::to_string(constantBytes) +
         ", \"padding\": " + std::to_string(paddingBytes) + "},\n";
    o += "  \"constant_bytes_by_layer\": {";
    for (size_t i = 0; i < layers.size(); ++i)
      o += (i ? ", " : "") + jsonString(layers[i].first) + ": " + std::to_string(layers[i].second);
    o += "},\n";
    o += "  \"quantized_weights\": {";
    size_t qi = 0;
    for (const auto &q : quantized)
      o += (qi++ ? ", " : "") + jsonString(q.first) + ": {\"weights\": " +
           std::to_string(q.second.first) + ", \"bytes\": " + std::to_string(q.second.second) +
           "}";
    o += "},\n";
    o += "  \"methods\": {";
    for (size_t i = 0; i < methods.size(); ++i) {
      const MethodDesc &m = methods[i];
      o += (i ? ",\n" : "\n") + std::string("    ") + jsonString(m.name) + ": {\n";
      o += "      \"inputs\": [";
      for (size_t k = 0; k < m.inputs.size(); ++k)
        o += (k ? ", " : "") + m.inputs[k].json();
      o += "],\n      \"outputs\": [";
      for (size_t k = 0; k < m.outputs.size(); ++k)
        o += (k ? ", " : "") + m.outputs[k].json();
      o += "],\n      \"ops\": {";
      size_t k = 0;
      for (const auto &op : m.ops)
        o += (k++ ? ", " : "") + jsonString(op.first) + ": " + std::to_string(op.second);
      o += "},\n      \"instructions\": " + std::to_string(m.instructions) + ",\n";
      o += "      \"values\": " + std::to_string(m.values) + ",\n";
      o += "      \"arena_bytes\": " + std::to_string(m.arenaBytes) + ",\n";
      o += "      \"arena_lower_bound_bytes\": " + std::to_string(m.arenaLowerBoundBytes) + ",\n";
      o += "      \"naive_bytes\": " + std::to_string(m.naiveBytes) + ",\n";
      o += "      \"planned_values\": " + std::to_string(m.plannedValues) + "\n    }";
    }
    o += methods.empty() ? "},\n" : "\n  },\n";
    o += "  \"states\": [";
    for (size_t i = 0; i < states.size(); ++i)
      o += (i ? ", " : "") + std::string("{\"name\": ") + jsonString(states[i].name) +
           ", \"type\": " + jsonString(states[i].type) + ", \"dtype\": " +
           jsonString(states[i].dtype) + ", \"shape\": " + states[i].shape +
           ", \"bytes\": " + std::to_string(states[i].bytes) + "}";
    o += "],\n  \"state_bytes\": " + std::to_string(stateBytes) + ",\n";
    o += "  \"assets\": [";
    for (size_t i = 0; i < assets.size(); ++i)
      o += (i ? ", " : "") + std::string("{\"name\": ") + jsonString(assets[i].first) +
           ", \"bytes\": " + std::to_string(assets[i].second) + "}";
    o += "],\n  \"metadata\": {";
    for (size_t i = 0; i < metadata.size(); ++i)
      o += (i ? ", " : "") + jsonString(metadata[i].first) + ": " + jsonString(metadata[i].second);
    o += "}\n}\n";
    std::fputs(o.c_str(), stdout);
  } else {
    std::printf("%s: Kiln program, format version %u\n", path.c_str(), view.header.format_version);
    std::printf("  file bytes:       %zu\n", size);
    std::printf("  flatbuffer bytes: %llu\n", (unsigned long long)view.header.flatbuffer_size);
    std::printf("  constant bytes:   %llu in %u segments\n", (unsigned long long)constantBytes, nseg);
    std::printf("  sections:         header %llu, flatbuffer %llu, constants %llu, "
                "alignment padding %llu\n",
                (unsigned long long)headerBytes, (unsigned long long)flatbufferBytes,
                (unsigned long long)constantBytes, (unsigned long long)paddingBytes);
    for (const auto &q : quantized)
      std::printf("  quantized weights: %s: %llu (%llu bytes with scales)\n", q.first.c_str(),
                  (unsigned long long)q.second.first, (unsigned long long)q.second.second);
    if (!layers.empty()) {
      std::printf("  constants by layer:\n");
      for (const auto &layer : layers)
        std::printf("    %-24s %12llu bytes\n", layer.first.c_str(),
                    (unsigned long long)layer.second);
    }
    for (const MethodDesc &m : methods) {
      std::printf("method %s: %llu instructions, %llu values\n", m.name.c_str(),
                  (unsigned long long)m.instructions, (unsigned long long)m.values);
      for (size_t k = 0; k < m.inputs.size(); ++k)
        std::printf("  input %zu %s: %s\n", k, m.inputs[k].name.c_str(),
                    m.inputs[k].typeStr().c_str());
      for (size_t k = 0; k < m.outputs.size(); ++k)
        std::printf("  output %zu %s: %s\n", k, m.outputs[k].name.c_str(),
                    m.outputs[k].typeStr().c_str());
      std::printf("  memory plan: arena %llu bytes (lower bound %llu, naive %llu), %llu values "
                  "planned\n",
                  (unsigned long long)m.arenaBytes, (unsigned long long)m.arenaLowerBoundBytes,
                  (unsigned long long)m.naiveBytes, (unsigned long long)m.plannedValues);
      std::printf("  ops:");
      for (const auto &op : m.ops)
        std::printf(" %s=%llu", op.first.c_str(), (unsigned long long)op.second);
      std::printf("\n");
    }
    for (const StateDesc &s : states)
      std::printf("state %s: %s (%llu bytes)\n", s.name.c_str(), s.type.c_str(),
                  (unsigned long long)s.bytes);
    if (!states.empty())
      std::printf("state bytes: %llu in %zu states (allocated at load, not in any arena)\n",
                  (unsigned long long)stateBytes, states.size());
    for (const auto &a : assets)
      std::printf("asset %s: %llu bytes\n", a.first.c_str(), (unsigned long long)a.second);
    for (const auto &kv : metadata)
      std::printf("metadata %s = %s\n", kv.first.c_str(), shortened(kv.second).c_str());
  }
  ::munmap(map, size);
  return 0;
}

} // namespace rt
} // namespace kiln
