// bench/lowbit_bench.cc — Google Benchmark binary: the DRAM read roofline, GEMV/GEMM per weight
// format against Eigen's float32 kernels, and quantize/dequantize throughput.
//
// `--target NAME` (e.g. AVX2, SSE4) restricts dispatch to one compiled Highway target this CPU
// runs, so an AVX-512 machine also measures the AVX2 kernels; the context line highway_target
// names the target used.
//
// Every benchmark is registered programmatically so that names follow fixed patterns that
// scripts parse (bench/summarize.py, docs/performance.md):
//   BM_MemRead/<MiB>/threads:<t>
//   BM_Gemv/<format>/<act>/<NxK|stream>/threads:<t>
//   BM_GemvCApi/<format>/f32/<NxK>/threads:<t>
//   BM_Gemm/<format>/<act>/M<m>/<N>x<K>/threads:<t>
//   BM_Quantize/<format>, BM_Dequantize/<format>
// <act> is the activation dtype (f32; bf16 for the 4-bit formats), `int8`: float32 input
// with MatmulOptions::int8_activations (rows quantized to int8, integer dot products; int4 and
// int8 weights only), or `bf16c` (GEMM only): float32 input with MatmulOptions::bf16_compute
// (AMX-BF16 tiles where the CPU has them, else the float path).
// The 64x64 GEMV (f32 activations, 1 thread) measures per-call overhead rather than bandwidth;
// BM_GemvCApi makes the same call through the C ABI (liblowbit_c: lowbit_quantize, lowbit_pack,
// lowbit_gemv; f32_eigen there is the C ABI's f32 format, whose matmul is lowbit's Eigen path).
// Every benchmark times wall clock (the work runs on a pool); Google Benchmark would append
// "/real_time" to such names, and the reporters below drop it so names are exactly the patterns
// above. With --benchmark_repetitions, the aggregate suffixes "_mean", "_median", "_stddev", "_cv"
// follow as usual.
// Quantized formats go through lowbit's public API only (Quantize, Pack, Gemv, Gemm,
// Dequantize); f32_eigen calls Eigen directly (bench/eigen_baseline.cc), split over the same
// lowbit::Context for threads > 1.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bench/eigen_baseline.h"
#include "bench/mem_read.h"
#include "hwy/aligned_allocator.h"
#include "hwy/targets.h"
#include "lowbit/context.h"
#include "lowbit/lowbit_c.h"
#include "lowbit/ops.h"
#include "lowbit/quantize.h"

