// Safetensors reader (mmap + strict validation of hostile headers) and atomic streaming writer.
#include "lowbit/io/safetensors.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <utility>

#include "io/file_util.h"
#include "io/json_util.h"

namespace lowbit {
namespace io {
namespace {

using json = nlohmann::json;

struct DTypeNamePair {
  DType dtype;
  const char* name;
};
constexpr DTypeNamePair kDTypeNames[] = {
    {DType::kF32, "F32"},       {DType::kF16, "F16"},         {DType::kBF16, "BF16"},
    {DType::kF64, "F64"},       {DType::kI8, "I8"},           {DType::kU8, "U8"},
    {DType::kI16, "I16"},       {DType::kI32, "I32"},         {DType::kI64, "I64"},
    {DType::kBool, "BOOL"},     {DType::kF8E4M3, "F8_E4M3"},  {DType::kF8E5M2, "F8_E5M2"},
    {DType::kU16, "U16"},       {DType::kU32, "U32"},         {DType::kU64, "U64"},
};

[[noreturn]] void Corrupt(const std::string& where, const std::string& what) {
  throw Error(Status::kCorruptData, where + ": " + what);
}

uint64_t ReadLE64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// A non-negative JSON integer that fits int64 (rejects floats, negatives, bools).
bool AsNonNegative(const json& j, uint64_t* out) {
  if (j.is_number_unsigned()) {
    *out = j.get<uint64_t>();
    return true;
  }
  if (j.is_number_integer()) {
    const int64_t v = j.get<int64_t>();
    if (v < 0) return false;
    *out = static_cast<uint64_t>(v);
    return true;
  }
  return false;
}

// Shape product with overflow check; nullopt-like via bool.
bool CheckedElements(const Shape& shape, int64_t* out) {
  int64_t n = 1;
  for (const int64_t d : shape) {
    if (d < 0) return false;
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d) return false;
    n *= d;
  }
  *out = n;
  return true;
}

}  // namespace

const char* SafetensorsDTypeName(DType dtype) noexcept {
  for (const auto& p : kDTypeNames) {
    if (p.dtype == dtype) return p.name;
  }
  return "unknown";
}

DType SafetensorsDTypeFromName(std::string_view name) {
  for (const auto& p : kDTypeNames) {
    if (name == p.name) return p.dtype;
  }
  throw Error(Status::kCorruptData, "unknown safetensors dtype '" + std::string(name) + "'");
}

int64_t TensorInfo::num_elements() const {
  int64_t n = 0;
  Require(CheckedElements(shape, &n), Status::kInternal, "validated shape overflowed");
  return n;
}

// ---- reader -------------------------------------------------------------------------------------

SafetensorsFile SafetensorsFile::Open(const std::string& path) {
  SafetensorsFile f;
  f.path_ = path;
  ReadOnlyMapping m = ReadOnlyMapping::Open(path, 8, "the 8-byte header length field");
  f.file_size_ = m.size();
  f.base_ = m.data();
  f.mapping_ = m.Release();
  f.Parse();  // on throw, ~SafetensorsFile unmaps
  return f;
}

SafetensorsFile SafetensorsFile::FromMemory(const void* data, size_t size) {
  SafetensorsFile f;
  Require(data != nullptr || size == 0, Status::kInvalidArgument, "FromMemory: null data");
  f.base_ = static_cast<const uint8_t*>(data);
  f.file_size_ = size;
  f.Parse();
  return f;
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& o) noexcept { *this = std::move(o); }

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& o) noexcept {
  if (this != &o) {
    if (mapping_ != nullptr) ::munmap(mapping_, file_size_);
    path_ = std::move(o.path_);
    base_ = o.base_;
    file_size_ = o.file_size_;
    header_size_ = o.header_size_;
    data_begin_ = o.data_begin_;
    mapping_ = o.mapping_;
    tensors_ = std::move(o.tensors_);
    index_ = std::move(o.index_);
    metadata_ = std::move(o.metadata_);
    o.mapping_ = nullptr;
    o.base_ = nullptr;
    o.data_begin_ = nullptr;
    o.file_size_ = 0;
  }
  return *this;
}

SafetensorsFile::~SafetensorsFile() {
  if (mapping_ != nullptr) ::munmap(mapping_, file_size_);
}

