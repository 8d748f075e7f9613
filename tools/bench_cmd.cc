// tools/bench_cmd.cc — `lowbit bench`: runs the lowbit_bench binary (Google Benchmark) on its key
// cases and prints one table: time, throughput and speed-up over Eigen f32 per format.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "lowbit/status.h"

namespace lowbit::cli {
namespace {

// Presets of Google Benchmark filters (names: bench/lowbit_bench.cc).
// quick: hot-cache 4096x4096 GEMV and M=32 GEMM with f32 activations on one thread, and the
//   codecs: a few seconds, no large allocations.
// key: bench/summarize.py's QUICK_FILTER — adds the DRAM roofline (1 GiB) and DRAM-bound
//   `stream` GEMV sets (>= 512 MiB); takes minutes.
constexpr const char* kQuickFilter =
    "BM_Gemv/[^/]+/f32/4096x4096/threads:1|BM_Gemm/[^/]+/f32/M32/4096x4096/threads:1|"
    "BM_(Quantize|Dequantize)/";
constexpr const char* kKeyFilter =
    "BM_MemRead|BM_Gemv/.*/(stream|4096x4096)/|BM_Gemm/.*/M32/|BM_(Quantize|Dequantize)/";

struct BenchOptions {
  std::string binary;
  std::string preset = "quick";
  std::string filter;
  double min_time = 0.2;
  int repetitions = 1;
  std::string json_out;
  bool verbose = false;
};

// The lowbit_bench binary: --bench-binary, $LOWBIT_BENCH, next to this executable in a build
// tree (<build>/tools/lowbit -> <build>/bench/lowbit_bench) or installed side by side, else "".
std::string FindBenchBinary(const std::string& explicit_path) {
  if (!explicit_path.empty()) return explicit_path;
  if (const char* env = std::getenv("LOWBIT_BENCH"); env != nullptr && *env != '\0') return env;
  char self[4096];
  const ssize_t len = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (len > 0) {
    self[len] = '\0';
    std::string dir(self);
    dir = dir.substr(0, dir.find_last_of('/'));
    for (const std::string& candidate :
         {dir + "/../bench/lowbit_bench", dir + "/lowbit_bench", dir + "/lowbit-bench"}) {
      if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
  }
  return "";
}

// Runs `argv` with its stdout sent to our stderr (progress) or /dev/null; returns the exit status.
int RunChild(const std::vector<std::string>& argv, bool verbose) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw Error(Status::kIoError, std::string("fork failed: ") + std::strerror(errno));
  if (pid == 0) {
    const int null_fd = ::open("/dev/null", O_WRONLY);
    if (verbose) {
      ::dup2(STDERR_FILENO, STDOUT_FILENO);
    } else if (null_fd >= 0) {
      ::dup2(null_fd, STDOUT_FILENO);
    }
    ::execv(args[0], args.data());
    std::fprintf(stderr, "cannot execute '%s': %s\n", args[0], std::strerror(errno));
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw Error(Status::kIoError, "waitpid failed");
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

struct Result {
  double seconds = 0;
  double bytes_per_second = 0;  // 0 when absent
  double flops = 0;             // 0 when absent
};

double TimeScale(const std::string& unit) {
  if (unit == "ns") return 1e-9;
  if (unit == "us") return 1e-6;
  if (unit == "ms") return 1e-3;
  if (unit == "s") return 1.0;
  throw Error(Status::kCorruptData, "benchmark JSON: unknown time_unit '" + unit + "'");
}

// Base name without Google Benchmark's "/real_time" and aggregate suffixes.
std::string BaseName(std::string name) {
  for (const char* suffix : {"_mean", "_median", "_stddev", "_cv"}) {
    const size_t n = std::strlen(suffix);
    if (name.size() > n && name.compare(name.size() - n, n, suffix) == 0) name.resize(name.size() - n);
  }
  for (const char* suffix : {"/real_time", "/manual_time"}) {
    const size_t n = std::strlen(suffix);
    if (name.size() > n && name.compare(name.size() - n, n, suffix) == 0) name.resize(name.size() - n);
  }
  return name;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Per benchmark: the median aggregate when present, else the median over its runs. Order of
// first appearance is kept.
std::vector<std::pair<std::string, Result>> Collect(const nlohmann::json& doc) {
  if (!doc.is_object() || !doc.contains("benchmarks") || !doc["benchmarks"].is_array()) {
    throw Error(Status::kCorruptData, "benchmark JSON has no \"benchmarks\" array");
  }
  std::vector<std::string> order;
  std::map<std::string, std::vector<Result>> runs;
  std::map<std::string, Result> medians;
  for (const nlohmann::json& b : doc["benchmarks"]) {
    if (!b.is_object() || b.value("error_occurred", false)) continue;
    const std::string name = BaseName(b.value("run_name", b.value("name", std::string())));
    if (name.empty() || !b.contains("real_time") || !b["real_time"].is_number()) {
      throw Error(Status::kCorruptData, "benchmark JSON: an entry lacks name or real_time");
    }
    Result r;
    r.seconds = b["real_time"].get<double>() * TimeScale(b.value("time_unit", std::string("ns")));
    if (b.contains("bytes_per_second") && b["bytes_per_second"].is_number()) {
      r.bytes_per_second = b["bytes_per_second"].get<double>();
    }
    if (b.contains("FLOP/s") && b["FLOP/s"].is_number()) r.flops = b["FLOP/s"].get<double>();
    if (!runs.count(name) && !medians.count(name)) order.push_back(name);
    if (b.value("run_type", std::string("iteration")) == "aggregate") {
      if (b.value("aggregate_name", std::string()) == "median") medians[name] = r;
    } else {
      runs[name].push_back(r);
    }
  }
  std::vector<std::pair<std::string, Result>> out;
  for (const std::string& name : order) {
    if (medians.count(name)) {
      out.emplace_back(name, medians[name]);
      continue;
    }
    std::vector<double> s, bps, fl;
    for (const Result& r : runs[name]) {
      s.push_back(r.seconds);
      bps.push_back(r.bytes_per_second);
      fl.push_back(r.flops);
    }
    out.emplace_back(name, Result{Median(s), Median(bps), Median(fl)});
  }
  return out;
}

struct Row {
  std::string op, format, act, shape, threads;
  Result r;
};

// Splits "BM_Gemv/nf4/f32/4096x4096/threads:1" (and BM_GemvCApi/...) etc. into columns;
// unknown names keep the whole name in `op`.
Row ParseName(const std::string& name, const Result& r) {
  static const std::regex kMemRead(R"(^BM_MemRead/(\d+)/threads:(\d+)$)");
  static const std::regex kGemv(
      R"(^BM_(Gemv|GemvCApi)/([^/]+)/([^/]+)/([^/]+)/threads:(\d+)$)");
  static const std::regex kGemm(R"(^BM_Gemm/([^/]+)/([^/]+)/M(\d+)/([^/]+)/threads:(\d+)$)");
  static const std::regex kCodec(R"(^BM_(Quantize|Dequantize)/([^/]+)$)");
  std::smatch m;
  Row row;
  row.r = r;
  if (std::regex_match(name, m, kMemRead)) {
    row = {"MemRead", "-", "-", m[1].str() + " MiB", m[2].str(), r};
  } else if (std::regex_match(name, m, kGemv)) {
    row = {m[1], m[2], m[3], m[4], m[5], r};  // GemvCApi: the same GEMV through the C ABI
  } else if (std::regex_match(name, m, kGemm)) {
    row = {"Gemm", m[1], m[2], "M" + m[3].str() + " " + m[4].str(), m[5], r};
  } else if (std::regex_match(name, m, kCodec)) {
    row = {m[1], m[2], "f32", "4096x4096", "1", r};
  } else {
    row.op = name;
  }
  return row;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(Status::kIoError, "cannot read '" + path + "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int RunBench(const BenchOptions& o) {
  std::string filter = o.filter;
  if (filter.empty()) {
    if (o.preset == "quick") {
      filter = kQuickFilter;
    } else if (o.preset == "key") {
      filter = kKeyFilter;
    } else {
      throw UsageError("--preset must be quick or key, got '" + o.preset + "'");
    }
  }
  if (!(o.min_time > 0)) throw UsageError("--min-time must be positive");
  if (o.repetitions < 1) throw UsageError("--repetitions must be >= 1");
  const std::string binary = FindBenchBinary(o.binary);
  if (binary.empty()) {
    throw Error(Status::kIoError,
                "cannot find the lowbit_bench binary (build the lowbit_bench target, or pass "
                "--bench-binary PATH or set LOWBIT_BENCH)");
  }
  if (::access(binary.c_str(), X_OK) != 0) {
    throw Error(Status::kIoError, "benchmark binary '" + binary + "' is not executable: " +
                                      std::strerror(errno));
  }

  std::string json_path = o.json_out;
  bool remove_json = false;
  if (json_path.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/lowbit-bench-XXXXXX";
    const int fd = ::mkstemp(templ.data());
    if (fd < 0) throw Error(Status::kIoError, "cannot create a temporary file in " + templ);
    ::close(fd);
    json_path = templ;
    remove_json = true;
  }
  struct Cleanup {
    std::string path;
    bool active;
    ~Cleanup() {
      if (active) ::unlink(path.c_str());
    }
  } cleanup{json_path, remove_json};

  std::vector<std::string> argv = {binary, "--benchmark_filter=" + filter,
                                   "--benchmark_min_time=" + Fmt("%g", o.min_time),
                                   "--benchmark_out=" + json_path,
                                   "--benchmark_out_format=json"};
  if (o.repetitions > 1) {
    argv.push_back("--benchmark_repetitions=" + std::to_string(o.repetitions));
    argv.push_back("--benchmark_report_aggregates_only=true");
  }
  std::fprintf(stderr, "running %s --benchmark_filter='%s' ...\n", binary.c_str(), filter.c_str());
  const int rc = RunChild(argv, o.verbose);
  if (rc != 0) {
    throw Error(Status::kIoError, Fmt("benchmark binary '%s' exited with status %d", binary.c_str(), rc));
  }
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(ReadFile(json_path));
  } catch (const nlohmann::json::exception& e) {
    throw Error(Status::kCorruptData, "benchmark output '" + json_path + "' is not JSON: " + e.what());
  }
  const auto results = Collect(doc);
  if (results.empty()) {
    throw Error(Status::kInvalidArgument, "no benchmark matched the filter '" + filter + "'");
  }

  std::vector<Row> rows;
  for (const auto& [name, r] : results) rows.push_back(ParseName(name, r));
  // Eigen f32 baseline per (op, shape, threads), for the speed-up column.
  std::map<std::string, double> eigen;
  for (const Row& row : rows) {
    if (row.format == "f32_eigen") eigen[row.op + "|" + row.shape + "|" + row.threads] = row.r.seconds;
  }
  Table table({"op", "format", "act", "shape", "threads", "time", "throughput", "vs f32_eigen"});
  for (const Row& row : rows) {
    std::string speed = "-";
    if (row.r.flops > 0) {
      speed = Fmt("%.1f GFLOP/s", row.r.flops / 1e9);
    } else if (row.r.bytes_per_second > 0) {
      speed = Fmt("%.2f GB/s", row.r.bytes_per_second / 1e9);
    }
    std::string ratio;
    const auto it = eigen.find(row.op + "|" + row.shape + "|" + row.threads);
    if (it != eigen.end() && row.format != "f32_eigen" && row.r.seconds > 0) {
      ratio = Fmt("%.2fx", it->second / row.r.seconds);
    }
    const double ms = row.r.seconds * 1e3;
    table.AddRow({row.op, row.format, row.act, row.shape, row.threads,
                  ms >= 1 ? Fmt("%.3f ms", ms) : Fmt("%.1f us", ms * 1e3), speed, ratio});
  }
  if (doc.contains("context") && doc["context"].is_object()) {
    const nlohmann::json& c = doc["context"];
    std::printf("host %s, %d CPUs, highway target %s, eigen %s%s\n",
                c.value("host_name", std::string("?")).c_str(), c.value("num_cpus", 0),
                c.value("highway_target", std::string("?")).c_str(),
                c.value("eigen_isa", std::string("?")).c_str(),
                o.repetitions > 1 ? Fmt(", median of %d", o.repetitions).c_str() : "");
  }
  table.Print(stdout);
  return kExitOk;
}

}  // namespace

Subcommand AddBenchCommand(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  CLI::App* sub = app.add_subcommand(
      "bench", "Run lowbit_bench's key cases (GEMV/GEMM per format vs Eigen f32, codecs); print "
               "a table.");
  sub->add_option("--bench-binary", o->binary,
                  "lowbit_bench executable (default: $LOWBIT_BENCH, else next to lowbit in the "
                  "build tree)");
  sub->add_option("--preset", o->preset,
                  "quick: 4096x4096 GEMV + M=32 GEMM on 1 thread and the codecs (seconds); key: "
                  "also the 1 GiB DRAM roofline and DRAM-bound GEMV (minutes)")
      ->capture_default_str();
  sub->add_option("--filter", o->filter, "Google Benchmark regex; overrides --preset");
  sub->add_option("--min-time", o->min_time, "seconds per benchmark (--benchmark_min_time)")
      ->capture_default_str();
  sub->add_option("--repetitions", o->repetitions, "repetitions; the table shows the median")
      ->capture_default_str();
  sub->add_option("--json", o->json_out, "also keep Google Benchmark's JSON output here");
  sub->add_flag("-v,--verbose", o->verbose, "show the benchmark binary's own output on stderr");
  return {sub, [o] { return RunBench(*o); }};
}

}  // namespace lowbit::cli
