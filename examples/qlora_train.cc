// examples/qlora_train.cc — QLoRA in a few lines: NF4 frozen MLP + LoRA r=8 adapters + AdamW.
//
// Usage: qlora_train [steps] [--8bit-adam] [--expect-fall X]. Prints the loss per step, the
// trainable-parameter share and the memory of the frozen NF4 base vs the adapters, and the
// overall loss reduction; with --expect-fall exits 1 unless the loss fell at least X-fold (the
// ctest qlora_train_short uses it).
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "examples/qlora_mlp.h"

int main(int argc, char** argv) {
  lowbit_examples::QLoRAMlpConfig config;
  double expect_fall = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--8bit-adam") == 0) {
      config.adam.eight_bit_states = true;
      config.adam.min_8bit_size = 0;
    } else if (std::strcmp(argv[i], "--expect-fall") == 0 && i + 1 < argc) {
      expect_fall = std::atof(argv[++i]);
    } else {
      config.steps = std::atoi(argv[i]);
      if (config.steps <= 0) {
        std::fprintf(stderr, "usage: %s [steps > 0] [--8bit-adam] [--expect-fall X]\n",
                     argv[0]);
        return 2;
      }
    }
  }
  try {
    const auto result = lowbit_examples::TrainQLoRAMlp(config, [](int step, double loss) {
      std::printf("step %4d  loss %.6g\n", step, loss);
    });
    const double first = result.losses.front(), last = result.losses.back();
    std::printf("final loss %.6g (%.1fx lower than %.6g)\n", last, first / last, first);
    std::printf("trainable parameters: %lld of %lld (%.2f%%)\n",
                static_cast<long long>(result.trainable_parameters),
                static_cast<long long>(result.total_parameters),
                100.0 * static_cast<double>(result.trainable_parameters) /
                    static_cast<double>(result.total_parameters));
    std::printf("memory: frozen nf4 base %lld bytes, adapters %lld bytes (f32), optimizer state "
                "%lld bytes\n",
                static_cast<long long>(result.base_bytes),
                static_cast<long long>(result.adapter_bytes),
                static_cast<long long>(result.optimizer_state_bytes));
    if (expect_fall > 0 && !(first / last >= expect_fall)) {
      std::fprintf(stderr, "FAIL: loss fell %.2fx, expected >= %.2fx\n", first / last,
                   expect_fall);
      return 1;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
