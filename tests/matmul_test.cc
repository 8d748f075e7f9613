// Public Matmul/Gemv/Gemm on the CPU backend vs reference dequantize + Eigen float64 matmul for
// every weight format x activation dtype x M, on every Highway target; identity exactness,
// thread-count invariance, Pack/Unpack round trips, validation errors, and the int8-activation
// path against an exact integer reference.
//
// Float-path tolerance (per output element, documented in docs/kernels.md):
//   |y - y_ref| <= (K + 8) * 2^-24 * S + u_out * |y_ref| + 1e-30,   S = sum_k |x_k * w_k|
// where w is the reference dequantized weight and x the activation exactly as stored (f32, bf16
// or f16 widen exactly to float32). (K + 8) * 2^-24 * S bounds any float32 summation order of K
// products (gamma_K, Higham 3.1) plus the kernels' scale factoring (w = v * scale computed as
// (sum v * x) * scale: at most two extra roundings per term). u_out is the unit roundoff of
// the output dtype: 0 for f32 output, 2^-8 for bf16, 2^-11 for f16 (the single final rounding of
// y when it is written in the activation dtype).
#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "backend.h"
#include "format_test_util.h"
#include "int8act_reference.h"
#include "gtest/gtest.h"
#include "hwy/targets.h"
#include "kernels/cpu/matmul_amx.h"
#include "lowbit/context.h"
#include "lowbit/ops.h"
#include "lowbit/quantize.h"
#include "reference/reference.h"

namespace lowbit {
namespace {

using testing::DenseTensor;
using testing::ExpectError;
using testing::Int8ActReference;
using testing::Randn;
using testing::WidenWithEigen;

struct WeightCase {
  const char* name;
  Format format;
  int64_t block;  // 0 = none
  bool dq;
  Granularity granularity;
  int64_t k;  // in_features chosen to exercise the case's layout (see comments)
};

// N = 37 everywhere: 9 GEMV row blocks of 4 + a tail row, 2 GEMM tiles of 16 + a 5-row tile.
constexpr int64_t kN = 37;

const std::vector<WeightCase>& WeightCases() {
  static const std::vector<WeightCase> cases = {
      // Flat blocks: K = 96 gives execution groups of gcd(96, 64) = 32 (blocks straddle rows).
      {"nf4_b64", Format::kNF4, 64, false, Granularity::kDefault, 96},
      {"nf4_b32_dq", Format::kNF4, 32, true, Granularity::kDefault, 160},
      {"fp4_b64_dq", Format::kFP4, 64, true, Granularity::kDefault, 128},
      // K not a multiple of 32: nf4 takes the dense fallback, kept correct.
      {"nf4_b64_oddk", Format::kNF4, 64, false, Granularity::kDefault, 75},
      // Groups along rows with a partial last group and a padded K tail.
      {"int4_g32", Format::kInt4, 32, false, Granularity::kDefault, 75},
      {"int4_g128", Format::kInt4, 128, false, Granularity::kDefault, 200},
      {"int4_asym_g64", Format::kInt4Asym, 64, false, Granularity::kDefault, 133},
      {"int8_row", Format::kInt8, 0, false, Granularity::kRow, 101},
      {"int8_tensor", Format::kInt8, 0, false, Granularity::kTensor, 64},
      {"int8_asym_row", Format::kInt8Asym, 0, false, Granularity::kRow, 77},
      {"fp8_e4m3_row", Format::kFP8E4M3, 0, false, Granularity::kRow, 99},
      {"fp8_e5m2_tensor", Format::kFP8E5M2, 0, false, Granularity::kTensor, 65},
      {"nf4_b128_k384", Format::kNF4, 128, false, Granularity::kDefault, 384},
      {"blockwise8_b64", Format::kBlockwise8, 64, false, Granularity::kDefault, 64},
      // E2M1: mxfp4's 32-groups run the 4-bit kernels (partial last group, padded tail);
      // nvfp4's 16-groups are finer than a 32-code chunk and take the dense fallback.
      {"mxfp4_k96", Format::kMXFP4, 0, false, Granularity::kDefault, 96},
      {"mxfp4_k75", Format::kMXFP4, 0, false, Granularity::kDefault, 75},
      {"nvfp4_k80", Format::kNVFP4, 0, false, Granularity::kDefault, 80},
      {"iq4_nl_k96", Format::kIQ4NL, 0, false, Granularity::kDefault, 96},
      // Dense weights take the Eigen float32 path.
      {"f32", Format::kF32, 0, false, Granularity::kDefault, 70},
      {"bf16", Format::kBF16, 0, false, Granularity::kDefault, 33},
      {"f16", Format::kF16, 0, false, Granularity::kDefault, 40},
  };
  return cases;
}

QuantizedTensor MakeWeight(const WeightCase& c, int64_t n, int64_t k, uint32_t seed) {
  const std::vector<float> w = Randn(n * k, seed);
  QuantizeOptions o;
  o.block_size = c.block;
  o.double_quant = c.dq;
  o.granularity = c.granularity;
  return Quantize(c.format, {w.data(), DType::kF32, {n, k}}, o);
}

std::vector<float> RefDequantize(const QuantizedTensor& q) {
  if (IsDense(q.state.format)) {  // no codec: the stored values, widened by Eigen
    return WidenWithEigen(q.data, GetFormatInfo(q.state.format).dense_dtype);
  }
  std::vector<float> out(static_cast<size_t>(q.state.num_elements()));
  GetFormatInfo(q.state.format).reference_dequantize(q, out.data());
  return out;
}

using MatD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

double UnitRoundoff(DType out) {
  switch (out) {
    case DType::kBF16:
      return std::ldexp(1.0, -8);
    case DType::kF16:
      return std::ldexp(1.0, -11);
    default:
      return 0.0;
  }
}

// x · wᵀ in float64 and sum_k |x_k w_k| for the bound, computed once per (weight, x).
struct Reference {
  MatD ref, mag;
  Reference(const std::vector<float>& xv, const std::vector<float>& wv, int64_t m, int64_t n,
            int64_t k) {
    using MatF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    const MatD xd = Eigen::Map<const MatF>(xv.data(), m, k).cast<double>();
    const MatD wd = Eigen::Map<const MatF>(wv.data(), n, k).cast<double>();
    ref = xd * wd.transpose();
    mag = xd.cwiseAbs() * wd.cwiseAbs().transpose();
  }
};

// Checks y ([m, n] widened from y_dtype) against the reference + bias within the bound above.
void ExpectMatchesReference(const Reference& r, const float* bias, int64_t k,
                            const std::vector<float>& y, DType y_dtype, const std::string& what) {
  const int64_t m = r.ref.rows(), n = r.ref.cols();
  const double gamma = static_cast<double>(k + 8) * std::ldexp(1.0, -24);
  const double u_out = UnitRoundoff(y_dtype);
  int bad = 0;
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      const double want = r.ref(i, j) + (bias ? bias[j] : 0.0);
      const double tol = gamma * (r.mag(i, j) + (bias ? std::fabs(bias[j]) : 0.0)) +
                         u_out * std::fabs(want) + 1e-30;
      const double got = y[static_cast<size_t>(i * n + j)];
      if (!(std::fabs(got - want) <= tol) && ++bad <= 3) {
        ADD_FAILURE() << what << ": y[" << i << ", " << j << "] = " << got << ", want " << want
                      << " +- " << tol;
      }
    }
  }
  EXPECT_EQ(bad, 0) << what;
}

