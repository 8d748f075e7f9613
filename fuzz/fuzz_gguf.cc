// libFuzzer target: the GGUF parser, ggml block decoders and GGUF -> lowbit conversion
// (fuzz/harness.h).
#include <cstddef>
#include <cstdint>

#include "fuzz/harness.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  lowbit::fuzz::GgufHarness(data, size);
  return 0;
}
