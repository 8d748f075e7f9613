// Float-path matmul kernels for one-byte integer and table codes (int8, int8_asym, blockwise8),
// compiled for every Highway target.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/matmul_byte.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "kernels/cpu/matmul-inl.h"

HWY_BEFORE_NAMESPACE();
namespace lowbit::cpu::HWY_NAMESPACE {

template <CodeKind kKind>
void GemmByteKind(const GemmProblem& p, int64_t n_begin, int64_t n_end) {
#if LOWBIT_TILE_GEMM
  if (p.m > 1) {  // k-major tiles + outer-product micro-kernel (matmul-inl.h)
    GemmTileT(p, ByteRaw<kKind>{*p.w}, n_begin, n_end);
    return;
  }
#endif
  GemmRows<ByteChunk<kKind>>(p, n_begin, n_end);
}

void GemmByteImpl(const GemmProblem& p, int64_t n_begin, int64_t n_end) {
  switch (p.w->kind) {
    case CodeKind::kInt8: return GemmByteKind<CodeKind::kInt8>(p, n_begin, n_end);
    case CodeKind::kUInt8: return GemmByteKind<CodeKind::kUInt8>(p, n_begin, n_end);
    default: return GemmByteKind<CodeKind::kLut8>(p, n_begin, n_end);
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
