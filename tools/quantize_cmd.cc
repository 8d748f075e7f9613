// tools/quantize_cmd.cc — `lowbit quantize` and `lowbit dequantize`: safetensors in, safetensors
// out, tensor by tensor with bounded memory.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cli.h"
#include "lowbit/calibrate/awq.h"
#include "lowbit/calibrate/gptq.h"
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
  // Calibrated quantization (docs/cli.md "Calibration file").
  std::string method = "rtn";
  std::string calibration;
  bool allow_uncalibrated = false;
  bool act_order = false;
  double percdamp = 0.01;
  // GGUF output (docs/cli.md "GGUF").
  std::string gguf_name;
  std::string gguf_arch;
  std::vector<std::string> gguf_kv;
};

enum class Method { kRoundToNearest, kGptq, kAwq };

// Suffix of a calibration tensor: "<module>.inputs" holds the inputs X [T, K] of the linear
// layer whose weight is "<module>.weight" [N, K].
constexpr const char kCalibrationSuffix[] = ".inputs";
// Suffix of the AWQ per-input-channel scale written next to a module: the layer computes
// Q (x ⊘ s)ᵀ, i.e. its effective weight is Dequantize(Q) · diag(1 / s).
constexpr const char kAwqScaleSuffix[] = ".awq_scale";

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Quantized: 2-D float tensors named "weight" or "*.weight" that no --skip pattern matches.
bool ShouldQuantize(const io::TensorInfo& t, const std::vector<std::string>& skip) {
  return ShouldQuantizeTensor(t.name, t.dtype, t.shape, skip);
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

Method ParseMethod(const std::string& name) {
  if (name == "rtn") return Method::kRoundToNearest;
  if (name == "gptq") return Method::kGptq;
  if (name == "awq") return Method::kAwq;
  throw UsageError("--method must be rtn, gptq or awq, got '" + name + "'");
}

// The module ("<module>.weight" minus ".weight") of a weight name; "" for a bare "weight".
std::string ModuleOf(const std::string& weight_name) {
  return weight_name == "weight" ? "" : weight_name.substr(0, weight_name.size() - 7);
}

// Checks the calibration file against the input before anything is written: every entry is
// "<module>.inputs", 2-D [T >= 1, K] f32/f16/bf16, finite, and names a 2-D weight
// "<module>.weight" of the input with K columns. Returns, per input tensor, the calibration
// entry for it (nullptr: none, or the weight is not quantized). Throws Error(kCorruptData) naming
// the offending entry (exit code 1).
std::vector<const io::TensorInfo*> MatchCalibration(const io::SafetensorsFile& in,
                                                    const io::SafetensorsFile& cal,
                                                    const std::vector<bool>& quantize) {
  const std::string where = "calibration file '" + cal.path() + "': ";
  for (const io::TensorInfo& c : cal.tensors()) {
    Require(EndsWith(c.name, kCalibrationSuffix) && c.name.size() > 7, Status::kCorruptData,
            where + "tensor '" + c.name + "' is not named '<module>.inputs'");
    const std::string weight = c.name.substr(0, c.name.size() - 7) + ".weight";
    const io::TensorInfo* w = in.Find(weight);
    Require(w != nullptr, Status::kCorruptData,
            where + "'" + c.name + "' has no weight '" + weight + "' in '" + in.path() + "'");
    Require(IsFloatActivation(c.dtype), Status::kCorruptData,
            where + "'" + c.name + "' has dtype " + DTypeName(c.dtype) + "; need f32, f16 or bf16");
    Require(w->shape.size() == 2 && c.shape.size() == 2 && c.shape[0] >= 1 &&
                c.shape[1] == w->shape[1],
            Status::kCorruptData,
            where + "'" + c.name + "' has shape " + ShapeToString(c.shape) + "; weight '" + weight +
                "' is " + ShapeToString(w->shape) + ", so the inputs must be [samples >= 1, " +
                (w->shape.size() == 2 ? std::to_string(w->shape[1]) : std::string("in")) + "]");
    const std::vector<float> x = cal.CopyAsF32(c);
    for (size_t i = 0; i < x.size(); ++i) {
      if (!std::isfinite(x[i])) {
        throw Error(Status::kCorruptData, where + "'" + c.name +
                                                  "' holds a non-finite value at flat index " +
                                                  std::to_string(i));
      }
    }
  }
  std::vector<const io::TensorInfo*> match(in.tensors().size(), nullptr);
  for (size_t i = 0; i < in.tensors().size(); ++i) {
    if (!quantize[i]) continue;
    match[i] = cal.Find(ModuleOf(in.tensors()[i].name) + kCalibrationSuffix);
  }
  return match;
}

// GGUF in or out: checks the options that only apply to safetensors and hands over.
int RunQuantizeGguf(const QuantizeCommandOptions& o, FileKind out_kind) {
  if (o.method != "rtn" || !o.calibration.empty() || o.allow_uncalibrated || o.act_order) {
    throw UsageError("--method, --calibration, --allow-uncalibrated and --act-order need "
                     "safetensors in and out; calibrate to int4 with group size 32 first (-b 32), "
                     "then export that file to GGUF q4_0");
  }
  if (!o.config_json.empty()) throw UsageError("--config-json needs a safetensors output");
  GgufQuantizeArgs a;
  a.input = o.input;
  a.output = o.output;
  a.format = o.format;
  a.skip = o.skip;
  a.gguf_name = o.gguf_name;
  a.gguf_arch = o.gguf_arch;
  a.gguf_kv = o.gguf_kv;
  a.block_size = o.block_size;
  a.double_quant = o.double_quant;
  a.threads = o.threads;
  a.quiet = o.quiet;
  if (out_kind == FileKind::kGguf) {
    if (o.block_size != 0 || o.double_quant) {
      throw UsageError("--blocksize and --double-quant do not apply to GGUF output (ggml types "
                       "have fixed blocks)");
    }
    return RunQuantizeToGguf(a);
  }
  if (!o.gguf_name.empty() || !o.gguf_arch.empty() || !o.gguf_kv.empty()) {
    throw UsageError("--gguf-name, --gguf-arch and --gguf-kv need a .gguf output");
  }
  return RunQuantizeGgufToSafetensors(a);
}

int RunQuantize(const QuantizeCommandOptions& o) {
  const FileKind in_kind = InputFileKind(o.input);
  const FileKind out_kind = OutputFileKind(o.output);
  if (in_kind == FileKind::kGguf || out_kind == FileKind::kGguf) return RunQuantizeGguf(o, out_kind);
  if (!o.gguf_name.empty() || !o.gguf_arch.empty() || !o.gguf_kv.empty()) {
    throw UsageError("--gguf-name, --gguf-arch and --gguf-kv need a .gguf output");
  }
  const Format format = ParseFormat(o.format);
  const Method method = ParseMethod(o.method);
  const bool calibrated = method != Method::kRoundToNearest;
  if (calibrated) {
    if (o.calibration.empty()) throw UsageError("--method " + o.method + " needs --calibration FILE");
    if (format != Format::kInt4 && format != Format::kInt4Asym) {
      throw UsageError("--method " + o.method + " produces int4 or int4_asym, not " +
                       std::string(FormatName(format)));
    }
    if (o.double_quant) throw UsageError("--double-quant does not apply to int4");
    if (!(o.percdamp > 0)) throw UsageError("--percdamp must be > 0");
  } else if (!o.calibration.empty() || o.allow_uncalibrated || o.act_order) {
    throw UsageError("--calibration, --allow-uncalibrated and --act-order need --method gptq or awq");
  }
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

  // Calibration is validated in full before the output is opened, so a bad file writes nothing.
  std::optional<io::SafetensorsFile> cal;
  std::vector<const io::TensorInfo*> cal_for(in.tensors().size(), nullptr);
  if (calibrated) {
    cal = io::SafetensorsFile::Open(o.calibration);
    cal_for = MatchCalibration(in, *cal, quantize);
    std::vector<std::string> missing;
    for (size_t i = 0; i < quantize.size(); ++i) {
      if (quantize[i] && cal_for[i] == nullptr) missing.push_back(in.tensors()[i].name);
    }
    if (!missing.empty() && !o.allow_uncalibrated) {
      std::string names;
      for (size_t i = 0; i < missing.size() && i < 5; ++i) names += (i ? ", " : "") + missing[i];
      if (missing.size() > 5) names += Fmt(", ... (%zu in all)", missing.size());
      throw Error(Status::kInvalidArgument,
                  Fmt("%zu weight(s) to quantize have no '<module>.inputs' entry in '%s': %s. Add "
                      "them, exclude them with --skip, or pass --allow-uncalibrated to quantize "
                      "them with round-to-nearest",
                      missing.size(), o.calibration.c_str(), names.c_str()));
    }
  }
  const int64_t group_size = o.block_size > 0 ? o.block_size : GetFormatInfo(format).default_block;

  io::Metadata metadata = in.metadata();
  metadata["lowbit.quantize"] =
      Fmt("format=%s block_size=%lld double_quant=%d method=%s", FormatName(format),
          static_cast<long long>(o.block_size), o.double_quant ? 1 : 0, o.method.c_str());
  uint64_t header_bound = OutputHeaderBound(in, quantize, format, layout, metadata);
  if (method == Method::kAwq) {
    std::vector<io::TensorSpec> scales;
    for (size_t i = 0; i < in.tensors().size(); ++i) {
      if (cal_for[i] != nullptr) {
        scales.push_back({ModuleOf(in.tensors()[i].name) + kAwqScaleSuffix, DType::kF32,
                          {in.tensors()[i].shape[1]}});
      }
    }
    header_bound += io::SafetensorsHeaderBound(scales, {});
  }
  io::SafetensorsWriter writer(o.output, metadata, header_bound);
  Context ctx(o.threads);
  Progress progress(static_cast<int64_t>(in.tensors().size()), o.quiet);
  int64_t quantized = 0, copied = 0, weights = 0, quantized_bytes = 0, in_bytes = 0;
  int64_t with_calibration = 0;
  for (size_t i = 0; i < in.tensors().size(); ++i) {
    const io::TensorInfo& t = in.tensors()[i];
    in_bytes += static_cast<int64_t>(t.size);
    if (!quantize[i]) {
      CopyTensor(in, t, writer);
      ++copied;
      progress.Step(t.name, Fmt("copied %s %s", DTypeName(t.dtype), ShapeToString(t.shape).c_str()));
      continue;
    }
    QuantizedTensor q;
    std::string how = "rtn";
    if (cal_for[i] == nullptr) {
      q = QuantizeFromFile(in, t, format, qopts, ctx);
    } else {
      const std::vector<float> w = in.CopyAsF32(t);
      const std::vector<float> x = cal->CopyAsF32(*cal_for[i]);
      const ConstTensorView wv{w.data(), DType::kF32, t.shape};
      const ConstTensorView xv{x.data(), DType::kF32, cal_for[i]->shape};
      if (method == Method::kGptq) {
        calibrate::GptqOptions g;
        g.format = format;
        g.group_size = group_size;
        g.percdamp = o.percdamp;
        g.act_order = o.act_order;
        calibrate::GptqStats stats;
        q = calibrate::GptqQuantize(wv, xv, g, &stats);
        how = Fmt("gptq (damp %.3g)", stats.damp);
      } else {
        calibrate::AwqOptions a;
        a.format = format;
        a.group_size = group_size;
        calibrate::AwqResult r = calibrate::AwqQuantize({wv}, xv, a);
        q = std::move(r.weights[0]);
        const std::vector<float>& s = r.input_scales;
        writer.Add(ModuleOf(t.name) + kAwqScaleSuffix, DType::kF32,
                   {static_cast<int64_t>(s.size())}, s.data(), s.size() * sizeof(float));
        quantized_bytes += static_cast<int64_t>(s.size() * sizeof(float));  // part of the module
        how = Fmt("awq (alpha %.2f%s, output error %.3g vs rtn %.3g)", r.alpha,
                  r.clipped ? ", clipped" : "", r.error, r.rtn_error);
      }
      q.state.dtype = t.dtype;  // dequantizes to the stored dtype, as the streaming path
      ++with_calibration;
    }
    io::SaveQuantizedTensor(writer, t.name.substr(0, t.name.size() - 6), q, layout);
    const QuantInfo qi = GetQuantInfo(q);
    ++quantized;
    weights += q.state.num_elements();
    quantized_bytes += qi.total_bytes;
    progress.Step(t.name, Fmt("%s %s %.3f bits/weight%s", FormatName(format),
                              ShapeToString(t.shape).c_str(), qi.bits_per_weight,
                              calibrated ? (", " + how).c_str() : ""));
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
  if (calibrated) {
    std::printf("%s: %lld tensors calibrated from %s, %lld round-to-nearest (no calibration "
                "entry)%s\n",
                o.method.c_str(), static_cast<long long>(with_calibration), o.calibration.c_str(),
                static_cast<long long>(quantized - with_calibration),
                method == Method::kAwq ? "; each AWQ module has a '<module>.awq_scale' [in] f32: "
                                         "the layer must divide its input by it"
                                       : "");
  }
  return kExitOk;
}

struct DequantizeCommandOptions {
  std::string input;
  std::string output;
  std::string dtype;
  bool quiet = false;
};

// Whether plain tensor `name` is "<module>.awq_scale" of a quantized "<module>.weight" (its
// scales are folded into the dequantized weight instead of being copied).
bool IsFoldedAwqScale(const io::SafetensorsFile& in, const std::string& name) {
  if (!EndsWith(name, kAwqScaleSuffix)) return false;
  const std::string prefix = name.substr(0, name.size() - std::strlen(kAwqScaleSuffix) + 1);
  for (const io::CheckpointEntry& e : io::ListQuantizedModules(in)) {
    if (e.prefix == prefix && (e.layout == io::TensorLayout::kBitsandbytes ||
                               e.layout == io::TensorLayout::kLowbit)) {
      return true;
    }
  }
  return false;
}

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
  if (OutputFileKind(o.output) == FileKind::kGguf) {
    throw UsageError("dequantize writes safetensors; name the output .safetensors (GGUF output: "
                     "'lowbit quantize IN OUT.gguf --format f32|f16|bf16')");
  }
  if (InputFileKind(o.input) == FileKind::kGguf) {
    return RunDequantizeGguf(o.input, o.output, o.dtype, o.quiet);
  }
  const io::SafetensorsFile in = io::SafetensorsFile::Open(o.input);
  const std::vector<io::CheckpointEntry> entries = io::ListQuantizedModules(in);
  io::SafetensorsWriter writer(o.output, in.metadata(),
                               in.header_size() + 64 * (entries.size() + 1) + 4096);
  Progress progress(static_cast<int64_t>(entries.size()), o.quiet);
  int64_t restored = 0, folded = 0;
  for (const io::CheckpointEntry& e : entries) {
    const bool quantized =
        e.layout == io::TensorLayout::kBitsandbytes || e.layout == io::TensorLayout::kLowbit;
    if (!quantized) {
      if (IsFoldedAwqScale(in, e.name)) {
        ++folded;
        progress.Step(e.name, "folded into its weight");
        continue;
      }
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
    const io::TensorInfo* awq = in.Find(e.prefix + (kAwqScaleSuffix + 1));
    if (awq != nullptr && q.state.shape.size() == 2) {
      // AWQ: the effective weight is Dequantize(Q) · diag(1 / s).
      const int64_t k = q.state.shape[1];
      Require(awq->shape == Shape{k} && IsFloatActivation(awq->dtype), Status::kCorruptData,
              "'" + awq->name + "' must be a float vector of " + std::to_string(k) + " scales");
      const std::vector<float> s = in.CopyAsF32(*awq);
      std::vector<float> w(static_cast<size_t>(q.state.num_elements()));
      Dequantize(q, TensorView{w.data(), DType::kF32, q.state.shape});
      for (size_t i = 0; i < w.size(); ++i) w[i] /= s[i % static_cast<size_t>(k)];
      FromF32(w.data(), static_cast<int64_t>(w.size()), out.data(), dtype);
    } else {
      Dequantize(q, TensorView{out.data(), dtype, q.state.shape});
    }
    writer.Add(e.prefix + "weight", dtype, q.state.shape, out.data(), out.size());
    ++restored;
    progress.Step(e.name, Fmt("%s -> %s", e.format_name.c_str(), DTypeName(dtype)));
  }
  writer.Commit();
  progress.Finish();
  std::printf("wrote %s: %lld tensors dequantized, %lld copied", o.output.c_str(),
              static_cast<long long>(restored),
              static_cast<long long>(entries.size()) - static_cast<long long>(restored + folded));
  if (folded > 0) {
    std::printf("; %lld AWQ input scales folded into their weights", static_cast<long long>(folded));
  }
  std::printf("\n");
  return kExitOk;
}

}  // namespace

Subcommand AddQuantizeCommand(CLI::App& app) {
  auto o = std::make_shared<QuantizeCommandOptions>();
  CLI::App* sub = app.add_subcommand(
      "quantize",
      "Quantize every 2-D *.weight tensor of a safetensors or GGUF file; copy the rest.");
  sub->add_option("input", o->input, "input .safetensors or .gguf file")->required();
  sub->add_option("output", o->output, "output .safetensors or .gguf file (written atomically)")
      ->required();
  sub->add_option("-f,--format", o->format,
                  "target format: " + FormatNameList() + "; for a .gguf output: q4_0, q8_0, f16, "
                  "bf16, f32")
      ->required();
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
  sub->add_option("--method", o->method,
                  "rtn (round-to-nearest, default), gptq or awq (int4/int4_asym; need "
                  "--calibration)");
  sub->add_option("--calibration", o->calibration,
                  "safetensors file of calibration inputs: '<module>.inputs' [samples, in] "
                  "(f32/f16/bf16) for weight '<module>.weight' (docs/cli.md)");
  sub->add_flag("--allow-uncalibrated", o->allow_uncalibrated,
                "quantize weights without a calibration entry with round-to-nearest instead of "
                "failing");
  sub->add_flag("--act-order", o->act_order, "gptq: quantize columns by decreasing Hessian diagonal");
  sub->add_option("--percdamp", o->percdamp,
                  "gptq: dampening as a fraction of the mean Hessian diagonal (default 0.01)");
  sub->add_option("--gguf-name", o->gguf_name, "GGUF output: general.name");
  sub->add_option("--gguf-arch", o->gguf_arch, "GGUF output: general.architecture (e.g. llama)");
  sub->add_option("--gguf-kv", o->gguf_kv,
                  "GGUF output: extra metadata KEY=TYPE:VALUE (repeatable; TYPE one of u8 i8 u16 "
                  "i16 u32 i32 u64 i64 f32 f64 bool str)");
  sub->add_flag("-q,--quiet", o->quiet, "no per-tensor progress");
  sub->footer("nf4/fp4/int8 are written in the bitsandbytes layout (loadable by transformers); "
              "other formats in lowbit's native layout. An OUTPUT named .gguf is written as GGUF "
              "with --format q4_0, q8_0, f16, bf16 or f32 (q4_0/q8_0 byte-identical to ggml's "
              "reference quantizers); an INPUT may be .gguf. See docs/cli.md.");
  return {sub, [o] { return RunQuantize(*o); }};
}

Subcommand AddDequantizeCommand(CLI::App& app) {
  auto o = std::make_shared<DequantizeCommandOptions>();
  CLI::App* sub = app.add_subcommand(
      "dequantize",
      "Turn every quantized tensor of a safetensors or GGUF file back into floats (safetensors).");
  sub->add_option("input", o->input,
                  "quantized .safetensors file (bitsandbytes or lowbit) or .gguf file")
      ->required();
  sub->add_option("output", o->output, "output .safetensors file")->required();
  sub->add_option("--dtype", o->dtype,
                  "f32, f16 or bf16 for every float tensor, plain ones included (default: each "
                  "quantized tensor's original dtype; plain tensors copied as they are)");
  sub->add_flag("-q,--quiet", o->quiet, "no per-tensor progress");
  return {sub, [o] { return RunDequantize(*o); }};
}

}  // namespace lowbit::cli
