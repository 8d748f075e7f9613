// lowbit/codecs/ggml.h — ggml's GGUF tensor types: ids, block geometry, scalar block decoders and
// ggml's reference quantizers for q4_0 / q8_0. Header-only; needs no lowbit library.
//
// Everything here is a fact of ggml's storage formats (ggml.h `enum ggml_type`, ggml-common.h block
// layouts, commit d99724f2), re-implemented from those descriptions; no ggml code is copied. The
// decoders reproduce ggml's `to_float` bit for bit (tests/gguf_test.cc checks every tensor of the
// ggml-written files in tests/data/gguf/, docs/files.md §5):
//   * Every block stores little-endian fields; elements run along the row (GGUF's ne[0]).
//   * The arithmetic is exact up to one final rounding per element (f16 scale × small integer
//     needs at most 25 significand bits only in q6_K's last product), so the results do not depend
//     on FMA contraction or on the order of the multiplications: any IEEE-754 binary32 machine
//     gives ggml's bits.
//   * Negative zero: ggml multiplies an integer code converted to float by the scale, so code 0
//     (or mxfp4/nvfp4 code 8) gives +0 for a positive scale and -0 for a negative one; the
//     decoders here do the same (lowbit's E2M1 table has -0.0 for code 8; ggml's integer table
//     has 0, so code 8 decodes to +0.0 here, as in ggml).
//
// Thread safety: all functions are pure (no state); call them from any thread.
#ifndef LOWBIT_CODECS_GGML_H_
#define LOWBIT_CODECS_GGML_H_

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "lowbit/dtype.h"  // F16ToF32 / F32ToF16 / BF16ToF32 / F32ToBF16 (inline, no library)
#include "lowbit/format_layout.h"
#include "lowbit/fp8.h"  // FP8E4M3ToF32 (inline)

