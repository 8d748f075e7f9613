// Generic scalar reference quantizer and dequantizer, written once over the codec contract
// (include/lowbit/codecs/codec.h): every format's oracle is this loop and its codec's rules.
//
// Internal header (not installed). Thread-safe; allocates only the outputs.
#ifndef LOWBIT_SRC_REFERENCE_CODEC_REFERENCE_H_
#define LOWBIT_SRC_REFERENCE_CODEC_REFERENCE_H_

#include <utility>
#include <vector>

#include "lowbit/codecs/codecs.h"
#include "reference/reference.h"

namespace lowbit::ref {

// Fills `out` (state resolved by Quantize: format, shape, granularity, block size; payload
// sized) from n finite floats x: per statistic in element order, stat = C::Fit(block), then
// every code = C::Encode; 4-bit codes are packed high nibble first and an odd count is padded
// with C::PadCode(last statistic). Codebook formats store their canonical table; with
// options.double_quant the statistics are compressed (CompressStatistics).
template <class C>
void QuantizeWithCodec(const float* x, const QuantizeOptions& options, QuantizedTensor& out) {
  QuantState& s = out.state;
  const int64_t rows = s.rows(), cols = s.cols(), n = s.num_elements();
  const int64_t count = s.num_scales();
  s.tensor_scale = C::TensorScale(x, n);
  std::vector<float> scales(static_cast<size_t>(count));
  s.zero_points.assign(C::kHasZeroPoint ? static_cast<size_t>(count) : 0, 0);
  uint8_t* data = out.data.data();
  BlockStatistic last;
  for (int64_t g = 0; g < count; ++g) {
    const ElementRange r = StatisticRange(s.granularity, rows, cols, s.block_size, g);
    const BlockStatistic stat = C::Fit(x + r.begin, r.end - r.begin, s.tensor_scale);
    scales[static_cast<size_t>(g)] = stat.scale;
    if constexpr (C::kHasZeroPoint) s.zero_points[static_cast<size_t>(g)] = stat.zero;
    for (int64_t i = r.begin; i < r.end; ++i) {
      const uint8_t code = C::Encode(x[i], stat, s.tensor_scale);
      if constexpr (C::kCodeBits == 4) {
        PutNibble(data, i, code);
      } else {
        data[i] = code;
      }
    }
    last = stat;
  }
  if constexpr (C::kCodeBits == 4) {
    if (n & 1) PutNibble(data, n, C::PadCode(last));
  }
  s.codebook.assign(C::kCodebook, C::kCodebook + C::kCodebookSize);
  if constexpr (C::kDoubleQuant) {
    if (options.double_quant) {
      s.nested = CompressStatistics(scales.data(), count, C::NestedBlock(s.block_size),
                                    options.nested_offset);
      s.scales.clear();
      return;
    }
  }
  s.scales = std::move(scales);
}

// out[i] = C::Decode(code i, the tensor's codebook, its statistic, tensor_scale) for every
// element of a validated tensor (double quantization undone first).
template <class C>
void DequantizeWithCodec(const QuantizedTensor& q, float* out) {
  const QuantState& s = q.state;
  const std::vector<float> scales = ResolveScales(s);
  const int64_t n = s.num_elements(), cols = s.cols();
  const uint8_t* data = q.data.data();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t g = StatisticIndex(s.granularity, cols, s.block_size, i);
    BlockStatistic stat;
    stat.scale = scales[static_cast<size_t>(g)];
    if constexpr (C::kHasZeroPoint) stat.zero = s.zero_points[static_cast<size_t>(g)];
    const uint8_t code = (C::kCodeBits == 4) ? GetNibble(data, i) : data[i];
    out[i] = C::Decode(code, s.codebook.data(), stat, s.tensor_scale);
  }
}

}  // namespace lowbit::ref

#endif  // LOWBIT_SRC_REFERENCE_CODEC_REFERENCE_H_
