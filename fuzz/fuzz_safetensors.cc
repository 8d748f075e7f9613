// libFuzzer target: the safetensors parser plus every checkpoint-layout loader (fuzz/harness.h).
#include <cstddef>
#include <cstdint>

#include "fuzz/harness.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  lowbit::fuzz::SafetensorsHarness(data, size);
  return 0;
}
