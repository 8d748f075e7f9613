// float32 <-> bfloat16 / float16 conversions of dtype.h against Eigen::bfloat16 / Eigen::half
// (round to nearest even): every 16-bit pattern, ties, NaN, Inf, overflow, subnormals and
// millions of random float32 bit patterns; plus the bulk ToF32 / FromF32 helpers.
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include <Eigen/Core>
#include <gtest/gtest.h>

#include "lowbit/dtype.h"

namespace lowbit {
namespace {

uint16_t EigenF16Bits(float f) { return Eigen::numext::bit_cast<uint16_t>(Eigen::half(f)); }
uint16_t EigenBF16Bits(float f) { return Eigen::numext::bit_cast<uint16_t>(Eigen::bfloat16(f)); }
float EigenF16ToF32(uint16_t h) { return static_cast<float>(Eigen::numext::bit_cast<Eigen::half>(h)); }

bool IsF16NaN(uint16_t h) { return (h & 0x7C00u) == 0x7C00u && (h & 0x3FFu) != 0; }
bool IsBF16NaN(uint16_t b) { return (b & 0x7F80u) == 0x7F80u && (b & 0x7Fu) != 0; }

// Compares one float32 against Eigen for both 16-bit types (NaN: NaN-ness only, not payload).
void ExpectSameAsEigen(float f) {
  const uint16_t h = F32ToF16(f).bits, eh = EigenF16Bits(f);
  if (std::isnan(f)) {
    ASSERT_TRUE(IsF16NaN(h)) << std::hex << F32Bits(f) << " -> f16 " << h;
  } else {
    ASSERT_EQ(h, eh) << "f16 of " << std::hexfloat << f << " bits 0x" << std::hex << F32Bits(f);
  }
  const uint16_t b = F32ToBF16(f).bits, eb = EigenBF16Bits(f);
  if (std::isnan(f)) {
    ASSERT_TRUE(IsBF16NaN(b)) << std::hex << F32Bits(f) << " -> bf16 " << b;
  } else {
    ASSERT_EQ(b, eb) << "bf16 of " << std::hexfloat << f << " bits 0x" << std::hex << F32Bits(f);
  }
}

TEST(F16, EveryPatternWidensExactly) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float got = F16ToF32(F16{static_cast<uint16_t>(h)});
    const float want = EigenF16ToF32(static_cast<uint16_t>(h));
    if (IsF16NaN(static_cast<uint16_t>(h))) {
      ASSERT_TRUE(std::isnan(got)) << h;
      // Narrowing back keeps it a NaN.
      ASSERT_TRUE(IsF16NaN(F32ToF16(got).bits)) << h;
    } else {
      ASSERT_EQ(F32Bits(got), F32Bits(want)) << "f16 0x" << std::hex << h;
      ASSERT_EQ(F32ToF16(got).bits, h) << "round trip 0x" << std::hex << h;  // exact values survive
    }
  }
}

TEST(BF16, EveryPatternWidensExactly) {
  for (uint32_t b = 0; b < 65536; ++b) {
    const float got = BF16ToF32(BF16{static_cast<uint16_t>(b)});
    ASSERT_EQ(F32Bits(got), b << 16);
    if (IsBF16NaN(static_cast<uint16_t>(b))) {
      ASSERT_TRUE(IsBF16NaN(F32ToBF16(got).bits));
    } else {
      ASSERT_EQ(F32ToBF16(got).bits, b);
    }
  }
}

TEST(Narrowing, TiesAndBoundariesHandPicked) {
  // bf16: 1 + 2^-8 is halfway between 1 and 1 + 2^-7 -> even (1.0); 1 + 3*2^-8 -> 1 + 2^-6.
  EXPECT_EQ(F32ToBF16(1.0f + 0x1p-8f).bits, 0x3F80);
  EXPECT_EQ(F32ToBF16(1.0f + 3 * 0x1p-8f).bits, 0x3F82);
  EXPECT_EQ(F32ToBF16(F32FromBits(0x7F7FFFFFu)).bits, 0x7F80);  // FLT_MAX rounds to Inf
  EXPECT_EQ(F32ToBF16(F32FromBits(0x7F7F7FFFu)).bits, 0x7F7F);
  EXPECT_TRUE(IsBF16NaN(F32ToBF16(F32FromBits(0x7F800001u)).bits));  // signalling NaN stays NaN
  EXPECT_TRUE(IsBF16NaN(F32ToBF16(F32FromBits(0xFFFF0001u)).bits));  // no carry into the sign
  // f16: 1 + 2^-11 ties to 1.0, 65504 max, 65520 (tie 65504 | 65536) -> Inf, 2^-25 -> 0,
  // 3 * 2^-26 (just above half the least subnormal) -> 2^-24.
  EXPECT_EQ(F32ToF16(1.0f + 0x1p-11f).bits, 0x3C00);
  EXPECT_EQ(F32ToF16(1.0f + 3 * 0x1p-11f).bits, 0x3C02);
  EXPECT_EQ(F32ToF16(65504.0f).bits, 0x7BFF);
  EXPECT_EQ(F32ToF16(std::nextafter(65520.0f, 0.0f)).bits, 0x7BFF);
  EXPECT_EQ(F32ToF16(65520.0f).bits, 0x7C00);
  EXPECT_EQ(F32ToF16(-1e9f).bits, 0xFC00);
  EXPECT_EQ(F32ToF16(0x1p-25f).bits, 0x0000);
  EXPECT_EQ(F32ToF16(3 * 0x1p-26f).bits, 0x0001);
  EXPECT_EQ(F32ToF16(3 * 0x1p-25f).bits, 0x0002);  // tie 1 | 2 subnormal units -> 2
  EXPECT_EQ(F32ToF16(-0x1p-14f).bits, 0x8400);     // least normal
  EXPECT_EQ(F32ToF16(std::nextafter(0x1p-14f, 0.0f)).bits, 0x0400);  // rounds up into normal
}

