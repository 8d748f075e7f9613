// tools/stream_quantize.h — quantizing and copying safetensors tensors with bounded memory.
#ifndef LOWBIT_TOOLS_STREAM_QUANTIZE_H_
#define LOWBIT_TOOLS_STREAM_QUANTIZE_H_

#include <cstdint>

#include "lowbit/context.h"
#include "lowbit/io/safetensors.h"
#include "lowbit/quantize.h"

namespace lowbit::cli {

// Converts elements [begin, end) of a (possibly unaligned) f32/f16/bf16 buffer to float32,
// through a bounded stack staging buffer.
void ConvertRange(const uint8_t* src, DType dtype, int64_t begin, int64_t end, float* dst);

// Quantizes tensor `info` (f32/f16/bf16) of the memory-mapped `file` to `format`.
//
// The tensor is cut into chunks of whole statistic groups (flat blocks for nf4/fp4/blockwise8,
// whole rows for per-row and per-group formats, ~4 MiB of float32 each); every chunk is converted
// to float32, quantized, and written straight into the result, and its source pages are released
// from the mapping (madvise), so peak memory is the result plus one chunk per thread instead of a
// float32 copy of the whole tensor. Chunks run in parallel on `ctx`. The bytes equal those of one
// Quantize call on the whole tensor, because no statistic spans a chunk boundary. Double
// quantization and per-tensor scales need the whole tensor: those fall back to one Quantize call.
// The result's state.dtype is the tensor's stored dtype. Throws lowbit::Error as Quantize.
QuantizedTensor QuantizeFromFile(const io::SafetensorsFile& file, const io::TensorInfo& info,
                                 Format format, const QuantizeOptions& options, Context& ctx);
// The same for a tensor whose `info.size` bytes (row-major, `info.dtype`, `info.shape`) start at
// `src` inside any read-only file mapping (a GGUF tensor; `info.offset` is ignored).
QuantizedTensor QuantizeFromMapping(const uint8_t* src, const io::TensorInfo& info, Format format,
                                    const QuantizeOptions& options, Context& ctx);

// Appends tensor `info` of `file` unchanged to `writer` in chunks of 16 MiB, releasing each
// chunk's source pages afterwards.
void CopyTensor(const io::SafetensorsFile& file, const io::TensorInfo& info,
                io::SafetensorsWriter& writer);
// The same for `info.size` bytes at `src` inside a read-only file mapping.
void CopyMappedTensor(const uint8_t* src, const io::TensorInfo& info, io::SafetensorsWriter& writer);

// Tells the kernel the mapped bytes [data, data + bytes) are no longer needed (rounded out to
// pages). Safe for the read-only private file mappings of SafetensorsFile::Open: untouched
// private pages are re-read from the file if accessed again.
void ReleaseMappedPages(const void* data, uint64_t bytes);

}  // namespace lowbit::cli

#endif  // LOWBIT_TOOLS_STREAM_QUANTIZE_H_
