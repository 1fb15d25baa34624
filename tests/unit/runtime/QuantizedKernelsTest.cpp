// Quantized weights in the runtime: the linear / embedding kernels against a
// dequantize-then-f32 reference, programs that carry quantized constants, and
// the reader rejecting malformed quantization fields.
#include "TestProgramBuilder.h"

#include "runtime-stub/kernels/QuantizedKernels.h"
#include "runtime-stub/kernels/opt/OptQuant.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

using namespace kiln;
using namespace kiln::test;
using kiln::rt::DType;
using kiln::rt::Shape;
using kiln::rt::Tensor;

namespace {

/// A quantized weight built in the test (symmetric; the reference math of
/// docs/dialect.md written independently of the compiler pass), plus its
/// dequantized f32 values.
struct TestWeight {
  int64_t out = 0, in = 0, group = 0;
  DType dtype = DType::Int8;
  DType scalesDType = DType::Float16;
  std::vector<uint8_t> data;   // i8 values, or packed i4
  std::vector<uint8_t> scales; // f16 or f32 bytes
  std::vector<float> dequant;  // [out, in]
  QuantLayout layout = QuantLayout::Rows;

  Tensor view() const {
    rt::QuantParams q;
    q.groupSize = group;
    q.scalesDType = scalesDType;
    q.scales = scales.data();
    q.layout = layout;
    return Tensor::borrowQuantized(dtype, Shape{out, in}, data.data(), q);
  }
  /// Repacks the weight into the Int4Strip16 / Int8Strip16 layout (core/QuantLayout.h).
  void repackStrip16() {
    std::vector<uint8_t> d(data.size()), s(scales.size());
    if (dtype == DType::Int8)
      strip16::packData8(data.data(), out, in, d.data());
    else
      strip16::packData(data.data(), out, in, d.data());
    strip16::packScales(scales.data(), out, in / group, scalesDType == DType::Float16 ? 2 : 4,
                        s.data());
    data = d;
    scales = s;
    layout = dtype == DType::Int8 ? QuantLayout::Int8Strip16 : QuantLayout::Int4Strip16;
  }
};

TestWeight makeWeight(std::mt19937 &rng, int64_t out, int64_t in, int bits, int64_t group,
                      DType scalesDType = DType::Float16) {
  TestWeight w;
  w.out = out;
  w.in = in;
  w.group = group;
  w.dtype = bits == 8 ? DType::Int8 : DType::Int4;
  w.scalesDType = scalesDType;
  std::normal_distribution<float> dist(0.0f, 0.5f);
  const int qmax = bits == 8 ? 127 : 7;
  std::vector<int> q((size_t)(out * in));
  w.dequant.resize(q.size());
  for (int64_t r = 0; r < out; ++r) {
    for (int64_t g = 0; g < in / group; ++g) {
      std::vector<float> vals((size_t)group);
      float maxAbs = 0;
      for (auto &v : vals) {
        v = dist(rng);
        maxAbs = std::max(maxAbs, std::fabs(v));
      }
      float scale = maxAbs / qmax;
      if (scalesDType == DType::Float16) {
        uint16_t h = rt::floatToHalf(scale);
        scale = rt::halfToFloat(h);
        w.scales.push_back((uint8_t)(h & 0xFF));
        w.scales.push_back((uint8_t)(h >> 8));
      } else {
        uint8_t b[4];
        std::memcpy(b, &scale, 4);
        w.scales.insert(w.scales.end(), b, b + 4);
      }
      for (int64_t c = 0; c < group; ++c) {
        int v = (int)std::lround(vals[(size_t)c] / scale);
        v = std::max(-qmax, std::min(qmax, v));
        size_t i = (size_t)(r * in + g * group + c);
        q[i] = v;
        w.dequant[i] = (float)v * scale;
      }
    }
  }
  if (bits == 8) {
    for (int v : q)
      w.data.push_back((uint8_t)(int8_t)v);
  } else {
    for (size_t i = 0; i < q.size(); i += 2)
      w.data.push_back((uint8_t)((q[i] & 0xF) | ((q[i + 1] & 0xF) << 4)));
  }
  return w;
}

std::vector<float> randomVector(std::mt19937 &rng, size_t n) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto &x : v)
    x = dist(rng);
  return v;
}

