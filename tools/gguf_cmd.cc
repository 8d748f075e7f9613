// tools/gguf_cmd.cc — the GGUF side of `lowbit inspect`, `error`, `dequantize` and `quantize`:
// GGUF files are read with io::GgufFile (ggml's exact values) and written with io::GgufWriter.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "cli.h"
#include "lowbit/codecs/ggml.h"
#include "lowbit/context.h"
#include "lowbit/format.h"
#include "lowbit/io/checkpoint.h"
#include "lowbit/io/gguf.h"
#include "lowbit/io/safetensors.h"
#include "lowbit/quantize.h"
#include "stream_quantize.h"

namespace lowbit::cli {
namespace {

// Float32 elements converted per step when streaming a tensor into GGUF blocks (~4 MiB).
constexpr int64_t kChunkElements = int64_t{1} << 20;
// Bytes per step when copying a tensor unchanged.
constexpr uint64_t kCopyChunkBytes = uint64_t{16} << 20;
// llama.cpp's `general.file_type` (enum llama_ftype) for the types lowbit writes.
constexpr uint32_t kFileTypeAllF32 = 0;
constexpr uint32_t kFileTypeMostlyF16 = 1;
constexpr uint32_t kFileTypeMostlyQ4_0 = 2;
constexpr uint32_t kFileTypeMostlyQ8_0 = 7;
constexpr uint32_t kFileTypeMostlyBF16 = 32;
constexpr const char kFileTypeKey[] = "general.file_type";

// "int4 g32", "nf4 b32", "f32", or "-" when the type has no conversion.
std::string LoadsAs(uint32_t type) {
  try {
    const io::GgufConversion c = io::GgufConversionOf(type);
    std::string s = FormatName(c.format);
    if (c.block_size > 0) {
      // As `lowbit inspect` lists lowbit files: g = groups along the row, b = flat blocks.
      const bool group = GetFormatInfo(c.format).default_granularity == Granularity::kGroup;
      s += Fmt(" %c%lld", group ? 'g' : 'b', static_cast<long long>(c.block_size));
    }
    return s;
  } catch (const Error&) {
    return "-";
  }
}

std::string ErrorCell(double rel_l2) {
  return rel_l2 == 0 ? std::string("exact") : Fmt("%.3e", rel_l2);
}


// Float tensors of a safetensors or GGUF file, by name (the `original` of `lowbit error`).
class FloatSource {
 public:
  explicit FloatSource(const std::string& path) : path_(path) {
    if (InputFileKind(path) == FileKind::kGguf) {
      gguf_.emplace(io::GgufFile::Open(path));
    } else {
      st_.emplace(io::SafetensorsFile::Open(path));
    }
  }
  // Shape and a dtype name of `name`; false when absent. *is_float: f32/f16/bf16 (or a GGUF
  // type lowbit decodes).
  bool Find(const std::string& name, Shape* shape, std::string* type, bool* is_float) const {
    if (gguf_) {
      const io::GgufTensorInfo* t = gguf_->Find(name);
      if (t == nullptr) return false;
      *shape = t->shape;
      *type = t->type_name();
      *is_float = t->traits().decodable;
      return true;
    }
    const io::TensorInfo* t = st_->Find(name);
    if (t == nullptr) return false;
    *shape = t->shape;
    *type = DTypeName(t->dtype);
    *is_float = IsFloatActivation(t->dtype);
    return true;
  }
  std::vector<float> Read(const std::string& name) const {
    return gguf_ ? gguf_->DequantizeToF32(gguf_->Get(name)) : st_->CopyAsF32(st_->Get(name));
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::optional<io::GgufFile> gguf_;
  std::optional<io::SafetensorsFile> st_;
};

// Running totals of an error table.
struct Totals {
  double sum_abs = 0, sum_sq = 0, sum_ref_sq = 0, max_abs = 0;
  int64_t count = 0;
  void Add(const ErrorStats& s, const std::vector<float>& ref) {
    const double n = static_cast<double>(s.count);
    sum_abs += s.mean_abs * n;
    sum_sq += s.mse * n;
    for (const float v : ref) sum_ref_sq += static_cast<double>(v) * v;
    max_abs = std::max(max_abs, s.max_abs);
    count += s.count;
  }
  std::vector<std::string> Row(size_t columns) const {
    const double rel_l2 = sum_ref_sq > 0 ? std::sqrt(sum_sq / sum_ref_sq) : 0.0;
    const double snr = sum_sq > 0 ? 10.0 * std::log10(sum_ref_sq / sum_sq)
                                  : std::numeric_limits<double>::infinity();
    std::vector<std::string> r = {"TOTAL",
                                  "",
                                  Fmt("%lld weights", static_cast<long long>(count)),
                                  Fmt("%.3e", count > 0 ? sum_abs / count : 0.0),
                                  Fmt("%.3e", max_abs),
                                  Fmt("%.3e", rel_l2),
                                  std::isfinite(snr) ? Fmt("%.2f", snr) : "inf"};
    r.resize(columns);
    return r;
  }
};

// The original tensor `name` as float32, checked against `shape` (kInvalidArgument otherwise).
std::vector<float> OriginalValues(const FloatSource& orig, const std::string& name,
                                  const Shape& shape, const std::string& quantized_path) {
  Shape s;
  std::string type;
  bool is_float = false;
  if (!orig.Find(name, &s, &type, &is_float)) {
    throw Error(Status::kInvalidArgument, "'" + orig.path() + "' has no tensor '" + name +
                                              "' (quantized in '" + quantized_path + "')");
  }
  if (s != shape || !is_float) {
    throw Error(Status::kInvalidArgument, "'" + name + "' is " + type + " " + ShapeToString(s) +
                                              " in the original but " + ShapeToString(shape) +
                                              " quantized");
  }
  return orig.Read(name);
}

std::vector<std::string> StatCells(const ErrorStats& s) {
  return {Fmt("%.3e", s.mean_abs), Fmt("%.3e", s.max_abs), Fmt("%.3e", s.rel_l2),
          std::isfinite(s.snr_db) ? Fmt("%.2f", s.snr_db) : "inf"};
}

// ---- GGUF metadata flags ------------------------------------------------------------------------

// KEY=TYPE:VALUE -> a key/value (UsageError on any mistake).
io::GgufKeyValue ParseKvFlag(const std::string& flag) {
  const size_t eq = flag.find('=');
  const size_t colon = eq == std::string::npos ? std::string::npos : flag.find(':', eq);
  if (eq == std::string::npos || eq == 0 || colon == std::string::npos) {
    throw UsageError(
        "--gguf-kv must be KEY=TYPE:VALUE (e.g. llama.context_length=u32:2048), got '" + flag +
        "'");
  }
  const std::string key = flag.substr(0, eq);
  const std::string type = flag.substr(eq + 1, colon - eq - 1);
  const std::string text = flag.substr(colon + 1);
  auto bad = [&](const char* what) { return UsageError("--gguf-kv '" + flag + "': " + what); };
  if (type == "str") return {key, io::GgufValue::String(text)};
  if (type == "bool") {
    if (text != "true" && text != "false") throw bad("a bool is true or false");
    return {key, io::GgufValue::Bool(text == "true")};
  }
  if (type == "f32" || type == "f64") {
    char* end = nullptr;
    const double d = std::strtod(text.c_str(), &end);
    if (text.empty() || *end != '\0') throw bad("not a number");
    return {key, type == "f32" ? io::GgufValue::Float32(static_cast<float>(d))
                               : io::GgufValue::Float64(d)};
  }
  const bool is_signed = !type.empty() && type[0] == 'i';
  char* end = nullptr;
  errno = 0;
  const long long sv = is_signed ? std::strtoll(text.c_str(), &end, 10) : 0;
  const unsigned long long uv = is_signed ? 0 : std::strtoull(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno != 0 || (!is_signed && text[0] == '-')) {
    throw bad("not an integer of that type");
  }
  auto range = [&](long double lo, long double hi) {
    const long double v = is_signed ? static_cast<long double>(sv) : static_cast<long double>(uv);
    if (v < lo || v > hi) throw bad("out of range for the type");
  };
  if (type == "u8") {
    range(0, 255);
    return {key, io::GgufValue::Uint8(static_cast<uint8_t>(uv))};
  }
  if (type == "i8") {
    range(-128, 127);
    return {key, io::GgufValue::Int8(static_cast<int8_t>(sv))};
  }
  if (type == "u16") {
    range(0, 65535);
    return {key, io::GgufValue::Uint16(static_cast<uint16_t>(uv))};
  }
  if (type == "i16") {
    range(-32768, 32767);
    return {key, io::GgufValue::Int16(static_cast<int16_t>(sv))};
  }
  if (type == "u32") {
    range(0, 4294967295.0L);
    return {key, io::GgufValue::Uint32(static_cast<uint32_t>(uv))};
  }
  if (type == "i32") {
    range(-2147483648.0L, 2147483647.0L);
    return {key, io::GgufValue::Int32(static_cast<int32_t>(sv))};
  }
  if (type == "u64") return {key, io::GgufValue::Uint64(uv)};
  if (type == "i64") return {key, io::GgufValue::Int64(sv)};
  throw bad("TYPE must be u8, i8, u16, i16, u32, i32, u64, i64, f32, f64, bool or str");
}

void SetKey(io::GgufMetadata& md, io::GgufKeyValue kv) {
  for (io::GgufKeyValue& e : md) {
    if (e.key == kv.key) {
      e.value = std::move(kv.value);
      return;
    }
  }
  md.push_back(std::move(kv));
}

// --format of a GGUF output, and its llama.cpp general.file_type.
ggml::Type ParseGgufType(const std::string& name, uint32_t* file_type) {
  struct Choice {
    const char* name;
    ggml::Type type;
    uint32_t file_type;
  };
  static const Choice kChoices[] = {{"q4_0", ggml::Type::kQ4_0, kFileTypeMostlyQ4_0},
                                    {"q8_0", ggml::Type::kQ8_0, kFileTypeMostlyQ8_0},
                                    {"f16", ggml::Type::kF16, kFileTypeMostlyF16},
                                    {"bf16", ggml::Type::kBF16, kFileTypeMostlyBF16},
                                    {"f32", ggml::Type::kF32, kFileTypeAllF32}};
  for (const Choice& c : kChoices) {
    if (name == c.name) {
      *file_type = c.file_type;
      return c.type;
    }
  }
  throw UsageError("a .gguf output takes --format q4_0, q8_0, f16, bf16 or f32, got '" + name +
                   "' (lowbit formats need a .safetensors output)");
}

// The ggml type of a plain safetensors dtype, or false (u8, bool, u16.., fp8 have none).
bool GgmlTypeOfDType(DType d, ggml::Type* out) {
  switch (d) {
    case DType::kF32:
      *out = ggml::Type::kF32;
      return true;
    case DType::kF16:
      *out = ggml::Type::kF16;
      return true;
    case DType::kBF16:
      *out = ggml::Type::kBF16;
      return true;
    case DType::kF64:
      *out = ggml::Type::kF64;
      return true;
    case DType::kI8:
      *out = ggml::Type::kI8;
      return true;
    case DType::kI16:
      *out = ggml::Type::kI16;
      return true;
    case DType::kI32:
      *out = ggml::Type::kI32;
      return true;
    case DType::kI64:
      *out = ggml::Type::kI64;
      return true;
    default:
      return false;
  }
}

// One tensor of a GGUF output and where its bytes come from.
struct GgufItem {
  // kInt4AsF32: a lowbit int4 g32 tensor whose rows do not divide into q4_0 blocks, written as
  // its exact float32 values (ggml keeps such tensors F32 too).
  enum Source { kCopy, kConvert, kInt4Export, kInt4AsF32 } source = kCopy;
  std::string name;
  ggml::Type type = ggml::Type::kF32;
  Shape shape;
  const uint8_t* src = nullptr;   // kCopy / kConvert: the mapped input bytes
  uint64_t src_bytes = 0;         // kCopy
  DType src_dtype = DType::kF32;  // kConvert
  std::string prefix;             // kInt4Export: the module prefix in the safetensors input
};

}  // namespace

// ---- inspect ------------------------------------------------------------------------------------

int RunInspectGguf(const std::string& path, bool metadata, bool conversion_error) {
  const io::GgufFile f = io::GgufFile::Open(path);
  std::printf("%s: GGUF v%u, %zu tensors, %zu metadata keys, alignment %u, data at byte %llu, %s\n",
              path.c_str(), f.version(), f.tensors().size(), f.metadata().size(), f.alignment(),
              static_cast<unsigned long long>(f.data_offset()),
              HumanBytes(static_cast<int64_t>(f.file_size())).c_str());
  for (const io::GgufKeyValue& kv : f.metadata()) {
    const bool general =
        kv.key.rfind("general.", 0) == 0 && kv.value.type != io::GgufValueType::kArray;
    if (!metadata && !general) continue;
    std::string type = io::GgufValueTypeName(kv.value.type);
    if (kv.value.type == io::GgufValueType::kArray) {
      type += std::string(" of ") + io::GgufValueTypeName(kv.value.array_type);
    }
    std::printf("  %s (%s) = %s\n", kv.key.c_str(), type.c_str(),
                kv.value.ToString(8, 120).c_str());
  }
  if (!metadata) std::printf("  (-m lists all %zu metadata keys)\n", f.metadata().size());
  std::printf("\n");
  Table table({"name", "type", "shape", "bytes", "bits/weight", "loads as", "conversion err"});
  int64_t quantized_bytes = 0, quantized_weights = 0, num_quantized = 0, undecodable = 0;
  for (const io::GgufTensorInfo& t : f.tensors()) {
    const int64_t n = t.num_elements();
    std::string conv;
    if (!t.traits().decodable) {
      DType d;
      conv = io::GgufPlainDType(t.type, &d) ? "-" : "cannot decode";
      undecodable += conv != "-";
    } else {
      const io::GgufConversion c = io::GgufConversionOf(t.type);
      if (c.exact) {
        conv = "exact";
      } else if (!conversion_error) {
        conv = "requantized";
      } else if (n == 0) {
        conv = "-";
      } else {
        try {
          conv = "rel L2 " + Fmt("%.3e", io::GgufConversionError(f, t).rel_l2);
        } catch (const Error& e) {
          conv = std::string("fails: ") + StatusName(e.status());
        }
      }
    }
    table.AddRow(
        {t.name, t.type_name(), ShapeToString(t.shape),
         Fmt("%llu", static_cast<unsigned long long>(t.size)),
         n > 0 ? Fmt("%.3f", 8.0 * static_cast<double>(t.size) / static_cast<double>(n)) : "0.000",
         LoadsAs(t.type), conv});
    DType plain;
    if (!io::GgufPlainDType(t.type, &plain)) {
      ++num_quantized;
      quantized_bytes += static_cast<int64_t>(t.size);
      quantized_weights += n;
    }
  }
  table.Print(stdout);
  if (num_quantized > 0 && quantized_weights > 0) {
    std::printf(
        "\n%lld quantized tensors: %lld weights in %s, %.3f bits/weight\n",
        static_cast<long long>(num_quantized), static_cast<long long>(quantized_weights),
        HumanBytes(quantized_bytes).c_str(),
        8.0 * static_cast<double>(quantized_bytes) / static_cast<double>(quantized_weights));
  }
  std::printf(
      "loads as: the lowbit format LoadGgufTensor / lowbit_load_tensor give; exact = "
      "dequantizes bit-identically to ggml; rel L2 = conversion error against ggml's "
      "values (docs/files.md §5)\n");
  if (undecodable > 0) {
    std::printf("%lld tensors have types lowbit cannot decode\n",
                static_cast<long long>(undecodable));
  }
  return kExitOk;
}

// ---- error --------------------------------------------------------------------------------------

int RunErrorGguf(const std::string& original, const std::string& quantized) {
  const FloatSource orig(original);
  Totals totals;
  int64_t compared = 0;
  if (InputFileKind(quantized) == FileKind::kGguf) {
    const io::GgufFile q = io::GgufFile::Open(quantized);
    Table table({"name", "type", "shape", "mean abs err", "max abs err", "rel L2 err", "SNR dB",
                 "loads as", "vs ggml"});
    std::vector<std::string> skipped;
    for (const io::GgufTensorInfo& t : q.tensors()) {
      if (t.type == static_cast<uint32_t>(ggml::Type::kF32)) continue;
      DType plain;
      if (!t.traits().decodable) {
        if (!io::GgufPlainDType(t.type, &plain))
          skipped.push_back(t.name + " (" + t.type_name() + ")");
        continue;
      }
      if (t.num_elements() == 0) continue;
      const std::vector<float> a = OriginalValues(orig, t.name, t.shape, quantized);
      const std::vector<float> b = q.DequantizeToF32(t);
      const int64_t n = static_cast<int64_t>(a.size());
      const ErrorStats s =
          EstimateError({a.data(), DType::kF32, {n}}, {b.data(), DType::kF32, {n}});
      std::string vs_ggml;
      try {
        vs_ggml = ErrorCell(io::GgufConversionError(q, t).rel_l2);
      } catch (const Error& e) {
        vs_ggml = std::string("fails: ") + StatusName(e.status());
      }
      std::vector<std::string> row = {t.name, t.type_name(), ShapeToString(t.shape)};
      for (std::string& c : StatCells(s)) row.push_back(std::move(c));
      row.push_back(LoadsAs(t.type));
      row.push_back(vs_ggml);
      table.AddRow(std::move(row));
      totals.Add(s, a);
      ++compared;
    }
    if (compared == 0) {
      throw Error(Status::kInvalidArgument,
                  "'" + quantized + "' holds no quantized tensor lowbit decodes");
    }
    table.AddRow(totals.Row(9));
    table.Print(stdout);
    std::printf(
        "errors of ggml's own values (its to_float); 'vs ggml': rel L2 of the lowbit "
        "format each tensor loads as against those values (exact = bit-identical)\n");
    if (!skipped.empty()) {
      std::printf("skipped %zu tensors of types lowbit cannot decode, e.g. %s\n", skipped.size(),
                  skipped.front().c_str());
    }
    return kExitOk;
  }
  // A quantized safetensors checkpoint against a GGUF original.
  const io::SafetensorsFile q = io::SafetensorsFile::Open(quantized);
  Table table({"name", "format", "shape", "mean abs err", "max abs err", "rel L2 err", "SNR dB"});
  for (const io::CheckpointEntry& e : io::ListQuantizedModules(q)) {
    if (e.layout != io::TensorLayout::kBitsandbytes && e.layout != io::TensorLayout::kLowbit)
      continue;
    const std::vector<float> a = OriginalValues(orig, e.name, e.shape, quantized);
    const std::vector<float> b = DequantizeToF32(io::LoadQuantizedTensor(q, e.prefix));
    const int64_t n = static_cast<int64_t>(a.size());
    const ErrorStats s = EstimateError({a.data(), DType::kF32, {n}}, {b.data(), DType::kF32, {n}});
    std::vector<std::string> row = {e.name, e.format_name, ShapeToString(e.shape)};
    for (std::string& c : StatCells(s)) row.push_back(std::move(c));
    table.AddRow(std::move(row));
    totals.Add(s, a);
    ++compared;
  }
  if (compared == 0)
    throw Error(Status::kInvalidArgument, "'" + quantized + "' holds no quantized tensor");
  table.AddRow(totals.Row(7));
  table.Print(stdout);
  return kExitOk;
}

// ---- dequantize ---------------------------------------------------------------------------------

int RunDequantizeGguf(const std::string& input, const std::string& output, const std::string& dtype,
                      bool quiet) {
  DType forced = DType::kF32;
  const bool force_dtype = !dtype.empty();
  if (force_dtype) {
    try {
      forced = DTypeFromName(dtype);
    } catch (const Error&) {
      throw UsageError("--dtype must be f32, f16 or bf16, got '" + dtype + "'");
    }
    if (!IsFloatActivation(forced))
      throw UsageError("--dtype must be f32, f16 or bf16, got '" + dtype + "'");
  }
  const io::GgufFile in = io::GgufFile::Open(input);
  // Everything is checked before the output is opened: an undecodable type writes nothing.
  std::vector<io::TensorSpec> specs;
  for (const io::GgufTensorInfo& t : in.tensors()) {
    DType plain = DType::kF32;
    const bool is_plain = io::GgufPlainDType(t.type, &plain);
    if (!is_plain && !t.traits().decodable) {
      throw Error(Status::kUnsupportedFormat,
                  "'" + input + "': tensor '" + t.name + "' is " + t.type_name() +
                      ", which lowbit cannot decode; nothing was written");
    }
    const DType out = (is_plain && !IsFloatActivation(plain)) ? plain
                      : force_dtype                           ? forced
                      : is_plain                              ? plain
                                                              : DType::kF32;
    specs.push_back({t.name, out, t.shape});
  }
  size_t arrays = 0;
  const io::Metadata md = io::GgufMetadataAsSafetensors(in, &arrays);
  io::SafetensorsWriter writer(output, md, io::SafetensorsHeaderBound(specs, md));
  Progress progress(static_cast<int64_t>(specs.size()), quiet);
  int64_t decoded = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    const io::GgufTensorInfo& t = in.tensors()[i];
    const io::TensorSpec& s = specs[i];
    DType plain;
    if (io::GgufPlainDType(t.type, &plain) && plain == s.dtype) {
      io::TensorInfo info{t.name, s.dtype, t.shape, 0, t.size};
      CopyMappedTensor(in.data(t), info, writer);
      progress.Step(t.name, Fmt("copied %s", t.type_name()));
      continue;
    }
    const std::vector<float> x = in.DequantizeToF32(t);
    std::vector<uint8_t> bytes(x.size() * DTypeSize(s.dtype));
    FromF32(x.data(), static_cast<int64_t>(x.size()), bytes.data(), s.dtype);
    writer.Add(t.name, s.dtype, t.shape, bytes.data(), bytes.size());
    ++decoded;
    progress.Step(t.name, Fmt("%s -> %s", t.type_name(), DTypeName(s.dtype)));
  }
  writer.Commit();
  progress.Finish();
  std::printf(
      "wrote %s: %lld tensors dequantized (ggml's exact values), %lld copied; %zu "
      "metadata keys as gguf.*, %zu left out (arrays, non-UTF-8 strings)\n",
      output.c_str(), static_cast<long long>(decoded),
      static_cast<long long>(specs.size()) - static_cast<long long>(decoded), md.size(), arrays);
  return kExitOk;
}

// ---- quantize to GGUF ---------------------------------------------------------------------------

int RunQuantizeToGguf(const GgufQuantizeArgs& a) {
  uint32_t file_type = 0;
  const ggml::Type target = ParseGgufType(a.format, &file_type);
  const int64_t block = ggml::Traits(target).block_elements;
  const bool blocked = block > 1;
  std::vector<io::GgufKeyValue> flags;
  for (const std::string& kv : a.gguf_kv) flags.push_back(ParseKvFlag(kv));

  io::GgufMetadata md;
  std::optional<io::GgufFile> gguf_in;
  std::optional<io::SafetensorsFile> st_in;
  std::vector<GgufItem> items;
  auto quantizable = [&](const std::string& name, DType dtype, const Shape& shape) {
    return ShouldQuantizeTensor(name, dtype, shape, a.skip) && shape[1] % block == 0;
  };
  if (InputFileKind(a.input) == FileKind::kGguf) {
    gguf_in.emplace(io::GgufFile::Open(a.input));
    for (const io::GgufKeyValue& kv : gguf_in->metadata()) {
      if (kv.key == io::kGgufAlignmentKey) continue;  // the writer sets its own
      md.push_back(kv);
      if (kv.key == kFileTypeKey) md.back().value = io::GgufValue::Uint32(file_type);
    }
    for (const io::GgufTensorInfo& t : gguf_in->tensors()) {
      GgufItem it;
      it.name = t.name;
      it.shape = t.shape;
      it.src = gguf_in->data(t);
      DType plain = DType::kF32;
      const bool is_plain = io::GgufPlainDType(t.type, &plain);
      if (t.type == static_cast<uint32_t>(target) &&
          !(is_plain && quantizable(t.name, plain, t.shape))) {
        it.type = target;
        it.src_bytes = t.size;
      } else if (is_plain && IsFloatActivation(plain) && quantizable(t.name, plain, t.shape)) {
        it.source = GgufItem::kConvert;
        it.type = target;
        it.src_dtype = plain;
      } else if (is_plain) {
        it.type = static_cast<ggml::Type>(t.type);
        it.src_bytes = t.size;
      } else {
        throw Error(Status::kInvalidArgument, "'" + a.input + "' is already quantized (" + t.name +
                                                  " is " + t.type_name() +
                                                  "); dequantize it first");
      }
      items.push_back(std::move(it));
    }
  } else {
    st_in.emplace(io::SafetensorsFile::Open(a.input));
    const io::SafetensorsFile& in = *st_in;
    for (const io::CheckpointEntry& e : io::ListQuantizedModules(in)) {
      GgufItem it;
      it.name = e.name;
      it.shape = e.shape.empty() ? Shape{1} : e.shape;
      if (e.layout == io::TensorLayout::kBitsandbytes || e.layout == io::TensorLayout::kLowbit) {
        const bool exportable = target == ggml::Type::kQ4_0 && e.format == Format::kInt4 &&
                                e.block_size == ggml::kQK && !e.double_quant && e.shape.size() == 2;
        if (!exportable) {
          throw Error(Status::kInvalidArgument,
                      "'" + a.input + "' is already quantized (" + e.name + " is " + e.format_name +
                          Fmt(" b%lld", static_cast<long long>(e.block_size)) +
                          "); only int4 with group size 32 exports to GGUF (as q4_0); dequantize "
                          "the rest first");
        }
        const bool whole_blocks = e.shape[1] % ggml::kQK == 0;
        it.source = whole_blocks ? GgufItem::kInt4Export : GgufItem::kInt4AsF32;
        it.type = whole_blocks ? ggml::Type::kQ4_0 : ggml::Type::kF32;
        it.prefix = e.prefix;
        items.push_back(std::move(it));
        continue;
      }
      const io::TensorInfo& t = in.Get(e.name);
      it.src = in.data(t);
      if (IsFloatActivation(t.dtype) && quantizable(t.name, t.dtype, t.shape)) {
        it.source = GgufItem::kConvert;
        it.type = target;
        it.src_dtype = t.dtype;
      } else if (GgmlTypeOfDType(t.dtype, &it.type)) {
        it.src_bytes = t.size;
      } else {
        throw Error(Status::kInvalidArgument, "tensor '" + t.name + "' has dtype " +
                                                  DTypeName(t.dtype) +
                                                  ", which GGUF cannot store; nothing was written");
      }
      items.push_back(std::move(it));
    }
    // Keep the input's tensor order (ListQuantizedModules sorts by name): by data offset.
    std::stable_sort(items.begin(), items.end(), [&](const GgufItem& x, const GgufItem& y) {
      auto offset = [&](const GgufItem& i) {
        const bool module = i.source == GgufItem::kInt4Export || i.source == GgufItem::kInt4AsF32;
        const io::TensorInfo* t = in.Find(module ? i.prefix + "weight" : i.name);
        return t == nullptr ? uint64_t{0} : t->offset;
      };
      return offset(x) < offset(y);
    });
  }
  if (!a.gguf_arch.empty())
    SetKey(md, {"general.architecture", io::GgufValue::String(a.gguf_arch)});
  if (!a.gguf_name.empty()) SetKey(md, {"general.name", io::GgufValue::String(a.gguf_name)});
  for (io::GgufKeyValue& kv : flags) {
    if (kv.key == io::kGgufAlignmentKey) throw UsageError("--gguf-kv cannot set general.alignment");
    SetKey(md, std::move(kv));
  }

  io::GgufWriter writer(a.output, md);
  for (const GgufItem& it : items) writer.Declare(it.name, it.type, it.shape);
  Progress progress(static_cast<int64_t>(items.size()), a.quiet);
  int64_t converted = 0, copied = 0, exported = 0, as_f32 = 0, weights = 0;
  uint64_t quantized_bytes = 0;
  double worst_scale_change = 0;
  std::vector<float> x;
  std::vector<uint8_t> out;
  for (size_t i = 0; i < items.size(); ++i) {
    const GgufItem& it = items[i];
    if (it.source == GgufItem::kCopy) {
      for (uint64_t done = 0; done < it.src_bytes; done += kCopyChunkBytes) {
        writer.Append(it.src + done,
                      static_cast<size_t>(std::min(kCopyChunkBytes, it.src_bytes - done)));
        ReleaseMappedPages(it.src + done, std::min(kCopyChunkBytes, it.src_bytes - done));
      }
      ++copied;
      progress.Step(it.name, Fmt("copied %s %s", ggml::Traits(it.type).name,
                                 ShapeToString(it.shape).c_str()));
      continue;
    }
    if (it.source == GgufItem::kInt4Export) {
      const QuantizedTensor q = io::LoadQuantizedTensor(*st_in, it.prefix);
      double change = 0;
      const std::vector<uint8_t> blocks = io::Int4ToQ4_0(q, &change);
      // What the export changed: ggml's values of the q4_0 blocks against lowbit's int4 values.
      std::vector<float> ggml_values(static_cast<size_t>(q.state.num_elements()));
      ggml::DequantizeRow(ggml::Type::kQ4_0, blocks.data(), q.state.num_elements(),
                          ggml_values.data());
      const std::vector<float> lowbit_values = DequantizeToF32(q);
      const int64_t n = static_cast<int64_t>(ggml_values.size());
      const ErrorStats s = EstimateError({lowbit_values.data(), DType::kF32, {n}},
                                         {ggml_values.data(), DType::kF32, {n}});
      writer.Append(blocks.data(), blocks.size());
      worst_scale_change = std::max(worst_scale_change, change);
      ++exported;
      weights += n;
      quantized_bytes += blocks.size();
      progress.Step(it.name, Fmt("int4 g32 -> q4_0: f16 scales, max rel scale change %.2e, rel L2 "
                                 "vs the int4 values %.2e",
                                 change, s.rel_l2));
      continue;
    }
    if (it.source == GgufItem::kInt4AsF32) {
      const std::vector<float> v = DequantizeToF32(io::LoadQuantizedTensor(*st_in, it.prefix));
      writer.Append(v.data(), v.size() * sizeof(float));
      ++as_f32;
      progress.Step(it.name,
                    Fmt("int4 g32 %s -> f32 (rows of %lld are not whole q4_0 blocks; "
                        "exact values)",
                        ShapeToString(it.shape).c_str(), static_cast<long long>(it.shape.back())));
      continue;
    }
    // kConvert: whole rows at a time, float32 -> ggml blocks.
    const int64_t cols = it.shape.back();
    const int64_t n = NumElements(it.shape);
    const int64_t rows_per_chunk =
        std::max<int64_t>(1, kChunkElements / std::max<int64_t>(cols, 1));
    const size_t esize = DTypeSize(it.src_dtype);
    for (int64_t begin = 0; begin < n; begin += rows_per_chunk * cols) {
      const int64_t end = std::min(n, begin + rows_per_chunk * cols);
      x.resize(static_cast<size_t>(end - begin));
      ConvertRange(it.src, it.src_dtype, begin, end, x.data());
      if (blocked) {
        for (size_t j = 0; j < x.size(); ++j) {
          if (!std::isfinite(x[j])) {
            throw Error(Status::kInvalidArgument,
                        "tensor '" + it.name + "' holds a non-finite value at flat index " +
                            std::to_string(begin + static_cast<int64_t>(j)) + "; " +
                            ggml::Traits(target).name +
                            " needs finite weights (nothing was written)");
          }
        }
      }
      const ggml::TypeTraits& tr = ggml::Traits(it.type);
      out.resize(static_cast<size_t>((end - begin) / tr.block_elements * tr.block_bytes));
      ggml::QuantizeRow(it.type, x.data(), end - begin, out.data());
      writer.Append(out.data(), out.size());
      ReleaseMappedPages(it.src + static_cast<size_t>(begin) * esize,
                         static_cast<uint64_t>(end - begin) * esize);
    }
    ++converted;
    weights += n;
    quantized_bytes += writer.tensor_bytes(i);
    progress.Step(it.name, Fmt("%s -> %s %s", DTypeName(it.src_dtype), ggml::Traits(it.type).name,
                               ShapeToString(it.shape).c_str()));
  }
  writer.Commit();
  progress.Finish();
  std::printf("wrote %s (GGUF v%u): %lld tensors converted to %s, %lld copied", a.output.c_str(),
              io::kGgufVersion, static_cast<long long>(converted), ggml::Traits(target).name,
              static_cast<long long>(copied));
  if (exported > 0) {
    std::printf(
        ", %lld lowbit int4 g32 tensors exported to q4_0 (only change: scales rounded to "
        "f16, max relative change %.2e)",
        static_cast<long long>(exported), worst_scale_change);
  }
  if (as_f32 > 0) {
    std::printf(", %lld int4 tensors written as their exact f32 values (rows not a multiple of 32)",
                static_cast<long long>(as_f32));
  }
  if (weights > 0)
    std::printf(", %.3f bits/weight", 8.0 * static_cast<double>(quantized_bytes) / weights);
  std::printf("\n");
  for (const GgufItem& it : items) {
    if (it.name.size() > 10 && it.name.compare(it.name.size() - 10, 10, ".awq_scale") == 0) {
      std::printf(
          "note: %s is an AWQ input scale, copied as a plain tensor: the layer must divide "
          "its input by it (llama.cpp does not)\n",
          it.name.c_str());
    }
  }
  return kExitOk;
}

// ---- quantize a GGUF file to lowbit formats (safetensors) ---------------------------------------

int RunQuantizeGgufToSafetensors(const GgufQuantizeArgs& a) {
  const Format format = ParseFormat(a.format);
  QuantizeOptions qopts;
  qopts.block_size = a.block_size;
  qopts.double_quant = a.double_quant;
  const io::TensorLayout layout =
      (format == Format::kNF4 || format == Format::kFP4 || format == Format::kInt8)
          ? io::TensorLayout::kBitsandbytes
          : io::TensorLayout::kAuto;
  const io::GgufFile in = io::GgufFile::Open(a.input);
  std::vector<io::TensorInfo> infos;
  std::vector<bool> quantize;
  std::vector<io::TensorSpec> specs;
  for (const io::GgufTensorInfo& t : in.tensors()) {
    DType plain = DType::kF32;
    if (!io::GgufPlainDType(t.type, &plain)) {
      throw Error(Status::kInvalidArgument, "'" + a.input + "' is already quantized (" + t.name +
                                                " is " + t.type_name() +
                                                "); dequantize it first ('lowbit dequantize " +
                                                a.input + " OUT.safetensors')");
    }
    infos.push_back({t.name, plain, t.shape, 0, t.size});
    quantize.push_back(ShouldQuantizeTensor(t.name, plain, t.shape, a.skip));
    if (!quantize.back()) {
      specs.push_back({t.name, plain, t.shape});
      continue;
    }
    // Every key the layout may write, with dimensions no statistic exceeds (header bound).
    const std::string prefix = t.name.substr(0, t.name.size() - 6);
    const int64_t n = std::max<int64_t>(t.num_elements(), 4096);
    for (const char* key :
         {"weight", "weight.absmax", "weight.quant_map", "weight.nested_absmax",
          "weight.nested_quant_map", "weight.quant_state.bitsandbytes__nf4", "weight.lowbit_state",
          "weight.scales", "weight.zero_points", "weight.codebook", "weight.nested_codes",
          "weight.nested_code", "weight.nested_offset", "SCB", "weight_format"}) {
      specs.push_back({prefix + key, DType::kF32, {n, n}});
    }
  }
  size_t arrays = 0;
  io::Metadata md = io::GgufMetadataAsSafetensors(in, &arrays);
  md["lowbit.quantize"] =
      Fmt("format=%s block_size=%lld double_quant=%d method=rtn source=gguf", FormatName(format),
          static_cast<long long>(a.block_size), a.double_quant ? 1 : 0);
  io::SafetensorsWriter writer(a.output, md, io::SafetensorsHeaderBound(specs, md));
  Context ctx(a.threads);
  Progress progress(static_cast<int64_t>(infos.size()), a.quiet);
  int64_t quantized = 0, copied = 0;
  for (size_t i = 0; i < infos.size(); ++i) {
    const io::TensorInfo& t = infos[i];
    const uint8_t* src = in.data(in.tensors()[i]);
    if (!quantize[i]) {
      CopyMappedTensor(src, t, writer);
      ++copied;
      progress.Step(t.name,
                    Fmt("copied %s %s", DTypeName(t.dtype), ShapeToString(t.shape).c_str()));
      continue;
    }
    const QuantizedTensor q = QuantizeFromMapping(src, t, format, qopts, ctx);
    io::SaveQuantizedTensor(writer, t.name.substr(0, t.name.size() - 6), q, layout);
    ++quantized;
    progress.Step(t.name, Fmt("%s %s %.3f bits/weight", FormatName(format),
                              ShapeToString(t.shape).c_str(), GetQuantInfo(q).bits_per_weight));
  }
  writer.Commit();
  progress.Finish();
  std::printf(
      "wrote %s: %lld tensors quantized to %s, %lld copied; %zu GGUF metadata keys as "
      "gguf.*, %zu left out (arrays, non-UTF-8 strings)\n",
      a.output.c_str(), static_cast<long long>(quantized), FormatName(format),
      static_cast<long long>(copied), md.size() - 1, arrays);
  return kExitOk;
}

}  // namespace lowbit::cli