void SafetensorsFile::Parse() {
  const std::string where = path_.empty() ? std::string("safetensors buffer") : path_;
  if (file_size_ < 8) {
    Corrupt(where, "file is " + std::to_string(file_size_) +
                       " bytes, shorter than the 8-byte header length field");
  }
  const uint64_t n = ReadLE64(base_);
  if (n > kMaxSafetensorsHeaderBytes) {
    Corrupt(where, "header length " + std::to_string(n) + " exceeds the " +
                       std::to_string(kMaxSafetensorsHeaderBytes) + "-byte limit");
  }
  if (n > file_size_ - 8) {
    Corrupt(where, "header length " + std::to_string(n) + " runs past the end of the " +
                       std::to_string(file_size_) + "-byte file");
  }
  if (n < 2 || base_[8] != '{') Corrupt(where, "header is not a JSON object");
  header_size_ = n;
  data_begin_ = base_ + 8 + n;
  const uint64_t data_size = file_size_ - 8 - n;

  const std::string_view text(reinterpret_cast<const char*>(base_ + 8), n);
  // Depth 1 = top object, 2 = tensor entry / __metadata__, 3 = shape / data_offsets arrays.
  const json header = ParseStrictJson(text, /*max_depth=*/3, where + " header");
  if (!header.is_object()) Corrupt(where, "header is not a JSON object");

  std::vector<TensorInfo> tensors;
  tensors.reserve(header.size());
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) Corrupt(where, "__metadata__ is not an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) {
          Corrupt(where, "__metadata__ value of '" + m.key() + "' is not a string");
        }
        metadata_.emplace(m.key(), m.value().get<std::string>());
      }
      continue;
    }
    const std::string tw = where + ": tensor '" + name + "'";
    if (!v.is_object()) Corrupt(tw, "entry is not an object");
    if (v.size() != 3 || !v.contains("dtype") || !v.contains("shape") ||
        !v.contains("data_offsets")) {
      Corrupt(tw, "entry must have exactly the keys dtype, shape, data_offsets");
    }
    TensorInfo info;
    info.name = name;
    const json& dt = v["dtype"];
    if (!dt.is_string()) Corrupt(tw, "dtype is not a string");
    try {
      info.dtype = SafetensorsDTypeFromName(dt.get_ref<const std::string&>());
    } catch (const Error& e) {
      Corrupt(tw, e.message());
    }
    const json& sh = v["shape"];
    if (!sh.is_array()) Corrupt(tw, "shape is not an array");
    for (const json& d : sh) {
      uint64_t u = 0;
      if (!AsNonNegative(d, &u) || u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        Corrupt(tw, "shape entry " + d.dump() + " is not a non-negative integer");
      }
      info.shape.push_back(static_cast<int64_t>(u));
    }
    int64_t elems = 0;
    if (!CheckedElements(info.shape, &elems)) Corrupt(tw, "shape product overflows int64");
    const uint64_t esize = DTypeSize(info.dtype);
    if (static_cast<uint64_t>(elems) > std::numeric_limits<uint64_t>::max() / esize) {
      Corrupt(tw, "byte size overflows");
    }
    const json& off = v["data_offsets"];
    uint64_t begin = 0, end = 0;
    if (!off.is_array() || off.size() != 2 || !AsNonNegative(off[0], &begin) ||
        !AsNonNegative(off[1], &end)) {
      Corrupt(tw, "data_offsets must be [begin, end] with non-negative integers");
    }
    if (end < begin) Corrupt(tw, "data_offsets end precedes begin");
    if (end > data_size) {
      Corrupt(tw, "data_offsets end " + std::to_string(end) + " is past the " +
                      std::to_string(data_size) + "-byte data region (truncated file?)");
    }
    info.offset = begin;
    info.size = end - begin;
    if (info.size != static_cast<uint64_t>(elems) * esize) {
      Corrupt(tw, "shape " + ShapeToString(info.shape) + " x " + SafetensorsDTypeName(info.dtype) +
                      " needs " + std::to_string(static_cast<uint64_t>(elems) * esize) +
                      " bytes, data_offsets give " + std::to_string(info.size));
    }
    tensors.push_back(std::move(info));
  }
  // The tensors must tile [0, data_size) exactly. Zero-size tensors sort before the tensor that
  // starts at the same offset.
  std::sort(tensors.begin(), tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    if (a.offset != b.offset) return a.offset < b.offset;
    if (a.size != b.size) return a.size < b.size;
    return a.name < b.name;
  });
  uint64_t cursor = 0;
  for (const TensorInfo& t : tensors) {
    if (t.offset != cursor) {
      Corrupt(where, "tensor '" + t.name + "' starts at " + std::to_string(t.offset) +
                         ", expected " + std::to_string(cursor) +
                         (t.offset < cursor ? " (overlap)" : " (hole)"));
    }
    cursor += t.size;
  }
  if (cursor != data_size) {
    Corrupt(where, "tensors cover " + std::to_string(cursor) + " bytes of a " +
                       std::to_string(data_size) + "-byte data region");
  }
  tensors_ = std::move(tensors);
  index_.reserve(tensors_.size());
  for (size_t i = 0; i < tensors_.size(); ++i) index_.emplace(tensors_[i].name, i);
}

