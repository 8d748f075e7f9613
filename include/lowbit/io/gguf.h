// lowbit/io/gguf.h — GGUF files (llama.cpp / ggml): validating memory-mapped reader, bit-exact
// dequantization, conversion to lowbit tensors, and an atomic streaming writer.
//
// Container (GGUF v2 and v3, little-endian; docs/files.md §5):
//   "GGUF" | u32 version | u64 tensor_count | u64 kv_count
//   kv_count x  { string key | u32 value type | value }
//   tensor_count x { string name | u32 n_dims | u64 ne[n_dims] | u32 ggml type | u64 offset }
//   padding to `general.alignment` (default 32) | data section (each tensor at its offset,
//   padded to the alignment)
// A string is u64 length + bytes (no terminator). GGUF lists dimensions innermost first: ne[0] is
// the row length; lowbit's Shape is the reverse (row-major, outermost first).
//
// Reading never trusts the file: every count, length, type, dimension and offset is checked
// (bounded by the bytes that remain, overflow-checked, offsets aligned and tiling the data section
// exactly as ggml requires) before any tensor is exposed. Malformed input throws
// lowbit::Error(Status::kCorruptData); a newer GGUF version, a big-endian file or a tensor type id
// ggml does not define throws kUnsupportedFormat; OS failures throw kIoError.
#ifndef LOWBIT_IO_GGUF_H_
#define LOWBIT_IO_GGUF_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "lowbit/codecs/ggml.h"
#include "lowbit/dtype.h"
#include "lowbit/format.h"
#include "lowbit/quant_state.h"
#include "lowbit/quantize.h"
#include "lowbit/status.h"

namespace lowbit {
namespace io {

// ---- container constants (GGUF specification, ggml docs/gguf.md) --------------------------------
inline constexpr char kGgufMagic[4] = {'G', 'G', 'U', 'F'};
// Versions read: 2 and 3 have the same little-endian layout (v3 only added big-endian files,
// which lowbit refuses). Version 1 used 32-bit counts and is refused. The writer writes 3.
inline constexpr uint32_t kGgufMinVersion = 2;
inline constexpr uint32_t kGgufVersion = 3;
// Metadata key of the data alignment and ggml's default when the key is absent.
inline constexpr std::string_view kGgufAlignmentKey = "general.alignment";
inline constexpr uint32_t kGgufDefaultAlignment = 32;
// ggml keeps tensor names in a 64-byte buffer with a terminator (GGML_MAX_NAME): longer names are
// refused by ggml's reader, so lowbit refuses to read or write them.
inline constexpr size_t kGgufMaxNameBytes = 63;
// ggml tensors have at most 4 dimensions (GGML_MAX_DIMS).
inline constexpr uint32_t kGgufMaxDims = 4;
// Metadata keys are dotted identifiers ("tokenizer.ggml.tokens"); a longer key is hostile.
inline constexpr size_t kGgufMaxKeyBytes = 65535;

// Metadata value types (GGUF's gguf_type).
enum class GgufValueType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};
// "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "str", "arr", "u64", "i64", "f64";
// "unknown" for other values. Never throws.
const char* GgufValueTypeName(GgufValueType type) noexcept;

// One metadata value: a scalar, a string, or an array of scalars or strings (GGUF has no nested
// arrays; lowbit refuses them like ggml).
struct GgufValue {
  GgufValueType type = GgufValueType::kUint32;
  GgufValueType array_type = GgufValueType::kUint8;  // element type when type == kArray
  std::string str;                                   // kString
  std::vector<std::string> strings;                  // kArray of kString
  // Scalar: its little-endian bytes; numeric or bool array: all elements' little-endian bytes.
  std::vector<uint8_t> raw;

