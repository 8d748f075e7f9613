// Reference dynamic 8-bit blockwise codec and double quantization (docs/formats.md §blockwise8).
#include <cmath>

#include "reference/reference.h"

namespace lowbit::ref {

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

}  // namespace lowbit::ref
