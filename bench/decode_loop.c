/* bench/decode_loop.c — token-by-token decode loop shaped like Llama-2-7B, through the C ABI only.
 *
 * Per layer: 4 GEMVs of 4096x4096 (q, k, v, o projections), 2 of 11008x4096 (gate, up) and one
 * of 4096x11008 (down); after the last layer one 32000x4096 classifier. Every matmul is one
 * lowbit_gemv with float32 activations on a lowbit_context_t of --threads threads; the glue
 * between them (RMS norm, residual adds, SiLU gating; no attention over a KV cache) is a few
 * plain C loops whose cost is negligible next to the weights. Weights are deterministic
 * pseudo-random values (xorshift), quantized once with lowbit_quantize (default options of
 * each format) and packed with lowbit_pack; every layer has its own weights, so a token streams
 * all of them from DRAM as a real decoder does.
 *
 * Baseline: --format f32 runs the same loop on LOWBIT_FORMAT_F32 weights through the same C ABI
 * calls, i.e. lowbit's dense float32 path (Eigen GEMVs over the context's row tasks, as fast as
 * Eigen's own float32 GEMV: bench/lowbit_bench BM_Gemv/f32_eigen).
 *
 * A 7B float32 model is ~26 GB, more than this machine's 24 GiB, hence --layers (default 4): the
 * line reports tokens/s measured with that many layers and tokens/s scaled to the full 32
 * layers as 1 / (32 * measured time per layer + measured classifier time), plus the weight bytes
 * (the tensors' total_bytes: codes + statistics) read per second.
 *
 * Usage: lowbit_decode_loop [--format f32|nf4|fp4|int4|int8|fp8_e4m3|blockwise8] [--layers N]
 *                           [--threads T] [--tokens T]
 * Output (one line): format, threads, layers, tokens, tok/s measured, tok/s scaled to 32 layers,
 * weight GB/s, ms per layer, ms for the classifier.
 */
#define _POSIX_C_SOURCE 199309L

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lowbit/lowbit_c.h"

enum { kHidden = 4096, kInter = 11008, kVocab = 32000, kFullLayers = 32, kPerLayer = 7 };

/* The matmuls of one layer, in execution order: rows (N, outputs) x cols (K, inputs). */
static const int64_t kLayerRows[kPerLayer] = {kHidden, kHidden, kHidden, kHidden,
                                              kInter,  kInter,  kHidden};
static const int64_t kLayerCols[kPerLayer] = {kHidden, kHidden, kHidden, kHidden,
                                              kHidden, kHidden, kInter};

typedef struct {
  lowbit_packed_t* w;
  int64_t rows, cols;
  int64_t bytes; /* total_bytes of the quantized tensor (codes + statistics) */
} Matrix;

static void Die(const char* what) {
  fprintf(stderr, "lowbit_decode_loop: %s: %s\n", what, lowbit_last_error());
  exit(1);
}

static double Now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Deterministic values in about [-1.7, 1.7] (sum of 4 uniforms, unit variance) times scale. */
static void FillRandom(float* v, int64_t n, uint64_t seed, float scale) {
  uint64_t s = 0x9E3779B97F4A7C15ull ^ (seed * 0xD1B54A32D192ED03ull);
  int64_t i;
  for (i = 0; i < n; ++i) {
    float sum = 0.0f;
    int j;
    for (j = 0; j < 4; ++j) {
      s ^= s >> 12;
      s ^= s << 25;
      s ^= s >> 27;
      sum += (float)((s * 0x2545F4914F6CDD1Dull) >> 40) * (1.0f / 16777216.0f);
    }
    v[i] = (sum - 2.0f) * 1.7320508f * scale;
  }
}

