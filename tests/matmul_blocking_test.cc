// Shapes aimed at the blocking of the fast CPU kernels (docs/performance.md §4), on every Highway
// target: the AVX-512 4-bit GEMV (8 strided row streams + leftover rows, 32/64-element groups
// with a partial last 128-code block, several groups per row and several blocks per group,
// asymmetric correction), the multi-stream generic GEMV (int8/fp8), and the k-major tile GEMM
// (column tails below and above 16, activation-row tails of the 12-row micro-kernel).
//
// Oracle: reference-exact dequantization (lowbit::DequantizeToF32, bit-exact with src/reference)
// times x in float64. Bound per element (docs/kernels.md §4):
//   |y - y_ref| <= (K + 8) * 2^-24 * sum_k |x_k w_k| + 1e-30.
// Also: results are bit-identical for 1 and 2 threads.
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "backend.h"
#include "format_test_util.h"
#include "gtest/gtest.h"
#include "hwy/targets.h"
#include "lowbit/context.h"
#include "lowbit/ops.h"
#include "lowbit/quantize.h"

namespace lowbit {
namespace {

using testing::Randn;

struct BlockingCase {
  const char* name;
  Format format;
  int64_t block;  // QuantizeOptions::block_size (0 = default)
  int64_t n, k;
};

// N = 75: GEMV tasks of 32 rows give ranges of 32/32/11 rows (8-row slices of 4 and 1, plus 3
// leftover rows); GEMM tiles of 32/32/11 columns. K picks the group mode and the tail block.
const BlockingCase kCases[] = {
    {"nf4_b256_k2048", Format::kNF4, 256, 75, 2048},     // 2 blocks per group, 8 groups
    {"fp4_b128_k640", Format::kFP4, 128, 75, 640},       // 1 block per group
    {"int4_g64_k900", Format::kInt4, 64, 75, 900},       // 64-groups, partial last block (32)
    {"int4_g32_k900", Format::kInt4, 32, 75, 900},       // 32-groups, partial last block
    {"int4_g256_k300", Format::kInt4, 256, 75, 300},     // last group and block partial
    {"int4_asym_g128_k1200", Format::kInt4Asym, 128, 75, 1200},  // zero-point correction
    {"int8_k777", Format::kInt8, 0, 75, 777},
    {"int8_asym_k130", Format::kInt8Asym, 0, 45, 130},
    {"fp8_e4m3_k200", Format::kFP8E4M3, 0, 45, 200},
};
// 13 = 12 + 1 and 26 = 12 + 12 + 2 activation rows: every micro-kernel tail shape class.
const int64_t kMs[] = {1, 13, 26};

std::vector<float> RunMatmul(const PackedWeight& w, const std::vector<float>& x, int64_t m, int64_t n,
                       int64_t k, int threads) {
  Context ctx(threads);
  std::vector<float> y(static_cast<size_t>(m * n));
  Matmul(w, ConstTensorView{x.data(), DType::kF32, m == 1 ? Shape{k} : Shape{m, k}},
         TensorView{y.data(), DType::kF32, m == 1 ? Shape{n} : Shape{m, n}}, nullptr, &ctx);
  return y;
}

TEST(MatmulBlockingTest, MatchesReferenceOnEveryTarget) {
  // Split every shape into row tasks (these are below the backend's serial threshold).
  SetSerialMatmulMacs(0);
  for (const BlockingCase& c : kCases) {
    const std::vector<float> wf = Randn(c.n * c.k, 7);
    QuantizeOptions o;
    o.block_size = c.block;
    const QuantizedTensor q = Quantize(c.format, {wf.data(), DType::kF32, {c.n, c.k}}, o);
    const std::vector<float> wd = DequantizeToF32(q);
    const PackedWeight pw = Pack(q);
    for (const int64_t m : kMs) {
      const std::vector<float> x = Randn(m * c.k, 11 + static_cast<uint32_t>(m));
      // Reference and per-element bound, computed once per (case, M).
      std::vector<double> ref(static_cast<size_t>(m * c.n)), bound(ref.size());
      for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = 0; j < c.n; ++j) {
          double s = 0, a = 0;
          for (int64_t kk = 0; kk < c.k; ++kk) {
            const double p = static_cast<double>(x[i * c.k + kk]) * wd[j * c.k + kk];
            s += p;
            a += std::fabs(p);
          }
          ref[i * c.n + j] = s;
          bound[i * c.n + j] = static_cast<double>(c.k + 8) * std::ldexp(1.0, -24) * a + 1e-30;
        }
      }
      for (const int64_t target : hwy::SupportedAndGeneratedTargets()) {
        hwy::SetSupportedTargetsForTest(target);
        const std::string what = std::string(c.name) + " M=" + std::to_string(m) + " on " +
                                 hwy::TargetName(target);
        const std::vector<float> y1 = RunMatmul(pw, x, m, c.n, c.k, 1);
        const std::vector<float> y2 = RunMatmul(pw, x, m, c.n, c.k, 2);
        ASSERT_EQ(0, std::memcmp(y1.data(), y2.data(), y1.size() * sizeof(float)))
            << what << ": 1 and 2 threads differ";
        int bad = 0;
        for (size_t e = 0; e < y1.size() && bad < 3; ++e) {
          const double err = std::fabs(static_cast<double>(y1[e]) - ref[e]);
          if (!(err <= bound[e])) {
            ADD_FAILURE() << what << " element " << e << ": got " << y1[e] << ", reference "
                          << ref[e] << ", |error| " << err << " > bound " << bound[e];
            ++bad;
          }
        }
      }
      hwy::SetSupportedTargetsForTest(0);
    }
  }
  SetSerialMatmulMacs(kDefaultSerialMatmulMacs);
}

}  // namespace
}  // namespace lowbit
