// Tests of GGUF interop against files written by ggml itself (tests/data/gguf/, commit d99724f2):
// container parsing, bit-exact dequantization of every tensor of every type, conversion to lowbit
// formats, ggml-identical writing, hostile files and a deterministic mutation replay.
#include "lowbit/io/gguf.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "fuzz/harness.h"
#include "lowbit/calibrate/gptq.h"
#include "lowbit/codecs/ggml.h"
#include "lowbit/io/safetensors.h"
#include "lowbit/ops.h"
#include "lowbit/quantize.h"
#include "test_files.h"

namespace lowbit {
namespace io {
namespace {

using testing::ReadFile;
using testing::WriteFile;

const std::string kDataDir = std::string(LOWBIT_SOURCE_DIR) + "/tests/data/gguf/";

std::string GgufPath(const std::string& type) { return kDataDir + "stories260K-" + type + ".gguf"; }
std::string DequantizedPath(const std::string& type) {
  return kDataDir + "stories260K-" + type + ".dequantized.safetensors";
}

// The ten ggml files, their ggml type, and how many of their 49 tensors ggml stored in that type
// (the rest are F32: 1-D tensors, rows that do not divide the block; every stories260K tensor for
// the 256-element types). Independent knowledge: the shared README and the tensor shapes.
struct OracleFile {
  const char* name;
  ggml::Type type;
  int quantized;
};
constexpr OracleFile kOracleFiles[] = {
    {"f16", ggml::Type::kF16, 38},     {"bf16", ggml::Type::kBF16, 38},
    {"q4_0", ggml::Type::kQ4_0, 33},   {"q4_1", ggml::Type::kQ4_1, 33},
    {"q8_0", ggml::Type::kQ8_0, 33},   {"iq4_nl", ggml::Type::kIQ4_NL, 33},
    {"q4_K", ggml::Type::kQ4_K, 2},    {"q6_K", ggml::Type::kQ6_K, 2},
    {"mxfp4", ggml::Type::kMXFP4, 33}, {"nvfp4", ggml::Type::kNVFP4, 33},
};
constexpr size_t kOracleTensors = 49;

// Bitwise equality of float32 arrays, NaN-aware (any NaN equals any NaN); returns the number of
// differing elements and the first index in *first.
int64_t CountBitDifferences(const std::vector<float>& a, const float* b, size_t n, size_t* first) {
  int64_t diff = 0;
  *first = n;
  for (size_t i = 0; i < n; ++i) {
    const bool same = F32Bits(a[i]) == F32Bits(b[i]) || (std::isnan(a[i]) && std::isnan(b[i]));
    if (!same) {
      if (diff == 0) *first = i;
      ++diff;
    }
  }
  return diff;
}

std::vector<float> ReadF32(const SafetensorsFile& f, const std::string& name) {
  return f.CopyAsF32(f.Get(name));
}

class GgufTest : public testing::TempDirTest {
 protected:
  GgufTest() : TempDirTest("lowbit_gguf_") {}
};

// ---- reading ggml's files -----------------------------------------------------------------------

TEST(GgufOracleTest, HeaderMetadataAndTensorInfosOfEveryGgmlFile) {
  const SafetensorsFile source = SafetensorsFile::Open(kDataDir + "source-f32.safetensors");
  for (const OracleFile& o : kOracleFiles) {
    SCOPED_TRACE(o.name);
    const GgufFile f = GgufFile::Open(GgufPath(o.name));
    EXPECT_EQ(f.version(), 3u);
    EXPECT_EQ(f.alignment(), 32u);
    EXPECT_EQ(f.data_offset() % 32, 0u);
    ASSERT_EQ(f.metadata().size(), 3u);
    EXPECT_EQ(f.metadata()[0].key, "general.architecture");
    EXPECT_EQ(f.metadata()[0].value.AsString(), "llama");
    EXPECT_EQ(f.metadata()[1].key, "general.name");
    EXPECT_EQ(f.metadata()[1].value.AsString(), "stories260K");
    EXPECT_EQ(f.metadata()[2].key, "general.alignment");
    EXPECT_EQ(f.metadata()[2].value.type, GgufValueType::kUint32);
    EXPECT_EQ(f.FindMetadata("general.alignment")->AsUint(), 32u);
    EXPECT_EQ(f.FindMetadata("missing"), nullptr);
    ASSERT_EQ(f.tensors().size(), kOracleTensors);
    int quantized = 0;
    for (const GgufTensorInfo& t : f.tensors()) {
      // Same names, and shapes that are the source's row-major shapes (GGUF's ne reversed).
      const TensorInfo& s = source.Get(t.name);
      EXPECT_EQ(t.shape, s.shape) << t.name;
      EXPECT_EQ(t.ne.front(), s.shape.back()) << t.name;
      EXPECT_EQ(t.num_elements(), s.num_elements());
      if (t.type == static_cast<uint32_t>(o.type)) {
        ++quantized;
      } else {
        EXPECT_EQ(t.type, static_cast<uint32_t>(ggml::Type::kF32)) << t.name;
      }
      const ggml::TypeTraits& tr = t.traits();
      EXPECT_EQ(t.size,
                static_cast<uint64_t>(t.num_elements() / tr.block_elements * tr.block_bytes));
    }
    EXPECT_EQ(quantized, o.quantized);
    // The last tensor ends the file (ggml pads it to the alignment).
    const GgufTensorInfo& last = f.tensors().back();
    EXPECT_EQ((f.data_offset() + last.offset + last.size + 31) / 32 * 32, f.file_size());
  }
}

TEST(GgufOracleTest, DequantizesEveryTensorOfEveryTypeBitExactlyAsGgml) {
  std::map<std::string, int> checked;  // ggml type name -> tensors compared
  int64_t elements = 0;
  for (const OracleFile& o : kOracleFiles) {
    SCOPED_TRACE(o.name);
    const GgufFile f = GgufFile::Open(GgufPath(o.name));
    const SafetensorsFile ref = SafetensorsFile::Open(DequantizedPath(o.name));
    ASSERT_EQ(ref.tensors().size(), f.tensors().size());
    for (const GgufTensorInfo& t : f.tensors()) {
      const std::vector<float> mine = f.DequantizeToF32(t);
      const TensorInfo& r = ref.Get(t.name);
      ASSERT_EQ(r.dtype, DType::kF32);
      ASSERT_EQ(r.shape, t.shape) << t.name;
      ASSERT_EQ(mine.size(), static_cast<size_t>(r.num_elements()));
      std::vector<float> expected(mine.size());
      std::memcpy(expected.data(), ref.data(r), r.size);
      size_t first = 0;
      const int64_t diff = CountBitDifferences(mine, expected.data(), mine.size(), &first);
      EXPECT_EQ(diff, 0) << t.name << " (" << t.type_name() << "): first at " << first << ": "
                         << (first < mine.size() ? mine[first] : 0.0f) << " vs "
                         << (first < mine.size() ? expected[first] : 0.0f);
      ++checked[t.type_name()];
      elements += static_cast<int64_t>(mine.size());
    }
  }
  // Every type of the issue, with the tensor counts of the files (F32 from every file).
  const std::map<std::string, int> expected_counts = {{"f32", 11 + 11 + 16 * 6 + 47 + 47},
                                                      {"f16", 38},
                                                      {"bf16", 38},
                                                      {"q4_0", 33},
                                                      {"q4_1", 33},
                                                      {"q8_0", 33},
                                                      {"iq4_nl", 33},
                                                      {"q4_K", 2},
                                                      {"q6_K", 2},
                                                      {"mxfp4", 33},
                                                      {"nvfp4", 33}};
  EXPECT_EQ(checked, expected_counts);
  std::printf("bit-exact with ggml: %lld elements in", static_cast<long long>(elements));
  for (const auto& [name, n] : checked) std::printf(" %s:%d", name.c_str(), n);
  std::printf(" tensors\n");
}

TEST(GgufOracleTest, ReferenceQuantizersAreByteIdenticalToGgml) {
  const SafetensorsFile source = SafetensorsFile::Open(kDataDir + "source-f32.safetensors");
  for (const char* name : {"q4_0", "q8_0", "f16", "bf16"}) {
    SCOPED_TRACE(name);
    const GgufFile f = GgufFile::Open(GgufPath(name));
    int compared = 0;
    for (const GgufTensorInfo& t : f.tensors()) {
      const std::vector<float> x = ReadF32(source, t.name);
      std::vector<uint8_t> mine(t.size);
      ASSERT_TRUE(ggml::QuantizeRow(static_cast<ggml::Type>(t.type), x.data(),
                                    static_cast<int64_t>(x.size()), mine.data()));
      EXPECT_EQ(0, std::memcmp(mine.data(), f.data(t), t.size)) << t.name;
      compared += t.type != static_cast<uint32_t>(ggml::Type::kF32);
    }
    EXPECT_GE(compared, 33);
  }
}

// ---- conversion to lowbit formats ---------------------------------------------------------------

TEST(GgufOracleTest, LoadsAsLowbitTensorsExactWhereDocumentedAndMeasuredElsewhere) {
  for (const OracleFile& o : kOracleFiles) {
    SCOPED_TRACE(o.name);
    const GgufFile f = GgufFile::Open(GgufPath(o.name));
    const SafetensorsFile ref = SafetensorsFile::Open(DequantizedPath(o.name));
    double worst_rel_l2 = 0;
    for (const GgufTensorInfo& t : f.tensors()) {
      const GgufConversion conv = GgufConversionOf(t.type);
      const QuantizedTensor q = LoadGgufTensor(f, t);
      EXPECT_EQ(q.format(), conv.format) << t.name;
      EXPECT_EQ(q.shape(), t.shape);
      ValidateQuantizedTensor(q);
      // Through the public Dequantize (the CPU backend's kernels), not a reference loop.
      const std::vector<float> got = DequantizeToF32(q);
      const std::vector<float> expected = ReadF32(ref, t.name);
      if (conv.exact) {
        size_t first = 0;
        EXPECT_EQ(CountBitDifferences(got, expected.data(), got.size(), &first), 0)
            << t.name << " (" << t.type_name() << " as " << FormatName(conv.format) << ")";
      } else {
        const int64_t n = static_cast<int64_t>(got.size());
        const ErrorStats s =
            EstimateError({expected.data(), DType::kF32, {n}}, {got.data(), DType::kF32, {n}});
        worst_rel_l2 = std::max(worst_rel_l2, s.rel_l2);
        const ErrorStats api = GgufConversionError(f, t);
        EXPECT_DOUBLE_EQ(api.rel_l2, s.rel_l2);
      }
      // Float32 mode is always ggml's values.
      const QuantizedTensor dense = LoadGgufTensor(f, t, GgufLoadMode::kFloat32);
      EXPECT_EQ(dense.format(), Format::kF32);
      size_t first = 0;
      EXPECT_EQ(
          CountBitDifferences(DequantizeToF32(dense), expected.data(), expected.size(), &first), 0);
    }
    const GgufConversion conv = GgufConversionOf(static_cast<uint32_t>(o.type));
    std::printf("%-7s -> %-9s %s, worst rel L2 vs ggml %.3e\n", o.name, FormatName(conv.format),
                conv.exact ? "exact" : "requantized", worst_rel_l2);
    // Requantizing ggml's 4-bit values at 4 bits costs about as much as the first quantization
    // (measured worst 7.2e-2 .. 9.5e-2); 8-bit blockwise requantization of q8_0 / q6_K ~1.1e-2.
    // Bounds ~1.5x the measured values (docs/files.md §5.3).
    const double bound = conv.exact ? 0.0 : (conv.format == Format::kBlockwise8 ? 0.017 : 0.15);
    EXPECT_LE(worst_rel_l2, bound);
  }
}

TEST(GgufOracleTest, Q4_0AsInt4MultipliesLikeGgmlsValues) {
  // Codes 0 (value -8) and negative scales occur in ggml's q4_0: the int4 kernels must take them.
  const GgufFile f = GgufFile::Open(GgufPath("q4_0"));
  const GgufTensorInfo& t = f.Get("synthetic.1.weight");  // [64, 512]
  const QuantizedTensor q = LoadGgufTensor(f, t);
  int negative_scales = 0, code0 = 0;
  for (const float s : q.state.scales) negative_scales += s < 0;
  for (const uint8_t b : q.data) code0 += (b >> 4) == 0 || (b & 0xF) == 0;
  EXPECT_GT(negative_scales, 0);
  EXPECT_GT(code0, 0);
  const std::vector<float> w = f.DequantizeToF32(t);
  const int64_t n = t.shape[0], k = t.shape[1], m = 3;
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(m * k));
  for (float& v : x) v = dist(rng);
  std::vector<float> y(static_cast<size_t>(m * n));
  Matmul(Pack(q), {x.data(), DType::kF32, {m, k}}, {y.data(), DType::kF32, {m, n}});
  // And with int8 activations: each activation is off by at most absmax / 254.
  std::vector<float> y8(static_cast<size_t>(m * n));
  MatmulOptions int8;
  int8.int8_activations = true;
  Matmul(Pack(q), {x.data(), DType::kF32, {m, k}}, {y8.data(), DType::kF32, {m, n}}, int8);
  for (int64_t i = 0; i < m; ++i) {
    double absmax = 0;
    for (int64_t c = 0; c < k; ++c)
      absmax = std::max(absmax, std::fabs(static_cast<double>(x[i * k + c])));
    for (int64_t j = 0; j < n; ++j) {
      double ref = 0, mag = 0, wsum = 0;
      for (int64_t c = 0; c < k; ++c) {
        ref += static_cast<double>(x[i * k + c]) * w[j * k + c];
        mag += std::fabs(static_cast<double>(x[i * k + c]) * w[j * k + c]);
        wsum += std::fabs(static_cast<double>(w[j * k + c]));
      }
      EXPECT_NEAR(y[i * n + j], ref, 1e-5 * mag + 1e-6) << i << "," << j;
      EXPECT_NEAR(y8[i * n + j], ref, wsum * absmax / 254 + 1e-5 * mag + 1e-6) << i << "," << j;
    }
  }
}

TEST(GgufCodecTest, Int4GroupOf32ExportsToQ4_0WithOnlyF16ScaleRounding) {
  std::mt19937 rng(11);
  std::student_t_distribution<float> dist(5.0f);
  const int64_t rows = 8, cols = 96;
  std::vector<float> w(static_cast<size_t>(rows * cols));
  for (float& v : w) v = 0.02f * dist(rng);
  std::vector<float> xcal(static_cast<size_t>(64 * cols));
  for (float& v : xcal) v = dist(rng);
  QuantizeOptions o;
  o.block_size = 32;
  calibrate::GptqOptions g;
  g.group_size = 32;
  for (const QuantizedTensor& q :
       {Quantize(Format::kInt4, {w.data(), DType::kF32, {rows, cols}}, o),
        calibrate::GptqQuantize({w.data(), DType::kF32, {rows, cols}},
                                {xcal.data(), DType::kF32, {64, cols}}, g)}) {
    double rel = -1;
    const std::vector<uint8_t> blocks = Int4ToQ4_0(q, &rel);
    ASSERT_EQ(blocks.size(), static_cast<size_t>(rows * cols / 32 * 18));
    EXPECT_GE(rel, 0.0);
    EXPECT_LE(rel, 1.0 / 2048);  // f16 has 11 significant bits: half an ulp is 2^-11
    std::vector<float> ggml_values(w.size());
    ASSERT_TRUE(
        ggml::DequantizeRow(ggml::Type::kQ4_0, blocks.data(), rows * cols, ggml_values.data()));
    // Each value is (code - 8) * scale with lowbit's own code and the scale rounded to f16.
    for (size_t i = 0; i < w.size(); ++i) {
      const int code = i % 2 == 0 ? q.data[i / 2] >> 4 : q.data[i / 2] & 0xF;
      const float rounded = F16ToF32(F32ToF16(q.state.scales[i / 32]));
      EXPECT_EQ(ggml_values[i], static_cast<float>(code - 8) * rounded) << i;
    }
  }
  // Refused: another group size, asymmetric int4, another format.
  QuantizeOptions o64;
  o64.block_size = 64;
  EXPECT_THROW(Int4ToQ4_0(Quantize(Format::kInt4, {w.data(), DType::kF32, {rows, cols}}, o64)),
               Error);
  EXPECT_THROW(Int4ToQ4_0(Quantize(Format::kInt4Asym, {w.data(), DType::kF32, {rows, cols}}, o)),
               Error);
  EXPECT_THROW(Int4ToQ4_0(Quantize(Format::kNF4, {w.data(), DType::kF32, {rows, cols}})), Error);
}

// ---- codecs on hand-made blocks (values from the block-layout descriptions) ---------------------

TEST(GgufCodecTest, HandMadeBlocksDecodeAsTheLayoutSays) {
  float y[256];
  // q4_0: d = -2 (f16 0xC000); qs[j] = j | (15 - j) << 4.
  uint8_t q4[18] = {0x00, 0xC0};
  for (int j = 0; j < 16; ++j) q4[2 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  ggml::DecodeQ4_0(q4, y);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], (j - 8) * -2.0f);
    EXPECT_EQ(y[16 + j], (15 - j - 8) * -2.0f);
  }
  EXPECT_TRUE(std::signbit(y[8]));  // code 8 times a negative scale is -0, as in ggml
  // q8_0: d = 0.5, codes -128..
  uint8_t q8[34] = {0x00, 0x38};
  for (int j = 0; j < 32; ++j) q8[2 + j] = static_cast<uint8_t>(j * 8 - 128);
  ggml::DecodeQ8_0(q8, y);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], static_cast<float>(j * 8 - 128) * 0.5f);
  // q4_1: d = 1, m = -0.25.
  uint8_t q41[20] = {0x00, 0x3C, 0x00, 0xB4};
  for (int j = 0; j < 16; ++j) q41[4 + j] = static_cast<uint8_t>(j | (j << 4));
  ggml::DecodeQ4_1(q41, y);
  for (int j = 0; j < 16; ++j) EXPECT_EQ(y[j], j - 0.25f);
  // iq4_nl: d = 1 gives the table itself.
  uint8_t iq[18] = {0x00, 0x3C};
  for (int j = 0; j < 16; ++j) iq[2 + j] = static_cast<uint8_t>(j);
  ggml::DecodeIQ4_NL(iq, y);
  const float kIq4[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
  for (int j = 0; j < 16; ++j) EXPECT_EQ(y[j], kIq4[j]);
  // mxfp4: E2M1 values times 2^(e - 127); code 8 is +0 (ggml's integer table).
  const float kE2M1[16] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6, 0, -0.5f, -1, -1.5f, -2, -3, -4, -6};
  for (const int e : {0, 1, 2, 120, 127, 200, 254, 255}) {
    uint8_t mx[17] = {static_cast<uint8_t>(e)};
    for (int j = 0; j < 16; ++j) mx[1 + j] = static_cast<uint8_t>(j | (j << 4));
    ggml::DecodeMXFP4(mx, y);
    for (int j = 0; j < 16; ++j) {
      const float expected = static_cast<float>(std::ldexp(static_cast<double>(kE2M1[j]), e - 127));
      EXPECT_EQ(y[j], expected) << "e=" << e << " j=" << j;
      EXPECT_EQ(y[16 + j], expected);
    }
    EXPECT_FALSE(std::signbit(y[8]));
  }
  // nvfp4: scales 0x38 (1.0), 0x7F (0 in ggml), 0x80 (sign ignored: 0), 0xFF (480); codes 1 and
  // 15 (0.5 and -6) in each sub-block.
  uint8_t nv[36] = {0x38, 0x7F, 0x80, 0xFF};
  for (int j = 0; j < 32; ++j) nv[4 + j] = 0xF1;
  ggml::DecodeNVFP4(nv, y);
  const float scale[4] = {1.0f, 0.0f, 0.0f, 480.0f};
  for (int s = 0; s < 4; ++s) {
    for (int j = 0; j < 8; ++j) {
      EXPECT_EQ(y[16 * s + j], 0.5f * scale[s]) << s;
      EXPECT_EQ(y[16 * s + 8 + j], -6.0f * scale[s]) << s;
    }
  }
  EXPECT_EQ(ggml::internal::UE4M3Half(0x08), 0.5f * std::ldexp(1.0f, -6));  // least normal
  EXPECT_EQ(ggml::internal::UE4M3Half(0x01), 0.5f * std::ldexp(1.0f, -9));  // least subnormal
  EXPECT_EQ(ggml::internal::UE4M3Half(0x7E), 0.5f * 448.0f);
  // q4_K: d = 1, dmin = 1; scales: sub-block j has scale j + 1 and min j (ScaleMinK4 packing).
  uint8_t q4k[144] = {0x00, 0x3C, 0x00, 0x3C};
  uint8_t* sc = q4k + 4;
  const int scale_of[8] = {1, 2, 3, 4, 5, 6, 7, 8}, min_of[8] = {0, 1, 2, 3, 4, 5, 6, 7};
  for (int j = 0; j < 4; ++j) {
    sc[j] = static_cast<uint8_t>(scale_of[j]);
    sc[j + 4] = static_cast<uint8_t>(min_of[j]);
  }
  for (int j = 4; j < 8; ++j) {  // 6-bit values < 16: low nibbles only
    sc[j + 4] = static_cast<uint8_t>(scale_of[j] | (min_of[j] << 4));
  }
  for (int i = 0; i < 128; ++i) q4k[16 + i] = static_cast<uint8_t>((i % 16) | ((15 - i % 16) << 4));
  ggml::DecodeQ4_K(q4k, y);
  for (int chunk = 0; chunk < 4; ++chunk) {
    for (int l = 0; l < 32; ++l) {
      const int lo = l % 16, hi = 15 - l % 16;
      EXPECT_EQ(y[64 * chunk + l],
                static_cast<float>(scale_of[2 * chunk] * lo - min_of[2 * chunk]));
      EXPECT_EQ(y[64 * chunk + 32 + l],
                static_cast<float>(scale_of[2 * chunk + 1] * hi - min_of[2 * chunk + 1]));
    }
  }
  // q6_K: d = 1; scales[s] = s - 8; code of element i chosen as (i * 7) % 64.
  uint8_t q6k[210] = {};
  int code[256];
  for (int i = 0; i < 256; ++i) code[i] = (i * 7) % 64;
  for (int half = 0; half < 2; ++half) {
    for (int l = 0; l < 32; ++l) {
      const int* c = code + 128 * half;
      uint8_t* ql = q6k + 64 * half;
      uint8_t* qh = q6k + 128 + 32 * half;
      ql[l] = static_cast<uint8_t>((c[l] & 0xF) | ((c[l + 64] & 0xF) << 4));
      ql[l + 32] = static_cast<uint8_t>((c[l + 32] & 0xF) | ((c[l + 96] & 0xF) << 4));
      qh[l] = static_cast<uint8_t>((c[l] >> 4) | ((c[l + 32] >> 4) << 2) | ((c[l + 64] >> 4) << 4) |
                                   ((c[l + 96] >> 4) << 6));
    }
  }
  for (int s = 0; s < 16; ++s) q6k[192 + s] = static_cast<uint8_t>(s - 8);
  q6k[208] = 0x00;
  q6k[209] = 0x3C;
  ggml::DecodeQ6_K(q6k, y);
  for (int i = 0; i < 256; ++i)
    EXPECT_EQ(y[i], static_cast<float>((i / 16 - 8) * (code[i] - 32))) << i;
}

