// Float-path matmul kernels for 4-bit codebook/integer weights (nf4, fp4, int4, int4_asym),
// compiled for every Highway target.
//
// GEMV (M = 1): each row's codes are read one vector at a time as kLanes 32-bit lanes of eight
// nibbles; nibble j of every lane is decoded with one Lut16 lookup (codecs-inl.h: a vpermps on
// AVX-512, two vpermps and a blend on AVX2, a tbl on NEON, svtbl on SVE) after a shift, and
// multiplied by x permuted once per call into that lane order (PermuteXForLut4Gemv), so nothing
// is widened or masked. GEMM (M > 1): AVX-512 decodes k-major tiles for an outer-product
// micro-kernel (matmul-inl.h); other targets decode row tiles with the same Lut16.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/matmul_lut4.cc"
#include <cstring>
#include <type_traits>

#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/cache_control.h"
#include "hwy/highway.h"
#include "kernels/cpu/matmul-inl.h"

HWY_BEFORE_NAMESPACE();
namespace lowbit::cpu::HWY_NAMESPACE {

// Codes per GEMV block: one vector of kLanes 32-bit lanes, eight nibbles each (cpu_kernels.h:
// Lut4GemvElement). The block must be whole chunks, so targets with fewer than 4 float lanes
// (HWY_SCALAR) use the generic kernel.
inline constexpr int64_t kGemvBlock = 8 * static_cast<int64_t>(kLanes);
inline constexpr bool kHasGemvLut4 = kLanes >= 4;

// Rows decoded together: each is its own sequential stream (one thread reads several streams
// faster than one) and they share every load of x. Each row holds a code vector and a partial
// sum in registers: 8 rows fit the 32 registers of AVX-512 and A64 NEON, 4 the 16 of AVX2 and
// SSE4 (8 would spill every iteration).
inline constexpr int kLut4GemvRows = (kLanes == 16 || HWY_ARCH_ARM_A64) ? 8 : 4;

// ---- block decoders of the GEMV ----------------------------------------------------------------
// A decoder turns one block (kGemvBlock codes, kGemvBlock / 2 bytes of a row) into 8 vectors of
// exact values lut[code] and fixes the order of their lanes; x is permuted once per call to the
// same order (PermuteX). Interface:
//   static int64_t Element(int64_t pos): the element of a block that lane pos % kLanes of
//       vector pos / kLanes holds;
//   Block(codes, lanes, fn): decodes the block at `codes`, of which only the first `lanes`
//       32-bit lanes (4 bytes each) are read for the partial last block, and calls fn(j, v) for
//       the vectors j = 0..7 in order.

// fn(std::integral_constant<int, J>()) for J = 0..7, unrolled (shift counts are immediates).
template <int J = 0, class Fn>
HWY_INLINE void ForEachNibble(const Fn& fn) {
  if constexpr (J < 8) {
    fn(std::integral_constant<int, J>());
    ForEachNibble<J + 1>(fn);
  }
}

// Decoders that read the block as one vector of 32-bit lanes: vector j holds nibble j (bits
// 4j..4j+3) of every lane (cpu_kernels.h: Lut4GemvElement). Derived supplies Prepare(dw), once
// per block, and Nibble<J>(dw).
template <class Derived>
struct LaneNibbles {
  static int64_t Element(int64_t pos) {
    return Lut4GemvElement(pos / static_cast<int64_t>(kLanes), pos % static_cast<int64_t>(kLanes));
  }
  template <class Fn>
  HWY_INLINE void Block(const uint8_t* codes, size_t lanes, const Fn& fn) const {
    const DU du;
    const uint32_t* src = reinterpret_cast<const uint32_t*>(codes);
    VU dw = lanes == kLanes ? hn::LoadU(du, src) : hn::MaskedLoad(hn::FirstN(du, lanes), du, src);
    const Derived& self = static_cast<const Derived&>(*this);
    dw = self.Prepare(dw);
    ForEachNibble([&](auto j) {
      constexpr int kJ = decltype(j)::value;
      fn(kJ, self.template Nibble<kJ>(dw));
    });
  }
};
struct TableNibbles : LaneNibbles<TableNibbles> {  // any 16-entry table, through Lut16
  explicit TableNibbles(const float* table) : lut(table) {}
  HWY_INLINE VU Prepare(VU dw) const { return dw; }
  template <int J>
  HWY_INLINE VF Nibble(VU dw) const {
    return lut(hn::ShiftRight<4 * J>(dw));
  }
  Lut16 lut;
};
struct SignedNibbles : LaneNibbles<SignedNibbles> {  // lut[c] = c - 8 (int4): c ^ 8 sign-extended
  HWY_INLINE VU Prepare(VU dw) const { return hn::Xor(dw, hn::Set(DU(), 0x88888888u)); }
  template <int J>
  HWY_INLINE VF Nibble(VU dw) const {
    const VI shifted = hn::ShiftLeft<28 - 4 * J>(hn::BitCast(DI(), dw));
    return hn::ConvertTo(DF(), hn::ShiftRight<28>(shifted));
  }
};
struct UnsignedNibbles : LaneNibbles<UnsignedNibbles> {  // lut[c] = c (int4_asym)
  HWY_INLINE VU Prepare(VU dw) const { return dw; }
  template <int J>
  HWY_INLINE VF Nibble(VU dw) const {
    const VU v = hn::ShiftRight<4 * J>(dw);
    return hn::ConvertTo(DF(), hn::BitCast(DI(), J == 7 ? v : hn::And(v, hn::Set(DU(), 15))));
  }
};

#if HWY_TARGET == HWY_AVX2
// AVX2, codebook tables: the four bytes of every table value are four 16-byte planes, so one
// in-lane vpshufb looks up one byte of 32 values, and two rounds of byte/word unpacks assemble
// the floats: per 32 codes 12 in-lane shuffles (two ports on Zen 3 and Golden Cove) instead of
// 8 lane-crossing vpermps and 4 blends (TableNibbles). A 64-code block is two chunks; chunk c's
// 16 bytes go to both 128-bit halves, low nibbles are looked up in the low half and high
// nibbles (elements 16..31) in the high one, and vector 4c + q holds elements 4q..4q+3 and
// 16+4q..16+4q+3 of the chunk.
struct PlaneNibbles {
  static int64_t Element(int64_t pos) {
    const int64_t j = pos / 8, i = pos % 8;
    return (j / 4) * kChunk + 4 * (j % 4) + (i < 4 ? i : 16 + i - 4);
  }
  explicit PlaneNibbles(const float* table) {
    alignas(16) uint8_t planes[4][16];
    for (int c = 0; c < 16; ++c) {
      uint32_t bits;
      std::memcpy(&bits, table + c, sizeof(bits));
      for (int b = 0; b < 4; ++b) planes[b][c] = static_cast<uint8_t>(bits >> (8 * b));
    }
    for (int b = 0; b < 4; ++b) {
      plane[b] = _mm256_broadcastsi128_si256(
          _mm_load_si128(reinterpret_cast<const __m128i*>(planes[b])));
    }
  }
  template <class Fn>
  HWY_INLINE void Block(const uint8_t* codes, size_t lanes, const Fn& fn) const {
    const __m256i shift = _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4);
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    for (int c = 0; c < 2; ++c) {
      if (c == 1 && lanes < kLanes) break;  // the partial last block is one chunk
      const __m256i bytes = _mm256_broadcastsi128_si256(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + 16 * c)));
      const __m256i idx = _mm256_and_si256(_mm256_srlv_epi32(bytes, shift), low4);
      const __m256i b0 = _mm256_shuffle_epi8(plane[0], idx);
      const __m256i b1 = _mm256_shuffle_epi8(plane[1], idx);
      const __m256i b2 = _mm256_shuffle_epi8(plane[2], idx);
      const __m256i b3 = _mm256_shuffle_epi8(plane[3], idx);
      const __m256i lo01 = _mm256_unpacklo_epi8(b0, b1), hi01 = _mm256_unpackhi_epi8(b0, b1);
      const __m256i lo23 = _mm256_unpacklo_epi8(b2, b3), hi23 = _mm256_unpackhi_epi8(b2, b3);
      fn(4 * c + 0, VF{_mm256_castsi256_ps(_mm256_unpacklo_epi16(lo01, lo23))});
      fn(4 * c + 1, VF{_mm256_castsi256_ps(_mm256_unpackhi_epi16(lo01, lo23))});
      fn(4 * c + 2, VF{_mm256_castsi256_ps(_mm256_unpacklo_epi16(hi01, hi23))});
      fn(4 * c + 3, VF{_mm256_castsi256_ps(_mm256_unpackhi_epi16(hi01, hi23))});
    }
  }
  __m256i plane[4];
};
#endif  // HWY_TARGET == HWY_AVX2

