// lowbit/nn/qat.h — quantization-aware training: fake quantization of every format with a
// straight-through (STE) or clipped-STE backward, LSQ learned step sizes for int4/int8 that
// export bit-exactly to lowbit tensors, and a QAT linear layer with float master weights.
//
// Conventions (as the rest of lowbit::nn): tensors are caller-owned row-major float32 buffers,
// there is no autograd graph (every backward is an explicit call), functional entries overwrite
// their outputs, stateful objects ACCUMULATE parameter gradients until ZeroGrad().
//
// The backward rules (docs/layers.md "QAT" has the derivation and the measured results):
//
// * STE (SteMode::kIdentity): dL/dx = dL/dy for every element of every format.
// * Clipped STE (SteMode::kClipped): dL/dx = dL/dy where x lies inside the representable range
//   of its statistic, 0 outside. The straight-through estimator replaces the ROUNDING by the
//   identity and nothing else: the saturation that follows it is differentiated exactly (its
//   derivative is 0). Per format family, with s / a / z the element's statistic:
//     f32                      always inside (no rounding, no saturation)
//     f16, bf16                inside unless a finite x overflows to ±Inf
//     int4, int8, int4_asym,   inside iff the quantizer's rounded code BEFORE its clamp is a valid
//     int8_asym                code: Qn ≤ rint(u) ≤ Qp with u the quantizer's own code-space value
//                              (int4: u = x/s, codes [-7, 7]; int8: u = x·f32(127/a), codes
//                              [-127, 127]; asym: code rint(x/s) + z in [0, 2^bits - 1]); i.e.
//                              x ∈ ((Qn - ½)·s, (Qp + ½)·s) with rint's round-half-even at the
//                              ends.
//     fp8_e4m3, fp8_e5m2       inside iff |x/s| < max + ½·ulp(max) (464 and 61440): below that
//                              the conversion rounds, above it saturates.
//     mxfp4, nvfp4             the same rule for E2M1 elements: |x/s| < 6 + ½·ulp(6) = 7, s the
//                              element scale f32(scale · tensor_scale).
//     iq4_nl                   inside iff -138.5 < x/d < 125: half a grid step beyond its
//                              extreme values -127 and 113.
//     nf4, fp4, blockwise8     inside iff min(codebook)·a ≤ x ≤ max(codebook)·a (float32 products,
//                              as the dequantizer forms them): a codebook has no grid step beyond
//                              its last entry, so its range ends at the extreme entries.
//   Half a step beyond the extreme code (not the extreme code itself, as in LSQ's paper) is
//   chosen for the grid formats because it is exactly where lowbit's quantizer starts to clamp,
//   and because it makes this statement true in float32, not only in exact arithmetic:
//   when the statistic is computed from the same block (absmax for int4/int8/fp8/nf4/fp4, as
//   Quantize does) NOTHING is outside, so the clipped STE equals the STE. It differs only where
//   the statistic cannot cover the block: mxfp4 (its power-of-two scale leaves |x/s| up to 8),
//   blockwise8 (the dynamic map's lowest entry is
//   -0.99297, so an element equal to -absmax is outside), double-quantized absmax (rounded
//   statistics can fall below the block's absmax), asymmetric formats (the rounded zero point can
//   push an extreme element half a step past the grid), and fixed or learned statistics.
// * LSQ (Esser et al., "Learned Step Size Quantization", ICLR 2020): int4 (per group, symmetric)
//   and int8 (per row or tensor, symmetric) with one learnable step s per statistic.
//   Forward: q = clamp(rint(u), Qn, Qp), v̂ = q·s, with Qp = 7 / 127, Qn = -Qp and u ≈ v/s.
//   Backward, with the same "inside" rule as the clipped STE (Qn ≤ rint(u) ≤ Qp):
//     dL/dv = dL/dv̂ inside, 0 outside;
//     dL/ds = Σ_elements dL/dv̂ · (rint(u) - u inside, q = Qn or Qp outside) · g,
//     g = 1 / sqrt(N · Qp), N = elements sharing the step (1 with scale_gradient = false).
//   The arithmetic is lowbit's own codec with s in place of the data-derived statistic, so a
//   trained quantizer exports (LsqQuantizer::Export) to a QuantizedTensor whose Dequantize equals
//   the LSQ forward bit for bit: int4 stores s as the group scale, u = v/s (rint = nearbyint,
//   round half to even, as RoundClamp), v̂ = q·s; int8 stores the absmax a = f32(127·s),
//   u = v·f32(127/a), v̂ = f32(q·a)·f32(1/127), exactly as QuantizeInt8/DequantizeInt8.
//   Where the paper clips v/s to [Qn, Qp] before rounding, lowbit rounds then clamps; the values
//   are identical and the gradients differ only for Qp < |u| < Qp + ½ (paper: dv = 0, ds = ±Qp;
//   here: dv = dv̂, ds = rint(u) - u).
#ifndef LOWBIT_NN_QAT_H_
#define LOWBIT_NN_QAT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "lowbit/dtype.h"
#include "lowbit/format.h"
#include "lowbit/nn/lora.h"
#include "lowbit/quant_state.h"
#include "lowbit/quantize.h"

