// lowbit/nn/linear.h — quantized linear layers: Linear8bit (LLM.int8), Linear4bit, LinearFP8.
//
// Every layer computes y = x · Wᵀ + b with W [out_features, in_features] (PyTorch nn.Linear
// layout), x [M, in_features] and y [M, out_features] (or 1-D [in] / [out] for M = 1) in f32, f16
// or bf16. A layer owns its canonical QuantizedTensor (what is saved) and a PackedWeight (what the
// public ops in lowbit/ops.h multiply by); it contains no kernels of its own.
//
// Thread safety: Forward and the const accessors may run concurrently on one layer (each call
// with its own Context); anything that changes weights (SetWeight, QuantizeWeights) may not.
// Memory: Forward allocates nothing once warm. Its staging buffers (f16/bf16 compute dtype,
// LLM.int8 outlier columns) are per-thread workspaces shared by all layers, grown to the largest
// call on that thread (buffers above 16 MiB are not kept), so concurrent forwards never share one.
// Every entry validates its arguments and throws lowbit::Error naming the bad value.
#ifndef LOWBIT_NN_LINEAR_H_
#define LOWBIT_NN_LINEAR_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lowbit/context.h"
#include "lowbit/dtype.h"
#include "lowbit/format.h"
#include "lowbit/ops.h"
#include "lowbit/quant_state.h"

namespace lowbit::nn {

// Common base of the frozen quantized linear layers (and the interface LoRA wraps).
class QuantLinear {
 public:
  virtual ~QuantLinear() = default;
  QuantLinear(const QuantLinear&) = delete;
  QuantLinear& operator=(const QuantLinear&) = delete;

  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return out_features_; }
  bool has_bias() const { return !bias_.empty(); }
  // out_features floats, or empty when the layer has no bias.
  const std::vector<float>& bias() const { return bias_; }
  // The weight in its current storage format (f16 for a Linear8bit still in training mode).
  Format weight_format() const { return weight_.format(); }
  // The canonical quantized weight [out, in] (bytes + statistics).
  const QuantizedTensor& weight() const { return weight_; }

  // y = x · Wᵀ + b. x: [M, in] or [in]; y: [M, out] or [out]; f32/f16/bf16 each.
  // ctx: nullptr = DefaultContext().
  virtual void Forward(const ConstTensorView& x, const TensorView& y,
                       Context* ctx = nullptr) const;

  // Replaces the weight with `w` ([out, in] float32, row-major, out*in values), quantized in
  // this layer's current storage format and options; `bias` (out floats) when non-null.
  virtual void SetWeight(const float* w, const float* bias = nullptr) = 0;
  // The weight this layer multiplies by, dequantized to float32 [out, in].
  std::vector<float> DequantizedWeight() const;
  // Bytes of the stored weight (payload + statistics) plus the float32 bias.
  int64_t StorageBytes() const;
  // One line: "Linear4bit(in=64, out=172, nf4 block 64, bias): 6.2 KiB".
  virtual std::string Describe() const = 0;
  // Puts back a weight previously returned by weight() (e.g. to undo a LoRA merge bit-exactly).
  // Throws unless `q` is valid, [out, in] and in this layer's current storage format.
  void RestoreWeight(QuantizedTensor q);

 protected:
  QuantLinear(int64_t in_features, int64_t out_features, bool bias);
  // Stores `q` as the weight and repacks it for the ops.
  void Install(QuantizedTensor q);
  // Constructor tag: validate only, the caller installs the weight (no random init).
  struct NoInit {};
  void SetBias(const float* bias);
  const PackedWeight& packed() const { return packed_; }
  // Validated f32 copy of a caller's [out, in] weight (throws on null).
  ConstTensorView WeightView(const float* w) const;
  // Seeded constructors: InitLinearUniform weight (and bias when the layer has one), then
  // SetWeight. Call only from a derived constructor body, once the derived options are set.
  void InitUniform(uint64_t seed);

  int64_t in_features_;
  int64_t out_features_;
  std::vector<float> bias_;
  QuantizedTensor weight_;
  PackedWeight packed_;
};

// Deterministic nn.Linear-style initialization: U(-1/sqrt(in), 1/sqrt(in)) for weight [out*in]
// and bias [out] from a seeded generator (std::mt19937_64), used by the layer constructors.
void InitLinearUniform(int64_t in_features, int64_t out_features, uint64_t seed,
                       std::vector<float>* weight, std::vector<float>* bias);

// ---- Linear8bit ------------------------------------------------------------------------------
struct Linear8bitOptions {
  // Keep 16-bit (IEEE f16) weights for training until QuantizeWeights() (bnb has_fp16_weights).
  bool has_fp16_weights = true;
  // LLM.int8 outlier threshold on ACTIVATIONS; 0 = no decomposition. > 0 needs symmetric int8.
  float threshold = 0.0f;
  // Symmetric absmax int8 (LLM.int8 CB/SCB) or asymmetric uint8 with zero point.
  bool symmetric = true;
  // One scale per output row (per channel) or one for the whole tensor.
  bool per_channel = true;
  // Symmetric int8 inference only. true (bitsandbytes semantics): activations are quantized to
  // int8 row-wise as well and multiplied exactly in int32 (LLM.int8; with threshold > 0 the
  // outlier columns stay float). false: weight-only quantization, y = x · dequant(W)ᵀ in float32
  // (more accurate, no outlier handling needed; threshold must then be 0). Asymmetric int8 always
  // uses the weight-only path.
  bool int8_activations = true;
};

