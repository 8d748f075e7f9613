// CUDA runtime plumbing of the CUDA backend: error translation, device buffers, the backend's
// stream and cuBLAS handle, device probing.
//
// Internal header, plain C++ (no nvcc needed). Every CUDA or cuBLAS failure becomes
// lowbit::Error(Status::kBackendError) carrying the runtime's own message; nothing here exits or
// aborts.
#ifndef LOWBIT_KERNELS_CUDA_DEVICE_RUNTIME_H_
#define LOWBIT_KERNELS_CUDA_DEVICE_RUNTIME_H_

#include <cublas_api.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace lowbit::cuda {

// Throws Error(kBackendError) "cuda: <what>: <cudaGetErrorString> (<cudaGetErrorName>)" unless
// err == cudaSuccess. Clears the runtime's sticky last error first.
void CheckCuda(cudaError_t err, const char* what);
// Same for cuBLAS ("cublas: <what>: <cublasGetStatusString>").
void CheckCublas(cublasStatus_t status, const char* what);
// Throws if a kernel launch queued just before failed (cudaGetLastError).
void CheckLaunch(const char* kernel);

// The result of probing once per process: whether a usable device exists, and why not.
struct ProbeResult {
  bool usable = false;
  int device = 0;
  std::string reason;  // empty when usable; otherwise why not (no driver, no device, too old)
  std::string name;    // device name when one was found
  int sm = 0;          // compute capability * 10 (90 for H100)
};
// Probes device 0 once (thread-safe): cudaGetDeviceCount errors (no driver, no device) and devices
// below compute capability 8.0 (the build targets sm_80 and sm_90) make it unusable. Never throws.
const ProbeResult& Probe();

// Owning device allocation (cudaMalloc / cudaFree). Move-only. Not thread-safe.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes) { Resize(bytes); }
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) {
    o.ptr_ = nullptr;
    o.bytes_ = 0;
  }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  // Reallocates (contents lost) when `bytes` exceeds the capacity. Throws kBackendError (the
  // CUDA message says "out of memory" when that is the cause).
  void Resize(size_t bytes);
  void* get() const { return ptr_; }
  template <class T>
  T* as() const { return static_cast<T*>(ptr_); }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// Copies `bytes` host -> device / device -> host on the backend stream (asynchronously with
// respect to the host for device destinations; Download waits for completion).
void Upload(void* dst, const void* src, size_t bytes);
void Download(void* dst, const void* src, size_t bytes);
// A new device buffer holding a copy of host bytes (empty buffer for bytes == 0).
DeviceBuffer UploadCopy(const void* src, size_t bytes);

// The stream every backend entry enqueues on (created on first use, non-blocking).
cudaStream_t Stream();
// Waits for all work on Stream().
void SyncStream();
// cuBLAS, loaded with dlopen on first use (LOWBIT_CUBLAS_SONAME, e.g. "libcublas.so.13"): linking
// it would map ~200 MB into every process that links lowbit, GPU or not. Only the entries the
// backend uses. Throws Error(kBackendError) with dlerror() when the library cannot be loaded.
struct CublasApi {
  cublasHandle_t handle = nullptr;  // bound to Stream(), no TF32 (CUBLAS_DEFAULT_MATH)
  cublasStatus_t (*gemm_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
                            const void*, const void*, cudaDataType, int, const void*,
                            cudaDataType, int, const void*, void*, cudaDataType, int,
                            cublasComputeType_t, cublasGemmAlgo_t) = nullptr;
  const char* (*status_string)(cublasStatus_t) = nullptr;
};
// The loaded API and handle (created on first use). Callers serialize on the backend's mutex.
const CublasApi& Cublas();

// True when `p` is memory kernels can read directly (device or managed); false for host memory
// (pageable or pinned: the backend stages a copy) and null.
bool IsDevicePointer(const void* p);

}  // namespace lowbit::cuda

#endif  // LOWBIT_KERNELS_CUDA_DEVICE_RUNTIME_H_