// Runs Matmul and returns y widened to float.
std::vector<float> RunMatmul(const PackedWeight& pw, const DenseTensor& x, int64_t m, DType y_dtype,
                             const float* bias, Context* ctx, const MatmulOptions& options = {},
                             bool one_d = false) {
  const int64_t n = pw.rows();
  std::vector<uint8_t> y(static_cast<size_t>(m * n) * DTypeSize(y_dtype), 0xCD);
  const Shape y_shape = one_d ? Shape{n} : Shape{m, n};
  Matmul(pw, x.view(), TensorView{y.data(), y_dtype, y_shape}, options, bias, ctx);
  return WidenWithEigen(y, y_dtype);
}

const int64_t kMs[] = {1, 2, 3, 7, 32, 129};
const DType kActs[] = {DType::kF32, DType::kBF16, DType::kF16};

class MatmulTargetTest : public ::testing::TestWithParam<int64_t> {
 protected:
  void SetUp() override { hwy::SetSupportedTargetsForTest(GetParam()); }
  void TearDown() override { hwy::SetSupportedTargetsForTest(0); }
  std::string Target() const { return hwy::TargetName(GetParam()); }
};

// Every format x activation dtype x M, bias on and off, y in f32 and in the activation dtype.
TEST_P(MatmulTargetTest, EveryFormatDtypeAndMMatchesFloat64Reference) {
  Context ctx(1);
  int runs = 0;
  for (const WeightCase& c : WeightCases()) {
    const QuantizedTensor q = MakeWeight(c, kN, c.k, 17);
    const std::vector<float> wv = RefDequantize(q);
    const PackedWeight pw = Pack(q);
    const std::vector<float> bias = Randn(kN, 99);
    for (const DType act : kActs) {
      for (const int64_t m : kMs) {
        const DenseTensor x(Randn(m * c.k, static_cast<uint32_t>(m + 3)), act,
                            m == 1 ? Shape{c.k} : Shape{m, c.k});
        const Reference reference(x.values(), wv, m, kN, c.k);
        const std::vector<DType> outs = act == DType::kF32 ? std::vector<DType>{DType::kF32}
                                                           : std::vector<DType>{DType::kF32, act};
        for (const DType y_dtype : outs) {
          for (const bool with_bias : {false, true}) {
            const float* b = with_bias ? bias.data() : nullptr;
            const std::vector<float> y = RunMatmul(pw, x, m, y_dtype, b, &ctx, {}, m == 1);
            ExpectMatchesReference(reference, b, c.k, y, y_dtype,
                                   std::string(c.name) + " x " + DTypeName(act) + " -> " +
                                       DTypeName(y_dtype) + " M=" + std::to_string(m) +
                                       (with_bias ? " bias" : "") + " on " + Target());
            if (HasFailure()) return;
            ++runs;
          }
        }
      }
    }
  }
  EXPECT_EQ(runs, static_cast<int>(WeightCases().size()) * 6 * (2 + 4 + 4));
}

// Larger shapes reach the kernels' full blocks (row streams, 32-column tiles, 12-row micro-kernel
// tiles, several 128-element GEMV blocks) that the N = 37 sweep only touches partially. The
// reference is computed once per (format, M) and every target is forced in turn.
TEST(MatmulLarger, FullKernelBlocksMatchReferenceOnEveryTarget) {
  constexpr int64_t n = 300, k = 512;
  const WeightCase cases[] = {
      {"nf4_b64", Format::kNF4, 64, false, Granularity::kDefault, k},
      {"int4_asym_g128", Format::kInt4Asym, 128, false, Granularity::kDefault, k},
      {"int8_row", Format::kInt8, 0, false, Granularity::kRow, k},
      {"fp8_e4m3_row", Format::kFP8E4M3, 0, false, Granularity::kRow, k},
  };
  Context ctx(2);
  for (const WeightCase& c : cases) {
    const QuantizedTensor q = MakeWeight(c, n, k, 77);
    const std::vector<float> wv = RefDequantize(q);
    const PackedWeight pw = Pack(q);
    for (const int64_t m : {int64_t{1}, int64_t{13}, int64_t{40}}) {
      const DenseTensor x(Randn(m * k, static_cast<uint32_t>(m)), DType::kBF16, {m, k});
      const Reference reference(x.values(), wv, m, n, k);
      for (const int64_t target : hwy::SupportedAndGeneratedTargets()) {
        hwy::SetSupportedTargetsForTest(target);
        const std::vector<float> y = RunMatmul(pw, x, m, DType::kF32, nullptr, &ctx);
        ExpectMatchesReference(
            reference, nullptr, k, y, DType::kF32,
            std::string(c.name) + " M=" + std::to_string(m) + " on " + hwy::TargetName(target));
      }
      hwy::SetSupportedTargetsForTest(0);
      if (HasFailure()) return;
    }
  }
}

