// Evaluation helpers of the llama example: perplexity (the model README's protocols) and
// text generation.
#ifndef LOWBIT_EXAMPLES_LLAMA_EVAL_H_
#define LOWBIT_EXAMPLES_LLAMA_EVAL_H_

#include <cmath>
#include <cstdint>
#include <vector>

#include "examples/llama/model.h"

namespace lowbit::llama {

// Sum of −log p(next token) over predicted positions (float64).
struct NllSum {
  double sum = 0;
  int64_t count = 0;
  double mean() const { return count ? sum / count : 0.0; }
  double perplexity() const { return std::exp(mean()); }
};

// Runs `tokens` from an empty KV cache as one batch and adds −log p(tokens[t+1] | tokens[..t])
// for t in [0, n−1) to `acc` (log-softmax in float64). n <= seq_len.
void AccumulateSequenceNll(Session& session, const std::vector<int32_t>& tokens, NllSum& acc);

// The windowed protocol: `stream` cut into non-overlapping windows of `window` tokens (the last
// one shorter), each from an empty KV cache; the first `max_windows` windows (< 0: all).
// threads > 1 evaluates windows on that many std::threads, each with its own single-thread
// lowbit::Context and Session; per-window sums are added in window order, so the result does
// not depend on `threads`. threads <= 1 runs on the caller with lowbit::DefaultContext().
NllSum WindowedNll(const Model& model, const std::vector<int32_t>& stream, int32_t window,
                   int64_t max_windows, int threads = 1);
// Number of windows the protocol cuts `stream_size` tokens into.
int64_t NumWindows(int64_t stream_size, int32_t window);

// Each document (BOS + its tokens) evaluated separately from an empty KV cache.
NllSum DocumentsNll(const Model& model, const std::vector<std::vector<int32_t>>& documents);

// Generates up to `steps` tokens after `prompt` (which starts with BOS): the prompt runs as one
// batch, then one token at a time. temperature 0 = greedy argmax; else softmax(logits / T)
// sampled with a 64-bit xorshift generator seeded by `seed` (deterministic everywhere). Stops
// early at BOS/EOS or the context end. Returns prompt + generated tokens; `decode_seconds`
// (optional) receives the wall time of the token-by-token part (one single-token forward per
// generated token, sampling included).
std::vector<int32_t> Generate(const Model& model, const std::vector<int32_t>& prompt,
                              int32_t steps, float temperature, uint64_t seed,
                              double* decode_seconds = nullptr);

}  // namespace lowbit::llama

#endif  // LOWBIT_EXAMPLES_LLAMA_EVAL_H_
