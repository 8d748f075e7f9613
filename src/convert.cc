// Whole-model conversion: ModelWeights, config -> plan mapping, Convert, size accounting.
#include "lowbit/convert.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <sstream>

#include "lowbit/io/safetensors.h"

namespace lowbit {

namespace {

// Module-name fragments of embedding tables (token / position embeddings), which stay dense:
// they are gathered, not multiplied (transformers only converts nn.Linear modules).
constexpr const char* kEmbeddingPatterns[] = {"embed", "wte", "wpe", "tok_embeddings"};
constexpr std::string_view kWeightSuffix = ".weight";

Format FourBitType(const std::string& name) {
  if (name == "nf4") return Format::kNF4;
  if (name == "fp4") return Format::kFP4;
  throw Error(Status::kInvalidArgument,
              "bnb_4bit_quant_type must be \"nf4\" or \"fp4\", got \"" + name + "\"");
}

std::string HumanBytes(int64_t bytes) {
  char buf[32];
  if (bytes >= (int64_t{1} << 20)) {
    std::snprintf(buf, sizeof(buf), "%.2f MiB", static_cast<double>(bytes) / (1 << 20));
  } else if (bytes >= 1024) {
    std::snprintf(buf, sizeof(buf), "%.1f KiB", static_cast<double>(bytes) / 1024.0);
  } else {
    std::snprintf(buf, sizeof(buf), "%lld B", static_cast<long long>(bytes));
  }
  return buf;
}

}  // namespace

bool ModuleMatches(std::string_view module, std::string_view pattern) {
  if (pattern.empty() || pattern.size() > module.size()) return false;
  for (size_t pos = module.find(pattern); pos != std::string_view::npos;
       pos = module.find(pattern, pos + 1)) {
    const size_t end = pos + pattern.size();
    const bool starts = pos == 0 || module[pos - 1] == '.';
    const bool ends = end == module.size() || module[end] == '.';
    if (starts && ends) return true;
  }
  return false;
}

int64_t ModelTensor::StorageBytes() const {
  if (quantized) return GetQuantInfo(*quantized).total_bytes;
  return static_cast<int64_t>(data.size());
}

void ModelWeights::Append(ModelTensor t) {
  Require(!t.name.empty(), Status::kInvalidArgument, "ModelWeights: tensor name is empty");
  Require(index_.count(t.name) == 0, Status::kInvalidArgument,
          "ModelWeights: duplicate tensor name '" + t.name + "'");
  index_.emplace(t.name, tensors_.size());
  tensors_.push_back(std::move(t));
}

void ModelWeights::Add(std::string name, DType dtype, Shape shape, const void* data,
                       size_t bytes) {
  const int64_t n = NumElements(shape);
  const size_t expected = static_cast<size_t>(n) * DTypeSize(dtype);
  Require(bytes == expected, Status::kInvalidArgument,
          "ModelWeights: tensor '" + name + "' " + ShapeToString(shape) + " " + DTypeName(dtype) +
              " needs " + std::to_string(expected) + " bytes, got " + std::to_string(bytes));
  Require(data != nullptr || bytes == 0, Status::kInvalidArgument,
          "ModelWeights: tensor '" + name + "' has null data");
  ModelTensor t;
  t.name = std::move(name);
  t.dtype = dtype;
  t.shape = std::move(shape);
  const auto* p = static_cast<const uint8_t*>(data);
  t.data.assign(p, p + bytes);
  Append(std::move(t));
}

void ModelWeights::AddQuantized(std::string name, QuantizedTensor q) {
  ValidateQuantizedTensor(q);
  ModelTensor t;
  t.name = std::move(name);
  t.dtype = q.state.dtype;
  t.shape = q.state.shape;
  t.quantized = std::move(q);
  Append(std::move(t));
}

ModelWeights ModelWeights::FromSafetensors(const std::string& path) {
  const io::SafetensorsFile file = io::SafetensorsFile::Open(path);
  ModelWeights model;
  for (const io::TensorInfo& info : file.tensors()) {
    model.Add(info.name, info.dtype, info.shape, file.data(info), static_cast<size_t>(info.size));
  }
  return model;
}

const ModelTensor* ModelWeights::Find(std::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const ModelTensor& ModelWeights::Get(std::string_view name) const {
  const ModelTensor* t = Find(name);
  Require(t != nullptr, Status::kInvalidArgument,
          "ModelWeights: no tensor named '" + std::string(name) + "'");
  return *t;
}

std::vector<std::string> ModelWeights::QuantizedNames() const {
  std::vector<std::string> names;
  for (const ModelTensor& t : tensors_) {
    if (t.is_quantized()) names.push_back(t.name);
  }
  return names;
}

// ---- Plans -------------------------------------------------------------------------------------

ConversionPlan MakeConversionPlan(const BitsAndBytesConfig& c) {
  Require(c.load_in_4bit != c.load_in_8bit, Status::kInvalidArgument,
          "BitsAndBytesConfig: exactly one of load_in_4bit and load_in_8bit must be true");
  ConversionPlan plan;
  plan.modules_to_not_convert = c.llm_int8_skip_modules;
  if (plan.modules_to_not_convert.empty()) plan.modules_to_not_convert = {"lm_head"};
  if (c.load_in_4bit) {
    plan.format = FourBitType(c.bnb_4bit_quant_type);
    plan.options.block_size = c.block_size;
    plan.options.double_quant = c.bnb_4bit_use_double_quant;
    Require(IsFloatActivation(c.bnb_4bit_compute_dtype), Status::kInvalidArgument,
            std::string("bnb_4bit_compute_dtype must be f32, f16 or bf16, got ") +
                DTypeName(c.bnb_4bit_compute_dtype));
    plan.compute_dtype = c.bnb_4bit_compute_dtype;
  } else {
    Require(std::isfinite(c.llm_int8_threshold) && c.llm_int8_threshold >= 0.0f,
            Status::kInvalidArgument,
            "llm_int8_threshold must be finite and >= 0, got " +
                std::to_string(c.llm_int8_threshold));
    plan.format = Format::kInt8;
    plan.options.granularity = Granularity::kRow;
    plan.int8_threshold = c.llm_int8_threshold;
  }
  return plan;
}

ConversionPlan MakeConversionPlan(const Int8Config& c) {
  Require(std::isfinite(c.threshold) && c.threshold >= 0.0f, Status::kInvalidArgument,
          "Int8Config: threshold must be finite and >= 0, got " + std::to_string(c.threshold));
  Require(c.threshold == 0.0f || c.symmetric, Status::kInvalidArgument,
          "Int8Config: an outlier threshold needs symmetric int8 (set threshold = 0 for "
          "asymmetric)");
  ConversionPlan plan;
  plan.format = c.symmetric ? Format::kInt8 : Format::kInt8Asym;
  plan.options.granularity = c.per_channel ? Granularity::kRow : Granularity::kTensor;
  plan.int8_threshold = c.threshold;
  return plan;
}

ConversionPlan MakeConversionPlan(const Int4Config& c) {
  ConversionPlan plan;
  if (c.quant_type == "int4") {
    plan.format = c.symmetric ? Format::kInt4 : Format::kInt4Asym;
  } else if (c.quant_type == "nf4" || c.quant_type == "fp4") {
    Require(c.symmetric, Status::kInvalidArgument,
            "Int4Config: " + c.quant_type + " is symmetric by construction (symmetric = false)");
    plan.format = FourBitType(c.quant_type);
  } else {
    throw Error(Status::kInvalidArgument,
                "Int4Config: quant_type must be \"int4\", \"nf4\" or \"fp4\", got \"" +
                    c.quant_type + "\"");
  }
  Require(!c.compress_statistics || GetFormatInfo(plan.format).supports_double_quant,
          Status::kInvalidArgument,
          "Int4Config: compress_statistics (double quant) is defined for nf4/fp4 only, not " +
              c.quant_type);
  plan.options.block_size = c.group_size;
  plan.options.double_quant = c.compress_statistics;
  return plan;
}

// ---- Convert -----------------------------------------------------------------------------------

bool IsConvertible(const ModelTensor& t, const ConversionPlan& plan) {
  if (t.is_quantized() || t.shape.size() != 2 || !IsFloatActivation(t.dtype)) return false;
  if (t.name.size() <= kWeightSuffix.size() ||
      t.name.compare(t.name.size() - kWeightSuffix.size(), kWeightSuffix.size(), kWeightSuffix) !=
          0) {
    return false;
  }
  const std::string module = t.name.substr(0, t.name.size() - kWeightSuffix.size());
  for (const char* pattern : kEmbeddingPatterns) {
    if (module.find(pattern) != std::string::npos) return false;
  }
  for (const std::string& skip : plan.modules_to_not_convert) {
    if (ModuleMatches(module, skip)) return false;
  }
  return true;
}

ModelWeights Convert(const ModelWeights& model, const ConversionPlan& plan) {
  GetFormatInfo(plan.format);  // throws for an unknown format
  Require(!IsDense(plan.format), Status::kInvalidArgument,
          std::string("Convert: target format must be quantized, got ") + FormatName(plan.format));
  ModelWeights out;
  for (const ModelTensor& t : model.tensors()) {
    if (!IsConvertible(t, plan)) {
      if (t.is_quantized()) {
        out.AddQuantized(t.name, *t.quantized);
      } else {
        out.Add(t.name, t.dtype, t.shape, t.data.data(), t.data.size());
      }
      continue;
    }
    try {
      out.AddQuantized(t.name,
                       Quantize(plan.format, ConstTensorView{t.data.data(), t.dtype, t.shape},
                                plan.options));
    } catch (const Error& e) {
      throw Error(e.status(), "Convert: tensor '" + t.name + "': " + e.message());
    }
  }
  return out;
}

namespace {
template <class Config>
ModelWeights ConvertWith(const ModelWeights& model, const Config& config,
                         const std::vector<std::string>& modules_to_not_convert) {
  ConversionPlan plan = MakeConversionPlan(config);
  plan.modules_to_not_convert.insert(plan.modules_to_not_convert.end(),
                                     modules_to_not_convert.begin(),
                                     modules_to_not_convert.end());
  return Convert(model, plan);
}
}  // namespace

ModelWeights Convert(const ModelWeights& model, const BitsAndBytesConfig& config,
                     const std::vector<std::string>& modules_to_not_convert) {
  return ConvertWith(model, config, modules_to_not_convert);
}
ModelWeights Convert(const ModelWeights& model, const Int8Config& config,
                     const std::vector<std::string>& modules_to_not_convert) {
  return ConvertWith(model, config, modules_to_not_convert);
}
ModelWeights Convert(const ModelWeights& model, const Int4Config& config,
                     const std::vector<std::string>& modules_to_not_convert) {
  return ConvertWith(model, config, modules_to_not_convert);
}

// ---- Sizes -------------------------------------------------------------------------------------

ModelSizeInfo ModelSize(const ModelWeights& model) {
  ModelSizeInfo info;
  for (const ModelTensor& t : model.tensors()) {
    const int64_t bytes = t.StorageBytes();
    info.total_bytes += bytes;
    (t.is_quantized() ? info.quantized_bytes : info.dense_bytes) += bytes;
    info.num_tensors += 1;
    info.num_quantized += t.is_quantized() ? 1 : 0;
    info.num_parameters += t.num_elements();
  }
  return info;
}

SizeComparison CompareModelSizes(const ModelWeights& original, const ModelWeights& converted) {
  SizeComparison c;
  c.original_bytes = ModelSize(original).total_bytes;
  c.converted_bytes = ModelSize(converted).total_bytes;
  Require(c.original_bytes > 0 && c.converted_bytes > 0, Status::kInvalidArgument,
          "CompareModelSizes: both models must hold at least one byte");
  c.saved_bytes = c.original_bytes - c.converted_bytes;
  c.saved_percent = 100.0 * static_cast<double>(c.saved_bytes) / static_cast<double>(c.original_bytes);
  c.compression_ratio =
      static_cast<double>(c.original_bytes) / static_cast<double>(c.converted_bytes);
  return c;
}

std::string QuantizationSummary(const ModelWeights& model) {
  std::ostringstream os;
  char line[256];
  std::snprintf(line, sizeof(line), "%-40s %-14s %-10s %12s %8s\n", "tensor", "shape", "format",
                "bytes", "bits/w");
  os << line;
  for (const ModelTensor& t : model.tensors()) {
    const int64_t bytes = t.StorageBytes();
    const double bits = 8.0 * static_cast<double>(bytes) / static_cast<double>(t.num_elements());
    std::snprintf(line, sizeof(line), "%-40s %-14s %-10s %12lld %8.3f\n", t.name.c_str(),
                  ShapeToString(t.shape).c_str(),
                  t.is_quantized() ? FormatName(t.quantized->format()) : DTypeName(t.dtype),
                  static_cast<long long>(bytes), bits);
    os << line;
  }
  const ModelSizeInfo info = ModelSize(model);
  os << info.num_quantized << " of " << info.num_tensors << " tensors quantized; "
     << info.num_parameters << " parameters; total " << HumanBytes(info.total_bytes)
     << " (quantized " << HumanBytes(info.quantized_bytes) << ", dense "
     << HumanBytes(info.dense_bytes) << ")\n";
  return os.str();
}

void PrintQuantizationSummary(const ModelWeights& model, std::ostream& os) {
  os << QuantizationSummary(model);
}

}  // namespace lowbit
