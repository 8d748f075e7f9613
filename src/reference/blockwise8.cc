// Reference dynamic 8-bit blockwise codec and double quantization (docs/formats.md §blockwise8).
#include <cmath>

#include "reference/reference.h"

namespace lowbit::ref {

uint8_t QuantizeDynamicValue(const float* code, float x) {
  // bitsandbytes kernels.cu dQuantize<0>, step for step: the search ends on an even pivot; the
  // answer is the nearest of {lower_pivot, pivot, upper_pivot} by float32 midpoints, a value
  // exactly on a midpoint staying on the pivot. NaN walks down to index 0.
  int pivot = 127, upper_pivot = 255, lower_pivot = 0;
  float lower = -1.0f, upper = 1.0f;
  float val = code[pivot];
  for (int i = 64; i > 0; i >>= 1) {
    if (x > val) {
      lower_pivot = pivot;
      lower = val;
      pivot += i;
    } else {
      upper_pivot = pivot;
      upper = val;
      pivot -= i;
    }
    val = code[pivot];
  }
  if (upper_pivot == 255) upper = code[upper_pivot];
  if (lower_pivot == 0) lower = code[lower_pivot];
  if (x > val) {
    const float midpoint = (upper + val) * 0.5f;
    return static_cast<uint8_t>(x > midpoint ? upper_pivot : pivot);
  }
  const float midpoint = (lower + val) * 0.5f;
  return static_cast<uint8_t>(x < midpoint ? lower_pivot : pivot);
}

void QuantizeBlockwise8(const float* code, const float* x, int64_t n, int64_t block, uint8_t* q,
                        float* absmax) {
  const int64_t nblocks = (n + block - 1) / block;
  for (int64_t b = 0; b < nblocks; ++b) {
    const int64_t begin = b * block;
    const int64_t end = std::min(n, begin + block);
    float amax = 0.0f;
    for (int64_t i = begin; i < end; ++i) amax = std::max(amax, std::fabs(x[i]));
    absmax[b] = amax;
    // Reciprocal then multiply, as bitsandbytes CUDA. A zero block is NaN there -> index 0.
    const float scale = (amax > 0.0f) ? 1.0f / amax : 0.0f;
    for (int64_t i = begin; i < end; ++i) {
      q[i] = (amax > 0.0f) ? QuantizeDynamicValue(code, x[i] * scale) : 0;
    }
  }
}

void DequantizeBlockwise8(const float* code, const uint8_t* q, int64_t n, int64_t block,
                          const float* absmax, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = code[q[i]] * absmax[i / block];
}

NestedState CompressStatistics(const float* values, int64_t n, int64_t block, float offset) {
  NestedState nested;
  nested.block_size = block;
  nested.code.assign(kDynamicMap, kDynamicMap + 256);
  if (std::isnan(offset)) {
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) sum += values[i];
    offset = static_cast<float>(sum / static_cast<double>(n));
  }
  nested.offset = offset;
  std::vector<float> centered(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) centered[i] = values[i] - offset;
  nested.codes.resize(static_cast<size_t>(n));
  nested.absmax.resize(static_cast<size_t>((n + block - 1) / block));
  QuantizeBlockwise8(nested.code.data(), centered.data(), n, block, nested.codes.data(),
                     nested.absmax.data());
  return nested;
}

void DecompressStatistics(const NestedState& nested, int64_t n, float* values) {
  for (int64_t i = 0; i < n; ++i) {
    // Two float32 roundings, as bitsandbytes' dequantize_4bit (not one fused multiply-add).
    const float scaled = nested.code[nested.codes[i]] * nested.absmax[i / nested.block_size];
    values[i] = scaled + nested.offset;
  }
}

void QuantizeBlockwise8(const float* x, const QuantizeOptions& o, QuantizedTensor& out) {
  QuantState& s = out.state;
  std::vector<float> absmax(static_cast<size_t>(s.num_scales()));
  s.codebook.assign(kDynamicMap, kDynamicMap + 256);
  QuantizeBlockwise8(s.codebook.data(), x, s.num_elements(), s.block_size, out.data.data(),
                     absmax.data());
  if (o.double_quant) {
    // bitsandbytes quantize_blockwise(nested=True): the absmax is compressed with the same block.
    s.nested = CompressStatistics(absmax.data(), static_cast<int64_t>(absmax.size()), s.block_size,
                                  o.nested_offset);
    s.scales.clear();
  } else {
    s.scales = std::move(absmax);
  }
}

void DequantizeBlockwise8(const QuantizedTensor& q, float* out) {
  const std::vector<float> absmax = ResolveScales(q.state);
  DequantizeBlockwise8(q.state.codebook.data(), q.data.data(), q.state.num_elements(),
                       q.state.block_size, absmax.data(), out);
}

}  // namespace lowbit::ref
