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

// Nibble decoders of the GEMV: Prepare(dw) once per loaded code vector, then Nibble<J>(v) gives
// the value lut[nibble J] of every lane, exactly. Integer tables (CpuPacked::lut_offset) decode
// with shifts and a convert instead of a lookup, on targets where that is cheaper than Lut16
// (all but AVX-512, whose one vpermps already is).
struct TableNibbles {  // any 16-entry table
  Lut16 lut;
  HWY_INLINE VU Prepare(VU dw) const { return dw; }
  template <int J>
  HWY_INLINE VF Nibble(VU dw) const {
    return lut(hn::ShiftRight<4 * J>(dw));
  }
};
struct SignedNibbles {  // lut[c] = c - 8 (int4): nibble c ^ 8, sign-extended, is c - 8
  HWY_INLINE VU Prepare(VU dw) const { return hn::Xor(dw, hn::Set(DU(), 0x88888888u)); }
  template <int J>
  HWY_INLINE VF Nibble(VU dw) const {
    return hn::ConvertTo(DF(), hn::ShiftRight<28>(hn::ShiftLeft<28 - 4 * J>(hn::BitCast(DI(), dw))));
  }
};
struct UnsignedNibbles {  // lut[c] = c (int4_asym)
  HWY_INLINE VU Prepare(VU dw) const { return dw; }
  template <int J>
  HWY_INLINE VF Nibble(VU dw) const {
    const VU v = hn::ShiftRight<4 * J>(dw);
    return hn::ConvertTo(DF(), hn::BitCast(DI(), J == 7 ? v : hn::And(v, hn::Set(DU(), 15))));
  }
};
inline constexpr bool kArithmeticNibbles = HWY_TARGET > HWY_AVX3;

// fn(std::integral_constant<int, J>()) for J = 0..7, unrolled (shift counts are immediates).
template <int J = 0, class Fn>
HWY_INLINE void ForEachNibble(const Fn& fn) {
  if constexpr (J < 8) {
    fn(std::integral_constant<int, J>());
    ForEachNibble<J + 1>(fn);
  }
}

// How far ahead of its loads each row stream prefetches (also past the row end: the next row of
// a slice follows in memory). A prefetch never faults, so reading past the buffer is harmless.
inline constexpr int64_t kPrefetchBytes = 2048;

// Group layouts the kernel folds scales for: kWholeBlocks when every block lies in one group
// (group % kGemvBlock == 0, or one group per row), else the 32- or 64-code groups of a block
// (lane d of a block holds chunk d / 4, so lane d belongs to group d / 4 or d / 8).
enum GroupMode : int { kWholeBlocks = 0, kGroup32 = 32, kGroup64 = 64 };

