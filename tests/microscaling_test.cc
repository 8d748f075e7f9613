// MXFP4, NVFP4 and IQ4_NL against independent oracles: E2M1 and E4M3 by brute-force nearest-value search
// with ties to the even code, MX scales from log2 in double, hand-derived tie cases, and the
// lowbit file layout (E8M0 / E4M3 statistics, tensor scale) round trip.
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include <gtest/gtest.h>

#include "format_test_util.h"
#include "lowbit/format.h"
#include "lowbit/fp8.h"
#include "lowbit/quantize.h"

namespace lowbit {
namespace {

using testing::Randn;

// E2M1 magnitudes written out from the OCP spec (not from format_layout.h).
constexpr double kE2M1Mag[8] = {0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0};

// Nearest E2M1 code of y: smallest |y| - magnitude distance, a tie to the even code, |y| > 6
// saturating to code 7; sign bit for y < 0.
uint8_t NearestE2M1(double y) {
  const double a = std::fabs(y);
  int best = 0;
  double best_d = std::numeric_limits<double>::infinity();
  for (int m = 0; m < 8; ++m) {
    const double d = std::fabs(a - kE2M1Mag[m]);
    if (d < best_d || (d == best_d && m % 2 == 0)) {
      best = m;
      best_d = d;
    }
  }
  return static_cast<uint8_t>((y < 0 ? 8 : 0) | best);
}

// Nearest non-negative finite E4M3 value of v >= 0 (ties to the even code), saturating at 448.
float NearestE4M3(float v) {
  int best = 0;
  double best_d = std::numeric_limits<double>::infinity();
  for (int c = 0; c <= 0x7E; ++c) {
    const double d = std::fabs(static_cast<double>(v) - FP8E4M3ToF32(static_cast<uint8_t>(c)));
    if (d < best_d || (d == best_d && c % 2 == 0)) {
      best = c;
      best_d = d;
    }
  }
  return FP8E4M3ToF32(static_cast<uint8_t>(best));
}

double E2M1Value(uint8_t code) { return (code & 8 ? -1.0 : 1.0) * kE2M1Mag[code & 7]; }

uint8_t CodeAt(const QuantizedTensor& q, int64_t i) {
  const uint8_t b = q.data[static_cast<size_t>(i / 2)];
  return (i & 1) ? (b & 0x0F) : (b >> 4);
}

QuantizedTensor Quantize2D(Format f, const std::vector<float>& x, int64_t rows, int64_t cols) {
  return Quantize(f, ConstTensorView{x.data(), DType::kF32, {rows, cols}});
}

TEST(E2M1, TiesGoToTheEvenCodeAndLargeValuesSaturate) {
  // One MX block whose absmax 7 gives scale 2^(2 - 2) = 1, so codes are E2M1(x) directly.
  std::vector<float> x = {6.0f, -0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f,
                          7.0f, -7.0f,  0.25f, 0.5f,  -3.0f, 0.3f, 5.01f, -0.0f};
  x.resize(32, 0.0f);
  const QuantizedTensor q = Quantize2D(Format::kMXFP4, x, 1, 32);
  ASSERT_EQ(q.state.scales.size(), 1u);
  EXPECT_EQ(q.state.scales[0], 1.0f);
  // 0.75 -> 1.0 (code 2, even), 1.25 -> 1.0 (2), 1.75 -> 2.0 (4), 2.5 -> 2.0 (4), 3.5 -> 4.0
  // (6), 5.0 -> 4.0 (6); -0.25 -> -0 (8); 7 -> 6 saturated (7).
  const uint8_t want[16] = {7, 8, 2, 2, 4, 4, 6, 6, 7, 15, 0, 1, 13, 1, 7, 0};
  for (int i = 0; i < 16; ++i) EXPECT_EQ(CodeAt(q, i), want[i]) << "element " << i;
}

TEST(MXFP4, MatchesIndependentOracle) {
  for (const auto& [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{3, 64}, {4, 100}, {1, 7}}) {
    std::vector<float> x = Randn(rows * cols, static_cast<uint32_t>(rows * 1000 + cols));
    for (size_t i = 0; i < x.size(); i += 13) x[i] *= 40.0f;  // outliers saturate neighbours
    if (cols >= 64) std::fill(x.begin() + 32, x.begin() + 64, 0.0f);  // one zero block
    const QuantizedTensor q = Quantize2D(Format::kMXFP4, x, rows, cols);
    const std::vector<float> deq = DequantizeToF32(q);
    const int64_t groups = (cols + 31) / 32;
    ASSERT_EQ(static_cast<int64_t>(q.state.scales.size()), rows * groups);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t g = 0; g < groups; ++g) {
        const int64_t b = r * cols + g * 32, e = r * cols + std::min(cols, (g + 1) * 32);
        double amax = 0;
        for (int64_t i = b; i < e; ++i) amax = std::max(amax, std::fabs(static_cast<double>(x[i])));
        const int exp = amax > 0 ? std::max(-127, static_cast<int>(std::floor(std::log2(amax))) - 2)
                                 : -127;
        const double scale = std::ldexp(1.0, exp);
        ASSERT_EQ(static_cast<double>(q.state.scales[r * groups + g]), scale) << r << "," << g;
        for (int64_t i = b; i < e; ++i) {
          const uint8_t code = NearestE2M1(x[i] / scale);
          ASSERT_EQ(CodeAt(q, i), code) << "element " << i << " x=" << x[i];
          ASSERT_EQ(static_cast<double>(deq[i]), E2M1Value(code) * scale) << "element " << i;
        }
      }
    }
  }
}

