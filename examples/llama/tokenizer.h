// The llama2.c tokenizer (SentencePiece BPE vocabulary in tok512.bin format): encode and decode.
#ifndef LOWBIT_EXAMPLES_LLAMA_TOKENIZER_H_
#define LOWBIT_EXAMPLES_LLAMA_TOKENIZER_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace lowbit::llama {

// Loaded from a llama2.c tokenizer file: int32 max_token_length, then per id: float32 score,
// int32 byte length, bytes. Immutable after loading; all methods are thread-safe.
class Tokenizer {
 public:
  static constexpr int32_t kBos = 1;
  static constexpr int32_t kEos = 2;
  // Byte fallback: byte b is id b + kByteOffset ("<0xNN>" pieces).
  static constexpr int32_t kByteOffset = 3;

  // Throws lowbit::Error (kIoError / kCorruptData) when the file is missing or malformed.
  // vocab_size: number of pieces stored in the file (the model header's vocab_size).
  Tokenizer(const std::string& path, int32_t vocab_size);

  int32_t vocab_size() const { return static_cast<int32_t>(pieces_.size()); }
  const std::string& piece(int32_t id) const;

  // llama2.c encode: optional BOS; a dummy-prefix " " piece when `dummy_prefix` and the text is
  // non-empty; then one piece per UTF-8 character (or its bytes + 3 when it is not a piece);
  // then repeatedly merge the adjacent pair whose concatenation is the best-scoring piece.
  // O(n²) in the text length: encode long texts line by line (see EncodeText).
  std::vector<int32_t> Encode(std::string_view text, bool bos, bool dummy_prefix = true) const;

  // Encodes a multi-line text exactly as Encode(text, bos) would, but line by line: no piece
  // contains '\n', so lines are encoded independently (dummy prefix only before the first) and
  // joined with the newline byte token.
  std::vector<int32_t> EncodeText(std::string_view text, bool bos) const;

  // Bytes of `id` following `prev` (llama2.c decode): the leading space of a piece right after
  // BOS is dropped, and "<0xNN>" byte pieces become the raw byte.
  std::string Decode(int32_t prev, int32_t id) const;

 private:
  int32_t Lookup(std::string_view piece) const;  // -1 when absent

  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::unordered_map<std::string_view, int32_t> index_;  // views into pieces_
};

}  // namespace lowbit::llama

#endif  // LOWBIT_EXAMPLES_LLAMA_TOKENIZER_H_
