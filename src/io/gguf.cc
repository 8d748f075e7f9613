// GGUF reader (mmap + strict validation of hostile files), bit-exact dequantization, conversion to
// lowbit tensors, and the atomic streaming GGUF writer.
#include "lowbit/io/gguf.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <utility>

#include "io/file_util.h"
#include "io/json_util.h"

namespace lowbit {
namespace io {
namespace {

// Fixed part of the header: magic, version, tensor count, key/value count.
constexpr uint64_t kGgufHeaderBytes = 4 + 4 + 8 + 8;
// The least bytes one key/value can occupy (u64 key length, a 1-byte key, u32 type, a u8 value)
// and one tensor info (u64 name length, 1-byte name, u32 n_dims, one u64 ne, u32 type, u64
// offset): the counts in the header are bounded by what the rest of the file can hold.
constexpr uint64_t kMinKeyValueBytes = 8 + 1 + 4 + 1;
constexpr uint64_t kMinTensorInfoBytes = 8 + 1 + 4 + 8 + 4 + 8;

[[noreturn]] void Corrupt(const std::string& where, const std::string& what) {
  throw Error(Status::kCorruptData, where + ": " + what);
}

size_t ScalarSize(GgufValueType t) {
  switch (t) {
    case GgufValueType::kUint8:
    case GgufValueType::kInt8:
    case GgufValueType::kBool:
      return 1;
    case GgufValueType::kUint16:
    case GgufValueType::kInt16:
      return 2;
    case GgufValueType::kUint32:
    case GgufValueType::kInt32:
    case GgufValueType::kFloat32:
      return 4;
    case GgufValueType::kUint64:
    case GgufValueType::kInt64:
    case GgufValueType::kFloat64:
      return 8;
    default:
      return 0;  // string, array, unknown
  }
}

bool IsKnownValueType(uint32_t t) { return t <= static_cast<uint32_t>(GgufValueType::kFloat64); }

uint64_t LoadLE(const uint8_t* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = n; i-- > 0;) v = (v << 8) | p[i];
  return v;
}

void AppendLE(std::vector<uint8_t>& out, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

// Rounds `v` up to a multiple of the power of two `align`; false on overflow.
bool AlignUp(uint64_t v, uint64_t align, uint64_t* out) {
  const uint64_t rem = v & (align - 1);
  if (rem == 0) {
    *out = v;
    return true;
  }
  const uint64_t pad = align - rem;
  if (v > std::numeric_limits<uint64_t>::max() - pad) return false;
  *out = v + pad;
  return true;
}

bool IsPowerOfTwo(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

// Element count of `ne` and byte size for `t`; false on overflow or a bad row length (the
// message says which).
bool TensorGeometry(const std::vector<int64_t>& ne, const ggml::TypeTraits& t, int64_t* elements,
                    uint64_t* bytes, std::string* why) {
  int64_t n = 1;
  for (const int64_t d : ne) {
    if (d < 0) {
      *why = "negative dimension " + std::to_string(d);
      return false;
    }
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d) {
      *why = "element count overflows int64";
      return false;
    }
    n *= d;
  }
  if (!ne.empty() && ne[0] % t.block_elements != 0) {
    *why = "row length " + std::to_string(ne[0]) + " is not a multiple of " + t.name + "'s " +
           std::to_string(t.block_elements) + "-element block";
    return false;
  }
  const uint64_t blocks = static_cast<uint64_t>(n / t.block_elements);
  if (blocks > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(t.block_bytes)) {
    *why = "byte size overflows uint64";
    return false;
  }
  *elements = n;
  *bytes = blocks * static_cast<uint64_t>(t.block_bytes);
  return true;
}

std::string Hex(const uint8_t* p, size_t n) {
  std::string s;
  char buf[4];
  for (size_t i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof(buf), "%02x", p[i]);
    s += buf;
  }
  return s;
}

// Bounds-checked little-endian reader over the file image. Every failure names the field and
// the byte offset where it starts.
class Cursor {
 public:
  Cursor(const uint8_t* data, uint64_t size, const std::string& where)
      : data_(data), size_(size), where_(where) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }

  const uint8_t* Take(uint64_t n, const std::string& what) {
    if (n > remaining()) {
      Corrupt(where_, what + " at byte " + std::to_string(pos_) + " needs " + std::to_string(n) +
                          " bytes, but the " + std::to_string(size_) + "-byte file ends after " +
                          std::to_string(remaining()) + " (truncated?)");
    }
    const uint8_t* p = data_ + pos_;
    pos_ += n;
    return p;
  }
  uint32_t U32(const std::string& what) { return static_cast<uint32_t>(LoadLE(Take(4, what), 4)); }
  uint64_t U64(const std::string& what) { return LoadLE(Take(8, what), 8); }
  // u64 length + bytes; the length is checked against `max_bytes` and the bytes that remain
  // before anything is allocated.
  std::string String(const std::string& what, uint64_t max_bytes) {
    const uint64_t at = pos_;
    const uint64_t n = U64(what + " length");
    if (n > max_bytes) {
      Corrupt(where_, what + " at byte " + std::to_string(at) + " is " + std::to_string(n) +
                          " bytes long; at most " + std::to_string(max_bytes) + " are allowed");
    }
    const uint8_t* p = Take(n, what);
    return std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
  }

