// CUDA runtime plumbing of the CUDA backend (device_runtime.h): errors, buffers, stream, cuBLAS.
#include "kernels/cuda/device_runtime.h"

#include <cublas_v2.h>

#include <mutex>
#include <string>

#include "lowbit/status.h"

namespace lowbit::cuda {

void CheckCuda(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return;
  cudaGetLastError();  // clear the sticky error so later calls are not blamed for it
  throw Error(Status::kBackendError, std::string("cuda: ") + what + ": " +
                                         cudaGetErrorString(err) + " (" + cudaGetErrorName(err) +
                                         ")");
}

void CheckCublas(cublasStatus_t status, const char* what) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  throw Error(Status::kBackendError,
              std::string("cublas: ") + what + ": " + cublasGetStatusString(status));
}

void CheckLaunch(const char* kernel) {
  CheckCuda(cudaGetLastError(), (std::string("launch of ") + kernel).c_str());
}

const ProbeResult& Probe() {
  static const ProbeResult result = [] {
    ProbeResult r;
    int count = 0;
    const cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
      cudaGetLastError();
      r.reason = std::string("no usable CUDA driver/device: cudaGetDeviceCount failed: ") +
                 cudaGetErrorString(err) + " (" + cudaGetErrorName(err) + ")";
      return r;
    }
    if (count == 0) {
      r.reason = "no CUDA device present";
      return r;
    }
    cudaDeviceProp prop{};
    const cudaError_t perr = cudaGetDeviceProperties(&prop, 0);
    if (perr != cudaSuccess) {
      cudaGetLastError();
      r.reason = std::string("cudaGetDeviceProperties failed: ") + cudaGetErrorString(perr);
      return r;
    }
    r.name = prop.name;
    r.sm = prop.major * 10 + prop.minor;
    if (prop.major < 8) {
      r.reason = "device " + r.name + " has compute capability " + std::to_string(prop.major) +
                 "." + std::to_string(prop.minor) + "; lowbit's CUDA kernels are built for 8.0+";
      return r;
    }
    r.usable = true;
    return r;
  }();
  return result;
}

DeviceBuffer::~DeviceBuffer() {
  if (ptr_ != nullptr) cudaFree(ptr_);  // errors here (e.g. at process exit) are ignored
}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    if (ptr_ != nullptr) cudaFree(ptr_);
    ptr_ = o.ptr_;
    bytes_ = o.bytes_;
    o.ptr_ = nullptr;
    o.bytes_ = 0;
  }
  return *this;
}

void DeviceBuffer::Resize(size_t bytes) {
  if (bytes <= bytes_ && ptr_ != nullptr) return;
  if (ptr_ != nullptr) {
    cudaFree(ptr_);
    ptr_ = nullptr;
    bytes_ = 0;
  }
  if (bytes == 0) return;
  CheckCuda(cudaMalloc(&ptr_, bytes), ("cudaMalloc of " + std::to_string(bytes) + " bytes").c_str());
  bytes_ = bytes;
}

namespace {

struct StreamHolder {
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
};

StreamHolder& Holder() {
  static StreamHolder holder;
  static std::once_flag once;
  std::call_once(once, [] {
    CheckCuda(cudaSetDevice(Probe().device), "cudaSetDevice");
    CheckCuda(cudaStreamCreateWithFlags(&holder.stream, cudaStreamNonBlocking), "cudaStreamCreate");
  });
  return holder;
}

}  // namespace

cudaStream_t Stream() { return Holder().stream; }

void SyncStream() { CheckCuda(cudaStreamSynchronize(Stream()), "cudaStreamSynchronize"); }

cublasHandle_t Cublas() {
  StreamHolder& h = Holder();
  if (h.cublas == nullptr) {
    CheckCublas(cublasCreate(&h.cublas), "cublasCreate");
    CheckCublas(cublasSetStream(h.cublas, h.stream), "cublasSetStream");
    // No TF32: float32 GEMMs stay float32 (parity with the CPU reference).
    CheckCublas(cublasSetMathMode(h.cublas, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
  }
  return h.cublas;
}

void Upload(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  CheckCuda(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, Stream()), "upload");
}

void Download(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  CheckCuda(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, Stream()), "download");
  SyncStream();
}

DeviceBuffer UploadCopy(const void* src, size_t bytes) {
  DeviceBuffer b(bytes);
  Upload(b.get(), src, bytes);
  return b;
}

bool IsDevicePointer(const void* p) {
  if (p == nullptr) return false;
  cudaPointerAttributes attr{};
  if (cudaPointerGetAttributes(&attr, p) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged;
}

}  // namespace lowbit::cuda