// y[n0 + r * stride] (r < R) = row · x for M = 1 (see the file comment). Each row is computed by
// the same operations in the same order whatever R, so results never depend on the task split.
template <int R, int kMode, class Nibbles>
HWY_INLINE void GemvLut4Rows(const GemmProblem& p, const Nibbles& nibbles, int64_t n0,
                             int64_t stride) {
  const CpuPacked& w = *p.w;
  const DF df;
  const DU du;
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
      const uint32_t* src[R];
      for (int r = 0; r < R; ++r) {
        src[r] = reinterpret_cast<const uint32_t*>(codes[r] + blk * (kGemvBlock / 2));
      }
      VU dw[R];
      if (HWY_LIKELY(blk < full_blocks)) {
        for (int r = 0; r < R; ++r) {
          hwy::Prefetch(reinterpret_cast<const uint8_t*>(src[r]) + kPrefetchBytes);
          dw[r] = hn::LoadU(du, src[r]);
        }
      } else {
        const auto mask = hn::FirstN(du, tail_lanes);
        for (int r = 0; r < R; ++r) dw[r] = hn::MaskedLoad(mask, du, src[r]);
      }
      for (int r = 0; r < R; ++r) dw[r] = nibbles.Prepare(dw[r]);
      const float* HWY_RESTRICT xb = xp + blk * kGemvBlock;
      ForEachNibble([&](auto j) {
        constexpr int kJ = decltype(j)::value;
        const VF xv = hn::LoadU(df, xb + kLanes * kJ);
        for (int r = 0; r < R; ++r) {
          part[r] = hn::MulAdd(nibbles.template Nibble<kJ>(dw[r]), xv, part[r]);
        }
      });
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
template <int kMode, class Nibbles>
void GemvLut4With(const GemmProblem& p, const Nibbles& nibbles, int64_t n_begin, int64_t n_end) {
  const int64_t slice = (n_end - n_begin) / kLut4GemvRows;
  for (int64_t t = 0; t < slice; ++t) {
    GemvLut4Rows<kLut4GemvRows, kMode>(p, nibbles, n_begin + t, slice);
  }
  for (int64_t n = n_begin + kLut4GemvRows * slice; n < n_end; ++n) {
    GemvLut4Rows<1, kMode>(p, nibbles, n, 0);
  }
}

template <int kMode>
void GemvLut4(const GemmProblem& p, int64_t n_begin, int64_t n_end) {
  const int offset = p.w->lut_offset;
  if (kArithmeticNibbles && offset == LOWBIT_INT4_SYM_OFFSET) {
    GemvLut4With<kMode>(p, SignedNibbles(), n_begin, n_end);
  } else if (kArithmeticNibbles && offset == 0) {
    GemvLut4With<kMode>(p, UnsignedNibbles(), n_begin, n_end);
  } else {
    GemvLut4With<kMode>(p, TableNibbles{Lut16(p.w->lut)}, n_begin, n_end);
  }
}

// True when the LUT4 GEMV handled the call (a target with one and a supported group layout).
bool TryGemvLut4(const GemmProblem& p, int64_t n_begin, int64_t n_end) {
  if constexpr (!kHasGemvLut4) {
    return false;
  } else {
    const CpuPacked& w = *p.w;
    if (p.m != 1 || p.x_lut4 == nullptr) return false;
    if (w.group % kGemvBlock == 0 || w.group >= w.k_pad) {
      GemvLut4<kWholeBlocks>(p, n_begin, n_end);
      return true;
    }
    if constexpr (kGemvBlock > 64) {
      if (w.group == 64) {
        GemvLut4<kGroup64>(p, n_begin, n_end);
        return true;
      }
    }
    if constexpr (kGemvBlock > 32) {
      if (w.group == 32) {
        GemvLut4<kGroup32>(p, n_begin, n_end);
        return true;
      }
    }
    return false;
  }
}

#if LOWBIT_TILE_GEMM

// Raw values v of codes [k0, k0 + kLanes) of a row for the k-major GEMM tiles (matmul-inl.h):
// elements k0 % 32 < 16 are the low nibbles of the 32-code chunk's bytes, the rest the high ones.
struct Lut4Raw {
  const CpuPacked& w;
  Lut16 lut;
  HWY_INLINE VF operator()(int64_t row, int64_t k0) const {
    const VI codes =
        LoadU8AsI32(w.codes.data() + row * w.row_bytes + (k0 / kChunk) * 16 + k0 % 16);
    return lut((k0 & 16) ? hn::ShiftRight<4>(codes) : codes);
  }
};

#endif  // LOWBIT_TILE_GEMM

int64_t Lut4GemvLanesImpl() { return kHasGemvLut4 ? static_cast<int64_t>(kLanes) : 0; }

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
HWY_EXPORT(Lut4GemvLanesImpl);

int64_t Lut4GemvLanes() { return HWY_DYNAMIC_DISPATCH(Lut4GemvLanesImpl)(); }

void GemmLut4(const GemmProblem& p, int64_t n_begin, int64_t n_end) {
  HWY_DYNAMIC_DISPATCH(GemmLut4Impl)(p, n_begin, n_end);
}

}  // namespace lowbit::cpu
#endif  // HWY_ONCE
