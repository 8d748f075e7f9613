// Reference integer codecs: int8 (LLM.int8 absmax), int8 asymmetric, int4 symmetric/asymmetric.
#include <algorithm>
#include <cmath>

#include "reference/reference.h"

namespace lowbit::ref {

int32_t RoundClamp(float x, float scale, int32_t lo, int32_t hi) {
  if (scale == 0.0f) return 0;
  const float r = std::nearbyint(x / scale);  // default FP environment: round half to even
  return static_cast<int32_t>(std::clamp(r, static_cast<float>(lo), static_cast<float>(hi)));
}

float Int4SymScale(float absmax) { return absmax / static_cast<float>(LOWBIT_INT4_SYM_QMAX); }

void AsymScaleZero(float min, float max, int32_t qmax, float* scale, uint8_t* zero) {
  min = std::min(min, 0.0f);
  max = std::max(max, 0.0f);
  *scale = (max - min) / static_cast<float>(qmax);
  *zero = (*scale == 0.0f)
              ? 0
              : static_cast<uint8_t>(std::clamp(std::nearbyint(-min / *scale), 0.0f,
                                                static_cast<float>(qmax)));
}

namespace {

void MinMax(const float* x, int64_t begin, int64_t end, float* mn, float* mx) {
  *mn = x[begin];
  *mx = x[begin];
  for (int64_t i = begin; i < end; ++i) {
    *mn = std::min(*mn, x[i]);
    *mx = std::max(*mx, x[i]);
  }
}

void PutNibble(uint8_t* packed, int64_t i, uint8_t v) {
  if ((i & 1) == 0) {
    packed[i >> 1] = static_cast<uint8_t>(v << LOWBIT_NIBBLE_FIRST_SHIFT);
  } else {
    packed[i >> 1] |= v;
  }
}

}  // namespace

void QuantizeInt8(const float* x, const QuantizeOptions&, QuantizedTensor& out) {
  QuantState& s = out.state;
  s.scales.assign(static_cast<size_t>(s.num_scales()), 0.0f);
  int8_t* q = reinterpret_cast<int8_t*>(out.data.data());
  ForEachGroup(s, [&](int64_t g, int64_t begin, int64_t end) {
    float amax = 0.0f;
    for (int64_t i = begin; i < end; ++i) amax = std::max(amax, std::fabs(x[i]));
    s.scales[g] = amax;  // bitsandbytes SCB: the absmax itself
    // round_half_even(x * f32(127 / absmax)), as bitsandbytes' int8_vectorwise_quant.
    const float mul = (amax > 0.0f) ? static_cast<float>(LOWBIT_INT8_QMAX) / amax : 0.0f;
    for (int64_t i = begin; i < end; ++i) {
      const float r = std::nearbyint(x[i] * mul);
      q[i] = static_cast<int8_t>(std::clamp(r, -127.0f, 127.0f));
    }
  });
}

void DequantizeInt8(const QuantizedTensor& qt, float* out) {
  const QuantState& s = qt.state;
  const int8_t* q = reinterpret_cast<const int8_t*>(qt.data.data());
  ForEachGroup(s, [&](int64_t g, int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      out[i] = (static_cast<float>(q[i]) * s.scales[g]) * LOWBIT_INT8_INV_QMAX;
    }
  });
}

void QuantizeInt8Asym(const float* x, const QuantizeOptions&, QuantizedTensor& out) {
  QuantState& s = out.state;
  s.scales.assign(static_cast<size_t>(s.num_scales()), 0.0f);
  s.zero_points.assign(static_cast<size_t>(s.num_scales()), 0);
  ForEachGroup(s, [&](int64_t g, int64_t begin, int64_t end) {
    float mn, mx;
    MinMax(x, begin, end, &mn, &mx);
    AsymScaleZero(mn, mx, LOWBIT_UINT8_QMAX, &s.scales[g], &s.zero_points[g]);
    for (int64_t i = begin; i < end; ++i) {
      const int32_t v = RoundClamp(x[i], s.scales[g], -LOWBIT_UINT8_QMAX, LOWBIT_UINT8_QMAX) +
                        s.zero_points[g];
      out.data[i] = static_cast<uint8_t>(std::clamp(v, 0, LOWBIT_UINT8_QMAX));
    }
  });
}

void DequantizeInt8Asym(const QuantizedTensor& qt, float* out) {
  const QuantState& s = qt.state;
  ForEachGroup(s, [&](int64_t g, int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      out[i] = static_cast<float>(static_cast<int32_t>(qt.data[i]) - s.zero_points[g]) * s.scales[g];
    }
  });
}

void QuantizeInt4(const float* x, const QuantizeOptions&, QuantizedTensor& out) {
  QuantState& s = out.state;
  s.scales.assign(static_cast<size_t>(s.num_scales()), 0.0f);
  ForEachGroup(s, [&](int64_t g, int64_t begin, int64_t end) {
    float amax = 0.0f;
    for (int64_t i = begin; i < end; ++i) amax = std::max(amax, std::fabs(x[i]));
    s.scales[g] = Int4SymScale(amax);
    for (int64_t i = begin; i < end; ++i) {
      const int32_t q = RoundClamp(x[i], s.scales[g], -LOWBIT_INT4_SYM_QMAX, LOWBIT_INT4_SYM_QMAX);
      PutNibble(out.data.data(), i, static_cast<uint8_t>(q + LOWBIT_INT4_SYM_OFFSET));
    }
  });
  const int64_t n = s.num_elements();
  if (n & 1) out.data[n >> 1] |= LOWBIT_INT4_SYM_OFFSET;  // pad with the code of 0
}

void QuantizeInt4Asym(const float* x, const QuantizeOptions&, QuantizedTensor& out) {
  QuantState& s = out.state;
  s.scales.assign(static_cast<size_t>(s.num_scales()), 0.0f);
  s.zero_points.assign(static_cast<size_t>(s.num_scales()), 0);
  ForEachGroup(s, [&](int64_t g, int64_t begin, int64_t end) {
    float mn, mx;
    MinMax(x, begin, end, &mn, &mx);
    AsymScaleZero(mn, mx, LOWBIT_INT4_ASYM_QMAX, &s.scales[g], &s.zero_points[g]);
    for (int64_t i = begin; i < end; ++i) {
      const int32_t v = RoundClamp(x[i], s.scales[g], -LOWBIT_INT4_ASYM_QMAX, LOWBIT_INT4_ASYM_QMAX) +
                        s.zero_points[g];
      PutNibble(out.data.data(), i, static_cast<uint8_t>(std::clamp(v, 0, LOWBIT_INT4_ASYM_QMAX)));
    }
  });
  // An odd element count pads the last low nibble with the code of 0.0: the zero point of the
  // last group (format_layout.h: padding always decodes to 0).
  const int64_t n = s.num_elements();
  if (n & 1) out.data[n >> 1] |= s.zero_points.back();
}

void DequantizeInt4(const QuantizedTensor& qt, float* out) {
  const QuantState& s = qt.state;
  const bool asym = (s.format == Format::kInt4Asym);
  ForEachGroup(s, [&](int64_t g, int64_t begin, int64_t end) {
    const int32_t zero = asym ? s.zero_points[g] : LOWBIT_INT4_SYM_OFFSET;
    for (int64_t i = begin; i < end; ++i) {
      out[i] = static_cast<float>(static_cast<int32_t>(Nibble(qt.data.data(), i)) - zero) * s.scales[g];
    }
  });
}


}  // namespace lowbit::ref
