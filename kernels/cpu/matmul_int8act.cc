// Int8-activation matmul (MatmulOptions::int8_activations) for int8 and int4 weights: activation
// rows quantized to int8, exact integer dot products per weight segment, a fixed double-precision
// epilogue. AVX-512 VNNI (vpdpbusd) on AVX3_DL; on AVX2 (and AVX3 without VNNI) the VEX AVX-VNNI
// vpdpbusd when the CPU has it (checked once at run time), else vpmaddubsw + vpmaddwd; portable
// Highway int16 madd everywhere else.
//
// Semantics (identical on every target, bit for bit; docs/kernels.md):
//   activation row m: a = absmax(x[m, :]), q[k] = clamp(round_half_even(x[k] * s), -127, 127)
//                     with s = min(f32(127 / a), FLT_MAX) (a == 0: q = 0; a non-finite: the
//                     row's outputs are NaN).
//   weight row n, segment s (int4: its group; int8: kInt8ActSegment elements):
//                     d_s = sum_{k in s} v[n, k] * q[k]  exactly (int32), v = code - 8 (int4) or
//                     the int8 code.
//   int4: y = f32(((sum_s f64(d_s) * f64(scale[n, s])) * f64(a)) / 127)       (s ascending)
//   int8: y = f32(((f64(sum_s d_s) * f64(absmax_w[n])) * f64(a)) / 16129)
// The products f64(d_s) * f64(scale) are exact (|d_s| < 2^22), so FMA contraction cannot change
// the result either.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/matmul_int8act.cc"
#include <algorithm>
#include <limits>

#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/cache_control.h"
#include "hwy/highway.h"
#include "kernels/cpu/codecs-inl.h"
#include "kernels/cpu/int8act_hooks.h"

#if HWY_TARGET == HWY_AVX3_DL || HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3
#include <immintrin.h>
#endif

// The 256-bit x86 path (maddubs, or AVX-VNNI at run time) serves AVX2 and plain AVX3 (AVX-512
// CPUs that Highway does not run as AVX3_DL, e.g. Skylake-X and Cascade Lake).
#undef LOWBIT_X86_256
#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3
#define LOWBIT_X86_256 1
#endif

// AVX-VNNI intrinsics (_mm256_dpbusd_avx_epi32) exist from GCC 11 and Clang 12. Highway 1.0.3
// has no AVX-VNNI target, so the functions that use it add the feature to the target's own.
#ifndef LOWBIT_CAN_AVXVNNI
#if defined(__x86_64__) && ((defined(__clang__) && __clang_major__ >= 12) || \
                            (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 11))
#define LOWBIT_CAN_AVXVNNI 1
#else
#define LOWBIT_CAN_AVXVNNI 0
#endif
#endif
#undef LOWBIT_AVXVNNI_FN
#if defined(LOWBIT_X86_256) && LOWBIT_CAN_AVXVNNI
#define LOWBIT_AVXVNNI_FN __attribute__((target(HWY_TARGET_STR ",avxvnni")))
#endif

// NEON on A64: the int8 dot product sdot (vdotq_s32, ARMv8.2 dotprod, optional before v8.4)
// when the CPU has it (HWCAP_ASIMDDP). Highway 1.0.3's NEON target enables only "+crypto", so
// the functions that use it name the architecture level with both features.
#undef LOWBIT_NEONDOT_FN
#if HWY_TARGET == HWY_NEON && HWY_ARCH_ARM_A64 && defined(__GNUC__)
#define LOWBIT_NEONDOT_FN __attribute__((target("arch=armv8.2-a+dotprod+crypto")))
#endif

// The run-time-detected dot-product extension of this target, if any (int8act_hooks.h).
#undef LOWBIT_DOTEXT_FN
#if defined(LOWBIT_AVXVNNI_FN)
#define LOWBIT_DOTEXT_FN LOWBIT_AVXVNNI_FN
#elif defined(LOWBIT_NEONDOT_FN)
#define LOWBIT_DOTEXT_FN LOWBIT_NEONDOT_FN
#endif

// Highway 1.0.3 compiles AVX3_DL without "avx512vnni" (its target string names only the VEX
// "avxvnni"), although its runtime check requires AVX512-VNNI. Functions on the VNNI path add
// the feature; every caller up to the dispatched entry carries it so that inlining works.
#undef LOWBIT_VNNI_FN
#if HWY_TARGET == HWY_AVX3_DL
#define LOWBIT_VNNI_FN __attribute__((target(HWY_TARGET_STR ",avx512vnni")))
#else
#define LOWBIT_VNNI_FN
#endif

