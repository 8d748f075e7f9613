// Quantized linear layers (lowbit/nn/linear.h): every layer's forward against its dequantized
// weight times x in Eigen float64, LLM.int8 outlier decomposition against an independent
// reference and against plain int8, training-mode / QuantizeWeights of Linear8bit, sizes, and
// argument validation.
#include <Eigen/Core>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "hwy/targets.h"

#include "lowbit/nn/linear.h"
#include "lowbit/quantize.h"
#include "reference/reference.h"
#include "nn_test_util.h"

namespace lowbit::nn {
namespace {

using nntest::MatD;
using nntest::Randn;
using nntest::ToMat;

// y = x · Wᵀ + b in float64 from float inputs.
MatD RefLinear(const std::vector<float>& x, int64_t m, const std::vector<float>& w, int64_t n,
               int64_t k, const std::vector<float>& bias) {
  MatD y = ToMat(x, m, k) * ToMat(w, n, k).transpose();
  if (!bias.empty()) {
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) y(i, j) += bias[static_cast<size_t>(j)];
  }
  return y;
}

std::vector<float> RunForward(const QuantLinear& layer, const std::vector<float>& x, int64_t m) {
  std::vector<float> y(static_cast<size_t>(m * layer.out_features()));
  layer.Forward(ConstTensorView{x.data(), DType::kF32, {m, layer.in_features()}},
                TensorView{y.data(), DType::kF32, {m, layer.out_features()}});
  return y;
}

// max |got - want| <= atol + rtol * max|want|.
void ExpectClose(const std::vector<float>& got, const MatD& want, double rtol, double atol,
                 const std::string& what) {
  ASSERT_EQ(static_cast<int64_t>(got.size()), want.size()) << what;
  const double scale = want.cwiseAbs().maxCoeff();
  double worst = 0;
  for (int64_t i = 0; i < want.size(); ++i) {
    worst = std::max(worst, std::abs(static_cast<double>(got[static_cast<size_t>(i)]) -
                                     want.data()[i]));
  }
  EXPECT_LE(worst, atol + rtol * scale) << what << " (max |y| " << scale << ")";
}

// The weight dequantized by the scalar reference codecs (an oracle independent of the SIMD path).
std::vector<float> RefDequant(const QuantizedTensor& q) {
  std::vector<float> out(static_cast<size_t>(q.state.num_elements()));
  const FormatInfo& info = GetFormatInfo(q.format());
  if (info.reference_dequantize != nullptr) {
    info.reference_dequantize(q, out.data());
  } else {
    ToF32(q.data.data(), info.dense_dtype, q.state.num_elements(), out.data());
  }
  return out;
}

// ---- forward == dequantize + float64 matmul --------------------------------------------------

void CheckForward(const QuantLinear& layer, const std::string& what) {
  const int64_t k = layer.in_features(), n = layer.out_features();
  const std::vector<float> wd = RefDequant(layer.weight());
  ASSERT_EQ(wd, layer.DequantizedWeight()) << what << ": DequantizedWeight vs reference codec";
  for (const int64_t m : {int64_t{1}, int64_t{5}}) {
    const std::vector<float> x = Randn(m * k, 100 + static_cast<uint64_t>(m));
    ExpectClose(RunForward(layer, x, m), RefLinear(x, m, wd, n, k, layer.bias()), 2e-6, 1e-6,
                what + " m=" + std::to_string(m));
  }
}

TEST(Linear4bit, ForwardEqualsDequantizedMatmulEveryQuantType) {
  const int64_t k = 96, n = 40;  // 96 * 40 = 3840 = 60 blocks of 64; int4 groups of 32
  const std::vector<float> w = Randn(n * k, 1, 0.05), b = Randn(n, 2);
  for (const Format f : {Format::kNF4, Format::kFP4, Format::kInt4, Format::kInt4Asym}) {
    for (const bool dq : {false, true}) {
      if (dq && !GetFormatInfo(f).supports_double_quant) continue;
      for (const bool bias : {false, true}) {
        Linear4bitOptions o;
        o.quant_type = f;
        o.block_size = IsFourBit(f) && (f == Format::kInt4 || f == Format::kInt4Asym) ? 32 : 64;
        o.compress_statistics = dq;
        auto layer = Linear4bit::FromLinear(k, n, w.data(), bias ? b.data() : nullptr, o);
        EXPECT_EQ(layer->weight_format(), f);
        EXPECT_EQ(layer->weight().state.block_size, o.block_size);
        EXPECT_EQ(layer->weight().state.nested.has_value(), dq);
        CheckForward(*layer, std::string(FormatName(f)) + (dq ? " dq" : "") +
                                 (bias ? " bias" : ""));
      }
    }
  }
}

TEST(Linear4bit, OddShapesAndFromQuantized) {
  // in = 172 (stories260K w2): int4 groups of 32 leave a 12-wide tail per row; nf4 flat blocks
  // span rows. The constructor's seeded init must be deterministic.
  Linear4bitOptions o;
  o.quant_type = Format::kInt4;
  o.block_size = 32;
  Linear4bit a(172, 24, true, o, 9), b(172, 24, true, o, 9);
  EXPECT_EQ(a.weight().data, b.weight().data);
  EXPECT_EQ(a.bias(), b.bias());
  CheckForward(a, "int4 in=172");
  Linear4bit nf(172, 24, true, {}, 3);
  CheckForward(nf, "nf4 in=172");

  QuantizedTensor q = nf.weight();
  auto wrapped = Linear4bit::FromQuantized(q, nf.bias().data());
  EXPECT_EQ(wrapped->weight().data, q.data);
  EXPECT_EQ(wrapped->options().quant_type, Format::kNF4);
  const std::vector<float> x = Randn(3 * 172, 5);
  EXPECT_EQ(RunForward(*wrapped, x, 3), RunForward(nf, x, 3));
}

TEST(Linear4bit, ComputeDtypeRoundsInputAndOutput) {
  const int64_t k = 64, n = 32, m = 4;
  const std::vector<float> w = Randn(n * k, 11, 0.1), b = Randn(n, 12);
  for (const DType cd : {DType::kF16, DType::kBF16}) {
    Linear4bitOptions o;
    o.compute_dtype = cd;
    auto layer = Linear4bit::FromLinear(k, n, w.data(), b.data(), o);
    const std::vector<float> x = Randn(m * k, 13);
    // Reference: x rounded to the compute dtype, float64 product, result rounded to it.
    std::vector<float> xr(x.size());
    std::vector<uint16_t> tmp(x.size());
    FromF32(x.data(), m * k, tmp.data(), cd);
    ToF32(tmp.data(), cd, m * k, xr.data());
    const MatD want = RefLinear(xr, m, layer->DequantizedWeight(), n, k, b);
    const std::vector<float> got = RunForward(*layer, x, m);
    // The output carries one rounding to the compute dtype (2^-11 f16, 2^-8 bf16 relative)
    // plus the float32 accumulation.
    const double ulp = cd == DType::kF16 ? 0x1p-11 : 0x1p-8;
    for (int64_t i = 0; i < want.size(); ++i) {
      const double wv = want.data()[i];
      EXPECT_NEAR(got[static_cast<size_t>(i)], wv, std::abs(wv) * ulp * 1.01 + 1e-5) << i;
      // And the output is representable in the compute dtype.
      uint16_t h;
      float back;
      FromF32(&got[static_cast<size_t>(i)], 1, &h, cd);
      ToF32(&h, cd, 1, &back);
      EXPECT_EQ(back, got[static_cast<size_t>(i)]) << i;
    }
  }
}

TEST(LinearFP8, ForwardEqualsDequantizedMatmul) {
  const int64_t k = 80, n = 24;
  const std::vector<float> w = Randn(n * k, 21, 0.2), b = Randn(n, 22);
  for (const Format f : {Format::kFP8E4M3, Format::kFP8E5M2}) {
    for (const bool per_channel : {true, false}) {
      LinearFP8Options o;
      o.fp8_format = f;
      o.per_channel = per_channel;
      auto layer = LinearFP8::FromLinear(k, n, w.data(), b.data(), o);
      EXPECT_EQ(layer->weight().state.granularity,
                per_channel ? Granularity::kRow : Granularity::kTensor);
      CheckForward(*layer, std::string(FormatName(f)) + (per_channel ? " row" : " tensor"));
      // E4M3 keeps 3 mantissa bits: the weight itself is within 2^-4 relative of the input
      // (per-row scale maps the row absmax to 448, so no element is subnormal here).
      if (f == Format::kFP8E4M3 && per_channel) {
        const std::vector<float> wd = layer->DequantizedWeight();
        for (size_t i = 0; i < w.size(); ++i) {
          EXPECT_NEAR(wd[i], w[i], std::abs(w[i]) * 0x1p-4 + 1e-3) << i;
        }
      }
    }
  }
}

// ---- Linear8bit ------------------------------------------------------------------------------

TEST(Linear8bit, TrainingWeightsThenQuantizeWeightsAsBitsandbytes) {
  const int64_t k = 48, n = 16;
  const std::vector<float> w = Randn(n * k, 31, 0.3), b = Randn(n, 32);
  auto layer = Linear8bit::FromLinear(k, n, w.data(), b.data());  // has_fp16_weights = true
  EXPECT_FALSE(layer->is_quantized());
  EXPECT_EQ(layer->weight_format(), Format::kF16);
  // Training mode: the weight is the f16 rounding of w, and Forward multiplies by it.
  std::vector<float> w16(w.size());
  for (size_t i = 0; i < w.size(); ++i) w16[i] = F16ToF32(F32ToF16(w[i]));
  EXPECT_EQ(layer->DequantizedWeight(), w16);
  CheckForward(*layer, "f16 training weights");

  layer->QuantizeWeights();
  EXPECT_TRUE(layer->is_quantized());
  ASSERT_EQ(layer->weight_format(), Format::kInt8);
  // Int8Params._quantize: SCB = row absmax of the f16 weight, CB = round(w16 * 127 / SCB).
  const QuantizedTensor& q = layer->weight();
  for (int64_t r = 0; r < n; ++r) {
    float absmax = 0;
    for (int64_t c = 0; c < k; ++c) absmax = std::max(absmax, std::abs(w16[r * k + c]));
    ASSERT_EQ(q.state.scales[static_cast<size_t>(r)], absmax) << r;
    for (int64_t c = 0; c < k; ++c) {
      const double exact = static_cast<double>(w16[r * k + c]) * 127.0 / absmax;
      const int code = static_cast<int8_t>(q.data[static_cast<size_t>(r * k + c)]);
      EXPECT_LE(std::abs(code - exact), 0.5 + 1e-6) << r << "," << c;
    }
  }
  const std::vector<uint8_t> before = q.data;
  layer->QuantizeWeights();  // no-op once quantized
  EXPECT_EQ(layer->weight().data, before);
  // SetWeight on a quantized layer quantizes straight to int8.
  layer->SetWeight(w.data());
  EXPECT_EQ(layer->weight_format(), Format::kInt8);
}

TEST(Linear8bit, WeightOnlyPathEqualsDequantizedMatmul) {
  const int64_t k = 64, n = 24;
  const std::vector<float> w = Randn(n * k, 41, 0.2), b = Randn(n, 42);
  for (const bool symmetric : {true, false}) {
    for (const bool per_channel : {true, false}) {
      Linear8bitOptions o;
      o.has_fp16_weights = false;
      o.symmetric = symmetric;
      o.per_channel = per_channel;
      o.int8_activations = false;
      auto layer = Linear8bit::FromLinear(k, n, w.data(), b.data(), o);
      EXPECT_EQ(layer->weight_format(), symmetric ? Format::kInt8 : Format::kInt8Asym);
      CheckForward(*layer, std::string(symmetric ? "sym" : "asym") +
                               (per_channel ? " row" : " tensor"));
    }
  }
}

// Independent LLM.int8 reference in float64 (bitsandbytes §4, linear.h): outlier columns have
// any |x| >= threshold; row_stats = max |x| over the non-outlier columns of the row; the inlier
// part uses CA = round_half_even(x * 127 / row_stats) with outlier columns zeroed, times CB,
// scaled by row_stats * SCB / 127²; the outlier columns use x times the dequantized weight
// CB * SCB / 127.
MatD RefLlmInt8(const std::vector<float>& x, int64_t m, int64_t k, const QuantizedTensor& w,
                const std::vector<float>& bias, float threshold) {
  const int64_t n = w.state.shape[0];
  std::vector<bool> outlier(static_cast<size_t>(k), false);
  if (threshold > 0) {
    for (int64_t i = 0; i < m * k; ++i) {
      if (std::abs(x[static_cast<size_t>(i)]) >= threshold) outlier[static_cast<size_t>(i % k)] = true;
    }
  }
  auto scb = [&](int64_t j) {
    return static_cast<double>(w.state.scales[w.state.scales.size() == 1 ? 0 : j]);
  };
  auto cb = [&](int64_t j, int64_t c) {
    return static_cast<double>(static_cast<int8_t>(w.data[static_cast<size_t>(j * k + c)]));
  };
  MatD y(m, n);
  for (int64_t i = 0; i < m; ++i) {
    double stat = 0;
    for (int64_t c = 0; c < k; ++c) {
      if (!outlier[static_cast<size_t>(c)]) {
        stat = std::max(stat, double{std::abs(x[static_cast<size_t>(i * k + c)])});
      }
    }
    std::vector<double> ca(static_cast<size_t>(k), 0.0);
    for (int64_t c = 0; c < k; ++c) {
      if (!outlier[static_cast<size_t>(c)] && stat > 0) {
        ca[static_cast<size_t>(c)] = std::nearbyint(x[static_cast<size_t>(i * k + c)] * 127.0 / stat);
      }
    }
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0, out = 0;
      for (int64_t c = 0; c < k; ++c) {
        if (outlier[static_cast<size_t>(c)]) {
          out += x[static_cast<size_t>(i * k + c)] * cb(j, c) * scb(j) / 127.0;
        } else {
          acc += ca[static_cast<size_t>(c)] * cb(j, c);
        }
      }
      y(i, j) = acc * stat * scb(j) / (127.0 * 127.0) + out + (bias.empty() ? 0.0 : bias[j]);
    }
  }
  return y;
}

