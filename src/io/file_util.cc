// Internal file helpers of src/io/: read-only mappings, positioned writes, atomic-save commit.
#include "io/file_util.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

#include "lowbit/status.h"

namespace lowbit {
namespace io {
namespace {

std::string DirectoryOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

std::string Errno(const std::string& what, const std::string& path) {
  return what + " '" + path + "': " + std::strerror(errno);
}

ReadOnlyMapping ReadOnlyMapping::Open(const std::string& path, uint64_t min_size,
                                      const char* min_size_what) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(Status::kIoError, Errno("cannot open", path));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const std::string msg = Errno("cannot stat", path);
    ::close(fd);
    throw Error(Status::kIoError, msg);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(Status::kIoError, "'" + path + "' is not a regular file");
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < min_size) {
    ::close(fd);
    throw Error(Status::kCorruptData, path + ": file is " + std::to_string(size) +
                                          " bytes, shorter than " + min_size_what);
  }
  ReadOnlyMapping m;
  if (size > 0) {
    void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    const int map_errno = errno;
    ::close(fd);  // the mapping keeps the file referenced
    if (p == MAP_FAILED) {
      errno = map_errno;
      throw Error(Status::kIoError, Errno("cannot mmap", path));
    }
    m.mapping_ = p;
    m.size_ = size;
  } else {
    ::close(fd);
  }
  return m;
}

ReadOnlyMapping& ReadOnlyMapping::operator=(ReadOnlyMapping&& o) noexcept {
  if (this != &o) {
    if (mapping_ != nullptr) ::munmap(mapping_, size_);
    mapping_ = o.mapping_;
    size_ = o.size_;
    o.mapping_ = nullptr;
    o.size_ = 0;
  }
  return *this;
}

ReadOnlyMapping::~ReadOnlyMapping() {
  if (mapping_ != nullptr) ::munmap(mapping_, size_);
}

void WriteAt(int fd, const void* data, size_t bytes, uint64_t offset, const std::string& path) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  while (bytes > 0) {
    const ssize_t w =
        ::pwrite(fd, p, std::min<size_t>(bytes, size_t{1} << 30), static_cast<off_t>(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      throw Error(Status::kIoError, Errno("write failed on", path));
    }
    p += w;
    bytes -= static_cast<size_t>(w);
    offset += static_cast<uint64_t>(w);
  }
}

int CreateTemp(const std::string& path, std::string* temp_path) {
  static std::atomic<uint64_t> counter{0};
  for (int attempt = 0; attempt < 100; ++attempt) {
    *temp_path =
        path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1));
    const int fd = ::open(temp_path->c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0) return fd;
    if (errno != EEXIST) {
      throw Error(Status::kIoError, Errno("cannot create temporary file", *temp_path));
    }
  }
  throw Error(Status::kIoError, "cannot find a free temporary name next to '" + path + "'");
}

void CommitTemp(int* fd, const std::string& temp_path, const std::string& path, bool* renamed) {
  *renamed = false;
  if (::fsync(*fd) != 0) throw Error(Status::kIoError, Errno("fsync failed on", temp_path));
  const int rc = ::close(*fd);
  *fd = -1;
  if (rc != 0) throw Error(Status::kIoError, Errno("close failed on", temp_path));
  if (::rename(temp_path.c_str(), path.c_str()) != 0) {
    throw Error(Status::kIoError, Errno("cannot rename temporary onto", path));
  }
  *renamed = true;
  // Make the rename durable. Failure here cannot undo the (already visible) new file.
  const std::string dir = DirectoryOf(path);
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    const int sync_rc = ::fsync(dfd);
    const int err = errno;
    ::close(dfd);
    if (sync_rc != 0) {
      errno = err;
      throw Error(Status::kIoError, Errno("fsync failed on directory", dir));
    }
  }
}

}  // namespace io
}  // namespace lowbit
