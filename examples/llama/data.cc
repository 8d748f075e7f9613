// File helpers of the llama example (see data.h).
#include "examples/llama/data.h"

#include <fstream>
#include <iterator>

#include "lowbit/status.h"

namespace lowbit::llama {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  Require(static_cast<bool>(in), Status::kIoError, "cannot open '" + path + "'");
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Require(!in.bad(), Status::kIoError, "error reading '" + path + "'");
  return bytes;
}

std::vector<int32_t> ReadTokenStream(const std::string& path) {
  const std::string bytes = ReadFile(path);
  Require(bytes.size() % 2 == 0, Status::kCorruptData,
          path + ": odd byte count " + std::to_string(bytes.size()) + " for uint16 tokens");
  std::vector<int32_t> tokens(bytes.size() / 2);
  for (size_t i = 0; i < tokens.size(); ++i) {
    tokens[i] = static_cast<unsigned char>(bytes[2 * i]) |
                (static_cast<unsigned char>(bytes[2 * i + 1]) << 8);
  }
  return tokens;
}

std::vector<std::string> SplitDocuments(const std::string& text, const std::string& separator) {
  static constexpr const char* kSpace = " \t\r\n\v\f";
  std::vector<std::string> docs;
  size_t begin = 0;
  while (begin <= text.size()) {
    size_t end = text.find(separator, begin);
    if (end == std::string::npos) end = text.size();
    const std::string part = text.substr(begin, end - begin);
    const size_t first = part.find_first_not_of(kSpace);
    if (first != std::string::npos) {
      docs.push_back(part.substr(first, part.find_last_not_of(kSpace) - first + 1));
    }
    begin = end + separator.size();
  }
  return docs;
}

}  // namespace lowbit::llama
