#include "TestProgramBuilder.h"
#include "WriterTestUtil.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace kiln {
namespace test {

TAttr attrInt(const std::string &n, int64_t v) { TAttr a; a.name = n; a.kind = fb::AttrKind::Int; a.i = v; return a; }
TAttr attrBool(const std::string &n, bool v) { TAttr a; a.name = n; a.kind = fb::AttrKind::Bool; a.i = v; return a; }
TAttr attrFloat(const std::string &n, double v) { TAttr a; a.name = n; a.kind = fb::AttrKind::Float; a.f = v; return a; }
TAttr attrInts(const std::string &n, std::vector<int64_t> v) { TAttr a; a.name = n; a.kind = fb::AttrKind::Ints; a.ints = std::move(v); return a; }
TAttr attrStr(const std::string &n, const std::string &v) { TAttr a; a.name = n; a.kind = fb::AttrKind::String; a.s = v; return a; }

std::vector<uint8_t> TProgram::build() const {
  flatbuffers::FlatBufferBuilder b;
  std::vector<flatbuffers::Offset<fb::Segment>> segs;
  uint64_t off = 0;
  std::vector<uint64_t> offsets;
  for (const auto &s : segments) {
    offsets.push_back(off);
    segs.push_back(fb::CreateSegment(b, off, s.size(), fnv1a64(s.data(), s.size())));
    off = alignToSegment(off + s.size());
  }
  uint64_t segArea = off;
  std::vector<flatbuffers::Offset<fb::Method>> ms;
  for (const TMethod &m : methods) {
    std::vector<flatbuffers::Offset<fb::Value>> vals;
    for (const TValue &v : m.values)
      vals.push_back(fb::CreateValue(b, b.CreateString(v.name), v.dtype, v.rank,
                                     v.rank >= 0 ? b.CreateVector(v.shape) : 0, v.kind,
                                     v.segment, v.state, v.quantGroupSize, v.scalesSegment,
                                     v.scalesDType, v.arenaOffset, v.quantLayout));
    std::vector<flatbuffers::Offset<fb::Instruction>> ins;
    for (const TInstr &i : m.instrs) {
      std::vector<flatbuffers::Offset<fb::Attribute>> attrs;
      for (const TAttr &a : i.attrs)
        attrs.push_back(fb::CreateAttribute(
            b, b.CreateString(a.name), a.kind, a.i, a.f,
            a.kind == fb::AttrKind::Ints ? b.CreateVector(a.ints) : 0,
            a.kind == fb::AttrKind::Floats ? b.CreateVector(a.floats) : 0,
            a.kind == fb::AttrKind::String ? b.CreateString(a.s) : 0));
      ins.push_back(fb::CreateInstruction(b, b.CreateString(i.op), b.CreateVector(i.inputs),
                                          b.CreateVector(i.outputs), b.CreateVector(attrs),
                                          b.CreateString(i.loc)));
    }
    ms.push_back(fb::CreateMethod(b, b.CreateString(m.name), b.CreateVector(vals),
                                  b.CreateVector(m.inputs), b.CreateVector(m.outputs),
                                  b.CreateVector(ins), m.arenaBytes, m.arenaLowerBoundBytes,
                                  m.naiveBytes));
  }
  std::vector<flatbuffers::Offset<fb::StateDecl>> sts;
  for (const TState &s : states)
    sts.push_back(fb::CreateStateDecl(b, b.CreateString(s.name), s.dtype, b.CreateVector(s.shape)));
  std::vector<flatbuffers::Offset<fb::KeyValue>> md;
  for (const auto &kv : metadata)
    md.push_back(fb::CreateKeyValue(b, b.CreateString(kv.first), b.CreateString(kv.second)));
  auto prog = fb::CreateProgram(b, version, b.CreateVector(ms), b.CreateVector(segs),
                                b.CreateVector(sts), b.CreateVector(md));
  fb::FinishProgramBuffer(b, prog);

  FileHeader h = makeFileHeader();
  h.format_version = version;
  h.flatbuffer_size = b.GetSize();
  h.segments_offset = alignToSegment(h.flatbuffer_offset + h.flatbuffer_size);
  h.segments_size = segArea;
  h.file_size = h.segments_offset + segArea;
  std::vector<uint8_t> file((size_t)h.file_size, 0);
  std::memcpy(file.data(), &h, sizeof(h));
  std::memcpy(file.data() + h.flatbuffer_offset, b.GetBufferPointer(), b.GetSize());
  for (size_t i = 0; i < segments.size(); ++i)
    if (!segments[i].empty())
      std::memcpy(file.data() + h.segments_offset + offsets[i], segments[i].data(),
                  segments[i].size());
  return file;
}

rt::Result<std::vector<rt::Tensor>> runOp(const std::string &op,
                                          const std::vector<rt::Tensor> &inputs,
                                          const std::vector<TAttr> &attrs, int numOutputs) {
  TProgram p;
  TMethod m;
  TInstr ins;
  ins.op = op;
  ins.attrs = attrs;
  std::vector<rt::Tensor> present;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined()) {
      ins.inputs.push_back(-1);
      continue;
    }
    TValue v;
    v.name = "in" + std::to_string(i);
    v.kind = fb::ValueKind::Input;
    int idx = m.add(v);
    m.inputs.push_back(idx);
    ins.inputs.push_back(idx);
    present.push_back(inputs[i]);
  }
  for (int k = 0; k < numOutputs; ++k) {
    TValue v;
    v.name = "out" + std::to_string(k);
    v.kind = fb::ValueKind::Output;
    int idx = m.add(v);
    ins.outputs.push_back(idx);
    m.outputs.push_back(idx);
  }
  m.instrs.push_back(ins);
  p.methods.push_back(m);
  std::vector<uint8_t> bytes = p.build();
  auto prog = rt::Program::loadFromBytes(bytes.data(), bytes.size());
  if (!prog.ok())
    return prog.error();
  return (*prog)->run("forward", present);
}