HWY_BEFORE_NAMESPACE();
namespace lowbit::cpu::HWY_NAMESPACE {
namespace {

// How far ahead of the current segment each weight-row stream prefetches (as the float GEMV).
constexpr int64_t kPrefetchBytes = 2048;

// Weight rows and activation rows computed together (R x MB integer accumulators).
constexpr int kRows = 4;
constexpr int kActRows = 4;

// Quantizes rows of x ([m, k_pad] float32, zero-padded past k) to int8 (see the file comment)
// and sums the codes of each segment (segment s covers [s * seg, min((s + 1) * seg, k_pad))).
void QuantizeRows(const float* x, int64_t m, int64_t k_pad, int64_t seg, int8_t* q, int32_t* qsum,
                  float* absmax) {
  const DF df;
  const DI di;
  const hn::Rebind<int8_t, DF> d8;
  const int64_t nseg = (k_pad + seg - 1) / seg;
  for (int64_t r = 0; r < m; ++r) {
    const float* xr = x + r * k_pad;
    int8_t* qr = q + r * k_pad;
    VF amax = hn::Zero(df);
    VF poison = hn::Zero(df);  // becomes NaN when any element is Inf or NaN (v * 0)
    for (int64_t k = 0; k < k_pad; k += kLanes) {
      const VF v = hn::LoadU(df, xr + k);
      amax = hn::Max(amax, hn::Abs(v));
      poison = hn::Add(poison, hn::Mul(v, hn::Zero(df)));
    }
    float a = hn::GetLane(hn::MaxOfLanes(df, amax));
    const float bad = hn::GetLane(hn::SumOfLanes(df, poison));
    if (bad != 0.0f || !(a <= 3.4028234663852886e38f)) a = std::numeric_limits<float>::quiet_NaN();
    absmax[r] = a;
    if (!(a > 0.0f)) {  // zero row or non-finite row: codes 0
      for (int64_t k = 0; k < k_pad; ++k) qr[k] = 0;
    } else {
      // Saturated: 127 / a overflows for a < 127 / FLT_MAX (~3.7e-37), and 0 * inf would be NaN.
      const VF mul = hn::Set(df, std::min(127.0f / a, std::numeric_limits<float>::max()));
      const VF lo = hn::Set(df, -127.0f), hi = hn::Set(df, 127.0f);
      for (int64_t k = 0; k < k_pad; k += kLanes) {
        const VF v = hn::Round(hn::Mul(hn::LoadU(df, xr + k), mul));
        const VI c = hn::ConvertTo(di, hn::Min(hn::Max(v, lo), hi));
        hn::StoreU(hn::DemoteTo(d8, c), d8, qr + k);
      }
    }
    for (int64_t s = 0; s < nseg; ++s) {
      int32_t sum = 0;
      const int64_t end = std::min((s + 1) * seg, k_pad);
      for (int64_t k = s * seg; k < end; ++k) sum += qr[k];
      qsum[r * nseg + s] = sum;
    }
  }
}

// ---- integer dot products over one segment ------------------------------------------------------
// SegmentDots<R, MB>(...) sets dots[r][i] = sum over [kb, ke) of v[row r, k] * q[m0 + i, k]
// (row r of a block: n0 + r * stride).

#if HWY_TARGET == HWY_AVX3_DL
// VNNI: vpdpbusd multiplies unsigned bytes by signed bytes. The weight operand is made unsigned
// by an offset (int4: the nibble itself = v + 8; int8: code ^ 0x80 = v + 128), which the caller's
// per-segment activation sums remove: d = sum (v + off) * q - off * sum q.

// Sums the 16 int32 lanes of each of a, b, c, d: returns [sum a, sum b, sum c, sum d].
LOWBIT_VNNI_FN HWY_INLINE __m128i ReduceFour(__m512i a, __m512i b, __m512i c, __m512i d) {
  const __m512i ab = _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
  const __m512i cd = _mm512_add_epi32(_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
  const __m512i abcd =
      _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd));
  const __m256i h =
      _mm256_add_epi32(_mm512_castsi512_si256(abcd), _mm512_extracti64x4_epi64(abcd, 1));
  return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

template <bool kFourBit>
LOWBIT_VNNI_FN HWY_INLINE __m512i LoadWeights64(const uint8_t* codes, int64_t k) {
  if constexpr (kFourBit) {
    // Two chunks of 16 bytes: low nibbles are elements 0..15, high nibbles 16..31 of a chunk.
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + k / 2));
    const __m256i m = _mm256_set1_epi8(0x0F);
    const __m256i lo = _mm256_and_si256(b, m);
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(b, 4), m);
    const __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
    // 128-bit lanes [lo0, lo1, hi0, hi1] -> natural order [lo0, hi0, lo1, hi1].
    return _mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(3, 1, 2, 0));
  } else {
    return _mm512_xor_si512(_mm512_loadu_si512(codes + k), _mm512_set1_epi8(-128));
  }
}
template <bool kFourBit>
LOWBIT_VNNI_FN HWY_INLINE __m512i LoadWeights32(const uint8_t* codes,
                                                int64_t k) {  // upper half zero
  __m256i v;
  if constexpr (kFourBit) {
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + k / 2));
    const __m128i m = _mm_set1_epi8(0x0F);
    v = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(b, 4), m), _mm_and_si128(b, m));
  } else {
    v = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + k)),
                         _mm256_set1_epi8(-128));
  }
  return _mm512_zextsi256_si512(v);
}

