// lowbit/ops.h — matrix ops on quantized weights: y = x · Wᵀ (+ bias), packing for a backend.
//
// Weights W are 2-D [N, K] (out_features, in_features: PyTorch nn.Linear layout) in any Format.
// Activations x are [M, K] (or [K] for M = 1) in f32, f16 or bf16; y is [M, N] in f32, f16 or
// bf16. Accumulation is float32. Ops validate everything and throw lowbit::Error on bad input;
// they allocate nothing on the hot path after Pack. Thread safety: see Context.
#ifndef LOWBIT_OPS_H_
#define LOWBIT_OPS_H_

#include <cstdint>
#include <memory>
#include <string>

#include "lowbit/context.h"
#include "lowbit/dtype.h"
#include "lowbit/quant_state.h"

namespace lowbit {

// A weight repacked once into a backend's execution layout (DESIGN §4). Remembers the backend,
// its layout id and LOWBIT_FORMAT_VERSION, and is refused by anything else. Move-only.
class PackedWeight {
 public:
  PackedWeight();
  ~PackedWeight();
  PackedWeight(PackedWeight&&) noexcept;
  PackedWeight& operator=(PackedWeight&&) noexcept;

  Format format() const;
  int64_t rows() const;          // N
  int64_t cols() const;          // K
  const char* backend() const;   // "cpu", ...
  int64_t packed_bytes() const;  // bytes of the execution layout

  struct Impl;
  Impl* impl() const { return impl_.get(); }
  explicit PackedWeight(std::unique_ptr<Impl> impl);

 private:
  std::unique_ptr<Impl> impl_;
};

// Numerics options of a matmul. The default is the float path: activations are used as given
// (converted exactly to float32), accumulation in float32.
struct MatmulOptions {
  // int8 and int4 (symmetric) weights only: quantize each activation row to int8 with its
  // absmax (code = clamp(round_half_even(x * min(f32(127 / absmax), FLT_MAX)), -127, 127)),
  // accumulate exact integer dot products per weight group (int4) or row (int8), and scale
  // them in a fixed double-precision epilogue: results are identical on every ISA and thread
  // count. Adds the activation rounding error (at most absmax / 254 per element; measured in
  // docs/kernels.md). A row holding Inf or NaN yields NaN outputs. Other formats reject it
  // with Error(kUnsupportedFormat).
  bool int8_activations = false;
  // Float activations, any packed format: permits bfloat16 compute where it is faster. On CPUs
  // with AMX-BF16 (Sapphire Rapids and later) and M >= 16, activations and dequantized weights
  // are rounded to bfloat16 (round to nearest even) and their products summed in float32 by
  // AMX tiles: each product carries up to ~2^-8 relative error instead of float32 rounding
  // (docs/kernels.md §4). Elsewhere, and for M < 16, the float32 path runs as without it, so
  // results depend on the CPU. Cannot be combined with int8_activations.
  bool bf16_compute = false;
};

// Repacks `w` (2-D, canonical) for the named backend ("" or "cpu" = CPU; "cuda" when built in and a GPU is present).
PackedWeight Pack(const QuantizedTensor& w, const std::string& backend = "");
// Restores the canonical QuantizedTensor (bit-identical to what was packed).
QuantizedTensor Unpack(const PackedWeight& w);

// y = x · Wᵀ + bias. x: [M, K] or [K]; y: [M, N] or [N]; bias: nullptr or N floats.
// ctx: nullptr = DefaultContext().
void Matmul(const PackedWeight& w, const ConstTensorView& x, const TensorView& y,
            const float* bias = nullptr, Context* ctx = nullptr);
// Convenience for a canonical weight: packs on every call (use PackedWeight on hot paths).
void Matmul(const QuantizedTensor& w, const ConstTensorView& x, const TensorView& y,
            const float* bias = nullptr, Context* ctx = nullptr);
// M == 1 and M >= 1 spellings of Matmul (identical semantics; Gemv checks M == 1).
void Gemv(const PackedWeight& w, const ConstTensorView& x, const TensorView& y,
          const float* bias = nullptr, Context* ctx = nullptr);
void Gemm(const PackedWeight& w, const ConstTensorView& x, const TensorView& y,
          const float* bias = nullptr, Context* ctx = nullptr);
// Matmul with explicit numerics options (see MatmulOptions).
void Matmul(const PackedWeight& w, const ConstTensorView& x, const TensorView& y,
            const MatmulOptions& options, const float* bias = nullptr, Context* ctx = nullptr);

}  // namespace lowbit

#endif  // LOWBIT_OPS_H_
