// Status names, lowbit::Error, and the replaceable fatal handler.
#include "lowbit/status.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>

namespace lowbit {

const char* StatusName(Status status) noexcept {
  switch (status) {
    case Status::kOk: return "ok";
    case Status::kInvalidArgument: return "invalid_argument";
    case Status::kInvalidState: return "invalid_state";
    case Status::kUnsupportedFormat: return "unsupported_format";
    case Status::kUnsupportedBackend: return "unsupported_backend";
    case Status::kUnsupportedHardware: return "unsupported_hardware";
    case Status::kOutOfMemory: return "out_of_memory";
    case Status::kIoError: return "io_error";
    case Status::kCorruptData: return "corrupt_data";
    case Status::kBackendError: return "backend_error";
    case Status::kInternal: return "internal";
  }
  return "unknown";
}

Error::Error(Status status, const std::string& message)
    : std::runtime_error(std::string(StatusName(status)) + ": " + message),
      status_(status),
      message_(message) {}

namespace {
void DefaultFatalHandler(const char* file, int line, const char* message) {
  std::fprintf(stderr, "lowbit fatal error at %s:%d: %s\n", file, line, message);
  std::abort();
}
std::atomic<FatalHandler> g_fatal_handler{&DefaultFatalHandler};
}  // namespace

FatalHandler SetFatalHandler(FatalHandler handler) noexcept {
  return g_fatal_handler.exchange(handler ? handler : &DefaultFatalHandler);
}

void Fatal(const char* file, int line, const char* message) noexcept {
  g_fatal_handler.load()(file, line, message);
  std::abort();  // a handler must not return
}

}  // namespace lowbit