 private:
  const uint8_t* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
  const std::string& where_;
};

// Reads a value of type `type` (already validated as known) into `v`.
void ReadValue(Cursor& c, GgufValueType type, const std::string& what, const std::string& where,
               GgufValue* v) {
  v->type = type;
  if (type == GgufValueType::kString) {
    v->str = c.String(what, std::numeric_limits<uint64_t>::max());
    return;
  }
  if (type != GgufValueType::kArray) {
    const size_t n = ScalarSize(type);
    const uint8_t* p = c.Take(n, what);
    if (type == GgufValueType::kBool && p[0] > 1) {
      Corrupt(where, what + ": bool value " + std::to_string(p[0]) + " is neither 0 nor 1");
    }
    v->raw.assign(p, p + n);
    return;
  }
  const uint32_t et = c.U32(what + " element type");
  if (et == static_cast<uint32_t>(GgufValueType::kArray)) {
    Corrupt(where, what + ": arrays of arrays are not allowed (ggml refuses them too)");
  }
  if (!IsKnownValueType(et)) {
    Corrupt(where, what + ": unknown array element type " + std::to_string(et));
  }
  v->array_type = static_cast<GgufValueType>(et);
  const uint64_t at = c.pos();
  const uint64_t count = c.U64(what + " element count");
  const uint64_t min_element =
      v->array_type == GgufValueType::kString ? 8 : ScalarSize(v->array_type);
  if (count > c.remaining() / min_element) {
    Corrupt(where, what + ": array of " + std::to_string(count) + " " +
                       GgufValueTypeName(v->array_type) + " at byte " + std::to_string(at) +
                       " cannot fit in the " + std::to_string(c.remaining()) +
                       " bytes that remain (truncated?)");
  }
  if (v->array_type == GgufValueType::kString) {
    v->strings.reserve(static_cast<size_t>(count));
    for (uint64_t i = 0; i < count; ++i) {
      v->strings.push_back(
          c.String(what + "[" + std::to_string(i) + "]", std::numeric_limits<uint64_t>::max()));
    }
    return;
  }
  const uint8_t* p = c.Take(count * min_element, what);
  if (v->array_type == GgufValueType::kBool) {
    for (uint64_t i = 0; i < count; ++i) {
      if (p[i] > 1) {
        Corrupt(where, what + "[" + std::to_string(i) + "]: bool value " + std::to_string(p[i]) +
                           " is neither 0 nor 1");
      }
    }
  }
  v->raw.assign(p, p + count * min_element);
}

std::string EscapeForListing(const std::string& s, size_t max_chars) {
  std::string out = "\"";
  size_t shown = 0;
  for (const char ch : s) {
    if (shown == max_chars) {
      out += "...";
      break;
    }
    const unsigned char u = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (ch == '\n') {
      out += "\\n";
    } else if (u < 0x20 || u == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", u);
      out += buf;
    } else {
      out += ch;
    }
    ++shown;
  }
  return out + "\"";
}

// Printable form of element `i` of a numeric array or of a scalar (raw at offset i * size).
std::string NumberToString(GgufValueType t, const uint8_t* p) {
  char buf[64];
  const uint64_t u = LoadLE(p, ScalarSize(t));
  switch (t) {
    case GgufValueType::kUint8:
    case GgufValueType::kUint16:
    case GgufValueType::kUint32:
    case GgufValueType::kUint64:
      std::snprintf(buf, sizeof(buf), "%" PRIu64, u);
      break;
    case GgufValueType::kInt8:
      std::snprintf(buf, sizeof(buf), "%d", static_cast<int8_t>(u));
      break;
    case GgufValueType::kInt16:
      std::snprintf(buf, sizeof(buf), "%d", static_cast<int16_t>(u));
      break;
    case GgufValueType::kInt32:
      std::snprintf(buf, sizeof(buf), "%d", static_cast<int32_t>(u));
      break;
    case GgufValueType::kInt64:
      std::snprintf(buf, sizeof(buf), "%" PRId64, static_cast<int64_t>(u));
      break;
    case GgufValueType::kFloat32:
      std::snprintf(buf, sizeof(buf), "%.9g",
                    static_cast<double>(F32FromBits(static_cast<uint32_t>(u))));
      break;
    case GgufValueType::kFloat64: {
      double d;
      std::memcpy(&d, &u, 8);
      std::snprintf(buf, sizeof(buf), "%.17g", d);
      break;
    }
    case GgufValueType::kBool:
      return u ? "true" : "false";
    default:
      return "?";
  }
  return buf;
}

// Integer / float views of one little-endian scalar of type `t`.
bool ScalarAsInt(GgufValueType t, const uint8_t* p, int64_t* out, bool* is_unsigned_big) {
  const uint64_t u = LoadLE(p, ScalarSize(t));
  *is_unsigned_big = false;
  switch (t) {
    case GgufValueType::kUint8:
    case GgufValueType::kUint16:
    case GgufValueType::kUint32:
      *out = static_cast<int64_t>(u);
      return true;
    case GgufValueType::kUint64:
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) *is_unsigned_big = true;
      *out = static_cast<int64_t>(u);
      return true;
    case GgufValueType::kInt8:
      *out = static_cast<int8_t>(u);
      return true;
    case GgufValueType::kInt16:
      *out = static_cast<int16_t>(u);
      return true;
    case GgufValueType::kInt32:
      *out = static_cast<int32_t>(u);
      return true;
    case GgufValueType::kInt64:
      *out = static_cast<int64_t>(u);
      return true;
    default:
      return false;
  }
}

}  // namespace

// ---- values ------------------------------------------------------------------------------------

const char* GgufValueTypeName(GgufValueType type) noexcept {
  switch (type) {
    case GgufValueType::kUint8:
      return "u8";
    case GgufValueType::kInt8:
      return "i8";
    case GgufValueType::kUint16:
      return "u16";
    case GgufValueType::kInt16:
      return "i16";
    case GgufValueType::kUint32:
      return "u32";
    case GgufValueType::kInt32:
      return "i32";
    case GgufValueType::kFloat32:
      return "f32";
    case GgufValueType::kBool:
      return "bool";
    case GgufValueType::kString:
      return "str";
    case GgufValueType::kArray:
      return "arr";
    case GgufValueType::kUint64:
      return "u64";
    case GgufValueType::kInt64:
      return "i64";
    case GgufValueType::kFloat64:
      return "f64";
  }
  return "unknown";
}

uint64_t GgufValue::size() const {
  if (type != GgufValueType::kArray) return 1;
  if (array_type == GgufValueType::kString) return strings.size();
  const size_t s = ScalarSize(array_type);
  return s == 0 ? 0 : raw.size() / s;
}

namespace {
[[noreturn]] void TypeMismatch(const GgufValue& v, const char* wanted) {
  throw Error(
      Status::kInvalidArgument,
      std::string("GGUF value of type ") + GgufValueTypeName(v.type) +
          (v.type == GgufValueType::kArray ? std::string(" of ") + GgufValueTypeName(v.array_type)
                                           : std::string()) +
          " is not " + wanted);
}

const uint8_t* ElementPtr(const GgufValue& v, uint64_t i, const char* wanted) {
  if (v.type != GgufValueType::kArray) {
    if (i != 0 || ScalarSize(v.type) == 0) TypeMismatch(v, wanted);
    return v.raw.data();
  }
  const size_t s = ScalarSize(v.array_type);
  if (s == 0) TypeMismatch(v, wanted);
  Require(i < v.raw.size() / s, Status::kInvalidArgument, [&] {
    return "GGUF array index " + std::to_string(i) + " out of range (size " +
           std::to_string(v.raw.size() / s) + ")";
  });
  return v.raw.data() + i * s;
}

GgufValueType ElementType(const GgufValue& v) {
  return v.type == GgufValueType::kArray ? v.array_type : v.type;
}
}  // namespace

uint64_t GgufValue::UintAt(uint64_t i) const {
  const uint8_t* p = ElementPtr(*this, i, "an unsigned integer");
  int64_t x;
  bool big;
  if (!ScalarAsInt(ElementType(*this), p, &x, &big)) TypeMismatch(*this, "an unsigned integer");
  if (big) return LoadLE(p, 8);
  if (x < 0) TypeMismatch(*this, "a non-negative integer");
  return static_cast<uint64_t>(x);
}