// Tiny and degenerate shapes: fewer rows than any row block or stream count, K of one element
// or one chunk, every format.
TEST_P(MatmulTargetTest, TinyShapesMatchReference) {
  Context ctx(2);
  for (const WeightCase& base : WeightCases()) {
    for (const int64_t n : {int64_t{1}, int64_t{3}, int64_t{5}}) {
      for (const int64_t k : {int64_t{1}, int64_t{32}, int64_t{64}}) {
        WeightCase c = base;
        if (c.format == Format::kInt4 || c.format == Format::kInt4Asym) {
          c.block = 32;  // the smallest group, so K = 32 and 64 consist of full groups
        }
        const QuantizedTensor q = MakeWeight(c, n, k, static_cast<uint32_t>(n * 100 + k));
        const std::vector<float> wv = RefDequantize(q);
        const PackedWeight pw = Pack(q);
        for (const int64_t m : {int64_t{1}, int64_t{2}, int64_t{13}}) {
          const DenseTensor x(Randn(m * k, static_cast<uint32_t>(m + k)), DType::kF16, {m, k});
          const Reference reference(x.values(), wv, m, n, k);
          const std::vector<float> bias = Randn(n, 3);
          const std::vector<float> y = RunMatmul(pw, x, m, DType::kF32, bias.data(), &ctx);
          ExpectMatchesReference(reference, bias.data(), k, y, DType::kF32,
                                 std::string(c.name) + " [" + std::to_string(n) + ", " +
                                     std::to_string(k) + "] M=" + std::to_string(m) + " on " +
                                     Target());
          if (HasFailure()) return;
        }
      }
    }
  }
}

// W = I exactly in the format: y must be x (+ bias) bit for bit. Canonical tensors are written by
// hand where the quantizer cannot hit exactly 1.0 with a unit scale.
std::vector<std::pair<std::string, QuantizedTensor>> IdentityWeights(int64_t n) {
  std::vector<std::pair<std::string, QuantizedTensor>> out;
  std::vector<float> eye(static_cast<size_t>(n * n), 0.0f);
  for (int64_t i = 0; i < n; ++i) eye[i * n + i] = 1.0f;
  const ConstTensorView eye_view{eye.data(), DType::kF32, {n, n}};
  // Quantizer: absmax of every block is 1, 1.0 and 0.0 are codebook entries.
  out.emplace_back("nf4", QuantizeNF4(eye_view, 64));
  out.emplace_back("fp4", QuantizeFP4(eye_view, 64));
  out.emplace_back("blockwise8", QuantizeBlockwise(eye_view, 64));
  // Hand-written: unit scales, code of 1.0 on the diagonal, code of 0.0 elsewhere.
  const auto hand = [&](Format f, Granularity g, int64_t block, uint8_t one, uint8_t zero,
                        float scale = 1.0f) {
    QuantizedTensor q;
    q.state.format = f;
    q.state.shape = {n, n};
    q.state.granularity = g;
    q.state.block_size = block;
    q.state.scales.assign(static_cast<size_t>(q.state.num_scales()), scale);
    if (GetFormatInfo(f).has_zero_point) {
      q.state.zero_points.assign(q.state.scales.size(), 0);
    }
    q.data.assign(static_cast<size_t>(PayloadBytes(f, n * n)), 0);
    for (int64_t i = 0; i < n * n; ++i) {
      const uint8_t c = (i / n == i % n) ? one : zero;
      if (IsFourBit(f)) {
        q.data[i >> 1] |= static_cast<uint8_t>((i & 1) ? c : c << 4);
      } else {
        q.data[i] = c;
      }
    }
    return q;
  };
  // int8: SCB 127 and code 1 give (1 * 127) * f32(1/127) = 1.0f.
  out.emplace_back("int8", hand(Format::kInt8, Granularity::kRow, 0, 1, 0, 127.0f));
  out.emplace_back("int4", hand(Format::kInt4, Granularity::kGroup, 32, 9, 8));
  out.emplace_back("int4_asym", hand(Format::kInt4Asym, Granularity::kGroup, 32, 1, 0));
  out.emplace_back("int8_asym", hand(Format::kInt8Asym, Granularity::kRow, 0, 1, 0));
  out.emplace_back("fp8_e4m3", hand(Format::kFP8E4M3, Granularity::kRow, 0, 0x38, 0));
  out.emplace_back("fp8_e5m2", hand(Format::kFP8E5M2, Granularity::kTensor, 0, 0x3C, 0));
  return out;
}

TEST_P(MatmulTargetTest, IdentityWeightIsExact) {
  constexpr int64_t n = 64;
  Context ctx(1);
  const std::vector<float> bias = Randn(n, 5);
  for (auto& [name, q] : IdentityWeights(n)) {
    ValidateQuantizedTensor(q);
    const std::vector<float> w = RefDequantize(q);
    for (int64_t i = 0; i < n * n; ++i) {
      ASSERT_EQ(w[i], (i / n == i % n) ? 1.0f : 0.0f) << name << " is not the identity";
    }
    const PackedWeight pw = Pack(q);
    for (const DType act : kActs) {
      for (const int64_t m : {int64_t{1}, int64_t{7}}) {
        const DenseTensor x(Randn(m * n, 21), act, {m, n});
        for (const bool with_bias : {false, true}) {
          const std::vector<float> y =
              RunMatmul(pw, x, m, DType::kF32, with_bias ? bias.data() : nullptr, &ctx);
          for (int64_t i = 0; i < m * n; ++i) {
            const float want = with_bias ? x.values()[i] + bias[i % n] : x.values()[i];
            ASSERT_EQ(y[i], want) << name << " x " << DTypeName(act) << " M=" << m
                                  << (with_bias ? " bias" : "") << " element " << i << " on "
                                  << Target();
          }
        }
      }
    }
  }
}