namespace lowbit {
namespace bench {
namespace {

constexpr int64_t kMiB = int64_t{1} << 20;
// BM_MemRead buffer: at least 1 GiB and at least as large as the `stream` GEMV set (4x the L3),
// so that every byte comes from DRAM; a multiple of kMemReadTasks MiB.
constexpr int64_t kMemReadFloorMiB = 1024;
// BM_MemRead splits the buffer into this many tasks; a thread reads a contiguous run of tasks
// as kMemReadStreams concurrent streams.
constexpr int64_t kMemReadTasks = 64;
// The `stream` GEMV set holds at least this many bytes of weights, and at least
// kStreamL3Multiple times the L3, so that each GEMV reads its matrix from DRAM.
constexpr int64_t kStreamFloorBytes = 512 * kMiB;
constexpr int64_t kStreamL3Multiple = 4;
// Rows of W per task when f32_eigen splits a GEMV/GEMM over the Context.
constexpr int64_t kEigenRowsPerTask = 64;
constexpr int kThreadCounts[] = {1, 2};
constexpr int64_t kGemmBatches[] = {8, 32, 128};
// Quantize/Dequantize benchmarks use one 4096 x 4096 float32 matrix (64 MiB).
constexpr int64_t kCodecRows = 4096, kCodecCols = 4096;

struct FormatCase {
  const char* name;  // as printed in the benchmark name
  bool eigen;        // the f32 Eigen baseline instead of a lowbit format
  Format format;
  bool bf16_act;     // also benchmark bf16 activations (the 4-bit formats)
  bool int8_act;     // also benchmark the int8-activation path (int4, int8)
};
const FormatCase kFormats[] = {
    {"f32_eigen", true, Format::kF32, false, false}, {"nf4", false, Format::kNF4, true, false},
    {"fp4", false, Format::kFP4, true, false},       {"int4", false, Format::kInt4, true, true},
    {"int8", false, Format::kInt8, false, true},
    {"fp8_e4m3", false, Format::kFP8E4M3, false, false},
    {"blockwise8", false, Format::kBlockwise8, false, false},
    {"mxfp4", false, Format::kMXFP4, false, false},
    {"nvfp4", false, Format::kNVFP4, false, false},
    {"iq4_nl", false, Format::kIQ4NL, false, false},
};

// Activation cases: a dtype, or float32 run through the int8-activation path.
struct ActCase {
  const char* name;
  DType dtype;
  bool int8;
  bool bf16_compute;  // MatmulOptions::bf16_compute (GEMM only: AMX-BF16 tiles where present)
};
const ActCase kActs[] = {{"f32", DType::kF32, false, false},
                         {"bf16", DType::kBF16, false, false},
                         {"int8", DType::kF32, true, false},
                         {"bf16c", DType::kF32, false, true}};
bool Applies(const FormatCase& f, const ActCase& a) {
  if (a.int8) return f.int8_act;
  if (a.bf16_compute) return !f.eigen;
  return a.dtype == DType::kF32 || f.bf16_act;
}

struct MatrixShape {
  int64_t n, k;
  const char* label;
  bool stream;  // rotate over a DRAM-sized set of matrices
};
const MatrixShape kGemvShapes[] = {
    {4096, 4096, "4096x4096", false},
    {11008, 4096, "11008x4096", false},
    {4096, 11008, "4096x11008", false},
    {4096, 4096, "stream", true},
};
const MatrixShape kGemmShape = {4096, 4096, "4096x4096", false};
// Decode-sized GEMV whose time is mostly per-call overhead (f32 activations, 1 thread only).
const MatrixShape kTinyGemvShape = {64, 64, "64x64", false};

// L3 cache size in bytes as the kernel's cache topology reports it for cpu0 (what lscpu
// prints; on chiplet CPUs the slice one core can use, not the sum over the package), then
// sysconf, then 32 MiB (a common desktop L3) when neither reports it. In a VM this is what the
// hypervisor advertises (480 MiB on the machine docs/performance.md was measured on).
int64_t L3Bytes() {
  std::ifstream in("/sys/devices/system/cpu/cpu0/cache/index3/size");
  int64_t value = 0;
  char unit = 0;
  if (in >> value) {
    if (in >> unit) {
      if (unit == 'K') value *= 1024;
      if (unit == 'M') value *= kMiB;
    }
    if (value > 0) return value;
  }
#ifdef _SC_LEVEL3_CACHE_SIZE
  const long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
  if (l3 > 0) return l3;
#endif
  return 32 * kMiB;
}

int64_t StreamSetBytes() { return std::max(kStreamFloorBytes, kStreamL3Multiple * L3Bytes()); }

Context& ContextFor(int threads) {
  static std::map<int, std::unique_ptr<Context>> contexts;
  auto& ctx = contexts[threads];
  if (!ctx) ctx = std::make_unique<Context>(threads);
  return *ctx;
}

EigenMatmulFn EigenMatmul() {
  static const EigenMatmulFn fn = [] {
    const char* isa = nullptr;
    return BestEigenMatmul(&isa);
  }();
  return fn;
}
const char* EigenIsa() {
  const char* isa = nullptr;
  BestEigenMatmul(&isa);
  return isa;
}

// Deterministic, roughly Gaussian values (sum of four uniforms, unit variance) so that the
// 4-bit codebooks see realistic weight distributions. Cached by size.
const std::vector<float>& RandomValues(int64_t count) {
  static std::map<int64_t, std::vector<float>> cache;
  std::vector<float>& v = cache[count];
  if (!v.empty()) return v;
  v.resize(static_cast<size_t>(count));
  uint64_t state = 0x9E3779B97F4A7C15ull ^ static_cast<uint64_t>(count);
  const auto uniform = [&state] {  // xorshift64*, top 24 bits -> [0, 1)
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return static_cast<float>((state * 0x2545F4914F6CDD1Dull) >> 40) * (1.0f / 16777216.0f);
  };
  for (float& x : v) x = (uniform() + uniform() + uniform() + uniform() - 2.0f) * 1.7320508f;
  return v;
}

// The weights one benchmark family uses: one matrix, or for `stream` enough copies to exceed
// StreamSetBytes(). Only one set is alive at a time (memory stays bounded); benchmarks are
// registered so that consecutive ones share a set.
struct WeightSet {
  std::string key;
  std::vector<hwy::AlignedFreeUniquePtr<float[]>> dense;  // f32_eigen: [N, K] float32
  std::vector<PackedWeight> packed;                        // lowbit formats
  int64_t bytes_per_matrix = 0;  // weight + scale bytes in the benchmarked format
  size_t count() const { return dense.empty() ? packed.size() : dense.size(); }
};

WeightSet& GetWeights(const FormatCase& f, const MatrixShape& s) {
  static WeightSet set;
  const std::string key = std::string(f.name) + "/" + s.label;
  if (set.key == key) return set;
  set = WeightSet();  // free the previous set before building the next
  const int64_t elements = s.n * s.k;
  const std::vector<float>& source = RandomValues(elements);
  QuantizedTensor q;
  if (f.eigen) {
    set.bytes_per_matrix = elements * static_cast<int64_t>(sizeof(float));
  } else {
    q = Quantize(f.format, ConstTensorView{source.data(), DType::kF32, {s.n, s.k}});
    set.bytes_per_matrix = GetQuantInfo(q).total_bytes;
  }
  const int64_t count =
      s.stream ? (StreamSetBytes() + set.bytes_per_matrix - 1) / set.bytes_per_matrix : 1;
  for (int64_t c = 0; c < count; ++c) {
    if (f.eigen) {
      set.dense.push_back(hwy::AllocateAligned<float>(static_cast<size_t>(elements)));
      std::memcpy(set.dense.back().get(), source.data(), source.size() * sizeof(float));
    } else {
      set.packed.push_back(Pack(q));  // each copy is its own allocation
    }
  }
  set.key = key;
  return set;
}

// Activations in the benchmarked dtype.
struct Activations {
  std::vector<float> f32;
  std::vector<BF16> bf16;
  ConstTensorView view;
  MatmulOptions options;
};
Activations MakeActivations(const ActCase& act_case, int64_t m, int64_t k) {
  const DType act = act_case.dtype;
  Activations a;
  a.options.int8_activations = act_case.int8;
  a.options.bf16_compute = act_case.bf16_compute;
  const std::vector<float>& values = RandomValues(m * k);
  a.f32.assign(values.begin(), values.end());
  Shape shape = m == 1 ? Shape{k} : Shape{m, k};
  if (act == DType::kBF16) {
    a.bf16.resize(a.f32.size());
    for (size_t i = 0; i < a.f32.size(); ++i) a.bf16[i] = F32ToBF16(a.f32[i]);
    a.view = ConstTensorView{a.bf16.data(), DType::kBF16, shape};
  } else {
    a.view = ConstTensorView{a.f32.data(), DType::kF32, shape};
  }
  return a;
}

// y = x · Wᵀ with Eigen, W's rows split over ctx in blocks of kEigenRowsPerTask.
void EigenMatmulOnContext(const float* w, const float* x, float* y, int64_t m, int64_t n,
                          int64_t k, Context& ctx) {
  const EigenMatmulFn fn = EigenMatmul();
  if (ctx.num_threads() == 1) {
    fn(w, x, y, m, n, k, 0, n);
    return;
  }
  const int64_t tasks = (n + kEigenRowsPerTask - 1) / kEigenRowsPerTask;
  ctx.ParallelFor(tasks, [&](int64_t begin, int64_t end) {
    fn(w, x, y, m, n, k, begin * kEigenRowsPerTask, std::min(n, end * kEigenRowsPerTask));
  });
}

// Runs one matmul (M = 1: Gemv) on matrix `index` of the set.
void RunMatmul(const FormatCase& f, WeightSet& set, size_t index, const Activations& x,
               std::vector<float>& y, int64_t m, int64_t n, int64_t k, Context& ctx) {
  if (f.eigen) {
    EigenMatmulOnContext(set.dense[index].get(), x.f32.data(), y.data(), m, n, k, ctx);
    return;
  }
  const TensorView yv{y.data(), DType::kF32, m == 1 ? Shape{n} : Shape{m, n}};
  Matmul(set.packed[index], x.view, yv, x.options, nullptr, &ctx);
}

int64_t MemReadMiB() {
  const int64_t mib = std::max(kMemReadFloorMiB, (StreamSetBytes() + kMiB - 1) / kMiB);
  return (mib + kMemReadTasks - 1) / kMemReadTasks * kMemReadTasks;
}

void BM_MemRead(benchmark::State& state, int threads) {
  // Allocated per benchmark and freed after it (it is as large as a GEMV stream set).
  const int64_t bytes = MemReadMiB() * kMiB;
  const int64_t task_bytes = bytes / kMemReadTasks;  // a multiple of 1 MiB
  static_assert(kMiB % kMemReadGranule == 0, "task granule");
  hwy::AlignedFreeUniquePtr<uint8_t[]> buffer =
      hwy::AllocateAligned<uint8_t>(static_cast<size_t>(bytes));
  for (int64_t i = 0; i < bytes; ++i) buffer[i] = static_cast<uint8_t>(i * 131);
  Context& ctx = ContextFor(threads);
  for (auto _ : state) {
    std::atomic<uint64_t> checksum{0};
    ctx.ParallelFor(kMemReadTasks, [&](int64_t begin, int64_t end) {
      checksum += ReadStreams(buffer.get() + begin * task_bytes,
                              static_cast<size_t>((end - begin) * task_bytes));
    });
    benchmark::DoNotOptimize(checksum.load());
  }
  state.SetBytesProcessed(state.iterations() * bytes);
}

// Reports a setup or first-call failure (e.g. a format the backend does not support) as a
// skipped benchmark instead of aborting the whole run. Returns false when skipped.
template <class Fn>
bool TryOrSkip(benchmark::State& state, const Fn& fn) {
  try {
    fn();
    return true;
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
    return false;
  }
}

void BM_Gemv(benchmark::State& state, FormatCase f, MatrixShape s, ActCase act, int threads) {
  WeightSet* set = nullptr;
  Activations x;
  std::vector<float> y(static_cast<size_t>(s.n));
  Context& ctx = ContextFor(threads);
  if (!TryOrSkip(state, [&] {
        set = &GetWeights(f, s);
        x = MakeActivations(act, 1, s.k);
        RunMatmul(f, *set, 0, x, y, 1, s.n, s.k, ctx);  // warm-up and validation
      })) {
    return;
  }
  const size_t count = set->count();
  size_t index = 0;
  for (auto _ : state) {
    RunMatmul(f, *set, index, x, y, 1, s.n, s.k, ctx);
    index = index + 1 == count ? 0 : index + 1;
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * set->bytes_per_matrix);
  state.counters["set_MiB"] =
      static_cast<double>(set->bytes_per_matrix * static_cast<int64_t>(count)) / kMiB;
  if (f.eigen) state.SetLabel(std::string("eigen ") + EigenIsa());
}

// BM_Gemv's call through the C ABI: f32 activations, weights quantized and packed by
// liblowbit_c, one lowbit_gemv per iteration on a context of `threads`.
void BM_GemvCApi(benchmark::State& state, FormatCase f, MatrixShape s, int threads) {
  const lowbit_format format = static_cast<lowbit_format>(static_cast<int>(f.format));
  const std::vector<float>& w = RandomValues(s.n * s.k);
  const std::vector<float>& x = RandomValues(s.k);
  std::vector<float> y(static_cast<size_t>(s.n));
  const int64_t shape[2] = {s.n, s.k};
  lowbit_context_t* ctx = nullptr;
  lowbit_tensor_t* tensor = nullptr;
  lowbit_packed_t* packed = nullptr;
  lowbit_tensor_info info;
  const auto release = [&] {
    lowbit_packed_destroy(packed);
    lowbit_tensor_destroy(tensor);
    lowbit_context_destroy(ctx);
  };
  if (lowbit_context_create(threads, &ctx) != LOWBIT_OK ||
      lowbit_quantize(format, w.data(), LOWBIT_DTYPE_F32, shape, 2, nullptr, &tensor) !=
          LOWBIT_OK ||
      lowbit_tensor_get_info(tensor, &info) != LOWBIT_OK ||
      lowbit_pack(tensor, nullptr, &packed) != LOWBIT_OK ||
      lowbit_gemv(packed, x.data(), LOWBIT_DTYPE_F32, s.k, y.data(), LOWBIT_DTYPE_F32, s.n,
                  nullptr, ctx) != LOWBIT_OK) {
    state.SkipWithError(lowbit_last_error());
    release();
    return;
  }
  for (auto _ : state) {
    const lowbit_status status = lowbit_gemv(packed, x.data(), LOWBIT_DTYPE_F32, s.k, y.data(),
                                             LOWBIT_DTYPE_F32, s.n, nullptr, ctx);
    benchmark::DoNotOptimize(status);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * info.total_bytes);
  state.SetLabel("c abi");
  release();
}

void BM_Gemm(benchmark::State& state, FormatCase f, MatrixShape s, ActCase act, int64_t m,
             int threads) {
  WeightSet* set = nullptr;
  Activations x;
  std::vector<float> y(static_cast<size_t>(m * s.n));
  Context& ctx = ContextFor(threads);
  if (!TryOrSkip(state, [&] {
        set = &GetWeights(f, s);
        x = MakeActivations(act, m, s.k);
        RunMatmul(f, *set, 0, x, y, m, s.n, s.k, ctx);
      })) {
    return;
  }
  for (auto _ : state) {
    RunMatmul(f, *set, 0, x, y, m, s.n, s.k, ctx);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.counters["FLOP/s"] = benchmark::Counter(static_cast<double>(2 * m * s.n * s.k),
                                                benchmark::Counter::kIsIterationInvariantRate,
                                                benchmark::Counter::kIs1000);
  if (f.eigen) state.SetLabel(std::string("eigen ") + EigenIsa());
}

void BM_Quantize(benchmark::State& state, Format format) {
  const std::vector<float>& source = RandomValues(kCodecRows * kCodecCols);
  const ConstTensorView view{source.data(), DType::kF32, {kCodecRows, kCodecCols}};
  for (auto _ : state) {
    QuantizedTensor q = Quantize(format, view);
    benchmark::DoNotOptimize(q.data.data());
  }
  state.SetBytesProcessed(state.iterations() * kCodecRows * kCodecCols *
                          static_cast<int64_t>(sizeof(float)));
}

void BM_Dequantize(benchmark::State& state, Format format) {
  const std::vector<float>& source = RandomValues(kCodecRows * kCodecCols);
  const QuantizedTensor q =
      Quantize(format, ConstTensorView{source.data(), DType::kF32, {kCodecRows, kCodecCols}});
  std::vector<float> out(source.size());
  const TensorView view{out.data(), DType::kF32, {kCodecRows, kCodecCols}};
  for (auto _ : state) {
    Dequantize(q, view);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * kCodecRows * kCodecCols *
                          static_cast<int64_t>(sizeof(float)));
}

std::string ThreadsSuffix(int threads) { return "/threads:" + std::to_string(threads); }

void RegisterAll() {
  for (int t : kThreadCounts) {
    benchmark::RegisterBenchmark(
        ("BM_MemRead/" + std::to_string(MemReadMiB()) + ThreadsSuffix(t)).c_str(), BM_MemRead, t)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  }
  // Shape outermost, then format: consecutive benchmarks share one weight set.
  for (const MatrixShape& s : kGemvShapes) {
    for (const FormatCase& f : kFormats) {
      for (const ActCase& act : kActs) {
        if (!Applies(f, act) || act.bf16_compute) continue;  // bf16c: M >= 16 only
        for (int t : kThreadCounts) {
          const std::string name = std::string("BM_Gemv/") + f.name + "/" + act.name + "/" +
                                   s.label + ThreadsSuffix(t);
          benchmark::RegisterBenchmark(name.c_str(), BM_Gemv, f, s, act, t)
              ->UseRealTime()
              ->Unit(benchmark::kMicrosecond);
        }
      }
    }
  }
  // Per-call overhead: the tiny GEMV, 1 thread, through the C++ API and the C ABI.
  for (const FormatCase& f : kFormats) {
    const std::string suffix = std::string(f.name) + "/f32/" + kTinyGemvShape.label +
                               ThreadsSuffix(1);
    benchmark::RegisterBenchmark(("BM_Gemv/" + suffix).c_str(), BM_Gemv, f, kTinyGemvShape,
                                 kActs[0], 1)
        ->UseRealTime()
        ->Unit(benchmark::kNanosecond);
    benchmark::RegisterBenchmark(("BM_GemvCApi/" + suffix).c_str(), BM_GemvCApi, f,
                                 kTinyGemvShape, 1)
        ->UseRealTime()
        ->Unit(benchmark::kNanosecond);
  }
  for (const FormatCase& f : kFormats) {
    for (const ActCase& act : kActs) {
      if (!Applies(f, act)) continue;
      for (int64_t m : kGemmBatches) {
        for (int t : kThreadCounts) {
          const std::string name = std::string("BM_Gemm/") + f.name + "/" + act.name + "/M" +
                                   std::to_string(m) + "/" + kGemmShape.label +
                                   ThreadsSuffix(t);
          benchmark::RegisterBenchmark(name.c_str(), BM_Gemm, f, kGemmShape, act, m, t)
              ->UseRealTime()
              ->Unit(benchmark::kMillisecond);
        }
      }
    }
  }
  for (const FormatCase& f : kFormats) {
    if (f.eigen) continue;
    benchmark::RegisterBenchmark((std::string("BM_Quantize/") + f.name).c_str(), BM_Quantize,
                                 f.format)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark((std::string("BM_Dequantize/") + f.name).c_str(),
                                 BM_Dequantize, f.format)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  }
}

// Best Highway target this CPU runs among those compiled (lower bits are better targets);
// the forced one after ForceTarget.
std::string HighwayTarget() {
  const int64_t targets = hwy::SupportedTargets() & HWY_TARGETS;
  return hwy::TargetName(targets & -targets);
}

// Restricts kernel dispatch to the compiled Highway target called `name` (as hwy::TargetName
// prints it: AVX3_DL, AVX3, AVX2, SSE4, ...), so that one machine measures the code paths of
// another CPU kind. Returns false, listing the choices, when this CPU cannot run it.
bool ForceTarget(const std::string& name) {
  std::string available;
  for (int64_t t : hwy::SupportedAndGeneratedTargets()) {
    if (name == hwy::TargetName(t)) {
      hwy::SetSupportedTargetsForTest(t);
      return true;
    }
    available += std::string(available.empty() ? "" : ", ") + hwy::TargetName(t);
  }
  std::fprintf(stderr, "lowbit_bench: --target %s is not a target this CPU runs (%s)\n",
               name.c_str(), available.c_str());
  return false;
}

}  // namespace
}  // namespace bench
}  // namespace lowbit

namespace lowbit {
namespace bench {
namespace {

// A reporter that prints names without the "/real_time" Google Benchmark adds for UseRealTime.
template <class Base>
class StableNameReporter : public Base {
 public:
  using Base::Base;
  void ReportRuns(const std::vector<benchmark::BenchmarkReporter::Run>& runs) override {
    std::vector<benchmark::BenchmarkReporter::Run> renamed = runs;
    for (benchmark::BenchmarkReporter::Run& run : renamed) run.run_name.time_type.clear();
    Base::ReportRuns(renamed);
  }
};

// The value of `--flag=value` in argv ("" when absent). Read before benchmark::Initialize
// consumes the flags, to build reporters that honour --benchmark_format / --benchmark_out.
std::string FlagValue(int argc, char** argv, const std::string& flag) {
  std::string value;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind(flag + "=", 0) == 0) value = arg.substr(flag.size() + 1);
  }
  return value;
}

std::unique_ptr<benchmark::BenchmarkReporter> MakeReporter(const std::string& format,
                                                           bool color) {
  if (format == "json") return std::make_unique<StableNameReporter<benchmark::JSONReporter>>();
  return std::make_unique<StableNameReporter<benchmark::ConsoleReporter>>(
      color ? benchmark::ConsoleReporter::OO_Color : benchmark::ConsoleReporter::OO_None);
}

}  // namespace
}  // namespace bench
}  // namespace lowbit

