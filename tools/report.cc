// tools/report.cc — `lowbit report`: quantizes a realistic weight set with every format and
// prints size and weight error per format (the main job on a real model is lowbit-demo).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "lowbit/format.h"
#include "lowbit/quantize.h"
#include "weights.h"

namespace lowbit::cli {
namespace {

struct Variant {
  Format format;
  int64_t block_size;  // 0 = format default (no block for row-wise formats)
  bool double_quant;
  std::string label;
};

// Every format at the settings people actually use (bitsandbytes defaults for nf4/fp4/blockwise8,
// the usual GPTQ/AWQ group sizes for int4).
std::vector<Variant> ReportVariants() {
  return {
      {Format::kF16, 0, false, "f16"},
      {Format::kBF16, 0, false, "bf16"},
      {Format::kInt8, 0, false, "int8 (row)"},
      {Format::kInt8Asym, 0, false, "int8_asym (row)"},
      {Format::kFP8E4M3, 0, false, "fp8_e4m3 (row)"},
      {Format::kFP8E5M2, 0, false, "fp8_e5m2 (row)"},
      {Format::kBlockwise8, 4096, false, "blockwise8 b4096"},
      {Format::kInt4, 32, false, "int4 g32"},
      {Format::kInt4, 64, false, "int4 g64"},
      {Format::kInt4, 128, false, "int4 g128"},
      {Format::kInt4Asym, 128, false, "int4_asym g128"},
      {Format::kNF4, 64, false, "nf4 b64"},
      {Format::kNF4, 64, true, "nf4 b64 dq"},
      {Format::kFP4, 64, false, "fp4 b64"},
      {Format::kFP4, 64, true, "fp4 b64 dq"},
      {Format::kMXFP4, 0, false, "mxfp4 (g32, E8M0)"},
      {Format::kNVFP4, 0, false, "nvfp4 (g16, E4M3 + f32)"},
      {Format::kIQ4NL, 0, false, "iq4_nl (g32, f16)"},
  };
}

struct VariantResult {
  const Variant* variant;
  int64_t bytes = 0;
  double bits_per_weight = 0;
  double mean_abs = 0;
  double rel_l2 = 0;
  double snr_db = 0;
  double max_abs = 0;
  double quantize_ms = 0;  // median over the repeats, all tensors together
};

// The JSON writer cannot store +inf; exact reconstructions report null.
nlohmann::json FiniteOrNull(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
}

VariantResult Evaluate(const Variant& v, const std::vector<NamedWeight>& weights, int repeats) {
  QuantizeOptions options;
  options.double_quant = v.double_quant;
  if (!IsDense(v.format) && GetFormatInfo(v.format).default_block > 0) {
    options.block_size = v.block_size;
  }
  VariantResult r;
  r.variant = &v;
  std::vector<double> times;
  double sum_abs = 0, sum_sq = 0, sum_ref_sq = 0;
  int64_t count = 0;
  for (int rep = 0; rep < repeats; ++rep) {
    double elapsed_ms = 0;
    for (const NamedWeight& w : weights) {
      const ConstTensorView view{w.values.data(), DType::kF32, w.shape};
      const auto start = std::chrono::steady_clock::now();
      QuantizedTensor q = Quantize(v.format, view, options);
      elapsed_ms +=
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
              .count();
      if (rep > 0) continue;
      r.bytes += GetQuantInfo(q).total_bytes;
      const std::vector<float> back = DequantizeToF32(q);
      for (size_t i = 0; i < back.size(); ++i) {
        const double a = w.values[i];
        const double d = a - back[i];
        sum_abs += std::fabs(d);
        sum_sq += d * d;
        sum_ref_sq += a * a;
        r.max_abs = std::max(r.max_abs, std::fabs(d));
      }
      count += static_cast<int64_t>(back.size());
    }
    times.push_back(elapsed_ms);
  }
  std::sort(times.begin(), times.end());
  r.quantize_ms = times[times.size() / 2];
  r.bits_per_weight = 8.0 * static_cast<double>(r.bytes) / static_cast<double>(count);
  r.mean_abs = sum_abs / static_cast<double>(count);
  r.rel_l2 = sum_ref_sq > 0 ? std::sqrt(sum_sq / sum_ref_sq) : 0.0;
  r.snr_db = sum_sq > 0 ? 10.0 * std::log10(sum_ref_sq / sum_sq)
                        : std::numeric_limits<double>::infinity();
  return r;
}

struct ReportOptions {
  std::string model;
  std::string json_path;
  bool synthetic = false;
  int repeats = 3;
};

int RunReport(const ReportOptions& o) {
  WeightSet set;
  if (o.synthetic) {
    set = SyntheticWeightSet();
  } else if (!o.model.empty()) {
    set = LoadTwoDimensionalWeights(o.model);  // an explicit path must work: no fallback
  } else {
    const std::string path = DefaultModelPath();
    set = path.empty() ? SyntheticWeightSet() : LoadTwoDimensionalWeights(path);
  }
  int64_t elements = 0;
  for (const NamedWeight& w : set.weights) elements += static_cast<int64_t>(w.values.size());
  std::printf("lowbit report: %s\n", set.description.c_str());
  std::printf("%zu tensors, %lld weights (%s as f32); quantize time = median of %d runs, one "
              "thread, all tensors\n\n",
              set.weights.size(), static_cast<long long>(elements),
              HumanBytes(elements * 4).c_str(), o.repeats);

  const std::vector<Variant> variants = ReportVariants();
  Table table({"format", "bits/weight", "bytes", "mean abs err", "rel L2 err", "SNR dB",
               "quantize ms"});
  nlohmann::json results = nlohmann::json::array();
  for (const Variant& v : variants) {
    const VariantResult r = Evaluate(v, set.weights, o.repeats);
    table.AddRow({v.label, Fmt("%.3f", r.bits_per_weight), Fmt("%lld", (long long)r.bytes),
                  Fmt("%.3e", r.mean_abs), Fmt("%.3e", r.rel_l2),
                  std::isfinite(r.snr_db) ? Fmt("%.2f", r.snr_db) : "inf",
                  Fmt("%.2f", r.quantize_ms)});
    results.push_back({{"label", v.label},
                       {"format", FormatName(v.format)},
                       {"block_size", v.block_size},
                       {"double_quant", v.double_quant},
                       {"bits_per_weight", r.bits_per_weight},
                       {"bytes", r.bytes},
                       {"mean_abs_error", r.mean_abs},
                       {"max_abs_error", r.max_abs},
                       {"rel_l2_error", r.rel_l2},
                       {"snr_db", FiniteOrNull(r.snr_db)},
                       {"quantize_ms", r.quantize_ms}});
  }
  table.Print(stdout);
  std::printf("\nbits/weight and bytes include scales, zero points, codebooks and nested state. "
              "rel L2 = ||W - Q(W)|| / ||W||; SNR = 20 log10(1 / rel L2).\n");
  if (!o.json_path.empty()) {
    const nlohmann::json doc = {{"source", set.description},
                                {"tensors", set.weights.size()},
                                {"weights", elements},
                                {"repeats", o.repeats},
                                {"results", results}};
    std::ofstream out(o.json_path);
    out << doc.dump(2) << "\n";
    out.close();
    if (!out) throw Error(Status::kIoError, "cannot write JSON report to '" + o.json_path + "'");
    std::printf("wrote %s\n", o.json_path.c_str());
  }
  return kExitOk;
}

}  // namespace

Subcommand AddReportCommand(CLI::App& app) {
  auto options = std::make_shared<ReportOptions>();
  CLI::App* sub = app.add_subcommand(
      "report",
      "Quantize a realistic weight set with every format; print bits/weight, bytes, error, time.");
  sub->add_option("--model", options->model,
                  "safetensors checkpoint whose 2-D float tensors are used (default: the bundled "
                  "stories260K model if present, else a synthetic Gaussian 1024x1024 matrix)");
  sub->add_flag("--synthetic", options->synthetic,
                "use the seeded Gaussian 1024x1024 matrix with outliers instead of a model");
  sub->add_option("--json", options->json_path, "also write the results as JSON to this file");
  sub->add_option("--repeats", options->repeats, "timing repeats per format (median is shown)")
      ->check(CLI::Range(1, 100));
  sub->footer("Formats: f16, bf16, int8, int8_asym, fp8_e4m3, fp8_e5m2, blockwise8, int4 g32/64/128,"
              " int4_asym g128, nf4 and fp4 b64 with and without double quantization.");
  return {sub, [options] { return RunReport(*options); }};
}

}  // namespace lowbit::cli
