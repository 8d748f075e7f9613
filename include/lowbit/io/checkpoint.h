// lowbit/io/checkpoint.h — quantized tensors in safetensors checkpoints: bitsandbytes and lowbit layouts.
//
// A quantized weight is stored under a module prefix P (e.g. "model.layers.0.mlp.down_proj.",
// usually ending in '.'; may be empty) as several tensors. Three layouts are read (auto-detected)
// and written:
//
// bitsandbytes 4-bit (nf4 / fp4; bnb-formats.md §5.1), byte-identical with Linear4bit's state dict:
//   P weight                                  U8  [(n+1)/2, 1]  packed nibbles, first element high
//   P weight.absmax                           F32 [nblocks]     (U8 [nblocks] when nested)
//   P weight.quant_map                        F32 [16]          codebook as stored (used on load)
//   P weight.nested_absmax                    F32 [ceil(nblocks/nested_blocksize)]   nested only
//   P weight.nested_quant_map                 F32 [256]         nested only (used on load)
//   P weight.quant_state.bitsandbytes__nf4    U8  [len]  UTF-8 JSON, Python json.dumps spacing:
//     {"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [11008, 4096],
//      "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.010713756084442139}
//   (the last three keys only when nested; nested_offset = Python repr of the float32 offset).
// bitsandbytes 8-bit (LLM.int8 weights; §5.2): P weight I8 [out, in], P SCB F32 [out],
//   P weight_format U8 [] = 0 ("row"; any other layout is refused). The original dtype is not
//   stored; it loads as f16 (bitsandbytes' Int8Params are float16).
// lowbit native (every format, every granularity/block size; versioned):
//   P weight               payload: I8 logical shape (int8), F8_E4M3 / F8_E5M2 logical shape
//                          (fp8), U8 logical shape (int8_asym, blockwise8), U8 [(n+1)/2] (4-bit)
//   P weight.lowbit_state  U8 [len] UTF-8 JSON: {"format": "int4", "version": 1,
//                          "shape": [4096, 11008], "dtype": "bf16", "granularity": "group",
//                          "block_size": 128, "nested_block_size": 256 (nested only)}
//   P weight.scales        F32 [num_scales]       (absent when nested)
//   P weight.zero_points   U8  [num_scales]       (asymmetric formats)
//   P weight.codebook      F32 [16 | 256]         (nf4, fp4, blockwise8)
//   P weight.nested_codes  U8  [num_scales], P weight.nested_absmax F32 [..],
//   P weight.nested_code   F32 [256], P weight.nested_offset F32 []    (nested only)
//   "version" is LOWBIT_FORMAT_VERSION; a file with a newer version or an unknown format name is
//   refused with Error(kUnsupportedFormat).
// dense: a single F32 / F16 / BF16 tensor P weight (or any name) loads as a dense QuantizedTensor.
//
// All loaders validate every count, size, dtype, JSON type and block size, finish with
// ValidateQuantizedTensor, and throw Error(kCorruptData) naming the key on anything malformed.
// Functions are thread-safe for distinct arguments.
#ifndef LOWBIT_IO_CHECKPOINT_H_
#define LOWBIT_IO_CHECKPOINT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/dtype.h"
#include "lowbit/format.h"
#include "lowbit/io/safetensors.h"
#include "lowbit/quant_state.h"

