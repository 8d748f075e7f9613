// lowbit/codecs/microscaling.h — E2M1 4-bit floats with shared block scales: OCP MXFP4 (E8M0
// scale per 32 along each row) and NVIDIA NVFP4 (E4M3 scale per 16 times a float32 tensor scale).
#ifndef LOWBIT_CODECS_MICROSCALING_H_
#define LOWBIT_CODECS_MICROSCALING_H_

#include <cmath>

#include "lowbit/codecs/integer.h"
#include "lowbit/fp8.h"

namespace lowbit {

// ---- E2M1 elements (format_layout.h) ------------------------------------------------------------
inline constexpr float kE2M1Values[16] = LOWBIT_E2M1_CODEBOOK_INIT;

// E2M1 code of a finite y: round to nearest, ties to the even code, saturating at +-6; the sign
// bit is set for y < 0 (a negative value that rounds to zero gives -0, code 8).
inline uint8_t E2M1FromFloat(float y) {
  const uint8_t sign = y < 0.0f ? LOWBIT_E2M1_SIGN_BIT : 0;
  const float a = y < 0.0f ? -y : y;
  // Magnitudes 0, .5, 1, 1.5, 2, 3, 4, 6; a midpoint goes to the even code: crossing into an odd
  // code needs a > midpoint, into an even code a >= midpoint.
  uint8_t m = 0;
  m += a > 0.25f;
  m += a >= 0.75f;
  m += a > 1.25f;
  m += a >= 1.75f;
  m += a > 2.5f;
  m += a >= 3.5f;
  m += a > 5.0f;
  return static_cast<uint8_t>(sign | m);
}

// ---- E8M0 scales ------------------------------------------------------------------------------------
// 2^(e - 127) for e in 0..254 (0xFF is NaN and never produced; 2^-127 is a float32 subnormal).
inline float E8M0ToFloat(uint8_t e) {
  return e == LOWBIT_E8M0_NAN ? NAN : std::ldexp(1.0f, static_cast<int>(e) - LOWBIT_E8M0_BIAS);
}
// The E8M0 byte of a power of two 2^k with k in [-127, 127]; -1 when v is not one.
inline int E8M0FromFloat(float v) {
  if (!(v > 0.0f) || !std::isfinite(v)) return -1;
  int exp = 0;
  const float m = std::frexp(v, &exp);  // v = m * 2^exp, m in [0.5, 1)
  const int k = exp - 1;
  if (m != 0.5f || k < -LOWBIT_E8M0_BIAS || k > LOWBIT_E8M0_BIAS) return -1;
  return k + LOWBIT_E8M0_BIAS;
}

// Shared by mxfp4 and nvfp4: 4-bit E2M1 codes in groups along each row, fixed group size.
template <int64_t kGroup>
struct E2M1GroupCodec : CodecDefaults {
  static constexpr int kCodeBits = 4;
  static constexpr DType kDenseDType = DType::kU8;
  static constexpr Granularity kDefaultGranularity = Granularity::kGroup;
  static constexpr uint32_t kGranularities = GranularityBit(Granularity::kGroup);
  static constexpr int64_t kDefaultBlock = kGroup, kMinBlock = kGroup, kMaxBlock = kGroup;
  static constexpr ScaleKind kScaleKind = ScaleKind::kScale;
  static constexpr const float* kCodeValues = kE2M1Values;
};

// OCP Microscaling v1.0 MXFP4: blocks of 32 along each row share X = 2^(floor(log2(amax)) - 2)
// (E2M1's largest exponent is 2), stored as its E8M0 byte, clamped to 2^-127..2^127; element =
// E2M1 of x / X (exact division by a power of two), saturating. A zero block has scale byte 0
// and zero codes. x = e2m1(code) * X.
struct MXFP4Codec : E2M1GroupCodec<LOWBIT_MX_BLOCK> {
  static constexpr Format kFormat = Format::kMXFP4;
  static constexpr const char* kName = "mxfp4";
  static constexpr DType kStatisticDType = DType::kU8;  // E8M0 bytes in files
  static BlockStatistic Fit(const float* x, int64_t n, float) {
    const float amax = AbsMax(x, n);
    int e = -LOWBIT_E8M0_BIAS;  // scale byte 0 for a zero block
    if (amax > 0.0f) {
      int exp = 0;
      std::frexp(amax, &exp);  // amax in [2^(exp-1), 2^exp): floor(log2(amax)) = exp - 1
      e = exp - 1 - 2;
      e = e < -LOWBIT_E8M0_BIAS ? -LOWBIT_E8M0_BIAS : e;
    }
    return {std::ldexp(1.0f, e), 0};
  }
  static uint8_t Encode(float x, const BlockStatistic& s, float) {
    return E2M1FromFloat(x / s.scale);
  }
  static float Decode(uint8_t code, const float*, const BlockStatistic& s, float) {
    return kE2M1Values[code & 0x0F] * s.scale;
  }
};

// NVFP4 (NVIDIA ModelOpt): tensor scale s2 = amax(tensor) / (6 * 448); blocks of 16 along each
// row store d = E4M3_rne(amax(block) / f32(6 * s2)); element = E2M1_rne(x / f32(d * s2)).
// x = e2m1(code) * f32(d * s2). A zero tensor has s2 = 0, d = 0 and zero codes.
struct NVFP4Codec : E2M1GroupCodec<LOWBIT_NVFP4_BLOCK> {
  static constexpr Format kFormat = Format::kNVFP4;
  static constexpr const char* kName = "nvfp4";
  static constexpr DType kStatisticDType = DType::kF8E4M3;
  static constexpr bool kHasTensorScale = true;
  // E2M1's largest value times E4M3's: the tensor scale maps the tensor's absmax onto it.
  static constexpr float kRange = LOWBIT_E2M1_MAX * LOWBIT_FP8_E4M3_MAX;
  static float TensorScale(const float* x, int64_t n) { return AbsMax(x, n) / kRange; }
  static BlockStatistic Fit(const float* x, int64_t n, float s2) {
    if (!(s2 > 0.0f)) return {0.0f, 0};
    const float d = AbsMax(x, n) / (LOWBIT_E2M1_MAX * s2);
    return {FP8E4M3ToF32(F32ToFP8E4M3(d)), 0};
  }
  static uint8_t Encode(float x, const BlockStatistic& s, float s2) {
    const float scale = s.scale * s2;
    return scale > 0.0f ? E2M1FromFloat(x / scale) : 0;
  }
  static float Decode(uint8_t code, const float*, const BlockStatistic& s, float s2) {
    return kE2M1Values[code & 0x0F] * (s.scale * s2);
  }
};

}  // namespace lowbit

#endif  // LOWBIT_CODECS_MICROSCALING_H_
