// Model-level GPTQ and AWQ for the llama example: collects each linear layer's calibration
// inputs and calls the layer-level lowbit::calibrate API (include/lowbit/calibrate/).
//
// Both quantize "true-sequentially", in forward order: per block {wq, wk, wv}, then wo, then
// {w1, w3}, then w2. The calibration inputs of each group come from running the calibration
// sequences through the model with every earlier group already quantized, so later layers
// learn to compensate the error of earlier ones.
#ifndef LOWBIT_EXAMPLES_LLAMA_CALIBRATED_H_
#define LOWBIT_EXAMPLES_LLAMA_CALIBRATED_H_

#include <cstdint>
#include <string>
#include <vector>

#include "examples/llama/model.h"
#include "lowbit/calibrate/awq.h"
#include "lowbit/calibrate/gptq.h"

namespace lowbit::llama {

// Calibration token sequences, each run from an empty KV cache (e.g. BOS + one story).
using Sequences = std::vector<std::vector<int32_t>>;

// The groups of linears that read the same input, in forward order: {wq, wk, wv}, {wo}, {w1, w3},
// {w2}. The calibrated methods (GPTQ, AWQ, examples/qat_int4.cc) process them in this order.
const std::vector<std::vector<Linear>>& InputGroups();

// The inputs of linear `l` of block `layer` when `model` runs over every sequence (each from an
// empty KV cache), stacked: [*rows, K]. Runs only the first layer + 1 blocks.
std::vector<float> CollectInputs(const Model& model, const Sequences& calibration, int layer,
                                 Linear l, int64_t* rows);

// Every linear layer quantized with GPTQ (one Hessian per group sharing an input).
Model QuantizeGptq(const FloatWeights& w, const Sequences& calibration,
                   const calibrate::GptqOptions& options);

// Every linear layer quantized with AWQ. Where the per-input-channel scale s goes:
//   {wq, wk, wv} (one shared s): 1/s folded into the attention RMSNorm weight;
//   {w1, w3}     (one shared s): 1/s folded into the FFN RMSNorm weight;
//   w2: 1/s folded into the rows of the already-quantized w3 (its group scales of row r are
//       divided by s_r: exact for int4, whose rows are independent), since
//       silu(w1 h) ⊙ (w3 h) is linear in each w3 row;
//   wo: kept as an explicit activation scale (Model::Layer::input_scale, dim floats per layer):
//       folding it into wv would need equal scales for the query heads sharing a KV head.
// `alphas` (optional) receives the chosen α per group, in quantization order.
Model QuantizeAwq(const FloatWeights& w, const Sequences& calibration,
                  const calibrate::AwqOptions& options, std::vector<float>* alphas = nullptr);

// The safetensors module name of linear `l` of block `layer` in llama2.c's PyTorch naming
// (model.py), as in models/stories260K/stories260K.safetensors:
// "layers.<i>.attention.<wq|wk|wv|wo>" or "layers.<i>.feed_forward.<w1|w2|w3>" (no ".weight").
std::string LinearModuleName(int layer, Linear l);

// Writes the calibration file of `lowbit quantize --method gptq|awq --calibration FILE`
// (docs/cli.md) for stories260K.safetensors: for every linear, LinearModuleName(i, l) + ".inputs"
// = the inputs that reach it
// when the float32 model runs over `calibration` (all sequences stacked), f32 [rows, in].
// Unlike QuantizeGptq/QuantizeAwq (true-sequential, inputs from the partially quantized model),
// these come from the float model in one pass: what a model-agnostic tool can consume.
// Atomic; throws Error.
void WriteCalibrationFile(const FloatWeights& w, const Sequences& calibration,
                          const std::string& path);

}  // namespace lowbit::llama

#endif  // LOWBIT_EXAMPLES_LLAMA_CALIBRATED_H_
