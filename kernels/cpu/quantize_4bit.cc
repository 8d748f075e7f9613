// SIMD blockwise NF4/FP4 quantization, compiled for every Highway target (foreach_target).
#include "kernels/cpu/quantize_4bit.h"

#include <algorithm>
#include <cmath>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/quantize_4bit.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "reference/reference.h"

HWY_BEFORE_NAMESPACE();
namespace lowbit::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Writes code `c` as nibble i (first element of a byte in the high nibble).
inline void PutNibble(uint8_t* packed, int64_t i, uint32_t c) {
  if ((i & 1) == 0) {
    packed[i >> 1] = static_cast<uint8_t>(c << LOWBIT_NIBBLE_FIRST_SHIFT);
  } else {
    packed[i >> 1] = static_cast<uint8_t>(packed[i >> 1] | c);
  }
}

// Codes of one full vector of scaled values y, as int32 lanes.
template <bool kNF4, class DF, class V = hn::Vec<DF>>
HWY_INLINE hn::Vec<hn::RebindToSigned<DF>> Codes(DF df, V y) {
  const hn::RebindToSigned<DF> di;
  auto count = hn::Zero(di);
  if constexpr (kNF4) {
    // code = number of thresholds strictly below y (mask lanes are -1 when true).
    for (const float t : kNF4Thresholds) {
      count = hn::Sub(count, hn::BitCast(di, hn::VecFromMask(df, hn::Gt(y, hn::Set(df, t)))));
    }
    return count;
  } else {
    const auto a = hn::Abs(y);
    for (const float t : kFP4Thresholds) {
      count = hn::Sub(count, hn::BitCast(di, hn::VecFromMask(df, hn::Gt(a, hn::Set(df, t)))));
    }
    // Thresholds are ascending; the c-th one crossed selects LOWBIT_FP4_THRESHOLD_CODES_INIT
    // [c-1], i.e. magnitudes 0,1,6,7,4,5,2,3 for c = 0..7 = c ^ ((c & 2) << 1).
    const auto magnitude = hn::Xor(count, hn::ShiftLeft<1>(hn::And(count, hn::Set(di, 2))));
    const auto sign = hn::IfThenElseZero(hn::RebindMask(di, hn::Lt(y, hn::Zero(df))),
                                         hn::Set(di, LOWBIT_FP4_SIGN_BIT));
    return hn::Or(magnitude, sign);
  }
}

template <bool kNF4>
void Quantize4bitImpl(const float* HWY_RESTRICT x, int64_t n, int64_t block,
                      uint8_t* HWY_RESTRICT packed, float* HWY_RESTRICT absmax) {
  const hn::ScalableTag<float> df;
  const hn::RebindToSigned<decltype(df)> di;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  HWY_ALIGN int32_t codes[hn::MaxLanes(di)];
  const int64_t nblocks = (n + block - 1) / block;
  for (int64_t b = 0; b < nblocks; ++b) {
    const int64_t begin = b * block;
    const int64_t end = std::min(n, begin + block);
    auto vmax = hn::Zero(df);
    int64_t i = begin;
    for (; i + lanes <= end; i += lanes) vmax = hn::Max(vmax, hn::Abs(hn::LoadU(df, x + i)));
    float amax = hn::GetLane(hn::MaxOfLanes(df, vmax));
    for (; i < end; ++i) amax = std::max(amax, std::fabs(x[i]));
    absmax[b] = amax;
    if (amax == 0.0f) {  // bitsandbytes CUDA: 0 * (1/0) = NaN -> code 0 everywhere
      for (i = begin; i < end; ++i) PutNibble(packed, i, 0);
      continue;
    }
    const float scale = 1.0f / amax;  // reciprocal then multiply, as bitsandbytes
    const auto vscale = hn::Set(df, scale);
    i = begin;
    // Whole-byte packing needs an even lane count (HWY_SCALAR has one lane: scalar loop only).
    for (; lanes >= 2 && i + lanes <= end; i += lanes) {
      hn::Store(Codes<kNF4>(df, hn::Mul(hn::LoadU(df, x + i), vscale)), di, codes);
      // begin and lanes are even, so i is even: whole bytes.
      for (int64_t j = 0; j < lanes; j += 2) {
        packed[(i + j) >> 1] =
            static_cast<uint8_t>((codes[j] << LOWBIT_NIBBLE_FIRST_SHIFT) | codes[j + 1]);
      }
    }
    for (; i < end; ++i) {
      const float y = x[i] * scale;
      PutNibble(packed, i, kNF4 ? ref::QuantizeNF4Value(y) : ref::QuantizeFP4Value(y));
    }
  }
  if (n & 1) packed[n >> 1] |= kNF4 ? LOWBIT_NF4_ZERO_CODE : LOWBIT_FP4_ZERO_CODE;
}

void QuantizeNF4(const float* x, int64_t n, int64_t block, uint8_t* packed, float* absmax) {
  Quantize4bitImpl<true>(x, n, block, packed, absmax);
}
void QuantizeFP4(const float* x, int64_t n, int64_t block, uint8_t* packed, float* absmax) {
  Quantize4bitImpl<false>(x, n, block, packed, absmax);
}

}  // namespace HWY_NAMESPACE
}  // namespace lowbit::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace lowbit::cpu {

HWY_EXPORT(QuantizeNF4);
HWY_EXPORT(QuantizeFP4);

void Quantize4bitBlockwise(Format format, const float* x, int64_t n, int64_t block,
                           uint8_t* packed, float* absmax) {
  LOWBIT_DCHECK_INVARIANT((format == Format::kNF4 || format == Format::kFP4) && block % 2 == 0);
  if (format == Format::kNF4) {
    HWY_DYNAMIC_DISPATCH(QuantizeNF4)(x, n, block, packed, absmax);
  } else {
    HWY_DYNAMIC_DISPATCH(QuantizeFP4)(x, n, block, packed, absmax);
  }
}

}  // namespace lowbit::cpu
#endif  // HWY_ONCE