namespace lowbit {
namespace io {

// How a tensor is (or is to be) laid out in a checkpoint.
enum class TensorLayout : uint8_t {
  kAuto = 0,          // saving only: bitsandbytes for nf4/fp4, dense for f32/f16/bf16, else lowbit
  kDense = 1,         // one plain tensor
  kBitsandbytes = 2,  // bnb 4-bit (nf4/fp4, block granularity) or bnb 8-bit (int8 per row, 2-D)
  kLowbit = 3,        // lowbit native, any format
};
// "auto", "dense", "bitsandbytes", "lowbit".
const char* TensorLayoutName(TensorLayout layout) noexcept;

// Key suffixes (appended to the module prefix).
inline constexpr std::string_view kWeightKey = "weight";
inline constexpr std::string_view kBnbQuantStatePrefix = "weight.quant_state.bitsandbytes__";
inline constexpr std::string_view kLowbitStateKey = "weight.lowbit_state";

// ---- bitsandbytes quant_state JSON -----------------------------------------------------------
struct BnbQuantStateJson {
  Format quant_type = Format::kNF4;  // kNF4 or kFP4
  int64_t blocksize = 64;
  DType dtype = DType::kF32;         // original dtype: "float32" / "float16" / "bfloat16"
  Shape shape;
  bool nested = false;
  int64_t nested_blocksize = 0;      // nested only ("nested_dtype" is always "float32")
  float nested_offset = 0.0f;        // nested only
};
// Exactly the bytes bitsandbytes writes (json.dumps of QuantState.as_dict(packed=True) fields, in
// its key order). Throws kInvalidArgument for a non-4-bit quant_type, non-float dtype or a
// non-finite offset.
std::string FormatBnbQuantStateJson(const BnbQuantStateJson& state);
// Parses and validates (object; known keys only, as bitsandbytes' valid_qs_keys; integer
// blocksize in [1, 2^31); quant_type nf4/fp4; known dtype; shape of non-negative integers whose
// product fits int64; nested keys all present or all absent; nested_dtype "float32"; finite
// numeric offset rounded to float32 as torch.tensor(float(x)) does). Throws kCorruptData.
BnbQuantStateJson ParseBnbQuantStateJson(std::string_view json);

// Python repr() of a double (shortest round-trip digits; "0.010713756084442139", "1e-05",
// "123.0", "1.5e+16"), as json.dumps prints floats. Finite values only (kInvalidArgument else).
std::string PythonFloatRepr(double value);

// HF config.json "quantization_config" block (bnb-formats.md §5.3) for a bitsandbytes checkpoint.
struct BnbQuantizationConfig {
  bool load_in_4bit = true;  // false: LLM.int8 (load_in_8bit)
  Format quant_type = Format::kNF4;
  bool use_double_quant = false;
  DType compute_dtype = DType::kF32;
  double llm_int8_threshold = 6.0;
  bool llm_int8_has_fp16_weight = false;
  std::vector<std::string> llm_int8_skip_modules;  // empty -> null
  bool llm_int8_enable_fp32_cpu_offload = false;
};
// The JSON object (keys sorted, 2-space indent, as transformers' to_json_string writes it),
// without the enclosing "quantization_config" key. Throws kInvalidArgument for a non-4-bit
// quant_type or non-float compute dtype.
std::string BnbQuantizationConfigJson(const BnbQuantizationConfig& config);

// ---- one module ---------------------------------------------------------------------------------
// The (name, dtype, shape) of every tensor SaveQuantizedTensor would write for `q` under `prefix`
// (the chosen layout resolved as documented for kAuto). Throws like SaveQuantizedTensor.
std::vector<TensorSpec> PlanQuantizedTensor(std::string_view prefix, const QuantizedTensor& q,
                                            TensorLayout layout = TensorLayout::kAuto);
// Appends the tensors of `q` under `prefix` to `writer`. Validates `q` first
// (ValidateQuantizedTensor, kInvalidArgument); throws kInvalidArgument when `layout` cannot
// represent it (bitsandbytes: nf4/fp4 block, or int8 row with a 2-D shape; dense: f32/f16/bf16).
void SaveQuantizedTensor(SafetensorsWriter& writer, std::string_view prefix,
                         const QuantizedTensor& q, TensorLayout layout = TensorLayout::kAuto);

// Loads the module at `prefix`, auto-detecting the layout (quant_state key -> bnb 4-bit, SCB ->
// bnb 8-bit, lowbit_state -> lowbit, else a dense F32/F16/BF16 "P weight"). The result owns
// copies of the bytes. Throws kInvalidArgument when nothing is stored at `prefix`, kCorruptData
// for malformed data, kUnsupportedFormat for an unknown / newer lowbit format.
QuantizedTensor LoadQuantizedTensor(const SafetensorsFile& file, std::string_view prefix);
// Like LoadQuantizedTensor for a dense tensor stored under its full `name` (any of f32/f16/bf16).
QuantizedTensor LoadDenseTensor(const SafetensorsFile& file, std::string_view name);

// ---- whole files --------------------------------------------------------------------------------
// One entry of a checkpoint listing: a quantized module (all its keys) or a plain tensor.
struct CheckpointEntry {
  std::string name;        // quantized: prefix + "weight"; plain tensor: its key
  std::string prefix;      // quantized: the module prefix; plain tensor: ""
  TensorLayout layout = TensorLayout::kDense;
  std::optional<Format> format;  // quantized format, or f32/f16/bf16 for plain float tensors
  std::string format_name;       // "nf4", "int8", "bf16", or the dtype ("i64") of other tensors
  Shape shape;                   // logical shape of the weight
  DType dtype = DType::kF32;     // original dtype (quantized) or stored dtype (plain)
  int64_t block_size = 0;        // 0 when not blocked
  bool double_quant = false;
  int64_t bytes = 0;             // bytes of all tensors of the entry in the file
  double bits_per_weight = 0;    // 8 * bytes / elements (0 for an empty tensor)
  std::vector<std::string> keys; // every tensor name the entry owns
};
// Lists every tensor of `file`: each quantized module once (its member keys folded in), every
// other tensor as a plain entry; sorted by name. Parses and validates each module's state JSON
// and tensor dtypes/sizes (kCorruptData / kUnsupportedFormat as LoadQuantizedTensor), without
// copying payloads.
std::vector<CheckpointEntry> ListQuantizedModules(const SafetensorsFile& file);

// What SaveCheckpoint writes.
struct CheckpointItem {
  // Plain tensor: `name` is its key and `dense` its data (any dtype, borrowed).
  // Quantized: `name` is the module prefix and `quantized` points at the tensor (borrowed).
  std::string name;
  ConstTensorView dense;
  const QuantizedTensor* quantized = nullptr;
  TensorLayout layout = TensorLayout::kAuto;  // quantized only
};
// Writes all items and `metadata` to `path` atomically (temp file + fsync + rename; the previous
// file survives any failure). Throws kInvalidArgument (duplicate keys, invalid tensors) or
// kIoError.
void SaveCheckpoint(const std::string& path, const std::vector<CheckpointItem>& items,
                    const Metadata& metadata = {});

}  // namespace io
}  // namespace lowbit

#endif  // LOWBIT_IO_CHECKPOINT_H_
