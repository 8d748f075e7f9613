// lowbit/fp8.h — scalar OCP FP8 (E4M3, E5M2) <-> float32 conversion: the reference rules.
#ifndef LOWBIT_FP8_H_
#define LOWBIT_FP8_H_

#include <cstdint>

#include "lowbit/dtype.h"
#include "lowbit/format_layout.h"

namespace lowbit {
namespace fp8_internal {

// kExp/kMan: field widths; kHasInf: E5M2 has IEEE Inf/NaN codes, E4M3 ("fn") has neither Inf nor
// the all-ones exponent for finite values except 0x7E.
template <int kExp, int kMan, bool kHasInf>
struct Fp8Spec {
  static constexpr int kBias = (1 << (kExp - 1)) - 1;
  static constexpr uint8_t kMaxCode = kHasInf ? static_cast<uint8_t>(((1 << kExp) - 2) << kMan | ((1 << kMan) - 1))
                                              : 0x7E;
  static constexpr uint8_t kNaNCode = 0x7F;
};

template <class Spec, int kExp, int kMan, bool kHasInf>
inline float Decode(uint8_t c) {
  const uint32_t sign = static_cast<uint32_t>(c & 0x80u) << 24;
  const uint32_t exp = (c >> kMan) & ((1u << kExp) - 1u);
  const uint32_t man = c & ((1u << kMan) - 1u);
  if (kHasInf ? exp == (1u << kExp) - 1u : (c & 0x7Fu) == 0x7Fu) {
    if (kHasInf && man == 0) return F32FromBits(sign | 0x7F800000u);
    return F32FromBits(sign | 0x7FC00000u);
  }
  if (exp == 0) {
    // Subnormal: man * 2^(1 - bias - kMan), exact in float32.
    const float mag = static_cast<float>(man) * F32FromBits(static_cast<uint32_t>(127 + 1 - Spec::kBias - kMan) << 23);
    return F32FromBits(sign | F32Bits(mag));
  }
  return F32FromBits(sign | ((exp + 127u - Spec::kBias) << 23) | (man << (23 - kMan)));
}

template <class Spec, int kExp, int kMan, bool kHasInf>
inline uint8_t Encode(float f) {
  const uint32_t u = F32Bits(f);
  const uint8_t sign = static_cast<uint8_t>((u >> 24) & 0x80u);
  const uint32_t abs = u & 0x7FFFFFFFu;
  // Any NaN becomes the canonical positive NaN code, as cuda_fp8.h (host and cvt.rn.satfinite).
  if (abs > 0x7F800000u) return Spec::kNaNCode;
  const float max_finite = Decode<Spec, kExp, kMan, kHasInf>(Spec::kMaxCode);
  if (abs >= F32Bits(max_finite)) return sign | Spec::kMaxCode;  // saturate (Inf included)
  const int e = static_cast<int>(abs >> 23) - 127;                // unbiased float32 exponent
  constexpr int kMinNormalExp = 1 - Spec::kBias;
  if (e >= kMinNormalExp) {
    constexpr int kShift = 23 - kMan;
    const uint32_t lsb = (abs >> kShift) & 1u;
    const uint32_t rounded = (abs + ((1u << (kShift - 1)) - 1u) + lsb) >> kShift;
    // Rebias the exponent; rounding never passes kMaxCode because abs < max_finite.
    return sign | static_cast<uint8_t>(rounded - (static_cast<uint32_t>(127 - Spec::kBias) << kMan));
  }
  // Subnormal target: m = round_half_even(|f| * 2^(bias - 1 + kMan)), in units of the least
  // subnormal. |f| = man24 * 2^(e - 23) for a normal float32; float32 subnormals round to 0.
  if ((abs >> 23) == 0) return sign;
  const uint32_t man24 = (abs & 0x7FFFFFu) | 0x800000u;
  const int shift = 23 - (e + Spec::kBias - 1 + kMan);  // > kMan + 23 - 23 here
  if (shift > 25) return sign;                           // below half the least subnormal
  const uint32_t half = 1u << (shift - 1);
  const uint32_t rest = man24 & ((1u << shift) - 1u);
  uint32_t m = man24 >> shift;
  if (rest > half || (rest == half && (m & 1u))) ++m;  // m == 1 << kMan becomes the least normal
  return sign | static_cast<uint8_t>(m);
}

using E4M3 = Fp8Spec<LOWBIT_FP8_E4M3_EXP_BITS, LOWBIT_FP8_E4M3_MAN_BITS, false>;
using E5M2 = Fp8Spec<LOWBIT_FP8_E5M2_EXP_BITS, LOWBIT_FP8_E5M2_MAN_BITS, true>;
static_assert(E4M3::kBias == LOWBIT_FP8_E4M3_BIAS && E5M2::kBias == LOWBIT_FP8_E5M2_BIAS, "bias");
static_assert(E5M2::kMaxCode == 0x7B, "E5M2 max finite code");

}  // namespace fp8_internal

// Decodes an FP8 code to float32 (exact). E4M3: 0x7F/0xFF -> NaN. E5M2: 0x7C -> Inf, 0x7D..0x7F -> NaN.
inline float FP8E4M3ToF32(uint8_t c) {
  return fp8_internal::Decode<fp8_internal::E4M3, 4, 3, false>(c);
}
inline float FP8E5M2ToF32(uint8_t c) {
  return fp8_internal::Decode<fp8_internal::E5M2, 5, 2, true>(c);
}
// Encodes float32 with round-to-nearest-even, saturating every |x| > max (Inf too) to +-max and
// every NaN (either sign) to 0x7F: identical to cuda_fp8.h
// __nv_cvt_float_to_fp8(x, __NV_SATFINITE, ...).
inline uint8_t F32ToFP8E4M3(float f) {
  return fp8_internal::Encode<fp8_internal::E4M3, 4, 3, false>(f);
}
inline uint8_t F32ToFP8E5M2(float f) {
  return fp8_internal::Encode<fp8_internal::E5M2, 5, 2, true>(f);
}

}  // namespace lowbit

#endif  // LOWBIT_FP8_H_
