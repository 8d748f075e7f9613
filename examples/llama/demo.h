// The lowbit demo on a real model: quantize stories260K to every format, measure perplexity,
// size and speed, and tell a story with the best 4-bit variant. Used by lowbit-demo (main.cc)
// and callable from other tools.
#ifndef LOWBIT_EXAMPLES_LLAMA_DEMO_H_
#define LOWBIT_EXAMPLES_LLAMA_DEMO_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "examples/llama/calibrated.h"
#include "examples/llama/model.h"
#include "examples/llama/tokenizer.h"

namespace lowbit::llama {

// How one variant quantizes the 35 linear layers.
struct VariantSpec {
  enum class Method { kRoundToNearest, kGptq, kAwq };
  std::string name;     // "int4_g32", "gptq_int4_g32", ... (stable: JSON "variant")
  Method method = Method::kRoundToNearest;
  Format format = Format::kF32;
  int64_t block_size = 0;           // group / block size (0 = format default or none)
  bool double_quant = false;
  bool act_order = false;           // GPTQ only
};

// All variants the demo knows, in the order it runs them (f32 first: the baseline).
const std::vector<VariantSpec>& DemoVariants();
// The spec named `name`; throws Error(kInvalidArgument) listing the known names.
const VariantSpec& FindVariant(const std::string& name);

// The 5-story sample protocol: split on "<|endoftext|>", strip, each story = BOS + encode(story)
// (dummy prefix, newlines kept). Used as GPTQ/AWQ calibration data: it is not part of the
// evaluation text.
Sequences LoadStorySample(const Tokenizer& tokenizer, const std::string& path);

// Builds the model of one variant. GPTQ/AWQ need `calibration` (ignored otherwise).
Model QuantizeVariant(const FloatWeights& w, const VariantSpec& spec, const Sequences& calibration);

struct DemoOptions {
  std::string model_dir;           // holds stories260K.bin, tok512.bin, eval/
  int64_t windows = 64;            // evaluation windows (< 0: all, the full protocol)
  std::vector<std::string> variants;  // empty = DemoVariants()
  std::string json_path;           // empty = no JSON
  std::string prompt = "Once upon a time";
  int32_t story_tokens = 256;
  float temperature = 0.8f;
  uint64_t seed = 42;
  int32_t speed_tokens = 128;      // greedy tokens generated from BOS to time decoding
  // Evaluation windows run on this many threads (0 = std::thread::hardware_concurrency());
  // every matmul is single-threaded (the model is far too small to split one matmul).
  int threads = 0;
};

struct VariantResult {
  std::string variant;
  bool four_bit = false;
  double nll = 0, ppl = 0;          // on the evaluated windows
  int64_t predicted_tokens = 0;
  int64_t weight_bytes = 0;         // all linear weights: payload + statistics (+ AWQ scales)
  double bits_per_weight = 0;       // 8 * weight_bytes / linear weight count
  double quantize_seconds = 0;      // building the model (calibration included)
  double eval_tokens_per_s = 0;     // batched prefill throughput during evaluation
  double tokens_per_s = 0;          // token-by-token generation (KV cache, M = 1)
};

// Writes the calibration file of `lowbit quantize --method gptq|awq` for
// models/stories260K/stories260K.safetensors to `path`: the inputs of every linear over the demo's
// calibration stories (WriteCalibrationFile on LoadStorySample). Prints one line to `out`.
// Throws Error.
void DumpCalibration(const std::string& model_dir, const std::string& path, std::ostream& out);

// Runs the demo, printing progress, the table and the story to `out`. Returns one result per
// variant. Throws lowbit::Error on missing files or bad options.
std::vector<VariantResult> RunDemo(const DemoOptions& options, std::ostream& out);

}  // namespace lowbit::llama

#endif  // LOWBIT_EXAMPLES_LLAMA_DEMO_H_