// Activations N(0, 1) with a few columns scaled to ~`outlier` (LLM.int8's emergent features).
std::vector<float> OutlierActivations(int64_t m, int64_t k, const std::vector<int64_t>& cols,
                                      float outlier, uint64_t seed) {
  std::vector<float> x = Randn(m * k, seed);
  for (int64_t i = 0; i < m; ++i) {
    for (const int64_t c : cols) x[static_cast<size_t>(i * k + c)] *= outlier;
  }
  return x;
}

TEST(Linear8bit, LlmInt8MatchesIndependentReference) {
  const int64_t k = 128, n = 40, m = 6;
  const std::vector<float> w = Randn(n * k, 51, 0.1), b = Randn(n, 52);
  for (const float threshold : {0.0f, 6.0f}) {
    for (const bool per_channel : {true, false}) {
      Linear8bitOptions o;
      o.has_fp16_weights = false;
      o.threshold = threshold;
      o.per_channel = per_channel;
      auto layer = Linear8bit::FromLinear(k, n, w.data(), b.data(), o);
      const std::vector<float> x = OutlierActivations(m, k, {3, 77, 100}, 20.0f, 53);
      const MatD want = RefLlmInt8(x, m, k, layer->weight(), b, threshold);
      // The codes may differ by one where x * 127 / row_stats lands within float rounding of a
      // half; each such code moves an output by at most row_stats / 127 * max|W|. Allow a few.
      double max_w = 0;
      for (const float v : layer->DequantizedWeight()) max_w = std::max(max_w, std::abs(double{v}));
      double max_stat = 0;
      for (const float v : x) {
        if (threshold == 0 || std::abs(v) < threshold) max_stat = std::max(max_stat, std::abs(double{v}));
      }
      ExpectClose(RunForward(*layer, x, m), want, 1e-6, 2 * max_stat / 127 * max_w + 1e-5,
                  "threshold " + std::to_string(threshold) + (per_channel ? " row" : " tensor"));
    }
  }
}

