// LoRA / QLoRA layers (lowbit/nn/lora.h): backward against central finite differences in
// float64, dropout masks, merge/unmerge (dense and re-quantized), adapter switching, the frozen
// base never changing, parameter accounting, validation, and the QLoRA MLP example's loss fall.
#include <Eigen/Core>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "examples/qlora_mlp.h"
#include "lowbit/nn/lora.h"
#include "lowbit/nn/optim.h"
#include "nn_test_util.h"

namespace lowbit::nn {
namespace {

using nntest::MatD;
using nntest::Randn;
using nntest::ToMat;

// The three quantized bases LoRA wraps, all [n, k] with bias.
std::unique_ptr<QuantLinear> MakeBase(const std::string& kind, int64_t k, int64_t n) {
  const std::vector<float> w = Randn(n * k, 1, 0.2), b = Randn(n, 2, 0.1);
  if (kind == "nf4") return Linear4bit::FromLinear(k, n, w.data(), b.data());
  if (kind == "int8") {
    Linear8bitOptions o;
    o.has_fp16_weights = false;
    o.threshold = 6.0f;
    return Linear8bit::FromLinear(k, n, w.data(), b.data(), o);
  }
  return LinearFP8::FromLinear(k, n, w.data(), b.data());
}

std::vector<float> Forward(LoRAQuantLinear& l, const std::vector<float>& x, int64_t m) {
  std::vector<float> y(static_cast<size_t>(m * l.out_features()));
  l.Forward(ConstTensorView{x.data(), DType::kF32, {m, l.in_features()}},
            TensorView{y.data(), DType::kF32, {m, l.out_features()}});
  return y;
}

double Dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

// Loss L(x, A, B) = <G, y> of the LoRA layer evaluated in float64 from the layer's own dequantized
// base weight and adapter: y = x Wᵀ + b + s (x ⊙ mask) Aᵀ Bᵀ. Its exact gradients are what
// Backward must return (the base is frozen: dL/dx goes through the dequantized weight).
struct RefLoss {
  MatD w, a, b_mat, mask, g;
  std::vector<double> bias;
  double s;
  double operator()(const MatD& x, const MatD& a_, const MatD& b_) const {
    MatD y = x * w.transpose() + s * (x.cwiseProduct(mask) * a_.transpose()) * b_.transpose();
    double l = 0;
    for (int64_t i = 0; i < y.rows(); ++i)
      for (int64_t j = 0; j < y.cols(); ++j) l += g(i, j) * (y(i, j) + bias[j]);
    return l;
  }
};

// Central differences of f at every element of `p` (f64, step h; f is quadratic at most in each
// element here, so the difference is exact up to rounding).
MatD NumericGrad(MatD p, const std::function<double(const MatD&)>& f, double h = 1e-4) {
  MatD grad(p.rows(), p.cols());
  for (int64_t i = 0; i < p.size(); ++i) {
    const double v = p.data()[i];
    p.data()[i] = v + h;
    const double up = f(p);
    p.data()[i] = v - h;
    const double down = f(p);
    p.data()[i] = v;
    grad.data()[i] = (up - down) / (2 * h);
  }
  return grad;
}

void ExpectMatClose(const std::vector<float>& got, const MatD& want, double rtol,
                    const std::string& what) {
  ASSERT_EQ(static_cast<int64_t>(got.size()), want.size()) << what;
  const double scale = want.cwiseAbs().maxCoeff();
  ASSERT_GT(scale, 0) << what;
  for (int64_t i = 0; i < want.size(); ++i) {
    EXPECT_NEAR(got[static_cast<size_t>(i)], want.data()[i], rtol * scale) << what << " @" << i;
  }
}

class LoRAGradient : public ::testing::TestWithParam<std::tuple<std::string, float>> {};

TEST_P(LoRAGradient, BackwardMatchesCentralDifferences) {
  const std::string kind = std::get<0>(GetParam());
  const float dropout = std::get<1>(GetParam());
  const int64_t k = 64, n = 24, m = 5, r = 4;
  LoRAConfig cfg{r, 8.0f, dropout, 17};
  LoRAQuantLinear layer(MakeBase(kind, k, n));
  layer.AddAdapter("default", cfg);
  LoRALinear& ad = layer.adapter("default");
  ad.b() = Randn(n * r, 3, 0.5);  // B = 0 would hide every A-gradient bug
  const std::vector<float> x = Randn(m * k, 4), g = Randn(m * n, 5);

  // Mask of this forward: reseeding makes every later forward draw the same mask.
  ad.ReseedDropout(99);
  const std::vector<float> y = Forward(layer, x, m);
  ad.ZeroGrad();
  std::vector<float> gx(static_cast<size_t>(m * k), 123.0f);  // overwritten, not accumulated
  layer.Backward(g.data(), m, gx.data());

  RefLoss ref;
  ref.w = ToMat(layer.base().DequantizedWeight(), n, k);
  ref.a = ToMat(ad.a(), r, k);
  ref.b_mat = ToMat(ad.b(), n, r);
  ref.g = ToMat(g, m, n);
  ref.bias.assign(layer.base().bias().begin(), layer.base().bias().end());
  ref.s = ad.scaling();
  EXPECT_DOUBLE_EQ(ref.s, 8.0 / r);
  // Recover the mask the layer used from a zero-base probe: with A = I-like rows we cannot read
  // it directly, so re-run the adapter alone on x and on all-ones to get mask * x.
  ref.mask = MatD::Ones(m, k);
  if (dropout > 0) {
    LoRALinear probe(k, k, k, static_cast<float>(k), dropout, cfg.seed);  // scaling 1
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j < k; ++j) probe.a()[i * k + j] = i == j ? 1.0f : 0.0f;
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j < k; ++j) probe.b()[i * k + j] = i == j ? 1.0f : 0.0f;
    probe.ReseedDropout(99);
    std::vector<float> ones(static_cast<size_t>(m * k), 1.0f), mask(ones.size(), 0.0f);
    probe.Forward(ones.data(), m, mask.data(), /*training=*/true);
    int dropped = 0;
    for (int64_t i = 0; i < m * k; ++i) {
      ref.mask.data()[i] = mask[static_cast<size_t>(i)];
      if (mask[static_cast<size_t>(i)] == 0.0f) {
        ++dropped;
      } else {
        EXPECT_FLOAT_EQ(mask[static_cast<size_t>(i)], 1.0f / (1.0f - dropout));  // inverted dropout
      }
    }
    EXPECT_GT(dropped, m * k * dropout / 2);
    EXPECT_LT(dropped, m * k * dropout * 2);
  }