void checkLinear(std::mt19937 &rng, int64_t rows, int64_t out, int64_t in, int bits,
                 int64_t group, DType scalesDType, bool withBias) {
  TestWeight w = makeWeight(rng, out, in, bits, group, scalesDType);
  std::vector<float> x = randomVector(rng, (size_t)(rows * in));
  std::vector<float> bias = randomVector(rng, (size_t)out);
  std::vector<float> y((size_t)(rows * out), -1.0f);
  rt::quantizedLinear(x.data(), rows, w.view(), withBias ? bias.data() : nullptr, y.data());
  const double tol = 1e-5 * (double)in + 1e-5;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double ref = withBias ? bias[(size_t)o] : 0.0;
      for (int64_t c = 0; c < in; ++c)
        ref += (double)x[(size_t)(r * in + c)] * w.dequant[(size_t)(o * in + c)];
      ASSERT_NEAR(y[(size_t)(r * out + o)], ref, tol)
          << "linear i" << bits << " group " << group << " x [" << rows << ", " << in
          << "] weight [" << out << ", " << in << "] at [" << r << ", " << o << "] (tolerance "
          << tol << ")";
    }
}

/// A one-instruction program: `op` over a quantized constant at input
/// `weightInput` and one f32/i64 method input at the other position.
TProgram quantizedProgram(const TestWeight &w, const std::string &op, int weightInput,
                          fb::DType otherDType) {
  TProgram p;
  p.segments.push_back(w.data);
  p.segments.push_back(w.scales);
  TMethod m;
  TValue wv;
  wv.name = "w";
  wv.dtype = w.dtype == DType::Int8 ? fb::DType::Int8 : fb::DType::Int4;
  wv.rank = 2;
  wv.shape = {w.out, w.in};
  wv.kind = fb::ValueKind::Constant;
  wv.segment = 0;
  wv.quantGroupSize = (int)w.group;
  wv.scalesSegment = 1;
  wv.scalesDType = w.scalesDType == DType::Float16 ? fb::DType::Float16 : fb::DType::Float32;
  wv.quantLayout = static_cast<fb::QuantLayout>(w.layout);
  int wi = m.add(wv);
  TValue xv;
  xv.name = "x";
  xv.dtype = otherDType;
  xv.kind = fb::ValueKind::Input;
  int xi = m.add(xv);
  TValue yv;
  yv.kind = fb::ValueKind::Output;
  int yi = m.add(yv);
  m.inputs = {xi};
  m.outputs = {yi};
  TInstr ins;
  ins.op = op;
  ins.inputs = weightInput == 0 ? std::vector<int>{wi, xi} : std::vector<int>{xi, wi};
  ins.outputs = {yi};
  m.instrs.push_back(ins);
  p.methods.push_back(m);
  return p;
}

/// Appends w2 to a quantizedProgram (its data and scales as segments 2 and 3)
/// as a second constant "w2" of the same bits and group size; returns its
/// value index.
int addSecondWeight(TProgram &p, const TestWeight &w2) {
  p.segments.push_back(w2.data);
  p.segments.push_back(w2.scales);
  TMethod &m = p.methods[0];
  TValue second = m.values[0];
  second.name = "w2";
  second.shape = {w2.out, w2.in};
  second.segment = 2;
  second.scalesSegment = 3;
  second.quantLayout = static_cast<fb::QuantLayout>(w2.layout);
  return m.add(second);
}

std::string loadError(const TProgram &p) {
  std::vector<uint8_t> bytes = p.build();
  auto r = rt::Program::loadFromBytes(bytes.data(), bytes.size());
  return r.ok() ? std::string() : r.error().message();
}

