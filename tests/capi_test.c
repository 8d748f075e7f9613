/* tests/capi_test.c — proves lowbit_c.h is pure C99 (built with -std=c99 -pedantic -Werror) and
 * exercises the C ABI from C: quantize, dequantize, pack, GEMV against a double-precision C
 * reference on the dequantized weights, Linear4bit, save/load, and the error model. Exit status
 * 0 = pass; every failure prints its line. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lowbit/lowbit_c.h"

static int g_failures = 0;

#define CHECK(cond)                                                   \
  do {                                                                \
    if (!(cond)) {                                                    \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++g_failures;                                                   \
    }                                                                 \
  } while (0)

/* Checks that `call` returns `expected` and that the message mentions `needle`. */
#define CHECK_STATUS(call, expected, needle)                                               \
  do {                                                                                     \
    lowbit_status s_ = (call);                                                             \
    if (s_ != (expected) || strstr(lowbit_last_error(), (needle)) == NULL) {               \
      fprintf(stderr, "%s:%d: %s returned %s (\"%s\"), expected %s mentioning \"%s\"\n",   \
              __FILE__, __LINE__, #call, lowbit_status_name(s_), lowbit_last_error(),      \
              lowbit_status_name(expected), (needle));                                     \
      ++g_failures;                                                                        \
    }                                                                                      \
  } while (0)

#define kRows 48
#define kCols 128

