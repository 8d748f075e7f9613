// AMX int8 tile GEMM for the int8-activation path (int8 and int4 weights, M >= 16): TDPBSSD
// computes the same exact per-segment int32 dot products as matmul_int8act.cc, followed by the
// same float64 epilogue, so results are bit-identical to every other target.
//
// Blocking ("2-2-4"): 32 activation rows (A tiles tmm0, tmm1: 16 rows x 64 int8 each, loaded
// straight from the quantized activations) times 32 weight rows (B tiles tmm2, tmm3) into four
// 16 x 16 int32 C tiles (tmm4..tmm7), 64 k per step. B tiles hold weights in the VNNI layout
// TDPBSSD reads (row r, bytes 4c..4c+3 = weight row c, k 4r..4r+3): decoded to int8 and
// transposed with AVX-512 once per 32 weight rows and reused for every activation block. Steps
// never straddle a segment: the part of a step past the segment's end has zero weights.
//
// Only this file uses AMX. It is a Highway translation unit whose AVX3_DL pass holds the
// kernels (AMX is added to that target by function attributes, not file flags, so nothing
// other files may share is built for it); they run only after AmxInt8Usable() checked the CPU,
// the kernel's permission and that AVX3_DL is the dispatched target.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/matmul_amx.cc"
#include <algorithm>
#include <atomic>
#include <vector>

#if defined(__x86_64__) && defined(__linux__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/aligned_allocator.h"
#include "hwy/highway.h"
#include "kernels/cpu/matmul-inl.h"
#include "kernels/cpu/matmul_amx.h"

#undef LOWBIT_AMX
#if HWY_TARGET == HWY_AVX3_DL && defined(__linux__)
#define LOWBIT_AMX 1
#else
#define LOWBIT_AMX 0
#endif

