// The lowbit demo (see demo.h): every format on stories260K, perplexity/size/speed, a story.
#include "examples/llama/demo.h"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>
#include <nlohmann/json.hpp>

#include "examples/llama/data.h"
#include "examples/llama/eval.h"
#include "lowbit/context.h"
#include "lowbit/quantize.h"

namespace lowbit::llama {

namespace {

constexpr int32_t kWindow = 512;  // the model README's evaluation window (= seq_len)

using Clock = std::chrono::steady_clock;
double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string Format2(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), fmt, v);
  return buf;
}

}  // namespace

const std::vector<VariantSpec>& DemoVariants() {
  using M = VariantSpec::Method;
  static const std::vector<VariantSpec> kVariants = {
      {"f32", M::kRoundToNearest, Format::kF32},
      {"bf16", M::kRoundToNearest, Format::kBF16},
      {"int8", M::kRoundToNearest, Format::kInt8},
      {"fp8_e4m3", M::kRoundToNearest, Format::kFP8E4M3},
      {"int4_g32", M::kRoundToNearest, Format::kInt4, 32},
      {"int4_g64", M::kRoundToNearest, Format::kInt4, 64},
      {"int4_g128", M::kRoundToNearest, Format::kInt4, 128},
      {"int4_asym_g32", M::kRoundToNearest, Format::kInt4Asym, 32},
      {"nf4_bs64", M::kRoundToNearest, Format::kNF4, 64},
      {"nf4_bs64_dq", M::kRoundToNearest, Format::kNF4, 64, true},
      {"fp4_bs64", M::kRoundToNearest, Format::kFP4, 64},
      {"fp4_bs64_dq", M::kRoundToNearest, Format::kFP4, 64, true},
      {"mxfp4", M::kRoundToNearest, Format::kMXFP4},
      {"nvfp4", M::kRoundToNearest, Format::kNVFP4},
      {"iq4_nl", M::kRoundToNearest, Format::kIQ4NL},
      {"gptq_int4_g32", M::kGptq, Format::kInt4, 32},
      {"gptq_int4_g32_act_order", M::kGptq, Format::kInt4, 32, false, true},
      {"gptq_int4_asym_g32", M::kGptq, Format::kInt4Asym, 32},
      {"gptq_int4_g128", M::kGptq, Format::kInt4, 128},
      {"awq_int4_g32", M::kAwq, Format::kInt4, 32},
      {"awq_int4_g128", M::kAwq, Format::kInt4, 128},
  };
  return kVariants;
}

const VariantSpec& FindVariant(const std::string& name) {
  std::string known;
  for (const VariantSpec& v : DemoVariants()) {
    if (v.name == name) return v;
    known += (known.empty() ? "" : ", ") + v.name;
  }
  throw Error(Status::kInvalidArgument, "unknown variant '" + name + "' (known: " + known + ")");
}

Sequences LoadStorySample(const Tokenizer& tokenizer, const std::string& path) {
  Sequences docs;
  for (const std::string& story : SplitDocuments(ReadFile(path), "<|endoftext|>")) {
    docs.push_back(tokenizer.EncodeText(story, /*bos=*/true));
  }
  Require(!docs.empty(), Status::kCorruptData, path + ": no stories");
  return docs;
}

Model QuantizeVariant(const FloatWeights& w, const VariantSpec& spec, const Sequences& calibration) {
  switch (spec.method) {
    case VariantSpec::Method::kGptq: {
      calibrate::GptqOptions o;
      o.format = spec.format;
      o.group_size = spec.block_size;
      o.act_order = spec.act_order;
      return QuantizeGptq(w, calibration, o);
    }
    case VariantSpec::Method::kAwq: {
      calibrate::AwqOptions o;
      o.format = spec.format;
      o.group_size = spec.block_size;
      return QuantizeAwq(w, calibration, o);
    }
    case VariantSpec::Method::kRoundToNearest:
      break;
  }
  QuantizeOptions o;
  o.block_size = spec.block_size;
  o.double_quant = spec.double_quant;
  return BuildModel(w, [&](int, Linear, const ConstTensorView& x) {
    return Quantize(spec.format, x, o);
  });
}

