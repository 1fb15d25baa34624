// ProgramWriter: every field survives a write + read (through the verifying
// reader and through a direct header/flatbuffer parse), segments are 64-byte
// aligned and deduplicated by content, output is deterministic, and writes are
// atomic.
#include "serializer/ProgramFormat.h"
#include "serializer/ProgramReader.h"
#include "serializer/ProgramWriter.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <iterator>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace kiln {
namespace {

/// A fresh directory under $TMPDIR, removed (with its files) at the end.
class TempDir {
public:
  TempDir() {
    const char *base = std::getenv("TMPDIR");
    std::string pattern = std::string(base && *base ? base : "/tmp") + "/kiln-writer-XXXXXX";
    std::vector<char> buf(pattern.begin(), pattern.end());
    buf.push_back('\0');
    if (::mkdtemp(buf.data()))
      path = buf.data();
  }
  ~TempDir() {
    for (const std::string &f : listFiles())
      std::remove((path + "/" + f).c_str());
    ::rmdir(path.c_str());
  }
  std::string file(const std::string &name) const { return path + "/" + name; }
  std::vector<std::string> listFiles() const {
    std::vector<std::string> names;
    if (DIR *d = ::opendir(path.c_str())) {
      while (dirent *e = ::readdir(d))
        if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0)
          names.push_back(e->d_name);
      ::closedir(d);
    }
    return names;
  }
  std::string path;
};

std::vector<uint8_t> readFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

bool fileExists(const std::string &path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

uint64_t loadLE64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i)
    v = (v << 8) | p[i];
  return v;
}

