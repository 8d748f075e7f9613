// CUDA kernels for element codecs: dequantize (any format, any output dtype), device quantization
// of nf4/fp4/int8, dtype conversion and the matmul epilogue (bias + output rounding).
//
// Per-element logic lives in device_codecs.h (shared with the host tests); these kernels only
// distribute it. All are grid-stride loops, so any element count runs with a bounded grid.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>

#include "kernels/cuda/device_runtime.h"
#include "kernels/cuda/launch.h"

namespace lowbit::cuda {
namespace {

constexpr int kThreads = 256;
// Grid cap for grid-stride loops: enough blocks to fill any current GPU several times over.
constexpr int64_t kMaxBlocks = 8192;

int Blocks(int64_t work) {
  return static_cast<int>(std::max<int64_t>(1, std::min(kMaxBlocks, (work + kThreads - 1) / kThreads)));
}

__device__ __forceinline__ void Store(void* out, DenseType t, int64_t j, float v) {
  switch (t) {
    case DenseType::kF32: static_cast<float*>(out)[j] = v; break;
    case DenseType::kF16: static_cast<__half*>(out)[j] = __float2half_rn(v); break;
    case DenseType::kBF16: static_cast<uint16_t*>(out)[j] = F32ToBF16Bits(v); break;
  }
}

__device__ __forceinline__ float Load(const void* in, DenseType t, int64_t j) {
  switch (t) {
    case DenseType::kF16: return F16BitsToF32(static_cast<const uint16_t*>(in)[j]);
    case DenseType::kBF16: return BF16BitsToF32(static_cast<const uint16_t*>(in)[j]);
    default: return static_cast<const float*>(in)[j];
  }
}

__global__ void DequantizeKernel(WeightView w, int64_t begin, int64_t count, void* out,
                                 DenseType out_type) {
  // A LUT (16 or 256 floats) is staged in shared memory: indices are data-dependent.
  __shared__ float lut[256];
  if (w.lut != nullptr) {
    const int lut_size = (w.kind == WKind::kLut8) ? 256 : 16;
    for (int t = threadIdx.x; t < lut_size; t += blockDim.x) lut[t] = w.lut[t];
    __syncthreads();
    w.lut = lut;
  }
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < count;
       j += stride) {
    Store(out, out_type, j, DequantElement(w, begin + j));
  }
}

__global__ void SegmentAbsmaxKernel(const float* x, int64_t n, int64_t segment, int64_t chunk,
                                    uint32_t* amax_bits) {
  // blockIdx.y: segment; blockIdx.x: chunk of the segment (segments longer than `chunk`).
  const int64_t seg_begin = static_cast<int64_t>(blockIdx.y) * segment;
  const int64_t begin = seg_begin + static_cast<int64_t>(blockIdx.x) * chunk;
  const int64_t end = min(min(begin + chunk, seg_begin + segment), n);
  float m = 0.0f;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) m = fmaxf(m, fabsf(x[i]));
  for (int off = 16; off > 0; off >>= 1) m = fmaxf(m, __shfl_xor_sync(0xFFFFFFFFu, m, off));
  __shared__ float warp_max[kThreads / 32];
  if ((threadIdx.x & 31) == 0) warp_max[threadIdx.x >> 5] = m;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int wi = 1; wi < static_cast<int>(blockDim.x >> 5); ++wi) m = fmaxf(m, warp_max[wi]);
    atomicMax(&amax_bits[blockIdx.y], __float_as_uint(m));  // m >= 0: bits order like values
  }
}

__global__ void Encode4bitKernel(bool nf4, const float* x, int64_t n, int64_t block,
                                 const uint32_t* amax_bits, uint8_t* packed) {
  const uint32_t zero_code = nf4 ? LOWBIT_NF4_ZERO_CODE : LOWBIT_FP4_ZERO_CODE;
  const int64_t bytes = (n + 1) / 2;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; b < bytes;
       b += stride) {
    // Both elements of a byte lie in one block: blocks are even-sized and start at even indices.
    const int64_t i = 2 * b;
    const float amax = __uint_as_float(amax_bits[i / block]);
    const uint32_t hi = Encode4bit(nf4, x[i], amax);
    const uint32_t lo = (i + 1 < n) ? Encode4bit(nf4, x[i + 1], amax) : zero_code;
    packed[b] = static_cast<uint8_t>((hi << LOWBIT_NIBBLE_FIRST_SHIFT) | lo);
  }
}

