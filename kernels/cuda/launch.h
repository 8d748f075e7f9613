// Host-callable launchers of the CUDA kernels (codec_kernels.cu, gemv_kernels.cu).
//
// Internal header, plain C++: cuda_backend.cc includes it without nvcc. Every pointer here is a
// device pointer. Launchers only enqueue work on `stream` and report launch errors by throwing
// lowbit::Error(kBackendError); they never synchronize.
#ifndef LOWBIT_KERNELS_CUDA_LAUNCH_H_
#define LOWBIT_KERNELS_CUDA_LAUNCH_H_

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/device_codecs.h"

namespace lowbit::cuda {

// out[j] = element (begin + j) of `w` for j < count, converted to `out_type` (round to nearest
// even). With out_type kF32 the values are bit-identical to the reference dequantize.
void LaunchDequantize(const WeightView& w, int64_t begin, int64_t count, void* out,
                      DenseType out_type, cudaStream_t stream);

// Statistic pass of device quantization: amax_bits[s] = bits of max |x| over segment s, where
// segment s covers flat elements [s * segment, min(n, (s + 1) * segment)). amax_bits must be
// zeroed first (non-negative floats order like their bits, so atomicMax on bits is exact).
void LaunchSegmentAbsmax(const float* x, int64_t n, int64_t segment, uint32_t* amax_bits,
                         cudaStream_t stream);
// nf4 / fp4 codes of x (block = segment) into ceil(n / 2) packed bytes, bit-exact with the
// reference (odd n: the last low nibble gets the format's zero code).
void LaunchEncode4bit(bool nf4, const float* x, int64_t n, int64_t block, const uint32_t* amax_bits,
                      uint8_t* packed, cudaStream_t stream);
// int8 codes of x with one absmax per segment (row or tensor), bit-exact with the reference.
void LaunchEncodeInt8(const float* x, int64_t n, int64_t segment, const uint32_t* amax_bits,
                      int8_t* q, cudaStream_t stream);

// y[m, n] = convert(acc[m, n] + bias[n]) for an [m, n] float32 accumulator; bias may be null.
void LaunchEpilogue(const float* acc, const float* bias, int64_t m, int64_t n, void* y,
                    DenseType y_type, cudaStream_t stream);
// dst[i] = convert(src[i]) between dense types (exact widening, RNE narrowing).
void LaunchConvert(const void* src, DenseType src_type, int64_t n, void* dst, DenseType dst_type,
                   cudaStream_t stream);

// Fused dequantize + matrix-vector product for M = 1:
//   y[r] = convert(sum_k w[r, k] * x[k] + bias[r]),  r < rows,
// reading the canonical codes directly. Requires cols % kGemvChunk == 0 (rows then start on
// 16-byte boundaries), x 16-byte aligned, and kLut4 (zero points optional), kInt8, kUInt8 (zero
// points required), kE4M3 or kE5M2.
inline constexpr int64_t kGemvChunk = 32;  // elements per lane step: 16 bytes of 4-bit codes
struct GemvArgs {
  WeightView w;        // w.lut unused: the 4-bit table travels by value in lut16
  float lut16[16] = {};  // kLut4: value of each nibble (int4_asym: the nibble itself)
  int64_t rows = 0;
  int64_t cols = 0;
  const void* x = nullptr;
  DenseType x_type = DenseType::kF32;
  const float* bias = nullptr;
  void* y = nullptr;
  DenseType y_type = DenseType::kF32;
};
bool GemvKindSupported(WKind kind);
void LaunchGemv(const GemvArgs& args, cudaStream_t stream);

}  // namespace lowbit::cuda

#endif  // LOWBIT_KERNELS_CUDA_LAUNCH_H_