HWY_BEFORE_NAMESPACE();
namespace lowbit::cpu::HWY_NAMESPACE {

#if LOWBIT_AMX
namespace {

constexpr int kTileRows = 16;       // rows of every tile
constexpr int64_t kStepK = 64;      // int8 per tile row: k per TDPBSSD
constexpr int64_t kBTileBytes = kTileRows * kStepK;

// The 64-byte tile configuration LDTILECFG reads (palette 1).
struct alignas(64) TileConfig {
  uint8_t palette_id = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

#undef LOWBIT_AMX_FN
#define LOWBIT_AMX_FN __attribute__((target(HWY_TARGET_STR ",amx-tile,amx-int8")))

// Every tile 16 rows x 64 bytes.
LOWBIT_AMX_FN void ConfigureTiles() {
  TileConfig config;
  for (int t = 0; t < 8; ++t) {
    config.rows[t] = kTileRows;
    config.colsb[t] = kStepK;
  }
  // GCC 12.2 has been seen to drop the configuration's stores before LDTILECFG (DESIGN §5).
  asm volatile("" ::: "memory");
  _tile_loadconfig(&config);
}

LOWBIT_AMX_FN void ReleaseTiles() { _tile_release(); }

// Weight values v (int8) of row `codes` at [k0, k0 + 64), zero at and past `valid` elements.
LOWBIT_AMX_FN __m512i LoadWeightStep(const uint8_t* row, int64_t k0, int64_t k_pad, int64_t valid,
                                     bool four_bit) {
  const __mmask64 keep = valid >= 64 ? ~__mmask64{0} : (__mmask64{1} << valid) - 1;
  const int64_t in_row = std::min<int64_t>(kStepK, k_pad - k0);  // codes left in the row
  if (four_bit) {
    // Two 32-code chunks: byte j of a chunk holds element j (low nibble) and 16 + j (high).
    const __mmask32 bytes = in_row >= 64 ? ~__mmask32{0} : (__mmask32{1} << (in_row / 2)) - 1;
    const __m256i b = _mm256_maskz_loadu_epi8(bytes, row + k0 / 2);
    const __m256i m = _mm256_set1_epi8(0x0F);
    const __m256i lo = _mm256_and_si256(b, m);
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(b, 4), m);
    __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
    // 128-bit lanes [lo0, lo1, hi0, hi1] -> element order [lo0, hi0, lo1, hi1].
    z = _mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(3, 1, 2, 0));
    z = _mm512_sub_epi8(z, _mm512_set1_epi8(LOWBIT_INT4_SYM_OFFSET));
    return _mm512_maskz_mov_epi8(keep, z);
  }
  const __mmask64 bytes = in_row >= 64 ? ~__mmask64{0} : (__mmask64{1} << in_row) - 1;
  return _mm512_maskz_loadu_epi8(bytes & keep, row + k0);
}

// Writes one B tile from v[c] = the 64 bytes of weight row c at one k step: transposed as 16 x 16
// 32-bit groups, tile row r holds group r (4 int8 or 2 bf16 k values) of every row c, the
// layout TDPBSSD and TDPBF16PS read.
HWY_INLINE void StoreBTile(__m512* v, uint8_t* tile) {
  TransposeSquare(v);  // matmul-inl.h
  for (int r = 0; r < kTileRows; ++r) _mm512_store_ps(tile + r * kStepK, v[r]);
}

// Both B tiles of weight rows [n0, n0 + 32) (rows >= n_end zero) for the step at k0 of a segment
// ending at ke, into b (2 x 1024 bytes).
LOWBIT_AMX_FN void PrepareBStep(const CpuPacked& w, int64_t n0, int64_t n_end, int64_t k0,
                                int64_t ke, int8_t* b) {
  const bool four_bit = w.kind == CodeKind::kLut4;
  for (int t = 0; t < 2; ++t) {
    __m512 v[kTileRows];
    for (int c = 0; c < kTileRows; ++c) {
      const int64_t n = n0 + t * kTileRows + c;
      v[c] = n < n_end ? _mm512_castsi512_ps(LoadWeightStep(w.codes.data() + n * w.row_bytes, k0,
                                                            w.k_pad, ke - k0, four_bit))
                       : _mm512_setzero_ps();
    }
    StoreBTile(v, reinterpret_cast<uint8_t*>(b) + t * kBTileBytes);
  }
}

// C of one activation block: four 16 x 16 tiles, float32 (kBf16) or int32, stored as [32, 32]
// into c. For steps s in [s_begin, s_end): A tiles at a + a_offset[s] bytes (two tiles of 16
// rows, `stride` bytes apart), B tiles at b + s * 2 * kBTileBytes; TDPBF16PS (kBf16) or TDPBSSD.
template <bool kBf16>
__attribute__((target(HWY_TARGET_STR ",amx-tile,amx-int8,amx-bf16"))) void BlockTiles(
    const uint8_t* a, int64_t stride, const int64_t* a_offset, int64_t s_begin, int64_t s_end,
    const uint8_t* b, void* c) {
  _tile_zero(4);
  _tile_zero(5);
  _tile_zero(6);
  _tile_zero(7);
  for (int64_t s = s_begin; s < s_end; ++s) {
    const uint8_t* as = a + a_offset[s];
    _tile_loadd(0, as, stride);
    _tile_loadd(1, as + kTileRows * stride, stride);
    _tile_loadd(2, b + s * 2 * kBTileBytes, kStepK);
    _tile_loadd(3, b + s * 2 * kBTileBytes + kBTileBytes, kStepK);
    if constexpr (kBf16) {
      _tile_dpbf16ps(4, 0, 2);
      _tile_dpbf16ps(5, 0, 3);
      _tile_dpbf16ps(6, 1, 2);
      _tile_dpbf16ps(7, 1, 3);
    } else {
      _tile_dpbssd(4, 0, 2);
      _tile_dpbssd(5, 0, 3);
      _tile_dpbssd(6, 1, 2);
      _tile_dpbssd(7, 1, 3);
    }
  }
  constexpr int kStride = 32 * 4;  // float32 or int32
  char* out = static_cast<char*>(c);
  _tile_stored(4, out, kStride);
  _tile_stored(5, out + 16 * 4, kStride);
  _tile_stored(6, out + 16 * kStride, kStride);
  _tile_stored(7, out + 16 * kStride + 16 * 4, kStride);
}

// int4: acc[i, j] += f64(c[i, j]) * scale[j] (exact products, so FMA rounds like mul + add).
LOWBIT_AMX_FN void AccumulateScaled(const int32_t* c, const double* scale, double* acc) {
  for (int i = 0; i < 32; ++i) {
    for (int j = 0; j < 32; j += 8) {
      const __m512d d = _mm512_cvtepi32_pd(_mm256_loadu_si256(
          reinterpret_cast<const __m256i*>(c + i * 32 + j)));
      _mm512_storeu_pd(acc + i * 32 + j,
                       _mm512_fmadd_pd(d, _mm512_loadu_pd(scale + j),
                                       _mm512_loadu_pd(acc + i * 32 + j)));
    }
  }
}

// int8: dot[i, j] += c[i, j] in int64.
LOWBIT_AMX_FN void AccumulateDots(const int32_t* c, int64_t* dot) {
  for (int i = 0; i < 32 * 32; i += 8) {
    const __m512i d = _mm512_cvtepi32_epi64(_mm256_loadu_si256(
        reinterpret_cast<const __m256i*>(c + i)));
    _mm512_storeu_si512(dot + i, _mm512_add_epi64(d, _mm512_loadu_si512(dot + i)));
  }
}

// ---- bf16 (MatmulOptions::bf16_compute) --------------------------------------------------------

#undef LOWBIT_AMX_BF16_FN
#define LOWBIT_AMX_BF16_FN \
  __attribute__((target(HWY_TARGET_STR ",amx-tile,amx-bf16,avx512bf16")))

constexpr int64_t kStepKBf16 = 32;  // bf16 per tile row: k per TDPBF16PS

// Both B tiles of weight rows [n0, n0 + 32) (rows >= n_end zero) for k in [k0, k0 + 32): the
// dequantized weights (v - zero) * scale rounded to bf16, in the pair layout TDPBF16PS reads
// (row r, 4 bytes per column c = weight row c at k 2r, 2r + 1), into b (2 x 1024 bytes).
template <class Raw>
LOWBIT_AMX_BF16_FN HWY_INLINE void PrepareBf16Step(const CpuPacked& w, const Raw& raw,
                                                   int64_t n0, int64_t n_end, int64_t k0,
                                                   uint8_t* b) {
  const DF df;
  const bool asym = !w.zeros.empty();
  const int64_t g = k0 / w.group;  // groups are multiples of 32: one per step
  for (int t = 0; t < 2; ++t) {
    __m512 v[kTileRows];
    for (int c = 0; c < kTileRows; ++c) {
      const int64_t n = n0 + t * kTileRows + c;
      if (n >= n_end) {
        v[c] = _mm512_setzero_ps();
        continue;
      }
      const int64_t s = n * w.groups_per_row + g;
      VF lo = raw(n, k0), hi = raw(n, k0 + 16);
      if (asym) {
        lo = hn::Sub(lo, hn::Set(df, w.zeros[s]));
        hi = hn::Sub(hi, hn::Set(df, w.zeros[s]));
      }
      const VF scale = hn::Set(df, w.scales[s]);
      // [bf16(k0 .. k0 + 15), bf16(k0 + 16 .. k0 + 31)]: 32-bit lane r = pair (2r, 2r + 1).
      v[c] = _mm512_castsi512_ps(reinterpret_cast<__m512i>(
          _mm512_cvtne2ps_pbh(hn::Mul(hi, scale).raw, hn::Mul(lo, scale).raw)));
    }
    StoreBTile(v, b + t * kBTileBytes);
  }
}

template <class Raw>
LOWBIT_AMX_BF16_FN void GemmBf16Rows(const GemmProblem& p, const uint16_t* xb, const Raw& raw,
                                     int64_t n_begin, int64_t n_end, const int64_t* a_offset,
                                     uint8_t* b, float* c) {
  const CpuPacked& w = *p.w;
  const int64_t steps = w.k_pad / kStepKBf16;
  const int64_t stride = w.k_pad * static_cast<int64_t>(sizeof(uint16_t));
  ConfigureTiles();
  for (int64_t n0 = n_begin; n0 < n_end; n0 += kAmxBlockRows) {
    const int64_t nb = std::min(kAmxBlockRows, n_end - n0);
    for (int64_t s = 0; s < steps; ++s) {
      PrepareBf16Step(w, raw, n0, n0 + nb, s * kStepKBf16, b + s * 2 * kBTileBytes);
    }
    for (int64_t m0 = 0; m0 < p.m; m0 += kAmxBlockM) {
      BlockTiles<true>(reinterpret_cast<const uint8_t*>(xb + m0 * w.k_pad), stride, a_offset, 0,
                       steps, b, c);
      const int64_t mb = std::min(kAmxBlockM, p.m - m0);
      for (int64_t i = 0; i < mb; ++i) {
        std::copy(c + i * 32, c + i * 32 + nb, p.y + (m0 + i) * w.rows + n0);
      }
    }
  }
  ReleaseTiles();
}

}  // namespace