// acc[r][i] += per-lane partial sums of (v + offset) * q over [kb, ke) (kb, ke multiples of 32).
template <bool kFourBit, int R, int MB>
LOWBIT_VNNI_FN HWY_INLINE void AccumulateSegment(const uint8_t* const* codes,
                                                 const int8_t* const* q, int64_t kb, int64_t ke,
                                                 __m512i acc[R][MB]) {
  int64_t k = kb;
  for (; k + 64 <= ke; k += 64) {
    __m512i w[R];
    for (int r = 0; r < R; ++r) w[r] = LoadWeights64<kFourBit>(codes[r], k);
    for (int i = 0; i < MB; ++i) {
      const __m512i xv = _mm512_loadu_si512(q[i] + k);
      for (int r = 0; r < R; ++r) acc[r][i] = _mm512_dpbusd_epi32(acc[r][i], w[r], xv);
    }
  }
  if (k < ke) {  // one 32-element chunk left
    __m512i w[R];
    for (int r = 0; r < R; ++r) w[r] = LoadWeights32<kFourBit>(codes[r], k);
    for (int i = 0; i < MB; ++i) {
      const __m512i xv =
          _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q[i] + k)));
      for (int r = 0; r < R; ++r) acc[r][i] = _mm512_dpbusd_epi32(acc[r][i], w[r], xv);
    }
  }
}

template <bool kFourBit>
constexpr int32_t kVnniOffset = kFourBit ? LOWBIT_INT4_SYM_OFFSET : 128;

template <bool kFourBit, int R, int MB>
LOWBIT_VNNI_FN HWY_INLINE void SegmentDots(const uint8_t* const* codes, const int8_t* const* q,
                                           int64_t kb, int64_t ke, const int32_t* qsum_seg,
                                           int32_t dots[R][MB]) {
  __m512i acc[R][MB];
  for (int r = 0; r < R; ++r) {
    for (int i = 0; i < MB; ++i) acc[r][i] = _mm512_setzero_si512();
  }
  AccumulateSegment<kFourBit, R, MB>(codes, q, kb, ke, acc);
  // Reduce in groups of four accumulators (flattened r-major).
  constexpr int kCount = R * MB;
  alignas(16) int32_t sums[kCount + 3];
  for (int j = 0; j < kCount; j += 4) {
    const __m512i zero = _mm512_setzero_si512();
    const auto get = [&](int idx) { return idx < kCount ? acc[idx / MB][idx % MB] : zero; };
    _mm_store_si128(reinterpret_cast<__m128i*>(sums + j),
                    ReduceFour(get(j), get(j + 1), get(j + 2), get(j + 3)));
  }
  for (int r = 0; r < R; ++r) {
    for (int i = 0; i < MB; ++i) {
      dots[r][i] = sums[r * MB + i] - kVnniOffset<kFourBit> * qsum_seg[i];
    }
  }
}

// int4 weights, four activation rows: the same arithmetic as Block's scalar epilogue, with the
// four activation rows of a weight row in the lanes of one float64 vector. acc += d * scale with
// d * scale exact in float64, so the FMA rounds exactly like the scalar multiply-then-add.
template <int R>
LOWBIT_VNNI_FN HWY_INLINE void Int4GroupsVnni4(const Int8ActProblem& p, int64_t n0,
                                               int64_t stride, int64_t m0,
                                               const uint8_t* const* codes, const int8_t* const* q,
                                               double acc[R][4]) {
  const CpuPacked& w = *p.w;
  const int64_t nseg = p.num_segments;
  __m256d accv[R];
  for (int r = 0; r < R; ++r) accv[r] = _mm256_setzero_pd();
  for (int64_t s = 0; s < nseg; ++s) {
    const int64_t kb = s * p.segment;
    const int64_t ke = std::min(kb + p.segment, w.k_pad);
    __m512i a[R][4];
    for (int r = 0; r < R; ++r) {
      for (int i = 0; i < 4; ++i) a[r][i] = _mm512_setzero_si512();
    }
    AccumulateSegment<true, R, 4>(codes, q, kb, ke, a);
    const __m128i off =
        _mm_mullo_epi32(_mm_set_epi32(p.qsum[(m0 + 3) * nseg + s], p.qsum[(m0 + 2) * nseg + s],
                                      p.qsum[(m0 + 1) * nseg + s], p.qsum[m0 * nseg + s]),
                        _mm_set1_epi32(kVnniOffset<true>));
    for (int r = 0; r < R; ++r) {
      const __m128i d = _mm_sub_epi32(ReduceFour(a[r][0], a[r][1], a[r][2], a[r][3]), off);
      const __m256d scale =
          _mm256_set1_pd(
              static_cast<double>(w.scales[(n0 + r * stride) * w.groups_per_row + s]));
      accv[r] = _mm256_fmadd_pd(_mm256_cvtepi32_pd(d), scale, accv[r]);
    }
  }
  for (int r = 0; r < R; ++r) _mm256_storeu_pd(acc[r], accv[r]);
}

