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
#include <vector>

#include "hwy/highway.h"
#include "kernels/cpu/codecs-inl.h"

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
constexpr MicroKernelFn kMicroRow[kNr] = {&MicroKernel<MR, 1>, &MicroKernel<MR, 2>,
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

}  // namespace lowbit::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // LOWBIT_KERNELS_CPU_MATMUL_INL_H_
