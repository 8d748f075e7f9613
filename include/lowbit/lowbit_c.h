/* lowbit/lowbit_c.h — the C ABI of lowbit (liblowbit_c.so): pure C99, callable from any language.
 *
 * Conventions (docs/c-api.md):
 * - Every function returns lowbit_status, except the pure queries that cannot fail
 *   (lowbit_version, lowbit_abi_version, lowbit_last_error, lowbit_status_name,
 *   lowbit_format_name, lowbit_quantize_options_init) and the *_destroy functions (void).
 *   Results come back through out_* parameters, which are written only on LOWBIT_OK.
 * - On failure, lowbit_last_error() returns a message naming the offending value. The message is
 *   thread-local: it belongs to the calling thread's most recent call, and a successful call
 *   resets it to "".
 * - Handles are opaque. A function that returns a handle through out_* transfers ownership to the
 *   caller, who releases it with the matching *_destroy (which accepts NULL as a no-op).
 *   Functions taking a handle borrow it for the duration of the call only. The library keeps a
 *   registry of live handles: passing a destroyed handle, or a handle of the wrong kind, to any
 *   function returns LOWBIT_INVALID_ARGUMENT instead of touching freed memory, and destroying a
 *   handle twice is a no-op (unless its address was meanwhile reused for a new handle of the
 *   same kind, which the registry cannot tell apart).
 * - Nothing crosses this boundary as a C++ exception, abort or exit: out-of-memory is
 *   LOWBIT_OUT_OF_MEMORY, anything unexpected is LOWBIT_INTERNAL. (A broken internal invariant,
 *   i.e. a lowbit bug, still ends in lowbit's fatal handler, which aborts.)
 * - Thread safety: distinct handles may be used from distinct threads concurrently. Const
 *   handles (tensors, packed weights, layers passed as const) may be shared by threads for
 *   reading; a lowbit_context_t parallelizes one call at a time (a call finding it busy runs
 *   serially on the calling thread), so threads that run ops concurrently pass one context each
 *   (ctx = NULL means the shared process default context).
 * - Sizes and counts are int64_t; a negative or zero size where a positive one is required is
 *   LOWBIT_INVALID_ARGUMENT.
 */
#ifndef LOWBIT_LOWBIT_C_H_
#define LOWBIT_LOWBIT_C_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define LOWBIT_C_API
#else
#define LOWBIT_C_API __attribute__((visibility("default")))
#endif

/* Incremented whenever a function signature, struct layout or enum value of this header changes
 * incompatibly. Compare with lowbit_abi_version() at run time. */
#define LOWBIT_ABI_VERSION 1
/* Maximum tensor rank accepted and reported through this ABI. */
#define LOWBIT_MAX_DIMS 8

/* Frozen numbering, identical to lowbit::Status (checked at compile time in capi/). */
typedef enum lowbit_status {
  LOWBIT_OK = 0,
  LOWBIT_INVALID_ARGUMENT = 1,
  LOWBIT_INVALID_STATE = 2,
  LOWBIT_UNSUPPORTED_FORMAT = 3,
  LOWBIT_UNSUPPORTED_BACKEND = 4,
  LOWBIT_UNSUPPORTED_HARDWARE = 5,
  LOWBIT_OUT_OF_MEMORY = 6,
  LOWBIT_IO_ERROR = 7,
  LOWBIT_CORRUPT_DATA = 8,
  LOWBIT_BACKEND_ERROR = 9,
  LOWBIT_INTERNAL = 10
} lowbit_status;

