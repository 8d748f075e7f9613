// CUDA runtime plumbing of the CUDA backend (device_runtime.h): errors, buffers, stream, cuBLAS.
#include "kernels/cuda/device_runtime.h"

#include <dlfcn.h>

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
  const char* text = Cublas().status_string ? Cublas().status_string(status) : "unknown status";
  throw Error(Status::kBackendError, std::string("cublas: ") + what + ": " + text + " (" +
                                         std::to_string(static_cast<int>(status)) + ")");
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

cudaStream_t g_stream = nullptr;

// dlsym into a typed pointer; throws naming the symbol.
template <class Fn>
void Resolve(void* lib, const char* name, Fn& fn) {
  void* sym = dlsym(lib, name);
  if (sym == nullptr) {
    throw Error(Status::kBackendError, std::string("cublas: symbol ") + name + " not found in " +
                                           LOWBIT_CUBLAS_SONAME);
  }
  fn = reinterpret_cast<Fn>(sym);
}

CublasApi LoadCublas() {
  // The soname through the loader's search path first, then the toolkit found at build time.
  void* lib = dlopen(LOWBIT_CUBLAS_SONAME, RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) lib = dlopen(LOWBIT_CUBLAS_FALLBACK, RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* err = dlerror();
    throw Error(Status::kBackendError, std::string("cublas: cannot load ") + LOWBIT_CUBLAS_SONAME +
                                           " (GEMM path): " + (err ? err : "unknown dlopen error"));
  }
  CublasApi api;
  cublasStatus_t (*create)(cublasHandle_t*) = nullptr;
  cublasStatus_t (*set_stream)(cublasHandle_t, cudaStream_t) = nullptr;
  cublasStatus_t (*set_math_mode)(cublasHandle_t, cublasMath_t) = nullptr;
  Resolve(lib, "cublasGetStatusString", api.status_string);
  Resolve(lib, "cublasGemmEx", api.gemm_ex);
  Resolve(lib, "cublasCreate_v2", create);
  Resolve(lib, "cublasSetStream_v2", set_stream);
  Resolve(lib, "cublasSetMathMode", set_math_mode);
  const auto check = [&](cublasStatus_t st, const char* what) {
    if (st != CUBLAS_STATUS_SUCCESS) {
      throw Error(Status::kBackendError, std::string("cublas: ") + what + ": " +
                                             api.status_string(st));
    }
  };
  check(create(&api.handle), "cublasCreate");
  check(set_stream(api.handle, Stream()), "cublasSetStream");
  // No TF32: float32 GEMMs stay float32 (parity with the CPU reference).
  check(set_math_mode(api.handle, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
  return api;
}

}  // namespace

cudaStream_t Stream() {
  static std::once_flag once;
  std::call_once(once, [] {
    CheckCuda(cudaSetDevice(Probe().device), "cudaSetDevice");
    CheckCuda(cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking), "cudaStreamCreate");
  });
  return g_stream;
}

void SyncStream() { CheckCuda(cudaStreamSynchronize(Stream()), "cudaStreamSynchronize"); }

const CublasApi& Cublas() {
  // A failed load throws from the initializer and is retried on the next call.
  static const CublasApi api = LoadCublas();
  return api;
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
