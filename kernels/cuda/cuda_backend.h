// The CUDA backend's entry in the dispatch table, and what tests and benchmarks may ask of it.
//
// Internal header (not installed); exists only in builds with LOWBIT_BACKEND_CUDA.
#ifndef LOWBIT_KERNELS_CUDA_CUDA_BACKEND_H_
#define LOWBIT_KERNELS_CUDA_CUDA_BACKEND_H_

#include <string>

#include "backend.h"

namespace lowbit::cuda {

// The "cuda" dispatch-table entry (registered in src/backend_registry.cc).
extern const Backend kBackend;

// Empty when a usable device was found; otherwise why not ("no usable CUDA driver/device:
// cudaGetDeviceCount failed: ..."), for skip messages. Probes once; never throws.
std::string UnavailableReason();

// True when `packed` (made by kBackend.pack) runs M = 1 matmuls on the fused GEMV kernel rather
// than the dequantize-tile + cuBLAS path.
bool UsesFusedGemv(const BackendPacked& packed);

}  // namespace lowbit::cuda

#endif  // LOWBIT_KERNELS_CUDA_CUDA_BACKEND_H_
