// LoRA adapters (forward/backward in float32 with Eigen) and quantized base layers with named
// adapters: merge/unmerge, parameter accounting.
#include "lowbit/nn/lora.h"

#include <Eigen/Core>
#include <cmath>
#include <cstdio>

#include "scratch.h"

namespace lowbit::nn {

namespace {

using RowMajorF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MapF = Eigen::Map<RowMajorF>;
using ConstMapF = Eigen::Map<const RowMajorF>;
using internal::ThreadScratch;

}  // namespace

// ---- LoRALinear --------------------------------------------------------------------------------

LoRALinear::LoRALinear(int64_t in_features, int64_t out_features, int64_t r, float alpha,
                       float dropout, uint64_t seed)
    : in_features_(in_features),
      out_features_(out_features),
      r_(r),
      alpha_(alpha),
      dropout_(dropout),
      dropout_rng_(seed ^ 0x9E3779B97F4A7C15ull) {
  Require(in_features > 0 && out_features > 0, Status::kInvalidArgument,
          "LoRALinear: in_features " + std::to_string(in_features) + " and out_features " +
              std::to_string(out_features) + " must be positive");
  Require(r > 0, Status::kInvalidArgument,
          "LoRALinear: rank r must be positive, got " + std::to_string(r));
  Require(r <= std::min(in_features, out_features), Status::kInvalidArgument,
          "LoRALinear: rank r = " + std::to_string(r) + " exceeds min(in, out) = " +
              std::to_string(std::min(in_features, out_features)));
  Require(std::isfinite(alpha) && alpha > 0.0f, Status::kInvalidArgument,
          "LoRALinear: alpha must be finite and positive, got " + std::to_string(alpha));
  Require(dropout >= 0.0f && dropout < 1.0f, Status::kInvalidArgument,
          "LoRALinear: dropout must be in [0, 1), got " + std::to_string(dropout));
  // A: Kaiming-uniform with a = sqrt(5) over fan_in = in (PEFT's reset_lora_parameters) gives
  // bound = sqrt(6 / ((1 + 5) * in)) = 1 / sqrt(in). B = 0.
  std::mt19937_64 init_rng(seed);
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
  a_.resize(static_cast<size_t>(r * in_features));
  for (float& v : a_) {
    v = static_cast<float>((2.0 * (static_cast<double>(init_rng() >> 11) * 0x1.0p-53) - 1.0) *
                           bound);
  }
  b_.assign(static_cast<size_t>(out_features * r), 0.0f);
  grad_a_.assign(a_.size(), 0.0f);
  grad_b_.assign(b_.size(), 0.0f);
}

LoRALinear::LoRALinear(int64_t in_features, int64_t out_features, const LoRAConfig& config)
    : LoRALinear(in_features, out_features, config.r, config.alpha, config.dropout,
                 config.seed) {}

void LoRALinear::Forward(const float* x, int64_t m, float* y, bool training) {
  Require(x != nullptr && y != nullptr, Status::kInvalidArgument,
          "LoRALinear::Forward: x and y must be non-null");
  Require(m > 0, Status::kInvalidArgument,
          [&] { return "LoRALinear::Forward: m must be positive, got " + std::to_string(m); });
  const int64_t k = in_features_;
  const float* xin = x;
  if (training) {
    mask_.clear();
    if (dropout_ > 0.0f) {
      // Inverted dropout: keep with probability 1 - p and scale kept elements by 1 / (1 - p).
      const float keep_scale = 1.0f / (1.0f - dropout_);
      mask_.resize(static_cast<size_t>(m * k));
      for (float& v : mask_) {
        const float u = static_cast<float>(dropout_rng_() >> 40) * 0x1.0p-24f;  // [0, 1)
        v = (u >= dropout_) ? keep_scale : 0.0f;
      }
    }
    x_dropped_.assign(x, x + m * k);
    if (!mask_.empty()) {
      for (int64_t i = 0; i < m * k; ++i) x_dropped_[i] *= mask_[i];
    }
    xin = x_dropped_.data();
  }
  ConstMapF xd(xin, m, k);
  ConstMapF a(a_.data(), r_, k);
  ConstMapF b(b_.data(), out_features_, r_);
  // H = Xd · Aᵀ [m, r]: into the training cache, or a per-thread workspace for inference (no
  // allocation once warm).
  ThreadScratch<float, struct LoRAHTag> h_scratch;
  float* h_data;
  if (training) {
    h_.resize(static_cast<size_t>(m * r_));
    h_data = h_.data();
  } else {
    h_data = h_scratch.Resize(static_cast<size_t>(m * r_));
  }
  MapF h(h_data, m, r_);
  h.noalias() = xd * a.transpose();
  // ΔY = H · Bᵀ into a workspace, then y += scaling · ΔY (Eigen's scaled-product form
  // `y += s * (H * Bᵀ)` copies an operand to the heap on its GEMV path).
  ThreadScratch<float, struct LoRADeltaTag> delta_scratch;
  MapF delta(delta_scratch.Resize(static_cast<size_t>(m * out_features_)), m, out_features_);
  delta.noalias() = h * b.transpose();
  MapF(y, m, out_features_) += scaling() * delta;
  cached_m_ = training ? m : 0;  // a Backward must follow a training Forward
}

void LoRALinear::Backward(const float* grad_y, int64_t m, float* grad_x) {
  Require(grad_y != nullptr, Status::kInvalidArgument, "LoRALinear::Backward: grad_y is null");
  Require(cached_m_ > 0, Status::kInvalidState,
          "LoRALinear::Backward: no training Forward to backpropagate through");
  Require(m == cached_m_, Status::kInvalidArgument,
          "LoRALinear::Backward: m = " + std::to_string(m) + " but the last Forward had m = " +
              std::to_string(cached_m_));
  const int64_t k = in_features_, n = out_features_;
  const float s = scaling();
  ConstMapF g(grad_y, m, n);
  ConstMapF h(h_.data(), m, r_);
  ConstMapF xd(x_dropped_.data(), m, k);
  ConstMapF a(a_.data(), r_, k);
  ConstMapF b(b_.data(), n, r_);
  MapF(grad_b_.data(), n, r_).noalias() += s * (g.transpose() * h);  // dL/dB = s Gᵀ H
  const RowMajorF grad_h = s * (g * b);                               // [m, r]
  MapF(grad_a_.data(), r_, k).noalias() += grad_h.transpose() * xd;   // dL/dA = dHᵀ Xd
  if (grad_x != nullptr) {
    RowMajorF gx = grad_h * a;  // [m, k], w.r.t. the dropped input
    if (!mask_.empty()) gx.array() *= ConstMapF(mask_.data(), m, k).array();
    MapF(grad_x, m, k) += gx;
  }
}

void LoRALinear::ZeroGrad() {
  std::fill(grad_a_.begin(), grad_a_.end(), 0.0f);
  std::fill(grad_b_.begin(), grad_b_.end(), 0.0f);
}

std::vector<float> LoRALinear::DeltaWeight() const {
  std::vector<float> d(static_cast<size_t>(out_features_ * in_features_));
  MapF(d.data(), out_features_, in_features_).noalias() =
      scaling() * (ConstMapF(b_.data(), out_features_, r_) *
                   ConstMapF(a_.data(), r_, in_features_));
  return d;
}

std::vector<Parameter> LoRALinear::Parameters(const std::string& prefix) {
  return {Parameter{prefix + "lora_A", a_.data(), grad_a_.data(),
                    static_cast<int64_t>(a_.size())},
          Parameter{prefix + "lora_B", b_.data(), grad_b_.data(),
                    static_cast<int64_t>(b_.size())}};
}

// ---- LoRAQuantLinear ---------------------------------------------------------------------------

LoRAQuantLinear::LoRAQuantLinear(std::unique_ptr<QuantLinear> base) : base_(std::move(base)) {
  Require(base_ != nullptr, Status::kInvalidArgument, "LoRAQuantLinear: base layer is null");
}

void LoRAQuantLinear::RequireNotMerged(const char* what) const {
  Require(!merged_, Status::kInvalidState,
          std::string(what) + ": the adapter is merged into the weight; call Unmerge() first");
}

void LoRAQuantLinear::AddAdapter(const std::string& name, const LoRAConfig& config) {
  RequireNotMerged("AddAdapter");
  Require(!name.empty(), Status::kInvalidArgument, "AddAdapter: adapter name must be non-empty");
  Require(adapters_.count(name) == 0, Status::kInvalidArgument,
          "AddAdapter: adapter '" + name + "' already exists");
  adapters_.emplace(name, LoRALinear(in_features(), out_features(), config));
  if (adapters_.size() == 1) active_ = name;
}

void LoRAQuantLinear::SetActiveAdapter(const std::string& name) {
  RequireNotMerged("SetActiveAdapter");
  Require(name.empty() || adapters_.count(name) != 0, Status::kInvalidArgument,
          "SetActiveAdapter: unknown adapter '" + name + "'");
  active_ = name;
  cached_m_ = 0;
}

void LoRAQuantLinear::DeleteAdapter(const std::string& name) {
  RequireNotMerged("DeleteAdapter");
  Require(adapters_.erase(name) == 1, Status::kInvalidArgument,
          "DeleteAdapter: unknown adapter '" + name + "'");
  if (active_ == name) active_.clear();
}

std::vector<std::string> LoRAQuantLinear::adapter_names() const {
  std::vector<std::string> names;
  for (const auto& kv : adapters_) names.push_back(kv.first);
  return names;
}

LoRALinear& LoRAQuantLinear::adapter(const std::string& name) {
  auto it = adapters_.find(name);
  Require(it != adapters_.end(), Status::kInvalidArgument, "unknown adapter '" + name + "'");
  return it->second;
}

const LoRALinear& LoRAQuantLinear::adapter(const std::string& name) const {
  return const_cast<LoRAQuantLinear*>(this)->adapter(name);
}

LoRALinear* LoRAQuantLinear::Active() {
  return active_.empty() ? nullptr : &adapters_.at(active_);
}

void LoRAQuantLinear::Forward(const ConstTensorView& x, const TensorView& y, Context* ctx) {
  const int64_t k = in_features(), n = out_features();
  const int64_t nx = ValidateView(x, "LoRA Forward x");
  Require(x.shape.back() == k, Status::kInvalidArgument, [&] {
    return "LoRA Forward: x " + ShapeToString(x.shape) + " last dim must be " +
           std::to_string(k);
  });
  const int64_t m = nx / k;
  Require(ValidateView(y, "LoRA Forward y") == m * n && y.shape.back() == n,
          Status::kInvalidArgument, [&] {
            return "LoRA Forward: y " + ShapeToString(y.shape) + " must hold [" +
                   std::to_string(m) + ", " + std::to_string(n) + "]";
          });
  // Per-thread f32 staging and views, shared by all layers on this thread (not per layer: a
  // model's worth of per-layer [M, in] + [M, out] buffers would be large). Their Shape vectors
  // keep their capacity, so a warm forward allocates nothing.
  ThreadScratch<float, struct LoRAXTag> x_scratch;
  ThreadScratch<float, struct LoRAYTag> y_scratch;
  float* xf = x_scratch.Resize(static_cast<size_t>(nx));
  float* yf = y_scratch.Resize(static_cast<size_t>(m * n));
  ToF32(x.data, x.dtype, nx, xf);
  const internal::ThreadMatmulViews<struct LoRAViewTag> views(xf, yf, DType::kF32, {m, k},
                                                              {m, n});
  if (merged_ && merge_mode_ == MergeMode::kDense) {
    Matmul(*merged_dense_, views.x(), views.y(),
           base_->has_bias() ? base_->bias().data() : nullptr, ctx);
  } else {
    base_->Forward(views.x(), views.y(), ctx);
  }
  LoRALinear* active = merged_ ? nullptr : Active();
  if (active != nullptr) active->Forward(xf, m, yf, training_);
  cached_m_ = (training_ && active != nullptr) ? m : 0;
  FromF32(yf, m * n, y.data, y.dtype);
}

void LoRAQuantLinear::Backward(const float* grad_y, int64_t m, float* grad_x) {
  RequireNotMerged("Backward");
  LoRALinear* active = Active();
  Require(active != nullptr, Status::kInvalidState, "Backward: no active adapter");
  Require(cached_m_ > 0, Status::kInvalidState,
          "Backward: no training Forward with the active adapter to backpropagate through");
  Require(m == cached_m_, Status::kInvalidArgument,
          "Backward: m = " + std::to_string(m) + " but the last Forward had m = " +
              std::to_string(cached_m_));
  Require(grad_y != nullptr, Status::kInvalidArgument, "Backward: grad_y is null");
  if (grad_x != nullptr) {
    // Frozen base: dL/dx = G · W (W dequantized, cached on first use; bnb does the same with
    // CB * SCB / 127 for LLM.int8 and dequantize_4bit for 4-bit).
    if (dequantized_base_.empty()) dequantized_base_ = base_->DequantizedWeight();
    MapF(grad_x, m, in_features()).noalias() =
        ConstMapF(grad_y, m, out_features()) *
        ConstMapF(dequantized_base_.data(), out_features(), in_features());
  }
  active->Backward(grad_y, m, grad_x);
}

void LoRAQuantLinear::ZeroGrad() {
  for (auto& kv : adapters_) kv.second.ZeroGrad();
}

ErrorStats LoRAQuantLinear::Merge(MergeMode mode) {
  RequireNotMerged("Merge");
  LoRALinear* active = Active();
  Require(active != nullptr, Status::kInvalidState, "Merge: no active adapter to merge");
  std::vector<float> exact = base_->DequantizedWeight();
  const std::vector<float> delta = active->DeltaWeight();
  for (size_t i = 0; i < exact.size(); ++i) exact[i] += delta[i];
  const Shape shape{out_features(), in_features()};
  std::vector<float> effective;
  if (mode == MergeMode::kDense) {
    QuantizedTensor dense = Quantize(Format::kF32, ConstTensorView{exact.data(), DType::kF32, shape});
    effective = DequantizeToF32(dense);
    merged_dense_ = Pack(dense);
  } else {
    unmerged_weight_ = base_->weight();
    base_->SetWeight(exact.data(), nullptr);
    effective = base_->DequantizedWeight();
  }
  merged_ = true;
  merge_mode_ = mode;
  cached_m_ = 0;
  dequantized_base_.clear();
  return EstimateError(ConstTensorView{exact.data(), DType::kF32, shape},
                       ConstTensorView{effective.data(), DType::kF32, shape});
}

void LoRAQuantLinear::Unmerge() {
  Require(merged_, Status::kInvalidState, "Unmerge: nothing is merged");
  if (merge_mode_ == MergeMode::kRequantize) {
    base_->RestoreWeight(std::move(*unmerged_weight_));
    unmerged_weight_.reset();
  } else {
    merged_dense_.reset();
  }
  merged_ = false;
  dequantized_base_.clear();
}

std::vector<Parameter> LoRAQuantLinear::TrainableParameters() {
  LoRALinear* active = Active();
  if (active == nullptr) return {};
  return active->Parameters(active_ + ".");
}

int64_t LoRAQuantLinear::num_trainable_parameters() const {
  return active_.empty() ? 0 : adapters_.at(active_).num_parameters();
}

int64_t LoRAQuantLinear::num_frozen_parameters() const {
  int64_t n = in_features() * out_features() + static_cast<int64_t>(base_->bias().size());
  for (const auto& kv : adapters_) {
    if (kv.first != active_) n += kv.second.num_parameters();
  }
  return n;
}

std::string LoRAQuantLinear::Summary() const {
  const int64_t trainable = num_trainable_parameters();
  const int64_t total = trainable + num_frozen_parameters();
  char line[160];
  std::string s = base_->Describe() + (merged_ ? " [merged]" : "") + "\n";
  for (const auto& kv : adapters_) {
    const LoRALinear& a = kv.second;
    std::snprintf(line, sizeof(line), "  %s adapter '%s': r=%lld alpha=%g dropout=%g, %lld params\n",
                  kv.first == active_ ? "*" : " ", kv.first.c_str(),
                  static_cast<long long>(a.r()), a.alpha(), a.dropout(),
                  static_cast<long long>(a.num_parameters()));
    s += line;
  }
  std::snprintf(line, sizeof(line), "  trainable %lld / total %lld parameters (%.3f%%)\n",
                static_cast<long long>(trainable), static_cast<long long>(total),
                total > 0 ? 100.0 * static_cast<double>(trainable) / static_cast<double>(total)
                          : 0.0);
  return s + line;
}

}  // namespace lowbit::nn
