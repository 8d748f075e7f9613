// AMX tile GEMMs: int8 for the int8-activation path, bf16 for MatmulOptions::bf16_compute
// (internal to the CPU backend; matmul_amx.cc).
#ifndef LOWBIT_KERNELS_CPU_MATMUL_AMX_H_
#define LOWBIT_KERNELS_CPU_MATMUL_AMX_H_

#include <cstdint>

#include "kernels/cpu/cpu_kernels.h"

namespace lowbit::cpu {

// Activation rows from which the int8-activation GEMM uses AMX: one A tile holds 16 rows, and
// below that the AVX-512 VNNI kernel wastes less.
inline constexpr int64_t kAmxMinRows = 16;
// Weight rows per AMX block (two B tiles of 16 columns); ParallelFor tasks of the AMX path are
// multiples of it so that no block is split.
inline constexpr int64_t kAmxBlockRows = 32;
// Activation rows per AMX block (two A tiles). Int8ActProblem::q must hold
// AmxActivationRows(m) rows (zero past m) plus kAmxSlackBytes, since tiles load whole rows.
inline constexpr int64_t kAmxBlockM = 32;
inline constexpr int64_t kAmxSlackBytes = 64;
inline constexpr int64_t AmxActivationRows(int64_t m) {
  return (m + kAmxBlockM - 1) / kAmxBlockM * kAmxBlockM;
}

// True when the int8-activation GEMM should use AMX: the CPU has AMX-TILE and AMX-INT8, Linux
// granted the tile state (arch_prctl ARCH_REQ_XCOMP_PERM, asked once per process), the
// dispatched Highway target is AVX3_DL (so tests that force another target test that one), and
// SetAmxDisabledForTest is off. Thread-safe.
bool AmxInt8Usable();

// While true, AmxInt8Usable() is false (tests run the AVX-512 VNNI kernel on an AMX machine).
// Set only while no matmul runs.
void SetAmxDisabledForTest(bool disabled);

// Rows [n_begin, n_end) of y for every m with AMX tiles (TDPBSSD): the exact per-segment int32
// dot products of GemmInt8Act and its float64 epilogue, so the result is bit-identical to it.
// n_begin must be a multiple of kAmxBlockRows; needs AmxInt8Usable(). Runs on the calling
// thread; configures and releases the thread's tiles.
void GemmInt8ActAmx(const Int8ActProblem& p, int64_t n_begin, int64_t n_end);

// True when MatmulOptions::bf16_compute may use AMX-BF16 tiles: as AmxInt8Usable(), with the
// AMX-BF16 and AVX512-BF16 CPUID bits instead of AMX-INT8. Thread-safe.
bool AmxBf16Usable();

// Rounds rows of x ([m, k_pad] float32) to bfloat16 (round to nearest even) into xb, which holds
// AmxActivationRows(m) rows of k_pad (zero past m) plus kAmxSlackBytes. Calling thread.
void ActivationsToBf16Amx(const float* x, int64_t m, int64_t k_pad, uint16_t* xb);

// Rows [n_begin, n_end) of y for every m with AMX-BF16 tiles (TDPBF16PS): y = bf16(x) .
// bf16(dequantized W)^T summed in float32. p.x is ignored; xb is ActivationsToBf16Amx's output.
// n_begin must be a multiple of kAmxBlockRows; needs AmxBf16Usable(). Calling thread.
void GemmBf16Amx(const GemmProblem& p, const uint16_t* xb, int64_t n_begin, int64_t n_end);

}  // namespace lowbit::cpu

#endif  // LOWBIT_KERNELS_CPU_MATMUL_AMX_H_