LOWBIT_AMX_FN void GemmInt8ActAmxImpl(const Int8ActProblem& p, int64_t n_begin, int64_t n_end) {
  const CpuPacked& w = *p.w;
  const bool four_bit = w.kind == CodeKind::kLut4;
  const int64_t nseg = p.num_segments;
  // Steps of 64 k, segment by segment: step_k[s] = first k of step s (also the byte offset of
  // its A tiles in a row of q); segment g owns steps [seg_step[g], seg_step[g + 1]).
  thread_local std::vector<int64_t> step_k, seg_step;
  step_k.clear();
  seg_step.assign(static_cast<size_t>(nseg + 1), 0);
  for (int64_t g = 0; g < nseg; ++g) {
    seg_step[g] = static_cast<int64_t>(step_k.size());
    const int64_t ke = std::min((g + 1) * p.segment, w.k_pad);
    for (int64_t k = g * p.segment; k < ke; k += kStepK) step_k.push_back(k);
  }
  seg_step[nseg] = static_cast<int64_t>(step_k.size());
  const int64_t steps = seg_step[nseg];
  // Per-thread workspaces, grown once: B tiles of one weight block, C tiles, accumulators.
  thread_local hwy::AlignedFreeUniquePtr<int8_t[]> b;
  thread_local int64_t b_bytes = 0;
  if (b_bytes < steps * 2 * kBTileBytes) {
    b_bytes = steps * 2 * kBTileBytes;
    b = hwy::AllocateAligned<int8_t>(static_cast<size_t>(b_bytes));
  }
  thread_local std::vector<double> scales, acc;
  thread_local std::vector<int64_t> dot;
  thread_local std::vector<int32_t> c;
  c.resize(32 * 32);
  acc.resize(32 * 32);
  dot.resize(32 * 32);
  if (four_bit) scales.resize(static_cast<size_t>(nseg * 32));
  const QuantState& st = w.state;
  ConfigureTiles();
  for (int64_t n0 = n_begin; n0 < n_end; n0 += kAmxBlockRows) {
    const int64_t nb = std::min(kAmxBlockRows, n_end - n0);
    for (int64_t g = 0; g < nseg; ++g) {
      const int64_t ke = std::min((g + 1) * p.segment, w.k_pad);
      for (int64_t s = seg_step[g]; s < seg_step[g + 1]; ++s) {
        PrepareBStep(w, n0, n0 + nb, step_k[s], ke, b.get() + s * 2 * kBTileBytes);
      }
      if (four_bit) {
        for (int64_t j = 0; j < 32; ++j) {
          scales[g * 32 + j] =
              j < nb ? static_cast<double>(w.scales[(n0 + j) * w.groups_per_row + g]) : 0.0;
        }
      }
    }
    for (int64_t m0 = 0; m0 < p.m; m0 += kAmxBlockM) {
      std::fill(acc.begin(), acc.end(), 0.0);
      std::fill(dot.begin(), dot.end(), 0);
      const int8_t* q = p.q + m0 * w.k_pad;
      for (int64_t g = 0; g < nseg; ++g) {
        BlockTiles<false>(reinterpret_cast<const uint8_t*>(q), w.k_pad, step_k.data(),
                          seg_step[g], seg_step[g + 1], reinterpret_cast<const uint8_t*>(b.get()),
                          c.data());
        if (four_bit) {
          AccumulateScaled(c.data(), scales.data() + g * 32, acc.data());
        } else {
          AccumulateDots(c.data(), dot.data());
        }
      }
      // The epilogue of matmul_int8act.cc, operation for operation.
      const int64_t mb = std::min(kAmxBlockM, p.m - m0);
      for (int64_t i = 0; i < mb; ++i) {
        const double a = static_cast<double>(p.absmax[m0 + i]);
        for (int64_t j = 0; j < nb; ++j) {
          double v;
          if (four_bit) {
            v = (acc[i * 32 + j] * a) / 127.0;
          } else {
            const double aw = static_cast<double>(
                st.scales[st.granularity == Granularity::kTensor ? 0 : n0 + j]);
            v = ((static_cast<double>(dot[i * 32 + j]) * aw) * a) / 16129.0;
          }
          p.y[(m0 + i) * w.rows + n0 + j] = static_cast<float>(v);
        }
      }
    }
  }
  ReleaseTiles();
}