/// A change to a valid program and (part of) the load error it must cause.
struct LoadErrorCase {
  const char *what;
  void (*mutate)(TProgram &);
  const char *expected;
};

/// Applies each case to a copy of `base` and checks the load error.
template <size_t N>
void expectLoadErrors(const TProgram &base, const LoadErrorCase (&cases)[N]) {
  for (const LoadErrorCase &c : cases) {
    TProgram p = base;
    c.mutate(p);
    std::string err = loadError(p);
    EXPECT_NE(err.find(c.expected), std::string::npos)
        << c.what << ": expected an error containing '" << c.expected << "', got '" << err << "'";
  }
}

} // namespace

TEST(QuantizedKernels, Int8LinearMatchesDequantizedReference) {
  std::mt19937 rng(1);
  // In-features not divisible by 4 or 8, one beyond a 1024-wide span, and
  // row counts below and above the 32-row block.
  for (int64_t in : {1, 3, 5, 7, 13, 33, 100, 1031})
    for (int64_t rows : {1, 5, 37})
      checkLinear(rng, rows, 6, in, 8, in, DType::Float16, rows != 5);
  checkLinear(rng, 3, 5, 77, 8, 77, DType::Float32, true);
}

TEST(QuantizedKernels, Int4LinearMatchesDequantizedReference) {
  std::mt19937 rng(2);
  for (int64_t group : {32, 64, 128})
    for (int64_t in : {group, 3 * group, (int64_t)1152})
      for (int64_t rows : {1, 4, 33})
        checkLinear(rng, rows, 7, in, 4, group, DType::Float16, rows != 4);
  checkLinear(rng, 2, 3, 96, 4, 32, DType::Float32, false);
}

TEST(QuantizedKernels, DequantizeSpanAcrossGroups) {
  std::mt19937 rng(3);
  TestWeight w = makeWeight(rng, 3, 192, 4, 64);
  Tensor t = w.view();
  // A span that starts and ends inside groups, and in the middle of a byte.
  std::vector<float> got(101);
  rt::dequantizeSpan(t, 2, 37, 101, got.data());
  for (int64_t c = 0; c < 101; ++c)
    ASSERT_EQ(got[(size_t)c], w.dequant[(size_t)(2 * 192 + 37 + c)])
        << "dequantizeSpan i4 [3, 192] group 64, row 2, column " << 37 + c;
}