#elif defined(LOWBIT_X86_256)
// 256-bit x86, two exact int8 dot products (the same integers, so the same bits):
//  - AVX-VNNI (VEX vpdpbusd), when the CPU has it: unsigned weight operand by the same offsets as
//    AVX3_DL (int4: the nibble = v + 8; int8: code ^ 0x80 = v + 128), removed by the caller's
//    per-segment activation sums: d = sum (v + off) * q - off * sum q.
//  - otherwise vpmaddubsw (u8 x s8 products, adjacent pairs summed to int16 WITH SIGNED
//    SATURATION) then vpmaddwd by ones (int16 pairs to int32). Saturation never happens because
//    activation codes are in [-127, 127] (QuantizeRows clamps; -128 never occurs):
//      int4: weight operand = nibble in [0, 15], |pair| <= 2 * 15 * 127 = 3810; kInt4PairSums = 8
//            pair sums are added in int16 before one vpmaddwd: 8 * 3810 = 30480 <= 32767.
//      int8: sign trick, no offset: |w| as unsigned (vpabsb; the code -128, which the quantizer
//            never writes but a stored tensor may hold, gives 0x80 = 128 read unsigned) times q
//            with w's sign moved onto it (vpsignb; -q fits as q != -128, w == 0 gives 0):
//            |pair| <= 2 * 128 * 127 = 32512 <= 32767. One vpmaddwd per product vector.
// int32 lanes cannot overflow either: per 32-element chunk a lane gains at most 4 * 255 * 127
// (int8 with VNNI) over at most kInt8ActSegment / 32 = 256 chunks: < 2^25; int4: 4 * 15 * 127
// over at most LOWBIT_INT4_MAX_GROUP / 32 = 128 chunks: < 2^20.

// int16 pair sums of int4 products that fit in an int16 lane (see above): 8 * 3810 <= 32767.
constexpr int64_t kInt4PairSums = 8;

// Rows per inner block: 16 ymm registers hold a 2 x MB block of int32 accumulators (8 for
// MB = 4) with its weights, one activation vector and the constants. Weights decode once per
// row; activations are reloaded (a load, no ALU op) for each row pair. GEMV (MB = 1) takes all R.
template <int R, int MB>
constexpr int kSubRows = (MB == 1 || R < 2) ? R : 2;

// Sums the 8 int32 lanes of each of a, b, c, d: returns [sum a, sum b, sum c, sum d].
HWY_INLINE __m128i ReduceFour256(__m256i a, __m256i b, __m256i c, __m256i d) {
  const __m256i ab = _mm256_add_epi32(_mm256_unpacklo_epi32(a, b), _mm256_unpackhi_epi32(a, b));
  const __m256i cd = _mm256_add_epi32(_mm256_unpacklo_epi32(c, d), _mm256_unpackhi_epi32(c, d));
  const __m256i abcd =
      _mm256_add_epi32(_mm256_unpacklo_epi64(ab, cd), _mm256_unpackhi_epi64(ab, cd));
  return _mm_add_epi32(_mm256_castsi256_si128(abcd), _mm256_extracti128_si256(abcd, 1));
}

// The 32 nibbles of one chunk (16 bytes: low nibbles are elements 0..15, high nibbles 16..31) as
// bytes in element order: the 16 bytes go to both 128-bit halves, the upper half shifted right
// by 4 (shift = [0 x4, 4 x4] per int32 lane), then masked to 4 bits.
HWY_INLINE __m256i Nibbles32(const uint8_t* chunk, __m256i shift, __m256i mask) {
  const __m256i b =
      _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(chunk)));
  return _mm256_and_si256(_mm256_srlv_epi32(b, shift), mask);
}

HWY_INLINE __m256i LoadChunk(const void* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}

// acc[r][i] += int32 lane partial sums of v[r] * q[i] over [kb, ke) by vpmaddubsw + vpmaddwd
// (int4: of (v + 8) * q; the caller subtracts 8 * sum q).
template <bool kFourBit, int R, int MB>
HWY_INLINE void AccumulateMaddubs(const uint8_t* const* codes, const int8_t* const* q, int64_t kb,
                                  int64_t ke, __m256i acc[R][MB]) {
  const __m256i ones = _mm256_set1_epi16(1);
  if constexpr (kFourBit) {
    const __m256i shift = _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4);
    const __m256i mask = _mm256_set1_epi8(0x0F);
    for (int64_t k0 = kb; k0 < ke; k0 += kInt4PairSums * kChunk) {
      const int64_t k1 = std::min(k0 + kInt4PairSums * kChunk, ke);
      __m256i s[R][MB];
      for (int r = 0; r < R; ++r) {
        for (int i = 0; i < MB; ++i) s[r][i] = _mm256_setzero_si256();
      }
      for (int64_t k = k0; k < k1; k += kChunk) {
        __m256i w[R];
        for (int r = 0; r < R; ++r) w[r] = Nibbles32(codes[r] + k / 2, shift, mask);
        for (int i = 0; i < MB; ++i) {
          const __m256i x = LoadChunk(q[i] + k);
          for (int r = 0; r < R; ++r) {
            s[r][i] = _mm256_add_epi16(s[r][i], _mm256_maddubs_epi16(w[r], x));
          }
        }
      }
      for (int r = 0; r < R; ++r) {
        for (int i = 0; i < MB; ++i) {
          acc[r][i] = _mm256_add_epi32(acc[r][i], _mm256_madd_epi16(s[r][i], ones));
        }
      }
    }
  } else {
    for (int64_t k = kb; k < ke; k += kChunk) {
      __m256i w[R], magnitude[R];
      for (int r = 0; r < R; ++r) {
        w[r] = LoadChunk(codes[r] + k);
        magnitude[r] = _mm256_abs_epi8(w[r]);
      }
      for (int i = 0; i < MB; ++i) {
        const __m256i x = LoadChunk(q[i] + k);
        for (int r = 0; r < R; ++r) {
          const __m256i pairs = _mm256_maddubs_epi16(magnitude[r], _mm256_sign_epi8(x, w[r]));
          acc[r][i] = _mm256_add_epi32(acc[r][i], _mm256_madd_epi16(pairs, ones));
        }
      }
    }
  }
}

