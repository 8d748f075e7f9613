// lowbit/format.h — the weight formats: runtime table (Format, FormatInfo) and compile-time tags.
#ifndef LOWBIT_FORMAT_H_
#define LOWBIT_FORMAT_H_

#include <cstdint>
#include <string_view>

#include "lowbit/dtype.h"
#include "lowbit/format_layout.h"
#include "lowbit/status.h"

namespace lowbit {

// Append-only: the numbers are persisted (files, packed weights, the C ABI). Never renumber.
enum class Format : uint8_t {
  kF32 = 0,             // dense float32 (baseline / reference)
  kF16 = 1,             // dense IEEE float16
  kBF16 = 2,            // dense bfloat16
  kInt8 = 3,            // int8 symmetric, absmax per row or tensor (LLM.int8 weights: CB + SCB)
  kInt8Asym = 4,        // uint8 asymmetric with zero point, per row or tensor
  kInt4 = 5,            // int4 symmetric per group along each row, scale = absmax / 7
  kInt4Asym = 6,        // int4 asymmetric per group along each row, zero point per group
  kNF4 = 7,             // bitsandbytes NF4, flat blocks
  kFP4 = 8,             // bitsandbytes FP4, flat blocks
  kFP8E4M3 = 9,         // OCP FP8 E4M3 with float32 scale per row or tensor
  kFP8E5M2 = 10,        // OCP FP8 E5M2 with float32 scale per row or tensor
  kBlockwise8 = 11,     // bitsandbytes dynamic 8-bit map, flat blocks
};
inline constexpr int kNumFormats = 12;

// How statistics (scales, absmax, zero points) map onto elements.
enum class Granularity : uint8_t {
  kDefault = 0,  // the format's default (options only; never stored)
  kBlock = 1,    // one per `block_size` consecutive elements of the flattened tensor (may span rows)
  kGroup = 2,    // one per `block_size` consecutive elements of each row; the last group of a row
                 // may be shorter (ceil(cols / block_size) groups per row)
  kRow = 3,      // one per row (rows = product of all dims but the last)
  kTensor = 4,   // one for the whole tensor
  kNone = 5,     // no statistics (dense formats)
};

// What the stored per-scale float means.
enum class ScaleKind : uint8_t {
  kNone = 0,
  kAbsmax = 1,  // x = code_value * absmax (nf4, fp4, blockwise8) or code * absmax / 127 (int8)
  kScale = 2,   // x = (code - zero) * scale (int4, int4_asym, int8_asym) or fp8(code) * scale
};

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
  bool has_zero_point;
  const float* codebook;          // lowbit's canonical table, or nullptr
  int codebook_size;              // 16, 256 or 0
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
// True for nf4, fp4, int4, int4_asym: two elements per byte, first element in the high nibble.
constexpr bool IsFourBit(Format f) {
  return f == Format::kNF4 || f == Format::kFP4 || f == Format::kInt4 || f == Format::kInt4Asym;
}
constexpr bool IsDense(Format f) {
  return f == Format::kF32 || f == Format::kF16 || f == Format::kBF16;
}

// Canonical payload bytes of a tensor of `num_elements` elements in `format`
// (4-bit: ceil(n / 2); 8-bit: n; dense: n * element size). Throws on an unknown format or n < 0.
int64_t PayloadBytes(Format format, int64_t num_elements);

// ----------------------------------------------------------------------------------------------
// Compile-time tier: one tag per format with the same constants as constexpr, for kernels.
// Codec traits (encode span / decode vectors / decode tail) live per backend, e.g.
// kernels/cpu/codecs-inl.h, and are specialized on these tags.
template <Format F, int kCodeBits, bool kHasZeroPoint>
struct FormatTagBase {
  static constexpr Format kFormat = F;
  static constexpr int kBits = kCodeBits;
  static constexpr bool kZeroPoint = kHasZeroPoint;
  static constexpr bool kFourBit = (kCodeBits == 4);
};
struct F32Tag : FormatTagBase<Format::kF32, 32, false> {};
struct F16Tag : FormatTagBase<Format::kF16, 16, false> {};
struct BF16Tag : FormatTagBase<Format::kBF16, 16, false> {};
struct Int8Tag : FormatTagBase<Format::kInt8, 8, false> {};
struct Int8AsymTag : FormatTagBase<Format::kInt8Asym, 8, true> {};
struct Int4Tag : FormatTagBase<Format::kInt4, 4, false> {};
struct Int4AsymTag : FormatTagBase<Format::kInt4Asym, 4, true> {};
struct NF4Tag : FormatTagBase<Format::kNF4, 4, false> {};
struct FP4Tag : FormatTagBase<Format::kFP4, 4, false> {};
struct FP8E4M3Tag : FormatTagBase<Format::kFP8E4M3, 8, false> {};
struct FP8E5M2Tag : FormatTagBase<Format::kFP8E5M2, 8, false> {};
struct Blockwise8Tag : FormatTagBase<Format::kBlockwise8, 8, false> {};

// The one bridge from a runtime Format to its tag: calls fn(Tag{}) and returns its result.
// Throws Error(kUnsupportedFormat) for an unknown value.
template <class Fn>
decltype(auto) VisitFormat(Format format, Fn&& fn) {
  switch (format) {
    case Format::kF32: return fn(F32Tag{});
    case Format::kF16: return fn(F16Tag{});
    case Format::kBF16: return fn(BF16Tag{});
    case Format::kInt8: return fn(Int8Tag{});
    case Format::kInt8Asym: return fn(Int8AsymTag{});
    case Format::kInt4: return fn(Int4Tag{});
    case Format::kInt4Asym: return fn(Int4AsymTag{});
    case Format::kNF4: return fn(NF4Tag{});
    case Format::kFP4: return fn(FP4Tag{});
    case Format::kFP8E4M3: return fn(FP8E4M3Tag{});
    case Format::kFP8E5M2: return fn(FP8E5M2Tag{});
    case Format::kBlockwise8: return fn(Blockwise8Tag{});
  }
  throw Error(Status::kUnsupportedFormat,
              "unknown format value " + std::to_string(static_cast<int>(format)));
}

// Canonical codebooks, instantiated once from format_layout.h.
extern const float kNF4Codebook[16];
extern const float kFP4Codebook[16];
extern const float kNF4Thresholds[15];
extern const float kFP4Thresholds[7];
extern const uint8_t kFP4ThresholdCodes[7];
extern const float kDynamicMap[256];

}  // namespace lowbit

#endif  // LOWBIT_FORMAT_H_
