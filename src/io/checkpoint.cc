// Quantized tensors in safetensors checkpoints: bitsandbytes 4-/8-bit and lowbit-native layouts.
#include "lowbit/io/checkpoint.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>

#include "io/json_util.h"

namespace lowbit {
namespace io {
namespace {

using json = nlohmann::json;

// Block sizes read from files are bounded so that no count arithmetic can overflow; every real
// block size (<= 4096) is far below.
constexpr int64_t kMaxFileBlockSize = int64_t{1} << 31;

[[noreturn]] void Corrupt(const std::string& where, const std::string& what) {
  throw Error(Status::kCorruptData, where + ": " + what);
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// torch dtype names used by bitsandbytes' quant_state ("float32", ...).
const char* TorchDTypeName(DType d) {
  switch (d) {
    case DType::kF32: return "float32";
    case DType::kF16: return "float16";
    case DType::kBF16: return "bfloat16";
    default: return nullptr;
  }
}
bool TorchDTypeFromName(std::string_view s, DType* out) {
  for (const DType d : {DType::kF32, DType::kF16, DType::kBF16}) {
    if (s == TorchDTypeName(d)) {
      *out = d;
      return true;
    }
  }
  return false;
}

const char* GranularityName(Granularity g) {
  switch (g) {
    case Granularity::kBlock: return "block";
    case Granularity::kGroup: return "group";
    case Granularity::kRow: return "row";
    case Granularity::kTensor: return "tensor";
    case Granularity::kNone: return "none";
    default: return nullptr;
  }
}
bool GranularityFromName(std::string_view s, Granularity* out) {
  for (const Granularity g : {Granularity::kBlock, Granularity::kGroup, Granularity::kRow,
                              Granularity::kTensor, Granularity::kNone}) {
    if (s == GranularityName(g)) {
      *out = g;
      return true;
    }
  }
  return false;
}

// An integer JSON value in [lo, hi].
bool JsonInt(const json& j, int64_t lo, int64_t hi, int64_t* out) {
  int64_t v;
  if (j.is_number_unsigned()) {
    const uint64_t u = j.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
    v = static_cast<int64_t>(u);
  } else if (j.is_number_integer()) {
    v = j.get<int64_t>();
  } else {
    return false;
  }
  if (v < lo || v > hi) return false;
  *out = v;
  return true;
}

// A JSON array of non-negative integers whose product fits int64.
bool JsonShape(const json& j, Shape* out) {
  if (!j.is_array()) return false;
  Shape s;
  int64_t n = 1;
  for (const json& d : j) {
    int64_t v;
    if (!JsonInt(d, 0, std::numeric_limits<int64_t>::max(), &v)) return false;
    if (v != 0 && n > std::numeric_limits<int64_t>::max() / v) return false;
    n *= v;
    s.push_back(v);
  }
  *out = std::move(s);
  return true;
}

std::string ShapeJson(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}


// ---- validated access to a file's tensors -------------------------------------------------------

const TensorInfo& Need(const SafetensorsFile& file, const std::string& key) {
  const TensorInfo* t = file.Find(key);
  if (t == nullptr) Corrupt(key, "tensor is missing");
  return *t;
}

// `key` must exist with `dtype` and exactly `count` elements.
const TensorInfo& NeedTyped(const SafetensorsFile& file, const std::string& key, DType dtype,
                            int64_t count) {
  const TensorInfo& t = Need(file, key);
  if (t.dtype != dtype) {
    Corrupt(key, std::string("dtype is ") + SafetensorsDTypeName(t.dtype) + ", expected " +
                     SafetensorsDTypeName(dtype));
  }
  if (t.num_elements() != count) {
    Corrupt(key, "has " + std::to_string(t.num_elements()) + " elements, expected " +
                     std::to_string(count));
  }
  return t;
}

std::vector<float> ReadF32(const SafetensorsFile& file, const TensorInfo& t) {
  return file.CopyAsF32(t);  // dtype already checked to be F32
}
std::vector<uint8_t> ReadBytes(const SafetensorsFile& file, const TensorInfo& t) {
  const uint8_t* p = file.data(t);
  return std::vector<uint8_t>(p, p + t.size);
}

// Statistics stored as f32, f16, E8M0 bytes (decoded to 2^(e - 127); 0xFF -> NaN) or E4M3 codes,
// as float32 (ValidateQuantizedTensor rejects NaN and values the type cannot hold).
std::vector<float> ReadStatistics(const SafetensorsFile& file, const TensorInfo& t) {
  if (t.dtype == DType::kF32) return ReadF32(file, t);
  const std::vector<uint8_t> bytes = ReadBytes(file, t);
  if (t.dtype == DType::kF16) {  // little-endian, two bytes each
    std::vector<float> out(bytes.size() / 2);
    for (size_t i = 0; i < out.size(); ++i) {
      out[i] = F16ToF32(F16{static_cast<uint16_t>(bytes[2 * i] | bytes[2 * i + 1] << 8)});
    }
    return out;
  }
  std::vector<float> out(bytes.size());
  for (size_t i = 0; i < bytes.size(); ++i) {
    out[i] = t.dtype == DType::kU8 ? E8M0ToFloat(bytes[i]) : FP8E4M3ToF32(bytes[i]);
  }
  return out;
}
std::string_view TextOf(const SafetensorsFile& file, const TensorInfo& t) {
  return std::string_view(reinterpret_cast<const char*>(file.data(t)), t.size);
}

// A logical shape of `n` elements needs at least n / 2 payload bytes (4-bit); larger than the
// file is hostile. Checking first also keeps later (n + 1) / 2 arithmetic from overflowing.
void CheckFits(const SafetensorsFile& file, const std::string& key, const Shape& shape,
               int64_t n) {
  if (static_cast<uint64_t>(n) / 2 > file.file_size()) {
    Corrupt(key, "shape " + ShapeToString(shape) + " needs more payload bytes than the " +
                     std::to_string(file.file_size()) + "-byte file holds");
  }
}

// ---- a module resolved from a file (state header + tensor locations), nothing copied -----------

struct ResolvedModule {
  TensorLayout layout = TensorLayout::kDense;
  QuantState header;  // format, shape, dtype, granularity, block_size; statistics left empty
  bool nested = false;
  int64_t nested_block_size = 0;
  float nested_offset = 0.0f;         // bnb: from JSON; lowbit: read from the tensor
  const TensorInfo* payload = nullptr;
  const TensorInfo* scales = nullptr;       // F32 (or U8 codes when nested, bnb)
  const TensorInfo* zero_points = nullptr;
  const TensorInfo* codebook = nullptr;
  const TensorInfo* nested_codes = nullptr;
  const TensorInfo* nested_absmax = nullptr;
  const TensorInfo* nested_code = nullptr;
  const TensorInfo* nested_offset_tensor = nullptr;
  const TensorInfo* tensor_scale = nullptr;  // lowbit layout, formats with a tensor scale
  std::vector<std::string> keys;
};

void AddKey(ResolvedModule& m, const TensorInfo* t) {
  if (t != nullptr) m.keys.push_back(t->name);
}

// Finds the single bnb 4-bit quant_state key of `prefix`, or "".
std::string BnbStateKey(const SafetensorsFile& file, const std::string& prefix) {
  const std::string nf4 = prefix + std::string(kBnbQuantStatePrefix) + "nf4";
  const std::string fp4 = prefix + std::string(kBnbQuantStatePrefix) + "fp4";
  const bool has_nf4 = file.Contains(nf4), has_fp4 = file.Contains(fp4);
  if (has_nf4 && has_fp4) Corrupt(prefix + "weight", "both nf4 and fp4 quant_state keys present");
  return has_nf4 ? nf4 : has_fp4 ? fp4 : std::string();
}

ResolvedModule ResolveBnb4(const SafetensorsFile& file, const std::string& prefix,
                           const std::string& state_key) {
  ResolvedModule m;
  m.layout = TensorLayout::kBitsandbytes;
  const TensorInfo& st = Need(file, state_key);
  if (st.dtype != DType::kU8 || st.shape.size() != 1) Corrupt(state_key, "must be a 1-D U8 tensor");
  const BnbQuantStateJson js = [&] {
    try {
      return ParseBnbQuantStateJson(TextOf(file, st));
    } catch (const Error& e) {
      Corrupt(state_key, e.message());
    }
  }();
  const Format suffix_type = EndsWith(state_key, "nf4") ? Format::kNF4 : Format::kFP4;
  if (js.quant_type != suffix_type) Corrupt(state_key, "quant_type does not match the key suffix");
  QuantState& h = m.header;
  h.format = js.quant_type;
  h.shape = js.shape;
  h.dtype = js.dtype;
  h.granularity = Granularity::kBlock;
  h.block_size = js.blocksize;
  m.nested = js.nested;
  m.nested_block_size = js.nested_blocksize;
  m.nested_offset = js.nested_offset;
  const int64_t n = h.num_elements();
  const std::string w = prefix + "weight";
  CheckFits(file, state_key, h.shape, n);
  const int64_t nblocks = CeilDiv(n, h.block_size);
  m.payload = &Need(file, w);
  if (m.payload->size != static_cast<uint64_t>((n + 1) / 2)) {
    Corrupt(w, "holds " + std::to_string(m.payload->size) + " bytes, expected " +
                   std::to_string((n + 1) / 2) + " for shape " + ShapeToString(h.shape));
  }
  m.scales = &NeedTyped(file, w + ".absmax", m.nested ? DType::kU8 : DType::kF32, nblocks);
  m.codebook = &NeedTyped(file, w + ".quant_map", DType::kF32, 16);
  if (m.nested) {
    m.nested_absmax = &NeedTyped(file, w + ".nested_absmax", DType::kF32,
                                 CeilDiv(nblocks, m.nested_block_size));
    m.nested_code = &NeedTyped(file, w + ".nested_quant_map", DType::kF32, 256);
  } else if (file.Contains(w + ".nested_absmax") || file.Contains(w + ".nested_quant_map")) {
    Corrupt(state_key, "nested tensors present but the quant_state has no nested keys");
  }
  AddKey(m, m.payload);
  AddKey(m, m.scales);
  AddKey(m, m.codebook);
  AddKey(m, m.nested_absmax);
  AddKey(m, m.nested_code);
  m.keys.push_back(state_key);
  return m;
}

ResolvedModule ResolveBnb8(const SafetensorsFile& file, const std::string& prefix) {
  ResolvedModule m;
  m.layout = TensorLayout::kBitsandbytes;
  const std::string w = prefix + "weight";
  m.payload = &Need(file, w);
  if (m.payload->dtype != DType::kI8 || m.payload->shape.size() != 2) {
    Corrupt(w, "bitsandbytes 8-bit weight must be a 2-D I8 tensor");
  }
  QuantState& h = m.header;
  h.format = Format::kInt8;
  h.shape = m.payload->shape;
  h.dtype = DType::kF16;  // bitsandbytes Int8Params are float16; the file does not say
  h.granularity = Granularity::kRow;
  h.block_size = 0;
  m.scales = &NeedTyped(file, prefix + "SCB", DType::kF32, h.shape[0]);
  if (const TensorInfo* wf = file.Find(prefix + "weight_format")) {
    // bitsandbytes stores the layout index (0 = "row"); anything else is a GPU tile layout.
    const bool is_int = wf->dtype == DType::kU8 || wf->dtype == DType::kI8 ||
                        wf->dtype == DType::kI16 || wf->dtype == DType::kI32 ||
                        wf->dtype == DType::kI64 || wf->dtype == DType::kU16 ||
                        wf->dtype == DType::kU32 || wf->dtype == DType::kU64;
    if (!is_int || wf->num_elements() != 1) Corrupt(wf->name, "must be one integer");
    const uint8_t* p = file.data(*wf);
    for (uint64_t i = 0; i < wf->size; ++i) {
      if (p[i] != 0) {
        throw Error(Status::kUnsupportedFormat,
                    wf->name + ": only weight_format 0 (\"row\") is supported");
      }
    }
    m.keys.push_back(wf->name);
  }
  AddKey(m, m.payload);
  AddKey(m, m.scales);
  return m;
}

// Payload dtype and shape of `format` in the lowbit and dense layouts.
DType PayloadDType(Format f) {
  const FormatInfo& info = GetFormatInfo(f);
  if (IsFourBit(f)) return DType::kU8;
  if (f == Format::kInt8) return DType::kI8;
  return info.dense_dtype;
}
Shape PayloadShape(Format f, const Shape& shape) {
  if (IsFourBit(f)) return {PayloadBytes(f, NumElements(shape))};
  return shape;
}

ResolvedModule ResolveLowbit(const SafetensorsFile& file, const std::string& prefix) {
  ResolvedModule m;
  m.layout = TensorLayout::kLowbit;
  const std::string w = prefix + "weight";
  const std::string state_key = prefix + std::string(kLowbitStateKey);
  const TensorInfo& st = Need(file, state_key);
  if (st.dtype != DType::kU8 || st.shape.size() != 1) Corrupt(state_key, "must be a 1-D U8 tensor");
  const json j = ParseStrictJson(TextOf(file, st), 2, state_key);
  if (!j.is_object()) Corrupt(state_key, "is not a JSON object");
  static const std::set<std::string> kKeys = {"format", "version", "shape", "dtype",
                                              "granularity", "block_size", "nested_block_size"};
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (kKeys.count(it.key()) == 0) Corrupt(state_key, "unknown key '" + it.key() + "'");
  }
  for (const char* k : {"format", "version", "shape", "dtype", "granularity", "block_size"}) {
    if (!j.contains(k)) Corrupt(state_key, std::string("missing key '") + k + "'");
  }
  int64_t version;
  if (!JsonInt(j["version"], 1, std::numeric_limits<int64_t>::max(), &version)) {
    Corrupt(state_key, "version must be a positive integer");
  }
  if (version > LOWBIT_FORMAT_VERSION) {
    throw Error(Status::kUnsupportedFormat,
                state_key + ": written with lowbit format version " + std::to_string(version) +
                    ", this build reads up to " + std::to_string(LOWBIT_FORMAT_VERSION));
  }
  if (!j["format"].is_string()) Corrupt(state_key, "format must be a string");
  const std::string& fname = j["format"].get_ref<const std::string&>();
  QuantState& h = m.header;
  bool known = false;
  for (int i = 0; i < kNumFormats; ++i) {
    if (fname == FormatName(static_cast<Format>(i))) {
      h.format = static_cast<Format>(i);
      known = true;
    }
  }
  if (!known) {
    throw Error(Status::kUnsupportedFormat, state_key + ": unknown format '" + fname + "'");
  }
  const FormatInfo& info = GetFormatInfo(h.format);
  if (!JsonShape(j["shape"], &h.shape)) Corrupt(state_key, "shape must be non-negative integers");
  if (!j["dtype"].is_string()) Corrupt(state_key, "dtype must be a string");
  bool dtype_ok = false;
  for (const DType d : {DType::kF32, DType::kF16, DType::kBF16}) {
    if (j["dtype"].get_ref<const std::string&>() == DTypeName(d)) {
      h.dtype = d;
      dtype_ok = true;
    }
  }
  if (!dtype_ok) Corrupt(state_key, "dtype must be f32, f16 or bf16");
  if (!j["granularity"].is_string() ||
      !GranularityFromName(j["granularity"].get_ref<const std::string&>(), &h.granularity) ||
      !((info.granularities >> static_cast<int>(h.granularity)) & 1u)) {
    Corrupt(state_key, "granularity " + j["granularity"].dump() + " is not valid for " + fname);
  }
  const bool blocked = h.granularity == Granularity::kBlock || h.granularity == Granularity::kGroup;
  if (!JsonInt(j["block_size"], blocked ? 1 : 0, kMaxFileBlockSize, &h.block_size)) {
    Corrupt(state_key, "block_size " + j["block_size"].dump() + " is out of range");
  }
  if (j.contains("nested_block_size")) {
    if (!info.supports_double_quant ||
        !JsonInt(j["nested_block_size"], 1, kMaxFileBlockSize, &m.nested_block_size)) {
      Corrupt(state_key, "invalid nested_block_size " + j["nested_block_size"].dump());
    }
    m.nested = true;
  }
  const int64_t n = h.num_elements();
  CheckFits(file, state_key, h.shape, n);
  m.payload = &Need(file, w);
  const DType pd = PayloadDType(h.format);
  const Shape ps = IsFourBit(h.format) ? Shape{(n + 1) / 2} : h.shape;
  if (m.payload->dtype != pd || m.payload->shape != ps) {
    Corrupt(w, std::string("must be ") + SafetensorsDTypeName(pd) + " " + ShapeToString(ps) +
                   ", found " + SafetensorsDTypeName(m.payload->dtype) + " " +
                   ShapeToString(m.payload->shape));
  }
  AddKey(m, m.payload);
  m.keys.push_back(state_key);
  if (!IsDense(h.format)) {
    const int64_t ns = h.num_scales();
    if (m.nested) {
      m.nested_codes = &NeedTyped(file, w + ".nested_codes", DType::kU8, ns);
      m.nested_absmax =
          &NeedTyped(file, w + ".nested_absmax", DType::kF32, CeilDiv(ns, m.nested_block_size));
      m.nested_code = &NeedTyped(file, w + ".nested_code", DType::kF32, 256);
      m.nested_offset_tensor = &NeedTyped(file, w + ".nested_offset", DType::kF32, 1);
    } else {
      // In the format's statistic type: f32, E8M0 bytes (mxfp4) or E4M3 (nvfp4).
      m.scales = &NeedTyped(file, w + ".scales", info.statistic_dtype, ns);
    }
    if (info.has_tensor_scale) {
      m.tensor_scale = &NeedTyped(file, w + ".tensor_scale", DType::kF32, 1);
    }
    if (info.has_zero_point) m.zero_points = &NeedTyped(file, w + ".zero_points", DType::kU8, ns);
    if (info.codebook_size > 0) {
      m.codebook = &NeedTyped(file, w + ".codebook", DType::kF32, info.codebook_size);
    }
  }
  for (const TensorInfo* t : {m.scales, m.zero_points, m.codebook, m.nested_codes,
                              m.nested_absmax, m.nested_code, m.nested_offset_tensor,
                              m.tensor_scale}) {
    AddKey(m, t);
  }
  return m;
}

ResolvedModule ResolveDense(const SafetensorsFile& file, const std::string& name) {
  ResolvedModule m;
  m.layout = TensorLayout::kDense;
  m.payload = &Need(file, name);
  QuantState& h = m.header;
  switch (m.payload->dtype) {
    case DType::kF32: h.format = Format::kF32; break;
    case DType::kF16: h.format = Format::kF16; break;
    case DType::kBF16: h.format = Format::kBF16; break;
    default:
      throw Error(Status::kUnsupportedFormat,
                  name + ": dtype " + SafetensorsDTypeName(m.payload->dtype) +
                      " is not a weight format (f32, f16, bf16)");
  }
  h.dtype = m.payload->dtype;
  h.shape = m.payload->shape;
  h.granularity = Granularity::kNone;
  m.keys.push_back(name);
  return m;
}

ResolvedModule Resolve(const SafetensorsFile& file, std::string_view prefix_view) {
  const std::string prefix(prefix_view);
  const std::string bnb4 = BnbStateKey(file, prefix);
  if (!bnb4.empty()) return ResolveBnb4(file, prefix, bnb4);
  if (file.Contains(prefix + std::string(kLowbitStateKey))) return ResolveLowbit(file, prefix);
  if (file.Contains(prefix + "SCB")) return ResolveBnb8(file, prefix);
  if (file.Contains(prefix + "weight")) return ResolveDense(file, prefix + "weight");
  throw Error(Status::kInvalidArgument, "no weight stored under prefix '" + prefix + "' in " +
                                            (file.path().empty() ? "buffer" : file.path()));
}

QuantizedTensor Materialize(const SafetensorsFile& file, const ResolvedModule& m) {
  QuantizedTensor q;
  q.state = m.header;
  QuantState& s = q.state;
  q.data = ReadBytes(file, *m.payload);
  if (m.codebook) s.codebook = ReadF32(file, *m.codebook);
  if (m.zero_points) s.zero_points = ReadBytes(file, *m.zero_points);
  if (m.nested) {
    NestedState ns;
    ns.block_size = m.nested_block_size;
    ns.absmax = ReadF32(file, *m.nested_absmax);
    ns.code = ReadF32(file, *m.nested_code);
    if (m.layout == TensorLayout::kBitsandbytes) {
      ns.codes = ReadBytes(file, *m.scales);  // bnb: weight.absmax holds the u8 codes
      ns.offset = m.nested_offset;
    } else {
      ns.codes = ReadBytes(file, *m.nested_codes);
      ns.offset = ReadF32(file, *m.nested_offset_tensor)[0];
    }
    s.nested = std::move(ns);
  } else if (m.scales) {
    s.scales = ReadStatistics(file, *m.scales);
  }
  if (m.tensor_scale) s.tensor_scale = ReadF32(file, *m.tensor_scale)[0];
  const std::string where = m.keys.empty() ? std::string("tensor") : m.keys.front();
  try {
    ValidateQuantizedTensor(q, Status::kCorruptData);
  } catch (const Error& e) {
    throw Error(e.status(), where + ": " + e.message());
  }
  return q;
}

// ---- writing ------------------------------------------------------------------------------------

// One tensor to write: borrowed bytes, or bytes owned by the Part (JSON, small scalars).
struct Part {
  TensorSpec spec;
  const void* data = nullptr;
  size_t bytes = 0;
  std::shared_ptr<std::string> owned;
};

Part Borrowed(std::string name, DType dtype, Shape shape, const void* data, size_t bytes) {
  return Part{TensorSpec{std::move(name), dtype, std::move(shape)}, data, bytes, nullptr};
}
Part Owned(std::string name, DType dtype, Shape shape, std::string bytes) {
  auto owned = std::make_shared<std::string>(std::move(bytes));
  return Part{TensorSpec{std::move(name), dtype, std::move(shape)}, owned->data(), owned->size(),
              owned};
}
Part F32Vector(std::string name, const std::vector<float>& v) {
  return Borrowed(std::move(name), DType::kF32, {static_cast<int64_t>(v.size())}, v.data(),
                  v.size() * sizeof(float));
}
Part U8Vector(std::string name, const std::vector<uint8_t>& v) {
  return Borrowed(std::move(name), DType::kU8, {static_cast<int64_t>(v.size())}, v.data(),
                  v.size());
}
// One tensor of statistics in the format's statistic type (the floats are exact values of it:
// ValidateQuantizedTensor checked).
Part StatisticsPart(std::string name, DType dtype, const std::vector<float>& scales) {
  if (dtype == DType::kF32) return F32Vector(std::move(name), scales);
  if (dtype == DType::kF16) {
    std::string bytes(scales.size() * 2, '\0');
    for (size_t i = 0; i < scales.size(); ++i) {
      const uint16_t h = F32ToF16(scales[i]).bits;
      bytes[2 * i] = static_cast<char>(h & 0xFF);
      bytes[2 * i + 1] = static_cast<char>(h >> 8);
    }
    return Owned(std::move(name), dtype, {static_cast<int64_t>(scales.size())}, std::move(bytes));
  }
  std::string bytes(scales.size(), '\0');
  for (size_t i = 0; i < scales.size(); ++i) {
    bytes[i] = static_cast<char>(dtype == DType::kU8 ? E8M0FromFloat(scales[i])
                                                     : F32ToFP8E4M3(scales[i]));
  }
  return Owned(std::move(name), dtype, {static_cast<int64_t>(scales.size())}, std::move(bytes));
}
Part Text(std::string name, std::string text) {
  const int64_t len = static_cast<int64_t>(text.size());
  return Owned(std::move(name), DType::kU8, {len}, std::move(text));
}

TensorLayout ResolveLayout(const QuantizedTensor& q, TensorLayout layout) {
  if (layout != TensorLayout::kAuto) return layout;
  if (IsDense(q.format())) return TensorLayout::kDense;
  if (q.format() == Format::kNF4 || q.format() == Format::kFP4) return TensorLayout::kBitsandbytes;
  return TensorLayout::kLowbit;
}

std::vector<Part> BuildParts(std::string_view prefix_view, const QuantizedTensor& q,
                             TensorLayout layout) {
  ValidateQuantizedTensor(q, Status::kInvalidArgument);
  const std::string prefix(prefix_view);
  const std::string w = prefix + "weight";
  const QuantState& s = q.state;
  const FormatInfo& info = GetFormatInfo(s.format);
  layout = ResolveLayout(q, layout);
  std::vector<Part> parts;
  switch (layout) {
    case TensorLayout::kDense:
      Require(IsDense(s.format), Status::kInvalidArgument,
              w + ": the dense layout holds only f32/f16/bf16, not " + info.name);
      parts.push_back(Borrowed(w, info.dense_dtype, s.shape, q.data.data(), q.data.size()));
      break;
    case TensorLayout::kBitsandbytes:
      if (s.format == Format::kNF4 || s.format == Format::kFP4) {
        BnbQuantStateJson js;
        js.quant_type = s.format;
        js.blocksize = s.block_size;
        js.dtype = s.dtype;
        js.shape = s.shape;
        parts.push_back(Borrowed(w, DType::kU8, {static_cast<int64_t>(q.data.size()), 1},
                                 q.data.data(), q.data.size()));
        if (s.nested) {
          const NestedState& ns = *s.nested;
          js.nested = true;
          js.nested_blocksize = ns.block_size;
          js.nested_offset = ns.offset;
          parts.push_back(U8Vector(w + ".absmax", ns.codes));
          parts.push_back(F32Vector(w + ".quant_map", s.codebook));
          parts.push_back(F32Vector(w + ".nested_absmax", ns.absmax));
          parts.push_back(F32Vector(w + ".nested_quant_map", ns.code));
        } else {
          parts.push_back(F32Vector(w + ".absmax", s.scales));
          parts.push_back(F32Vector(w + ".quant_map", s.codebook));
        }
        parts.push_back(Text(prefix + std::string(kBnbQuantStatePrefix) + info.name,
                             FormatBnbQuantStateJson(js)));
      } else if (s.format == Format::kInt8) {
        Require(s.granularity == Granularity::kRow && s.shape.size() == 2,
                Status::kInvalidArgument,
                w + ": the bitsandbytes 8-bit layout needs a 2-D int8 tensor with per-row "
                    "statistics, got " + ShapeToString(s.shape));
        parts.push_back(Borrowed(w, DType::kI8, s.shape, q.data.data(), q.data.size()));
        parts.push_back(F32Vector(prefix + "SCB", s.scales));
        parts.push_back(Owned(prefix + "weight_format", DType::kU8, {}, std::string(1, '\0')));
      } else {
        throw Error(Status::kInvalidArgument, w + ": bitsandbytes has no layout for " +
                                                  std::string(info.name) +
                                                  " (nf4, fp4 and int8 only)");
      }
      break;
    case TensorLayout::kLowbit: {
      std::string js = std::string("{\"format\": \"") + info.name +
                       "\", \"version\": " + std::to_string(LOWBIT_FORMAT_VERSION) +
                       ", \"shape\": " + ShapeJson(s.shape) + ", \"dtype\": \"" +
                       DTypeName(s.dtype) + "\", \"granularity\": \"" +
                       GranularityName(s.granularity) +
                       "\", \"block_size\": " + std::to_string(s.block_size);
      if (s.nested) js += ", \"nested_block_size\": " + std::to_string(s.nested->block_size);
      js += "}";
      parts.push_back(Borrowed(w, PayloadDType(s.format), PayloadShape(s.format, s.shape),
                               q.data.data(), q.data.size()));
      parts.push_back(Text(prefix + std::string(kLowbitStateKey), std::move(js)));
      if (!IsDense(s.format)) {
        if (s.nested) {
          const NestedState& ns = *s.nested;
          parts.push_back(U8Vector(w + ".nested_codes", ns.codes));
          parts.push_back(F32Vector(w + ".nested_absmax", ns.absmax));
          parts.push_back(F32Vector(w + ".nested_code", ns.code));
          std::string off(sizeof(float), '\0');
          std::memcpy(off.data(), &ns.offset, sizeof(float));
          parts.push_back(Owned(w + ".nested_offset", DType::kF32, {}, std::move(off)));
        } else {
          parts.push_back(StatisticsPart(w + ".scales", info.statistic_dtype, s.scales));
        }
        if (info.has_tensor_scale) {
          std::string ts(sizeof(float), '\0');
          std::memcpy(ts.data(), &s.tensor_scale, sizeof(float));
          parts.push_back(Owned(w + ".tensor_scale", DType::kF32, {1}, std::move(ts)));
        }
        if (info.has_zero_point) parts.push_back(U8Vector(w + ".zero_points", s.zero_points));
        if (info.codebook_size > 0) parts.push_back(F32Vector(w + ".codebook", s.codebook));
      }
      break;
    }
    default:
      throw Error(Status::kInvalidArgument,
                  "unknown tensor layout " + std::to_string(static_cast<int>(layout)));
  }
  return parts;
}

}  // namespace

const char* TensorLayoutName(TensorLayout layout) noexcept {
  switch (layout) {
    case TensorLayout::kAuto: return "auto";
    case TensorLayout::kDense: return "dense";
    case TensorLayout::kBitsandbytes: return "bitsandbytes";
    case TensorLayout::kLowbit: return "lowbit";
  }
  return "unknown";
}

// ---- Python float repr / bnb JSON ---------------------------------------------------------------

std::string PythonFloatRepr(double value) {
  Require(std::isfinite(value), Status::kInvalidArgument, "PythonFloatRepr: non-finite value");
  char buf[64];
  // Shortest round-trip digits in scientific form: "-1.0713756084442139e-02".
  const auto res = std::to_chars(buf, buf + sizeof(buf), value, std::chars_format::scientific);
  const std::string sci(buf, res.ptr);
  const size_t e_pos = sci.find('e');
  std::string mant = sci.substr(0, e_pos);
  const int exp10 = std::stoi(sci.substr(e_pos + 1));
  std::string sign;
  if (!mant.empty() && mant[0] == '-') {
    sign = "-";
    mant.erase(0, 1);
  }
  std::string digits;
  for (const char c : mant) {
    if (c != '.') digits += c;
  }
  // Python's repr (float_repr_style "short"): positional when -4 <= exponent < 16.
  std::string out;
  if (exp10 >= -4 && exp10 < 16) {
    if (exp10 >= 0) {
      const size_t int_len = static_cast<size_t>(exp10) + 1;
      if (digits.size() <= int_len) {
        out = digits + std::string(int_len - digits.size(), '0') + ".0";
      } else {
        out = digits.substr(0, int_len) + "." + digits.substr(int_len);
      }
    } else {
      out = "0." + std::string(static_cast<size_t>(-exp10 - 1), '0') + digits;
    }
  } else {
    out = digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    const int a = exp10 < 0 ? -exp10 : exp10;
    out += std::string("e") + (exp10 < 0 ? "-" : "+") + (a < 10 ? "0" : "") + std::to_string(a);
  }
  return sign + out;
}

std::string FormatBnbQuantStateJson(const BnbQuantStateJson& s) {
  Require(s.quant_type == Format::kNF4 || s.quant_type == Format::kFP4, Status::kInvalidArgument,
          std::string("bitsandbytes quant_state: quant_type must be nf4 or fp4, got ") +
              FormatName(s.quant_type));
  const char* dtype = TorchDTypeName(s.dtype);
  Require(dtype != nullptr, Status::kInvalidArgument,
          std::string("bitsandbytes quant_state: dtype must be f32/f16/bf16, got ") +
              DTypeName(s.dtype));
  std::string j = std::string("{\"quant_type\": \"") + FormatName(s.quant_type) +
                  "\", \"blocksize\": " + std::to_string(s.blocksize) + ", \"dtype\": \"" +
                  dtype + "\", \"shape\": " + ShapeJson(s.shape);
  if (s.nested) {
    Require(std::isfinite(s.nested_offset), Status::kInvalidArgument,
            "bitsandbytes quant_state: non-finite nested_offset");
    j += ", \"nested_blocksize\": " + std::to_string(s.nested_blocksize) +
         ", \"nested_dtype\": \"float32\", \"nested_offset\": " +
         PythonFloatRepr(static_cast<double>(s.nested_offset));
  }
  return j + "}";
}

BnbQuantStateJson ParseBnbQuantStateJson(std::string_view text) {
  const std::string where = "bitsandbytes quant_state";
  const json j = ParseStrictJson(text, 2, where);
  if (!j.is_object()) Corrupt(where, "is not a JSON object");
  // bitsandbytes' valid_qs_keys; the tensor keys may appear in unpacked dicts but carry no data
  // in the JSON, so only the scalar ones are accepted here.
  static const std::set<std::string> kKeys = {"quant_type", "blocksize", "dtype", "shape",
                                              "nested_blocksize", "nested_dtype", "nested_offset"};
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (kKeys.count(it.key()) == 0) Corrupt(where, "unexpected key '" + it.key() + "'");
  }
  for (const char* k : {"quant_type", "blocksize", "dtype", "shape"}) {
    if (!j.contains(k)) Corrupt(where, std::string("missing key '") + k + "'");
  }
  BnbQuantStateJson s;
  const json& qt = j["quant_type"];
  if (qt == "nf4") {
    s.quant_type = Format::kNF4;
  } else if (qt == "fp4") {
    s.quant_type = Format::kFP4;
  } else {
    Corrupt(where, "quant_type " + qt.dump() + " is not \"nf4\" or \"fp4\"");
  }
  if (!JsonInt(j["blocksize"], 1, kMaxFileBlockSize - 1, &s.blocksize)) {
    Corrupt(where, "blocksize " + j["blocksize"].dump() + " is not an integer in [1, 2^31)");
  }
  if (!j["dtype"].is_string() ||
      !TorchDTypeFromName(j["dtype"].get_ref<const std::string&>(), &s.dtype)) {
    Corrupt(where, "dtype " + j["dtype"].dump() + " is not float32, float16 or bfloat16");
  }
  if (!JsonShape(j["shape"], &s.shape)) {
    Corrupt(where, "shape " + j["shape"].dump() + " is not a list of non-negative integers");
  }
  const int nested_keys = static_cast<int>(j.contains("nested_blocksize")) +
                          static_cast<int>(j.contains("nested_dtype")) +
                          static_cast<int>(j.contains("nested_offset"));
  if (nested_keys != 0 && nested_keys != 3) {
    Corrupt(where, "nested_blocksize, nested_dtype and nested_offset must appear together");
  }
  if (nested_keys == 3) {
    s.nested = true;
    if (!JsonInt(j["nested_blocksize"], 1, kMaxFileBlockSize - 1, &s.nested_blocksize)) {
      Corrupt(where, "nested_blocksize " + j["nested_blocksize"].dump() + " is out of range");
    }
    if (j["nested_dtype"] != "float32") {
      Corrupt(where, "nested_dtype " + j["nested_dtype"].dump() + " is not \"float32\"");
    }
    const json& off = j["nested_offset"];
    if (!off.is_number()) Corrupt(where, "nested_offset is not a number");
    // torch.tensor(float(x)): double -> float32, round to nearest even.
    s.nested_offset = static_cast<float>(off.get<double>());
    if (!std::isfinite(s.nested_offset)) Corrupt(where, "nested_offset is not finite in float32");
  }
  return s;
}

std::string BnbQuantizationConfigJson(const BnbQuantizationConfig& c) {
  Require(c.quant_type == Format::kNF4 || c.quant_type == Format::kFP4, Status::kInvalidArgument,
          std::string("quantization_config: bnb_4bit_quant_type must be nf4 or fp4, got ") +
              FormatName(c.quant_type));
  const char* compute = TorchDTypeName(c.compute_dtype);
  Require(compute != nullptr, Status::kInvalidArgument,
          std::string("quantization_config: compute dtype must be f32/f16/bf16, got ") +
              DTypeName(c.compute_dtype));
  Require(std::isfinite(c.llm_int8_threshold), Status::kInvalidArgument,
          "quantization_config: non-finite llm_int8_threshold");
  json j;  // std::map-backed: keys come out sorted, as transformers writes them (sort_keys=True)
  j["_load_in_4bit"] = c.load_in_4bit;
  j["_load_in_8bit"] = !c.load_in_4bit;
  j["bnb_4bit_compute_dtype"] = compute;
  j["bnb_4bit_quant_storage"] = "uint8";
  j["bnb_4bit_quant_type"] = FormatName(c.quant_type);
  j["bnb_4bit_use_double_quant"] = c.use_double_quant;
  j["llm_int8_enable_fp32_cpu_offload"] = c.llm_int8_enable_fp32_cpu_offload;
  j["llm_int8_has_fp16_weight"] = c.llm_int8_has_fp16_weight;
  j["llm_int8_skip_modules"] =
      c.llm_int8_skip_modules.empty() ? json(nullptr) : json(c.llm_int8_skip_modules);
  j["llm_int8_threshold"] = c.llm_int8_threshold;
  j["load_in_4bit"] = c.load_in_4bit;
  j["load_in_8bit"] = !c.load_in_4bit;
  j["quant_method"] = "bitsandbytes";
  return j.dump(2);
}

// ---- public module / file API --------------------------------------------------------------------

std::vector<TensorSpec> PlanQuantizedTensor(std::string_view prefix, const QuantizedTensor& q,
                                            TensorLayout layout) {
  std::vector<TensorSpec> specs;
  for (Part& p : BuildParts(prefix, q, layout)) specs.push_back(std::move(p.spec));
  return specs;
}

void SaveQuantizedTensor(SafetensorsWriter& writer, std::string_view prefix,
                         const QuantizedTensor& q, TensorLayout layout) {
  for (const Part& p : BuildParts(prefix, q, layout)) {
    writer.Add(p.spec.name, p.spec.dtype, p.spec.shape, p.data, p.bytes);
  }
}

QuantizedTensor LoadQuantizedTensor(const SafetensorsFile& file, std::string_view prefix) {
  return Materialize(file, Resolve(file, prefix));
}

QuantizedTensor LoadDenseTensor(const SafetensorsFile& file, std::string_view name) {
  return Materialize(file, ResolveDense(file, std::string(name)));
}

std::vector<CheckpointEntry> ListQuantizedModules(const SafetensorsFile& file) {
  // Module prefixes, found from their marker keys.
  std::set<std::string> prefixes;
  const std::string lowbit_key(kLowbitStateKey);
  for (const TensorInfo& t : file.tensors()) {
    const std::string& k = t.name;
    const size_t bnb = k.rfind(kBnbQuantStatePrefix);
    if (bnb != std::string::npos && (EndsWith(k, "nf4") || EndsWith(k, "fp4")) &&
        bnb + kBnbQuantStatePrefix.size() + 3 == k.size()) {
      prefixes.insert(k.substr(0, bnb));
    } else if (EndsWith(k, lowbit_key)) {
      prefixes.insert(k.substr(0, k.size() - lowbit_key.size()));
    } else if (EndsWith(k, "SCB")) {
      const std::string p = k.substr(0, k.size() - 3);
      const TensorInfo* w = file.Find(p + "weight");
      if (w != nullptr && w->dtype == DType::kI8) prefixes.insert(p);
    }
  }
  std::vector<CheckpointEntry> out;
  std::set<std::string> claimed;
  for (const std::string& p : prefixes) {
    const ResolvedModule m = Resolve(file, p);
    CheckpointEntry e;
    e.name = p + "weight";
    e.prefix = p;
    e.layout = m.layout;
    e.format = m.header.format;
    e.format_name = FormatName(m.header.format);
    e.shape = m.header.shape;
    e.dtype = m.header.dtype;
    e.block_size = (m.header.granularity == Granularity::kBlock ||
                    m.header.granularity == Granularity::kGroup)
                       ? m.header.block_size
                       : 0;
    e.double_quant = m.nested;
    e.keys = m.keys;
    for (const std::string& k : m.keys) {
      if (!claimed.insert(k).second) Corrupt(k, "belongs to two quantized modules");
      e.bytes += static_cast<int64_t>(file.Get(k).size);
    }
    const int64_t n = m.header.num_elements();
    e.bits_per_weight = n > 0 ? 8.0 * static_cast<double>(e.bytes) / static_cast<double>(n) : 0;
    out.push_back(std::move(e));
  }
  for (const TensorInfo& t : file.tensors()) {
    if (claimed.count(t.name)) continue;
    CheckpointEntry e;
    e.name = t.name;
    e.layout = TensorLayout::kDense;
    if (t.dtype == DType::kF32) e.format = Format::kF32;
    if (t.dtype == DType::kF16) e.format = Format::kF16;
    if (t.dtype == DType::kBF16) e.format = Format::kBF16;
    e.format_name = e.format ? FormatName(*e.format) : DTypeName(t.dtype);
    e.shape = t.shape;
    e.dtype = t.dtype;
    e.bytes = static_cast<int64_t>(t.size);
    e.bits_per_weight = t.num_elements() > 0 ? 8.0 * static_cast<double>(DTypeSize(t.dtype)) : 0;
    e.keys = {t.name};
    out.push_back(std::move(e));
  }
  std::sort(out.begin(), out.end(),
            [](const CheckpointEntry& a, const CheckpointEntry& b) { return a.name < b.name; });
  return out;
}

void SaveCheckpoint(const std::string& path, const std::vector<CheckpointItem>& items,
                    const Metadata& metadata) {
  std::vector<Part> parts;
  for (const CheckpointItem& item : items) {
    if (item.quantized != nullptr) {
      for (Part& p : BuildParts(item.name, *item.quantized, item.layout)) {
        parts.push_back(std::move(p));
      }
    } else {
      int64_t n = 0;
      try {
        n = NumElements(item.dense.shape);
      } catch (const Error& e) {
        throw Error(Status::kInvalidArgument, item.name + ": " + e.message());
      }
      Require(item.dense.data != nullptr || n == 0, Status::kInvalidArgument,
              item.name + ": null data");
      parts.push_back(Borrowed(item.name, item.dense.dtype, item.dense.shape, item.dense.data,
                               static_cast<size_t>(n) * DTypeSize(item.dense.dtype)));
    }
  }
  std::set<std::string> names;
  std::vector<TensorSpec> specs;
  for (const Part& p : parts) {
    Require(names.insert(p.spec.name).second, Status::kInvalidArgument,
            "duplicate tensor name '" + p.spec.name + "' in checkpoint");
    specs.push_back(p.spec);
  }
  SafetensorsWriter writer(path, metadata, SafetensorsHeaderBound(specs, metadata));
  for (const Part& p : parts) writer.Add(p.spec.name, p.spec.dtype, p.spec.shape, p.data, p.bytes);
  writer.Commit();
}

}  // namespace io
}  // namespace lowbit
