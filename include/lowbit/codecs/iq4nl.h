// lowbit/codecs/iq4nl.h — llama.cpp's IQ4_NL as a lowbit format: a fixed non-linear 16-entry grid
// (ggml's kvalues_iq4nl) times an f16 scale per 32 elements along each row.
#ifndef LOWBIT_CODECS_IQ4NL_H_
#define LOWBIT_CODECS_IQ4NL_H_

#include <cstddef>
#include <utility>

#include "lowbit/codecs/codec.h"
#include "lowbit/codecs/ggml.h"

namespace lowbit {
namespace iq4nl_internal {
template <size_t... I>
constexpr auto Widen(std::index_sequence<I...>) {
  struct Table {
    float v[sizeof...(I)];
  };
  return Table{{static_cast<float>(ggml::kIQ4NLValues[I])...}};
}
inline constexpr auto kGrid = Widen(std::make_index_sequence<16>());
}  // namespace iq4nl_internal

// Statistic d (f16 in files, in memory its float value; it may be negative): lowbit's quantizer
// is ggml's first guess without its scale search, d = f16(m / -127) with m the element of largest
// magnitude, keeping its sign (so that end of the block gets the grid's -127); code = the grid
// entry nearest to x / d (a tie to the lower code); a block with d = 0 gets code 8 (grid value 1,
// times 0). x = f32(grid[code] * d), as ggml's to_float. No code decodes to 0 for d != 0, so an
// odd element count pads with code 8 (its value is never read back: only n elements decode).
struct IQ4NLCodec : CodecDefaults {
  static constexpr Format kFormat = Format::kIQ4NL;
  static constexpr const char* kName = "iq4_nl";
  static constexpr int kCodeBits = 4;
  static constexpr DType kDenseDType = DType::kU8;
  static constexpr Granularity kDefaultGranularity = Granularity::kGroup;
  static constexpr uint32_t kGranularities = GranularityBit(Granularity::kGroup);
  static constexpr int64_t kDefaultBlock = ggml::kQK, kMinBlock = ggml::kQK, kMaxBlock = ggml::kQK;
  static constexpr ScaleKind kScaleKind = ScaleKind::kScale;
  static constexpr DType kStatisticDType = DType::kF16;
  static constexpr const float* kCodeValues = iq4nl_internal::kGrid.v;
  static constexpr uint8_t kZeroCode = 8;  // grid value 1: the closest to 0

  static BlockStatistic Fit(const float* x, int64_t n, float) {
    float m = 0.0f;
    for (int64_t i = 0; i < n; ++i) m = (x[i] < 0 ? -x[i] : x[i]) > (m < 0 ? -m : m) ? x[i] : m;
    return {F16ToF32(F32ToF16(m / static_cast<float>(ggml::kIQ4NLValues[0]))), 0};
  }
  static uint8_t Encode(float x, const BlockStatistic& s, float) {
    if (s.scale == 0.0f) return kZeroCode;
    const float y = x / s.scale;
    int best = 0;
    float best_d = y > kCodeValues[0] ? y - kCodeValues[0] : kCodeValues[0] - y;
    for (int c = 1; c < 16; ++c) {
      const float d = y > kCodeValues[c] ? y - kCodeValues[c] : kCodeValues[c] - y;
      if (d < best_d) {
        best = c;
        best_d = d;
      }
    }
    return static_cast<uint8_t>(best);
  }
  static float Decode(uint8_t code, const float*, const BlockStatistic& s, float) {
    return kCodeValues[code & 0x0F] * s.scale;
  }
  static uint8_t PadCode(const BlockStatistic&) { return kZeroCode; }
};

}  // namespace lowbit

#endif  // LOWBIT_CODECS_IQ4NL_H_
