// lowbit/format_types.h — the format enums (Format, Granularity, ScaleKind) every codec, table and
// file names. Header-only, no dependencies beyond <cstdint>.
#ifndef LOWBIT_FORMAT_TYPES_H_
#define LOWBIT_FORMAT_TYPES_H_

#include <cstdint>

namespace lowbit {

// Append-only: the numbers are persisted (files, packed weights, the C ABI). Never renumber.
// Each value has one codec type in include/lowbit/codecs/ (the format's single source of truth).
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
  kMXFP4 = 12,          // OCP MXFP4: E2M1 elements, E8M0 scale per 32 along each row
  kNVFP4 = 13,          // NVIDIA NVFP4: E2M1 elements, E4M3 scale per 16, float32 tensor scale
  kIQ4NL = 14,          // llama.cpp IQ4_NL: non-linear 16-entry grid, f16 scale per 32 along rows
};
inline constexpr int kNumFormats = 15;

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

// Bit of `g` in a format's mask of allowed granularities.
constexpr uint32_t GranularityBit(Granularity g) { return 1u << static_cast<int>(g); }

// What the stored per-statistic float means.
enum class ScaleKind : uint8_t {
  kNone = 0,
  kAbsmax = 1,  // x = code_value * absmax (nf4, fp4, blockwise8) or code * absmax / 127 (int8)
  kScale = 2,   // x = (code - zero) * scale (int4, int4_asym, int8_asym), fp8(code) * scale,
                // e2m1(code) * scale (mxfp4) or e2m1(code) * (scale * tensor_scale) (nvfp4)
};

}  // namespace lowbit

#endif  // LOWBIT_FORMAT_TYPES_H_
