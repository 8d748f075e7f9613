// bench/eigen_baseline.h — the f32_eigen baseline: Eigen's float GEMV/GEMM, built for the best
// x86-64 level this CPU runs (AVX-512, AVX2+FMA, or the compiler default), picked at run time.
#ifndef LOWBIT_BENCH_EIGEN_BASELINE_H_
#define LOWBIT_BENCH_EIGEN_BASELINE_H_

#include <cstdint>

namespace lowbit {
namespace bench {

// y[M, N] = x[M, K] · W[N, K]ᵀ on rows [row_begin, row_end) of W (and columns of y) only, so
// callers can split N over threads. All float32, row-major, single-threaded (Eigen is built
// without OpenMP).
using EigenMatmulFn = void (*)(const float* w, const float* x, float* y, int64_t m, int64_t n,
                               int64_t k, int64_t row_begin, int64_t row_end);

// The best variant for this CPU and its name ("avx512", "avx2", "generic").
EigenMatmulFn BestEigenMatmul(const char** isa_name);

}  // namespace bench
}  // namespace lowbit

#endif  // LOWBIT_BENCH_EIGEN_BASELINE_H_
