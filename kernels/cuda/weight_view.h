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

inline WKind KindOf(Format f) {
  switch (f) {
    case Format::kNF4:
    case Format::kFP4:
    case Format::kInt4:
    case Format::kInt4Asym: return WKind::kLut4;
    case Format::kInt8: return WKind::kInt8;
    case Format::kInt8Asym: return WKind::kUInt8;
    case Format::kFP8E4M3: return WKind::kE4M3;
    case Format::kFP8E5M2: return WKind::kE5M2;
    case Format::kBlockwise8: return WKind::kLut8;
    case Format::kF16: return WKind::kF16;
    case Format::kBF16: return WKind::kBF16;
    default: return WKind::kF32;
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
      m.row_stride = (m.cols + s.block_size - 1) / s.block_size;
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

// Value of each nibble of a 4-bit format: nf4/fp4 the tensor's own codebook, int4 the signed
// integer (nibble - 8), int4_asym the nibble itself (its zero point is subtracted separately).
inline void Lut16(const QuantState& s, float* lut) {
  for (int c = 0; c < 16; ++c) {
    switch (s.format) {
      case Format::kInt4: lut[c] = static_cast<float>(c - LOWBIT_INT4_SYM_OFFSET); break;
      case Format::kInt4Asym: lut[c] = static_cast<float>(c); break;
      default: lut[c] = s.codebook[c]; break;
    }
  }
}

}  // namespace lowbit::cuda

#endif  // LOWBIT_KERNELS_CUDA_WEIGHT_VIEW_H_
