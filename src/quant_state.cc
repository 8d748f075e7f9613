// QuantState geometry, statistic resolution (double quant), and validation of quantized tensors.
#include "lowbit/quant_state.h"

#include <cmath>
#include <string>

#include "reference/reference.h"

namespace lowbit {

int64_t QuantState::rows() const {
  if (shape.size() <= 1) return 1;
  return NumElements(Shape(shape.begin(), shape.end() - 1));
}
int64_t QuantState::cols() const { return shape.empty() ? 0 : shape.back(); }
int64_t QuantState::num_elements() const { return NumElements(shape); }

std::vector<float> ResolveScales(const QuantState& state) {
  if (!state.nested) return state.scales;
  const int64_t n = static_cast<int64_t>(state.nested->codes.size());
  std::vector<float> values(static_cast<size_t>(n));
  ref::DecompressStatistics(*state.nested, n, values.data());
  return values;
}

namespace {
bool AllFinite(const std::vector<float>& v) {
  for (const float f : v) {
    if (!std::isfinite(f)) return false;
  }
  return true;
}
// " <value> at index <i>" for the first non-finite entry of v (call only when !AllFinite(v)).
std::string FirstNonFinite(const std::vector<float>& v) {
  for (size_t i = 0; i < v.size(); ++i) {
    if (!std::isfinite(v[i])) return " " + std::to_string(v[i]) + " at index " + std::to_string(i);
  }
  return "";
}
// Statistics stored in a narrow type (mxfp4: E8M0 powers of two; nvfp4: E4M3 values >= 0;
// iq4_nl: f16) must be exact values of it, so files and kernels see the same numbers.
void RequireStatisticsRepresentable(const FormatInfo& info, const std::vector<float>& scales,
                                    Status status, const std::string& where) {
  const DType t = info.statistic_dtype;
  if (t == DType::kF32) return;
  for (size_t i = 0; i < scales.size(); ++i) {
    const float v = scales[i];
    const bool ok = t == DType::kU8     ? E8M0FromFloat(v) >= 0
                    : t == DType::kF16 ? F16ToF32(F32ToF16(v)) == v
                                       : (v >= 0.0f && FP8E4M3ToF32(F32ToFP8E4M3(v)) == v);
    Require(ok, status,
            where + ": scale " + std::to_string(v) + " at index " + std::to_string(i) +
                " is not " + (t == DType::kU8    ? "a power of two in 2^-127..2^127 (E8M0)"
                              : t == DType::kF16 ? "an f16 value"
                                                 : "a non-negative E4M3 value"));
  }
}
}  // namespace

void ValidateQuantizedTensor(const QuantizedTensor& q, Status status) {
  const QuantState& s = q.state;
  const FormatInfo& info = GetFormatInfo(s.format);
  const std::string where = std::string(info.name) + " tensor " + ShapeToString(s.shape);
  Require(!s.shape.empty(), status, where + ": empty shape");
  for (const int64_t d : s.shape) Require(d > 0, status, where + ": dimensions must be positive");
  const int64_t n = NumElements(s.shape);
  const int64_t payload = PayloadBytes(s.format, n);
  Require(static_cast<int64_t>(q.data.size()) == payload, status,
          where + ": payload is " + std::to_string(q.data.size()) + " bytes, expected " +
              std::to_string(payload));
  Require(IsFloatActivation(s.dtype), status,
          where + ": original dtype must be f32, f16 or bf16, got " + DTypeName(s.dtype));
  Require(static_cast<int>(s.granularity) <= static_cast<int>(Granularity::kNone) &&
              ((info.granularities >> static_cast<int>(s.granularity)) & 1u),
          status,
          where + ": granularity " + std::to_string(static_cast<int>(s.granularity)) +
              " is not allowed for this format");
  if (s.granularity == Granularity::kBlock || s.granularity == Granularity::kGroup) {
    Require(s.block_size >= info.min_block && s.block_size <= info.max_block &&
                (s.block_size & (s.block_size - 1)) == 0,
            status, where + ": block size " + std::to_string(s.block_size) + " must be a power of two in [" +
                        std::to_string(info.min_block) + ", " + std::to_string(info.max_block) + "]");
  }
  if (IsDense(s.format)) return;
  const int64_t nscales = s.num_scales();
  if (s.nested) {
    Require(info.supports_double_quant, status, where + ": format has no double quantization");
    const NestedState& ns = *s.nested;
    Require(s.scales.empty(), status, where + ": both plain and nested statistics present");
    Require(static_cast<int64_t>(ns.codes.size()) == nscales, status,
            where + ": nested codes count " + std::to_string(ns.codes.size()) + " != " +
                std::to_string(nscales));
    Require(ns.block_size > 0, status, where + ": nested block size must be positive");
    Require(static_cast<int64_t>(ns.absmax.size()) == (nscales + ns.block_size - 1) / ns.block_size,
            status, where + ": nested absmax count " + std::to_string(ns.absmax.size()) + " is wrong");
    Require(ns.code.size() == 256, status, where + ": nested code map must have 256 entries");
    Require(AllFinite(ns.absmax) && AllFinite(ns.code) && std::isfinite(ns.offset), status,
            where + ": non-finite nested statistics");
  } else {
    Require(static_cast<int64_t>(s.scales.size()) == nscales, status,
            where + ": " + std::to_string(s.scales.size()) + " scales, expected " + std::to_string(nscales));
    Require(AllFinite(s.scales), status, where + ": non-finite scale" + FirstNonFinite(s.scales));
    RequireStatisticsRepresentable(info, s.scales, status, where);
  }
  if (info.has_tensor_scale) {
    Require(std::isfinite(s.tensor_scale) && s.tensor_scale >= 0.0f, status,
            where + ": tensor scale must be finite and >= 0, got " + std::to_string(s.tensor_scale));
  } else {
    Require(s.tensor_scale == 1.0f, status, where + ": this format has no tensor scale");
  }
  if (info.has_zero_point) {
    Require(static_cast<int64_t>(s.zero_points.size()) == nscales, status,
            where + ": " + std::to_string(s.zero_points.size()) + " zero points, expected " +
                std::to_string(nscales));
    const int qmax = info.code_bits == 4 ? LOWBIT_INT4_ASYM_QMAX : LOWBIT_UINT8_QMAX;
    for (const uint8_t z : s.zero_points) {
      Require(z <= qmax, status, where + ": zero point " + std::to_string(z) + " out of range");
    }
  } else {
    Require(s.zero_points.empty(), status, where + ": unexpected zero points");
  }
  Require(static_cast<int>(s.codebook.size()) == info.codebook_size, status,
          where + ": codebook has " + std::to_string(s.codebook.size()) + " entries, expected " +
              std::to_string(info.codebook_size));
  Require(AllFinite(s.codebook), status, where + ": non-finite codebook entry");
}

}  // namespace lowbit
