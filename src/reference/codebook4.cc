// Reference NF4/FP4 codecs, bit-exact with bitsandbytes' CUDA rules (docs/formats.md §nf4/fp4).
#include <algorithm>

#include "reference/reference.h"

namespace lowbit::ref {

namespace {
template <class C>
void Blockwise4(const float* x, int64_t n, int64_t block, uint8_t* packed, float* absmax) {
  for (int64_t b = 0, begin = 0; begin < n; ++b, begin += block) {
    const int64_t len = std::min(block, n - begin);
    const BlockStatistic stat = C::Fit(x + begin, len, 1.0f);
    absmax[b] = stat.scale;
    for (int64_t i = begin; i < begin + len; ++i) PutNibble(packed, i, C::Encode(x[i], stat, 1.0f));
  }
  if (n & 1) PutNibble(packed, n, C::PadCode(BlockStatistic{}));
}
}  // namespace

void Quantize4bitBlockwise(Format format, const float* x, int64_t n, int64_t block,
                           uint8_t* packed, float* absmax) {
  if (format == Format::kNF4) {
    Blockwise4<NF4Codec>(x, n, block, packed, absmax);
  } else {
    Blockwise4<FP4Codec>(x, n, block, packed, absmax);
  }
}

void QuantizeCodebook4With(Blockwise4Fn blockwise, const float* x, const QuantizeOptions& o,
                           QuantizedTensor& out) {
  QuantState& s = out.state;
  const Format format = s.format;
  const int64_t n = s.num_elements();
  std::vector<float> absmax(static_cast<size_t>(s.num_scales()));
  blockwise(format, x, n, s.block_size, out.data.data(), absmax.data());
  const FormatInfo& info = GetFormatInfo(format);
  s.codebook.assign(info.codebook, info.codebook + info.codebook_size);
  if (o.double_quant) {
    s.nested = CompressStatistics(absmax.data(), static_cast<int64_t>(absmax.size()),
                                  LOWBIT_NESTED_BLOCK, o.nested_offset);
    s.scales.clear();
  } else {
    s.scales = std::move(absmax);
  }
}

}  // namespace lowbit::ref
