// A small Llama-2 forward pass on lowbit: every linear layer runs through lowbit::Matmul with a
// PackedWeight in any format; embeddings and RMSNorm weights stay float32.
//
// Loads llama2.c "legacy v0" checkpoints (stories260K.bin). KV cache, RoPE, grouped-query
// attention, tied classifier. A window of tokens runs as one batch (Matmul with M = tokens).
#ifndef LOWBIT_EXAMPLES_LLAMA_MODEL_H_
#define LOWBIT_EXAMPLES_LLAMA_MODEL_H_

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "lowbit/ops.h"
#include "lowbit/quant_state.h"

namespace lowbit::llama {

struct Config {
  int32_t dim = 0;         // model width
  int32_t hidden_dim = 0;  // feed-forward width
  int32_t n_layers = 0;
  int32_t n_heads = 0;
  int32_t n_kv_heads = 0;
  int32_t vocab_size = 0;
  int32_t seq_len = 0;     // longest context (KV cache length)
  int32_t head_size() const { return dim / n_heads; }
  int32_t kv_dim() const { return head_size() * n_kv_heads; }
};

// The seven linear layers of a block, in the order the forward pass runs them.
enum class Linear : int { kWq = 0, kWk, kWv, kWo, kW1, kW3, kW2 };
inline constexpr int kNumLinears = 7;
inline constexpr std::array<Linear, kNumLinears> kAllLinears = {
    Linear::kWq, Linear::kWk, Linear::kWv, Linear::kWo, Linear::kW1, Linear::kW3, Linear::kW2};
const char* LinearName(Linear l);  // "wq", ...
// [out, in] of a linear layer (PyTorch nn.Linear layout: y = x Wᵀ).
Shape LinearShape(const Config& c, Linear l);

// The float32 checkpoint as stored.
struct FloatWeights {
  struct Layer {
    std::vector<float> rms_att, rms_ffn;                    // [dim]
    std::array<std::vector<float>, kNumLinears> linear;     // row-major LinearShape
  };
  Config config;
  std::vector<float> token_embedding;  // [vocab, dim]; also the (tied) classifier
  std::vector<Layer> layers;
  std::vector<float> rms_final;        // [dim]

  ConstTensorView LinearView(int layer, Linear l) const;
};

// Reads a llama2.c legacy checkpoint (7 int32 header, then float32 tensors; see the model's
// README). Only tied classifiers (vocab_size > 0) are accepted. Throws lowbit::Error (kIoError,
// kCorruptData naming the problem).
FloatWeights LoadLlama2c(const std::string& path);

// A runnable model: float32 embeddings and norms, every linear a PackedWeight.
struct Model {
  struct Layer {
    std::vector<float> rms_att, rms_ffn;
    std::array<PackedWeight, kNumLinears> linear;
    std::array<int64_t, kNumLinears> linear_bytes{};  // canonical bytes (payload + statistics)
    // Optional per-input-channel activation scales (AWQ where no norm precedes): when non-empty,
    // the layer computes Matmul(linear, x ⊘ input_scale).
    std::array<std::vector<float>, kNumLinears> input_scale;
  };
  Config config;
  std::vector<float> token_embedding;  // [vocab, dim]
  PackedWeight classifier;             // the embedding as an f32 PackedWeight (tied)
  std::vector<Layer> layers;
  std::vector<float> rms_final;

  // Quantizes (packs) `q` into layer `layer`'s linear `l` and records its size.
  void SetLinear(int layer, Linear l, const QuantizedTensor& q);
  // Bytes of all linear weights (payload + statistics + input scales).
  int64_t LinearWeightBytes() const;
  // Number of elements of all linear weights.
  int64_t LinearWeightCount() const;
};

// Builds a Model whose linears are quantize(layer, l, weight view) (e.g. lowbit::Quantize with
// one format for all). Embeddings, norms and the classifier are copied as float32.
using LinearQuantizer =
    std::function<QuantizedTensor(int layer, Linear l, const ConstTensorView& weight)>;
Model BuildModel(const FloatWeights& w, const LinearQuantizer& quantize);

// Called with the input x: [rows, cols] of every linear before it runs (calibration).
using LinearObserver =
    std::function<void(int layer, Linear l, const float* x, int64_t rows, int64_t cols)>;

// Runs a model over a growing sequence: owns the KV cache and all scratch buffers (so repeated
// calls allocate nothing new once the largest batch was seen). Not thread-safe; the Model must
// outlive the session. Linear layers use `ctx` (nullptr = lowbit::DefaultContext()).
class Session {
 public:
  explicit Session(const Model& model, Context* ctx = nullptr);

  // Forgets the sequence (empty KV cache).
  void Reset() { pos_ = 0; }
  int32_t position() const { return pos_; }
  const Model& model() const { return model_; }

  // Appends tokens[0..n) at positions position()..position()+n-1 and, when `logits` is not
  // null, writes the next-token logits after each: [n, vocab]. Throws Error when the sequence
  // would exceed seq_len or a token id is out of range.
  // num_layers >= 0 runs only the first num_layers blocks (calibration: nothing after the
  // observed layer is needed); then `logits` must be null and the session must be Reset()
  // before it is used again, because the later layers' KV cache was not written.
  void Forward(const int32_t* tokens, int32_t n, float* logits,
               const LinearObserver* observer = nullptr, int32_t num_layers = -1);

 private:
  void RunLinear(int layer, Linear l, const float* x, int32_t n, float* y,
                 const LinearObserver* observer);
  void Attention(int layer, int32_t n);

  const Model& model_;
  Context* ctx_;
  int32_t pos_ = 0;
  std::vector<float> key_cache_, value_cache_;  // [layers, seq_len, kv_dim]
  std::vector<float> x_, h_, q_, k_, v_, att_, o_, gate_, up_, scaled_, scores_;
  std::vector<float> rope_cos_, rope_sin_;      // [seq_len, head_size / 2]
};

}  // namespace lowbit::llama

#endif  // LOWBIT_EXAMPLES_LLAMA_MODEL_H_
