// Internal file helpers shared by lowbit's checkpoint readers and writers (safetensors, GGUF):
// read-only mappings, positioned writes, and the temp-file + fsync + rename commit of atomic saves.
#ifndef LOWBIT_SRC_IO_FILE_UTIL_H_
#define LOWBIT_SRC_IO_FILE_UTIL_H_

#include <cstddef>
#include <cstdint>
#include <string>

namespace lowbit {
namespace io {

// "<what> '<path>': <strerror(errno)>".
std::string Errno(const std::string& what, const std::string& path);

// A whole regular file mapped read-only (mmap, MAP_PRIVATE); unmapped by the destructor. Move-only.
class ReadOnlyMapping {
 public:
  ReadOnlyMapping() = default;
  // Maps `path`. Throws Error(kIoError) when it cannot be opened, stat'ed or mapped, or is not a
  // regular file. A file shorter than `min_size` bytes is not mapped: throws
  // Error(kCorruptData, "<path>: file is N bytes, shorter than <min_size_what>").
  static ReadOnlyMapping Open(const std::string& path, uint64_t min_size,
                              const char* min_size_what);
  ReadOnlyMapping(ReadOnlyMapping&& o) noexcept { *this = static_cast<ReadOnlyMapping&&>(o); }
  ReadOnlyMapping& operator=(ReadOnlyMapping&& o) noexcept;
  ReadOnlyMapping(const ReadOnlyMapping&) = delete;
  ReadOnlyMapping& operator=(const ReadOnlyMapping&) = delete;
  ~ReadOnlyMapping();

  const uint8_t* data() const { return static_cast<const uint8_t*>(mapping_); }
  uint64_t size() const { return size_; }
  // Gives up ownership: the caller must munmap(returned pointer, size()) (nullptr for an empty
  // file, which has no mapping).
  void* Release() {
    void* p = mapping_;
    mapping_ = nullptr;
    return p;
  }

 private:
  void* mapping_ = nullptr;
  uint64_t size_ = 0;
};

// pwrite of all `bytes` at `offset` (retries short writes and EINTR). Throws Error(kIoError).
void WriteAt(int fd, const void* data, size_t bytes, uint64_t offset, const std::string& path);

// Creates a fresh temporary "<path>.tmp-<pid>-<n>" next to `path` (same directory, so the final
// rename is atomic) with O_EXCL; returns its fd and stores its name. Throws Error(kIoError).
int CreateTemp(const std::string& path, std::string* temp_path);

// The atomic-save commit: fsyncs and closes `*fd` (set to -1 whatever happens), renames
// `temp_path` over `path` (then sets `*renamed`), and fsyncs the directory. Throws
// Error(kIoError); a failure before the rename leaves `path` untouched and `*renamed` false (the
// caller unlinks the temporary).
void CommitTemp(int* fd, const std::string& temp_path, const std::string& path, bool* renamed);

}  // namespace io
}  // namespace lowbit

#endif  // LOWBIT_SRC_IO_FILE_UTIL_H_