#ifdef LOWBIT_AVXVNNI_FN
// acc[r][i] += int32 lane partial sums of (v[r] + offset) * q[i] over [kb, ke) by AVX-VNNI.
// Not HWY_INLINE: only callers compiled with AVX-VNNI may inline it (RowsDotExt flattens).
template <bool kFourBit, int R, int MB>
LOWBIT_AVXVNNI_FN inline void AccumulateAvxVnni(const uint8_t* const* codes, const int8_t* const* q,
                                                int64_t kb, int64_t ke, __m256i acc[R][MB]) {
  const __m256i shift = _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4);
  const __m256i mask = _mm256_set1_epi8(0x0F);
  const __m256i flip = _mm256_set1_epi8(-128);
  for (int64_t k = kb; k < ke; k += kChunk) {
    __m256i w[R];
    for (int r = 0; r < R; ++r) {
      w[r] = kFourBit ? Nibbles32(codes[r] + k / 2, shift, mask)
                      : _mm256_xor_si256(LoadChunk(codes[r] + k), flip);
    }
    for (int i = 0; i < MB; ++i) {
      const __m256i x = LoadChunk(q[i] + k);
      for (int r = 0; r < R; ++r) acc[r][i] = _mm256_dpbusd_avx_epi32(acc[r][i], w[r], x);
    }
  }
}
#endif  // LOWBIT_AVXVNNI_FN

// The weight offset each variant's sums carry (see the comment above AccumulateMaddubs).
template <bool kFourBit, bool kDotExt>
constexpr int32_t kX86Offset = kFourBit ? LOWBIT_INT4_SYM_OFFSET : (kDotExt ? 128 : 0);

template <bool kFourBit, int R, int MB, bool kDotExt>
HWY_INLINE void SegmentDots(const uint8_t* const* codes, const int8_t* const* q, int64_t kb,
                            int64_t ke, const int32_t* qsum_seg, int32_t dots[R][MB]) {
  __m256i acc[R][MB];
  for (int r = 0; r < R; ++r) {
    for (int i = 0; i < MB; ++i) acc[r][i] = _mm256_setzero_si256();
  }
  constexpr int kSub = kSubRows<R, MB>;
  for (int r0 = 0; r0 < R; r0 += kSub) {
#ifdef LOWBIT_AVXVNNI_FN
    if constexpr (kDotExt) {
      AccumulateAvxVnni<kFourBit, kSub, MB>(codes + r0, q, kb, ke, acc + r0);
      continue;
    }
#endif
    AccumulateMaddubs<kFourBit, kSub, MB>(codes + r0, q, kb, ke, acc + r0);
  }
  constexpr int kCount = R * MB;
  alignas(16) int32_t sums[kCount + 3];
  for (int j = 0; j < kCount; j += 4) {
    const __m256i zero = _mm256_setzero_si256();
    const auto get = [&](int idx) { return idx < kCount ? acc[idx / MB][idx % MB] : zero; };
    _mm_store_si128(reinterpret_cast<__m128i*>(sums + j),
                    ReduceFour256(get(j), get(j + 1), get(j + 2), get(j + 3)));
  }
  for (int r = 0; r < R; ++r) {
    for (int i = 0; i < MB; ++i) {
      dots[r][i] = sums[r * MB + i] - kX86Offset<kFourBit, kDotExt> * qsum_seg[i];
    }
  }
}

// int4 weights, four activation rows: Block's epilogue with the four activation rows of a weight
// row in the lanes of one float64 vector, as Int4GroupsVnni4 on AVX3_DL (same rounding: the
// product d * scale is exact in float64, so the FMA equals the scalar multiply-then-add).
template <int R, bool kDotExt>
HWY_INLINE void Int4Groups4(const Int8ActProblem& p, int64_t n0, int64_t stride, int64_t m0,
                            const uint8_t* const* codes, const int8_t* const* q, double acc[R][4]) {
  const CpuPacked& w = *p.w;
  const int64_t nseg = p.num_segments;
  constexpr int kSub = kSubRows<R, 4>;
  __m256d accv[R];
  for (int r = 0; r < R; ++r) accv[r] = _mm256_setzero_pd();
  for (int64_t s = 0; s < nseg; ++s) {
    const int64_t kb = s * p.segment;
    const int64_t ke = std::min(kb + p.segment, w.k_pad);
    // Each row block is reduced as soon as it is summed: no accumulator outlives its block.
    __m128i sums[R];
    for (int r0 = 0; r0 < R; r0 += kSub) {
      __m256i a[kSub][4];
      for (int r = 0; r < kSub; ++r) {
        for (int i = 0; i < 4; ++i) a[r][i] = _mm256_setzero_si256();
      }
#ifdef LOWBIT_AVXVNNI_FN
      if constexpr (kDotExt) {
        AccumulateAvxVnni<true, kSub, 4>(codes + r0, q, kb, ke, a);
      } else  // NOLINT: the maddubs call below
#endif
        AccumulateMaddubs<true, kSub, 4>(codes + r0, q, kb, ke, a);
      for (int r = 0; r < kSub; ++r) {
        sums[r0 + r] = ReduceFour256(a[r][0], a[r][1], a[r][2], a[r][3]);
      }
    }
    const __m128i off =
        _mm_mullo_epi32(_mm_set_epi32(p.qsum[(m0 + 3) * nseg + s], p.qsum[(m0 + 2) * nseg + s],
                                      p.qsum[(m0 + 1) * nseg + s], p.qsum[m0 * nseg + s]),
                        _mm_set1_epi32(LOWBIT_INT4_SYM_OFFSET));
    for (int r = 0; r < R; ++r) {
      const __m128i d = _mm_sub_epi32(sums[r], off);
      const __m256d scale =
          _mm256_set1_pd(
              static_cast<double>(w.scales[(n0 + r * stride) * w.groups_per_row + s]));
      accv[r] = _mm256_fmadd_pd(_mm256_cvtepi32_pd(d), scale, accv[r]);
    }
  }
  for (int r = 0; r < R; ++r) _mm256_storeu_pd(acc[r], accv[r]);
}

