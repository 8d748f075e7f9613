// One lane's share of the fused GEMV (gemv_kernels.cu), as __host__ __device__ code.
//
// Internal header. The kernel runs GemvLaneSum on each of the 32 lanes of the warp that owns a
// row and adds the results with shuffles; tests/cuda_test.cc runs the same function for the 32
// lanes on the host and checks the row against a float64 reference, so the chunk layout (nibble
// order inside 128-bit loads, statistic per chunk, zero-point correction, int8 scaling) is
// verified without a GPU. Only the memory loads differ: __ldg of a uint4 on the device, memcpy on
// the host; f16 activations widen with the hardware conversion on the device and with the exact
// bit-level decoder on the host (identical values).
#ifndef LOWBIT_KERNELS_CUDA_GEMV_LANE_H_
#define LOWBIT_KERNELS_CUDA_GEMV_LANE_H_

#if defined(__CUDACC__)
#include <cuda_fp16.h>
#endif

#include "kernels/cuda/device_codecs.h"
#include "kernels/cuda/launch.h"

namespace lowbit::cuda {

inline constexpr int kWarpLanes = 32;

// 16 bytes at p (16-byte aligned) as four little-endian words.
LOWBIT_HD void LoadU4(const uint8_t* p, uint32_t (&w)[4]) {
#if defined(__CUDA_ARCH__)
  const uint4 v = __ldg(reinterpret_cast<const uint4*>(p));
  w[0] = v.x;
  w[1] = v.y;
  w[2] = v.z;
  w[3] = v.w;
#else
  memcpy(w, p, 16);
#endif
}

// Activations k .. k + 7 (k a multiple of 8) as float32.
template <DenseType kX>
LOWBIT_HD void LoadX8(const void* x, int64_t k, float (&v)[8]) {
  uint32_t w[4];
  if constexpr (kX == DenseType::kF32) {
    const uint8_t* p = static_cast<const uint8_t*>(x) + k * 4;
    LoadU4(p, w);
    LOWBIT_UNROLL
    for (int i = 0; i < 4; ++i) v[i] = FloatOf(w[i]);
    LoadU4(p + 16, w);
    LOWBIT_UNROLL
    for (int i = 0; i < 4; ++i) v[4 + i] = FloatOf(w[i]);
  } else {
    LoadU4(static_cast<const uint8_t*>(x) + k * 2, w);
    LOWBIT_UNROLL
    for (int i = 0; i < 4; ++i) {  // element 2i is the low half of word i (little endian)
      if constexpr (kX == DenseType::kBF16) {
        v[2 * i] = FloatOf(w[i] << 16);
        v[2 * i + 1] = FloatOf(w[i] & 0xFFFF0000u);
      } else {
#if defined(__CUDA_ARCH__)
        const float2 f = __half22float2(*reinterpret_cast<const __half2*>(&w[i]));
        v[2 * i] = f.x;
        v[2 * i + 1] = f.y;
#else
        v[2 * i] = F16BitsToF32(static_cast<uint16_t>(w[i] & 0xFFFFu));
        v[2 * i + 1] = F16BitsToF32(static_cast<uint16_t>(w[i] >> 16));
#endif
      }
    }
  }
}

// Value of byte code c for the 8-bit kinds (before the chunk's statistic).
template <WKind kKind>
LOWBIT_HD float ByteValue(uint32_t c) {
  if constexpr (kKind == WKind::kInt8) return static_cast<float>(static_cast<int8_t>(c));
  if constexpr (kKind == WKind::kUInt8) return static_cast<float>(c);
  if constexpr (kKind == WKind::kE4M3) return DecodeE4M3(c);
  return DecodeE5M2(c);
}

// Unscaled dot product of chunk `chunk` (kGemvChunk elements) of `row` with x; *xsum = sum of
// those x (asymmetric kinds only).
template <WKind kKind, bool kZeros, DenseType kX>
LOWBIT_HD float ChunkDot(const uint8_t* row, int64_t chunk, const void* x, const float* lut,
                         float* xsum) {
  const int64_t k0 = chunk * kGemvChunk;
  float acc = 0.0f, sx = 0.0f;
  if constexpr (kKind == WKind::kLut4) {
    uint32_t words[4];
    LoadU4(row + chunk * (kGemvChunk / 2), words);
    LOWBIT_UNROLL
    for (int q = 0; q < 4; ++q) {  // 4 bytes = 8 elements per word
      float xv[8];
      LoadX8<kX>(x, k0 + 8 * q, xv);
      LOWBIT_UNROLL
      for (int b = 0; b < 4; ++b) {
        const uint32_t byte = (words[q] >> (8 * b)) & 0xFFu;  // byte 4q + b in memory order
        acc += lut[byte >> LOWBIT_NIBBLE_FIRST_SHIFT] * xv[2 * b];  // first element: high nibble
        acc += lut[byte & 0x0Fu] * xv[2 * b + 1];
        if constexpr (kZeros) sx += xv[2 * b] + xv[2 * b + 1];
      }
    }
  } else {
    LOWBIT_UNROLL
    for (int h = 0; h < 2; ++h) {  // two 16-byte halves
      uint32_t words[4];
      LoadU4(row + chunk * kGemvChunk + 16 * h, words);
      LOWBIT_UNROLL
      for (int q = 0; q < 4; q += 2) {
        float xv[8];
        LoadX8<kX>(x, k0 + 16 * h + 4 * q, xv);
        LOWBIT_UNROLL
        for (int e = 0; e < 8; ++e) {
          const uint32_t c = (words[q + e / 4] >> (8 * (e % 4))) & 0xFFu;
          acc += ByteValue<kKind>(c) * xv[e];
          if constexpr (kZeros) sx += xv[e];
        }
      }
    }
  }
  *xsum = sx;
  return acc;
}

// Lane `lane`'s partial sum of row r: chunks lane, lane + 32, ... each scaled by its statistic.
// Two chunks per step keep two 128-bit loads in flight before the first is used.
template <WKind kKind, bool kZeros, DenseType kX>
LOWBIT_HD float GemvLaneSum(const GemvArgs& a, const float* lut, int64_t r, int lane) {
  const int64_t row_bytes = (kKind == WKind::kLut4) ? a.cols / 2 : a.cols;
  const uint8_t* row = a.w.data + r * row_bytes;
  const int64_t chunks = a.cols / kGemvChunk;
  float acc = 0.0f;
  for (int64_t c = lane; c < chunks; c += 2 * kWarpLanes) {
    const int64_t c2 = c + kWarpLanes;
    float xs1 = 0.0f, xs2 = 0.0f, d2 = 0.0f;
    const float d1 = ChunkDot<kKind, kZeros, kX>(row, c, a.x, lut, &xs1);
    if (c2 < chunks) d2 = ChunkDot<kKind, kZeros, kX>(row, c2, a.x, lut, &xs2);
    // Asymmetric: sum((v - z) * x) = sum(v * x) - z * sum(x), z constant over the chunk.
    const int64_t s1 = StatIndex(a.w.map, r, c * kGemvChunk);
    const float v1 = kZeros ? d1 - static_cast<float>(a.w.zeros[s1]) * xs1 : d1;
    acc += v1 * a.w.scales[s1];
    if (c2 < chunks) {
      const int64_t s2 = StatIndex(a.w.map, r, c2 * kGemvChunk);
      const float v2 = kZeros ? d2 - static_cast<float>(a.w.zeros[s2]) * xs2 : d2;
      acc += v2 * a.w.scales[s2];
    }
  }
  return acc;
}

// The row total of all lanes -> y[r] before rounding to the output dtype.
template <WKind kKind>
LOWBIT_HD float GemvFinish(const GemvArgs& a, int64_t r, float acc) {
  // int8 stores the row absmax (bitsandbytes SCB): the code's weight is absmax / 127.
  if constexpr (kKind == WKind::kInt8) acc *= LOWBIT_INT8_INV_QMAX;
  if (a.bias != nullptr) acc += a.bias[r];
  return acc;
}

}  // namespace lowbit::cuda

#endif  // LOWBIT_KERNELS_CUDA_GEMV_LANE_H_
