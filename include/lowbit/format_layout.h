/* lowbit/format_layout.h — every stored bit layout and codebook of lowbit, declared once.
 *
 * Plain C (C99), so C, C++, CUDA and Metal code all include this one file. Nothing here may be
 * retyped anywhere else: consumers instantiate their arrays from the LOWBIT_*_INIT macros.
 * Values are C99 hexadecimal float literals, so each is exactly the float32 bit pattern given in
 * docs/formats.md (bitsandbytes-compatible where stated); tests check every bit.
 *
 * Bump LOWBIT_FORMAT_VERSION whenever a stored layout changes meaning. It is written into every
 * file lowbit saves and into every packed (execution-layout) weight.
 */
#ifndef LOWBIT_FORMAT_LAYOUT_H_
#define LOWBIT_FORMAT_LAYOUT_H_

#define LOWBIT_FORMAT_VERSION 1

/* ---- 4-bit packing (all 4-bit formats: nf4, fp4, int4) ------------------------------------
 * Elements are packed over the flattened row-major tensor, two per byte:
 *   byte[j] = (code[2j] << 4) | code[2j + 1]
 * i.e. the FIRST element goes to the HIGH nibble (bitsandbytes order). An odd element count pads
 * the last low nibble with the format's zero code. */
#define LOWBIT_NIBBLE_FIRST_SHIFT 4

/* ---- NF4 (bitsandbytes "nf4") -------------------------------------------------------------
 * 16-entry codebook indexed by the 4-bit code (a lookup table, not a float format). */
#define LOWBIT_NF4_CODEBOOK_INIT { \
    -0x1.0p+0f, -0x1.647362p-1f, -0x1.0cd66p-1f, -0x1.94654p-2f, \
    -0x1.23449ap-2f, -0x1.7a6a7ep-3f, -0x1.74f0e2p-4f, 0.0f, \
    0x1.45f5fep-4f, 0x1.4995c6p-3f, 0x1.f809bap-3f, 0x1.5a0674p-2f, \
    0x1.c3497p-2f, 0x1.200f56p-1f, 0x1.722766p-1f, 0x1.0p+0f \
  }
/* Code of 0.0, used to pad an odd element count. */
#define LOWBIT_NF4_ZERO_CODE 7
/* Quantization: code = number of thresholds t with y > t (strict; a tie goes to the lower code).
 * These are bitsandbytes' CUDA decision-tree literals; four of them (entries 0, 8, 12, 14) are
 * 1 ulp away from the float32 midpoints and must stay so for bit-exactness. */
#define LOWBIT_NF4_THRESHOLDS_INIT { \
    -0x1.b239b2p-1f, -0x1.38a4ep-1f, -0x1.d709p-2f, -0x1.5bd4ecp-2f, \
    -0x1.e079d8p-3f, -0x1.1a7178p-3f, -0x1.74f0e2p-5f, 0x1.45f5fep-5f, \
    0x1.ec90c6p-4f, 0x1.a0cfcp-3f, 0x1.2b05a8p-2f, 0x1.8ea7f2p-2f, \
    0x1.00da06p-1f, 0x1.491b5ep-1f, 0x1.b913b2p-1f \
  }

/* ---- FP4 (bitsandbytes "fp4": 1 sign, 2 exponent, 1 mantissa bits, bnb-specific bias) -------
 * Codebook in bit-pattern order = raw [0, 0.0625, 8, 12, 4, 6, 2, 3] / 12, negatives for bit 3
 * set. Code 8 is -0.0. */
#define LOWBIT_FP4_CODEBOOK_INIT { \
    0.0f, 0x1.555556p-8f, 0x1.555556p-1f, 0x1.0p+0f, \
    0x1.555556p-2f, 0x1.0p-1f, 0x1.555556p-3f, 0x1.0p-2f, \
    -0.0f, -0x1.555556p-8f, -0x1.555556p-1f, -0x1.0p+0f, \
    -0x1.555556p-2f, -0x1.0p-1f, -0x1.555556p-3f, -0x1.0p-2f \
  }
#define LOWBIT_FP4_ZERO_CODE 0
#define LOWBIT_FP4_SIGN_BIT 0x8
/* Quantization of a = |y|: ascending thresholds (strict a > t) and the magnitude code (bits 0..2)
 * chosen once a exceeds each threshold; a <= first threshold gives magnitude 0. These are
 * bitsandbytes' hand-written CUDA literals, not midpoints. The sign bit is set for any y < 0. */