  // The layer's own output equals the float64 model (weight-only bases; LLM.int8 quantizes x).
  if (kind != "int8") {
    MatD want = ToMat(x, m, k) * ref.w.transpose() +
                ref.s * (ToMat(x, m, k).cwiseProduct(ref.mask) * ref.a.transpose()) *
                    ref.b_mat.transpose();
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) want(i, j) += ref.bias[j];
    ExpectMatClose(y, want, 1e-5, kind + " forward");
  }

  const MatD x0 = ToMat(x, m, k);
  ExpectMatClose(gx, NumericGrad(x0, [&](const MatD& xx) { return ref(xx, ref.a, ref.b_mat); }),
                 1e-5, kind + " dX");
  ExpectMatClose(ad.grad_a(),
                 NumericGrad(ref.a, [&](const MatD& aa) { return ref(x0, aa, ref.b_mat); }), 1e-5,
                 kind + " dA");
  ExpectMatClose(ad.grad_b(),
                 NumericGrad(ref.b_mat, [&](const MatD& bb) { return ref(x0, ref.a, bb); }), 1e-5,
                 kind + " dB");

  // The same gradients of A and B by central differences of the LAYER's float32 forward (the
  // base term is identical in both evaluations and cancels; L is linear in each of A and B).
  auto layer_loss = [&](std::vector<float>& param, int64_t i, float v) {
    const float saved = param[static_cast<size_t>(i)];
    param[static_cast<size_t>(i)] = v;
    ad.ReseedDropout(99);
    const double l = Dot(Forward(layer, x, m), g);
    param[static_cast<size_t>(i)] = saved;
    return l;
  };
  const float h = 0.25f;  // exact in float; large steps keep float32 rounding of L small
  for (const int64_t i : {int64_t{0}, int64_t{7}, r * k - 1}) {
    const float v = ad.a()[static_cast<size_t>(i)];
    const double fd = (layer_loss(ad.a(), i, v + h) - layer_loss(ad.a(), i, v - h)) / (2 * h);
    EXPECT_NEAR(ad.grad_a()[static_cast<size_t>(i)], fd, 2e-3 * (1 + std::abs(fd))) << "A " << i;
  }
  for (const int64_t i : {int64_t{0}, int64_t{5}, n * r - 1}) {
    const float v = ad.b()[static_cast<size_t>(i)];
    const double fd = (layer_loss(ad.b(), i, v + h) - layer_loss(ad.b(), i, v - h)) / (2 * h);
    EXPECT_NEAR(ad.grad_b()[static_cast<size_t>(i)], fd, 2e-3 * (1 + std::abs(fd))) << "B " << i;
  }

  // Gradients accumulate across Backward calls until ZeroGrad.
  const std::vector<float> ga = ad.grad_a();
  ad.ReseedDropout(99);
  Forward(layer, x, m);
  layer.Backward(g.data(), m, nullptr);
  for (size_t i = 0; i < ga.size(); i += 37) EXPECT_FLOAT_EQ(ad.grad_a()[i], 2 * ga[i]);
  layer.ZeroGrad();
  for (const float v : ad.grad_b()) ASSERT_EQ(v, 0.0f);
}

