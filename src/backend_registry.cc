// Registry of the backends built into this library (DESIGN §5): CPU always, others by option.
#include <atomic>
#include <cstdlib>
#include <string>

#include "backend.h"
#include "hwy/targets.h"
#include "kernels/cpu/cpu_kernels.h"

namespace lowbit {

#ifdef LOWBIT_BACKEND_CUDA
namespace cuda {
extern const Backend kBackend;  // kernels/cuda
}  // namespace cuda
#endif

const std::vector<const Backend*>& Backends() {
  static const std::vector<const Backend*> backends = {
#ifdef LOWBIT_BACKEND_CUDA
      &cuda::kBackend,  // opt-in by name: FindBackend("cuda")
#endif
      &cpu::kBackend,
  };
  return backends;
}

namespace {

// LOWBIT_CPU_TARGET=NAME (a Highway target name as hwy::TargetName prints it: AVX3_DL, AVX3,
// AVX2, SSE4, NEON, ...) restricts the CPU kernels' dispatch to that compiled target when this
// CPU runs it, so one machine can run another CPU kind's code paths (benchmarks through the C
// ABI, bug reports). Read once, on first use of the CPU backend; a name this CPU cannot run, or
// no variable, leaves dispatch to the best target.
void ApplyCpuTargetOverride() {
  static const bool applied = [] {
    const char* name = std::getenv("LOWBIT_CPU_TARGET");
    if (name == nullptr || *name == '\0') return false;
    for (const int64_t t : hwy::SupportedAndGeneratedTargets()) {
      if (std::string(name) == hwy::TargetName(t)) {
        hwy::SetSupportedTargetsForTest(t);
        return true;
      }
    }
    return false;
  }();
  (void)applied;
}

}  // namespace

const Backend& CpuBackend() {
  ApplyCpuTargetOverride();
  return cpu::kBackend;
}

namespace {
std::atomic<int64_t> g_serial_matmul_macs{kDefaultSerialMatmulMacs};
}  // namespace

int64_t SerialMatmulMacs() { return g_serial_matmul_macs.load(std::memory_order_relaxed); }

void SetSerialMatmulMacs(int64_t macs) {
  g_serial_matmul_macs.store(macs < 0 ? 0 : macs, std::memory_order_relaxed);
}

const Backend& FindBackend(std::string_view name) {
  // "" is the CPU backend: callers that name no backend pass host memory and expect host-side
  // options (int8 activations) to work, so a device backend is opt-in by name.
  if (name.empty()) return CpuBackend();
  std::string known;
  for (const Backend* b : Backends()) {
    if (name == b->name) {
      Require(b->probe(), Status::kUnsupportedBackend,
              std::string("backend '") + b->name + "' is built in but not usable here (probe failed)");
      return *b;
    }
    known += known.empty() ? b->name : std::string(", ") + b->name;
  }
  throw Error(Status::kUnsupportedBackend,
              "unknown backend '" + std::string(name) + "' (built in: " + known + ")");
}

}  // namespace lowbit
