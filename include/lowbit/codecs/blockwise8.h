// lowbit/codecs/blockwise8.h — bitsandbytes' blockwise dynamic 8-bit format: the 256-entry
// dynamic map scaled by the absmax of flat blocks (also double quantization's codec).
#ifndef LOWBIT_CODECS_BLOCKWISE8_H_
#define LOWBIT_CODECS_BLOCKWISE8_H_

#include "lowbit/codecs/codec.h"

namespace lowbit {

struct Blockwise8Codec : CodecDefaults {
  static constexpr Format kFormat = Format::kBlockwise8;
  static constexpr const char* kName = "blockwise8";
  static constexpr int kCodeBits = 8;
  static constexpr DType kDenseDType = DType::kU8;
  static constexpr Granularity kDefaultGranularity = Granularity::kBlock;
  static constexpr uint32_t kGranularities = GranularityBit(Granularity::kBlock);
  static constexpr int64_t kDefaultBlock = LOWBIT_BLOCKWISE8_DEFAULT_BLOCK;
  static constexpr int64_t kMinBlock = LOWBIT_BLOCKWISE8_MIN_BLOCK;
  static constexpr int64_t kMaxBlock = LOWBIT_BLOCKWISE8_MAX_BLOCK;
  static constexpr ScaleKind kScaleKind = ScaleKind::kAbsmax;
  static constexpr bool kDoubleQuant = true;
  static constexpr float kTable[256] = LOWBIT_DYNAMIC_MAP_INIT;
  static constexpr const float* kCodebook = kTable;
  static constexpr int kCodebookSize = 256;
  // bitsandbytes quantize_blockwise(nested=True) compresses the absmax with the same block.
  static constexpr int64_t NestedBlock(int64_t block) { return block; }

  // bitsandbytes kernels.cu dQuantize<0>, step for step: a 7-step binary search over the sorted
  // 256-entry `map` ends on an even pivot; the answer is the nearest of {lower_pivot, pivot,
  // upper_pivot} by float32 midpoints, a value exactly on a midpoint staying on the pivot.
  static uint8_t EncodeScaled(const float* map, float x) {
    int pivot = 127, upper_pivot = 255, lower_pivot = 0;
    float lower = -1.0f, upper = 1.0f;
    float val = map[pivot];
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
      val = map[pivot];
    }
    if (upper_pivot == 255) upper = map[upper_pivot];
    if (lower_pivot == 0) lower = map[lower_pivot];
    if (x > val) {
      const float midpoint = (upper + val) * 0.5f;
      return static_cast<uint8_t>(x > midpoint ? upper_pivot : pivot);
    }
    const float midpoint = (lower + val) * 0.5f;
    return static_cast<uint8_t>(x < midpoint ? lower_pivot : pivot);
  }
  static BlockStatistic Fit(const float* x, int64_t n, float) { return {AbsMax(x, n), 0}; }
  static uint8_t Encode(float x, const BlockStatistic& s, float) {
    if (!(s.scale > 0.0f)) return 0;
    return EncodeScaled(kTable, x * (1.0f / s.scale));
  }
  static float Decode(uint8_t code, const float* table, const BlockStatistic& s, float) {
    return table[code] * s.scale;
  }
};

}  // namespace lowbit

#endif  // LOWBIT_CODECS_BLOCKWISE8_H_
