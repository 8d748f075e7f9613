// Per-target float-path matmul kernels, generic over the chunk decoder of a code kind
// (codecs-inl.h): fused GEMV for M = 1 and tile-decode + register-blocked GEMM for M > 1.
//
// Determinism: every y[m, n] is one float32 vector accumulation over K in chunk order followed
// by a fixed-order lane reduction, computed identically whatever rows or tile shapes surround
// it, so results never depend on how rows are split into tasks.
//
// Per-target header: include after hwy/highway.h inside a foreach_target translation unit.
#if defined(LOWBIT_KERNELS_CPU_MATMUL_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef LOWBIT_KERNELS_CPU_MATMUL_INL_H_
#undef LOWBIT_KERNELS_CPU_MATMUL_INL_H_
#else
#define LOWBIT_KERNELS_CPU_MATMUL_INL_H_
#endif

#include <algorithm>
#include <utility>
#include <vector>

#include "hwy/aligned_allocator.h"

#include "hwy/highway.h"
#include "kernels/cpu/codecs-inl.h"

#undef LOWBIT_TILE_GEMM  // per target: 1 when GemmTileT (below) exists

HWY_BEFORE_NAMESPACE();
namespace lowbit::cpu::HWY_NAMESPACE {

// Rows decoded at once by the GEMV. They come from kGemvRows distant slices of the task's row
// range, so they are independent sequential weight streams (one thread reads 4-8 streams from
// DRAM faster than one, DESIGN §5 memory facts).
inline constexpr int kGemvRows = 4;
// Weight rows dequantized into the thread's float32 tile before the GEMM micro-kernel runs over
// all M; 16 rows of K = 4096 are 256 KiB and stay in L2 while x streams past them.
inline constexpr int64_t kGemmTileRows = 16;
// Micro-kernel shape: kMr activation rows x kNr weight rows = 16 accumulators.
inline constexpr int kMr = 4;
inline constexpr int kNr = 4;

HWY_INLINE float ReduceSum(VF v) { return hn::GetLane(hn::SumOfLanes(DF(), v)); }

// y[n0 + r * stride] (r < R) for M = 1: decodes R rows chunk by chunk and accumulates x * v per
// group in two partial sums per row (independent FMA chains), then folds each group in with its
// scale.
template <int R, class Chunk>
HWY_INLINE void GemvRows(const GemmProblem& p, const Chunk& decode, int64_t n0, int64_t stride) {
  const CpuPacked& w = *p.w;
  const DF df;
  const float* HWY_RESTRICT x = p.x;
  const uint8_t* codes[R];
  VF acc[R];
  float corr[R];
  for (int r = 0; r < R; ++r) {
    codes[r] = w.codes.data() + (n0 + r * stride) * w.row_bytes;
    acc[r] = hn::Zero(df);
    corr[r] = 0.0f;
  }
  const bool asym = !w.zeros.empty();
  for (int64_t g = 0; g < w.groups_per_row; ++g) {
    const int64_t k_begin = g * w.group;
    const int64_t k_end = std::min(k_begin + w.group, w.k_pad);
    VF part[R][2];
    for (int r = 0; r < R; ++r) part[r][0] = part[r][1] = hn::Zero(df);
    for (int64_t k = k_begin; k < k_end; k += kChunk) {
      const int64_t byte = (k / kChunk) * Chunk::kBytes;
      for (int r = 0; r < R; ++r) {
        decode(codes[r] + byte, [&](VF v, size_t off) {
          VF& s = part[r][(off / kLanes) & 1];
          s = hn::MulAdd(v, hn::LoadU(df, x + k + off), s);
        });
      }
    }
    for (int r = 0; r < R; ++r) {
      const int64_t s = (n0 + r * stride) * w.groups_per_row + g;
      acc[r] = hn::MulAdd(hn::Add(part[r][0], part[r][1]), hn::Set(df, w.scales[s]), acc[r]);
      if (asym) corr[r] += w.scales[s] * w.zeros[s] * p.xsum[g];
    }
  }
  for (int r = 0; r < R; ++r) p.y[n0 + r * stride] = ReduceSum(acc[r]) - corr[r];
}

// Dequantizes rows [n0, n0 + rows) into tile ([rows, k_pad] float32): w = (v - zero) * scale.
template <class Chunk>
HWY_INLINE void DecodeTile(const CpuPacked& w, const Chunk& decode, int64_t n0, int64_t rows,
                           float* HWY_RESTRICT tile) {
  const DF df;
  const bool asym = !w.zeros.empty();
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* codes = w.codes.data() + (n0 + r) * w.row_bytes;
    float* out = tile + r * w.k_pad;
    for (int64_t g = 0; g < w.groups_per_row; ++g) {
      const int64_t s = (n0 + r) * w.groups_per_row + g;
      const VF scale = hn::Set(df, w.scales[s]);
      const VF zero = hn::Set(df, asym ? w.zeros[s] : 0.0f);
      const int64_t k_end = std::min((g + 1) * w.group, w.k_pad);
      for (int64_t k = g * w.group; k < k_end; k += kChunk) {
        decode(codes + (k / kChunk) * Chunk::kBytes, [&](VF v, size_t off) {
          hn::StoreU(hn::Mul(asym ? hn::Sub(v, zero) : v, scale), df, out + k + off);
        });
      }
    }
  }
}