TEST(QuantizedKernels, LinearAndEmbeddingThroughAProgram) {
  std::mt19937 rng(4);
  for (int bits : {8, 4}) {
    int64_t out = 10, in = bits == 8 ? 45 : 64, group = bits == 8 ? in : 32;
    TestWeight w = makeWeight(rng, out, in, bits, group);
    // linear: the weight borrowed from the file, never copied.
    {
      std::vector<uint8_t> bytes = quantizedProgram(w, "linear", 1, fb::DType::Float32).build();
      auto prog = rt::Program::loadFromBytes(bytes.data(), bytes.size());
      ASSERT_TRUE(prog.ok()) << prog.error().message();
      std::vector<float> x = randomVector(rng, (size_t)(2 * 3 * in));
      auto y = (*prog)->run("forward", {f32({2, 3, in}, x)});
      ASSERT_TRUE(y.ok()) << y.error().message();
      const Tensor &t = (*y)[0];
      ASSERT_EQ(t.dtype(), DType::Float32);
      ASSERT_EQ(t.shape(), (Shape{2, 3, out})) << "linear i" << bits << " output " << t.shape().str();
      // The optimized kernels quantize x to int8 blocks of 32 for few rows
      // (docs/runtime-kernels.md "Quantized GEMV"): each x value moves by at
      // most max|x_block| / 127 / 2, which bounds the extra error.
      rt::opt::LinearArgs qa;
      qa.rows = 6;
      qa.in = in;
      qa.out = out;
      qa.kind = bits == 8 ? rt::opt::WeightKind::Int8 : rt::opt::WeightKind::Int4;
      qa.group = group;
      const bool xQuantized = rt::opt::quantGemvApplies(qa);
      for (int64_t r = 0; r < 6; ++r)
        for (int64_t o = 0; o < out; ++o) {
          double ref = 0, qtol = 0;
          for (int64_t c = 0; c < in; ++c)
            ref += (double)x[(size_t)(r * in + c)] * w.dequant[(size_t)(o * in + c)];
          for (int64_t b = 0; xQuantized && b < in / 32; ++b) {
            double m = 0, sw = 0;
            for (int64_t c = b * 32; c < b * 32 + 32; ++c) {
              m = std::max(m, (double)std::fabs(x[(size_t)(r * in + c)]));
              sw += std::fabs(w.dequant[(size_t)(o * in + c)]);
            }
            qtol += m / 127 / 2 * sw;
          }
          ASSERT_NEAR(t.dataAs<float>()[r * out + o], ref, 1e-4 + qtol)
              << "linear i" << bits << " [" << out << ", " << in << "] at " << r << "," << o
              << (xQuantized ? " (x quantized to int8 blocks)" : "");
        }
    }
    // embedding: each row dequantized exactly.
    {
      std::vector<uint8_t> bytes = quantizedProgram(w, "embedding", 0, fb::DType::Int64).build();
      auto prog = rt::Program::loadFromBytes(bytes.data(), bytes.size());
      ASSERT_TRUE(prog.ok()) << prog.error().message();
      std::vector<int64_t> ids = {3, 0, 9, 3};
      auto y = (*prog)->run("forward", {i64({2, 2}, ids)});
      ASSERT_TRUE(y.ok()) << y.error().message();
      const Tensor &t = (*y)[0];
      ASSERT_EQ(t.shape(), (Shape{2, 2, in}));
      for (size_t i = 0; i < ids.size(); ++i)
        for (int64_t c = 0; c < in; ++c)
          ASSERT_EQ(t.dataAs<float>()[(int64_t)i * in + c],
                    w.dequant[(size_t)(ids[i] * in + c)])
              << "embedding i" << bits << " [" << out << ", " << in << "] token " << i
              << " column " << c;
      auto bad = (*prog)->run("forward", {i64({1}, {10})});
      ASSERT_FALSE(bad.ok());
      EXPECT_NE(bad.error().message().find("out of range"), std::string::npos)
          << bad.error().message();
    }
  }
}