TEST(GgufCodecTest, ReferenceQuantizersOnEdgeCases) {
  uint8_t b[34];
  float x[32] = {};
  ggml::QuantizeQ4_0(x, b);  // all zeros: d = 0, every code 8
  EXPECT_EQ(b[0], 0);
  EXPECT_EQ(b[1], 0x80);  // -0.0 in f16 (0 / -8)
  for (int j = 0; j < 16; ++j) EXPECT_EQ(b[2 + j], 0x88);
  // The first element of largest magnitude sets the sign: +3 then -3 -> max = +3, d = -0.375.
  x[0] = 3;
  x[5] = -3;
  ggml::QuantizeQ4_0(x, b);
  EXPECT_EQ(F16ToF32(F16{static_cast<uint16_t>(b[0] | b[1] << 8)}), -0.375f);
  EXPECT_EQ(b[2] & 0xF, 0);   // +3 / -0.375 = -8 -> code 0
  EXPECT_EQ(b[7] & 0xF, 15);  // -3 -> +8 -> clamped to 15
  // NaN input is defined (no UB) and stays within the nibble.
  x[3] = std::nanf("");
  ggml::QuantizeQ4_0(x, b);
  ggml::QuantizeQ8_0(x, b);
  // q8_0: roundf ties away from zero: 0.5 * 127 / 127 ... values k + 0.5 of the grid.
  float z[32];
  for (int j = 0; j < 32; ++j) z[j] = (j - 16) + 0.5f;
  z[31] = 127;  // amax = 127: d = 1
  ggml::QuantizeQ8_0(z, b);
  EXPECT_EQ(F16ToF32(F16{static_cast<uint16_t>(b[0] | b[1] << 8)}), 1.0f);
  for (int j = 0; j < 31; ++j) {
    EXPECT_EQ(static_cast<int8_t>(b[2 + j]), static_cast<int>(std::round(z[j]))) << j;
  }
  EXPECT_EQ(static_cast<int8_t>(b[2 + 31]), 127);
  // Rows: bad counts and undecodable types are refused, not crashed.
  float out[64];
  EXPECT_FALSE(ggml::DequantizeRow(ggml::Type::kQ4_0, b, 31, out));
  EXPECT_FALSE(ggml::DequantizeRow(ggml::Type::kQ5_K, b, 256, out));
  EXPECT_FALSE(ggml::QuantizeRow(ggml::Type::kQ4_K, z, 256, b));
  EXPECT_EQ(ggml::FindType(4), nullptr);   // removed q4_2
  EXPECT_EQ(ggml::FindType(41), nullptr);  // newer than lowbit
  EXPECT_STREQ(ggml::TypeName(39), "mxfp4");
}

