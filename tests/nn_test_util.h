// Helpers shared by the nn layer tests (nn_linear_test, nn_lora_test): seeded normal inputs and
// float64 Eigen matrices for the reference products.
#ifndef LOWBIT_TESTS_NN_TEST_UTIL_H_
#define LOWBIT_TESTS_NN_TEST_UTIL_H_

#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

#include <Eigen/Core>

namespace lowbit::nn::nntest {

using MatD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// n samples of N(0, scale²) from a seeded std::mt19937_64, rounded to float.
inline std::vector<float> Randn(int64_t n, uint64_t seed, double scale = 1.0) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> d(0.0, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = static_cast<float>(d(rng));
  return v;
}

// The row-major [rows, cols] float vector `v` widened to a float64 matrix.
inline MatD ToMat(const std::vector<float>& v, int64_t rows, int64_t cols) {
  MatD m(rows, cols);
  for (int64_t i = 0; i < rows * cols; ++i) m.data()[i] = v[static_cast<size_t>(i)];
  return m;
}

}  // namespace lowbit::nn::nntest

#endif  // LOWBIT_TESTS_NN_TEST_UTIL_H_