int main(int argc, char** argv) {
  using namespace lowbit::bench;
  const std::string display_format = FlagValue(argc, argv, "--benchmark_format");
  const std::string out_path = FlagValue(argc, argv, "--benchmark_out");
  std::string out_format = FlagValue(argc, argv, "--benchmark_out_format");
  if (out_format.empty()) out_format = "json";  // Google Benchmark's default for --benchmark_out
  // --target NAME / --target=NAME: lowbit's own flag, removed before Google Benchmark sees argv.
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    std::string target;
    int used = 0;
    if (arg == "--target" && i + 1 < argc) {
      target = argv[i + 1];
      used = 2;
    } else if (arg.rfind("--target=", 0) == 0) {
      target = arg.substr(9);
      used = 1;
    }
    if (used == 0) continue;
    if (!ForceTarget(target)) return 1;
    for (int j = i; j + used <= argc; ++j) argv[j] = argv[j + used];
    argc -= used;
    --i;
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("l3_bytes", std::to_string(L3Bytes()));
  benchmark::AddCustomContext("stream_set_bytes", std::to_string(StreamSetBytes()));
  benchmark::AddCustomContext("eigen_isa", EigenIsa());
  benchmark::AddCustomContext("highway_target", HighwayTarget());
  RegisterAll();
  const auto display = MakeReporter(display_format, isatty(STDOUT_FILENO) != 0);
  const auto file = out_path.empty() ? nullptr : MakeReporter(out_format, false);
  benchmark::RunSpecifiedBenchmarks(display.get(), file.get());
  benchmark::Shutdown();
  return 0;
}
