// lowbit/io/safetensors.h — safetensors files: validating memory-mapped reader, atomic streaming writer.
//
// File format (https://github.com/huggingface/safetensors): 8-byte little-endian header length N,
// N bytes of UTF-8 JSON object {"__metadata__": {string: string}, "<name>": {"dtype": "F32",
// "shape": [..], "data_offsets": [begin, end]}, ...}, then the data region. Offsets are relative to
// the start of the data region; the tensors must tile it exactly (no holes, no overlaps).
//
// Reading never trusts the file: every malformed or hostile input (bad header length, non-JSON,
// invalid UTF-8, duplicate keys, unknown dtype, negative or overflowing shapes, size mismatch,
// overlapping / out-of-range / non-tiling offsets, truncation) throws
// lowbit::Error(Status::kCorruptData, message) before any tensor is exposed. OS failures throw
// Status::kIoError with the strerror text.
#ifndef LOWBIT_IO_SAFETENSORS_H_
#define LOWBIT_IO_SAFETENSORS_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "lowbit/dtype.h"
#include "lowbit/status.h"

namespace lowbit {
namespace io {

// `__metadata__`: free-form string -> string pairs (sorted by key).
using Metadata = std::map<std::string, std::string>;

// Largest header accepted by the reader (the reference implementation's limit): a larger length
// field is treated as hostile instead of being allocated.
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

// The safetensors dtype string of `dtype` ("F32", "BF16", "F8_E4M3", "BOOL", ...). Never throws.
const char* SafetensorsDTypeName(DType dtype) noexcept;
// Inverse of SafetensorsDTypeName (exact, case-sensitive). Throws Error(kCorruptData) naming the
// string for anything else (including dtypes lowbit does not know, e.g. "F4").
DType SafetensorsDTypeFromName(std::string_view name);

// One tensor's header entry.
struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  Shape shape;          // may be empty (0-dim scalar) and may contain zeros
  uint64_t offset = 0;  // byte offset of the first element from the start of the data region
  uint64_t size = 0;    // bytes = NumElements(shape) * DTypeSize(dtype)
  int64_t num_elements() const;
};

// A parsed, validated safetensors file. Open() maps the file read-only (mmap, MAP_PRIVATE): only
// the pages actually touched are read, so a file larger than RAM is fine. Tensor data pointers
// point into the mapping and stay valid for the lifetime of this object (moves keep them valid).
// Data pointers are NOT guaranteed to be aligned to the element size (the format has no padding
// between tensors); read multi-byte elements with memcpy or CopyAsF32.
// Thread safety: all const members may be called concurrently. The file must not be truncated by
// another process while mapped (the OS would raise SIGBUS on access; nothing lowbit can catch).
class SafetensorsFile {
 public:
  // Maps and validates `path`. Throws kIoError (cannot open / stat / map) or kCorruptData.
  static SafetensorsFile Open(const std::string& path);
  // Validates a file image held by the caller (no copy). `data` must outlive the returned object.
  static SafetensorsFile FromMemory(const void* data, size_t size);

  SafetensorsFile(SafetensorsFile&&) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  ~SafetensorsFile();

  // Tensors in data-region order (ascending offset).
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  // The tensor called `name`, or nullptr.
  const TensorInfo* Find(std::string_view name) const;
  // Like Find, but throws Error(kInvalidArgument) naming `name` (and the file) when absent.
  const TensorInfo& Get(std::string_view name) const;
  bool Contains(std::string_view name) const { return Find(name) != nullptr; }
  const Metadata& metadata() const { return metadata_; }

  // First byte of the tensor's data inside the mapping (info must come from this file). For a
  // zero-byte tensor the pointer is valid but must not be dereferenced.
  const uint8_t* data(const TensorInfo& info) const { return data_begin_ + info.offset; }
  // View of the tensor's bytes (see the alignment note above). No copy.
  ConstTensorView View(const TensorInfo& info) const { return {data(info), info.dtype, info.shape}; }
  // Copies an f32 / f16 / bf16 / f64 tensor to float32 (f64 rounds to nearest). Throws
  // Error(kInvalidArgument) for other dtypes.
  std::vector<float> CopyAsF32(const TensorInfo& info) const;

  const std::string& path() const { return path_; }  // "" for FromMemory
  uint64_t file_size() const { return file_size_; }
  uint64_t header_size() const { return header_size_; }  // N, the JSON length field

 private:
  SafetensorsFile() = default;
  void Parse();