int64_t GgufValue::IntAt(uint64_t i) const {
  const uint8_t* p = ElementPtr(*this, i, "an integer");
  int64_t x;
  bool big;
  if (!ScalarAsInt(ElementType(*this), p, &x, &big) || big) TypeMismatch(*this, "an int64");
  return x;
}

double GgufValue::FloatAt(uint64_t i) const {
  const uint8_t* p = ElementPtr(*this, i, "a number");
  const GgufValueType t = ElementType(*this);
  if (t == GgufValueType::kFloat32) return F32FromBits(static_cast<uint32_t>(LoadLE(p, 4)));
  if (t == GgufValueType::kFloat64) {
    const uint64_t u = LoadLE(p, 8);
    double d;
    std::memcpy(&d, &u, 8);
    return d;
  }
  int64_t x;
  bool big;
  if (!ScalarAsInt(t, p, &x, &big)) TypeMismatch(*this, "a number");
  return big ? static_cast<double>(LoadLE(p, 8)) : static_cast<double>(x);
}

uint64_t GgufValue::AsUint() const {
  if (type == GgufValueType::kArray) TypeMismatch(*this, "a scalar");
  return UintAt(0);
}
int64_t GgufValue::AsInt() const {
  if (type == GgufValueType::kArray) TypeMismatch(*this, "a scalar");
  return IntAt(0);
}
double GgufValue::AsFloat() const {
  if (type == GgufValueType::kArray) TypeMismatch(*this, "a scalar");
  return FloatAt(0);
}
bool GgufValue::AsBool() const {
  if (type != GgufValueType::kBool) TypeMismatch(*this, "a bool");
  return raw.at(0) != 0;
}
const std::string& GgufValue::AsString() const {
  if (type != GgufValueType::kString) TypeMismatch(*this, "a string");
  return str;
}

std::string GgufValue::ToString(size_t max_items, size_t max_chars) const {
  if (type == GgufValueType::kString) return EscapeForListing(str, max_chars);
  if (type != GgufValueType::kArray) return NumberToString(type, raw.data());
  const uint64_t n = size();
  std::string s = "[" + std::string(GgufValueTypeName(array_type)) + " x " + std::to_string(n);
  const size_t es = ScalarSize(array_type);
  for (uint64_t i = 0; i < n && i < max_items; ++i) {
    s += i == 0 ? ": " : ", ";
    s += array_type == GgufValueType::kString ? EscapeForListing(strings[i], max_chars)
                                              : NumberToString(array_type, raw.data() + i * es);
  }
  if (n > max_items) s += ", ...";
  return s + "]";
}

namespace {
GgufValue Scalar(GgufValueType t, uint64_t bits) {
  GgufValue v;
  v.type = t;
  AppendLE(v.raw, bits, ScalarSize(t));
  return v;
}
}  // namespace

GgufValue GgufValue::Uint8(uint8_t v) { return Scalar(GgufValueType::kUint8, v); }
GgufValue GgufValue::Int8(int8_t v) {
  return Scalar(GgufValueType::kInt8, static_cast<uint8_t>(v));
}
GgufValue GgufValue::Uint16(uint16_t v) { return Scalar(GgufValueType::kUint16, v); }
GgufValue GgufValue::Int16(int16_t v) {
  return Scalar(GgufValueType::kInt16, static_cast<uint16_t>(v));
}
GgufValue GgufValue::Uint32(uint32_t v) { return Scalar(GgufValueType::kUint32, v); }
GgufValue GgufValue::Int32(int32_t v) {
  return Scalar(GgufValueType::kInt32, static_cast<uint32_t>(v));
}
GgufValue GgufValue::Uint64(uint64_t v) { return Scalar(GgufValueType::kUint64, v); }
GgufValue GgufValue::Int64(int64_t v) {
  return Scalar(GgufValueType::kInt64, static_cast<uint64_t>(v));
}
GgufValue GgufValue::Float32(float v) { return Scalar(GgufValueType::kFloat32, F32Bits(v)); }
GgufValue GgufValue::Float64(double v) {
  uint64_t u;
  std::memcpy(&u, &v, 8);
  return Scalar(GgufValueType::kFloat64, u);
}
GgufValue GgufValue::Bool(bool v) { return Scalar(GgufValueType::kBool, v ? 1 : 0); }
GgufValue GgufValue::String(std::string v) {
  GgufValue r;
  r.type = GgufValueType::kString;
  r.str = std::move(v);
  return r;
}
GgufValue GgufValue::StringArray(std::vector<std::string> v) {
  GgufValue r;
  r.type = GgufValueType::kArray;
  r.array_type = GgufValueType::kString;
  r.strings = std::move(v);
  return r;
}
GgufValue GgufValue::NumericArray(GgufValueType element_type, uint64_t count,
                                  std::vector<uint8_t> bytes) {
  const size_t s = ScalarSize(element_type);
  Require(s != 0, Status::kInvalidArgument, [&] {
    return std::string("GGUF numeric array of non-numeric type ") + GgufValueTypeName(element_type);
  });
  Require(count <= bytes.size() / s && bytes.size() == count * s, Status::kInvalidArgument, [&] {
    return "GGUF array of " + std::to_string(count) + " " + GgufValueTypeName(element_type) +
           " needs " + std::to_string(count * s) + " bytes, got " + std::to_string(bytes.size());
  });
  GgufValue r;
  r.type = GgufValueType::kArray;
  r.array_type = element_type;
  r.raw = std::move(bytes);
  return r;
}

// ---- tensors -----------------------------------------------------------------------------------

int64_t GgufTensorInfo::num_elements() const {
  int64_t n = 1;
  for (const int64_t d : ne) n *= d;  // validated: no overflow
  return n;
}

int64_t GgufTensorInfo::rows() const {
  const int64_t len = row_length();
  return len == 0 ? 0 : num_elements() / len;
}

bool GgufPlainDType(uint32_t ggml_type, DType* out) {
  switch (static_cast<ggml::Type>(ggml_type)) {
    case ggml::Type::kF32:
      *out = DType::kF32;
      return true;
    case ggml::Type::kF16:
      *out = DType::kF16;
      return true;
    case ggml::Type::kBF16:
      *out = DType::kBF16;
      return true;
    case ggml::Type::kF64:
      *out = DType::kF64;
      return true;
    case ggml::Type::kI8:
      *out = DType::kI8;
      return true;
    case ggml::Type::kI16:
      *out = DType::kI16;
      return true;
    case ggml::Type::kI32:
      *out = DType::kI32;
      return true;
    case ggml::Type::kI64:
      *out = DType::kI64;
      return true;
    default:
      return false;
  }
}

bool HasGgufMagic(const void* data, size_t size) {
  return data != nullptr && size >= sizeof(kGgufMagic) &&
         std::memcmp(data, kGgufMagic, sizeof(kGgufMagic)) == 0;
}

bool IsGgufFile(const std::string& path) noexcept {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return false;
  char magic[sizeof(kGgufMagic)];
  const size_t n = std::fread(magic, 1, sizeof(magic), f);
  std::fclose(f);
  return HasGgufMagic(magic, n);
}

