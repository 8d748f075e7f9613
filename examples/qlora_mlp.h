// examples/qlora_mlp.h — a two-layer QLoRA MLP trained on a seeded synthetic regression task.
//
// Shared by examples/qlora_train.cc and tests/nn_lora_test.cc (which runs a short version).
// Model: y = L2(relu(L1(x))), L1/L2 = Linear4bit (NF4) frozen bases, each with a LoRA adapter.
// Task: a teacher network with the same architecture whose weights are the student's
// DEQUANTIZED NF4 bases plus a random low-rank (rank `teacher_rank`) change, so the LoRA adapters
// can represent the gap exactly. Loss: mean squared error over the whole dataset (full batch).
#ifndef LOWBIT_EXAMPLES_QLORA_MLP_H_
#define LOWBIT_EXAMPLES_QLORA_MLP_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <vector>

#include "lowbit/nn/lora.h"
#include "lowbit/nn/optim.h"

namespace lowbit_examples {

struct QLoRAMlpConfig {
  int64_t in = 32, hidden = 64, out = 8;
  int64_t samples = 256;
  int64_t teacher_rank = 4;
  float teacher_scale = 0.5f;  // size of the teacher's low-rank change
  lowbit::nn::LoRAConfig lora{8, 16.0f, 0.0f, 7};
  lowbit::nn::AdamWOptions adam{2e-2f, 0.9f, 0.999f, 1e-8f, 0.0f};
  int steps = 200;
  uint64_t seed = 42;
};

struct QLoRAMlpResult {
  std::vector<double> losses;  // loss before each step, then the final loss (steps + 1 values)
  int64_t trainable_parameters = 0;
  int64_t total_parameters = 0;
  int64_t base_bytes = 0;             // both frozen NF4 layers: payload + statistics + bias
  int64_t adapter_bytes = 0;          // LoRA A and B of both layers, float32
  int64_t optimizer_state_bytes = 0;  // AdamW m and v
};

// Called after each step with (step, loss before the step).
using StepCallback = std::function<void(int step, double loss)>;

inline QLoRAMlpResult TrainQLoRAMlp(const QLoRAMlpConfig& c, const StepCallback& on_step = {}) {
  using lowbit::ConstTensorView;
  using lowbit::DType;
  using lowbit::TensorView;
  namespace nn = lowbit::nn;
  std::mt19937_64 rng(c.seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  auto randn = [&](int64_t n, double scale) {
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = static_cast<float>(normal(rng) * scale);
    return v;
  };

  // Frozen NF4 bases (random init, as if pretrained).
  nn::Linear4bitOptions o4;
  o4.quant_type = lowbit::Format::kNF4;
  nn::Linear4bitWithLoRA l1(std::make_unique<nn::Linear4bit>(c.in, c.hidden, true, o4, c.seed + 1),
                            c.lora);
  nn::LoRAConfig lora2 = c.lora;
  lora2.seed = c.lora.seed + 1;
  nn::Linear4bitWithLoRA l2(std::make_unique<nn::Linear4bit>(c.hidden, c.out, true, o4, c.seed + 2),
                            lora2);

  // Teacher weights: dequantized base + low-rank change U·V (scaled by 1/sqrt(rank·in)).
  auto teacher = [&](const nn::LoRAQuantLinear& l) {
    std::vector<float> w = l.base().DequantizedWeight();
    const int64_t n = l.out_features(), k = l.in_features(), r = c.teacher_rank;
    const std::vector<float> u = randn(n * r, 1.0), v = randn(r * k, 1.0);
    const double s = c.teacher_scale / std::sqrt(static_cast<double>(r * k));
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < k; ++j) {
        double d = 0;
        for (int64_t q = 0; q < r; ++q) d += static_cast<double>(u[i * r + q]) * v[q * k + j];
        w[i * k + j] += static_cast<float>(s * d);
      }
    return w;
  };
  const std::vector<float> t1 = teacher(l1), t2 = teacher(l2);
  const std::vector<float> x = randn(c.samples * c.in, 1.0);
  // Teacher forward in double: targets y* = T2 relu(T1 x + b1) + b2.
  std::vector<float> target(static_cast<size_t>(c.samples * c.out));
  {
    const std::vector<float>& b1 = l1.base().bias();
    const std::vector<float>& b2 = l2.base().bias();
    std::vector<double> h(static_cast<size_t>(c.hidden));
    for (int64_t s = 0; s < c.samples; ++s) {
      for (int64_t j = 0; j < c.hidden; ++j) {
        double a = b1[j];
        for (int64_t k = 0; k < c.in; ++k) a += static_cast<double>(t1[j * c.in + k]) * x[s * c.in + k];
        h[j] = std::max(a, 0.0);
      }
      for (int64_t j = 0; j < c.out; ++j) {
        double a = b2[j];
        for (int64_t k = 0; k < c.hidden; ++k) a += t2[j * c.hidden + k] * h[k];
        target[s * c.out + j] = static_cast<float>(a);
      }
    }
  }

  std::vector<nn::Parameter> params = l1.TrainableParameters();
  for (const nn::Parameter& p : l2.TrainableParameters()) params.push_back(p);
  nn::AdamW opt(params, c.adam);

  QLoRAMlpResult result;
  result.trainable_parameters = l1.num_trainable_parameters() + l2.num_trainable_parameters();
  result.total_parameters = result.trainable_parameters + l1.num_frozen_parameters() +
                            l2.num_frozen_parameters();
  result.base_bytes = l1.base().StorageBytes() + l2.base().StorageBytes();
  result.adapter_bytes = 4 * result.trainable_parameters;
  result.optimizer_state_bytes = opt.StateBytes();
  const int64_t m = c.samples;
  std::vector<float> pre(static_cast<size_t>(m * c.hidden)), h(pre.size()), y(static_cast<size_t>(m * c.out));
  std::vector<float> gy(y.size()), gh(h.size());
  auto forward_loss = [&] {
    l1.Forward(ConstTensorView{x.data(), DType::kF32, {m, c.in}},
               TensorView{pre.data(), DType::kF32, {m, c.hidden}});
    for (size_t i = 0; i < h.size(); ++i) h[i] = std::max(pre[i], 0.0f);
    l2.Forward(ConstTensorView{h.data(), DType::kF32, {m, c.hidden}},
               TensorView{y.data(), DType::kF32, {m, c.out}});
    double loss = 0;
    for (size_t i = 0; i < y.size(); ++i) {
      const double d = static_cast<double>(y[i]) - target[i];
      loss += d * d;
      gy[i] = static_cast<float>(2.0 * d / static_cast<double>(y.size()));  // dMSE/dy
    }
    return loss / static_cast<double>(y.size());
  };
  for (int step = 0; step < c.steps; ++step) {
    const double loss = forward_loss();
    result.losses.push_back(loss);
    opt.ZeroGrad();
    l2.Backward(gy.data(), m, gh.data());
    for (size_t i = 0; i < gh.size(); ++i) gh[i] = pre[i] > 0.0f ? gh[i] : 0.0f;  // relu'
    l1.Backward(gh.data(), m, nullptr);
    opt.Step();
    if (on_step) on_step(step, loss);
  }
  result.losses.push_back(forward_loss());
  return result;
}

}  // namespace lowbit_examples

#endif  // LOWBIT_EXAMPLES_QLORA_MLP_H_
