// File helpers shared by the test binaries that write files: whole-file read/write and a gtest
// fixture owning a fresh, empty temporary directory per test.
#ifndef LOWBIT_TESTS_TEST_FILES_H_
#define LOWBIT_TESTS_TEST_FILES_H_

#include <dirent.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace lowbit::testing {

// The whole file as bytes (empty when it cannot be opened).
inline std::vector<uint8_t> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)),
                              std::istreambuf_iterator<char>());
}

// The whole file as a string, read in binary mode (empty when it cannot be opened).
inline std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Creates or truncates `path` and writes `bytes` to it.
inline void WriteFile(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

// Fixture base: SetUp makes ::testing::TempDir()/<prefix>XXXXXX, TearDown removes its files
// (flat: tests do not make subdirectories) and the directory.
class TempDirTest : public ::testing::Test {
 protected:
  explicit TempDirTest(std::string prefix) : prefix_(std::move(prefix)) {}
  void SetUp() override {
    std::string tmpl = ::testing::TempDir();
    if (tmpl.empty() || tmpl.back() != '/') tmpl += '/';
    tmpl += prefix_ + "XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (dir_.empty()) return;
    for (const std::string& name : ListDir()) std::remove(Path(name).c_str());
    ::rmdir(dir_.c_str());
  }
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }
  // The directory's entries (no "." / ".."), sorted.
  std::vector<std::string> ListDir() const {
    std::vector<std::string> names;
    if (DIR* d = ::opendir(dir_.c_str())) {
      while (dirent* e = ::readdir(d)) {
        const std::string name = e->d_name;
        if (name != "." && name != "..") names.push_back(name);
      }
      ::closedir(d);
    }
    std::sort(names.begin(), names.end());
    return names;
  }

  std::string prefix_;
  std::string dir_;
};

}  // namespace lowbit::testing

#endif  // LOWBIT_TESTS_TEST_FILES_H_