// ---- reader ------------------------------------------------------------------------------------

GgufFile GgufFile::Open(const std::string& path) {
  GgufFile f;
  f.path_ = path;
  ReadOnlyMapping m = ReadOnlyMapping::Open(path, kGgufHeaderBytes, "the 24-byte GGUF header");
  f.file_size_ = m.size();
  f.base_ = m.data();
  f.mapping_ = m.Release();
  f.Parse();  // on throw, ~GgufFile unmaps
  return f;
}

GgufFile GgufFile::FromMemory(const void* data, size_t size) {
  Require(data != nullptr || size == 0, Status::kInvalidArgument, "FromMemory: null data");
  GgufFile f;
  f.base_ = static_cast<const uint8_t*>(data);
  f.file_size_ = size;
  f.Parse();
  return f;
}

GgufFile::GgufFile(GgufFile&& o) noexcept { *this = std::move(o); }

GgufFile& GgufFile::operator=(GgufFile&& o) noexcept {
  if (this != &o) {
    if (mapping_ != nullptr) ::munmap(mapping_, file_size_);
    path_ = std::move(o.path_);
    base_ = o.base_;
    file_size_ = o.file_size_;
    mapping_ = o.mapping_;
    version_ = o.version_;
    alignment_ = o.alignment_;
    data_offset_ = o.data_offset_;
    data_begin_ = o.data_begin_;
    metadata_ = std::move(o.metadata_);
    metadata_index_ = std::move(o.metadata_index_);
    tensors_ = std::move(o.tensors_);
    index_ = std::move(o.index_);
    o.mapping_ = nullptr;
    o.base_ = nullptr;
    o.data_begin_ = nullptr;
    o.file_size_ = 0;
  }
  return *this;
}

GgufFile::~GgufFile() {
  if (mapping_ != nullptr) ::munmap(mapping_, file_size_);
}

void GgufFile::Parse() {
  const std::string where = path_.empty() ? std::string("GGUF buffer") : path_;
  if (file_size_ < kGgufHeaderBytes) {
    Corrupt(where, "file is " + std::to_string(file_size_) +
                       " bytes, shorter than the 24-byte GGUF header");
  }
  if (!HasGgufMagic(base_, file_size_)) {
    Corrupt(where,
            "not a GGUF file (first bytes " + Hex(base_, 4) + ", expected 47475546 \"GGUF\")");
  }
  Cursor c(base_, file_size_, where);
  c.Take(4, "magic");
  version_ = c.U32("version");
  if (version_ == 0 || version_ > kGgufVersion) {
    // A big-endian file has its version byte-swapped: 0x03000000 reads as 50331648.
    const uint32_t swapped = ((version_ & 0xFF) << 24) | ((version_ & 0xFF00) << 8) |
                             ((version_ >> 8) & 0xFF00) | (version_ >> 24);
    if (swapped >= 1 && swapped <= kGgufVersion) {
      throw Error(Status::kUnsupportedFormat, where + ": big-endian GGUF (version " +
                                                  std::to_string(swapped) +
                                                  " byte-swapped) is not supported");
    }
    if (version_ == 0) Corrupt(where, "GGUF version 0 does not exist");
    throw Error(Status::kUnsupportedFormat, where + ": GGUF version " + std::to_string(version_) +
                                                " is newer than " + std::to_string(kGgufVersion) +
                                                ", the newest lowbit reads");
  }
  if (version_ < kGgufMinVersion) {
    throw Error(Status::kUnsupportedFormat,
                where +
                    ": GGUF version 1 (32-bit counts, 2023) is not supported; re-save the file "
                    "with a current llama.cpp");
  }
  const uint64_t tensor_count = c.U64("tensor count");
  const uint64_t kv_count = c.U64("metadata key/value count");
  if (kv_count > c.remaining() / kMinKeyValueBytes) {
    Corrupt(where, "metadata key/value count " + std::to_string(kv_count) + " cannot fit in the " +
                       std::to_string(c.remaining()) + " bytes after the header");
  }
  if (tensor_count > c.remaining() / kMinTensorInfoBytes) {
    Corrupt(where, "tensor count " + std::to_string(tensor_count) + " cannot fit in the " +
                       std::to_string(c.remaining()) + " bytes after the header");
  }

  // ---- key/values
  metadata_.reserve(static_cast<size_t>(kv_count));
  for (uint64_t i = 0; i < kv_count; ++i) {
    const std::string what = "metadata entry " + std::to_string(i);
    GgufKeyValue kv;
    kv.key = c.String(what + " key", kGgufMaxKeyBytes);
    if (kv.key.empty()) Corrupt(where, what + " has an empty key");
    if (!IsValidUtf8(kv.key)) Corrupt(where, what + " key is not valid UTF-8");
    if (metadata_index_.count(kv.key) != 0)
      Corrupt(where, "duplicate metadata key '" + kv.key + "'");
    const uint32_t type = c.U32("type of '" + kv.key + "'");
    if (!IsKnownValueType(type)) {
      Corrupt(where, "metadata '" + kv.key + "' has unknown value type " + std::to_string(type));
    }
    ReadValue(c, static_cast<GgufValueType>(type), "metadata '" + kv.key + "'", where, &kv.value);
    metadata_index_.emplace(kv.key, metadata_.size());
    metadata_.push_back(std::move(kv));
  }
  if (const GgufValue* a = FindMetadata(kGgufAlignmentKey)) {
    if (a->type != GgufValueType::kUint32) {
      Corrupt(where,
              std::string(kGgufAlignmentKey) + " must be a u32, not " + GgufValueTypeName(a->type));
    }
    const uint64_t align = a->AsUint();
    if (!IsPowerOfTwo(align)) {
      Corrupt(where, std::string(kGgufAlignmentKey) + " " + std::to_string(align) +
                         " is not a power of two");
    }
    alignment_ = static_cast<uint32_t>(align);
  }

  // ---- tensor infos
  tensors_.reserve(static_cast<size_t>(tensor_count));
  for (uint64_t i = 0; i < tensor_count; ++i) {
    const std::string what = "tensor info " + std::to_string(i);
    GgufTensorInfo t;
    t.name = c.String(what + " name", kGgufMaxNameBytes);
    if (t.name.empty()) Corrupt(where, what + " has an empty name");
    if (!IsValidUtf8(t.name)) Corrupt(where, what + " name is not valid UTF-8");
    if (index_.count(t.name) != 0) Corrupt(where, "duplicate tensor name '" + t.name + "'");
    const std::string tw = "tensor '" + t.name + "'";
    const uint32_t n_dims = c.U32(tw + " n_dims");
    if (n_dims < 1 || n_dims > kGgufMaxDims) {
      Corrupt(where, tw + " has " + std::to_string(n_dims) + " dimensions; GGUF allows 1 to " +
                         std::to_string(kGgufMaxDims));
    }
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t v = c.U64(tw + " ne[" + std::to_string(d) + "]");
      if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        Corrupt(where,
                tw + " ne[" + std::to_string(d) + "] = " + std::to_string(v) + " exceeds int64");
      }
      t.ne.push_back(static_cast<int64_t>(v));
    }
    t.type = c.U32(tw + " type");
    const ggml::TypeTraits* traits = ggml::FindType(t.type);
    if (traits == nullptr) {
      throw Error(Status::kUnsupportedFormat,
                  where + ": " + tw + " has ggml type id " + std::to_string(t.type) +
                      ", which ggml does not define (removed, or newer than lowbit)");
    }
    int64_t elements = 0;
    std::string why;
    if (!TensorGeometry(t.ne, *traits, &elements, &t.size, &why)) Corrupt(where, tw + ": " + why);
    t.offset = c.U64(tw + " offset");
    if (t.offset % alignment_ != 0) {
      Corrupt(where, tw + " offset " + std::to_string(t.offset) + " is not a multiple of the " +
                         std::to_string(alignment_) + "-byte alignment");
    }
    t.shape.assign(t.ne.rbegin(), t.ne.rend());
    index_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
  }

  // ---- data section: tensors tile it in file order, each padded to the alignment (ggml's rule)
  const uint64_t header_end = c.pos();
  AlignUp(header_end, alignment_, &data_offset_);  // header_end < 2^63, alignment < 2^32
  uint64_t expected = 0;  // padded end of the tensors so far, relative to the data section
  uint64_t last_end = 0;  // unpadded end of the last tensor
  for (const GgufTensorInfo& t : tensors_) {
    if (t.offset != expected) {
      Corrupt(where, "tensor '" + t.name + "' starts at " + std::to_string(t.offset) +
                         " in the data section, expected " + std::to_string(expected) +
                         (t.offset < expected ? " (overlap)" : " (hole or out of order)"));
    }
    uint64_t padded = 0;
    if (t.size > std::numeric_limits<uint64_t>::max() - t.offset ||
        !AlignUp(t.offset + t.size, alignment_, &padded)) {
      Corrupt(where, "tensor '" + t.name + "' size " + std::to_string(t.size) + " overflows");
    }
    last_end = t.offset + t.size;
    expected = padded;
  }
  // Without tensor bytes the file may end right after the header (no padding).
  const uint64_t min_end = last_end == 0 ? header_end : data_offset_ + last_end;
  const uint64_t max_end = data_offset_ + expected;
  if (!tensors_.empty() && (last_end > file_size_ || data_offset_ > file_size_ - last_end)) {
    Corrupt(where, "tensor '" + tensors_.back().name + "' ends at byte " +
                       std::to_string(data_offset_) + " + " + std::to_string(last_end) +
                       ", past the end of the " + std::to_string(file_size_) +
                       "-byte file (truncated?)");
  }
  if (file_size_ < min_end) {
    Corrupt(where, "file is " + std::to_string(file_size_) + " bytes, shorter than its " +
                       std::to_string(min_end) + "-byte content (truncated?)");
  }
  if (file_size_ > max_end) {
    Corrupt(where, std::to_string(file_size_ - max_end) +
                       " unexpected bytes after the data section (which ends at byte " +
                       std::to_string(max_end) + ")");
  }
  data_begin_ = base_ + std::min(data_offset_, file_size_);
}

