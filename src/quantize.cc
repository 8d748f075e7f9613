// The functional API: argument validation, option resolution, and dispatch to the reference codecs.
#include "lowbit/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "backend.h"
#include "reference/reference.h"

namespace lowbit {

namespace {

// Input as float32: a view of the caller's data when it already is f32, else a converted copy.
class F32Input {
 public:
  F32Input(const ConstTensorView& x, int64_t n) {
    if (x.dtype == DType::kF32) {
      ptr_ = static_cast<const float*>(x.data);
    } else {
      copy_.resize(static_cast<size_t>(n));
      ToF32(x.data, x.dtype, n, copy_.data());
      ptr_ = copy_.data();
    }
  }
  const float* get() const { return ptr_; }

 private:
  const float* ptr_ = nullptr;
  std::vector<float> copy_;
};

QuantState ResolveState(Format format, const ConstTensorView& x, const QuantizeOptions& o) {
  const FormatInfo& info = GetFormatInfo(format);
  QuantState s;
  s.format = format;
  s.shape = x.shape;
  s.dtype = x.dtype;
  s.granularity = (o.granularity == Granularity::kDefault) ? info.default_granularity : o.granularity;
  Require(static_cast<int>(s.granularity) <= static_cast<int>(Granularity::kNone) &&
              ((info.granularities >> static_cast<int>(s.granularity)) & 1u),
          Status::kInvalidArgument,
          std::string(info.name) + " does not support granularity " +
              std::to_string(static_cast<int>(s.granularity)) +
              " (int8/int8_asym/fp8 take row or tensor; block formats take their block)");
  if (s.granularity == Granularity::kBlock || s.granularity == Granularity::kGroup) {
    s.block_size = (o.block_size == 0) ? info.default_block : o.block_size;
    Require(s.block_size >= info.min_block && s.block_size <= info.max_block &&
                (s.block_size & (s.block_size - 1)) == 0,
            Status::kInvalidArgument,
            std::string(info.name) + ": block size " + std::to_string(s.block_size) +
                " must be a power of two in [" + std::to_string(info.min_block) + ", " +
                std::to_string(info.max_block) + "]");
  } else {
    Require(o.block_size == 0, Status::kInvalidArgument,
            std::string(info.name) + " takes no block size, got " + std::to_string(o.block_size));
  }
  Require(!o.double_quant || info.supports_double_quant, Status::kInvalidArgument,
          std::string(info.name) + " has no double quantization (nf4, fp4 and blockwise8 do)");
  Require(std::isnan(o.nested_offset) || std::isfinite(o.nested_offset), Status::kInvalidArgument,
          "nested_offset must be finite or NaN (= compute the mean), got " +
              std::to_string(o.nested_offset));
  return s;
}

// Quantized formats need finite weights: throws kInvalidArgument naming the first bad index.
void RequireFinite(const float* xf, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(xf[i])) {
      throw Error(Status::kInvalidArgument,
                  "Quantize input: non-finite value " + std::to_string(xf[i]) + " at flat index " +
                      std::to_string(i) + " (quantized formats need finite weights)");
    }
  }
}

// Dequantize's common frame: validates q and out (same element count), lets fill(n, dst) write
// the n float32 values (into out itself when it is f32, else a temporary), converts to out.dtype.
template <class Fill>
void DequantizeVia(const QuantizedTensor& q, const TensorView& out, Fill fill) {
  ValidateQuantizedTensor(q);
  const int64_t n_out = ValidateView(out, "Dequantize output");
  const int64_t n = q.state.num_elements();
  Require(n_out == n, Status::kInvalidArgument,
          "Dequantize output has " + std::to_string(n_out) + " elements, tensor has " +
              std::to_string(n) + " (" + ShapeToString(q.state.shape) + ")");
  std::vector<float> tmp;
  float* dst = static_cast<float*>(out.data);
  if (out.dtype != DType::kF32) {
    tmp.resize(static_cast<size_t>(n));
    dst = tmp.data();
  }
  fill(n, dst);
  if (out.dtype != DType::kF32) FromF32(dst, n, out.data, out.dtype);
}