  // Number of array elements (kArray), else 1.
  uint64_t size() const;
  // Scalar accessors. AsUint: u8/u16/u32/u64, and non-negative i8..i64; AsInt: any integer that
  // fits int64; AsFloat: f32/f64 and every integer; AsBool: bool. Element `i` of a numeric array
  // with the same rules via the *At forms. Throw Error(kInvalidArgument) naming the type on a
  // mismatch or an index out of range.
  uint64_t AsUint() const;
  int64_t AsInt() const;
  double AsFloat() const;
  bool AsBool() const;
  const std::string& AsString() const;
  uint64_t UintAt(uint64_t i) const;
  int64_t IntAt(uint64_t i) const;
  double FloatAt(uint64_t i) const;
  // Printable form for listings: scalars as numbers, strings quoted (escaped, cut at
  // `max_chars`), arrays as "[u32 x 3: 1, 2, 3]" showing at most `max_items` elements.
  std::string ToString(size_t max_items = 8, size_t max_chars = 80) const;

  static GgufValue Uint8(uint8_t v);
  static GgufValue Int8(int8_t v);
  static GgufValue Uint16(uint16_t v);
  static GgufValue Int16(int16_t v);
  static GgufValue Uint32(uint32_t v);
  static GgufValue Int32(int32_t v);
  static GgufValue Uint64(uint64_t v);
  static GgufValue Int64(int64_t v);
  static GgufValue Float32(float v);
  static GgufValue Float64(double v);
  static GgufValue Bool(bool v);
  static GgufValue String(std::string v);
  static GgufValue StringArray(std::vector<std::string> v);
  // A numeric or bool array of `count` elements of `element_type` given as little-endian bytes
  // (count * element size). Throws Error(kInvalidArgument) for a bad type or byte count.
  static GgufValue NumericArray(GgufValueType element_type, uint64_t count,
                                std::vector<uint8_t> bytes);
};

struct GgufKeyValue {
  std::string key;
  GgufValue value;
};
// Metadata in file order (GGUF keys are ordered and unique).
using GgufMetadata = std::vector<GgufKeyValue>;

// One tensor of a GGUF file.
struct GgufTensorInfo {
  std::string name;
  uint32_t type = 0;        // ggml type id (ggml::Type); always one ggml::FindType knows
  std::vector<int64_t> ne;  // GGUF order: ne[0] = row length (innermost), 1..4 entries
  Shape shape;              // lowbit order (row-major, outermost first): ne reversed
  uint64_t offset = 0;  // bytes from the start of the data section (a multiple of the alignment)
  uint64_t size = 0;    // bytes = elements / block_elements * block_bytes
  int64_t num_elements() const;
  int64_t row_length() const { return ne.empty() ? 1 : ne[0]; }
  int64_t rows() const;  // num_elements / row_length (0 for an empty tensor)
  const ggml::TypeTraits& traits() const { return *ggml::FindType(type); }
  const char* type_name() const { return ggml::TypeName(type); }
};

// The dtype of a GGUF plain element type (f32, f16, bf16, f64, i8, i16, i32, i64), or false for a
// block-quantized type.
bool GgufPlainDType(uint32_t ggml_type, DType* out);

// True when `data` (at least 4 bytes) starts with the GGUF magic.
bool HasGgufMagic(const void* data, size_t size);
// True when the file at `path` starts with the GGUF magic (false for a shorter or unreadable
// file; never throws).
bool IsGgufFile(const std::string& path) noexcept;

// A parsed, validated GGUF file. Open() maps the file read-only (mmap, MAP_PRIVATE): only the pages
// touched are read. Data pointers point into the mapping and live as long as this object; with
// Open() they are aligned to alignment() (the mapping is page-aligned), with FromMemory() only as
// well as the caller's buffer. Thread safety: all const members may be called concurrently. The
// file must not be truncated while mapped (SIGBUS).
class GgufFile {
 public:
  // Maps and validates `path`. Throws kIoError / kCorruptData / kUnsupportedFormat.
  static GgufFile Open(const std::string& path);
  // Validates a file image held by the caller (no copy); `data` must outlive the object.
  static GgufFile FromMemory(const void* data, size_t size);

  GgufFile(GgufFile&&) noexcept;
  GgufFile& operator=(GgufFile&&) noexcept;
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;
  ~GgufFile();

  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  const GgufMetadata& metadata() const { return metadata_; }
  // The value of `key`, or nullptr.
  const GgufValue* FindMetadata(std::string_view key) const;
  // Tensors in file order (ascending offset).
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* Find(std::string_view name) const;
  // Like Find; throws Error(kInvalidArgument) naming the tensor and the file when absent.
  const GgufTensorInfo& Get(std::string_view name) const;