/* Quantizes a fresh [rows, cols] random matrix in `format` and packs it for the CPU. */
static Matrix MakeMatrix(lowbit_format format, int64_t rows, int64_t cols, uint64_t seed,
                         float* scratch) {
  Matrix m;
  lowbit_tensor_t* t = NULL;
  lowbit_tensor_info info;
  const int64_t shape[2] = {rows, cols};
  FillRandom(scratch, rows * cols, seed, 1.0f / sqrtf((float)cols));
  if (lowbit_quantize(format, scratch, LOWBIT_DTYPE_F32, shape, 2, NULL, &t) != LOWBIT_OK) {
    Die("lowbit_quantize");
  }
  if (lowbit_tensor_get_info(t, &info) != LOWBIT_OK) Die("lowbit_tensor_get_info");
  m.rows = rows;
  m.cols = cols;
  m.bytes = info.total_bytes;
  m.w = NULL;
  if (lowbit_pack(t, NULL, &m.w) != LOWBIT_OK) Die("lowbit_pack");
  lowbit_tensor_destroy(t);
  return m;
}

static void Gemv(const Matrix* m, const float* x, float* y, lowbit_context_t* ctx) {
  if (lowbit_gemv(m->w, x, LOWBIT_DTYPE_F32, m->cols, y, LOWBIT_DTYPE_F32, m->rows, NULL, ctx) !=
      LOWBIT_OK) {
    Die("lowbit_gemv");
  }
}

/* out = x / rms(x) (Llama's RMSNorm with unit gain). */
static void RmsNorm(const float* x, float* out, int64_t n) {
  double ss = 0.0;
  int64_t i;
  float inv;
  for (i = 0; i < n; ++i) ss += (double)x[i] * x[i];
  inv = (float)(1.0 / sqrt(ss / (double)n + 1e-6));
  for (i = 0; i < n; ++i) out[i] = x[i] * inv;
}

static void Usage(void) {
  fprintf(stderr,
          "usage: lowbit_decode_loop [--format f32|nf4|fp4|int4|int8|fp8_e4m3|blockwise8]\n"
          "                          [--layers N] [--threads T] [--tokens T]\n");
  exit(2);
}

static long ParsePositive(const char* flag, const char* value) {
  char* end = NULL;
  const long v = strtol(value, &end, 10);
  if (end == value || *end != '\0' || v <= 0) {
    fprintf(stderr, "lowbit_decode_loop: %s needs a positive integer, got '%s'\n", flag, value);
    exit(2);
  }
  return v;
}