const GgufValue* GgufFile::FindMetadata(std::string_view key) const {
  const auto it = metadata_index_.find(std::string(key));
  return it == metadata_index_.end() ? nullptr : &metadata_[it->second].value;
}

const GgufTensorInfo* GgufFile::Find(std::string_view name) const {
  const auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const GgufTensorInfo& GgufFile::Get(std::string_view name) const {
  const GgufTensorInfo* t = Find(name);
  if (t == nullptr) {
    throw Error(Status::kInvalidArgument, "no tensor '" + std::string(name) + "' in " +
                                              (path_.empty() ? std::string("GGUF buffer") : path_));
  }
  return *t;
}

namespace {
std::string DecodableTypeList() {
  std::string s;
  for (const ggml::TypeTraits& t : ggml::kTypeTable) {
    if (t.decodable) s += std::string(s.empty() ? "" : ", ") + t.name;
  }
  return s + ", f64";
}
}  // namespace

std::vector<float> GgufFile::DequantizeToF32(const GgufTensorInfo& info) const {
  const int64_t n = info.num_elements();
  std::vector<float> out(static_cast<size_t>(n));
  const uint8_t* p = data(info);
  if (info.type == static_cast<uint32_t>(ggml::Type::kF64)) {
    for (int64_t i = 0; i < n; ++i) {
      const uint64_t u = LoadLE(p + 8 * i, 8);
      double d;
      std::memcpy(&d, &u, 8);
      out[static_cast<size_t>(i)] = static_cast<float>(d);
    }
    return out;
  }
  if (!ggml::DequantizeRow(static_cast<ggml::Type>(info.type), p, n, out.data())) {
    throw Error(Status::kUnsupportedFormat, "tensor '" + info.name + "' is " + info.type_name() +
                                                ", which lowbit cannot decode (it decodes " +
                                                DecodableTypeList() + ")");
  }
  return out;
}

std::map<std::string, std::string> GgufMetadataAsSafetensors(const GgufFile& file,
                                                             size_t* left_out) {
  std::map<std::string, std::string> md;
  size_t skipped = 0;
  for (const GgufKeyValue& kv : file.metadata()) {
    if (kv.value.type == GgufValueType::kArray ||
        (kv.value.type == GgufValueType::kString && !IsValidUtf8(kv.value.str))) {
      ++skipped;
      continue;
    }
    md["gguf." + kv.key] =
        kv.value.type == GgufValueType::kString ? kv.value.str : kv.value.ToString();
  }
  if (left_out != nullptr) *left_out = skipped;
  return md;
}

// ---- conversion to lowbit tensors --------------------------------------------------------------

GgufConversion GgufConversionOf(uint32_t ggml_type) {
  // Requantized types go to the lowbit format of the same width with the lowest measured error
  // on the ggml-written oracle files (docs/files.md §5.3 has the table). Blocks of 32 (64 for
  // blockwise8, its smallest) match ggml's own block granularity.
  constexpr int64_t kGroup = ggml::kQK;
  constexpr int64_t kBlockwise8Block = LOWBIT_BLOCKWISE8_MIN_BLOCK;
  switch (static_cast<ggml::Type>(ggml_type)) {
    case ggml::Type::kF32:
      return {Format::kF32, 0, true};
    case ggml::Type::kF16:
      return {Format::kF16, 0, true};
    case ggml::Type::kBF16:
      return {Format::kBF16, 0, true};
    case ggml::Type::kQ4_0:
      return {Format::kInt4, kGroup, true};
    case ggml::Type::kQ4_1:
    case ggml::Type::kQ4_K:
      return {Format::kInt4Asym, kGroup, false};
    case ggml::Type::kMXFP4:
      return {Format::kMXFP4, kGroup, true};  // the same E2M1 and E8M0 values
    case ggml::Type::kIQ4_NL:
      return {Format::kIQ4NL, kGroup, true};  // the same grid and f16 d
    case ggml::Type::kNVFP4:
      return {Format::kNF4, kGroup, false};
    case ggml::Type::kQ8_0:
    case ggml::Type::kQ6_K:
      return {Format::kBlockwise8, kBlockwise8Block, false};
    default:
      break;
  }
  throw Error(Status::kUnsupportedFormat, std::string("ggml type ") + ggml::TypeName(ggml_type) +
                                              " (id " + std::to_string(ggml_type) +
                                              ") has no lowbit conversion (lowbit decodes " +
                                              DecodableTypeList() + ")");
}

namespace {

// 32-element ggml blocks of 4-bit codes (q4_0, mxfp4: element j < 16 in the low nibble of qs[j],
// j >= 16 in the high nibble of qs[j - 16]) -> a lowbit 4-bit format with groups of 32 along the
// row, nibbles re-packed into lowbit's order (flat element i in the high nibble of byte i / 2 when
// i is even), without re-quantizing. Block b's statistic is scale_of(block), its nibble c becomes
// remap(c); qs starts `qs_offset` bytes into a `block_bytes`-byte block. A statistic lowbit cannot
// hold (non-finite, or not an E8M0 power of two for mxfp4) is kCorruptData.
template <class ScaleOf, class Remap>
QuantizedTensor Blocks4ToLowbit(Format format, const uint8_t* src, const Shape& shape, int64_t n,
                                int64_t block_bytes, int64_t qs_offset, const ScaleOf& scale_of,
                                const Remap& remap) {
  QuantizedTensor q;
  q.state.format = format;
  q.state.shape = shape;
  q.state.dtype = DType::kF32;
  q.state.granularity = Granularity::kGroup;
  q.state.block_size = ggml::kQK;
  const int64_t blocks = n / ggml::kQK;
  q.state.scales.resize(static_cast<size_t>(blocks));
  q.data.resize(static_cast<size_t>(PayloadBytes(format, n)));
  for (int64_t b = 0; b < blocks; ++b) {
    const uint8_t* blk = src + b * block_bytes;
    q.state.scales[static_cast<size_t>(b)] = scale_of(blk);
    const uint8_t* qs = blk + qs_offset;
    auto code = [&](int j) {
      return remap(j < ggml::kQK / 2 ? (qs[j] & 0xF) : (qs[j - ggml::kQK / 2] >> 4));
    };
    uint8_t* out = q.data.data() + b * (ggml::kQK / 2);
    for (int k = 0; k < ggml::kQK / 2; ++k) {
      out[k] = static_cast<uint8_t>((code(2 * k) << LOWBIT_NIBBLE_FIRST_SHIFT) | code(2 * k + 1));
    }
  }
  try {
    ValidateQuantizedTensor(q, Status::kCorruptData);
  } catch (const Error& e) {
    throw Error(Status::kCorruptData,
                std::string(e.message()) + " (load it with GgufLoadMode::kFloat32)");
  }
  return q;
}

// q4_0 -> int4 g32: the f16 d widened; value (c - 8) * d in both.
QuantizedTensor Q4_0ToInt4(const uint8_t* src, const Shape& shape, int64_t n) {
  return Blocks4ToLowbit(
      Format::kInt4, src, shape, n, ggml::kQ4_0Bytes, 2,
      [](const uint8_t* blk) { return F16ToF32(F16{ggml::internal::LoadU16(blk)}); },
      [](int c) { return c; });
}

// iq4_nl -> lowbit iq4_nl: the same grid and f16 d (IQ4NLCodec), codes re-packed.
QuantizedTensor Iq4NlToLowbit(const uint8_t* src, const Shape& shape, int64_t n) {
  return Blocks4ToLowbit(
      Format::kIQ4NL, src, shape, n, ggml::kIQ4_NLBytes, 2,
      [](const uint8_t* blk) { return F16ToF32(F16{ggml::internal::LoadU16(blk)}); },
      [](int c) { return c; });
}

// mxfp4 -> lowbit mxfp4: ggml's E2M1·2 integers times 2^(e - 128) equal E2M1 · 2^(e - 127), the
// lowbit codec's value; ggml decodes code 8 as +0, so it becomes code 0 (lowbit's +0). ggml reads
// e = 0xFF as 2^127·2; lowbit's E8M0 has no such value (NaN), so such a block is refused.
QuantizedTensor Mxfp4ToLowbit(const uint8_t* src, const Shape& shape, int64_t n) {
  return Blocks4ToLowbit(
      Format::kMXFP4, src, shape, n, ggml::kMXFP4Bytes, 1,
      [](const uint8_t* blk) { return E8M0ToFloat(blk[0]); },
      [](int c) { return c == LOWBIT_E2M1_SIGN_BIT ? 0 : c; });
}

QuantizedTensor DenseTensor(Format format, DType dtype, const Shape& shape, const uint8_t* bytes,
                            uint64_t size) {
  QuantizedTensor q;
  q.state.format = format;
  q.state.shape = shape;
  q.state.dtype = dtype;
  q.state.granularity = Granularity::kNone;
  q.data.assign(bytes, bytes + size);
  return q;
}

}  // namespace

QuantizedTensor LoadGgufTensor(const GgufFile& file, const GgufTensorInfo& info,
                               GgufLoadMode mode) {
  const int64_t n = info.num_elements();
  Require(n > 0, Status::kInvalidArgument,
          [&] { return "tensor '" + info.name + "' is empty; lowbit tensors need elements"; });
  if (mode == GgufLoadMode::kFloat32) {
    const std::vector<float> x = file.DequantizeToF32(info);
    return DenseTensor(Format::kF32, DType::kF32, info.shape,
                       reinterpret_cast<const uint8_t*>(x.data()), x.size() * sizeof(float));
  }
  const GgufConversion conv = GgufConversionOf(info.type);
  switch (conv.format) {
    case Format::kF32:
      return DenseTensor(Format::kF32, DType::kF32, info.shape, file.data(info), info.size);
    case Format::kF16:
      return DenseTensor(Format::kF16, DType::kF16, info.shape, file.data(info), info.size);
    case Format::kBF16:
      return DenseTensor(Format::kBF16, DType::kBF16, info.shape, file.data(info), info.size);
    default:
      break;
  }
  if (conv.exact) {  // q4_0, mxfp4, iq4_nl: blocks re-packed, not re-quantized
    try {
      switch (static_cast<ggml::Type>(info.type)) {
        case ggml::Type::kQ4_0: return Q4_0ToInt4(file.data(info), info.shape, n);
        case ggml::Type::kMXFP4: return Mxfp4ToLowbit(file.data(info), info.shape, n);
        default: return Iq4NlToLowbit(file.data(info), info.shape, n);
      }
    } catch (const Error& e) {
      if (e.status() != Status::kCorruptData) throw;
      throw Error(Status::kCorruptData, "tensor '" + info.name + "': " + e.message());
    }
  }
  const std::vector<float> x = file.DequantizeToF32(info);
  for (size_t i = 0; i < x.size(); ++i) {
    if (!std::isfinite(x[i])) {
      throw Error(Status::kCorruptData, "tensor '" + info.name + "' (" + info.type_name() +
                                            ") decodes to a non-finite value at flat index " +
                                            std::to_string(i) + "; it cannot be requantized to " +
                                            FormatName(conv.format) +
                                            " (load it with GgufLoadMode::kFloat32)");
    }
  }
  QuantizeOptions o;
  o.block_size = conv.block_size;
  QuantizedTensor q = Quantize(conv.format, ConstTensorView{x.data(), DType::kF32, info.shape}, o);
  q.state.dtype = DType::kF32;
  return q;
}

ErrorStats GgufConversionError(const GgufFile& file, const GgufTensorInfo& info) {
  const std::vector<float> exact = file.DequantizeToF32(info);
  const std::vector<float> loaded = lowbit::DequantizeToF32(LoadGgufTensor(file, info));
  const int64_t n = static_cast<int64_t>(exact.size());
  return EstimateError({exact.data(), DType::kF32, {n}}, {loaded.data(), DType::kF32, {n}});
}

std::vector<uint8_t> Int4ToQ4_0(const QuantizedTensor& q, double* max_scale_rel_change) {
  ValidateQuantizedTensor(q);
  const QuantState& s = q.state;
  Require(s.format == Format::kInt4 && s.block_size == ggml::kQK, Status::kInvalidArgument, [&] {
    return std::string("q4_0 export needs int4 (symmetric) with group size 32, got ") +
           FormatName(s.format) + " with block size " + std::to_string(s.block_size);
  });
  const int64_t cols = s.cols();
  Require(cols % ggml::kQK == 0, Status::kInvalidArgument, [&] {
    return "q4_0 export needs a row length that is a multiple of 32, got " + std::to_string(cols);
  });
  const std::vector<float> scales = ResolveScales(s);
  const int64_t n = s.num_elements();
  const int64_t blocks = n / ggml::kQK;
  std::vector<uint8_t> out(static_cast<size_t>(blocks * ggml::kQ4_0Bytes));
  double worst = 0;
  for (int64_t b = 0; b < blocks; ++b) {
    const float scale = scales[static_cast<size_t>(b)];
    const F16 h = F32ToF16(scale);
    const float back = F16ToF32(h);
    Require(std::isfinite(back), Status::kInvalidArgument, [&] {
      return "int4 scale " + std::to_string(scale) + " of group " + std::to_string(b) +
             " overflows float16 (q4_0 stores d as f16)";
    });
    if (scale != 0.0f) {
      worst = std::max(worst, std::fabs(static_cast<double>(back) - scale) / std::fabs(scale));
    } else if (back != 0.0f) {
      worst = std::numeric_limits<double>::infinity();
    }
    uint8_t* blk = out.data() + b * ggml::kQ4_0Bytes;
    ggml::internal::StoreU16(blk, h.bits);
    const uint8_t* src = q.data.data() + b * (ggml::kQK / 2);
    auto code = [&](int i) {  // lowbit order: element i of the group, high nibble first
      return i % 2 == 0 ? (src[i / 2] >> LOWBIT_NIBBLE_FIRST_SHIFT) : (src[i / 2] & 0xF);
    };
    for (int j = 0; j < ggml::kQK / 2; ++j) {
      blk[2 + j] = static_cast<uint8_t>(code(j) | (code(j + ggml::kQK / 2) << 4));
    }
  }
  if (max_scale_rel_change != nullptr) *max_scale_rel_change = worst;
  return out;
}

// ---- writer ------------------------------------------------------------------------------------

namespace {

void CheckName(std::string_view name, const char* what, size_t max_bytes) {
  Require(!name.empty(), Status::kInvalidArgument, [&] { return std::string(what) + " is empty"; });
  Require(IsValidUtf8(name), Status::kInvalidArgument,
          [&] { return std::string(what) + " '" + std::string(name) + "' is not valid UTF-8"; });
  Require(name.size() <= max_bytes, Status::kInvalidArgument, [&] {
    return std::string(what) + " '" + std::string(name) + "' is " + std::to_string(name.size()) +
           " bytes; GGUF (ggml) allows at most " + std::to_string(max_bytes);
  });
}

void CheckValue(const GgufKeyValue& kv) {
  const GgufValue& v = kv.value;
  auto bad = [&](const std::string& why) {
    throw Error(Status::kInvalidArgument, "metadata '" + kv.key + "': " + why);
  };
  if (!IsKnownValueType(static_cast<uint32_t>(v.type))) bad("unknown value type");
  if (v.type == GgufValueType::kString) return;
  if (v.type == GgufValueType::kArray) {
    if (v.array_type == GgufValueType::kArray ||
        !IsKnownValueType(static_cast<uint32_t>(v.array_type))) {
      bad("array element type must be a scalar or a string");
    }
    if (v.array_type == GgufValueType::kString) return;
    if (v.raw.size() % ScalarSize(v.array_type) != 0) bad("array bytes are not whole elements");
    return;
  }
  if (v.raw.size() != ScalarSize(v.type)) bad("scalar has the wrong byte count");
  if (v.type == GgufValueType::kBool && v.raw[0] > 1) bad("bool must be 0 or 1");
}

void AppendString(std::vector<uint8_t>& out, const std::string& s) {
  AppendLE(out, s.size(), 8);
  out.insert(out.end(), s.begin(), s.end());
}

void AppendValue(std::vector<uint8_t>& out, const GgufValue& v) {
  if (v.type == GgufValueType::kString) {
    AppendString(out, v.str);
  } else if (v.type == GgufValueType::kArray) {
    AppendLE(out, static_cast<uint32_t>(v.array_type), 4);
    AppendLE(out, v.size(), 8);
    if (v.array_type == GgufValueType::kString) {
      for (const std::string& s : v.strings) AppendString(out, s);
    } else {
      out.insert(out.end(), v.raw.begin(), v.raw.end());
    }
  } else {
    out.insert(out.end(), v.raw.begin(), v.raw.end());
  }
}

}  // namespace

GgufWriter::GgufWriter(std::string path, GgufMetadata metadata, uint32_t alignment)
    : path_(std::move(path)), metadata_(std::move(metadata)), alignment_(alignment) {
  Require(!path_.empty(), Status::kInvalidArgument, "empty output path");
  Require(IsPowerOfTwo(alignment_), Status::kInvalidArgument, [&] {
    return "GGUF alignment " + std::to_string(alignment_) + " is not a power of two";
  });
  std::unordered_map<std::string, size_t> keys;
  bool has_alignment = false;
  for (const GgufKeyValue& kv : metadata_) {
    CheckName(kv.key, "metadata key", kGgufMaxKeyBytes);
    Require(keys.emplace(kv.key, 0).second, Status::kInvalidArgument,
            [&] { return "duplicate metadata key '" + kv.key + "'"; });
    CheckValue(kv);
    if (kv.key == kGgufAlignmentKey) {
      Require(kv.value.type == GgufValueType::kUint32 && kv.value.AsUint() == alignment_,
              Status::kInvalidArgument, [&] {
                return std::string(kGgufAlignmentKey) + " is " + kv.value.ToString() + " (" +
                       GgufValueTypeName(kv.value.type) + "); the writer aligns to u32 " +
                       std::to_string(alignment_);
              });
      has_alignment = true;
    }
  }
  if (!has_alignment) {
    metadata_.push_back({std::string(kGgufAlignmentKey), GgufValue::Uint32(alignment_)});
  }
  fd_ = CreateTemp(path_, &temp_path_);
}

GgufWriter::~GgufWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_ && !temp_path_.empty()) ::unlink(temp_path_.c_str());
}