// ---- writer -------------------------------------------------------------------------------------

// Writes `source` as ggml's test files were written: 2-D tensors whose row length divides the
// block in `type`, the rest F32, metadata architecture + name (+ alignment appended).
void WriteLikeGgml(const std::string& path, const SafetensorsFile& source, ggml::Type type) {
  GgufWriter w(path, {{"general.architecture", GgufValue::String("llama")},
                      {"general.name", GgufValue::String("stories260K")}});
  std::vector<ggml::Type> types;
  for (const TensorInfo& t : source.tensors()) {
    const bool quantize =
        t.shape.size() == 2 && t.shape[1] % ggml::Traits(type).block_elements == 0;
    types.push_back(quantize ? type : ggml::Type::kF32);
    w.Declare(t.name, types.back(), t.shape);
  }
  for (size_t i = 0; i < source.tensors().size(); ++i) {
    const std::vector<float> x = source.CopyAsF32(source.tensors()[i]);
    std::vector<uint8_t> bytes(w.tensor_bytes(i));
    ASSERT_TRUE(
        ggml::QuantizeRow(types[i], x.data(), static_cast<int64_t>(x.size()), bytes.data()));
    w.Append(bytes.data(), bytes.size());
  }
  w.Commit();
}

TEST_F(GgufTest, WriterReproducesGgmlsFilesByteForByte) {
  const SafetensorsFile source = SafetensorsFile::Open(kDataDir + "source-f32.safetensors");
  for (const auto& [name, type] :
       std::vector<std::pair<std::string, ggml::Type>>{{"q4_0", ggml::Type::kQ4_0},
                                                       {"q8_0", ggml::Type::kQ8_0},
                                                       {"f16", ggml::Type::kF16},
                                                       {"bf16", ggml::Type::kBF16}}) {
    SCOPED_TRACE(name);
    WriteLikeGgml(Path(name + ".gguf"), source, type);
    const std::vector<uint8_t> mine = ReadFile(Path(name + ".gguf"));
    const std::vector<uint8_t> theirs = ReadFile(GgufPath(name));
    ASSERT_EQ(mine.size(), theirs.size());
    size_t first = mine.size();
    for (size_t i = 0; i < mine.size() && first == mine.size(); ++i) {
      if (mine[i] != theirs[i]) first = i;
    }
    EXPECT_EQ(first, mine.size()) << "first differing byte";
  }
}

