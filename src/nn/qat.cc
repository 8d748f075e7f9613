// Quantization-aware training (lowbit/nn/qat.h): fake quantization through the public codecs,
// the representable-range rule of each format family, LSQ step sizes and the QAT linear layer.
#include "lowbit/nn/qat.h"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>

#include "reference/reference.h"

namespace lowbit::nn {

namespace {

using RowMajorF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MapF = Eigen::Map<RowMajorF>;
using ConstMapF = Eigen::Map<const RowMajorF>;

// ---- Representable ranges ---------------------------------------------------------------------

enum class RangeFamily { kDense, kIntegerGrid, kFp8, kCodebook, kTableGrid };

struct RangeRule {
  RangeFamily family = RangeFamily::kDense;
  // kIntegerGrid: valid codes [code_min, code_max]; `absmax_stat`: the statistic is an absmax and
  // u = x · f32(code_max / a) (int8, as QuantizeInt8), else u = x / s; `zero_point`: + z.
  float code_min = 0, code_max = 0;
  bool absmax_stat = false;
  bool zero_point = false;
  // kFp8: |x / s| below this rounds; at or above it the conversion saturates.
  float fp8_limit = 0;
  // kTableGrid (a fixed grid of code values times a scale, nearest-value rounding): inside iff
  // table_lo < x / s < table_hi, half a grid step beyond the extreme values.
  float table_lo = 0, table_hi = 0;
};

// max + ½ ulp(max) of an FP8 type with `man_bits` mantissa bits: the first magnitude that would
// round past the largest finite value (464 for E4M3, 61440 for E5M2).
float Fp8SaturationLimit(float max_finite, int man_bits) {
  return max_finite + std::ldexp(1.0f, std::ilogb(max_finite) - man_bits - 1);
}

// The family of `format`. Dense and codebook formats are recognised from their table row (so a
// codebook format appended later gets the codebook rule); integer and FP8 formats by name, since
// their code ranges and saturation are not described by the table, and a guessed rule would be
// silently wrong for a new grid (e.g. codes [-8, 7]).
RangeRule RuleFor(Format format) {
  const FormatInfo& info = GetFormatInfo(format);
  RangeRule r;
  if (info.scale_kind == ScaleKind::kNone) return r;  // kDense
  if (info.codebook != nullptr && info.codebook_size > 0 && info.scale_kind == ScaleKind::kAbsmax &&
      !info.has_zero_point) {
    r.family = RangeFamily::kCodebook;
    return r;
  }
  r.family = RangeFamily::kIntegerGrid;
  switch (format) {
    case Format::kInt8:
      r.code_min = -LOWBIT_INT8_QMAX;
      r.code_max = LOWBIT_INT8_QMAX;
      r.absmax_stat = true;
      return r;
    case Format::kInt4:
      r.code_min = -LOWBIT_INT4_SYM_QMAX;
      r.code_max = LOWBIT_INT4_SYM_QMAX;
      return r;
    case Format::kInt8Asym:
      r.code_max = LOWBIT_UINT8_QMAX;
      r.zero_point = true;
      return r;
    case Format::kInt4Asym:
      r.code_max = LOWBIT_INT4_ASYM_QMAX;
      r.zero_point = true;
      return r;
    case Format::kFP8E4M3:
      r.family = RangeFamily::kFp8;
      r.fp8_limit = Fp8SaturationLimit(LOWBIT_FP8_E4M3_MAX, LOWBIT_FP8_E4M3_MAN_BITS);
      return r;
    case Format::kFP8E5M2:
      r.family = RangeFamily::kFp8;
      r.fp8_limit = Fp8SaturationLimit(LOWBIT_FP8_E5M2_MAX, LOWBIT_FP8_E5M2_MAN_BITS);
      return r;
    case Format::kIQ4NL: {
      float v[16];
      std::copy(info.code_values, info.code_values + 16, v);
      std::sort(v, v + 16);
      r.family = RangeFamily::kTableGrid;
      r.table_lo = v[0] - (v[1] - v[0]) / 2;
      r.table_hi = v[15] + (v[15] - v[14]) / 2;
      return r;
    }
    case Format::kMXFP4:
    case Format::kNVFP4:
      // E2M1 elements: saturating like FP8, with 1 mantissa bit (6 + ½ ulp(6) = 7), on x over
      // the element scale f32(scale · tensor_scale) (mxfp4: tensor_scale 1).
      r.family = RangeFamily::kFp8;
      r.fp8_limit = Fp8SaturationLimit(LOWBIT_E2M1_MAX, 1);
      return r;
    default:
      break;
  }
  throw Error(Status::kUnsupportedFormat,
              std::string("no representable-range rule for format '") + info.name +
                  "' (clipped STE knows the dense, integer, fp8 and absmax-codebook families; add "
                  "its rule in src/nn/qat.cc RuleFor). SteMode::kIdentity works for every format");
}

std::vector<float> ToF32Vector(const ConstTensorView& x, int64_t n) {
  std::vector<float> v(static_cast<size_t>(n));
  ToF32(x.data, x.dtype, n, v.data());
  return v;
}

// ---- LSQ arithmetic ----------------------------------------------------------------------------

// lowbit's codec of one statistic with the step s in place of the data-derived statistic.
struct StepCodec {
  bool int8;
  float qmax;
  float step;  // s
  float stat;  // what the format stores: int4 s, int8 f32(127 s)
  float mul;   // int8: f32(127 / stat), as QuantizeInt8