namespace lowbit::nn {

// ---- Fake quantization (every format of the runtime table) -------------------------------------

// Backward rule of FakeQuantize (see the file comment).
enum class SteMode : uint8_t {
  kIdentity = 0,  // straight-through: the gradient passes unchanged
  kClipped = 1,   // zero outside the representable range of the element's statistic
};

// out = Dequantize(Quantize(format, x, options)) as float32, bit for bit, for every format of the
// table (formats appended later included: this calls the public Quantize/Dequantize). x: f32, f16
// or bf16, any shape; out: f32 with NumElements(x.shape) elements (may not overlap x). Dense
// formats round to f16/bf16 (f32: a copy). Options as Quantize (block/group size, granularity,
// double quantization). Throws what Quantize throws (unknown format, bad options, non-finite
// input for quantized formats) and kInvalidArgument for a bad `out`. Thread-safe; allocates the
// quantized temporary.
void FakeQuantize(Format format, const ConstTensorView& x, const QuantizeOptions& options,
                  const TensorView& out);
std::vector<float> FakeQuantize(Format format, const ConstTensorView& x,
                                const QuantizeOptions& options = {});

// grad_x = dL/dx of FakeQuantize at x given grad_y = dL/dout (both float32, NumElements(x.shape)
// values; grad_x may equal grad_y for an in-place update). kIdentity copies grad_y (any format);
// kClipped quantizes x again with `options` and zeroes the elements InRepresentableRange rejects
// (throws kUnsupportedFormat for a format without a range rule). Thread-safe.
void FakeQuantizeBackward(Format format, const ConstTensorView& x, const QuantizeOptions& options,
                          SteMode mode, const float* grad_y, float* grad_x);

// 1 where x[i] lies inside the representable range of its statistic in `q` (the rule table in the
// file comment), else 0; NumElements(x.shape) bytes. `q` may come from x itself (Quantize) or
// hold fixed statistics from elsewhere. x: f32/f16/bf16 with q's element count. Throws
// kInvalidArgument for an invalid q or mismatched x, kUnsupportedFormat for a format whose
// family has no rule here (a format appended to the table later needs its rule added in
// src/nn/qat.cc; FakeQuantize and the plain STE work for it regardless). Thread-safe.
std::vector<uint8_t> InRepresentableRange(const QuantizedTensor& q, const ConstTensorView& x);

// ---- LSQ: learned step sizes for int4 / int8 ---------------------------------------------------

// How the step sizes start.
enum class LsqInit : uint8_t {
  // s = the step round-to-nearest would use: int4 absmax/7 (Quantize's scale, so the initial
  // forward and export equal Quantize int4 bit for bit); int8 absmax/127 (the exported absmax
  // f32(127·s) equals the row absmax up to one rounding).
  kAbsmax = 0,
  // The paper's s = 2·mean|v| / sqrt(Qp) per statistic.
  kLsqPaper = 1,
};

struct LsqOptions {
  Format format = Format::kInt4;  // kInt4 or kInt8 (symmetric)
  // As Quantize: int4 block_size = group along each row (0 = LOWBIT_INT4_DEFAULT_GROUP); int8
  // granularity kRow (default) or kTensor. double_quant must be false.
  QuantizeOptions quantize;
  LsqInit init = LsqInit::kAbsmax;
  // Multiply dL/ds by g = 1/sqrt(N·Qp) (LSQ's gradient scale). With Adam-type optimizers g only
  // matters through eps; with SGD it balances step and weight updates.
  bool scale_gradient = true;
};

// The learnable step sizes of one weight tensor and the LSQ forward/backward/export.
// Thread safety: const members may run concurrently; Backward/ZeroGrad/steps() mutation may not
// run concurrently with anything else on the same object. Forward and Backward allocate nothing.
class LsqQuantizer {
 public:
  // w: the float weight the steps are initialized from (f32/f16/bf16, any shape with positive
  // dims, finite); the shape, granularity and group size are fixed from then on. Throws
  // kUnsupportedFormat for a format other than int4/int8, kInvalidArgument for bad options,
  // double quantization or non-finite w. An all-zero statistic starts at FLT_MIN (a zero step
  // has no gradient).
  explicit LsqQuantizer(const ConstTensorView& w, const LsqOptions& options = {});

