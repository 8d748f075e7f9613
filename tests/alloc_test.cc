// Hot paths allocate nothing once warm: Matmul / Gemv / Gemm on packed weights (validation
// included), the C ABI matmul and layer-forward entries, and the nn layers' forwards (Linear8bit,
// Linear4bit, LinearFP8, LoRA). Counts heap allocations on every thread by interposing glibc's
// malloc family (operator new, std::function, Eigen all end there); skipped where that is not
// possible (sanitizer builds, non-glibc C libraries). Dedicated binary: the interposition applies
// to the whole process.
#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "format_test_util.h"
#include "lowbit/context.h"
#include "lowbit/lowbit_c.h"
#include "lowbit/nn/linear.h"
#include "lowbit/nn/lora.h"
#include "lowbit/ops.h"
#include "lowbit/quantize.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define LOWBIT_ALLOC_TEST_SANITIZER 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define LOWBIT_ALLOC_TEST_SANITIZER 1
#endif
#if defined(__GLIBC__) && !defined(LOWBIT_ALLOC_TEST_SANITIZER)
#define LOWBIT_ALLOC_TEST_COUNTS 1
#endif

namespace {
std::atomic<bool> g_counting{false};
std::atomic<int64_t> g_allocations{0};
inline void CountAllocation() {
  if (g_counting.load(std::memory_order_relaxed)) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
  }
}
}  // namespace

#ifdef LOWBIT_ALLOC_TEST_COUNTS
// glibc's own entry points; the definitions below interpose the public names process-wide.
extern "C" {
void* __libc_malloc(size_t size);
void* __libc_calloc(size_t count, size_t size);
void* __libc_realloc(void* p, size_t size);
void* __libc_memalign(size_t alignment, size_t size);
void __libc_free(void* p);

void* malloc(size_t size) {
  CountAllocation();
  return __libc_malloc(size);
}
void* calloc(size_t count, size_t size) {
  CountAllocation();
  return __libc_calloc(count, size);
}
void* realloc(void* p, size_t size) {
  CountAllocation();
  return __libc_realloc(p, size);
}
void* memalign(size_t alignment, size_t size) {
  CountAllocation();
  return __libc_memalign(alignment, size);
}
void* aligned_alloc(size_t alignment, size_t size) {
  CountAllocation();
  return __libc_memalign(alignment, size);
}
int posix_memalign(void** out, size_t alignment, size_t size) {
  if (alignment < sizeof(void*) || (alignment & (alignment - 1)) != 0) return EINVAL;
  CountAllocation();
  void* p = __libc_memalign(alignment, size);
  if (p == nullptr && size != 0) return ENOMEM;
  *out = p;
  return 0;
}
void free(void* p) { __libc_free(p); }
}  // extern "C"
#endif