#define LOWBIT_FP4_THRESHOLDS_INIT { \
    0x1.555572p-9f, 0x1.6p-4f, 0x1.aaaaaap-3f, 0x1.2aaaaap-2f, \
    0x1.aaaaacp-2f, 0x1.2aaaap-1f, 0x1.aaaaaap-1f \
  }
#define LOWBIT_FP4_THRESHOLD_CODES_INIT {1, 6, 7, 4, 5, 2, 3}

/* ---- Dynamic 8-bit map (bitsandbytes create_dynamic_map(signed=True)) ----------------------
 * 256 ascending values: 127 negatives, code[127] = 0, 127 positives, code[255] = 1.0. Used by
 * blockwise 8-bit quantization and by double quantization of 4-bit absmax. -1.0 is not
 * representable (code[0] = -0.99296875). Shipped as constants: torch versions round linspace
 * differently, so a loader always uses the map stored in the file; a writer writes this one. */
#define LOWBIT_DYNAMIC_MAP_ZERO_CODE 127
#define LOWBIT_DYNAMIC_MAP_INIT { \
    -0x1.fc6666p-1f, -0x1.f53334p-1f, -0x1.eep-1f, -0x1.e6ccccp-1f, \
    -0x1.df999ap-1f, -0x1.d86666p-1f, -0x1.d13334p-1f, -0x1.cap-1f, \
    -0x1.c2ccccp-1f, -0x1.bb999ap-1f, -0x1.b46666p-1f, -0x1.ad3334p-1f, \
    -0x1.a6p-1f, -0x1.9eccccp-1f, -0x1.97999ap-1f, -0x1.906666p-1f, \
    -0x1.893334p-1f, -0x1.82p-1f, -0x1.7accccp-1f, -0x1.73999ap-1f, \
    -0x1.6c6668p-1f, -0x1.653334p-1f, -0x1.5ep-1f, -0x1.56ccccp-1f, \
    -0x1.4f999ap-1f, -0x1.486668p-1f, -0x1.413334p-1f, -0x1.3ap-1f, \
    -0x1.32ccccp-1f, -0x1.2b999ap-1f, -0x1.246668p-1f, -0x1.1d3334p-1f, \
    -0x1.16p-1f, -0x1.0eccccp-1f, -0x1.079998p-1f, -0x1.006666p-1f, \
    -0x1.f26664p-2f, -0x1.e4p-2f, -0x1.d59998p-2f, -0x1.c73334p-2f, \
    -0x1.b8ccccp-2f, -0x1.aa6666p-2f, -0x1.9cp-2f, -0x1.8d9998p-2f, \
    -0x1.7f3334p-2f, -0x1.70ccccp-2f, -0x1.626666p-2f, -0x1.54p-2f, \
    -0x1.459998p-2f, -0x1.373334p-2f, -0x1.28ccccp-2f, -0x1.1a6668p-2f, \
    -0x1.0cp-2f, -0x1.fb3332p-3f, -0x1.de6666p-3f, -0x1.c1999ap-3f, \
    -0x1.a4ccccp-3f, -0x1.88p-3f, -0x1.6b3334p-3f, -0x1.4e6666p-3f, \
    -0x1.31999ap-3f, -0x1.14ccccp-3f, -0x1.fp-4f, -0x1.b66668p-4f, \
    -0x1.93d70ap-4f, -0x1.8851eep-4f, -0x1.7ccccep-4f, -0x1.7147aep-4f, \
    -0x1.65c29p-4f, -0x1.5a3d7p-4f, -0x1.4eb854p-4f, -0x1.433334p-4f, \
    -0x1.37ae14p-4f, -0x1.2c28f6p-4f, -0x1.20a3d6p-4f, -0x1.151ebap-4f, \
    -0x1.09999ap-4f, -0x1.fc28f6p-5f, -0x1.e51ebap-5f, -0x1.ce147ap-5f, \
    -0x1.b70a3ep-5f, -0x1.ap-5f, -0x1.88f5c2p-5f, -0x1.71eb86p-5f, \
    -0x1.5ae146p-5f, -0x1.43d70ap-5f, -0x1.2ccccep-5f, -0x1.15c29p-5f, \
    -0x1.fd70a4p-6f, -0x1.cf5c2ap-6f, -0x1.a147aep-6f, -0x1.733334p-6f, \
    -0x1.451ebap-6f, -0x1.170a3ep-6f, -0x1.d1eb86p-7f, -0x1.75c29p-7f, \
    -0x1.3e76c8p-7f, -0x1.2c083p-7f, -0x1.19999ap-7f, -0x1.072b02p-7f, \
    -0x1.e978d4p-8f, -0x1.c49ba6p-8f, -0x1.9fbe76p-8f, -0x1.7ae148p-8f, \
    -0x1.56041ap-8f, -0x1.3126e8p-8f, -0x1.0c49bap-8f, -0x1.ced914p-9f, \
    -0x1.851eb8p-9f, -0x1.3b645ap-9f, -0x1.e353f8p-10f, -0x1.4fdf3ap-10f, \
    -0x1.eecbfep-11f, -0x1.b3d07cp-11f, -0x1.78d5p-11f, -0x1.3dd982p-11f, \
    -0x1.02de02p-11f, -0x1.8fc506p-12f, -0x1.19ce0ap-12f, -0x1.47ae16p-13f, \
    -0x1.743e96p-14f, -0x1.15df66p-14f, -0x1.6f0068p-15f, -0x1.64840cp-16f, \
    -0x1.040bfep-17f, -0x1.b43528p-19f, -0x1.27476ep-21f, 0.0f, \
    0x1.27476ep-21f, 0x1.b43528p-19f, 0x1.040bfep-17f, 0x1.64840cp-16f, \
    0x1.6f0068p-15f, 0x1.15df66p-14f, 0x1.743e96p-14f, 0x1.47ae16p-13f, \
    0x1.19ce0ap-12f, 0x1.8fc506p-12f, 0x1.02de02p-11f, 0x1.3dd982p-11f, \
    0x1.78d5p-11f, 0x1.b3d07cp-11f, 0x1.eecbfep-11f, 0x1.4fdf3ap-10f, \
    0x1.e353f8p-10f, 0x1.3b645ap-9f, 0x1.851eb8p-9f, 0x1.ced914p-9f, \
    0x1.0c49bap-8f, 0x1.3126e8p-8f, 0x1.56041ap-8f, 0x1.7ae148p-8f, \
    0x1.9fbe76p-8f, 0x1.c49ba6p-8f, 0x1.e978d4p-8f, 0x1.072b02p-7f, \
    0x1.19999ap-7f, 0x1.2c083p-7f, 0x1.3e76c8p-7f, 0x1.75c29p-7f, \
    0x1.d1eb86p-7f, 0x1.170a3ep-6f, 0x1.451ebap-6f, 0x1.733334p-6f, \
    0x1.a147aep-6f, 0x1.cf5c2ap-6f, 0x1.fd70a4p-6f, 0x1.15c29p-5f, \
    0x1.2ccccep-5f, 0x1.43d70ap-5f, 0x1.5ae146p-5f, 0x1.71eb86p-5f, \
    0x1.88f5c2p-5f, 0x1.ap-5f, 0x1.b70a3ep-5f, 0x1.ce147ap-5f, \
    0x1.e51ebap-5f, 0x1.fc28f6p-5f, 0x1.09999ap-4f, 0x1.151ebap-4f, \
    0x1.20a3d6p-4f, 0x1.2c28f6p-4f, 0x1.37ae14p-4f, 0x1.433334p-4f, \
    0x1.4eb854p-4f, 0x1.5a3d7p-4f, 0x1.65c29p-4f, 0x1.7147aep-4f, \
    0x1.7ccccep-4f, 0x1.8851eep-4f, 0x1.93d70ap-4f, 0x1.b66668p-4f, \
    0x1.fp-4f, 0x1.14ccccp-3f, 0x1.31999ap-3f, 0x1.4e6666p-3f, \
    0x1.6b3334p-3f, 0x1.88p-3f, 0x1.a4ccccp-3f, 0x1.c1999ap-3f, \
    0x1.de6666p-3f, 0x1.fb3332p-3f, 0x1.0cp-2f, 0x1.1a6668p-2f, \
    0x1.28ccccp-2f, 0x1.373334p-2f, 0x1.459998p-2f, 0x1.54p-2f, \
    0x1.626666p-2f, 0x1.70ccccp-2f, 0x1.7f3334p-2f, 0x1.8d9998p-2f, \
    0x1.9cp-2f, 0x1.aa6666p-2f, 0x1.b8ccccp-2f, 0x1.c73334p-2f, \
    0x1.d59998p-2f, 0x1.e4p-2f, 0x1.f26664p-2f, 0x1.006666p-1f, \
    0x1.079998p-1f, 0x1.0eccccp-1f, 0x1.16p-1f, 0x1.1d3334p-1f, \
    0x1.246668p-1f, 0x1.2b999ap-1f, 0x1.32ccccp-1f, 0x1.3ap-1f, \
    0x1.413334p-1f, 0x1.486668p-1f, 0x1.4f999ap-1f, 0x1.56ccccp-1f, \
    0x1.5ep-1f, 0x1.653334p-1f, 0x1.6c6668p-1f, 0x1.73999ap-1f, \
    0x1.7accccp-1f, 0x1.82p-1f, 0x1.893334p-1f, 0x1.906666p-1f, \
    0x1.97999ap-1f, 0x1.9eccccp-1f, 0x1.a6p-1f, 0x1.ad3334p-1f, \
    0x1.b46666p-1f, 0x1.bb999ap-1f, 0x1.c2ccccp-1f, 0x1.cap-1f, \
    0x1.d13334p-1f, 0x1.d86666p-1f, 0x1.df999ap-1f, 0x1.e6ccccp-1f, \
    0x1.eep-1f, 0x1.f53334p-1f, 0x1.fc6666p-1f, 0x1.0p+0f \
  }

