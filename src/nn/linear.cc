// Quantized linear layers: weight handling over the public ops (Quantize, Pack, Matmul) and the
// LLM.int8 outlier decomposition of Linear8bit.
#include "lowbit/nn/linear.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>

#include "lowbit/quantize.h"
#include "scratch.h"

namespace lowbit::nn {

namespace {

using internal::ThreadMatmulViews;
using internal::ThreadScratch;

std::string Kib(int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f KiB", static_cast<double>(bytes) / 1024.0);
  return buf;
}

// Number of rows M of an activation whose last dim must be `k`; throws naming `what`.
int64_t RowsOf(const ConstTensorView& v, int64_t k, const char* what) {
  const int64_t n = ValidateView(v, what);
  Require(v.shape.back() == k, Status::kInvalidArgument, [&] {
    return std::string(what) + " " + ShapeToString(v.shape) + ": last dim must be " +
           std::to_string(k);
  });
  return n / k;
}

}  // namespace

void InitLinearUniform(int64_t in_features, int64_t out_features, uint64_t seed,
                       std::vector<float>* weight, std::vector<float>* bias) {
  Require(in_features > 0 && out_features > 0, Status::kInvalidArgument,
          "InitLinearUniform: in_features " + std::to_string(in_features) +
              " and out_features " + std::to_string(out_features) + " must be positive");
  std::mt19937_64 rng(seed);
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
  // 53 random bits -> [0, 1) exactly; portable across standard libraries (unlike
  // std::uniform_real_distribution, whose algorithm is implementation-defined).
  auto uniform = [&] { return static_cast<double>(rng() >> 11) * 0x1.0p-53; };
  weight->resize(static_cast<size_t>(in_features * out_features));
  for (float& w : *weight) w = static_cast<float>((2.0 * uniform() - 1.0) * bound);
  if (bias != nullptr) {
    bias->resize(static_cast<size_t>(out_features));
    for (float& b : *bias) b = static_cast<float>((2.0 * uniform() - 1.0) * bound);
  }
}

// ---- QuantLinear -------------------------------------------------------------------------------

QuantLinear::QuantLinear(int64_t in_features, int64_t out_features, bool bias)
    : in_features_(in_features), out_features_(out_features) {
  Require(in_features > 0, Status::kInvalidArgument,
          "linear layer: in_features must be positive, got " + std::to_string(in_features));
  Require(out_features > 0, Status::kInvalidArgument,
          "linear layer: out_features must be positive, got " + std::to_string(out_features));
  if (bias) bias_.assign(static_cast<size_t>(out_features), 0.0f);
}

void QuantLinear::Install(QuantizedTensor q) {
  packed_ = Pack(q);
  weight_ = std::move(q);
}

void QuantLinear::SetBias(const float* bias) {
  if (bias == nullptr) return;
  Require(has_bias(), Status::kInvalidArgument,
          "SetWeight: a bias was given but the layer was built without bias");
  bias_.assign(bias, bias + out_features_);
}

void QuantLinear::InitUniform(uint64_t seed) {
  std::vector<float> w, b;
  InitLinearUniform(in_features_, out_features_, seed, &w, has_bias() ? &b : nullptr);
  SetWeight(w.data(), has_bias() ? b.data() : nullptr);
}

ConstTensorView QuantLinear::WeightView(const float* w) const {
  Require(w != nullptr, Status::kInvalidArgument, "SetWeight: weight pointer is null");
  return ConstTensorView{w, DType::kF32, {out_features_, in_features_}};
}

void QuantLinear::RestoreWeight(QuantizedTensor q) {
  ValidateQuantizedTensor(q);
  Require(q.state.shape == Shape{out_features_, in_features_}, Status::kInvalidArgument,
          "RestoreWeight: shape " + ShapeToString(q.state.shape) + " must be [" +
              std::to_string(out_features_) + ", " + std::to_string(in_features_) + "]");
  Require(q.format() == weight_.format(), Status::kInvalidArgument,
          std::string("RestoreWeight: format ") + FormatName(q.format()) + " must be " +
              FormatName(weight_.format()));
  Install(std::move(q));
}

void QuantLinear::Forward(const ConstTensorView& x, const TensorView& y, Context* ctx) const {
  RowsOf(x, in_features_, "Forward x");
  Matmul(packed_, x, y, has_bias() ? bias_.data() : nullptr, ctx);
}

std::vector<float> QuantLinear::DequantizedWeight() const { return DequantizeToF32(weight_); }

int64_t QuantLinear::StorageBytes() const {
  return GetQuantInfo(weight_).total_bytes + static_cast<int64_t>(bias_.size() * sizeof(float));
}

// ---- Linear8bit --------------------------------------------------------------------------------

Linear8bit::Linear8bit(int64_t in_features, int64_t out_features, bool bias,
                       const Linear8bitOptions& options, NoInit)
    : QuantLinear(in_features, out_features, bias), options_(options) {
  Require(std::isfinite(options.threshold) && options.threshold >= 0.0f,
          Status::kInvalidArgument,
          "Linear8bit: threshold must be finite and >= 0, got " +
              std::to_string(options.threshold));
  Require(options.threshold == 0.0f || options.symmetric, Status::kInvalidArgument,
          "Linear8bit: LLM.int8 outlier threshold " + std::to_string(options.threshold) +
              " needs symmetric int8 weights (symmetric = false given)");
  Require(options.threshold == 0.0f || options.int8_activations, Status::kInvalidArgument,
          "Linear8bit: LLM.int8 outlier threshold " + std::to_string(options.threshold) +
              " needs int8_activations (weight-only int8 has no outlier path)");
}

Linear8bit::Linear8bit(int64_t in_features, int64_t out_features, bool bias,
                       const Linear8bitOptions& options, uint64_t seed)
    : Linear8bit(in_features, out_features, bias, options, NoInit{}) {
  InitUniform(seed);
}

std::unique_ptr<Linear8bit> Linear8bit::FromLinear(int64_t in_features, int64_t out_features,
                                                   const float* w, const float* bias,
                                                   const Linear8bitOptions& options) {
  std::unique_ptr<Linear8bit> layer(
      new Linear8bit(in_features, out_features, bias != nullptr, options, NoInit{}));
  layer->SetWeight(w, bias);
  return layer;
}

Format Linear8bit::QuantizedFormat() const {
  return options_.symmetric ? Format::kInt8 : Format::kInt8Asym;
}

void Linear8bit::SetWeight(const float* w, const float* bias) {
  const ConstTensorView view = WeightView(w);
  // Training mode (before QuantizeWeights) keeps f16; afterwards (or without fp16 weights) int8.
  const bool keep_f16 = options_.has_fp16_weights && (weight_.data.empty() || !is_quantized());
  if (keep_f16) {
    Install(Quantize(Format::kF16, view));
  } else {
    QuantizeOptions o;
    o.granularity = options_.per_channel ? Granularity::kRow : Granularity::kTensor;
    Install(Quantize(QuantizedFormat(), view, o));
  }
  SetBias(bias);
}

void Linear8bit::QuantizeWeights() {
  if (is_quantized()) return;
  // bnb Int8Params._quantize: the f16 weight itself is what gets quantized.
  const std::vector<float> w = DequantizeToF32(weight_);
  QuantizeOptions o;
  o.granularity = options_.per_channel ? Granularity::kRow : Granularity::kTensor;
  Install(Quantize(QuantizedFormat(), ConstTensorView{w.data(), DType::kF32,
                                                      {out_features_, in_features_}}, o));
}

void Linear8bit::Forward(const ConstTensorView& x, const TensorView& y, Context* ctx) const {
  if (!is_quantized() || !options_.symmetric || !options_.int8_activations) {
    QuantLinear::Forward(x, y, ctx);
    return;
  }
  ForwardInt8(x, y, ctx);
}

void Linear8bit::ForwardInt8(const ConstTensorView& x, const TensorView& y, Context* ctx) const {
  const int64_t k = in_features_, n = out_features_;
  const int64_t m = RowsOf(x, k, "Linear8bit x");
  Require(ValidateView(y, "Linear8bit y") == m * n && y.shape.back() == n,
          Status::kInvalidArgument, [&] {
            return "Linear8bit: y " + ShapeToString(y.shape) + " must hold [" +
                   std::to_string(m) + ", " + std::to_string(n) + "]";
          });
  MatmulOptions int8;
  int8.int8_activations = true;
  const float* bias = has_bias() ? bias_.data() : nullptr;
  if (options_.threshold == 0.0f) {  // plain int8 x int8: no outlier scan, no staging
    Matmul(packed(), x, y, int8, bias, ctx);
    return;
  }
  // Per-thread workspaces (this forward is const and may run on several threads at once).
  ThreadScratch<float, struct Int8XTag> x_scratch;
  float* xf = x_scratch.Resize(static_cast<size_t>(m * k));
  ToF32(x.data, x.dtype, m * k, xf);
  // Outlier columns: any |x| >= threshold (bnb int8_vectorwise_quant; NaN never qualifies).
  ThreadScratch<int64_t, struct Int8ColsTag> cols_scratch;
  int64_t* cols = cols_scratch.Resize(static_cast<size_t>(k));
  size_t num_cols = 0;
  {
    ThreadScratch<char, struct Int8OutlierTag> outlier_scratch;
    char* is_outlier = outlier_scratch.Resize(static_cast<size_t>(k));
    std::fill(is_outlier, is_outlier + k, 0);
    for (int64_t i = 0; i < m * k; ++i) {
      if (std::fabs(xf[i]) >= options_.threshold) is_outlier[i % k] = 1;
    }
    for (int64_t c = 0; c < k; ++c) {
      if (is_outlier[c]) cols[num_cols++] = c;
    }
  }
  if (num_cols == 0) {  // plain int8 x int8 (no outliers in this batch)
    Matmul(packed(), x, y, int8, bias, ctx);
    return;
  }
  // Inlier part: the outlier columns zeroed, the int8-activation matmul (row absmax over the
  // remaining columns, exact int32 dots, scaled by row_stats * SCB / 127²).
  ThreadScratch<float, struct Int8OutlierXTag> outlier_scratch;
  float* outlier_x = outlier_scratch.Resize(static_cast<size_t>(m) * num_cols);
  for (int64_t i = 0; i < m; ++i) {
    for (size_t c = 0; c < num_cols; ++c) {
      float& v = xf[i * k + cols[c]];
      outlier_x[static_cast<size_t>(i) * num_cols + c] = v;
      v = 0.0f;
    }
  }
  ThreadScratch<float, struct Int8OutTag> out_scratch;
  float* out = out_scratch.Resize(static_cast<size_t>(m * n));
  const ThreadMatmulViews<struct Int8ViewTag> views(xf, out, DType::kF32, {m, k}, {m, n});
  Matmul(packed(), views.x(), views.y(), int8, bias, ctx);
  // Outlier part: out += X[:, cols] · (CB[:, cols] * SCB / 127)ᵀ in float; bnb rounds the
  // dequantized columns to A.dtype, so a 16-bit x gets 16-bit weight columns.
  const int8_t* cb = reinterpret_cast<const int8_t*>(weight_.data.data());
  const std::vector<float>& scb = weight_.state.scales;
  const bool per_row = weight_.state.granularity == Granularity::kRow;
  const bool round_cols = x.dtype == DType::kF16 || x.dtype == DType::kBF16;
  ThreadScratch<float, struct Int8WColTag> wcol_scratch;
  float* wcol = wcol_scratch.Resize(static_cast<size_t>(n));
  ThreadScratch<uint16_t, struct Int8RoundTag> tmp_scratch;
  uint16_t* tmp = round_cols ? tmp_scratch.Resize(static_cast<size_t>(n)) : nullptr;
  for (size_t c = 0; c < num_cols; ++c) {
    for (int64_t j = 0; j < n; ++j) {
      wcol[j] = static_cast<float>(cb[j * k + cols[c]]) * scb[per_row ? j : 0] *
                LOWBIT_INT8_INV_QMAX;
    }
    if (round_cols) {
      FromF32(wcol, n, tmp, x.dtype);
      ToF32(tmp, x.dtype, n, wcol);
    }
    for (int64_t i = 0; i < m; ++i) {
      const float xv = outlier_x[static_cast<size_t>(i) * num_cols + c];
      for (int64_t j = 0; j < n; ++j) out[i * n + j] += xv * wcol[j];
    }
  }
  FromF32(out, m * n, y.data, y.dtype);
}

std::string Linear8bit::Describe() const {
  std::string s = "Linear8bit(in=" + std::to_string(in_features_) +
                  ", out=" + std::to_string(out_features_) + ", " + FormatName(weight_format());
  if (is_quantized()) {
    s += options_.per_channel ? " per-row" : " per-tensor";
    if (!options_.symmetric || !options_.int8_activations) {
      s += ", weight-only";
    } else if (options_.threshold > 0) {
      s += ", threshold " + std::to_string(options_.threshold);
    }
  } else {
    s += " training weights";
  }
  return s + (has_bias() ? ", bias): " : "): ") + Kib(StorageBytes());
}

// ---- Linear4bit --------------------------------------------------------------------------------

Linear4bit::Linear4bit(int64_t in_features, int64_t out_features, bool bias,
                       const Linear4bitOptions& options, NoInit)
    : QuantLinear(in_features, out_features, bias), options_(options) {
  const Format f = options.quant_type;
  Require(IsFourBit(f), Status::kUnsupportedFormat,
          std::string("Linear4bit: quant_type must be nf4, fp4, int4 or int4_asym, got ") +
              FormatName(f));
  Require(!options.compress_statistics || GetFormatInfo(f).supports_double_quant,
          Status::kInvalidArgument,
          std::string("Linear4bit: compress_statistics is only defined for nf4/fp4, not ") +
              FormatName(f));
  Require(IsFloatActivation(options.compute_dtype), Status::kInvalidArgument,
          std::string("Linear4bit: compute_dtype must be f32, f16 or bf16, got ") +
              DTypeName(options.compute_dtype));
}

Linear4bit::Linear4bit(int64_t in_features, int64_t out_features, bool bias,
                       const Linear4bitOptions& options, uint64_t seed)
    : Linear4bit(in_features, out_features, bias, options, NoInit{}) {
  InitUniform(seed);
}

std::unique_ptr<Linear4bit> Linear4bit::FromLinear(int64_t in_features, int64_t out_features,
                                                   const float* w, const float* bias,
                                                   const Linear4bitOptions& options) {
  std::unique_ptr<Linear4bit> layer(
      new Linear4bit(in_features, out_features, bias != nullptr, options, NoInit{}));
  layer->SetWeight(w, bias);
  return layer;
}

std::unique_ptr<Linear4bit> Linear4bit::FromQuantized(QuantizedTensor w, const float* bias,
                                                      DType compute_dtype) {
  ValidateQuantizedTensor(w);
  Require(w.state.shape.size() == 2, Status::kInvalidArgument,
          "Linear4bit::FromQuantized: weight must be 2-D [out, in], got " +
              ShapeToString(w.state.shape));
  Linear4bitOptions o;
  o.quant_type = w.format();
  o.block_size = w.state.block_size;
  o.compress_statistics = w.state.nested.has_value();
  o.compute_dtype = compute_dtype;
  std::unique_ptr<Linear4bit> layer(
      new Linear4bit(w.state.shape[1], w.state.shape[0], bias != nullptr, o, NoInit{}));
  layer->Install(std::move(w));
  layer->SetBias(bias);
  return layer;
}

void Linear4bit::SetWeight(const float* w, const float* bias) {
  QuantizeOptions o;
  o.block_size = options_.block_size;
  o.double_quant = options_.compress_statistics;
  Install(Quantize(options_.quant_type, WeightView(w), o));
  SetBias(bias);
}

void Linear4bit::Forward(const ConstTensorView& x, const TensorView& y, Context* ctx) const {
  const DType cd = options_.compute_dtype;
  if (cd == DType::kF32) {
    QuantLinear::Forward(x, y, ctx);
    return;
  }
  // bnb: x.to(compute_dtype), product in compute_dtype, cast back to y's dtype.
  const int64_t m = RowsOf(x, in_features_, "Linear4bit x");
  const int64_t nx = m * in_features_, ny = m * out_features_;
  // Per-thread workspaces and views (this forward is const and may run on several threads at
  // once); the views' Shape vectors keep their capacity, so a warm call allocates nothing.
  ThreadScratch<float, struct Linear4bitTmpTag> tmp_scratch;
  ThreadScratch<uint16_t, struct Linear4bitXTag> xc_scratch;
  ThreadScratch<uint16_t, struct Linear4bitYTag> yc_scratch;
  float* tmp = tmp_scratch.Resize(static_cast<size_t>(std::max(nx, ny)));
  uint16_t* xc = xc_scratch.Resize(static_cast<size_t>(nx));
  uint16_t* yc = yc_scratch.Resize(static_cast<size_t>(ny));
  ToF32(x.data, x.dtype, nx, tmp);
  FromF32(tmp, nx, xc, cd);
  Require(ValidateView(y, "Linear4bit y") == ny, Status::kInvalidArgument, [&] {
    return "Linear4bit: y " + ShapeToString(y.shape) + " must hold " + std::to_string(ny) +
           " elements";
  });
  const ThreadMatmulViews<struct Linear4bitViewTag> views(xc, yc, cd, x.shape, y.shape);
  Matmul(packed(), views.x(), views.y(), has_bias() ? bias_.data() : nullptr, ctx);
  ToF32(yc, cd, ny, tmp);
  FromF32(tmp, ny, y.data, y.dtype);
}

std::string Linear4bit::Describe() const {
  return "Linear4bit(in=" + std::to_string(in_features_) +
         ", out=" + std::to_string(out_features_) + ", " + FormatName(weight_format()) +
         (IsFourBit(weight_format()) && (weight_format() == Format::kInt4 ||
                                         weight_format() == Format::kInt4Asym)
              ? " group "
              : " block ") +
         std::to_string(weight_.state.block_size) + (weight_.state.nested ? " dq" : "") +
         ", compute " + DTypeName(options_.compute_dtype) + (has_bias() ? ", bias): " : "): ") +
         Kib(StorageBytes());
}

// ---- LinearFP8 ---------------------------------------------------------------------------------

LinearFP8::LinearFP8(int64_t in_features, int64_t out_features, bool bias,
                     const LinearFP8Options& options, NoInit)
    : QuantLinear(in_features, out_features, bias), options_(options) {
  Require(options.fp8_format == Format::kFP8E4M3 || options.fp8_format == Format::kFP8E5M2,
          Status::kUnsupportedFormat,
          std::string("LinearFP8: fp8_format must be fp8_e4m3 or fp8_e5m2, got ") +
              FormatName(options.fp8_format));
}

LinearFP8::LinearFP8(int64_t in_features, int64_t out_features, bool bias,
                     const LinearFP8Options& options, uint64_t seed)
    : LinearFP8(in_features, out_features, bias, options, NoInit{}) {
  InitUniform(seed);
}

std::unique_ptr<LinearFP8> LinearFP8::FromLinear(int64_t in_features, int64_t out_features,
                                                 const float* w, const float* bias,
                                                 const LinearFP8Options& options) {
  std::unique_ptr<LinearFP8> layer(
      new LinearFP8(in_features, out_features, bias != nullptr, options, NoInit{}));
  layer->SetWeight(w, bias);
  return layer;
}

void LinearFP8::SetWeight(const float* w, const float* bias) {
  Install(QuantizeFP8(WeightView(w), options_.fp8_format,
                      options_.per_channel ? Granularity::kRow : Granularity::kTensor));
  SetBias(bias);
}

std::string LinearFP8::Describe() const {
  return "LinearFP8(in=" + std::to_string(in_features_) +
         ", out=" + std::to_string(out_features_) + ", " + FormatName(weight_format()) +
         (options_.per_channel ? " per-row" : " per-tensor") + (has_bias() ? ", bias): " : "): ") +
         Kib(StorageBytes());
}

}  // namespace lowbit::nn