namespace lowbit {
namespace ggml {

// ggml type ids as stored in GGUF tensor infos (ggml.h `enum ggml_type`). Append-only upstream; the
// gaps (4, 5, 31-33, 36-38) are layouts ggml removed from GGUF files.
enum class Type : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kIQ2_XXS = 16,
  kIQ2_XS = 17,
  kIQ3_XXS = 18,
  kIQ1_S = 19,
  kIQ4_NL = 20,
  kIQ3_S = 21,
  kIQ2_S = 22,
  kIQ4_XS = 23,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kIQ1_M = 29,
  kBF16 = 30,
  kTQ1_0 = 34,
  kTQ2_0 = 35,
  kMXFP4 = 39,
  kNVFP4 = 40,
};

// ---- block geometry (ggml-common.h) -------------------------------------------------------------
// Elements per block of the 32-element types (q4_0, q4_1, q5_0, q5_1, q8_0, q8_1, iq4_nl, mxfp4).
inline constexpr int64_t kQK = 32;
// Elements per super-block of the K-quants and the i-quants except iq4_nl (QK_K).
inline constexpr int64_t kQKK = 256;
// nvfp4: 64 elements per block, one scale per LOWBIT_NVFP4_BLOCK (16) of them.
inline constexpr int64_t kQKNvfp4 = 64;
inline constexpr int64_t kNvfp4Scales = kQKNvfp4 / LOWBIT_NVFP4_BLOCK;
// K-quant packed 6-bit scales and mins (K_SCALE_SIZE).
inline constexpr int64_t kKScaleBytes = 12;
// Offset that centres a 4-bit code (q4_0, lowbit int4 symmetric) and a 6-bit code (q6_K).
inline constexpr int kQ4Offset = 8;
inline constexpr int kQ6Offset = 32;
static_assert(kQK == LOWBIT_MX_BLOCK, "ggml's mxfp4 block is the OCP MX block");
static_assert(kQ4Offset == LOWBIT_INT4_SYM_OFFSET, "q4_0 and lowbit int4 centre codes alike");

// Bytes per block. f16 scales are 2 bytes; q8_K's scale is a float32.
inline constexpr int64_t kQ4_0Bytes = 2 + kQK / 2;                      // d, qs[16]
inline constexpr int64_t kQ4_1Bytes = 2 + 2 + kQK / 2;                  // d, m, qs[16]
inline constexpr int64_t kQ5_0Bytes = 2 + 4 + kQK / 2;                  // d, qh[4], qs[16]
inline constexpr int64_t kQ5_1Bytes = 2 + 2 + 4 + kQK / 2;              // d, m, qh[4], qs[16]
inline constexpr int64_t kQ8_0Bytes = 2 + kQK;                          // d, qs[32]
inline constexpr int64_t kQ8_1Bytes = 2 + 2 + kQK;                      // d, s, qs[32]
inline constexpr int64_t kQ2_KBytes = kQKK / 16 + kQKK / 4 + 2 + 2;     // scales, qs, d, dmin
inline constexpr int64_t kQ3_KBytes = kQKK / 8 + kQKK / 4 + 12 + 2;     // hmask, qs, scales, d
inline constexpr int64_t kQ4_KBytes = 2 + 2 + kKScaleBytes + kQKK / 2;  // d, dmin, scales, qs
inline constexpr int64_t kQ5_KBytes = 2 + 2 + kKScaleBytes + kQKK / 8 + kQKK / 2;
inline constexpr int64_t kQ6_KBytes = kQKK / 2 + kQKK / 4 + kQKK / 16 + 2;  // ql, qh, scales, d
inline constexpr int64_t kQ8_KBytes = 4 + kQKK + 2 * (kQKK / 16);           // d, qs, bsums
inline constexpr int64_t kIQ2_XXSBytes = 2 + 2 * (kQKK / 8);
inline constexpr int64_t kIQ2_XSBytes = 2 + 2 * (kQKK / 8) + kQKK / 32;
inline constexpr int64_t kIQ3_XXSBytes = 2 + 3 * (kQKK / 8);
inline constexpr int64_t kIQ1_SBytes = 2 + kQKK / 8 + 2 * (kQKK / 32);
inline constexpr int64_t kIQ4_NLBytes = 2 + kQK / 2;  // d, qs[16]
inline constexpr int64_t kIQ3_SBytes = 2 + kQKK / 4 + kQKK / 32 + kQKK / 8 + kQKK / 64;
inline constexpr int64_t kIQ2_SBytes = 2 + kQKK / 4 + kQKK / 32 + kQKK / 32;
inline constexpr int64_t kIQ4_XSBytes = 2 + 2 + kQKK / 64 + kQKK / 2;
inline constexpr int64_t kIQ1_MBytes = kQKK / 8 + kQKK / 16 + kQKK / 32;
inline constexpr int64_t kTQ1_0Bytes = (kQKK - 4 * kQKK / 64) / 5 + kQKK / 64 + 2;
inline constexpr int64_t kTQ2_0Bytes = kQKK / 4 + 2;
inline constexpr int64_t kMXFP4Bytes = 1 + kQK / 2;                  // e (E8M0), qs[16]
inline constexpr int64_t kNVFP4Bytes = kNvfp4Scales + kQKNvfp4 / 2;  // d[4] (UE4M3), qs[32]
// The sizes ggml's static_asserts state; a typo above would fork the format.
static_assert(kQ4_0Bytes == 18 && kQ4_1Bytes == 20 && kQ5_0Bytes == 22 && kQ5_1Bytes == 24 &&
                  kQ8_0Bytes == 34 && kQ8_1Bytes == 36,
              "32-element block sizes");
static_assert(kQ2_KBytes == 84 && kQ3_KBytes == 110 && kQ4_KBytes == 144 && kQ5_KBytes == 176 &&
                  kQ6_KBytes == 210 && kQ8_KBytes == 292,
              "K-quant block sizes");
static_assert(kIQ2_XXSBytes == 66 && kIQ2_XSBytes == 74 && kIQ3_XXSBytes == 98 &&
                  kIQ1_SBytes == 50 && kIQ4_NLBytes == 18 && kIQ3_SBytes == 110 &&
                  kIQ2_SBytes == 82 && kIQ4_XSBytes == 136 && kIQ1_MBytes == 56,
              "i-quant block sizes");
static_assert(kTQ1_0Bytes == 54 && kTQ2_0Bytes == 66 && kMXFP4Bytes == 17 && kNVFP4Bytes == 36,
              "ternary and FP4 block sizes");

// iq4_nl's non-linear 4-bit grid (ggml's kvalues_iq4nl): element = d * kIQ4NLValues[code].
inline constexpr int8_t kIQ4NLValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                            1,    13,   25,  38,  53,  69,  89,  113};