const TensorInfo* SafetensorsFile::Find(std::string_view name) const {
  const auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const TensorInfo& SafetensorsFile::Get(std::string_view name) const {
  const TensorInfo* t = Find(name);
  if (t == nullptr) {
    throw Error(Status::kInvalidArgument,
                "no tensor '" + std::string(name) + "' in " +
                    (path_.empty() ? std::string("safetensors buffer") : path_));
  }
  return *t;
}

std::vector<float> SafetensorsFile::CopyAsF32(const TensorInfo& info) const {
  const int64_t n = info.num_elements();
  std::vector<float> out(static_cast<size_t>(n));
  const uint8_t* p = data(info);
  switch (info.dtype) {
    case DType::kF32:
      if (n > 0) std::memcpy(out.data(), p, static_cast<size_t>(n) * 4);
      break;
    case DType::kF64:
      for (int64_t i = 0; i < n; ++i) {
        double d;
        std::memcpy(&d, p + 8 * i, 8);
        out[static_cast<size_t>(i)] = static_cast<float>(d);
      }
      break;
    case DType::kF16:
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t b;
        std::memcpy(&b, p + 2 * i, 2);
        out[static_cast<size_t>(i)] = info.dtype == DType::kF16 ? F16ToF32(F16{b}) : BF16ToF32(BF16{b});
      }
      break;
    default:
      throw Error(Status::kInvalidArgument, "tensor '" + info.name + "' has dtype " +
                                                SafetensorsDTypeName(info.dtype) +
                                                ", not a float type");
  }
  return out;
}

// ---- writer -------------------------------------------------------------------------------------
namespace {

std::string JsonString(std::string_view s) { return json(std::string(s)).dump(); }

void ValidateName(std::string_view name, const char* what) {
  Require(IsValidUtf8(name), Status::kInvalidArgument,
          std::string(what) + " is not valid UTF-8");
}

}  // namespace

uint64_t SafetensorsHeaderBound(const std::vector<TensorSpec>& specs, const Metadata& metadata) {
  // Each entry: "name":{"dtype":"F8_E4M3","shape":[d,...],"data_offsets":[b,e]}, with every
  // number at most 20 digits; escaping can grow a name 6x (\u00XX).
  uint64_t bound = 2 + 8;  // braces + padding to a multiple of 8
  for (const TensorSpec& s : specs) {
    bound += 6 * s.name.size() + 2 + 70 + 21 * (s.shape.size() + 2);
  }
  if (!metadata.empty()) {
    bound += 20;
    for (const auto& kv : metadata) bound += 6 * (kv.first.size() + kv.second.size()) + 6;
  }
  return bound;
}

SafetensorsWriter::SafetensorsWriter(std::string path, Metadata metadata, uint64_t header_reserve)
    : path_(std::move(path)), metadata_(std::move(metadata)) {
  Require(!path_.empty(), Status::kInvalidArgument, "empty output path");
  for (const auto& kv : metadata_) {
    ValidateName(kv.first, "metadata key");
    ValidateName(kv.second, "metadata value");
  }
  // reserve_ is the JSON length N; a multiple of 8 keeps the data region (at 8 + N) aligned.
  reserve_ = (std::max<uint64_t>(header_reserve, 16) + 7) / 8 * 8;
  fd_ = CreateTemp(path_, &temp_path_);
}

