// lowbit/codecs/geometry.h — which statistic each element of a tensor uses: the one copy of the
// statistic index arithmetic (counts, index of element i, element range of statistic g).
//
// Header-only and constexpr: usable by an engine's own kernels without linking lowbit.
// A tensor of shape [..., cols] is viewed as rows x cols (rows = product of the leading dims).
#ifndef LOWBIT_CODECS_GEOMETRY_H_
#define LOWBIT_CODECS_GEOMETRY_H_

#include <cstdint>

#include "lowbit/format_types.h"

namespace lowbit {

// ceil(a / b) for a >= 0, b > 0 (no overflow near INT64_MAX).
constexpr int64_t CeilDiv(int64_t a, int64_t b) { return a / b + (a % b != 0); }

// Statistics per row of a kGroup tensor: ceil(cols / group).
constexpr int64_t GroupsPerRow(int64_t cols, int64_t group) { return CeilDiv(cols, group); }

// Number of statistics of a rows x cols tensor; `block` is the block / group size for
// kBlock / kGroup (0 gives 0 statistics) and ignored otherwise. kNone / kDefault: 0.
constexpr int64_t NumStatistics(Granularity g, int64_t rows, int64_t cols, int64_t block) {
  switch (g) {
    case Granularity::kBlock: return block > 0 ? CeilDiv(rows * cols, block) : 0;
    case Granularity::kGroup: return block > 0 ? rows * GroupsPerRow(cols, block) : 0;
    case Granularity::kRow: return rows;
    case Granularity::kTensor: return 1;
    default: return 0;
  }
}

// Index of the statistic of flat element i (row-major) of a tensor with `cols` columns.
constexpr int64_t StatisticIndex(Granularity g, int64_t cols, int64_t block, int64_t i) {
  switch (g) {
    case Granularity::kBlock: return i / block;
    case Granularity::kGroup: return (i / cols) * GroupsPerRow(cols, block) + (i % cols) / block;
    case Granularity::kRow: return i / cols;
    default: return 0;
  }
}

// Flat element range [begin, end) of statistic `index`; statistics cover the tensor in order.
struct ElementRange {
  int64_t begin;
  int64_t end;
};
constexpr ElementRange StatisticRange(Granularity g, int64_t rows, int64_t cols, int64_t block,
                                      int64_t index) {
  switch (g) {
    case Granularity::kBlock: {
      const int64_t begin = index * block;
      const int64_t n = rows * cols;
      return {begin, begin + block < n ? begin + block : n};
    }
    case Granularity::kGroup: {
      const int64_t per_row = GroupsPerRow(cols, block);
      const int64_t r = index / per_row, g0 = (index % per_row) * block;
      return {r * cols + g0, r * cols + (g0 + block < cols ? g0 + block : cols)};
    }
    case Granularity::kRow: return {index * cols, (index + 1) * cols};
    case Granularity::kTensor: return {0, rows * cols};
    default: return {0, 0};
  }
}

}  // namespace lowbit

#endif  // LOWBIT_CODECS_GEOMETRY_H_
