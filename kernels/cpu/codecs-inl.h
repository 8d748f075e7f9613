// Per-target decode verbs shared by the CPU kernels: 16-entry table lookup, FP8 bit decoding,
// and the chunk decoders of the execution layout (cpu_kernels.h). Every verb is exact: it
// returns precisely the float32 value the scalar reference codec computes for the same code
// (DecodeE4M3Finite / DecodeE5M2Finite: for every finite code; see there).
//
// Per-target header: include after hwy/highway.h inside a foreach_target translation unit.
#if defined(LOWBIT_KERNELS_CPU_CODECS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef LOWBIT_KERNELS_CPU_CODECS_INL_H_
#undef LOWBIT_KERNELS_CPU_CODECS_INL_H_
#else
#define LOWBIT_KERNELS_CPU_CODECS_INL_H_
#endif

#include <cstdint>

#include "hwy/highway.h"
#include "kernels/cpu/cpu_kernels.h"

HWY_BEFORE_NAMESPACE();
namespace lowbit::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Float32 vector tag of the kernels and its companions. Chunk decoders and the GEMV block
// geometry rely on kLanes dividing 16 (every x86 target: 4, 8 or 16 lanes; NEON: 4). SVE
// targets are not compiled (top-level CMakeLists.txt: SVE CPUs run the NEON kernels).
using DF = hn::ScalableTag<float>;
using DI = hn::RebindToSigned<DF>;
using DU = hn::RebindToUnsigned<DF>;
using DU8 = hn::Rebind<uint8_t, DF>;  // kLanes bytes
using DI8 = hn::Rebind<int8_t, DF>;
using VF = hn::Vec<DF>;
using VI = hn::Vec<DI>;
using VU = hn::Vec<DU>;
constexpr size_t kLanes = hn::MaxLanes(DF());
static_assert(16 % kLanes == 0, "chunk decoders need the float lane count to divide 16");

// Loads kLanes bytes and widens them to int32 lanes (zero- or sign-extended).
HWY_INLINE VI LoadU8AsI32(const uint8_t* p) {
  return hn::BitCast(DI(), hn::PromoteTo(DU(), hn::LoadU(DU8(), p)));
}
HWY_INLINE VI LoadI8AsI32(const uint8_t* p) {
  return hn::PromoteTo(DI(), hn::LoadU(DI8(), reinterpret_cast<const int8_t*>(p)));
}

// table[idx & 15] per lane for a 16-entry float table; the index bits above bit 3 are ignored
// (so callers shift packed nibbles into place without masking). Exact: the table's bits are
// moved, never computed. Per target, with the ops Highway 1.0.3 lacks written as intrinsics:
//   AVX3/AVX3_DL  one vpermps over the whole table (it reads index bits 0..3 only);
//   AVX2          vpermps over each half (bits 0..2) and a blend on bit 3 (moved to bit 31);
//   NEON (A64)    one 64-byte tbl with byte indices 4 * idx + {0, 1, 2, 3};
//   others        a gather (SSE4 and the emulated targets: correct, not fast).
// The table must outlive the object.
class Lut16 {
 public:
  explicit Lut16(const float* table)
      : table_(table)
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
        ,
        all_(_mm512_loadu_ps(table))
#elif HWY_TARGET == HWY_AVX2
        ,
        lo_(_mm256_loadu_ps(table)),
        hi_(_mm256_loadu_ps(table + 8))
#elif HWY_TARGET == HWY_NEON && HWY_ARCH_ARM_A64
        ,
        bytes_(vld1q_u8_x4(reinterpret_cast<const uint8_t*>(table)))
#endif
  {
  }
  HWY_INLINE VF operator()(VI idx) const { return (*this)(hn::BitCast(DU(), idx)); }
  HWY_INLINE VF operator()(VU idx) const {
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
    return VF{_mm512_permutexvar_ps(idx.raw, all_)};
#elif HWY_TARGET == HWY_AVX2
    const __m256 lo = _mm256_permutevar8x32_ps(lo_, idx.raw);
    const __m256 hi = _mm256_permutevar8x32_ps(hi_, idx.raw);
    return VF{_mm256_blendv_ps(lo, hi, _mm256_castsi256_ps(_mm256_slli_epi32(idx.raw, 28)))};
#elif HWY_TARGET == HWY_NEON && HWY_ARCH_ARM_A64
    const uint32x4_t nibble = vandq_u32(idx.raw, vdupq_n_u32(15));
    // Byte b of lane i reads table byte 4 * nibble + b.
    const uint32x4_t bytes = vmlaq_n_u32(vdupq_n_u32(0x03020100u), nibble, 0x04040404u);
    return VF(vreinterpretq_f32_u8(vqtbl4q_u8(bytes_, vreinterpretq_u8_u32(bytes))));
#else
    return hn::GatherIndex(DF(), table_, hn::BitCast(DI(), hn::And(idx, hn::Set(DU(), 15))));
#endif
  }