  // First byte of the tensor's data (info must come from this file).
  const uint8_t* data(const GgufTensorInfo& info) const { return data_begin_ + info.offset; }
  // ggml's to_float of the tensor, bit for bit: float32, row-major info.shape. f32, f16, bf16,
  // q4_0, q4_1, q8_0, iq4_nl, q4_K, q6_K, mxfp4, nvfp4 (ggml::TypeTraits::decodable) and f64
  // (rounded to nearest). Throws Error(kUnsupportedFormat) naming the type for the others.
  std::vector<float> DequantizeToF32(const GgufTensorInfo& info) const;

  const std::string& path() const { return path_; }  // "" for FromMemory
  uint64_t file_size() const { return file_size_; }
  uint64_t data_offset() const { return data_offset_; }  // start of the data section in the file

 private:
  GgufFile() = default;
  void Parse();

  std::string path_;
  const uint8_t* base_ = nullptr;
  uint64_t file_size_ = 0;
  void* mapping_ = nullptr;  // non-null when this object owns an mmap of file_size_ bytes
  uint32_t version_ = 0;
  uint32_t alignment_ = kGgufDefaultAlignment;
  uint64_t data_offset_ = 0;
  const uint8_t* data_begin_ = nullptr;
  GgufMetadata metadata_;
  std::unordered_map<std::string, size_t> metadata_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::unordered_map<std::string, size_t> index_;
};

// GGUF metadata as safetensors __metadata__ (string -> string): every scalar and string value
// under "gguf.<key>" (strings as they are, numbers as GgufValue::ToString prints them, bools
// "true"/"false"). Arrays and strings that are not valid UTF-8 are left out; their count goes to
// *left_out when non-null.
std::map<std::string, std::string> GgufMetadataAsSafetensors(const GgufFile& file,
                                                             size_t* left_out = nullptr);

// ---- GGUF tensors as lowbit tensors -------------------------------------------------------------
// What a ggml type becomes when loaded as a lowbit QuantizedTensor (docs/files.md §5.3):
//   f32, f16, bf16        -> the same dense format, same bits (exact)
//   q4_0                  -> int4 symmetric, groups of 32 along the row, scale = f16 d widened;
//                            dequantizes bit-identically to ggml (exact)
//   q4_1, q4_K            -> int4_asym g32, requantized from ggml's exact values (not exact)
//   iq4_nl, mxfp4, nvfp4  -> nf4 b32, requantized (not exact)
//   q8_0, q6_K            -> blockwise8 b64, requantized (not exact)
// (requantized: the lowbit format of the same width with the lowest measured error).
// Other block types (q5_*, q2_K, q3_K, q5_K, i-quants, ...) have no decoder in lowbit and throw
// Error(kUnsupportedFormat); integer tensors (i8..i64) throw kUnsupportedFormat too.
struct GgufConversion {
  Format format = Format::kF32;
  int64_t block_size = 0;  // group (int4, int4_asym) or block (nf4, blockwise8) size; 0: none
  bool exact = false;      // Dequantize of the result reproduces ggml's to_float bit for bit
};
// The conversion of `ggml_type`; throws Error(kUnsupportedFormat) naming the type when there is
// none.
GgufConversion GgufConversionOf(uint32_t ggml_type);

enum class GgufLoadMode : uint8_t {
  kNearest = 0,  // the conversion above
  kFloat32 = 1,  // ggml's exact values as a dense f32 tensor (4 bytes per weight)
};

// Loads one tensor as a lowbit tensor (the result owns its bytes). state.dtype is f32 except for
// f16 / bf16 tensors (their own dtype). Throws Error(kUnsupportedFormat) for types without a
// conversion, kInvalidArgument for an empty tensor, and kCorruptData when a requantized tensor's
// ggml values (or a q4_0 scale) are not finite: load those with GgufLoadMode::kFloat32.
QuantizedTensor LoadGgufTensor(const GgufFile& file, const GgufTensorInfo& info,
                               GgufLoadMode mode = GgufLoadMode::kNearest);

// How far LoadGgufTensor(kNearest) is from ggml's own values: EstimateError(ggml's to_float,
// Dequantize of the loaded tensor). Zero for the exact conversions.
ErrorStats GgufConversionError(const GgufFile& file, const GgufTensorInfo& info);

// q4_0 blocks of a lowbit int4 tensor: symmetric, group size 32, row length a multiple of 32.
// Codes are copied (lowbit nibble n is q4_0 nibble n: both decode to (n - 8) * scale); each scale
// is rounded to f16 (nearest even), the only change. Returns the blocks ([rows, cols / 32] x 18
// bytes, row-major) and, when `max_scale_rel_change` is non-null, the largest
// |f16(s) - s| / |s| over the scales. Throws Error(kInvalidArgument) for another format, group
// size or shape, or a scale that overflows f16 (|s| > 65504).
std::vector<uint8_t> Int4ToQ4_0(const QuantizedTensor& q, double* max_scale_rel_change = nullptr);

// ---- writer ------------------------------------------------------------------------------------
// Writes a GGUF v3 file atomically, with bounded memory.
//
// Usage: construct with the metadata, Declare every tensor (name, ggml type, row-major shape) in
// file order, then Append their data in the same order (whole tensors or any chunks), then
// Commit. The first Append writes the header (key/values, tensor infos with offsets computed from
// the declared sizes, padding) into a temporary file next to `path`; tensors are padded with zeros
// to the alignment; Commit fsyncs, renames over `path` and fsyncs the directory. Until Commit
// succeeds `path` is untouched; destroying an uncommitted writer (or any exception) deletes the
// temporary.
//
// `metadata` is written in its order. If it has no "general.alignment" key, one (u32 `alignment`)
// is appended; if it has one, it must be a u32 equal to `alignment`. Keys must be non-empty,
// unique, valid UTF-8 and at most kGgufMaxKeyBytes; tensor names non-empty, unique, valid UTF-8
// and at most kGgufMaxNameBytes (ggml's limit); shapes 1..4 dims of non-negative sizes whose row
// length is a multiple of the type's block. Violations throw Error(kInvalidArgument); OS failures
// kIoError. Not thread-safe (one writer per thread).
class GgufWriter {
 public:
  explicit GgufWriter(std::string path, GgufMetadata metadata = {},
                      uint32_t alignment = kGgufDefaultAlignment);
  GgufWriter(const GgufWriter&) = delete;
  GgufWriter& operator=(const GgufWriter&) = delete;
  ~GgufWriter();  // removes the temporary unless committed; never throws