LOWBIT_AMX_BF16_FN void ActivationsToBf16AmxImpl(const float* x, int64_t m, int64_t k_pad,
                                                 uint16_t* xb) {
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t k = 0; k < k_pad; k += 32) {  // k_pad is a multiple of 32
      const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + i * k_pad + k + 16),
                                             _mm512_loadu_ps(x + i * k_pad + k));
      _mm512_storeu_si512(xb + i * k_pad + k, reinterpret_cast<__m512i>(v));
    }
  }
  std::fill(xb + m * k_pad, xb + AmxActivationRows(m) * k_pad, uint16_t{0});
}

LOWBIT_AMX_BF16_FN void GemmBf16AmxImpl(const GemmProblem& p, const uint16_t* xb, int64_t n_begin,
                                        int64_t n_end) {
  const int64_t steps = p.w->k_pad / kStepKBf16;
  // Per-thread workspaces, grown once: B tiles of one weight block, C tiles.
  thread_local hwy::AlignedFreeUniquePtr<uint8_t[]> b;
  thread_local int64_t b_bytes = 0;
  if (b_bytes < steps * 2 * kBTileBytes) {
    b_bytes = steps * 2 * kBTileBytes;
    b = hwy::AllocateAligned<uint8_t>(static_cast<size_t>(b_bytes));
  }
  // Byte offset of each step's A tiles in an activation block.
  thread_local std::vector<int64_t> a_offset;
  a_offset.resize(static_cast<size_t>(steps));
  for (int64_t s = 0; s < steps; ++s) a_offset[s] = s * kStepKBf16 * 2;
  alignas(64) float c[32 * 32];
  WithRaw(*p.w, [&](const auto& raw) {
    GemmBf16Rows(p, xb, raw, n_begin, n_end, a_offset.data(), b.get(), c);
  });
}