// Quantize on backend `b` (its quantize entry; the CPU backend's when b has none).
QuantizedTensor QuantizeOn(const Backend& b, Format format, const ConstTensorView& x,
                           const QuantizeOptions& options) {
  const int64_t n = ValidateView(x, "Quantize input");
  const FormatInfo& info = GetFormatInfo(format);
  QuantizedTensor out;
  out.state = ResolveState(format, x, options);
  out.data.resize(static_cast<size_t>(PayloadBytes(format, n)));
  F32Input in(x, n);
  if (IsDense(format)) {
    FromF32(in.get(), n, out.data.data(), info.dense_dtype);
    return out;
  }
  const float* xf = in.get();
  RequireFinite(xf, n);
  const Backend& runner = (b.quantize != nullptr) ? b : CpuBackend();
  if (&runner != &CpuBackend()) {
    const std::string reason =
        runner.supports(format, BackendOp::kQuantize, x.dtype, MatmulOptions{});
    Require(reason.empty(), Status::kUnsupportedFormat,
            std::string("Quantize: backend '") + runner.name + "' cannot quantize " +
                FormatName(format) + ": " + reason);
  }
  runner.quantize(xf, options, out);
  return out;
}


}  // namespace

QuantizedTensor Quantize(Format format, const ConstTensorView& x, const QuantizeOptions& options) {
  return QuantizeOn(CpuBackend(), format, x, options);
}

void Dequantize(const QuantizedTensor& q, const TensorView& out) {
  DequantizeVia(q, out, [&](int64_t n, float* dst) {
    if (IsDense(q.state.format)) {
      ToF32(q.data.data(), GetFormatInfo(q.state.format).dense_dtype, n, dst);
    } else {
      CpuBackend().dequantize(q, dst);  // SIMD, bit-identical to the format's reference_dequantize
    }
  });
}

QuantizedTensor Quantize(Format format, const ConstTensorView& x, const QuantizeOptions& options,
                         const std::string& backend) {
  return QuantizeOn(FindBackend(backend), format, x, options);
}

void Dequantize(const QuantizedTensor& q, const TensorView& out, const std::string& backend) {
  const Backend& b = FindBackend(backend);
  if (b.dequantize == nullptr || IsDense(q.state.format) || &b == &CpuBackend()) {
    return Dequantize(q, out);
  }
  DequantizeVia(q, out, [&](int64_t, float* dst) { b.dequantize(q, dst); });
}

std::vector<float> DequantizeToF32(const QuantizedTensor& q) {
  ValidateQuantizedTensor(q);
  std::vector<float> out(static_cast<size_t>(q.state.num_elements()));
  Dequantize(q, TensorView{out.data(), DType::kF32, {static_cast<int64_t>(out.size())}});
  return out;
}

QuantizedTensor Quantize4bit(const ConstTensorView& x, Format quant_type, int64_t block_size,
                             bool compress_statistics) {
  Require(quant_type == Format::kNF4 || quant_type == Format::kFP4, Status::kInvalidArgument,
          std::string("Quantize4bit: quant_type must be nf4 or fp4, got ") + FormatName(quant_type));
  QuantizeOptions o;
  o.block_size = block_size;
  o.double_quant = compress_statistics;
  return Quantize(quant_type, x, o);
}
QuantizedTensor QuantizeNF4(const ConstTensorView& x, int64_t block_size, bool double_quant) {
  return Quantize4bit(x, Format::kNF4, block_size, double_quant);
}
QuantizedTensor QuantizeFP4(const ConstTensorView& x, int64_t block_size, bool double_quant) {
  return Quantize4bit(x, Format::kFP4, block_size, double_quant);
}
QuantizedTensor QuantizeBlockwise(const ConstTensorView& x, int64_t block_size, bool nested) {
  QuantizeOptions o;
  o.block_size = block_size;
  o.double_quant = nested;
  return Quantize(Format::kBlockwise8, x, o);
}
QuantizedTensor QuantizeInt8(const ConstTensorView& x, Granularity g) {
  QuantizeOptions o;
  o.granularity = g;
  return Quantize(Format::kInt8, x, o);
}
QuantizedTensor QuantizeInt4(const ConstTensorView& x, int64_t group_size, bool symmetric) {
  QuantizeOptions o;
  o.block_size = group_size;
  return Quantize(symmetric ? Format::kInt4 : Format::kInt4Asym, x, o);
}
QuantizedTensor QuantizeFP8(const ConstTensorView& x, Format fp8_format, Granularity g) {
  Require(fp8_format == Format::kFP8E4M3 || fp8_format == Format::kFP8E5M2,
          Status::kInvalidArgument,
          std::string("QuantizeFP8: format must be fp8_e4m3 or fp8_e5m2, got ") + FormatName(fp8_format));
  QuantizeOptions o;
  o.granularity = g;
  return Quantize(fp8_format, x, o);
}

