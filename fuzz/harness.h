// Fuzz harnesses shared by the libFuzzer targets and the deterministic replay tests.
//
// Each harness feeds untrusted bytes to a lowbit reader and touches everything it returns. The
// only acceptable failure is lowbit::Error; any other exception escapes to the caller (the test
// fails, libFuzzer reports a crash), and memory errors are caught by the sanitizers.
#ifndef LOWBIT_FUZZ_HARNESS_H_
#define LOWBIT_FUZZ_HARNESS_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <random>
#include <string_view>
#include <vector>

#include "lowbit/io/checkpoint.h"
#include "lowbit/io/gguf.h"
#include "lowbit/io/safetensors.h"
#include "lowbit/quantize.h"

namespace lowbit {
namespace fuzz {

// Outcome of one input, so replay tests can count accepted vs rejected inputs.
enum class Outcome { kAccepted, kRejected };

// Parses a safetensors image, reads every byte of every tensor, lists the modules and loads and
// dequantizes each quantized one.
inline Outcome SafetensorsHarness(const uint8_t* data, size_t size) {
  try {
    const io::SafetensorsFile file = io::SafetensorsFile::FromMemory(data, size);
    volatile uint8_t sink = 0;
    for (const io::TensorInfo& t : file.tensors()) {
      const uint8_t* p = file.data(t);
      for (uint64_t i = 0; i < t.size; ++i) sink = sink ^ p[i];
    }
    for (const auto& kv : file.metadata()) sink = sink ^ static_cast<uint8_t>(kv.second.size());
    for (const io::CheckpointEntry& e : io::ListQuantizedModules(file)) {
      if (e.layout == io::TensorLayout::kDense) continue;
      const QuantizedTensor q = io::LoadQuantizedTensor(file, e.prefix);
      // Bound the work per input: dequantize only small tensors.
      if (q.state.num_elements() <= (1 << 16)) {
        const std::vector<float> x = DequantizeToF32(q);
        if (!x.empty()) sink = sink ^ static_cast<uint8_t>(x[0] != 0.0f);
      }
    }
    return Outcome::kAccepted;
  } catch (const Error&) {
    return Outcome::kRejected;
  }
}

// Parses a bitsandbytes quant_state JSON; accepted states must re-serialize and re-parse equal.
inline Outcome QuantStateJsonHarness(const uint8_t* data, size_t size) {
  io::BnbQuantStateJson s;
  try {
    s = io::ParseBnbQuantStateJson(
        std::string_view(reinterpret_cast<const char*>(data), size));
  } catch (const Error&) {
    return Outcome::kRejected;
  }
  const io::BnbQuantStateJson again = io::ParseBnbQuantStateJson(io::FormatBnbQuantStateJson(s));
  if (again.quant_type != s.quant_type || again.blocksize != s.blocksize ||
      again.dtype != s.dtype || again.shape != s.shape || again.nested != s.nested ||
      again.nested_blocksize != s.nested_blocksize ||
      !(again.nested_offset == s.nested_offset)) {
    __builtin_trap();  // the writer and reader disagree: a real bug
  }
  return Outcome::kAccepted;
}


// One random structural edit of a file image (for deterministic replay without libFuzzer): bit
// flips, interesting bytes, truncation, extension, header-length edits, chunk deletion /
// duplication, digit edits inside the JSON header.
inline void Mutate(std::vector<uint8_t>& b, std::mt19937_64& rng) {
  auto pick = [&](size_t n) { return n == 0 ? size_t{0} : static_cast<size_t>(rng() % n); };
  static const uint8_t kInteresting[] = {0, 1, 0x7F, 0x80, 0xFF, '"', '{', '}', '[', ']',
                                         ',', ':', '-', '9', 'e', '.', ' ', 0xC0, 0xED};
  switch (rng() % 9) {
    case 0:  // bit flip
      if (!b.empty()) b[pick(b.size())] ^= static_cast<uint8_t>(1u << (rng() % 8));
      break;
    case 1:  // interesting byte
      if (!b.empty()) b[pick(b.size())] = kInteresting[pick(sizeof(kInteresting))];
      break;
    case 2:  // truncate
      b.resize(pick(b.size() + 1));
      break;
    case 3:  // extend with random bytes
      for (size_t i = 0, n = 1 + pick(16); i < n; ++i) b.push_back(static_cast<uint8_t>(rng()));
      break;
    case 4: {  // header length field: small delta or a random / huge value
      if (b.size() < 8) break;
      uint64_t n = 0;
      for (int i = 7; i >= 0; --i) n = (n << 8) | b[static_cast<size_t>(i)];
      const uint64_t r = rng();
      n = (r % 3 == 0) ? n + (rng() % 17) - 8 : (r % 3 == 1) ? rng() : (rng() % (b.size() + 16));
      for (int i = 0; i < 8; ++i) b[static_cast<size_t>(i)] = static_cast<uint8_t>(n >> (8 * i));
      break;
    }
    case 5: {  // delete a chunk
      if (b.empty()) break;
      const size_t at = pick(b.size());
      const size_t len = 1 + pick(std::min<size_t>(32, b.size() - at));
      b.erase(b.begin() + static_cast<std::ptrdiff_t>(at),
              b.begin() + static_cast<std::ptrdiff_t>(at + len));
      break;
    }
    case 6: {  // duplicate a chunk
      if (b.empty()) break;
      const size_t at = pick(b.size());
      const size_t len = 1 + pick(std::min<size_t>(32, b.size() - at));
      std::vector<uint8_t> chunk(b.begin() + static_cast<std::ptrdiff_t>(at),
                                 b.begin() + static_cast<std::ptrdiff_t>(at + len));
      b.insert(b.begin() + static_cast<std::ptrdiff_t>(pick(b.size() + 1)), chunk.begin(),
               chunk.end());
      break;
    }
    default: {  // edit a digit in the header (shapes, offsets, block sizes)
      std::vector<size_t> digits;
      for (size_t i = 8; i < b.size() && i < 8 + 4096; ++i) {
        if (b[i] >= '0' && b[i] <= '9') digits.push_back(i);
      }
      if (digits.empty()) break;
      const size_t at = digits[pick(digits.size())];
      b[at] = static_cast<uint8_t>('0' + rng() % 10);
      break;
    }
  }
}

// Accepted / rejected counts of a replay.
struct ReplayCounts {
  int accepted = 0;
  int rejected = 0;
};

// Deterministic mutation replay through SafetensorsHarness: input i is seeds[i % seeds.size()]
// with 1..max_edits Mutate() edits, all drawn from `rng` (advanced). seeds non-empty.
inline ReplayCounts ReplaySafetensorsMutations(const std::vector<std::vector<uint8_t>>& seeds,
                                               std::mt19937_64& rng, int mutations,
                                               int max_edits) {
  ReplayCounts c;
  for (int i = 0; i < mutations; ++i) {
    std::vector<uint8_t> b = seeds[static_cast<size_t>(i) % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % static_cast<uint64_t>(max_edits));
    for (int k = 0; k < edits; ++k) Mutate(b, rng);
    (SafetensorsHarness(b.data(), b.size()) == Outcome::kAccepted ? c.accepted : c.rejected)++;
  }
  return c;
}

// Parses a GGUF image, prints every metadata value, reads every byte of every tensor, and
// dequantizes and loads (nearest lowbit format) every small tensor of a decodable type.
inline Outcome GgufHarness(const uint8_t* data, size_t size) {
  try {
    const io::GgufFile file = io::GgufFile::FromMemory(data, size);
    volatile uint8_t sink = 0;
    for (const io::GgufKeyValue& kv : file.metadata()) {
      sink = sink ^ static_cast<uint8_t>(kv.value.ToString().size());
    }
    for (const io::GgufTensorInfo& t : file.tensors()) {
      const uint8_t* p = file.data(t);
      for (uint64_t i = 0; i < t.size; ++i) sink = sink ^ p[i];
      // Bound the work per input: decode only small tensors.
      if (t.num_elements() == 0 || t.num_elements() > (1 << 16)) continue;
      try {
        const std::vector<float> x = file.DequantizeToF32(t);
        sink = sink ^ static_cast<uint8_t>(x[0] != 0.0f);
        const QuantizedTensor q = io::LoadGgufTensor(file, t);
        const std::vector<float> y = DequantizeToF32(q);
        sink = sink ^ static_cast<uint8_t>(y[0] != 0.0f);
      } catch (const Error& e) {
        // A valid file may hold types lowbit cannot decode or values it cannot requantize.
        if (e.status() != Status::kUnsupportedFormat && e.status() != Status::kCorruptData) throw;
      }
    }
    return Outcome::kAccepted;
  } catch (const Error&) {
    return Outcome::kRejected;
  }
}

// One random edit of a GGUF image: bit flips, interesting bytes, truncation, extension, chunk
// deletion / duplication, and overwriting a 32- or 64-bit field with a boundary value (counts,
// lengths, types, dimensions and offsets are all such fields).
inline void MutateGguf(std::vector<uint8_t>& b, std::mt19937_64& rng) {
  auto pick = [&](size_t n) { return n == 0 ? size_t{0} : static_cast<size_t>(rng() % n); };
  static const uint64_t kBoundary[] = {0, 1, 2, 3, 4, 5, 7, 8, 9, 12, 13, 31, 32, 33, 63, 64, 65,
                                       255, 256, 0x7FFFFFFFu, 0x80000000u, 0xFFFFFFFFu,
                                       uint64_t{1} << 32, uint64_t{1} << 62, uint64_t{1} << 63,
                                       ~uint64_t{0}};
  const uint64_t r = rng() % 10;
  if (r < 6) {
    Mutate(b, rng);  // the generic edits (its header-length and digit edits are harmless here)
    return;
  }
  if (b.size() < 8) return;
  const size_t width = (r % 2 == 0) ? 4 : 8;
  const size_t at = pick(b.size() - width + 1);
  uint64_t v = kBoundary[pick(sizeof(kBoundary) / sizeof(kBoundary[0]))];
  if (r == 9) {  // small relative edit of the existing field
    uint64_t old = 0;
    for (size_t i = width; i-- > 0;) old = (old << 8) | b[at + i];
    v = old + (rng() % 17) - 8;
  }
  for (size_t i = 0; i < width; ++i) b[at + i] = static_cast<uint8_t>(v >> (8 * i));
}

// Deterministic mutation replay through GgufHarness, as ReplaySafetensorsMutations.
inline ReplayCounts ReplayGgufMutations(const std::vector<std::vector<uint8_t>>& seeds,
                                        std::mt19937_64& rng, int mutations, int max_edits) {
  ReplayCounts c;
  for (int i = 0; i < mutations; ++i) {
    std::vector<uint8_t> b = seeds[static_cast<size_t>(i) % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % static_cast<uint64_t>(max_edits));
    for (int k = 0; k < edits; ++k) MutateGguf(b, rng);
    (GgufHarness(b.data(), b.size()) == Outcome::kAccepted ? c.accepted : c.rejected)++;
  }
  return c;
}

}  // namespace fuzz
}  // namespace lowbit

#endif  // LOWBIT_FUZZ_HARNESS_H_
