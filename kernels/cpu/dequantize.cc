// SIMD dequantization of every quantized format on the canonical layout, bit-exact with the
// scalar reference codecs (src/reference) on every Highway target.
//
// Each value is computed with the reference's float32 operations in the reference's order (one
// multiply for codebook/FP8 formats, two for int8), so only the loads and decodes are vectorized.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/dequantize.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "kernels/cpu/codecs-inl.h"
#include "lowbit/fp8.h"
#include "reference/reference.h"

HWY_BEFORE_NAMESPACE();
namespace lowbit::cpu::HWY_NAMESPACE {
namespace {

// Elements [b, e) of a 4-bit canonical payload (flat, high nibble first):
// out[i] = value(nibble(i)) * scale with value = table[c] (codebook) or f32(c - zero) (integer).
template <bool kCodebook>
void Span4(const uint8_t* packed, int64_t b, int64_t e, const float* table, int32_t zero,
           float scale, float* out) {
  const DF df;
  const DI di;
  const auto scalar = [&](int64_t i) {
    const int32_t c = ref::Nibble(packed, i);
    out[i] = kCodebook ? table[c] * scale : static_cast<float>(c - zero) * scale;
  };
  // Integer formats pass no table: the lookup is built only for codebooks (loading a nullptr
  // table into a vector register would fault).
  const float kNoTable[16] = {};
  const Lut16 lut(kCodebook ? table : kNoTable);
  const auto decode = [&](VI c) {
    if constexpr (kCodebook) {
      return hn::Mul(lut(c), hn::Set(df, scale));
    } else {
      return hn::Mul(hn::ConvertTo(df, hn::Sub(c, hn::Set(di, zero))), hn::Set(df, scale));
    }
  };
  int64_t i = b;
  if (i < e && (i & 1)) scalar(i++);
  for (; i + 2 * static_cast<int64_t>(kLanes) <= e; i += 2 * kLanes) {
    const VI v = LoadU8AsI32(packed + i / 2);
    hn::StoreInterleaved2(decode(hn::ShiftRight<4>(v)), decode(hn::And(v, hn::Set(di, 0xF))), df,
                          out + i);
  }
  for (; i < e; ++i) scalar(i);
}

// Elements [b, e) of a one-byte-per-element payload: out[i] = decode(code[i], scale, zero) with
// the reference formula of `kFormat`.
template <Format kFormat>
void Span8(const uint8_t* codes, int64_t b, int64_t e, const float* table, int32_t zero,
           float scale, float* out) {
  const DF df;
  const DI di;
  const VF vscale = hn::Set(df, scale);
  int64_t i = b;
  for (; i + static_cast<int64_t>(kLanes) <= e; i += kLanes) {
    VF v;
    if constexpr (kFormat == Format::kInt8) {
      // (code * absmax) * f32(1/127): two roundings, as the reference.
      v = hn::Mul(hn::Mul(hn::ConvertTo(df, LoadI8AsI32(codes + i)), vscale),
                  hn::Set(df, LOWBIT_INT8_INV_QMAX));
    } else if constexpr (kFormat == Format::kInt8Asym) {
      v = hn::Mul(hn::ConvertTo(df, hn::Sub(LoadU8AsI32(codes + i), hn::Set(di, zero))), vscale);
    } else if constexpr (kFormat == Format::kFP8E4M3) {
      v = hn::Mul(DecodeE4M3(LoadU8AsI32(codes + i)), vscale);
    } else if constexpr (kFormat == Format::kFP8E5M2) {
      v = hn::Mul(DecodeE5M2(LoadU8AsI32(codes + i)), vscale);
    } else {
      static_assert(kFormat == Format::kBlockwise8, "one-byte formats");
      v = hn::Mul(hn::GatherIndex(df, table, LoadU8AsI32(codes + i)), vscale);
    }
    hn::StoreU(v, df, out + i);
  }
  for (; i < e; ++i) {
    const uint8_t c = codes[i];
    if constexpr (kFormat == Format::kInt8) {
      out[i] = (static_cast<float>(static_cast<int8_t>(c)) * scale) * LOWBIT_INT8_INV_QMAX;
    } else if constexpr (kFormat == Format::kInt8Asym) {
      out[i] = static_cast<float>(static_cast<int32_t>(c) - zero) * scale;
    } else if constexpr (kFormat == Format::kFP8E4M3) {
      out[i] = FP8E4M3ToF32(c) * scale;
    } else if constexpr (kFormat == Format::kFP8E5M2) {
      out[i] = FP8E5M2ToF32(c) * scale;
    } else {
      out[i] = table[c] * scale;
    }
  }
}

}  // namespace

void DequantizeImpl(const QuantizedTensor& q, const float* scales, float* out) {
  const QuantState& s = q.state;
  const uint8_t* data = q.data.data();
  const float* book = s.codebook.empty() ? nullptr : s.codebook.data();
  const auto zero_of = [&](int64_t g) {
    return s.zero_points.empty() ? 0 : static_cast<int32_t>(s.zero_points[g]);
  };
  const FormatInfo& info = GetFormatInfo(s.format);
  if (info.code_bits == 4 && info.has_zero_point) {  // int4_asym: (c - zero) * scale
    ref::ForEachGroup(s, [&](int64_t g, int64_t b, int64_t e) {
      Span4<false>(data, b, e, nullptr, zero_of(g), scales[g], out);
    });
    return;
  }
  if (info.code_bits == 4) {
    // value[c] * scale: the stored codebook (nf4, fp4) or the codec's code values (int4: c - 8,
    // mxfp4 / nvfp4: E2M1); nvfp4's scale is the codec's f32(scale * tensor_scale).
    const float* table = info.codebook_size == 16 ? book : info.code_values;
    ref::ForEachGroup(s, [&](int64_t g, int64_t b, int64_t e) {
      Span4<true>(data, b, e, table, 0, scales[g] * s.tensor_scale, out);
    });
    return;
  }
  switch (s.format) {
    case Format::kInt8:
      ref::ForEachGroup(s, [&](int64_t g, int64_t b, int64_t e) {
        Span8<Format::kInt8>(data, b, e, nullptr, 0, scales[g], out);
      });
      return;
    case Format::kInt8Asym:
      ref::ForEachGroup(s, [&](int64_t g, int64_t b, int64_t e) {
        Span8<Format::kInt8Asym>(data, b, e, nullptr, zero_of(g), scales[g], out);
      });
      return;
    case Format::kFP8E4M3:
      ref::ForEachGroup(s, [&](int64_t g, int64_t b, int64_t e) {
        Span8<Format::kFP8E4M3>(data, b, e, nullptr, 0, scales[g], out);
      });
      return;
    case Format::kFP8E5M2:
      ref::ForEachGroup(s, [&](int64_t g, int64_t b, int64_t e) {
        Span8<Format::kFP8E5M2>(data, b, e, nullptr, 0, scales[g], out);
      });
      return;
    case Format::kBlockwise8:
      ref::ForEachGroup(s, [&](int64_t g, int64_t b, int64_t e) {
        Span8<Format::kBlockwise8>(data, b, e, book, 0, scales[g], out);
      });
      return;
    default:
      break;  // dense formats never reach here (cpu::Dequantize's contract); 4-bit: above
  }
}

}  // namespace lowbit::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace lowbit::cpu {

HWY_EXPORT(DequantizeImpl);

void Dequantize(const QuantizedTensor& q, float* out) {
  const std::vector<float> scales = ResolveScales(q.state);
  HWY_DYNAMIC_DISPATCH(DequantizeImpl)(q, scales.data(), out);
}

}  // namespace lowbit::cpu
#endif  // HWY_ONCE
