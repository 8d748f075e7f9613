// Host-side mapping from a canonical QuantState to the CUDA kernels' WeightView pieces (kind,
// statistic map, 4-bit value table).
//
// Internal header, plain C++: shared by cuda_backend.cc and tests/cuda_test.cc, which checks the
// mapping against QuantState::ScaleIndex and the reference codecs without a GPU.
#ifndef LOWBIT_KERNELS_CUDA_WEIGHT_VIEW_H_
#define LOWBIT_KERNELS_CUDA_WEIGHT_VIEW_H_

#include <cstdint>

#include "kernels/cuda/device_codecs.h"
#include "lowbit/quant_state.h"

namespace lowbit::cuda {

// The device decoder family of a format, read off its codec's table row.
inline WKind KindOf(Format f) {
  const FormatInfo& info = GetFormatInfo(f);
  if (info.scale_kind == ScaleKind::kNone) {
    return f == Format::kF16 ? WKind::kF16 : f == Format::kBF16 ? WKind::kBF16 : WKind::kF32;
  }
  if (info.code_bits == 4) return WKind::kLut4;
  if (info.codebook_size == 256) return WKind::kLut8;
  switch (info.dense_dtype) {
    case DType::kI8: return WKind::kInt8;
    case DType::kF8E4M3: return WKind::kE4M3;
    case DType::kF8E5M2: return WKind::kE5M2;
    default: return WKind::kUInt8;
  }
}

// log2 of a power of two.
inline int32_t Log2(int64_t v) {
  int32_t s = 0;
  while ((int64_t{1} << s) < v) ++s;
  return s;
}

inline StatMap MakeStatMap(const QuantState& s) {
  StatMap m;
  m.cols = s.cols();
  switch (s.granularity) {
    case Granularity::kBlock:
      m.flat = 1;
      m.shift = Log2(s.block_size);
      break;
    case Granularity::kGroup:
      m.row_stride = GroupsPerRow(m.cols, s.block_size);
      m.shift = Log2(s.block_size);
      break;
    case Granularity::kRow:
      m.row_stride = 1;
      break;
    default:  // kTensor (and kNone: dense weights never read a statistic)
      m.row_stride = 0;
      break;
  }
  return m;
}

// Value of each nibble of a 4-bit format: the tensor's own codebook (nf4/fp4), else the codec's
// code values (int4: nibble - 8, int4_asym: the nibble; its zero point is subtracted separately).
inline void Lut16(const QuantState& s, float* lut) {
  const FormatInfo& info = GetFormatInfo(s.format);
  const float* values = info.codebook_size == 16 ? s.codebook.data() : info.code_values;
  for (int c = 0; c < 16; ++c) lut[c] = values[c];
}

}  // namespace lowbit::cuda

#endif  // LOWBIT_KERNELS_CUDA_WEIGHT_VIEW_H_