// FP8 payloads that did not come from our encoder may hold NaN (E4M3 0x7F/0xFF, E5M2 0x7D-0x7F)
// or Inf (E5M2 0x7C/0xFC) codes. The matmul's fast decode covers finite codes only, so such a
// weight must take the exact decode: NaN and Inf propagate, and the finite rows still match the
// float64 reference.
TEST_P(MatmulTargetTest, FP8NonFiniteCodesPropagate) {
  constexpr int64_t n = 3, k = 96;
  Context ctx(1);
  const std::vector<float> wf = Randn(n * k, 41);
  struct Case {
    Format format;
    uint8_t code;       // written into row 0, column 5
    bool expect_nan;    // else +Inf (x[5] > 0 and the scale > 0)
  };
  for (const Case c : {Case{Format::kFP8E4M3, 0x7F, true}, Case{Format::kFP8E4M3, 0xFF, true},
                       Case{Format::kFP8E5M2, 0x7E, true}, Case{Format::kFP8E5M2, 0x7C, false}}) {
    QuantizedTensor q = QuantizeFP8(ConstTensorView{wf.data(), DType::kF32, {n, k}}, c.format);
    q.data[5] = c.code;
    const std::vector<float> w = RefDequantize(q);  // the scalar decode: NaN / Inf in row 0
    const PackedWeight pw = Pack(q);
    for (const int64_t m : {int64_t{1}, int64_t{16}}) {
      std::vector<float> xv = Randn(m * k, 43);
      for (int64_t r = 0; r < m; ++r) xv[r * k + 5] = 1.0f;  // positive, so Inf stays +Inf
      const DenseTensor x(xv, DType::kF32, {m, k});
      const std::vector<float> y = RunMatmul(pw, x, m, DType::kF32, nullptr, &ctx);
      for (int64_t r = 0; r < m; ++r) {
        const float y0 = y[r * n];
        if (c.expect_nan) {
          EXPECT_TRUE(std::isnan(y0)) << "code 0x" << std::hex << int{c.code} << std::dec
                                      << " M=" << m << " gave " << y0 << " on " << Target();
        } else {
          EXPECT_TRUE(std::isinf(y0) && y0 > 0) << "M=" << m << " gave " << y0 << " on " << Target();
        }
        for (int64_t j = 1; j < n; ++j) {
          double want = 0.0, mag = 0.0;
          for (int64_t i = 0; i < k; ++i) {
            want += static_cast<double>(xv[r * k + i]) * w[j * k + i];
            mag += std::fabs(static_cast<double>(xv[r * k + i]) * w[j * k + i]);
          }
          EXPECT_NEAR(y[r * n + j], want, (k + 8) * std::ldexp(1.0, -24) * mag + 1e-30)
              << "finite row " << j << " M=" << m << " on " << Target();
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllTargets, MatmulTargetTest,
                         ::testing::ValuesIn(hwy::SupportedAndGeneratedTargets()),
                         [](const ::testing::TestParamInfo<int64_t>& info) {
                           return std::string(hwy::TargetName(info.param));
                         });

// Bitwise equality of float vectors (NaN-safe).
bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Forces the threaded row split on every shape while alive: the test shapes are below the CPU
// backend's serial threshold, which would otherwise run them all on the calling thread.
struct AlwaysSplitRows {
  AlwaysSplitRows() { SetSerialMatmulMacs(0); }
  ~AlwaysSplitRows() { SetSerialMatmulMacs(kDefaultSerialMatmulMacs); }
};

TEST(MatmulThreads, ResultsIdenticalForOneTwoThreeThreads) {
  constexpr int64_t n = 150;  // 5 GEMV tasks of 32 rows, 10 GEMM tasks of 16 rows
  const AlwaysSplitRows split;
  Context ctx(1);
  for (const WeightCase& c : WeightCases()) {
    const QuantizedTensor q = MakeWeight(c, n, c.k, 3);
    const PackedWeight pw = Pack(q);
    const std::vector<float> bias = Randn(n, 4);
    for (const int64_t m : {int64_t{1}, int64_t{5}, int64_t{33}}) {
      const DenseTensor x(Randn(m * c.k, 8), DType::kBF16, {m, c.k});
      std::vector<MatmulOptions> options(1);
      if (c.format == Format::kInt8 || c.format == Format::kInt4) {
        options.emplace_back();
        options.back().int8_activations = true;
      }
      for (const MatmulOptions& o : options) {
        std::vector<float> first;
        for (const int threads : {1, 2, 3}) {
          ctx.SetNumThreads(threads);
          const std::vector<float> y = RunMatmul(pw, x, m, DType::kF32, bias.data(), &ctx, o);
          if (first.empty()) {
            first = y;
          } else {
            EXPECT_TRUE(SameBits(y, first))
                << c.name << " M=" << m << " int8_act=" << o.int8_activations << " threads "
                << threads << " differs from 1 thread";
          }
        }
      }
    }
  }
}

// Host parallel-for hook: an engine-supplied partition must give the same bits as well.
TEST(MatmulThreads, HostParallelForGivesSameResult) {
  const WeightCase& c = WeightCases()[0];
  const QuantizedTensor q = MakeWeight(c, 100, c.k, 1);
  const PackedWeight pw = Pack(q);
  const DenseTensor x(Randn(3 * c.k, 2), DType::kF32, {3, c.k});
  const AlwaysSplitRows split;
  Context serial(1);
  const std::vector<float> want = RunMatmul(pw, x, 3, DType::kF32, nullptr, &serial);
  Context host(1);
  int calls = 0;
  host.SetParallelFor(
      [&](int64_t tasks, const Context::RangeFn& body) {
        ++calls;
        for (int64_t t = tasks; t > 0; --t) body(t - 1, t);  // one task at a time, reversed
      },
      4);
  EXPECT_TRUE(SameBits(RunMatmul(pw, x, 3, DType::kF32, nullptr, &host), want));
  EXPECT_GE(calls, 1);
}

// Matmuls below SerialMatmulMacs() run on the calling thread without calling the context's
// parallel-for (no pool wake-up); larger ones split into row tasks. Same bits either way.
TEST(MatmulThreads, TinyMatmulsSkipParallelForLargeOnesUseIt) {
  ASSERT_EQ(SerialMatmulMacs(), kDefaultSerialMatmulMacs);
  struct Shape3 {
    int64_t m, n, k;
    bool parallel;
  };
  const Shape3 shapes[] = {
      {1, 64, 64, false},     // 4096 multiply-adds: the 64x64 decode-sized GEMV
      {4, 256, 128, false},   // 131072
      {1, 512, 256, false},   // 131072
      {1, 1024, 512, true},   // 524288
      {8, 256, 256, true},    // 524288
      {1, 4096, 256, true},   // 1048576
  };
  for (const Format format : {Format::kNF4, Format::kInt8, Format::kFP8E4M3}) {
    for (const Shape3& sh : shapes) {
      const std::vector<float> wf = Randn(sh.n * sh.k, 21);
      const PackedWeight pw = Pack(Quantize(format, {wf.data(), DType::kF32, {sh.n, sh.k}}));
      const DenseTensor x(Randn(sh.m * sh.k, 22), DType::kF32, {sh.m, sh.k});
      Context serial(1);
      const std::vector<float> want = RunMatmul(pw, x, sh.m, DType::kF32, nullptr, &serial);
      Context host(1);
      int calls = 0;
      host.SetParallelFor(
          [&](int64_t tasks, const Context::RangeFn& body) {
            ++calls;
            for (int64_t t = 0; t < tasks; ++t) body(t, t + 1);
          },
          4);
      const std::string what = std::string(FormatName(format)) + " M=" +
                               std::to_string(sh.m) + " N=" + std::to_string(sh.n) +
                               " K=" + std::to_string(sh.k);
      EXPECT_TRUE(SameBits(RunMatmul(pw, x, sh.m, DType::kF32, nullptr, &host), want)) << what;
      EXPECT_EQ(calls > 0, sh.parallel) << what << ": parallel-for called " << calls << " times";
    }
  }
}

TEST(MatmulPack, UnpackRestoresCanonicalBytesExactly) {
  for (const WeightCase& c : WeightCases()) {
    for (const Shape& shape : {Shape{kN, c.k}, Shape{3, 33}, Shape{1, 1}}) {
      std::vector<float> w = Randn(NumElements(shape), 12);
      QuantizeOptions o;
      o.block_size = c.block;
      o.double_quant = c.dq;
      o.granularity = c.granularity;
      QuantizedTensor q = Quantize(c.format, {w.data(), DType::kF32, shape}, o);
      // A non-canonical padding nibble must survive too (Unpack is bit-identical to the input).
      if (IsFourBit(c.format) && (NumElements(shape) & 1)) q.data.back() |= 0x0F;
      const PackedWeight pw = Pack(q, "cpu");
      EXPECT_STREQ(pw.backend(), "cpu");
      EXPECT_EQ(pw.rows(), shape[0]);
      EXPECT_EQ(pw.cols(), shape[1]);
      EXPECT_EQ(pw.format(), c.format);
      EXPECT_GT(pw.packed_bytes(), 0);
      const QuantizedTensor u = Unpack(pw);
      const std::string what = std::string(c.name) + " " + ShapeToString(shape);
      EXPECT_EQ(u.data, q.data) << what;
      EXPECT_EQ(u.state.shape, q.state.shape) << what;
      EXPECT_EQ(u.state.granularity, q.state.granularity) << what;
      EXPECT_EQ(u.state.block_size, q.state.block_size) << what;
      EXPECT_EQ(u.state.scales, q.state.scales) << what;
      EXPECT_EQ(u.state.zero_points, q.state.zero_points) << what;
      EXPECT_EQ(u.state.codebook, q.state.codebook) << what;
      ASSERT_EQ(u.state.nested.has_value(), q.state.nested.has_value()) << what;
      if (q.state.nested) {
        EXPECT_EQ(u.state.nested->codes, q.state.nested->codes) << what;
        EXPECT_EQ(u.state.nested->absmax, q.state.nested->absmax) << what;
        EXPECT_EQ(u.state.nested->offset, q.state.nested->offset) << what;
      }
    }
  }
}

TEST(MatmulApi, CanonicalOverloadGemvAndGemmAgreeWithPacked) {
  const WeightCase& c = WeightCases()[4];  // int4_g32
  const QuantizedTensor q = MakeWeight(c, kN, c.k, 6);
  const PackedWeight pw = Pack(q);
  const std::vector<float> x = Randn(2 * c.k, 1);
  std::vector<float> y1(2 * kN), y2(2 * kN), y3(kN), y4(kN);
  Context ctx(1);
  Matmul(pw, {x.data(), DType::kF32, {2, c.k}}, {y1.data(), DType::kF32, {2, kN}}, nullptr, &ctx);
  Matmul(q, {x.data(), DType::kF32, {2, c.k}}, {y2.data(), DType::kF32, {2, kN}}, nullptr, &ctx);
  EXPECT_TRUE(SameBits(y1, y2));
  Gemm(pw, {x.data(), DType::kF32, {2, c.k}}, {y2.data(), DType::kF32, {2, kN}}, nullptr, &ctx);
  EXPECT_TRUE(SameBits(y1, y2));
  Gemv(pw, {x.data(), DType::kF32, {c.k}}, {y3.data(), DType::kF32, {kN}}, nullptr, &ctx);
  Gemm(pw, {x.data(), DType::kF32, {1, c.k}}, {y4.data(), DType::kF32, {1, kN}}, nullptr, &ctx);
  EXPECT_TRUE(SameBits(y3, y4));
  // (M = 1 and M > 1 run different kernels, so y3 and row 0 of y1 agree only within tolerance;
  // both are checked against the reference above.)
}

TEST(MatmulApi, ValidationErrorsAreClear) {
  const WeightCase& c = WeightCases()[0];  // nf4, K = 96
  const int64_t k = c.k;
  const PackedWeight pw = Pack(MakeWeight(c, kN, k, 2));
  std::vector<float> x(4 * (k + 1)), y(4 * (kN + 1));
  std::vector<int8_t> xi(4 * k);
  Context ctx(1);
  ExpectError(
      [&] {
        Matmul(pw, {x.data(), DType::kF32, {2, k + 1}}, {y.data(), DType::kF32, {2, kN}}, nullptr,
               &ctx);
      },
      Status::kInvalidArgument, {"last dim must equal K = 96"});
  ExpectError(
      [&] {
        Matmul(pw, {x.data(), DType::kF32, {2, k}}, {y.data(), DType::kF32, {2, kN + 1}}, nullptr,
               &ctx);
      },
      Status::kInvalidArgument, {"y [2, 38] must be [2, 37]"});
  ExpectError(
      [&] {
        Matmul(pw, {x.data(), DType::kF32, {2, k}}, {y.data(), DType::kF32, {3, kN}}, nullptr,
               &ctx);
      },
      Status::kInvalidArgument, {"must be [2, 37]"});
  ExpectError(
      [&] {
        Matmul(pw, {x.data(), DType::kF32, {1, 2, k}}, {y.data(), DType::kF32, {2, kN}}, nullptr,
               &ctx);
      },
      Status::kInvalidArgument, {"x must be [M, K] or [K]"});
  ExpectError(
      [&] {
        Matmul(pw, {xi.data(), DType::kI8, {2, k}}, {y.data(), DType::kF32, {2, kN}}, nullptr,
               &ctx);
      },
      Status::kInvalidArgument, {"Matmul x"});
  ExpectError(
      [&] {
        Matmul(pw, {x.data(), DType::kF32, {2, k}}, {y.data(), DType::kI32, {2, kN}}, nullptr,
               &ctx);
      },
      Status::kInvalidArgument, {"Matmul y"});
  ExpectError(
      [&] {
        Matmul(pw, {x.data(), DType::kF32, {2, k}}, {x.data(), DType::kF32, {2, kN}}, nullptr,
               &ctx);
      },
      Status::kInvalidArgument, {"alias"});
  ExpectError(
      [&] {
        Gemv(pw, {x.data(), DType::kF32, {2, k}}, {y.data(), DType::kF32, {2, kN}}, nullptr, &ctx);
      },
      Status::kInvalidArgument, {"Gemv", "M = 1"});
  MatmulOptions int8act;
  int8act.int8_activations = true;
  ExpectError(
      [&] {
        Matmul(pw, {x.data(), DType::kF32, {2, k}}, {y.data(), DType::kF32, {2, kN}}, int8act,
               nullptr, &ctx);
      },
      Status::kUnsupportedFormat, {"nf4", "int8 activations need int8 or int4"});
  PackedWeight empty;
  ExpectError(
      [&] {
        Matmul(empty, {x.data(), DType::kF32, {2, k}}, {y.data(), DType::kF32, {2, kN}}, nullptr,
               &ctx);
      },
      Status::kInvalidState, {"PackedWeight is empty"});
  const std::vector<float> w3(2 * 3 * 32, 1.0f);
  const QuantizedTensor q3 = QuantizeNF4({w3.data(), DType::kF32, {2, 3, 32}});
  ExpectError([&] { Pack(q3); }, Status::kInvalidArgument, {"2-D [N, K]", "[2, 3, 32]"});
  ExpectError([&] { Pack(MakeWeight(c, 4, 64, 1), "no_such_backend"); },
              Status::kUnsupportedBackend, {"no_such_backend"});
}

// ---- int8-activation path ----------------------------------------------------------------------
// Int8ActReference: the exact reference of the documented semantics (tests/int8act_reference.h).

struct Int8ActCase {
  const char* name;
  Format format;
  int64_t block;
  Granularity granularity;
  int64_t k;
};

const Int8ActCase kInt8ActCases[] = {
    {"int8_row", Format::kInt8, 0, Granularity::kRow, 101},
    {"int8_tensor", Format::kInt8, 0, Granularity::kTensor, 160},
    {"int4_g32", Format::kInt4, 32, Granularity::kDefault, 75},
    {"int4_g64", Format::kInt4, 64, Granularity::kDefault, 256},
    {"int4_g128", Format::kInt4, 128, Granularity::kDefault, 200},
};

class Int8ActTargetTest : public MatmulTargetTest {};

TEST_P(Int8ActTargetTest, BitExactWithIntegerReference) {
  Context ctx(1);
  MatmulOptions o;
  o.int8_activations = true;
  for (const Int8ActCase& c : kInt8ActCases) {
    const std::vector<float> wv = Randn(kN * c.k, 31);
    QuantizeOptions qo;
    qo.block_size = c.block;
    qo.granularity = c.granularity;
    QuantizedTensor q = Quantize(c.format, {wv.data(), DType::kF32, {kN, c.k}}, qo);
    if (c.format == Format::kInt8) {  // -128 is a valid stored code the quantizer never writes
      q.data[0] = 0x80;
      q.data[q.data.size() - 1] = 0x80;
    } else {  // extreme nibbles: -8 and +7
      q.data[0] = 0x0F;
      q.data[q.data.size() / 2] = 0xF0;
    }
    const PackedWeight pw = Pack(q);
    const std::vector<float> bias = Randn(kN, 7);
    for (const DType act : kActs) {
      for (const int64_t m : kMs) {
        std::vector<float> xs = Randn(m * c.k, static_cast<uint32_t>(m));
        if (m >= 3) {  // an all-zero row and a row of exact ties (x * 127 / a = j + 0.5)
          std::fill(xs.begin() + c.k, xs.begin() + 2 * c.k, 0.0f);
          for (int64_t j = 0; j < c.k; ++j) xs[2 * c.k + j] = (j % 2 ? 0.5f : -1.5f) + (j % 7);
          xs[2 * c.k] = 127.0f;
        }
        if (m >= 7) {  // a row so small that 127 / absmax overflows float32 (saturated scale)
          for (int64_t j = 0; j < c.k; ++j) xs[3 * c.k + j] *= 1e-38f;
        }
        const DenseTensor x(xs, act, {m, c.k});
        for (const bool with_bias : {false, true}) {
          const std::vector<float> y =
              RunMatmul(pw, x, m, DType::kF32, with_bias ? bias.data() : nullptr, &ctx, o);
          std::vector<float> want = Int8ActReference(q, x.values(), m);
          if (with_bias) {
            for (int64_t i = 0; i < m * kN; ++i) want[i] += bias[i % kN];
          }
          ASSERT_TRUE(SameBits(y, want)) << c.name << " x " << DTypeName(act) << " M=" << m
                                         << (with_bias ? " bias" : "") << " on " << Target();
        }
      }
    }
  }
}

// Several int32 segments per row (int8 weights: 8192 elements each) and a non-finite row.
TEST_P(Int8ActTargetTest, LongRowsAndNonFiniteRows) {
  Context ctx(1);
  MatmulOptions o;
  o.int8_activations = true;
  // K * 127 * 127 > 2^31: the int8 dot must be carried past int32 (segments of 8192).
  constexpr int64_t k = 140000, n = 5, m = 3;
  for (const Format f : {Format::kInt8, Format::kInt4}) {
    // Extreme codes everywhere: all weights +-absmax and activations +-absmax maximise |dot|.
    std::vector<float> wv(n * k);
    for (int64_t i = 0; i < n * k; ++i) wv[i] = (i % 3 == 0) ? -2.0f : 2.0f;
    const QuantizedTensor q = f == Format::kInt8
                                  ? QuantizeInt8({wv.data(), DType::kF32, {n, k}})
                                  : QuantizeInt4({wv.data(), DType::kF32, {n, k}}, 4096);
    const PackedWeight pw = Pack(q);
    std::vector<float> xs(m * k);
    for (int64_t i = 0; i < m * k; ++i) xs[i] = (i % 3 == 0) ? -1.0f : 1.0f;
    xs[2 * k + 17] = std::numeric_limits<float>::infinity();
    const DenseTensor x(xs, DType::kF32, {m, k});
    const std::vector<float> y = RunMatmul(pw, x, m, DType::kF32, nullptr, &ctx, o);
    ASSERT_TRUE(SameBits(y, Int8ActReference(q, x.values(), m)))
        << FormatName(f) << " on " << Target();
    for (int64_t j = 0; j < n; ++j) EXPECT_TRUE(std::isnan(y[2 * n + j]));
    EXPECT_GT(y[0], 1000.0f);  // the dot is large, not wrapped around
  }
}

INSTANTIATE_TEST_SUITE_P(AllTargets, Int8ActTargetTest,
                         ::testing::ValuesIn(hwy::SupportedAndGeneratedTargets()),
                         [](const ::testing::TestParamInfo<int64_t>& info) {
                           return std::string(hwy::TargetName(info.param));
                         });

// AMX (Sapphire Rapids and later): the tile kernel and the AVX-512 VNNI kernel it replaces for
// M >= 16 give the reference's bits, on shapes with partial tile blocks in M and N, segments
// that end inside a 64-k tile step (groups of 32, K tails) and several int8 segments.
TEST(Int8ActAmx, TileKernelAndVnniKernelMatchReference) {
  if (!cpu::AmxInt8Usable()) GTEST_SKIP() << "no AMX-INT8 on this CPU (or not granted)";
  hwy::SetSupportedTargetsForTest(HWY_AVX3_DL);
  Context ctx(2);
  MatmulOptions o;
  o.int8_activations = true;
  struct Case {
    Format format;
    int64_t block, k;
  };
  const Case cases[] = {{Format::kInt8, 0, 101},   {Format::kInt8, 0, 8300},
                        {Format::kInt4, 32, 75},   {Format::kInt4, 64, 256},
                        {Format::kInt4, 128, 200}, {Format::kInt4, 32, 290}};
  for (const Case& c : cases) {
    for (const int64_t n : {int64_t{1}, int64_t{37}, int64_t{64}, int64_t{65}}) {
      const std::vector<float> wv = Randn(n * c.k, 5);
      QuantizeOptions qo;
      qo.block_size = c.block;
      const QuantizedTensor q = Quantize(c.format, {wv.data(), DType::kF32, {n, c.k}}, qo);
      const PackedWeight pw = Pack(q);
      for (const int64_t m : {int64_t{16}, int64_t{17}, int64_t{32}, int64_t{47}, int64_t{96}}) {
        const DenseTensor x(Randn(m * c.k, static_cast<uint32_t>(m)), DType::kF32, {m, c.k});
        const std::vector<float> want = Int8ActReference(q, x.values(), m);
        const std::vector<float> amx = RunMatmul(pw, x, m, DType::kF32, nullptr, &ctx, o);
        cpu::SetAmxDisabledForTest(true);
        const std::vector<float> vnni = RunMatmul(pw, x, m, DType::kF32, nullptr, &ctx, o);
        cpu::SetAmxDisabledForTest(false);
        EXPECT_TRUE(SameBits(amx, want)) << FormatName(c.format) << " g" << c.block << " K=" << c.k
                                         << " N=" << n << " M=" << m << " (AMX)";
        EXPECT_TRUE(SameBits(vnni, want)) << FormatName(c.format) << " g" << c.block << " K="
                                          << c.k << " N=" << n << " M=" << m << " (VNNI)";
      }
    }
  }
  hwy::SetSupportedTargetsForTest(0);
}

// MatmulOptions::bf16_compute on an AMX-BF16 CPU (M >= 16): within the bf16 bound of the
// float64 reference for every packed format, different bits from the float path (the tiles
// ran), and the float path's exact bits when AMX is switched off or M < 16.
TEST(Bf16Amx, WithinTheBf16BoundAndFloatPathOtherwise) {
  Context ctx(2);
  MatmulOptions bf16;
  bf16.bf16_compute = true;
  MatmulOptions both = bf16;
  both.int8_activations = true;
  {
    const QuantizedTensor q = MakeWeight(WeightCases()[0], 8, 64, 1);
    const DenseTensor x(Randn(2 * 64, 1), DType::kF32, {2, 64});
    ExpectError([&] { RunMatmul(Pack(q), x, 2, DType::kF32, nullptr, &ctx, both); },
                Status::kUnsupportedFormat, {"exclude each other"});
  }
  if (!cpu::AmxBf16Usable()) GTEST_SKIP() << "no AMX-BF16 on this CPU (or not granted)";
  hwy::SetSupportedTargetsForTest(HWY_AVX3_DL);
  int differing = 0;
  for (const WeightCase& c : WeightCases()) {
    if (IsDense(c.format)) continue;
    for (const int64_t n : {int64_t{37}, int64_t{65}}) {
      const QuantizedTensor q = MakeWeight(c, n, c.k, 9);
      const PackedWeight pw = Pack(q);
      const std::vector<float> wv = RefDequantize(q);
      const std::vector<float> bias = Randn(n, 3);
      for (const int64_t m : {int64_t{5}, int64_t{16}, int64_t{33}, int64_t{70}}) {
        const DenseTensor x(Randn(m * c.k, static_cast<uint32_t>(m)), DType::kF32, {m, c.k});
        const Reference r(x.values(), wv, m, n, c.k);
        const std::vector<float> y = RunMatmul(pw, x, m, DType::kF32, bias.data(), &ctx, bf16);
        const std::vector<float> f32 = RunMatmul(pw, x, m, DType::kF32, bias.data(), &ctx);
        cpu::SetAmxDisabledForTest(true);
        const std::vector<float> off = RunMatmul(pw, x, m, DType::kF32, bias.data(), &ctx, bf16);
        cpu::SetAmxDisabledForTest(false);
        EXPECT_TRUE(SameBits(off, f32))
            << c.name << " M=" << m << ": AMX off must be the float path";
        if (m < cpu::kAmxMinRows) {
          EXPECT_TRUE(SameBits(y, f32)) << c.name << " M=" << m << ": below 16 rows, float path";
          continue;
        }
        differing += SameBits(y, f32) ? 0 : 1;
        // Each product: x and w rounded to bf16 (2^-9 relative each), summed in float32.
        const double gamma =
            std::ldexp(1.0, -8) + static_cast<double>(c.k + 8) * std::ldexp(1.0, -24);
        int bad = 0;
        for (int64_t i = 0; i < m; ++i) {
          for (int64_t j = 0; j < n; ++j) {
            const double want = r.ref(i, j) + bias[j];
            const double tol = gamma * (r.mag(i, j) + std::fabs(bias[j])) + 1e-30;
            if (!(std::fabs(y[i * n + j] - want) <= tol) && ++bad <= 3) {
              ADD_FAILURE() << c.name << " M=" << m << " N=" << n << ": y[" << i << ", " << j
                            << "] = " << y[i * n + j] << ", want " << want << " +- " << tol;
            }
          }
        }
        EXPECT_EQ(bad, 0) << c.name;
      }
    }
  }
  EXPECT_GT(differing, 0) << "bf16_compute never changed a result: the AMX path did not run";
  hwy::SetSupportedTargetsForTest(0);
}

// The error int8 activations add on Gaussian data, relative to the float path with the same
// weights (the numbers quoted in docs/kernels.md; printed for the record).
TEST(Int8ActError, RelativeErrorVsFloatActivationsIsSmall) {
  Context ctx(1);
  constexpr int64_t n = 256, k = 1024, m = 8;
  MatmulOptions o;
  o.int8_activations = true;
  const std::vector<float> wv = Randn(n * k, 41);
  const DenseTensor x(Randn(m * k, 42), DType::kF32, {m, k});
  for (const Format f : {Format::kInt8, Format::kInt4}) {
    const QuantizedTensor q = Quantize(f, {wv.data(), DType::kF32, {n, k}});
    const PackedWeight pw = Pack(q);
    const std::vector<float> yf = RunMatmul(pw, x, m, DType::kF32, nullptr, &ctx);
    const std::vector<float> y8 = RunMatmul(pw, x, m, DType::kF32, nullptr, &ctx, o);
    double num = 0, den = 0, worst = 0, mean_abs_y = 0;
    for (size_t i = 0; i < yf.size(); ++i) {
      num += (y8[i] - yf[i]) * double(y8[i] - yf[i]);
      den += double(yf[i]) * yf[i];
      worst = std::max(worst, std::fabs(double(y8[i]) - yf[i]));
      mean_abs_y += std::fabs(yf[i]) / yf.size();
    }
    const double rel_l2 = std::sqrt(num / den);
    std::printf(
        "int8 activations, %s weights [%lld, %lld], Gaussian x: rel L2 error %.3e, "
        "max abs error %.3e (mean |y| %.3e)\n",
        FormatName(f), static_cast<long long>(n), static_cast<long long>(k), rel_l2, worst,
        mean_abs_y);
    // Expected ~ (a / 254) / sqrt(3) per element relative to sigma_x (a ~ 3.3 sigma for
    // K = 1024): rel L2 ~ 0.0075; the bound leaves a factor of 2.
    EXPECT_LT(rel_l2, 0.015) << FormatName(f);
    EXPECT_GT(rel_l2, 1e-4) << FormatName(f) << ": suspiciously exact, is x quantized at all?";
  }
}

}  // namespace
}  // namespace lowbit
