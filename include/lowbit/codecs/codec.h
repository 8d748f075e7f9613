// lowbit/codecs/codec.h — the contract every format codec meets, the per-block statistic they
// share, and the 4-bit packing rule.
//
// A codec is a stateless struct, one per Format (include/lowbit/codecs/<family>.h), holding the
// format's whole definition: constexpr constants (the runtime table row, src/format.cc, is
// built from them) and inline scalar rules for one element of one block. Header-only: an engine
// can include a codec and decode lowbit payloads in its own kernels without linking lowbit.
//
// Members of a codec C (CodecDefaults supplies the defaults marked *):
//   kFormat, kName                 the Format value and its stable, persisted name
//   kCodeBits                      payload bits per element: 32, 16, 8 or 4
//   kDenseDType                    dense formats: the element dtype; else kU8
//   kDefaultGranularity, kGranularities (mask of GranularityBit), kDefaultBlock, kMinBlock,
//   kMaxBlock                      statistic layout (blocks/groups: powers of two in the range)
//   kScaleKind                     what the stored statistic means (format_types.h)
//   kStatisticDType*               how files store one statistic: kF32, kU8 (E8M0) or kF8E4M3
//   kHasZeroPoint*, kHasTensorScale*, kDoubleQuant*
//   kCodebook*, kCodebookSize*     the canonical table stored with each tensor, or nullptr / 0
//   kCodeValues*                   4-bit formats: value of each code before scaling (what a
//                                  table decoder multiplies by the statistic), else nullptr
//   kActivationPartner*            activations' format for integer dot products (kInt8 or kF32)
//   TensorScale(x, n)*             the per-tensor second-level scale (NVFP4), else 1
//   Fit(x, n, tensor_scale)        the statistic of one block of n elements
//   Encode(x, stat, tensor_scale)  the code of one element
//   Decode(code, table, stat, tensor_scale)
//                                  the value of one code; `table` is the tensor's stored
//                                  codebook for codebook formats (ignored otherwise)
//   PadCode(stat)*                 4-bit: the code padding an odd element count (decodes to 0)
// Every rule is exact float32 arithmetic in the order written (the bit-exact oracle).
#ifndef LOWBIT_CODECS_CODEC_H_
#define LOWBIT_CODECS_CODEC_H_

#include <cstdint>

#include "lowbit/codecs/geometry.h"
#include "lowbit/dtype.h"
#include "lowbit/format_layout.h"
#include "lowbit/format_types.h"

namespace lowbit {

// The statistic of one block: its scale (or absmax, per kScaleKind) and zero point.
struct BlockStatistic {
  float scale = 0.0f;
  uint8_t zero = 0;
};

// Defaults for the optional codec members; codecs derive from it.
struct CodecDefaults {
  static constexpr DType kStatisticDType = DType::kF32;
  static constexpr bool kHasZeroPoint = false;
  static constexpr bool kHasTensorScale = false;
  static constexpr bool kDoubleQuant = false;
  static constexpr const float* kCodebook = nullptr;
  static constexpr int kCodebookSize = 0;
  static constexpr const float* kCodeValues = nullptr;
  static constexpr Format kActivationPartner = Format::kF32;
  static constexpr int64_t kDefaultBlock = 0, kMinBlock = 0, kMaxBlock = 0;
  static float TensorScale(const float*, int64_t) { return 1.0f; }
  static uint8_t PadCode(const BlockStatistic&) { return 0; }
};

// ---- 4-bit packing (format_layout.h): element i in byte i / 2, the first in the HIGH nibble --
inline uint8_t GetNibble(const uint8_t* packed, int64_t i) {
  const uint8_t b = packed[i >> 1];
  return (i & 1) ? (b & 0x0F) : static_cast<uint8_t>(b >> LOWBIT_NIBBLE_FIRST_SHIFT);
}
// Writes nibble i; an even i starts its byte (the low nibble is cleared), so write in order.
inline void PutNibble(uint8_t* packed, int64_t i, uint8_t code) {
  if ((i & 1) == 0) {
    packed[i >> 1] = static_cast<uint8_t>(code << LOWBIT_NIBBLE_FIRST_SHIFT);
  } else {
    packed[i >> 1] = static_cast<uint8_t>(packed[i >> 1] | (code & 0x0F));
  }
}

// Largest |x[i]| of n values (0 for n = 0; NaN is never passed: inputs are validated finite).
inline float AbsMax(const float* x, int64_t n) {
  float amax = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    const float a = x[i] < 0.0f ? -x[i] : x[i];
    amax = a > amax ? a : amax;
  }
  return amax;
}

}  // namespace lowbit

#endif  // LOWBIT_CODECS_CODEC_H_