TEST(QuantizedKernels, StripLayoutsThroughAProgram) {
  // The compiler's repacked int4 and int8 layouts, read by every path: the
  // portable and optimized linear (decode GEMV for <= 8 rows, GEMM for more)
  // and embedding, each against the dequantized reference (the layout changes
  // no value).
  std::mt19937 rng(41);
  for (int bits : {4, 8})
  for (int64_t group : {32, 64, 128}) {
    const int64_t out = 48, in = 128;
    TestWeight w = makeWeight(rng, out, in, bits, group);
    w.repackStrip16();
    for (bool portable : {true, false}) {
      const std::string what = std::string(portable ? "portable" : "optimized") +
                               (bits == 4 ? " Int4Strip16" : " Int8Strip16") +
                               " [48, 128] group " + std::to_string(group);
      rt::LoadOptions opts;
      opts.portableKernels = portable;
      std::vector<uint8_t> bytes = quantizedProgram(w, "linear", 1, fb::DType::Float32).build();
      auto prog = rt::Program::loadFromBytes(bytes.data(), bytes.size(), opts);
      ASSERT_TRUE(prog.ok()) << what << ": " << prog.error().message();
      for (int64_t rows : {1, 3, 40}) {
        std::vector<float> x = randomVector(rng, (size_t)(rows * in));
        auto y = (*prog)->run("forward", {f32({rows, in}, x)});
        ASSERT_TRUE(y.ok()) << what << ": " << y.error().message();
        const float *got = (*y)[0].dataAs<float>();
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t o = 0; o < out; ++o) {
            double ref = 0, qtol = 0, mag = 0;
            for (int64_t c = 0; c < in; ++c) {
              ref += (double)x[(size_t)(r * in + c)] * w.dequant[(size_t)(o * in + c)];
              mag += std::fabs((double)x[(size_t)(r * in + c)] * w.dequant[(size_t)(o * in + c)]);
            }
            // x rounded to int8 blocks of 32 (the decode GEMV, <= 8 rows).
            for (int64_t b = 0; !portable && rows <= 8 && b < in / 32; ++b) {
              double m = 0, sw = 0;
              for (int64_t c = b * 32; c < b * 32 + 32; ++c) {
                m = std::max(m, (double)std::fabs(x[(size_t)(r * in + c)]));
                sw += std::fabs(w.dequant[(size_t)(o * in + c)]);
              }
              qtol += m / 127 / 2 * sw;
            }
            ASSERT_NEAR(got[r * out + o], ref, 1e-5 * mag + qtol)
                << what << ": linear x [" << rows << ", " << in << "] at " << r << "," << o;
          }
      }
      bytes = quantizedProgram(w, "embedding", 0, fb::DType::Int64).build();
      prog = rt::Program::loadFromBytes(bytes.data(), bytes.size(), opts);
      ASSERT_TRUE(prog.ok()) << what << ": " << prog.error().message();
      std::vector<int64_t> ids = {47, 0, 17, 31};
      auto y = (*prog)->run("forward", {i64({4}, ids)});
      ASSERT_TRUE(y.ok()) << what << ": " << y.error().message();
      for (size_t i = 0; i < ids.size(); ++i)
        for (int64_t c = 0; c < in; ++c)
          ASSERT_EQ((*y)[0].dataAs<float>()[(int64_t)i * in + c],
                    w.dequant[(size_t)(ids[i] * in + c)])
              << what << ": embedding row " << ids[i] << " column " << c;
    }
  }
}

TEST(QuantizedKernels, WeightsReadAgainAreFoundAtLoad) {
  // y = W1 (W2 (W1 x)): the first W1 call is followed by another read of W1
  // (kept in cache, KernelCall::weightReadAgain); the last W1 and W2 are not.
  // The result matches the dequantized reference whatever the prefetch hint.
  std::mt19937 rng(43);
  TestWeight w = makeWeight(rng, 32, 32, 4, 32);
  w.repackStrip16();
  TestWeight w2 = makeWeight(rng, 32, 32, 4, 32);
  TProgram p = quantizedProgram(w, "linear", 1, fb::DType::Float32);
  const int w2i = addSecondWeight(p, w2);
  TMethod &m = p.methods[0];
  TValue h1, h2;
  h1.dtype = h2.dtype = fb::DType::Float32;
  const int h1i = m.add(h1), h2i = m.add(h2);
  const int yi = m.instrs[0].outputs[0], wi = m.instrs[0].inputs[1];
  m.instrs[0].outputs = {h1i};
  TInstr l2 = m.instrs[0], l3 = m.instrs[0];
  l2.inputs = {h1i, w2i};
  l2.outputs = {h2i};
  l3.inputs = {h2i, wi};
  l3.outputs = {yi};
  m.instrs.push_back(l2);
  m.instrs.push_back(l3);
  std::vector<uint8_t> bytes = p.build();
  auto prog = rt::Program::loadFromBytes(bytes.data(), bytes.size());
  ASSERT_TRUE(prog.ok()) << prog.error().message();
  EXPECT_EQ((*prog)->methodInfo("forward")->numWeightsReadAgain, 1u);
  std::vector<float> x = randomVector(rng, 32);
  auto y = (*prog)->run("forward", {f32({1, 32}, x)});
  ASSERT_TRUE(y.ok()) << y.error().message();
  std::vector<double> a(32), b(32);
  for (int o = 0; o < 32; ++o)
    for (int c = 0; c < 32; ++c)
      a[o] += (double)x[c] * w.dequant[o * 32 + c];
  for (int o = 0; o < 32; ++o)
    for (int c = 0; c < 32; ++c)
      b[o] += a[c] * w2.dequant[o * 32 + c];
  for (int o = 0; o < 32; ++o) {
    double ref = 0, mag = 0;
    for (int c = 0; c < 32; ++c) {
      ref += b[c] * w.dequant[o * 32 + c];
      mag += std::fabs(b[c] * w.dequant[o * 32 + c]);
    }
    // Three GEMVs with x rounded to int8 blocks each: 2% of the magnitude.
    EXPECT_NEAR((*y)[0].dataAs<float>()[o], ref, 0.02 * mag + 1e-6) << "output " << o;
  }
}