#else  // portable: int16 lanes, exact madd (ReorderWidenMulAccumulate) into int32

using D16 = hn::CappedTag<int16_t, 16>;
using D32 = hn::Repartition<int32_t, D16>;
using V16 = hn::Vec<D16>;
using V32 = hn::Vec<D32>;
constexpr size_t kLanes16 = hn::MaxLanes(D16());
static_assert(16 % kLanes16 == 0, "int16 lanes must divide 16");
constexpr size_t kVecsPerChunk = 32 / kLanes16;

// Weight values v of one 32-element chunk as int16 vectors, in natural element order.
template <bool kFourBit>
HWY_INLINE void LoadWeightsChunk(const uint8_t* codes, int64_t k, V16* out) {
  const D16 d16;
  if constexpr (kFourBit) {
    const hn::Rebind<uint8_t, D16> du8;
    const V16 offset = hn::Set(d16, LOWBIT_INT4_SYM_OFFSET);
    for (size_t p = 0; p < 16; p += kLanes16) {
      const V16 b = hn::BitCast(
          d16, hn::PromoteTo(hn::RebindToUnsigned<D16>(), hn::LoadU(du8, codes + k / 2 + p)));
      out[p / kLanes16] = hn::Sub(hn::And(b, hn::Set(d16, 0x0F)), offset);
      out[(16 + p) / kLanes16] = hn::Sub(hn::ShiftRight<4>(b), offset);
    }
  } else {
    const hn::Rebind<int8_t, D16> di8;
    for (size_t p = 0; p < 32; p += kLanes16) {
      out[p / kLanes16] =
          hn::PromoteTo(d16, hn::LoadU(di8, reinterpret_cast<const int8_t*>(codes + k + p)));
    }
  }
}

#ifdef LOWBIT_NEONDOT_FN
// sdot: 4 int8 products summed into each int32 lane, exact (|sum| <= 4 * 128 * 127 per step).
// Weight values v of 16 elements: int4 from a chunk's low or high nibbles minus 8, int8 as
// stored; activations are the same 16 elements of q.
template <bool kFourBit, int R, int MB>
LOWBIT_NEONDOT_FN HWY_INLINE void SegmentDotsSdot(const uint8_t* const* codes,
                                                  const int8_t* const* q, int64_t kb, int64_t ke,
                                                  int32_t dots[R][MB]) {
  int32x4_t acc[R][MB];
  for (int r = 0; r < R; ++r) {
    for (int i = 0; i < MB; ++i) acc[r][i] = vdupq_n_s32(0);
  }
  for (int64_t k = kb; k < ke; k += kChunk) {
    int8x16_t w[R][2];
    for (int r = 0; r < R; ++r) {
      if constexpr (kFourBit) {
        const uint8x16_t b = vld1q_u8(codes[r] + k / 2);
        const int8x16_t offset = vdupq_n_s8(LOWBIT_INT4_SYM_OFFSET);
        w[r][0] = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(b, vdupq_n_u8(0x0F))), offset);
        w[r][1] = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(b, 4)), offset);
      } else {
        w[r][0] = vld1q_s8(reinterpret_cast<const int8_t*>(codes[r] + k));
        w[r][1] = vld1q_s8(reinterpret_cast<const int8_t*>(codes[r] + k + 16));
      }
    }
    for (int i = 0; i < MB; ++i) {
      const int8x16_t x0 = vld1q_s8(q[i] + k), x1 = vld1q_s8(q[i] + k + 16);
      for (int r = 0; r < R; ++r) {
        acc[r][i] = vdotq_s32(vdotq_s32(acc[r][i], w[r][0], x0), w[r][1], x1);
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int i = 0; i < MB; ++i) dots[r][i] = vaddvq_s32(acc[r][i]);
  }
}
#endif  // LOWBIT_NEONDOT_FN