TEST(Linear8bit, NoOutliersInBatchEqualsPlainInt8) {
  const int64_t k = 96, n = 32, m = 4;
  const std::vector<float> w = Randn(n * k, 55, 0.1), b = Randn(n, 56);
  Linear8bitOptions plain_o, llm_o;
  plain_o.has_fp16_weights = llm_o.has_fp16_weights = false;
  llm_o.threshold = 6.0f;
  auto plain = Linear8bit::FromLinear(k, n, w.data(), b.data(), plain_o);
  auto llm = Linear8bit::FromLinear(k, n, w.data(), b.data(), llm_o);
  const std::vector<float> x = Randn(m * k, 57, 0.5);  // |x| < 6 everywhere
  EXPECT_EQ(RunForward(*llm, x, m), RunForward(*plain, x, m));
  ExpectClose(RunForward(*llm, x, m), RefLlmInt8(x, m, k, llm->weight(), b, 6.0f), 1e-6, 2e-3,
              "no outliers");
}

TEST(Linear8bit, OutliersCloserToFloatThanPlainInt8) {
  // Two activation columns ~25x larger than the rest: plain int8 (threshold 0) spends its whole
  // range on them; LLM.int8 (threshold 6) keeps them in float and quantizes the rest finely.
  const int64_t k = 256, n = 64, m = 8;
  const std::vector<float> w = Randn(n * k, 61, 0.05);
  const std::vector<float> x = OutlierActivations(m, k, {17, 200}, 25.0f, 62);
  Linear8bitOptions plain_o, llm_o;
  plain_o.has_fp16_weights = llm_o.has_fp16_weights = false;
  llm_o.threshold = 6.0f;
  auto plain = Linear8bit::FromLinear(k, n, w.data(), nullptr, plain_o);
  auto llm = Linear8bit::FromLinear(k, n, w.data(), nullptr, llm_o);
  ASSERT_EQ(plain->weight().data, llm->weight().data);
  const MatD exact = RefLinear(x, m, w, n, k, {});  // float weights, float activations
  auto rel_err = [&](const std::vector<float>& y) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < exact.size(); ++i) {
      num += std::pow(y[static_cast<size_t>(i)] - exact.data()[i], 2);
      den += std::pow(exact.data()[i], 2);
    }
    return std::sqrt(num / den);
  };
  const double e_plain = rel_err(RunForward(*plain, x, m));
  const double e_llm = rel_err(RunForward(*llm, x, m));
  EXPECT_LT(e_llm, e_plain / 3) << "LLM.int8 " << e_llm << " vs plain int8 " << e_plain;
  // What is left is the int8 weight error (~1/254 of each row's absmax, relative ~1%) plus the
  // fine activation rounding.
  EXPECT_LT(e_llm, 0.02);
  EXPECT_GT(e_plain, 0.03);
}

