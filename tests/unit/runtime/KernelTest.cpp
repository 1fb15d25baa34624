// Portable kernels against hand-computed (or PyTorch 1.13-computed) references.
#include "TestProgramBuilder.h"

#include <gtest/gtest.h>

#include <array>

#include <chrono>
#include <cmath>

using namespace kiln;
using namespace kiln::test;
using kiln::rt::DType;
using kiln::rt::Shape;
using kiln::rt::Tensor;

namespace {

// Checks dtype, shape and values (abs tolerance); failures name op/shape/tol.
void expectTensor(const std::string &what, const Tensor &t, DType dtype, Shape shape,
                  const std::vector<double> &expected, double tol = 0) {
  ASSERT_EQ(t.dtype(), dtype) << what << ": dtype " << rt::dtypeName(t.dtype());
  ASSERT_EQ(t.shape(), shape) << what << ": shape " << t.shape().str() << " expected "
                              << shape.str();
  ASSERT_EQ((size_t)t.numel(), expected.size()) << what;
  for (size_t i = 0; i < expected.size(); ++i) {
    double v = 0;
    switch (t.dtype()) {
    case DType::Float32: v = t.dataAs<float>()[i]; break;
    case DType::Int64: v = (double)t.dataAs<int64_t>()[i]; break;
    case DType::Int32: v = t.dataAs<int32_t>()[i]; break;
    case DType::Bool: v = t.dataAs<uint8_t>()[i]; break;
    default: FAIL() << what << ": unexpected dtype";
    }
    EXPECT_NEAR(v, expected[i], tol) << what << " " << shape.str() << " element " << i
                                     << " (tolerance " << tol << ")";
  }
}

Tensor one(const char *op, std::vector<Tensor> in, std::vector<TAttr> attrs) {
  auto r = runOp(op, in, attrs);
  EXPECT_TRUE(r.ok()) << op << ": " << r.error().message();
  if (!r.ok() || r->empty())
    return Tensor();
  return (*r)[0];
}

std::string errorOf(const char *op, std::vector<Tensor> in, std::vector<TAttr> attrs, int nOut = 1) {
  auto r = runOp(op, in, attrs, nOut);
  EXPECT_FALSE(r.ok()) << op << " should fail";
  return r.ok() ? std::string() : r.error().message();
}

} // namespace

TEST(Kernels, BinaryAddBroadcast) {
  Tensor a = f32({2, 1, 3}, {1, 2, 3, 4, 5, 6});
  Tensor b = f32({4, 1}, {10, 20, 30, 40});
  Tensor y = one("binary", {a, b}, {attrStr("fn", "add")});
  std::vector<double> e;
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 4; ++j)
      for (int k = 0; k < 3; ++k)
        e.push_back((i * 3 + k + 1) + (j + 1) * 10);
  expectTensor("binary add [2,1,3]+[4,1]", y, DType::Float32, {2, 4, 3}, e);
}

TEST(Kernels, BinaryPromotionAndIntegerDivision) {
  expectTensor("binary div i64/i64 -> f32",
               one("binary", {i64({2}, {7, -7}), i64({}, {2})}, {attrStr("fn", "div")}),
               DType::Float32, {2}, {3.5, -3.5}, 1e-6);
  expectTensor("binary floor_div i64", one("binary", {i64({2}, {-7, 7}), i64({2}, {2, -2})},
                                           {attrStr("fn", "floor_div")}),
               DType::Int64, {2}, {-4, -4});
  expectTensor("binary trunc_div i64", one("binary", {i64({2}, {-7, 7}), i64({2}, {2, -2})},
                                           {attrStr("fn", "trunc_div")}),
               DType::Int64, {2}, {-3, -3});
  expectTensor("binary remainder i64", one("binary", {i64({2}, {-7, 7}), i64({2}, {2, -2})},
                                           {attrStr("fn", "remainder")}),
               DType::Int64, {2}, {1, -1});
  expectTensor("binary remainder f32",
               one("binary", {f32({1}, {-7.5f}), f32({1}, {2})}, {attrStr("fn", "remainder")}),
               DType::Float32, {1}, {0.5}, 1e-6);
  expectTensor("binary mul i64*f32 -> f32",
               one("binary", {i64({2}, {3, 4}), f32({}, {0.5f})}, {attrStr("fn", "mul")}),
               DType::Float32, {2}, {1.5, 2.0}, 1e-6);
  expectTensor("binary add i32+i32 -> i32",
               one("binary", {i32({2}, {3, 4}), i32({2}, {1, 1})}, {attrStr("fn", "add")}),
               DType::Int32, {2}, {4, 5});
  expectTensor("binary pow i64", one("binary", {i64({3}, {2, 3, -2}), i64({}, {3})},
                                     {attrStr("fn", "pow")}),
               DType::Int64, {3}, {8, 27, -8});
  std::string e = errorOf("binary", {i64({2}, {1, 2}), i64({2}, {1, 0})}, {attrStr("fn", "floor_div")});
  EXPECT_NE(e.find("division by zero"), std::string::npos) << e;
  EXPECT_NE(e.find("(binary at test.py:1): "), std::string::npos) << e;
  std::string b = errorOf("binary", {f32({2, 3}, {1, 2, 3, 4, 5, 6}), f32({2}, {1, 2})},
                          {attrStr("fn", "add")});
  EXPECT_NE(b.find("[2,3] and [2] cannot be broadcast"), std::string::npos) << b;
}