// One row of the type table.
struct TypeTraits {
  Type type;
  const char* name;        // ggml's name: "q4_0", "q4_K", "bf16", ...
  int64_t block_elements;  // elements per block (1 for plain element types)
  int64_t block_bytes;     // bytes per block
  bool decodable;          // DequantizeRow supports it (the types lowbit reads bit-exactly)
};

inline constexpr TypeTraits kTypeTable[] = {
    {Type::kF32, "f32", 1, 4, true},
    {Type::kF16, "f16", 1, 2, true},
    {Type::kQ4_0, "q4_0", kQK, kQ4_0Bytes, true},
    {Type::kQ4_1, "q4_1", kQK, kQ4_1Bytes, true},
    {Type::kQ5_0, "q5_0", kQK, kQ5_0Bytes, false},
    {Type::kQ5_1, "q5_1", kQK, kQ5_1Bytes, false},
    {Type::kQ8_0, "q8_0", kQK, kQ8_0Bytes, true},
    {Type::kQ8_1, "q8_1", kQK, kQ8_1Bytes, false},
    {Type::kQ2_K, "q2_K", kQKK, kQ2_KBytes, false},
    {Type::kQ3_K, "q3_K", kQKK, kQ3_KBytes, false},
    {Type::kQ4_K, "q4_K", kQKK, kQ4_KBytes, true},
    {Type::kQ5_K, "q5_K", kQKK, kQ5_KBytes, false},
    {Type::kQ6_K, "q6_K", kQKK, kQ6_KBytes, true},
    {Type::kQ8_K, "q8_K", kQKK, kQ8_KBytes, false},
    {Type::kIQ2_XXS, "iq2_xxs", kQKK, kIQ2_XXSBytes, false},
    {Type::kIQ2_XS, "iq2_xs", kQKK, kIQ2_XSBytes, false},
    {Type::kIQ3_XXS, "iq3_xxs", kQKK, kIQ3_XXSBytes, false},
    {Type::kIQ1_S, "iq1_s", kQKK, kIQ1_SBytes, false},
    {Type::kIQ4_NL, "iq4_nl", kQK, kIQ4_NLBytes, true},
    {Type::kIQ3_S, "iq3_s", kQKK, kIQ3_SBytes, false},
    {Type::kIQ2_S, "iq2_s", kQKK, kIQ2_SBytes, false},
    {Type::kIQ4_XS, "iq4_xs", kQKK, kIQ4_XSBytes, false},
    {Type::kI8, "i8", 1, 1, false},
    {Type::kI16, "i16", 1, 2, false},
    {Type::kI32, "i32", 1, 4, false},
    {Type::kI64, "i64", 1, 8, false},
    {Type::kF64, "f64", 1, 8, false},
    {Type::kIQ1_M, "iq1_m", kQKK, kIQ1_MBytes, false},
    {Type::kBF16, "bf16", 1, 2, true},
    {Type::kTQ1_0, "tq1_0", kQKK, kTQ1_0Bytes, false},
    {Type::kTQ2_0, "tq2_0", kQKK, kTQ2_0Bytes, false},
    {Type::kMXFP4, "mxfp4", kQK, kMXFP4Bytes, true},
    {Type::kNVFP4, "nvfp4", kQKNvfp4, kNVFP4Bytes, true},
};

// The table row of type id `id`, or nullptr for an id ggml does not define (or removed).
constexpr const TypeTraits* FindType(uint32_t id) {
  for (const TypeTraits& t : kTypeTable) {
    if (static_cast<uint32_t>(t.type) == id) return &t;
  }
  return nullptr;
}
// The table row of `type` (always found for an enumerator).
constexpr const TypeTraits& Traits(Type type) { return *FindType(static_cast<uint32_t>(type)); }
// ggml's name of `type`; "unknown" for an id outside the table.
constexpr const char* TypeName(uint32_t id) {
  const TypeTraits* t = FindType(id);
  return t == nullptr ? "unknown" : t->name;
}