/* ---- Block sizes ------------------------------------------------------------------------- */
#define LOWBIT_4BIT_MIN_BLOCK 32       /* bitsandbytes quantize_4bit accepts 32..4096, powers of 2 */
#define LOWBIT_4BIT_MAX_BLOCK 4096
#define LOWBIT_4BIT_DEFAULT_BLOCK 64   /* bitsandbytes default */
#define LOWBIT_BLOCKWISE8_MIN_BLOCK 64 /* bitsandbytes CUDA accepts 64..4096, powers of 2 */
#define LOWBIT_BLOCKWISE8_MAX_BLOCK 4096
#define LOWBIT_BLOCKWISE8_DEFAULT_BLOCK 4096
#define LOWBIT_NESTED_BLOCK 256        /* double quant: matmul_4bit requires 256 */
#define LOWBIT_INT4_MIN_GROUP 32       /* int4 groups run along each row (the last dim) */
#define LOWBIT_INT4_MAX_GROUP 4096
#define LOWBIT_INT4_DEFAULT_GROUP 128

/* ---- Integer formats ----------------------------------------------------------------------- */
/* int8 symmetric (LLM.int8): the stored statistic is the row absmax itself (bitsandbytes SCB);
 * code = round_half_even(x * 127 / absmax); x = code * absmax * (1/127). */
