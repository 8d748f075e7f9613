// Perplexity and generation for the llama example (see eval.h).
#include "examples/llama/eval.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <thread>

#include "examples/llama/tokenizer.h"
#include "lowbit/context.h"
#include "lowbit/status.h"

namespace lowbit::llama {

namespace {

// log Σ exp(logits) in float64 (max-shifted).
double LogSumExp(const float* logits, int32_t n) {
  const double mx = *std::max_element(logits, logits + n);
  double sum = 0;
  for (int32_t i = 0; i < n; ++i) sum += std::exp(logits[i] - mx);
  return mx + std::log(sum);
}

int32_t Argmax(const float* logits, int32_t n) {
  return static_cast<int32_t>(std::max_element(logits, logits + n) - logits);
}

// xorshift64* (Vigna): a tiny generator with the same output on every platform.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed ? seed : 0x9E3779B97F4A7C15ull) {}
  // Uniform in [0, 1) from the top 24 bits.
  float Uniform() {
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    return static_cast<float>((state_ * 0x2545F4914F6CDD1Dull) >> 40) / 16777216.0f;
  }

 private:
  uint64_t state_;
};

int32_t Sample(const float* logits, int32_t n, float temperature, Rng& rng,
               std::vector<float>& probs) {
  probs.resize(static_cast<size_t>(n));
  const float mx = *std::max_element(logits, logits + n);
  float sum = 0;
  for (int32_t i = 0; i < n; ++i) {
    probs[i] = std::exp((logits[i] - mx) / temperature);
    sum += probs[i];
  }
  const float r = rng.Uniform() * sum;
  float cdf = 0;
  for (int32_t i = 0; i < n; ++i) {
    cdf += probs[i];
    if (r < cdf) return i;
  }
  return n - 1;  // rounding left r >= the float sum
}

}  // namespace

void AccumulateSequenceNll(Session& session, const std::vector<int32_t>& tokens, NllSum& acc) {
  const int32_t n = static_cast<int32_t>(tokens.size());
  if (n < 2) return;
  const int32_t vocab = session.model().config.vocab_size;
  std::vector<float> logits(static_cast<size_t>(n) * vocab);
  session.Reset();
  // The last token is only a target: run the n - 1 tokens that predict something.
  session.Forward(tokens.data(), n - 1, logits.data());
  for (int32_t t = 0; t + 1 < n; ++t) {
    const float* row = &logits[static_cast<size_t>(t) * vocab];
    acc.sum += LogSumExp(row, vocab) - row[tokens[t + 1]];
    ++acc.count;
  }
}

int64_t NumWindows(int64_t stream_size, int32_t window) {
  Require(window > 1, Status::kInvalidArgument, "window must be > 1, got " + std::to_string(window));
  return (stream_size + window - 1) / window;
}

NllSum WindowedNll(const Model& model, const std::vector<int32_t>& stream, int32_t window,
                   int64_t max_windows, int threads) {
  Require(window <= model.config.seq_len, Status::kInvalidArgument,
          "window " + std::to_string(window) + " exceeds seq_len " +
              std::to_string(model.config.seq_len));
  int64_t windows = NumWindows(static_cast<int64_t>(stream.size()), window);
  if (max_windows >= 0) windows = std::min(windows, max_windows);
  threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, windows)));
  std::vector<NllSum> per_window(static_cast<size_t>(windows));
  // Worker `worker` takes windows worker, worker + threads, ...
  auto work = [&](int worker, Context* ctx) {
    Session session(model, ctx);
    std::vector<int32_t> chunk;
    for (int64_t w = worker; w < windows; w += threads) {
      const size_t begin = static_cast<size_t>(w) * window;
      const size_t end = std::min(stream.size(), begin + window);
      chunk.assign(stream.begin() + begin, stream.begin() + end);
      AccumulateSequenceNll(session, chunk, per_window[w]);
    }
  };
  if (threads == 1) {
    work(0, nullptr);
  } else {
    std::vector<std::exception_ptr> errors(static_cast<size_t>(threads));
    std::vector<std::thread> pool;
    for (int i = 0; i < threads; ++i) {
      pool.emplace_back([&, i] {
        try {
          Context ctx(1);
          work(i, &ctx);
        } catch (...) {
          errors[i] = std::current_exception();
        }
      });
    }
    for (std::thread& t : pool) t.join();
    for (const std::exception_ptr& e : errors) {
      if (e) std::rethrow_exception(e);
    }
  }
  NllSum acc;
  for (const NllSum& w : per_window) {
    acc.sum += w.sum;
    acc.count += w.count;
  }
  return acc;
}

NllSum DocumentsNll(const Model& model, const std::vector<std::vector<int32_t>>& documents) {
  Session session(model);
  NllSum acc;
  for (const auto& doc : documents) AccumulateSequenceNll(session, doc, acc);
  return acc;
}

std::vector<int32_t> Generate(const Model& model, const std::vector<int32_t>& prompt,
                              int32_t steps, float temperature, uint64_t seed,
                              double* decode_seconds) {
  Require(!prompt.empty() && static_cast<int64_t>(prompt.size()) < model.config.seq_len,
          Status::kInvalidArgument,
          "Generate: prompt length " + std::to_string(prompt.size()) + " must be in [1, seq_len)");
  Require(temperature >= 0 && std::isfinite(temperature), Status::kInvalidArgument,
          "Generate: temperature must be >= 0, got " + std::to_string(temperature));
  const int32_t vocab = model.config.vocab_size;
  Session session(model);
  Rng rng(seed);
  std::vector<float> logits(prompt.size() * vocab), probs;
  std::vector<int32_t> out = prompt;
  session.Forward(prompt.data(), static_cast<int32_t>(prompt.size()), logits.data());
  const float* last = &logits[(prompt.size() - 1) * vocab];
  const auto start = std::chrono::steady_clock::now();
  // Every generated token is also run (the last one's logits go unused) so that the timed part
  // is exactly one single-token forward per generated token.
  for (int32_t step = 0; step < steps && session.position() < model.config.seq_len; ++step) {
    const int32_t next =
        temperature == 0 ? Argmax(last, vocab) : Sample(last, vocab, temperature, rng, probs);
    if (next == Tokenizer::kBos || next == Tokenizer::kEos) break;
    out.push_back(next);
    session.Forward(&next, 1, logits.data());
    last = logits.data();
  }
  if (decode_seconds != nullptr) {
    *decode_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  return out;
}

}  // namespace lowbit::llama