// Integer tables (CpuPacked::lut_offset) decode with shifts and a convert where that is cheaper
// than a lookup (all targets but AVX-512, whose single vpermps already is).
inline constexpr bool kArithmeticNibbles = HWY_TARGET > HWY_AVX3;

// Group layouts the kernel folds scales for: kWholeBlocks when every block lies in one group
// (group % kGemvBlock == 0, or one group per row), else the 32- or 64-code groups of a block
// (LaneNibbles only: lane d of a block holds chunk d / 4, so lane d belongs to group d / 4 or
// d / 8).
enum GroupMode : int { kWholeBlocks = 0, kGroup32 = 32, kGroup64 = 64 };

// The group mode of w's GEMV, or -1 when the kernel has none for its group size.
int GemvGroupMode(const CpuPacked& w) {
  if (w.group % kGemvBlock == 0 || w.group >= w.k_pad) return kWholeBlocks;
  if (kGemvBlock > 64 && w.group == 64) return kGroup64;
  if (kGemvBlock > 32 && w.group == 32) return kGroup32;
  return -1;
}

// Calls fn(decoder) with the decoder the GEMV uses for w (the same for PermuteX and the kernel).
template <class Fn>
HWY_INLINE void WithDecoder(const CpuPacked& w, const Fn& fn) {
  if (kArithmeticNibbles && w.lut_offset == LOWBIT_INT4_SYM_OFFSET) return fn(SignedNibbles());
  if (kArithmeticNibbles && w.lut_offset == 0) return fn(UnsignedNibbles());
#if HWY_TARGET == HWY_AVX2
  if (GemvGroupMode(w) == kWholeBlocks) return fn(PlaneNibbles(w.lut));
#endif
  fn(TableNibbles(w.lut));
}

