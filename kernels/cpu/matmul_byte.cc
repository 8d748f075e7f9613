// Float-path matmul kernels for int8 / int8_asym weights, compiled for every Highway target.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/matmul_byte.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "kernels/cpu/matmul-inl.h"

HWY_BEFORE_NAMESPACE();
namespace lowbit::cpu::HWY_NAMESPACE {

void GemmByteImpl(const GemmProblem& p, int64_t n_begin, int64_t n_end) {
#if LOWBIT_TILE_GEMM
  if (p.m > 1) {  // k-major tiles + outer-product micro-kernel (matmul-inl.h)
    if (p.w->kind == CodeKind::kInt8) {
      GemmTileT(p, ByteRaw<CodeKind::kInt8>{*p.w}, n_begin, n_end);
    } else {
      GemmTileT(p, ByteRaw<CodeKind::kUInt8>{*p.w}, n_begin, n_end);
    }
    return;
  }
#endif
  if (p.w->kind == CodeKind::kInt8) {
    GemmRows<ByteChunk<CodeKind::kInt8>>(p, n_begin, n_end);
  } else {
    GemmRows<ByteChunk<CodeKind::kUInt8>>(p, n_begin, n_end);
  }
}

}  // namespace lowbit::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace lowbit::cpu {

HWY_EXPORT(GemmByteImpl);

void GemmByte(const GemmProblem& p, int64_t n_begin, int64_t n_end) {
  HWY_DYNAMIC_DISPATCH(GemmByteImpl)(p, n_begin, n_end);
}

}  // namespace lowbit::cpu
#endif  // HWY_ONCE