  Format format() const { return layout_.format; }
  const Shape& shape() const { return layout_.shape; }
  int64_t num_elements() const { return layout_.num_elements(); }
  // Geometry of the statistics (granularity, block_size, ScaleIndex); its scales are empty.
  const QuantState& layout() const { return layout_; }
  int64_t num_steps() const { return static_cast<int64_t>(steps_.size()); }
  int32_t qmax() const { return qmax_; }  // Qp: 7 (int4) or 127 (int8); Qn = -Qp
  const LsqOptions& options() const { return options_; }
  // One step size per statistic (ScaleIndex order); writable for optimizers and loading. Every
  // step must stay finite and > 0: Forward/Backward/Export throw kInvalidState naming the first
  // one that is not (an optimizer overshoot: lower the step learning rate).
  std::vector<float>& steps() { return steps_; }
  const std::vector<float>& steps() const { return steps_; }
  const std::vector<float>& grad_steps() const { return grad_steps_; }
  // g of statistic i (1 when scale_gradient is false).
  float gradient_scale(int64_t i) const;

  // out[i] = clamp(rint(u), Qn, Qp) · s (lowbit's arithmetic, file comment) for the
  // num_elements() float32 values w. out may equal w.
  void Forward(const float* w, float* out) const;
  // Given w and grad_out = dL/dv̂ (num_elements() floats each): ADDS dL/dw to grad_w (when
  // non-null) and dL/ds (times g) to grad_steps(). grad_w may not overlap w or grad_out.
  void Backward(const float* w, const float* grad_out, float* grad_w);
  void ZeroGrad();
  // Quantize-equivalent tensor: codes clamp(rint(u)), statistics from the steps (int4: s; int8:
  // f32(127·s)), granularity and group size as the layout, dtype f32. Dequantize(Export(w)) ==
  // Forward(w) bit for bit; Pack/Matmul/Linear4bit::FromQuantized/save accept it as any tensor.
  QuantizedTensor Export(const float* w) const;
  // The steps as an optimizer parameter named `name`; valid while this object lives.
  Parameter StepParameter(const std::string& name = "lsq_steps");

 private:
  void RequireValidSteps(const char* what) const;