/// The program of LinearGroupsAreFoundAtLoad: y1 = W1 x, y2 = W2 x (consecutive,
/// one group), y3 = W1 y1 (another input: not in it); `badBias` gives the
/// second linear a bias of the wrong size.
TProgram siblingLinearsProgram(const TestWeight &w1, const TestWeight &w2, bool badBias) {
  TProgram p = quantizedProgram(w1, "linear", 1, fb::DType::Float32);
  const int w2i = addSecondWeight(p, w2);
  TMethod &m = p.methods[0];
  TValue y2, y3;
  y2.kind = y3.kind = fb::ValueKind::Output;
  const int y2i = m.add(y2), y3i = m.add(y3);
  const int xi = m.instrs[0].inputs[0], wi = m.instrs[0].inputs[1], y1i = m.instrs[0].outputs[0];
  TInstr l2 = m.instrs[0], l3 = m.instrs[0];
  l2.inputs = {xi, w2i};
  if (badBias) {
    TValue b;
    b.name = "bias";
    b.kind = fb::ValueKind::Input;
    b.dtype = fb::DType::Float32;
    const int bi = m.add(b);
    l2.inputs.push_back(bi);
    m.inputs.push_back(bi);
  }
  l2.outputs = {y2i};
  l3.inputs = {y1i, wi};
  l3.outputs = {y3i};
  m.instrs.push_back(l2);
  m.instrs.push_back(l3);
  m.outputs = {y1i, y2i, y3i};
  return p;
}