INSTANTIATE_TEST_SUITE_P(
    Bases, LoRAGradient,
    ::testing::Combine(::testing::Values("nf4", "int8", "fp8"), ::testing::Values(0.0f, 0.25f)),
    [](const auto& info) {
      return std::get<0>(info.param) + (std::get<1>(info.param) > 0 ? "_dropout" : "");
    });

// ---- merge / unmerge ---------------------------------------------------------------------------

TEST(LoRAMerge, DenseAndRequantizedMergeMatchBasePlusDelta) {
  const int64_t k = 128, n = 48, m = 6, r = 8;
  for (const std::string kind : {"nf4", "int8", "fp8"}) {
    Linear4bitWithLoRA dummy(Linear4bit::FromLinear(k, n, Randn(n * k, 8).data(), nullptr),
                             LoRAConfig{});  // typed alias compiles and wraps
    EXPECT_EQ(dummy.typed_base().options().quant_type, Format::kNF4);

    LoRAQuantLinear layer(MakeBase(kind, k, n));
    layer.AddAdapter("a", LoRAConfig{r, 16.0f, 0.0f, 1});
    layer.adapter("a").b() = Randn(n * r, 9, 0.05);
    layer.SetTraining(false);
    const QuantizedTensor original = layer.base().weight();
    const std::vector<float> x = Randn(m * k, 10);
    const std::vector<float> y_adapter = Forward(layer, x, m);

    // Exact merged weight in float64: Wd + (alpha / r) B A.
    const MatD exact = ToMat(layer.base().DequantizedWeight(), n, k) +
                       2.0 * ToMat(layer.adapter("a").b(), n, r) *
                           ToMat(layer.adapter("a").a(), r, k);

    // kDense: forward unchanged up to float rounding (the base path of LLM.int8 quantizes x,
    // the dense merged weight does not: compare against the float64 merged product instead).
    ErrorStats e = layer.Merge(MergeMode::kDense);
    EXPECT_TRUE(layer.merged());
    EXPECT_LT(e.max_abs, 1e-6);
    const std::vector<float> y_dense = Forward(layer, x, m);
    MatD want = ToMat(x, m, k) * exact.transpose();
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) want(i, j) += layer.base().bias()[static_cast<size_t>(j)];
    ExpectMatClose(y_dense, want, 1e-5, kind + " dense merge");
    EXPECT_THROW(layer.Backward(x.data(), m, nullptr), Error);
    EXPECT_THROW(layer.SetActiveAdapter(""), Error);
    layer.Unmerge();
    EXPECT_EQ(Forward(layer, x, m), y_adapter) << kind << " after dense unmerge";

    // kRequantize: the merged weight is a fresh quantization of exact; the reported error is
    // that of the new weight against exact, and the forward follows the new weight.
    e = layer.Merge(MergeMode::kRequantize);
    EXPECT_EQ(layer.base().weight_format(), original.format());
    const MatD merged_w = ToMat(layer.base().DequantizedWeight(), n, k);
    EXPECT_NEAR(e.max_abs, (merged_w - exact).cwiseAbs().maxCoeff(), 1e-6);
    EXPECT_GT(e.max_abs, 0.0);  // a real re-quantization happened
    // Quantization error bound per format: nf4 ~ half the widest code gap (0.16) of the block
    // absmax; int8 half a step (absmax / 254); fp8 e4m3 2^-4 relative.
    const double wmax = exact.cwiseAbs().maxCoeff();
    const double bound = kind == "nf4" ? 0.15 * wmax : kind == "int8" ? wmax / 254 * 1.01
                                                                      : wmax / 16;
    EXPECT_LE(e.max_abs, bound) << kind;
    const std::vector<float> y_req = Forward(layer, x, m);
    double max_diff = 0;
    for (size_t i = 0; i < y_req.size(); ++i) {
      max_diff = std::max(max_diff, std::abs(double{y_req[i]} - want.data()[i]));
    }
    // |x · ΔWᵀ| <= sum_k |x_k| * max|ΔW|, plus LLM.int8's activation rounding for int8.
    double x_l1 = 0;
    for (int64_t row = 0; row < m; ++row) {
      double s = 0;
      for (int64_t i = 0; i < k; ++i) s += std::abs(x[static_cast<size_t>(row * k + i)]);
      x_l1 = std::max(x_l1, s);
    }
    EXPECT_LE(max_diff, x_l1 * e.max_abs + (kind == "int8" ? 0.1 : 1e-4)) << kind;

    layer.Unmerge();
    EXPECT_EQ(layer.base().weight().data, original.data) << kind << ": bytes restored";
    EXPECT_EQ(layer.base().weight().state.scales, original.state.scales) << kind;
    EXPECT_EQ(Forward(layer, x, m), y_adapter) << kind << " after requantize unmerge";
    EXPECT_THROW(layer.Unmerge(), Error);
  }
}

