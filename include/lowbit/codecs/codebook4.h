// lowbit/codecs/codebook4.h — bitsandbytes' NF4 and FP4: 16-entry codebooks scaled by the absmax
// of flat blocks, bit-exact with bitsandbytes' CUDA quantizer (docs/formats.md).
#ifndef LOWBIT_CODECS_CODEBOOK4_H_
#define LOWBIT_CODECS_CODEBOOK4_H_

#include "lowbit/codecs/codec.h"

namespace lowbit {

// Shared by nf4 and fp4: block = flat elements (may span rows), statistic = absmax,
// y = x * f32(1 / absmax) (two roundings, as bitsandbytes), code = Derived::EncodeScaled(y).
template <class Derived>
struct Codebook4Codec : CodecDefaults {
  static constexpr int kCodeBits = 4;
  static constexpr DType kDenseDType = DType::kU8;
  static constexpr Granularity kDefaultGranularity = Granularity::kBlock;
  static constexpr uint32_t kGranularities = GranularityBit(Granularity::kBlock);
  static constexpr int64_t kDefaultBlock = LOWBIT_4BIT_DEFAULT_BLOCK;
  static constexpr int64_t kMinBlock = LOWBIT_4BIT_MIN_BLOCK;
  static constexpr int64_t kMaxBlock = LOWBIT_4BIT_MAX_BLOCK;
  static constexpr ScaleKind kScaleKind = ScaleKind::kAbsmax;
  static constexpr bool kDoubleQuant = true;
  static constexpr int kCodebookSize = 16;
  // Double quantization of the absmax uses bitsandbytes' nested block of 256.
  static constexpr int64_t NestedBlock(int64_t) { return LOWBIT_NESTED_BLOCK; }

  static BlockStatistic Fit(const float* x, int64_t n, float) { return {AbsMax(x, n), 0}; }
  // An all-zero block has code 0 everywhere (bitsandbytes computes 0 * inf = NaN -> code 0).
  static uint8_t Encode(float x, const BlockStatistic& s, float) {
    if (!(s.scale > 0.0f)) return 0;
    return Derived::EncodeScaled(x * (1.0f / s.scale));
  }
  static float Decode(uint8_t code, const float* table, const BlockStatistic& s, float) {
    return table[code] * s.scale;
  }
};

struct NF4Codec : Codebook4Codec<NF4Codec> {
  static constexpr Format kFormat = Format::kNF4;
  static constexpr const char* kName = "nf4";
  static constexpr float kTable[16] = LOWBIT_NF4_CODEBOOK_INIT;
  // bitsandbytes' CUDA decision-tree literals (format_layout.h: 1 ulp off some midpoints).
  static constexpr float kThresholds[15] = LOWBIT_NF4_THRESHOLDS_INIT;
  static constexpr const float* kCodebook = kTable;
  static constexpr const float* kCodeValues = kTable;
  static uint8_t PadCode(const BlockStatistic&) { return LOWBIT_NF4_ZERO_CODE; }
  // code = number of thresholds strictly below y (a tie goes to the lower code; NaN -> 0).
  static uint8_t EncodeScaled(float y) {
    uint8_t code = 0;
    for (const float t : kThresholds) code = static_cast<uint8_t>(code + (y > t ? 1 : 0));
    return code;
  }
};

struct FP4Codec : Codebook4Codec<FP4Codec> {
  static constexpr Format kFormat = Format::kFP4;
  static constexpr const char* kName = "fp4";
  static constexpr float kTable[16] = LOWBIT_FP4_CODEBOOK_INIT;
  static constexpr float kThresholds[7] = LOWBIT_FP4_THRESHOLDS_INIT;
  static constexpr uint8_t kThresholdCodes[7] = LOWBIT_FP4_THRESHOLD_CODES_INIT;
  static constexpr const float* kCodebook = kTable;
  static constexpr const float* kCodeValues = kTable;
  static uint8_t PadCode(const BlockStatistic&) { return LOWBIT_FP4_ZERO_CODE; }
  // Magnitude code of the last threshold |y| exceeds (bitsandbytes' hand-written tree), sign
  // bit for y < 0.
  static uint8_t EncodeScaled(float y) {
    const uint8_t sign = (y < 0.0f) ? LOWBIT_FP4_SIGN_BIT : 0;
    const float a = y < 0.0f ? -y : y;
    uint8_t magnitude = 0;
    for (int i = 0; i < 7; ++i) {
      if (a > kThresholds[i]) magnitude = kThresholdCodes[i];
    }
    return static_cast<uint8_t>(sign | magnitude);
  }
};

}  // namespace lowbit

#endif  // LOWBIT_CODECS_CODEBOOK4_H_