TEST(QuantizedKernels, LinearGroupsAreFoundAtLoad) {
  // Two consecutive linears reading x run as one job (numLinearGroups); the
  // results equal the dequantized reference like any linear, on 1 and 2
  // threads and with the portable kernels (which run them one by one).
  std::mt19937 rng(44);
  TestWeight w1 = makeWeight(rng, 64, 64, 4, 32), w2 = makeWeight(rng, 48, 64, 4, 32);
  w1.repackStrip16();
  w2.repackStrip16();
  std::vector<uint8_t> bytes = siblingLinearsProgram(w1, w2, false).build();
  std::vector<float> x = randomVector(rng, 64);
  for (bool portable : {false, true})
    for (int threads : {1, 2}) {
      const std::string what = std::string(portable ? "portable" : "optimized") + " kernels, " +
                               std::to_string(threads) + " thread(s)";
      rt::LoadOptions opts;
      opts.portableKernels = portable;
      auto prog = rt::Program::loadFromBytes(bytes.data(), bytes.size(), opts);
      ASSERT_TRUE(prog.ok()) << prog.error().message();
      ASSERT_FALSE((*prog)->setNumThreads(threads).failed());
      EXPECT_EQ((*prog)->methodInfo("forward")->numLinearGroups, 1u);
      EXPECT_EQ((*prog)->methodInfo("forward")->numGroupedLinears, 2u);
      auto y = (*prog)->run("forward", {f32({1, 64}, x)});
      ASSERT_TRUE(y.ok()) << what << ": " << y.error().message();
      ASSERT_EQ(y->size(), 3u);
      auto check = [&](const Tensor &got, const TestWeight &w, const std::vector<double> &in,
                       const char *name) {
        ASSERT_EQ(got.numel(), w.out) << what << " " << name;
        for (int64_t o = 0; o < w.out; ++o) {
          double ref = 0, mag = 0;
          for (int64_t c = 0; c < w.in; ++c) {
            ref += in[c] * w.dequant[o * w.in + c];
            mag += std::fabs(in[c] * w.dequant[o * w.in + c]);
          }
          // x rounded to int8 blocks (optimized GEMV): 2% of the magnitude.
          EXPECT_NEAR(got.dataAs<float>()[o], ref, 0.02 * mag + 1e-6)
              << what << " " << name << " output " << o;
        }
      };
      const std::vector<double> xd(x.begin(), x.end());
      check((*y)[0], w1, xd, "y1 = W1 x");
      check((*y)[1], w2, xd, "y2 = W2 x");
      std::vector<double> y1got((*y)[0].dataAs<float>(), (*y)[0].dataAs<float>() + 64);
      check((*y)[2], w1, y1got, "y3 = W1 y1");
    }
  // A member that the general path rejects is run (and reported) on its own:
  // the error names the second instruction.
  std::vector<uint8_t> bad = siblingLinearsProgram(w1, w2, true).build();
  auto prog = rt::Program::loadFromBytes(bad.data(), bad.size());
  ASSERT_TRUE(prog.ok()) << prog.error().message();
  ASSERT_FALSE((*prog)->setNumThreads(2).failed());
  auto y = (*prog)->run("forward", {f32({1, 64}, x), f32({7}, randomVector(rng, 7))});
  ASSERT_FALSE(y.ok());
  EXPECT_NE(y.error().message().find("instruction 1"), std::string::npos) << y.error().message();
  EXPECT_NE(y.error().message().find("bias"), std::string::npos) << y.error().message();
}

TEST(QuantizedKernels, ReaderChecksQuantLayoutAndVersion) {
  std::mt19937 rng(42);
  TestWeight w = makeWeight(rng, 16, 64, 4, 32);
  w.repackStrip16();
  ASSERT_EQ(loadError(quantizedProgram(w, "linear", 1, fb::DType::Float32)), "");
  const LoadErrorCase cases[] = {
      {"strip16 with out % 16 != 0",
       [](TProgram &p) {
         auto &v = p.methods[0].values[0];
         v.shape = {8, 128}; // same byte count, 8 channels
       },
       "quant_layout Int4Strip16 needs"},
      {"strip16 with group 16",
       [](TProgram &p) {
         p.methods[0].values[0].quantGroupSize = 16;
         p.segments[1].resize(p.segments[1].size() * 2);
       },
       "group 16"},
      {"strip16 on int8",
       [](TProgram &p) {
         p.methods[0].values[0].dtype = fb::DType::Int8;
         p.segments[0].resize(p.segments[0].size() * 2);
       },
       "needs an i4"},
      {"Int8Strip16 on int4",
       [](TProgram &p) { p.methods[0].values[0].quantLayout = fb::QuantLayout::Int8Strip16; },
       "quant_layout Int8Strip16 needs an i8"},
      {"unknown layout",
       [](TProgram &p) { p.methods[0].values[0].quantLayout = static_cast<fb::QuantLayout>(7); },
       "quant_layout 7 is not a known layout"},
      {"layout on an unquantized input",
       [](TProgram &p) { p.methods[0].values[1].quantLayout = fb::QuantLayout::Int4Strip16; },
       "not a constant"},
      {"future format version", [](TProgram &p) { p.version = kProgramFormatVersion + 1; },
       "is not supported"},
  };
  expectLoadErrors(quantizedProgram(w, "linear", 1, fb::DType::Float32), cases);
  // Version-1 files (no quant_layout: rows) still load and run.
  TestWeight rowsW = makeWeight(rng, 16, 64, 4, 32);
  TProgram v1 = quantizedProgram(rowsW, "linear", 1, fb::DType::Float32);
  v1.version = 1;
  EXPECT_EQ(loadError(v1), "");
}