/* Weight formats, numbered as lowbit::Format (persisted; append-only). */
typedef enum lowbit_format {
  LOWBIT_FORMAT_F32 = 0,
  LOWBIT_FORMAT_F16 = 1,
  LOWBIT_FORMAT_BF16 = 2,
  LOWBIT_FORMAT_INT8 = 3,
  LOWBIT_FORMAT_INT8_ASYM = 4,
  LOWBIT_FORMAT_INT4 = 5,
  LOWBIT_FORMAT_INT4_ASYM = 6,
  LOWBIT_FORMAT_NF4 = 7,
  LOWBIT_FORMAT_FP4 = 8,
  LOWBIT_FORMAT_FP8_E4M3 = 9,
  LOWBIT_FORMAT_FP8_E5M2 = 10,
  LOWBIT_FORMAT_BLOCKWISE8 = 11,
  LOWBIT_FORMAT_MXFP4 = 12, /* OCP MXFP4: E2M1, E8M0 scale per 32 along each row */
  LOWBIT_FORMAT_NVFP4 = 13, /* NVFP4: E2M1, E4M3 scale per 16, float32 tensor scale */
  LOWBIT_FORMAT_IQ4_NL = 14 /* llama.cpp IQ4_NL: non-linear grid, f16 scale per 32 */
} lowbit_format;

/* Element types of dense buffers crossing the ABI (activations, dequantized weights). Numbered
 * as lowbit::DType; only these three are accepted by the functions below. */
typedef enum lowbit_dtype {
  LOWBIT_DTYPE_F32 = 0,
  LOWBIT_DTYPE_F16 = 1, /* IEEE binary16 bits in a uint16_t */
  LOWBIT_DTYPE_BF16 = 2 /* bfloat16 bits in a uint16_t */
} lowbit_dtype;

/* How statistics map onto elements, numbered as lowbit::Granularity. */
typedef enum lowbit_granularity {
  LOWBIT_GRANULARITY_DEFAULT = 0,
  LOWBIT_GRANULARITY_BLOCK = 1,
  LOWBIT_GRANULARITY_GROUP = 2,
  LOWBIT_GRANULARITY_ROW = 3,
  LOWBIT_GRANULARITY_TENSOR = 4,
  LOWBIT_GRANULARITY_NONE = 5
} lowbit_granularity;

typedef struct lowbit_context lowbit_context_t;  /* thread pool + scratch for ops */
typedef struct lowbit_tensor lowbit_tensor_t;    /* a quantized tensor (canonical layout) */
typedef struct lowbit_packed lowbit_packed_t;    /* a 2-D weight packed for a backend */
typedef struct lowbit_linear lowbit_linear_t;    /* a Linear4bit / Linear8bit layer */

/* ---- Library ---------------------------------------------------------------------------- */

/* "0.1.0"; static storage. */
LOWBIT_C_API const char* lowbit_version(void);
/* LOWBIT_ABI_VERSION of the library actually loaded. */
LOWBIT_C_API uint32_t lowbit_abi_version(void);
/* The calling thread's last error message ("" after a successful call); valid until the next
 * lowbit call on this thread. Never NULL. */
LOWBIT_C_API const char* lowbit_last_error(void);
/* "ok", "invalid_argument", ...; "unknown" for a value outside the enum. Static storage. */
LOWBIT_C_API const char* lowbit_status_name(lowbit_status status);
/* Stable format name ("nf4"); "unknown" for an invalid value. Static storage. */
LOWBIT_C_API const char* lowbit_format_name(lowbit_format format);
/* Parses a format name ("nf4", "int4_asym", "fp8_e4m3", ...). */
LOWBIT_C_API lowbit_status lowbit_format_from_name(const char* name, lowbit_format* out_format);

/* ---- Context ---------------------------------------------------------------------------- */

/* Creates a context with a pool of num_threads (<= 0: hardware concurrency; 1: caller only).
 * The caller owns *out_ctx. */
LOWBIT_C_API lowbit_status lowbit_context_create(int32_t num_threads, lowbit_context_t** out_ctx);
LOWBIT_C_API void lowbit_context_destroy(lowbit_context_t* ctx);
LOWBIT_C_API lowbit_status lowbit_context_num_threads(const lowbit_context_t* ctx,
                                                      int32_t* out_num_threads);

/* ---- Quantize / dequantize ---------------------------------------------------------------- */

