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

}  // namespace fuzz
}  // namespace lowbit

#endif  // LOWBIT_FUZZ_HARNESS_H_