  std::string path_;
  const uint8_t* base_ = nullptr;  // whole file image
  uint64_t file_size_ = 0;
  uint64_t header_size_ = 0;
  const uint8_t* data_begin_ = nullptr;
  void* mapping_ = nullptr;  // non-null when this object owns an mmap of file_size_ bytes
  std::vector<TensorInfo> tensors_;
  std::unordered_map<std::string, size_t> index_;
  Metadata metadata_;
};

// Name, dtype and shape of a tensor to be written.
struct TensorSpec {
  std::string name;
  DType dtype = DType::kF32;
  Shape shape;
};

// An upper bound of the header bytes (JSON + padding) that a file holding exactly `specs` and
// `metadata` needs; pass it as SafetensorsWriter's header_reserve so Commit never has to move data.
uint64_t SafetensorsHeaderBound(const std::vector<TensorSpec>& specs, const Metadata& metadata);

// Writes a safetensors file tensor by tensor with bounded memory, atomically.
//
// Strategy (placeholder and patch): the constructor creates a temporary file next to `path`
// ("<path>.tmp-<pid>-<n>", same directory so the final rename is atomic) and leaves
// `header_reserve` bytes for the header. Each tensor's bytes are appended as they arrive; only
// names, dtypes and shapes are kept in memory. Commit() builds the JSON header (tensors in the
// order they were added, data offsets contiguous), pads it with spaces to fill the reserve exactly
// (so the data region starts 8-byte aligned), writes it at the front, fsyncs, renames the
// temporary over `path`, and fsyncs the directory. If the header does not fit the reserve, Commit
// writes a second temporary with header + copied data (one extra sequential pass, 1 MiB buffer).
// Until Commit succeeds `path` is untouched; destroying an uncommitted writer (or any exception)
// deletes the temporary and leaves the previous file intact.
//
// Names must be valid UTF-8, unique, and not "__metadata__". Not thread-safe (one writer per
// thread); different writers are independent.
class SafetensorsWriter {
 public:
  // Throws kIoError when the temporary cannot be created (e.g. missing directory, permissions),
  // kInvalidArgument for non-UTF-8 metadata.
  explicit SafetensorsWriter(std::string path, Metadata metadata = {},
                             uint64_t header_reserve = 4096);
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;
  ~SafetensorsWriter();  // removes the temporary unless committed; never throws

  // Appends a whole tensor: `bytes` must equal NumElements(shape) * DTypeSize(dtype). Throws
  // kInvalidArgument (bad name / shape / size, a tensor still open) or kIoError.
  void Add(std::string_view name, DType dtype, const Shape& shape, const void* data, size_t bytes);
  void Add(std::string_view name, const ConstTensorView& view);

  // Streams one large tensor in pieces: BeginTensor, any number of WriteChunk calls whose sizes
  // add up to the tensor's byte size, EndTensor (throws kInvalidArgument if short).
  void BeginTensor(std::string_view name, DType dtype, const Shape& shape);
  void WriteChunk(const void* data, size_t bytes);
  void EndTensor();

  // Finishes the file as described above. After success the writer is inert. Throws
  // kInvalidState (a tensor still open, already committed) or kIoError.
  void Commit();

  size_t num_tensors() const { return entries_.size(); }
  const std::string& path() const { return path_; }

 private:
  struct Entry {
    TensorSpec spec;
    uint64_t offset;
    uint64_t size;
  };
  void CheckNewName(std::string_view name) const;
  void WriteAll(const void* data, size_t bytes);
  std::string BuildHeader() const;

  std::string path_;
  std::string temp_path_;
  Metadata metadata_;
  uint64_t reserve_ = 0;
  int fd_ = -1;
  bool committed_ = false;
  std::vector<Entry> entries_;
  std::unordered_map<std::string, size_t> names_;
  uint64_t data_bytes_ = 0;     // data region bytes written so far
  bool open_tensor_ = false;    // between BeginTensor and EndTensor
  uint64_t open_remaining_ = 0; // bytes still expected for the open tensor
};

// Convenience: writes `tensors` (any dtypes) and `metadata` to `path` atomically.
struct NamedTensorView {
  std::string name;
  ConstTensorView view;
};
void SaveSafetensors(const std::string& path, const std::vector<NamedTensorView>& tensors,
                     const Metadata& metadata = {});

}  // namespace io
}  // namespace lowbit

#endif  // LOWBIT_IO_SAFETENSORS_H_
