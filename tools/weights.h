// tools/weights.h — float weight sets the report and error subcommands work on: 2-D tensors of
// a safetensors checkpoint, or a seeded synthetic matrix.
#ifndef LOWBIT_TOOLS_WEIGHTS_H_
#define LOWBIT_TOOLS_WEIGHTS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "lowbit/dtype.h"

namespace lowbit::cli {

// A named float32 weight held in memory.
struct NamedWeight {
  std::string name;
  Shape shape;
  std::vector<float> values;
};

struct WeightSet {
  std::string description;  // where the weights came from, one line
  std::vector<NamedWeight> weights;
};

// Seeded synthetic weight: N(0, 0.02²) entries of a rows x cols matrix plus `num_outliers`
// entries of magnitude 0.5..1.0 (the heavy tail real LLM weights show), deterministic for a seed.
NamedWeight SyntheticWeight(int64_t rows, int64_t cols, int num_outliers, uint64_t seed);
// The report's fallback: one 1024x1024 SyntheticWeight with 16 outliers, seed 42.
WeightSet SyntheticWeightSet();

// Default location of the stories260K checkpoint (<source dir>/../shared/models/...), or "" when
// it does not exist.
std::string DefaultModelPath();

// Every 2-D f32/f16/bf16 tensor of a safetensors file, converted to float32. Throws
// Error(kIoError / kCorruptData) for unreadable files and Error(kInvalidArgument) when the file
// holds no such tensor.
WeightSet LoadTwoDimensionalWeights(const std::string& path);

}  // namespace lowbit::cli

#endif  // LOWBIT_TOOLS_WEIGHTS_H_
