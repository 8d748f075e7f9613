// lowbit/convert.h — whole-model conversion: named weights in, the linear layers quantized out.
//
// ModelWeights is an ordered list of named tensors (dense bytes with dtype and shape, or a
// QuantizedTensor once converted), e.g. read from a safetensors checkpoint. Convert() replaces
// every linear-layer weight (a 2-D float tensor named "<module>.weight") with the configured
// format and leaves everything else alone: embeddings, norms (1-D), biases, and the modules
// the caller skips. Configs mirror Hugging Face's BitsAndBytesConfig and msbnb's
// Int8Config / Int4Config.
//
// Conversion holds the whole model in memory (input and output); for checkpoints larger than RAM
// use the streaming CLI path. Every entry validates its input and throws lowbit::Error. All
// functions are thread-safe for distinct arguments.
#ifndef LOWBIT_CONVERT_H_
#define LOWBIT_CONVERT_H_

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "lowbit/dtype.h"
#include "lowbit/quant_state.h"
#include "lowbit/quantize.h"

namespace lowbit {

// One named tensor of a model: dense bytes, or (after conversion) a quantized weight.
struct ModelTensor {
  std::string name;
  DType dtype = DType::kF32;  // the dense dtype (for a quantized tensor: its original dtype)
  Shape shape;
  std::vector<uint8_t> data;                 // dense row-major bytes; empty when quantized
  std::optional<QuantizedTensor> quantized;  // set for converted weights

  bool is_quantized() const { return quantized.has_value(); }
  // Bytes this tensor occupies: dense bytes, or quantized payload + statistics.
  int64_t StorageBytes() const;
  int64_t num_elements() const { return NumElements(shape); }
};

// Ordered named tensors. Names are unique; order is insertion order (the file's order).
class ModelWeights {
 public:
  // Adds a dense tensor (copies `bytes` bytes; must equal NumElements(shape) * DTypeSize).
  // Throws kInvalidArgument for an empty or duplicate name or a size mismatch.
  void Add(std::string name, DType dtype, Shape shape, const void* data, size_t bytes);
  // Adds a quantized tensor under `name`.
  void AddQuantized(std::string name, QuantizedTensor q);
  // Reads every tensor of a safetensors file (kIoError / kCorruptData from the reader).
  static ModelWeights FromSafetensors(const std::string& path);

  const std::vector<ModelTensor>& tensors() const { return tensors_; }
  size_t size() const { return tensors_.size(); }
  // The tensor called `name`, or nullptr.
  const ModelTensor* Find(std::string_view name) const;
  // Like Find but throws Error(kInvalidArgument) naming `name`.
  const ModelTensor& Get(std::string_view name) const;
  // Names of the quantized tensors, in model order.
  std::vector<std::string> QuantizedNames() const;

