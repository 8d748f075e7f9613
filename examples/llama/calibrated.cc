// Model-level GPTQ/AWQ orchestration of the llama example (see calibrated.h).
#include "examples/llama/calibrated.h"

#include <array>
#include <utility>

#include "lowbit/io/safetensors.h"
#include "lowbit/quantize.h"

namespace lowbit::llama {

namespace {

Model FloatModel(const FloatWeights& w) {
  return BuildModel(w, [](int, Linear, const ConstTensorView& x) {
    return Quantize(Format::kF32, x);
  });
}

void RequireCalibration(const Sequences& calibration) {
  Require(!calibration.empty(), Status::kInvalidArgument, "calibration: no sequences given");
}

}  // namespace

// The groups' first linear is the one observed.
const std::vector<std::vector<Linear>>& InputGroups() {
  static const std::vector<std::vector<Linear>> kGroups = {
      {Linear::kWq, Linear::kWk, Linear::kWv},
      {Linear::kWo},
      {Linear::kW1, Linear::kW3},
      {Linear::kW2}};
  return kGroups;
}

std::vector<float> CollectInputs(const Model& model, const Sequences& calibration, int layer,
                                 Linear l, int64_t* rows) {
  std::vector<float> xs;
  *rows = 0;
  const LinearObserver observer = [&](int at_layer, Linear at, const float* x, int64_t r,
                                      int64_t k) {
    if (at_layer != layer || at != l) return;
    xs.insert(xs.end(), x, x + r * k);
    *rows += r;
  };
  Session session(model);
  for (const auto& seq : calibration) {
    session.Reset();
    session.Forward(seq.data(), static_cast<int32_t>(seq.size()), nullptr, &observer,
                    /*num_layers=*/layer + 1);
  }
  return xs;
}

Model QuantizeGptq(const FloatWeights& w, const Sequences& calibration,
                   const calibrate::GptqOptions& options) {
  RequireCalibration(calibration);
  Model model = FloatModel(w);
  for (int layer = 0; layer < w.config.n_layers; ++layer) {
    for (const auto& group : InputGroups()) {
      int64_t rows = 0;
      const std::vector<float> xs = CollectInputs(model, calibration, layer, group[0], &rows);
      calibrate::HessianAccumulator hessian(LinearShape(w.config, group[0])[1]);
      hessian.Add({xs.data(), DType::kF32, {rows, hessian.cols()}});
      const std::vector<double> h = hessian.Hessian();
      for (Linear l : group) {
        model.SetLinear(layer, l, calibrate::GptqQuantize(w.LinearView(layer, l), h, options));
      }
    }
  }
  return model;
}

Model QuantizeAwq(const FloatWeights& w, const Sequences& calibration,
                  const calibrate::AwqOptions& options, std::vector<float>* alphas) {
  RequireCalibration(calibration);
  Model model = FloatModel(w);
  if (alphas != nullptr) alphas->clear();
  for (int layer = 0; layer < w.config.n_layers; ++layer) {
    Model::Layer& ml = model.layers[layer];
    QuantizedTensor w3;  // kept to fold w2's scales into its rows
    for (const auto& group : InputGroups()) {
      int64_t rows = 0;
      const std::vector<float> xs = CollectInputs(model, calibration, layer, group[0], &rows);
      const int64_t k = LinearShape(w.config, group[0])[1];
      std::vector<ConstTensorView> views;
      for (Linear l : group) views.push_back(w.LinearView(layer, l));
      calibrate::AwqResult r =
          calibrate::AwqQuantize(views, {xs.data(), DType::kF32, {rows, k}}, options);
      if (alphas != nullptr) alphas->push_back(r.alpha);
      const std::vector<float>& s = r.input_scales;
      switch (group[0]) {
        case Linear::kWq:
          for (int64_t i = 0; i < k; ++i) ml.rms_att[i] /= s[i];
          break;
        case Linear::kW1:
          for (int64_t i = 0; i < k; ++i) ml.rms_ffn[i] /= s[i];
          w3 = r.weights[1];
          break;
        case Linear::kW2: {
          // Row i of w3 produces input channel i of w2: divide its group scales by s_i.
          const int64_t per_row = w3.state.num_scales() / w3.state.rows();
          for (int64_t i = 0; i < k; ++i) {
            for (int64_t g = 0; g < per_row; ++g) w3.state.scales[i * per_row + g] /= s[i];
          }
          model.SetLinear(layer, Linear::kW3, w3);
          break;
        }
        default:  // wo: nothing precedes it that can absorb the scale
          ml.input_scale[static_cast<int>(Linear::kWo)] = s;
          break;
      }
      for (size_t i = 0; i < group.size(); ++i) model.SetLinear(layer, group[i], r.weights[i]);
    }
  }
  return model;
}

std::string LinearModuleName(int layer, Linear l) {
  const bool attention = l == Linear::kWq || l == Linear::kWk || l == Linear::kWv ||
                         l == Linear::kWo;
  return "layers." + std::to_string(layer) + (attention ? ".attention." : ".feed_forward.") +
         LinearName(l);
}

void WriteCalibrationFile(const FloatWeights& w, const Sequences& calibration,
                          const std::string& path) {
  RequireCalibration(calibration);
  const Model model = FloatModel(w);
  const int n_layers = w.config.n_layers;
  // inputs[layer][linear]: the stacked rows seen by that linear.
  std::vector<std::array<std::vector<float>, kNumLinears>> inputs(n_layers);
  std::vector<std::array<int64_t, kNumLinears>> rows(n_layers);
  for (auto& r : rows) r.fill(0);
  const LinearObserver observer = [&](int layer, Linear l, const float* x, int64_t r, int64_t k) {
    std::vector<float>& dst = inputs[layer][static_cast<int>(l)];
    dst.insert(dst.end(), x, x + r * k);
    rows[layer][static_cast<int>(l)] += r;
  };
  Session session(model);
  for (const auto& seq : calibration) {
    session.Reset();
    session.Forward(seq.data(), static_cast<int32_t>(seq.size()), nullptr, &observer);
  }
  std::vector<io::NamedTensorView> tensors;
  for (int i = 0; i < n_layers; ++i) {
    for (Linear l : kAllLinears) {
      const int li = static_cast<int>(l);
      tensors.push_back({LinearModuleName(i, l) + ".inputs",
                         {inputs[i][li].data(), DType::kF32,
                          {rows[i][li], LinearShape(w.config, l)[1]}}});
    }
  }
  io::SaveSafetensors(path, tensors,
                      {{"lowbit.calibration", "inputs of every linear of the float32 model"}});
}

}  // namespace lowbit::llama
