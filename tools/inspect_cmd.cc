// tools/inspect_cmd.cc — `lowbit inspect` (what a checkpoint holds) and `lowbit error` (how far a
// quantized checkpoint is from its original).
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cli.h"
#include "lowbit/io/checkpoint.h"
#include "lowbit/io/safetensors.h"
#include "lowbit/quantize.h"

namespace lowbit::cli {
namespace {

bool IsQuantized(const io::CheckpointEntry& e) {
  return e.layout == io::TensorLayout::kBitsandbytes || e.layout == io::TensorLayout::kLowbit;
}

std::string FormatColumn(const io::CheckpointEntry& e) {
  std::string s = e.format_name;
  if (e.block_size > 0) s += Fmt(" b%lld", static_cast<long long>(e.block_size));
  if (e.double_quant) s += " dq";
  return s;
}

struct InspectOptions {
  std::string path;
  bool metadata = false;
  bool no_conversion_error = false;
};

int RunInspect(const InspectOptions& o) {
  if (InputFileKind(o.path) == FileKind::kGguf) {
    return RunInspectGguf(o.path, o.metadata, !o.no_conversion_error);
  }
  const io::SafetensorsFile file = io::SafetensorsFile::Open(o.path);
  const std::vector<io::CheckpointEntry> entries = io::ListQuantizedModules(file);
  Table table({"name", "format", "layout", "shape", "bytes", "bits/weight"});
  int64_t total_bytes = 0, quantized_bytes = 0, quantized_weights = 0, num_quantized = 0;
  for (const io::CheckpointEntry& e : entries) {
    table.AddRow({e.name, FormatColumn(e), io::TensorLayoutName(e.layout), ShapeToString(e.shape),
                  Fmt("%lld", static_cast<long long>(e.bytes)), Fmt("%.3f", e.bits_per_weight)});
    total_bytes += e.bytes;
    if (IsQuantized(e)) {
      ++num_quantized;
      quantized_bytes += e.bytes;
      quantized_weights += NumElements(e.shape);
    }
  }
  std::printf("%s: %zu tensors in %zu entries, %s (header %llu bytes)\n", o.path.c_str(),
              file.tensors().size(), entries.size(), HumanBytes(total_bytes).c_str(),
              static_cast<unsigned long long>(file.header_size()));
  if (o.metadata) {
    for (const auto& [key, value] : file.metadata()) {
      std::printf("  metadata %s = %s\n", key.c_str(), value.c_str());
    }
  }
  std::printf("\n");
  table.Print(stdout);
  if (num_quantized > 0) {
    std::printf("\n%lld quantized tensors: %lld weights in %s, %.3f bits/weight\n",
                static_cast<long long>(num_quantized), static_cast<long long>(quantized_weights),
                HumanBytes(quantized_bytes).c_str(),
                8.0 * static_cast<double>(quantized_bytes) / static_cast<double>(quantized_weights));
  }
  return kExitOk;
}

struct ErrorOptions {
  std::string original;
  std::string quantized;
};

int RunError(const ErrorOptions& o) {
  if (InputFileKind(o.original) == FileKind::kGguf || InputFileKind(o.quantized) == FileKind::kGguf) {
    return RunErrorGguf(o.original, o.quantized);
  }
  const io::SafetensorsFile orig = io::SafetensorsFile::Open(o.original);
  const io::SafetensorsFile quant = io::SafetensorsFile::Open(o.quantized);
  Table table({"name", "format", "shape", "mean abs err", "max abs err", "rel L2 err", "SNR dB"});
  double sum_abs = 0, sum_sq = 0, sum_ref_sq = 0, max_abs = 0;
  int64_t count = 0, compared = 0;
  for (const io::CheckpointEntry& e : io::ListQuantizedModules(quant)) {
    if (!IsQuantized(e)) continue;
    const io::TensorInfo* ref = orig.Find(e.name);
    if (ref == nullptr) {
      throw Error(Status::kInvalidArgument, "'" + o.original + "' has no tensor '" + e.name +
                                                "' (quantized in '" + o.quantized + "')");
    }
    if (ref->shape != e.shape || !IsFloatActivation(ref->dtype)) {
      throw Error(Status::kInvalidArgument,
                  "'" + e.name + "' is " + DTypeName(ref->dtype) + " " +
                      ShapeToString(ref->shape) + " in the original but " +
                      ShapeToString(e.shape) + " quantized");
    }
    const std::vector<float> a = orig.CopyAsF32(*ref);
    const std::vector<float> b = DequantizeToF32(io::LoadQuantizedTensor(quant, e.prefix));
    const int64_t n = static_cast<int64_t>(a.size());
    const ErrorStats s = EstimateError({a.data(), DType::kF32, {n}}, {b.data(), DType::kF32, {n}});
    table.AddRow({e.name, FormatColumn(e), ShapeToString(e.shape), Fmt("%.3e", s.mean_abs),
                  Fmt("%.3e", s.max_abs), Fmt("%.3e", s.rel_l2),
                  std::isfinite(s.snr_db) ? Fmt("%.2f", s.snr_db) : "inf"});
    // Totals over all compared weights (sums recovered from the per-tensor means).
    sum_abs += s.mean_abs * n;
    sum_sq += s.mse * n;
    for (const float v : a) sum_ref_sq += static_cast<double>(v) * v;
    max_abs = std::max(max_abs, s.max_abs);
    count += n;
    ++compared;
  }
  if (compared == 0) {
    throw Error(Status::kInvalidArgument, "'" + o.quantized + "' holds no quantized tensor");
  }
  const double rel_l2 = sum_ref_sq > 0 ? std::sqrt(sum_sq / sum_ref_sq) : 0.0;
  const double snr = sum_sq > 0 ? 10.0 * std::log10(sum_ref_sq / sum_sq)
                                : std::numeric_limits<double>::infinity();
  table.AddRow({"TOTAL", "", Fmt("%lld weights", static_cast<long long>(count)),
                Fmt("%.3e", sum_abs / count), Fmt("%.3e", max_abs), Fmt("%.3e", rel_l2),
                std::isfinite(snr) ? Fmt("%.2f", snr) : "inf"});
  table.Print(stdout);
  return kExitOk;
}

}  // namespace

Subcommand AddInspectCommand(CLI::App& app) {
  auto o = std::make_shared<InspectOptions>();
  CLI::App* sub = app.add_subcommand(
      "inspect",
      "List the tensors of a safetensors file (plain, bitsandbytes or lowbit layout) or a GGUF "
      "file (ggml types, the lowbit format each loads as, the conversion error).");
  sub->add_option("file", o->path, ".safetensors or .gguf file")->required();
  sub->add_flag("-m,--metadata", o->metadata,
                "also print the __metadata__ entries (GGUF: every metadata key/value)");
  sub->add_flag("--no-conversion-error", o->no_conversion_error,
                "GGUF: skip measuring each tensor's conversion error (faster on large files)");
  return {sub, [o] { return RunInspect(*o); }};
}

Subcommand AddErrorCommand(CLI::App& app) {
  auto o = std::make_shared<ErrorOptions>();
  CLI::App* sub = app.add_subcommand(
      "error", "Per-tensor and total error of a quantized file against the original.");
  sub->add_option("original", o->original, "original (float) .safetensors or .gguf file")
      ->required();
  sub->add_option("quantized", o->quantized, "quantized .safetensors or .gguf file")->required();
  return {sub, [o] { return RunError(*o); }};
}

}  // namespace lowbit::cli
