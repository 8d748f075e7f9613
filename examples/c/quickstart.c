/* examples/c/quickstart.c — lowbit from C: quantize a weight matrix to NF4, check the error, pack
 * it, run a GEMV, compare with a plain C loop over the dequantized weights, save and reload the
 * tensor, and handle an error. Build: cc -std=c99 quickstart.c -llowbit_c -lm (docs/c-api.md).
 * Exit status 0 when every check passes. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "lowbit/lowbit_c.h"

/* Prints the failed call's status and message and jumps to cleanup. */
#define TRY(call)                                                                   \
  do {                                                                              \
    lowbit_status status_ = (call);                                                 \
    if (status_ != LOWBIT_OK) {                                                     \
      fprintf(stderr, "%s failed: %s (%s)\n", #call, lowbit_status_name(status_),   \
              lowbit_last_error());                                                 \
      goto cleanup;                                                                 \
    }                                                                               \
  } while (0)

enum { kOut = 256, kIn = 512 }; /* W is [out_features, in_features] */

int main(int argc, char** argv) {
  const char* path = argc > 1 ? argv[1] : "quickstart_nf4.safetensors";
  float* w = malloc(sizeof(float) * kOut * kIn);
  float* w_back = malloc(sizeof(float) * kOut * kIn);
  float* x = malloc(sizeof(float) * kIn);
  float* y = malloc(sizeof(float) * kOut);
  const int64_t shape[2] = {kOut, kIn};
  lowbit_tensor_t* weight = NULL;
  lowbit_tensor_t* reloaded = NULL;
  lowbit_packed_t* packed = NULL;
  lowbit_context_t* ctx = NULL;
  lowbit_quantize_options options;
  lowbit_tensor_info info;
  lowbit_error_stats stats;
  const char* prefix = "layer0.";
  int exit_code = 1;
  int i, k;
  double worst = 0.0;
  uint32_t seed = 12345u;

  if (w == NULL || w_back == NULL || x == NULL || y == NULL) goto cleanup;
  printf("lowbit %s (ABI %u)\n", lowbit_version(), (unsigned)lowbit_abi_version());
  if (lowbit_abi_version() != LOWBIT_ABI_VERSION) {
    fprintf(stderr, "header ABI %d does not match the library\n", LOWBIT_ABI_VERSION);
    goto cleanup;
  }

  /* Some weights (small, roughly normal) and an activation vector. */
  for (i = 0; i < kOut * kIn; ++i) {
    double u1, u2;
    seed = seed * 1664525u + 1013904223u;
    u1 = (seed + 1.0) / 4294967297.0;
    seed = seed * 1664525u + 1013904223u;
    u2 = seed / 4294967296.0;
    w[i] = (float)(0.02 * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
  }
  for (k = 0; k < kIn; ++k) x[k] = (float)sin(0.1 * k);

  /* 1. Quantize to NF4 (bitsandbytes blocks of 64, double-quantized absmax). */
  lowbit_quantize_options_init(&options);
  options.block_size = 64;
  options.double_quant = 1;
  TRY(lowbit_quantize(LOWBIT_FORMAT_NF4, w, LOWBIT_DTYPE_F32, shape, 2, &options, &weight));
  TRY(lowbit_tensor_get_info(weight, &info));
  TRY(lowbit_tensor_error(weight, w, LOWBIT_DTYPE_F32, kOut * kIn, &stats));
  printf("nf4 [%d, %d]: %.3f bits/weight (%lld bytes vs %d as f32), SNR %.2f dB\n", kOut, kIn,
         info.bits_per_weight, (long long)info.total_bytes, 4 * kOut * kIn, stats.snr_db);

  /* 2. Pack once, multiply many times: y = W · x. */
  TRY(lowbit_context_create(0, &ctx)); /* 0 = all cores */
  TRY(lowbit_pack(weight, NULL, &packed));
  TRY(lowbit_gemv(packed, x, LOWBIT_DTYPE_F32, kIn, y, LOWBIT_DTYPE_F32, kOut, NULL, ctx));

  /* 3. Compare with a plain double-precision loop over the dequantized weights. */
  TRY(lowbit_dequantize(weight, w_back, LOWBIT_DTYPE_F32, kOut * kIn));
  for (i = 0; i < kOut; ++i) {
    double ref = 0.0;
    for (k = 0; k < kIn; ++k) ref += (double)w_back[i * kIn + k] * x[k];
    if (fabs(ref - y[i]) / (1.0 + fabs(ref)) > worst) worst = fabs(ref - y[i]) / (1.0 + fabs(ref));
  }
  printf("gemv: y[0] = %.6f, max relative difference to the reference loop %.2e\n", y[0], worst);
  if (worst > 1e-5) {
    fprintf(stderr, "GEMV differs from the reference\n");
    goto cleanup;
  }

  /* 4. Save in the bitsandbytes layout (loadable by transformers) and load back. */
  TRY(lowbit_save_tensors(path, &prefix, (const lowbit_tensor_t* const*)&weight, 1,
                          LOWBIT_LAYOUT_BITSANDBYTES));
  TRY(lowbit_load_tensor(path, prefix, &reloaded));
  TRY(lowbit_dequantize(reloaded, w, LOWBIT_DTYPE_F32, kOut * kIn)); /* reuse w as scratch */
  for (i = 0; i < kOut * kIn; ++i) {
    if (w[i] != w_back[i]) {
      fprintf(stderr, "reloaded tensor differs at %d\n", i);
      goto cleanup;
    }
  }
  printf("saved and reloaded %s: identical\n", path);
  remove(path);

  /* 5. Errors are statuses with a message, never crashes: k does not match the weight. */
  if (lowbit_gemv(packed, x, LOWBIT_DTYPE_F32, kIn - 1, y, LOWBIT_DTYPE_F32, kOut, NULL, ctx) !=
      LOWBIT_INVALID_ARGUMENT) {
    fprintf(stderr, "a wrong k was accepted\n");
    goto cleanup;
  }
  printf("expected error: %s\n", lowbit_last_error());
  exit_code = 0;

cleanup:
  /* Every *_destroy accepts NULL. */
  lowbit_packed_destroy(packed);
  lowbit_tensor_destroy(reloaded);
  lowbit_tensor_destroy(weight);
  lowbit_context_destroy(ctx);
  free(w);
  free(w_back);
  free(x);
  free(y);
  return exit_code;
}
