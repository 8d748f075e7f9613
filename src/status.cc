// Status names, lowbit::Error, and the internal-invariant failure path.
#include "lowbit/status.h"

#include <string>

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

void ThrowError(Status status, const char* message) { throw Error(status, message); }

void ThrowError(Status status, const std::string& message) { throw Error(status, message); }

void InvariantFailed(const char* file, int line, const char* message) {
  throw Error(Status::kInternal, std::string(file) + ":" + std::to_string(line) + ": " + message +
                                     " (a lowbit bug; please report it)");
}

}  // namespace lowbit