 private:
  [[maybe_unused]] const float* table_;  // read by the gather only
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
  __m512 all_;
#elif HWY_TARGET == HWY_AVX2
  __m256 lo_, hi_;
#elif HWY_TARGET == HWY_NEON && HWY_ARCH_ARM_A64
  uint8x16x4_t bytes_;
#endif
};

// Exact OCP FP8 decoding of byte codes held in int32 lanes (see lowbit/fp8.h for the rules).
// The magnitude bits are placed in a float32 so that a power-of-two multiply rebiases the
// exponent; FP8 subnormals become float32 subnormals first, which the multiply makes exact.
HWY_INLINE VF DecodeE4M3(VI code) {
  const DF df;
  const DI di;
  const VI mag = hn::And(code, hn::Set(di, 0x7F));
  const VI sign = hn::ShiftLeft<24>(hn::And(code, hn::Set(di, 0x80)));
  // 2^(127 - 7): float32 bias minus E4M3 bias.
  VF v = hn::Mul(hn::BitCast(df, hn::ShiftLeft<20>(mag)), hn::Set(df, 0x1.0p120f));
  v = hn::IfThenElse(hn::RebindMask(df, hn::Eq(mag, hn::Set(di, LOWBIT_FP8_E4M3_NAN))),
                     hn::BitCast(df, hn::Set(di, 0x7FC00000)), v);
  return hn::Or(v, hn::BitCast(df, sign));
}
HWY_INLINE VF DecodeE5M2(VI code) {
  const DF df;
  const DI di;
  const VI mag = hn::And(code, hn::Set(di, 0x7F));
  const VI sign = hn::ShiftLeft<24>(hn::And(code, hn::Set(di, 0x80)));
  // 2^(127 - 15): float32 bias minus E5M2 bias.
  VF v = hn::Mul(hn::BitCast(df, hn::ShiftLeft<21>(mag)), hn::Set(df, 0x1.0p112f));
  v = hn::IfThenElse(hn::RebindMask(df, hn::Gt(mag, hn::Set(di, LOWBIT_FP8_E5M2_INF))),
                     hn::BitCast(df, hn::Set(di, 0x7FC00000)), v);
  v = hn::IfThenElse(hn::RebindMask(df, hn::Eq(mag, hn::Set(di, LOWBIT_FP8_E5M2_INF))),
                     hn::BitCast(df, hn::Set(di, 0x7F800000)), v);
  return hn::Or(v, hn::BitCast(df, sign));
}

