// tools/stream_quantize.cc — chunked, parallel quantization of memory-mapped tensors.
#include "stream_quantize.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "lowbit/format.h"
#include "lowbit/status.h"

namespace lowbit::cli {
namespace {

// ~4 MiB of float32 per chunk: large enough that per-chunk overhead vanishes, small enough that
// threads x chunk stays far below any tensor worth streaming.
constexpr int64_t kChunkElements = int64_t{1} << 20;
constexpr uint64_t kCopyChunkBytes = uint64_t{16} << 20;

}  // namespace

void ConvertRange(const uint8_t* src, DType dtype, int64_t begin, int64_t end, float* dst) {
  const size_t esize = DTypeSize(dtype);
  // Bounded staging buffer: the source may be unaligned, so copy bytes before reinterpreting.
  constexpr int64_t kStage = 4096;
  alignas(8) uint8_t stage[kStage * 4];
  for (int64_t i = begin; i < end; i += kStage) {
    const int64_t len = std::min(kStage, end - i);
    std::memcpy(stage, src + static_cast<size_t>(i) * esize, static_cast<size_t>(len) * esize);
    ToF32(stage, dtype, len, dst + (i - begin));
  }
}

void ReleaseMappedPages(const void* data, uint64_t bytes) {
  if (bytes == 0) return;
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t begin = reinterpret_cast<uintptr_t>(data) & ~(page - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + bytes + page - 1) & ~(page - 1);
  // Advisory only: failure just leaves the pages resident.
  (void)::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

QuantizedTensor QuantizeFromFile(const io::SafetensorsFile& file, const io::TensorInfo& info,
                                 Format format, const QuantizeOptions& options, Context& ctx) {
  return QuantizeFromMapping(file.data(info), info, format, options, ctx);
}

QuantizedTensor QuantizeFromMapping(const uint8_t* src, const io::TensorInfo& info, Format format,
                                    const QuantizeOptions& options, Context& ctx) {
  Require(IsFloatActivation(info.dtype), Status::kInvalidArgument,
          "tensor '" + info.name + "' has dtype " + DTypeName(info.dtype) +
              "; only f32, f16 and bf16 tensors can be quantized");
  const int64_t n = info.num_elements();
  Require(n > 0 && !info.shape.empty(), Status::kInvalidArgument,
          "tensor '" + info.name + "' is empty or a scalar");
  const FormatInfo& fi = GetFormatInfo(format);
  const Granularity granularity =
      options.granularity == Granularity::kDefault ? fi.default_granularity : options.granularity;
  const int64_t cols = info.shape.back();

  // Statistics that depend on the whole tensor (double quantization, a tensor scale, one
  // statistic) need it all at once.
  if (options.double_quant || granularity == Granularity::kTensor || fi.has_tensor_scale) {
    std::vector<float> x(static_cast<size_t>(n));
    ConvertRange(src, info.dtype, 0, n, x.data());
    ReleaseMappedPages(src, info.size);
    QuantizedTensor q = Quantize(format, ConstTensorView{x.data(), DType::kF32, info.shape}, options);
    q.state.dtype = info.dtype;
    return q;
  }

  // Chunks hold whole statistic groups and, for 4-bit formats, an even element count (two
  // elements per byte), so chunk results concatenate into the whole-tensor result.
  int64_t unit = 1;
  if (granularity == Granularity::kBlock) {
    unit = options.block_size > 0 ? options.block_size : fi.default_block;
  } else if (granularity == Granularity::kRow || granularity == Granularity::kGroup) {
    unit = cols;
  }
  if (IsFourBit(format) && unit % 2 != 0) unit *= 2;
  const int64_t chunk = std::max<int64_t>(unit, kChunkElements / unit * unit);
  const int64_t num_chunks = (n + chunk - 1) / chunk;

  QuantizedTensor out;
  out.state.format = format;
  out.state.shape = info.shape;
  out.state.dtype = info.dtype;
  out.data.resize(static_cast<size_t>(PayloadBytes(format, n)));

  // Every chunk writes into disjoint ranges of `out`.
  auto run_chunk = [&](int64_t c) {
    const int64_t begin = c * chunk;
    const int64_t end = std::min(n, begin + chunk);
    std::vector<float> x(static_cast<size_t>(end - begin));
    ConvertRange(src, info.dtype, begin, end, x.data());
    const Shape shape = (granularity == Granularity::kRow || granularity == Granularity::kGroup)
                            ? Shape{(end - begin) / cols, cols}
                            : Shape{end - begin};
    QuantizedTensor part = Quantize(format, ConstTensorView{x.data(), DType::kF32, shape}, options);
    const size_t data_at = static_cast<size_t>(PayloadBytes(format, begin));
    std::memcpy(out.data.data() + data_at, part.data.data(), part.data.size());
    const size_t scale_at = static_cast<size_t>(out.state.ScaleIndex(begin));  // begin starts a statistic
    std::copy(part.state.scales.begin(), part.state.scales.end(), out.state.scales.begin() + scale_at);
    std::copy(part.state.zero_points.begin(), part.state.zero_points.end(),
              out.state.zero_points.begin() + scale_at);
    ReleaseMappedPages(src + static_cast<size_t>(begin) * DTypeSize(info.dtype),
                       static_cast<uint64_t>(end - begin) * DTypeSize(info.dtype));
  };
  {
    // The resolved granularity, block size and codebook (and option errors, before any work)
    // come from quantizing the first row or block alone.
    const bool by_row = granularity == Granularity::kRow || granularity == Granularity::kGroup;
    const int64_t probe_len = by_row ? cols : std::min(n, unit);
    std::vector<float> probe(static_cast<size_t>(probe_len));
    ConvertRange(src, info.dtype, 0, probe_len, probe.data());
    const Shape shape = by_row ? Shape{1, cols} : Shape{probe_len};
    const QuantizedTensor p =
        Quantize(format, ConstTensorView{probe.data(), DType::kF32, shape}, options);
    out.state.granularity = p.state.granularity;
    out.state.block_size = p.state.block_size;
    out.state.codebook = p.state.codebook;
    out.state.scales.resize(static_cast<size_t>(out.state.num_scales()));
    if (fi.has_zero_point) out.state.zero_points.resize(out.state.scales.size());
  }
  ctx.ParallelFor(num_chunks, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) run_chunk(c);
  });
  ValidateQuantizedTensor(out, Status::kInternal);
  return out;
}

void CopyTensor(const io::SafetensorsFile& file, const io::TensorInfo& info,
                io::SafetensorsWriter& writer) {
  CopyMappedTensor(file.data(info), info, writer);
}

void CopyMappedTensor(const uint8_t* src, const io::TensorInfo& info, io::SafetensorsWriter& writer) {
  writer.BeginTensor(info.name, info.dtype, info.shape);
  for (uint64_t done = 0; done < info.size; done += kCopyChunkBytes) {
    const uint64_t len = std::min(kCopyChunkBytes, info.size - done);
    writer.WriteChunk(src + done, static_cast<size_t>(len));
    ReleaseMappedPages(src + done, len);
  }
  writer.EndTensor();
}

}  // namespace lowbit::cli
