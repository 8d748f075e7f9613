// lowbit/calibrate/awq.h — AWQ (Lin et al., 2023): activation-aware int4 weight quantization.
//
// Input channels that carry large activations matter more, so before round-to-nearest int4 the
// weight columns are multiplied by a per-input-channel scale s and the activations divided by it:
//   y = x Wᵀ = (x ⊘ s) (W · diag(s))ᵀ ≈ (x ⊘ s) Q(W · diag(s))ᵀ.
// s_c = mean_t |x_tc|^α (normalised so that sqrt(max s · min s) = 1), with α picked from a grid
// on [0, 1) to minimise the output error on calibration activations. Then (AWQ's auto-clip) each
// group of each scaled row may be clipped to shrink·absmax before rounding, shrink chosen from a
// grid to minimise that group's share of the output error. α = 0 without clipping is plain RTN,
// and a clipped result is kept only when it lowers the total error, so on the calibration data
// AWQ's error is never above RTN's.
//
// The returned QuantizedTensor is plain lowbit int4 (it stores Q(W · diag(s))); the caller must
// divide the layer's input by `input_scales` — typically by folding 1/s into the weight of the
// preceding RMSNorm/LayerNorm, or with an explicit per-channel multiply where nothing precedes.
// Layer level only: model-level orchestration (which layers share an input) is the caller's.
#ifndef LOWBIT_CALIBRATE_AWQ_H_
#define LOWBIT_CALIBRATE_AWQ_H_

#include <cstdint>
#include <vector>

#include "lowbit/dtype.h"
#include "lowbit/format.h"
#include "lowbit/quant_state.h"

namespace lowbit::calibrate {

struct AwqOptions {
  // kInt4 (symmetric) or kInt4Asym; groups along each row as in QuantizeInt4.
  Format format = Format::kInt4;
  int64_t group_size = 128;
  // α is searched over {0, 1/grid, ..., (grid-1)/grid} (AWQ's n_grid = 20). >= 1.
  int grid = 20;
  // Clip search: shrink = 1 - i/clip_grid for i in [0, max_shrink·clip_grid) (AWQ: 20, 0.5).
  // clip_grid = 0 disables clipping (scale search only).
  int clip_grid = 20;
  double max_shrink = 0.5;
};

struct AwqResult {
  // One quantized tensor per input weight, same order, each [N_i, K], plain int4/int4_asym.
  std::vector<QuantizedTensor> weights;
  // s: K float32 per-input-channel scales. The layer computes Matmul(weights[i], x ⊘ s).
  std::vector<float> input_scales;
  float alpha = 0;          // the chosen exponent
  bool clipped = false;     // whether the clip search lowered the error (and was kept)
  double error = 0;         // Σ_i ||X W_iᵀ − (X ⊘ s) Q_iᵀ||²_F / T of the returned weights
  double rtn_error = 0;     // the same at α = 0 without clipping (plain round-to-nearest)
};

// Quantizes the linear layers `weights` (each [N_i, K], f32/f16/bf16) that all read the same
// input, whose calibration activations are x: [T, K] (f32/f16/bf16). One scale vector is shared
// by all of them (so it can be folded into one preceding norm). Throws Error on empty input,
// mismatched K, a non-int4 format, a bad group size, grid < 1, clip_grid < 0, max_shrink
// outside [0, 1) or non-finite values.
// Thread-safe; runs on the calling thread.
AwqResult AwqQuantize(const std::vector<ConstTensorView>& weights, const ConstTensorView& x,
                      const AwqOptions& options = {});

}  // namespace lowbit::calibrate

#endif  // LOWBIT_CALIBRATE_AWQ_H_
