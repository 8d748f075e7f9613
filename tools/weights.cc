// tools/weights.cc — weight sets for the report: safetensors 2-D tensors or a synthetic matrix.
#include "weights.h"

#include <sys/stat.h>

#include <random>

#include "cli.h"
#include "lowbit/io/safetensors.h"
#include "lowbit/status.h"

namespace lowbit::cli {

NamedWeight SyntheticWeight(int64_t rows, int64_t cols, int num_outliers, uint64_t seed) {
  // 0.02 is the init std of GPT-2/LLaMA-style linear layers; outliers of 25-50 sigma imitate the
  // few large weights that make absmax scaling hard in real checkpoints.
  constexpr float kStd = 0.02f;
  NamedWeight w;
  w.name = Fmt("gaussian_%lldx%lld", static_cast<long long>(rows), static_cast<long long>(cols));
  w.shape = {rows, cols};
  w.values.resize(static_cast<size_t>(rows * cols));
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, kStd);
  for (float& v : w.values) v = normal(rng);
  std::uniform_int_distribution<int64_t> pos(0, rows * cols - 1);
  std::uniform_real_distribution<float> mag(0.5f, 1.0f);
  for (int i = 0; i < num_outliers; ++i) {
    w.values[static_cast<size_t>(pos(rng))] = (i % 2 ? -1.0f : 1.0f) * mag(rng);
  }
  return w;
}

WeightSet SyntheticWeightSet() {
  constexpr int64_t kDim = 1024;
  constexpr int kOutliers = 16;
  constexpr uint64_t kSeed = 42;
  WeightSet set;
  set.description = "synthetic 1024x1024 N(0, 0.02^2) matrix with 16 outliers of |w| in [0.5, 1] "
                    "(seed 42)";
  set.weights.push_back(SyntheticWeight(kDim, kDim, kOutliers, kSeed));
  return set;
}

std::string DefaultModelPath() {
  const std::string path =
      std::string(LOWBIT_SOURCE_DIR) + "/../shared/models/stories260K/stories260K.safetensors";
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) return path;
  return "";
}

WeightSet LoadTwoDimensionalWeights(const std::string& path) {
  const io::SafetensorsFile file = io::SafetensorsFile::Open(path);
  WeightSet set;
  for (const io::TensorInfo& t : file.tensors()) {
    if (t.shape.size() != 2 || !IsFloatActivation(t.dtype) || t.num_elements() == 0) continue;
    set.weights.push_back({t.name, t.shape, file.CopyAsF32(t)});
  }
  Require(!set.weights.empty(), Status::kInvalidArgument,
          "'" + path + "' holds no 2-D f32/f16/bf16 tensor");
  set.description = path + " (every 2-D float tensor)";
  return set;
}

}  // namespace lowbit::cli