SafetensorsWriter::~SafetensorsWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_ && !temp_path_.empty()) ::unlink(temp_path_.c_str());
}

void SafetensorsWriter::CheckNewName(std::string_view name) const {
  Require(!committed_, Status::kInvalidState, "writer for '" + path_ + "' is already committed");
  // Messages are built only on failure: entries_ may be empty when no tensor is open.
  if (open_tensor_) {
    throw Error(Status::kInvalidArgument,
                "tensor '" + entries_.back().spec.name + "' is still open (call EndTensor)");
  }
  ValidateName(name, "tensor name");
  Require(name != "__metadata__", Status::kInvalidArgument, "'__metadata__' is not a tensor name");
  Require(names_.find(std::string(name)) == names_.end(), Status::kInvalidArgument,
          "duplicate tensor name '" + std::string(name) + "'");
}

void SafetensorsWriter::WriteAll(const void* data, size_t bytes) {
  WriteAt(fd_, data, bytes, 8 + reserve_ + data_bytes_, temp_path_);
  data_bytes_ += bytes;
}

void SafetensorsWriter::BeginTensor(std::string_view name, DType dtype, const Shape& shape) {
  CheckNewName(name);
  Require(std::string_view(SafetensorsDTypeName(dtype)) != "unknown", Status::kInvalidArgument,
          "tensor '" + std::string(name) + "': unknown dtype value " +
              std::to_string(static_cast<int>(dtype)));
  int64_t n = 0;
  Require(CheckedElements(shape, &n), Status::kInvalidArgument,
          "tensor '" + std::string(name) + "': bad shape " + ShapeToString(shape));
  const uint64_t esize = DTypeSize(dtype);
  Require(static_cast<uint64_t>(n) <= std::numeric_limits<uint64_t>::max() / esize,
          Status::kInvalidArgument, "tensor '" + std::string(name) + "' is too large");
  const uint64_t size = static_cast<uint64_t>(n) * esize;
  entries_.push_back(Entry{TensorSpec{std::string(name), dtype, shape}, data_bytes_, size});
  names_.emplace(std::string(name), entries_.size() - 1);
  open_tensor_ = true;
  open_remaining_ = size;
}

void SafetensorsWriter::WriteChunk(const void* data, size_t bytes) {
  Require(open_tensor_, Status::kInvalidState, "WriteChunk without BeginTensor");
  if (bytes > open_remaining_) {
    throw Error(Status::kInvalidArgument,
                "tensor '" + entries_.back().spec.name + "': chunk of " + std::to_string(bytes) +
                    " bytes exceeds the " + std::to_string(open_remaining_) +
                    " bytes still expected");
  }
  Require(data != nullptr || bytes == 0, Status::kInvalidArgument, "WriteChunk: null data");
  WriteAll(data, bytes);
  open_remaining_ -= bytes;
}

void SafetensorsWriter::EndTensor() {
  Require(open_tensor_, Status::kInvalidState, "EndTensor without BeginTensor");
  if (open_remaining_ != 0) {
    throw Error(Status::kInvalidArgument, "tensor '" + entries_.back().spec.name +
                                              "' is missing " + std::to_string(open_remaining_) +
                                              " bytes");
  }
  open_tensor_ = false;
}

void SafetensorsWriter::Add(std::string_view name, DType dtype, const Shape& shape,
                            const void* data, size_t bytes) {
  Require(data != nullptr || bytes == 0, Status::kInvalidArgument,
          "tensor '" + std::string(name) + "': null data");
  BeginTensor(name, dtype, shape);
  if (bytes != entries_.back().size) {
    // Roll back the entry so the writer stays usable.
    const uint64_t expected = entries_.back().size;
    names_.erase(entries_.back().spec.name);
    entries_.pop_back();
    open_tensor_ = false;
    throw Error(Status::kInvalidArgument,
                "tensor '" + std::string(name) + "' " + ShapeToString(shape) + " " +
                    SafetensorsDTypeName(dtype) + " needs " + std::to_string(expected) +
                    " bytes, got " + std::to_string(bytes));
  }
  WriteChunk(data, bytes);
  EndTensor();
}