  LsqOptions options_;
  QuantState layout_;
  int32_t qmax_ = 0;
  std::vector<float> steps_, grad_steps_;
  std::vector<float> gscale_;  // per statistic
};

// ---- QAT linear layer ---------------------------------------------------------------------------

enum class QatMethod : uint8_t {
  kSte = 0,         // FakeQuantize forward, SteMode::kIdentity backward (any format)
  kClippedSte = 1,  // FakeQuantize forward, SteMode::kClipped backward
  kLsq = 2,         // LsqQuantizer (int4 / int8), learnable steps
};

struct QatLinearOptions {
  QatMethod method = QatMethod::kLsq;
  // kSte / kClippedSte: the format and options the forward fake-quantizes the weight with (every
  // format of the table for kSte). kLsq: lsq.format / lsq.quantize are used instead.
  Format format = Format::kInt4;
  QuantizeOptions quantize;
  LsqOptions lsq;
};

// y = x · Ŵᵀ + b with float32 master weights W [out, in] and Ŵ = the fake-quantized W (recomputed
// on every Forward, so optimizer updates take effect). Backward gives dL/dx (through Ŵ), dL/db and,
// by the method's rule, dL/dW and (LSQ) dL/ds. Export() is the deployable weight: for kLsq the
// LSQ export, otherwise Quantize(format, W); either way Dequantize(Export()) is the Ŵ of a
// Forward at the current W, bit for bit; wrap it in Linear4bit::FromQuantized (4-bit formats) or
// Pack + Matmul to serve it.
// Thread safety: one thread at a time (Forward caches x and Ŵ for Backward). Forward allocates
// only when m grows (caches are members), plus FakeQuantize's quantized temporary for kSte/
// kClippedSte. Every entry validates its arguments and throws lowbit::Error.
class QatLinear {
 public:
  // w: [out, in] float32 row-major (copied); bias: out floats or nullptr (no bias).
  QatLinear(int64_t in_features, int64_t out_features, const float* w, const float* bias,
            const QatLinearOptions& options = {});

  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return out_features_; }
  bool has_bias() const { return !bias_.empty(); }
  const QatLinearOptions& options() const { return options_; }
  // Master weight [out, in] and bias; writable for optimizers and loading.
  std::vector<float>& weight() { return weight_; }
  const std::vector<float>& weight() const { return weight_; }
  std::vector<float>& bias() { return bias_; }
  const std::vector<float>& grad_weight() const { return grad_weight_; }
  const std::vector<float>& grad_bias() const { return grad_bias_; }
  // The LSQ quantizer (kLsq only; throws kInvalidState otherwise).
  LsqQuantizer& lsq();
  const LsqQuantizer& lsq() const;

  // Training mode (default) caches what Backward needs.
  void SetTraining(bool training) { training_ = training; }
  bool training() const { return training_; }

  // x: [M, in] or [in]; y: [M, out] or [out]; each f32, f16 or bf16 (computed in float32).
  void Forward(const ConstTensorView& x, const TensorView& y);
  // grad_y: [m, out] float32 of the last training Forward (same m). Accumulates dL/dW, dL/db and
  // (kLsq) dL/ds; writes dL/dx [m, in] into grad_x when non-null (overwrites). Uses the cached x
  // and Ŵ of that Forward and the current W and steps for the STE masks, so call it before the
  // optimizer step (the usual forward -> backward -> step order).
  void Backward(const float* grad_y, int64_t m, float* grad_x);
  void ZeroGrad();
  // The fake-quantized weight Ŵ [out, in] at the current master weight.
  std::vector<float> FakeQuantizedWeight() const;
  // The deployable quantized weight [out, in] (see the class comment).
  QuantizedTensor Export() const;
  // {prefix + "weight", prefix + "bias" (when present), prefix + "lsq_steps" (kLsq)}.
  std::vector<Parameter> Parameters(const std::string& prefix = "");

 private:
  void ComputeWeight(float* w_hat) const;

  int64_t in_features_, out_features_;
  QatLinearOptions options_;
  std::vector<float> weight_, bias_, grad_weight_, grad_bias_;
  std::vector<LsqQuantizer> lsq_;  // one element for kLsq, else empty
  bool training_ = true;
  // Caches of the last training Forward.
  int64_t cached_m_ = 0;
  std::vector<float> x_, w_hat_, y_, grad_w_hat_;
};

}  // namespace lowbit::nn

#endif  // LOWBIT_NN_QAT_H_
