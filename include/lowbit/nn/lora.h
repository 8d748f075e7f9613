// lowbit/nn/lora.h — LoRA adapters and frozen quantized linear layers with trainable adapters
// (QLoRA): forward, backward, dropout, merge/unmerge, several named adapters per layer.
//
// Training math is float32 (Eigen), row-major: x [M, in], y [M, out], A [r, in], B [out, r].
//   y = base(x) + scaling · (dropout(x) · Aᵀ) · Bᵀ,  scaling = alpha / r.
// Thread safety: a layer is used by one thread at a time (Forward caches activations for
// Backward). Forward allocates nothing once warm: the f32 staging buffers are per-thread
// workspaces shared by all layers (not per layer), the training caches are members reused across
// calls. Every entry validates its arguments and throws lowbit::Error naming the bad value.
#ifndef LOWBIT_NN_LORA_H_
#define LOWBIT_NN_LORA_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "lowbit/nn/linear.h"
#include "lowbit/quantize.h"

namespace lowbit::nn {

// A trainable float32 tensor for optimizers: `size` values at `value`, gradient at `grad`.
// Views into the owning layer; valid while it lives and its adapters are not added/deleted.
struct Parameter {
  std::string name;
  float* value = nullptr;
  float* grad = nullptr;
  int64_t size = 0;
};

struct LoRAConfig {
  int64_t r = 8;          // rank, > 0
  float alpha = 16.0f;    // scaling = alpha / r
  float dropout = 0.0f;   // probability in [0, 1) of zeroing an input element (training only)
  uint64_t seed = 0;      // A's initialization and the dropout generator
};

// The LoRA adapter itself: ΔY = scaling · dropout(X) · Aᵀ · Bᵀ. A is Kaiming-uniform
// (PEFT: kaiming_uniform_(a=sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in))), B is zero, so a fresh
// adapter changes nothing.
class LoRALinear {
 public:
  LoRALinear(int64_t in_features, int64_t out_features, int64_t r, float alpha,
             float dropout = 0.0f, uint64_t seed = 0);
  LoRALinear(int64_t in_features, int64_t out_features, const LoRAConfig& config);

  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return out_features_; }
  int64_t r() const { return r_; }
  float alpha() const { return alpha_; }
  float scaling() const { return alpha_ / static_cast<float>(r_); }
  float dropout() const { return dropout_; }
  // A [r, in] and B [out, r], row-major; mutable for loading and tests.
  std::vector<float>& a() { return a_; }
  std::vector<float>& b() { return b_; }
  const std::vector<float>& a() const { return a_; }
  const std::vector<float>& b() const { return b_; }
  const std::vector<float>& grad_a() const { return grad_a_; }
  const std::vector<float>& grad_b() const { return grad_b_; }
  int64_t num_parameters() const { return r_ * (in_features_ + out_features_); }

  // Adds ΔY to y. x: [m, in] f32; y: [m, out] f32. training: applies dropout and caches what
  // Backward needs; otherwise no dropout and nothing is cached.
  void Forward(const float* x, int64_t m, float* y, bool training);
  // Backpropagates grad_y [m, out] of the last training Forward (same m): accumulates into
  // grad_a/grad_b and, if grad_x is non-null, ADDS this path's dL/dx into grad_x [m, in].
  void Backward(const float* grad_y, int64_t m, float* grad_x);
  void ZeroGrad();
  // Restarts the dropout generator (identical masks for identical call sequences).
  void ReseedDropout(uint64_t seed) { dropout_rng_.seed(seed); }
  // Dense ΔW = scaling · B · A, [out, in].
  std::vector<float> DeltaWeight() const;
  // {prefix + "lora_A", prefix + "lora_B"}.
  std::vector<Parameter> Parameters(const std::string& prefix);

 private:
  int64_t in_features_, out_features_, r_;
  float alpha_, dropout_;
  std::vector<float> a_, b_, grad_a_, grad_b_;
  std::mt19937_64 dropout_rng_;
  // Training caches of the last Forward: dropped input [m, in] and H = Xd · Aᵀ [m, r].
  int64_t cached_m_ = 0;
  std::vector<float> x_dropped_, mask_, h_;
};