TEST_F(GgufTest, MetadataOfEveryTypeRoundTrips) {
  const GgufMetadata md = {
      {"general.architecture", GgufValue::String("llama")},
      {"u8", GgufValue::Uint8(200)},
      {"i8", GgufValue::Int8(-100)},
      {"u16", GgufValue::Uint16(60000)},
      {"i16", GgufValue::Int16(-30000)},
      {"u32", GgufValue::Uint32(4000000000u)},
      {"i32", GgufValue::Int32(-2000000000)},
      {"u64", GgufValue::Uint64(~uint64_t{0})},
      {"i64", GgufValue::Int64(-(int64_t{1} << 60))},
      {"f32", GgufValue::Float32(-0.1f)},
      {"f64", GgufValue::Float64(1e300)},
      {"bool", GgufValue::Bool(true)},
      {"empty", GgufValue::String("")},
      {"utf8", GgufValue::String("caf\xc3\xa9 \xe2\x9c\x93")},
      {"tokens", GgufValue::StringArray({"a", "", "<0x0A>", std::string("\xff\x00", 2)})},
      {"scores",
       GgufValue::NumericArray(GgufValueType::kFloat32, 2, {0, 0, 0x80, 0x3f, 0, 0, 0x80, 0xbf})},
      {"types", GgufValue::NumericArray(GgufValueType::kInt32, 0, {})},
      {"flags", GgufValue::NumericArray(GgufValueType::kBool, 3, {1, 0, 1})},
  };
  {
    GgufWriter w(Path("m.gguf"), md, 64);
    const float v[2] = {1.5f, -2};
    w.Declare("a", ggml::Type::kF32, {2});
    w.Declare("empty", ggml::Type::kQ4_0, {0, 32});
    w.Declare("b", ggml::Type::kF32, {1, 1, 2});  // written as ne [2] (ggml_n_dims)
    w.Append(v, sizeof(v));
    w.Append(v, sizeof(v));
    w.Commit();
  }
  const GgufFile f = GgufFile::Open(Path("m.gguf"));
  EXPECT_EQ(f.alignment(), 64u);
  ASSERT_EQ(f.metadata().size(), md.size() + 1);
  for (size_t i = 0; i < md.size(); ++i) {
    const GgufKeyValue& got = f.metadata()[i];
    EXPECT_EQ(got.key, md[i].key);
    EXPECT_EQ(got.value.type, md[i].value.type) << got.key;
    EXPECT_EQ(got.value.array_type, md[i].value.array_type) << got.key;
    EXPECT_EQ(got.value.raw, md[i].value.raw) << got.key;
    EXPECT_EQ(got.value.str, md[i].value.str) << got.key;
    EXPECT_EQ(got.value.strings, md[i].value.strings) << got.key;
  }
  EXPECT_EQ(f.metadata().back().key, "general.alignment");
  EXPECT_EQ(f.FindMetadata("u64")->AsUint(), ~uint64_t{0});
  EXPECT_EQ(f.FindMetadata("i8")->AsInt(), -100);
  EXPECT_EQ(f.FindMetadata("f32")->AsFloat(), static_cast<double>(-0.1f));
  EXPECT_EQ(f.FindMetadata("scores")->FloatAt(1), -1.0);
  EXPECT_EQ(f.FindMetadata("tokens")->size(), 4u);
  EXPECT_TRUE(f.FindMetadata("bool")->AsBool());
  EXPECT_THROW(f.FindMetadata("i8")->AsUint(), Error);
  EXPECT_THROW(f.FindMetadata("utf8")->AsInt(), Error);
  EXPECT_THROW(f.FindMetadata("scores")->FloatAt(2), Error);
  EXPECT_EQ(f.FindMetadata("tokens")->ToString(2), "[str x 4: \"a\", \"\", ...]");
  EXPECT_EQ(f.FindMetadata("i16")->ToString(), "-30000");
  ASSERT_EQ(f.tensors().size(), 3u);
  EXPECT_EQ(f.Get("b").ne, (std::vector<int64_t>{2}));
  EXPECT_EQ(f.Get("empty").size, 0u);
  EXPECT_EQ(f.Get("b").offset, 64u);
  EXPECT_EQ(f.DequantizeToF32(f.Get("b"))[1], -2.0f);
  EXPECT_EQ(f.file_size(), f.data_offset() + 128);
}