TEST(Linear8bit, SixteenBitInputsUseRoundedOutlierColumns) {
  const int64_t k = 64, n = 16, m = 3;
  const std::vector<float> w = Randn(n * k, 71, 0.1);
  Linear8bitOptions o;
  o.has_fp16_weights = false;
  o.threshold = 6.0f;
  auto layer = Linear8bit::FromLinear(k, n, w.data(), nullptr, o);
  std::vector<float> x = OutlierActivations(m, k, {5}, 30.0f, 72);
  for (float& v : x) v = F16ToF32(F32ToF16(v));  // exactly representable in f16
  std::vector<F16> xh(x.size());
  FromF32(x.data(), m * k, xh.data(), DType::kF16);
  std::vector<F16> yh(static_cast<size_t>(m * n));
  layer->Forward(ConstTensorView{xh.data(), DType::kF16, {m, k}},
                 TensorView{yh.data(), DType::kF16, {m, n}});
  const MatD want = RefLlmInt8(x, m, k, layer->weight(), {}, 6.0f);
  for (int64_t i = 0; i < want.size(); ++i) {
    const double got = F16ToF32(yh[static_cast<size_t>(i)]);
    // f16 output rounding and f16 weight columns (relative 2^-11 each on the outlier part).
    EXPECT_NEAR(got, want.data()[i], std::abs(want.data()[i]) * 2e-3 + 0.05) << i;
  }
}

