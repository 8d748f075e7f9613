// Scalar reference codecs: the oracles that every SIMD/GPU kernel is tested against.
//
// Internal header (not installed). Plain loops written for clarity and exactness, not speed; each
// follows docs/formats.md to the bit. All functions are thread-safe and allocate only their outputs.
#ifndef LOWBIT_SRC_REFERENCE_REFERENCE_H_
#define LOWBIT_SRC_REFERENCE_REFERENCE_H_

#include <cstdint>
#include <vector>

#include "lowbit/quantize.h"

namespace lowbit::ref {

// ---- 4-bit codebooks (nf4, fp4) --------------------------------------------------------------
// bitsandbytes CUDA decision trees (dQuantizeNF4 / dQuantizeFP4) on a scaled value y.
uint8_t QuantizeNF4Value(float y);
uint8_t QuantizeFP4Value(float y);
// Blockwise over n flat elements: absmax[b] = max |x| of block b; y = x * f32(1 / absmax);
// packed high-nibble-first into ceil(n/2) bytes. absmax has ceil(n / block) entries.
void Quantize4bitBlockwise(Format format, const float* x, int64_t n, int64_t block,
                           uint8_t* packed, float* absmax);
// out[i] = f32(codebook[nibble(i)] * absmax[i / block]).
void Dequantize4bitBlockwise(const float* codebook16, const uint8_t* packed, int64_t n,
                             int64_t block, const float* absmax, float* out);
// Reads nibble i of a high-nibble-first packed array.
inline uint8_t Nibble(const uint8_t* packed, int64_t i) {
  const uint8_t b = packed[i >> 1];
  return (i & 1) ? (b & 0x0F) : (b >> 4);
}

// ---- dynamic 8-bit blockwise ----------------------------------------------------------------
// bitsandbytes CUDA dQuantize<0>: 7-step binary search in the sorted 256-entry `code`, nearest
// of three by float32 midpoints, ties to the search's pivot.
uint8_t QuantizeDynamicValue(const float* code256, float y);
void QuantizeBlockwise8(const float* code256, const float* x, int64_t n, int64_t block,
                        uint8_t* q, float* absmax);
void DequantizeBlockwise8(const float* code256, const uint8_t* q, int64_t n, int64_t block,
                          const float* absmax, float* out);

// ---- double quantization of statistics -------------------------------------------------------
// offset = mean(values) (NaN `offset` -> mean computed in double, rounded to float32), then
// blockwise-8 of (values - offset) with the dynamic map and `block`.
NestedState CompressStatistics(const float* values, int64_t n, int64_t block, float offset);
// values[i] = f32(f32(code[q[i]] * absmax[i / block]) + offset).
void DecompressStatistics(const NestedState& nested, int64_t n, float* values);

// Fills a nf4/fp4 QuantizedTensor (payload, absmax or nested state, codebook) using `blockwise`
// for the codes: the reference above or a SIMD kernel with the same contract.
using Blockwise4Fn = void (*)(Format format, const float* x, int64_t n, int64_t block,
                              uint8_t* packed, float* absmax);
void QuantizeCodebook4With(Blockwise4Fn blockwise, const float* x, const QuantizeOptions& o,
                           QuantizedTensor& out);

// ---- per-format QuantizeFn / DequantizeFn for the format table --------------------------------
// `out.state` arrives with format, shape, dtype, granularity and block_size resolved and
// `out.data` sized; these fill data, scales, zero points, codebook and nested state.
void QuantizeNF4(const float* x, const QuantizeOptions& o, QuantizedTensor& out);
void QuantizeFP4(const float* x, const QuantizeOptions& o, QuantizedTensor& out);
void Dequantize4bitCodebook(const QuantizedTensor& q, float* out);
void QuantizeBlockwise8(const float* x, const QuantizeOptions& o, QuantizedTensor& out);
void DequantizeBlockwise8(const QuantizedTensor& q, float* out);
void QuantizeInt8(const float* x, const QuantizeOptions& o, QuantizedTensor& out);
void DequantizeInt8(const QuantizedTensor& q, float* out);
void QuantizeInt8Asym(const float* x, const QuantizeOptions& o, QuantizedTensor& out);
void DequantizeInt8Asym(const QuantizedTensor& q, float* out);
void QuantizeInt4(const float* x, const QuantizeOptions& o, QuantizedTensor& out);
void QuantizeInt4Asym(const float* x, const QuantizeOptions& o, QuantizedTensor& out);
void DequantizeInt4(const QuantizedTensor& q, float* out);  // both int4 variants
void QuantizeFP8(const float* x, const QuantizeOptions& o, QuantizedTensor& out);
void DequantizeFP8(const QuantizedTensor& q, float* out);  // both fp8 variants

// ---- integer helpers shared with calibration (GPTQ/AWQ) and kernels' tests -------------------
// round-half-even of x / scale clamped to [lo, hi]; scale == 0 gives 0.
int32_t RoundClamp(float x, float scale, int32_t lo, int32_t hi);
// Symmetric int4 scale of a group (absmax / 7) and asymmetric (scale, zero) from min/max
// (min/max widened to include 0, as GPTQ does).
float Int4SymScale(float absmax);
void AsymScaleZero(float min, float max, int32_t qmax, float* scale, uint8_t* zero);

// Calls fn(statistic_index, begin, end) for each statistic's flat element range of a kTensor,
// kRow or kGroup state, in ascending order.
template <class Fn>
void ForEachGroup(const QuantState& s, Fn&& fn) {
  const int64_t rows = s.rows(), cols = s.cols();
  switch (s.granularity) {
    case Granularity::kTensor:
      fn(int64_t{0}, int64_t{0}, rows * cols);
      return;
    case Granularity::kRow:
      for (int64_t r = 0; r < rows; ++r) fn(r, r * cols, (r + 1) * cols);
      return;
    case Granularity::kGroup: {
      const int64_t per_row = (cols + s.block_size - 1) / s.block_size;
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t g = 0; g < per_row; ++g) {
          const int64_t begin = r * cols + g * s.block_size;
          fn(r * per_row + g, begin, std::min(begin + s.block_size, (r + 1) * cols));
        }
      }
      return;
    }
    default:
      LOWBIT_DCHECK_INVARIANT(false);
  }
}

}  // namespace lowbit::ref

#endif  // LOWBIT_SRC_REFERENCE_REFERENCE_H_
