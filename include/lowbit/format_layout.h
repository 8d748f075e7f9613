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

/* ---- Unsigned dynamic 8-bit map (bitsandbytes create_dynamic_map(signed=False)) ------------
 * 256 ascending values: code[0] = 0, 254 positive means, code[255] = 1.0. bitsandbytes' 8-bit
 * Adam stores its second moment (qmap2) with it. Generated by the float32 construction of
 * bnb-formats.md §2.1 (k = 2^(i+1) + 1 linspace points per decade, single-rounding linspace,
 * f32 midpoints, times f32(10^(i-6))); the same construction reproduces the signed map above
 * bit for bit, and tests/nn_optim_test.cc re-derives both. */
#define LOWBIT_DYNAMIC_MAP_UNSIGNED_INIT { \
    0.0f, 0x1.5cf754p-22f, 0x1.a0133p-21f, 0x1.1d367p-19f, \
    0x1.2599ecp-18f, 0x1.bc98a2p-18f, 0x1.29cbaap-17f, 0x1.0624dcp-16f, \
    0x1.c2e34p-16f, 0x1.3fd0dp-15f, 0x1.9e3p-15f, 0x1.fc8f34p-15f, \
    0x1.2d7732p-14f, 0x1.5ca6c8p-14f, 0x1.8bd662p-14f, 0x1.0cb296p-13f, \
    0x1.82a994p-13f, 0x1.f8a092p-13f, 0x1.374bc8p-12f, 0x1.724744p-12f, \
    0x1.ad42c6p-12f, 0x1.e83e44p-12f, 0x1.119ce2p-11f, 0x1.2f1aap-11f, \
    0x1.4c986p-11f, 0x1.6a162p-11f, 0x1.8793dep-11f, 0x1.a511ap-11f, \
    0x1.c28f5ep-11f, 0x1.e00d1cp-11f, 0x1.fd8adcp-11f, 0x1.2b020cp-10f, \
    0x1.74bc6ap-10f, 0x1.be76c8p-10f, 0x1.041894p-9f, 0x1.28f5c2p-9f, \
    0x1.4dd2fp-9f, 0x1.72b02p-9f, 0x1.978d4ep-9f, 0x1.bc6a8p-9f, \
    0x1.e147aep-9f, 0x1.03126ep-8f, 0x1.158104p-8f, 0x1.27ef9ep-8f, \
    0x1.3a5e34p-8f, 0x1.4cccccp-8f, 0x1.5f3b64p-8f, 0x1.71a9fap-8f, \
    0x1.841894p-8f, 0x1.96872ap-8f, 0x1.a8f5c2p-8f, 0x1.bb645cp-8f, \
    0x1.cdd2fp-8f, 0x1.e0418ap-8f, 0x1.f2b01ep-8f, 0x1.028f5cp-7f, \
    0x1.0bc6a8p-7f, 0x1.14fdf2p-7f, 0x1.1e354p-7f, 0x1.276c8ap-7f, \
    0x1.30a3d6p-7f, 0x1.39db24p-7f, 0x1.43126ep-7f, 0x1.5eb854p-7f, \
    0x1.8ccccep-7f, 0x1.bae146p-7f, 0x1.e8f5c4p-7f, 0x1.0b851ep-6f, \
    0x1.228f5ep-6f, 0x1.39999ap-6f, 0x1.50a3d6p-6f, 0x1.67ae16p-6f, \
    0x1.7eb852p-6f, 0x1.95c28ep-6f, 0x1.accccep-6f, 0x1.c3d70ep-6f, \
    0x1.dae146p-6f, 0x1.f1eb86p-6f, 0x1.047aep-5f, 0x1.1p-5f, \
    0x1.1b851ep-5f, 0x1.270a3ep-5f, 0x1.328f5ep-5f, 0x1.3e147ap-5f, \
    0x1.49999ap-5f, 0x1.551eb8p-5f, 0x1.60a3d6p-5f, 0x1.6c28f6p-5f, \
    0x1.77ae14p-5f, 0x1.833334p-5f, 0x1.8eb85p-5f, 0x1.9a3d7p-5f, \
    0x1.a5c28ep-5f, 0x1.b147aep-5f, 0x1.bccccep-5f, 0x1.c851eep-5f, \
    0x1.d3d70ep-5f, 0x1.df5c2ap-5f, 0x1.eae146p-5f, 0x1.f66666p-5f, \
    0x1.00f5c4p-4f, 0x1.06b854p-4f, 0x1.0c7ae2p-4f, 0x1.123d7p-4f, \
    0x1.18p-4f, 0x1.1dc29p-4f, 0x1.23852p-4f, 0x1.2947aep-4f, \
    0x1.2f0a3ep-4f, 0x1.34cccep-4f, 0x1.3a8f5ep-4f, 0x1.4051ecp-4f, \
    0x1.46147cp-4f, 0x1.4bd70ap-4f, 0x1.51999ap-4f, 0x1.575c2ap-4f, \
    0x1.5d1eb8p-4f, 0x1.62e148p-4f, 0x1.68a3d6p-4f, 0x1.6e6666p-4f, \
    0x1.7428f6p-4f, 0x1.79eb86p-4f, 0x1.7fae16p-4f, 0x1.8570a4p-4f, \
    0x1.8b3334p-4f, 0x1.90f5c4p-4f, 0x1.96b852p-4f, 0x1.a8p-4f, \
    0x1.c4ccccp-4f, 0x1.e1999ap-4f, 0x1.fe6666p-4f, 0x1.0d9998p-3f, \
    0x1.1cp-3f, 0x1.2a6668p-3f, 0x1.38ccccp-3f, 0x1.473334p-3f, \
    0x1.559998p-3f, 0x1.64p-3f, 0x1.726668p-3f, 0x1.80ccccp-3f, \
    0x1.8f3334p-3f, 0x1.9d9998p-3f, 0x1.acp-3f, 0x1.ba6668p-3f, \
    0x1.c8ccccp-3f, 0x1.d73334p-3f, 0x1.e59998p-3f, 0x1.f4p-3f, \
    0x1.013332p-2f, 0x1.086666p-2f, 0x1.0f999ap-2f, 0x1.16ccccp-2f, \
    0x1.1ep-2f, 0x1.253334p-2f, 0x1.2c6666p-2f, 0x1.339998p-2f, \
    0x1.3accccp-2f, 0x1.42p-2f, 0x1.493334p-2f, 0x1.506666p-2f, \
    0x1.579998p-2f, 0x1.5eccccp-2f, 0x1.66p-2f, 0x1.6d3334p-2f, \
    0x1.746666p-2f, 0x1.7b9998p-2f, 0x1.82ccccp-2f, 0x1.8ap-2f, \
    0x1.913334p-2f, 0x1.986666p-2f, 0x1.9f9998p-2f, 0x1.a6ccccp-2f, \
    0x1.aep-2f, 0x1.b53334p-2f, 0x1.bc6666p-2f, 0x1.c39998p-2f, \
    0x1.caccccp-2f, 0x1.d2p-2f, 0x1.d93334p-2f, 0x1.e06666p-2f, \
    0x1.e79998p-2f, 0x1.eeccccp-2f, 0x1.f6p-2f, 0x1.fd3332p-2f, \
    0x1.023334p-1f, 0x1.05ccccp-1f, 0x1.096666p-1f, 0x1.0dp-1f, \
    0x1.109998p-1f, 0x1.143334p-1f, 0x1.17ccccp-1f, 0x1.1b6668p-1f, \
    0x1.1fp-1f, 0x1.22999ap-1f, 0x1.263334p-1f, 0x1.29ccccp-1f, \
    0x1.2d6668p-1f, 0x1.31p-1f, 0x1.34999ap-1f, 0x1.383334p-1f, \
    0x1.3bccccp-1f, 0x1.3f6668p-1f, 0x1.43p-1f, 0x1.46999ap-1f, \
    0x1.4a3334p-1f, 0x1.4dccccp-1f, 0x1.516668p-1f, 0x1.55p-1f, \
    0x1.58999ap-1f, 0x1.5c3334p-1f, 0x1.5fccccp-1f, 0x1.636668p-1f, \
    0x1.67p-1f, 0x1.6a999ap-1f, 0x1.6e3334p-1f, 0x1.71ccccp-1f, \
    0x1.756668p-1f, 0x1.79p-1f, 0x1.7c999ap-1f, 0x1.803334p-1f, \
    0x1.83ccccp-1f, 0x1.876668p-1f, 0x1.8bp-1f, 0x1.8e9998p-1f, \
    0x1.923334p-1f, 0x1.95ccccp-1f, 0x1.996668p-1f, 0x1.9dp-1f, \
    0x1.a09998p-1f, 0x1.a43334p-1f, 0x1.a7ccccp-1f, 0x1.ab6668p-1f, \
    0x1.afp-1f, 0x1.b29998p-1f, 0x1.b63334p-1f, 0x1.b9ccccp-1f, \
    0x1.bd6668p-1f, 0x1.c1p-1f, 0x1.c49998p-1f, 0x1.c83334p-1f, \
    0x1.cbccccp-1f, 0x1.cf6668p-1f, 0x1.d3p-1f, 0x1.d69998p-1f, \
    0x1.da3334p-1f, 0x1.ddccccp-1f, 0x1.e16668p-1f, 0x1.e5p-1f, \
    0x1.e89998p-1f, 0x1.ec3334p-1f, 0x1.efccccp-1f, 0x1.f36668p-1f, \
    0x1.f7p-1f, 0x1.fa9998p-1f, 0x1.fe3334p-1f, 0x1.0p+0f \
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