// ---- adapters, frozen base, accounting ---------------------------------------------------------

TEST(LoRAAdapters, SwitchingAndDisabling) {
  const int64_t k = 64, n = 32, m = 3;
  LoRAQuantLinear layer(MakeBase("nf4", k, n));
  layer.SetTraining(false);
  const std::vector<float> x = Randn(m * k, 20);
  std::vector<float> base_y(static_cast<size_t>(m * n));
  layer.base().Forward(ConstTensorView{x.data(), DType::kF32, {m, k}},
                       TensorView{base_y.data(), DType::kF32, {m, n}});
  EXPECT_EQ(Forward(layer, x, m), base_y);  // no adapter yet
  layer.AddAdapter("a", LoRAConfig{4, 8.0f, 0.0f, 1});
  layer.AddAdapter("b", LoRAConfig{8, 8.0f, 0.0f, 2});
  EXPECT_EQ(layer.active_adapter(), "a");  // the first one added
  EXPECT_EQ(Forward(layer, x, m), base_y);  // fresh adapters (B = 0) change nothing
  layer.adapter("a").b() = Randn(n * 4, 21);
  layer.adapter("b").b() = Randn(n * 8, 22);

  auto expected = [&](const std::string& name) {
    const LoRALinear& ad = layer.adapter(name);
    MatD y = ToMat(base_y, m, n) + ad.scaling() * ToMat(x, m, k) *
                                       ToMat(ad.a(), ad.r(), k).transpose() *
                                       ToMat(ad.b(), n, ad.r()).transpose();
    return y;
  };
  ExpectMatClose(Forward(layer, x, m), expected("a"), 1e-5, "adapter a");
  layer.SetActiveAdapter("b");
  ExpectMatClose(Forward(layer, x, m), expected("b"), 1e-5, "adapter b");
  EXPECT_EQ(layer.num_trainable_parameters(), 8 * (k + n));
  EXPECT_EQ(layer.num_frozen_parameters(), k * n + n + 4 * (k + n));
  const std::vector<Parameter> params = layer.TrainableParameters();
  ASSERT_EQ(params.size(), 2u);
  EXPECT_EQ(params[0].name, "b.lora_A");
  EXPECT_EQ(params[0].size, 8 * k);
  EXPECT_EQ(params[1].name, "b.lora_B");
  EXPECT_EQ(params[1].value, layer.adapter("b").b().data());
  const std::string summary = layer.Summary();
  EXPECT_NE(summary.find("* adapter 'b': r=8"), std::string::npos) << summary;
  EXPECT_NE(summary.find("adapter 'a': r=4"), std::string::npos) << summary;
  EXPECT_NE(summary.find("trainable 768 / total"), std::string::npos) << summary;

  layer.SetActiveAdapter("");
  EXPECT_EQ(Forward(layer, x, m), base_y);
  EXPECT_TRUE(layer.TrainableParameters().empty());
  EXPECT_EQ(layer.num_trainable_parameters(), 0);
  EXPECT_THROW(layer.Backward(x.data(), m, nullptr), Error);
  layer.DeleteAdapter("b");
  EXPECT_EQ(layer.adapter_names(), std::vector<std::string>{"a"});
}

