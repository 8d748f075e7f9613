// libFuzzer target: the bitsandbytes quant_state JSON reader (parse -> format -> parse must agree).
#include <cstddef>
#include <cstdint>

#include "fuzz/harness.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  lowbit::fuzz::QuantStateJsonHarness(data, size);
  return 0;
}