// ---- every Highway target ----------------------------------------------------------------------

// The layers run whatever kernels the ops dispatch to; each compiled target must give the
// reference result (forced with hwy::SetSupportedTargetsForTest).
class LayersOnTarget : public ::testing::TestWithParam<int64_t> {
 protected:
  void SetUp() override { hwy::SetSupportedTargetsForTest(GetParam()); }
  void TearDown() override { hwy::SetSupportedTargetsForTest(0); }
};

TEST_P(LayersOnTarget, ForwardMatchesReference) {
  const int64_t k = 172, n = 36;  // odd in-dim: int4 group tails, nf4 blocks across rows
  const std::vector<float> w = Randn(n * k, 81, 0.1), b = Randn(n, 82);
  Linear4bitOptions i4;
  i4.quant_type = Format::kInt4Asym;
  i4.block_size = 32;
  CheckForward(*Linear4bit::FromLinear(k, n, w.data(), b.data()), "nf4");
  CheckForward(*Linear4bit::FromLinear(k, n, w.data(), b.data(), i4), "int4_asym g32");
  CheckForward(*LinearFP8::FromLinear(k, n, w.data(), b.data()), "fp8");
  Linear8bitOptions o8;
  o8.has_fp16_weights = false;
  o8.threshold = 6.0f;
  auto l8 = Linear8bit::FromLinear(k, n, w.data(), b.data(), o8);
  for (const int64_t m : {int64_t{1}, int64_t{7}}) {
    const std::vector<float> x = OutlierActivations(m, k, {0, 171}, 15.0f, 83);
    double max_w = 0;
    for (const float v : l8->DequantizedWeight()) max_w = std::max(max_w, std::abs(double{v}));
    ExpectClose(RunForward(*l8, x, m), RefLlmInt8(x, m, k, l8->weight(), b, 6.0f), 1e-6,
                2 * 4.5 / 127 * max_w + 1e-5, "LLM.int8 m=" + std::to_string(m));
  }
}

