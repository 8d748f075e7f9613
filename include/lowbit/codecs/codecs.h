// lowbit/codecs/codecs.h — every format's codec, and the bridge from a runtime Format to its codec
// type (TryVisitFormat here; the throwing VisitFormat in lowbit/format.h). Header-only.
#ifndef LOWBIT_CODECS_CODECS_H_
#define LOWBIT_CODECS_CODECS_H_

#include <utility>

#include "lowbit/codecs/blockwise8.h"
#include "lowbit/codecs/codebook4.h"
#include "lowbit/codecs/dense.h"
#include "lowbit/codecs/fp8.h"
#include "lowbit/codecs/integer.h"
#include "lowbit/codecs/iq4nl.h"
#include "lowbit/codecs/microscaling.h"

namespace lowbit {

// The codecs in Format order: appending a format is one codec type and one entry here.
template <class... C>
struct CodecList {
  static constexpr int kSize = sizeof...(C);
};
using AllCodecs = CodecList<F32Codec, F16Codec, BF16Codec, Int8Codec, Int8AsymCodec, Int4Codec,
                            Int4AsymCodec, NF4Codec, FP4Codec, FP8E4M3Codec, FP8E5M2Codec,
                            Blockwise8Codec, MXFP4Codec, NVFP4Codec, IQ4NLCodec>;
static_assert(AllCodecs::kSize == kNumFormats, "one codec per Format value");

namespace codecs_internal {
template <int I, class Fn, class First, class... Rest>
decltype(auto) Visit(int index, Fn&& fn, CodecList<First, Rest...>*) {
  static_assert(static_cast<int>(First::kFormat) == I, "AllCodecs must follow the Format enum");
  if constexpr (sizeof...(Rest) == 0) {
    return std::forward<Fn>(fn)(First{});
  } else {
    if (index == I) return std::forward<Fn>(fn)(First{});
    return Visit<I + 1>(index, std::forward<Fn>(fn), static_cast<CodecList<Rest...>*>(nullptr));
  }
}
}  // namespace codecs_internal

// Calls fn(Codec{}) with the codec of `format` and returns true; false (fn not called) for a
// value outside the enum. Never throws by itself: usable without linking lowbit.
template <class Fn>
bool TryVisitFormat(Format format, Fn&& fn) {
  const int index = static_cast<int>(format);
  if (index < 0 || index >= kNumFormats) return false;
  codecs_internal::Visit<0>(index, [&](auto codec) { fn(codec); },
                            static_cast<AllCodecs*>(nullptr));
  return true;
}

}  // namespace lowbit

#endif  // LOWBIT_CODECS_CODECS_H_
