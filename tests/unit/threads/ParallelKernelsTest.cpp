// Kernels split over the thread pool give bit-identical results for every
// thread count (each output element is computed by one thread, in the same
// order as on one thread), and match an independent double reference. Also the
// Program side: LoadOptions::numThreads and Program::setNumThreads.
#include "runtime-stub/core/Program.h"
#include "runtime-stub/core/ThreadPool.h"
#include "serializer/ProgramWriter.h"
#include "tests/unit/runtime/WriterTestUtil.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <unistd.h>
#include <vector>

using namespace kiln;
using kiln::test::randomFloats;
using kiln::test::value;
using kiln::rt::DType;
using kiln::rt::LoadOptions;
using kiln::rt::Program;
using kiln::rt::Shape;
using kiln::rt::Tensor;

namespace {

struct AttnShape {
  int64_t b, hq, hkv, t, s, d, start;
  std::string str() const {
    return "B=" + std::to_string(b) + " Hq=" + std::to_string(hq) + " Hkv=" + std::to_string(hkv) +
           " T=" + std::to_string(t) + " S=" + std::to_string(s) + " D=" + std::to_string(d) +
           " start=" + std::to_string(start);
  }
};

/// A program with one method `attend`(q, k_cache, v_cache, start_pos) = cached_attention.
std::string writeAttentionProgram(const AttnShape &a, const std::string &tag) {
  MethodSpec m;
  m.name = "attend";
  int32_t q = m.addValue(value(fb::DType::Float32, {a.b, a.hq, a.t, a.d}, fb::ValueKind::Input));
  int32_t k = m.addValue(value(fb::DType::Float32, {a.b, a.hkv, a.s, a.d}, fb::ValueKind::Input));
  int32_t v = m.addValue(value(fb::DType::Float32, {a.b, a.hkv, a.s, a.d}, fb::ValueKind::Input));
  int32_t start = m.addValue(value(fb::DType::Int64, {1}, fb::ValueKind::Input));
  int32_t out = m.addValue(value(fb::DType::Float32, {a.b, a.hq, a.t, a.d}, fb::ValueKind::Output));
  m.inputs = {q, k, v, start};
  m.outputs = {out};
  m.instructions.push_back({"cached_attention", {q, k, v, start}, {out},
                            {AttrSpec::makeFloat("scale", 0.25)}, "m.py:1"});
  ProgramWriter w;
  w.addMethod(m);
  std::string path = ::testing::TempDir() + "/threads_attn_" + tag + "_" +
                     std::to_string(::getpid()) + ".kiln";
  WriteResult r = w.writeToFile(path);
  EXPECT_TRUE(r.ok()) << r.error;
  return path;
}

Tensor floats(std::vector<int64_t> dims, const std::vector<float> &data) {
  auto t = Tensor::fromFloats(*Shape::make(dims), data);
  EXPECT_TRUE(t.ok());
  return t.take();
}

TEST(ParallelKernels, CachedAttentionBitIdenticalAcrossThreadCounts) {
  // The first two are split over threads (enough work per head), the last runs inline.
  const AttnShape shapes[] = {{2, 8, 2, 4, 80, 16, 60},
                              {1, 9, 3, 1, 300, 64, 250},
                              {1, 4, 4, 1, 8, 4, 2}};
  int idx = 0;
  for (const AttnShape &a : shapes) {
    std::string path = writeAttentionProgram(a, std::to_string(idx++));
    auto qv = randomFloats((size_t)(a.b * a.hq * a.t * a.d), 1);
    auto kv = randomFloats((size_t)(a.b * a.hkv * a.s * a.d), 2);
    auto vv = randomFloats((size_t)(a.b * a.hkv * a.s * a.d), 3);
    std::vector<Tensor> inputs = {floats({a.b, a.hq, a.t, a.d}, qv),
                                  floats({a.b, a.hkv, a.s, a.d}, kv),
                                  floats({a.b, a.hkv, a.s, a.d}, vv),
                                  Tensor::fromInt64s(*Shape::make({1}), {a.start}).take()};
    std::vector<float> first;
    for (int threads : {1, 2, 3, 4, 16}) {
      LoadOptions options;
      options.numThreads = threads;
      auto program = Program::load(path, options);
      ASSERT_TRUE(program.ok()) << program.error().message();
      ASSERT_EQ((*program)->numThreads(), threads);
      auto out = (*program)->run("attend", inputs);
      ASSERT_TRUE(out.ok()) << out.error().message();
      const Tensor &o = (*out)[0];
      std::vector<float> got(o.dataAs<float>(), o.dataAs<float>() + o.numel());
      if (threads == 1) {
        first = got;
        // Independent reference in double: softmax over keys 0..start+i.
        const int64_t group = a.hq / a.hkv;
        double maxErr = 0;
        for (int64_t b = 0; b < a.b; ++b)
          for (int64_t h = 0; h < a.hq; ++h)
            for (int64_t i = 0; i < a.t; ++i) {
              const float *qr = &qv[(size_t)(((b * a.hq + h) * a.t + i) * a.d)];
              int64_t kvh = b * a.hkv + h / group, p = a.start + i;
              std::vector<double> w((size_t)p + 1);
              double mx = -1e300, sum = 0;
              for (int64_t j = 0; j <= p; ++j) {
                double dot = 0;
                for (int64_t c = 0; c < a.d; ++c)
                  dot += (double)qr[c] * kv[(size_t)((kvh * a.s + j) * a.d + c)];
                w[(size_t)j] = dot * 0.25;
                mx = std::max(mx, w[(size_t)j]);
              }
              for (double &x : w)
                sum += (x = std::exp(x - mx));
              for (int64_t c = 0; c < a.d; ++c) {
                double ref = 0;
                for (int64_t j = 0; j <= p; ++j)
                  ref += w[(size_t)j] * vv[(size_t)((kvh * a.s + j) * a.d + c)];
                ref /= sum;
                double g = got[(size_t)(((b * a.hq + h) * a.t + i) * a.d + c)];
                maxErr = std::max(maxErr, std::fabs(g - ref));
              }
            }
        EXPECT_LT(maxErr, 1e-4) << "cached_attention " << a.str() << " vs double reference, atol 1e-4";
      } else {
        ASSERT_EQ(got.size(), first.size());
        EXPECT_EQ(std::memcmp(got.data(), first.data(), got.size() * sizeof(float)), 0)
            << "cached_attention " << a.str() << ": " << threads
            << " threads differ from 1 thread (must be bit-identical)";
      }
    }
    ::unlink(path.c_str());
  }
}

TEST(ParallelKernels, PrefillSmallOpsBitIdenticalAcrossThreadCounts) {
  // A 64-token prefill chunk's small ops of the 125M shape, which split over
  // the pool from 16-32K elements on: transpose [1,64,9,64] -> [1,9,64,64],
  // rope_perm on it (cos/sin [64,64] broadcast), the transpose back, rms_norm
  // over [1,64,576] rows, a residual add and a mul by a [576] row (period 576).
  // Every thread count gives the 1-thread bits; the portable kernels (one
  // thread) give the same values for the gathers and rope, and rms_norm / the
  // binary ops within 1e-6 relative.
  const int64_t T = 64, H = 9, D = 64, C = 576;
  MethodSpec m;
  m.name = "block";
  auto in = [&](std::vector<int64_t> dims) {
    return m.addValue(value(fb::DType::Float32, dims, fb::ValueKind::Input));
  };
  auto mid = [&](std::vector<int64_t> dims) {
    return m.addValue(value(fb::DType::Float32, dims, fb::ValueKind::Intermediate));
  };
  auto outv = [&](std::vector<int64_t> dims) {
    return m.addValue(value(fb::DType::Float32, dims, fb::ValueKind::Output));
  };
  int32_t x = in({1, T, H, D}), cs = in({T, D}), sn = in({T, D}), r = in({1, T, C}),
          w = in({C}), row = in({C});
  int32_t t = mid({1, H, T, D}), rp = outv({1, H, T, D}), back = outv({1, T, H, D}),
          rms = outv({1, T, C}), add = outv({1, T, C}), mul = outv({1, T, C});
  std::vector<int64_t> perm;
  for (int64_t i = 0; i < D; ++i)
    perm.push_back((i + D / 2) % D);
  m.inputs = {x, cs, sn, r, w, row};
  m.outputs = {rp, back, rms, add, mul};
  m.instructions.push_back({"transpose", {x}, {t}, {AttrSpec::makeInt("dim0", 1), AttrSpec::makeInt("dim1", 2)}, "m.py:1"});
  m.instructions.push_back({"rope_perm", {t, cs, sn}, {rp}, {AttrSpec::makeInts("perm", perm)}, "m.py:2"});
  m.instructions.push_back({"transpose", {rp}, {back}, {AttrSpec::makeInt("dim0", 1), AttrSpec::makeInt("dim1", 2)}, "m.py:3"});
  m.instructions.push_back({"rms_norm", {r, w}, {rms}, {AttrSpec::makeFloat("eps", 1e-5)}, "m.py:4"});
  m.instructions.push_back({"binary", {r, rms}, {add}, {AttrSpec::makeString("fn", "add")}, "m.py:5"});
  m.instructions.push_back({"binary", {add, row}, {mul}, {AttrSpec::makeString("fn", "mul")}, "m.py:6"});
  ProgramWriter writer;
  writer.addMethod(m);
  std::string path = ::testing::TempDir() + "/threads_prefill_ops_" + std::to_string(::getpid()) + ".kiln";
  WriteResult wr = writer.writeToFile(path);
  ASSERT_TRUE(wr.ok()) << wr.error;
  std::vector<Tensor> inputs = {floats({1, T, H, D}, randomFloats((size_t)(T * H * D), 11)),
                                floats({T, D}, randomFloats((size_t)(T * D), 12)),
                                floats({T, D}, randomFloats((size_t)(T * D), 13)),
                                floats({1, T, C}, randomFloats((size_t)(T * C), 14)),
                                floats({C}, randomFloats((size_t)C, 15)),
                                floats({C}, randomFloats((size_t)C, 16))};
  const char *names[] = {"rope_perm", "transpose back", "rms_norm", "binary add", "binary mul (period 576)"};
  std::vector<std::vector<float>> first;
  for (int threads : {1, 2, 3, 0}) { // 0: portable kernels, 1 thread
    LoadOptions options;
    options.numThreads = threads == 0 ? 1 : threads;
    options.portableKernels = threads == 0;
    auto program = Program::load(path, options);
    ASSERT_TRUE(program.ok()) << program.error().message();
    auto out = (*program)->run("block", inputs);
    ASSERT_TRUE(out.ok()) << out.error().message();
    ASSERT_EQ(out->size(), 5u);
    for (size_t k = 0; k < out->size(); ++k) {
      const Tensor &o = (*out)[k];
      std::vector<float> got(o.dataAs<float>(), o.dataAs<float>() + o.numel());
      if (threads == 1) {
        first.push_back(got);
        continue;
      }
      ASSERT_EQ(got.size(), first[k].size()) << names[k];
      if (threads > 1) {
        EXPECT_EQ(std::memcmp(got.data(), first[k].data(), got.size() * sizeof(float)), 0)
            << names[k] << " on " << threads << " threads differs from 1 thread (must be bit-identical)";
        continue;
      }
      for (size_t i = 0; i < got.size(); ++i)
        ASSERT_NEAR(got[i], first[k][i], 1e-6 * std::max(1.0f, std::fabs(first[k][i])))
            << names[k] << " element " << i << ": portable vs optimized, rtol 1e-6";
    }
  }
  ::unlink(path.c_str());
}

TEST(ParallelKernels, ProgramThreadOptions) {
  AttnShape a{1, 2, 2, 1, 4, 4, 0};
  std::string path = writeAttentionProgram(a, "opts");
  LoadOptions bad;
  bad.numThreads = -1;
  auto rejected = Program::load(path, bad);
  ASSERT_FALSE(rejected.ok());
  EXPECT_NE(rejected.error().message().find("number of threads"), std::string::npos)
      << rejected.error().message();

  auto program = Program::load(path); // default: physical cores
  ASSERT_TRUE(program.ok()) << program.error().message();
  Program &p = **program;
  EXPECT_EQ(p.numThreads(), rt::ThreadPool::physicalCores());
  EXPECT_TRUE(p.setNumThreads(3).ok());
  EXPECT_EQ(p.numThreads(), 3);
  EXPECT_TRUE(p.setNumThreads(1).ok());
  EXPECT_EQ(p.numThreads(), 1);
  EXPECT_FALSE(p.setNumThreads(-2).ok());
  EXPECT_FALSE(p.setNumThreads(Program::kMaxThreads + 1).ok());
  EXPECT_EQ(p.numThreads(), 1) << "a rejected count must not change the pool";
  EXPECT_TRUE(p.setNumThreads(0).ok());
  EXPECT_EQ(p.numThreads(), rt::ThreadPool::physicalCores());

  LoadOptions portable;
  portable.portableKernels = true;
  portable.numThreads = 2;
  auto q = Program::load(path, portable);
  ASSERT_TRUE(q.ok()) << q.error().message();
  EXPECT_EQ((*q)->numThreads(), 2);
  ::unlink(path.c_str());
}

} // namespace
