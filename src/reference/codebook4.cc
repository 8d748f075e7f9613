// Reference NF4/FP4 codecs, bit-exact with bitsandbytes' CUDA rules (docs/formats.md §nf4/fp4).
#include <cmath>

#include "reference/reference.h"

namespace lowbit::ref {

uint8_t QuantizeNF4Value(float y) {
  // code = number of thresholds strictly below y; NaN compares false everywhere -> 0.
  uint8_t code = 0;
  for (const float t : kNF4Thresholds) code += (y > t) ? 1 : 0;
  return code;
}

uint8_t QuantizeFP4Value(float y) {
  const uint8_t sign = (y < 0.0f) ? LOWBIT_FP4_SIGN_BIT : 0;
  const float a = std::fabs(y);
  uint8_t magnitude = 0;
  for (int i = 0; i < 7; ++i) {
    if (a > kFP4Thresholds[i]) magnitude = kFP4ThresholdCodes[i];
  }
  return sign | magnitude;
}

void Quantize4bitBlockwise(Format format, const float* x, int64_t n, int64_t block,
                           uint8_t* packed, float* absmax) {
  const bool nf4 = (format == Format::kNF4);
  const uint8_t zero_code = nf4 ? LOWBIT_NF4_ZERO_CODE : LOWBIT_FP4_ZERO_CODE;
  const int64_t nblocks = (n + block - 1) / block;
  for (int64_t b = 0; b < nblocks; ++b) {
    const int64_t begin = b * block;
    const int64_t end = std::min(n, begin + block);
    float amax = 0.0f;
    for (int64_t i = begin; i < end; ++i) amax = std::max(amax, std::fabs(x[i]));
    absmax[b] = amax;
    // bitsandbytes CUDA: scale = 1.0f / absmax, then y = x * scale (two float32 roundings). An
    // all-zero block gives 0 * inf = NaN there, i.e. code 0; we write code 0 explicitly.
    const float scale = (amax > 0.0f) ? 1.0f / amax : 0.0f;
    for (int64_t i = begin; i < end; ++i) {
      const uint8_t code =
          (amax > 0.0f) ? (nf4 ? QuantizeNF4Value(x[i] * scale) : QuantizeFP4Value(x[i] * scale))
                        : 0;
      if ((i & 1) == 0) {
        packed[i >> 1] = static_cast<uint8_t>(code << LOWBIT_NIBBLE_FIRST_SHIFT);
      } else {
        packed[i >> 1] |= code;
      }
    }
  }
  if (n & 1) packed[n >> 1] |= zero_code;  // pad the last low nibble with the zero code
}

void Dequantize4bitBlockwise(const float* codebook16, const uint8_t* packed, int64_t n,
                             int64_t block, const float* absmax, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = codebook16[Nibble(packed, i)] * absmax[i / block];
}

void QuantizeCodebook4With(Blockwise4Fn blockwise, const float* x, const QuantizeOptions& o,
                           QuantizedTensor& out) {
  QuantState& s = out.state;
  const Format format = s.format;
  const int64_t n = s.num_elements();
  std::vector<float> absmax(static_cast<size_t>(s.num_scales()));
  blockwise(format, x, n, s.block_size, out.data.data(), absmax.data());
  const float* book = (format == Format::kNF4) ? kNF4Codebook : kFP4Codebook;
  s.codebook.assign(book, book + 16);
  if (o.double_quant) {
    s.nested = CompressStatistics(absmax.data(), static_cast<int64_t>(absmax.size()),
                                  LOWBIT_NESTED_BLOCK, o.nested_offset);
    s.scales.clear();
  } else {
    s.scales = std::move(absmax);
  }
}

void QuantizeNF4(const float* x, const QuantizeOptions& o, QuantizedTensor& out) {
  QuantizeCodebook4With(&Quantize4bitBlockwise, x, o, out);
}
void QuantizeFP4(const float* x, const QuantizeOptions& o, QuantizedTensor& out) {
  QuantizeCodebook4With(&Quantize4bitBlockwise, x, o, out);
}

void Dequantize4bitCodebook(const QuantizedTensor& q, float* out) {
  const std::vector<float> absmax = ResolveScales(q.state);
  Dequantize4bitBlockwise(q.state.codebook.data(), q.data.data(), q.state.num_elements(),
                          q.state.block_size, absmax.data(), out);
}

}  // namespace lowbit::ref