void GgufWriter::Declare(std::string_view name, ggml::Type type, const Shape& shape) {
  Require(!committed_, Status::kInvalidState, "GGUF writer is already committed");
  Require(!header_written_, Status::kInvalidState,
          [&] { return "tensor '" + std::string(name) + "' declared after data was appended"; });
  CheckName(name, "tensor name", kGgufMaxNameBytes);
  Require(names_.find(std::string(name)) == names_.end(), Status::kInvalidArgument,
          [&] { return "duplicate tensor name '" + std::string(name) + "'"; });
  const ggml::TypeTraits* traits = ggml::FindType(static_cast<uint32_t>(type));
  Require(traits != nullptr, Status::kInvalidArgument, [&] {
    return "tensor '" + std::string(name) + "': unknown ggml type id " +
           std::to_string(static_cast<uint32_t>(type));
  });
  Require(!shape.empty() && shape.size() <= kGgufMaxDims, Status::kInvalidArgument, [&] {
    return "tensor '" + std::string(name) + "' has shape " + ShapeToString(shape) +
           "; GGUF tensors have 1 to 4 dimensions";
  });
  Entry e;
  e.name = std::string(name);
  e.type = static_cast<uint32_t>(type);
  e.ne.assign(shape.rbegin(), shape.rend());
  // ggml writes ggml_n_dims(): trailing ne of 1 are dropped (a [1, 64] tensor is written as [64]).
  while (e.ne.size() > 1 && e.ne.back() == 1) e.ne.pop_back();
  int64_t elements = 0;
  std::string why;
  Require(TensorGeometry(e.ne, *traits, &elements, &e.size, &why), Status::kInvalidArgument, [&] {
    return "tensor '" + e.name + "' " + ShapeToString(shape) + " as " + traits->name + ": " + why;
  });
  e.offset = data_end_;
  Require(e.size <= std::numeric_limits<uint64_t>::max() - data_end_ &&
              AlignUp(data_end_ + e.size, alignment_, &data_end_),
          Status::kInvalidArgument, [&] { return "tensor '" + e.name + "' is too large"; });
  names_.emplace(e.name, tensors_.size());
  tensors_.push_back(std::move(e));
}