INSTANTIATE_TEST_SUITE_P(AllTargets, LayersOnTarget,
                         ::testing::ValuesIn(hwy::SupportedAndGeneratedTargets()),
                         [](const ::testing::TestParamInfo<int64_t>& info) {
                           return std::string(hwy::TargetName(info.param));
                         });

// ---- sizes, descriptions, validation ---------------------------------------------------------

TEST(QuantLinear, StorageBytesComputedIndependently) {
  const int64_t k = 64, n = 172;  // 11008 weights
  Linear4bit nf4(k, n, true, {}, 1);
  // ceil(n/2) payload + one f32 absmax per 64 + the 16-entry f32 codebook + f32 bias.
  EXPECT_EQ(nf4.StorageBytes(), 11008 / 2 + 4 * (11008 / 64) + 16 * 4 + 4 * n);
  Linear8bitOptions o8;
  o8.has_fp16_weights = false;
  Linear8bit i8(k, n, false, o8, 1);
  EXPECT_EQ(i8.StorageBytes(), 11008 + 4 * n);  // int8 codes + one f32 SCB per row
  LinearFP8 f8(k, n, false, {}, 1);
  EXPECT_EQ(f8.StorageBytes(), 11008 + 4 * n);
  EXPECT_NE(nf4.Describe().find("Linear4bit(in=64, out=172, nf4 block 64"), std::string::npos)
      << nf4.Describe();
  EXPECT_NE(i8.Describe().find("int8 per-row"), std::string::npos) << i8.Describe();
}