// Cheaper FP8 decoding for codes known to be finite (CpuPacked::fp8_finite): 2 integer ops and
// one multiply per vector instead of 8 ops. The byte is sign-extended, so after the shift the
// sign is at bit 31 (with copies in the bits above the magnitude, which the mask clears) and
// the 7 magnitude bits sit where DecodeE4M3/E5M2 put them; the power-of-two multiply keeps the
// sign. Bit-identical to DecodeE4M3/E5M2 for every finite code; the Inf/NaN codes (E4M3
// 0x7F/0xFF, E5M2 0x7C..0x7F/0xFC..0xFF) decode to wrong finite values, so callers must only use
// these for payloads checked to hold none (quantization never emits them: the encoder
// saturates and Quantize rejects non-finite input).
HWY_INLINE VF DecodeE4M3Finite(const uint8_t* p) {
  const DU du;
  // Sign bit 31 plus magnitude bits 20..26.
  const auto bits = hn::And(hn::ShiftLeft<20>(hn::BitCast(du, LoadI8AsI32(p))),
                            hn::Set(du, 0x87F00000u));
  // 2^(127 - 7): float32 bias minus E4M3 bias.
  return hn::Mul(hn::BitCast(DF(), bits), hn::Set(DF(), 0x1.0p120f));
}
HWY_INLINE VF DecodeE5M2Finite(const uint8_t* p) {
  const DU du;
  // Sign bit 31 plus magnitude bits 21..27.
  const auto bits = hn::And(hn::ShiftLeft<21>(hn::BitCast(du, LoadI8AsI32(p))),
                            hn::Set(du, 0x8FE00000u));
  // 2^(127 - 15): float32 bias minus E5M2 bias.
  return hn::Mul(hn::BitCast(DF(), bits), hn::Set(DF(), 0x1.0p112f));
}

// ---- chunk decoders of the execution layout ----------------------------------------------------
// Each calls fn(raw_values, element_offset) for the kChunk elements of the chunk starting at
// `codes`, in a fixed order, with element_offset in [0, kChunk) a multiple of kLanes.

struct Lut4Chunk {
  static constexpr int64_t kBytes = kChunk / 2;
  explicit Lut4Chunk(const CpuPacked& w) : lut(w.lut) {}
  template <class Fn>
  HWY_INLINE void operator()(const uint8_t* codes, const Fn& fn) const {
    const DI di;
    for (size_t p = 0; p < 16; p += kLanes) {
      const VI v = LoadU8AsI32(codes + p);
      fn(lut(hn::And(v, hn::Set(di, 0xF))), p);
      fn(lut(hn::ShiftRight<4>(v)), 16 + p);
    }
  }
  Lut16 lut;
};

// Raw values v of the kLanes byte codes at `codes` (int8, uint8, FP8 and 256-entry table kinds).
// kFinite (FP8 kinds only): the payload holds no Inf/NaN code, use the cheaper decode.
template <CodeKind kKind, bool kFinite = false>
HWY_INLINE VF DecodeBytes(const CpuPacked& w, const uint8_t* codes) {
  if constexpr (kKind == CodeKind::kInt8) {
    return hn::ConvertTo(DF(), LoadI8AsI32(codes));
  } else if constexpr (kKind == CodeKind::kUInt8) {
    return hn::ConvertTo(DF(), LoadU8AsI32(codes));
  } else if constexpr (kKind == CodeKind::kLut8) {
    return hn::GatherIndex(DF(), w.lut, LoadU8AsI32(codes));
  } else if constexpr (kKind == CodeKind::kFP8E4M3) {
    return kFinite ? DecodeE4M3Finite(codes) : DecodeE4M3(LoadU8AsI32(codes));
  } else {
    static_assert(kKind == CodeKind::kFP8E5M2, "byte code kinds");
    return kFinite ? DecodeE5M2Finite(codes) : DecodeE5M2(LoadU8AsI32(codes));
  }
}

template <CodeKind kKind, bool kFinite = false>
struct ByteChunk {
  static constexpr int64_t kBytes = kChunk;
  explicit ByteChunk(const CpuPacked& w) : w(w) {}
  template <class Fn>
  HWY_INLINE void operator()(const uint8_t* codes, const Fn& fn) const {
    for (size_t p = 0; p < static_cast<size_t>(kChunk); p += kLanes) {
      fn(DecodeBytes<kKind, kFinite>(w, codes + p), p);
    }
  }
  const CpuPacked& w;
};

}  // namespace lowbit::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // LOWBIT_KERNELS_CPU_CODECS_INL_H_