void SafetensorsWriter::Add(std::string_view name, const ConstTensorView& view) {
  int64_t n = 0;
  Require(CheckedElements(view.shape, &n), Status::kInvalidArgument,
          "tensor '" + std::string(name) + "': bad shape " + ShapeToString(view.shape));
  Add(name, view.dtype, view.shape, view.data, static_cast<size_t>(n) * DTypeSize(view.dtype));
}

std::string SafetensorsWriter::BuildHeader() const {
  std::string h = "{";
  if (!metadata_.empty()) {
    h += "\"__metadata__\":{";
    bool first = true;
    for (const auto& kv : metadata_) {
      if (!first) h += ',';
      first = false;
      h += JsonString(kv.first) + ':' + JsonString(kv.second);
    }
    h += '}';
  }
  for (const Entry& e : entries_) {
    if (h.size() > 1) h += ',';
    h += JsonString(e.spec.name) + ":{\"dtype\":\"" + SafetensorsDTypeName(e.spec.dtype) +
         "\",\"shape\":[";
    for (size_t i = 0; i < e.spec.shape.size(); ++i) {
      if (i) h += ',';
      h += std::to_string(e.spec.shape[i]);
    }
    h += "],\"data_offsets\":[" + std::to_string(e.offset) + ',' +
         std::to_string(e.offset + e.size) + "]}";
  }
  h += '}';
  return h;
}

void SafetensorsWriter::Commit() {
  Require(!committed_, Status::kInvalidState, "writer for '" + path_ + "' is already committed");
  Require(!open_tensor_, Status::kInvalidState,
          "tensor '" + (entries_.empty() ? std::string() : entries_.back().spec.name) +
              "' is still open (call EndTensor)");
  std::string header = BuildHeader();
  // Pad with spaces (valid trailing JSON whitespace) so that 8 + N is a multiple of 8.
  header.append((8 - header.size() % 8) % 8, ' ');
  uint8_t len[8];
  if (header.size() <= reserve_) {
    header.append(reserve_ - header.size(), ' ');
    for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(header.size() >> (8 * i));
    WriteAt(fd_, len, 8, 0, temp_path_);
    WriteAt(fd_, header.data(), header.size(), 8, temp_path_);
    // A tensor-less file still needs its full length on disk.
    if (::ftruncate(fd_, static_cast<off_t>(8 + reserve_ + data_bytes_)) != 0) {
      throw Error(Status::kIoError, Errno("truncate failed on", temp_path_));
    }
  } else {
    // The header outgrew the reserve: write header + data into a second temporary.
    std::string second;
    const int fd2 = CreateTemp(path_, &second);
    try {
      for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(header.size() >> (8 * i));
      WriteAt(fd2, len, 8, 0, second);
      WriteAt(fd2, header.data(), header.size(), 8, second);
      std::vector<uint8_t> buf(size_t{1} << 20);
      uint64_t done = 0;
      while (done < data_bytes_) {
        const size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), data_bytes_ - done));
        const ssize_t r = ::pread(fd_, buf.data(), want, static_cast<off_t>(8 + reserve_ + done));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) throw Error(Status::kIoError, Errno("read back failed on", temp_path_));
        WriteAt(fd2, buf.data(), static_cast<size_t>(r), 8 + header.size() + done, second);
        done += static_cast<uint64_t>(r);
      }
    } catch (...) {
      ::close(fd2);
      ::unlink(second.c_str());
      throw;
    }
    ::close(fd_);
    ::unlink(temp_path_.c_str());
    fd_ = fd2;
    temp_path_ = second;
  }
  CommitTemp(&fd_, temp_path_, path_, &committed_);
}

void SaveSafetensors(const std::string& path, const std::vector<NamedTensorView>& tensors,
                     const Metadata& metadata) {
  std::vector<TensorSpec> specs;
  specs.reserve(tensors.size());
  for (const NamedTensorView& t : tensors) specs.push_back({t.name, t.view.dtype, t.view.shape});
  SafetensorsWriter writer(path, metadata, SafetensorsHeaderBound(specs, metadata));
  for (const NamedTensorView& t : tensors) writer.Add(t.name, t.view);
  writer.Commit();
}

}  // namespace io
}  // namespace lowbit