namespace internal {

inline uint16_t LoadU16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | (static_cast<uint16_t>(p[1]) << 8));
}
inline void StoreU16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}
inline float LoadF16(const uint8_t* p) { return F16ToF32(F16{LoadU16(p)}); }

// The signed E2M1 table doubled into integers (ggml's kvalues_mxfp4: 0, 1, 2, 3, 4, 6, 8, 12,
// then the negatives), derived from lowbit's one E2M1 table. Code 8 (-0.0) becomes the integer 0.
struct Mxfp4Table {
  int8_t v[16];
};
constexpr Mxfp4Table MakeMxfp4Table() {
  constexpr float kE2M1[16] = LOWBIT_E2M1_CODEBOOK_INIT;
  Mxfp4Table t{};
  for (int i = 0; i < 16; ++i) t.v[i] = static_cast<int8_t>(2.0f * kE2M1[i]);
  return t;
}
inline constexpr Mxfp4Table kMxfp4Doubled = MakeMxfp4Table();
static_assert(kMxfp4Doubled.v[7] == 12 && kMxfp4Doubled.v[8] == 0 && kMxfp4Doubled.v[15] == -12,
              "doubled E2M1 table");

// Half the E8M0 scale, 2^(e - LOWBIT_E8M0_BIAS - 1), as the exact float32 bit pattern. ggml pairs
// it with the doubled table above. e = 0 and 1 give the subnormals 2^-128 and 2^-127; e = 0xFF is
// 2^127 (ggml does not treat it as NaN, unlike OCP's E8M0_NAN).
inline float E8M0Half(uint8_t e) {
  constexpr uint32_t kSubnormalMinusOne = 0x00200000u;  // 2^-128: bit 21 of a float32 subnormal
  constexpr int kFirstNormal = 2;                       // 2^(2 - 128) = 2^-126, the least normal
  const uint32_t bits =
      e < kFirstNormal ? kSubnormalMinusOne << e : static_cast<uint32_t>(e - 1) << 23;
  static_assert(LOWBIT_E8M0_BIAS == 127, "the bit construction assumes float32's bias");
  return F32FromBits(bits);
}

// Half the nvfp4 sub-block scale. ggml reads the byte as an unsigned E4M3 (the sign bit is
// ignored): 0x00 and 0x7F decode to 0; 0xFF (exponent 15, mantissa 7) is read by the field
// formula as 480, not as E4M3's NaN; every other byte is FP8E4M3ToF32 of its low 7 bits.
inline float UE4M3Half(uint8_t x) {
  constexpr uint8_t kZeroNaNCode = LOWBIT_FP8_E4M3_NAN;  // 0x7F: decodes to 0 in ggml
  constexpr float kAllOnes = 480.0f;                     // (1 + 7/8) * 2^(15 - 7)
  if (x == kZeroNaNCode) return 0.0f;
  const uint8_t magnitude = static_cast<uint8_t>(x & 0x7F);
  const float v = magnitude == kZeroNaNCode ? kAllOnes : FP8E4M3ToF32(magnitude);
  return v * 0.5f;
}

// Returns `v` rounded to float32 through a volatile, so that no FMA contraction can fuse the
// product that produced it into a following addition (the reference quantizers round twice, and
// an includer compiled with -ffp-contract=fast and FMA must still produce ggml's bytes).
inline float Rounded(float v) {
  volatile float r = v;
  return r;
}

