// FP8 E4M3/E5M2: decoding of all 256 codes against an independent formula, float32 -> FP8 against
// CUDA's cuda_fp8.h host conversion (__NV_SATFINITE) on every float16 value and millions of
// float32 values, and the scaled quantize/dequantize round trip per row and per tensor.
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "format_test_util.h"
#include "lowbit/fp8.h"
#include "lowbit/quantize.h"

#ifdef LOWBIT_HAVE_CUDA_FP8
#include <cuda_fp8.h>
#endif

namespace lowbit {
namespace {

// OCP FP8 value of `code` from the spec: E4M3 (bias 7, S.1111.111 NaN, no Inf) or E5M2 (bias 15,
// exponent 31: Inf for mantissa 0 else NaN). Subnormals m * 2^(1 - bias - man_bits).
double SpecValue(uint8_t code, bool e4m3) {
  const int man_bits = e4m3 ? 3 : 2, exp_bits = e4m3 ? 4 : 5, bias = e4m3 ? 7 : 15;
  const double sign = (code & 0x80) ? -1.0 : 1.0;
  const int e = (code >> man_bits) & ((1 << exp_bits) - 1);
  const int m = code & ((1 << man_bits) - 1);
  if (e4m3 && e == 15 && m == 7) return std::numeric_limits<double>::quiet_NaN();
  if (!e4m3 && e == 31) {
    return m == 0 ? sign * std::numeric_limits<double>::infinity()
                  : std::numeric_limits<double>::quiet_NaN();
  }
  if (e == 0) return sign * std::ldexp(m, 1 - bias - man_bits);
  return sign * std::ldexp(1.0 + m / static_cast<double>(1 << man_bits), e - bias);
}

TEST(FP8Decode, AllCodesMatchSpecFormula) {
  for (int c = 0; c < 256; ++c) {
    for (const bool e4m3 : {true, false}) {
      const double want = SpecValue(static_cast<uint8_t>(c), e4m3);
      const float got = e4m3 ? FP8E4M3ToF32(static_cast<uint8_t>(c)) : FP8E5M2ToF32(static_cast<uint8_t>(c));
      if (std::isnan(want)) {
        EXPECT_TRUE(std::isnan(got)) << (e4m3 ? "e4m3 " : "e5m2 ") << c;
      } else {
        EXPECT_EQ(static_cast<double>(got), want) << (e4m3 ? "e4m3 " : "e5m2 ") << c;
        EXPECT_EQ(std::signbit(got), (c & 0x80) != 0) << c;
      }
    }
  }
  EXPECT_EQ(FP8E4M3ToF32(0x7E), 448.0f);
  EXPECT_EQ(FP8E5M2ToF32(0x7B), 57344.0f);
  EXPECT_EQ(FP8E4M3ToF32(0x01), 0x1p-9f);
  EXPECT_EQ(FP8E5M2ToF32(0x01), 0x1p-16f);
  EXPECT_TRUE(std::isinf(FP8E5M2ToF32(0xFC)) && FP8E5M2ToF32(0xFC) < 0);
}

TEST(FP8Encode, RoundTripsEveryFiniteCode) {
  for (int c = 0; c < 256; ++c) {
    const uint8_t code = static_cast<uint8_t>(c);
    const float v4 = FP8E4M3ToF32(code);
    if (!std::isnan(v4)) EXPECT_EQ(F32ToFP8E4M3(v4), code) << c;
    const float v5 = FP8E5M2ToF32(code);
    if (std::isfinite(v5)) EXPECT_EQ(F32ToFP8E5M2(v5), code) << c;
  }
}

TEST(FP8Encode, SaturationNaNAndTiesHandPicked) {
  constexpr float kInf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(F32ToFP8E4M3(kInf), 0x7E);
  EXPECT_EQ(F32ToFP8E4M3(-kInf), 0xFE);
  EXPECT_EQ(F32ToFP8E4M3(1e30f), 0x7E);
  EXPECT_EQ(F32ToFP8E4M3(464.0f), 0x7E);  // tie 448 | 480: saturates either way
  EXPECT_EQ(F32ToFP8E5M2(kInf), 0x7B);    // SATFINITE: even Inf becomes max finite
  EXPECT_EQ(F32ToFP8E5M2(-kInf), 0xFB);
  EXPECT_EQ(F32ToFP8E5M2(61440.0f), 0x7B);  // tie 57344 | 65536
  EXPECT_EQ(F32ToFP8E4M3(std::nanf("")), 0x7F);
  EXPECT_EQ(F32ToFP8E4M3(-std::nanf("")), 0x7F);  // canonical NaN, sign dropped (as CUDA)
  EXPECT_EQ(F32ToFP8E5M2(-std::nanf("")), 0x7F);
  EXPECT_EQ(F32ToFP8E4M3(1.0625f), 0x38);   // tie 1 | 1.125 -> even mantissa (1.0)
  EXPECT_EQ(F32ToFP8E4M3(1.1875f), 0x3A);   // tie 1.125 | 1.25 -> 1.25
  EXPECT_EQ(F32ToFP8E4M3(0x1p-10f), 0x00);  // half the least subnormal -> 0 (even)
  EXPECT_EQ(F32ToFP8E4M3(0x1.8p-9f), 0x02); // tie 1 | 2 subnormal units -> 2
  EXPECT_EQ(F32ToFP8E4M3(-0x1p-30f), 0x80);
  EXPECT_EQ(F32ToFP8E5M2(0x1p-17f), 0x00);
  EXPECT_EQ(F32ToFP8E5M2(0x1.8p-16f), 0x02);
}

#ifdef LOWBIT_HAVE_CUDA_FP8
uint8_t CudaE4M3(float f) {
  return static_cast<uint8_t>(__nv_cvt_float_to_fp8(f, __NV_SATFINITE, __NV_E4M3));
}
uint8_t CudaE5M2(float f) {
  return static_cast<uint8_t>(__nv_cvt_float_to_fp8(f, __NV_SATFINITE, __NV_E5M2));
}

void ExpectSameAsCuda(float f) {
  ASSERT_EQ(F32ToFP8E4M3(f), CudaE4M3(f)) << "e4m3 of " << std::hexfloat << f << " bits 0x"
                                          << std::hex << F32Bits(f);
  ASSERT_EQ(F32ToFP8E5M2(f), CudaE5M2(f)) << "e5m2 of " << std::hexfloat << f << " bits 0x"
                                          << std::hex << F32Bits(f);
}
#endif

class FP8VsCuda : public ::testing::Test {
 protected:
  void SetUp() override {
#ifndef LOWBIT_HAVE_CUDA_FP8
    GTEST_SKIP() << "cuda_fp8.h not found at configure time: the CUDA FP8 oracle comparison is "
                    "skipped (install the CUDA toolkit headers to run it)";
#endif
  }
};

TEST_F(FP8VsCuda, EveryFloat16Value) {
#ifdef LOWBIT_HAVE_CUDA_FP8
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = static_cast<float>(Eigen::numext::bit_cast<Eigen::half>(static_cast<uint16_t>(h)));
    ExpectSameAsCuda(f);
  }
#endif
}

TEST_F(FP8VsCuda, SpecialAndBoundaryValues) {
#ifdef LOWBIT_HAVE_CUDA_FP8
  std::vector<float> v = {0.0f, -0.0f, std::numeric_limits<float>::infinity(),
                          -std::numeric_limits<float>::infinity(), std::nanf(""), -std::nanf(""),
                          F32FromBits(0x7F800001u), F32FromBits(0xFFFFFFFFu),
                          std::numeric_limits<float>::max(), std::numeric_limits<float>::denorm_min(),
                          std::numeric_limits<float>::min(), 448.0f, 464.0f, 480.0f, 57344.0f,
                          61440.0f, 65536.0f, 1e30f};
  // Every FP8 value, the exact midpoints between neighbours (ties), and one ulp either side.
  for (int c = 0; c < 255; ++c) {
    for (const bool e4m3 : {true, false}) {
      const double a = SpecValue(static_cast<uint8_t>(c), e4m3);
      const double b = SpecValue(static_cast<uint8_t>(c + 1), e4m3);
      if (!std::isfinite(a)) continue;
      v.push_back(static_cast<float>(a));
      if (std::isfinite(b) && (c & 0x7F) != 0x7F) {
        const float mid = static_cast<float>((a + b) / 2);  // exact in float32
        v.push_back(mid);
        v.push_back(std::nextafter(mid, 0.0f));
        v.push_back(std::nextafter(mid, 2.0f * mid));
      }
    }
  }
  for (const float f : std::vector<float>(v)) v.push_back(-f);
  for (const float f : v) ExpectSameAsCuda(f);
#endif
}

TEST_F(FP8VsCuda, MillionsOfFloat32Values) {
#ifdef LOWBIT_HAVE_CUDA_FP8
  std::mt19937 gen(2024);
  // 1M uniformly random bit patterns (every exponent, NaNs, Infs, float32 subnormals).
  for (int i = 0; i < 1000000; ++i) ExpectSameAsCuda(F32FromBits(static_cast<uint32_t>(gen())));
  // 1M random float32 values with exponents around the FP8 ranges (2^-26 .. 2^17).
  std::uniform_int_distribution<int> exp(-26, 17);
  for (int i = 0; i < 1000000; ++i) {
    const uint32_t sign = (gen() & 1u) << 31;
    const uint32_t mant = static_cast<uint32_t>(gen()) & 0x7FFFFFu;
    ExpectSameAsCuda(F32FromBits(sign | static_cast<uint32_t>(exp(gen) + 127) << 23 | mant));
  }
#endif
}

// ---- scaled FP8 quantize / dequantize -----------------------------------------------------------

class FP8RoundTrip : public ::testing::TestWithParam<std::tuple<Format, Granularity>> {};

TEST_P(FP8RoundTrip, ScaleCodesAndErrorBound) {
  const auto [format, granularity] = GetParam();
  const bool e4m3 = format == Format::kFP8E4M3;
  const float max_finite = e4m3 ? 448.0f : 57344.0f;
  const int man_bits = e4m3 ? 3 : 2;
  const float least_subnormal = e4m3 ? 0x1p-9f : 0x1p-16f;
  const int64_t rows = 33, cols = 190;
  std::vector<float> x = testing::Randn(rows * cols, 77);
  for (int64_t c = 0; c < cols; ++c) x[3 * cols + c] *= 1e-3f;  // a row with a small range
  x[5 * cols + 8] = 40.0f;                                       // a large outlier
  std::fill(x.begin() + 7 * cols, x.begin() + 8 * cols, 0.0f);  // a zero row
  const QuantizedTensor q = QuantizeFP8(ConstTensorView{x.data(), DType::kF32, {rows, cols}}, format, granularity);
  const int64_t groups = granularity == Granularity::kRow ? rows : 1, len = rows * cols / groups;
  ASSERT_EQ(q.state.scales.size(), static_cast<size_t>(groups));
  const std::vector<float> out = DequantizeToF32(q);
  for (int64_t s = 0; s < groups; ++s) {
    float amax = 0.0f;
    for (int64_t i = s * len; i < (s + 1) * len; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float scale = amax / max_finite;  // absmax maps onto the largest finite code
    ASSERT_EQ(q.state.scales[s], scale) << s;
    for (int64_t i = s * len; i < (s + 1) * len; ++i) {
      const float y = scale > 0.0f ? x[i] / scale : 0.0f;
#ifdef LOWBIT_HAVE_CUDA_FP8
      ASSERT_EQ(q.data[i], e4m3 ? CudaE4M3(y) : CudaE5M2(y)) << i;
#endif
      const double decoded = SpecValue(q.data[i], e4m3);
      ASSERT_EQ(F32Bits(out[i]), F32Bits(static_cast<float>(decoded) * scale)) << i;
      // Half an ulp of the FP8 value (relative 2^-(m+1)) or half the least subnormal, in x units.
      const double bound = std::max(std::fabs(x[i]) * std::ldexp(1.0, -(man_bits + 1)),
                                    0.5 * least_subnormal * scale) * 1.0001;
      ASSERT_LE(std::fabs(out[i] - x[i]), bound) << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Formats, FP8RoundTrip,
    ::testing::Combine(::testing::Values(Format::kFP8E4M3, Format::kFP8E5M2),
                       ::testing::Values(Granularity::kRow, Granularity::kTensor)),
    [](const auto& info) {
      return std::string(FormatName(std::get<0>(info.param))) +
             (std::get<1>(info.param) == Granularity::kRow ? "_row" : "_tensor");
    });

}  // namespace
}  // namespace lowbit