// bitsandbytes Linear8bitLt / msbnb Linear8bit. In training mode (has_fp16_weights, before
// QuantizeWeights) the weight is stored as f16 and Forward is a float matmul with those 16-bit
// weights (bnb instead re-quantizes them on every training forward; lowbit never trains the base
// weight, so the 16-bit forward is what a caller fine-tuning it would differentiate).
// After QuantizeWeights() (or when constructed with has_fp16_weights = false) the weight is int8
// and, with symmetric weights and int8_activations (the default), Forward is LLM.int8
// (bnb int8_mixed_scaled_mm, reference §4):
//   cols = columns of x holding any |x| >= threshold (none when threshold == 0)
//   x_in = x with those columns zeroed; row_stats[i] = max_c |x_in[i, c]|
//   CA = round_half_even(x_in * 127 / row_stats)   (Matmul with MatmulOptions::int8_activations)
//   y = f32(CA·CBᵀ) * row_stats[i] * SCB[j] / 127²  +  x[:, cols] · (CB[:, cols] * SCB / 127)ᵀ + b
// CA·CBᵀ is exact in int32; the outlier product is float32 with the dequantized weight columns
// rounded to x's dtype first when x is f16/bf16 (bnb casts them to A.dtype). For M = 1 this is
// bnb's result; for M > 1 bnb's row_stats also count sub-threshold values in outlier columns
// (which it then zeroes), so lowbit's inlier scale is never coarser. Otherwise Forward is the
// float Matmul on the int8 weight (weight-only quantization).
class Linear8bit : public QuantLinear {
 public:
  // Kaiming-uniform initialized from `seed`.
  Linear8bit(int64_t in_features, int64_t out_features, bool bias = true,
             const Linear8bitOptions& options = {}, uint64_t seed = 0);
  // From dense weights: w [out, in] f32 and optional bias [out].
  static std::unique_ptr<Linear8bit> FromLinear(int64_t in_features, int64_t out_features,
                                                const float* w, const float* bias,
                                                const Linear8bitOptions& options = {});

  const Linear8bitOptions& options() const { return options_; }
  // True once the weight is int8 (QuantizeWeights ran or has_fp16_weights was false).
  bool is_quantized() const { return weight_.format() != Format::kF16; }
  // Converts the 16-bit training weight to int8 (per options); a no-op when already int8.
  void QuantizeWeights();

  void Forward(const ConstTensorView& x, const TensorView& y,
               Context* ctx = nullptr) const override;
  void SetWeight(const float* w, const float* bias = nullptr) override;
  std::string Describe() const override;

 private:
  Linear8bit(int64_t in_features, int64_t out_features, bool bias,
             const Linear8bitOptions& options, NoInit);
  Format QuantizedFormat() const;
  // The LLM.int8 path (int8 activations, outlier columns with |x| >= threshold in float).
  void ForwardInt8(const ConstTensorView& x, const TensorView& y, Context* ctx) const;

  Linear8bitOptions options_;
};

// ---- Linear4bit ------------------------------------------------------------------------------
struct Linear4bitOptions {
  Format quant_type = Format::kNF4;  // kNF4, kFP4, kInt4 or kInt4Asym
  // nf4/fp4: flat block size; int4: group size along each row. 0 = the format's default.
  int64_t block_size = 0;
  // Double quantization of the absmax (nf4/fp4 only; bnb compress_statistics).
  bool compress_statistics = false;
  // The dtype the input is rounded to and the product is produced in (bnb compute_dtype);
  // the result is then converted to y's dtype. f32, f16 or bf16.
  DType compute_dtype = DType::kF32;
};

// bitsandbytes Linear4bit: weight quantized at construction, y = Matmul(W4, x in compute dtype).
class Linear4bit : public QuantLinear {
 public:
  Linear4bit(int64_t in_features, int64_t out_features, bool bias = true,
             const Linear4bitOptions& options = {}, uint64_t seed = 0);
  static std::unique_ptr<Linear4bit> FromLinear(int64_t in_features, int64_t out_features,
                                                const float* w, const float* bias,
                                                const Linear4bitOptions& options = {});
  // Wraps an already quantized weight ([out, in], one of the 4-bit formats) as a layer.
  static std::unique_ptr<Linear4bit> FromQuantized(QuantizedTensor w, const float* bias,
                                                   DType compute_dtype = DType::kF32);

  const Linear4bitOptions& options() const { return options_; }
  void Forward(const ConstTensorView& x, const TensorView& y,
               Context* ctx = nullptr) const override;
  void SetWeight(const float* w, const float* bias = nullptr) override;
  std::string Describe() const override;

 private:
  Linear4bit(int64_t in_features, int64_t out_features, bool bias,
             const Linear4bitOptions& options, NoInit);
  Linear4bitOptions options_;
};

// ---- LinearFP8 -------------------------------------------------------------------------------
struct LinearFP8Options {
  Format fp8_format = Format::kFP8E4M3;  // or kFP8E5M2
  bool per_channel = true;               // one float32 scale per output row, else per tensor
};

// FP8 weight (OCP E4M3 by default) with a float32 scale per row: W = fp8(code) * scale.
class LinearFP8 : public QuantLinear {
 public:
  LinearFP8(int64_t in_features, int64_t out_features, bool bias = true,
            const LinearFP8Options& options = {}, uint64_t seed = 0);
  static std::unique_ptr<LinearFP8> FromLinear(int64_t in_features, int64_t out_features,
                                               const float* w, const float* bias,
                                               const LinearFP8Options& options = {});
  const LinearFP8Options& options() const { return options_; }
  void SetWeight(const float* w, const float* bias = nullptr) override;
  std::string Describe() const override;

 private:
  LinearFP8(int64_t in_features, int64_t out_features, bool bias, const LinearFP8Options& options,
            NoInit);
  LinearFP8Options options_;
};

}  // namespace lowbit::nn

#endif  // LOWBIT_NN_LINEAR_H_
