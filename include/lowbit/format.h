// lowbit/format.h — the runtime format table (FormatInfo), built from the codecs of
// lowbit/codecs/ (the one definition of each format), and the queries callers use.
#ifndef LOWBIT_FORMAT_H_
#define LOWBIT_FORMAT_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "lowbit/codecs/codecs.h"
#include "lowbit/dtype.h"
#include "lowbit/format_layout.h"
#include "lowbit/format_types.h"
#include "lowbit/status.h"

namespace lowbit {

// Scalar reference codecs: the oracles every kernel is tested against (src/reference/).
struct QuantizedTensor;
struct QuantizeOptions;
using ReferenceQuantizeFn = void (*)(const float* x, const QuantizeOptions& options,
                                     QuantizedTensor& out);
using ReferenceDequantizeFn = void (*)(const QuantizedTensor& q, float* out);

// Everything callers need to know about a format. Get it with GetFormatInfo; never hand-code
// byte arithmetic from these fields (use PayloadBytes / NumScales).
struct FormatInfo {
  Format format;
  const char* name;               // stable, persisted: "nf4", "int4_asym", ...
  int code_bits;                  // bits of payload per element (32, 16, 8 or 4)
  DType dense_dtype;              // for kF32/kF16/kBF16: the element dtype; else kU8
  Granularity default_granularity;
  uint32_t granularities;         // bit mask (1 << Granularity) of the allowed granularities
  int64_t default_block;          // block / group size; 0 when not blocked
  int64_t min_block, max_block;   // allowed range (powers of two) when blocked
  ScaleKind scale_kind;
  DType statistic_dtype;          // how files store one statistic: kF32, kU8 (mxfp4's E8M0
                                  // bytes) or kF8E4M3 (nvfp4); QuantState holds them as float
  bool has_zero_point;
  bool has_tensor_scale;          // a second-level float32 scale per tensor (nvfp4)
  const float* codebook;          // lowbit's canonical table, or nullptr
  int codebook_size;              // 16, 256 or 0
  const float* code_values;       // 4-bit formats: the 16 values of the codes before scaling
                                  // (canonical codebook, c - 8 for int4, E2M1), else nullptr
  bool supports_double_quant;     // nested quantization of the absmax
  Format activation_partner;      // format activations are quantized to for integer dot
                                  // products (kInt8 for int8/int4), else kF32
  ReferenceQuantizeFn reference_quantize;      // nullptr for dense formats
  ReferenceDequantizeFn reference_dequantize;  // nullptr for dense formats
};

// The table entry of `format`; throws Error(kUnsupportedFormat) for an unknown value.
const FormatInfo& GetFormatInfo(Format format);
// Stable name of `format` ("nf4"); "unknown" for an invalid value. Never throws.
const char* FormatName(Format format) noexcept;
// Inverse of FormatName (also "fp8_e4m3"/"e4m3", "int8_row", "blockwise8"/"dynamic8").
// Throws Error(kUnsupportedFormat) naming the string when unknown.
Format FormatFromName(std::string_view name);
namespace format_internal {
template <class... C>
constexpr int CodeBitsOf(Format f, CodecList<C...>*) {
  int bits = 0;
  ((bits = (C::kFormat == f) ? C::kCodeBits : bits), ...);
  return bits;
}
template <class... C>
constexpr bool DenseOf(Format f, CodecList<C...>*) {
  bool dense = false;
  ((dense = (C::kFormat == f) ? C::kScaleKind == ScaleKind::kNone : dense), ...);
  return dense;
}
}  // namespace format_internal
// Bits of payload per element (32, 16, 8 or 4); 0 for a value outside the enum.
constexpr int CodeBits(Format f) {
  return format_internal::CodeBitsOf(f, static_cast<AllCodecs*>(nullptr));
}
// True for the 4-bit formats (nf4, fp4, int4, int4_asym, mxfp4, nvfp4): two elements per byte,
// the first in the high nibble.
constexpr bool IsFourBit(Format f) { return CodeBits(f) == 4; }
// True for f32, f16, bf16 (no statistics).
constexpr bool IsDense(Format f) {
  return format_internal::DenseOf(f, static_cast<AllCodecs*>(nullptr));
}

// The one bridge from a runtime Format to its codec type: calls fn(Codec{}) and returns its
// result (every branch must return the same type). Throws Error(kUnsupportedFormat) for a value
// outside the enum.
template <class Fn>
decltype(auto) VisitFormat(Format format, Fn&& fn) {
  const int index = static_cast<int>(format);
  if (index < 0 || index >= kNumFormats) {
    ThrowError(Status::kUnsupportedFormat, "unknown format value " + std::to_string(index));
  }
  return codecs_internal::Visit<0>(index, std::forward<Fn>(fn), static_cast<AllCodecs*>(nullptr));
}

// Canonical payload bytes of a tensor of `num_elements` elements in `format`
// (4-bit: ceil(n / 2); 8-bit: n; dense: n * element size). Throws on an unknown format or n < 0.
int64_t PayloadBytes(Format format, int64_t num_elements);

// Canonical tables, owned by their codecs (names kept for existing callers).
inline constexpr const float (&kNF4Codebook)[16] = NF4Codec::kTable;
inline constexpr const float (&kFP4Codebook)[16] = FP4Codec::kTable;
inline constexpr const float (&kNF4Thresholds)[15] = NF4Codec::kThresholds;
inline constexpr const float (&kFP4Thresholds)[7] = FP4Codec::kThresholds;
inline constexpr const uint8_t (&kFP4ThresholdCodes)[7] = FP4Codec::kThresholdCodes;
inline constexpr const float (&kDynamicMap)[256] = Blockwise8Codec::kTable;

}  // namespace lowbit

#endif  // LOWBIT_FORMAT_H_
