// lowbit/codecs/integer.h — the integer formats: int8 (LLM.int8 absmax, per row or tensor),
// int8_asym (uint8 + zero point), int4 (symmetric, per group along rows) and int4_asym.
#ifndef LOWBIT_CODECS_INTEGER_H_
#define LOWBIT_CODECS_INTEGER_H_

#include <algorithm>
#include <cmath>

#include "lowbit/codecs/codec.h"

namespace lowbit {
namespace integer_codec {

// round_half_even(x / scale) clamped to [lo, hi]; scale == 0 gives 0 (the default FP
// environment's nearbyint rounds half to even).
inline int32_t RoundClamp(float x, float scale, int32_t lo, int32_t hi) {
  if (scale == 0.0f) return 0;
  const float r = std::nearbyint(x / scale);
  return static_cast<int32_t>(std::clamp(r, static_cast<float>(lo), static_cast<float>(hi)));
}

// Asymmetric (scale, zero) of a block from its min/max, the range widened to include 0 (as
// GPTQ does): scale = (max - min) / qmax, zero = round_half_even(-min / scale) in [0, qmax].
inline BlockStatistic AsymFromRange(float mn, float mx, int32_t qmax) {
  mn = std::min(mn, 0.0f);
  mx = std::max(mx, 0.0f);
  BlockStatistic s;
  s.scale = (mx - mn) / static_cast<float>(qmax);
  s.zero = (s.scale == 0.0f) ? 0
                             : static_cast<uint8_t>(std::clamp(std::nearbyint(-mn / s.scale), 0.0f,
                                                               static_cast<float>(qmax)));
  return s;
}
inline BlockStatistic AsymFit(const float* x, int64_t n, int32_t qmax) {
  float mn = n > 0 ? x[0] : 0.0f, mx = mn;
  for (int64_t i = 0; i < n; ++i) {
    mn = std::min(mn, x[i]);
    mx = std::max(mx, x[i]);
  }
  return AsymFromRange(mn, mx, qmax);
}
// code = clamp(round(x / scale) + zero, 0, qmax).
inline uint8_t AsymEncode(float x, const BlockStatistic& s, int32_t qmax) {
  const int32_t v = RoundClamp(x, s.scale, -qmax, qmax) + s.zero;
  return static_cast<uint8_t>(std::clamp(v, 0, qmax));
}
// x = (code - zero) * scale.
inline float AsymDecode(uint8_t code, const BlockStatistic& s) {
  return static_cast<float>(static_cast<int32_t>(code) - s.zero) * s.scale;
}

// The 16 code values of the 4-bit integer formats before scaling: c - offset.
template <int kOffset>
struct NibbleValues {
  static constexpr float kValues[16] = {
      0 - kOffset,  1 - kOffset,  2 - kOffset,  3 - kOffset,  4 - kOffset,  5 - kOffset,
      6 - kOffset,  7 - kOffset,  8 - kOffset,  9 - kOffset,  10 - kOffset, 11 - kOffset,
      12 - kOffset, 13 - kOffset, 14 - kOffset, 15 - kOffset};
};

}  // namespace integer_codec

// Row or tensor statistics (int8, int8_asym, fp8): the shared layout constants.
struct RowStatisticCodec : CodecDefaults {
  static constexpr int kCodeBits = 8;
  static constexpr Granularity kDefaultGranularity = Granularity::kRow;
  static constexpr uint32_t kGranularities =
      GranularityBit(Granularity::kRow) | GranularityBit(Granularity::kTensor);
};

// int8 symmetric: the statistic is the absmax itself (bitsandbytes SCB);
// code = round_half_even(x * f32(127 / absmax)) in [-127, 127], stored as int8;
// x = f32(code * absmax) * f32(1/127).
struct Int8Codec : RowStatisticCodec {
  static constexpr Format kFormat = Format::kInt8;
  static constexpr const char* kName = "int8";
  static constexpr DType kDenseDType = DType::kI8;
  static constexpr ScaleKind kScaleKind = ScaleKind::kAbsmax;
  static constexpr Format kActivationPartner = Format::kInt8;
  static BlockStatistic Fit(const float* x, int64_t n, float) { return {AbsMax(x, n), 0}; }
  static uint8_t Encode(float x, const BlockStatistic& s, float) {
    const float mul = (s.scale > 0.0f) ? static_cast<float>(LOWBIT_INT8_QMAX) / s.scale : 0.0f;
    const float r = std::clamp(std::nearbyint(x * mul), -static_cast<float>(LOWBIT_INT8_QMAX),
                               static_cast<float>(LOWBIT_INT8_QMAX));
    return static_cast<uint8_t>(static_cast<int8_t>(r));
  }
  static float Decode(uint8_t code, const float*, const BlockStatistic& s, float) {
    return (static_cast<float>(static_cast<int8_t>(code)) * s.scale) * LOWBIT_INT8_INV_QMAX;
  }
};

// int8 asymmetric: unsigned code 0..255, x = (code - zero) * scale.
struct Int8AsymCodec : RowStatisticCodec {
  static constexpr Format kFormat = Format::kInt8Asym;
  static constexpr const char* kName = "int8_asym";
  static constexpr DType kDenseDType = DType::kU8;
  static constexpr ScaleKind kScaleKind = ScaleKind::kScale;
  static constexpr bool kHasZeroPoint = true;
  static constexpr Format kActivationPartner = Format::kInt8;
  static BlockStatistic Fit(const float* x, int64_t n, float) {
    return integer_codec::AsymFit(x, n, LOWBIT_UINT8_QMAX);
  }
  static uint8_t Encode(float x, const BlockStatistic& s, float) {
    return integer_codec::AsymEncode(x, s, LOWBIT_UINT8_QMAX);
  }
  static float Decode(uint8_t code, const float*, const BlockStatistic& s, float) {
    return integer_codec::AsymDecode(code, s);
  }
};

// Per-group statistics along each row (int4, int4_asym, mxfp4, nvfp4 use kGroup).
struct Int4GroupCodec : CodecDefaults {
  static constexpr int kCodeBits = 4;
  static constexpr DType kDenseDType = DType::kU8;
  static constexpr Granularity kDefaultGranularity = Granularity::kGroup;
  static constexpr uint32_t kGranularities = GranularityBit(Granularity::kGroup);
  static constexpr int64_t kDefaultBlock = LOWBIT_INT4_DEFAULT_GROUP;
  static constexpr int64_t kMinBlock = LOWBIT_INT4_MIN_GROUP;
  static constexpr int64_t kMaxBlock = LOWBIT_INT4_MAX_GROUP;
  static constexpr ScaleKind kScaleKind = ScaleKind::kScale;
  static constexpr Format kActivationPartner = Format::kInt8;
};

// int4 symmetric: scale = absmax / 7, nibble = round_half_even(x / scale) + 8 with q in [-7, 7];
// x = (nibble - 8) * scale.
struct Int4Codec : Int4GroupCodec {
  static constexpr Format kFormat = Format::kInt4;
  static constexpr const char* kName = "int4";
  static constexpr const float* kCodeValues =
      integer_codec::NibbleValues<LOWBIT_INT4_SYM_OFFSET>::kValues;
  static BlockStatistic Fit(const float* x, int64_t n, float) {
    return {AbsMax(x, n) / static_cast<float>(LOWBIT_INT4_SYM_QMAX), 0};
  }
  static uint8_t Encode(float x, const BlockStatistic& s, float) {
    return static_cast<uint8_t>(
        integer_codec::RoundClamp(x, s.scale, -LOWBIT_INT4_SYM_QMAX, LOWBIT_INT4_SYM_QMAX) +
        LOWBIT_INT4_SYM_OFFSET);
  }
  static float Decode(uint8_t code, const float*, const BlockStatistic& s, float) {
    return static_cast<float>(static_cast<int32_t>(code) - LOWBIT_INT4_SYM_OFFSET) * s.scale;
  }
  static uint8_t PadCode(const BlockStatistic&) { return LOWBIT_INT4_SYM_OFFSET; }
};

// int4 asymmetric: nibble 0..15, x = (nibble - zero) * scale, scale = (max - min) / 15. An odd
// element count pads with the last group's zero point (decodes to 0).
struct Int4AsymCodec : Int4GroupCodec {
  static constexpr Format kFormat = Format::kInt4Asym;
  static constexpr const char* kName = "int4_asym";
  static constexpr bool kHasZeroPoint = true;
  static constexpr const float* kCodeValues = integer_codec::NibbleValues<0>::kValues;
  static BlockStatistic Fit(const float* x, int64_t n, float) {
    return integer_codec::AsymFit(x, n, LOWBIT_INT4_ASYM_QMAX);
  }
  static uint8_t Encode(float x, const BlockStatistic& s, float) {
    return integer_codec::AsymEncode(x, s, LOWBIT_INT4_ASYM_QMAX);
  }
  static float Decode(uint8_t code, const float*, const BlockStatistic& s, float) {
    return integer_codec::AsymDecode(code, s);
  }
  static uint8_t PadCode(const BlockStatistic& s) { return s.zero; }
};

}  // namespace lowbit

#endif  // LOWBIT_CODECS_INTEGER_H_
