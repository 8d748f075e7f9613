// Writes codec_fixture.bin for the header-only consumer test: lowbit-quantized tensors of every
// quantized format (payload, statistics, codebook, tensor scale) and lowbit's own dequantization.
//
// Record (little-endian): u8 format, u8 granularity, i64 rows, i64 cols, i64 block, f32
// tensor_scale, u64 nscales + f32[], u64 nzeros + u8[], u64 ncodebook + f32[], u64 payload
// bytes + u8[], then f32[rows * cols] expected values. Usage: codec_fixture_writer OUT.
#include <cstdio>
#include <random>
#include <vector>

#include "lowbit/format.h"
#include "lowbit/quantize.h"

namespace {

template <class T>
void Put(std::FILE* f, const T& v) {
  std::fwrite(&v, sizeof(T), 1, f);
}
template <class T>
void PutVector(std::FILE* f, const std::vector<T>& v) {
  Put<uint64_t>(f, v.size());
  if (!v.empty()) std::fwrite(v.data(), sizeof(T), v.size(), f);  // an empty vector's data() may be null
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: codec_fixture_writer OUT\n");
    return 2;
  }
  std::FILE* f = std::fopen(argv[1], "wb");
  if (f == nullptr) {
    std::perror(argv[1]);
    return 1;
  }
  std::mt19937 rng(1234);
  std::normal_distribution<float> normal(0.0f, 0.5f);
  const int64_t rows = 5, cols = 200;  // odd group tails for every group size
  std::vector<float> x(static_cast<size_t>(rows * cols));
  for (float& v : x) v = normal(rng);
  for (int i = 0; i < lowbit::kNumFormats; ++i) {
    const auto format = static_cast<lowbit::Format>(i);
    if (lowbit::IsDense(format)) continue;
    lowbit::QuantizeOptions o;
    o.double_quant = lowbit::GetFormatInfo(format).supports_double_quant;
    if (format == lowbit::Format::kBlockwise8) o.block_size = 256;
    lowbit::QuantizedTensor q =
        lowbit::Quantize(format, {x.data(), lowbit::DType::kF32, {rows, cols}}, o);
    const std::vector<float> expected = lowbit::DequantizeToF32(q);
    q.state.scales = lowbit::ResolveScales(q.state);  // the consumer sees plain statistics
    Put<uint8_t>(f, static_cast<uint8_t>(format));
    Put<uint8_t>(f, static_cast<uint8_t>(q.state.granularity));
    Put<int64_t>(f, rows);
    Put<int64_t>(f, cols);
    Put<int64_t>(f, q.state.block_size);
    Put<float>(f, q.state.tensor_scale);
    PutVector(f, q.state.scales);
    PutVector(f, q.state.zero_points);
    PutVector(f, q.state.codebook);
    PutVector(f, q.data);
    std::fwrite(expected.data(), sizeof(float), expected.size(), f);
  }
  return std::fclose(f) == 0 ? 0 : 1;
}
