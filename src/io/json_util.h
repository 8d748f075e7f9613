// Internal JSON helpers for lowbit's file readers: strict parsing of untrusted text, UTF-8 checks.
#ifndef LOWBIT_SRC_IO_JSON_UTIL_H_
#define LOWBIT_SRC_IO_JSON_UTIL_H_

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace lowbit {
namespace io {

// True when `s` is well-formed UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF).
bool IsValidUtf8(std::string_view s) noexcept;

// Parses untrusted JSON text. Throws Error(kCorruptData, "<where>: ...") for a syntax error,
// invalid UTF-8, a duplicate key in any object (nlohmann would silently keep the last one), or
// containers nested deeper than `max_depth` (1 = a flat object or array).
nlohmann::json ParseStrictJson(std::string_view text, int max_depth, const std::string& where);

}  // namespace io
}  // namespace lowbit

#endif  // LOWBIT_SRC_IO_JSON_UTIL_H_
