// tools/convert_cmd.cc — `lowbit convert`: whole-model conversion with transformers'
// BitsAndBytesConfig / msbnb Int4Config semantics (lowbit/convert.h), with a size report.
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cli.h"
#include "lowbit/convert.h"
#include "lowbit/io/checkpoint.h"
#include "lowbit/io/safetensors.h"

namespace lowbit::cli {
namespace {

struct ConvertOptions {
  std::string input;
  std::string output;
  std::string quant_type;
  int64_t block_size = 0;
  bool double_quant = false;
  bool asymmetric = false;
  std::vector<std::string> skip_modules;
  std::string config_json;
  bool quiet = false;
};

bool IsBnbType(const std::string& t) { return t == "nf4" || t == "fp4" || t == "int8"; }

// The plan of each --quant-type: nf4/fp4/int8 follow BitsAndBytesConfig (load_in_4bit /
// load_in_8bit), int4 follows Int4Config. Extra skip modules add to the config's list.
ConversionPlan PlanFor(const ConvertOptions& o) {
  if (o.asymmetric && o.quant_type != "int4") throw UsageError("--asymmetric applies to int4 only");
  if (o.double_quant && o.quant_type != "nf4" && o.quant_type != "fp4") {
    throw UsageError("--double-quant applies to nf4 and fp4 only");
  }
  if (o.block_size != 0 && o.quant_type == "int8") {
    throw UsageError("--blocksize does not apply to int8 (one scale per row)");
  }
  if (o.quant_type == "nf4" || o.quant_type == "fp4" || o.quant_type == "int8") {
    BitsAndBytesConfig c;
    c.load_in_4bit = o.quant_type != "int8";
    c.load_in_8bit = !c.load_in_4bit;
    c.bnb_4bit_quant_type = o.quant_type == "int8" ? "nf4" : o.quant_type;
    c.bnb_4bit_use_double_quant = o.double_quant;
    if (o.block_size != 0) c.block_size = o.block_size;
    c.llm_int8_skip_modules = o.skip_modules;
    return MakeConversionPlan(c);
  }
  if (o.quant_type == "int4") {
    Int4Config c;
    if (o.block_size != 0) c.group_size = o.block_size;
    c.symmetric = !o.asymmetric;
    ConversionPlan plan = MakeConversionPlan(c);
    plan.modules_to_not_convert = o.skip_modules;
    if (plan.modules_to_not_convert.empty()) plan.modules_to_not_convert = {"lm_head"};
    return plan;
  }
  throw UsageError("--quant-type must be nf4, fp4, int8 or int4, got '" + o.quant_type + "'");
}

int RunConvert(const ConvertOptions& o) {
  if (!o.config_json.empty() && !IsBnbType(o.quant_type)) {
    throw UsageError("--config-json needs a bitsandbytes type (nf4, fp4, int8)");
  }
  const ConversionPlan plan = PlanFor(o);
  const ModelWeights model = ModelWeights::FromSafetensors(o.input);
  const ModelWeights converted = Convert(model, plan);

  // Quantized modules go to the bitsandbytes layout for bnb types, lowbit's for int4.
  const io::TensorLayout layout =
      IsBnbType(o.quant_type) ? io::TensorLayout::kBitsandbytes : io::TensorLayout::kLowbit;
  std::vector<io::CheckpointItem> items;
  for (const ModelTensor& t : converted.tensors()) {
    io::CheckpointItem item;
    if (t.is_quantized()) {
      item.name = t.name.substr(0, t.name.size() - 6);  // module prefix: strip "weight"
      item.quantized = &*t.quantized;
      item.layout = layout;
    } else {
      item.name = t.name;
      item.dense = ConstTensorView{t.data.data(), t.dtype, t.shape};
    }
    items.push_back(std::move(item));
  }
  io::Metadata metadata = io::SafetensorsFile::Open(o.input).metadata();
  metadata["lowbit.convert"] = "quant_type=" + o.quant_type;
  io::SaveCheckpoint(o.output, items, metadata);
  if (!o.config_json.empty()) {
    WriteBnbQuantizationConfig(o.config_json,
                               o.quant_type == "int8"  ? Format::kInt8
                               : o.quant_type == "fp4" ? Format::kFP4
                                                       : Format::kNF4,
                               o.double_quant, plan.modules_to_not_convert);
  }

  if (!o.quiet) std::cout << QuantizationSummary(converted);
  const SizeComparison size = CompareModelSizes(model, converted);
  std::printf("wrote %s: %zu of %zu tensors converted to %s; %s -> %s (saved %.1f%%, %.2fx "
              "smaller); file %s\n",
              o.output.c_str(), converted.QuantizedNames().size(), converted.size(),
              o.quant_type.c_str(), HumanBytes(size.original_bytes).c_str(),
              HumanBytes(size.converted_bytes).c_str(), size.saved_percent,
              size.compression_ratio,
              HumanBytes(static_cast<int64_t>(io::SafetensorsFile::Open(o.output).file_size()))
                  .c_str());
  return kExitOk;
}

}  // namespace

Subcommand AddConvertCommand(CLI::App& app) {
  auto o = std::make_shared<ConvertOptions>();
  CLI::App* sub = app.add_subcommand(
      "convert",
      "Convert a model the way transformers' BitsAndBytesConfig does: every linear layer, "
      "except embeddings and skipped modules (default: lm_head). Holds the model in memory.");
  sub->add_option("input", o->input, "input .safetensors file")->required();
  sub->add_option("output", o->output, "output .safetensors file (written atomically)")
      ->required();
  sub->add_option("-t,--quant-type", o->quant_type,
                  "nf4, fp4 (load_in_4bit), int8 (load_in_8bit), int4 (msbnb Int4Config)")
      ->required();
  sub->add_option("-b,--blocksize", o->block_size,
                  "nf4/fp4 block or int4 group size; 0 = default (64 / 128)")
      ->check(CLI::NonNegativeNumber);
  sub->add_flag("--double-quant", o->double_quant, "bnb_4bit_use_double_quant (nf4/fp4)");
  sub->add_flag("--asymmetric", o->asymmetric, "int4 with zero points (int4_asym)");
  sub->add_option("--skip-modules", o->skip_modules,
                  "module names left unconverted, substring match (repeatable; "
                  "llm_int8_skip_modules). Default: lm_head");
  sub->add_option("--config-json", o->config_json,
                  "also write a config.json holding the quantization_config block (nf4/fp4/int8)");
  sub->add_flag("-q,--quiet", o->quiet, "no per-tensor table");
  return {sub, [o] { return RunConvert(*o); }};
}

}  // namespace lowbit::cli