TEST_F(GgufTest, WriterRejectsBadInputAndSavingIsAtomic) {
  WriteFile(Path("old.gguf"), {1, 2, 3});
  auto expect_invalid = [&](const std::function<void()>& fn, const std::string& needle) {
    try {
      fn();
      ADD_FAILURE() << "no error for " << needle;
    } catch (const Error& e) {
      EXPECT_EQ(e.status(), Status::kInvalidArgument) << e.message();
      EXPECT_NE(e.message().find(needle), std::string::npos) << e.message();
    }
  };
  expect_invalid([&] { GgufWriter(Path("old.gguf"), {{"", GgufValue::Uint8(1)}}); }, "empty");
  expect_invalid(
      [&] {
        GgufWriter(Path("old.gguf"), {{"k", GgufValue::Uint8(1)}, {"k", GgufValue::Uint8(2)}});
      },
      "duplicate metadata key 'k'");
  expect_invalid(
      [&] {
        GgufWriter(Path("old.gguf"), {{"general.alignment", GgufValue::Uint64(32)}});
      },
      "general.alignment");
  expect_invalid([&] { GgufWriter(Path("old.gguf"), {}, 48); }, "not a power of two");
  expect_invalid(
      [&] {
        GgufWriter w(Path("old.gguf"));
        w.Declare(std::string(64, 'n'), ggml::Type::kF32, {1});
      },
      "at most 63");
  expect_invalid(
      [&] {
        GgufWriter w(Path("old.gguf"));
        w.Declare("x", ggml::Type::kQ4_0, {2, 33});
      },
      "not a multiple of q4_0's 32-element block");
  expect_invalid(
      [&] {
        GgufWriter w(Path("old.gguf"));
        w.Declare("x", ggml::Type::kF32, {1, 1, 1, 1, 1});
      },
      "1 to 4 dimensions");
  expect_invalid(
      [&] {
        GgufWriter w(Path("old.gguf"));
        w.Declare("x", ggml::Type::kF32, {1});
        w.Declare("x", ggml::Type::kF32, {1});
      },
      "duplicate tensor name 'x'");
  expect_invalid(
      [&] {
        GgufWriter w(Path("old.gguf"));
        w.Declare("x", ggml::Type::kF32, {1});
        const float v[2] = {};
        w.Append(v, 8);
      },
      "only 4 remain");
  // Nothing above touched the old file or left a temporary.
  EXPECT_EQ(ReadFile(Path("old.gguf")), (std::vector<uint8_t>{1, 2, 3}));
  EXPECT_EQ(ListDir(), std::vector<std::string>{"old.gguf"});
  {
    GgufWriter w(Path("old.gguf"));
    w.Declare("x", ggml::Type::kF32, {2});
    const float v[1] = {1};
    w.Append(v, 4);
    EXPECT_EQ(ListDir().size(), 2u);  // the temporary sits next to the target
    try {
      w.Commit();
      ADD_FAILURE();
    } catch (const Error& e) {
      EXPECT_EQ(e.status(), Status::kInvalidState);
      EXPECT_NE(e.message().find("'x' is missing 4 bytes"), std::string::npos) << e.message();
    }
  }
  EXPECT_EQ(ReadFile(Path("old.gguf")), (std::vector<uint8_t>{1, 2, 3}));
  EXPECT_EQ(ListDir(), std::vector<std::string>{"old.gguf"});
  // A failing rename (the target is a directory) leaves nothing behind either.
  ASSERT_EQ(::mkdir(Path("d").c_str(), 0755), 0);
  {
    GgufWriter w(Path("d"));
    EXPECT_THROW(w.Commit(), Error);
  }
  ::rmdir(Path("d").c_str());
  EXPECT_EQ(ListDir(), std::vector<std::string>{"old.gguf"});
}