template <class F>
void ExpectError(F&& f, Status status, const std::string& fragment) {
  try {
    f();
    ADD_FAILURE() << "no exception; expected '" << fragment << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), status) << e.what();
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(QuantLinear, ValidationErrors) {
  ExpectError([] { Linear4bit(0, 4); }, Status::kInvalidArgument, "in_features");
  ExpectError([] { Linear4bit(4, -1); }, Status::kInvalidArgument, "out_features");
  Linear4bitOptions bad4;
  bad4.quant_type = Format::kInt8;
  ExpectError([&] { Linear4bit(64, 4, true, bad4); }, Status::kUnsupportedFormat, "quant_type");
  bad4.quant_type = Format::kInt4;
  bad4.compress_statistics = true;
  ExpectError([&] { Linear4bit(64, 4, true, bad4); }, Status::kInvalidArgument,
              "compress_statistics");
  Linear4bitOptions badcd;
  badcd.compute_dtype = DType::kI8;
  ExpectError([&] { Linear4bit(64, 4, true, badcd); }, Status::kInvalidArgument, "compute_dtype");
  Linear4bitOptions badblock;
  badblock.block_size = 48;
  ExpectError([&] { Linear4bit(64, 4, true, badblock); }, Status::kInvalidArgument, "48");

  Linear8bitOptions o8;
  o8.threshold = -1.0f;
  ExpectError([&] { Linear8bit(8, 4, true, o8); }, Status::kInvalidArgument, "threshold");
  o8.threshold = std::nanf("");
  ExpectError([&] { Linear8bit(8, 4, true, o8); }, Status::kInvalidArgument, "threshold");
  o8.threshold = 6.0f;
  o8.symmetric = false;
  ExpectError([&] { Linear8bit(8, 4, true, o8); }, Status::kInvalidArgument, "symmetric");
  o8.symmetric = true;
  o8.int8_activations = false;
  ExpectError([&] { Linear8bit(8, 4, true, o8); }, Status::kInvalidArgument, "int8_activations");

  LinearFP8Options of8;
  of8.fp8_format = Format::kNF4;
  ExpectError([&] { LinearFP8(8, 4, true, of8); }, Status::kUnsupportedFormat, "fp8_format");

  Linear4bit layer(64, 8, false, {}, 1);
  std::vector<float> x(64 * 2), y(8 * 2);
  ExpectError([&] {
    layer.Forward(ConstTensorView{x.data(), DType::kF32, {2, 32}},
                  TensorView{y.data(), DType::kF32, {2, 8}});
  }, Status::kInvalidArgument, "last dim must be 64");
  ExpectError([&] {
    layer.Forward(ConstTensorView{x.data(), DType::kF32, {2, 64}},
                  TensorView{y.data(), DType::kF32, {2, 7}});
  }, Status::kInvalidArgument, "");
  ExpectError([&] { layer.SetWeight(nullptr); }, Status::kInvalidArgument, "null");
  std::vector<float> w(64 * 8, 0.5f), b(8, 1.0f);
  ExpectError([&] { layer.SetWeight(w.data(), b.data()); }, Status::kInvalidArgument, "bias");
  // RestoreWeight refuses a weight of another shape or format.
  LinearFP8 other(64, 8, false, {}, 1);
  ExpectError([&] { layer.RestoreWeight(other.weight()); }, Status::kInvalidArgument, "format");
  Linear4bit small(32, 8, false, {}, 1);
  ExpectError([&] { layer.RestoreWeight(small.weight()); }, Status::kInvalidArgument, "shape");
  ExpectError([&] { Linear4bit::FromQuantized(other.weight(), nullptr); },
              Status::kUnsupportedFormat, "quant_type");
}

}  // namespace
}  // namespace lowbit::nn