uint32_t loadLE32(const uint8_t *p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

std::vector<int64_t> toVector(const flatbuffers::Vector<int64_t> *v) {
  return v ? std::vector<int64_t>(v->begin(), v->end()) : std::vector<int64_t>();
}
std::vector<int32_t> toVector(const flatbuffers::Vector<int32_t> *v) {
  return v ? std::vector<int32_t>(v->begin(), v->end()) : std::vector<int32_t>();
}
std::vector<double> toVector(const flatbuffers::Vector<double> *v) {
  return v ? std::vector<double>(v->begin(), v->end()) : std::vector<double>();
}

ValueSpec makeValue(std::string name, fb::DType dtype, std::vector<int64_t> shape,
                    fb::ValueKind kind, int32_t segment = -1, int32_t state = -1) {
  ValueSpec v;
  v.name = std::move(name);
  v.dtype = dtype;
  v.rank = static_cast<int32_t>(shape.size());
  v.shape = std::move(shape);
  v.kind = kind;
  v.segment = segment;
  v.state = state;
  return v;
}

/// Bytes held by the test program's constants (kept alive: the writer borrows).
struct TestConstants {
  std::vector<float> weight = {1, 2, 3, 4, 5, 6};           // [2,3] f32, both methods
  std::vector<float> weightCopy = {1, 2, 3, 4, 5, 6};       // same bytes, other address
  std::vector<float> bias = {0.5f, -0.5f};                  // [2] f32
  std::vector<int64_t> shapeList = {1, 6};                  // [2] i64
  std::vector<uint8_t> mask = {1, 0, 1};                    // [3] bool
};

/// A two-method program (prefill/decode) sharing a weight and a KV-cache state,
/// with attributes of every kind.
void buildTestProgram(ProgramWriter &w, const TestConstants &c) {
  int32_t weightSeg = w.addSegment(c.weight.data(), c.weight.size() * sizeof(float));
  int32_t biasSeg = w.addSegment(c.bias.data(), c.bias.size() * sizeof(float));
  int32_t shapeSeg = w.addSegment(c.shapeList.data(), c.shapeList.size() * sizeof(int64_t));
  int32_t maskSeg = w.addOwnedSegment(c.mask);
  int32_t cache = w.addState({"k_cache", fb::DType::Float32, {1, 4, 8}});

  MethodSpec prefill;
  prefill.name = "prefill";
  int32_t x = prefill.addValue(makeValue("x", fb::DType::Float32, {-1, 3}, fb::ValueKind::Input));
  int32_t wv = prefill.addValue(
      makeValue("w", fb::DType::Float32, {2, 3}, fb::ValueKind::Constant, weightSeg));
  int32_t bv = prefill.addValue(
      makeValue("b", fb::DType::Float32, {2}, fb::ValueKind::Constant, biasSeg));
  int32_t y = prefill.addValue(makeValue("y", fb::DType::Float32, {-1, 2}, fb::ValueKind::Output));
  ValueSpec unranked;
  unranked.name = "u";
  unranked.dtype = fb::DType::Unknown;
  int32_t u = prefill.addValue(unranked);
  int32_t kc = prefill.addValue(
      makeValue("k_cache", fb::DType::Float32, {1, 4, 8}, fb::ValueKind::State, -1, cache));
  int32_t m = prefill.addValue(
      makeValue("mask", fb::DType::Bool, {3}, fb::ValueKind::Constant, maskSeg));
  prefill.inputs = {x};
  prefill.outputs = {y};
  InstructionSpec lin;
  lin.op = "linear";
  lin.inputs = {x, wv, bv};
  lin.outputs = {u};
  lin.loc = "model.py:12";
  // Deliberately unsorted: the writer sorts attributes by name.
  lin.attrs = {AttrSpec::makeString("fn", "silu"),
               AttrSpec::makeFloats("scales", {0.25, -1.5}),
               AttrSpec::makeBool("keepdim", true),
               AttrSpec::makeInts("dims", {0, -1, 7}),
               AttrSpec::makeFloat("eps", 1e-6),
               AttrSpec::makeInt("dim", -2)};
  prefill.instructions.push_back(lin);
  InstructionSpec where;
  where.op = "where";
  where.inputs = {m, u, kc};
  where.outputs = {y};
  prefill.instructions.push_back(where);
  w.addMethod(prefill);

  MethodSpec decode;
  decode.name = "decode";
  int32_t dx = decode.addValue(makeValue("x", fb::DType::Float32, {1, 3}, fb::ValueKind::Input));
  int32_t dw = decode.addValue(
      makeValue("w", fb::DType::Float32, {2, 3}, fb::ValueKind::Constant,
                w.addSegment(c.weightCopy.data(), c.weightCopy.size() * sizeof(float))));
  int32_t ds = decode.addValue(
      makeValue("s", fb::DType::Int64, {2}, fb::ValueKind::Constant, shapeSeg));
  int32_t dy = decode.addValue(makeValue("y", fb::DType::Float32, {1, 2}, fb::ValueKind::Output));
  int32_t dt = decode.addValue(makeValue("t", fb::DType::Float32, {1, 2}, fb::ValueKind::Intermediate));
  decode.inputs = {dx};
  decode.outputs = {dy};
  InstructionSpec dl;
  dl.op = "linear";
  dl.inputs = {dx, dw, -1};
  dl.outputs = {dt};
  decode.instructions.push_back(dl);
  InstructionSpec dr;
  dr.op = "reshape";
  dr.inputs = {dt, ds};
  dr.outputs = {dy};
  decode.instructions.push_back(dr);
  w.addMethod(decode);

  w.setMetadata("producer", "kiln test");
  w.setMetadata("model", "tiny");
  w.setMetadata("producer", "kiln test 2"); // replaces, keeps position
}

TEST(ProgramWriterTest, RoundTripsEveryField) {
  TempDir dir;
  ASSERT_FALSE(dir.path.empty());
  TestConstants c;
  ProgramWriter w;
  buildTestProgram(w, c);
  // weight, bias, shapeList, mask: the decode copy of the weight is deduplicated.
  EXPECT_EQ(w.getNumSegments(), 4u);

  const std::string path = dir.file("p.kiln");
  WriteResult r = w.writeToFile(path);
  ASSERT_TRUE(r.ok()) << r.error;
  std::vector<uint8_t> bytes = readFile(path);
  ASSERT_GE(bytes.size(), kProgramHeaderSize);

  // The header, parsed byte by byte (little-endian).
  EXPECT_EQ(std::memcmp(bytes.data(), kProgramMagic, 8), 0);
  EXPECT_EQ(loadLE32(&bytes[8]), kProgramFormatVersion);
  EXPECT_EQ(loadLE32(&bytes[12]), kProgramHeaderSize);
  EXPECT_EQ(loadLE64(&bytes[16]), kProgramHeaderSize);
  const uint64_t fbSize = loadLE64(&bytes[24]);
  const uint64_t segOffset = loadLE64(&bytes[32]);
  const uint64_t segSize = loadLE64(&bytes[40]);
  EXPECT_EQ(loadLE64(&bytes[48]), bytes.size());
  EXPECT_EQ(loadLE64(&bytes[56]), 0u);
  EXPECT_EQ(segOffset % 64, 0u);
  EXPECT_GE(segOffset, kProgramHeaderSize + fbSize);
  EXPECT_LT(segOffset, kProgramHeaderSize + fbSize + 64);
  EXPECT_EQ(segOffset + segSize, bytes.size());

  // The flatbuffer, verified directly.
  const uint8_t *fbData = bytes.data() + kProgramHeaderSize;
  flatbuffers::Verifier verifier(fbData, fbSize);
  ASSERT_TRUE(fb::VerifyProgramBuffer(verifier));
  ASSERT_TRUE(fb::ProgramBufferHasIdentifier(fbData));

  // And through the reader, hashes included.
  ProgramView view;
  std::string error;
  ReadOptions options;
  options.verifySegmentHashes = true;
  ASSERT_TRUE(readProgram(bytes.data(), bytes.size(), options, &view, &error)) << error;
  const fb::Program *p = view.program;
  EXPECT_EQ(p->version(), kProgramFormatVersion);

  // Segments: content, alignment, hash.
  ASSERT_EQ(view.numSegments(), 4u);
  auto expectSegment = [&](uint32_t i, const void *data, size_t size) {
    SCOPED_TRACE("segment " + std::to_string(i));
    const fb::Segment *s = p->segments()->Get(i);
    EXPECT_EQ(s->offset() % 64, 0u);
    EXPECT_EQ(s->size(), size);
    EXPECT_EQ(s->hash(), fnv1a64(data, size));
    ASSERT_EQ(view.segmentSize(i), size);
    EXPECT_EQ(std::memcmp(view.segmentData(i), data, size), 0);
  };
  expectSegment(0, c.weight.data(), 24);
  expectSegment(1, c.bias.data(), 8);
  expectSegment(2, c.shapeList.data(), 16);
  expectSegment(3, c.mask.data(), 3);

  ASSERT_EQ(p->states()->size(), 1u);
  EXPECT_EQ(p->states()->Get(0)->name()->str(), "k_cache");
  EXPECT_EQ(p->states()->Get(0)->dtype(), fb::DType::Float32);
  EXPECT_EQ(toVector(p->states()->Get(0)->shape()), (std::vector<int64_t>{1, 4, 8}));

  ASSERT_EQ(p->metadata()->size(), 2u);
  EXPECT_EQ(p->metadata()->Get(0)->key()->str(), "producer");
  EXPECT_EQ(p->metadata()->Get(0)->value()->str(), "kiln test 2");
  EXPECT_EQ(p->metadata()->Get(1)->key()->str(), "model");
  EXPECT_EQ(p->metadata()->Get(1)->value()->str(), "tiny");

  ASSERT_EQ(p->methods()->size(), 2u);
  const fb::Method *prefill = p->methods()->Get(0);
  EXPECT_EQ(prefill->name()->str(), "prefill");
  EXPECT_EQ(toVector(prefill->inputs()), (std::vector<int32_t>{0}));
  EXPECT_EQ(toVector(prefill->outputs()), (std::vector<int32_t>{3}));
  ASSERT_EQ(prefill->values()->size(), 7u);
  struct ExpectedValue {
    const char *name;
    fb::DType dtype;
    int32_t rank;
    std::vector<int64_t> shape;
    fb::ValueKind kind;
    int32_t segment, state;
  };
  std::vector<ExpectedValue> expected = {
      {"x", fb::DType::Float32, 2, {-1, 3}, fb::ValueKind::Input, -1, -1},
      {"w", fb::DType::Float32, 2, {2, 3}, fb::ValueKind::Constant, 0, -1},
      {"b", fb::DType::Float32, 1, {2}, fb::ValueKind::Constant, 1, -1},
      {"y", fb::DType::Float32, 2, {-1, 2}, fb::ValueKind::Output, -1, -1},
      {"u", fb::DType::Unknown, -1, {}, fb::ValueKind::Intermediate, -1, -1},
      {"k_cache", fb::DType::Float32, 3, {1, 4, 8}, fb::ValueKind::State, -1, 0},
      {"mask", fb::DType::Bool, 1, {3}, fb::ValueKind::Constant, 3, -1},
  };
  for (size_t i = 0; i < expected.size(); ++i) {
    SCOPED_TRACE("prefill value " + std::to_string(i));
    const fb::Value *v = prefill->values()->Get(i);
    EXPECT_EQ(v->name()->str(), expected[i].name);
    EXPECT_EQ(v->dtype(), expected[i].dtype);
    EXPECT_EQ(v->rank(), expected[i].rank);
    EXPECT_EQ(toVector(v->shape()), expected[i].shape);
    EXPECT_EQ(v->kind(), expected[i].kind);
    EXPECT_EQ(v->segment(), expected[i].segment);
    EXPECT_EQ(v->state(), expected[i].state);
  }
  // A rank-0 value keeps an (empty) shape; an unranked one has none.
  EXPECT_EQ(prefill->values()->Get(4)->shape(), nullptr);

  ASSERT_EQ(prefill->instructions()->size(), 2u);
  const fb::Instruction *lin = prefill->instructions()->Get(0);
  EXPECT_EQ(lin->op()->str(), "linear");
  EXPECT_EQ(toVector(lin->inputs()), (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(toVector(lin->outputs()), (std::vector<int32_t>{4}));
  EXPECT_EQ(lin->loc()->str(), "model.py:12");
  ASSERT_EQ(lin->attrs()->size(), 6u);
  std::vector<std::string> names;
  for (const fb::Attribute *a : *lin->attrs())
    names.push_back(a->name()->str());
  EXPECT_EQ(names, (std::vector<std::string>{"dim", "dims", "eps", "fn", "keepdim", "scales"}));
  const auto *attrs = lin->attrs();
  EXPECT_EQ(attrs->Get(0)->kind(), fb::AttrKind::Int);
  EXPECT_EQ(attrs->Get(0)->i(), -2);
  EXPECT_EQ(attrs->Get(1)->kind(), fb::AttrKind::Ints);
  EXPECT_EQ(toVector(attrs->Get(1)->ints()), (std::vector<int64_t>{0, -1, 7}));
  EXPECT_EQ(attrs->Get(2)->kind(), fb::AttrKind::Float);
  EXPECT_EQ(attrs->Get(2)->f(), 1e-6);
  EXPECT_EQ(attrs->Get(3)->kind(), fb::AttrKind::String);
  EXPECT_EQ(attrs->Get(3)->s()->str(), "silu");
  EXPECT_EQ(attrs->Get(4)->kind(), fb::AttrKind::Bool);
  EXPECT_EQ(attrs->Get(4)->i(), 1);
  EXPECT_EQ(attrs->Get(5)->kind(), fb::AttrKind::Floats);
  EXPECT_EQ(toVector(attrs->Get(5)->floats()), (std::vector<double>{0.25, -1.5}));
  const fb::Instruction *where = prefill->instructions()->Get(1);
  EXPECT_EQ(where->op()->str(), "where");
  EXPECT_EQ(toVector(where->inputs()), (std::vector<int32_t>{6, 4, 5}));
  EXPECT_EQ(where->attrs()->size(), 0u);

  const fb::Method *decode = p->methods()->Get(1);
  EXPECT_EQ(decode->name()->str(), "decode");
  ASSERT_EQ(decode->values()->size(), 5u);
  // The weight is shared with prefill: same segment, stored once.
  EXPECT_EQ(decode->values()->Get(1)->segment(), 0);
  EXPECT_EQ(decode->values()->Get(2)->segment(), 2);
  EXPECT_EQ(decode->values()->Get(2)->dtype(), fb::DType::Int64);
  ASSERT_EQ(decode->instructions()->size(), 2u);
  EXPECT_EQ(toVector(decode->instructions()->Get(0)->inputs()),
            (std::vector<int32_t>{0, 1, -1}));
  EXPECT_EQ(toVector(decode->instructions()->Get(0)->outputs()), (std::vector<int32_t>{4}));
  EXPECT_EQ(decode->instructions()->Get(1)->op()->str(), "reshape");
  EXPECT_EQ(toVector(decode->instructions()->Get(1)->inputs()), (std::vector<int32_t>{4, 2}));
  EXPECT_EQ(toVector(decode->instructions()->Get(1)->outputs()), (std::vector<int32_t>{3}));
  EXPECT_EQ(toVector(decode->outputs()), (std::vector<int32_t>{3}));
}

TEST(ProgramWriterTest, SegmentsAre64ByteAlignedAndPaddedWithZeros) {
  TempDir dir;
  ProgramWriter w;
  // Sizes that straddle the alignment: 1, 63, 64, 65, 127, 0, 200 bytes.
  std::vector<std::vector<uint8_t>> data;
  for (size_t size : {1, 63, 64, 65, 127, 0, 200}) {
    std::vector<uint8_t> d(size);
    for (size_t i = 0; i < size; ++i)
      d[i] = static_cast<uint8_t>(0x80 + size + i); // never zero, distinct per size
    data.push_back(d);
  }
  for (const auto &d : data)
    w.addSegment(d.data(), d.size());
  ASSERT_EQ(w.getNumSegments(), data.size());
  const std::string path = dir.file("aligned.kiln");
  WriteResult r = w.writeToFile(path);
  ASSERT_TRUE(r.ok()) << r.error;

  std::vector<uint8_t> bytes = readFile(path);
  ProgramView view;
  std::string error;
  ASSERT_TRUE(readProgram(bytes.data(), bytes.size(), ReadOptions(), &view, &error)) << error;
  ASSERT_EQ(view.header.segments_offset % 64, 0u);
  uint64_t expectedOffset = 0;
  for (uint32_t i = 0; i < data.size(); ++i) {
    SCOPED_TRACE("segment " + std::to_string(i) + " of " + std::to_string(data[i].size()) +
                 " bytes");
    const fb::Segment *s = view.program->segments()->Get(i);
    EXPECT_EQ(s->offset() % 64, 0u);
    EXPECT_EQ((view.header.segments_offset + s->offset()) % 64, 0u);
    EXPECT_EQ(s->offset(), expectedOffset); // packed: next 64-byte boundary
    EXPECT_EQ(s->size(), data[i].size());
    EXPECT_EQ(std::memcmp(view.segmentData(i), data[i].data(), data[i].size()), 0);
    // The padding up to the next boundary is zero.
    uint64_t end = view.header.segments_offset + s->offset() + s->size();
    uint64_t next = std::min<uint64_t>(alignToSegment(end), bytes.size());
    for (uint64_t b = end; b < next; ++b)
      ASSERT_EQ(bytes[b], 0) << "padding byte at file offset " << b;
    expectedOffset = alignToSegment(s->offset() + s->size());
  }
  EXPECT_EQ(view.header.segments_size, view.program->segments()->Get(6)->offset() + 200);
}

TEST(ProgramWriterTest, DeduplicatesIdenticalBytesOnly) {
  std::vector<float> a = {1, 2, 3, 4};
  std::vector<float> aCopy = a;
  std::vector<float> b = {1, 2, 3, 5};   // same size, different bytes
  std::vector<float> prefix = {1, 2, 3}; // a prefix of a
  ProgramWriter w;
  int32_t ia = w.addSegment(a.data(), 16);
  EXPECT_EQ(w.addSegment(aCopy.data(), 16), ia);
  EXPECT_EQ(w.addSegment(a.data(), 16), ia);
  int32_t ib = w.addSegment(b.data(), 16);
  EXPECT_NE(ib, ia);
  int32_t ip = w.addSegment(prefix.data(), 12);
  EXPECT_NE(ip, ia);
  // Owned and borrowed bytes deduplicate against each other.
  std::vector<uint8_t> owned(reinterpret_cast<uint8_t *>(b.data()),
                             reinterpret_cast<uint8_t *>(b.data()) + 16);
  EXPECT_EQ(w.addOwnedSegment(owned), ib);
  std::vector<uint8_t> fresh = {9, 9, 9};
  int32_t iff = w.addOwnedSegment(fresh);
  EXPECT_EQ(w.addSegment(fresh.data(), 3), iff);
  EXPECT_EQ(w.getNumSegments(), 4u);

  TempDir dir;
  WriteResult r = w.writeToFile(dir.file("dedup.kiln"));
  ASSERT_TRUE(r.ok()) << r.error;
  std::vector<uint8_t> bytes = readFile(dir.file("dedup.kiln"));
  ProgramView view;
  std::string error;
  ASSERT_TRUE(readProgram(bytes.data(), bytes.size(), ReadOptions(), &view, &error)) << error;
  ASSERT_EQ(view.numSegments(), 4u);
  EXPECT_EQ(std::memcmp(view.segmentData(ia), a.data(), 16), 0);
  EXPECT_EQ(std::memcmp(view.segmentData(ib), b.data(), 16), 0);
  EXPECT_EQ(std::memcmp(view.segmentData(ip), prefix.data(), 12), 0);
  EXPECT_EQ(std::memcmp(view.segmentData(iff), fresh.data(), 3), 0);
}

TEST(ProgramWriterTest, OutputIsDeterministic) {
  TempDir dir;
  TestConstants c1, c2;
  ProgramWriter w1, w2;
  buildTestProgram(w1, c1);
  buildTestProgram(w2, c2);
  ASSERT_TRUE(w1.writeToFile(dir.file("a.kiln")).ok());
  ASSERT_TRUE(w2.writeToFile(dir.file("b.kiln")).ok());
  ASSERT_TRUE(w1.writeToFile(dir.file("c.kiln")).ok());
  std::vector<uint8_t> a = readFile(dir.file("a.kiln"));
  ASSERT_FALSE(a.empty());
  EXPECT_EQ(a, readFile(dir.file("b.kiln")));
  EXPECT_EQ(a, readFile(dir.file("c.kiln")));
}

TEST(ProgramWriterTest, EmptyProgramHasNoSegments) {
  TempDir dir;
  ProgramWriter w;
  MethodSpec m;
  m.name = "forward";
  w.addMethod(m);
  ASSERT_TRUE(w.writeToFile(dir.file("empty.kiln")).ok());
  std::vector<uint8_t> bytes = readFile(dir.file("empty.kiln"));
  ProgramView view;
  std::string error;
  ASSERT_TRUE(readProgram(bytes.data(), bytes.size(), ReadOptions(), &view, &error)) << error;
  EXPECT_EQ(view.header.segments_size, 0u);
  EXPECT_EQ(view.header.file_size, view.header.segments_offset);
  EXPECT_EQ(view.numSegments(), 0u);
  ASSERT_EQ(view.program->methods()->size(), 1u);
  EXPECT_EQ(view.program->methods()->Get(0)->name()->str(), "forward");
}

TEST(ProgramWriterTest, MissingDirectoryFailsAndLeavesNoFile) {
  TempDir dir;
  ProgramWriter w;
  MethodSpec m;
  m.name = "forward";
  w.addMethod(m);
  const std::string missingDir = dir.file("no-such-dir");
  WriteResult r = w.writeToFile(missingDir + "/p.kiln");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error.find("no-such-dir/p.kiln.tmp."), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("No such file or directory"), std::string::npos) << r.error;
  EXPECT_FALSE(fileExists(missingDir));
  EXPECT_TRUE(dir.listFiles().empty());
}

TEST(ProgramWriterTest, ExistingFileIsReplacedOnlyOnSuccess) {
  TempDir dir;
  const std::string path = dir.file("p.kiln");
  {
    std::ofstream out(path, std::ios::binary);
    out << "old contents";
  }
  // An invalid program (output index out of range) fails before touching `path`.
  ProgramWriter bad;
  MethodSpec m;
  m.name = "forward";
  m.outputs = {3};
  bad.addMethod(m);
  WriteResult r = bad.writeToFile(path);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error.find("output index 3 out of range"), std::string::npos) << r.error;
  std::vector<uint8_t> old = readFile(path);
  EXPECT_EQ(std::string(old.begin(), old.end()), "old contents");
  EXPECT_EQ(dir.listFiles(), std::vector<std::string>{"p.kiln"});

  // Renaming over a directory fails after the temporary file was written:
  // the temporary file is removed and the directory is left as it was.
  const std::string dirPath = dir.file("is-a-dir");
  ASSERT_EQ(::mkdir(dirPath.c_str(), 0755), 0);
  ProgramWriter good;
  MethodSpec ok;
  ok.name = "forward";
  good.addMethod(ok);
  r = good.writeToFile(dirPath);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error.find("cannot rename"), std::string::npos) << r.error;
  std::vector<std::string> files = dir.listFiles();
  std::sort(files.begin(), files.end());
  EXPECT_EQ(files, (std::vector<std::string>{"is-a-dir", "p.kiln"}));
  ::rmdir(dirPath.c_str());

  // A valid program replaces the file.
  r = good.writeToFile(path);
  ASSERT_TRUE(r.ok()) << r.error;
  std::vector<uint8_t> bytes = readFile(path);
  ASSERT_GE(bytes.size(), 8u);
  EXPECT_EQ(std::memcmp(bytes.data(), kProgramMagic, 8), 0);
  EXPECT_EQ(dir.listFiles(), std::vector<std::string>{"p.kiln"});
}