void GgufWriter::WriteHeader() {
  std::vector<uint8_t> h(kGgufMagic, kGgufMagic + sizeof(kGgufMagic));
  AppendLE(h, kGgufVersion, 4);
  AppendLE(h, tensors_.size(), 8);
  AppendLE(h, metadata_.size(), 8);
  for (const GgufKeyValue& kv : metadata_) {
    AppendString(h, kv.key);
    AppendLE(h, static_cast<uint32_t>(kv.value.type), 4);
    AppendValue(h, kv.value);
  }
  for (const Entry& e : tensors_) {
    AppendString(h, e.name);
    AppendLE(h, e.ne.size(), 4);
    for (const int64_t d : e.ne) AppendLE(h, static_cast<uint64_t>(d), 8);
    AppendLE(h, e.type, 4);
    AppendLE(h, e.offset, 8);
  }
  AlignUp(h.size(), alignment_, &data_start_);
  h.resize(static_cast<size_t>(data_start_), 0);
  WriteAt(fd_, h.data(), h.size(), 0, temp_path_);
  header_written_ = true;
  current_ = 0;
  current_done_ = 0;
  while (current_ < tensors_.size() && tensors_[current_].size == 0) ++current_;
}

void GgufWriter::Append(const void* data, size_t bytes) {
  Require(!committed_, Status::kInvalidState, "GGUF writer is already committed");
  Require(data != nullptr || bytes == 0, Status::kInvalidArgument, "Append: null data");
  if (!header_written_) WriteHeader();
  if (bytes == 0) return;
  Require(current_ < tensors_.size(), Status::kInvalidArgument, [&] {
    return "Append of " + std::to_string(bytes) + " bytes after every declared tensor is complete";
  });
  Entry& e = tensors_[current_];
  Require(bytes <= e.size - current_done_, Status::kInvalidArgument, [&] {
    return "tensor '" + e.name + "': " + std::to_string(bytes) + " bytes appended, only " +
           std::to_string(e.size - current_done_) + " remain";
  });
  WriteAt(fd_, data, bytes, data_start_ + e.offset + current_done_, temp_path_);
  current_done_ += bytes;
  if (current_done_ == e.size) {
    uint64_t padded = 0;
    AlignUp(e.offset + e.size, alignment_, &padded);
    const uint64_t pad = padded - (e.offset + e.size);
    if (pad > 0) {
      const std::vector<uint8_t> zeros(static_cast<size_t>(pad), 0);
      WriteAt(fd_, zeros.data(), zeros.size(), data_start_ + e.offset + e.size, temp_path_);
    }
    ++current_;
    current_done_ = 0;
    while (current_ < tensors_.size() && tensors_[current_].size == 0) ++current_;
  }
}

void GgufWriter::Commit() {
  Require(!committed_, Status::kInvalidState, "GGUF writer is already committed");
  if (!header_written_) WriteHeader();
  if (current_ < tensors_.size()) {
    const Entry& e = tensors_[current_];
    throw Error(Status::kInvalidState, "tensor '" + e.name + "' is missing " +
                                           std::to_string(e.size - current_done_) + " bytes");
  }
  if (::ftruncate(fd_, static_cast<off_t>(data_start_ + data_end_)) != 0) {
    throw Error(Status::kIoError, Errno("truncate failed on", temp_path_));
  }
  CommitTemp(&fd_, temp_path_, path_, &committed_);
}

}  // namespace io
}  // namespace lowbit
