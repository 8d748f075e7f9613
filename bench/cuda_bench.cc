// lowbit_cuda_bench — CUDA GEMV throughput per format vs a bf16 cuBLAS GEMV, in one binary.
//
// BM_Gemv_cuda/<format>/<act>/<N>x<K>   lowbit fused GEMV (M = 1), y f32, device-resident x / y
// BM_Gemv_cublas/bf16/bf16/<N>x<K>      cublasGemmEx with bf16 W and x, f32 accumulate, y f32
// Each benchmark iteration replays a CUDA graph of kLaunchesPerGraph GEMVs (so host launch cost
// does not hide sub-10 µs kernels), rotating through enough weight copies (>= 256 MiB in all) that
// the 50 MB L2 of an H100/H200 cannot serve them. Timing: CUDA events (manual time).
// Counters: bytes_per_second = weight bytes read (codes + scales) per second; bw_frac = that over
// the device-to-device copy bandwidth measured at start (read + write bytes), a practical peak.
// Without a usable GPU the binary prints why and exits 0.
#include <benchmark/benchmark.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "backend.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/device_runtime.h"
#include "lowbit/format.h"
#include "lowbit/quant_state.h"

namespace lowbit {
namespace {

constexpr int kLaunchesPerGraph = 32;
constexpr size_t kRotateBytes = size_t{256} << 20;  // > 5x the L2 of current data-center GPUs

double g_copy_bw = 0;  // bytes/s, device-to-device copy (read + write)

void Check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

uint64_t g_rng = 0x9E3779B97F4A7C15ull;
uint64_t Next() {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 7;
  g_rng ^= g_rng << 17;
  return g_rng;
}

// A canonical weight with random codes and plausible statistics (quantizing 235M floats on the
// host would dominate the run; the bandwidth does not depend on the values).
QuantizedTensor RandomWeight(Format f, int64_t n, int64_t k) {
  QuantizedTensor q;
  QuantState& s = q.state;
  s.format = f;
  s.shape = {n, k};
  switch (f) {
    case Format::kNF4:
    case Format::kFP4:
      s.granularity = Granularity::kBlock;
      s.block_size = LOWBIT_4BIT_DEFAULT_BLOCK;
      s.codebook.assign(f == Format::kNF4 ? kNF4Codebook : kFP4Codebook,
                        (f == Format::kNF4 ? kNF4Codebook : kFP4Codebook) + 16);
      break;
    case Format::kInt4:
      s.granularity = Granularity::kGroup;
      s.block_size = LOWBIT_INT4_DEFAULT_GROUP;
      break;
    default:
      s.granularity = Granularity::kRow;
      break;
  }
  s.scales.resize(static_cast<size_t>(s.num_scales()));
  for (float& v : s.scales) v = 0.01f + static_cast<float>(Next() % 1000) * 1e-5f;
  q.data.resize(static_cast<size_t>(PayloadBytes(f, n * k)));
  for (size_t i = 0; i < q.data.size(); i += 8) {
    const uint64_t r = Next();
    std::memcpy(q.data.data() + i, &r, std::min<size_t>(8, q.data.size() - i));
  }
  if (f == Format::kFP8E4M3) {
    for (uint8_t& b : q.data) {
      if ((b & 0x7F) == 0x7F) b ^= 1;  // no NaN codes
    }
  }
  return q;
}

DType ActDType(const std::string& a) {
  return a == "f16" ? DType::kF16 : a == "bf16" ? DType::kBF16 : DType::kF32;
}

// Times `launch` (enqueues one GEMV on `stream` for copy c) with graph replays.
template <class Launch>
void RunGraph(benchmark::State& state, cudaStream_t stream, int copies, double bytes_per_launch,
              Launch launch) {
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  Check(cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed), "begin capture");
  for (int i = 0; i < kLaunchesPerGraph; ++i) launch(i % copies);
  Check(cudaStreamEndCapture(stream, &graph), "end capture");
  Check(cudaGraphInstantiate(&exec, graph, 0), "instantiate");
  cudaEvent_t t0, t1;
  cudaEventCreate(&t0);
  cudaEventCreate(&t1);
  Check(cudaGraphLaunch(exec, stream), "warm-up");
  Check(cudaStreamSynchronize(stream), "warm-up sync");
  for (auto _ : state) {
    cudaEventRecord(t0, stream);
    cudaGraphLaunch(exec, stream);
    cudaEventRecord(t1, stream);
    cudaEventSynchronize(t1);
    float ms = 0;
    cudaEventElapsedTime(&ms, t0, t1);
    state.SetIterationTime(ms * 1e-3);
  }
  Check(cudaGetLastError(), "graph replay");
  const double bytes = bytes_per_launch * kLaunchesPerGraph * static_cast<double>(state.iterations());
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
  state.counters["bw_frac"] = benchmark::Counter(bytes / g_copy_bw, benchmark::Counter::kIsRate);
  cudaEventDestroy(t0);
  cudaEventDestroy(t1);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
}

void BM_GemvCuda(benchmark::State& state, Format f, std::string act, int64_t n, int64_t k) {
  const Backend& b = cuda::kBackend;
  const QuantizedTensor q = RandomWeight(f, n, k);
  std::vector<std::unique_ptr<BackendPacked>> copies;
  const std::unique_ptr<BackendPacked> first = b.pack(q);
  const double bytes = static_cast<double>(first->packed_bytes);
  const int ncopies = static_cast<int>(std::max<size_t>(1, kRotateBytes / first->packed_bytes + 1));
  for (int c = 0; c < ncopies; ++c) copies.push_back(b.pack(q));
  if (!cuda::UsesFusedGemv(*copies[0])) state.SkipWithError("weight not on the fused GEMV path");
  const DType xd = ActDType(act);
  cuda::DeviceBuffer x(static_cast<size_t>(k) * DTypeSize(xd)), y(static_cast<size_t>(n) * 4);
  Check(cudaMemset(x.get(), 0, x.bytes()), "memset x");
  MatmulArgs a;
  a.m = 1;
  a.x = x.get();
  a.x_dtype = xd;
  a.y = y.get();
  a.y_dtype = DType::kF32;
  Context& ctx = DefaultContext();
  RunGraph(state, cuda::Stream(), ncopies, bytes, [&](int c) { b.gemv(*copies[c], a, ctx); });
}

void BM_GemvCublas(benchmark::State& state, int64_t n, int64_t k) {
  const size_t wbytes = static_cast<size_t>(n * k) * 2;
  const int ncopies = static_cast<int>(std::max<size_t>(1, kRotateBytes / wbytes + 1));
  std::vector<cuda::DeviceBuffer> w;
  for (int c = 0; c < ncopies; ++c) {
    w.emplace_back(wbytes);
    Check(cudaMemset(w.back().get(), 0x3C, wbytes), "memset w");  // bf16 0x3C3C ~ 0.0115
  }
  cuda::DeviceBuffer x(static_cast<size_t>(k) * 2), y(static_cast<size_t>(n) * 4);
  Check(cudaMemset(x.get(), 0x3C, x.bytes()), "memset x");
  cublasHandle_t h;
  cublasCreate(&h);
  cublasSetStream(h, cuda::Stream());
  const float alpha = 1.0f, beta = 0.0f;
  RunGraph(state, cuda::Stream(), ncopies, static_cast<double>(wbytes), [&](int c) {
    cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(n), 1, static_cast<int>(k), &alpha,
                 w[c].get(), CUDA_R_16BF, static_cast<int>(k), x.get(), CUDA_R_16BF,
                 static_cast<int>(k), &beta, y.get(), CUDA_R_32F, static_cast<int>(n),
                 CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  });
  cublasDestroy(h);
}

// Device-to-device copy of 1 GiB: read + write bytes per second.
double MeasureCopyBandwidth() {
  const size_t bytes = size_t{1} << 30;
  cuda::DeviceBuffer a(bytes), b(bytes);
  cudaEvent_t t0, t1;
  cudaEventCreate(&t0);
  cudaEventCreate(&t1);
  Check(cudaMemcpy(b.get(), a.get(), bytes, cudaMemcpyDeviceToDevice), "copy warm-up");
  float best = 1e30f;
  for (int i = 0; i < 5; ++i) {
    cudaEventRecord(t0);
    cudaMemcpyAsync(b.get(), a.get(), bytes, cudaMemcpyDeviceToDevice);
    cudaEventRecord(t1);
    cudaEventSynchronize(t1);
    float ms = 0;
    cudaEventElapsedTime(&ms, t0, t1);
    best = std::min(best, ms);
  }
  cudaEventDestroy(t0);
  cudaEventDestroy(t1);
  return 2.0 * static_cast<double>(bytes) / (best * 1e-3);
}

}  // namespace
}  // namespace lowbit

