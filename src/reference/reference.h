// Scalar reference codecs: the oracles that every SIMD/GPU kernel is tested against.
//
// Internal header (not installed). Plain loops written for clarity and exactness, not speed; each
// follows docs/formats.md to the bit. All functions are thread-safe and allocate only their outputs.
#ifndef LOWBIT_SRC_REFERENCE_REFERENCE_H_
#define LOWBIT_SRC_REFERENCE_REFERENCE_H_

#include <cstdint>
#include <vector>

#include "lowbit/codecs/codecs.h"
#include "lowbit/quantize.h"

namespace lowbit::ref {

// Per-format rules live in the codecs (include/lowbit/codecs/); the tensor-level oracle of every
// format is ref::QuantizeWithCodec / DequantizeWithCodec (codec_reference.h), reached through
// FormatInfo::reference_quantize / reference_dequantize. Below: flat-array forms that kernels'
// tests, double quantization and the optimizers call directly.

// ---- 4-bit codebooks (nf4, fp4) --------------------------------------------------------------
// bitsandbytes CUDA decision trees (dQuantizeNF4 / dQuantizeFP4) on a scaled value y.
inline uint8_t QuantizeNF4Value(float y) { return NF4Codec::EncodeScaled(y); }
inline uint8_t QuantizeFP4Value(float y) { return FP4Codec::EncodeScaled(y); }
// Blockwise over n flat elements: absmax[b] = max |x| of block b; y = x * f32(1 / absmax);
// packed high-nibble-first into ceil(n/2) bytes. absmax has ceil(n / block) entries. The
// contract of the SIMD kernel cpu::Quantize4bitBlockwise.
void Quantize4bitBlockwise(Format format, const float* x, int64_t n, int64_t block,
                           uint8_t* packed, float* absmax);
// Reads nibble i of a high-nibble-first packed array.
inline uint8_t Nibble(const uint8_t* packed, int64_t i) { return GetNibble(packed, i); }

// ---- dynamic 8-bit blockwise ----------------------------------------------------------------
// bitsandbytes CUDA dQuantize<0> (Blockwise8Codec::EncodeScaled) with the map `code256`.
inline uint8_t QuantizeDynamicValue(const float* code256, float y) {
  return Blockwise8Codec::EncodeScaled(code256, y);
}
// Flat blocks of `block`: absmax[b] = max |x|; q[i] = QuantizeDynamicValue(code256, x * f32(1 /
// absmax)) (0 for a zero block); dequantize: out[i] = f32(code256[q[i]] * absmax[i / block]).
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

// ---- integer helpers shared with calibration (GPTQ/AWQ) and kernels' tests -------------------
// round-half-even of x / scale clamped to [lo, hi]; scale == 0 gives 0.
inline int32_t RoundClamp(float x, float scale, int32_t lo, int32_t hi) {
  return integer_codec::RoundClamp(x, scale, lo, hi);
}
// Symmetric int4 scale of a group (absmax / 7) and asymmetric (scale, zero) from min/max
// (min/max widened to include 0, as GPTQ does).
inline float Int4SymScale(float absmax) {
  return absmax / static_cast<float>(LOWBIT_INT4_SYM_QMAX);
}
inline void AsymScaleZero(float min, float max, int32_t qmax, float* scale, uint8_t* zero) {
  const BlockStatistic s = integer_codec::AsymFromRange(min, max, qmax);
  *scale = s.scale;
  *zero = s.zero;
}

// Calls fn(statistic_index, begin, end) for each statistic's flat element range, in order.
template <class Fn>
void ForEachGroup(const QuantState& s, Fn&& fn) {
  const int64_t count = s.num_scales();
  for (int64_t g = 0; g < count; ++g) {
    const ElementRange r = StatisticRange(s.granularity, s.rows(), s.cols(), s.block_size, g);
    fn(g, r.begin, r.end);
  }
}

}  // namespace lowbit::ref

#endif  // LOWBIT_SRC_REFERENCE_REFERENCE_H_