TEST(Kernels, CompareAndWhere) {
  Tensor a = f32({2, 2}, {1, 5, 3, 2});
  expectTensor("compare lt [2,2] < [2]",
               one("compare", {a, f32({2}, {2, 3})}, {attrStr("fn", "lt")}), DType::Bool,
               {2, 2}, {1, 0, 0, 1});
  expectTensor("compare logical_xor", one("compare", {i1({2}, {true, false}), i64({2}, {3, 0})},
                                          {attrStr("fn", "logical_xor")}),
               DType::Bool, {2}, {0, 0});
  // where(cond [2,1], a [2] i64, b scalar f32) -> f32 [2,2]
  Tensor y = one("where", {i1({2, 1}, {true, false}), i64({2}, {1, 2}), f32({}, {-1.5f})}, {});
  expectTensor("where broadcast+promote", y, DType::Float32, {2, 2}, {1, 2, -1.5, -1.5});
}

TEST(Kernels, UnaryFunctions) {
  Tensor x = f32({6}, {-1.5f, -0.5f, 0.0f, 0.5f, 1.0f, 3.0f});
  // References from PyTorch 1.13: F.gelu(x, approximate='tanh') and F.gelu(x).
  expectTensor("unary gelu_tanh", one("unary", {x}, {attrStr("fn", "gelu_tanh")}), DType::Float32,
               {6}, {-0.1004284, -0.154286, 0.0, 0.345714, 0.841192, 2.9963627}, 1e-5);
  expectTensor("unary gelu", one("unary", {x}, {attrStr("fn", "gelu")}), DType::Float32, {6},
               {-0.1002109, -0.1542688, 0.0, 0.3457312, 0.8413447, 2.9959502}, 1e-5);
  expectTensor("unary silu", one("unary", {f32({2}, {0, 1})}, {attrStr("fn", "silu")}),
               DType::Float32, {2}, {0.0, 1.0 / (1.0 + std::exp(-1.0))}, 1e-6);
  expectTensor("unary rsqrt", one("unary", {f32({2}, {4, 16})}, {attrStr("fn", "rsqrt")}),
               DType::Float32, {2}, {0.5, 0.25}, 1e-7);
  expectTensor("unary sqrt of i64 -> f32", one("unary", {i64({1}, {9})}, {attrStr("fn", "sqrt")}),
               DType::Float32, {1}, {3.0}, 1e-7);
  expectTensor("unary neg i64", one("unary", {i64({2}, {3, -4})}, {attrStr("fn", "neg")}),
               DType::Int64, {2}, {-3, 4});
  expectTensor("unary logical_not", one("unary", {f32({2}, {0, 2})}, {attrStr("fn", "logical_not")}),
               DType::Bool, {2}, {1, 0});
  expectTensor("unary round half even", one("unary", {f32({3}, {0.5f, 1.5f, -2.5f})},
                                            {attrStr("fn", "round")}),
               DType::Float32, {3}, {0, 2, -2});
}