Int8VectorwiseResult Int8VectorwiseQuant(const ConstTensorView& x, float threshold) {
  const int64_t n = ValidateView(x, "Int8VectorwiseQuant input");
  Require(x.shape.size() == 2, Status::kInvalidArgument,
          "Int8VectorwiseQuant: input must be 2-D [rows, cols], got " + ShapeToString(x.shape));
  Require(std::isfinite(threshold) && threshold >= 0.0f, Status::kInvalidArgument,
          "Int8VectorwiseQuant: threshold must be finite and >= 0, got " + std::to_string(threshold));
  const int64_t rows = x.shape[0], cols = x.shape[1];
  F32Input in(x, n);
  const float* a = in.get();
  Int8VectorwiseResult r;
  r.codes.assign(static_cast<size_t>(n), 0);
  r.row_stats.assign(static_cast<size_t>(rows), 0.0f);
  std::vector<bool> outlier(static_cast<size_t>(cols), false);
  const auto is_outlier = [&](float v) { return threshold > 0.0f && std::fabs(v) >= threshold; };
  for (int64_t i = 0; i < n; ++i) {
    Require(!std::isnan(a[i]), Status::kInvalidArgument,
            "Int8VectorwiseQuant: NaN at flat index " + std::to_string(i));
    // +-Inf is acceptable only as an outlier (kept in the original dtype by the caller).
    Require(std::isfinite(a[i]) || is_outlier(a[i]), Status::kInvalidArgument,
            "Int8VectorwiseQuant: non-finite value " + std::to_string(a[i]) + " at flat index " +
                std::to_string(i) + " (only allowed as an outlier, threshold > 0)");
    if (is_outlier(a[i])) outlier[i % cols] = true;
  }
  for (int64_t r0 = 0; r0 < rows; ++r0) {
    float amax = 0.0f;
    for (int64_t c = 0; c < cols; ++c) {
      const float v = a[r0 * cols + c];
      if (!is_outlier(v)) amax = std::max(amax, std::fabs(v));
    }
    r.row_stats[r0] = amax;
    const float mul = amax > 0.0f ? static_cast<float>(LOWBIT_INT8_QMAX) / amax : 0.0f;
    for (int64_t c = 0; c < cols; ++c) {
      const float v = a[r0 * cols + c];
      // Outlier elements are zeroed; with rows > 1 whole outlier columns are (bitsandbytes).
      if (is_outlier(v) || (rows > 1 && outlier[c])) continue;
      r.codes[r0 * cols + c] = static_cast<int8_t>(std::clamp(std::nearbyint(v * mul), -127.0f, 127.0f));
    }
  }
  for (int64_t c = 0; c < cols; ++c) {
    if (outlier[c]) r.outlier_cols.push_back(c);
  }
  return r;
}

QuantInfo GetQuantInfo(const QuantizedTensor& q) {
  ValidateQuantizedTensor(q);
  const QuantState& s = q.state;
  QuantInfo info{};
  info.format = s.format;
  info.shape = s.shape;
  info.granularity = s.granularity;
  info.block_size = s.block_size;
  info.double_quant = s.nested.has_value();
  info.payload_bytes = static_cast<int64_t>(q.data.size());
  // Statistics in their stored type (f32; one byte for mxfp4's E8M0 and nvfp4's E4M3), plus the
  // tensor scale where the format has one: the bytes a file holds.
  const FormatInfo& fi = GetFormatInfo(s.format);
  int64_t stats = static_cast<int64_t>(s.scales.size() * DTypeSize(fi.statistic_dtype) +
                                       s.zero_points.size() + s.codebook.size() * sizeof(float) +
                                       (fi.has_tensor_scale ? sizeof(float) : 0));
  if (s.nested) {
    stats += static_cast<int64_t>(s.nested->codes.size() + s.nested->absmax.size() * sizeof(float) +
                                  s.nested->code.size() * sizeof(float) + sizeof(float));
  }
  info.statistic_bytes = stats;
  info.total_bytes = info.payload_bytes + stats;
  const int64_t n = s.num_elements();
  info.bits_per_weight = 8.0 * static_cast<double>(info.total_bytes) / static_cast<double>(n);
  info.compression_ratio = static_cast<double>(n * static_cast<int64_t>(DTypeSize(s.dtype))) /
                           static_cast<double>(info.total_bytes);
  return info;
}

std::string ToString(const QuantInfo& info) {
  char buf[256];
  std::string block;
  if (info.block_size > 0) block = " block " + std::to_string(info.block_size);
  std::snprintf(buf, sizeof(buf), "%s %s%s%s: %lld bytes, %.3f bits/weight, %.2fx smaller",
                FormatName(info.format), ShapeToString(info.shape).c_str(), block.c_str(),
                info.double_quant ? " dq" : "", static_cast<long long>(info.total_bytes),
                info.bits_per_weight, info.compression_ratio);
  return buf;
}

}  // namespace lowbit
