// lowbit/calibrate/gptq.h — GPTQ (Frantar et al., 2022): int4 weight quantization that uses
// calibration activations to propagate each column's rounding error onto the columns not yet
// quantized, minimising the layer's output error ||X Wᵀ − X Qᵀ||² instead of the weight error.
//
// Layer level only: the caller collects the activations that reach one linear layer (for a
// model, layer by layer on the partially quantized model) and gets back a plain lowbit int4
// QuantizedTensor that decodes with the normal codec (Dequantize, Pack, Matmul).
#ifndef LOWBIT_CALIBRATE_GPTQ_H_
#define LOWBIT_CALIBRATE_GPTQ_H_

#include <cstdint>
#include <vector>

#include "lowbit/dtype.h"
#include "lowbit/format.h"
#include "lowbit/quant_state.h"

namespace lowbit::calibrate {

// Accumulates the GPTQ Hessian of one linear layer's input: H = (2 / T) · Σ_t x_t x_tᵀ over all
// T calibration rows seen, a K×K symmetric matrix in float64. Not thread-safe (one per layer).
class HessianAccumulator {
 public:
  // k: input features of the layer (> 0).
  explicit HessianAccumulator(int64_t k);

  // Adds calibration activations x: [T, K] (or [K]) in f32, f16 or bf16. Throws Error on a
  // shape whose last dim is not K or on non-finite values.
  void Add(const ConstTensorView& x);

  int64_t cols() const { return k_; }
  int64_t num_rows() const { return rows_; }
  // The current H, K×K row-major (all zeros before the first Add).
  std::vector<double> Hessian() const;

 private:
  int64_t k_;
  int64_t rows_ = 0;
  std::vector<double> xtx_;  // Σ x xᵀ, K×K row-major
};

struct GptqOptions {
  // kInt4 (symmetric, scale = absmax / 7) or kInt4Asym (scale + zero point from min/max).
  Format format = Format::kInt4;
  // Elements per scale along each row (power of two in [32, 4096], as QuantizeInt4); the last
  // group of a row may be shorter. Groups larger than K mean one group per row.
  int64_t group_size = 128;
  // Dampening added to H's diagonal, as a fraction of mean(diag(H)) (> 0). When H + damp·I
  // still is not positive definite, the dampening is multiplied by 10 (at most 4 times).
  double percdamp = 0.01;
  // Quantize columns in order of decreasing diag(H) ("act-order"). Group scales are then fixed
  // before the error propagation from the original weights of each contiguous group (GPTQ's
  // "static groups"), so the stored groups stay contiguous along the row (no g_idx).
  bool act_order = false;
  // Columns per lazy-batch update (a multiple of group_size is used when groups are smaller);
  // a pure speed parameter: results are the same up to float64 rounding.
  int64_t block_size = 128;
};

// Statistics of one GPTQ run (float64).
struct GptqStats {
  double damp = 0;          // dampening actually added to diag(H)
  double proxy_loss = 0;    // Σ_columns ||w − q||² / [H⁻¹]_cc, GPTQ's objective estimate
  int64_t dead_columns = 0; // columns with H_cc == 0 (inputs always zero); their weights become 0
};

// Quantizes w: [N, K] (f32, f16 or bf16) with GPTQ given the layer's Hessian `hessian`
// (K×K row-major, e.g. HessianAccumulator::Hessian()). Returns an int4/int4_asym tensor of shape
// [N, K], granularity kGroup, block_size = options.group_size, dtype = w.dtype. Throws Error on
// bad shapes, a non-int4 format, bad group size, percdamp <= 0, non-finite inputs or a Hessian
// that stays indefinite after dampening. `stats` (optional) receives run statistics.
// Thread-safe; runs on the calling thread.
QuantizedTensor GptqQuantize(const ConstTensorView& w, const std::vector<double>& hessian,
                             const GptqOptions& options = {}, GptqStats* stats = nullptr);

// Convenience: builds H from calibration activations x: [T, K] and quantizes.
QuantizedTensor GptqQuantize(const ConstTensorView& w, const ConstTensorView& x,
                             const GptqOptions& options = {}, GptqStats* stats = nullptr);

}  // namespace lowbit::calibrate

#endif  // LOWBIT_CALIBRATE_GPTQ_H_
