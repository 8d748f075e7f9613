// Table facts: every codebook, threshold and map constant of format_layout.h equals the bit
// patterns in bitsandbytes (shared/reference/bnb-formats.md §1.1, §1.2, §1.3, §2.1), plus the
// format table's invariants. The hex below is typed from the reference: it is the oracle.
#include <cmath>
#include <cstdint>
#include <string>

#include <gtest/gtest.h>

#include "lowbit/format.h"
#include "lowbit/quantize.h"

namespace lowbit {
namespace {

uint32_t Bits(float f) { return F32Bits(f); }

// §1.1: NF4 codebook, code 0..15.
constexpr uint32_t kNF4Hex[16] = {
    0xbf800000, 0xbf3239b1, 0xbf066b30, 0xbeca32a0, 0xbe91a24d, 0xbe3d353f, 0xbdba7871, 0x00000000,
    0x3da2faff, 0x3e24cae3, 0x3e7c04dd, 0x3ead033a, 0x3ee1a4b8, 0x3f1007ab, 0x3f3913b3, 0x3f800000};

// §1.3 step 4: the CUDA decision-tree literals, ascending.
constexpr uint32_t kNF4ThresholdHex[15] = {
    0xbf591cd9, 0xbf1c5270, 0xbeeb8480, 0xbeadea76, 0xbe703cec, 0xbe0d38bc, 0xbd3a7871, 0x3d22faff,
    0x3df64863, 0x3e5067e0, 0x3e9582d4, 0x3ec753f9, 0x3f006d03, 0x3f248daf, 0x3f5c89d9};

// §1.2: FP4 magnitudes for bits 0b000..0b111 (raw / 12 in float32); codes 8..15 negate them.
constexpr uint32_t kFP4MagnitudeHex[8] = {0x00000000, 0x3baaaaab, 0x3f2aaaab, 0x3f800000,
                                          0x3eaaaaab, 0x3f000000, 0x3e2aaaab, 0x3e800000};
// §1.3 step 4: FP4 thresholds on |y| and the magnitude code chosen above each.
constexpr uint32_t kFP4ThresholdHex[7] = {0x3b2aaab9, 0x3db00000, 0x3e555555, 0x3e955555,
                                          0x3ed55556, 0x3f155550, 0x3f555555};
constexpr uint8_t kFP4ThresholdCode[7] = {0b001, 0b110, 0b111, 0b100, 0b101, 0b010, 0b011};

// §2.1: signed dynamic map, positive half code[128..254]; code[255] = 1.0, code[127] = 0.
constexpr uint32_t kDynamicPositiveHex[127] = {
    0x3513a3b7, 0x365a1a94, 0x370205ff, 0x37b24206, 0x38378034, 0x388aefb3, 0x38ba1f4b, 0x3923d70b,
    0x398ce705, 0x39c7e283, 0x3a016f01, 0x3a1eecc1, 0x3a3c6a80, 0x3a59e83e, 0x3a7765ff, 0x3aa7ef9d,
    0x3af1a9fc, 0x3b1db22d, 0x3b428f5c, 0x3b676c8a, 0x3b8624dd, 0x3b989374, 0x3bab020d, 0x3bbd70a4,
    0x3bcfdf3b, 0x3be24dd3, 0x3bf4bc6a, 0x3c039581, 0x3c0ccccd, 0x3c160418, 0x3c1f3b64, 0x3c3ae148,
    0x3c68f5c3, 0x3c8b851f, 0x3ca28f5d, 0x3cb9999a, 0x3cd0a3d7, 0x3ce7ae15, 0x3cfeb852, 0x3d0ae148,
    0x3d166667, 0x3d21eb85, 0x3d2d70a3, 0x3d38f5c3, 0x3d447ae1, 0x3d500000, 0x3d5b851f, 0x3d670a3d,
    0x3d728f5d, 0x3d7e147b, 0x3d84cccd, 0x3d8a8f5d, 0x3d9051eb, 0x3d96147b, 0x3d9bd70a, 0x3da1999a,
    0x3da75c2a, 0x3dad1eb8, 0x3db2e148, 0x3db8a3d7, 0x3dbe6667, 0x3dc428f7, 0x3dc9eb85, 0x3ddb3334,
    0x3df80000, 0x3e0a6666, 0x3e18cccd, 0x3e273333, 0x3e35999a, 0x3e440000, 0x3e526666, 0x3e60cccd,
    0x3e6f3333, 0x3e7d9999, 0x3e860000, 0x3e8d3334, 0x3e946666, 0x3e9b999a, 0x3ea2cccc, 0x3eaa0000,
    0x3eb13333, 0x3eb86666, 0x3ebf999a, 0x3ec6cccc, 0x3ece0000, 0x3ed53333, 0x3edc6666, 0x3ee3999a,
    0x3eeacccc, 0x3ef20000, 0x3ef93332, 0x3f003333, 0x3f03cccc, 0x3f076666, 0x3f0b0000, 0x3f0e999a,
    0x3f123334, 0x3f15cccd, 0x3f196666, 0x3f1d0000, 0x3f20999a, 0x3f243334, 0x3f27cccd, 0x3f2b6666,
    0x3f2f0000, 0x3f32999a, 0x3f363334, 0x3f39cccd, 0x3f3d6666, 0x3f410000, 0x3f44999a, 0x3f483333,
    0x3f4bcccd, 0x3f4f6666, 0x3f530000, 0x3f56999a, 0x3f5a3333, 0x3f5dcccd, 0x3f616666, 0x3f650000,
    0x3f68999a, 0x3f6c3333, 0x3f6fcccd, 0x3f736666, 0x3f770000, 0x3f7a999a, 0x3f7e3333};

TEST(NF4Table, CodebookBitsMatchBitsandbytes) {
  for (int c = 0; c < 16; ++c) EXPECT_EQ(Bits(kNF4Codebook[c]), kNF4Hex[c]) << "code " << c;
  EXPECT_EQ(kNF4Codebook[LOWBIT_NF4_ZERO_CODE], 0.0f);
  EXPECT_FALSE(std::signbit(kNF4Codebook[LOWBIT_NF4_ZERO_CODE]));
}

TEST(NF4Table, ThresholdBitsMatchCudaLiterals) {
  for (int i = 0; i < 15; ++i) {
    EXPECT_EQ(Bits(kNF4Thresholds[i]), kNF4ThresholdHex[i]) << "threshold " << i;
  }
}

TEST(NF4Table, ThresholdsAreMidpointsExceptFourOneUlpOff) {
  // Eleven thresholds are the float32 midpoints of adjacent codes; entries 0, 8, 12 and 14 sit
  // exactly 1 ulp away (bnb-formats.md §1.3): this is why the CPU bucketize path differs.
  for (int i = 0; i < 15; ++i) {
    const float mid = (kNF4Codebook[i] + kNF4Codebook[i + 1]) / 2.0f;
    const int64_t ulps = static_cast<int64_t>(Bits(kNF4Thresholds[i])) - Bits(mid);
    if (i == 0 || i == 8 || i == 12 || i == 14) {
      EXPECT_EQ(std::llabs(ulps), 1) << "threshold " << i;
    } else {
      EXPECT_EQ(ulps, 0) << "threshold " << i;
    }
    EXPECT_GT(kNF4Thresholds[i], kNF4Codebook[i]);
    EXPECT_LT(kNF4Thresholds[i], kNF4Codebook[i + 1]);
  }
}

TEST(FP4Table, CodebookBitsMatchBitsandbytes) {
  for (int c = 0; c < 8; ++c) {
    EXPECT_EQ(Bits(kFP4Codebook[c]), kFP4MagnitudeHex[c]) << "code " << c;
    EXPECT_EQ(Bits(kFP4Codebook[c + 8]), kFP4MagnitudeHex[c] | 0x80000000u) << "code " << c + 8;
  }
  EXPECT_EQ(LOWBIT_FP4_SIGN_BIT, 0x8);
  EXPECT_EQ(kFP4Codebook[LOWBIT_FP4_ZERO_CODE], 0.0f);
}

TEST(FP4Table, RawValuesOverTwelve) {
  // get_4bit_type("fp4"): raw [0, 0.0625, 8, 12, 4, 6, 2, 3] / 12 in float32.
  const float raw[8] = {0.0f, 0.0625f, 8.0f, 12.0f, 4.0f, 6.0f, 2.0f, 3.0f};
  for (int c = 0; c < 8; ++c) EXPECT_EQ(Bits(kFP4Codebook[c]), Bits(raw[c] / 12.0f)) << c;
}

TEST(FP4Table, ThresholdsAndCodesMatchCudaTree) {
  for (int i = 0; i < 7; ++i) {
    EXPECT_EQ(Bits(kFP4Thresholds[i]), kFP4ThresholdHex[i]) << "threshold " << i;
    EXPECT_EQ(kFP4ThresholdCodes[i], kFP4ThresholdCode[i]) << "threshold " << i;
  }
  // The magnitude chosen above each threshold increases with it.
  for (int i = 1; i < 7; ++i) {
    EXPECT_GT(kFP4Codebook[kFP4ThresholdCodes[i]], kFP4Codebook[kFP4ThresholdCodes[i - 1]]);
  }
}

TEST(DynamicMap, AllEntriesMatchBitsandbytes) {
  for (int j = 0; j < 127; ++j) {
    EXPECT_EQ(Bits(kDynamicMap[128 + j]), kDynamicPositiveHex[j]) << "code " << 128 + j;
    EXPECT_EQ(Bits(kDynamicMap[126 - j]), kDynamicPositiveHex[j] | 0x80000000u)
        << "code " << 126 - j;
  }
  EXPECT_EQ(Bits(kDynamicMap[127]), 0u);
  EXPECT_EQ(Bits(kDynamicMap[255]), 0x3f800000u);
  EXPECT_EQ(Bits(kDynamicMap[0]), 0xbf7e3333u);  // -0.99296875: -1 is not representable
  EXPECT_EQ(LOWBIT_DYNAMIC_MAP_ZERO_CODE, 127);
}

TEST(DynamicMap, Properties) {
  for (int i = 0; i < 255; ++i) EXPECT_LT(kDynamicMap[i], kDynamicMap[i + 1]) << i;
  for (int j = 0; j <= 126; ++j) EXPECT_EQ(kDynamicMap[128 + j], -kDynamicMap[126 - j]) << j;
  EXPECT_EQ(kDynamicMap[127], 0.0f);
  EXPECT_EQ(kDynamicMap[255], 1.0f);
  EXPECT_FLOAT_EQ(kDynamicMap[128], 5.5e-7f);  // smallest magnitude
}

TEST(FormatTable, NamesRoundTripAndAreStable) {
  const char* const kNames[kNumFormats] = {"f32",  "f16", "bf16", "int8",     "int8_asym", "int4",
                                           "int4_asym", "nf4", "fp4", "fp8_e4m3", "fp8_e5m2",
                                           "blockwise8", "mxfp4", "nvfp4", "iq4_nl"};
  for (int i = 0; i < kNumFormats; ++i) {
    const Format f = static_cast<Format>(i);
    EXPECT_STREQ(FormatName(f), kNames[i]);
    EXPECT_EQ(GetFormatInfo(f).format, f);
    EXPECT_EQ(FormatFromName(kNames[i]), f);
  }
  EXPECT_STREQ(FormatName(static_cast<Format>(kNumFormats)), "unknown");
  try {
    FormatFromName("nf5");
    FAIL() << "expected Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), Status::kUnsupportedFormat);
    EXPECT_NE(e.message().find("nf5"), std::string::npos);
  }
}

TEST(FormatTable, PayloadBytesAndCodebooks) {
  EXPECT_EQ(PayloadBytes(Format::kNF4, 7), 4);
  EXPECT_EQ(PayloadBytes(Format::kInt4Asym, 8), 4);
  EXPECT_EQ(PayloadBytes(Format::kInt8, 7), 7);
  EXPECT_EQ(PayloadBytes(Format::kFP8E5M2, 7), 7);
  EXPECT_EQ(PayloadBytes(Format::kBF16, 7), 14);
  EXPECT_EQ(PayloadBytes(Format::kF32, 7), 28);
  EXPECT_EQ(GetFormatInfo(Format::kNF4).codebook, kNF4Codebook);
  EXPECT_EQ(GetFormatInfo(Format::kFP4).codebook, kFP4Codebook);
  EXPECT_EQ(GetFormatInfo(Format::kBlockwise8).codebook, kDynamicMap);
  EXPECT_EQ(GetFormatInfo(Format::kBlockwise8).codebook_size, 256);
  EXPECT_EQ(GetFormatInfo(Format::kNF4).default_block, 64);
  EXPECT_EQ(GetFormatInfo(Format::kBlockwise8).default_block, 4096);
  for (int i = 0; i < kNumFormats; ++i) {
    const FormatInfo& info = GetFormatInfo(static_cast<Format>(i));
    EXPECT_EQ(IsFourBit(info.format), info.code_bits == 4) << info.name;
    EXPECT_EQ(info.reference_quantize == nullptr, IsDense(info.format)) << info.name;
    EXPECT_EQ(info.supports_double_quant, info.format == Format::kNF4 ||
                                              info.format == Format::kFP4 ||
                                              info.format == Format::kBlockwise8)
        << info.name;
  }
}

TEST(FormatLayout, VersionAndFp8Constants) {
  EXPECT_GE(LOWBIT_FORMAT_VERSION, 1);
  EXPECT_EQ(LOWBIT_FP8_E4M3_MAX, 448.0f);
  EXPECT_EQ(LOWBIT_FP8_E5M2_MAX, 57344.0f);
  EXPECT_EQ(Bits(LOWBIT_INT8_INV_QMAX), Bits(static_cast<float>(1.0 / 127.0)));
}

}  // namespace
}  // namespace lowbit