int main(int argc, char** argv) {
  using namespace lowbit;
  benchmark::Initialize(&argc, argv);
  if (!cuda::kBackend.probe()) {
    std::printf("lowbit_cuda_bench: skipping, no usable CUDA GPU: %s\n",
                cuda::UnavailableReason().c_str());
    return 0;
  }
  g_copy_bw = MeasureCopyBandwidth();
  std::printf("device-to-device copy bandwidth: %.1f GB/s (read + write)\n", g_copy_bw * 1e-9);
  const std::vector<std::pair<int64_t, int64_t>> shapes = {
      {4096, 4096}, {8192, 8192}, {28672, 8192}, {8192, 28672}};
  const std::vector<Format> formats = {Format::kNF4, Format::kFP4, Format::kInt4, Format::kInt8,
                                       Format::kFP8E4M3};
  for (const auto& [n, k] : shapes) {
    const std::string shape = std::to_string(n) + "x" + std::to_string(k);
    for (const Format f : formats) {
      for (const char* act : {"bf16", "f16", "f32"}) {
        benchmark::RegisterBenchmark(
            ("BM_Gemv_cuda/" + std::string(FormatName(f)) + "/" + act + "/" + shape).c_str(),
            [f, act, n = n, k = k](benchmark::State& s) { BM_GemvCuda(s, f, act, n, k); })
            ->UseManualTime()
            ->Unit(benchmark::kMicrosecond);
      }
    }
    benchmark::RegisterBenchmark(("BM_Gemv_cublas/bf16/bf16/" + shape).c_str(),
                                 [n = n, k = k](benchmark::State& s) { BM_GemvCublas(s, n, k); })
        ->UseManualTime()
        ->Unit(benchmark::kMicrosecond);
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
