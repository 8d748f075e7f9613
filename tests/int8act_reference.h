// Exact reference of the int8-activation matmul semantics (kernels/cpu/matmul_int8act.cc,
// docs/kernels.md §5), written independently of the kernels, for the tests that check them.
#ifndef LOWBIT_TESTS_INT8ACT_REFERENCE_H_
#define LOWBIT_TESTS_INT8ACT_REFERENCE_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "format_test_util.h"
#include "lowbit/quantize.h"
#include "reference/reference.h"

namespace lowbit::testing {

// y [m, N] for int8 (row or tensor absmax) or int4 (symmetric, groups along rows) weights q and
// float32 activations xv [m, K]: activation codes by the absmax rule, integer dot products in
// int64 (per group for int4), the fixed float64 epilogue; NaN rows for non-finite activations.
inline std::vector<float> Int8ActReference(const QuantizedTensor& q, const std::vector<float>& xv,
                                    int64_t m) {
  const QuantState& s = q.state;
  const int64_t n = s.rows(), k = s.cols();
  std::vector<float> y(static_cast<size_t>(m * n));
  for (int64_t i = 0; i < m; ++i) {
    float a = 0.0f;
    bool finite = true;
    for (int64_t j = 0; j < k; ++j) {
      finite = finite && std::isfinite(xv[i * k + j]);
      a = std::max(a, std::fabs(xv[i * k + j]));
    }
    std::vector<int64_t> qx(static_cast<size_t>(k), 0);
    if (finite && a > 0.0f) {
      const float mul = std::min(127.0f / a, std::numeric_limits<float>::max());
      for (int64_t j = 0; j < k; ++j) {
        const float t = xv[i * k + j] * mul;
        qx[j] = static_cast<int64_t>(
            std::clamp(RoundHalfEven(static_cast<double>(t)), -127.0, 127.0));
      }
    }
    for (int64_t r = 0; r < n; ++r) {
      double v;
      if (s.format == Format::kInt8) {
        int64_t dot = 0;
        for (int64_t j = 0; j < k; ++j) {
          dot += static_cast<int64_t>(static_cast<int8_t>(q.data[r * k + j])) * qx[j];
        }
        const double aw = s.scales[s.granularity == Granularity::kTensor ? 0 : r];
        v = ((static_cast<double>(dot) * aw) * static_cast<double>(a)) / 16129.0;
      } else {  // int4 symmetric, groups along the row
        const int64_t groups = (k + s.block_size - 1) / s.block_size;
        double acc = 0.0;
        for (int64_t g = 0; g < groups; ++g) {
          int64_t dot = 0;
          for (int64_t j = g * s.block_size; j < std::min(k, (g + 1) * s.block_size); ++j) {
            dot += (static_cast<int64_t>(ref::Nibble(q.data.data(), r * k + j)) - 8) * qx[j];
          }
          acc += static_cast<double>(dot) * static_cast<double>(s.scales[r * groups + g]);
        }
        v = (acc * static_cast<double>(a)) / 127.0;
      }
      y[i * n + r] = finite ? static_cast<float>(v) : std::numeric_limits<float>::quiet_NaN();
    }
  }
  return y;
}

}  // namespace lowbit::testing

#endif  // LOWBIT_TESTS_INT8ACT_REFERENCE_H_
