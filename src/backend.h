// Backend dispatch table (DESIGN §5): one struct of function pointers per backend, and the registry.
//
// Internal header (not installed). Public ops (src/ops.cc) validate their arguments, pick a
// backend here, then call its entries. Entries never throw for inputs that passed validation and
// `supports`; they may throw lowbit::Error only for resource failures (out of memory).
//
// Optional entries (may be nullptr) and the default applied by src/ops.cc when they are:
//   dequantize -> the scalar reference codec of the format (src/reference).
//   gemv       -> gemm with M = 1.
//   sync       -> nothing to wait for (synchronous backend).
//   quantize   -> the CPU backend's quantize (it always has one).
#ifndef LOWBIT_SRC_BACKEND_H_
#define LOWBIT_SRC_BACKEND_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/context.h"
#include "lowbit/dtype.h"
#include "lowbit/format.h"
#include "lowbit/ops.h"
#include "lowbit/quant_state.h"

namespace lowbit {

// Operations a backend may be asked about in Backend::supports.
enum class BackendOp : uint8_t {
  kPack = 0,        // repack a canonical weight into the execution layout
  kDequantize = 1,  // canonical weight -> float32
  kMatmul = 2,      // y = x · Wᵀ (+ bias) on a packed weight, any M >= 1
  kQuantize = 3,    // float32 -> canonical quantized tensor (bit-identical to the reference)
};

// A weight in a backend's execution layout. Each backend derives its own; the base only carries
// what PackedWeight's accessors report.
struct BackendPacked {
  virtual ~BackendPacked() = default;
  Format format = Format::kF32;
  int64_t rows = 0;          // N
  int64_t cols = 0;          // K
  int64_t packed_bytes = 0;  // bytes of the execution layout (codes, scales, saved statistics)
};

// One matmul call, already validated: y[m, n] = sum_k x[m, k] * W[n, k] (+ bias[n]).
struct MatmulArgs {
  int64_t m = 0;               // rows of x (M >= 1)
  const void* x = nullptr;     // [m, K] row-major, dtype x_dtype
  DType x_dtype = DType::kF32; // f32, f16 or bf16
  void* y = nullptr;           // [m, N] row-major, dtype y_dtype
  DType y_dtype = DType::kF32; // f32, f16 or bf16
  const float* bias = nullptr; // nullptr or N floats
  MatmulOptions options;       // numerics options (int8 activations, ...)
};

struct Backend {
  const char* name;  // "cpu", "cuda", ...
  // True when the backend can run in this process (device present, driver loaded).
  bool (*probe)();
  // Empty when (format, op, activation dtype) is supported; otherwise a human-readable reason
  // that ops put into their Error message. `options` matter only for kMatmul.
  std::string (*supports)(Format format, BackendOp op, DType activation,
                          const MatmulOptions& options);
  // Repacks a validated 2-D canonical weight. Thread-safe.
  std::unique_ptr<BackendPacked> (*pack)(const QuantizedTensor& w);
  // Restores the canonical tensor, bit-identical to what `pack` received. Thread-safe.
  QuantizedTensor (*unpack)(const BackendPacked& w);
  // Optional. Dequantizes a validated canonical tensor to `num_elements` float32 values,
  // bit-identical to the format's reference codec. Thread-safe.
  void (*dequantize)(const QuantizedTensor& q, float* out);
  // Optional. M == 1 specialization of gemm (same contract).
  void (*gemv)(const BackendPacked& w, const MatmulArgs& args, Context& ctx);
  // y = x · Wᵀ (+ bias) for any M >= 1; runs its tasks through ctx.ParallelFor.
  void (*gemm)(const BackendPacked& w, const MatmulArgs& args, Context& ctx);
  // Optional. Waits until all work queued by this backend finished.
  void (*sync)();
  // Optional. Quantizes n = out.state.num_elements() finite float32 values `x` (host memory)
  // into `out`, whose state arrives resolved (format, shape, granularity, block size) and whose
  // payload is sized, exactly like FormatInfo::reference_quantize, with bit-identical results.
  // Thread-safe.
  void (*quantize)(const float* x, const QuantizeOptions& options, QuantizedTensor& out);
};

// Matmuls with fewer multiply-adds (M * N * K) than SerialMatmulMacs() run all their row tasks on
// the calling thread and never call Context::ParallelFor (CPU backend): below it, waking the
// pool costs more than the work it would share. Default kDefaultSerialMatmulMacs = 2^18 (262144
// multiply-adds), measured on a 2-core Xeon (Sapphire Rapids, AVX3_DL, other jobs running): a
// 512x512 GEMV (= 2^18) takes ~9-14 us on one thread for nf4/int8/fp8_e4m3 and 9-39 us split
// over 2 threads; every smaller shape (GEMV or M = 8 GEMM) was as fast or faster serial, and
// splitting first paid off around 768x768 (590K). That is one fork-join round trip (~1-3 us
// while workers spin, 10-50 us once they sleep on a futex) against 10 us of work. A 64x64 GEMV
// (4096) is far below, a 4096x4096 one (16.8M) far above. Tests lower it (0 = always split) to
// keep covering the threaded partition on small shapes.
constexpr int64_t kDefaultSerialMatmulMacs = int64_t{1} << 18;
// The current threshold (relaxed atomic read, ~free).
int64_t SerialMatmulMacs();
// Sets it (>= 0; 0 = always use ParallelFor). For tests and tuning; call while no matmul runs.
void SetSerialMatmulMacs(int64_t macs);

// All backends built into this library, CPU first. CUDA joins when built with
// LOWBIT_BACKEND_CUDA. Never empty.
const std::vector<const Backend*>& Backends();
// The backend named `name`; "" is the CPU backend (device backends are opt-in by name).
// Throws Error(kUnsupportedBackend) naming `name` when unknown or not usable in this process.
const Backend& FindBackend(std::string_view name);
// The CPU backend (always present).
const Backend& CpuBackend();

}  // namespace lowbit

#endif  // LOWBIT_SRC_BACKEND_H_