void DumpCalibration(const std::string& model_dir, const std::string& path, std::ostream& out) {
  const FloatWeights weights = LoadLlama2c(model_dir + "/stories260K.bin");
  const Tokenizer tokenizer(model_dir + "/tok512.bin", weights.config.vocab_size);
  const Sequences calibration =
      LoadStorySample(tokenizer, model_dir + "/eval/tinystories_sample_5stories.txt");
  int64_t tokens = 0;
  for (const auto& s : calibration) tokens += static_cast<int64_t>(s.size());
  WriteCalibrationFile(weights, calibration, path);
  out << "wrote " << path << ": inputs of all " << weights.config.n_layers * kNumLinears
      << " linears over " << calibration.size() << " sample stories (" << tokens << " tokens)\n";
}

std::vector<VariantResult> RunDemo(const DemoOptions& options, std::ostream& out) {
  const std::string dir = options.model_dir;
  const int threads = options.threads > 0
                          ? options.threads
                          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  DefaultContext().SetNumThreads(1);
  const FloatWeights weights = LoadLlama2c(dir + "/stories260K.bin");
  const Tokenizer tokenizer(dir + "/tok512.bin", weights.config.vocab_size);
  const std::vector<int32_t> stream = ReadTokenStream(dir + "/eval/tinystories_valid_head.tok512.u16");
  const Sequences calibration =
      LoadStorySample(tokenizer, dir + "/eval/tinystories_sample_5stories.txt");

  std::vector<const VariantSpec*> specs;
  if (options.variants.empty()) {
    for (const VariantSpec& v : DemoVariants()) specs.push_back(&v);
  } else {
    for (const std::string& name : options.variants) specs.push_back(&FindVariant(name));
  }
  const int64_t total_windows = NumWindows(static_cast<int64_t>(stream.size()), kWindow);
  const int64_t windows =
      options.windows < 0 ? total_windows : std::min(options.windows, total_windows);
  int64_t calibration_tokens = 0;
  for (const auto& s : calibration) calibration_tokens += static_cast<int64_t>(s.size());
  out << "stories260K: " << weights.config.n_layers << " layers, dim " << weights.config.dim
      << ", " << windows << " of " << total_windows << " eval windows of " << kWindow
      << " tokens; GPTQ/AWQ calibration: " << calibration.size() << " sample stories ("
      << calibration_tokens << " tokens, not in the eval text)\n\n";

  char line[256];
  std::snprintf(line, sizeof(line), "%-24s %8s %8s %8s %10s %7s %9s %9s %8s\n", "variant", "ppl",
                "nll", "dppl", "bytes", "bits/w", "eval t/s", "gen t/s", "quant s");
  out << line << std::flush;
  std::vector<VariantResult> results;
  std::vector<Model> models;
  double baseline_ppl = 0;
  for (const VariantSpec* spec : specs) {
    VariantResult r;
    r.variant = spec->name;
    r.four_bit = IsFourBit(spec->format);
    auto start = Clock::now();
    Model model = QuantizeVariant(weights, *spec, calibration);
    r.quantize_seconds = SecondsSince(start);
    r.weight_bytes = model.LinearWeightBytes();
    r.bits_per_weight = 8.0 * r.weight_bytes / model.LinearWeightCount();

    start = Clock::now();
    const NllSum nll = WindowedNll(model, stream, kWindow, windows, threads);
    const double eval_seconds = SecondsSince(start);
    r.nll = nll.mean();
    r.ppl = nll.perplexity();
    r.predicted_tokens = nll.count;
    r.eval_tokens_per_s = nll.count / eval_seconds;  // ~ tokens run (one per window fewer)

    double decode_seconds = 0;
    const std::vector<int32_t> gen =
        Generate(model, {Tokenizer::kBos}, options.speed_tokens, 0.0f, 0, &decode_seconds);
    r.tokens_per_s = static_cast<double>(gen.size() - 1) / decode_seconds;

    if (spec->name == "f32") baseline_ppl = r.ppl;
    const std::string dppl = baseline_ppl > 0 ? Format2("%+8.4f", r.ppl - baseline_ppl) : "       -";
    std::snprintf(line, sizeof(line), "%-24s %8.4f %8.5f %8s %10lld %7.3f %9.0f %9.0f %8.2f\n",
                  r.variant.c_str(), r.ppl, r.nll, dppl.c_str(),
                  static_cast<long long>(r.weight_bytes), r.bits_per_weight, r.eval_tokens_per_s,
                  r.tokens_per_s, r.quantize_seconds);
    out << line << std::flush;
    results.push_back(r);
    models.push_back(std::move(model));
  }

  // The float32 forward against the model README's float64 reference outputs.
  for (size_t i = 0; i < results.size(); ++i) {
    if (specs[i]->name != "f32") continue;
    std::vector<int32_t> expected;
    std::istringstream in(ReadFile(dir + "/expected/greedy_t0_tokens.txt"));
    for (int32_t id; in >> id;) expected.push_back(id);
    const std::vector<int32_t> greedy = Generate(
        models[i], {Tokenizer::kBos}, static_cast<int32_t>(expected.size()) - 1, 0.0f, 0);
    size_t same = 0;
    while (same < std::min(greedy.size(), expected.size()) && greedy[same] == expected[same]) {
      ++same;
    }
    out << "\nReference check: f32 greedy decoding from BOS "
        << (greedy == expected ? "reproduces" : "DIFFERS FROM") << " expected/greedy_t0_tokens.txt ("
        << same << " of " << expected.size() << " tokens agree)";
    if (windows == total_windows) {
      std::snprintf(line, sizeof(line), "; full-protocol f32 ppl %.4f (reference 5.0483)",
                    results[i].ppl);
      out << line;
    }
    out << "\n";
  }

  // Calibrated variants against round-to-nearest with the same format and group size.
  bool header = false;
  for (size_t i = 0; i < results.size(); ++i) {
    const VariantSpec& c = *specs[i];
    if (c.method == VariantSpec::Method::kRoundToNearest) continue;
    for (size_t j = 0; j < results.size(); ++j) {
      const VariantSpec& r = *specs[j];
      if (r.method != VariantSpec::Method::kRoundToNearest || r.format != c.format ||
          r.block_size != c.block_size || r.double_quant) {
        continue;
      }
      if (!header) out << "\nCalibration vs round-to-nearest (same format and group size):\n";
      header = true;
      const double gap = results[j].ppl - baseline_ppl;
      std::snprintf(line, sizeof(line), "  %-24s ppl %.4f vs %-14s %.4f: %+.2f%%", c.name.c_str(),
                    results[i].ppl, r.name.c_str(), results[j].ppl,
                    100.0 * (results[i].ppl - results[j].ppl) / results[j].ppl);
      out << line;
      if (baseline_ppl > 0 && gap > 0) {
        std::snprintf(line, sizeof(line), " (%.0f%% of the gap to f32 closed)",
                      100.0 * (results[j].ppl - results[i].ppl) / gap);
        out << line;
      }
      out << "\n";
    }
  }

  // A story from the best (lowest-perplexity) 4-bit variant.
  int best = -1;
  for (size_t i = 0; i < results.size(); ++i) {
    if (results[i].four_bit && (best < 0 || results[i].ppl < results[best].ppl)) {
      best = static_cast<int>(i);
    }
  }
  if (best >= 0) {
    std::vector<int32_t> prompt = tokenizer.EncodeText(options.prompt, /*bos=*/true);
    const std::vector<int32_t> story = Generate(models[best], prompt, options.story_tokens,
                                                options.temperature, options.seed);
    out << "\nStory from " << results[best].variant << " (temperature " << options.temperature
        << ", seed " << options.seed << "):\n";
    std::string text;
    for (size_t i = 1; i < story.size(); ++i) text += tokenizer.Decode(story[i - 1], story[i]);
    out << text << "\n";
  }

  if (!options.json_path.empty()) {
    nlohmann::json j = nlohmann::json::array();
    for (const VariantResult& r : results) {
      j.push_back({{"variant", r.variant},
                   {"ppl", r.ppl},
                   {"nll", r.nll},
                   {"delta_ppl", baseline_ppl > 0 ? r.ppl - baseline_ppl : 0.0},
                   {"predicted_tokens", r.predicted_tokens},
                   {"windows", windows},
                   {"bits_per_weight", r.bits_per_weight},
                   {"weight_bytes", r.weight_bytes},
                   {"tokens_per_s", r.tokens_per_s},
                   {"eval_tokens_per_s", r.eval_tokens_per_s},
                   {"quantize_seconds", r.quantize_seconds}});
    }
    std::ofstream f(options.json_path);
    Require(static_cast<bool>(f), Status::kIoError, "cannot write '" + options.json_path + "'");
    f << j.dump(2) << "\n";
    Require(static_cast<bool>(f), Status::kIoError, "error writing '" + options.json_path + "'");
  }
  return results;
}

}  // namespace lowbit::llama
