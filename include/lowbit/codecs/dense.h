// lowbit/codecs/dense.h — the dense formats f32, f16 and bf16: no statistics, no codes.
#ifndef LOWBIT_CODECS_DENSE_H_
#define LOWBIT_CODECS_DENSE_H_

#include "lowbit/codecs/codec.h"

namespace lowbit {

template <Format F, DType kDType, int kBits, const char* const* kNamePtr>
struct DenseCodec : CodecDefaults {
  static constexpr Format kFormat = F;
  static constexpr const char* kName = *kNamePtr;
  static constexpr int kCodeBits = kBits;
  static constexpr DType kDenseDType = kDType;
  static constexpr Granularity kDefaultGranularity = Granularity::kNone;
  static constexpr uint32_t kGranularities = GranularityBit(Granularity::kNone);
  static constexpr ScaleKind kScaleKind = ScaleKind::kNone;
};

namespace codec_names {
inline constexpr const char* kF32 = "f32";
inline constexpr const char* kF16 = "f16";
inline constexpr const char* kBF16 = "bf16";
}  // namespace codec_names

using F32Codec = DenseCodec<Format::kF32, DType::kF32, 32, &codec_names::kF32>;
using F16Codec = DenseCodec<Format::kF16, DType::kF16, 16, &codec_names::kF16>;
using BF16Codec = DenseCodec<Format::kBF16, DType::kBF16, 16, &codec_names::kBF16>;

}  // namespace lowbit

#endif  // LOWBIT_CODECS_DENSE_H_
