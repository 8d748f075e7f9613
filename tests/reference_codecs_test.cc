// Reference codecs against independent oracles: hand-computed golden bytes for NF4/FP4 (from the
// bitsandbytes CUDA rules in shared/reference/bnb-formats.md), a brute-force dynamic-map search,
// scalar int8/int4 formulas, double-quant reconstruction, and bitsandbytes' error bounds (§9).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include <gtest/gtest.h>

#include "format_test_util.h"
#include "lowbit/format.h"
#include "lowbit/quantize.h"
#include "reference/reference.h"

namespace lowbit {
namespace {

using testing::BnbError;
using testing::DenseTensor;
using testing::MeasureBnbError;
using testing::Randn;
using testing::RoundHalfEven;

constexpr float kInf = std::numeric_limits<float>::infinity();

float Up(float x) { return std::nextafter(x, kInf); }

QuantizedTensor Quantize1D(Format format, const std::vector<float>& x, int64_t block,
                           bool double_quant = false) {
  QuantizeOptions o;
  o.block_size = block;
  o.double_quant = double_quant;
  return Quantize(format, ConstTensorView{x.data(), DType::kF32, {static_cast<int64_t>(x.size())}},
                  o);
}

std::vector<float> Dequant(const QuantizedTensor& q) { return DequantizeToF32(q); }

// ---- NF4 / FP4 golden bytes ------------------------------------------------------------------
// In each block below an element equal to 1.0 (or -1.0) makes absmax 1, so y = x exactly and the
// codes follow from the thresholds alone.

TEST(NF4Golden, ThresholdsTieLowJustAboveGoesUp) {
  // [1.0, t0, up(t0), t1, up(t1), ..., t14, up(t14), -1.0]: a value ON threshold i has exactly i
  // thresholds strictly below it (code i); one ulp above has i + 1.
  std::vector<float> x = {1.0f};
  for (int i = 0; i < 15; ++i) {
    x.push_back(kNF4Thresholds[i]);
    x.push_back(Up(kNF4Thresholds[i]));
  }
  x.push_back(-1.0f);
  ASSERT_EQ(x.size(), 32u);
  const QuantizedTensor q = Quantize1D(Format::kNF4, x, 32);
  // codes 15,0,1,1,2,2,...,14,14,15,0
  const std::vector<uint8_t> expected = {0xF0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                                         0x88, 0x99, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xF0};
  EXPECT_EQ(q.data, expected);
  ASSERT_EQ(q.state.scales.size(), 1u);
  EXPECT_EQ(q.state.scales[0], 1.0f);
  // Scalar entry agrees with the packed bytes.
  for (int i = 0; i < 32; ++i) EXPECT_EQ(ref::QuantizeNF4Value(x[i]), ref::Nibble(q.data.data(), i));
}

TEST(NF4Golden, OneUlpGapsFollowCudaNotMidpoints) {
  // y = f32 midpoint of codes 0 and 1 (bf591cd8) lies above the CUDA literal bf591cd9 -> code 1;
  // the CPU bucketize path would give 0. Same for the three other 1-ulp thresholds.
  EXPECT_EQ(ref::QuantizeNF4Value(F32FromBits(0xbf591cd8)), 1);
  EXPECT_EQ(ref::QuantizeNF4Value(F32FromBits(0x3df64862)), 8);   // midpoint below 3df64863
  EXPECT_EQ(ref::QuantizeNF4Value(F32FromBits(0x3f006d04)), 13);  // midpoint above 3f006d03
  EXPECT_EQ(ref::QuantizeNF4Value(F32FromBits(0x3f5c89da)), 15);  // midpoint above 3f5c89d9
  EXPECT_EQ(ref::QuantizeNF4Value(-1.0f), 0);
  EXPECT_EQ(ref::QuantizeNF4Value(0.0f), 7);
  EXPECT_EQ(ref::QuantizeNF4Value(-0.0f), 7);
  EXPECT_EQ(ref::QuantizeNF4Value(1.0f), 15);
  EXPECT_EQ(ref::QuantizeNF4Value(Up(1.0f)), 15);  // no clamp needed
  EXPECT_EQ(ref::QuantizeNF4Value(std::nanf("")), 0);
}

TEST(NF4Golden, ReciprocalThenMultiply) {
  // absmax 3: y = x * f32(1/3) (bitsandbytes CUDA), not x / 3. For these two x the product
  // lands one ulp above a threshold while the quotient lands on it (found offline):
  //   0x1.e8f0fep-4 * f32(1/3) = 0x1.45f6p-5 > t7 = 0x1.45f5fep-5 -> code 8 (division: 7)
  //   0x1.4acec6p+1 * f32(1/3) = 0x1.b913b4p-1 > t14 = 0x1.b913b2p-1 -> code 15 (division: 14)
  const std::vector<float> x = {3.0f, 0x1.e8f0fep-4f, 0x1.4acec6p+1f, -0x1.d4f74ep+0f};
  const QuantizedTensor q = Quantize1D(Format::kNF4, x, 32);
  // codes 15, 8, 15, 1 (the last: y = -0x1.38a4ep-1 == t1 exactly -> 1; division gives 2).
  EXPECT_EQ(q.data, (std::vector<uint8_t>{0xF8, 0xF1}));
  EXPECT_EQ(q.state.scales[0], 3.0f);
}

TEST(FP4Golden, ThresholdsSignsAndZeros) {
  std::vector<float> x = {1.0f};
  for (int i = 0; i < 7; ++i) {
    x.push_back(kFP4Thresholds[i]);
    x.push_back(Up(kFP4Thresholds[i]));
  }
  x.push_back(-1e-4f);  // tiny negative: magnitude 0 with the sign bit -> code 8 (-0)
  x.push_back(-0.0f);   // -0.0 is not < 0 -> code 0
  for (int i = 0; i < 7; ++i) {
    x.push_back(-kFP4Thresholds[i]);
    x.push_back(-Up(kFP4Thresholds[i]));
  }
  x.push_back(-1.0f);
  ASSERT_EQ(x.size(), 32u);
  const QuantizedTensor q = Quantize1D(Format::kFP4, x, 32);
  // codes 3, 0,1, 1,6, 6,7, 7,4, 4,5, 5,2, 2,3, 8, 0, 8,9, 9,14, 14,15, 15,12, 12,13, 13,10,
  //       10,11, 11
  const std::vector<uint8_t> expected = {0x30, 0x11, 0x66, 0x77, 0x44, 0x55, 0x22, 0x38,
                                         0x08, 0x99, 0xEE, 0xFF, 0xCC, 0xDD, 0xAA, 0xBB};
  EXPECT_EQ(q.data, expected);
  EXPECT_EQ(ref::QuantizeFP4Value(std::nanf("")), 0);
}

TEST(FourBitGolden, ZeroBlockWritesCodeZeroAndDequantizesToZero) {
  // CUDA rule: an all-zero block has absmax 0 -> y = 0 * inf = NaN -> code 0 for NF4 and FP4.
  std::vector<float> x(64, 0.0f);
  x[3] = -0.0f;
  for (int i = 32; i < 64; ++i) x[i] = (i % 2 == 0) ? 1.0f : -1.0f;
  for (const Format f : {Format::kNF4, Format::kFP4}) {
    const QuantizedTensor q = Quantize1D(f, x, 32);
    for (int j = 0; j < 16; ++j) EXPECT_EQ(q.data[j], 0x00) << FormatName(f) << " byte " << j;
    const uint8_t second = (f == Format::kNF4) ? 0xF0 : 0x3B;  // (+1, -1) pairs
    for (int j = 16; j < 32; ++j) EXPECT_EQ(q.data[j], second) << FormatName(f) << " byte " << j;
    EXPECT_EQ(q.state.scales, (std::vector<float>{0.0f, 1.0f}));
    const std::vector<float> out = Dequant(q);
    for (int i = 0; i < 32; ++i) EXPECT_EQ(out[i], 0.0f) << i;  // +-0
    for (int i = 32; i < 64; ++i) EXPECT_EQ(out[i], x[i]) << i;
  }
}

TEST(FourBitGolden, OddCountPadsLowNibbleWithZeroCode) {
  const std::vector<float> x = {1.0f, -1.0f, 0.0f, 1.0f, -1.0f};
  const QuantizedTensor nf4 = Quantize1D(Format::kNF4, x, 32);
  EXPECT_EQ(nf4.data, (std::vector<uint8_t>{0xF0, 0x7F, 0x07}));  // codes 15 0 7 15 0 | pad 7
  const QuantizedTensor fp4 = Quantize1D(Format::kFP4, x, 32);
  EXPECT_EQ(fp4.data, (std::vector<uint8_t>{0x3B, 0x03, 0xB0}));  // codes 3 11 0 3 11 | pad 0
  EXPECT_EQ(Dequant(nf4), x);
  EXPECT_EQ(Dequant(fp4), x);
}

TEST(FourBitGolden, TailBlockHasItsOwnAbsmax) {
  // 40 elements, block 32: the tail block (8 elements) has absmax 4 -> scale f32(1/4) exact.
  std::vector<float> x(40, 0.0f);
  x[0] = 1.0f;
  const std::vector<float> tail = {4.0f, -4.0f, 2.0f, -2.0f, 0.0f, 1.0f, -1.0f, 0.5f};
  std::copy(tail.begin(), tail.end(), x.begin() + 32);
  const QuantizedTensor nf4 = Quantize1D(Format::kNF4, x, 32);
  EXPECT_EQ(nf4.state.scales, (std::vector<float>{1.0f, 4.0f}));
  // y = 1, -1, 0.5, -0.5, 0, 0.25, -0.25, 0.125:
  // NF4 codes 15, 0, 12 (0.389 < 0.5 <= 0.5017), 2 (-0.61 < -0.5 <= -0.46), 7, 10, 4, 9.
  EXPECT_EQ(std::vector<uint8_t>(nf4.data.begin() + 16, nf4.data.end()),
            (std::vector<uint8_t>{0xF0, 0xC2, 0x7A, 0x49}));
  const QuantizedTensor fp4 = Quantize1D(Format::kFP4, x, 32);
  // FP4 magnitudes: 1 -> 0b011, 0.5 -> 0b101, 0.25 -> 0b111, 0.125 -> 0b110 (0.086 < 0.125 <= 0.208).
  EXPECT_EQ(std::vector<uint8_t>(fp4.data.begin() + 16, fp4.data.end()),
            (std::vector<uint8_t>{0x3B, 0x5D, 0x07, 0xF6}));
}

TEST(FourBitGolden, DequantizeIsCodebookTimesAbsmaxInFloat32) {
  const std::vector<float> x = Randn(1000, 7);
  for (const Format f : {Format::kNF4, Format::kFP4}) {
    const QuantizedTensor q = Quantize1D(f, x, 64);
    const std::vector<float> out = Dequant(q);
    const float* book = (f == Format::kNF4) ? kNF4Codebook : kFP4Codebook;
    for (int64_t i = 0; i < 1000; ++i) {
      const uint8_t b = q.data[i / 2];
      const uint8_t nib = (i % 2 == 0) ? (b >> 4) : (b & 0xF);
      // Independent absmax: max |x| of the block.
      float amax = 0.0f;
      for (int64_t j = (i / 64) * 64; j < std::min<int64_t>(1000, (i / 64 + 1) * 64); ++j) {
        amax = std::max(amax, std::fabs(x[j]));
      }
      ASSERT_EQ(q.state.scales[i / 64], amax);
      ASSERT_EQ(F32Bits(out[i]), F32Bits(book[nib] * amax)) << FormatName(f) << " " << i;
    }
  }
}

TEST(FourBitGolden, CodesMatchThresholdCountOracle) {
  // Independent restatement of the CUDA trees on random data at several block sizes.
  const std::vector<float> x = Randn(4096 + 77, 11);
  for (const int64_t block : {32, 256, 4096}) {
    for (const Format f : {Format::kNF4, Format::kFP4}) {
      const QuantizedTensor q = Quantize1D(f, x, block);
      for (size_t i = 0; i < x.size(); ++i) {
        const float amax = q.state.scales[i / block];
        const float y = x[i] * (1.0f / amax);
        uint8_t code = 0;
        if (f == Format::kNF4) {
          for (const float t : kNF4Thresholds) code += y > t;
        } else {
          const float a = std::fabs(y);
          for (int k = 0; k < 7; ++k) {
            if (a > kFP4Thresholds[k]) code = kFP4ThresholdCodes[k];
          }
          if (y < 0.0f) code |= 8;
        }
        ASSERT_EQ(ref::Nibble(q.data.data(), static_cast<int64_t>(i)), code)
            << FormatName(f) << " block " << block << " i " << i;
      }
    }
  }
}

// ---- 4-bit error bounds (bitsandbytes test_4bit_quant, §9) ----------------------------------
struct FourBitBound {
  int64_t block;
  double nf4_err[2], nf4_rel[2], fp4_err[2], fp4_rel[2];  // (mean, std)
};
constexpr FourBitBound kFourBitBounds[] = {
    {32, {0.067746, 0.000069}, {0.189726, 0.000304}, {0.088925, 0.000091}, {0.242443, 0.000330}},
    {64, {0.072798, 0.000074}, {0.203339, 0.000340}, {0.096543, 0.000111}, {0.260125, 0.000379}},
    {128, {0.076831, 0.000091}, {0.215237, 0.000391}, {0.102969, 0.000134}, {0.275817, 0.000433}},
    {256, {0.080337, 0.000102}, {0.226105, 0.000398}, {0.108684, 0.000182}, {0.289831, 0.000497}},
    {512, {0.083547, 0.000143}, {0.236079, 0.000544}, {0.114115, 0.000234}, {0.302881, 0.000583}},
    {1024, {0.086610, 0.000187}, {0.245370, 0.000600}, {0.119333, 0.000320}, {0.315000, 0.000757}},
    {2048, {0.089592, 0.000251}, {0.254163, 0.000747}, {0.124556, 0.000455}, {0.326607, 0.000955}},
    {4096, {0.092547, 0.000360}, {0.262473, 0.000999}, {0.129536, 0.000612}, {0.337169, 0.001239}},
};

class FourBitBoundsTest : public ::testing::TestWithParam<DType> {};

TEST_P(FourBitBoundsTest, RandnWithinMeanPlusSevenStd) {
  const DType dtype = GetParam();
  const DenseTensor a(Randn(1024 * 1024, 1234), dtype, {1024, 1024});
  for (const FourBitBound& b : kFourBitBounds) {
    for (const Format f : {Format::kNF4, Format::kFP4}) {
      QuantizeOptions o;
      o.block_size = b.block;
      const QuantizedTensor q = Quantize(f, a.view(), o);
      std::vector<uint8_t> out_bytes(1024 * 1024 * DTypeSize(dtype));
      Dequantize(q, TensorView{out_bytes.data(), dtype, {1024, 1024}});
      const BnbError e = MeasureBnbError(a.values(), testing::WidenWithEigen(out_bytes, dtype));
      const double* err = (f == Format::kNF4) ? b.nf4_err : b.fp4_err;
      const double* rel = (f == Format::kNF4) ? b.nf4_rel : b.fp4_rel;
      EXPECT_LT(e.err, err[0] + 7 * err[1]) << FormatName(f) << " B=" << b.block;
      EXPECT_LT(e.relerr, rel[0] + 7 * rel[1]) << FormatName(f) << " B=" << b.block;
      // And not suspiciously better than bitsandbytes' mean (a broken metric would be).
      EXPECT_GT(e.err, err[0] * 0.95) << FormatName(f) << " B=" << b.block;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, FourBitBoundsTest,
                         ::testing::Values(DType::kF32, DType::kF16, DType::kBF16),
                         [](const auto& info) { return std::string(DTypeName(info.param)); });

// ---- double quantization ----------------------------------------------------------------------

TEST(DoubleQuant, CompressedStatsBounds) {
  // bitsandbytes test_4bit_compressed_stats: err < 0.11, relerr < 0.28 (eps 1e-15).
  for (const DType dtype : {DType::kF32, DType::kF16}) {
    const DenseTensor a(Randn(1024 * 1024, 99), dtype, {1024, 1024});
    for (const int64_t block : {32, 64, 128}) {
      for (const Format f : {Format::kNF4, Format::kFP4}) {
        for (const bool dq : {false, true}) {
          const QuantizedTensor q = Quantize4bit(a.view(), f, block, dq);
          EXPECT_EQ(q.state.nested.has_value(), dq);
          const BnbError e = MeasureBnbError(a.values(), Dequant(q), 1e-15);
          EXPECT_LT(e.err, 0.11) << FormatName(f) << " B=" << block << " dq=" << dq;
          EXPECT_LT(e.relerr, 0.28) << FormatName(f) << " B=" << block << " dq=" << dq;
        }
      }
    }
  }
}

// Brute-force nearest entry of a sorted map by float32 midpoints; a value exactly on a midpoint
// goes to the even index (bitsandbytes CUDA dQuantize, §2.2). NaN -> 0.
uint8_t NearestDynamicCode(const float* code, float y) {
  if (!(y > code[0])) return 0;
  if (y >= code[255]) return 255;
  int i = 0;
  while (!(code[i] <= y && y <= code[i + 1])) ++i;
  const float mid = (code[i] + code[i + 1]) * 0.5f;
  if (y < mid) return static_cast<uint8_t>(i);
  if (y > mid) return static_cast<uint8_t>(i + 1);
  return static_cast<uint8_t>((i % 2 == 0) ? i : i + 1);
}

TEST(DoubleQuant, ResolveScalesMatchesReconstructionFormula) {
  const std::vector<float> x = Randn(300 * 1024 + 5, 3);  // 4801 blocks of 64: 19 nested blocks
  const QuantizedTensor plain = Quantize1D(Format::kNF4, x, 64, false);
  const QuantizedTensor dq = Quantize1D(Format::kNF4, x, 64, true);
  ASSERT_TRUE(dq.state.nested.has_value());
  EXPECT_TRUE(dq.state.scales.empty());
  EXPECT_EQ(dq.data, plain.data);  // payload codes do not depend on how absmax is stored
  const NestedState& ns = *dq.state.nested;
  const std::vector<float>& absmax = plain.state.scales;
  const size_t nb = absmax.size();
  ASSERT_EQ(ns.codes.size(), nb);
  EXPECT_EQ(ns.block_size, 256);
  ASSERT_EQ(ns.absmax.size(), (nb + 255) / 256);
  for (int i = 0; i < 256; ++i) ASSERT_EQ(F32Bits(ns.code[i]), F32Bits(kDynamicMap[i]));
  // offset = mean of the absmax.
  double sum = 0;
  for (const float v : absmax) sum += v;
  EXPECT_NEAR(ns.offset, sum / static_cast<double>(nb), 1e-6);
  // Nested absmax and codes: blockwise-8 of (absmax - offset) with reciprocal scaling.
  for (size_t j = 0; j < ns.absmax.size(); ++j) {
    float m = 0.0f;
    for (size_t i = j * 256; i < std::min(nb, (j + 1) * 256); ++i) {
      m = std::max(m, std::fabs(absmax[i] - ns.offset));
    }
    ASSERT_EQ(ns.absmax[j], m) << j;
  }
  for (size_t i = 0; i < nb; ++i) {
    const float y = (absmax[i] - ns.offset) * (1.0f / ns.absmax[i / 256]);
    ASSERT_EQ(ns.codes[i], NearestDynamicCode(kDynamicMap, y)) << i;
  }
  // bnb-formats.md §3: absmax[i] = f32(f32(code2[q[i]] * nested_absmax[i / 256]) + offset).
  const std::vector<float> resolved = ResolveScales(dq.state);
  ASSERT_EQ(resolved.size(), nb);
  // Nearest rounding into the dynamic map errs by at most half its widest gap, times the nested
  // absmax (the map spans [-1, 1]); that bounds how far a resolved absmax may sit from the original.
  double max_gap = 0.0;
  for (int c = 1; c < 256; ++c) {
    max_gap = std::max(max_gap, static_cast<double>(kDynamicMap[c]) - kDynamicMap[c - 1]);
  }
  for (size_t i = 0; i < nb; ++i) {
    const float scaled = ns.code[ns.codes[i]] * ns.absmax[i / 256];
    const float expected = scaled + ns.offset;
    ASSERT_EQ(F32Bits(resolved[i]), F32Bits(expected)) << i;
    EXPECT_LE(std::fabs(static_cast<double>(resolved[i]) - absmax[i]),
              0.5 * max_gap * ns.absmax[i / 256] * (1.0 + 1e-5) + 1e-7)
        << i;
  }
  // Dequantize uses the resolved absmax.
  const std::vector<float> out = Dequant(dq);
  for (size_t i = 0; i < x.size(); ++i) {
    ASSERT_EQ(F32Bits(out[i]), F32Bits(kNF4Codebook[ref::Nibble(dq.data.data(), i)] * resolved[i / 64]));
  }
}

TEST(DoubleQuant, ExplicitNestedOffsetIsUsedVerbatim) {
  const std::vector<float> x = Randn(64 * 600, 5);
  QuantizeOptions o;
  o.block_size = 64;
  o.double_quant = true;
  o.nested_offset = 0x1.5f0e6ep-1f;  // an arbitrary float, e.g. taken from a bnb checkpoint
  const QuantizedTensor q =
      Quantize(Format::kFP4, ConstTensorView{x.data(), DType::kF32, {600, 64}}, o);
  ASSERT_TRUE(q.state.nested.has_value());
  EXPECT_EQ(F32Bits(q.state.nested->offset), F32Bits(o.nested_offset));
  const QuantizedTensor plain = Quantize1D(Format::kFP4, x, 64);
  for (size_t i = 0; i < 600; ++i) {
    const float y = (plain.state.scales[i] - o.nested_offset) * (1.0f / q.state.nested->absmax[i / 256]);
    ASSERT_EQ(q.state.nested->codes[i], NearestDynamicCode(kDynamicMap, y)) << i;
  }
}

// ---- dynamic 8-bit ----------------------------------------------------------------------------

TEST(Dynamic8, ScalarMatchesBruteForceOnCodesMidpointsAndNeighbours) {
  const float* code = kDynamicMap;
  std::vector<float> probes = {-1.0f, 1.0f, Up(1.0f), -Up(1.0f), 0.0f, -0.0f, -2.0f, 2.0f};
  for (int i = 0; i < 256; ++i) {
    probes.push_back(code[i]);
    probes.push_back(Up(code[i]));
    probes.push_back(std::nextafter(code[i], -kInf));
  }
  for (int i = 0; i < 255; ++i) {
    const float mid = (code[i] + code[i + 1]) * 0.5f;
    probes.push_back(mid);
    probes.push_back(Up(mid));
    probes.push_back(std::nextafter(mid, -kInf));
  }
  std::mt19937 gen(17);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (int i = 0; i < 200000; ++i) probes.push_back(u(gen));
  for (const float y : probes) {
    ASSERT_EQ(ref::QuantizeDynamicValue(code, y), NearestDynamicCode(code, y)) << std::hexfloat << y;
  }
  EXPECT_EQ(ref::QuantizeDynamicValue(code, std::nanf("")), 0);
}

TEST(Dynamic8, MidpointTiesGoToEvenIndex) {
  // Hand-picked: the f32 midpoint between codes k and k+1 maps to whichever is even.
  const float* c = kDynamicMap;
  EXPECT_EQ(ref::QuantizeDynamicValue(c, (c[127] + c[128]) * 0.5f), 128);
  EXPECT_EQ(ref::QuantizeDynamicValue(c, (c[128] + c[129]) * 0.5f), 128);
  EXPECT_EQ(ref::QuantizeDynamicValue(c, (c[129] + c[130]) * 0.5f), 130);
  EXPECT_EQ(ref::QuantizeDynamicValue(c, (c[126] + c[127]) * 0.5f), 126);
  EXPECT_EQ(ref::QuantizeDynamicValue(c, (c[253] + c[254]) * 0.5f), 254);
  EXPECT_EQ(ref::QuantizeDynamicValue(c, (c[254] + c[255]) * 0.5f), 254);
  EXPECT_EQ(ref::QuantizeDynamicValue(c, (c[0] + c[1]) * 0.5f), 0);
  EXPECT_EQ(ref::QuantizeDynamicValue(c, (c[1] + c[2]) * 0.5f), 2);
  EXPECT_EQ(ref::QuantizeDynamicValue(c, -1.0f), 0);  // below code[0]: no clamp needed
}

TEST(Dynamic8, BlockwiseCodesAbsmaxZeroBlockAndDequant) {
  std::vector<float> x = Randn(3 * 256 + 40, 21);
  std::fill(x.begin() + 256, x.begin() + 512, 0.0f);  // block 1 all zero
  const QuantizedTensor q = Quantize1D(Format::kBlockwise8, x, 256);
  ASSERT_EQ(q.state.scales.size(), 4u);
  EXPECT_EQ(q.state.scales[1], 0.0f);
  EXPECT_EQ(q.state.codebook.size(), 256u);
  const std::vector<float> out = Dequant(q);
  for (size_t i = 0; i < x.size(); ++i) {
    const size_t b = i / 256;
    float amax = 0.0f;
    for (size_t j = b * 256; j < std::min(x.size(), (b + 1) * 256); ++j) amax = std::max(amax, std::fabs(x[j]));
    ASSERT_EQ(q.state.scales[b], amax);
    const uint8_t expected = amax > 0.0f ? NearestDynamicCode(kDynamicMap, x[i] * (1.0f / amax)) : 0;
    ASSERT_EQ(q.data[i], expected) << i;
    ASSERT_EQ(F32Bits(out[i]), F32Bits(kDynamicMap[q.data[i]] * amax)) << i;
  }
}

TEST(Dynamic8, BitsandbytesBoundsRandnAndRand) {
  const std::vector<float> randn = Randn(1024 * 1024, 8);
  std::vector<float> rand(1024 * 1024);
  std::mt19937 gen(9);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  for (float& f : rand) f = u(gen);
  for (const int64_t block : {64, 128, 256, 512, 1024, 2048, 4096}) {
    for (const bool nested : {false, true}) {
      const auto qn = QuantizeBlockwise(ConstTensorView{randn.data(), DType::kF32, {1024, 1024}},
                                        block, nested);
      const BnbError en = MeasureBnbError(randn, Dequant(qn));
      EXPECT_LT(en.err, 0.011) << "B=" << block << " nested=" << nested;
      EXPECT_LT(en.relerr, 0.018) << "B=" << block << " nested=" << nested;
      const auto qr = QuantizeBlockwise(ConstTensorView{rand.data(), DType::kF32, {1024, 1024}},
                                        block, nested);
      const BnbError er = MeasureBnbError(rand, Dequant(qr));
      EXPECT_LT(er.err, 0.0036) << "rand B=" << block << " nested=" << nested;
      EXPECT_LT(er.relerr, 0.015) << "rand B=" << block << " nested=" << nested;
      if (nested) {
        // bitsandbytes nested=True: the absmax is compressed with the same block size.
        ASSERT_TRUE(qn.state.nested.has_value());
        EXPECT_EQ(qn.state.nested->block_size, block);
      }
    }
  }
}

// ---- int8 (LLM.int8 row-wise) ---------------------------------------------------------------

TEST(Int8, RowwiseCodesScbAndDequantFormula) {
  const int64_t rows = 37, cols = 301;
  std::vector<float> x = Randn(rows * cols, 31);
  std::fill(x.begin() + 5 * cols, x.begin() + 6 * cols, 0.0f);  // a zero row
  for (const Granularity g : {Granularity::kRow, Granularity::kTensor}) {
    const QuantizedTensor q = QuantizeInt8(ConstTensorView{x.data(), DType::kF32, {rows, cols}}, g);
    const int64_t groups = (g == Granularity::kRow) ? rows : 1;
    const int64_t len = rows * cols / groups;
    ASSERT_EQ(q.state.scales.size(), static_cast<size_t>(groups));
    const std::vector<float> out = Dequant(q);
    for (int64_t s = 0; s < groups; ++s) {
      float amax = 0.0f;
      for (int64_t i = s * len; i < (s + 1) * len; ++i) amax = std::max(amax, std::fabs(x[i]));
      ASSERT_EQ(q.state.scales[s], amax) << "SCB is the absmax itself";
      const float mul = amax > 0.0f ? 127.0f / amax : 0.0f;
      for (int64_t i = s * len; i < (s + 1) * len; ++i) {
        const int8_t code = static_cast<int8_t>(q.data[i]);
        ASSERT_EQ(code, static_cast<int8_t>(RoundHalfEven(x[i] * mul))) << i;
        const float deq = (static_cast<float>(code) * amax) * 0x1.020408p-7f;
        ASSERT_EQ(F32Bits(out[i]), F32Bits(deq)) << i;
        if (amax > 0.0f) {
          ASSERT_LE(std::fabs(out[i] - x[i]), amax / 254.0f * 1.0001f + 1e-7f) << i;
        }
      }
    }
  }
}

TEST(Int8, TiesRoundHalfToEven) {
  // absmax 127 -> mul = 1 exactly, so x = k + 0.5 is an exact tie.
  const std::vector<float> x = {127.0f, 0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 126.5f};
  const QuantizedTensor q = QuantizeInt8(ConstTensorView{x.data(), DType::kF32, {1, 8}});
  const std::vector<int8_t> expected = {127, 0, 2, 2, 0, -2, -2, 126};
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(static_cast<int8_t>(q.data[i]), expected[i]) << i;
}

TEST(Int8, VectorwiseThresholdOutliers) {
  const int64_t rows = 6, cols = 50;
  std::vector<float> x = Randn(rows * cols, 41);
  x[1 * cols + 9] = 8.0f;    // outlier in column 9
  x[4 * cols + 3] = -7.0f;   // outlier in column 3
  x[2 * cols + 40] = 6.0f;   // exactly the threshold counts as an outlier (|x| >= threshold)
  const float threshold = 6.0f;
  const Int8VectorwiseResult r =
      Int8VectorwiseQuant(ConstTensorView{x.data(), DType::kF32, {rows, cols}}, threshold);
  EXPECT_EQ(r.outlier_cols, (std::vector<int64_t>{3, 9, 40}));
  const auto is_outlier_col = [&](int64_t c) { return c == 3 || c == 9 || c == 40; };
  for (int64_t i = 0; i < rows; ++i) {
    float amax = 0.0f;  // over non-outlier ELEMENTS (other rows' outlier columns still count)
    for (int64_t c = 0; c < cols; ++c) {
      const float v = std::fabs(x[i * cols + c]);
      if (v < threshold) amax = std::max(amax, v);
    }
    ASSERT_EQ(r.row_stats[i], amax) << i;
    for (int64_t c = 0; c < cols; ++c) {
      const int8_t expected = is_outlier_col(c)
                                  ? 0
                                  : static_cast<int8_t>(RoundHalfEven(x[i * cols + c] * (127.0f / amax)));
      ASSERT_EQ(r.codes[i * cols + c], expected) << i << "," << c;
    }
  }
  // One row: only the outlier elements themselves are zeroed.
  const std::vector<float> row = {1.0f, 10.0f, -2.0f, 0.5f};
  const Int8VectorwiseResult r1 =
      Int8VectorwiseQuant(ConstTensorView{row.data(), DType::kF32, {1, 4}}, threshold);
  EXPECT_EQ(r1.row_stats, (std::vector<float>{2.0f}));
  EXPECT_EQ(r1.codes, (std::vector<int8_t>{64, 0, -127, 32}));  // 63.5 -> 64, 31.75 -> 32
  EXPECT_EQ(r1.outlier_cols, (std::vector<int64_t>{1}));
  // threshold 0: plain int8_vectorwise_quant, equals QuantizeInt8 row-wise.
  const Int8VectorwiseResult r0 =
      Int8VectorwiseQuant(ConstTensorView{x.data(), DType::kF32, {rows, cols}}, 0.0f);
  const QuantizedTensor q = QuantizeInt8(ConstTensorView{x.data(), DType::kF32, {rows, cols}});
  EXPECT_TRUE(r0.outlier_cols.empty());
  EXPECT_EQ(r0.row_stats, q.state.scales);
  for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(r0.codes[i], static_cast<int8_t>(q.data[i]));
}

// ---- int8 asymmetric, int4 symmetric / asymmetric -------------------------------------------

// Independent asymmetric parameters: range widened to include 0; scale = (max - min) / qmax,
// zero = clamp(round_half_even(-min / scale), 0, qmax).
void AsymParams(const float* x, int64_t n, int qmax, float* scale, int* zero) {
  float mn = 0.0f, mx = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    mn = std::min(mn, x[i]);
    mx = std::max(mx, x[i]);
  }
  *scale = (mx - mn) / static_cast<float>(qmax);
  *zero = *scale == 0.0f ? 0 : static_cast<int>(std::clamp(RoundHalfEven(-mn / *scale), 0.0, double(qmax)));
}

TEST(Int8Asym, RowAndTensorAgainstScalarFormula) {
  const int64_t rows = 9, cols = 77;
  std::vector<float> x = Randn(rows * cols, 51);
  for (int64_t c = 0; c < cols; ++c) x[2 * cols + c] = std::fabs(x[2 * cols + c]) + 0.25f;  // min > 0
  for (int64_t c = 0; c < cols; ++c) x[3 * cols + c] = -std::fabs(x[3 * cols + c]);        // max <= 0
  std::fill(x.begin() + 4 * cols, x.begin() + 5 * cols, 0.0f);                            // zero row
  for (const Granularity g : {Granularity::kRow, Granularity::kTensor}) {
    QuantizeOptions o;
    o.granularity = g;
    const QuantizedTensor q = Quantize(Format::kInt8Asym, ConstTensorView{x.data(), DType::kF32, {rows, cols}}, o);
    const int64_t groups = g == Granularity::kRow ? rows : 1, len = rows * cols / groups;
    const std::vector<float> out = Dequant(q);
    for (int64_t s = 0; s < groups; ++s) {
      float scale;
      int zero;
      AsymParams(&x[s * len], len, 255, &scale, &zero);
      ASSERT_EQ(q.state.scales[s], scale) << s;
      ASSERT_EQ(q.state.zero_points[s], zero) << s;
      for (int64_t i = s * len; i < (s + 1) * len; ++i) {
        const int expected =
            scale == 0.0f ? zero : static_cast<int>(std::clamp(RoundHalfEven(x[i] / scale) + zero, 0.0, 255.0));
        ASSERT_EQ(q.data[i], expected) << i;
        ASSERT_EQ(F32Bits(out[i]), F32Bits(static_cast<float>(q.data[i] - zero) * scale)) << i;
        // Half a step, or up to a whole step at the range ends where the rounded zero point
        // pushes a code past qmax and it is clamped.
        ASSERT_LE(std::fabs(out[i] - x[i]), 1.0001f * scale + 1e-7f) << i;
      }
    }
  }
}

class Int4Test : public ::testing::TestWithParam<bool> {};

TEST_P(Int4Test, GroupsAlongRowsWithPartialLastGroup) {
  const bool symmetric = GetParam();
  for (const auto& [rows, cols, group] :
       {std::tuple<int64_t, int64_t, int64_t>{5, 172, 32}, {3, 171, 32}, {1, 45, 64}, {4, 256, 128}}) {
    const std::vector<float> x = Randn(rows * cols, static_cast<uint32_t>(61 + cols));
    const QuantizedTensor q =
        QuantizeInt4(ConstTensorView{x.data(), DType::kF32, {rows, cols}}, group, symmetric);
    const int64_t per_row = (cols + group - 1) / group;
    ASSERT_EQ(q.state.scales.size(), static_cast<size_t>(rows * per_row));
    ASSERT_EQ(q.data.size(), static_cast<size_t>((rows * cols + 1) / 2));
    const std::vector<float> out = Dequant(q);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t g = 0; g < per_row; ++g) {
        const int64_t begin = r * cols + g * group, end = std::min(begin + group, (r + 1) * cols);
        const int64_t s = r * per_row + g;
        float scale;
        int zero;
        if (symmetric) {
          float amax = 0.0f;
          for (int64_t i = begin; i < end; ++i) amax = std::max(amax, std::fabs(x[i]));
          scale = amax / 7.0f;
          zero = 8;
        } else {
          AsymParams(&x[begin], end - begin, 15, &scale, &zero);
          ASSERT_EQ(q.state.zero_points[s], zero);
        }
        ASSERT_EQ(q.state.scales[s], scale) << r << "," << g;
        for (int64_t i = begin; i < end; ++i) {
          const double lo = symmetric ? -7 : -zero, hi = symmetric ? 7 : 15 - zero;
          const int expected = static_cast<int>(std::clamp(RoundHalfEven(x[i] / scale), lo, hi)) + zero;
          const uint8_t nib = (i % 2 == 0) ? (q.data[i / 2] >> 4) : (q.data[i / 2] & 0xF);
          ASSERT_EQ(nib, expected) << "r " << r << " i " << i;
          ASSERT_EQ(F32Bits(out[i]), F32Bits(static_cast<float>(nib - zero) * scale)) << i;
          ASSERT_LE(std::fabs(out[i] - x[i]), (symmetric ? 0.5001f : 1.0001f) * scale + 1e-7f) << i;
        }
      }
    }
    if ((rows * cols) % 2 == 1) {
      // Odd count: the final low nibble holds the code of 0.0 (sym: 8; asym: the last zero point).
      const int pad = symmetric ? 8 : q.state.zero_points.back();
      EXPECT_EQ(q.data.back() & 0xF, pad);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(SymAsym, Int4Test, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "sym" : "asym"; });

}  // namespace
}  // namespace lowbit
