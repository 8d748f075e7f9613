// tools/cli_util.cc — helpers shared by the lowbit subcommands: tables, formats, progress, data.
#include <fnmatch.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <fstream>

#include "cli.h"
#include "lowbit/format.h"
#include "lowbit/io/checkpoint.h"
#include "lowbit/io/gguf.h"
#include "lowbit/status.h"

namespace lowbit::cli {

std::string FormatNameList() {
  std::string names;
  for (int f = 0; f < kNumFormats; ++f) {
    if (!names.empty()) names += ", ";
    names += FormatName(static_cast<Format>(f));
  }
  return names;
}

Format ParseFormat(const std::string& name) {
  try {
    return FormatFromName(name);
  } catch (const Error&) {
    throw UsageError("unknown format '" + name + "' (valid: " + FormatNameList() + ")");
  }
}

namespace {

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

constexpr const char kGgufExtension[] = ".gguf";

// A safetensors file starts with an 8-byte little-endian header length and then '{'.
bool LooksLikeSafetensors(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return false;
  unsigned char head[9];
  const size_t n = std::fread(head, 1, sizeof(head), f);
  std::fclose(f);
  return n == sizeof(head) && head[8] == '{';
}

bool Readable(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return false;
  std::fclose(f);
  return true;
}

}  // namespace

FileKind OutputFileKind(const std::string& path) {
  return EndsWith(path, kGgufExtension) ? FileKind::kGguf : FileKind::kSafetensors;
}

FileKind InputFileKind(const std::string& path) {
  const FileKind by_name = OutputFileKind(path);
  if (!Readable(path)) return by_name;
  const bool gguf = io::IsGgufFile(path);
  if (by_name == FileKind::kGguf && !gguf && LooksLikeSafetensors(path)) {
    throw Error(Status::kInvalidArgument,
                "'" + path + "' is named .gguf but holds a safetensors file; rename it to "
                             ".safetensors");
  }
  if (by_name != FileKind::kGguf && gguf) {
    throw Error(Status::kInvalidArgument,
                "'" + path + "' is a GGUF file (it starts with \"GGUF\") but is not named .gguf; "
                             "rename it to .gguf");
  }
  return by_name;  // a .gguf without the magic: GgufFile::Open says what it starts with
}

bool ShouldQuantizeTensor(const std::string& name, DType dtype, const Shape& shape,
                          const std::vector<std::string>& skip) {
  if (shape.size() != 2 || !IsFloatActivation(dtype) || shape[0] <= 0 || shape[1] <= 0) return false;
  if (name != "weight" && !EndsWith(name, ".weight")) return false;
  for (const std::string& p : skip) {
    if (p.find_first_of("*?[") != std::string::npos) {
      if (::fnmatch(p.c_str(), name.c_str(), 0) == 0) return false;
    } else if (name.find(p) != std::string::npos) {
      return false;
    }
  }
  return true;
}

void WriteBnbQuantizationConfig(const std::string& path, Format format, bool double_quant,
                                const std::vector<std::string>& skip_modules) {
  io::BnbQuantizationConfig c;
  c.load_in_4bit = format != Format::kInt8;
  c.quant_type = format == Format::kFP4 ? Format::kFP4 : Format::kNF4;
  c.use_double_quant = double_quant;
  c.llm_int8_skip_modules = skip_modules;
  const std::string block = io::BnbQuantizationConfigJson(c);
  std::string indented;  // the block, one level deeper inside the enclosing object
  for (const char ch : block) {
    indented += ch;
    if (ch == '\n') indented += "  ";
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << "{\n  \"quantization_config\": " << indented << "\n}\n";
  out.flush();
  if (!out) throw Error(Status::kIoError, "cannot write '" + path + "'");
}

Table::Table(std::vector<std::string> headers) : headers_(std::move(headers)) {
  right_.assign(headers_.size(), true);
  if (!right_.empty()) right_[0] = false;
}

void Table::SetAlignment(std::vector<bool> right_aligned) { right_ = std::move(right_aligned); }

void Table::AddRow(std::vector<std::string> cells) {
  cells.resize(headers_.size());
  rows_.push_back(std::move(cells));
}

void Table::Print(std::FILE* out) const {
  std::vector<size_t> width(headers_.size());
  for (size_t c = 0; c < headers_.size(); ++c) {
    width[c] = headers_[c].size();
    for (const auto& row : rows_) width[c] = std::max(width[c], row[c].size());
  }
  auto print_row = [&](const std::vector<std::string>& cells) {
    std::string line;
    for (size_t c = 0; c < cells.size(); ++c) {
      const std::string pad(width[c] - cells[c].size(), ' ');
      if (c > 0) line += "  ";
      line += right_[c] ? pad + cells[c] : cells[c] + (c + 1 < cells.size() ? pad : "");
    }
    std::fprintf(out, "%s\n", line.c_str());
  };
  print_row(headers_);
  std::vector<std::string> rule;
  for (size_t w : width) rule.emplace_back(w, '-');
  print_row(rule);
  for (const auto& row : rows_) print_row(row);
}

std::string Fmt(const char* format, ...) {
  char buf[512];
  va_list args;
  va_start(args, format);
  const int n = std::vsnprintf(buf, sizeof(buf), format, args);
  va_end(args);
  if (n < static_cast<int>(sizeof(buf))) return std::string(buf, n < 0 ? 0 : n);
  std::string big(static_cast<size_t>(n) + 1, '\0');
  va_start(args, format);
  std::vsnprintf(big.data(), big.size(), format, args);
  va_end(args);
  big.resize(static_cast<size_t>(n));
  return big;
}

std::string HumanBytes(int64_t bytes) {
  if (bytes < 1024) return Fmt("%lld B", static_cast<long long>(bytes));
  const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes) / 1024.0;
  int u = 0;
  while (v >= 1024.0 && u < 3) {
    v /= 1024.0;
    ++u;
  }
  return Fmt("%.2f %s", v, units[u]);
}

Progress::Progress(int64_t total_items, bool quiet)
    : total_(total_items), quiet_(quiet), tty_(::isatty(STDERR_FILENO) == 1) {}

Progress::~Progress() { Finish(); }

void Progress::Step(const std::string& name, const std::string& detail) {
  ++done_;
  if (quiet_) return;
  if (tty_) {
    constexpr int kBarWidth = 30;
    const int filled = total_ > 0 ? static_cast<int>(kBarWidth * done_ / total_) : kBarWidth;
    std::string shown = name.size() > 40 ? "..." + name.substr(name.size() - 37) : name;
    std::fprintf(stderr, "\r\033[K[%s%s] %lld/%lld %s", std::string(filled, '#').c_str(),
                 std::string(kBarWidth - filled, ' ').c_str(), static_cast<long long>(done_),
                 static_cast<long long>(total_), shown.c_str());
    std::fflush(stderr);
  } else {
    std::printf("[%lld/%lld] %s%s%s\n", static_cast<long long>(done_),
                static_cast<long long>(total_), name.c_str(), detail.empty() ? "" : ": ",
                detail.c_str());
    std::fflush(stdout);
  }
}

void Progress::Finish() {
  if (finished_) return;
  finished_ = true;
  if (!quiet_ && tty_ && done_ > 0) std::fprintf(stderr, "\n");
}

}  // namespace lowbit::cli
