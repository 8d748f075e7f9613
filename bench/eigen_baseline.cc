// bench/eigen_baseline.cc — Eigen float matmul; compiled once per ISA level with
// LOWBIT_EIGEN_VARIANT naming the function (see bench/CMakeLists.txt).
#include <Eigen/Core>
#include <cstdint>

#ifndef LOWBIT_EIGEN_VARIANT
#error "define LOWBIT_EIGEN_VARIANT (the function name suffix)"
#endif
#define LOWBIT_CONCAT_INNER(a, b) a##b
#define LOWBIT_CONCAT(a, b) LOWBIT_CONCAT_INNER(a, b)

namespace lowbit {
namespace bench {

void LOWBIT_CONCAT(EigenMatmul_, LOWBIT_EIGEN_VARIANT)(const float* w, const float* x, float* y,
                                                       int64_t m, int64_t n, int64_t k,
                                                       int64_t row_begin, int64_t row_end) {
  using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const int64_t rows = row_end - row_begin;
  Eigen::Map<const RowMajor> w_block(w + row_begin * k, rows, k);
  if (m == 1) {  // GEMV: Eigen's row-major matrix-vector kernel
    Eigen::Map<const Eigen::VectorXf> xv(x, k);
    Eigen::Map<Eigen::VectorXf> yv(y + row_begin, rows);
    yv.noalias() = w_block * xv;
    return;
  }
  Eigen::Map<const RowMajor> xm(x, m, k);
  // y's column block [row_begin, row_end) of an [m, n] row-major matrix: outer stride n.
  Eigen::Map<RowMajor, 0, Eigen::OuterStride<>> ym(y + row_begin, m, rows, Eigen::OuterStride<>(n));
  ym.noalias() = xm * w_block.transpose();
}

}  // namespace bench
}  // namespace lowbit