namespace lowbit {
namespace {

using testing::Randn;

// Calls fn() three times to warm up (thread-local workspaces, dispatch tables, lazily built
// state), then returns the heap allocations of `reps` more calls, counted on every thread.
template <class Fn>
int64_t AllocationsOfWarmCalls(const Fn& fn, int reps = 5) {
  for (int i = 0; i < 3; ++i) fn();
  g_allocations.store(0);
  g_counting.store(true);
  for (int i = 0; i < reps; ++i) fn();
  g_counting.store(false);
  return g_allocations.load();
}

class AllocTest : public ::testing::Test {
 protected:
  void SetUp() override {
#ifndef LOWBIT_ALLOC_TEST_COUNTS
    GTEST_SKIP() << "allocation counting needs glibc without sanitizers";
#else
    // The counter must see this process's allocations, or every check below passes vacuously.
    const int64_t before = g_allocations.load();
    g_counting.store(true);
    void* volatile p = std::malloc(24);
    std::vector<int>* volatile v = new std::vector<int>(100);
    g_counting.store(false);
    delete v;
    std::free(p);
    ASSERT_GE(g_allocations.load() - before, 3) << "malloc interposition is not in effect";
#endif
  }
};

// A Context whose "host" parallel-for runs every task on the calling thread: exercises the
// ParallelFor path deterministically (no worker's first-use allocation can land in the count).
std::unique_ptr<Context> HostSerialContext() {
  auto ctx = std::make_unique<Context>(1);
  ctx->SetParallelFor(
      [](int64_t num_tasks, const Context::RangeFn& body) {
        for (int64_t t = 0; t < num_tasks; ++t) body(t, t + 1);
      },
      4);
  return ctx;
}

TEST_F(AllocTest, MatmulOnPackedWeightsAllocatesNothing) {
  Context serial(1);
  const std::unique_ptr<Context> hosted = HostSerialContext();
  struct Size {
    int64_t n, k;
  };
  // 64x64 stays on the calling thread (below the serial threshold); 1024x512 splits into tasks.
  for (const Size size : {Size{64, 64}, Size{1024, 512}}) {
    const std::vector<float> wf = Randn(size.n * size.k, 1);
    const std::vector<float> bias = Randn(size.n, 2);
    for (const Format format : {Format::kNF4, Format::kFP4, Format::kInt4, Format::kInt4Asym,
                                Format::kInt8, Format::kInt8Asym, Format::kFP8E4M3,
                                Format::kFP8E5M2, Format::kBlockwise8, Format::kF32}) {
      const PackedWeight w = Pack(Quantize(format, {wf.data(), DType::kF32, {size.n, size.k}}));
      for (const int64_t m : {int64_t{1}, int64_t{4}}) {
        // Dense weights (f32, and blockwise8's float32 fallback) run Eigen's GEMM for M > 1,
        // whose blocking workspace Eigen allocates on the heap for larger shapes.
        if ((format == Format::kF32 || format == Format::kBlockwise8) && m > 1) continue;
        for (const DType act : {DType::kF32, DType::kBF16}) {
          std::vector<uint16_t> xbuf(static_cast<size_t>(m * size.k) * 2);
          std::vector<float> y(static_cast<size_t>(m * size.n));
          const ConstTensorView x{xbuf.data(), act, m == 1 ? Shape{size.k} : Shape{m, size.k}};
          const TensorView yv{y.data(), DType::kF32, m == 1 ? Shape{size.n} : Shape{m, size.n}};
          for (Context* ctx : {&serial, hosted.get(), static_cast<Context*>(nullptr)}) {
            // The default context has a real pool: only the tiny shape, which must not use it.
            if (ctx == nullptr && size.n * size.k * m > 64 * 64 * 4) continue;
            const std::string what = std::string(FormatName(format)) + " " +
                                     std::to_string(m) + "x" + std::to_string(size.n) + "x" +
                                     std::to_string(size.k) + " " + DTypeName(act) +
                                     (ctx == nullptr ? " default ctx"
                                      : ctx == &serial ? " 1 thread"
                                                       : " host parallel-for");
            EXPECT_EQ(AllocationsOfWarmCalls([&] {
                        if (m == 1) {
                          Gemv(w, x, yv, bias.data(), ctx);
                        } else {
                          Gemm(w, x, yv, bias.data(), ctx);
                        }
                      }),
                      0)
                << what;
          }
        }
      }
      // int8 activations (int8 / int4 weights).
      if (format == Format::kInt8 || format == Format::kInt4) {
        MatmulOptions o;
        o.int8_activations = true;
        const std::vector<float> x = Randn(size.k, 3);
        std::vector<float> y(static_cast<size_t>(size.n));
        const ConstTensorView xv{x.data(), DType::kF32, {size.k}};
        const TensorView yv{y.data(), DType::kF32, {size.n}};
        EXPECT_EQ(AllocationsOfWarmCalls([&] { Matmul(w, xv, yv, o, nullptr, hosted.get()); }),
                  0)
            << FormatName(format) << " int8 activations";
      }
    }
  }
}

TEST_F(AllocTest, CApiMatmulAndForwardAllocateNothing) {
  const int64_t n = 256, k = 128, m = 3;
  const std::vector<float> wf = Randn(n * k, 4);
  const std::vector<float> x = Randn(m * k, 5);
  const std::vector<float> bias = Randn(n, 6);
  std::vector<float> y(static_cast<size_t>(m * n));
  lowbit_context_t* ctx = nullptr;
  ASSERT_EQ(lowbit_context_create(1, &ctx), LOWBIT_OK);
  const int64_t shape[2] = {n, k};
  for (const lowbit_format format : {LOWBIT_FORMAT_NF4, LOWBIT_FORMAT_INT4, LOWBIT_FORMAT_INT8,
                                     LOWBIT_FORMAT_FP8_E4M3, LOWBIT_FORMAT_F32}) {
    lowbit_tensor_t* t = nullptr;
    lowbit_packed_t* p = nullptr;
    ASSERT_EQ(lowbit_quantize(format, wf.data(), LOWBIT_DTYPE_F32, shape, 2, nullptr, &t),
              LOWBIT_OK);
    ASSERT_EQ(lowbit_pack(t, nullptr, &p), LOWBIT_OK);
    for (lowbit_context_t* c : {ctx, static_cast<lowbit_context_t*>(nullptr)}) {
      const char* which = c ? "1-thread ctx" : "default ctx";
      lowbit_status st = LOWBIT_OK;
      EXPECT_EQ(AllocationsOfWarmCalls([&] {
                  st = lowbit_gemv(p, x.data(), LOWBIT_DTYPE_F32, k, y.data(), LOWBIT_DTYPE_F32,
                                   n, bias.data(), c);
                }),
                0)
          << "lowbit_gemv " << lowbit_format_name(format) << " " << which;
      EXPECT_EQ(st, LOWBIT_OK) << lowbit_last_error();
      if (format == LOWBIT_FORMAT_F32) continue;  // Eigen's GEMM workspace (see above)
      EXPECT_EQ(AllocationsOfWarmCalls([&] {
                  st = lowbit_gemm(p, x.data(), LOWBIT_DTYPE_F32, m, k, y.data(),
                                   LOWBIT_DTYPE_F32, n, bias.data(), c);
                }),
                0)
          << "lowbit_gemm " << lowbit_format_name(format) << " " << which;
      EXPECT_EQ(st, LOWBIT_OK) << lowbit_last_error();
    }
    lowbit_packed_destroy(p);
    lowbit_tensor_destroy(t);
  }

  lowbit_linear_t* layer = nullptr;
  ASSERT_EQ(lowbit_linear4bit_create(k, n, wf.data(), bias.data(), LOWBIT_FORMAT_NF4, 0, 0,
                                     LOWBIT_DTYPE_BF16, &layer),
            LOWBIT_OK)
      << lowbit_last_error();
  lowbit_status st = LOWBIT_OK;
  EXPECT_EQ(AllocationsOfWarmCalls([&] {
              st = lowbit_linear_forward(layer, x.data(), LOWBIT_DTYPE_F32, 1, y.data(),
                                         LOWBIT_DTYPE_F32, ctx);
            }),
            0)
      << "lowbit_linear_forward";
  EXPECT_EQ(st, LOWBIT_OK) << lowbit_last_error();
  lowbit_linear_destroy(layer);
  lowbit_context_destroy(ctx);
}

TEST_F(AllocTest, LayerForwardsAllocateNothing) {
  const int64_t in = 128, out = 96;
  Context ctx(1);
  std::vector<std::unique_ptr<nn::QuantLinear>> layers;
  for (const DType cd : {DType::kF32, DType::kBF16}) {
    nn::Linear4bitOptions o;
    o.compute_dtype = cd;
    layers.push_back(std::make_unique<nn::Linear4bit>(in, out, true, o, 1));
  }
  {
    nn::Linear8bitOptions o;
    o.has_fp16_weights = false;
    layers.push_back(std::make_unique<nn::Linear8bit>(in, out, true, o, 2));  // LLM.int8, t = 0
    o.threshold = 0.5f;  // outlier decomposition: Randn inputs always have outliers
    layers.push_back(std::make_unique<nn::Linear8bit>(in, out, true, o, 3));
    o.threshold = 0.0f;
    o.int8_activations = false;
    layers.push_back(std::make_unique<nn::Linear8bit>(in, out, true, o, 4));  // weight-only
  }
  layers.push_back(std::make_unique<nn::LinearFP8>(in, out, true, nn::LinearFP8Options{}, 5));
  for (const int64_t m : {int64_t{1}, int64_t{5}}) {
    const std::vector<float> x = Randn(m * in, 7);
    std::vector<uint16_t> x16(static_cast<size_t>(m * in));
    FromF32(x.data(), m * in, x16.data(), DType::kBF16);
    std::vector<float> y(static_cast<size_t>(m * out));
    const ConstTensorView xv{x.data(), DType::kF32, {m, in}};
    const ConstTensorView x16v{x16.data(), DType::kBF16, {m, in}};
    const TensorView yv{y.data(), DType::kF32, {m, out}};
    for (const auto& layer : layers) {
      EXPECT_EQ(AllocationsOfWarmCalls([&] { layer->Forward(xv, yv, &ctx); }), 0)
          << layer->Describe() << " M=" << m;
      EXPECT_EQ(AllocationsOfWarmCalls([&] { layer->Forward(x16v, yv, &ctx); }), 0)
          << layer->Describe() << " bf16 x, M=" << m;
    }
    nn::LoRAConfig config;
    config.r = 8;
    config.dropout = 0.1f;
    nn::Linear4bitWithLoRA lora(std::make_unique<nn::Linear4bit>(in, out, true,
                                                                 nn::Linear4bitOptions{}, 8),
                                config);
    for (const bool training : {false, true}) {
      lora.SetTraining(training);
      EXPECT_EQ(AllocationsOfWarmCalls([&] { lora.Forward(xv, yv, &ctx); }), 0)
          << "LoRA training=" << training << " M=" << m;
    }
  }
}

}  // namespace
}  // namespace lowbit