// The j-th 6-bit scale and min of a K-quant super-block (ggml's get_scale_min_k4): j < 4 in the
// low 6 bits of bytes j and j + 4; j >= 4 split into a low nibble of byte j + 4 and the top two
// bits of bytes j - 4 (scale) and j (min).
inline void ScaleMinK4(int j, const uint8_t* q, int* scale, int* min) {
  if (j < 4) {
    *scale = q[j] & 63;
    *min = q[j + 4] & 63;
  } else {
    *scale = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *min = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

}  // namespace internal

// ---- block decoders: one block in, Traits(type).block_elements floats out -----------------------
// q4_0: f16 d; qs[16]. Element j < 16 is the low nibble of qs[j], element j >= 16 the high
// nibble of qs[j - 16]; value (nibble - 8) * d.
inline void DecodeQ4_0(const uint8_t* b, float* y) {
  const float d = internal::LoadF16(b);
  const uint8_t* qs = b + 2;
  for (int j = 0; j < kQK / 2; ++j) {
    y[j] = static_cast<float>((qs[j] & 0xF) - kQ4Offset) * d;
    y[j + kQK / 2] = static_cast<float>((qs[j] >> 4) - kQ4Offset) * d;
  }
}

// q4_1: f16 d; f16 m; qs[16]; value nibble * d + m (nibble * d is exact: one rounding).
inline void DecodeQ4_1(const uint8_t* b, float* y) {
  const float d = internal::LoadF16(b);
  const float m = internal::LoadF16(b + 2);
  const uint8_t* qs = b + 4;
  for (int j = 0; j < kQK / 2; ++j) {
    y[j] = static_cast<float>(qs[j] & 0xF) * d + m;
    y[j + kQK / 2] = static_cast<float>(qs[j] >> 4) * d + m;
  }
}

// q8_0: f16 d; int8 qs[32]; value qs[j] * d.
inline void DecodeQ8_0(const uint8_t* b, float* y) {
  const float d = internal::LoadF16(b);
  for (int j = 0; j < kQK; ++j) y[j] = static_cast<float>(static_cast<int8_t>(b[2 + j])) * d;
}

// iq4_nl: f16 d; qs[16] (nibble order of q4_0); value d * kIQ4NLValues[nibble].
inline void DecodeIQ4_NL(const uint8_t* b, float* y) {
  const float d = internal::LoadF16(b);
  const uint8_t* qs = b + 2;
  for (int j = 0; j < kQK / 2; ++j) {
    y[j] = d * static_cast<float>(kIQ4NLValues[qs[j] & 0xF]);
    y[j + kQK / 2] = d * static_cast<float>(kIQ4NLValues[qs[j] >> 4]);
  }
}

// mxfp4: E8M0 e; qs[16] (nibble order of q4_0); value E2M1(nibble) * 2^(e - 127), computed as
// ggml does: doubled integer code times 2^(e - 128) (exact; only e = 0xFF can overflow to Inf).
inline void DecodeMXFP4(const uint8_t* b, float* y) {
  const float d = internal::E8M0Half(b[0]);
  const uint8_t* qs = b + 1;
  for (int j = 0; j < kQK / 2; ++j) {
    y[j] = static_cast<float>(internal::kMxfp4Doubled.v[qs[j] & 0xF]) * d;
    y[j + kQK / 2] = static_cast<float>(internal::kMxfp4Doubled.v[qs[j] >> 4]) * d;
  }
}

// nvfp4: UE4M3 d[4]; qs[32]. Sub-block s (16 elements) uses d[s] and qs[8s .. 8s + 7]: low
// nibbles are its first 8 elements, high nibbles the last 8; value E2M1(nibble) * UE4M3(d[s]).
inline void DecodeNVFP4(const uint8_t* b, float* y) {
  constexpr int kSub = LOWBIT_NVFP4_BLOCK;
  for (int s = 0; s < kNvfp4Scales; ++s) {
    const float d = internal::UE4M3Half(b[s]);
    const uint8_t* qs = b + kNvfp4Scales + s * (kSub / 2);
    float* ys = y + s * kSub;
    for (int j = 0; j < kSub / 2; ++j) {
      ys[j] = static_cast<float>(internal::kMxfp4Doubled.v[qs[j] & 0xF]) * d;
      ys[j + kSub / 2] = static_cast<float>(internal::kMxfp4Doubled.v[qs[j] >> 4]) * d;
    }
  }
}

// q4_K: f16 d; f16 dmin; scales[12] (eight 6-bit scales and mins, ScaleMinK4); qs[128]. Each
// 64 elements share 32 bytes of qs: the low nibbles are sub-block 2i, the high nibbles 2i + 1;
// value (d * scale) * nibble - dmin * min (both products exact: one rounding).
inline void DecodeQ4_K(const uint8_t* b, float* y) {
  const float d = internal::LoadF16(b);
  const float dmin = internal::LoadF16(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* q = b + 4 + kKScaleBytes;
  for (int i = 0; i < kQKK / 64; ++i) {
    int sc, m;
    internal::ScaleMinK4(2 * i, scales, &sc, &m);
    const float d1 = d * static_cast<float>(sc);
    const float m1 = dmin * static_cast<float>(m);
    internal::ScaleMinK4(2 * i + 1, scales, &sc, &m);
    const float d2 = d * static_cast<float>(sc);
    const float m2 = dmin * static_cast<float>(m);
    for (int l = 0; l < 32; ++l) y[l] = d1 * static_cast<float>(q[l] & 0xF) - m1;
    for (int l = 0; l < 32; ++l) y[32 + l] = d2 * static_cast<float>(q[l] >> 4) - m2;
    q += 32;
    y += 64;
  }
}

// q6_K: ql[128] (low 4 bits); qh[64] (high 2 bits); int8 scales[16]; f16 d. Each half of 128
// elements uses 64 bytes of ql, 32 of qh and 8 scales: element l + 32k (k = 0..3, l < 32) takes
// the low (k even) or high (k odd) nibble of ql[l + 32 (k & 1)] and bits 2k, 2k+1 of qh[l];
// value (d * scale[l / 16 + 2k]) * (code - 32).
inline void DecodeQ6_K(const uint8_t* b, float* y) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + kQKK / 2;
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + kQKK / 2 + kQKK / 4);
  const float d = internal::LoadF16(b + kQKK / 2 + kQKK / 4 + kQKK / 16);
  for (int half = 0; half < kQKK / 128; ++half) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - kQ6Offset;
      const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - kQ6Offset;
      const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - kQ6Offset;
      const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - kQ6Offset;
      y[l] = d * static_cast<float>(sc[is]) * static_cast<float>(q1);
      y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
      y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
      y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
    }
    y += 128;
    ql += 64;
    qh += 32;
    sc += 8;
  }
}

