// An engine's view of lowbit's codecs: compiled with only include/ on the path and linked to
// nothing of lowbit, it decodes lowbit-quantized payloads (codec_fixture.bin, written by
// codec_fixture_writer) with the header-only codecs and must reproduce lowbit's dequantization
// bit for bit. Usage: header_only_consumer_test FIXTURE.
#include <cstdio>
#include <cstring>
#include <vector>

#include "lowbit/codecs/codecs.h"

namespace {

template <class T>
bool Get(std::FILE* f, T* v) {
  return std::fread(v, sizeof(T), 1, f) == 1;
}
template <class T>
bool GetVector(std::FILE* f, std::vector<T>* v) {
  uint64_t n = 0;
  if (!Get(f, &n) || n > (uint64_t{1} << 24)) return false;
  v->resize(static_cast<size_t>(n));
  return v->empty() || std::fread(v->data(), sizeof(T), v->size(), f) == v->size();
}

// What an engine's kernel would do: element i's statistic from the geometry, its code from
// the packing rule, its value from the codec.
template <class C>
void DecodeAll(lowbit::Granularity g, int64_t cols, int64_t block, float tensor_scale,
               const std::vector<float>& scales, const std::vector<uint8_t>& zeros,
               const std::vector<float>& codebook, const std::vector<uint8_t>& payload,
               int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const int64_t s = lowbit::StatisticIndex(g, cols, block, i);
    lowbit::BlockStatistic stat;
    stat.scale = scales[static_cast<size_t>(s)];
    if (!zeros.empty()) stat.zero = zeros[static_cast<size_t>(s)];
    const uint8_t code = C::kCodeBits == 4 ? lowbit::GetNibble(payload.data(), i) : payload[i];
    out[i] = C::Decode(code, codebook.data(), stat, tensor_scale);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  std::FILE* f = std::fopen(argv[1], "rb");
  if (f == nullptr) {
    std::perror(argv[1]);
    return 1;
  }
  int records = 0, failures = 0;
  uint8_t format_byte = 0;
  while (Get(f, &format_byte)) {
    uint8_t granularity = 0;
    int64_t rows = 0, cols = 0, block = 0;
    float tensor_scale = 0;
    std::vector<float> scales, codebook;
    std::vector<uint8_t> zeros, payload;
    if (!Get(f, &granularity) || !Get(f, &rows) || !Get(f, &cols) || !Get(f, &block) ||
        !Get(f, &tensor_scale) || !GetVector(f, &scales) || !GetVector(f, &zeros) ||
        !GetVector(f, &codebook) || !GetVector(f, &payload)) {
      std::fprintf(stderr, "truncated record %d\n", records);
      return 1;
    }
    const int64_t n = rows * cols;
    std::vector<float> expected(static_cast<size_t>(n)), got(static_cast<size_t>(n));
    if (std::fread(expected.data(), sizeof(float), expected.size(), f) != expected.size()) return 1;
    const auto format = static_cast<lowbit::Format>(format_byte);
    const char* name = "unknown";
    const bool known = lowbit::TryVisitFormat(format, [&](auto codec) {
      using C = decltype(codec);
      name = C::kName;
      if constexpr (C::kScaleKind != lowbit::ScaleKind::kNone) DecodeAll<C>(static_cast<lowbit::Granularity>(granularity), cols, block, tensor_scale,
                   scales, zeros, codebook, payload, n, got.data());
    });
    const bool same = known && std::memcmp(got.data(), expected.data(), n * sizeof(float)) == 0;
    std::printf("%-12s %s\n", name, same ? "ok" : "MISMATCH");
    ++records;
    failures += same ? 0 : 1;
  }
  std::fclose(f);
  std::printf("%d records, %d mismatches\n", records, failures);
  return (records > 0 && failures == 0) ? 0 : 1;
}
