// tools/cli.h — shared pieces of the `lowbit` command-line tool: subcommand registration, exit
// codes, table printing, weight loading, progress reporting.
#ifndef LOWBIT_TOOLS_CLI_H_
#define LOWBIT_TOOLS_CLI_H_

#include <cstdint>
#include <cstdio>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "lowbit/dtype.h"
#include "lowbit/quantize.h"

namespace CLI {
class App;
}

namespace lowbit::cli {

// Process exit codes of every subcommand (docs/cli.md).
inline constexpr int kExitOk = 0;
inline constexpr int kExitRuntimeError = 1;  // a file could not be read/written, corrupt data, ...
inline constexpr int kExitUsageError = 2;    // bad command line (unknown option, bad value)

// A subcommand: its CLI11 node and what runs when it was selected. `run` returns an exit code or
// throws (lowbit::Error → 1 or 2 by status, UsageError → 2, other exceptions → 1).
struct Subcommand {
  CLI::App* app = nullptr;
  std::function<int()> run;
};

// Thrown by a subcommand for a bad combination of otherwise well-formed arguments (exit code 2).
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

Subcommand AddReportCommand(CLI::App& app);
Subcommand AddQuantizeCommand(CLI::App& app);
Subcommand AddDequantizeCommand(CLI::App& app);
Subcommand AddInspectCommand(CLI::App& app);
Subcommand AddErrorCommand(CLI::App& app);
Subcommand AddBenchCommand(CLI::App& app);
Subcommand AddConvertCommand(CLI::App& app);

// Parses a format spec "nf4", "int4", "fp8_e4m3", ... (FormatFromName) and throws UsageError
// listing the valid names when unknown.
Format ParseFormat(const std::string& name);
// Comma-separated list of every format name, for help texts and messages.
std::string FormatNameList();

// ---- checkpoint files: safetensors or GGUF --------------------------------------------------------
enum class FileKind { kSafetensors, kGguf };
// The kind of an existing input file, decided by its content (the "GGUF" magic), with the
// extension checked against it: "x.gguf" holding safetensors, or a GGUF file under another
// extension, throws Error(kInvalidArgument) saying what the file is and how to name it. A file
// that cannot be read is taken by its extension (opening it then reports the OS error).
FileKind InputFileKind(const std::string& path);
// The kind an output path asks for: ".gguf" -> GGUF, anything else -> safetensors.
FileKind OutputFileKind(const std::string& path);

// Whether `quantize` converts a tensor: 2-D f32/f16/bf16 with positive dims, named "weight" or
// "*.weight", matched by no --skip pattern (a pattern with * ? [ is an fnmatch glob over the whole
// name, where '*' also crosses '.'; any other pattern matches names that contain it).
bool ShouldQuantizeTensor(const std::string& name, DType dtype, const Shape& shape,
                          const std::vector<std::string>& skip);

// GGUF subcommands (tools/gguf_cmd.cc; docs/cli.md "GGUF").
// `lowbit inspect FILE.gguf`: header, metadata (all of it with `metadata`), one row per tensor
// with its ggml type, the lowbit format it loads as and, unless `!conversion_error`, the
// measured conversion error.
int RunInspectGguf(const std::string& path, bool metadata, bool conversion_error);
// `lowbit error ORIGINAL QUANTIZED` when either file is GGUF.
int RunErrorGguf(const std::string& original, const std::string& quantized);
// `lowbit dequantize IN.gguf OUT.safetensors [--dtype]`: ggml's exact values.
int RunDequantizeGguf(const std::string& input, const std::string& output,
                      const std::string& dtype, bool quiet);
// `lowbit quantize IN OUT.gguf --format q4_0|q8_0|f16|bf16|f32` and
// `lowbit quantize IN.gguf OUT.safetensors --format <lowbit format>`.
struct GgufQuantizeArgs {
  std::string input;
  std::string output;
  std::string format;
  std::vector<std::string> skip;
  std::string gguf_name;               // --gguf-name: general.name
  std::string gguf_arch;               // --gguf-arch: general.architecture
  std::vector<std::string> gguf_kv;    // --gguf-kv KEY=TYPE:VALUE
  int64_t block_size = 0;              // safetensors output only
  bool double_quant = false;           // safetensors output only
  int threads = 0;
  bool quiet = false;
};
int RunQuantizeToGguf(const GgufQuantizeArgs& args);
int RunQuantizeGgufToSafetensors(const GgufQuantizeArgs& args);

// Writes a Hugging Face config.json holding only {"quantization_config": {...}} for a
// bitsandbytes checkpoint of `format` (nf4/fp4: load_in_4bit; int8: load_in_8bit), with
// llm_int8_skip_modules = `skip_modules` (null when empty). Throws Error(kIoError).
void WriteBnbQuantizationConfig(const std::string& path, Format format, bool double_quant,
                                const std::vector<std::string>& skip_modules);

// A left/right aligned text table written to a FILE.
class Table {
 public:
  explicit Table(std::vector<std::string> headers);
  // `right_aligned` per column; default: first column left, the others right.
  void SetAlignment(std::vector<bool> right_aligned);
  void AddRow(std::vector<std::string> cells);
  void Print(std::FILE* out) const;

 private:
  std::vector<std::string> headers_;
  std::vector<bool> right_;
  std::vector<std::vector<std::string>> rows_;
};

// printf into a std::string.
std::string Fmt(const char* format, ...) __attribute__((format(printf, 1, 2)));
// "1.23 MiB", "512 B".
std::string HumanBytes(int64_t bytes);

// Progress of a multi-item job: a redrawn bar on stderr when it is a terminal, one plain line
// per item on stdout otherwise (logs, pipes, tests). Not thread-safe.
class Progress {
 public:
  Progress(int64_t total_items, bool quiet);
  ~Progress();
  // Reports that item `name` finished; `detail` is appended to the plain line.
  void Step(const std::string& name, const std::string& detail);
  void Finish();

 private:
  int64_t total_;
  int64_t done_ = 0;
  bool quiet_;
  bool tty_;
  bool finished_ = false;
};

}  // namespace lowbit::cli

#endif  // LOWBIT_TOOLS_CLI_H_
