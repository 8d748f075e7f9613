// Element codecs of the CUDA backend, written once as __host__ __device__ functions.
//
// Internal header. nvcc compiles these into the kernels; the host C++ compiler compiles the very
// same source into tests/cuda_test.cc, which checks them bit for bit against the scalar reference
// codecs (src/reference) on machines without a GPU. Every constant comes from
// lowbit/format_layout.h. Arithmetic that the reference rounds twice uses MulRn/AddRn/DivRn
// (__fmul_rn/__fadd_rn/__fdiv_rn on the device), so nvcc cannot contract it into one FMA.
#ifndef LOWBIT_KERNELS_CUDA_DEVICE_CODECS_H_
#define LOWBIT_KERNELS_CUDA_DEVICE_CODECS_H_

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "lowbit/format_layout.h"

#if defined(__CUDACC__)
#define LOWBIT_HD __host__ __device__ __forceinline__
#else
#define LOWBIT_HD inline
#endif
// Full unrolling of constant-trip loops in device code (GCC would warn about the pragma).
#if defined(__CUDA_ARCH__)
#define LOWBIT_UNROLL _Pragma("unroll")
#else
#define LOWBIT_UNROLL
#endif

namespace lowbit::cuda {

// Element type of a dense buffer (activations, outputs, dequantized tiles).
enum class DenseType : uint8_t { kF32 = 0, kF16 = 1, kBF16 = 2 };

// How the bytes of a weight decode (one per format family; chosen on the host from Format).
enum class WKind : uint8_t {
  kLut4 = 0,   // 4-bit codes, high nibble first; v = lut16[code] (- zero)  (nf4, fp4, int4*)
  kInt8 = 1,   // int8 two's complement; w = (code * absmax) * (1/127)         (int8)
  kUInt8 = 2,  // uint8; w = (code - zero) * scale                            (int8_asym)
  kE4M3 = 3,   // OCP FP8 E4M3; w = fp8(code) * scale
  kE5M2 = 4,   // OCP FP8 E5M2; w = fp8(code) * scale
  kLut8 = 5,   // 8-bit index into a 256-entry map; w = map[code] * absmax  (blockwise8)
  kF32 = 6,    // dense float32 / float16 / bfloat16 weights (no statistics)
  kF16 = 7,
  kBF16 = 8,
};

// Which statistic scales element (r, k) of an [rows, cols] weight: flat blocks over the
// flattened tensor (flat = 1: index = (r * cols + k) >> shift), or per row segment
// (flat = 0: index = r * row_stride + (k >> shift); per row: row_stride 1, shift 62; per tensor:
// row_stride 0, shift 62). Block and group sizes are powers of two (format table).
struct StatMap {
  int64_t cols = 0;
  int64_t row_stride = 0;
  int32_t shift = 62;
  int32_t flat = 0;
};

LOWBIT_HD int64_t StatIndex(const StatMap& m, int64_t r, int64_t k) {
  return m.flat ? ((r * m.cols + k) >> m.shift) : (r * m.row_stride + (k >> m.shift));
}
LOWBIT_HD int64_t StatIndexFlat(const StatMap& m, int64_t i) {
  if (m.flat) return i >> m.shift;
  if (m.row_stride == 0) return 0;
  return StatIndex(m, i / m.cols, i % m.cols);
}

// ---- exact float arithmetic and bit casts ----------------------------------------------------
LOWBIT_HD float MulRn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;  // ISO C++ mode (CMAKE_CXX_EXTENSIONS OFF): GCC does not contract
#endif
}
LOWBIT_HD float AddRn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
LOWBIT_HD float DivRn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}
LOWBIT_HD uint32_t BitsOf(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
#endif
}
LOWBIT_HD float FloatOf(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  memcpy(&f, &u, 4);
  return f;
#endif
}

// ---- 16-bit floats ---------------------------------------------------------------------------
LOWBIT_HD float BF16BitsToF32(uint16_t b) { return FloatOf(static_cast<uint32_t>(b) << 16); }
// Round to nearest even; NaN keeps its payload with the quiet bit set (as lowbit::F32ToBF16).
LOWBIT_HD uint16_t F32ToBF16Bits(float f) {
  const uint32_t u = BitsOf(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);
  return static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}
// Exact: the 15 magnitude bits are placed under the float32 exponent/mantissa and rebased by an
// exact power-of-two multiply, which also normalizes float16 subnormals.
LOWBIT_HD float F16BitsToF32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t mag = h & 0x7FFFu;
  if (mag >= 0x7C00u) return FloatOf(sign | 0x7F800000u | ((mag & 0x3FFu) << 13));  // Inf/NaN
  const float v = MulRn(FloatOf(mag << 13), 0x1.0p+112f);  // 2^(127 - 15)
  return FloatOf(sign | BitsOf(v));
}

// ---- FP8 (OCP), same rebasing trick; exact ----------------------------------------------------
LOWBIT_HD float DecodeE4M3(uint32_t c) {
  const uint32_t sign = (c & 0x80u) << 24;
  const uint32_t mag = c & 0x7Fu;
  if (mag == LOWBIT_FP8_E4M3_NAN) return FloatOf(sign | 0x7FC00000u);
  // 2^(127 - bias): float32 exponent bias minus the E4M3 bias.
  const float v = MulRn(FloatOf(mag << (23 - LOWBIT_FP8_E4M3_MAN_BITS)), 0x1.0p+120f);
  return FloatOf(sign | BitsOf(v));
}
LOWBIT_HD float DecodeE5M2(uint32_t c) {
  const uint32_t sign = (c & 0x80u) << 24;
  const uint32_t mag = c & 0x7Fu;
  if (mag >= LOWBIT_FP8_E5M2_INF) {  // all-ones exponent: Inf (mantissa 0) or NaN
    return FloatOf(sign | (mag == LOWBIT_FP8_E5M2_INF ? 0x7F800000u : 0x7FC00000u));
  }
  const float v = MulRn(FloatOf(mag << (23 - LOWBIT_FP8_E5M2_MAN_BITS)), 0x1.0p+112f);
  return FloatOf(sign | BitsOf(v));
}

