// Float-path matmul kernels for FP8 E4M3 / E5M2 weights, compiled for every Highway target.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/matmul_fp8.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "kernels/cpu/matmul-inl.h"

HWY_BEFORE_NAMESPACE();
namespace lowbit::cpu::HWY_NAMESPACE {

// Both decodes give bit-identical values for finite codes; the cheaper one (DecodeE4M3Finite)
// is taken when Pack found no Inf/NaN code (CpuPacked::fp8_finite, the case for every
// quantized weight).
template <CodeKind kKind, bool kFinite>
void GemmFP8Kind(const GemmProblem& p, int64_t n_begin, int64_t n_end) {
#if LOWBIT_TILE_GEMM
  if (p.m > 1) {  // k-major tiles + outer-product micro-kernel (matmul-inl.h)
    GemmTileT(p, ByteRaw<kKind, kFinite>{*p.w}, n_begin, n_end);
    return;
  }
#endif
  GemmRows<ByteChunk<kKind, kFinite>>(p, n_begin, n_end);
}

void GemmFP8Impl(const GemmProblem& p, int64_t n_begin, int64_t n_end) {
  const bool e4m3 = p.w->kind == CodeKind::kFP8E4M3;
  if (p.w->fp8_finite) {
    (e4m3 ? GemmFP8Kind<CodeKind::kFP8E4M3, true> : GemmFP8Kind<CodeKind::kFP8E5M2, true>)(
        p, n_begin, n_end);
  } else {
    (e4m3 ? GemmFP8Kind<CodeKind::kFP8E4M3, false> : GemmFP8Kind<CodeKind::kFP8E5M2, false>)(
        p, n_begin, n_end);
  }
}

}  // namespace lowbit::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace lowbit::cpu {

HWY_EXPORT(GemmFP8Impl);

void GemmFP8(const GemmProblem& p, int64_t n_begin, int64_t n_end) {
  HWY_DYNAMIC_DISPATCH(GemmFP8Impl)(p, n_begin, n_end);
}

}  // namespace lowbit::cpu
#endif  // HWY_ONCE