// How Merge folds ΔW into the base.
enum class MergeMode {
  // W' = Quantize(Dequantize(W) + ΔW) in the base's format: no extra memory while serving, but
  // the merged weight carries a fresh quantization error (Merge returns it).
  kRequantize,
  // W' = Dequantize(W) + ΔW kept as a dense float32 weight: exact, 32 bits per weight.
  kDense,
};

// A frozen quantized base layer plus named LoRA adapters; one adapter (or none) is active.
// The base weight is never modified by training; only the active adapter's A and B are.
class LoRAQuantLinear {
 public:
  explicit LoRAQuantLinear(std::unique_ptr<QuantLinear> base);
  virtual ~LoRAQuantLinear() = default;

  const QuantLinear& base() const { return *base_; }
  int64_t in_features() const { return base_->in_features(); }
  int64_t out_features() const { return base_->out_features(); }

  // Adds an adapter `name` (non-empty, new) with `config`; the first one added becomes active.
  void AddAdapter(const std::string& name, const LoRAConfig& config);
  // Makes `name` active (throws for an unknown name); "" disables all adapters (base only).
  void SetActiveAdapter(const std::string& name);
  void DeleteAdapter(const std::string& name);
  const std::string& active_adapter() const { return active_; }
  std::vector<std::string> adapter_names() const;
  LoRALinear& adapter(const std::string& name);
  const LoRALinear& adapter(const std::string& name) const;

  // Training mode enables dropout and caches activations for Backward (default: true).
  void SetTraining(bool training) { training_ = training; }
  bool training() const { return training_; }

  // y = base(x) + active adapter's ΔY. x: [M, in] or [in]; y: [M, out] or [out]; f32/f16/bf16.
  void Forward(const ConstTensorView& x, const TensorView& y, Context* ctx = nullptr);
  // grad_y: [m, out] f32 for the last training Forward. Accumulates the active adapter's
  // gradients; writes dL/dx [m, in] into grad_x when non-null (through the frozen dequantized
  // base, plus the adapter path). Throws while merged or when no adapter is active.
  void Backward(const float* grad_y, int64_t m, float* grad_x);
  void ZeroGrad();

  // Folds the active adapter into the weight (see MergeMode); returns the error of the merged
  // effective weight against Dequantize(W) + ΔW (exact up to float rounding for kDense).
  // While merged, Forward uses the merged weight, and Backward/adapter changes throw.
  ErrorStats Merge(MergeMode mode);
  // Undoes Merge: restores the original base weight bit-exactly (its bytes are kept while
  // merged) and re-enables the adapter path.
  void Unmerge();
  bool merged() const { return merged_; }

  // The active adapter's parameters (empty when none is active).
  std::vector<Parameter> TrainableParameters();
  int64_t num_trainable_parameters() const;
  // Base weight elements + bias + inactive adapters' parameters.
  int64_t num_frozen_parameters() const;
  // Multi-line description: base layer, adapters (rank, alpha, dropout), parameter counts.
  std::string Summary() const;

 private:
  LoRALinear* Active();
  void RequireNotMerged(const char* what) const;

  std::unique_ptr<QuantLinear> base_;
  std::map<std::string, LoRALinear> adapters_;
  std::string active_;
  bool training_ = true;
  bool merged_ = false;
  MergeMode merge_mode_ = MergeMode::kDense;
  std::optional<QuantizedTensor> unmerged_weight_;  // the original base weight while merged
  std::optional<PackedWeight> merged_dense_;        // kDense: W + ΔW in float32
  std::vector<float> dequantized_base_;             // lazily cached for Backward
  int64_t cached_m_ = 0;  // rows of the last training Forward with an active adapter
};

// Typed spelling: Linear4bitWithLoRA etc. keep access to the concrete base type.
template <class Base>
class WithLoRA : public LoRAQuantLinear {
 public:
  // Wraps `base` and adds adapter `adapter_name` with `config` (active).
  WithLoRA(std::unique_ptr<Base> base, const LoRAConfig& config,
           const std::string& adapter_name = "default")
      : LoRAQuantLinear(std::move(base)) {
    AddAdapter(adapter_name, config);
  }
  const Base& typed_base() const { return static_cast<const Base&>(base()); }
};

using Linear4bitWithLoRA = WithLoRA<Linear4bit>;
using Linear8bitWithLoRA = WithLoRA<Linear8bit>;
using LinearFP8WithLoRA = WithLoRA<LinearFP8>;

}  // namespace lowbit::nn

#endif  // LOWBIT_NN_LORA_H_
