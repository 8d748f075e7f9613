// bench/mem_read.h — streaming DRAM read kernel used by BM_MemRead (the roofline for GEMV).
#ifndef LOWBIT_BENCH_MEM_READ_H_
#define LOWBIT_BENCH_MEM_READ_H_

#include <cstddef>
#include <cstdint>

namespace lowbit {
namespace bench {

// Reads `bytes` bytes at `data` (64-byte aligned; bytes a multiple of kMemReadGranule) as
// kMemReadStreams concurrent sequential streams with SIMD loads and independent accumulators,
// on the best Highway target of this CPU. Returns a checksum so the reads cannot be elided.
inline constexpr size_t kMemReadStreams = 8;
inline constexpr size_t kMemReadGranule = 8192;
uint64_t ReadStreams(const uint8_t* data, size_t bytes);

}  // namespace bench
}  // namespace lowbit

#endif  // LOWBIT_BENCH_MEM_READ_H_
