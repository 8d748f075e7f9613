// File helpers of the llama example: whole-file reads, the .u16 token stream, the story sample.
#ifndef LOWBIT_EXAMPLES_LLAMA_DATA_H_
#define LOWBIT_EXAMPLES_LLAMA_DATA_H_

#include <cstdint>
#include <string>
#include <vector>

namespace lowbit::llama {

// The whole file as bytes. Throws lowbit::Error(kIoError) naming the path when unreadable.
std::string ReadFile(const std::string& path);

// A little-endian uint16 token stream (e.g. tinystories_valid_head.tok512.u16).
// Throws Error(kCorruptData) for an odd byte count.
std::vector<int32_t> ReadTokenStream(const std::string& path);

// Splits a text on `separator` and strips ASCII whitespace from both ends of each part; empty
// parts are dropped (the 5-story sample uses "<|endoftext|>").
std::vector<std::string> SplitDocuments(const std::string& text, const std::string& separator);

}  // namespace lowbit::llama

#endif  // LOWBIT_EXAMPLES_LLAMA_DATA_H_