/* ---- E2M1 (OCP FP4: 1 sign, 2 exponent, 1 mantissa bit, bias 1; MXFP4, NVFP4, ggml mxfp4) ---
 * Element values in code order; code 8 is -0.0. No Inf/NaN; max finite 6. Unlike bitsandbytes
 * "fp4" above, this is the OCP Microscaling element type. */
#define LOWBIT_E2M1_CODEBOOK_INIT { \
    0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f, \
    -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f \
  }
#define LOWBIT_E2M1_MAX 6.0f
#define LOWBIT_E2M1_SIGN_BIT 0x8
/* E8M0 (OCP shared scale): the byte e is 2^(e - 127); 0xFF is NaN. No sign, no mantissa. */
#define LOWBIT_E8M0_BIAS 127
#define LOWBIT_E8M0_NAN 0xFF
/* OCP MX v1.0 block: 32 elements share one E8M0 scale. */
#define LOWBIT_MX_BLOCK 32
/* NVFP4 (NVIDIA ModelOpt): 16 elements share one E4M3 scale; a float32 per-tensor scale s2. */
#define LOWBIT_NVFP4_BLOCK 16

/* ---- FP8 (OCP 8-bit floating point, v1.0) ---------------------------------------------------
 * E4M3 ("fn"): bias 7, no infinities, NaN = S.1111.111 (0x7F/0xFF), max finite 448 (0x7E).
 * E5M2: bias 15, IEEE-like: Inf 0x7C/0xFC, NaN 0x7D..0x7F, max finite 57344 (0x7B).
 * Conversion from float32 (lowbit's one rule, identical to cuda_fp8.h with __NV_SATFINITE):
 * round to nearest even; anything whose magnitude exceeds the max finite value, +-Inf included,
 * SATURATES to +-max for both E4M3 and E5M2; every NaN -> 0x7F (canonical, sign dropped). */
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