template <bool kFourBit, int R, int MB, bool kDotExt = false>
HWY_INLINE void SegmentDots(const uint8_t* const* codes, const int8_t* const* q, int64_t kb,
                            int64_t ke, const int32_t* /*qsum_seg*/, int32_t dots[R][MB]) {
#ifdef LOWBIT_NEONDOT_FN
  if constexpr (kDotExt) {
    SegmentDotsSdot<kFourBit, R, MB>(codes, q, kb, ke, dots);
    return;
  }
#endif
  const D16 d16;
  const D32 d32;
  const hn::Rebind<int8_t, D16> di8;
  V32 acc0[R][MB], acc1[R][MB];
  for (int r = 0; r < R; ++r) {
    for (int i = 0; i < MB; ++i) acc0[r][i] = acc1[r][i] = hn::Zero(d32);
  }
  for (int64_t k = kb; k < ke; k += kChunk) {
    V16 w[R][kVecsPerChunk];
    for (int r = 0; r < R; ++r) LoadWeightsChunk<kFourBit>(codes[r], k, w[r]);
    for (int i = 0; i < MB; ++i) {
      for (size_t v = 0; v < kVecsPerChunk; ++v) {
        const V16 xv = hn::PromoteTo(d16, hn::LoadU(di8, q[i] + k + v * kLanes16));
        for (int r = 0; r < R; ++r) {
          acc0[r][i] = hn::ReorderWidenMulAccumulate(d32, w[r][v], xv, acc0[r][i], acc1[r][i]);
        }
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int i = 0; i < MB; ++i) {
      dots[r][i] = hn::GetLane(hn::SumOfLanes(d32, hn::Add(acc0[r][i], acc1[r][i])));
    }
  }
}

#endif  // HWY_TARGET == HWY_AVX3_DL

// y[m0 .. m0 + MB) x [n0 .. n0 + R) of one call. kDotExt: the 256-bit x86 path uses AVX-VNNI
// (instantiated only under RowsDotExt, which adds the feature); ignored on other targets.
template <bool kFourBit, int R, int MB, bool kDotExt>
LOWBIT_VNNI_FN void Block(const Int8ActProblem& p, int64_t n0, int64_t stride, int64_t m0) {
  const CpuPacked& w = *p.w;
  const int64_t nseg = p.num_segments;
  const uint8_t* codes[R];
  const int8_t* q[MB];
  for (int r = 0; r < R; ++r) codes[r] = w.codes.data() + (n0 + r * stride) * w.row_bytes;
  for (int i = 0; i < MB; ++i) q[i] = p.q + (m0 + i) * w.k_pad;
  double acc[R][MB] = {};
  int64_t dot64[R][MB] = {};
  int32_t qsum_seg[MB];
#if HWY_TARGET == HWY_AVX3_DL
  if constexpr (kFourBit && MB == 4) {
    Int4GroupsVnni4<R>(p, n0, stride, m0, codes, q, acc);
  } else  // NOLINT: the generic loop below
#elif defined(LOWBIT_X86_256)
  if constexpr (kFourBit && MB == 4) {
    Int4Groups4<R, kDotExt>(p, n0, stride, m0, codes, q, acc);
  } else  // NOLINT: the generic loop below
#endif
    for (int64_t s = 0; s < nseg; ++s) {
      const int64_t kb = s * p.segment;
      const int64_t ke = std::min(kb + p.segment, w.k_pad);
      // Each row stream prefetches kPrefetchBytes ahead (a prefetch never faults).
      for (int r = 0; r < R; ++r) {
        hwy::Prefetch(codes[r] + (kFourBit ? kb / 2 : kb) + kPrefetchBytes);
      }
      for (int i = 0; i < MB; ++i) qsum_seg[i] = p.qsum[(m0 + i) * nseg + s];
      int32_t dots[R][MB];
#if defined(LOWBIT_X86_256) || defined(LOWBIT_NEONDOT_FN)
      SegmentDots<kFourBit, R, MB, kDotExt>(codes, q, kb, ke, qsum_seg, dots);
#else
      SegmentDots<kFourBit, R, MB>(codes, q, kb, ke, qsum_seg, dots);
#endif
      for (int r = 0; r < R; ++r) {
        for (int i = 0; i < MB; ++i) {
          if constexpr (kFourBit) {
            acc[r][i] += static_cast<double>(dots[r][i]) *
                         static_cast<double>(
                             w.scales[(n0 + r * stride) * w.groups_per_row + s]);
          } else {
            dot64[r][i] += dots[r][i];
          }
        }
      }
    }
  const QuantState& st = w.state;
  for (int r = 0; r < R; ++r) {
    for (int i = 0; i < MB; ++i) {
      const double a = static_cast<double>(p.absmax[m0 + i]);
      double v;
      if constexpr (kFourBit) {
        v = (acc[r][i] * a) / 127.0;
      } else {
        const int64_t stat = st.granularity == Granularity::kTensor ? 0 : n0 + r * stride;
        const double aw = static_cast<double>(st.scales[stat]);
        v = ((static_cast<double>(dot64[r][i]) * aw) * a) / 16129.0;
      }
      p.y[(m0 + i) * w.rows + n0 + r * stride] = static_cast<float>(v);
    }
  }
}

template <bool kFourBit, int R, bool kDotExt>
LOWBIT_VNNI_FN void RowBlock(const Int8ActProblem& p, int64_t n0, int64_t stride) {
  int64_t m0 = 0;
  for (; m0 + kActRows <= p.m; m0 += kActRows) {
    Block<kFourBit, R, kActRows, kDotExt>(p, n0, stride, m0);
  }
  switch (p.m - m0) {
    case 3:
      Block<kFourBit, R, 3, kDotExt>(p, n0, stride, m0);
      break;
    case 2:
      Block<kFourBit, R, 2, kDotExt>(p, n0, stride, m0);
      break;
    case 1:
      Block<kFourBit, R, 1, kDotExt>(p, n0, stride, m0);
      break;
    default:
      break;
  }
}

template <bool kFourBit, bool kDotExt = false>
LOWBIT_VNNI_FN void Rows(const Int8ActProblem& p, int64_t n_begin, int64_t n_end) {
  if (p.m == 1) {
    // GEMV: the kRows rows of a block come from kRows distant slices of the range, walked in
    // lockstep, so one thread reads kRows sequential DRAM streams instead of one (as the float
    // GEMV does); a row's result does not depend on its block.
    const int64_t slice = (n_end - n_begin) / kRows;
    for (int64_t t = 0; t < slice; ++t) RowBlock<kFourBit, kRows, kDotExt>(p, n_begin + t, slice);
    for (int64_t n = n_begin + kRows * slice; n < n_end; ++n) {
      RowBlock<kFourBit, 1, kDotExt>(p, n, 1);
    }
    return;
  }
  int64_t n = n_begin;
  for (; n + kRows <= n_end; n += kRows) RowBlock<kFourBit, kRows, kDotExt>(p, n, 1);
  for (; n < n_end; ++n) RowBlock<kFourBit, 1, kDotExt>(p, n, 1);
}

#ifdef LOWBIT_DOTEXT_FN
// Rows with the dot-product extension (AVX-VNNI or NEON sdot): `flatten` inlines the whole
// chain (RowBlock, Block, SegmentDots, the accumulate loop) into this function, which alone
// carries the feature, so vpdpbusd / sdot only ever run after the run-time check in
// GemmInt8ActImpl.
template <bool kFourBit>
LOWBIT_DOTEXT_FN __attribute__((flatten)) void RowsDotExt(const Int8ActProblem& p,
                                                            int64_t n_begin, int64_t n_end) {
  Rows<kFourBit, true>(p, n_begin, n_end);
}
#endif

}  // namespace

