// lowbit-demo: quantizes the stories260K Llama model to every lowbit format (plus GPTQ and AWQ),
// prints perplexity, size and speed per variant, and tells a story with the best 4-bit one.
#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>

#include "examples/llama/demo.h"
#include "lowbit/status.h"

int main(int argc, char** argv) {
  lowbit::llama::DemoOptions options;
  options.model_dir = LOWBIT_LLAMA_DEFAULT_MODEL_DIR;
  std::string windows = "64";
  CLI::App app{"lowbit-demo: stories260K in every lowbit format (perplexity, size, speed)"};
  app.add_option("--model", options.model_dir, "directory with stories260K.bin, tok512.bin, eval/")
      ->capture_default_str();
  app.add_option("--windows", windows, "512-token evaluation windows: a count or 'all'")
      ->capture_default_str();
  app.add_option("--json", options.json_path, "write the results as JSON to this file");
  app.add_option("--variant", options.variants, "run only these variants (repeatable)");
  app.add_option("--prompt", options.prompt, "story prompt")->capture_default_str();
  app.add_option("--story-tokens", options.story_tokens, "tokens to generate for the story")
      ->capture_default_str()
      ->check(CLI::Range(0, 511));
  app.add_option("--temperature", options.temperature, "sampling temperature (0 = greedy)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--seed", options.seed, "sampling seed")->capture_default_str();
  app.add_option("--threads", options.threads, "evaluation threads (0 = all cores)")
      ->capture_default_str()
      ->check(CLI::Range(0, 256));
  std::string dump_calibration;
  app.add_option("--dump-calibration", dump_calibration,
                 "write the calibration file of `lowbit quantize --method gptq|awq` for "
                 "models/stories260K/stories260K.safetensors (inputs of every linear over the "
                 "sample stories) and exit");
  CLI11_PARSE(app, argc, argv);
  if (!dump_calibration.empty()) {
    try {
      lowbit::llama::DumpCalibration(options.model_dir, dump_calibration, std::cout);
    } catch (const lowbit::Error& e) {
      std::cerr << "lowbit-demo: " << e.what() << "\n";
      return 1;
    }
    return 0;
  }

  if (windows == "all") {
    options.windows = -1;
  } else {
    char* end = nullptr;
    const long long n = std::strtoll(windows.c_str(), &end, 10);
    if (end == windows.c_str() || *end != '\0' || n <= 0) {
      std::cerr << "lowbit-demo: --windows must be a positive count or 'all', got '" << windows
                << "'\n";
      return 2;
    }
    options.windows = n;
  }
  try {
    lowbit::llama::RunDemo(options, std::cout);
  } catch (const lowbit::Error& e) {
    std::cerr << "lowbit-demo: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