/* Options of lowbit_quantize. Always initialize with lowbit_quantize_options_init, which sets
 * struct_size (lets later ABI versions append fields). */
typedef struct lowbit_quantize_options {
  uint32_t struct_size;
  /* Block (nf4/fp4/blockwise8) or group (int4) size; 0 = the format's default. */
  int64_t block_size;
  /* Nonzero: double-quantize the statistics (nf4, fp4, blockwise8). */
  int32_t double_quant;
  /* int8/int8_asym/fp8: ROW (default) or TENSOR; others: DEFAULT. */
  lowbit_granularity granularity;
} lowbit_quantize_options;

LOWBIT_C_API void lowbit_quantize_options_init(lowbit_quantize_options* options);

/* Quantizes a dense row-major tensor. data: num_elements(shape) values of dtype (f32/f16/bf16),
 * borrowed; shape: ndim (1..LOWBIT_MAX_DIMS) positive dims; options: NULL = defaults. The
 * caller owns *out_tensor. Non-finite inputs are LOWBIT_INVALID_ARGUMENT. */
LOWBIT_C_API lowbit_status lowbit_quantize(lowbit_format format, const void* data,
                                           lowbit_dtype dtype, const int64_t* shape, int32_t ndim,
                                           const lowbit_quantize_options* options,
                                           lowbit_tensor_t** out_tensor);
LOWBIT_C_API void lowbit_tensor_destroy(lowbit_tensor_t* tensor);

/* Dequantizes into out (caller-owned, count elements of dtype); count must equal the tensor's
 * element count. */
LOWBIT_C_API lowbit_status lowbit_dequantize(const lowbit_tensor_t* tensor, void* out,
                                             lowbit_dtype dtype, int64_t count);

typedef struct lowbit_tensor_info {
  lowbit_format format;
  int32_t ndim;
  int64_t shape[LOWBIT_MAX_DIMS]; /* first ndim entries valid, outermost first */
  int64_t num_elements;
  lowbit_granularity granularity;
  int64_t block_size;             /* 0 when not blocked */
  int32_t double_quant;           /* 1 when the statistics are double-quantized */
  int64_t payload_bytes;          /* code bytes */
  int64_t statistic_bytes;        /* scales, zero points, codebook, nested state */
  int64_t total_bytes;            /* payload + statistics */
  double bits_per_weight;         /* 8 * total_bytes / num_elements */
} lowbit_tensor_info;

LOWBIT_C_API lowbit_status lowbit_tensor_get_info(const lowbit_tensor_t* tensor,
                                                  lowbit_tensor_info* out_info);
/* Borrowed view of the payload bytes; valid until the tensor is destroyed. */
LOWBIT_C_API lowbit_status lowbit_tensor_payload(const lowbit_tensor_t* tensor,
                                                 const uint8_t** out_data, int64_t* out_bytes);
/* Copies the float32 statistics (double quantization undone) into out (capacity floats);
 * *out_count receives the number of statistics. With out == NULL and capacity == 0 only the count
 * is returned; otherwise capacity must be >= the count. */
LOWBIT_C_API lowbit_status lowbit_tensor_scales(const lowbit_tensor_t* tensor, float* out,
                                                int64_t capacity, int64_t* out_count);

/* ---- Error statistics ----------------------------------------------------------------------- */

typedef struct lowbit_error_stats {
  double mean_abs; /* mean |a - b| */
  double mean_rel; /* mean |a - b| / (|a| + 1e-8) */
  double rel_l2;   /* ||a - b|| / ||a|| */
  double mse;      /* mean (a - b)^2 */
  double max_abs;  /* max |a - b| */
  double snr_db;   /* 10 log10(sum a^2 / sum (a - b)^2); +inf when exact */
  int64_t count;
} lowbit_error_stats;

/* Compares two dense buffers of count elements each (dtypes may differ). */
LOWBIT_C_API lowbit_status lowbit_error_stats_compute(const void* original,
                                                      lowbit_dtype original_dtype,
                                                      const void* approx, lowbit_dtype approx_dtype,
                                                      int64_t count,
                                                      lowbit_error_stats* out_stats);