  // Declares the next tensor (before the first Append).
  void Declare(std::string_view name, ggml::Type type, const Shape& shape);
  // Appends `bytes` of data to the tensors in declaration order (a call may not cross into the
  // next tensor: it must end at or before the end of the current one).
  void Append(const void* data, size_t bytes);
  // Declared byte size of tensor `i`.
  uint64_t tensor_bytes(size_t i) const { return tensors_.at(i).size; }
  size_t num_tensors() const { return tensors_.size(); }
  // Finishes the file (every declared tensor complete). Throws kInvalidState or kIoError.
  void Commit();

 private:
  struct Entry {
    std::string name;
    uint32_t type;
    std::vector<int64_t> ne;
    uint64_t offset;
    uint64_t size;
  };
  void WriteHeader();

  std::string path_;
  std::string temp_path_;
  GgufMetadata metadata_;
  uint32_t alignment_;
  int fd_ = -1;
  bool committed_ = false;
  bool header_written_ = false;
  std::vector<Entry> tensors_;
  std::unordered_map<std::string, size_t> names_;
  uint64_t data_start_ = 0;  // file offset of the data section
  uint64_t data_end_ = 0;    // declared data section bytes (all tensors, padded)
  size_t current_ = 0;       // tensor being appended
  uint64_t current_done_ = 0;
};

}  // namespace io
}  // namespace lowbit

#endif  // LOWBIT_IO_GGUF_H_