TEST(Kernels, CastAndClamp) {
  expectTensor("cast f32->i64 truncates", one("cast", {f32({3}, {1.7f, -1.7f, 0})}, {attrStr("dtype", "i64")}),
               DType::Int64, {3}, {1, -1, 0});
  expectTensor("cast i64->i1", one("cast", {i64({3}, {0, 5, -1})}, {attrStr("dtype", "i1")}),
               DType::Bool, {3}, {0, 1, 1});
  Tensor h = one("cast", {f32({2}, {1.5f, -2.25f})}, {attrStr("dtype", "f16")});
  expectTensor("cast f32->f16->f32", one("cast", {h}, {attrStr("dtype", "f32")}), DType::Float32,
               {2}, {1.5, -2.25});
  expectTensor("clamp f32", one("clamp", {f32({3}, {-2, 0.5f, 9})}, {attrFloat("min", -1), attrFloat("max", 1)}),
               DType::Float32, {3}, {-1, 0.5, 1});
  expectTensor("clamp i64 min only", one("clamp", {i64({3}, {-2, 0, 9})}, {attrFloat("min", 0)}),
               DType::Int64, {3}, {0, 0, 9});
  expectTensor("clamp i64 fractional min -> f32", one("clamp", {i64({3}, {1, 5, 9})}, {attrFloat("min", 2.5)}),
               DType::Float32, {3}, {2.5, 5, 9});
}