TEST(NVFP4, MatchesIndependentOracle) {
  const int64_t rows = 6, cols = 72;  // 4.5 groups of 16 per row: a partial last group
  std::vector<float> x = Randn(rows * cols, 77);
  for (size_t i = 0; i < x.size(); i += 29) x[i] *= 25.0f;
  for (int64_t i = 16; i < 32; ++i) x[i] = 1e-9f;  // a block whose E4M3 scale underflows to 0
  const QuantizedTensor q = Quantize2D(Format::kNVFP4, x, rows, cols);
  const std::vector<float> deq = DequantizeToF32(q);
  float amax = 0;
  for (const float v : x) amax = std::max(amax, std::fabs(v));
  const float s2 = amax / (6.0f * 448.0f);
  EXPECT_EQ(F32Bits(q.state.tensor_scale), F32Bits(s2));
  const int64_t groups = (cols + 15) / 16;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t b = r * cols + g * 16, e = r * cols + std::min(cols, (g + 1) * 16);
      float bmax = 0;
      for (int64_t i = b; i < e; ++i) bmax = std::max(bmax, std::fabs(x[i]));
      const float d = NearestE4M3(bmax / (6.0f * s2));
      ASSERT_EQ(F32Bits(q.state.scales[r * groups + g]), F32Bits(d)) << r << "," << g;
      const float scale = d * s2;
      for (int64_t i = b; i < e; ++i) {
        const uint8_t code = scale > 0 ? NearestE2M1(static_cast<double>(x[i] / scale)) : 0;
        ASSERT_EQ(CodeAt(q, i), code) << "element " << i;
        ASSERT_EQ(deq[i], static_cast<float>(E2M1Value(code)) * scale) << "element " << i;
      }
    }
  }
}

TEST(NVFP4, ZeroTensorHasZeroScalesAndCodes) {
  const std::vector<float> x(64, 0.0f);
  const QuantizedTensor q = Quantize2D(Format::kNVFP4, x, 2, 32);
  EXPECT_EQ(q.state.tensor_scale, 0.0f);
  for (const float s : q.state.scales) EXPECT_EQ(s, 0.0f);
  for (const uint8_t b : q.data) EXPECT_EQ(b, 0);
  for (const float v : DequantizeToF32(q)) EXPECT_EQ(v, 0.0f);
}

