// ProgramWriter with quantized weights (docs/program-format.md): the
// quantization fields survive a write + read through the verifying reader,
// and inconsistent fields or segment sizes are rejected before writing.
#include "serializer/ProgramFormat.h"
#include "serializer/ProgramReader.h"
#include "serializer/ProgramWriter.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <string>
#include <unistd.h>
#include <vector>

namespace kiln {
namespace {

std::string tempPath(const char *name) {
  return "/tmp/kiln-quant-writer-" + std::to_string(::getpid()) + "-" + name;
}

/// A quantized weight [out, in] of dtype Int8/Int4 plus a linear reading it.
ProgramWriter &addQuantized(ProgramWriter &w, fb::DType dtype, int64_t out, int64_t in,
                            int32_t group, std::vector<uint8_t> &data,
                            std::vector<uint8_t> &scales,
                            fb::QuantLayout layout = fb::QuantLayout::Rows) {
  MethodSpec m;
  m.name = "forward";
  ValueSpec q;
  q.name = "w";
  q.dtype = dtype;
  q.rank = 2;
  q.shape = {out, in};
  q.kind = fb::ValueKind::Constant;
  q.segment = w.addSegment(data.data(), data.size());
  q.quantGroupSize = group;
  q.scalesSegment = w.addSegment(scales.data(), scales.size());
  q.scalesDType = fb::DType::Float16;
  q.quantLayout = layout;
  int32_t wi = m.addValue(q);
  ValueSpec x;
  x.name = "x";
  x.dtype = fb::DType::Float32;
  x.kind = fb::ValueKind::Input;
  int32_t xi = m.addValue(x);
  ValueSpec y;
  y.dtype = fb::DType::Float32;
  y.kind = fb::ValueKind::Output;
  int32_t yi = m.addValue(y);
  m.inputs = {xi};
  m.outputs = {yi};
  InstructionSpec lin;
  lin.op = "linear";
  lin.inputs = {xi, wi, -1};
  lin.outputs = {yi};
  m.instructions.push_back(lin);
  w.addMethod(m);
  return w;
}

/// Writes `w` to a temporary file, reads it back into *bytes and verifies it
/// into *view (which points into *bytes). False, with a test failure, if not.
bool writeAndRead(ProgramWriter &w, const char *name, std::vector<uint8_t> *bytes,
                  ProgramView *view) {
  std::string path = tempPath(name);
  WriteResult r = w.writeToFile(path);
  EXPECT_TRUE(r.ok()) << r.error;
  if (!r.ok())
    return false;
  std::ifstream in(path, std::ios::binary);
  bytes->assign(std::istreambuf_iterator<char>(in), {});
  std::remove(path.c_str());
  std::string error;
  const bool ok = readProgram(bytes->data(), bytes->size(), ReadOptions(), view, &error);
  EXPECT_TRUE(ok) << error;
  return ok;
}

TEST(QuantizedWriterTest, RoundTripsQuantizationFields) {
  // int4 [4, 64], group 32: 128 packed bytes (distinct from the scales' bytes),
  // 4 x 2 f16 scales.
  std::vector<uint8_t> data(4 * 64 / 2), scales(4 * 2 * 2);
  for (size_t i = 0; i < data.size(); ++i)
    data[i] = (uint8_t)(i * 7 + 1);
  for (size_t i = 0; i < scales.size(); ++i)
    scales[i] = (uint8_t)(200 - i);
  ProgramWriter w;
  addQuantized(w, fb::DType::Int4, 4, 64, 32, data, scales);
  std::vector<uint8_t> bytes;
  ProgramView view;
  ASSERT_TRUE(writeAndRead(w, "ok.kiln", &bytes, &view));
  const fb::Value *v = view.program->methods()->Get(0)->values()->Get(0);
  EXPECT_EQ(v->dtype(), fb::DType::Int4);
  EXPECT_EQ(v->quant_group_size(), 32);
  EXPECT_EQ(v->scales_dtype(), fb::DType::Float16);
  ASSERT_GE(v->scales_segment(), 0);
  EXPECT_EQ(view.segmentSize((uint32_t)v->segment()), data.size());
  EXPECT_EQ(view.segmentSize((uint32_t)v->scales_segment()), scales.size());
  EXPECT_EQ(0, std::memcmp(view.segmentData((uint32_t)v->scales_segment()), scales.data(),
                           scales.size()));
  // Unquantized values keep the defaults.
  const fb::Value *x = view.program->methods()->Get(0)->values()->Get(1);
  EXPECT_EQ(x->scales_segment(), -1);
  EXPECT_EQ(x->quant_group_size(), 0);
}

/// A quantized weight the strip layout `layout` cannot describe.
struct BadStrip {
  fb::DType dtype;
  int64_t out, in;
  int32_t group;
};

/// Writing each `bad` weight with `layout` fails with "quant layout <name> needs".
void expectStripLayoutRefused(fb::QuantLayout layout, const std::string &name,
                              std::initializer_list<BadStrip> bad) {
  for (const BadStrip &b : bad) {
    std::vector<uint8_t> d(b.dtype == fb::DType::Int4 ? b.out * b.in / 2 : b.out * b.in, 1);
    std::vector<uint8_t> sc(b.out * (b.in / b.group) * 2, 2);
    ProgramWriter w;
    addQuantized(w, b.dtype, b.out, b.in, b.group, d, sc, layout);
    WriteResult r = w.writeToFile(tempPath("bad-strip.kiln"));
    ASSERT_FALSE(r.ok()) << name << ": out " << b.out << " in " << b.in << " group " << b.group;
    EXPECT_NE(r.error.find("quant layout " + name + " needs"), std::string::npos) << r.error;
  }
}

TEST(QuantizedWriterTest, WritesTheInt4Strip16Layout) {
  // int4 [16, 64] group 32 in strips of 16 (docs/program-format.md): same sizes
  // as rows; the field survives the round trip; shapes it cannot describe fail.
  std::vector<uint8_t> data(16 * 64 / 2, 0x5A), scales(16 * 2 * 2, 0x3C);
  ProgramWriter w;
  addQuantized(w, fb::DType::Int4, 16, 64, 32, data, scales, fb::QuantLayout::Int4Strip16);
  std::vector<uint8_t> bytes;
  ProgramView view;
  ASSERT_TRUE(writeAndRead(w, "strip16.kiln", &bytes, &view));
  EXPECT_EQ(view.header.format_version, kProgramFormatVersion);
  const fb::Value *v = view.program->methods()->Get(0)->values()->Get(0);
  EXPECT_EQ(v->quant_layout(), fb::QuantLayout::Int4Strip16);
  EXPECT_EQ(view.program->methods()->Get(0)->values()->Get(1)->quant_layout(),
            fb::QuantLayout::Rows);

  expectStripLayoutRefused(fb::QuantLayout::Int4Strip16, "Int4Strip16",
                           {{fb::DType::Int4, 8, 64, 32},
                            {fb::DType::Int4, 16, 64, 16},
                            {fb::DType::Int8, 16, 64, 32}});
}

TEST(QuantizedWriterTest, WritesTheInt8Strip16Layout) {
  // int8 [32, 64], one scale per row, in strips of 16: same sizes as rows; the
  // field survives the round trip; int4 data or shapes it cannot describe fail.
  std::vector<uint8_t> data(32 * 64, 0x5A), scales(32 * 2, 0x3C);
  ProgramWriter w;
  addQuantized(w, fb::DType::Int8, 32, 64, 64, data, scales, fb::QuantLayout::Int8Strip16);
  std::vector<uint8_t> bytes;
  ProgramView view;
  ASSERT_TRUE(writeAndRead(w, "strip8.kiln", &bytes, &view));
  EXPECT_EQ(view.program->methods()->Get(0)->values()->Get(0)->quant_layout(),
            fb::QuantLayout::Int8Strip16);

  expectStripLayoutRefused(fb::QuantLayout::Int8Strip16, "Int8Strip16",
                           {{fb::DType::Int8, 8, 64, 32},
                            {fb::DType::Int8, 16, 48, 48},
                            {fb::DType::Int4, 16, 64, 32}});
}

TEST(QuantizedWriterTest, RejectsInconsistentQuantizedConstants) {
  struct Case {
    fb::DType dtype;
    int64_t out, in;
    int32_t group;
    size_t dataBytes, scaleBytes;
    const char *expected;
  };
  const Case cases[] = {
      {fb::DType::Int4, 4, 64, 32, 127, 16, "needs 128 data bytes and 16 scale bytes"},
      {fb::DType::Int4, 4, 64, 32, 128, 8, "needs 128 data bytes and 16 scale bytes"},
      {fb::DType::Int8, 4, 24, 24, 96, 10, "needs 96 data bytes and 8 scale bytes"},
      {fb::DType::Int4, 4, 64, 48, 128, 16, "quant group size 48 does not divide"},
      {fb::DType::Int4, 4, 66, 33, 132, 16, "into even groups"},
      {fb::DType::Float32, 4, 64, 64, 1024, 8, "must have dtype i8 or i4"},
  };
  for (const Case &c : cases) {
    std::vector<uint8_t> data(c.dataBytes, 1), scales(c.scaleBytes, 2);
    ProgramWriter w;
    addQuantized(w, c.dtype, c.out, c.in, c.group, data, scales);
    std::string path = tempPath("bad.kiln");
    WriteResult r = w.writeToFile(path);
    ASSERT_FALSE(r.ok()) << "expected an error containing '" << c.expected << "'";
    EXPECT_NE(r.error.find(c.expected), std::string::npos) << r.error;
    EXPECT_NE(::access(path.c_str(), F_OK), 0) << "a failed write left " << path;
  }
}

} // namespace
} // namespace kiln
