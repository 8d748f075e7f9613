// Fused dequantize + GEMV (M = 1) CUDA kernels over the canonical weight layout.
//
// Shape of the work: one warp per output row, kRowsPerBlock rows per block. Lane l of a warp
// walks the row in steps of 32 chunks (gemv_lane.h, shared with the host tests); a chunk is
// kGemvChunk = 32 consecutive elements, read with one 128-bit load (4-bit codes) or two (8-bit
// codes). Every statistic (block, group, row, tensor) spans a multiple of 32 elements aligned to
// 32, so one scale covers a whole chunk: the chunk is dotted with x in float32 and scaled once.
// 4-bit code values come from a 16-entry table in shared memory (16 distinct banks: no
// conflicts). Lanes then reduce with shuffles; lane 0 adds the bias and writes y in its dtype.
// Instantiated for 6 (kind, zero point) pairs x 3 activation types.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/device_runtime.h"
#include "kernels/cuda/gemv_lane.h"
#include "kernels/cuda/launch.h"
#include "lowbit/status.h"

namespace lowbit::cuda {
namespace {

constexpr int kRowsPerBlock = 4;  // warps per block: 128 threads, many resident blocks per SM

__device__ __forceinline__ void StoreY(void* y, DenseType t, int64_t r, float v) {
  switch (t) {
    case DenseType::kF32: static_cast<float*>(y)[r] = v; break;
    case DenseType::kF16: static_cast<__half*>(y)[r] = __float2half_rn(v); break;
    case DenseType::kBF16: static_cast<uint16_t*>(y)[r] = F32ToBF16Bits(v); break;
  }
}

template <WKind kKind, bool kZeros, DenseType kX>
__global__ void __launch_bounds__(kRowsPerBlock * kWarpLanes) GemvKernel(GemvArgs a) {
  __shared__ float lut[16];
  if constexpr (kKind == WKind::kLut4) {
    if (threadIdx.x < 16) lut[threadIdx.x] = a.lut16[threadIdx.x];
    __syncthreads();
  }
  const int lane = threadIdx.x % kWarpLanes;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarpLanes;
  if (r >= a.rows) return;  // whole warps leave together (rows are warp-uniform)
  float acc = GemvLaneSum<kKind, kZeros, kX>(a, lut, r, lane);
#pragma unroll
  for (int off = kWarpLanes / 2; off > 0; off >>= 1) acc += __shfl_xor_sync(0xFFFFFFFFu, acc, off);
  if (lane == 0) StoreY(a.y, a.y_type, r, GemvFinish<kKind>(a, r, acc));
}

template <WKind kKind, bool kZeros>
void Launch(const GemvArgs& a, cudaStream_t stream) {
  const unsigned blocks = static_cast<unsigned>((a.rows + kRowsPerBlock - 1) / kRowsPerBlock);
  constexpr int kThreads = kRowsPerBlock * kWarpLanes;
  switch (a.x_type) {
    case DenseType::kF32:
      GemvKernel<kKind, kZeros, DenseType::kF32><<<blocks, kThreads, 0, stream>>>(a);
      break;
    case DenseType::kF16:
      GemvKernel<kKind, kZeros, DenseType::kF16><<<blocks, kThreads, 0, stream>>>(a);
      break;
    case DenseType::kBF16:
      GemvKernel<kKind, kZeros, DenseType::kBF16><<<blocks, kThreads, 0, stream>>>(a);
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