// ---- hostile files ------------------------------------------------------------------------------

// A GGUF image built field by field, so that every field can be broken on its own.
struct RawTensor {
  std::string name;
  std::vector<uint64_t> ne;
  uint32_t type;
  uint64_t offset;
};
struct RawGguf {
  uint32_t version = 3;
  std::vector<uint8_t> kvs;  // encoded key/values
  uint64_t kv_count = 0;
  std::vector<RawTensor> tensors;
  uint64_t alignment = 32;
  std::vector<uint8_t> data;  // the data section
  int64_t tensor_count_delta = 0;
  int64_t kv_count_delta = 0;
};

void Put32(std::vector<uint8_t>& b, uint64_t v) {
  for (int i = 0; i < 4; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
void Put64(std::vector<uint8_t>& b, uint64_t v) {
  for (int i = 0; i < 8; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
void PutStr(std::vector<uint8_t>& b, const std::string& s) {
  Put64(b, s.size());
  b.insert(b.end(), s.begin(), s.end());
}
void AddKv(RawGguf& g, const std::string& key, uint32_t type, const std::vector<uint8_t>& value) {
  PutStr(g.kvs, key);
  Put32(g.kvs, type);
  g.kvs.insert(g.kvs.end(), value.begin(), value.end());
  ++g.kv_count;
}
std::vector<uint8_t> Encode(const RawGguf& g) {
  std::vector<uint8_t> b = {'G', 'G', 'U', 'F'};
  Put32(b, g.version);
  Put64(b, g.tensors.size() + static_cast<uint64_t>(g.tensor_count_delta));
  Put64(b, g.kv_count + static_cast<uint64_t>(g.kv_count_delta));
  b.insert(b.end(), g.kvs.begin(), g.kvs.end());
  for (const RawTensor& t : g.tensors) {
    PutStr(b, t.name);
    Put32(b, t.ne.size());
    for (const uint64_t d : t.ne) Put64(b, d);
    Put32(b, t.type);
    Put64(b, t.offset);
  }
  while (b.size() % g.alignment != 0) b.push_back(0);
  b.insert(b.end(), g.data.begin(), g.data.end());
  return b;
}
// A valid file: one u32 and one string key; an f32 [2] tensor and a q8_0 [32] tensor.
RawGguf ValidRaw() {
  RawGguf g;
  AddKv(g, "u", 4, {7, 0, 0, 0});
  std::vector<uint8_t> s;
  PutStr(s, "llama");
  AddKv(g, "general.architecture", 8, s);
  g.tensors = {{"a", {2}, 0, 0}, {"q", {32}, 8, 32}};
  g.data.assign(32 + 34, 0);
  g.data[32 + 1] = 0x3C;  // q8_0 d = 1.0
  g.data.resize(96, 0);   // padded
  return g;
}

struct HostileCase {
  const char* what;
  std::function<void(RawGguf&)> edit;
  Status status;
  const char* needle;
};

TEST(GgufHostileTest, EveryMalformedFileIsRejectedWithANamedReason) {
  const uint64_t kHuge = uint64_t{1} << 62;
  const std::vector<HostileCase> cases = {
      {"version 1", [](RawGguf& g) { g.version = 1; }, Status::kUnsupportedFormat, "version 1"},
      {"version 4", [](RawGguf& g) { g.version = 4; }, Status::kUnsupportedFormat, "newer"},
      {"big-endian", [](RawGguf& g) { g.version = 0x03000000; }, Status::kUnsupportedFormat,
       "big-endian"},
      {"version 0", [](RawGguf& g) { g.version = 0; }, Status::kCorruptData, "version 0"},
      {"kv count", [&](RawGguf& g) { g.kv_count_delta = static_cast<int64_t>(kHuge); },
       Status::kCorruptData, "key/value count"},
      // The extra key/value swallows the first tensor info: its name becomes a key, its n_dims
      // (1) a value type (i8), ... and the shifted next field is read as an empty name.
      {"kv count +1", [](RawGguf& g) { g.kv_count_delta = 1; }, Status::kCorruptData,
       "tensor info 0"},
      {"tensor count", [&](RawGguf& g) { g.tensor_count_delta = static_cast<int64_t>(kHuge); },
       Status::kCorruptData, "tensor count"},
      {"key length",
       [&](RawGguf& g) {
         g.kvs.clear();
         g.kv_count = 0;
         Put64(g.kvs, kHuge);
         ++g.kv_count;
       },
       Status::kCorruptData, "at most 65535"},
      {"key past end",
       [](RawGguf& g) {
         g.kvs.clear();
         g.kv_count = 0;
         Put64(g.kvs, 60000);  // within the key limit, but only 100 more bytes follow
         g.kvs.resize(g.kvs.size() + 100, 'k');
         ++g.kv_count;
         g.tensors.clear();
         g.data.clear();
       },
       Status::kCorruptData, "truncated"},
      {"empty key", [](RawGguf& g) { AddKv(g, "", 0, {1}); }, Status::kCorruptData, "empty key"},
      {"utf8 key", [](RawGguf& g) { AddKv(g, "\xc0\xaf", 0, {1}); }, Status::kCorruptData, "UTF-8"},
      {"duplicate key", [](RawGguf& g) { AddKv(g, "u", 0, {1}); }, Status::kCorruptData,
       "duplicate metadata key 'u'"},
      {"value type", [](RawGguf& g) { AddKv(g, "x", 13, {1}); }, Status::kCorruptData,
       "unknown value type 13"},
      {"bool 2", [](RawGguf& g) { AddKv(g, "b", 7, {2}); }, Status::kCorruptData,
       "neither 0 nor 1"},
      {"bool array",
       [](RawGguf& g) {
         std::vector<uint8_t> v;
         Put32(v, 7);
         Put64(v, 2);
         v.push_back(1);
         v.push_back(3);
         AddKv(g, "b", 9, v);
       },
       Status::kCorruptData, "[1]: bool value 3"},
      {"nested array",
       [](RawGguf& g) {
         std::vector<uint8_t> v;
         Put32(v, 9);
         Put64(v, 0);
         AddKv(g, "a", 9, v);
       },
       Status::kCorruptData, "arrays of arrays"},
      {"array type",
       [](RawGguf& g) {
         std::vector<uint8_t> v;
         Put32(v, 99);
         Put64(v, 0);
         AddKv(g, "a", 9, v);
       },
       Status::kCorruptData, "unknown array element type 99"},
      {"array count",
       [&](RawGguf& g) {
         std::vector<uint8_t> v;
         Put32(v, 4);
         Put64(v, kHuge);
         AddKv(g, "a", 9, v);
       },
       Status::kCorruptData, "cannot fit"},
      {"string array count",
       [&](RawGguf& g) {
         std::vector<uint8_t> v;
         Put32(v, 8);
         Put64(v, kHuge);
         AddKv(g, "a", 9, v);
       },
       Status::kCorruptData, "cannot fit"},
      {"string length",
       [&](RawGguf& g) {
         std::vector<uint8_t> v;
         Put64(v, kHuge);
         AddKv(g, "s", 8, v);
       },
       Status::kCorruptData, "truncated"},
      {"alignment type",
       [](RawGguf& g) {
         AddKv(g, "general.alignment", 10, {32, 0, 0, 0, 0, 0, 0, 0});
       },
       Status::kCorruptData, "must be a u32, not u64"},
      {"alignment 0",
       [](RawGguf& g) {
         AddKv(g, "general.alignment", 4, {0, 0, 0, 0});
       },
       Status::kCorruptData, "not a power of two"},
      {"alignment 48",
       [](RawGguf& g) {
         AddKv(g, "general.alignment", 4, {48, 0, 0, 0});
       },
       Status::kCorruptData, "not a power of two"},
      {"empty name", [](RawGguf& g) { g.tensors[0].name = ""; }, Status::kCorruptData,
       "empty name"},
      {"long name", [](RawGguf& g) { g.tensors[0].name = std::string(64, 'x'); },
       Status::kCorruptData, "at most 63"},
      {"utf8 name", [](RawGguf& g) { g.tensors[0].name = "\xed\xa0\x80"; }, Status::kCorruptData,
       "UTF-8"},
      {"duplicate name", [](RawGguf& g) { g.tensors[1].name = "a"; }, Status::kCorruptData,
       "duplicate tensor name 'a'"},
      {"0 dims", [](RawGguf& g) { g.tensors[0].ne.clear(); }, Status::kCorruptData, "0 dimensions"},
      {"5 dims",
       [](RawGguf& g) {
         g.tensors[0].ne = {2, 1, 1, 1, 1};
       },
       Status::kCorruptData, "5 dimensions"},
      {"ne > int64", [](RawGguf& g) { g.tensors[0].ne = {uint64_t{1} << 63}; },
       Status::kCorruptData, "exceeds int64"},
      {"ne overflow",
       [](RawGguf& g) {
         g.tensors[0].ne = {uint64_t{1} << 32, uint64_t{1} << 32};
       },
       Status::kCorruptData, "overflows int64"},
      {"bytes overflow",
       [](RawGguf& g) {
         g.tensors[0].type = 28;
         g.tensors[0].ne = {uint64_t{1} << 62};
       },
       Status::kCorruptData, "overflows uint64"},
      {"removed type", [](RawGguf& g) { g.tensors[0].type = 4; }, Status::kUnsupportedFormat,
       "type id 4"},
      {"newer type", [](RawGguf& g) { g.tensors[0].type = 41; }, Status::kUnsupportedFormat,
       "type id 41"},
      {"row length", [](RawGguf& g) { g.tensors[1].ne = {33}; }, Status::kCorruptData,
       "row length 33"},
      {"unaligned", [](RawGguf& g) { g.tensors[1].offset = 8; }, Status::kCorruptData, "alignment"},
      {"overlap", [](RawGguf& g) { g.tensors[1].offset = 0; }, Status::kCorruptData, "(overlap)"},
      {"hole",
       [](RawGguf& g) {
         g.tensors[1].offset = 64;
         g.data.resize(128);
       },
       Status::kCorruptData, "(hole"},
      {"out of order",
       [](RawGguf& g) {
         std::swap(g.tensors[0], g.tensors[1]);
         g.tensors[0].offset = 32;
         g.tensors[1].offset = 0;
       },
       Status::kCorruptData, "expected 0"},
      {"truncated data", [](RawGguf& g) { g.data.resize(40); }, Status::kCorruptData,
       "past the end"},
      {"no data", [](RawGguf& g) { g.data.clear(); }, Status::kCorruptData, "past the end"},
      {"trailing bytes", [](RawGguf& g) { g.data.resize(96 + 1); }, Status::kCorruptData,
       "1 unexpected bytes"},
      {"trailing block", [](RawGguf& g) { g.data.resize(96 + 32); }, Status::kCorruptData,
       "32 unexpected bytes"},
  };
  const RawGguf valid = ValidRaw();
  {
    const std::vector<uint8_t> b = Encode(valid);
    const GgufFile f = GgufFile::FromMemory(b.data(), b.size());  // the base case is valid
    EXPECT_EQ(f.DequantizeToF32(f.Get("q"))[0], 0.0f);
    // ... also without the last tensor's padding (file ends right after its bytes).
    std::vector<uint8_t> unpadded = b;
    unpadded.resize(unpadded.size() - (96 - 66));
    EXPECT_NO_THROW(GgufFile::FromMemory(unpadded.data(), unpadded.size()));
  }
  for (const HostileCase& c : cases) {
    RawGguf g = valid;
    c.edit(g);
    const std::vector<uint8_t> b = Encode(g);
    try {
      GgufFile::FromMemory(b.data(), b.size());
      ADD_FAILURE() << c.what << ": accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.status(), c.status) << c.what << ": " << e.message();
      EXPECT_NE(e.message().find(c.needle), std::string::npos) << c.what << ": " << e.message();
    }
  }
  // Every truncation of the valid file (except the final padding) is refused cleanly.
  const std::vector<uint8_t> b = Encode(valid);
  const size_t header_and_data = b.size() - (96 - 66);
  for (size_t len = 0; len < header_and_data; ++len) {
    EXPECT_THROW(GgufFile::FromMemory(b.data(), len), Error) << len;
  }
  // Not GGUF at all.
  std::vector<uint8_t> st = {8, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
  st.resize(32, ' ');
  try {
    GgufFile::FromMemory(st.data(), st.size());
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), Status::kCorruptData);
    EXPECT_NE(e.message().find("not a GGUF file"), std::string::npos) << e.message();
  }
  EXPECT_THROW(GgufFile::FromMemory(b.data(), 3), Error);
}

TEST(GgufHostileTest, DecodeAndLoadRefuseWhatTheyCannotRepresent) {
  RawGguf g = ValidRaw();
  g.tensors.push_back({"k5", {256}, 13, 96});  // q5_K: geometry known, no decoder
  g.data.resize(96 + 176, 0);
  g.data.resize(96 + 192, 0);
  g.tensors.push_back({"i", {4}, 26, 96 + 192});  // i32
  g.data.resize(96 + 192 + 32, 0);
  g.tensors.push_back({"inf", {32}, 2, 96 + 192 + 32});  // q4_0 with d = +Inf (f16 0x7C00)
  g.data.resize(96 + 192 + 64, 0);
  g.data[96 + 192 + 32 + 1] = 0x7C;
  const std::vector<uint8_t> b = Encode(g);
  const GgufFile f = GgufFile::FromMemory(b.data(), b.size());
  for (const char* name : {"k5", "i"}) {
    try {
      LoadGgufTensor(f, f.Get(name));
      ADD_FAILURE() << name;
    } catch (const Error& e) {
      EXPECT_EQ(e.status(), Status::kUnsupportedFormat) << e.message();
    }
  }
  EXPECT_THROW(f.DequantizeToF32(f.Get("k5")), Error);
  EXPECT_THROW(f.DequantizeToF32(f.Get("i")), Error);
  try {
    LoadGgufTensor(f, f.Get("inf"));
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), Status::kCorruptData);
    EXPECT_NE(e.message().find("'inf'"), std::string::npos) << e.message();
  }
  const std::vector<float> v = f.DequantizeToF32(f.Get("inf"));  // ggml's values: Inf * (code-8)
  EXPECT_TRUE(std::isnan(v[0]) || std::isinf(v[0]));
  EXPECT_EQ(LoadGgufTensor(f, f.Get("inf"), GgufLoadMode::kFloat32).format(), Format::kF32);
  DType d;
  EXPECT_TRUE(GgufPlainDType(26, &d));
  EXPECT_EQ(d, DType::kI32);
  EXPECT_FALSE(GgufPlainDType(2, &d));
}

TEST_F(GgufTest, OpenSniffsAndReportsOsErrors) {
  EXPECT_TRUE(IsGgufFile(GgufPath("q4_0")));
  EXPECT_FALSE(IsGgufFile(kDataDir + "source-f32.safetensors"));
  EXPECT_FALSE(IsGgufFile(Path("missing")));
  try {
    GgufFile::Open(Path("missing.gguf"));
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), Status::kIoError);
    EXPECT_NE(e.message().find("No such file or directory"), std::string::npos) << e.message();
  }
  try {
    GgufFile::Open(kDataDir + "source-f32.safetensors");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), Status::kCorruptData);
    EXPECT_NE(e.message().find("not a GGUF file"), std::string::npos) << e.message();
  }
  WriteFile(Path("short.gguf"), {'G', 'G', 'U', 'F', 3, 0});
  EXPECT_THROW(GgufFile::Open(Path("short.gguf")), Error);
}

TEST_F(GgufTest, MutationReplayOnlyCleanErrors) {
  std::vector<std::vector<uint8_t>> seeds;
  const std::string corpus = std::string(LOWBIT_SOURCE_DIR) + "/fuzz/corpus/fuzz_gguf/";
  for (const char* name : {"metadata_types", "every_decodable_type"}) {
    seeds.push_back(ReadFile(corpus + name));
    ASSERT_FALSE(seeds.back().empty()) << name;
    ASSERT_EQ(fuzz::GgufHarness(seeds.back().data(), seeds.back().size()),
              fuzz::Outcome::kAccepted);
  }
  seeds.push_back(Encode(ValidRaw()));
  std::mt19937_64 rng(2024);
  constexpr int kMutations = 20000;
  const auto [accepted, rejected] =
      fuzz::ReplayGgufMutations(seeds, rng, kMutations, /*max_edits=*/3);
  EXPECT_GT(accepted, 500);
  EXPECT_GT(rejected, kMutations / 2);
  std::printf("GGUF mutation replay: %d accepted, %d rejected\n", accepted, rejected);
}

}  // namespace
}  // namespace io
}  // namespace lowbit