int main(int argc, char** argv) {
  const char* format_name = "nf4";
  long layers = 4, threads = 1, tokens = 8;
  lowbit_format format;
  lowbit_context_t* ctx = NULL;
  Matrix* weights;
  Matrix classifier;
  float *scratch, *x, *xn, *q, *k, *v, *o, *gate, *up, *logits;
  int64_t layer_bytes = 0, token_bytes;
  double layer_seconds = 0.0, classifier_seconds = 0.0, per_layer, t32;
  long i, l, t;
  int j;

  for (i = 1; i < argc; ++i) {
    if (i + 1 >= argc) Usage();
    if (strcmp(argv[i], "--format") == 0) {
      format_name = argv[++i];
    } else if (strcmp(argv[i], "--layers") == 0) {
      layers = ParsePositive("--layers", argv[++i]);
    } else if (strcmp(argv[i], "--threads") == 0) {
      threads = ParsePositive("--threads", argv[++i]);
    } else if (strcmp(argv[i], "--tokens") == 0) {
      tokens = ParsePositive("--tokens", argv[++i]);
    } else {
      Usage();
    }
  }
  if (strcmp(format_name, "f32") != 0 && strcmp(format_name, "nf4") != 0 &&
      strcmp(format_name, "int4") != 0 && strcmp(format_name, "int8") != 0 &&
      strcmp(format_name, "fp8_e4m3") != 0 && strcmp(format_name, "fp4") != 0 &&
      strcmp(format_name, "blockwise8") != 0) {
    Usage();
  }
  if (lowbit_format_from_name(format_name, &format) != LOWBIT_OK) Die("lowbit_format_from_name");
  if (lowbit_context_create((int32_t)threads, &ctx) != LOWBIT_OK) Die("lowbit_context_create");

  /* Weights: one scratch buffer as large as the classifier, reused for every matrix. */
  scratch = (float*)malloc(sizeof(float) * (size_t)kVocab * kHidden);
  weights = (Matrix*)malloc(sizeof(Matrix) * (size_t)layers * kPerLayer);
  if (scratch == NULL || weights == NULL) {
    fprintf(stderr, "lowbit_decode_loop: out of memory\n");
    return 1;
  }
  for (l = 0; l < layers; ++l) {
    for (j = 0; j < kPerLayer; ++j) {
      Matrix* m = &weights[l * kPerLayer + j];
      *m = MakeMatrix(format, kLayerRows[j], kLayerCols[j], (uint64_t)(l * kPerLayer + j + 1),
                      scratch);
      if (l == 0) layer_bytes += m->bytes;
    }
  }
  classifier = MakeMatrix(format, kVocab, kHidden, 1000003u, scratch);
  free(scratch);

  x = (float*)malloc(sizeof(float) * kHidden);
  xn = (float*)malloc(sizeof(float) * kHidden);
  q = (float*)malloc(sizeof(float) * kHidden);
  k = (float*)malloc(sizeof(float) * kHidden);
  v = (float*)malloc(sizeof(float) * kHidden);
  o = (float*)malloc(sizeof(float) * kHidden);
  gate = (float*)malloc(sizeof(float) * kInter);
  up = (float*)malloc(sizeof(float) * kInter);
  logits = (float*)malloc(sizeof(float) * kVocab);
  if (!x || !xn || !q || !k || !v || !o || !gate || !up || !logits) {
    fprintf(stderr, "lowbit_decode_loop: out of memory\n");
    return 1;
  }

  /* Token 0 is a warm-up (first-use costs: thread start, workspaces); tokens 1..T are timed. */
  for (t = 0; t <= tokens; ++t) {
    double t0, t1, t2;
    FillRandom(x, kHidden, 7777u + (uint64_t)t, 1.0f); /* the token's embedding */
    t0 = Now();
    for (l = 0; l < layers; ++l) {
      const Matrix* w = &weights[l * kPerLayer];
      int64_t e;
      RmsNorm(x, xn, kHidden);
      Gemv(&w[0], xn, q, ctx);
      Gemv(&w[1], xn, k, ctx);
      Gemv(&w[2], xn, v, ctx);
      /* Attention over one position reduces to its value vector; q and k only cost their GEMV. */
      Gemv(&w[3], v, o, ctx);
      for (e = 0; e < kHidden; ++e) x[e] += o[e];
      RmsNorm(x, xn, kHidden);
      Gemv(&w[4], xn, gate, ctx);
      Gemv(&w[5], xn, up, ctx);
      for (e = 0; e < kInter; ++e) gate[e] = gate[e] / (1.0f + expf(-gate[e])) * up[e];
      Gemv(&w[6], gate, o, ctx);
      for (e = 0; e < kHidden; ++e) x[e] += o[e];
    }
    t1 = Now();
    RmsNorm(x, xn, kHidden);
    Gemv(&classifier, xn, logits, ctx);
    t2 = Now();
    if (t > 0) {
      layer_seconds += t1 - t0;
      classifier_seconds += t2 - t1;
    }
  }

  per_layer = layer_seconds / (double)(tokens * layers);
  t32 = kFullLayers * per_layer + classifier_seconds / (double)tokens;
  token_bytes = (int64_t)layers * layer_bytes + classifier.bytes;
  printf("decode_loop format=%s threads=%ld layers=%ld tokens=%ld tok/s=%.3f "
         "tok/s@32layers=%.3f weight_GB/s=%.2f layer_ms=%.3f classifier_ms=%.3f\n",
         format_name, threads, layers, tokens,
         (double)tokens / (layer_seconds + classifier_seconds), 1.0 / t32,
         (double)token_bytes * (double)tokens / (layer_seconds + classifier_seconds) / 1e9,
         1e3 * per_layer, 1e3 * classifier_seconds / (double)tokens);

  for (l = 0; l < layers * kPerLayer; ++l) lowbit_packed_destroy(weights[l].w);
  lowbit_packed_destroy(classifier.w);
  lowbit_context_destroy(ctx);
  free(weights);
  free(x);
  free(xn);
  free(q);
  free(k);
  free(v);
  free(o);
  free(gate);
  free(up);
  free(logits);
  return 0;
}