/* Deterministic pseudo-random values in [-1, 1) (64-bit LCG), independent of the library. */
static float NextValue(uint64_t* state) {
  *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
  return (float)((double)(*state >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static void TestLibrary(void) {
  lowbit_format f = LOWBIT_FORMAT_F32;
  CHECK(lowbit_abi_version() == LOWBIT_ABI_VERSION);
  CHECK(strlen(lowbit_version()) > 0);
  CHECK(strcmp(lowbit_status_name(LOWBIT_CORRUPT_DATA), "corrupt_data") == 0);
  CHECK(strcmp(lowbit_status_name((lowbit_status)99), "unknown") == 0);
  CHECK(strcmp(lowbit_format_name(LOWBIT_FORMAT_NF4), "nf4") == 0);
  CHECK(strcmp(lowbit_format_name((lowbit_format)-3), "unknown") == 0);
  CHECK(lowbit_format_from_name("int4_asym", &f) == LOWBIT_OK && f == LOWBIT_FORMAT_INT4_ASYM);
  CHECK(strcmp(lowbit_last_error(), "") == 0);
  CHECK_STATUS(lowbit_format_from_name("nf5", &f), LOWBIT_UNSUPPORTED_FORMAT, "nf5");
  CHECK_STATUS(lowbit_format_from_name(NULL, &f), LOWBIT_INVALID_ARGUMENT, "name is NULL");
}

static void TestQuantizeGemv(void) {
  static float w[kRows * kCols], back[kRows * kCols], x[kCols], y[kRows];
  const int64_t shape[2] = {kRows, kCols};
  uint64_t seed = 7;
  lowbit_tensor_t* t = NULL;
  lowbit_packed_t* p = NULL;
  lowbit_context_t* ctx = NULL;
  lowbit_tensor_info info;
  lowbit_packed_info pinfo;
  lowbit_error_stats stats;
  lowbit_quantize_options options;
  int i, j;
  double max_err = 0.0;

  for (i = 0; i < kRows * kCols; ++i) w[i] = 0.05f * NextValue(&seed);
  for (i = 0; i < kCols; ++i) x[i] = NextValue(&seed);

  lowbit_quantize_options_init(&options);
  options.block_size = 64;
  options.double_quant = 1;
  CHECK(lowbit_quantize(LOWBIT_FORMAT_NF4, w, LOWBIT_DTYPE_F32, shape, 2, &options, &t) ==
        LOWBIT_OK);
  CHECK(t != NULL);
  CHECK(lowbit_tensor_get_info(t, &info) == LOWBIT_OK);
  CHECK(info.format == LOWBIT_FORMAT_NF4 && info.ndim == 2 && info.shape[0] == kRows &&
        info.shape[1] == kCols && info.num_elements == kRows * kCols);
  CHECK(info.block_size == 64 && info.double_quant == 1);
  CHECK(info.payload_bytes == kRows * kCols / 2);
  /* Statistics: one u8 absmax code per 64-block (96), the nested absmax (1 float per 256 codes),
   * the nested offset (1 float), the 256-float nested code map and the 16-float NF4 codebook. */
  CHECK(info.statistic_bytes == 96 + 4 + 4 + 256 * 4 + 16 * 4);
  CHECK(fabs(info.bits_per_weight - 8.0 * (info.payload_bytes + info.statistic_bytes) /
                                        (kRows * kCols)) < 1e-12);

  CHECK(lowbit_dequantize(t, back, LOWBIT_DTYPE_F32, kRows * kCols) == LOWBIT_OK);
  CHECK(lowbit_tensor_error(t, w, LOWBIT_DTYPE_F32, kRows * kCols, &stats) == LOWBIT_OK);
  CHECK(stats.count == kRows * kCols && stats.snr_db > 15.0 && stats.snr_db < 30.0);

  CHECK(lowbit_context_create(2, &ctx) == LOWBIT_OK);
  CHECK(lowbit_pack(t, NULL, &p) == LOWBIT_OK);
  CHECK(lowbit_packed_get_info(p, &pinfo) == LOWBIT_OK);
  CHECK(pinfo.rows == kRows && pinfo.cols == kCols && pinfo.format == LOWBIT_FORMAT_NF4);
  CHECK(lowbit_gemv(p, x, LOWBIT_DTYPE_F32, kCols, y, LOWBIT_DTYPE_F32, kRows, NULL, ctx) ==
        LOWBIT_OK);
  /* Reference: y = back · x in double precision. */
  for (i = 0; i < kRows; ++i) {
    double ref = 0.0;
    for (j = 0; j < kCols; ++j) ref += (double)back[i * kCols + j] * x[j];
    if (fabs(ref - y[i]) > max_err) max_err = fabs(ref - y[i]);
  }
  CHECK(max_err < 1e-4);

  /* Shape mismatches and bad dtypes leave y untouched and explain themselves. */
  CHECK_STATUS(lowbit_gemv(p, x, LOWBIT_DTYPE_F32, kCols + 1, y, LOWBIT_DTYPE_F32, kRows, NULL,
                           ctx),
               LOWBIT_INVALID_ARGUMENT, "k = 129");
  CHECK_STATUS(lowbit_gemv(p, x, (lowbit_dtype)7, kCols, y, LOWBIT_DTYPE_F32, kRows, NULL, ctx),
               LOWBIT_INVALID_ARGUMENT, "unknown dtype 7");
  CHECK_STATUS(lowbit_dequantize(t, back, LOWBIT_DTYPE_F32, 5), LOWBIT_INVALID_ARGUMENT,
               "count is 5");

  lowbit_packed_destroy(p);
  lowbit_context_destroy(ctx);
  /* Destroyed handles are detected, and destroying twice is harmless. */
  CHECK_STATUS(lowbit_pack(t, "", &p), LOWBIT_OK, "");
  lowbit_packed_destroy(p);
  CHECK_STATUS(lowbit_packed_get_info(p, &pinfo), LOWBIT_INVALID_ARGUMENT, "not a live");
  lowbit_packed_destroy(p);
  lowbit_tensor_destroy(t);
  CHECK_STATUS(lowbit_tensor_get_info(t, &info), LOWBIT_INVALID_ARGUMENT, "not a live");
  lowbit_tensor_destroy(t);
  lowbit_tensor_destroy(NULL);
  lowbit_packed_destroy(NULL);
  lowbit_context_destroy(NULL);
  lowbit_linear_destroy(NULL);
}

static void TestLinearAndFiles(const char* dir) {
  static float w[kRows * kCols], bias[kRows], x[2 * kCols], y[2 * kRows], back[kRows * kCols];
  static float back2[kRows * kCols];
  const int64_t shape[2] = {kRows, kCols};
  uint64_t seed = 11;
  lowbit_linear_t* layer = NULL;
  lowbit_tensor_t* t = NULL;
  lowbit_tensor_t* loaded = NULL;
  const char* prefixes[1] = {"layer."};
  char path[4096];
  int64_t in_f = 0, out_f = 0;
  lowbit_format fmt = LOWBIT_FORMAT_F32;
  int i, r, j;
  double max_err = 0.0;

  for (i = 0; i < kRows * kCols; ++i) w[i] = 0.05f * NextValue(&seed);
  for (i = 0; i < kRows; ++i) bias[i] = NextValue(&seed);
  for (i = 0; i < 2 * kCols; ++i) x[i] = NextValue(&seed);

  CHECK(lowbit_quantize(LOWBIT_FORMAT_FP4, w, LOWBIT_DTYPE_F32, shape, 2, NULL, &t) == LOWBIT_OK);
  CHECK(lowbit_dequantize(t, back, LOWBIT_DTYPE_F32, kRows * kCols) == LOWBIT_OK);
  CHECK(lowbit_linear4bit_from_tensor(t, bias, LOWBIT_DTYPE_F32, &layer) == LOWBIT_OK);
  CHECK(lowbit_linear_get_info(layer, &in_f, &out_f, &fmt) == LOWBIT_OK);
  CHECK(in_f == kCols && out_f == kRows && fmt == LOWBIT_FORMAT_FP4);
  CHECK(lowbit_linear_forward(layer, x, LOWBIT_DTYPE_F32, 2, y, LOWBIT_DTYPE_F32, NULL) ==
        LOWBIT_OK);
  for (r = 0; r < 2; ++r) {
    for (i = 0; i < kRows; ++i) {
      double ref = bias[i];
      for (j = 0; j < kCols; ++j) ref += (double)back[i * kCols + j] * x[r * kCols + j];
      if (fabs(ref - y[r * kRows + i]) > max_err) max_err = fabs(ref - y[r * kRows + i]);
    }
  }
  CHECK(max_err < 1e-4);
  CHECK_STATUS(lowbit_linear_forward(layer, x, LOWBIT_DTYPE_F32, 0, y, LOWBIT_DTYPE_F32, NULL),
               LOWBIT_INVALID_ARGUMENT, "m must be positive");
  lowbit_linear_destroy(layer);
  CHECK_STATUS(lowbit_linear_forward(layer, x, LOWBIT_DTYPE_F32, 2, y, LOWBIT_DTYPE_F32, NULL),
               LOWBIT_INVALID_ARGUMENT, "not a live lowbit_linear_t");

  /* Save (bitsandbytes layout) and load back: the dequantized values are identical. */
  snprintf(path, sizeof(path), "%s/capi_test_c.safetensors", dir);
  CHECK(lowbit_save_tensors(path, prefixes, (const lowbit_tensor_t* const*)&t, 1,
                            LOWBIT_LAYOUT_BITSANDBYTES) == LOWBIT_OK);
  CHECK(lowbit_load_tensor(path, "layer.", &loaded) == LOWBIT_OK);
  CHECK(lowbit_dequantize(loaded, back2, LOWBIT_DTYPE_F32, kRows * kCols) == LOWBIT_OK);
  CHECK(memcmp(back, back2, sizeof(back)) == 0);
  CHECK_STATUS(lowbit_load_tensor(path, "other.", &loaded), LOWBIT_INVALID_ARGUMENT, "other.");
  lowbit_tensor_destroy(loaded);
  remove(path);
  snprintf(path, sizeof(path), "%s/no/such/dir/x.safetensors", dir);
  CHECK_STATUS(lowbit_load_tensor(path, "layer.", &loaded), LOWBIT_IO_ERROR, "x.safetensors");
  lowbit_tensor_destroy(t);
}

int main(int argc, char** argv) {
  const char* dir = argc > 1 ? argv[1] : ".";
  TestLibrary();
  TestQuantizeGemv();
  TestLinearAndFiles(dir);
  if (g_failures != 0) {
    fprintf(stderr, "capi_test_c: %d check(s) failed\n", g_failures);
    return 1;
  }
  printf("capi_test_c: all checks passed\n");
  return 0;
}