// How far ahead of its loads each row stream prefetches (also past the row end: the next row of
// a slice follows in memory). A prefetch never faults, so reading past the buffer is harmless.
inline constexpr int64_t kPrefetchBytes = 2048;

// y[n0 + r * stride] (r < R) = row · x for M = 1 (see the file comment). Each row is computed by
// the same operations in the same order whatever R, so results never depend on the task split.
template <int R, int kMode, class Decoder>
HWY_INLINE void GemvLut4Rows(const GemmProblem& p, const Decoder& decoder, int64_t n0,
                             int64_t stride) {
  const CpuPacked& w = *p.w;
  const DF df;
  const float* HWY_RESTRICT xp = p.x_lut4;
  const int64_t k_pad = w.k_pad;
  const int64_t full_blocks = k_pad / kGemvBlock;
  const int64_t blocks = (k_pad + kGemvBlock - 1) / kGemvBlock;
  // 32-bit lanes holding codes in the last, partial block (k_pad is a multiple of 32 codes).
  const size_t tail_lanes = static_cast<size_t>((k_pad % kGemvBlock) / 8);
  const int64_t gpr = w.groups_per_row;
  const uint8_t* codes[R];
  const float* scales[R];
  VF acc[R], part[R];
  for (int r = 0; r < R; ++r) {
    codes[r] = w.codes.data() + (n0 + r * stride) * w.row_bytes;
    scales[r] = w.scales.data() + (n0 + r * stride) * gpr;
    acc[r] = part[r] = hn::Zero(df);
  }
  const int64_t blocks_per_group =
      (kMode != kWholeBlocks || w.group >= k_pad) ? blocks : w.group / kGemvBlock;

  int64_t blk = 0;
  for (int64_t g = 0; blk < blocks; ++g) {
    const int64_t group_end = (kMode == kWholeBlocks) ? std::min(blocks, blk + blocks_per_group)
                                                      : blocks;
    for (; blk < group_end; ++blk) {
      const size_t lanes = HWY_LIKELY(blk < full_blocks) ? kLanes : tail_lanes;
      const float* HWY_RESTRICT xb = xp + blk * kGemvBlock;
      // Unrolled, so that every row's partial sum stays in a register.
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const uint8_t* src = codes[r] + blk * (kGemvBlock / 2);
        hwy::Prefetch(src + kPrefetchBytes);
        decoder.Block(src, lanes, [&](int j, VF v) {
          part[r] = hn::MulAdd(v, hn::LoadU(df, xb + kLanes * j), part[r]);
        });
      }
      if constexpr (kMode != kWholeBlocks) {
        // Statistics of the block's groups, spread over the lanes they cover.
        alignas(64) static constexpr int32_t kLaneGroup[2][16] = {
            {0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3},   // 32-code groups: d / 4
            {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1}};  // 64-code groups: d / 8
        const auto lane_group = hn::SetTableIndices(df, kLaneGroup[kMode == kGroup64]);
        constexpr int64_t kPerBlock = kGemvBlock / kMode;
        const int64_t g0 = blk * kPerBlock;
        const auto mask = hn::FirstN(df, static_cast<size_t>(std::min(kPerBlock, gpr - g0)));
        for (int r = 0; r < R; ++r) {
          const VF sv = hn::TableLookupLanes(hn::MaskedLoad(mask, df, scales[r] + g0), lane_group);
          acc[r] = hn::MulAdd(part[r], sv, acc[r]);
          part[r] = hn::Zero(df);
        }
      }
    }
    if constexpr (kMode == kWholeBlocks) {
      for (int r = 0; r < R; ++r) {
        acc[r] = hn::MulAdd(part[r], hn::Set(df, scales[r][g]), acc[r]);
        part[r] = hn::Zero(df);
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    float corr = 0.0f;  // asymmetric: sum over groups of scale * zero * sum(x in group)
    if (!w.zeros.empty()) {
      const float* zeros = w.zeros.data() + (n0 + r * stride) * gpr;
      for (int64_t g = 0; g < gpr; ++g) corr += scales[r][g] * zeros[g] * p.xsum[g];
    }
    p.y[n0 + r * stride] = ReduceSum(acc[r]) - corr;
  }
}

// The range is cut into kLut4GemvRows equal slices walked in lockstep, so the rows decoded
// together come from kLut4GemvRows distant sequential streams (a single thread reads several
// streams from DRAM much faster than one); leftover rows run one at a time.
template <int kMode, class Decoder>
void GemvLut4With(const GemmProblem& p, const Decoder& decoder, int64_t n_begin, int64_t n_end) {
  const int64_t slice = (n_end - n_begin) / kLut4GemvRows;
  for (int64_t t = 0; t < slice; ++t) {
    GemvLut4Rows<kLut4GemvRows, kMode>(p, decoder, n_begin + t, slice);
  }
  for (int64_t n = n_begin + kLut4GemvRows * slice; n < n_end; ++n) {
    GemvLut4Rows<1, kMode>(p, decoder, n, 0);
  }
}

// True when the LUT4 GEMV handled the call (a target with one and a supported group layout).
bool TryGemvLut4(const GemmProblem& p, int64_t n_begin, int64_t n_end) {
  if constexpr (!kHasGemvLut4) {
    return false;
  } else {
    if (p.m != 1 || p.x_lut4 == nullptr) return false;
    const int mode = GemvGroupMode(*p.w);
    if (mode < 0) return false;
    WithDecoder(*p.w, [&](const auto& decoder) {
      if (mode == kWholeBlocks) {
        GemvLut4With<kWholeBlocks>(p, decoder, n_begin, n_end);
      } else if (mode == kGroup64) {
        GemvLut4With<kGroup64>(p, decoder, n_begin, n_end);
      } else {
        GemvLut4With<kGroup32>(p, decoder, n_begin, n_end);
      }
    });
    return true;
  }
}

// Rows shorter than one block (K = 64 on AVX-512) would decode a half-empty block and pay for
// the permutation of x; the chunk decoder of GemmRows (no permutation) is faster there (64x64
// nf4 GEMV on AVX3_DL: 0.57 -> 0.33 us; from K = 128 up the blocked GEMV is as fast or faster).
inline constexpr int64_t kMinGemvLut4K = kGemvBlock;

// A decoder's Element(pos) for every position of a block, as a table (the permutation runs on
// every GEMV call; a table lookup is cheaper than the index arithmetic).
struct BlockOrder {
  explicit BlockOrder(int64_t (*element)(int64_t)) {
    for (int64_t pos = 0; pos < kGemvBlock; ++pos) {
      this->element[pos] = static_cast<int16_t>(element(pos));
    }
  }
  int16_t element[kGemvBlock];
};

// xp = x in the order w's GEMV decoder reads it (see WithDecoder); false without a LUT4 GEMV.
bool PermuteXForLut4GemvImpl(const CpuPacked& w, const float* x, float* xp) {
  if constexpr (!kHasGemvLut4) {
    return false;
  } else {
    if (GemvGroupMode(w) < 0 || w.k_pad < kMinGemvLut4K) return false;
    WithDecoder(w, [&](const auto& decoder) {
      using Decoder = std::decay_t<decltype(decoder)>;
      static const BlockOrder order(&Decoder::Element);  // per target and decoder, built once
      const int64_t full = w.k_pad / kGemvBlock * kGemvBlock;
      for (int64_t b = 0; b < full; b += kGemvBlock) {
        for (int64_t pos = 0; pos < kGemvBlock; ++pos) xp[b + pos] = x[b + order.element[pos]];
      }
      if (full < w.k_pad) {  // the partial last block, through a zero-padded copy
        float tail[kGemvBlock] = {};
        std::memcpy(tail, x + full, static_cast<size_t>(w.k_pad - full) * sizeof(float));
        for (int64_t pos = 0; pos < kGemvBlock; ++pos) xp[full + pos] = tail[order.element[pos]];
      }
    });
    return true;
  }
}

void GemmLut4Impl(const GemmProblem& p, int64_t n_begin, int64_t n_end) {
  if (TryGemvLut4(p, n_begin, n_end)) return;
#if LOWBIT_TILE_GEMM
  if (p.m > 1) {
    GemmTileT(p, Lut4Raw{*p.w, Lut16(p.w->lut)}, n_begin, n_end);
    return;
  }
#endif
  GemmRows<Lut4Chunk>(p, n_begin, n_end);
}

}  // namespace lowbit::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace lowbit::cpu {

HWY_EXPORT(GemmLut4Impl);
HWY_EXPORT(PermuteXForLut4GemvImpl);

bool PermuteXForLut4Gemv(const CpuPacked& w, const float* x, float* xp) {
  return HWY_DYNAMIC_DISPATCH(PermuteXForLut4GemvImpl)(w, x, xp);
}

void GemmLut4(const GemmProblem& p, int64_t n_begin, int64_t n_end) {
  HWY_DYNAMIC_DISPATCH(GemmLut4Impl)(p, n_begin, n_end);
}

}  // namespace lowbit::cpu
#endif  // HWY_ONCE
