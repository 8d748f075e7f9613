// Helpers shared by the format/codec test binaries: seeded inputs in f32/f16/bf16 (converted with
// Eigen, independent of lowbit's own conversions), bitsandbytes' error metrics, and Error checks.
#ifndef LOWBIT_TESTS_FORMAT_TEST_UTIL_H_
#define LOWBIT_TESTS_FORMAT_TEST_UTIL_H_

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <Eigen/Core>
#include <gtest/gtest.h>

#include "lowbit/dtype.h"
#include "lowbit/status.h"

namespace lowbit::testing {

// n samples of N(0, 1) from a seeded std::mt19937 (torch.randn stand-in).
inline std::vector<float> Randn(int64_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& f : v) f = dist(gen);
  return v;
}

// A dense tensor in f32, f16 or bf16 holding `values` rounded (RNE, by Eigen) to that dtype.
class DenseTensor {
 public:
  DenseTensor(const std::vector<float>& values, DType dtype, Shape shape)
      : dtype_(dtype), shape_(std::move(shape)) {
    bytes_.resize(values.size() * DTypeSize(dtype));
    rounded_.resize(values.size());
    for (size_t i = 0; i < values.size(); ++i) {
      if (dtype == DType::kF32) {
        std::memcpy(&bytes_[4 * i], &values[i], 4);
        rounded_[i] = values[i];
      } else if (dtype == DType::kF16) {
        const Eigen::half h(values[i]);
        const uint16_t bits = Eigen::numext::bit_cast<uint16_t>(h);
        std::memcpy(&bytes_[2 * i], &bits, 2);
        rounded_[i] = static_cast<float>(h);
      } else {
        const Eigen::bfloat16 b(values[i]);
        const uint16_t bits = Eigen::numext::bit_cast<uint16_t>(b);
        std::memcpy(&bytes_[2 * i], &bits, 2);
        rounded_[i] = static_cast<float>(b);
      }
    }
  }
  ConstTensorView view() const { return {bytes_.data(), dtype_, shape_}; }
  // The element values as float32 (exact widening of the stored dtype).
  const std::vector<float>& values() const { return rounded_; }

 private:
  DType dtype_;
  Shape shape_;
  std::vector<uint8_t> bytes_;
  std::vector<float> rounded_;
};

// Reads n elements of an f32/f16/bf16 buffer as float, widening with Eigen.
inline std::vector<float> WidenWithEigen(const std::vector<uint8_t>& bytes, DType dtype) {
  const size_t n = bytes.size() / DTypeSize(dtype);
  std::vector<float> out(n);
  for (size_t i = 0; i < n; ++i) {
    if (dtype == DType::kF32) {
      std::memcpy(&out[i], &bytes[4 * i], 4);
    } else {
      uint16_t bits;
      std::memcpy(&bits, &bytes[2 * i], 2);
      out[i] = dtype == DType::kF16
                   ? static_cast<float>(Eigen::numext::bit_cast<Eigen::half>(bits))
                   : static_cast<float>(Eigen::numext::bit_cast<Eigen::bfloat16>(bits));
    }
  }
  return out;
}

// bitsandbytes' test metrics: err = mean |a - b|, relerr = mean |a - b| / (|a| + eps).
struct BnbError {
  double err = 0;
  double relerr = 0;
};
inline BnbError MeasureBnbError(const std::vector<float>& a, const std::vector<float>& b,
                                double eps = 1e-8) {
  BnbError e;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = std::fabs(static_cast<double>(a[i]) - static_cast<double>(b[i]));
    e.err += d;
    e.relerr += d / (std::fabs(static_cast<double>(a[i])) + eps);
  }
  e.err /= static_cast<double>(a.size());
  e.relerr /= static_cast<double>(a.size());
  return e;
}

// Round half to even computed in double, independent of the FP environment and of nearbyint.
inline double RoundHalfEven(double v) {
  const double f = std::floor(v);
  const double frac = v - f;
  if (frac > 0.5) return f + 1.0;
  if (frac < 0.5) return f;
  return (std::fmod(f, 2.0) == 0.0) ? f : f + 1.0;
}

// Expects fn() to throw lowbit::Error with `status` and a message containing every substring.
inline void ExpectError(const std::function<void()>& fn, Status status,
                        const std::vector<std::string>& substrings) {
  try {
    fn();
    ADD_FAILURE() << "expected lowbit::Error(" << StatusName(status) << ")";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), status) << e.what();
    for (const std::string& s : substrings) {
      EXPECT_NE(e.message().find(s), std::string::npos)
          << "message '" << e.message() << "' lacks '" << s << "'";
    }
  }
}

}  // namespace lowbit::testing

#endif  // LOWBIT_TESTS_FORMAT_TEST_UTIL_H_