// iq4_nl's grid, written out from llama.cpp's kvalues_iq4nl (not from the codec headers).
constexpr double kIq4Grid[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                 1,    13,   25,  38,  53,  69,  89,  113};

TEST(IQ4NL, MatchesIndependentOracle) {
  const int64_t rows = 5, cols = 96;
  std::vector<float> x = Randn(rows * cols, 31);
  for (size_t i = 0; i < x.size(); i += 17) x[i] *= -9.0f;  // signed extremes of both kinds
  std::fill(x.begin() + 32, x.begin() + 64, 0.0f);           // a zero group
  const QuantizedTensor q = Quantize2D(Format::kIQ4NL, x, rows, cols);
  const std::vector<float> deq = DequantizeToF32(q);
  const int64_t groups = cols / 32;
  for (int64_t g = 0; g < rows * groups; ++g) {
    const int64_t b = g * 32;
    float m = 0;  // the element of largest magnitude, with its sign
    for (int64_t i = b; i < b + 32; ++i) m = std::fabs(x[i]) > std::fabs(m) ? x[i] : m;
    const float d = F16ToF32(F32ToF16(m / -127.0f));
    ASSERT_EQ(F32Bits(q.state.scales[g]), F32Bits(d)) << "group " << g;
    for (int64_t i = b; i < b + 32; ++i) {
      int want = 8;
      if (d != 0.0f) {
        const double y = static_cast<double>(x[i] / d);
        double best = std::numeric_limits<double>::infinity();
        for (int c = 0; c < 16; ++c) {  // nearest, a tie to the lower code
          if (std::fabs(y - kIq4Grid[c]) < best) {
            best = std::fabs(y - kIq4Grid[c]);
            want = c;
          }
        }
      }
      ASSERT_EQ(CodeAt(q, i), want) << "element " << i;
      ASSERT_EQ(deq[i], static_cast<float>(kIq4Grid[want]) * d) << "element " << i;
    }
  }
}

TEST(Microscaling, StatisticsMustBeExactValuesOfTheirType) {
  const std::vector<float> x = Randn(64, 5);
  QuantizedTensor mx = Quantize2D(Format::kMXFP4, x, 2, 32);
  mx.state.scales[1] = 0.3f;  // not a power of two
  EXPECT_THROW(ValidateQuantizedTensor(mx), Error);
  QuantizedTensor nv = Quantize2D(Format::kNVFP4, x, 2, 32);
  nv.state.scales[0] = -nv.state.scales[0] - 1.0f;  // negative
  EXPECT_THROW(ValidateQuantizedTensor(nv), Error);
  nv = Quantize2D(Format::kNVFP4, x, 2, 32);
  nv.state.scales[0] = 449.0f;  // beyond E4M3
  EXPECT_THROW(ValidateQuantizedTensor(nv), Error);
  nv = Quantize2D(Format::kNVFP4, x, 2, 32);
  nv.state.tensor_scale = std::numeric_limits<float>::infinity();
  EXPECT_THROW(ValidateQuantizedTensor(nv), Error);
  QuantizedTensor int4 = Quantize2D(Format::kInt4, x, 2, 32);
  int4.state.tensor_scale = 2.0f;  // only nvfp4 has one
  EXPECT_THROW(ValidateQuantizedTensor(int4), Error);
  QuantizedTensor iq = Quantize2D(Format::kIQ4NL, x, 2, 32);
  iq.state.scales[0] = 0.1f;  // not an f16 value
  EXPECT_THROW(ValidateQuantizedTensor(iq), Error);
  // Fixed group sizes: mxfp4 takes 32 only.
  QuantizeOptions o;
  o.block_size = 64;
  EXPECT_THROW(Quantize(Format::kMXFP4, ConstTensorView{x.data(), DType::kF32, {2, 32}}, o), Error);
}

}  // namespace
}  // namespace lowbit