// ---- ggml's reference quantizers (quantize_row_*_ref, no importance matrix) ---------------------
// q4_0 of 32 floats: max = the element of largest magnitude (the first one on ties), d = max / -8,
// id = 1 / d (0 when d = 0), code = min(15, trunc(x * id + 8.5)), d stored as f16 (round to nearest
// even). Byte-identical to ggml for finite input. Non-finite input is the caller's to reject
// (ggml's conversion is undefined there); here it gives some code in [0, 15].
inline void QuantizeQ4_0(const float* x, uint8_t* b) {
  float amax = 0.0f;
  float max = 0.0f;
  for (int j = 0; j < kQK; ++j) {
    const float a = std::fabs(x[j]);
    if (amax < a) {
      amax = a;
      max = x[j];
    }
  }
  const float d = max / -static_cast<float>(kQ4Offset);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  internal::StoreU16(b, F32ToF16(d).bits);
  auto code = [&](float v) {
    // Two roundings, as ggml: the product, then the sum; then truncation toward zero.
    const float r = internal::Rounded(v * id) + (static_cast<float>(kQ4Offset) + 0.5f);
    if (!(r >= 1.0f)) return 0;  // [0, 1) truncates to 0; NaN too
    return r >= 15.0f ? 15 : static_cast<int>(r);
  };
  for (int j = 0; j < kQK / 2; ++j) {
    b[2 + j] = static_cast<uint8_t>(code(x[j]) | (code(x[j + kQK / 2]) << 4));
  }
}

