// lowbit/codecs/fp8.h — OCP FP8 E4M3 and E5M2 weights with a float32 scale per row or tensor:
// scale = absmax / max_finite, code = fp8(x / scale) (lowbit/fp8.h: RNE, saturating).
#ifndef LOWBIT_CODECS_FP8_H_
#define LOWBIT_CODECS_FP8_H_

#include "lowbit/codecs/integer.h"
#include "lowbit/fp8.h"

namespace lowbit {

template <bool kE4M3>
struct FP8Codec : RowStatisticCodec {
  static constexpr Format kFormat = kE4M3 ? Format::kFP8E4M3 : Format::kFP8E5M2;
  static constexpr const char* kName = kE4M3 ? "fp8_e4m3" : "fp8_e5m2";
  static constexpr DType kDenseDType = kE4M3 ? DType::kF8E4M3 : DType::kF8E5M2;
  static constexpr ScaleKind kScaleKind = ScaleKind::kScale;
  static constexpr float kMaxFinite = kE4M3 ? LOWBIT_FP8_E4M3_MAX : LOWBIT_FP8_E5M2_MAX;
  static uint8_t FromFloat(float y) { return kE4M3 ? F32ToFP8E4M3(y) : F32ToFP8E5M2(y); }
  static float ToFloat(uint8_t c) { return kE4M3 ? FP8E4M3ToF32(c) : FP8E5M2ToF32(c); }

  // The scale maps the absmax onto the largest finite code.
  static BlockStatistic Fit(const float* x, int64_t n, float) {
    return {AbsMax(x, n) / kMaxFinite, 0};
  }
  static uint8_t Encode(float x, const BlockStatistic& s, float) {
    return FromFloat(s.scale > 0.0f ? x / s.scale : 0.0f);
  }
  static float Decode(uint8_t code, const float*, const BlockStatistic& s, float) {
    return ToFloat(code) * s.scale;
  }
};
using FP8E4M3Codec = FP8Codec<true>;
using FP8E5M2Codec = FP8Codec<false>;

}  // namespace lowbit

#endif  // LOWBIT_CODECS_FP8_H_