TEST(QuantizedKernels, MisuseIsALoadError) {
  std::mt19937 rng(5);
  TestWeight w = makeWeight(rng, 4, 32, 4, 32);
  // A quantized weight as linear's *input* (position 0): not allowed.
  TProgram p = quantizedProgram(w, "linear", 0, fb::DType::Float32);
  std::string err = loadError(p);
  EXPECT_NE(err.find("quantized weight"), std::string::npos) << err;
  EXPECT_NE(err.find("does not take"), std::string::npos) << err;
  // Fed to an op that never takes one.
  p = quantizedProgram(w, "binary", 0, fb::DType::Float32);
  p.methods[0].instrs[0].attrs = {attrStr("fn", "add")};
  err = loadError(p);
  EXPECT_NE(err.find("op 'binary' does not take"), std::string::npos) << err;
}

TEST(QuantizedKernels, ReaderRejectsBadQuantFields) {
  std::mt19937 rng(6);
  TestWeight w4 = makeWeight(rng, 4, 64, 4, 32);
  TestWeight w8 = makeWeight(rng, 4, 24, 8, 24);
  ASSERT_EQ(loadError(quantizedProgram(w4, "linear", 1, fb::DType::Float32)), "");
  ASSERT_EQ(loadError(quantizedProgram(w8, "linear", 1, fb::DType::Float32)), "");

  const LoadErrorCase cases[] = {
      {"data one byte short", [](TProgram &p) { p.segments[0].pop_back(); },
       "bytes of data but segment"},
      {"scales one short", [](TProgram &p) { p.segments[1].resize(p.segments[1].size() - 2); },
       "bytes of scales"},
      {"group not dividing", [](TProgram &p) { p.methods[0].values[0].quantGroupSize = 48; },
       "does not divide the in-features"},
      {"zero group with scales", [](TProgram &p) { p.methods[0].values[0].quantGroupSize = 0; },
       "quant_group_size 0"},
      {"bad scales dtype", [](TProgram &p) { p.methods[0].values[0].scalesDType = fb::DType::Int64; },
       "scales_dtype i64"},
      {"scales segment out of range", [](TProgram &p) { p.methods[0].values[0].scalesSegment = 7; },
       "scales_segment 7 is out of range"},
      {"i4 without scales",
       [](TProgram &p) {
         auto &v = p.methods[0].values[0];
         v.scalesSegment = -1;
         v.quantGroupSize = 0;
         v.scalesDType = fb::DType::Unknown;
       },
       "dtype i4 is only valid for a quantized constant"},
      {"quantized f32", [](TProgram &p) { p.methods[0].values[0].dtype = fb::DType::Float32; },
       "quantized constant has dtype f32"},
      {"quantized 3-d",
       [](TProgram &p) {
         auto &v = p.methods[0].values[0];
         v.rank = 3;
         v.shape = {2, 2, 64};
       },
       "rank 3"},
      {"quant fields on an input",
       [](TProgram &p) {
         auto &v = p.methods[0].values[1];
         v.quantGroupSize = 32;
         v.scalesSegment = 1;
         v.scalesDType = fb::DType::Float16;
       },
       "not a constant"},
  };
  expectLoadErrors(quantizedProgram(w4, "linear", 1, fb::DType::Float32), cases);
  // int8: the data is out * in bytes.
  TProgram p = quantizedProgram(w8, "linear", 1, fb::DType::Float32);
  p.segments[0].push_back(0);
  std::string err = loadError(p);
  EXPECT_NE(err.find("quantized i8 [4, 24] needs 96 bytes of data"), std::string::npos) << err;
}
