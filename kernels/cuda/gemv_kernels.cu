// Fused dequantize + GEMV (M = 1) CUDA kernels over the canonical weight layout.
//
// Shape of the work: one warp per output row, kRowsPerBlock rows per block. Lane l of a warp
// walks the row in steps of 32 chunks; a chunk is kGemvChunk = 32 consecutive elements, read with
// one 128-bit load (4-bit codes) or two (8-bit codes). Because every statistic (block, group, row,
// tensor) spans a multiple of 32 elements aligned to 32, one scale covers a whole chunk: the chunk
// is dotted with x in float32 and scaled once. 4-bit code values come from a 16-entry table in
// shared memory (16 distinct banks: no conflicts). Lanes then reduce with shuffles; lane 0 adds the
// bias and writes y in its dtype. Instantiated for 6 (kind, zero point) pairs x 3 activation types.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/device_runtime.h"
#include "kernels/cuda/launch.h"
#include "lowbit/status.h"

namespace lowbit::cuda {
namespace {

constexpr int kRowsPerBlock = 4;  // warps per block: 128 threads, many resident blocks per SM
constexpr int kWarp = 32;

// Loads 8 consecutive activations starting at x + k (k a multiple of 8) as float32.
template <class XT>
__device__ __forceinline__ void LoadX8(const XT* __restrict__ x, int64_t k, float (&v)[8]);

template <>
__device__ __forceinline__ void LoadX8<float>(const float* __restrict__ x, int64_t k, float (&v)[8]) {
  const float4 a = __ldg(reinterpret_cast<const float4*>(x + k));
  const float4 b = __ldg(reinterpret_cast<const float4*>(x + k + 4));
  v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w;
  v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
}

template <>
__device__ __forceinline__ void LoadX8<__half>(const __half* __restrict__ x, int64_t k, float (&v)[8]) {
  const uint4 raw = __ldg(reinterpret_cast<const uint4*>(x + k));
  const uint32_t w[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __half22float2(*reinterpret_cast<const __half2*>(&w[i]));
    v[2 * i] = f.x;
    v[2 * i + 1] = f.y;
  }
}

template <>
__device__ __forceinline__ void LoadX8<__nv_bfloat16>(const __nv_bfloat16* __restrict__ x, int64_t k,
                                                      float (&v)[8]) {
  const uint4 raw = __ldg(reinterpret_cast<const uint4*>(x + k));
  const uint32_t w[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    v[2 * i] = __uint_as_float(w[i] << 16);          // element 2i: low half (little endian)
    v[2 * i + 1] = __uint_as_float(w[i] & 0xFFFF0000u);
  }
}

// Value of byte code c for the 8-bit kinds (before the chunk's scale).
template <WKind kKind>
__device__ __forceinline__ float ByteValue(uint32_t c) {
  if constexpr (kKind == WKind::kInt8) return static_cast<float>(static_cast<int8_t>(c));
  if constexpr (kKind == WKind::kUInt8) return static_cast<float>(c);
  if constexpr (kKind == WKind::kE4M3) return DecodeE4M3(c);
  return DecodeE5M2(c);
}

// Dot product of one 32-element chunk with x, unscaled. `xsum` gets sum(x) (asymmetric kinds).
template <WKind kKind, bool kZeros, class XT>
__device__ __forceinline__ float ChunkDot(const uint8_t* __restrict__ row, int64_t chunk,
                                          const XT* __restrict__ x, const float* lut, float* xsum) {
  const int64_t k0 = chunk * kGemvChunk;
  float acc = 0.0f, sx = 0.0f;
  if constexpr (kKind == WKind::kLut4) {
    const uint4 raw = __ldg(reinterpret_cast<const uint4*>(row + chunk * (kGemvChunk / 2)));
    const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
    for (int q = 0; q < 4; ++q) {  // 4 bytes = 8 elements per word
      float xv[8];
      LoadX8(x, k0 + 8 * q, xv);
#pragma unroll
      for (int b = 0; b < 4; ++b) {
        const uint32_t byte = (words[q] >> (8 * b)) & 0xFFu;  // byte b of the word, in memory order
        acc += lut[byte >> LOWBIT_NIBBLE_FIRST_SHIFT] * xv[2 * b];  // first element: high nibble
        acc += lut[byte & 0x0Fu] * xv[2 * b + 1];
        if constexpr (kZeros) sx += xv[2 * b] + xv[2 * b + 1];
      }
    }
  } else {
    const uint4* p = reinterpret_cast<const uint4*>(row + chunk * kGemvChunk);
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const uint4 raw = __ldg(p + h);
      const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
      for (int q = 0; q < 4; q += 2) {
        float xv[8];
        LoadX8(x, k0 + 16 * h + 4 * q, xv);
#pragma unroll
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

__device__ __forceinline__ void StoreY(void* y, DenseType t, int64_t r, float v) {
  switch (t) {
    case DenseType::kF32: static_cast<float*>(y)[r] = v; break;
    case DenseType::kF16: static_cast<__half*>(y)[r] = __float2half_rn(v); break;
    case DenseType::kBF16: static_cast<uint16_t*>(y)[r] = F32ToBF16Bits(v); break;
  }
}

template <WKind kKind, bool kZeros, class XT>
__global__ void __launch_bounds__(kRowsPerBlock * kWarp) GemvKernel(GemvArgs a) {
  __shared__ float lut[16];
  if constexpr (kKind == WKind::kLut4) {
    if (threadIdx.x < 16) lut[threadIdx.x] = a.lut16[threadIdx.x];
    __syncthreads();
  }
  const int lane = threadIdx.x % kWarp;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarp;
  if (r >= a.rows) return;
  const XT* __restrict__ x = static_cast<const XT*>(a.x);
  const int64_t row_bytes = (kKind == WKind::kLut4) ? a.cols / 2 : a.cols;
  const uint8_t* __restrict__ row = a.w.data + r * row_bytes;
  const int64_t chunks = a.cols / kGemvChunk;
  float acc = 0.0f;
  // Two chunks per lane per step keep two 128-bit loads in flight before the first is used.
  for (int64_t c = lane; c < chunks; c += 2 * kWarp) {
    const int64_t c2 = c + kWarp;
    float xs1 = 0.0f, xs2 = 0.0f, d2 = 0.0f;
    const float d1 = ChunkDot<kKind, kZeros>(row, c, x, lut, &xs1);
    if (c2 < chunks) d2 = ChunkDot<kKind, kZeros>(row, c2, x, lut, &xs2);
    const int64_t s1 = StatIndex(a.w.map, r, c * kGemvChunk);
    // Asymmetric: sum((v - z) * x) = sum(v * x) - z * sum(x), z constant over the chunk.
    const float v1 = kZeros ? d1 - static_cast<float>(a.w.zeros[s1]) * xs1 : d1;
    acc += v1 * a.w.scales[s1];
    if (c2 < chunks) {
      const int64_t s2 = StatIndex(a.w.map, r, c2 * kGemvChunk);
      const float v2 = kZeros ? d2 - static_cast<float>(a.w.zeros[s2]) * xs2 : d2;
      acc += v2 * a.w.scales[s2];
    }
  }
#pragma unroll
  for (int off = kWarp / 2; off > 0; off >>= 1) acc += __shfl_xor_sync(0xFFFFFFFFu, acc, off);
  if (lane == 0) {
    // int8 stores the row absmax (bitsandbytes SCB): the code's weight is absmax / 127.
    if constexpr (kKind == WKind::kInt8) acc *= LOWBIT_INT8_INV_QMAX;
    if (a.bias != nullptr) acc += a.bias[r];
    StoreY(a.y, a.y_type, r, acc);
  }
}

template <WKind kKind, bool kZeros>
void Launch(const GemvArgs& a, cudaStream_t stream) {
  const unsigned blocks = static_cast<unsigned>((a.rows + kRowsPerBlock - 1) / kRowsPerBlock);
  switch (a.x_type) {
    case DenseType::kF32:
      GemvKernel<kKind, kZeros, float><<<blocks, kRowsPerBlock * kWarp, 0, stream>>>(a);
      break;
    case DenseType::kF16:
      GemvKernel<kKind, kZeros, __half><<<blocks, kRowsPerBlock * kWarp, 0, stream>>>(a);
      break;
    case DenseType::kBF16:
      GemvKernel<kKind, kZeros, __nv_bfloat16><<<blocks, kRowsPerBlock * kWarp, 0, stream>>>(a);
      break;
  }
  CheckLaunch("GemvKernel");
}

}  // namespace

bool GemvKindSupported(WKind kind) {
  return kind == WKind::kLut4 || kind == WKind::kInt8 || kind == WKind::kUInt8 ||
         kind == WKind::kE4M3 || kind == WKind::kE5M2;
}

void LaunchGemv(const GemvArgs& a, cudaStream_t stream) {
  const bool zeros = (a.w.zeros != nullptr);
  switch (a.w.kind) {
    case WKind::kLut4:
      return zeros ? Launch<WKind::kLut4, true>(a, stream) : Launch<WKind::kLut4, false>(a, stream);
    case WKind::kInt8: if (!zeros) return Launch<WKind::kInt8, false>(a, stream); break;
    case WKind::kUInt8: if (zeros) return Launch<WKind::kUInt8, true>(a, stream); break;
    case WKind::kE4M3: if (!zeros) return Launch<WKind::kE4M3, false>(a, stream); break;
    case WKind::kE5M2: if (!zeros) return Launch<WKind::kE5M2, false>(a, stream); break;
    default: break;
  }
  throw Error(Status::kInternal, "LaunchGemv: weight kind / zero points have no fused GEMV");
}

}  // namespace lowbit::cuda
