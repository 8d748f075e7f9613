// capi/lowbit_c.cc — the C ABI shims: validate, call the C++ API, catch everything, map to status.
#include "lowbit/lowbit_c.h"

#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "lowbit/context.h"
#include "lowbit/dtype.h"
#include "lowbit/format.h"
#include "lowbit/io/checkpoint.h"
#include "lowbit/io/gguf.h"
#include "lowbit/io/safetensors.h"
#include "lowbit/nn/linear.h"
#include "lowbit/ops.h"
#include "lowbit/quant_state.h"
#include "lowbit/quantize.h"
#include "lowbit/status.h"
#include "scratch.h"

// ---- The C enums are the C++ enums: same numbers, checked here ------------------------------
#define LOWBIT_SAME_VALUE(c_value, cpp_value) \
  static_assert(static_cast<int>(c_value) == static_cast<int>(cpp_value), #c_value)
LOWBIT_SAME_VALUE(LOWBIT_OK, lowbit::Status::kOk);
LOWBIT_SAME_VALUE(LOWBIT_INVALID_ARGUMENT, lowbit::Status::kInvalidArgument);
LOWBIT_SAME_VALUE(LOWBIT_INVALID_STATE, lowbit::Status::kInvalidState);
LOWBIT_SAME_VALUE(LOWBIT_UNSUPPORTED_FORMAT, lowbit::Status::kUnsupportedFormat);
LOWBIT_SAME_VALUE(LOWBIT_UNSUPPORTED_BACKEND, lowbit::Status::kUnsupportedBackend);
LOWBIT_SAME_VALUE(LOWBIT_UNSUPPORTED_HARDWARE, lowbit::Status::kUnsupportedHardware);
LOWBIT_SAME_VALUE(LOWBIT_OUT_OF_MEMORY, lowbit::Status::kOutOfMemory);
LOWBIT_SAME_VALUE(LOWBIT_IO_ERROR, lowbit::Status::kIoError);
LOWBIT_SAME_VALUE(LOWBIT_CORRUPT_DATA, lowbit::Status::kCorruptData);
LOWBIT_SAME_VALUE(LOWBIT_BACKEND_ERROR, lowbit::Status::kBackendError);
LOWBIT_SAME_VALUE(LOWBIT_INTERNAL, lowbit::Status::kInternal);
LOWBIT_SAME_VALUE(LOWBIT_FORMAT_F32, lowbit::Format::kF32);
LOWBIT_SAME_VALUE(LOWBIT_FORMAT_F16, lowbit::Format::kF16);
LOWBIT_SAME_VALUE(LOWBIT_FORMAT_BF16, lowbit::Format::kBF16);
LOWBIT_SAME_VALUE(LOWBIT_FORMAT_INT8, lowbit::Format::kInt8);
LOWBIT_SAME_VALUE(LOWBIT_FORMAT_INT8_ASYM, lowbit::Format::kInt8Asym);
LOWBIT_SAME_VALUE(LOWBIT_FORMAT_INT4, lowbit::Format::kInt4);
LOWBIT_SAME_VALUE(LOWBIT_FORMAT_INT4_ASYM, lowbit::Format::kInt4Asym);
LOWBIT_SAME_VALUE(LOWBIT_FORMAT_NF4, lowbit::Format::kNF4);
LOWBIT_SAME_VALUE(LOWBIT_FORMAT_FP4, lowbit::Format::kFP4);
LOWBIT_SAME_VALUE(LOWBIT_FORMAT_FP8_E4M3, lowbit::Format::kFP8E4M3);
LOWBIT_SAME_VALUE(LOWBIT_FORMAT_FP8_E5M2, lowbit::Format::kFP8E5M2);
LOWBIT_SAME_VALUE(LOWBIT_FORMAT_BLOCKWISE8, lowbit::Format::kBlockwise8);
LOWBIT_SAME_VALUE(LOWBIT_FORMAT_MXFP4, lowbit::Format::kMXFP4);
LOWBIT_SAME_VALUE(LOWBIT_FORMAT_NVFP4, lowbit::Format::kNVFP4);
LOWBIT_SAME_VALUE(LOWBIT_FORMAT_IQ4_NL, lowbit::Format::kIQ4NL);
static_assert(lowbit::kNumFormats == 15, "a format was appended: add it to lowbit_format");
LOWBIT_SAME_VALUE(LOWBIT_DTYPE_F32, lowbit::DType::kF32);
LOWBIT_SAME_VALUE(LOWBIT_DTYPE_F16, lowbit::DType::kF16);
LOWBIT_SAME_VALUE(LOWBIT_DTYPE_BF16, lowbit::DType::kBF16);
LOWBIT_SAME_VALUE(LOWBIT_GRANULARITY_DEFAULT, lowbit::Granularity::kDefault);
LOWBIT_SAME_VALUE(LOWBIT_GRANULARITY_BLOCK, lowbit::Granularity::kBlock);
LOWBIT_SAME_VALUE(LOWBIT_GRANULARITY_GROUP, lowbit::Granularity::kGroup);
LOWBIT_SAME_VALUE(LOWBIT_GRANULARITY_ROW, lowbit::Granularity::kRow);
LOWBIT_SAME_VALUE(LOWBIT_GRANULARITY_TENSOR, lowbit::Granularity::kTensor);
LOWBIT_SAME_VALUE(LOWBIT_GRANULARITY_NONE, lowbit::Granularity::kNone);
LOWBIT_SAME_VALUE(LOWBIT_LAYOUT_AUTO, lowbit::io::TensorLayout::kAuto);
LOWBIT_SAME_VALUE(LOWBIT_LAYOUT_DENSE, lowbit::io::TensorLayout::kDense);
LOWBIT_SAME_VALUE(LOWBIT_LAYOUT_BITSANDBYTES, lowbit::io::TensorLayout::kBitsandbytes);
LOWBIT_SAME_VALUE(LOWBIT_LAYOUT_LOWBIT, lowbit::io::TensorLayout::kLowbit);
#undef LOWBIT_SAME_VALUE

// ---- The opaque handles -----------------------------------------------------------------------
struct lowbit_context {
  explicit lowbit_context(int num_threads) : ctx(num_threads) {}
  lowbit::Context ctx;
};
struct lowbit_tensor {
  lowbit::QuantizedTensor q;
};
struct lowbit_packed {
  lowbit::PackedWeight w;
};
struct lowbit_linear {
  std::unique_ptr<lowbit::nn::QuantLinear> layer;
};

namespace {

using lowbit::Error;
using lowbit::Status;

thread_local std::string g_last_error;

// ---- Registry of live handles -------------------------------------------------------------------
// Every handle handed out is recorded with its kind until destroyed, so a destroyed (or foreign,
// or wrong-kind) pointer is reported as LOWBIT_INVALID_ARGUMENT instead of being dereferenced,
// and a second destroy is a no-op. One mutex-guarded hash lookup per call (~20 ns), negligible
// next to any quantize or matmul.
enum class HandleKind { kContext, kTensor, kPacked, kLinear };

template <class T> struct KindOf;
template <> struct KindOf<lowbit_context> {
  static constexpr HandleKind kKind = HandleKind::kContext;
  static constexpr const char* kName = "lowbit_context_t";
};
template <> struct KindOf<lowbit_tensor> {
  static constexpr HandleKind kKind = HandleKind::kTensor;
  static constexpr const char* kName = "lowbit_tensor_t";
};
template <> struct KindOf<lowbit_packed> {
  static constexpr HandleKind kKind = HandleKind::kPacked;
  static constexpr const char* kName = "lowbit_packed_t";
};
template <> struct KindOf<lowbit_linear> {
  static constexpr HandleKind kKind = HandleKind::kLinear;
  static constexpr const char* kName = "lowbit_linear_t";
};

struct Registry {
  std::mutex mu;
  std::unordered_map<const void*, HandleKind> live;
};
// Leaked on purpose: handles may be destroyed from static destructors of the host program.
Registry& GetRegistry() {
  static Registry* registry = new Registry;
  return *registry;
}

// Takes ownership of `handle`, records it, and returns the raw pointer for the caller.
template <class T>
T* Publish(std::unique_ptr<T> handle) {
  Registry& r = GetRegistry();
  std::lock_guard<std::mutex> lock(r.mu);
  r.live.emplace(handle.get(), KindOf<T>::kKind);  // may throw bad_alloc: handle is then freed
  return handle.release();
}

// Throws Error(kInvalidArgument) unless `p` is a live handle of kind T.
template <class T>
void RequireLive(const T* p, const char* name) {
  if (p == nullptr) throw Error(Status::kInvalidArgument, std::string(name) + " is NULL");
  Registry& r = GetRegistry();
  std::lock_guard<std::mutex> lock(r.mu);
  const auto it = r.live.find(p);
  if (it == r.live.end() || it->second != KindOf<T>::kKind) {
    throw Error(Status::kInvalidArgument,
                std::string(name) + " is not a live " + KindOf<T>::kName +
                    " (already destroyed, never created, or a different kind of handle)");
  }
}

// Deletes `p` if it is a live handle of kind T; otherwise (NULL, destroyed, foreign) does nothing.
template <class T>
void Destroy(T* p) noexcept {
  if (p == nullptr) return;
  try {
    Registry& r = GetRegistry();
    {
      std::lock_guard<std::mutex> lock(r.mu);
      const auto it = r.live.find(p);
      if (it == r.live.end() || it->second != KindOf<T>::kKind) return;
      r.live.erase(it);
    }
    delete p;
  } catch (...) {
    // std::mutex::lock failing is the only source; leaking is the safe outcome.
  }
}

lowbit_status Fail(lowbit_status status, const char* function, const char* message) noexcept {
  try {
    g_last_error.assign(function);
    g_last_error.append(": ");
    g_last_error.append(message);
  } catch (...) {
    g_last_error.clear();  // no memory for the message; the status still says what happened
  }
  return status;
}

// Runs `body` and turns whatever it throws into a status + thread-local message. Every exported
// function that can fail goes through here, so no exception ever reaches the C caller.
template <class Body>
lowbit_status Guard(const char* function, Body&& body) noexcept {
  try {
    body();
    g_last_error.clear();
    return LOWBIT_OK;
  } catch (const Error& e) {
    return Fail(static_cast<lowbit_status>(e.status()), function, e.message().c_str());
  } catch (const std::bad_alloc&) {
    return Fail(LOWBIT_OUT_OF_MEMORY, function, "out of memory");
  } catch (const std::exception& e) {
    return Fail(LOWBIT_INTERNAL, function, e.what());
  } catch (...) {
    return Fail(LOWBIT_INTERNAL, function, "unknown exception");
  }
}

void RequireNotNull(const void* p, const char* name) {
  if (p == nullptr) throw Error(Status::kInvalidArgument, std::string(name) + " is NULL");
}

void RequirePositive(int64_t v, const char* name) {
  if (v <= 0) {
    throw Error(Status::kInvalidArgument,
                std::string(name) + " must be positive, got " + std::to_string(v));
  }
}

// A C caller may pass any int as an enum argument, but in C++ loading an enum object whose value
// lies outside the enumerators' range is undefined (UBSan: -fsanitize=enum). Enum arguments are
// therefore read as raw integers through their address and never loaded as the enum type.
template <class E>
int RawEnum(const E& e) noexcept {
  static_assert(sizeof(E) == sizeof(int), "C enums are int-sized on supported ABIs");
  int v;
  std::memcpy(&v, &e, sizeof(v));
  return v;
}

lowbit::DType ToDType(const lowbit_dtype& dtype, const char* name) {
  switch (RawEnum(dtype)) {
    case LOWBIT_DTYPE_F32: return lowbit::DType::kF32;
    case LOWBIT_DTYPE_F16: return lowbit::DType::kF16;
    case LOWBIT_DTYPE_BF16: return lowbit::DType::kBF16;
  }
  throw Error(Status::kInvalidArgument, std::string(name) + ": unknown dtype " +
                                            std::to_string(RawEnum(dtype)) +
                                            " (f32 = 0, f16 = 1, bf16 = 2)");
}

lowbit::Format ToFormat(const lowbit_format& format) {
  const int v = RawEnum(format);
  if (v < 0 || v >= lowbit::kNumFormats) {
    throw Error(Status::kUnsupportedFormat, "unknown format value " + std::to_string(v));
  }
  return static_cast<lowbit::Format>(v);
}

lowbit::Context* ContextOrNull(lowbit_context_t* ctx) {
  if (ctx == nullptr) return nullptr;
  RequireLive(ctx, "ctx");
  return &ctx->ctx;
}

void CopyStats(const lowbit::ErrorStats& s, lowbit_error_stats* out) {
  out->mean_abs = s.mean_abs;
  out->mean_rel = s.mean_rel;
  out->rel_l2 = s.rel_l2;
  out->mse = s.mse;
  out->max_abs = s.max_abs;
  out->snr_db = s.snr_db;
  out->count = s.count;
}

// Throws kInvalidArgument when a * b overflows int64 (a, b > 0): such a buffer cannot exist.
void RequireProductFits(int64_t a, int64_t b, const char* what) {
  if (a > INT64_MAX / b) {
    throw Error(Status::kInvalidArgument, std::string(what) + " = " + std::to_string(a) + " x " +
                                              std::to_string(b) + " overflows int64");
  }
}

// Checks that `count` (> 0) is the element count of the live `tensor`; returns it.
int64_t RequireTensorCount(const lowbit_tensor_t* tensor, int64_t count) {
  RequirePositive(count, "count");
  const int64_t n = tensor->q.state.num_elements();
  if (count != n) {
    throw Error(Status::kInvalidArgument, "count is " + std::to_string(count) +
                                              " but the tensor has " + std::to_string(n) +
                                              " elements");
  }
  return n;
}

void CheckMatmulDims(const lowbit::PackedWeight& w, int64_t m, int64_t k, int64_t n) {
  RequirePositive(m, "m");
  RequirePositive(k, "k");
  RequirePositive(n, "n");
  RequireProductFits(m, k, "m * k");
  RequireProductFits(m, n, "m * n");
  if (k != w.cols() || n != w.rows()) {
    throw Error(Status::kInvalidArgument,
                "weight is [" + std::to_string(w.rows()) + ", " + std::to_string(w.cols()) +
                    "] (N, K) but k = " + std::to_string(k) + ", n = " + std::to_string(n));
  }
}

// Calls op(x view, y view) with per-thread views: x [k] and y [n] when `vector`, else x [m, k]
// and y [m, n]. Their Shape vectors keep their capacity, so a warm lowbit_gemv / lowbit_gemm /
// lowbit_linear_forward allocates nothing (a re-entrant call on the same thread gets views of
// its own from ThreadScratch).
template <class Op>
void WithMatmulViews(const void* x, lowbit::DType x_dtype, void* y, lowbit::DType y_dtype,
                     int64_t m, int64_t k, int64_t n, bool vector, const Op& op) {
  lowbit::internal::ThreadScratch<lowbit::ConstTensorView, struct CApiXViewTag> x_scratch;
  lowbit::internal::ThreadScratch<lowbit::TensorView, struct CApiYViewTag> y_scratch;
  lowbit::ConstTensorView& xv = *x_scratch.Resize(1);
  lowbit::TensorView& yv = *y_scratch.Resize(1);
  xv.data = x;
  xv.dtype = x_dtype;
  yv.data = y;
  yv.dtype = y_dtype;
  if (vector) {
    xv.shape.assign({k});
    yv.shape.assign({n});
  } else {
    xv.shape.assign({m, k});
    yv.shape.assign({m, n});
  }
  op(xv, yv);
}

}  // namespace

extern "C" {

// ---- Library ----------------------------------------------------------------------------------

const char* lowbit_version(void) { return LOWBIT_VERSION_STRING; }

uint32_t lowbit_abi_version(void) { return LOWBIT_ABI_VERSION; }

const char* lowbit_last_error(void) { return g_last_error.c_str(); }

const char* lowbit_status_name(lowbit_status status) {
  const int v = RawEnum(status);
  return (v >= 0 && v <= LOWBIT_INTERNAL) ? lowbit::StatusName(static_cast<Status>(v)) : "unknown";
}

const char* lowbit_format_name(lowbit_format format) {
  const int v = RawEnum(format);
  return (v >= 0 && v < lowbit::kNumFormats) ? lowbit::FormatName(static_cast<lowbit::Format>(v))
                                             : "unknown";
}

lowbit_status lowbit_format_from_name(const char* name, lowbit_format* out_format) {
  return Guard(__func__, [&] {
    RequireNotNull(name, "name");
    RequireNotNull(out_format, "out_format");
    *out_format = static_cast<lowbit_format>(lowbit::FormatFromName(name));
  });
}

// ---- Context ----------------------------------------------------------------------------------

lowbit_status lowbit_context_create(int32_t num_threads, lowbit_context_t** out_ctx) {
  return Guard(__func__, [&] {
    RequireNotNull(out_ctx, "out_ctx");
    *out_ctx = Publish(std::make_unique<lowbit_context>(num_threads));
  });
}

void lowbit_context_destroy(lowbit_context_t* ctx) { Destroy(ctx); }

lowbit_status lowbit_context_num_threads(const lowbit_context_t* ctx, int32_t* out_num_threads) {
  return Guard(__func__, [&] {
    RequireLive(ctx, "ctx");
    RequireNotNull(out_num_threads, "out_num_threads");
    *out_num_threads = ctx->ctx.num_threads();
  });
}

// ---- Quantize / dequantize ----------------------------------------------------------------------

void lowbit_quantize_options_init(lowbit_quantize_options* options) {
  if (options == nullptr) return;
  std::memset(options, 0, sizeof(*options));
  options->struct_size = sizeof(*options);
  options->granularity = LOWBIT_GRANULARITY_DEFAULT;
}

lowbit_status lowbit_quantize(lowbit_format format, const void* data, lowbit_dtype dtype,
                              const int64_t* shape, int32_t ndim,
                              const lowbit_quantize_options* options,
                              lowbit_tensor_t** out_tensor) {
  return Guard(__func__, [&] {
    RequireNotNull(out_tensor, "out_tensor");
    RequireNotNull(data, "data");
    RequireNotNull(shape, "shape");
    if (ndim < 1 || ndim > LOWBIT_MAX_DIMS) {
      throw Error(Status::kInvalidArgument, "ndim must be in [1, " +
                                                std::to_string(LOWBIT_MAX_DIMS) + "], got " +
                                                std::to_string(ndim));
    }
    int64_t elements = 1;
    for (int32_t i = 0; i < ndim; ++i) {
      if (shape[i] <= 0) {
        throw Error(Status::kInvalidArgument, "shape[" + std::to_string(i) +
                                                  "] must be positive, got " +
                                                  std::to_string(shape[i]));
      }
      RequireProductFits(elements, shape[i], "number of elements");
      elements *= shape[i];
    }
    lowbit::QuantizeOptions o;
    if (options != nullptr) {
      if (options->struct_size != sizeof(lowbit_quantize_options)) {
        throw Error(Status::kInvalidArgument,
                    "options->struct_size is " + std::to_string(options->struct_size) +
                        ", expected " + std::to_string(sizeof(lowbit_quantize_options)) +
                        " (call lowbit_quantize_options_init)");
      }
      const int g = RawEnum(options->granularity);
      if (g < LOWBIT_GRANULARITY_DEFAULT || g > LOWBIT_GRANULARITY_NONE) {
        throw Error(Status::kInvalidArgument, "unknown granularity " + std::to_string(g));
      }
      o.block_size = options->block_size;
      o.double_quant = options->double_quant != 0;
      o.granularity = static_cast<lowbit::Granularity>(g);
    }
    const lowbit::ConstTensorView view{data, ToDType(dtype, "dtype"),
                                       lowbit::Shape(shape, shape + ndim)};
    auto t = std::make_unique<lowbit_tensor>();
    t->q = lowbit::Quantize(ToFormat(format), view, o);
    *out_tensor = Publish(std::move(t));
  });
}

void lowbit_tensor_destroy(lowbit_tensor_t* tensor) { Destroy(tensor); }

lowbit_status lowbit_dequantize(const lowbit_tensor_t* tensor, void* out, lowbit_dtype dtype,
                                int64_t count) {
  return Guard(__func__, [&] {
    RequireLive(tensor, "tensor");
    RequireNotNull(out, "out");
    const int64_t n = RequireTensorCount(tensor, count);
    lowbit::Dequantize(tensor->q, lowbit::TensorView{out, ToDType(dtype, "dtype"), {n}});
  });
}

lowbit_status lowbit_tensor_get_info(const lowbit_tensor_t* tensor, lowbit_tensor_info* out_info) {
  return Guard(__func__, [&] {
    RequireLive(tensor, "tensor");
    RequireNotNull(out_info, "out_info");
    const lowbit::QuantInfo qi = lowbit::GetQuantInfo(tensor->q);
    if (qi.shape.size() > LOWBIT_MAX_DIMS) {
      throw Error(Status::kInvalidArgument, "tensor rank " + std::to_string(qi.shape.size()) +
                                                " exceeds LOWBIT_MAX_DIMS");
    }
    lowbit_tensor_info info;
    std::memset(&info, 0, sizeof(info));
    info.format = static_cast<lowbit_format>(qi.format);
    info.ndim = static_cast<int32_t>(qi.shape.size());
    for (size_t i = 0; i < qi.shape.size(); ++i) info.shape[i] = qi.shape[i];
    info.num_elements = tensor->q.state.num_elements();
    info.granularity = static_cast<lowbit_granularity>(qi.granularity);
    info.block_size = qi.block_size;
    info.double_quant = qi.double_quant ? 1 : 0;
    info.payload_bytes = qi.payload_bytes;
    info.statistic_bytes = qi.statistic_bytes;
    info.total_bytes = qi.total_bytes;
    info.bits_per_weight = qi.bits_per_weight;
    *out_info = info;
  });
}

lowbit_status lowbit_tensor_payload(const lowbit_tensor_t* tensor, const uint8_t** out_data,
                                    int64_t* out_bytes) {
  return Guard(__func__, [&] {
    RequireLive(tensor, "tensor");
    RequireNotNull(out_data, "out_data");
    RequireNotNull(out_bytes, "out_bytes");
    *out_data = tensor->q.data.data();
    *out_bytes = static_cast<int64_t>(tensor->q.data.size());
  });
}

lowbit_status lowbit_tensor_scales(const lowbit_tensor_t* tensor, float* out, int64_t capacity,
                                   int64_t* out_count) {
  return Guard(__func__, [&] {
    RequireLive(tensor, "tensor");
    RequireNotNull(out_count, "out_count");
    if (capacity < 0) {
      throw Error(Status::kInvalidArgument, "capacity is negative: " + std::to_string(capacity));
    }
    if (out == nullptr && capacity != 0) {
      throw Error(Status::kInvalidArgument, "out is NULL but capacity is " +
                                                std::to_string(capacity));
    }
    const std::vector<float> scales = lowbit::ResolveScales(tensor->q.state);
    const int64_t n = static_cast<int64_t>(scales.size());
    if (out != nullptr) {
      if (capacity < n) {
        throw Error(Status::kInvalidArgument, "capacity " + std::to_string(capacity) +
                                                  " is smaller than the " + std::to_string(n) +
                                                  " statistics");
      }
      if (n > 0) std::memcpy(out, scales.data(), scales.size() * sizeof(float));
    }
    *out_count = n;
  });
}

// ---- Error statistics -------------------------------------------------------------------------

lowbit_status lowbit_error_stats_compute(const void* original, lowbit_dtype original_dtype,
                                         const void* approx, lowbit_dtype approx_dtype,
                                         int64_t count, lowbit_error_stats* out_stats) {
  return Guard(__func__, [&] {
    RequireNotNull(original, "original");
    RequireNotNull(approx, "approx");
    RequireNotNull(out_stats, "out_stats");
    RequirePositive(count, "count");
    const lowbit::ErrorStats s = lowbit::EstimateError(
        {original, ToDType(original_dtype, "original_dtype"), {count}},
        {approx, ToDType(approx_dtype, "approx_dtype"), {count}});
    CopyStats(s, out_stats);
  });
}

lowbit_status lowbit_tensor_error(const lowbit_tensor_t* tensor, const void* original,
                                  lowbit_dtype dtype, int64_t count,
                                  lowbit_error_stats* out_stats) {
  return Guard(__func__, [&] {
    RequireLive(tensor, "tensor");
    RequireNotNull(original, "original");
    RequireNotNull(out_stats, "out_stats");
    const int64_t n = RequireTensorCount(tensor, count);
    const std::vector<float> back = lowbit::DequantizeToF32(tensor->q);
    const lowbit::ErrorStats s = lowbit::EstimateError(
        {original, ToDType(dtype, "dtype"), {n}}, {back.data(), lowbit::DType::kF32, {n}});
    CopyStats(s, out_stats);
  });
}

// ---- Packed weights and matmul ----------------------------------------------------------------

lowbit_status lowbit_pack(const lowbit_tensor_t* weight, const char* backend,
                          lowbit_packed_t** out_packed) {
  return Guard(__func__, [&] {
    RequireLive(weight, "weight");
    RequireNotNull(out_packed, "out_packed");
    auto p = std::make_unique<lowbit_packed>();
    p->w = lowbit::Pack(weight->q, backend ? backend : "");
    *out_packed = Publish(std::move(p));
  });
}

void lowbit_packed_destroy(lowbit_packed_t* packed) { Destroy(packed); }

lowbit_status lowbit_unpack(const lowbit_packed_t* packed, lowbit_tensor_t** out_tensor) {
  return Guard(__func__, [&] {
    RequireLive(packed, "packed");
    RequireNotNull(out_tensor, "out_tensor");
    auto t = std::make_unique<lowbit_tensor>();
    t->q = lowbit::Unpack(packed->w);
    *out_tensor = Publish(std::move(t));
  });
}

lowbit_status lowbit_packed_get_info(const lowbit_packed_t* packed, lowbit_packed_info* out_info) {
  return Guard(__func__, [&] {
    RequireLive(packed, "packed");
    RequireNotNull(out_info, "out_info");
    lowbit_packed_info info;
    std::memset(&info, 0, sizeof(info));
    info.format = static_cast<lowbit_format>(packed->w.format());
    info.rows = packed->w.rows();
    info.cols = packed->w.cols();
    info.packed_bytes = packed->w.packed_bytes();
    std::strncpy(info.backend, packed->w.backend(), sizeof(info.backend) - 1);
    *out_info = info;
  });
}

lowbit_status lowbit_gemv(const lowbit_packed_t* weight, const void* x, lowbit_dtype x_dtype,
                          int64_t k, void* y, lowbit_dtype y_dtype, int64_t n, const float* bias,
                          lowbit_context_t* ctx) {
  return Guard(__func__, [&] {
    RequireLive(weight, "weight");
    RequireNotNull(x, "x");
    RequireNotNull(y, "y");
    CheckMatmulDims(weight->w, 1, k, n);
    const lowbit::DType xd = ToDType(x_dtype, "x_dtype"), yd = ToDType(y_dtype, "y_dtype");
    lowbit::Context* c = ContextOrNull(ctx);
    WithMatmulViews(x, xd, y, yd, 1, k, n,
                    /*vector=*/true, [&](const auto& xv, const auto& yv) {
                      lowbit::Gemv(weight->w, xv, yv, bias, c);
                    });
  });
}

lowbit_status lowbit_gemm(const lowbit_packed_t* weight, const void* x, lowbit_dtype x_dtype,
                          int64_t m, int64_t k, void* y, lowbit_dtype y_dtype, int64_t n,
                          const float* bias, lowbit_context_t* ctx) {
  return Guard(__func__, [&] {
    RequireLive(weight, "weight");
    RequireNotNull(x, "x");
    RequireNotNull(y, "y");
    CheckMatmulDims(weight->w, m, k, n);
    const lowbit::DType xd = ToDType(x_dtype, "x_dtype"), yd = ToDType(y_dtype, "y_dtype");
    lowbit::Context* c = ContextOrNull(ctx);
    WithMatmulViews(x, xd, y, yd, m, k, n,
                    /*vector=*/false, [&](const auto& xv, const auto& yv) {
                      lowbit::Gemm(weight->w, xv, yv, bias, c);
                    });
  });
}

// ---- Safetensors files --------------------------------------------------------------------------

lowbit_status lowbit_save_tensors(const char* path, const char* const* prefixes,
                                  const lowbit_tensor_t* const* tensors, int64_t count,
                                  lowbit_layout layout) {
  return Guard(__func__, [&] {
    RequireNotNull(path, "path");
    RequireNotNull(prefixes, "prefixes");
    RequireNotNull(tensors, "tensors");
    RequirePositive(count, "count");
    const int l = RawEnum(layout);
    if (l < LOWBIT_LAYOUT_AUTO || l > LOWBIT_LAYOUT_LOWBIT) {
      throw Error(Status::kInvalidArgument, "unknown layout " + std::to_string(l) +
                                                " (auto = 0, dense = 1, bitsandbytes = 2, "
                                                "lowbit = 3)");
    }
    std::vector<lowbit::io::CheckpointItem> items(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) {
      const std::string index = "[" + std::to_string(i) + "]";
      RequireNotNull(prefixes[i], ("prefixes" + index).c_str());
      RequireLive(tensors[i], ("tensors" + index).c_str());
      items[static_cast<size_t>(i)].name = prefixes[i];
      items[static_cast<size_t>(i)].quantized = &tensors[i]->q;
      items[static_cast<size_t>(i)].layout = static_cast<lowbit::io::TensorLayout>(l);
    }
    lowbit::io::SaveCheckpoint(path, items);
  });
}

lowbit_status lowbit_load_tensor(const char* path, const char* prefix,
                                 lowbit_tensor_t** out_tensor) {
  return Guard(__func__, [&] {
    RequireNotNull(path, "path");
    RequireNotNull(prefix, "prefix");
    RequireNotNull(out_tensor, "out_tensor");
    auto t = std::make_unique<lowbit_tensor>();
    if (lowbit::io::IsGgufFile(path)) {
      // GGUF: `prefix` is the tensor's full name, or a module prefix to which "weight" is added.
      const lowbit::io::GgufFile file = lowbit::io::GgufFile::Open(path);
      const lowbit::io::GgufTensorInfo* info = file.Find(prefix);
      if (info == nullptr) info = &file.Get(std::string(prefix) + "weight");
      t->q = lowbit::io::LoadGgufTensor(file, *info);
    } else {
      const lowbit::io::SafetensorsFile file = lowbit::io::SafetensorsFile::Open(path);
      t->q = lowbit::io::LoadQuantizedTensor(file, prefix);
    }
    *out_tensor = Publish(std::move(t));
  });
}

// ---- Linear layers ----------------------------------------------------------------------------

lowbit_status lowbit_linear4bit_create(int64_t in_features, int64_t out_features, const float* w,
                                       const float* bias, lowbit_format quant_type,
                                       int64_t block_size, int32_t double_quant,
                                       lowbit_dtype compute_dtype, lowbit_linear_t** out_layer) {
  return Guard(__func__, [&] {
    RequireNotNull(out_layer, "out_layer");
    RequireNotNull(w, "w");
    RequirePositive(in_features, "in_features");
    RequirePositive(out_features, "out_features");
    lowbit::nn::Linear4bitOptions o;
    o.quant_type = ToFormat(quant_type);
    o.block_size = block_size;
    o.compress_statistics = double_quant != 0;
    o.compute_dtype = ToDType(compute_dtype, "compute_dtype");
    auto layer = std::make_unique<lowbit_linear>();
    layer->layer = lowbit::nn::Linear4bit::FromLinear(in_features, out_features, w, bias, o);
    *out_layer = Publish(std::move(layer));
  });
}

lowbit_status lowbit_linear4bit_from_tensor(const lowbit_tensor_t* weight, const float* bias,
                                            lowbit_dtype compute_dtype,
                                            lowbit_linear_t** out_layer) {
  return Guard(__func__, [&] {
    RequireLive(weight, "weight");
    RequireNotNull(out_layer, "out_layer");
    const lowbit::DType dtype = ToDType(compute_dtype, "compute_dtype");
    auto layer = std::make_unique<lowbit_linear>();
    layer->layer = lowbit::nn::Linear4bit::FromQuantized(weight->q, bias, dtype);
    *out_layer = Publish(std::move(layer));
  });
}

lowbit_status lowbit_linear8bit_create(int64_t in_features, int64_t out_features, const float* w,
                                       const float* bias, float threshold,
                                       lowbit_linear_t** out_layer) {
  return Guard(__func__, [&] {
    RequireNotNull(out_layer, "out_layer");
    RequireNotNull(w, "w");
    RequirePositive(in_features, "in_features");
    RequirePositive(out_features, "out_features");
    lowbit::nn::Linear8bitOptions o;
    o.has_fp16_weights = false;
    o.threshold = threshold;
    auto layer = std::make_unique<lowbit_linear>();
    layer->layer = lowbit::nn::Linear8bit::FromLinear(in_features, out_features, w, bias, o);
    *out_layer = Publish(std::move(layer));
  });
}

void lowbit_linear_destroy(lowbit_linear_t* layer) { Destroy(layer); }

lowbit_status lowbit_linear_forward(const lowbit_linear_t* layer, const void* x,
                                    lowbit_dtype x_dtype, int64_t m, void* y,
                                    lowbit_dtype y_dtype, lowbit_context_t* ctx) {
  return Guard(__func__, [&] {
    RequireLive(layer, "layer");
    RequireNotNull(x, "x");
    RequireNotNull(y, "y");
    RequirePositive(m, "m");
    const lowbit::nn::QuantLinear& l = *layer->layer;
    RequireProductFits(m, l.in_features(), "m * in_features");
    RequireProductFits(m, l.out_features(), "m * out_features");
    const lowbit::DType xd = ToDType(x_dtype, "x_dtype"), yd = ToDType(y_dtype, "y_dtype");
    lowbit::Context* c = ContextOrNull(ctx);
    WithMatmulViews(x, xd, y, yd, m, l.in_features(), l.out_features(), /*vector=*/false,
                    [&](const auto& xv, const auto& yv) { l.Forward(xv, yv, c); });
  });
}

lowbit_status lowbit_linear_get_info(const lowbit_linear_t* layer, int64_t* out_in_features,
                                     int64_t* out_out_features, lowbit_format* out_weight_format) {
  return Guard(__func__, [&] {
    RequireLive(layer, "layer");
    RequireNotNull(out_in_features, "out_in_features");
    RequireNotNull(out_out_features, "out_out_features");
    RequireNotNull(out_weight_format, "out_weight_format");
    *out_in_features = layer->layer->in_features();
    *out_out_features = layer->layer->out_features();
    *out_weight_format = static_cast<lowbit_format>(layer->layer->weight_format());
  });
}

}  // extern "C"
