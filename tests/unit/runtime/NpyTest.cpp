#include "TestProgramBuilder.h"

#include "runtime-stub/io/Npy.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>

using namespace kiln;
using namespace kiln::test;
using kiln::rt::DType;
using kiln::rt::Tensor;

TEST(Npy, RoundTripEveryDType) {
  std::vector<Tensor> ts = {f32({2, 3}, {1, -2, 3.5f, 4, 5, 6}), i64({3}, {-1, 0, 1LL << 40}),
                            i1({2, 2}, {true, false, false, true}), i32({}, {-7}),
                            f32({0, 4}, {})};
  for (const Tensor &t : ts) {
    auto bytes = rt::encodeNpy(t);
    ASSERT_TRUE(bytes.ok());
    EXPECT_EQ((bytes->size() - t.nbytes()) % 64, 0u) << "header padded to 64 for " << t.describe();
    auto back = rt::parseNpy(bytes->data(), bytes->size());
    ASSERT_TRUE(back.ok()) << t.describe() << ": " << back.error().message();
    EXPECT_EQ(back->dtype(), t.dtype());
    EXPECT_EQ(back->shape(), t.shape()) << t.describe();
    EXPECT_EQ(0, std::memcmp(back->data(), t.data(), t.nbytes())) << t.describe();
  }
}

TEST(Npy, ParsesNumpyWrittenHeaders) {
  // Headers as numpy writes them (v1.0 and v2.0), incl. 1-d "(3,)" shape.
  auto make = [](int major, const std::string &dict, const std::vector<uint8_t> &data) {
    std::string h = dict;
    size_t pre = major == 1 ? 10 : 12;
    while ((pre + h.size() + 1) % 64)
      h += ' ';
    h += '\n';
    std::vector<uint8_t> b = {0x93, 'N', 'U', 'M', 'P', 'Y', (uint8_t)major, 0};
    b.push_back((uint8_t)(h.size() & 0xff));
    b.push_back((uint8_t)(h.size() >> 8));
    if (major == 2) {
      b.push_back(0);
      b.push_back(0);
    }
    b.insert(b.end(), h.begin(), h.end());
    b.insert(b.end(), data.begin(), data.end());
    return b;
  };
  std::vector<uint8_t> three(12, 0);
  auto v1 = make(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }", three);
  auto t = rt::parseNpy(v1.data(), v1.size());
  ASSERT_TRUE(t.ok()) << t.error().message();
  EXPECT_EQ(t->dtype(), DType::Int32);
  EXPECT_EQ(t->shape(), rt::Shape({3}));
  auto v2 = make(2, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3), }", three);
  auto t2 = rt::parseNpy(v2.data(), v2.size());
  ASSERT_TRUE(t2.ok()) << t2.error().message();
  EXPECT_EQ(t2->shape(), rt::Shape({1, 3}));
  auto f8 = make(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (), }", std::vector<uint8_t>(8));
  auto e = rt::parseNpy(f8.data(), f8.size());
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().message().find("float64"), std::string::npos) << e.error().message();
  auto fo = make(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (3,), }", three);
  EXPECT_FALSE(rt::parseNpy(fo.data(), fo.size()).ok());
  auto shortData = make(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", three);
  EXPECT_FALSE(rt::parseNpy(shortData.data(), shortData.size()).ok());
}

TEST(Npy, MalformedInputsNeverCrash) {
  auto bytes = rt::encodeNpy(f32({2, 3}, {1, 2, 3, 4, 5, 6}));
  ASSERT_TRUE(bytes.ok());
  const std::vector<uint8_t> good = *bytes;
  for (size_t n = 0; n < good.size(); ++n)
    EXPECT_FALSE(rt::parseNpy(good.data(), n).ok()) << "prefix " << n;
  std::mt19937 rng(1234);
  for (int i = 0; i < 3000; ++i) {
    std::vector<uint8_t> b = good;
    size_t pos = rng() % 128; // the header region
    b[pos] = (uint8_t)rng();
    auto r = rt::parseNpy(b.data(), b.size());
    if (r.ok()) {
      EXPECT_EQ(r->nbytes() + 128, b.size());
    }
  }
}
