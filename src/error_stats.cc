// EstimateError: error statistics between an original tensor and its reconstruction.
#include <cmath>
#include <limits>
#include <vector>

#include "lowbit/quantize.h"

namespace lowbit {

ErrorStats EstimateError(const ConstTensorView& original, const ConstTensorView& approx) {
  const int64_t n = ValidateView(original, "EstimateError original");
  const int64_t m = ValidateView(approx, "EstimateError approx");
  Require(n == m, Status::kInvalidArgument,
          "EstimateError: element counts differ (" + std::to_string(n) + " vs " + std::to_string(m) + ")");
  std::vector<float> a(static_cast<size_t>(n)), b(static_cast<size_t>(n));
  ToF32(original.data, original.dtype, n, a.data());
  ToF32(approx.data, approx.dtype, n, b.data());
  double sum_abs = 0, sum_rel = 0, sum_sq = 0, sum_ref_sq = 0, max_abs = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
    const double ad = std::fabs(d);
    sum_abs += ad;
    sum_rel += ad / (std::fabs(static_cast<double>(a[i])) + 1e-8);
    sum_sq += d * d;
    sum_ref_sq += static_cast<double>(a[i]) * a[i];
    max_abs = std::max(max_abs, ad);
  }
  ErrorStats s;
  s.count = n;
  s.mean_abs = sum_abs / n;
  s.mean_rel = sum_rel / n;
  s.mse = sum_sq / n;
  s.max_abs = max_abs;
  s.rel_l2 = sum_ref_sq > 0 ? std::sqrt(sum_sq / sum_ref_sq) : (sum_sq > 0 ? INFINITY : 0.0);
  s.snr_db = sum_sq > 0 ? 10.0 * std::log10(sum_ref_sq / sum_sq) : std::numeric_limits<double>::infinity();
  return s;
}

}  // namespace lowbit