  StepCodec(Format format, int32_t q, float s)
      : int8(format == Format::kInt8), qmax(static_cast<float>(q)), step(s) {
    stat = int8 ? s * static_cast<float>(LOWBIT_INT8_QMAX) : s;
    mul = int8 ? static_cast<float>(LOWBIT_INT8_QMAX) / stat : 0.0f;
  }
  // Code-space value u ≈ v / s (int4: RoundClamp's x / scale; int8: QuantizeInt8's x * mul).
  float U(float v) const { return int8 ? v * mul : v / step; }
  // The stored code clamp(rint(u), -Qp, Qp) as an integer (so rint's -0 becomes 0, as in the
  // payload).
  int32_t Code(float v) const {
    return static_cast<int32_t>(std::clamp(std::nearbyint(U(v)), -qmax, qmax));
  }
  // The value the format's dequantizer gives code q (DequantizeInt4 / DequantizeInt8).
  float Value(float q) const { return int8 ? (q * stat) * LOWBIT_INT8_INV_QMAX : q * step; }
};

}  // namespace

// ---- Fake quantization -------------------------------------------------------------------------

void FakeQuantize(Format format, const ConstTensorView& x, const QuantizeOptions& options,
                  const TensorView& out) {
  const int64_t n = ValidateView(x, "FakeQuantize input");
  const int64_t n_out = ValidateView(out, "FakeQuantize output");
  Require(out.dtype == DType::kF32, Status::kInvalidArgument, [&] {
    return std::string("FakeQuantize output must be f32, got ") + DTypeName(out.dtype);
  });
  Require(n_out == n, Status::kInvalidArgument, [&] {
    return "FakeQuantize output has " + std::to_string(n_out) + " elements, input " +
           ShapeToString(x.shape) + " has " + std::to_string(n);
  });
  const auto xb = reinterpret_cast<uintptr_t>(x.data);
  const auto ob = reinterpret_cast<uintptr_t>(out.data);
  const auto un = static_cast<uintptr_t>(n);
  Require(ob + un * sizeof(float) <= xb || xb + un * DTypeSize(x.dtype) <= ob,
          Status::kInvalidArgument, "FakeQuantize: output overlaps the input");
  Dequantize(Quantize(format, x, options), out);
}

std::vector<float> FakeQuantize(Format format, const ConstTensorView& x,
                                const QuantizeOptions& options) {
  const int64_t n = ValidateView(x, "FakeQuantize input");
  std::vector<float> out(static_cast<size_t>(n));
  FakeQuantize(format, x, options, TensorView{out.data(), DType::kF32, x.shape});
  return out;
}

void FakeQuantizeBackward(Format format, const ConstTensorView& x, const QuantizeOptions& options,
                          SteMode mode, const float* grad_y, float* grad_x) {
  const int64_t n = ValidateView(x, "FakeQuantizeBackward x");
  GetFormatInfo(format);  // throws for an unknown format
  Require(grad_y != nullptr && grad_x != nullptr, Status::kInvalidArgument,
          "FakeQuantizeBackward: grad_y and grad_x must be non-null");
  Require(mode == SteMode::kIdentity || mode == SteMode::kClipped, Status::kInvalidArgument, [&] {
    return "FakeQuantizeBackward: unknown SteMode " + std::to_string(static_cast<int>(mode));
  });
  if (mode == SteMode::kIdentity) {
    if (grad_x != grad_y) std::memmove(grad_x, grad_y, static_cast<size_t>(n) * sizeof(float));
    return;
  }
  RuleFor(format);  // an unsupported family throws before the quantization work
  const std::vector<uint8_t> inside = InRepresentableRange(Quantize(format, x, options), x);
  for (int64_t i = 0; i < n; ++i) grad_x[i] = inside[i] ? grad_y[i] : 0.0f;
}

std::vector<uint8_t> InRepresentableRange(const QuantizedTensor& q, const ConstTensorView& x) {
  ValidateQuantizedTensor(q);
  const int64_t n = ValidateView(x, "InRepresentableRange x");
  const QuantState& s = q.state;
  Require(n == s.num_elements(), Status::kInvalidArgument, [&] {
    return "InRepresentableRange: x " + ShapeToString(x.shape) + " has " + std::to_string(n) +
           " elements, the tensor " + ShapeToString(s.shape) + " has " +
           std::to_string(s.num_elements());
  });
  const FormatInfo& info = GetFormatInfo(s.format);
  const RangeRule rule = RuleFor(s.format);
  const std::vector<float> xf = ToF32Vector(x, n);
  std::vector<uint8_t> inside(static_cast<size_t>(n), 1);
  switch (rule.family) {
    case RangeFamily::kDense: {
      // Round-trip through the dense dtype: a finite value that becomes ±Inf overflowed.
      std::vector<uint8_t> bytes(static_cast<size_t>(n) * DTypeSize(info.dense_dtype));
      std::vector<float> back(static_cast<size_t>(n));
      FromF32(xf.data(), n, bytes.data(), info.dense_dtype);
      ToF32(bytes.data(), info.dense_dtype, n, back.data());
      for (int64_t i = 0; i < n; ++i) inside[i] = !(std::isfinite(xf[i]) && std::isinf(back[i]));
      break;
    }
    case RangeFamily::kCodebook: {
      const float* book = s.codebook.empty() ? info.codebook : s.codebook.data();
      const int size =
          s.codebook.empty() ? info.codebook_size : static_cast<int>(s.codebook.size());
      const float cmin = *std::min_element(book, book + size);
      const float cmax = *std::max_element(book, book + size);
      const std::vector<float> absmax = ResolveScales(s);
      for (int64_t i = 0; i < n; ++i) {
        const float a = absmax[static_cast<size_t>(s.ScaleIndex(i))];
        // The products the dequantizer forms (codebook[c] * absmax); min/max guard a < 0.
        const float p = cmin * a, r = cmax * a;
        inside[i] = xf[i] >= std::min(p, r) && xf[i] <= std::max(p, r);
      }
      break;
    }
    case RangeFamily::kIntegerGrid:
      for (int64_t i = 0; i < n; ++i) {
        const int64_t g = s.ScaleIndex(i);
        const float scale = s.scales[static_cast<size_t>(g)];
        if (scale == 0.0f) {  // every element decodes to 0: only 0 is representable
          inside[i] = xf[i] == 0.0f;
          continue;
        }
        const float u = rule.absmax_stat ? xf[i] * (rule.code_max / scale) : xf[i] / scale;
        float code = std::nearbyint(u);  // round half to even, as the quantizers
        if (rule.zero_point) code += static_cast<float>(s.zero_points[static_cast<size_t>(g)]);
        inside[i] = code >= rule.code_min && code <= rule.code_max;
      }
      break;
    case RangeFamily::kFp8:
      for (int64_t i = 0; i < n; ++i) {
        const float scale = s.scales[static_cast<size_t>(s.ScaleIndex(i))] * s.tensor_scale;
        if (scale == 0.0f) {
          inside[i] = xf[i] == 0.0f;
          continue;
        }
        // y = x / scale, as the FP8 and E2M1 codecs encode.
        inside[i] = std::fabs(xf[i] / scale) < rule.fp8_limit;
      }
      break;
    case RangeFamily::kTableGrid:
      for (int64_t i = 0; i < n; ++i) {
        const float scale = s.scales[static_cast<size_t>(s.ScaleIndex(i))];
        if (scale == 0.0f) {
          inside[i] = xf[i] == 0.0f;
          continue;
        }
        const float y = xf[i] / scale;  // as IQ4NLCodec::Encode
        inside[i] = y > rule.table_lo && y < rule.table_hi;
      }
      break;
  }
  return inside;
}

// ---- LsqQuantizer ------------------------------------------------------------------------------

LsqQuantizer::LsqQuantizer(const ConstTensorView& w, const LsqOptions& options)
    : options_(options) {
  Require(options.format == Format::kInt4 || options.format == Format::kInt8,
          Status::kUnsupportedFormat, [&] {
            return std::string(
                       "LsqQuantizer: LSQ supports int4 (per group) and int8 (per row or "
                       "tensor), got ") +
                   FormatName(options.format);
          });
  Require(!options.quantize.double_quant, Status::kInvalidArgument,
          "LsqQuantizer: double quantization does not apply to learned steps");
  Require(options.init == LsqInit::kAbsmax || options.init == LsqInit::kLsqPaper,
          Status::kInvalidArgument, [&] {
            return "LsqQuantizer: unknown LsqInit " +
                   std::to_string(static_cast<int>(options.init));
          });
  // Quantize validates w (view, finiteness) and the options and resolves the geometry; its
  // scales are round-to-nearest's, i.e. the kAbsmax initialization.
  const QuantizedTensor rtn = Quantize(options.format, w, options.quantize);
  layout_ = rtn.state;
  layout_.dtype = DType::kF32;
  layout_.scales.clear();
  qmax_ = options.format == Format::kInt4 ? LOWBIT_INT4_SYM_QMAX : LOWBIT_INT8_QMAX;
  const int64_t num = layout_.num_scales();
  steps_.assign(static_cast<size_t>(num), 0.0f);
  grad_steps_.assign(static_cast<size_t>(num), 0.0f);
  gscale_.assign(static_cast<size_t>(num), 1.0f);
  std::vector<float> wf;
  if (options.init == LsqInit::kLsqPaper) wf = ToF32Vector(w, layout_.num_elements());
  ref::ForEachGroup(layout_, [&](int64_t g, int64_t begin, int64_t end) {
    const double count = static_cast<double>(end - begin);
    float s;
    if (options.init == LsqInit::kAbsmax) {
      // int4 stores absmax / 7 (the step itself); int8 stores the absmax.
      s = options.format == Format::kInt4 ? rtn.state.scales[g]
                                          : rtn.state.scales[g] / static_cast<float>(qmax_);
    } else {
      double sum = 0;
      for (int64_t i = begin; i < end; ++i) sum += std::fabs(wf[i]);
      s = static_cast<float>(2.0 * (sum / count) / std::sqrt(static_cast<double>(qmax_)));
    }
    steps_[g] = s > 0.0f ? s : std::numeric_limits<float>::min();
    if (options.scale_gradient) {
      gscale_[g] = static_cast<float>(1.0 / std::sqrt(count * qmax_));
    }
  });
}

float LsqQuantizer::gradient_scale(int64_t i) const {
  Require(i >= 0 && i < num_steps(), Status::kInvalidArgument, [&] {
    return "LsqQuantizer::gradient_scale: index " + std::to_string(i) + " outside [0, " +
           std::to_string(num_steps()) + ")";
  });
  return gscale_[static_cast<size_t>(i)];
}

void LsqQuantizer::RequireValidSteps(const char* what) const {
  for (size_t g = 0; g < steps_.size(); ++g) {
    const float s = steps_[g];
    // int8 also needs its stored absmax f32(127 s) finite.
    const bool ok =
        std::isfinite(s) && s > 0.0f && std::isfinite(s * static_cast<float>(LOWBIT_INT8_QMAX));
    Require(ok, Status::kInvalidState, [&] {
      return std::string(what) + ": step " + std::to_string(g) + " is " + std::to_string(s) +
             " (steps must stay finite and > 0; lower the step learning rate)";
    });
  }
}

namespace {

// Throws kInvalidArgument naming the first non-finite weight of w[begin, end).
void RequireFiniteWeights(const float* w, int64_t begin, int64_t end, const char* what) {
  for (int64_t i = begin; i < end; ++i) {
    Require(std::isfinite(w[i]), Status::kInvalidArgument, [&] {
      return std::string(what) + ": non-finite weight " + std::to_string(w[i]) + " at flat index " +
             std::to_string(i);
    });
  }
}

}  // namespace

void LsqQuantizer::Forward(const float* w, float* out) const {
  Require(w != nullptr && out != nullptr, Status::kInvalidArgument,
          "LsqQuantizer::Forward: w and out must be non-null");
  RequireValidSteps("LsqQuantizer::Forward");
  ref::ForEachGroup(layout_, [&](int64_t g, int64_t begin, int64_t end) {
    RequireFiniteWeights(w, begin, end, "LsqQuantizer::Forward");
    const StepCodec c(layout_.format, qmax_, steps_[g]);
    for (int64_t i = begin; i < end; ++i) {
      out[i] = c.Value(static_cast<float>(c.Code(w[i])));
    }
  });
}

void LsqQuantizer::Backward(const float* w, const float* grad_out, float* grad_w) {
  Require(w != nullptr && grad_out != nullptr, Status::kInvalidArgument,
          "LsqQuantizer::Backward: w and grad_out must be non-null");
  RequireValidSteps("LsqQuantizer::Backward");
  ref::ForEachGroup(layout_, [&](int64_t g, int64_t begin, int64_t end) {
    RequireFiniteWeights(w, begin, end, "LsqQuantizer::Backward");
    const StepCodec c(layout_.format, qmax_, steps_[g]);
    double ds = 0;  // float64 accumulation per statistic
    for (int64_t i = begin; i < end; ++i) {
      const float u = c.U(w[i]);
      const float r = std::nearbyint(u);
      if (r >= -c.qmax && r <= c.qmax) {  // inside: STE through rint
        if (grad_w != nullptr) grad_w[i] += grad_out[i];
        ds += static_cast<double>(grad_out[i]) * (static_cast<double>(r) - static_cast<double>(u));
      } else {  // saturated: v̂ = ±Qp·s, dv̂/dv = 0, dv̂/ds = ±Qp
        ds += static_cast<double>(grad_out[i]) * (r > 0.0f ? c.qmax : -c.qmax);
      }
    }
    grad_steps_[g] += static_cast<float>(ds * gscale_[g]);
  });
}

void LsqQuantizer::ZeroGrad() { std::fill(grad_steps_.begin(), grad_steps_.end(), 0.0f); }

QuantizedTensor LsqQuantizer::Export(const float* w) const {
  Require(w != nullptr, Status::kInvalidArgument, "LsqQuantizer::Export: w must be non-null");
  RequireValidSteps("LsqQuantizer::Export");
  QuantizedTensor q;
  q.state = layout_;
  const int64_t n = layout_.num_elements();
  q.data.assign(static_cast<size_t>(PayloadBytes(layout_.format, n)), 0);
  q.state.scales.resize(steps_.size());
  const bool int4 = layout_.format == Format::kInt4;
  ref::ForEachGroup(layout_, [&](int64_t g, int64_t begin, int64_t end) {
    RequireFiniteWeights(w, begin, end, "LsqQuantizer::Export");
    const StepCodec c(layout_.format, qmax_, steps_[g]);
    q.state.scales[g] = c.stat;
    for (int64_t i = begin; i < end; ++i) {
      const int32_t code = c.Code(w[i]);
      if (int4) {
        // Two codes per byte, first element in the high nibble (format_layout.h).
        const auto nibble = static_cast<uint8_t>(code + LOWBIT_INT4_SYM_OFFSET);
        q.data[i >> 1] |=
            (i & 1) ? nibble : static_cast<uint8_t>(nibble << LOWBIT_NIBBLE_FIRST_SHIFT);
      } else {
        q.data[i] = static_cast<uint8_t>(static_cast<int8_t>(code));
      }
    }
  });
  if (int4 && (n & 1)) q.data[n >> 1] |= LOWBIT_INT4_SYM_OFFSET;  // pad with the code of 0
  ValidateQuantizedTensor(q, Status::kInternal);
  return q;
}

Parameter LsqQuantizer::StepParameter(const std::string& name) {
  return Parameter{name, steps_.data(), grad_steps_.data(), static_cast<int64_t>(steps_.size())};
}

// ---- QatLinear ---------------------------------------------------------------------------------

QatLinear::QatLinear(int64_t in_features, int64_t out_features, const float* w, const float* bias,
                     const QatLinearOptions& options)
    : in_features_(in_features), out_features_(out_features), options_(options) {
  Require(in_features > 0 && out_features > 0, Status::kInvalidArgument, [&] {
    return "QatLinear: in_features " + std::to_string(in_features) + " and out_features " +
           std::to_string(out_features) + " must be positive";
  });
  Require(w != nullptr, Status::kInvalidArgument, "QatLinear: weight pointer is null");
  Require(options.method == QatMethod::kSte || options.method == QatMethod::kClippedSte ||
              options.method == QatMethod::kLsq,
          Status::kInvalidArgument, [&] {
            return "QatLinear: unknown QatMethod " +
                   std::to_string(static_cast<int>(options.method));
          });
  const int64_t n = in_features * out_features;
  weight_.assign(w, w + n);
  const ConstTensorView wv{weight_.data(), DType::kF32, {out_features, in_features}};
  if (options.method == QatMethod::kLsq) {
    lsq_.emplace_back(wv, options.lsq);
  } else {
    if (options.method == QatMethod::kClippedSte) RuleFor(options.format);
    Quantize(options.format, wv, options.quantize);  // validates format, options and w now
  }
  grad_weight_.assign(static_cast<size_t>(n), 0.0f);
  if (bias != nullptr) {
    bias_.assign(bias, bias + out_features);
    for (int64_t j = 0; j < out_features; ++j) {
      Require(std::isfinite(bias_[j]), Status::kInvalidArgument, [&] {
        return "QatLinear: non-finite bias " + std::to_string(bias_[j]) + " at " +
               std::to_string(j);
      });
    }
    grad_bias_.assign(static_cast<size_t>(out_features), 0.0f);
  }
}

LsqQuantizer& QatLinear::lsq() {
  Require(!lsq_.empty(), Status::kInvalidState, "QatLinear::lsq: the method is not kLsq");
  return lsq_.front();
}

const LsqQuantizer& QatLinear::lsq() const { return const_cast<QatLinear*>(this)->lsq(); }

void QatLinear::ComputeWeight(float* w_hat) const {
  if (!lsq_.empty()) {
    lsq_.front().Forward(weight_.data(), w_hat);
  } else {
    FakeQuantize(options_.format,
                 ConstTensorView{weight_.data(), DType::kF32, {out_features_, in_features_}},
                 options_.quantize, TensorView{w_hat, DType::kF32, {out_features_, in_features_}});
  }
}

void QatLinear::Forward(const ConstTensorView& x, const TensorView& y) {
  const int64_t k = in_features_, n = out_features_;
  const int64_t nx = ValidateView(x, "QatLinear::Forward x");
  Require(x.shape.back() == k, Status::kInvalidArgument, [&] {
    return "QatLinear::Forward: x " + ShapeToString(x.shape) + " last dim must be " +
           std::to_string(k);
  });
  const int64_t m = nx / k;
  Require(ValidateView(y, "QatLinear::Forward y") == m * n && y.shape.back() == n,
          Status::kInvalidArgument, [&] {
            return "QatLinear::Forward: y " + ShapeToString(y.shape) + " must hold [" +
                   std::to_string(m) + ", " + std::to_string(n) + "]";
          });
  cached_m_ = 0;  // a failure below leaves nothing to backpropagate
  x_.resize(static_cast<size_t>(m * k));
  ToF32(x.data, x.dtype, m * k, x_.data());
  w_hat_.resize(static_cast<size_t>(n * k));
  ComputeWeight(w_hat_.data());
  y_.resize(static_cast<size_t>(m * n));
  MapF yf(y_.data(), m, n);
  yf.noalias() = ConstMapF(x_.data(), m, k) * ConstMapF(w_hat_.data(), n, k).transpose();
  if (has_bias()) yf.rowwise() += Eigen::Map<const Eigen::RowVectorXf>(bias_.data(), n);
  FromF32(y_.data(), m * n, y.data, y.dtype);
  if (training_) cached_m_ = m;
}

void QatLinear::Backward(const float* grad_y, int64_t m, float* grad_x) {
  Require(cached_m_ > 0, Status::kInvalidState,
          "QatLinear::Backward: no training Forward to backpropagate through");
  Require(m == cached_m_, Status::kInvalidArgument, [&] {
    return "QatLinear::Backward: m = " + std::to_string(m) +
           " but the last Forward had m = " + std::to_string(cached_m_);
  });
  Require(grad_y != nullptr, Status::kInvalidArgument, "QatLinear::Backward: grad_y is null");
  const int64_t k = in_features_, n = out_features_;
  ConstMapF g(grad_y, m, n);
  ConstMapF x(x_.data(), m, k);
  ConstMapF w_hat(w_hat_.data(), n, k);
  if (grad_x != nullptr) MapF(grad_x, m, k).noalias() = g * w_hat;  // dL/dx = G · Ŵ
  if (has_bias()) {
    Eigen::Map<Eigen::RowVectorXf>(grad_bias_.data(), n) += g.colwise().sum();
  }
  grad_w_hat_.resize(static_cast<size_t>(n * k));
  MapF(grad_w_hat_.data(), n, k).noalias() = g.transpose() * x;  // dL/dŴ = Gᵀ · X
  const ConstTensorView wv{weight_.data(), DType::kF32, {n, k}};
  switch (options_.method) {
    case QatMethod::kLsq:
      lsq_.front().Backward(weight_.data(), grad_w_hat_.data(), grad_weight_.data());
      break;
    case QatMethod::kClippedSte:
      FakeQuantizeBackward(options_.format, wv, options_.quantize, SteMode::kClipped,
                           grad_w_hat_.data(), grad_w_hat_.data());
      [[fallthrough]];
    case QatMethod::kSte:
      for (int64_t i = 0; i < n * k; ++i) grad_weight_[i] += grad_w_hat_[i];
      break;
  }
}

void QatLinear::ZeroGrad() {
  std::fill(grad_weight_.begin(), grad_weight_.end(), 0.0f);
  std::fill(grad_bias_.begin(), grad_bias_.end(), 0.0f);
  for (LsqQuantizer& q : lsq_) q.ZeroGrad();
}

std::vector<float> QatLinear::FakeQuantizedWeight() const {
  std::vector<float> w_hat(weight_.size());
  ComputeWeight(w_hat.data());
  return w_hat;
}

QuantizedTensor QatLinear::Export() const {
  if (!lsq_.empty()) return lsq_.front().Export(weight_.data());
  return Quantize(options_.format,
                  ConstTensorView{weight_.data(), DType::kF32, {out_features_, in_features_}},
                  options_.quantize);
}

std::vector<Parameter> QatLinear::Parameters(const std::string& prefix) {
  std::vector<Parameter> p;
  p.push_back(Parameter{prefix + "weight", weight_.data(), grad_weight_.data(),
                        static_cast<int64_t>(weight_.size())});
  if (has_bias()) {
    p.push_back(Parameter{prefix + "bias", bias_.data(), grad_bias_.data(),
                          static_cast<int64_t>(bias_.size())});
  }
  if (!lsq_.empty()) p.push_back(lsq_.front().StepParameter(prefix + "lsq_steps"));
  return p;
}

}  // namespace lowbit::nn