TEST(Narrowing, SpecialValuesAndEveryHalfwayPoint) {
  std::vector<float> v = {0.0f, -0.0f, std::numeric_limits<float>::infinity(),
                          -std::numeric_limits<float>::infinity(), std::nanf(""),
                          F32FromBits(0x7F800001u), F32FromBits(0xFFC00001u),
                          std::numeric_limits<float>::max(), std::numeric_limits<float>::min(),
                          std::numeric_limits<float>::denorm_min(), 65504.0f, 65519.99f, 65520.0f,
                          65536.0f, 1e-8f, 5.96e-8f, 2.98e-8f};
  // Exact halfway points between consecutive f16 values and one ulp either side.
  for (uint32_t h = 0; h < 0x7BFF; ++h) {
    const double a = EigenF16ToF32(static_cast<uint16_t>(h));
    const double b = EigenF16ToF32(static_cast<uint16_t>(h + 1));
    const float mid = static_cast<float>((a + b) / 2);  // exact in float32
    v.push_back(mid);
    v.push_back(std::nextafter(mid, 0.0f));
    v.push_back(std::nextafter(mid, 1e9f));
  }
  // Exact halfway points between consecutive bf16 values (low 16 bits 0x8000) and neighbours.
  for (uint32_t b = 0; b < 0x7F80; b += 7) {
    const uint32_t mid = (b << 16) | 0x8000u;
    v.push_back(F32FromBits(mid));
    v.push_back(F32FromBits(mid - 1));
    v.push_back(F32FromBits(mid + 1));
  }
  for (const float f : std::vector<float>(v)) v.push_back(-f);
  for (const float f : v) ExpectSameAsEigen(f);
}

TEST(Narrowing, MillionsOfRandomBitPatterns) {
  std::mt19937 gen(4242);
  for (int i = 0; i < 2000000; ++i) ExpectSameAsEigen(F32FromBits(static_cast<uint32_t>(gen())));
  // Concentrated on the f16 range (2^-26 .. 2^16), where the subnormal/overflow logic lives.
  std::uniform_int_distribution<int> exp(-26, 16);
  for (int i = 0; i < 1000000; ++i) {
    const uint32_t sign = (gen() & 1u) << 31;
    ExpectSameAsEigen(F32FromBits(sign | static_cast<uint32_t>(exp(gen) + 127) << 23 |
                                  (static_cast<uint32_t>(gen()) & 0x7FFFFFu)));
  }
}

TEST(BulkConversion, ToF32AndFromF32AgreeWithScalar) {
  std::mt19937 gen(5);
  std::normal_distribution<float> dist(0.0f, 100.0f);
  std::vector<float> src(4099);
  for (float& f : src) f = dist(gen);
  std::vector<F16> h(src.size());
  std::vector<BF16> b(src.size());
  FromF32(src.data(), static_cast<int64_t>(src.size()), h.data(), DType::kF16);
  FromF32(src.data(), static_cast<int64_t>(src.size()), b.data(), DType::kBF16);
  std::vector<float> back_h(src.size()), back_b(src.size()), back_f(src.size());
  ToF32(h.data(), DType::kF16, static_cast<int64_t>(src.size()), back_h.data());
  ToF32(b.data(), DType::kBF16, static_cast<int64_t>(src.size()), back_b.data());
  ToF32(src.data(), DType::kF32, static_cast<int64_t>(src.size()), back_f.data());
  for (size_t i = 0; i < src.size(); ++i) {
    ASSERT_EQ(h[i].bits, EigenF16Bits(src[i])) << i;
    ASSERT_EQ(b[i].bits, EigenBF16Bits(src[i])) << i;
    ASSERT_EQ(F32Bits(back_h[i]), F32Bits(EigenF16ToF32(h[i].bits))) << i;
    ASSERT_EQ(F32Bits(back_b[i]), static_cast<uint32_t>(b[i].bits) << 16) << i;
    ASSERT_EQ(F32Bits(back_f[i]), F32Bits(src[i])) << i;
  }
}

}  // namespace
}  // namespace lowbit