#define LOWBIT_INT8_QMAX 127
#define LOWBIT_INT8_INV_QMAX 0x1.020408p-7f /* f32(1/127) = 7.874015718698502e-3, as bnb */
/* int8 asymmetric: unsigned code 0..255, x = (code - zero_point) * scale. */
#define LOWBIT_UINT8_QMAX 255
/* int4 symmetric: nibble = q + 8 with q in [-7, 7]; x = (nibble - 8) * scale, scale = absmax / 7. */
#define LOWBIT_INT4_SYM_QMAX 7
#define LOWBIT_INT4_SYM_OFFSET 8
/* int4 asymmetric: nibble 0..15, x = (nibble - zero_point) * scale, scale = (max - min) / 15. */
#define LOWBIT_INT4_ASYM_QMAX 15

/* ---- FP8 (OCP 8-bit floating point, v1.0) ---------------------------------------------------
 * E4M3 ("fn"): bias 7, no infinities, NaN = S.1111.111 (0x7F/0xFF), max finite 448 (0x7E).
 * E5M2: bias 15, IEEE-like: Inf 0x7C/0xFC, NaN 0x7D..0x7F, max finite 57344 (0x7B).
 * Conversion from float32 (lowbit's one rule, identical to cuda_fp8.h with __NV_SATFINITE):
 * round to nearest even; anything whose magnitude exceeds the max finite value, +-Inf included,
 * SATURATES to +-max for both E4M3 and E5M2; NaN -> NaN (0x7F | sign). */
#define LOWBIT_FP8_E4M3_EXP_BITS 4
#define LOWBIT_FP8_E4M3_MAN_BITS 3
#define LOWBIT_FP8_E4M3_BIAS 7
#define LOWBIT_FP8_E4M3_MAX 448.0f
#define LOWBIT_FP8_E4M3_NAN 0x7F
#define LOWBIT_FP8_E5M2_EXP_BITS 5
#define LOWBIT_FP8_E5M2_MAN_BITS 2
#define LOWBIT_FP8_E5M2_BIAS 15
#define LOWBIT_FP8_E5M2_MAX 57344.0f
#define LOWBIT_FP8_E5M2_INF 0x7C
#define LOWBIT_FP8_E5M2_NAN 0x7F

#endif /* LOWBIT_FORMAT_LAYOUT_H_ */