#else  // LOWBIT_AMX

void GemmInt8ActAmxImpl(const Int8ActProblem&, int64_t, int64_t) {
  HWY_ABORT("lowbit: the AMX kernel ran on target %s (AmxInt8Usable() must hold)",
            hwy::TargetName(HWY_TARGET));
}

void ActivationsToBf16AmxImpl(const float*, int64_t, int64_t, uint16_t*) {
  HWY_ABORT("lowbit: the AMX kernel ran on target %s (AmxBf16Usable() must hold)",
            hwy::TargetName(HWY_TARGET));
}

void GemmBf16AmxImpl(const GemmProblem&, const uint16_t*, int64_t, int64_t) {
  HWY_ABORT("lowbit: the AMX kernel ran on target %s (AmxBf16Usable() must hold)",
            hwy::TargetName(HWY_TARGET));
}

#endif  // LOWBIT_AMX

}  // namespace lowbit::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace lowbit::cpu {
namespace {

std::atomic<bool> amx_disabled_for_test{false};

// Whether the CPU has AMX-TILE and `feature` (CPUID.(7,0):EDX bit 25 AMX-INT8, bit 22 AMX-BF16;
// AVX512-BF16 is CPUID.(7,1):EAX bit 5) and Linux grants the tile state.
enum class AmxKind { kInt8, kBf16 };
bool DetectAmx(AmxKind kind) {
#if defined(__x86_64__) && defined(__linux__)
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
  if (!(edx >> 24 & 1)) return false;  // AMX-TILE
  if (kind == AmxKind::kInt8 && !(edx >> 25 & 1)) return false;
  if (kind == AmxKind::kBf16) {
    if (!(edx >> 22 & 1)) return false;
    if (!__get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx) || !(eax >> 5 & 1)) return false;
  }
  // Tile data is a dynamically enabled state: a process asks for it before its first use
  // (arch_prctl ARCH_REQ_XCOMP_PERM = 0x1023 for XFEATURE_XTILEDATA = 18).
  constexpr int kArchReqXcompPerm = 0x1023;
  constexpr int kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}

}  // namespace

HWY_EXPORT(GemmInt8ActAmxImpl);
HWY_EXPORT(ActivationsToBf16AmxImpl);
HWY_EXPORT(GemmBf16AmxImpl);

bool AmxBf16Usable() {
  static const bool cpu_ok = DetectAmx(AmxKind::kBf16);
  return cpu_ok && !amx_disabled_for_test.load(std::memory_order_relaxed) &&
         (hwy::SupportedTargets() & HWY_AVX3_DL) != 0;
}

void ActivationsToBf16Amx(const float* x, int64_t m, int64_t k_pad, uint16_t* xb) {
  HWY_DYNAMIC_DISPATCH(ActivationsToBf16AmxImpl)(x, m, k_pad, xb);
}

void GemmBf16Amx(const GemmProblem& p, const uint16_t* xb, int64_t n_begin, int64_t n_end) {
  HWY_DYNAMIC_DISPATCH(GemmBf16AmxImpl)(p, xb, n_begin, n_end);
}

bool AmxInt8Usable() {
  static const bool cpu_ok = DetectAmx(AmxKind::kInt8);
  return cpu_ok && !amx_disabled_for_test.load(std::memory_order_relaxed) &&
         (hwy::SupportedTargets() & HWY_AVX3_DL) != 0;
}

void SetAmxDisabledForTest(bool disabled) { amx_disabled_for_test.store(disabled); }

void GemmInt8ActAmx(const Int8ActProblem& p, int64_t n_begin, int64_t n_end) {
  HWY_DYNAMIC_DISPATCH(GemmInt8ActAmxImpl)(p, n_begin, n_end);
}

}  // namespace lowbit::cpu
#endif  // HWY_ONCE