// ---- one element of a canonical weight --------------------------------------------------------
// A canonical (storage-layout) weight as the kernels see it. `scales` are the resolved float32
// statistics (nested double quantization already undone), `zeros` the uint8 zero points or null,
// `lut` 16 entries (kLut4: nf4/fp4 codebook, or the integer value of each nibble) or 256
// (kLut8: the dynamic map).
struct WeightView {
  WKind kind = WKind::kF32;
  const uint8_t* data = nullptr;
  const float* scales = nullptr;
  const uint8_t* zeros = nullptr;
  const float* lut = nullptr;
  StatMap map;
};

LOWBIT_HD uint32_t Nibble(const uint8_t* packed, int64_t i) {
  const uint32_t b = packed[i >> 1];
  return (i & 1) ? (b & 0x0Fu) : (b >> LOWBIT_NIBBLE_FIRST_SHIFT);
}

// Element i (flat, row-major) as float32, bit-identical to the format's reference dequantize.
LOWBIT_HD float DequantElement(const WeightView& w, int64_t i) {
  switch (w.kind) {
    case WKind::kF32: return FloatOf(reinterpret_cast<const uint32_t*>(w.data)[i]);
    case WKind::kF16: return F16BitsToF32(reinterpret_cast<const uint16_t*>(w.data)[i]);
    case WKind::kBF16: return BF16BitsToF32(reinterpret_cast<const uint16_t*>(w.data)[i]);
    default: break;
  }
  const int64_t s = StatIndexFlat(w.map, i);
  const float scale = w.scales[s];
  switch (w.kind) {
    case WKind::kLut4: {
      const uint32_t c = Nibble(w.data, i);
      if (w.zeros != nullptr) {  // int4_asym: (nibble - zero) * scale
        return MulRn(static_cast<float>(static_cast<int32_t>(c) - w.zeros[s]), scale);
      }
      return MulRn(w.lut[c], scale);
    }
    case WKind::kInt8:
      return MulRn(MulRn(static_cast<float>(static_cast<int8_t>(w.data[i])), scale),
                   LOWBIT_INT8_INV_QMAX);
    case WKind::kUInt8:
      return MulRn(static_cast<float>(static_cast<int32_t>(w.data[i]) - w.zeros[s]), scale);
    case WKind::kE4M3: return MulRn(DecodeE4M3(w.data[i]), scale);
    case WKind::kE5M2: return MulRn(DecodeE5M2(w.data[i]), scale);
    case WKind::kLut8: return MulRn(w.lut[w.data[i]], scale);
    default: return 0.0f;
  }
}

// ---- quantization rules (bitsandbytes / LLM.int8, docs/formats.md) ----------------------------
// NF4: number of thresholds strictly below y (NaN -> 0).
LOWBIT_HD uint32_t EncodeNF4(float y) {
  const float t[15] = LOWBIT_NF4_THRESHOLDS_INIT;
  uint32_t code = 0;
  LOWBIT_UNROLL
  for (int i = 0; i < 15; ++i) code += (y > t[i]) ? 1u : 0u;
  return code;
}
// FP4: sign bit for y < 0, magnitude code of the last threshold |y| exceeds.
LOWBIT_HD uint32_t EncodeFP4(float y) {
  const float t[7] = LOWBIT_FP4_THRESHOLDS_INIT;
  const uint8_t codes[7] = LOWBIT_FP4_THRESHOLD_CODES_INIT;
  const uint32_t sign = (y < 0.0f) ? LOWBIT_FP4_SIGN_BIT : 0u;
  const float a = fabsf(y);
  uint32_t magnitude = 0;
  LOWBIT_UNROLL
  for (int i = 0; i < 7; ++i) magnitude = (a > t[i]) ? codes[i] : magnitude;
  return sign | magnitude;
}
// 4-bit code of x in a block with absolute maximum `absmax` (0 for an all-zero block), as the
// reference: y = x * f32(1 / absmax), two roundings.
LOWBIT_HD uint32_t Encode4bit(bool nf4, float x, float absmax) {
  if (!(absmax > 0.0f)) return 0u;
  const float y = MulRn(x, DivRn(1.0f, absmax));
  return nf4 ? EncodeNF4(y) : EncodeFP4(y);
}
// int8 (LLM.int8): round_half_even(x * f32(127 / absmax)) clamped to [-127, 127].
LOWBIT_HD int8_t EncodeInt8(float x, float absmax) {
  const float mul =
      (absmax > 0.0f) ? DivRn(static_cast<float>(LOWBIT_INT8_QMAX), absmax) : 0.0f;
  float r = rintf(MulRn(x, mul));  // current rounding mode: nearest even
  r = fminf(fmaxf(r, -static_cast<float>(LOWBIT_INT8_QMAX)), static_cast<float>(LOWBIT_INT8_QMAX));
  return static_cast<int8_t>(r);
}

}  // namespace lowbit::cuda

#endif  // LOWBIT_KERNELS_CUDA_DEVICE_CODECS_H_