/* Dequantizes tensor and compares it with original (count = the tensor's element count). */
LOWBIT_C_API lowbit_status lowbit_tensor_error(const lowbit_tensor_t* tensor,
                                               const void* original, lowbit_dtype dtype,
                                               int64_t count, lowbit_error_stats* out_stats);

/* ---- Packed weights and matmul ---------------------------------------------------------------
 * Weights are 2-D [N, K] (out_features, in_features). y = x · Wᵀ (+ bias), accumulated in f32. */

/* Packs a 2-D tensor for backend ("cpu" or NULL / "" = CPU; "cuda" when built in). The tensor is only
 * read; the caller owns *out_packed. */
LOWBIT_C_API lowbit_status lowbit_pack(const lowbit_tensor_t* weight, const char* backend,
                                       lowbit_packed_t** out_packed);
LOWBIT_C_API void lowbit_packed_destroy(lowbit_packed_t* packed);
/* Restores the canonical tensor (bit-identical); the caller owns *out_tensor. */
LOWBIT_C_API lowbit_status lowbit_unpack(const lowbit_packed_t* packed,
                                         lowbit_tensor_t** out_tensor);

typedef struct lowbit_packed_info {
  lowbit_format format;
  int64_t rows;         /* N */
  int64_t cols;         /* K */
  int64_t packed_bytes; /* bytes of the execution layout */
  char backend[16];     /* NUL-terminated backend name */
} lowbit_packed_info;

LOWBIT_C_API lowbit_status lowbit_packed_get_info(const lowbit_packed_t* packed,
                                                  lowbit_packed_info* out_info);

/* y[N] = W · x[K] (+ bias[N]). x: k elements of x_dtype; y: n elements of y_dtype
 * (caller-owned); bias: NULL or n floats; ctx: NULL = the process default context. k and n must
 * match the weight. */
LOWBIT_C_API lowbit_status lowbit_gemv(const lowbit_packed_t* weight, const void* x,
                                       lowbit_dtype x_dtype, int64_t k, void* y,
                                       lowbit_dtype y_dtype, int64_t n, const float* bias,
                                       lowbit_context_t* ctx);
/* y[M, N] = x[M, K] · Wᵀ (+ bias), row-major. Same rules as lowbit_gemv. */
LOWBIT_C_API lowbit_status lowbit_gemm(const lowbit_packed_t* weight, const void* x,
                                       lowbit_dtype x_dtype, int64_t m, int64_t k, void* y,
                                       lowbit_dtype y_dtype, int64_t n, const float* bias,
                                       lowbit_context_t* ctx);

/* ---- Safetensors files ----------------------------------------------------------------------
 * Quantized tensors are stored under a module prefix P (e.g. "model.layers.0.mlp.down_proj.";
 * may be ""): the keys are P "weight" plus the layout's statistic keys (docs/c-api.md,
 * include/lowbit/io/checkpoint.h). */

/* How a tensor is laid out in a file, numbered as lowbit::io::TensorLayout. */
typedef enum lowbit_layout {
  LOWBIT_LAYOUT_AUTO = 0,         /* bitsandbytes for nf4/fp4, dense for f32/f16/bf16, else lowbit */
  LOWBIT_LAYOUT_DENSE = 1,        /* one plain tensor (f32/f16/bf16 only) */
  LOWBIT_LAYOUT_BITSANDBYTES = 2, /* bnb 4-bit (nf4/fp4 blocks) or LLM.int8 (int8 rows, 2-D) */
  LOWBIT_LAYOUT_LOWBIT = 3        /* lowbit native: every format, versioned */
} lowbit_layout;

/* Writes count tensors to the safetensors file at path, atomically (temp file + rename: on any
 * failure the previous file is untouched). prefixes[i] is the module prefix of tensors[i]; all
 * keys must be distinct. Arrays and handles are borrowed. count >= 1. */
