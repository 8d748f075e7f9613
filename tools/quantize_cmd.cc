// tools/quantize_cmd.cc — `lowbit quantize` and `lowbit dequantize`: safetensors in, safetensors
// out, tensor by tensor with bounded memory.
#include <fnmatch.h>

#include <algorithm>
#include <chrono>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cli.h"
#include "lowbit/context.h"
#include "lowbit/format.h"
#include "lowbit/io/checkpoint.h"
#include "lowbit/io/safetensors.h"
#include "lowbit/quantize.h"
#include "stream_quantize.h"

namespace lowbit::cli {
namespace {

struct QuantizeCommandOptions {
  std::string input;
  std::string output;
  std::string format;
  int64_t block_size = 0;
  bool double_quant = false;
  std::vector<std::string> skip;
  int threads = 0;
  std::string config_json;
  bool quiet = false;
};

// A pattern with glob characters is matched with fnmatch against the whole name ('*' also
// crosses '.'); any other pattern matches names that contain it.
bool IsSkipped(const std::string& name, const std::vector<std::string>& patterns) {
  for (const std::string& p : patterns) {
    if (p.find_first_of("*?[") != std::string::npos) {
      if (::fnmatch(p.c_str(), name.c_str(), 0) == 0) return true;
    } else if (name.find(p) != std::string::npos) {
      return true;
    }
  }
  return false;
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Quantized: 2-D float tensors named "weight" or "*.weight" that no --skip pattern matches.
bool ShouldQuantize(const io::TensorInfo& t, const std::vector<std::string>& skip) {
  return t.shape.size() == 2 && IsFloatActivation(t.dtype) && t.shape[0] > 0 && t.shape[1] > 0 &&
         (t.name == "weight" || EndsWith(t.name, ".weight")) && !IsSkipped(t.name, skip);
}

// An upper bound of the output header: every key the chosen layout may write for a quantized
// module (docs: lowbit/io/checkpoint.h), with dimensions no statistic can exceed (the element
// count), so the writer never has to move the data region at Commit and the padding stays small.
uint64_t OutputHeaderBound(const io::SafetensorsFile& in, const std::vector<bool>& quantize,
                           Format format, io::TensorLayout layout, const io::Metadata& metadata) {
  static const char* const kBnb4[] = {"weight", "weight.absmax", "weight.quant_map",
                                      "weight.nested_absmax", "weight.nested_quant_map",
                                      "weight.quant_state.bitsandbytes__nf4"};
  static const char* const kBnb8[] = {"weight", "SCB", "weight_format"};
  static const char* const kLowbit[] = {
      "weight", "weight.lowbit_state", "weight.scales", "weight.zero_points", "weight.codebook",
      "weight.nested_codes", "weight.nested_absmax", "weight.nested_code", "weight.nested_offset"};
  static const char* const kDense[] = {"weight"};
  std::vector<const char*> keys;
  if (IsDense(format)) {
    keys.assign(std::begin(kDense), std::end(kDense));
  } else if (layout == io::TensorLayout::kBitsandbytes) {
    if (format == Format::kInt8) {
      keys.assign(std::begin(kBnb8), std::end(kBnb8));
    } else {
      keys.assign(std::begin(kBnb4), std::end(kBnb4));
    }
  } else {
    keys.assign(std::begin(kLowbit), std::end(kLowbit));
  }
  std::vector<io::TensorSpec> specs;
  for (size_t i = 0; i < in.tensors().size(); ++i) {
    const io::TensorInfo& t = in.tensors()[i];
    if (!quantize[i]) {
      specs.push_back({t.name, t.dtype, t.shape});
      continue;
    }
    const std::string prefix = t.name.substr(0, t.name.size() - 6);  // strip "weight"
    const int64_t n = std::max<int64_t>(t.num_elements(), 4096);  // >= any JSON state length
    for (const char* key : keys) specs.push_back({prefix + key, DType::kF32, {n, n}});
  }
  return io::SafetensorsHeaderBound(specs, metadata);
}

int RunQuantize(const QuantizeCommandOptions& o) {
  const Format format = ParseFormat(o.format);
  QuantizeOptions qopts;
  qopts.block_size = o.block_size;
  qopts.double_quant = o.double_quant;
  // bitsandbytes layout where bitsandbytes has one (nf4/fp4 blocks, LLM.int8 rows), else native.
  const io::TensorLayout layout =
      (format == Format::kNF4 || format == Format::kFP4 || format == Format::kInt8)
          ? io::TensorLayout::kBitsandbytes
          : io::TensorLayout::kAuto;
  if (!o.config_json.empty() && layout != io::TensorLayout::kBitsandbytes) {
    throw UsageError("--config-json needs a bitsandbytes format (nf4, fp4, int8)");
  }
  const auto start = std::chrono::steady_clock::now();
  const io::SafetensorsFile in = io::SafetensorsFile::Open(o.input);
  for (const io::CheckpointEntry& e : io::ListQuantizedModules(in)) {
    if (e.layout == io::TensorLayout::kBitsandbytes || e.layout == io::TensorLayout::kLowbit) {
      throw Error(Status::kInvalidArgument, "'" + o.input + "' is already quantized (" + e.name +
                                                " is " + e.format_name + "); dequantize it first");
    }
  }
  std::vector<bool> quantize;
  for (const io::TensorInfo& t : in.tensors()) quantize.push_back(ShouldQuantize(t, o.skip));

  io::Metadata metadata = in.metadata();
  metadata["lowbit.quantize"] = Fmt("format=%s block_size=%lld double_quant=%d", FormatName(format),
                                    static_cast<long long>(o.block_size), o.double_quant ? 1 : 0);
  io::SafetensorsWriter writer(o.output, metadata,
                               OutputHeaderBound(in, quantize, format, layout, metadata));
  Context ctx(o.threads);
  Progress progress(static_cast<int64_t>(in.tensors().size()), o.quiet);
  int64_t quantized = 0, copied = 0, weights = 0, quantized_bytes = 0, in_bytes = 0;
  for (size_t i = 0; i < in.tensors().size(); ++i) {
    const io::TensorInfo& t = in.tensors()[i];
    in_bytes += static_cast<int64_t>(t.size);
    if (!quantize[i]) {
      CopyTensor(in, t, writer);
      ++copied;
      progress.Step(t.name, Fmt("copied %s %s", DTypeName(t.dtype), ShapeToString(t.shape).c_str()));
      continue;
    }
    const QuantizedTensor q = QuantizeFromFile(in, t, format, qopts, ctx);
    io::SaveQuantizedTensor(writer, t.name.substr(0, t.name.size() - 6), q, layout);
    const QuantInfo qi = GetQuantInfo(q);
    ++quantized;
    weights += q.state.num_elements();
    quantized_bytes += qi.total_bytes;
    progress.Step(t.name, Fmt("%s %s %.3f bits/weight", FormatName(format),
                              ShapeToString(t.shape).c_str(), qi.bits_per_weight));
  }
  writer.Commit();
  progress.Finish();
  if (!o.config_json.empty()) {
    WriteBnbQuantizationConfig(o.config_json, format, o.double_quant, o.skip);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("wrote %s: %lld tensors quantized to %s (%s layout), %lld copied; %s -> %s",
              o.output.c_str(), static_cast<long long>(quantized), FormatName(format),
              layout == io::TensorLayout::kBitsandbytes ? "bitsandbytes" : "lowbit",
              static_cast<long long>(copied), HumanBytes(in_bytes).c_str(),
              HumanBytes(static_cast<int64_t>(io::SafetensorsFile::Open(o.output).file_size())).c_str());
  if (weights > 0) std::printf(", %.3f bits/weight", 8.0 * quantized_bytes / weights);
  std::printf(", %.2f s\n", seconds);
  return kExitOk;
}

struct DequantizeCommandOptions {
  std::string input;
  std::string output;
  std::string dtype;
  bool quiet = false;
};

int RunDequantize(const DequantizeCommandOptions& o) {
  DType forced = DType::kF32;
  const bool force_dtype = !o.dtype.empty();
  if (force_dtype) {
    try {
      forced = DTypeFromName(o.dtype);
    } catch (const Error&) {
      throw UsageError("--dtype must be f32, f16 or bf16, got '" + o.dtype + "'");
    }
    if (!IsFloatActivation(forced)) {
      throw UsageError("--dtype must be f32, f16 or bf16, got '" + o.dtype + "'");
    }
  }
  const io::SafetensorsFile in = io::SafetensorsFile::Open(o.input);
  const std::vector<io::CheckpointEntry> entries = io::ListQuantizedModules(in);
  io::SafetensorsWriter writer(o.output, in.metadata(),
                               in.header_size() + 64 * (entries.size() + 1) + 4096);
  Progress progress(static_cast<int64_t>(entries.size()), o.quiet);
  int64_t restored = 0;
  for (const io::CheckpointEntry& e : entries) {
    const bool quantized =
        e.layout == io::TensorLayout::kBitsandbytes || e.layout == io::TensorLayout::kLowbit;
    if (!quantized) {
      const io::TensorInfo& t = in.Get(e.name);
      if (force_dtype && IsFloatActivation(t.dtype) && t.dtype != forced) {
        // --dtype makes every float tensor that dtype, plain ones included.
        const std::vector<float> f32 = in.CopyAsF32(t);
        std::vector<uint8_t> out(f32.size() * DTypeSize(forced));
        FromF32(f32.data(), static_cast<int64_t>(f32.size()), out.data(), forced);
        writer.Add(t.name, forced, t.shape, out.data(), out.size());
        progress.Step(e.name, Fmt("%s -> %s", DTypeName(t.dtype), DTypeName(forced)));
        continue;
      }
      CopyTensor(in, t, writer);
      progress.Step(e.name, "copied");
      continue;
    }
    const QuantizedTensor q = io::LoadQuantizedTensor(in, e.prefix);
    const DType dtype = force_dtype ? forced : q.state.dtype;
    std::vector<uint8_t> out(static_cast<size_t>(q.state.num_elements()) * DTypeSize(dtype));
    Dequantize(q, TensorView{out.data(), dtype, q.state.shape});
    writer.Add(e.prefix + "weight", dtype, q.state.shape, out.data(), out.size());
    ++restored;
    progress.Step(e.name, Fmt("%s -> %s", e.format_name.c_str(), DTypeName(dtype)));
  }
  writer.Commit();
  progress.Finish();
  std::printf("wrote %s: %lld tensors dequantized, %lld copied\n", o.output.c_str(),
              static_cast<long long>(restored),
              static_cast<long long>(entries.size()) - static_cast<long long>(restored));
  return kExitOk;
}

}  // namespace

Subcommand AddQuantizeCommand(CLI::App& app) {
  auto o = std::make_shared<QuantizeCommandOptions>();
  CLI::App* sub = app.add_subcommand(
      "quantize", "Quantize every 2-D *.weight tensor of a safetensors file; copy the rest.");
  sub->add_option("input", o->input, "input .safetensors file")->required();
  sub->add_option("output", o->output, "output .safetensors file (written atomically)")->required();
  sub->add_option("-f,--format", o->format, "target format: " + FormatNameList())->required();
  sub->add_option("-b,--blocksize", o->block_size,
                  "block (nf4/fp4/blockwise8) or group (int4) size; 0 = format default")
      ->check(CLI::NonNegativeNumber);
  sub->add_flag("--double-quant", o->double_quant,
                "double-quantize the absmax (nf4, fp4, blockwise8; bitsandbytes "
                "compress_statistics)");
  sub->add_option("--skip", o->skip,
                  "leave matching tensors unquantized (repeatable). Patterns with * ? [ are globs "
                  "over the whole name ('*' crosses dots); others match as substrings");
  sub->add_option("-j,--threads", o->threads, "worker threads; 0 = all cores")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--config-json", o->config_json,
                  "also write a config.json holding the transformers quantization_config block "
                  "(nf4, fp4, int8)");
  sub->add_flag("-q,--quiet", o->quiet, "no per-tensor progress");
  sub->footer("nf4/fp4/int8 are written in the bitsandbytes layout (loadable by transformers); "
              "other formats in lowbit's native layout. See docs/cli.md.");
  return {sub, [o] { return RunQuantize(*o); }};
}

Subcommand AddDequantizeCommand(CLI::App& app) {
  auto o = std::make_shared<DequantizeCommandOptions>();
  CLI::App* sub = app.add_subcommand(
      "dequantize", "Turn every quantized tensor of a safetensors file back into floats.");
  sub->add_option("input", o->input, "quantized .safetensors file (bitsandbytes or lowbit)")
      ->required();
  sub->add_option("output", o->output, "output .safetensors file")->required();
  sub->add_option("--dtype", o->dtype,
                  "f32, f16 or bf16 for every float tensor, plain ones included (default: each "
                  "quantized tensor's original dtype; plain tensors copied as they are)");
  sub->add_flag("-q,--quiet", o->quiet, "no per-tensor progress");
  return {sub, [o] { return RunDequantize(*o); }};
}

}  // namespace lowbit::cli
