// Reference FP8 (E4M3 / E5M2) codec with a float32 scale per row or per tensor.
#include <algorithm>
#include <cmath>

#include "lowbit/fp8.h"
#include "reference/reference.h"

namespace lowbit::ref {

void QuantizeFP8(const float* x, const QuantizeOptions&, QuantizedTensor& out) {
  QuantState& s = out.state;
  const bool e4m3 = (s.format == Format::kFP8E4M3);
  const float max_finite = e4m3 ? LOWBIT_FP8_E4M3_MAX : LOWBIT_FP8_E5M2_MAX;
  s.scales.assign(static_cast<size_t>(s.num_scales()), 0.0f);
  ForEachGroup(s, [&](int64_t g, int64_t begin, int64_t end) {
    float amax = 0.0f;
    for (int64_t i = begin; i < end; ++i) amax = std::max(amax, std::fabs(x[i]));
    // scale maps the absmax onto the largest finite code; x = fp8(code) * scale.
    const float scale = amax / max_finite;
    s.scales[g] = scale;
    for (int64_t i = begin; i < end; ++i) {
      const float y = (scale > 0.0f) ? x[i] / scale : 0.0f;
      out.data[i] = e4m3 ? F32ToFP8E4M3(y) : F32ToFP8E5M2(y);
    }
  });
}

void DequantizeFP8(const QuantizedTensor& q, float* out) {
  const QuantState& s = q.state;
  const bool e4m3 = (s.format == Format::kFP8E4M3);
  ForEachGroup(s, [&](int64_t g, int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      out[i] = (e4m3 ? FP8E4M3ToF32(q.data[i]) : FP8E5M2ToF32(q.data[i])) * s.scales[g];
    }
  });
}

}  // namespace lowbit::ref
