// Float-path matmul kernels for 4-bit codebook/integer weights (nf4, fp4, int4, int4_asym), compiled for every Highway target.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/matmul_lut4.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "kernels/cpu/matmul-inl.h"

HWY_BEFORE_NAMESPACE();
namespace lowbit::cpu::HWY_NAMESPACE {

void GemmLut4Impl(const GemmProblem& p, int64_t n_begin, int64_t n_end) {
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
