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
#include <utility>

#include "hwy/aligned_allocator.h"
#include "hwy/cache_control.h"
#include "hwy/highway.h"
#include "kernels/cpu/matmul-inl.h"

HWY_BEFORE_NAMESPACE();
namespace lowbit::cpu::HWY_NAMESPACE {

#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL

using VU = hn::Vec<DU>;

// Rows decoded together: each is its own sequential stream (one thread reads several streams
// faster than one) and they share every load of x.
inline constexpr int kLut4GemvRows = 8;

// How far ahead of its loads each row stream prefetches (also past the row end: the next row of
// a slice follows in memory). A prefetch never faults, so reading past the buffer is harmless.
inline constexpr int64_t kPrefetchBytes = 2048;

// lut[idx & 15] per lane: vpermps reads only index bits 0..3.
HWY_INLINE VF Lookup(VF lut, VU idx) { return VF{_mm512_permutexvar_ps(idx.raw, lut.raw)}; }

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

// ---- GEMM (M > 1): k-major weight tiles and an outer-product micro-kernel ------------------------

// Weight rows per tile: two vectors of outputs per x broadcast.
inline constexpr int64_t kTileCols = 32;
// Activation rows per micro-kernel call: kGemmMr x 2 accumulators (24 of 32 registers).
inline constexpr int kGemmMr = 12;

// Transposes a 16 x 16 float block held in r[0..15] (row i in r[i]) in place.
HWY_INLINE void Transpose16x16(__m512* r) {
  __m512 t[16], u[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  // u[4q + e]: rows 4q..4q+3 at element 4L + e of every 128-bit lane L.
  for (int q = 0; q < 4; ++q) {
    u[4 * q + 0] = _mm512_shuffle_ps(t[4 * q], t[4 * q + 2], 0x44);
    u[4 * q + 1] = _mm512_shuffle_ps(t[4 * q], t[4 * q + 2], 0xEE);
    u[4 * q + 2] = _mm512_shuffle_ps(t[4 * q + 1], t[4 * q + 3], 0x44);
    u[4 * q + 3] = _mm512_shuffle_ps(t[4 * q + 1], t[4 * q + 3], 0xEE);
  }
  // t[8h + e] (e < 4): rows 8h..8h+7 at elements e and e + 8; t[8h + 4 + e]: e + 4 and e + 12.
  for (int h = 0; h < 2; ++h) {
    for (int e = 0; e < 4; ++e) {
      t[8 * h + e] = _mm512_shuffle_f32x4(u[8 * h + e], u[8 * h + 4 + e], 0x88);
      t[8 * h + 4 + e] = _mm512_shuffle_f32x4(u[8 * h + e], u[8 * h + 4 + e], 0xDD);
    }
  }
  for (int e = 0; e < 8; ++e) {
    r[e] = _mm512_shuffle_f32x4(t[e], t[8 + e], 0x88);
    r[e + 8] = _mm512_shuffle_f32x4(t[e], t[8 + e], 0xDD);
  }
}

// tile[k * 32 + c] = W[n0 + c, k] dequantized ((v - zero) * scale) for k < k_pad, c < cols;
// columns cols..31 are zero.
HWY_INLINE void DecodeTileT(const CpuPacked& w, VF lut, int64_t n0, int64_t cols,
                            float* HWY_RESTRICT tile) {
  const DF df;
  const bool asym = !w.zeros.empty();
  for (int64_t half = 0; half < kTileCols; half += 16) {
    for (int64_t k0 = 0; k0 < w.k_pad; k0 += kChunk) {
      const int64_t g = k0 / w.group;
      for (int nibble = 0; nibble < 2; ++nibble) {
        __m512 v[16];
        for (int r = 0; r < 16; ++r) {
          const int64_t row = n0 + half + r;
          if (half + r >= cols) {
            v[r] = _mm512_setzero_ps();
            continue;
          }
          const int64_t s = row * w.groups_per_row + g;
          const VI codes = LoadU8AsI32(w.codes.data() + row * w.row_bytes + k0 / 2);
          VF value = Lookup(lut, hn::BitCast(DU(), nibble ? hn::ShiftRight<4>(codes) : codes));
          if (asym) value = hn::Sub(value, hn::Set(df, w.zeros[s]));
          v[r] = hn::Mul(value, hn::Set(df, w.scales[s])).raw;
        }
        Transpose16x16(v);
        float* out = tile + (k0 + 16 * nibble) * kTileCols + half;
        for (int i = 0; i < 16; ++i) _mm512_store_ps(out + i * kTileCols, v[i]);
      }
    }
  }
}

// y[i, c] = sum_k x[i, k] * tile[k, c] for i < MR, c < cols, summed in k order.
template <int MR>
void MicroKernelT(const float* HWY_RESTRICT x, int64_t k_pad, const float* HWY_RESTRICT tile,
                  float* HWY_RESTRICT y, int64_t ldy, int64_t cols) {
  const DF df;
  VF acc0[MR], acc1[MR];
  for (int i = 0; i < MR; ++i) acc0[i] = acc1[i] = hn::Zero(df);
  for (int64_t k = 0; k < k_pad; ++k) {
    const VF w0 = hn::Load(df, tile + k * kTileCols);
    const VF w1 = hn::Load(df, tile + k * kTileCols + 16);
    for (int i = 0; i < MR; ++i) {
      const VF xb = hn::Set(df, x[i * k_pad + k]);
      acc0[i] = hn::MulAdd(xb, w0, acc0[i]);
      acc1[i] = hn::MulAdd(xb, w1, acc1[i]);
    }
  }
  if (cols == kTileCols) {
    for (int i = 0; i < MR; ++i) {
      hn::StoreU(acc0[i], df, y + i * ldy);
      hn::StoreU(acc1[i], df, y + i * ldy + 16);
    }
  } else {
    const auto m0 = hn::FirstN(df, static_cast<size_t>(std::min<int64_t>(cols, 16)));
    const auto m1 = hn::FirstN(df, static_cast<size_t>(std::max<int64_t>(cols - 16, 0)));
    for (int i = 0; i < MR; ++i) {
      hn::BlendedStore(acc0[i], m0, df, y + i * ldy);
      hn::BlendedStore(acc1[i], m1, df, y + i * ldy + 16);
    }
  }
}

template <int... kMr>
HWY_INLINE void MicroKernelT(int mr, std::integer_sequence<int, kMr...>, const float* x,
                             int64_t k_pad, const float* tile, float* y, int64_t ldy,
                             int64_t cols) {
  ((mr == kMr + 1 ? MicroKernelT<kMr + 1>(x, k_pad, tile, y, ldy, cols) : void()), ...);
}

void GemmLut4T(const GemmProblem& p, int64_t n_begin, int64_t n_end) {
  const CpuPacked& w = *p.w;
  const VF lut = hn::LoadU(DF(), w.lut);
  // Grow-only per-thread tile (no allocation once a thread has seen the largest K).
  thread_local hwy::AlignedFreeUniquePtr<float[]> tile;
  thread_local int64_t tile_floats = 0;
  if (tile_floats < kTileCols * w.k_pad) {
    tile_floats = kTileCols * w.k_pad;
    tile = hwy::AllocateAligned<float>(static_cast<size_t>(tile_floats));
  }
  for (int64_t n0 = n_begin; n0 < n_end; n0 += kTileCols) {
    const int64_t cols = std::min(kTileCols, n_end - n0);
    DecodeTileT(w, lut, n0, cols, tile.get());
    for (int64_t m0 = 0; m0 < p.m; m0 += kGemmMr) {
      const int mr = static_cast<int>(std::min<int64_t>(kGemmMr, p.m - m0));
      MicroKernelT(mr, std::make_integer_sequence<int, kGemmMr>(), p.x + m0 * w.k_pad, w.k_pad,
                   tile.get(), p.y + m0 * w.rows + n0, w.rows, cols);
    }
  }
}

#endif  // HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL

void GemmLut4Impl(const GemmProblem& p, int64_t n_begin, int64_t n_end) {
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
  if (TryGemvLut4(p, n_begin, n_end)) return;
  if (p.m > 1) {
    GemmLut4T(p, n_begin, n_end);
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