// q8_0 of 32 floats: amax = max |x|, d = amax / 127, id = 1 / d (0 when d = 0), code =
// roundf(x * id) (half away from zero), d stored as f16. Byte-identical to ggml for finite input.
inline void QuantizeQ8_0(const float* x, uint8_t* b) {
  constexpr float kQMax = 127.0f;  // (1 << 7) - 1
  float amax = 0.0f;
  for (int j = 0; j < kQK; ++j) amax = std::fmax(amax, std::fabs(x[j]));
  const float d = amax / kQMax;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  internal::StoreU16(b, F32ToF16(d).bits);
  for (int j = 0; j < kQK; ++j) {
    float r = std::round(x[j] * id);  // |r| <= 127 for finite input
    if (!(r >= -kQMax && r <= kQMax)) r = r > 0 ? kQMax : (r < 0 ? -kQMax : 0.0f);  // NaN: 0
    b[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(r));
  }
}

// ---- rows --------------------------------------------------------------------------------------
// Decodes `n` elements of `type` (n a multiple of the block) from `src` into `dst`, exactly as
// ggml's to_float. Handles f32 / f16 / bf16 and every type whose TypeTraits::decodable is true.
// Returns false, writing nothing, for any other type or an n that is negative or not a whole
// number of blocks. `src` needs no alignment.
inline bool DequantizeRow(Type type, const uint8_t* src, int64_t n, float* dst) {
  const TypeTraits* t = FindType(static_cast<uint32_t>(type));
  if (t == nullptr || !t->decodable || n < 0 || n % t->block_elements != 0) return false;
  const int64_t blocks = n / t->block_elements;
  void (*decode)(const uint8_t*, float*) = nullptr;
  switch (type) {
    case Type::kF32:
      if (n > 0) std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      return true;
    case Type::kF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = internal::LoadF16(src + 2 * i);
      return true;
    case Type::kBF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = BF16ToF32(BF16{internal::LoadU16(src + 2 * i)});
      return true;
    case Type::kQ4_0:
      decode = &DecodeQ4_0;
      break;
    case Type::kQ4_1:
      decode = &DecodeQ4_1;
      break;
    case Type::kQ8_0:
      decode = &DecodeQ8_0;
      break;
    case Type::kIQ4_NL:
      decode = &DecodeIQ4_NL;
      break;
    case Type::kMXFP4:
      decode = &DecodeMXFP4;
      break;
    case Type::kNVFP4:
      decode = &DecodeNVFP4;
      break;
    case Type::kQ4_K:
      decode = &DecodeQ4_K;
      break;
    case Type::kQ6_K:
      decode = &DecodeQ6_K;
      break;
    default:
      return false;
  }
  for (int64_t i = 0; i < blocks; ++i) {
    decode(src + i * t->block_bytes, dst + i * t->block_elements);
  }
  return true;
}

// Encodes `n` floats as `type` into `dst` (Traits(type).block_bytes per block): f32 (copy), f16
// and bf16 (round to nearest even, as ggml's conversions), q4_0 and q8_0 (the reference quantizers
// above). Returns false, writing nothing, for another type or a bad n.
inline bool QuantizeRow(Type type, const float* x, int64_t n, uint8_t* dst) {
  const TypeTraits* t = FindType(static_cast<uint32_t>(type));
  if (t == nullptr || n < 0 || n % t->block_elements != 0) return false;
  switch (type) {
    case Type::kF32:
      if (n > 0) std::memcpy(dst, x, static_cast<size_t>(n) * 4);
      return true;
    case Type::kF16:
      for (int64_t i = 0; i < n; ++i) internal::StoreU16(dst + 2 * i, F32ToF16(x[i]).bits);
      return true;
    case Type::kBF16:
      for (int64_t i = 0; i < n; ++i) internal::StoreU16(dst + 2 * i, F32ToBF16(x[i]).bits);
      return true;
    case Type::kQ4_0:
      for (int64_t i = 0; i < n / kQK; ++i) QuantizeQ4_0(x + i * kQK, dst + i * kQ4_0Bytes);
      return true;
    case Type::kQ8_0:
      for (int64_t i = 0; i < n / kQK; ++i) QuantizeQ8_0(x + i * kQK, dst + i * kQ8_0Bytes);
      return true;
    default:
      return false;
  }
}

}  // namespace ggml
}  // namespace lowbit

#endif  // LOWBIT_CODECS_GGML_H_