TEST(LoRAAdapters, TrainingNeverTouchesTheFrozenBase) {
  const int64_t k = 64, n = 16, m = 8;
  for (const std::string kind : {"nf4", "int8", "fp8"}) {
    LoRAQuantLinear layer(MakeBase(kind, k, n));
    layer.AddAdapter("default", LoRAConfig{4, 8.0f, 0.1f, 3});
    const QuantizedTensor before = layer.base().weight();
    const std::vector<float> bias_before = layer.base().bias();
    AdamW opt(layer.TrainableParameters(), AdamWOptions{1e-2f});
    const std::vector<float> x = Randn(m * k, 30), target = Randn(m * n, 31);
    std::vector<float> gy(static_cast<size_t>(m * n)), gx(static_cast<size_t>(m * k));
    for (int step = 0; step < 5; ++step) {
      const std::vector<float> y = Forward(layer, x, m);
      for (size_t i = 0; i < y.size(); ++i) gy[i] = y[i] - target[i];
      opt.ZeroGrad();
      layer.Backward(gy.data(), m, gx.data());
      opt.Step();
    }
    EXPECT_NE(layer.adapter("default").b(), std::vector<float>(static_cast<size_t>(n * 4), 0.0f));
    EXPECT_EQ(layer.base().weight().data, before.data) << kind;
    EXPECT_EQ(layer.base().weight().state.scales, before.state.scales) << kind;
    EXPECT_EQ(layer.base().bias(), bias_before) << kind;
  }
}

TEST(LoRAAdapters, ValidationErrors) {
  EXPECT_THROW(LoRALinear(8, 8, 0, 1.0f), Error);
  EXPECT_THROW(LoRALinear(8, 8, 2, 0.0f), Error);
  EXPECT_THROW(LoRALinear(8, 8, 2, 1.0f, 1.0f), Error);
  EXPECT_THROW(LoRALinear(8, 8, 2, 1.0f, -0.1f), Error);
  EXPECT_THROW(LoRALinear(0, 8, 2, 1.0f), Error);
  EXPECT_THROW(LoRAQuantLinear(nullptr), Error);
  LoRAQuantLinear layer(MakeBase("fp8", 16, 8));
  EXPECT_THROW(layer.Merge(MergeMode::kDense), Error);  // no adapter
  layer.AddAdapter("x", LoRAConfig{2, 4.0f});
  EXPECT_THROW(layer.AddAdapter("x", LoRAConfig{}), Error);
  EXPECT_THROW(layer.AddAdapter("", LoRAConfig{}), Error);
  EXPECT_THROW(layer.SetActiveAdapter("nope"), Error);
  EXPECT_THROW(layer.DeleteAdapter("nope"), Error);
  std::vector<float> g(8 * 2);
  EXPECT_THROW(layer.Backward(g.data(), 2, nullptr), Error);  // no training forward yet
  const std::vector<float> x = Randn(2 * 16, 1);
  Forward(layer, x, 2);
  EXPECT_THROW(layer.Backward(g.data(), 3, nullptr), Error);  // m differs from the forward
  EXPECT_THROW(layer.Backward(nullptr, 2, nullptr), Error);
  layer.Backward(g.data(), 2, nullptr);
  layer.SetTraining(false);
  Forward(layer, x, 2);
  EXPECT_THROW(layer.Backward(g.data(), 2, nullptr), Error);  // eval forward caches nothing
}

// ---- the QLoRA example -----------------------------------------------------------------------

TEST(QLoRAExample, ShortTrainingLowersLossTenfold) {
  lowbit_examples::QLoRAMlpConfig c;
  c.steps = 60;
  for (const bool eight_bit : {false, true}) {
    c.adam.eight_bit_states = eight_bit;
    c.adam.min_8bit_size = 0;
    const auto r = lowbit_examples::TrainQLoRAMlp(c);
    ASSERT_EQ(r.losses.size(), 61u);
    EXPECT_GE(r.losses.front() / r.losses.back(), 10.0)
        << (eight_bit ? "8-bit" : "32-bit") << " states: " << r.losses.front() << " -> "
        << r.losses.back();
    EXPECT_EQ(r.trainable_parameters, 8 * (32 + 64) + 8 * (64 + 8));
  }
}

}  // namespace
}  // namespace lowbit::nn
