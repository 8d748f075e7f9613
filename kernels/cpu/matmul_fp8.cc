// Float-path matmul kernels for FP8 E4M3 / E5M2 weights, compiled for every Highway target.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/matmul_fp8.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "kernels/cpu/matmul-inl.h"

HWY_BEFORE_NAMESPACE();
namespace lowbit::cpu::HWY_NAMESPACE {

void GemmFP8Impl(const GemmProblem& p, int64_t n_begin, int64_t n_end) {
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
  if (p.m > 1) {  // k-major tiles + outer-product micro-kernel (matmul-inl.h)
    if (p.w->kind == CodeKind::kFP8E4M3) {
      GemmTileT(p, ByteRaw<CodeKind::kFP8E4M3>{*p.w}, n_begin, n_end);
    } else {
      GemmTileT(p, ByteRaw<CodeKind::kFP8E5M2>{*p.w}, n_begin, n_end);
    }
    return;
  }
#endif
  if (p.w->kind == CodeKind::kFP8E4M3) {
    GemmRows<ByteChunk<CodeKind::kFP8E4M3>>(p, n_begin, n_end);
  } else {
    GemmRows<ByteChunk<CodeKind::kFP8E5M2>>(p, n_begin, n_end);
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