static rt::Tensor must(rt::Result<rt::Tensor> r) {
  if (!r.ok()) {
    std::fprintf(stderr, "bad test literal: %s\n", r.error().message().c_str());
    std::abort();
  }
  return r.take();
}
rt::Tensor f32(rt::Shape s, std::vector<float> v) { return must(rt::Tensor::fromFloats(s, v)); }
rt::Tensor i64(rt::Shape s, std::vector<int64_t> v) { return must(rt::Tensor::fromInt64s(s, v)); }
rt::Tensor i1(rt::Shape s, std::vector<bool> v) { return must(rt::Tensor::fromBools(s, v)); }
rt::Tensor i32(rt::Shape s, std::vector<int32_t> v) { return must(rt::Tensor::fromInt32s(s, v)); }

rt::Tensor runOne(const char *op, std::vector<rt::Tensor> inputs, std::vector<TAttr> attrs) {
  auto r = runOp(op, inputs, attrs);
  EXPECT_TRUE(r.ok()) << op << ": " << (r.ok() ? "" : r.error().message());
  if (!r.ok() || r->empty())
    return rt::Tensor();
  return (*r)[0];
}

rt::Tensor randomF32(rt::Shape shape, uint32_t seed) {
  return f32(shape, randomFloats((size_t)shape.numel(), seed));
}

std::vector<float> floatsOf(const rt::Tensor &t) {
  if (t.dtype() != rt::DType::Float32)
    return {};
  return std::vector<float>(t.dataAs<float>(), t.dataAs<float>() + t.numel());
}
std::vector<int64_t> int64sOf(const rt::Tensor &t) {
  if (t.dtype() != rt::DType::Int64)
    return {};
  return std::vector<int64_t>(t.dataAs<int64_t>(), t.dataAs<int64_t>() + t.numel());
}
std::vector<int> boolsOf(const rt::Tensor &t) {
  if (t.dtype() != rt::DType::Bool)
    return {};
  std::vector<int> v;
  for (int64_t i = 0; i < t.numel(); ++i)
    v.push_back(t.dataAs<uint8_t>()[i]);
  return v;
}

} // namespace test
} // namespace kiln
