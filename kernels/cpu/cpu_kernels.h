// CPU backend internals: the execution layout of a packed weight and the per-ISA kernel entries.
//
// Internal header shared by cpu_backend.cc (packing, scheduling; no SIMD) and the Highway
// translation units (dequantize.cc, matmul_*.cc), each compiled for every target in HWY_TARGETS
// and dispatched once per call with HWY_DYNAMIC_DISPATCH. Layout description: README.md.
#ifndef LOWBIT_KERNELS_CPU_CPU_KERNELS_H_
#define LOWBIT_KERNELS_CPU_CPU_KERNELS_H_

#include <cstdint>
#include <vector>

#include "lowbit/quant_state.h"
#include "backend.h"

namespace lowbit::cpu {

// Elements per code chunk of a row. Rows are padded to a multiple of it, so kernels run without
// tails; 32 = two nibbles per byte over a 16-byte load, and a multiple of every vector length
// up to 512-bit float32 (16 lanes).
inline constexpr int64_t kChunk = 32;

// How a packed weight's codes decode to raw values v (w = (v - zero) * scale).
enum class CodeKind : uint8_t {
  kLut4 = 0,     // 4-bit, chunk = 16 bytes: byte j holds element j (low nibble) and element
                 // 16 + j (high nibble); v = lut[nibble]
  kInt8 = 1,     // int8 two's complement, one byte per element; v = code
  kUInt8 = 2,    // uint8, one byte per element; v = code
  kFP8E4M3 = 3,  // OCP E4M3 byte; v = decoded value (NaN codes -> NaN)
  kFP8E5M2 = 4,  // OCP E5M2 byte; v = decoded value (Inf/NaN codes -> Inf/NaN)
  kDense = 5,    // no codes: `dense` holds W as float32 [N, K] (fallback formats and shapes)
  kLut8 = 6,     // one byte per element; v = lut[code] (256 entries: blockwise8's dynamic map)
};

// The CPU execution layout. Codes of row n start at codes + n * row_bytes; elements K..k_pad-1
// hold codes that decode to finite values (their activations are zero-padded). Statistic
// s = n * groups_per_row + k / group applies to elements [k, k + group) of row n.
struct CpuPacked : BackendPacked {
  CodeKind kind = CodeKind::kDense;
  int64_t k_pad = 0;           // K rounded up to kChunk
  int64_t row_bytes = 0;       // k_pad / 2 (4-bit) or k_pad (8-bit)
  int64_t group = 0;           // elements per scale along a row: a multiple of kChunk
  int64_t groups_per_row = 0;  // ceil(k_pad / group)
  std::vector<uint8_t> codes;  // [N, row_bytes]
  std::vector<float> scales;   // [N, groups_per_row], nested statistics resolved
  std::vector<float> zeros;    // [N, groups_per_row] zero points as float; empty if symmetric
  float lut[256] = {};         // kLut4: value of each nibble (16 used); kLut8: of each byte
  // kLut4 with integer values lut[c] == c - lut_offset for every nibble c (int4: 8, int4_asym:
  // 0), so kernels may decode nibbles arithmetically; -1 for codebooks (nf4, fp4).
  int lut_offset = -1;
  bool fp8_finite = false;     // FP8 kinds: codes hold no Inf/NaN code (cheaper decode)
  std::vector<float> dense;    // kDense: [N, K]
  std::vector<uint8_t> canonical_data;  // kDense: the canonical payload (for Unpack); empty for
                                        // f32, whose payload is `dense`
  // For Unpack: the canonical state (statistics as stored, nested included) and, for an odd
  // element count of a 4-bit format, the canonical padding nibble.
  QuantState state;
  uint8_t pad_nibble = 0;
};

// Kernel arguments of one matmul call, shared read-only by all tasks.
struct GemmProblem {
  const CpuPacked* w = nullptr;
  int64_t m = 0;
  const float* x = nullptr;     // [m, k_pad] float32, zero-padded
  const float* xsum = nullptr;  // [m, groups_per_row] sums of x over each group (asymmetric
                                // weights only, else nullptr)
  float* y = nullptr;           // [m, N] float32 (no bias)
  // m == 1 and kLut4 only: x in the order the dispatched target's LUT4 GEMV reads it
  // (PermuteXForLut4Gemv), or nullptr (then GemmLut4 takes the generic kernel).
  const float* x_lut4 = nullptr;
};

// The LUT4 GEMV reads a row's codes one block of 8 vectors at a time. The lanes of the vectors
// hold elements of the block in an order its decoder fixes (matmul_lut4.cc); for decoders that
// read the block as 32-bit lanes of eight nibbles, vector j holds nibble j of every lane d, i.e.
// chunk byte b = 4d + j / 2 (chunk b / 16, byte b % 16), high nibble for odd j: element
// Lut4GemvElement(j, d) of the block.
inline constexpr int64_t Lut4GemvElement(int64_t j, int64_t d) {
  return ((4 * d + j / 2) / 16) * kChunk + (4 * d + j / 2) % 16 + (j & 1) * 16;
}
// Largest GEMV block of any target (AVX-512: 16 lanes x 8 nibbles); x_lut4 buffers hold
// RoundUp(k_pad, kMaxLut4GemvBlock) floats.
inline constexpr int64_t kMaxLut4GemvBlock = 128;
// Writes x ([k_pad] float32) into xp (RoundUp(k_pad, kMaxLut4GemvBlock) floats, zeros past
// k_pad) in the order the dispatched target's LUT4 GEMV reads it for weight w. Returns false,
// writing nothing, when that target has no LUT4 GEMV for w's group size. Per-ISA entry
// (matmul_lut4.cc).
bool PermuteXForLut4Gemv(const CpuPacked& w, const float* x, float* xp);

// Rows [n_begin, n_end) of y for every m. Results of a row never depend on the range it is
// computed in (bit-identical for any partition). Per-ISA entries, defined in matmul_*.cc.
void GemmLut4(const GemmProblem& p, int64_t n_begin, int64_t n_end);
void GemmByte(const GemmProblem& p, int64_t n_begin, int64_t n_end);  // kInt8, kUInt8, kLut8
void GemmFP8(const GemmProblem& p, int64_t n_begin, int64_t n_end);

// ---- int8-activation path (MatmulOptions::int8_activations; matmul_int8act.cc) ----------------
// Elements per exact int32 dot product of int8 weights: |sum| <= 8192 * 255 * 128 < 2^31 even
// with the unsigned offset of the VNNI operands. int4 weights use their group (<= 4096).
inline constexpr int64_t kInt8ActSegment = 8192;

// Arguments of one int8-activation matmul (int8 or int4 symmetric weights), read-only to tasks.
struct Int8ActProblem {
  const CpuPacked* w = nullptr;
  int64_t m = 0;
  int64_t segment = 0;       // elements per integer dot (w->group for int4, else kInt8ActSegment)
  int64_t num_segments = 0;  // ceil(k_pad / segment)
  const int8_t* q = nullptr;      // [m, k_pad] activation codes, zero-padded
  const int32_t* qsum = nullptr;  // [m, num_segments] sums of q over each segment
  const float* absmax = nullptr;  // [m] activation row absmax (NaN for a non-finite row)
  float* y = nullptr;             // [m, N] float32 (no bias)
};

// Quantizes m rows of x ([m, k_pad] float32, zero-padded) to int8 codes q, per-segment code sums
// and row absmax (rule: matmul_int8act.cc). Runs on the calling thread.
void QuantizeActivationsInt8(const float* x, int64_t m, int64_t k_pad, int64_t segment,
                             int8_t* q, int32_t* qsum, float* absmax);
// Rows [n_begin, n_end) of y for every m; bit-identical on every target and for any partition.
void GemmInt8Act(const Int8ActProblem& p, int64_t n_begin, int64_t n_end);

// The CPU entry of the dispatch table (cpu_backend.cc).
extern const Backend kBackend;

// Dequantizes a validated quantized (non-dense) canonical tensor to float32, bit-identical to
// the reference codec (dequantize.cc).
void Dequantize(const QuantizedTensor& q, float* out);

}  // namespace lowbit::cpu

#endif  // LOWBIT_KERNELS_CPU_CPU_KERNELS_H_
