// bench/eigen_select.cc — picks the Eigen baseline variant this CPU can run.
#include "bench/eigen_baseline.h"

namespace lowbit {
namespace bench {

void EigenMatmul_generic(const float*, const float*, float*, int64_t, int64_t, int64_t, int64_t,
                         int64_t);
#if defined(LOWBIT_BENCH_EIGEN_X86_LEVELS)
void EigenMatmul_avx2(const float*, const float*, float*, int64_t, int64_t, int64_t, int64_t,
                      int64_t);
void EigenMatmul_avx512(const float*, const float*, float*, int64_t, int64_t, int64_t, int64_t,
                        int64_t);
#endif

EigenMatmulFn BestEigenMatmul(const char** isa_name) {
#if defined(LOWBIT_BENCH_EIGEN_X86_LEVELS)
  __builtin_cpu_init();
  // x86-64-v4 = AVX-512 F/BW/CD/DQ/VL; x86-64-v3 = AVX2 + FMA (+ BMI/F16C, implied by these).
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512cd")) {
    *isa_name = "avx512";
    return &EigenMatmul_avx512;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("f16c")) {
    *isa_name = "avx2";
    return &EigenMatmul_avx2;
  }
#endif
  *isa_name = "generic";
  return &EigenMatmul_generic;
}

}  // namespace bench
}  // namespace lowbit