void QuantizeActivationsInt8Impl(const float* x, int64_t m, int64_t k_pad, int64_t segment,
                                 int8_t* q, int32_t* qsum, float* absmax) {
  QuantizeRows(x, m, k_pad, segment, q, qsum, absmax);
}

LOWBIT_VNNI_FN void GemmInt8ActImpl(const Int8ActProblem& p, int64_t n_begin, int64_t n_end) {
#ifdef LOWBIT_DOTEXT_FN
  if (Int8ActUsesDotExtension()) {
    if (p.w->kind == CodeKind::kLut4) {
      RowsDotExt<true>(p, n_begin, n_end);
    } else {
      RowsDotExt<false>(p, n_begin, n_end);
    }
    return;
  }
#endif
  if (p.w->kind == CodeKind::kLut4) {
    Rows<true>(p, n_begin, n_end);
  } else {
    Rows<false>(p, n_begin, n_end);
  }
}

}  // namespace lowbit::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#if defined(__x86_64__) && LOWBIT_CAN_AVXVNNI
#include <cpuid.h>
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif
#include <atomic>

namespace lowbit::cpu {
namespace {

// Set by SetInt8ActDotExtensionDisabledForTest; relaxed: tests set it between matmul calls.
std::atomic<bool> dot_ext_disabled_for_test{false};

bool DetectDotExtension() {
#if defined(__aarch64__) && defined(__linux__)
  return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#elif defined(__x86_64__) && LOWBIT_CAN_AVXVNNI
  // AVX-VNNI: CPUID leaf 7, subleaf 1, EAX bit 4. The AVX (YMM) state it needs is enabled
  // whenever Highway dispatches to AVX2 or AVX3, the only targets that read this.
  constexpr unsigned kDotExtBit = 1u << 4;
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx)) return false;
  return (eax & kDotExtBit) != 0;
#else
  return false;
#endif
}

}  // namespace

bool CpuHasInt8DotExtension() {
  static const bool has = DetectDotExtension();
  return has;
}

void SetInt8ActDotExtensionDisabledForTest(bool disabled) {
  dot_ext_disabled_for_test.store(disabled, std::memory_order_relaxed);
}

bool Int8ActUsesDotExtension() {
  return CpuHasInt8DotExtension() && !dot_ext_disabled_for_test.load(std::memory_order_relaxed);
}

HWY_EXPORT(QuantizeActivationsInt8Impl);
HWY_EXPORT(GemmInt8ActImpl);

void QuantizeActivationsInt8(const float* x, int64_t m, int64_t k_pad, int64_t segment, int8_t* q,
                             int32_t* qsum, float* absmax) {
  HWY_DYNAMIC_DISPATCH(QuantizeActivationsInt8Impl)(x, m, k_pad, segment, q, qsum, absmax);
}

void GemmInt8Act(const Int8ActProblem& p, int64_t n_begin, int64_t n_end) {
  HWY_DYNAMIC_DISPATCH(GemmInt8ActImpl)(p, n_begin, n_end);
}

}  // namespace lowbit::cpu
#endif  // HWY_ONCE