// y[i, j] = dot(x row i, tile row j) over k_pad for an MR x NR block; ldy = N.
template <int MR, int NR>
void MicroKernel(const float* HWY_RESTRICT x, const float* HWY_RESTRICT tile, int64_t k_pad,
                 float* HWY_RESTRICT y, int64_t ldy) {
  const DF df;
  VF acc[MR][NR];
  for (int i = 0; i < MR; ++i) {
    for (int j = 0; j < NR; ++j) acc[i][j] = hn::Zero(df);
  }
  for (int64_t k = 0; k < k_pad; k += kLanes) {
    VF wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = hn::LoadU(df, tile + j * k_pad + k);
    for (int i = 0; i < MR; ++i) {
      const VF xv = hn::LoadU(df, x + i * k_pad + k);
      for (int j = 0; j < NR; ++j) acc[i][j] = hn::MulAdd(xv, wv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < MR; ++i) {
    for (int j = 0; j < NR; ++j) y[i * ldy + j] = ReduceSum(acc[i][j]);
  }
}

using MicroKernelFn = void (*)(const float*, const float*, int64_t, float*, int64_t);
template <int MR>
inline constexpr MicroKernelFn kMicroRow[kNr] = {&MicroKernel<MR, 1>, &MicroKernel<MR, 2>,
                                                 &MicroKernel<MR, 3>, &MicroKernel<MR, 4>};
inline MicroKernelFn GetMicroKernel(int mr, int nr) {
  static constexpr const MicroKernelFn* kTable[kMr] = {kMicroRow<1>, kMicroRow<2>, kMicroRow<3>,
                                                       kMicroRow<4>};
  return kTable[mr - 1][nr - 1];
}

// Rows [n_begin, n_end) of y for every m (the per-ISA entry body of each code kind).
template <class Chunk>
void GemmRows(const GemmProblem& p, int64_t n_begin, int64_t n_end) {
  const CpuPacked& w = *p.w;
  const Chunk decode(w);
  if (p.m == 1) {
    const int64_t slice = (n_end - n_begin) / kGemvRows;
    for (int64_t t = 0; t < slice; ++t) GemvRows<kGemvRows>(p, decode, n_begin + t, slice);
    for (int64_t n = n_begin + kGemvRows * slice; n < n_end; ++n) GemvRows<1>(p, decode, n, 0);
    return;
  }
  // Grow-only per-thread workspace: no allocation once a thread has seen the largest K.
  thread_local std::vector<float> tile;
  if (tile.size() < static_cast<size_t>(kGemmTileRows * w.k_pad)) {
    tile.resize(static_cast<size_t>(kGemmTileRows * w.k_pad));
  }
  for (int64_t n0 = n_begin; n0 < n_end; n0 += kGemmTileRows) {
    const int64_t rows = std::min(kGemmTileRows, n_end - n0);
    DecodeTile(w, decode, n0, rows, tile.data());
    for (int64_t m0 = 0; m0 < p.m; m0 += kMr) {
      const int mr = static_cast<int>(std::min<int64_t>(kMr, p.m - m0));
      for (int64_t j0 = 0; j0 < rows; j0 += kNr) {
        const int nr = static_cast<int>(std::min<int64_t>(kNr, rows - j0));
        GetMicroKernel(mr, nr)(p.x + m0 * w.k_pad, tile.data() + j0 * w.k_pad, w.k_pad,
                               p.y + m0 * w.rows + n0 + j0, w.rows);
      }
    }
  }
}

#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
#define LOWBIT_TILE_GEMM 1

// ---- x86 GEMM (M > 1): k-major weight tiles and an outer-product micro-kernel ---------------
// Used by every code kind on AVX2 and AVX-512; each kind supplies a raw-value decoder. Every
// y[m, n] is one float32 FMA chain over k in order, whatever tile or task it falls in.

// Weight rows per tile: two vectors of outputs per x broadcast.
inline constexpr int64_t kTileCols = 2 * static_cast<int64_t>(kLanes);
// Activation rows per micro-kernel call: kGemmMr x 2 accumulators, 2 weight vectors and a
// broadcast in registers (AVX-512: 24 + 3 of 32; AVX2: 12 + 3 of 16).
inline constexpr int kGemmMr = kLanes == 16 ? 12 : 6;

#if HWY_TARGET == HWY_AVX2
// Transposes the 8 x 8 float block held in r[0..7] (row i in r[i]) in place.
HWY_INLINE void TransposeSquare(__m256* r) {
  __m256 t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  // u[4h + e]: rows 4h..4h+3 at element e and e + 4 of each 128-bit half.
  for (int h = 0; h < 2; ++h) {
    u[4 * h + 0] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0x44);
    u[4 * h + 1] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0xEE);
    u[4 * h + 2] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0x44);
    u[4 * h + 3] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0xEE);
  }
  for (int e = 0; e < 4; ++e) {
    r[e] = _mm256_permute2f128_ps(u[e], u[4 + e], 0x20);
    r[e + 4] = _mm256_permute2f128_ps(u[e], u[4 + e], 0x31);
  }
}
#else
// Transposes the 16 x 16 float block held in r[0..15] (row i in r[i]) in place.
HWY_INLINE void TransposeSquare(__m512* r) {
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
#endif

// tile[k * kTileCols + c] = W[n0 + c, k] dequantized ((v - zero) * scale) for k < k_pad,
// c < cols; columns cols..kTileCols-1 are zero. raw(row, k0) returns the raw values v of codes
// [k0, k0 + kLanes).
template <class Raw>
HWY_INLINE void DecodeTileT(const CpuPacked& w, const Raw& raw, int64_t n0, int64_t cols,
                            float* HWY_RESTRICT tile) {
  const DF df;
  const bool asym = !w.zeros.empty();
  constexpr int kL = static_cast<int>(kLanes);
  for (int64_t half = 0; half < kTileCols; half += kL) {
    for (int64_t k0 = 0; k0 < w.k_pad; k0 += kL) {
      const int64_t g = k0 / w.group;
      decltype(hn::Zero(df).raw) v[kL];
      for (int r = 0; r < kL; ++r) {
        const int64_t row = n0 + half + r;
        if (half + r >= cols) {
          v[r] = hn::Zero(df).raw;
          continue;
        }
        const int64_t s = row * w.groups_per_row + g;
        VF value = raw(row, k0);
        if (asym) value = hn::Sub(value, hn::Set(df, w.zeros[s]));
        v[r] = hn::Mul(value, hn::Set(df, w.scales[s])).raw;
      }
      TransposeSquare(v);
      float* out = tile + k0 * kTileCols + half;
      for (int i = 0; i < kL; ++i) hn::Store(VF{v[i]}, df, out + i * kTileCols);
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
    const VF w1 = hn::Load(df, tile + k * kTileCols + kLanes);
    for (int i = 0; i < MR; ++i) {
      const VF xb = hn::Set(df, x[i * k_pad + k]);
      acc0[i] = hn::MulAdd(xb, w0, acc0[i]);
      acc1[i] = hn::MulAdd(xb, w1, acc1[i]);
    }
  }
  if (cols == kTileCols) {
    for (int i = 0; i < MR; ++i) {
      hn::StoreU(acc0[i], df, y + i * ldy);
      hn::StoreU(acc1[i], df, y + i * ldy + kLanes);
    }
  } else {
    constexpr int64_t kL = static_cast<int64_t>(kLanes);
    const auto m0 = hn::FirstN(df, static_cast<size_t>(std::min<int64_t>(cols, kL)));
    const auto m1 = hn::FirstN(df, static_cast<size_t>(std::max<int64_t>(cols - kL, 0)));
    for (int i = 0; i < MR; ++i) {
      hn::BlendedStore(acc0[i], m0, df, y + i * ldy);
      hn::BlendedStore(acc1[i], m1, df, y + i * ldy + kLanes);
    }
  }
}

template <int... kMr>
HWY_INLINE void MicroKernelT(int mr, std::integer_sequence<int, kMr...>, const float* x,
                             int64_t k_pad, const float* tile, float* y, int64_t ldy,
                             int64_t cols) {
  ((mr == kMr + 1 ? MicroKernelT<kMr + 1>(x, k_pad, tile, y, ldy, cols) : void()), ...);
}

// Rows [n_begin, n_end) of y for M > 1: per kTileCols weight rows, one tile decode, then the
// micro-kernel over every kGemmMr rows of x.
template <class Raw>
void GemmTileT(const GemmProblem& p, const Raw& raw, int64_t n_begin, int64_t n_end) {
  const CpuPacked& w = *p.w;
  // Grow-only per-thread tile (no allocation once a thread has seen the largest K).
  thread_local hwy::AlignedFreeUniquePtr<float[]> tile;
  thread_local int64_t tile_floats = 0;
  if (tile_floats < kTileCols * w.k_pad) {
    tile_floats = kTileCols * w.k_pad;
    tile = hwy::AllocateAligned<float>(static_cast<size_t>(tile_floats));
  }
  for (int64_t n0 = n_begin; n0 < n_end; n0 += kTileCols) {
    const int64_t cols = std::min(kTileCols, n_end - n0);
    DecodeTileT(w, raw, n0, cols, tile.get());
    for (int64_t m0 = 0; m0 < p.m; m0 += kGemmMr) {
      const int mr = static_cast<int>(std::min<int64_t>(kGemmMr, p.m - m0));
      MicroKernelT(mr, std::make_integer_sequence<int, kGemmMr>(), p.x + m0 * w.k_pad, w.k_pad,
                   tile.get(), p.y + m0 * w.rows + n0, w.rows, cols);
    }
  }
}

// Raw values v of 4-bit codes [k0, k0 + kLanes) of a row for GemmTileT: elements k0 % 32 < 16
// are the low nibbles of the 32-code chunk's bytes, the rest the high ones.
struct Lut4Raw {
  const CpuPacked& w;
  Lut16 lut;
  HWY_INLINE VF operator()(int64_t row, int64_t k0) const {
    const VI codes =
        LoadU8AsI32(w.codes.data() + row * w.row_bytes + (k0 / kChunk) * 16 + k0 % 16);
    return lut((k0 & 16) ? hn::ShiftRight<4>(codes) : codes);
  }
};

// Raw values of byte codes [k0, k0 + kLanes) of a row (DecodeBytes kinds) for GemmTileT.
template <CodeKind kKind, bool kFinite = false>
struct ByteRaw {
  const CpuPacked& w;
  HWY_INLINE VF operator()(int64_t row, int64_t k0) const {
    return DecodeBytes<kKind, kFinite>(w, w.codes.data() + row * w.row_bytes + k0);
  }
};

// Calls fn(raw) with the raw-value decoder of w's code kind (not kDense).
template <class Fn>
HWY_INLINE void WithRaw(const CpuPacked& w, const Fn& fn) {
  switch (w.kind) {
    case CodeKind::kLut4: return fn(Lut4Raw{w, Lut16(w.lut)});
    case CodeKind::kInt8: return fn(ByteRaw<CodeKind::kInt8>{w});
    case CodeKind::kUInt8: return fn(ByteRaw<CodeKind::kUInt8>{w});
    case CodeKind::kLut8: return fn(ByteRaw<CodeKind::kLut8>{w});
    case CodeKind::kFP8E4M3:
      return w.fp8_finite ? fn(ByteRaw<CodeKind::kFP8E4M3, true>{w})
                          : fn(ByteRaw<CodeKind::kFP8E4M3>{w});
    default:
      return w.fp8_finite ? fn(ByteRaw<CodeKind::kFP8E5M2, true>{w})
                          : fn(ByteRaw<CodeKind::kFP8E5M2>{w});
  }
}

#else
#define LOWBIT_TILE_GEMM 0
#endif  // HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL

}  // namespace lowbit::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // LOWBIT_KERNELS_CPU_MATMUL_INL_H_