TEST(Kernels, ReduceSeveralDims) {
  Tensor x = f32({2, 2, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
  expectTensor("reduce sum dims [0,2] keepdim",
               one("reduce", {x}, {attrStr("fn", "sum"), attrInts("dims", {0, -1}), attrBool("keepdim", true)}),
               DType::Float32, {1, 2, 1}, {1 + 2 + 3 + 7 + 8 + 9, 4 + 5 + 6 + 10 + 11 + 12}, 1e-5);
  expectTensor("reduce mean all", one("reduce", {x}, {attrStr("fn", "mean")}), DType::Float32, {},
               {6.5}, 1e-6);
  expectTensor("reduce max dim 1", one("reduce", {x}, {attrStr("fn", "max"), attrInts("dims", {1})}),
               DType::Float32, {2, 3}, {4, 5, 6, 10, 11, 12});
  expectTensor("reduce sum of bool -> i64", one("reduce", {i1({3}, {true, true, false})}, {attrStr("fn", "sum")}),
               DType::Int64, {}, {2});
  expectTensor("reduce prod i32 -> i64", one("reduce", {i32({3}, {2, 3, 4})}, {attrStr("fn", "prod")}),
               DType::Int64, {}, {24});
  std::string e = errorOf("reduce", {i64({2}, {1, 2})}, {attrStr("fn", "mean")});
  EXPECT_NE(e.find("mean of a non-float tensor i64[2]"), std::string::npos) << e;
  expectTensor("argmax dim 1", one("argmax", {f32({2, 3}, {1, 9, 3, 7, 2, 7})}, {attrInt("dim", 1)}),
               DType::Int64, {2}, {1, 0});
  expectTensor("argmax flat keepdim", one("argmax", {f32({2, 2}, {1, 9, 3, 2})}, {attrBool("keepdim", true)}),
               DType::Int64, {1, 1}, {1});
}

TEST(Kernels, SoftmaxAndLogSoftmax) {
  // torch.softmax([1,2,3]) and log_softmax, PyTorch 1.13.
  expectTensor("softmax [3]", one("softmax", {f32({3}, {1, 2, 3})}, {attrInt("dim", 0)}),
               DType::Float32, {3}, {0.0900306, 0.2447285, 0.6652409}, 1e-6);
  expectTensor("log_softmax [3]", one("softmax", {f32({3}, {1, 2, 3})}, {attrInt("dim", -1), attrBool("log", true)}),
               DType::Float32, {3}, {-2.4076059, -1.4076059, -0.4076059}, 1e-6);
  // Stability: large logits must not overflow; softmax over dim 0 of [2,2].
  expectTensor("softmax dim 0 large", one("softmax", {f32({2, 2}, {1000, 0, 1001, 0})}, {attrInt("dim", 0)}),
               DType::Float32, {2, 2}, {0.2689414, 0.5, 0.7310586, 0.5}, 1e-6);
}

TEST(Kernels, LayerNormAndRmsNorm) {
  // F.layer_norm([[1,2,3,4]], (4,), w=[1,2,1,1], b=[0,0,1,0], eps=1e-5), PyTorch 1.13.
  Tensor y = one("layer_norm", {f32({1, 4}, {1, 2, 3, 4}), f32({4}, {1, 2, 1, 1}), f32({4}, {0, 0, 1, 0})},
                 {attrInt("normalized_ndim", 1), attrFloat("eps", 1e-5)});
  expectTensor("layer_norm [1,4]", y, DType::Float32, {1, 4},
               {-1.3416355, -0.8944237, 1.4472117, 1.3416355}, 1e-5);
  // Absent weight and bias.
  Tensor z = one("layer_norm", {f32({2, 2}, {1, 3, 5, 5}), Tensor(), Tensor()},
                 {attrInt("normalized_ndim", 1), attrFloat("eps", 1e-5)});
  double inv = 1.0 / std::sqrt(1.0 + 1e-5); // row [1,3]: mean 2, biased var 1
  expectTensor("layer_norm no affine", z, DType::Float32, {2, 2}, {-inv, inv, 0, 0}, 1e-6);
  // rms_norm: x=[3,4], mean(x^2)=12.5, w=[1,2].
  double s = 1.0 / std::sqrt(12.5 + 1e-6);
  expectTensor("rms_norm [1,2]", one("rms_norm", {f32({1, 2}, {3, 4}), f32({2}, {1, 2})}, {attrFloat("eps", 1e-6)}),
               DType::Float32, {1, 2}, {3 * s, 8 * s}, 1e-6);
}

TEST(Kernels, MatmulBatchedBroadcastAndVectors) {
  // a [2,2,3] @ b [3,2] -> [2,2,2]
  Tensor a = f32({2, 2, 3}, {1, 2, 3, 4, 5, 6, 1, 0, 0, 0, 1, 0});
  Tensor b = f32({3, 2}, {1, 2, 3, 4, 5, 6});
  expectTensor("matmul [2,2,3]@[3,2]", one("matmul", {a, b}, {}), DType::Float32, {2, 2, 2},
               {22, 28, 49, 64, 1, 2, 3, 4});
  expectTensor("matmul [3]@[3,2]", one("matmul", {f32({3}, {1, 1, 1}), b}, {}), DType::Float32, {2},
               {9, 12});
  expectTensor("matmul [2,3]@[3]", one("matmul", {f32({2, 3}, {1, 2, 3, 4, 5, 6}), f32({3}, {1, 0, 1})}, {}),
               DType::Float32, {2}, {4, 10});
  // Batch broadcast [2,1,1,2] @ [3,2,1] -> [2,3,1,1]
  Tensor c = one("matmul", {f32({2, 1, 1, 2}, {1, 2, 3, 4}), f32({3, 2, 1}, {1, 0, 0, 1, 1, 1})}, {});
  expectTensor("matmul batch broadcast", c, DType::Float32, {2, 3, 1, 1}, {1, 2, 3, 3, 4, 7});
  std::string bad = errorOf("matmul", {f32({2, 2}, {1, 2, 3, 4}), f32({3, 1}, {1, 2, 3})}, {});
  EXPECT_NE(bad.find("[2,2] and [3,1] cannot be multiplied"), std::string::npos) << bad;
}

TEST(Kernels, LinearValuesAndSpeed) {
  Tensor x = f32({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor w = f32({2, 3}, {1, 0, 1, 0, 1, 0});
  expectTensor("linear [2,3]x[2,3]^T+b", one("linear", {x, w, f32({2}, {0.5f, -1})}, {}),
               DType::Float32, {2, 2}, {4.5, 1, 10.5, 4});
  expectTensor("linear no bias", one("linear", {x, w, Tensor()}, {}), DType::Float32, {2, 2},
               {4, 2, 10, 5});
  // 8 x 576 @ 1536 x 576^T: compare a few entries with a double reference and time it.
  const int rows = 8, in = 576, out = 1536;
  std::vector<float> xv(rows * in), wv((size_t)out * in);
  for (size_t i = 0; i < xv.size(); ++i)
    xv[i] = (float)((int)(i * 37 % 101) - 50) / 50.0f;
  for (size_t i = 0; i < wv.size(); ++i)
    wv[i] = (float)((int)(i * 53 % 97) - 48) / 480.0f;
  Tensor bx = f32({rows, in}, xv), bw = f32({out, in}, wv);
  TProgram p;
  TMethod m;
  int vx = m.add({"x", fb::DType::Float32, 2, {rows, in}, fb::ValueKind::Input});
  int vw = m.add({"w", fb::DType::Float32, 2, {out, in}, fb::ValueKind::Input});
  int vy = m.add({"y", fb::DType::Float32, 2, {rows, out}, fb::ValueKind::Output});
  m.inputs = {vx, vw};
  m.outputs = {vy};
  m.instrs.push_back({"linear", {vx, vw}, {vy}, {}, "bench.py:1"});
  p.methods.push_back(m);
  auto bytes = p.build();
  auto prog = rt::Program::loadFromBytes(bytes.data(), bytes.size());
  ASSERT_TRUE(prog.ok()) << prog.error().message();
  double best = 1e9;
  for (int it = 0; it < 5; ++it) {
    auto t0 = std::chrono::steady_clock::now();
    auto r = (*prog)->run("forward", {bx, bw});
    auto t1 = std::chrono::steady_clock::now();
    ASSERT_TRUE(r.ok()) << r.error().message();
    best = std::min(best, std::chrono::duration<double, std::milli>(t1 - t0).count());
    if (it == 0) {
      const float *y = (*r)[0].dataAs<float>();
      for (int rr : {0, 3, 7})
        for (int o : {0, 777, 1535}) {
          double ref = 0;
          for (int k = 0; k < in; ++k)
            ref += (double)xv[rr * in + k] * wv[(size_t)o * in + k];
          EXPECT_NEAR(y[rr * out + o], ref, 1e-4) << "linear [8,576]x[1536,576] row " << rr << " col " << o;
        }
    }
  }
  std::printf("linear [8,576] x [1536,576]^T: best of 5 = %.3f ms\n", best);
  EXPECT_LT(best, 20.0) << "linear 8x576x1536 far too slow";
}

TEST(Kernels, SliceClampingAndSelect) {
  Tensor x = i64({10}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  auto sl = [&](int64_t s, int64_t e, int64_t step) {
    return one("slice", {x, i64({}, {s}), i64({}, {e})}, {attrInt("dim", 0), attrInt("step", step)});
  };
  expectTensor("slice [-3:MAX]", sl(-3, INT64_MAX, 1), DType::Int64, {3}, {7, 8, 9});
  expectTensor("slice [-100:3:2]", sl(-100, 3, 2), DType::Int64, {2}, {0, 2});
  expectTensor("slice [5:2] empty", sl(5, 2, 1), DType::Int64, {0}, {});
  expectTensor("slice [1:100:4]", sl(1, 100, 4), DType::Int64, {3}, {1, 5, 9});
  Tensor m = f32({2, 3}, {1, 2, 3, 4, 5, 6});
  expectTensor("slice dim 1 [1:]", one("slice", {m, i64({}, {1}), Tensor()}, {attrInt("dim", 1)}),
               DType::Float32, {2, 2}, {2, 3, 5, 6});
  expectTensor("select dim 1 index -1", one("select", {m, i64({}, {-1})}, {attrInt("dim", 1)}),
               DType::Float32, {2}, {3, 6});
  std::string e = errorOf("select", {m, i64({}, {3})}, {attrInt("dim", 1)});
  EXPECT_NE(e.find("index 3 is out of range for dim 1 of f32[2,3]"), std::string::npos) << e;
}

TEST(Kernels, SplitModes) {
  Tensor x = f32({5, 2}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  auto chunks = runOp("split", {x}, {attrInt("dim", 0), attrInt("chunks", 3)}, 3);
  ASSERT_TRUE(chunks.ok()) << chunks.error().message();
  expectTensor("split chunks=3 piece 0", (*chunks)[0], DType::Float32, {2, 2}, {0, 1, 2, 3});
  expectTensor("split chunks=3 piece 2", (*chunks)[2], DType::Float32, {1, 2}, {8, 9});
  auto sizes = runOp("split", {x}, {attrInt("dim", 1), attrInts("sizes", {1, 1})}, 2);
  ASSERT_TRUE(sizes.ok()) << sizes.error().message();
  expectTensor("split sizes [1,1] dim 1", (*sizes)[1], DType::Float32, {5, 1}, {1, 3, 5, 7, 9});
  auto ss = runOp("split", {x}, {attrInt("dim", 0), attrInt("split_size", 4)}, 2);
  ASSERT_TRUE(ss.ok()) << ss.error().message();
  expectTensor("split split_size=4 piece 1", (*ss)[1], DType::Float32, {1, 2}, {8, 9});
  // torch.chunk(6 rows, 4) gives 3 pieces of 2: a program expecting 4 is an error.
  std::string e = errorOf("split", {f32({6}, {0, 1, 2, 3, 4, 5})}, {attrInt("dim", 0), attrInt("chunks", 4)}, 4);
  EXPECT_NE(e.find("gives 3 pieces but the program expects 4"), std::string::npos) << e;
}

TEST(Kernels, ShapeOps) {
  Tensor x = f32({2, 3}, {1, 2, 3, 4, 5, 6});
  expectTensor("reshape [-1,2]", one("reshape", {x, i64({2}, {-1, 2})}, {}), DType::Float32, {3, 2},
               {1, 2, 3, 4, 5, 6});
  std::string e = errorOf("reshape", {x, i64({2}, {4, 2})}, {});
  EXPECT_NE(e.find("(reshape at test.py:1): cannot reshape f32[2,3] (6 elements) into shape [4,2]"),
            std::string::npos) << e;
  expectTensor("transpose", one("transpose", {x}, {attrInt("dim0", 0), attrInt("dim1", -1)}),
               DType::Float32, {3, 2}, {1, 4, 2, 5, 3, 6});
  Tensor x3 = f32({1, 2, 3}, {1, 2, 3, 4, 5, 6});
  expectTensor("permute [2,0,1]", one("permute", {x3}, {attrInts("perm", {2, 0, 1})}), DType::Float32,
               {3, 1, 2}, {1, 4, 2, 5, 3, 6});
  expectTensor("expand [2,1]->[2,-1,3] ", one("expand", {f32({2, 1}, {1, 2}), i64({3}, {2, -1, 3})}, {}),
               DType::Float32, {2, 2, 3}, {1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2});
  expectTensor("unsqueeze -1", one("unsqueeze", {x}, {attrInt("dim", -1)}), DType::Float32, {2, 3, 1},
               {1, 2, 3, 4, 5, 6});
  expectTensor("squeeze all", one("squeeze", {x3}, {}), DType::Float32, {2, 3}, {1, 2, 3, 4, 5, 6});
  expectTensor("squeeze non-1 dim kept", one("squeeze", {x3}, {attrInts("dims", {1})}), DType::Float32,
               {1, 2, 3}, {1, 2, 3, 4, 5, 6});
  expectTensor("flatten 1..2", one("flatten", {x3}, {attrInt("start_dim", 1), attrInt("end_dim", 2)}),
               DType::Float32, {1, 6}, {1, 2, 3, 4, 5, 6});
  expectTensor("repeat [2,1]", one("repeat", {f32({2}, {1, 2})}, {attrInts("repeats", {2, 2})}),
               DType::Float32, {2, 4}, {1, 2, 1, 2, 1, 2, 1, 2});
  expectTensor("repeat_interleave 2 dim 0", one("repeat_interleave", {f32({2, 1}, {1, 2})},
                                                {attrInt("repeats", 2), attrInt("dim", 0)}),
               DType::Float32, {4, 1}, {1, 1, 2, 2});
  expectTensor("triangular lower diag 0", one("triangular", {f32({2, 3}, {1, 1, 1, 1, 1, 1})},
                                              {attrBool("upper", false), attrInt("diagonal", 0)}),
               DType::Float32, {2, 3}, {1, 0, 0, 1, 1, 0});
  expectTensor("triangular upper diag 1", one("triangular", {f32({2, 3}, {1, 1, 1, 1, 1, 1})},
                                              {attrBool("upper", true), attrInt("diagonal", 1)}),
               DType::Float32, {2, 3}, {0, 1, 1, 0, 0, 1});
  expectTensor("dim_size -1", one("dim_size", {x}, {attrInt("dim", -1)}), DType::Int64, {}, {3});
  expectTensor("shape_of", one("shape_of", {x3}, {}), DType::Int64, {3}, {1, 2, 3});
  expectTensor("copy", one("copy", {x}, {}), DType::Float32, {2, 3}, {1, 2, 3, 4, 5, 6});
}

TEST(Kernels, GatherConcatStack) {
  Tensor w = f32({3, 2}, {0, 1, 10, 11, 20, 21});
  expectTensor("embedding [2,2] idx", one("embedding", {w, i64({2, 2}, {2, 0, 1, 1})}, {}),
               DType::Float32, {2, 2, 2}, {20, 21, 0, 1, 10, 11, 10, 11});
  std::string e = errorOf("embedding", {w, i64({2}, {1, 3})}, {});
  EXPECT_NE(e.find("(embedding at test.py:1): index 3 (at position 1"), std::string::npos) << e;
  EXPECT_NE(errorOf("embedding", {w, i64({1}, {-1})}, {}).find("out of range"), std::string::npos);
  expectTensor("index_select dim 1 idx [2,1]", one("index_select", {f32({2, 3}, {1, 2, 3, 4, 5, 6}), i64({2, 1}, {2, 0})},
                                                   {attrInt("dim", 1)}),
               DType::Float32, {2, 2, 1}, {3, 1, 6, 4});
  expectTensor("concat dim 1 promote", one("concat", {f32({2, 1}, {1, 2}), i64({2, 2}, {3, 4, 5, 6})}, {attrInt("dim", -1)}),
               DType::Float32, {2, 3}, {1, 3, 4, 2, 5, 6});
  expectTensor("stack scalars -> shape list", one("stack", {i64({}, {2}), i64({}, {-1})}, {attrInt("dim", 0)}),
               DType::Int64, {2}, {2, -1});
  expectTensor("stack dim 1", one("stack", {f32({2}, {1, 2}), f32({2}, {3, 4})}, {attrInt("dim", 1)}),
               DType::Float32, {2, 2}, {1, 3, 2, 4});
}

TEST(Kernels, Creation) {
  expectTensor("arange i64", one("arange", {i64({}, {1}), i64({}, {10}), i64({}, {3})}, {}),
               DType::Int64, {3}, {1, 4, 7});
  expectTensor("arange f32 dtype", one("arange", {f32({}, {0}), f32({}, {1}), f32({}, {0.25f})}, {}),
               DType::Float32, {4}, {0, 0.25, 0.5, 0.75});
  expectTensor("arange negative step", one("arange", {i64({}, {3}), i64({}, {0}), i64({}, {-1})},
                                           {attrStr("dtype", "f32")}),
               DType::Float32, {3}, {3, 2, 1});
  EXPECT_NE(errorOf("arange", {i64({}, {0}), i64({}, {5}), i64({}, {0})}, {}).find("step"), std::string::npos);
  expectTensor("full [2,2] i64", one("full", {i64({2}, {2, 2})}, {attrFloat("value", 7), attrStr("dtype", "i64")}),
               DType::Int64, {2, 2}, {7, 7, 7, 7});
  expectTensor("full_like bool", one("full_like", {f32({3}, {1, 2, 3})}, {attrFloat("value", 1), attrStr("dtype", "i1")}),
               DType::Bool, {3}, {1, 1, 1});
  expectTensor("constant ints", one("constant", {}, {[] { TAttr a; a.name = "value"; a.kind = fb::AttrKind::Ints; a.ints = {4, 5}; return a; }()}),
               DType::Int64, {2}, {4, 5});
  std::string big = errorOf("full", {i64({3}, {1 << 30, 1 << 30, 1 << 30})}, {attrFloat("value", 0)});
  EXPECT_FALSE(big.empty());
}

// Strided gathers (permute, transpose, slice, select, expand) against a naive
// element-by-element reference on shapes that take the run-copy path (a
// contiguous innermost run of >= 8 after dropping size-1 dims and merging
// adjacent ones: decode's [1,1,H,D] <-> [1,H,1,D], prefill's [1,T,H,D] ->
// [1,H,T,D]) and shapes that do not (short runs, broadcast, step 2).
TEST(Kernels, StridedGathersMatchNaiveReference) {
  auto iota = [](rt::Shape s, int dtype) {
    std::vector<float> v((size_t)s.numel());
    for (size_t i = 0; i < v.size(); ++i)
      v[i] = (float)i * 0.5f - 3.0f + (float)dtype;
    return f32(s, v);
  };
  // out[idx] = x[idx permuted back] for permute.
  auto naivePermute = [](const Tensor &x, const std::vector<int64_t> &perm) {
    const int r = x.rank();
    std::vector<int64_t> outDims(r), inStrides(r);
    int64_t st = 1;
    for (int i = r - 1; i >= 0; --i) {
      inStrides[i] = st;
      st *= x.dim(i);
    }
    for (int i = 0; i < r; ++i)
      outDims[i] = x.dim((int)perm[i]);
    std::vector<float> out((size_t)x.numel());
    std::vector<int64_t> idx(r, 0);
    const float *px = x.dataAs<float>();
    for (int64_t o = 0; o < x.numel(); ++o) {
      int64_t off = 0;
      for (int i = 0; i < r; ++i)
        off += idx[i] * inStrides[perm[i]];
      out[(size_t)o] = px[off];
      for (int i = r - 1; i >= 0; --i) {
        if (++idx[i] < outDims[i])
          break;
        idx[i] = 0;
      }
    }
    return out;
  };
  struct Case {
    rt::Shape shape;
    std::vector<int64_t> perm;
  } cases[] = {
      {{1, 1, 9, 64}, {0, 2, 1, 3}},  // decode q: one run
      {{1, 9, 1, 64}, {0, 2, 1, 3}},  // and back
      {{1, 64, 9, 64}, {0, 2, 1, 3}}, // prefill heads: runs of 64
      {{1, 7, 3, 8}, {0, 2, 1, 3}},   // runs of exactly 8
      {{2, 5, 3, 7}, {0, 2, 1, 3}},   // runs of 7: the element loop
      {{3, 1, 4, 16}, {2, 1, 0, 3}},  // size-1 dim among moved ones
      {{4, 6, 10}, {2, 1, 0}},        // innermost moved: element loop
      {{1, 1, 1, 1}, {3, 2, 1, 0}},   // one element
      {{2, 0, 16}, {1, 0, 2}},        // empty
  };
  for (const Case &c : cases) {
    Tensor x = iota(c.shape, 1);
    Tensor y = one("permute", {x}, {attrInts("perm", c.perm)});
    std::vector<float> want = naivePermute(x, c.perm);
    std::string perm;
    for (int64_t v : c.perm)
      perm += std::to_string(v) + " ";
    ASSERT_EQ(floatsOf(y), want) << "permute [" << perm << "] of " << x.describe();
  }
  // Slices of the last dim (runs shorter than the row) and with step 2.
  Tensor x = iota({3, 4, 40}, 2);
  for (auto [start, end, step] : {std::array<int64_t, 3>{8, 30, 1}, {0, 40, 2}, {5, 9, 1}}) {
    Tensor y = one("slice", {x, i64({}, {start}), i64({}, {end})},
                   {attrInt("dim", 2), attrInt("step", step)});
    std::vector<float> want;
    for (int64_t a = 0; a < 3; ++a)
      for (int64_t b = 0; b < 4; ++b)
        for (int64_t k = start; k < end; k += step)
          want.push_back(floatsOf(x)[(size_t)((a * 4 + b) * 40 + k)]);
    ASSERT_EQ(floatsOf(y), want) << "slice [" << start << ":" << end << ":" << step << "] of dim 2";
  }
  // Expand (stride 0 broadcast) of a row of 16.
  Tensor row = iota({1, 16}, 3);
  Tensor e = one("expand", {row, i64({2}, {5, 16})}, {});
  std::vector<float> want;
  for (int i = 0; i < 5; ++i)
    for (float v : floatsOf(row))
      want.push_back(v);
  ASSERT_EQ(floatsOf(e), want) << "expand [1,16] -> [5,16]";
}
