// lowbit/status.h — status codes and the lowbit::Error exception every public C++ entry throws.
#ifndef LOWBIT_STATUS_H_
#define LOWBIT_STATUS_H_

#include <stdexcept>
#include <string>
#include <type_traits>

// Branch hints for the validation helpers below (no-ops on compilers without them).
#if defined(__GNUC__) || defined(__clang__)
#define LOWBIT_PREDICT_FALSE(x) (__builtin_expect(!!(x), 0))
#define LOWBIT_COLD_NOINLINE __attribute__((cold, noinline))
#else
#define LOWBIT_PREDICT_FALSE(x) (x)
#define LOWBIT_COLD_NOINLINE
#endif

namespace lowbit {

// Frozen numbering: these values are part of the C ABI (lowbit_status in lowbit_c.h, checked by a
// static_assert in capi/). Append only.
enum class Status : int {
  kOk = 0,
  kInvalidArgument = 1,    // a caller-supplied value is out of range or inconsistent
  kInvalidState = 2,       // the object is not in a state that allows the call
  kUnsupportedFormat = 3,  // the format (or format/dtype pair) is not supported here
  kUnsupportedBackend = 4, // the backend was not built or is unknown
  kUnsupportedHardware = 5,// the backend exists but this machine lacks what it needs
  kOutOfMemory = 6,
  kIoError = 7,            // the OS refused a file operation
  kCorruptData = 8,        // a file or serialized state is malformed or hostile
  kBackendError = 9,       // a device runtime reported an error
  kInternal = 10,          // a lowbit bug: an internal invariant broke
};

// Stable lowercase name of a status ("invalid_argument"); "unknown" for out-of-range values.
const char* StatusName(Status status) noexcept;

// The exception thrown by every public C++ entry for anything a caller can cause. what() is
// "<status name>: <message>"; message() is the message alone, naming the offending value.
class Error : public std::runtime_error {
 public:
  Error(Status status, const std::string& message);
  Status status() const noexcept { return status_; }
  const std::string& message() const noexcept { return message_; }

 private:
  Status status_;
  std::string message_;
};

// Throws Error(status, message). Out of line and marked cold so that the checks below compile to
// a predicted-not-taken branch and the message is never built on the success path.
[[noreturn]] void ThrowError(Status status, const char* message);
[[noreturn]] void ThrowError(Status status, const std::string& message);

namespace internal {
// Builds the message (make_message()) and throws; cold and never inlined into the caller.
template <class MakeMessage>
[[noreturn]] LOWBIT_COLD_NOINLINE void ThrowWithMessage(Status status,
                                                       const MakeMessage& make_message) {
  ThrowError(status, make_message());
}
}  // namespace internal

// Throws Error(status, message) when `condition` is false. Use for caller-caused failures only.
// Three spellings, by cost on the success path:
//   Require(ok, status, "literal")                       no allocation, nothing built
//   Require(ok, status, [&] { return "x " + ...; })      the lambda runs only on failure
//   Require(ok, status, std::string)                     the string is built by the caller on
//                                                        every call: keep it off hot paths
// Hot paths (everything reached from Matmul / Gemv / Gemm and the C ABI matmul entries) use the
// first two, so a successful call allocates nothing for validation.
inline void Require(bool condition, Status status, const char* message) {
  if (LOWBIT_PREDICT_FALSE(!condition)) ThrowError(status, message);
}
template <class MakeMessage,
          class = std::enable_if_t<std::is_invocable_v<const MakeMessage&>>>
inline void Require(bool condition, Status status, const MakeMessage& make_message) {
  if (LOWBIT_PREDICT_FALSE(!condition)) internal::ThrowWithMessage(status, make_message);
}
inline void Require(bool condition, Status status, const std::string& message) {
  if (LOWBIT_PREDICT_FALSE(!condition)) ThrowError(status, message);
}

// Called when an internal invariant breaks (a lowbit bug, never bad input): throws
// Error(kInternal) naming the file, line and condition. A library must not abort its host, and the
// C ABI turns this into LOWBIT_STATUS_INTERNAL like any other error.
[[noreturn]] void InvariantFailed(const char* file, int line, const char* message);

}  // namespace lowbit

#define LOWBIT_DCHECK_INVARIANT(cond) \
  do {                                \
    if (!(cond)) ::lowbit::InvariantFailed(__FILE__, __LINE__, "invariant failed: " #cond); \
  } while (0)

#endif  // LOWBIT_STATUS_H_
