// SIMD blockwise NF4/FP4 quantization for the CPU backend (bit-exact with src/reference).
#ifndef LOWBIT_KERNELS_CPU_QUANTIZE_4BIT_H_
#define LOWBIT_KERNELS_CPU_QUANTIZE_4BIT_H_

#include <cstdint>

#include "lowbit/format.h"

namespace lowbit::cpu {

// Same contract as ref::Quantize4bitBlockwise: n flat elements of x (finite), blocks of `block`
// elements (block even), packed high-nibble-first into ceil(n/2) bytes, absmax[ceil(n/block)].
// `format` is kNF4 or kFP4. Runs on the calling thread with the best Highway target.
void Quantize4bitBlockwise(Format format, const float* x, int64_t n, int64_t block,
                           uint8_t* packed, float* absmax);

}  // namespace lowbit::cpu

#endif  // LOWBIT_KERNELS_CPU_QUANTIZE_4BIT_H_