__global__ void EncodeInt8Kernel(const float* x, int64_t n, int64_t segment,
                                 const uint32_t* amax_bits, int8_t* q) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    q[i] = EncodeInt8(x[i], __uint_as_float(amax_bits[i / segment]));
  }
}

__global__ void EpilogueKernel(const float* acc, const float* bias, int64_t m, int64_t n, void* y,
                               DenseType y_type) {
  const int64_t total = m * n;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += stride) {
    const float v = (bias != nullptr) ? AddRn(acc[i], bias[i % n]) : acc[i];
    Store(y, y_type, i, v);
  }
}

__global__ void ConvertKernel(const void* src, DenseType src_type, int64_t n, void* dst,
                              DenseType dst_type) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    Store(dst, dst_type, i, Load(src, src_type, i));
  }
}

}  // namespace

void LaunchDequantize(const WeightView& w, int64_t begin, int64_t count, void* out,
                      DenseType out_type, cudaStream_t stream) {
  if (count <= 0) return;
  DequantizeKernel<<<Blocks(count), kThreads, 0, stream>>>(w, begin, count, out, out_type);
  CheckLaunch("DequantizeKernel");
}

void LaunchSegmentAbsmax(const float* x, int64_t n, int64_t segment, uint32_t* amax_bits,
                         cudaStream_t stream) {
  if (n <= 0) return;
  constexpr int64_t kChunk = 16384;  // elements per CUDA block; longer segments use atomics
  const int64_t segments = (n + segment - 1) / segment;
  const int64_t chunks = (std::min(segment, n) + kChunk - 1) / kChunk;
  // gridDim.y is limited to 65535: walk the segments in slices.
  for (int64_t s0 = 0; s0 < segments; s0 += 65535) {
    const int64_t ns = std::min<int64_t>(65535, segments - s0);
    const dim3 grid(static_cast<unsigned>(chunks), static_cast<unsigned>(ns));
    SegmentAbsmaxKernel<<<grid, kThreads, 0, stream>>>(x + s0 * segment, n - s0 * segment,
                                                       segment, kChunk, amax_bits + s0);
    CheckLaunch("SegmentAbsmaxKernel");
  }
}

void LaunchEncode4bit(bool nf4, const float* x, int64_t n, int64_t block, const uint32_t* amax_bits,
                      uint8_t* packed, cudaStream_t stream) {
  if (n <= 0) return;
  Encode4bitKernel<<<Blocks((n + 1) / 2), kThreads, 0, stream>>>(nf4, x, n, block, amax_bits,
                                                                 packed);
  CheckLaunch("Encode4bitKernel");
}

void LaunchEncodeInt8(const float* x, int64_t n, int64_t segment, const uint32_t* amax_bits,
                      int8_t* q, cudaStream_t stream) {
  if (n <= 0) return;
  EncodeInt8Kernel<<<Blocks(n), kThreads, 0, stream>>>(x, n, segment, amax_bits, q);
  CheckLaunch("EncodeInt8Kernel");
}

void LaunchEpilogue(const float* acc, const float* bias, int64_t m, int64_t n, void* y,
                    DenseType y_type, cudaStream_t stream) {
  if (m * n <= 0) return;
  EpilogueKernel<<<Blocks(m * n), kThreads, 0, stream>>>(acc, bias, m, n, y, y_type);
  CheckLaunch("EpilogueKernel");
}

void LaunchConvert(const void* src, DenseType src_type, int64_t n, void* dst, DenseType dst_type,
                   cudaStream_t stream) {
  if (n <= 0) return;
  ConvertKernel<<<Blocks(n), kThreads, 0, stream>>>(src, src_type, n, dst, dst_type);
  CheckLaunch("ConvertKernel");
}

}  // namespace lowbit::cuda
