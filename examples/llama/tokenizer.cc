// The llama2.c tokenizer: vocabulary loading, BPE encode by best-score merges, piece decode.
#include "examples/llama/tokenizer.h"

#include <cstring>

#include "examples/llama/data.h"
#include "lowbit/status.h"

namespace lowbit::llama {

Tokenizer::Tokenizer(const std::string& path, int32_t vocab_size) {
  Require(vocab_size > Tokenizer::kByteOffset + 255, Status::kInvalidArgument,
          "Tokenizer: vocab_size " + std::to_string(vocab_size) +
              " cannot hold the 3 special and 256 byte-fallback pieces");
  const std::string bytes = ReadFile(path);
  size_t pos = 0;
  auto take = [&](void* dst, size_t n) {
    Require(pos + n <= bytes.size(), Status::kCorruptData,
            path + ": truncated at byte " + std::to_string(pos));
    std::memcpy(dst, bytes.data() + pos, n);
    pos += n;
  };
  int32_t max_token_length = 0;
  take(&max_token_length, 4);
  pieces_.resize(static_cast<size_t>(vocab_size));
  scores_.resize(static_cast<size_t>(vocab_size));
  for (int32_t id = 0; id < vocab_size; ++id) {
    int32_t len = 0;
    take(&scores_[id], 4);
    take(&len, 4);
    Require(len >= 0 && len <= max_token_length + 8, Status::kCorruptData,
            path + ": piece " + std::to_string(id) + " has bad length " + std::to_string(len));
    pieces_[id].resize(static_cast<size_t>(len));
    take(pieces_[id].data(), static_cast<size_t>(len));
  }
  Require(pos == bytes.size(), Status::kCorruptData,
          path + ": " + std::to_string(bytes.size() - pos) + " trailing bytes after " +
              std::to_string(vocab_size) + " pieces");
  // First id wins for duplicate pieces (llama2.c's bsearch finds one of them; there are none).
  for (int32_t id = 0; id < vocab_size; ++id) index_.emplace(pieces_[id], id);
}

const std::string& Tokenizer::piece(int32_t id) const {
  Require(id >= 0 && id < vocab_size(), Status::kInvalidArgument,
          "Tokenizer: token id " + std::to_string(id) + " out of range");
  return pieces_[id];
}

int32_t Tokenizer::Lookup(std::string_view piece) const {
  const auto it = index_.find(piece);
  return it == index_.end() ? -1 : it->second;
}

std::vector<int32_t> Tokenizer::Encode(std::string_view text, bool bos, bool dummy_prefix) const {
  std::vector<int32_t> tokens;
  if (bos) tokens.push_back(kBos);
  const size_t first = tokens.size();
  if (dummy_prefix && !text.empty()) {
    const int32_t space = Lookup(" ");
    Require(space >= 0, Status::kCorruptData, "Tokenizer: vocabulary has no \" \" piece");
    tokens.push_back(space);
  }
  // One piece per UTF-8 character: a lead byte plus at most 3 continuation bytes (10xxxxxx).
  for (size_t i = 0; i < text.size();) {
    size_t len = 1;
    while (len < 4 && i + len < text.size() &&
           (static_cast<unsigned char>(text[i + len]) & 0xC0) == 0x80) {
      ++len;
    }
    const int32_t id = Lookup(text.substr(i, len));
    if (id >= 0) {
      tokens.push_back(id);
    } else {
      for (size_t j = 0; j < len; ++j) {
        tokens.push_back(static_cast<unsigned char>(text[i + j]) + kByteOffset);
      }
    }
    i += len;
  }
  // Merge the best-scoring adjacent pair until no pair forms a piece (first pair wins ties).
  std::string merged;
  while (true) {
    float best_score = -1e10f;
    int32_t best_id = -1;
    size_t best_index = 0;
    for (size_t i = first; i + 1 < tokens.size(); ++i) {
      merged = pieces_[tokens[i]];
      merged += pieces_[tokens[i + 1]];
      const int32_t id = Lookup(merged);
      if (id >= 0 && scores_[id] > best_score) {
        best_score = scores_[id];
        best_id = id;
        best_index = i;
      }
    }
    if (best_id < 0) break;
    tokens[best_index] = best_id;
    tokens.erase(tokens.begin() + static_cast<std::ptrdiff_t>(best_index) + 1);
  }
  return tokens;
}

std::vector<int32_t> Tokenizer::EncodeText(std::string_view text, bool bos) const {
  const int32_t newline = '\n' + kByteOffset;
  std::vector<int32_t> tokens;
  if (bos) tokens.push_back(kBos);
  size_t begin = 0;
  bool first_line = true;
  while (true) {
    const size_t end = text.find('\n', begin);
    const std::string_view line =
        text.substr(begin, end == std::string_view::npos ? std::string_view::npos : end - begin);
    // The dummy prefix belongs to the start of the whole text (none for an empty text).
    if (first_line && line.empty() && !text.empty()) tokens.push_back(Lookup(" "));
    const std::vector<int32_t> ids = Encode(line, false, first_line);
    tokens.insert(tokens.end(), ids.begin(), ids.end());
    first_line = false;
    if (end == std::string_view::npos) break;
    tokens.push_back(newline);
    begin = end + 1;
  }
  return tokens;
}

std::string Tokenizer::Decode(int32_t prev, int32_t id) const {
  std::string_view p = piece(id);
  if (prev == kBos && !p.empty() && p[0] == ' ') p.remove_prefix(1);
  if (p.size() == 6 && p.substr(0, 3) == "<0x" && p[5] == '>') {
    char* end = nullptr;
    const std::string hex(p.substr(3, 2));
    const long byte = std::strtol(hex.c_str(), &end, 16);
    if (end == hex.c_str() + 2) return std::string(1, static_cast<char>(byte));
  }
  return std::string(p);
}

}  // namespace lowbit::llama