 private:
  void Append(ModelTensor t);
  std::vector<ModelTensor> tensors_;
  std::unordered_map<std::string, size_t> index_;
};

// Hugging Face transformers' BitsAndBytesConfig fields (defaults as in transformers).
struct BitsAndBytesConfig {
  bool load_in_8bit = false;
  bool load_in_4bit = false;
  std::string bnb_4bit_quant_type = "fp4";  // "fp4" or "nf4" (HF's default is fp4)
  DType bnb_4bit_compute_dtype = DType::kF32;
  bool bnb_4bit_use_double_quant = false;
  float llm_int8_threshold = 6.0f;  // runtime setting of the Linear8bit layers built from it
  bool llm_int8_has_fp16_weight = false;
  // Modules never converted (matched with ModuleMatches). Empty: ["lm_head"], as transformers
  // skips the output embedding by default.
  std::vector<std::string> llm_int8_skip_modules;
  int64_t block_size = LOWBIT_4BIT_DEFAULT_BLOCK;  // 4-bit block (bnb quantize_4bit blocksize)
};

// msbnb Int8Config: int8 per output channel (or per tensor), symmetric or asymmetric.
struct Int8Config {
  bool symmetric = true;
  bool per_channel = true;
  float threshold = 6.0f;  // runtime LLM.int8 threshold of layers built from the model
  bool has_fp16_weights = true;
};

// msbnb Int4Config: 4-bit per group along each row; quant_type "int4" (msbnb's only type) or
// "nf4"/"fp4" (then group_size is the bitsandbytes flat block size).
struct Int4Config {
  int64_t group_size = 128;
  bool symmetric = true;             // int4 only: false = int4_asym with zero points
  bool compress_statistics = false;  // double quant (nf4/fp4 only)
  std::string quant_type = "int4";
};

// The resolved recipe every config maps to: which format and quantize options the linear
// weights get, and the runtime settings layers built from the converted model should use.
struct ConversionPlan {
  Format format = Format::kNF4;
  QuantizeOptions options;
  DType compute_dtype = DType::kF32;
  float int8_threshold = 0.0f;
  std::vector<std::string> modules_to_not_convert;
};
// Throws kInvalidArgument for an impossible config (neither or both of load_in_4bit/8bit,
// unknown quant_type, double quant with int4, ...).
ConversionPlan MakeConversionPlan(const BitsAndBytesConfig& config);
ConversionPlan MakeConversionPlan(const Int8Config& config);
ConversionPlan MakeConversionPlan(const Int4Config& config);

// True when `pattern` names whole dotted components of `module`: it equals a run of consecutive
// components ("lm_head" matches "lm_head"; "attention" and "attention.wq" match
// "layers.0.attention.wq"; "layers.1" matches "layers.1.ffn.w1" but not "layers.10.ffn.w1";
// "attn" does not match "self_attn"). This is transformers' modules_to_not_convert rule
// (`key + "." in name`, `key == name`, or the child name equals key) made boundary-exact.
bool ModuleMatches(std::string_view module, std::string_view pattern);

// True when `tensor` is converted under `plan`: a dense f32/f16/bf16 tensor of rank 2 whose name
// ends in ".weight", whose module name (the name without ".weight") is not an embedding
// (contains "embed", "wte" or "wpe" as a substring) and matches none of
// plan.modules_to_not_convert (ModuleMatches).
bool IsConvertible(const ModelTensor& tensor, const ConversionPlan& plan);

// Returns a copy of `model` with every convertible tensor quantized. `modules_to_not_convert`
// adds to the config's skip list (ModuleMatches on module names).
ModelWeights Convert(const ModelWeights& model, const ConversionPlan& plan);
ModelWeights Convert(const ModelWeights& model, const BitsAndBytesConfig& config,
                     const std::vector<std::string>& modules_to_not_convert = {});
ModelWeights Convert(const ModelWeights& model, const Int8Config& config,
                     const std::vector<std::string>& modules_to_not_convert = {});
ModelWeights Convert(const ModelWeights& model, const Int4Config& config,
                     const std::vector<std::string>& modules_to_not_convert = {});

struct ModelSizeInfo {
  int64_t total_bytes = 0;
  int64_t quantized_bytes = 0;   // bytes of the quantized tensors
  int64_t dense_bytes = 0;       // bytes of the dense tensors
  int64_t num_tensors = 0;
  int64_t num_quantized = 0;
  int64_t num_parameters = 0;    // elements of every tensor
};
ModelSizeInfo ModelSize(const ModelWeights& model);

struct SizeComparison {
  int64_t original_bytes = 0;
  int64_t converted_bytes = 0;
  int64_t saved_bytes = 0;
  double saved_percent = 0;      // 100 * saved / original
  double compression_ratio = 0;  // original / converted
};
SizeComparison CompareModelSizes(const ModelWeights& original, const ModelWeights& converted);

// A table: one line per tensor (name, shape, format, bytes, bits/weight) and totals.
std::string QuantizationSummary(const ModelWeights& model);
void PrintQuantizationSummary(const ModelWeights& model, std::ostream& os);

}  // namespace lowbit

#endif  // LOWBIT_CONVERT_H_