/// Writes `w` and expects failure with a message containing `needle`.
void expectInvalid(ProgramWriter &w, const std::string &needle) {
  TempDir dir;
  WriteResult r = w.writeToFile(dir.file("bad.kiln"));
  ASSERT_FALSE(r.ok()) << "expected an error containing '" << needle << "'";
  EXPECT_NE(r.error.find(needle), std::string::npos) << r.error;
  EXPECT_TRUE(dir.listFiles().empty());
}

TEST(ProgramWriterTest, RejectsInconsistentPrograms) {
  std::vector<float> data = {1, 2, 3};
  {
    ProgramWriter w;
    MethodSpec m;
    m.name = "f";
    int32_t seg = w.addSegment(data.data(), 12);
    m.addValue(makeValue("c", fb::DType::Float32, {4}, fb::ValueKind::Constant, seg));
    w.addMethod(m);
    expectInvalid(w, "constant needs 16 bytes but segment 0 holds 12");
  }
  {
    ProgramWriter w;
    MethodSpec m;
    m.name = "f";
    m.addValue(makeValue("c", fb::DType::Float32, {3}, fb::ValueKind::Constant, 5));
    w.addMethod(m);
    expectInvalid(w, "constant segment 5 out of range");
  }
  {
    ProgramWriter w;
    MethodSpec m;
    m.name = "f";
    int32_t v = m.addValue(makeValue("x", fb::DType::Float32, {3}, fb::ValueKind::Input));
    InstructionSpec inst;
    inst.op = "unary";
    inst.inputs = {v, -2};
    m.instructions.push_back(inst);
    w.addMethod(m);
    expectInvalid(w, "instruction 0 ('unary'): input index -2 out of range");
  }
  {
    ProgramWriter w;
    MethodSpec m;
    m.name = "f";
    int32_t x = m.addValue(makeValue("x", fb::DType::Float32, {3}, fb::ValueKind::Input));
    int32_t y = m.addValue(makeValue("y", fb::DType::Float32, {3}, fb::ValueKind::Output));
    m.inputs = {x};
    m.outputs = {y};
    InstructionSpec inst;
    inst.op = "unary";
    inst.inputs = {y};
    inst.outputs = {x};
    m.instructions.push_back(inst);
    w.addMethod(m);
    expectInvalid(w, "instruction 0 ('unary'): reads value 1 before it is produced");
    w.getMethod(0).instructions[0].inputs = {x};
    expectInvalid(w, "instruction 0 ('unary'): writes value 0, which is a method input");
    w.getMethod(0).instructions[0].outputs = {y};
    w.getMethod(0).instructions.push_back(w.getMethod(0).instructions[0]);
    expectInvalid(w, "instruction 1 ('unary'): value 1 is produced twice");
    w.getMethod(0).instructions.clear();
    expectInvalid(w, "output 0 (value 1) is never produced");
  }
  {
    ProgramWriter w;
    MethodSpec m;
    m.name = "f";
    InstructionSpec inst;
    inst.op = "unary";
    inst.attrs = {AttrSpec::makeString("fn", "neg"), AttrSpec::makeInt("fn", 1)};
    m.instructions.push_back(inst);
    w.addMethod(m);
    expectInvalid(w, "duplicate attribute 'fn'");
  }
  {
    ProgramWriter w;
    MethodSpec m;
    m.name = "f";
    w.addMethod(m);
    w.addMethod(m);
    expectInvalid(w, "duplicate method name 'f'");
  }
  {
    ProgramWriter w;
    MethodSpec m;
    m.name = "f";
    m.addValue(makeValue("s", fb::DType::Float32, {3}, fb::ValueKind::State, -1, 0));
    w.addMethod(m);
    expectInvalid(w, "state 0 out of range (0 states)");
  }
  {
    ProgramWriter w;
    MethodSpec m;
    m.name = "f";
    ValueSpec v = makeValue("x", fb::DType::Float32, {3}, fb::ValueKind::Input);
    v.rank = 2;
    m.addValue(v);
    w.addMethod(m);
    expectInvalid(w, "rank 2 but 1 dims");
  }
}

} // namespace
} // namespace kiln
