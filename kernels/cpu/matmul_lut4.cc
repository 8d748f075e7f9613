// Float-path matmul kernels for 4-bit codebook/integer weights (nf4, fp4, int4, int4_asym), compiled for every Highway target.
//
// On AVX-512 targets the GEMV (M = 1) decodes 128 codes of a row per 64-byte load: nibble j of
// each 32-bit lane is looked up with one vpermps (which ignores the index bits above bit 3)
// after a shift, and multiplied by x permuted once per call to that lane order
// (PermuteXForLut4Gemv), so a code costs 1/16 of a shift, a permute and an FMA and nothing is
// widened or masked. Other targets, shapes with unusual group sizes and M > 1 use the generic
// kernels of matmul-inl.h.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/matmul_lut4.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/cache_control.h"
#include "hwy/highway.h"
#include "kernels/cpu/matmul-inl.h"

HWY_BEFORE_NAMESPACE();
namespace lowbit::cpu::HWY_NAMESPACE {

#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL

// Rows decoded together: each is its own sequential stream (one thread reads several streams
// faster than one) and they share every load of x.
inline constexpr int kLut4GemvRows = 8;

// How far ahead of its loads each row stream prefetches (also past the row end: the next row of
// a slice follows in memory). A prefetch never faults, so reading past the buffer is harmless.
inline constexpr int64_t kPrefetchBytes = 2048;

// Group layouts the kernel folds scales for: kWholeBlocks when every 128-code block lies in one
// group (group % 128 == 0, or one group per row), else the 32- or 64-code groups of a block
// (lane d of a block belongs to chunk d / 4).
enum GroupMode : int { kWholeBlocks = 0, kGroup32 = 32, kGroup64 = 64 };

// y[n0 .. n0 + R) = rows · x for M = 1 (see the file comment). Each row is computed by the same
// operations in the same order whatever R, so results never depend on the task split.
template <int R, int kMode>
HWY_INLINE void GemvLut4Rows(const GemmProblem& p, VF lut, int64_t n0, int64_t stride) {
  const CpuPacked& w = *p.w;
  const DF df;
  const DU du;
  const float* HWY_RESTRICT xp = p.x_lut4;
  const int64_t k_pad = w.k_pad;
  const int64_t full_blocks = k_pad / kLut4GemvBlock;
  const int64_t blocks = (k_pad + kLut4GemvBlock - 1) / kLut4GemvBlock;
  // 32-bit lanes holding codes in the last, partial block (k_pad is a multiple of 32 codes).
  const size_t tail_lanes = static_cast<size_t>((k_pad % kLut4GemvBlock) / 8);
  const int64_t gpr = w.groups_per_row;
  const uint8_t* codes[R];
  const float* scales[R];
  VF acc[R], part[R];
  for (int r = 0; r < R; ++r) {
    codes[r] = w.codes.data() + (n0 + r * stride) * w.row_bytes;
    scales[r] = w.scales.data() + (n0 + r * stride) * gpr;
    acc[r] = part[r] = hn::Zero(df);
  }
  // Lane -> group offset inside a block for the 32/64-code group modes.
  alignas(64) static constexpr int32_t kLaneGroup32[16] = {0, 0, 0, 0, 1, 1, 1, 1,
                                                           2, 2, 2, 2, 3, 3, 3, 3};
  alignas(64) static constexpr int32_t kLaneGroup64[16] = {0, 0, 0, 0, 0, 0, 0, 0,
                                                           1, 1, 1, 1, 1, 1, 1, 1};
  const auto lane_group =
      hn::SetTableIndices(df, kMode == kGroup32 ? kLaneGroup32 : kLaneGroup64);
  const int64_t blocks_per_group =
      (kMode != kWholeBlocks || w.group >= k_pad) ? blocks : w.group / kLut4GemvBlock;

  int64_t blk = 0;
  for (int64_t g = 0; blk < blocks; ++g) {
    const int64_t group_end = (kMode == kWholeBlocks) ? std::min(blocks, blk + blocks_per_group)
                                                      : blocks;
    for (; blk < group_end; ++blk) {
      VU dw[R];
      if (HWY_LIKELY(blk < full_blocks)) {
        for (int r = 0; r < R; ++r) {
          hwy::Prefetch(codes[r] + blk * 64 + kPrefetchBytes);
          dw[r] = hn::LoadU(du, reinterpret_cast<const uint32_t*>(codes[r] + blk * 64));
        }
      } else {
        const auto mask = hn::FirstN(du, tail_lanes);
        for (int r = 0; r < R; ++r) {
          dw[r] = hn::MaskedLoad(mask, du, reinterpret_cast<const uint32_t*>(codes[r] + blk * 64));
        }
      }
      const float* HWY_RESTRICT xb = xp + blk * kLut4GemvBlock;
      for (int j = 0; j < 8; ++j) {
        const VF xv = hn::LoadU(df, xb + 16 * j);
        for (int r = 0; r < R; ++r) {
          part[r] = hn::MulAdd(Lookup(lut, dw[r]), xv, part[r]);
          dw[r] = hn::ShiftRight<4>(dw[r]);
        }
      }
      if constexpr (kMode != kWholeBlocks) {
        // Statistics of the block's groups, spread over the lanes they cover.
        constexpr int64_t kPerBlock = kLut4GemvBlock / kMode;
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
template <int kMode>
void GemvLut4(const GemmProblem& p, int64_t n_begin, int64_t n_end) {
  const VF lut = hn::LoadU(DF(), p.w->lut);
  const int64_t slice = (n_end - n_begin) / kLut4GemvRows;
  for (int64_t t = 0; t < slice; ++t) {
    GemvLut4Rows<kLut4GemvRows, kMode>(p, lut, n_begin + t, slice);
  }
  for (int64_t n = n_begin + kLut4GemvRows * slice; n < n_end; ++n) {
    GemvLut4Rows<1, kMode>(p, lut, n, 0);
  }
}

// True when the AVX-512 GEMV handled the call (supported group layout).
bool TryGemvLut4(const GemmProblem& p, int64_t n_begin, int64_t n_end) {
  const CpuPacked& w = *p.w;
  if (p.m != 1 || p.x_lut4 == nullptr) return false;
  if (w.group % kLut4GemvBlock == 0 || w.group >= w.k_pad) {
    GemvLut4<kWholeBlocks>(p, n_begin, n_end);
  } else if (w.group == 64) {
    GemvLut4<kGroup64>(p, n_begin, n_end);
  } else if (w.group == 32) {
    GemvLut4<kGroup32>(p, n_begin, n_end);
  } else {
    return false;
  }
  return true;
}

// Raw values v of codes [k0, k0 + 16) of a row for the k-major GEMM tiles (matmul-inl.h):
// k0 % 32 == 0 reads the low nibbles of the 32-code chunk, k0 % 32 == 16 the high ones.
struct Lut4Raw {
  const CpuPacked& w;
  VF lut;
  HWY_INLINE VF operator()(int64_t row, int64_t k0) const {
    const VI codes = LoadU8AsI32(w.codes.data() + row * w.row_bytes + (k0 / kChunk) * 16);
    return Lookup(lut, hn::BitCast(DU(), (k0 & 16) ? hn::ShiftRight<4>(codes) : codes));
  }
};

#endif  // HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL

void GemmLut4Impl(const GemmProblem& p, int64_t n_begin, int64_t n_end) {
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
  if (TryGemvLut4(p, n_begin, n_end)) return;
  if (p.m > 1) {
    GemmTileT(p, Lut4Raw{*p.w, hn::LoadU(DF(), p.w->lut)}, n_begin, n_end);
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

void GemmLut4(const GemmProblem& p, int64_t n_begin, int64_t n_end) {
  HWY_DYNAMIC_DISPATCH(GemmLut4Impl)(p, n_begin, n_end);
}

}  // namespace lowbit::cpu
#endif  // HWY_ONCE