LOWBIT_C_API lowbit_status lowbit_save_tensors(const char* path, const char* const* prefixes,
                                               const lowbit_tensor_t* const* tensors,
                                               int64_t count, lowbit_layout layout);
/* Loads the tensor stored under prefix in the safetensors file at path (layout auto-detected:
 * bitsandbytes 4/8-bit, lowbit native, or a dense f32/f16/bf16 P "weight"). The caller owns
 * *out_tensor. Missing prefix: LOWBIT_INVALID_ARGUMENT; unreadable file: LOWBIT_IO_ERROR;
 * malformed file: LOWBIT_CORRUPT_DATA; newer/unknown lowbit format: LOWBIT_UNSUPPORTED_FORMAT.
 * A GGUF file (recognized by its "GGUF" magic, whatever its name) works too: prefix is the
 * tensor's full name ("blk.0.attn_q.weight") or a prefix to which "weight" is appended; the tensor
 * loads in the nearest lowbit format (f32/f16/bf16 as they are, q4_0 as int4 group 32 exactly,
 * q4_1/q4_K as int4_asym group 32, iq4_nl/mxfp4/nvfp4 as nf4 block 32, q8_0/q6_K as blockwise8
 * block 64; docs/files.md section 5); other ggml types: LOWBIT_UNSUPPORTED_FORMAT. */
LOWBIT_C_API lowbit_status lowbit_load_tensor(const char* path, const char* prefix,
                                              lowbit_tensor_t** out_tensor);

/* ---- Linear layers ------------------------------------------------------------------------ */

/* A frozen Linear4bit (bitsandbytes semantics): w [out, in] float32 and bias (NULL or out
 * floats) are copied and quantized to quant_type (NF4, FP4, INT4, INT4_ASYM) with block_size
 * (0 = default) and optional double quantization (nf4/fp4); the product runs in compute_dtype.
 * The caller owns *out_layer. */
LOWBIT_C_API lowbit_status lowbit_linear4bit_create(int64_t in_features, int64_t out_features,
                                                    const float* w, const float* bias,
                                                    lowbit_format quant_type, int64_t block_size,
                                                    int32_t double_quant,
                                                    lowbit_dtype compute_dtype,
                                                    lowbit_linear_t** out_layer);
/* A Linear4bit around an existing 4-bit tensor [out, in] (copied; the tensor stays the
 * caller's). */
LOWBIT_C_API lowbit_status lowbit_linear4bit_from_tensor(const lowbit_tensor_t* weight,
                                                         const float* bias,
                                                         lowbit_dtype compute_dtype,
                                                         lowbit_linear_t** out_layer);
/* A frozen Linear8bit (LLM.int8 inference: int8 per-row weights). threshold > 0 enables the
 * outlier decomposition of activations (bitsandbytes default 6.0); 0 disables it. */
LOWBIT_C_API lowbit_status lowbit_linear8bit_create(int64_t in_features, int64_t out_features,
                                                    const float* w, const float* bias,
                                                    float threshold,
                                                    lowbit_linear_t** out_layer);
LOWBIT_C_API void lowbit_linear_destroy(lowbit_linear_t* layer);
/* y[M, out] = x[M, in] · Wᵀ + b: x holds m*in elements of x_dtype, y m*out of y_dtype
 * (caller-owned, row-major); m >= 1; ctx: NULL = the process default context. */
LOWBIT_C_API lowbit_status lowbit_linear_forward(const lowbit_linear_t* layer, const void* x,
                                                 lowbit_dtype x_dtype, int64_t m, void* y,
                                                 lowbit_dtype y_dtype, lowbit_context_t* ctx);
LOWBIT_C_API lowbit_status lowbit_linear_get_info(const lowbit_linear_t* layer,
                                                  int64_t* out_in_features,
                                                  int64_t* out_out_features,
                                                  lowbit_format* out_weight_format);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* LOWBIT_LOWBIT_C_H_ */
