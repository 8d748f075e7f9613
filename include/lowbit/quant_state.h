// lowbit/quant_state.h — QuantState (statistics of a quantized tensor) and QuantizedTensor.
#ifndef LOWBIT_QUANT_STATE_H_
#define LOWBIT_QUANT_STATE_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "lowbit/dtype.h"
#include "lowbit/format.h"

namespace lowbit {

// Double quantization of a float32 statistic vector (bitsandbytes compress_statistics / nested):
//   value[i] = f32(f32(code[q[i]] * absmax[i / block_size]) + offset)
// with q the blockwise-8 codes of (value - offset).
struct NestedState {
  std::vector<uint8_t> codes;   // one per outer statistic
  std::vector<float> absmax;    // one per `block_size` codes (float32)
  std::vector<float> code;      // the 256-entry map used (as stored in the file)
  int64_t block_size = LOWBIT_NESTED_BLOCK;
  float offset = 0.0f;          // mean of the outer statistics, subtracted before quantizing
};

// Everything besides the payload bytes needed to dequantize a tensor.
struct QuantState {
  Format format = Format::kF32;
  Shape shape;                   // logical shape of the original tensor, outermost first
  DType dtype = DType::kF32;     // dtype of the original tensor (default dequantize target)
  Granularity granularity = Granularity::kNone;
  int64_t block_size = 0;        // elements per statistic for kBlock / kGroup; else 0
  // Per-statistic float32 values (meaning: FormatInfo::scale_kind). Empty when `nested` holds
  // them in double-quantized form.
  std::vector<float> scales;
  std::vector<uint8_t> zero_points;  // asymmetric formats: one per statistic
  std::vector<float> codebook;       // nf4/fp4: 16 entries; blockwise8: 256; else empty
  std::optional<NestedState> nested;
  // Second-level per-tensor scale (FormatInfo::has_tensor_scale: nvfp4's s2, finite and >= 0):
  // an element's scale is f32(scales[g] * tensor_scale). 1 for every other format.
  float tensor_scale = 1.0f;

  // rows = product of all dims but the last (1 for a 1-D tensor); cols = last dim.
  int64_t rows() const;
  int64_t cols() const;
  int64_t num_elements() const;
  // Number of statistics implied by shape, granularity and block_size (codecs/geometry.h).
  int64_t num_scales() const { return NumStatistics(granularity, rows(), cols(), block_size); }
  // Index of the statistic of the element at flat position `i` (row-major).
  int64_t ScaleIndex(int64_t i) const { return StatisticIndex(granularity, cols(), block_size, i); }
};

// A quantized tensor in lowbit's canonical (storage) layout: what is saved and loaded.
struct QuantizedTensor {
  QuantState state;
  std::vector<uint8_t> data;  // payload: PayloadBytes(format, num_elements) bytes

  Format format() const { return state.format; }
  const Shape& shape() const { return state.shape; }
};

// Returns the float32 statistics of `state`, undoing double quantization if present (bit-exact
// with bitsandbytes' reconstruction).
std::vector<float> ResolveScales(const QuantState& state);

// Throws Error (kInvalidArgument / kCorruptData with `status`) if the tensor is inconsistent:
// unknown format, bad shape, payload size, statistic counts, codebook size, non-finite scales,
// nested state sizes. Every public op calls it on its inputs.
void ValidateQuantizedTensor(const QuantizedTensor& q, Status status = Status::kInvalidArgument);

}  // namespace lowbit

#endif  // LOWBIT_QUANT_STATE_H_
