// Strict JSON parsing of untrusted headers (duplicate keys, depth limit) and UTF-8 validation.
#include "io/json_util.h"

#include <set>
#include <vector>

#include "lowbit/status.h"

namespace lowbit {
namespace io {

bool IsValidUtf8(std::string_view s) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    unsigned cp;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;  // continuation byte, overlong 2-byte lead (C0/C1) or > U+10FFFF lead
    }
    if (n - i < len) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) return false;  // overlong
    if (cp >= 0xD800 && cp <= 0xDFFF) return false;                            // surrogate
    if (cp > 0x10FFFF) return false;
    i += len;
  }
  return true;
}

nlohmann::json ParseStrictJson(std::string_view text, int max_depth, const std::string& where) {
  using json = nlohmann::json;
  // nlohmann validates UTF-8 inside strings; check the whole text so the message is precise.
  if (!IsValidUtf8(text)) throw Error(Status::kCorruptData, where + ": not valid UTF-8");
  std::vector<std::set<std::string>> keys;  // one key set per open object
  std::string error;
  const json::parser_callback_t callback = [&](int depth, json::parse_event_t event,
                                               json& parsed) -> bool {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        // `depth` counts the containers already open around this one.
        if (depth >= max_depth) {
          throw Error(Status::kCorruptData, where + ": JSON nested deeper than " +
                                                std::to_string(max_depth) + " levels");
        }
        if (event == json::parse_event_t::object_start) keys.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (!keys.empty()) keys.pop_back();
        break;
      case json::parse_event_t::key:
        if (!keys.empty() && !keys.back().insert(parsed.get<std::string>()).second) {
          throw Error(Status::kCorruptData,
                      where + ": duplicate key " + parsed.dump());
        }
        break;
      default:
        break;
    }
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), callback, /*allow_exceptions=*/true);
  } catch (const json::exception& e) {
    throw Error(Status::kCorruptData, where + ": invalid JSON (" + e.what() + ")");
  }
}

}  // namespace io
}  // namespace lowbit
