// tests/cli_test.cc — the `lowbit` command line, run as a subprocess on small temporary
// safetensors files: every subcommand's output checked against the C++ API computed in-process
// (independent of the CLI's streaming path), exit codes and messages for bad input, --help,
// atomic output, and the peak memory of a streaming quantize.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "lowbit/convert.h"
#include "lowbit/codecs/ggml.h"
#include "lowbit/io/checkpoint.h"
#include "lowbit/io/gguf.h"
#include "lowbit/io/safetensors.h"
#include "lowbit/quantize.h"
#include "cli_test_util.h"

namespace lowbit {
namespace {

using testing::CliResult;
using testing::ReadText;

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

class CliTest : public testing::TempDirTest {
 protected:
  CliTest() : TempDirTest("lowbit_cli_test_") {}

  // Runs the lowbit binary with `args` (stdin /dev/null, stdout/stderr captured via files).
  CliResult Run(const std::vector<std::string>& args) const {
    return testing::RunProgram(LOWBIT_CLI_PATH, args, Path(".stdout"), Path(".stderr"));
  }
};

std::vector<float> RandomWeights(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<float> w(static_cast<size_t>(n));
  for (float& v : w) v = normal(rng);
  w[static_cast<size_t>(n / 3)] = 0.7f;
  return w;
}

// A small Llama-like checkpoint: two linear weights (f32 and bf16), an embedding, lm_head, a
// norm (1-D) and an int64 buffer.
struct SmallModel {
  std::vector<float> up, embed, head, norm;
  std::vector<uint16_t> down_bf16;
  std::vector<int64_t> ids = {1, 2, 3, 4};
};

SmallModel WriteSmallModel(const std::string& path) {
  SmallModel m;
  m.up = RandomWeights(96 * 128, 1);
  const std::vector<float> down = RandomWeights(128 * 96, 2);
  m.down_bf16.resize(down.size());
  FromF32(down.data(), static_cast<int64_t>(down.size()), m.down_bf16.data(), DType::kBF16);
  m.embed = RandomWeights(32 * 128, 3);
  m.head = RandomWeights(32 * 128, 4);
  m.norm.assign(128, 1.0f);
  io::SaveSafetensors(path,
                      {{"model.embed_tokens.weight", {m.embed.data(), DType::kF32, {32, 128}}},
                       {"model.layers.0.mlp.up_proj.weight", {m.up.data(), DType::kF32, {96, 128}}},
                       {"model.layers.0.mlp.down_proj.weight",
                        {m.down_bf16.data(), DType::kBF16, {128, 96}}},
                       {"model.norm.weight", {m.norm.data(), DType::kF32, {128}}},
                       {"lm_head.weight", {m.head.data(), DType::kF32, {32, 128}}},
                       {"ids", {m.ids.data(), DType::kI64, {4}}}},
                      {{"origin", "cli_test"}});
  return m;
}

void ExpectSameFloats(const std::vector<float>& a, const std::vector<float>& b) {
  ASSERT_EQ(a.size(), b.size());
  if (a.empty()) return;
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
}

// ---- help, usage errors --------------------------------------------------------------------------

TEST_F(CliTest, HelpOnEverySubcommand) {
  const CliResult top = Run({"--help"});
  EXPECT_EQ(top.exit_code, 0);
  for (const char* sub : {"report", "quantize", "dequantize", "inspect", "error", "convert",
                          "bench"}) {
    SCOPED_TRACE(sub);
    EXPECT_NE(top.out.find(sub), std::string::npos);
    const CliResult r = Run({sub, "--help"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("Usage:"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(std::string("lowbit ") + sub), std::string::npos) << r.out;
  }
  const CliResult v = Run({"--version"});
  EXPECT_EQ(v.exit_code, 0);
  EXPECT_NE(v.out.find("lowbit 0.1.0"), std::string::npos);
}

TEST_F(CliTest, UsageErrorsExitWithTwo) {
  const std::string model = Path("m.safetensors");
  WriteSmallModel(model);
  struct Case {
    std::vector<std::string> args;
    const char* message;
  };
  const std::vector<Case> cases = {
      {{}, "A subcommand is required"},
      {{"frobnicate"}, "unknown command 'frobnicate' (commands: report, quantize"},
      {{"quantize", model}, "output is required"},
      {{"quantize", model, Path("o.safetensors")}, "--format is required"},
      {{"quantize", model, Path("o.safetensors"), "-f", "nf5"}, "unknown format 'nf5'"},
      {{"quantize", model, Path("o.safetensors"), "-f", "nf4", "--blocksize", "-4"}, "blocksize"},
      {{"quantize", model, Path("o.safetensors"), "-f", "nf4", "--blocksize", "100"}, "100"},
      {{"quantize", model, Path("o.safetensors"), "-f", "int4", "--config-json", Path("c.json")},
       "--config-json needs a bitsandbytes format"},
      {{"quantize", model, Path("o.safetensors"), "-f", "nf4", "--bogus"}, "--bogus"},
      {{"dequantize", model, Path("o.safetensors"), "--dtype", "i8"}, "--dtype must be f32"},
      {{"convert", model, Path("o.safetensors"), "-t", "int3"}, "--quant-type must be"},
      {{"convert", model, Path("o.safetensors"), "-t", "int8", "--double-quant"},
       "--double-quant applies to nf4 and fp4"},
      {{"bench", "--preset", "slow"}, "--preset must be quick or key"},
  };
  for (const Case& c : cases) {
    std::string joined;
    for (const std::string& a : c.args) joined += a + " ";
    SCOPED_TRACE(joined);
    const CliResult r = Run(c.args);
    EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << r.err;
  }
  EXPECT_FALSE(Exists(Path("o.safetensors")));
  EXPECT_FALSE(Exists(Path("c.json")));
}

TEST_F(CliTest, FileErrorsExitWithOneAndLeaveNoOutput) {
  const std::string model = Path("m.safetensors");
  WriteSmallModel(model);
  // Missing input.
  CliResult r = Run({"quantize", Path("missing.safetensors"), Path("o.safetensors"), "-f", "nf4"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("lowbit quantize: error: io_error"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("missing.safetensors"), std::string::npos) << r.err;
  // Corrupt input: header length beyond the file.
  {
    std::ofstream f(Path("bad.safetensors"), std::ios::binary);
    const uint64_t len = 1 << 20;
    f.write(reinterpret_cast<const char*>(&len), 8);
    f << "{}";
  }
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"inspect", Path("bad.safetensors")},
        std::vector<std::string>{"quantize", Path("bad.safetensors"), Path("o.safetensors"), "-f",
                                 "nf4"},
        std::vector<std::string>{"dequantize", Path("bad.safetensors"), Path("o.safetensors")},
        std::vector<std::string>{"convert", Path("bad.safetensors"), Path("o.safetensors"), "-t",
                                 "nf4"},
        std::vector<std::string>{"error", model, Path("bad.safetensors")}}) {
    SCOPED_TRACE(args[0]);
    r = Run(args);
    EXPECT_EQ(r.exit_code, 1) << r.out;
    EXPECT_NE(r.err.find("corrupt_data"), std::string::npos) << r.err;
  }
  // Unwritable output directory.
  r = Run({"quantize", model, Path("no/such/dir/o.safetensors"), "-f", "nf4"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("io_error"), std::string::npos) << r.err;
  // Only the inputs remain: no output, no temporaries.
  EXPECT_EQ(ListDir(), (std::vector<std::string>{"bad.safetensors", "m.safetensors"}));
}

// ---- quantize / dequantize ---------------------------------------------------------------------

TEST_F(CliTest, QuantizeEveryFormatMatchesTheLibraryAndRoundTrips) {
  const std::string model = Path("m.safetensors");
  const SmallModel m = WriteSmallModel(model);
  const io::SafetensorsFile in = io::SafetensorsFile::Open(model);
  for (const char* name : {"nf4", "fp4", "int8", "int8_asym", "int4", "int4_asym", "fp8_e4m3",
                           "fp8_e5m2", "blockwise8", "bf16"}) {
    SCOPED_TRACE(name);
    const Format format = FormatFromName(name);
    const std::string q = Path(std::string("q_") + name + ".safetensors");
    const CliResult r = Run({"quantize", model, q, "--format", name, "--skip", "lm_head",
                             "--threads", "2"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    // Not a terminal: one plain progress line per tensor, then the summary.
    EXPECT_NE(r.out.find("[1/6]"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("3 tensors quantized"), std::string::npos) << r.out;

    const io::SafetensorsFile out = io::SafetensorsFile::Open(q);
    // Quantized weights equal the library's Quantize of the same tensor.
    for (const char* weight : {"model.layers.0.mlp.up_proj.weight",
                               "model.layers.0.mlp.down_proj.weight",
                               "model.embed_tokens.weight"}) {
      SCOPED_TRACE(weight);
      const io::TensorInfo& t = in.Get(weight);
      const QuantizedTensor expected = Quantize(format, in.View(t));
      const std::string prefix = std::string(weight).substr(0, std::strlen(weight) - 6);
      const QuantizedTensor got = io::LoadQuantizedTensor(out, prefix);
      EXPECT_EQ(got.data, expected.data);
      // The original dtype survives, except where the layout cannot store it: LLM.int8 files
      // load as f16 (bitsandbytes' Int8Params), a dense bf16 weight is just bf16.
      const DType original = format == Format::kInt8   ? DType::kF16
                             : format == Format::kBF16 ? DType::kBF16
                                                       : t.dtype;
      EXPECT_EQ(got.state.dtype, original);
      ExpectSameFloats(DequantizeToF32(got), DequantizeToF32(expected));
    }
    // Everything else is copied byte for byte.
    for (const char* copied : {"lm_head.weight", "model.norm.weight", "ids"}) {
      const io::TensorInfo& a = in.Get(copied);
      const io::TensorInfo& b = out.Get(copied);
      EXPECT_EQ(a.dtype, b.dtype);
      EXPECT_EQ(a.shape, b.shape);
      EXPECT_EQ(std::memcmp(in.data(a), out.data(b), a.size), 0) << copied;
    }
    EXPECT_EQ(out.metadata().at("origin"), "cli_test");

    // Dequantize: each weight back in its stored original dtype, bit-equal to the library's
    // Dequantize of the loaded tensor into that dtype.
    const std::string d = Path(std::string("d_") + name + ".safetensors");
    const CliResult dr = Run({"dequantize", q, d});
    ASSERT_EQ(dr.exit_code, 0) << dr.err;
    const io::SafetensorsFile back = io::SafetensorsFile::Open(d);
    EXPECT_EQ(back.tensors().size(), in.tensors().size());
    for (const char* prefix : {"model.layers.0.mlp.up_proj.", "model.layers.0.mlp.down_proj."}) {
      SCOPED_TRACE(prefix);
      const QuantizedTensor loaded = io::LoadQuantizedTensor(out, prefix);
      const io::TensorInfo& t = back.Get(std::string(prefix) + "weight");
      EXPECT_EQ(t.dtype, loaded.state.dtype);
      std::vector<uint8_t> expected(t.size);
      Dequantize(loaded, TensorView{expected.data(), t.dtype, loaded.state.shape});
      EXPECT_EQ(std::memcmp(back.data(t), expected.data(), t.size), 0);
    }
    // --dtype f32 forces float32 everywhere.
    ASSERT_EQ(Run({"dequantize", q, d, "--dtype", "f32", "-q"}).exit_code, 0);
    const io::SafetensorsFile back32 = io::SafetensorsFile::Open(d);
    const io::TensorInfo& down32 = back32.Get("model.layers.0.mlp.down_proj.weight");
    EXPECT_EQ(down32.dtype, DType::kF32);
    ExpectSameFloats(back32.CopyAsF32(down32),
                     DequantizeToF32(io::LoadQuantizedTensor(out, "model.layers.0.mlp.down_proj.")));
    std::remove(q.c_str());
    std::remove(d.c_str());
  }
}

TEST_F(CliTest, ProgressBarOnATerminal) {
  const std::string model = Path("m.safetensors");
  WriteSmallModel(model);
  // stderr is a pseudo-terminal: the tool draws a redrawn bar there instead of plain lines.
  const int master = ::posix_openpt(O_RDWR | O_NOCTTY);
  ASSERT_GE(master, 0);
  ASSERT_EQ(::grantpt(master), 0);
  ASSERT_EQ(::unlockpt(master), 0);
  const std::string slave_name = ::ptsname(master);
  const std::string out_path = Path(".stdout");
  std::string argv0 = LOWBIT_CLI_PATH, sub = "quantize", q = Path("q.safetensors"), f = "-f",
              fmt = "nf4";
  std::string in = model;
  char* argv[] = {argv0.data(), sub.data(), in.data(), q.data(), f.data(), fmt.data(), nullptr};
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int slave = ::open(slave_name.c_str(), O_RDWR | O_NOCTTY);
    const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(out, 1);
    ::dup2(slave, 2);
    ::execv(argv[0], argv);
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  std::string tty;
  ::fcntl(master, F_SETFL, O_NONBLOCK);
  char buf[4096];
  for (ssize_t n; (n = ::read(master, buf, sizeof(buf))) > 0;) tty.append(buf, static_cast<size_t>(n));
  ::close(master);
  EXPECT_NE(tty.find("\r\033[K["), std::string::npos) << tty;
  EXPECT_NE(tty.find("] 6/6 "), std::string::npos) << tty;
  EXPECT_NE(tty.find("##############################"), std::string::npos) << tty;
  const std::string out = ReadText(out_path);
  EXPECT_EQ(out.find("[1/6]"), std::string::npos) << out;  // no plain lines on stdout
  EXPECT_NE(out.find("wrote "), std::string::npos) << out;
}

TEST_F(CliTest, QuantizeOptionsBlockSizeDoubleQuantAndConfigJson) {
  const std::string model = Path("m.safetensors");
  WriteSmallModel(model);
  const std::string q = Path("q.safetensors");
  const CliResult r = Run({"quantize", model, q, "-f", "nf4", "-b", "128", "--double-quant",
                           "--skip", "*embed*", "--skip", "lm_head", "-q", "--config-json",
                           Path("config.json")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.find("[1/6]"), std::string::npos);  // --quiet
  const io::SafetensorsFile in = io::SafetensorsFile::Open(model);
  const io::SafetensorsFile out = io::SafetensorsFile::Open(q);
  QuantizeOptions o;
  o.block_size = 128;
  o.double_quant = true;
  const QuantizedTensor expected =
      Quantize(Format::kNF4, in.View(in.Get("model.layers.0.mlp.up_proj.weight")), o);
  const QuantizedTensor got = io::LoadQuantizedTensor(out, "model.layers.0.mlp.up_proj.");
  EXPECT_EQ(got.data, expected.data);
  ASSERT_TRUE(got.state.nested.has_value());
  EXPECT_EQ(got.state.block_size, 128);
  ExpectSameFloats(DequantizeToF32(got), DequantizeToF32(expected));
  // bitsandbytes keys, embeddings skipped by the glob.
  EXPECT_TRUE(out.Contains("model.layers.0.mlp.up_proj.weight.quant_state.bitsandbytes__nf4"));
  EXPECT_TRUE(out.Contains("model.layers.0.mlp.up_proj.weight.nested_absmax"));
  EXPECT_EQ(out.Get("model.embed_tokens.weight").dtype, DType::kF32);
  const nlohmann::json config = nlohmann::json::parse(ReadText(Path("config.json")));
  const nlohmann::json& qc = config.at("quantization_config");
  EXPECT_EQ(qc.at("quant_method"), "bitsandbytes");
  EXPECT_EQ(qc.at("load_in_4bit"), true);
  EXPECT_EQ(qc.at("bnb_4bit_quant_type"), "nf4");
  EXPECT_EQ(qc.at("bnb_4bit_use_double_quant"), true);

  // Quantizing an already quantized file is refused.
  const CliResult again = Run({"quantize", q, Path("qq.safetensors"), "-f", "int8"});
  EXPECT_EQ(again.exit_code, 2);
  EXPECT_NE(again.err.find("already quantized"), std::string::npos) << again.err;
}

// ---- inspect, error ------------------------------------------------------------------------------

TEST_F(CliTest, InspectListsFormatsShapesAndBits) {
  const std::string model = Path("m.safetensors");
  WriteSmallModel(model);
  const std::string q = Path("q.safetensors");
  ASSERT_EQ(Run({"quantize", model, q, "-f", "nf4", "--skip", "lm_head"}).exit_code, 0);
  const CliResult r = Run({"inspect", q, "--metadata"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("metadata origin = cli_test"), std::string::npos) << r.out;
  // The up_proj row: nf4 with block 64 in the bitsandbytes layout; bytes and bits/weight
  // computed here from the layout: 96*128/2 codes + 192 f32 absmax + 16 f32 quant_map + JSON.
  const io::SafetensorsFile out = io::SafetensorsFile::Open(q);
  int64_t bytes = 0;
  for (const io::TensorInfo& t : out.tensors()) {
    if (t.name.rfind("model.layers.0.mlp.up_proj.weight", 0) == 0) bytes += t.size;
  }
  EXPECT_EQ(bytes, 96 * 128 / 2 + 192 * 4 + 16 * 4 +
                       static_cast<int64_t>(
                           out.Get("model.layers.0.mlp.up_proj.weight.quant_state.bitsandbytes__nf4")
                               .size));
  std::istringstream lines(r.out);
  std::string line, up_line;
  while (std::getline(lines, line)) {
    if (line.rfind("model.layers.0.mlp.up_proj.weight ", 0) == 0) up_line = line;
  }
  ASSERT_FALSE(up_line.empty()) << r.out;
  char expected_bits[32];
  std::snprintf(expected_bits, sizeof(expected_bits), "%.3f", 8.0 * bytes / (96 * 128));
  for (const std::string& part : {std::string("nf4 b64"), std::string("bitsandbytes"),
                                  std::string("[96, 128]"), std::to_string(bytes),
                                  std::string(expected_bits)}) {
    EXPECT_NE(up_line.find(part), std::string::npos) << part << " in: " << up_line;
  }
  EXPECT_NE(r.out.find("lm_head.weight"), std::string::npos);
  EXPECT_NE(r.out.find("dense"), std::string::npos);
  // A plain file inspects too.
  EXPECT_EQ(Run({"inspect", model}).exit_code, 0);
}

TEST_F(CliTest, InspectAndDequantizeFilesFromAnotherWriter) {
  // fuzz/corpus seeds are written by fuzz/make_seeds.py (Python json + struct) in bitsandbytes'
  // layouts: the CLI must list and restore them like the library reads them.
  const std::string dir = std::string(LOWBIT_SOURCE_DIR) + "/fuzz/corpus/fuzz_safetensors/";
  for (const char* seed : {"bnb_nf4_nested", "bnb_fp4", "bnb_int8"}) {
    SCOPED_TRACE(seed);
    const std::string path = dir + seed;
    if (!Exists(path)) GTEST_SKIP() << path << " missing";
    const io::SafetensorsFile file = io::SafetensorsFile::Open(path);
    const CliResult r = Run({"inspect", path});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    int quantized = 0;
    for (const io::CheckpointEntry& e : io::ListQuantizedModules(file)) {
      if (e.layout != io::TensorLayout::kBitsandbytes) continue;
      ++quantized;
      std::istringstream lines(r.out);
      std::string line, row;
      while (std::getline(lines, line)) {
        if (line.rfind(e.name + " ", 0) == 0) row = line;
      }
      EXPECT_NE(row.find(e.format_name), std::string::npos) << r.out;
      EXPECT_NE(row.find("bitsandbytes"), std::string::npos) << r.out;
      EXPECT_NE(row.find(std::to_string(e.bytes)), std::string::npos) << r.out;
    }
    EXPECT_EQ(quantized, 1);
    const std::string out = Path("d.safetensors");
    const CliResult d = Run({"dequantize", path, out, "-q"});
    ASSERT_EQ(d.exit_code, 0) << d.err;
    const io::SafetensorsFile back = io::SafetensorsFile::Open(out);
    for (const io::CheckpointEntry& e : io::ListQuantizedModules(file)) {
      if (e.layout != io::TensorLayout::kBitsandbytes) continue;
      const QuantizedTensor q = io::LoadQuantizedTensor(file, e.prefix);
      const io::TensorInfo& t = back.Get(e.prefix + "weight");
      std::vector<uint8_t> expected(t.size);
      Dequantize(q, TensorView{expected.data(), t.dtype, q.state.shape});
      EXPECT_EQ(t.dtype, q.state.dtype);
      EXPECT_EQ(std::memcmp(back.data(t), expected.data(), t.size), 0);
    }
    std::remove(out.c_str());
  }
}

TEST_F(CliTest, ErrorStatsMatchEstimateError) {
  const std::string model = Path("m.safetensors");
  WriteSmallModel(model);
  const std::string q = Path("q.safetensors");
  ASSERT_EQ(Run({"quantize", model, q, "-f", "int4", "-q"}).exit_code, 0);
  const CliResult r = Run({"error", model, q});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const io::SafetensorsFile in = io::SafetensorsFile::Open(model);
  const io::SafetensorsFile out = io::SafetensorsFile::Open(q);
  const std::vector<float> a = in.CopyAsF32(in.Get("model.layers.0.mlp.up_proj.weight"));
  const std::vector<float> b =
      DequantizeToF32(io::LoadQuantizedTensor(out, "model.layers.0.mlp.up_proj."));
  const int64_t n = static_cast<int64_t>(a.size());
  const ErrorStats s = EstimateError({a.data(), DType::kF32, {n}}, {b.data(), DType::kF32, {n}});
  std::istringstream lines(r.out);
  std::string line, row;
  while (std::getline(lines, line)) {
    if (line.rfind("model.layers.0.mlp.up_proj.weight ", 0) == 0) row = line;
  }
  ASSERT_FALSE(row.empty()) << r.out;
  std::istringstream fields(row);
  std::vector<std::string> cols;
  for (std::string f; fields >> f;) cols.push_back(f);
  // name, "int4", "b128", "[96,", "128]", mean abs, max abs, rel L2, SNR
  ASSERT_EQ(cols.size(), 9u) << row;
  char expected[4][32];
  std::snprintf(expected[0], 32, "%.3e", s.mean_abs);
  std::snprintf(expected[1], 32, "%.3e", s.max_abs);
  std::snprintf(expected[2], 32, "%.3e", s.rel_l2);
  std::snprintf(expected[3], 32, "%.2f", s.snr_db);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(cols[5 + i], expected[i]) << row;
  EXPECT_NE(r.out.find("TOTAL"), std::string::npos);
  // Comparing against a file that lacks the tensor is an argument error.
  const std::string other = Path("other.safetensors");
  const float one = 1.0f;
  io::SaveSafetensors(other, {{"x", {&one, DType::kF32, {1}}}});
  const CliResult bad = Run({"error", other, q});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("has no tensor"), std::string::npos) << bad.err;
}

// ---- GGUF ----------------------------------------------------------------------------------------

// ggml-written reference files (tests/data/gguf/README.md).
const std::string kGgufData = std::string(LOWBIT_SOURCE_DIR) + "/tests/data/gguf/";

// The row of `name` in a table printed by the CLI, split on whitespace ({} when absent).
std::vector<std::string> TableRow(const std::string& out, const std::string& name) {
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(name + " ", 0) != 0) continue;
    std::istringstream fields(line);
    std::vector<std::string> cols;
    for (std::string f; fields >> f;) cols.push_back(f);
    return cols;
  }
  return {};
}

TEST_F(CliTest, GgufQuantizeWritesFilesByteIdenticalToGgml) {
  for (const char* type : {"q4_0", "q8_0", "f16", "bf16"}) {
    SCOPED_TRACE(type);
    const std::string out = Path(std::string(type) + ".gguf");
    const CliResult r = Run({"quantize", kGgufData + "source-f32.safetensors", out, "-f", type,
                             "--gguf-arch", "llama", "--gguf-name", "stories260K", "-q"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("(GGUF v3)"), std::string::npos) << r.out;
    EXPECT_EQ(testing::ReadFile(out), testing::ReadFile(kGgufData + "stories260K-" + type + ".gguf"))
        << "not byte-identical to ggml's file";
  }
}

TEST_F(CliTest, GgufInspectDequantizeAndErrorAgreeWithTheLibrary) {
  const std::string q4k = kGgufData + "stories260K-q4_K.gguf";
  CliResult r = Run({"inspect", q4k});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("GGUF v3, 49 tensors, 3 metadata keys, alignment 32"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("general.architecture (str) = \"llama\""), std::string::npos) << r.out;
  std::vector<std::string> row = TableRow(r.out, "synthetic.0.weight");
  // name, type, "[48,", "512]", bytes, bits/weight, "int4_asym", "g32", "rel", "L2", value
  ASSERT_EQ(row.size(), 11u) << r.out;
  EXPECT_EQ(row[1], "q4_K");
  EXPECT_EQ(row[4], std::to_string(48 * 512 / 256 * 144));
  EXPECT_EQ(row[5], "4.500");
  EXPECT_EQ(row[6] + " " + row[7], "int4_asym g32");
  const io::GgufFile f = io::GgufFile::Open(q4k);
  char expected[32];
  std::snprintf(expected, sizeof(expected), "%.3e",
                io::GgufConversionError(f, f.Get("synthetic.0.weight")).rel_l2);
  EXPECT_EQ(row[10], expected);
  r = Run({"inspect", kGgufData + "stories260K-q4_0.gguf", "-m"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  row = TableRow(r.out, "synthetic.0.weight");
  ASSERT_EQ(row.size(), 9u) << r.out;
  EXPECT_EQ(row[6] + " " + row[7] + " " + row[8], "int4 g32 exact");
  EXPECT_NE(r.out.find("general.alignment (u32) = 32"), std::string::npos) << r.out;

  // dequantize: ggml's own values, bit for bit.
  const std::string deq = Path("deq.safetensors");
  r = Run({"dequantize", q4k, deq, "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const io::SafetensorsFile mine = io::SafetensorsFile::Open(deq);
  const io::SafetensorsFile ref =
      io::SafetensorsFile::Open(kGgufData + "stories260K-q4_K.dequantized.safetensors");
  ASSERT_EQ(mine.tensors().size(), ref.tensors().size());
  for (const io::TensorInfo& t : ref.tensors()) {
    const io::TensorInfo& m = mine.Get(t.name);
    ASSERT_EQ(m.dtype, DType::kF32);
    ASSERT_EQ(m.shape, t.shape);
    EXPECT_EQ(std::memcmp(mine.data(m), ref.data(t), t.size), 0) << t.name;
  }
  EXPECT_EQ(mine.metadata().at("gguf.general.architecture"), "llama");

  // error: ggml's values against the float32 source.
  r = Run({"error", kGgufData + "source-f32.safetensors", q4k});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  row = TableRow(r.out, "synthetic.1.weight");
  ASSERT_EQ(row.size(), 11u) << r.out;  // name type [64, 512] 4 stats, int4_asym g32, vs ggml
  const io::SafetensorsFile src = io::SafetensorsFile::Open(kGgufData + "source-f32.safetensors");
  const std::vector<float> a = src.CopyAsF32(src.Get("synthetic.1.weight"));
  const std::vector<float> b = f.DequantizeToF32(f.Get("synthetic.1.weight"));
  const int64_t n = static_cast<int64_t>(a.size());
  const ErrorStats s = EstimateError({a.data(), DType::kF32, {n}}, {b.data(), DType::kF32, {n}});
  std::snprintf(expected, sizeof(expected), "%.3e", s.rel_l2);
  EXPECT_EQ(row[6], expected) << r.out;
  EXPECT_NE(r.out.find("TOTAL"), std::string::npos);
  EXPECT_EQ(TableRow(r.out, "norm.weight").size(), 0u);  // F32 tensors are not listed
}

TEST_F(CliTest, GgufMetadataPassesThroughAndInt4ExportsToQ4_0) {
  // A GGUF input (f16) requantized to q8_0: metadata kept, flags added, general.alignment last.
  const std::string out = Path("q8.gguf");
  CliResult r = Run({"quantize", kGgufData + "stories260K-f16.gguf", out, "-f", "q8_0",
                     "--gguf-kv", "llama.context_length=u32:512", "--gguf-kv", "x.flag=bool:true",
                     "--gguf-name", "renamed", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const io::GgufFile in = io::GgufFile::Open(kGgufData + "stories260K-f16.gguf");
  const io::GgufFile q8 = io::GgufFile::Open(out);
  ASSERT_EQ(q8.metadata().size(), 5u);
  EXPECT_EQ(q8.metadata()[0].value.AsString(), "llama");
  EXPECT_EQ(q8.metadata()[1].value.AsString(), "renamed");
  EXPECT_EQ(q8.metadata()[2].key, "llama.context_length");
  EXPECT_EQ(q8.metadata()[2].value.type, io::GgufValueType::kUint32);
  EXPECT_EQ(q8.metadata()[2].value.AsUint(), 512u);
  EXPECT_TRUE(q8.metadata()[3].value.AsBool());
  EXPECT_EQ(q8.metadata()[4].key, "general.alignment");
  const io::GgufTensorInfo& t = q8.Get("layers.0.attention.wq.weight");
  ASSERT_EQ(t.type, static_cast<uint32_t>(ggml::Type::kQ8_0));
  const std::vector<float> x = in.DequantizeToF32(in.Get(t.name));
  std::vector<uint8_t> expected(t.size);
  ggml::QuantizeRow(ggml::Type::kQ8_0, x.data(), static_cast<int64_t>(x.size()), expected.data());
  EXPECT_EQ(std::memcmp(q8.data(t), expected.data(), t.size), 0);
  EXPECT_EQ(q8.Get("layers.0.feed_forward.w2.weight").type, static_cast<uint32_t>(ggml::Type::kF16));
  EXPECT_EQ(q8.Get("norm.weight").type, static_cast<uint32_t>(ggml::Type::kF32));

  // lowbit int4 g32 (round-to-nearest here; GPTQ/AWQ output is the same format) -> q4_0.
  const std::string int4 = Path("int4.safetensors");
  ASSERT_EQ(Run({"quantize", kGgufData + "source-f32.safetensors", int4, "-f", "int4", "-b", "32",
                 "-q"}).exit_code, 0);
  const std::string q4 = Path("int4.gguf");
  r = Run({"quantize", int4, q4, "-f", "q4_0", "--gguf-arch", "llama"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("exported to q4_0 (only change: scales rounded to f16"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("int4 g32 -> q4_0: f16 scales, max rel scale change"), std::string::npos);
  const io::SafetensorsFile lb = io::SafetensorsFile::Open(int4);
  const io::GgufFile g = io::GgufFile::Open(q4);
  int exported = 0;
  for (const io::CheckpointEntry& e : io::ListQuantizedModules(lb)) {
    if (e.layout != io::TensorLayout::kLowbit) continue;
    const io::GgufTensorInfo& gt = g.Get(e.name);
    if (e.shape[1] % 32 != 0) {  // w2: rows of 172 are written as the exact f32 values
      ASSERT_EQ(gt.type, static_cast<uint32_t>(ggml::Type::kF32)) << e.name;
      const std::vector<float> v = DequantizeToF32(io::LoadQuantizedTensor(lb, e.prefix));
      EXPECT_EQ(std::memcmp(v.data(), g.data(gt), gt.size), 0) << e.name;
      continue;
    }
    ASSERT_EQ(gt.type, static_cast<uint32_t>(ggml::Type::kQ4_0)) << e.name;
    const std::vector<uint8_t> blocks = io::Int4ToQ4_0(io::LoadQuantizedTensor(lb, e.prefix));
    ASSERT_EQ(blocks.size(), gt.size);
    EXPECT_EQ(std::memcmp(blocks.data(), g.data(gt), gt.size), 0) << e.name;
    ++exported;
  }
  EXPECT_EQ(exported, 33);
  // Other group sizes cannot be q4_0.
  const std::string int4_128 = Path("int4_128.safetensors");
  ASSERT_EQ(Run({"quantize", kGgufData + "source-f32.safetensors", int4_128, "-f", "int4", "-q"})
                .exit_code, 0);
  r = Run({"quantize", int4_128, Path("bad.gguf"), "-f", "q4_0"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("only int4 with group size 32 exports"), std::string::npos) << r.err;

  // GGUF (f16) in, lowbit nf4 out: the same bytes as the library on ggml's values.
  const std::string nf4 = Path("nf4.safetensors");
  r = Run({"quantize", kGgufData + "stories260K-f16.gguf", nf4, "-f", "nf4", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const io::SafetensorsFile nf = io::SafetensorsFile::Open(nf4);
  const std::vector<float> w = in.DequantizeToF32(in.Get("synthetic.0.weight"));
  const QuantizedTensor lib = Quantize(Format::kNF4, {w.data(), DType::kF32, {48, 512}});
  EXPECT_EQ(io::LoadQuantizedTensor(nf, "synthetic.0.").data, lib.data);
  EXPECT_EQ(nf.metadata().at("gguf.general.name"), "stories260K");
  EXPECT_EQ(ListDir(), (std::vector<std::string>{"int4.gguf", "int4.safetensors",
                                                 "int4_128.safetensors", "nf4.safetensors",
                                                 "q8.gguf"}));
}

TEST_F(CliTest, GgufMisnamedFilesAndBadRequestsAreClearErrors) {
  const std::string gguf_bytes_as_st = Path("model.safetensors");
  const std::string st_bytes_as_gguf = Path("model.gguf");
  testing::WriteFile(gguf_bytes_as_st, testing::ReadFile(kGgufData + "stories260K-q4_0.gguf"));
  testing::WriteFile(st_bytes_as_gguf, testing::ReadFile(kGgufData + "source-f32.safetensors"));
  CliResult r = Run({"inspect", gguf_bytes_as_st});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("is a GGUF file"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("rename it to .gguf"), std::string::npos) << r.err;
  r = Run({"dequantize", st_bytes_as_gguf, Path("o.safetensors")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("holds a safetensors file"), std::string::npos) << r.err;
  r = Run({"error", kGgufData + "source-f32.safetensors", gguf_bytes_as_st});
  EXPECT_EQ(r.exit_code, 2);
  // A .gguf that is neither: corrupt data naming its first bytes.
  testing::WriteFile(Path("junk.gguf"), std::vector<uint8_t>(64, 'x'));
  r = Run({"inspect", Path("junk.gguf")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("not a GGUF file (first bytes 78787878"), std::string::npos) << r.err;
  const std::string src = kGgufData + "source-f32.safetensors";
  // Formats and flags that do not apply.
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"quantize", src, Path("o.gguf"), "-f", "nf4"},
        std::vector<std::string>{"quantize", src, Path("o.gguf"), "-f", "q4_0", "-b", "64"},
        std::vector<std::string>{"quantize", src, Path("o.gguf"), "-f", "q4_0", "--gguf-kv", "k=u8:300"},
        std::vector<std::string>{"quantize", src, Path("o.gguf"), "-f", "q4_0", "--gguf-kv", "nokind"},
        std::vector<std::string>{"quantize", src, Path("o.safetensors"), "-f", "nf4", "--gguf-name", "x"},
        std::vector<std::string>{"dequantize", kGgufData + "stories260K-q4_0.gguf", Path("o.gguf")},
        std::vector<std::string>{"quantize", kGgufData + "stories260K-q4_K.gguf", Path("o.gguf"),
                                 "-f", "q8_0"}}) {
    SCOPED_TRACE(args[1] + " " + args[2] + " " + args.back());
    r = Run(args);
    EXPECT_EQ(r.exit_code, 2) << r.err;
  }
  // Non-finite weights cannot be q4_0; nothing is written, the old file survives.
  std::vector<float> w(64 * 32, 0.01f);
  w[100] = std::nanf("");
  io::SaveSafetensors(Path("nan.safetensors"), {{"l.weight", {w.data(), DType::kF32, {64, 32}}}});
  testing::WriteFile(Path("keep.gguf"), {1, 2, 3});
  r = Run({"quantize", Path("nan.safetensors"), Path("keep.gguf"), "-f", "q4_0"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("non-finite value at flat index 100"), std::string::npos) << r.err;
  EXPECT_EQ(testing::ReadFile(Path("keep.gguf")), (std::vector<uint8_t>{1, 2, 3}));
  EXPECT_EQ(ListDir(), (std::vector<std::string>{"junk.gguf", "keep.gguf", "model.gguf",
                                                 "model.safetensors", "nan.safetensors"}));
}

// ---- convert -------------------------------------------------------------------------------------

TEST_F(CliTest, ConvertFollowsBitsAndBytesConfig) {
  const std::string model = Path("m.safetensors");
  WriteSmallModel(model);
  const std::string c = Path("c.safetensors");
  const CliResult r = Run({"convert", model, c, "-t", "fp4", "--double-quant", "--config-json",
                           Path("config.json")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // The library's Convert on the same input is the reference.
  BitsAndBytesConfig config;
  config.load_in_4bit = true;
  config.bnb_4bit_quant_type = "fp4";
  config.bnb_4bit_use_double_quant = true;
  const ModelWeights original = ModelWeights::FromSafetensors(model);
  const ModelWeights expected = Convert(original, config);
  EXPECT_EQ(expected.QuantizedNames(),
            (std::vector<std::string>{"model.layers.0.mlp.up_proj.weight",
                                      "model.layers.0.mlp.down_proj.weight"}));
  const io::SafetensorsFile out = io::SafetensorsFile::Open(c);
  for (const std::string& name : expected.QuantizedNames()) {
    const QuantizedTensor got = io::LoadQuantizedTensor(out, name.substr(0, name.size() - 6));
    EXPECT_EQ(got.data, expected.Get(name).quantized->data) << name;
    ExpectSameFloats(DequantizeToF32(got), DequantizeToF32(*expected.Get(name).quantized));
  }
  // lm_head (transformers' default skip) and the embedding stay dense.
  EXPECT_EQ(out.Get("lm_head.weight").dtype, DType::kF32);
  EXPECT_EQ(out.Get("model.embed_tokens.weight").dtype, DType::kF32);
  // The size report is the library's comparison.
  const SizeComparison size = CompareModelSizes(original, expected);
  char saved[64];
  std::snprintf(saved, sizeof(saved), "saved %.1f%%, %.2fx smaller", size.saved_percent,
                size.compression_ratio);
  EXPECT_NE(r.out.find(saved), std::string::npos) << saved << "\n" << r.out;
  EXPECT_NE(r.out.find("2 of 6 tensors quantized"), std::string::npos) << r.out;
  const nlohmann::json qc = nlohmann::json::parse(ReadText(Path("config.json"))).at("quantization_config");
  EXPECT_EQ(qc.at("bnb_4bit_quant_type"), "fp4");
  EXPECT_EQ(qc.at("llm_int8_skip_modules"), nlohmann::json::array({"lm_head"}));

  // int4 with a skip list: lowbit layout, skipped module dense.
  const CliResult r4 = Run({"convert", model, c, "-t", "int4", "-b", "32", "--skip-modules",
                            "down_proj", "-q"});
  ASSERT_EQ(r4.exit_code, 0) << r4.err;
  const io::SafetensorsFile out4 = io::SafetensorsFile::Open(c);
  EXPECT_TRUE(out4.Contains("model.layers.0.mlp.up_proj.weight.lowbit_state"));
  EXPECT_EQ(out4.Get("model.layers.0.mlp.down_proj.weight").dtype, DType::kBF16);
  // An explicit skip list replaces the lm_head default (as llm_int8_skip_modules does).
  EXPECT_TRUE(out4.Contains("lm_head.weight.lowbit_state"));
  const QuantizedTensor up = io::LoadQuantizedTensor(out4, "model.layers.0.mlp.up_proj.");
  EXPECT_EQ(up.format(), Format::kInt4);
  EXPECT_EQ(up.state.block_size, 32);
}

// ---- bench ---------------------------------------------------------------------------------------

TEST_F(CliTest, BenchParsesGoogleBenchmarkJson) {
  // A stand-in for lowbit_bench: writes canned Google Benchmark JSON to --benchmark_out.
  const std::string json =
      R"({"context": {"host_name": "h", "num_cpus": 2, "highway_target": "AVX2", "eigen_isa": "avx2"},
          "benchmarks": [
        {"name": "BM_Gemv/f32_eigen/f32/4096x4096/threads:1/real_time", "run_type": "iteration",
         "real_time": 4000.0, "time_unit": "us", "bytes_per_second": 16.0e9},
        {"name": "BM_Gemv/nf4/f32/4096x4096/threads:1/real_time", "run_type": "iteration",
         "real_time": 1000.0, "time_unit": "us", "bytes_per_second": 9.0e9},
        {"name": "BM_Gemm/nf4/f32/M32/4096x4096/threads:1/real_time", "run_type": "iteration",
         "real_time": 25.0, "time_unit": "ms", "FLOP/s": 43.0e9},
        {"name": "BM_Quantize/int8/real_time", "run_type": "iteration",
         "real_time": 50.0, "time_unit": "ms", "bytes_per_second": 1.25e9}]})";
  std::ofstream(Path("canned.json")) << json;
  const std::string script = Path("fake_bench.sh");
  {
    std::ofstream s(script);
    s << "#!/bin/sh\nfor a in \"$@\"; do case \"$a\" in --benchmark_out=*) cp '"
      << Path("canned.json") << "' \"${a#--benchmark_out=}\";; esac; done\n";
  }
  ::chmod(script.c_str(), 0755);
  const CliResult r = Run({"bench", "--bench-binary", script});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream lines(r.out);
  std::string line, gemv;
  while (std::getline(lines, line)) {
    if (line.find("Gemv") == 0 && line.find("nf4") != std::string::npos) gemv = line;
  }
  EXPECT_NE(gemv.find("1.000 ms"), std::string::npos) << r.out;
  EXPECT_NE(gemv.find("9.00 GB/s"), std::string::npos) << r.out;
  EXPECT_NE(gemv.find("4.00x"), std::string::npos) << r.out;  // 4000 us / 1000 us
  EXPECT_NE(r.out.find("43.0 GFLOP/s"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("highway target AVX2"), std::string::npos) << r.out;

  // A failing benchmark binary and a missing one are runtime errors.
  {
    std::ofstream s(script, std::ios::trunc);
    s << "#!/bin/sh\nexit 3\n";
  }
  CliResult bad = Run({"bench", "--bench-binary", script});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("exited with status 3"), std::string::npos) << bad.err;
  bad = Run({"bench", "--bench-binary", Path("nope")});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("not executable"), std::string::npos) << bad.err;
}

// ---- memory -------------------------------------------------------------------------------------

TEST_F(CliTest, StreamingQuantizePeakMemoryIsBounded) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "ASan shadow memory and quarantine distort RSS";
#else
  // One 64 MiB float32 weight (4096 x 4096) plus small tensors.
  constexpr int64_t kRowsBig = 4096, kColsBig = 4096;
  const std::string model = Path("big.safetensors");
  {
    std::vector<float> w(static_cast<size_t>(kRowsBig * kColsBig));
    std::mt19937 rng(5);
    std::normal_distribution<float> normal(0.0f, 0.02f);
    for (float& v : w) v = normal(rng);
    const float norm[4] = {1, 1, 1, 1};
    io::SaveSafetensors(model, {{"a.weight", {w.data(), DType::kF32, {kRowsBig, kColsBig}}},
                                {"norm.weight", {norm, DType::kF32, {4}}}});
  }
  const CliResult r = Run({"quantize", model, Path("q.safetensors"), "-f", "nf4", "-q", "-j", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const double tensor_mib = kRowsBig * kColsBig * 4.0 / (1 << 20);
  const double peak_mib = r.max_rss_kib / 1024.0;
  std::printf("quantize nf4 of a %.0f MiB tensor: peak RSS %.1f MiB\n", tensor_mib, peak_mib);
  // The issue's bound: 2x the largest tensor + 64 MiB.
  EXPECT_LE(peak_mib, 2 * tensor_mib + 64);
#endif
}

}  // namespace
}  // namespace lowbit
