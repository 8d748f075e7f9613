// Tests of checkpoint layouts: bitsandbytes 4-/8-bit files built by hand (both directions, raw
// bytes re-parsed independently), lowbit-native bit-exact round trips for every format, hostile
// files, atomic saves, and a deterministic mutation replay over quantized checkpoints.
#include "lowbit/io/checkpoint.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "fuzz/harness.h"
#include "lowbit/quantize.h"
#include "reference/reference.h"
#include "test_files.h"

namespace lowbit {
namespace io {
namespace {

using json = nlohmann::json;

// ---- independent tables (bnb-formats.md §1.1, §1.2; IEEE bits) ----------------------------------
constexpr uint32_t kNF4Bits[16] = {0xbf800000, 0xbf3239b1, 0xbf066b30, 0xbeca32a0,
                                   0xbe91a24d, 0xbe3d353f, 0xbdba7871, 0x00000000,
                                   0x3da2faff, 0x3e24cae3, 0x3e7c04dd, 0x3ead033a,
                                   0x3ee1a4b8, 0x3f1007ab, 0x3f3913b3, 0x3f800000};
constexpr uint32_t kFP4Bits[16] = {0x00000000, 0x3baaaaab, 0x3f2aaaab, 0x3f800000,
                                   0x3eaaaaab, 0x3f000000, 0x3e2aaaab, 0x3e800000,
                                   0x80000000, 0xbbaaaaab, 0xbf2aaaab, 0xbf800000,
                                   0xbeaaaaab, 0xbf000000, 0xbe2aaaab, 0xbe800000};
std::vector<float> Table(const uint32_t (&bits)[16]) {
  std::vector<float> t;
  for (const uint32_t b : bits) t.push_back(F32FromBits(b));
  return t;
}

// ---- byte helpers ---------------------------------------------------------------------------------
template <class T>
std::vector<uint8_t> Bytes(const std::vector<T>& v) {
  std::vector<uint8_t> b(v.size() * sizeof(T));
  if (!b.empty()) std::memcpy(b.data(), v.data(), b.size());
  return b;
}
std::vector<uint8_t> Bytes(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }
std::vector<float> Floats(const uint8_t* p, size_t bytes) {
  std::vector<float> v(bytes / 4);
  if (!v.empty()) std::memcpy(v.data(), p, bytes);
  return v;
}
using testing::ReadFile;
using testing::WriteFile;

// A safetensors image from a header string and the data region, per the spec (LE64 length).
std::vector<uint8_t> ImageFromHeader(const std::string& header, const std::vector<uint8_t>& data) {
  const uint64_t n = header.size();
  std::vector<uint8_t> b(8 + header.size() + data.size());
  for (int i = 0; i < 8; ++i) b[static_cast<size_t>(i)] = static_cast<uint8_t>(n >> (8 * i));
  std::copy(header.begin(), header.end(), b.begin() + 8);
  if (!data.empty()) std::memcpy(b.data() + 8 + header.size(), data.data(), data.size());
  return b;
}

// One tensor of a hand-built file.
struct RawTensor {
  std::string name;
  std::string dtype;  // safetensors dtype string
  Shape shape;
  std::vector<uint8_t> bytes;
};
std::string ShapeText(const Shape& s) {
  std::string t = "[";
  for (size_t i = 0; i < s.size(); ++i) t += (i ? "," : "") + std::to_string(s[i]);
  return t + "]";
}
// The header text huggingface/safetensors (Rust) would write: compact JSON, tensors in the given
// order with contiguous offsets, `{"format":"pt"}` metadata, padded with spaces to 8 bytes.
std::string RawHeader(const std::vector<RawTensor>& ts, uint64_t* data_bytes) {
  std::string h = "{\"__metadata__\":{\"format\":\"pt\"}";
  uint64_t off = 0;
  for (const RawTensor& t : ts) {
    h += ",\"" + t.name + "\":{\"dtype\":\"" + t.dtype + "\",\"shape\":" + ShapeText(t.shape) +
         ",\"data_offsets\":[" + std::to_string(off) + "," +
         std::to_string(off + t.bytes.size()) + "]}";
    off += t.bytes.size();
  }
  h += "}";
  h.append((8 - h.size() % 8) % 8, ' ');
  *data_bytes = off;
  return h;
}
std::vector<uint8_t> RawImage(const std::vector<RawTensor>& ts) {
  uint64_t n = 0;
  const std::string h = RawHeader(ts, &n);
  std::vector<uint8_t> data;
  for (const RawTensor& t : ts) data.insert(data.end(), t.bytes.begin(), t.bytes.end());
  return ImageFromHeader(h, data);
}

// An independent reader: nlohmann on the raw header, slices of the data region.
struct ParsedTensor {
  std::string dtype;
  Shape shape;
  std::vector<uint8_t> bytes;
};
std::map<std::string, ParsedTensor> ParseRaw(const std::vector<uint8_t>& file) {
  EXPECT_GE(file.size(), 8u);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | file[static_cast<size_t>(i)];
  const json h = json::parse(file.begin() + 8, file.begin() + 8 + static_cast<std::ptrdiff_t>(n));
  const size_t data0 = 8 + n;
  EXPECT_EQ(data0 % 8, 0u) << "data region not 8-byte aligned";
  std::map<std::string, ParsedTensor> out;
  for (auto it = h.begin(); it != h.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    ParsedTensor t;
    t.dtype = it.value()["dtype"].get<std::string>();
    t.shape = it.value()["shape"].get<Shape>();
    const uint64_t b = it.value()["data_offsets"][0].get<uint64_t>();
    const uint64_t e = it.value()["data_offsets"][1].get<uint64_t>();
    t.bytes.assign(file.begin() + static_cast<std::ptrdiff_t>(data0 + b),
                   file.begin() + static_cast<std::ptrdiff_t>(data0 + e));
    out.emplace(it.key(), std::move(t));
  }
  return out;
}

std::vector<float> RandomNormal(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> x(n);
  for (float& v : x) v = d(rng);
  return x;
}

// out[i] = f32(code[nibble i] * absmax[i / block]) computed straight from the formula
// (bnb-formats.md §1.4) with the tables as written into the file.
std::vector<float> Expected4bit(const std::vector<uint8_t>& packed, int64_t n, int64_t block,
                                const std::vector<float>& code16, const std::vector<float>& absmax) {
  std::vector<float> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t b = packed[static_cast<size_t>(i / 2)];
    const uint8_t nib = (i % 2 == 0) ? (b >> 4) : (b & 0x0F);
    out[static_cast<size_t>(i)] = code16[nib] * absmax[static_cast<size_t>(i / block)];
  }
  return out;
}
// §3: absmax[i] = f32(f32(code2[q[i]] * nested_absmax[i / 256]) + offset).
std::vector<float> ExpectedNestedAbsmax(const std::vector<uint8_t>& q,
                                        const std::vector<float>& code2,
                                        const std::vector<float>& nested_absmax,
                                        int64_t nested_block, float offset) {
  std::vector<float> out(q.size());
  for (size_t i = 0; i < q.size(); ++i) {
    const float prod = code2[q[i]] * nested_absmax[i / static_cast<size_t>(nested_block)];
    out[i] = prod + offset;
  }
  return out;
}

void ExpectBitEqual(const std::vector<float>& a, const std::vector<float>& b, const char* what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(F32Bits(a[i]), F32Bits(b[i])) << what << " index " << i << ": " << a[i] << " vs " << b[i];
  }
}

// A fresh, empty directory per test.
class CheckpointTest : public testing::TempDirTest {
 protected:
  CheckpointTest() : TempDirTest("lowbit_ckpt_") {}
};

// ---- a bitsandbytes NF4 double-quant module, built by hand ---------------------------------------

// Shape [13, 633] = 8229 elements (odd: the last low nibble is padding), blocksize 32 -> 258
// blocks -> 2 nested blocks of 256 (the second one partial).
constexpr int64_t kRows = 13, kCols = 633, kN = kRows * kCols, kBlock = 32;
constexpr int64_t kBlocks = (kN + kBlock - 1) / kBlock;
const char kPrefix[] = "model.layers.0.mlp.down_proj.";

struct BnbNestedModule {
  std::vector<uint8_t> packed;
  std::vector<uint8_t> absmax_codes;
  std::vector<float> quant_map;       // as written into the file
  std::vector<float> nested_absmax;
  std::vector<float> nested_quant_map;  // as written into the file
  float offset = 2.375f;                // exact in binary; Python repr "2.375"
  std::string state_json;
  std::vector<RawTensor> tensors;

  std::vector<float> Expected() const {
    return Expected4bit(packed, kN, kBlock, quant_map,
                        ExpectedNestedAbsmax(absmax_codes, nested_quant_map, nested_absmax, 256,
                                             offset));
  }
};

BnbNestedModule MakeBnbNestedModule(float map_scale = 1.0f) {
  BnbNestedModule m;
  const std::vector<float> x = RandomNormal(kN, 7);
  m.packed.resize((kN + 1) / 2);
  std::vector<float> absmax(kBlocks);
  ref::Quantize4bitBlockwise(Format::kNF4, x.data(), kN, kBlock, m.packed.data(), absmax.data());
  const NestedState ns = ref::CompressStatistics(absmax.data(), kBlocks, 256, m.offset);
  m.absmax_codes = ns.codes;
  m.nested_absmax = ns.absmax;
  m.quant_map = Table(kNF4Bits);
  m.nested_quant_map = ns.code;
  // A loader must use the maps stored in the file (bnb-formats.md §2.1): scaled maps make any
  // use of built-in tables visible.
  for (float& v : m.quant_map) v *= map_scale;
  for (float& v : m.nested_quant_map) v *= map_scale;
  m.state_json =
      "{\"quant_type\": \"nf4\", \"blocksize\": 32, \"dtype\": \"bfloat16\", \"shape\": [13, "
      "633], \"nested_blocksize\": 256, \"nested_dtype\": \"float32\", \"nested_offset\": 2.375}";
  const std::string w = std::string(kPrefix) + "weight";
  m.tensors = {
      {std::string(kPrefix) + "bias", "BF16", {kRows}, std::vector<uint8_t>(2 * kRows, 0x3f)},
      {w, "U8", {(kN + 1) / 2, 1}, m.packed},
      {w + ".absmax", "U8", {kBlocks}, m.absmax_codes},
      {w + ".nested_absmax", "F32", {static_cast<int64_t>(m.nested_absmax.size())},
       Bytes(m.nested_absmax)},
      {w + ".nested_quant_map", "F32", {256}, Bytes(m.nested_quant_map)},
      {w + ".quant_map", "F32", {16}, Bytes(m.quant_map)},
      {w + ".quant_state.bitsandbytes__nf4", "U8", {static_cast<int64_t>(m.state_json.size())},
       Bytes(m.state_json)},
  };
  return m;
}

TEST_F(CheckpointTest, HandBuiltBnbNF4DoubleQuantLoadsExactly) {
  for (const float map_scale : {1.0f, 0.5f}) {
    const BnbNestedModule m = MakeBnbNestedModule(map_scale);
    ASSERT_EQ(m.nested_absmax.size(), 2u);
    WriteFile(Path("bnb.safetensors"), RawImage(m.tensors));
    const SafetensorsFile f = SafetensorsFile::Open(Path("bnb.safetensors"));
    const QuantizedTensor q = LoadQuantizedTensor(f, kPrefix);
    EXPECT_EQ(q.format(), Format::kNF4);
    EXPECT_EQ(q.shape(), (Shape{kRows, kCols}));
    EXPECT_EQ(q.state.dtype, DType::kBF16);
    EXPECT_EQ(q.state.granularity, Granularity::kBlock);
    EXPECT_EQ(q.state.block_size, kBlock);
    ASSERT_TRUE(q.state.nested.has_value());
    EXPECT_EQ(q.state.nested->block_size, 256);
    EXPECT_EQ(q.state.nested->offset, m.offset);
    EXPECT_EQ(q.data, m.packed);
    ExpectBitEqual(q.state.codebook, m.quant_map, "quant_map");
    ExpectBitEqual(DequantizeToF32(q), m.Expected(), "dequantized weight");

    const std::vector<CheckpointEntry> list = ListQuantizedModules(f);
    ASSERT_EQ(list.size(), 2u);  // bias (plain) and the weight module
    EXPECT_EQ(list[0].name, std::string(kPrefix) + "bias");
    EXPECT_EQ(list[0].layout, TensorLayout::kDense);
    const CheckpointEntry& e = list[1];
    EXPECT_EQ(e.name, std::string(kPrefix) + "weight");
    EXPECT_EQ(e.prefix, kPrefix);
    EXPECT_EQ(e.layout, TensorLayout::kBitsandbytes);
    EXPECT_EQ(e.format_name, "nf4");
    EXPECT_EQ(e.block_size, kBlock);
    EXPECT_TRUE(e.double_quant);
    EXPECT_EQ(e.keys.size(), 6u);
    int64_t bytes = 0;
    for (size_t i = 1; i < m.tensors.size(); ++i) bytes += static_cast<int64_t>(m.tensors[i].bytes.size());
    EXPECT_EQ(e.bytes, bytes);
    EXPECT_DOUBLE_EQ(e.bits_per_weight, 8.0 * static_cast<double>(bytes) / kN);
  }
}

TEST_F(CheckpointTest, HandBuiltBnbFP4AndInt8LoadExactly) {
  // FP4, no double quant, float16 original, shape [7, 64], blocksize 64 (7 blocks).
  const int64_t rows = 7, cols = 64, n = rows * cols;
  const std::vector<float> x = RandomNormal(static_cast<size_t>(n), 11, 0.05f);
  std::vector<uint8_t> packed(static_cast<size_t>(n / 2));
  std::vector<float> absmax(7);
  ref::Quantize4bitBlockwise(Format::kFP4, x.data(), n, 64, packed.data(), absmax.data());
  const std::string js =
      "{\"quant_type\": \"fp4\", \"blocksize\": 64, \"dtype\": \"float16\", \"shape\": [7, 64]}";
  // LLM.int8: CB int8 [5, 7], SCB float32 [5], weight_format 0 ("row").
  std::vector<int8_t> cb(35);
  for (size_t i = 0; i < cb.size(); ++i) cb[i] = static_cast<int8_t>(static_cast<int>(i * 37 % 255) - 127);
  const std::vector<float> scb = {0.5f, 1.25f, 3.0f, 0.001f, 7.5f};
  const std::vector<RawTensor> ts = {
      {"fc.weight", "U8", {n / 2, 1}, packed},
      {"fc.weight.absmax", "F32", {7}, Bytes(absmax)},
      {"fc.weight.quant_map", "F32", {16}, Bytes(Table(kFP4Bits))},
      {"fc.weight.quant_state.bitsandbytes__fp4", "U8", {static_cast<int64_t>(js.size())}, Bytes(js)},
      {"lin8.SCB", "F32", {5}, Bytes(scb)},
      {"lin8.weight", "I8", {5, 7}, Bytes(cb)},
      {"lin8.weight_format", "U8", {}, {0}},
  };
  const std::vector<uint8_t> image = RawImage(ts);
  const SafetensorsFile f = SafetensorsFile::FromMemory(image.data(), image.size());

  const QuantizedTensor q4 = LoadQuantizedTensor(f, "fc.");
  EXPECT_EQ(q4.format(), Format::kFP4);
  EXPECT_EQ(q4.state.dtype, DType::kF16);
  EXPECT_FALSE(q4.state.nested.has_value());
  ExpectBitEqual(q4.state.scales, absmax, "absmax");
  ExpectBitEqual(DequantizeToF32(q4), Expected4bit(packed, n, 64, Table(kFP4Bits), absmax), "fp4");

  const QuantizedTensor q8 = LoadQuantizedTensor(f, "lin8.");
  EXPECT_EQ(q8.format(), Format::kInt8);
  EXPECT_EQ(q8.state.granularity, Granularity::kRow);
  EXPECT_EQ(q8.state.dtype, DType::kF16);  // Int8Params are float16; the file does not say
  std::vector<float> want(35);
  for (size_t i = 0; i < 35; ++i) {
    // int8_vectorwise_dequant: A * stats * 7.874015718698502e-3 (f32(1/127)), in float32.
    want[i] = (static_cast<float>(cb[i]) * scb[i / 7]) * 7.874015718698502e-3f;
  }
  ExpectBitEqual(DequantizeToF32(q8), want, "int8");

  const std::vector<CheckpointEntry> list = ListQuantizedModules(f);
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].format_name, "fp4");
  EXPECT_FALSE(list[0].double_quant);
  EXPECT_EQ(list[1].name, "lin8.weight");
  EXPECT_EQ(list[1].format_name, "int8");
  EXPECT_EQ(list[1].keys.size(), 3u);
  EXPECT_EQ(list[1].bytes, 35 + 20 + 1);
}

// ---- saving in the bitsandbytes layout, re-parsed without lowbit's reader -------------------------

TEST_F(CheckpointTest, BnbSaveMatchesIndependentParse) {
  const int64_t rows = 20, cols = 900, n = rows * cols;  // 18000 -> 282 blocks of 64, 2 nested
  const std::vector<float> x = RandomNormal(static_cast<size_t>(n), 3);
  QuantizeOptions o;
  o.block_size = 64;
  o.double_quant = true;
  o.nested_offset = 0.0107421875f;  // exact; Python repr "0.0107421875"
  const QuantizedTensor nf4 = Quantize(Format::kNF4, {x.data(), DType::kF32, {rows, cols}}, o);
  const std::vector<float> x2 = RandomNormal(6 * 50, 4);
  std::vector<uint16_t> x2h(x2.size());
  for (size_t i = 0; i < x2.size(); ++i) x2h[i] = F32ToF16(x2[i]).bits;
  const QuantizedTensor fp4 = QuantizeFP4({x2h.data(), DType::kF16, {6, 50}}, 128, false);
  const QuantizedTensor i8 = QuantizeInt8({x2.data(), DType::kF32, {6, 50}});
  const std::vector<float> norm = {1.0f, 2.0f, 3.0f};
  const std::string P = "model.layers.0.self_attn.q_proj.";
  SaveCheckpoint(Path("out.safetensors"),
                 {{P, {}, &nf4, TensorLayout::kBitsandbytes},
                  {"model.layers.0.mlp.up_proj.", {}, &fp4, TensorLayout::kBitsandbytes},
                  {"model.layers.0.mlp.gate_proj.", {}, &i8, TensorLayout::kBitsandbytes},
                  {"model.norm.weight", {norm.data(), DType::kF32, {3}}, nullptr, TensorLayout::kAuto}},
                 {{"format", "pt"}});
  EXPECT_EQ(ListDir(), std::vector<std::string>{"out.safetensors"});
  const std::map<std::string, ParsedTensor> t = ParseRaw(ReadFile(Path("out.safetensors")));
  std::vector<std::string> keys;
  for (const auto& kv : t) keys.push_back(kv.first);
  const std::string W = P + "weight", U = "model.layers.0.mlp.up_proj.weight",
                    G = "model.layers.0.mlp.gate_proj.";
  const std::vector<std::string> want_keys = {
      G + "SCB", G + "weight", G + "weight_format",
      "model.layers.0.mlp.up_proj.weight", U + ".absmax", U + ".quant_map",
      U + ".quant_state.bitsandbytes__fp4",
      W, W + ".absmax", W + ".nested_absmax", W + ".nested_quant_map", W + ".quant_map",
      W + ".quant_state.bitsandbytes__nf4", "model.norm.weight"};
  EXPECT_EQ(keys, want_keys);

  // NF4 + double quant: bytes recomputed with the reference codecs.
  const int64_t nblocks = (n + 63) / 64;
  std::vector<uint8_t> packed(static_cast<size_t>((n + 1) / 2));
  std::vector<float> absmax(static_cast<size_t>(nblocks));
  ref::Quantize4bitBlockwise(Format::kNF4, x.data(), n, 64, packed.data(), absmax.data());
  const NestedState ns = ref::CompressStatistics(absmax.data(), nblocks, 256, 0.0107421875f);
  EXPECT_EQ(t.at(W).dtype, "U8");
  EXPECT_EQ(t.at(W).shape, (Shape{n / 2, 1}));
  EXPECT_EQ(t.at(W).bytes, packed);
  EXPECT_EQ(t.at(W + ".absmax").dtype, "U8");
  EXPECT_EQ(t.at(W + ".absmax").shape, (Shape{nblocks}));
  EXPECT_EQ(t.at(W + ".absmax").bytes, ns.codes);
  EXPECT_EQ(t.at(W + ".nested_absmax").dtype, "F32");
  EXPECT_EQ(t.at(W + ".nested_absmax").shape, (Shape{2}));
  EXPECT_EQ(t.at(W + ".nested_absmax").bytes, Bytes(ns.absmax));
  EXPECT_EQ(t.at(W + ".quant_map").shape, (Shape{16}));
  EXPECT_EQ(t.at(W + ".quant_map").bytes, Bytes(Table(kNF4Bits)));
  EXPECT_EQ(t.at(W + ".nested_quant_map").shape, (Shape{256}));
  const std::vector<float> map = Floats(t.at(W + ".nested_quant_map").bytes.data(), 1024);
  // Signed dynamic map, bnb-formats.md §2.1 (spot checks of the published table).
  EXPECT_EQ(F32Bits(map[0]), 0xbf7e3333u);
  EXPECT_EQ(F32Bits(map[127]), 0u);
  EXPECT_EQ(F32Bits(map[128]), 0x3513a3b7u);
  EXPECT_EQ(F32Bits(map[129]), 0x365a1a94u);
  EXPECT_EQ(F32Bits(map[254]), 0x3f7e3333u);
  EXPECT_EQ(F32Bits(map[255]), 0x3f800000u);
  const std::string state(t.at(W + ".quant_state.bitsandbytes__nf4").bytes.begin(),
                          t.at(W + ".quant_state.bitsandbytes__nf4").bytes.end());
  EXPECT_EQ(state,
            "{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"float32\", \"shape\": [20, "
            "900], \"nested_blocksize\": 256, \"nested_dtype\": \"float32\", \"nested_offset\": "
            "0.0107421875}");
  EXPECT_EQ(t.at(W + ".quant_state.bitsandbytes__nf4").shape,
            (Shape{static_cast<int64_t>(state.size())}));

  // FP4, no nesting, float16 original; 300 elements, blocksize 128 (3 blocks).
  std::vector<float> x2r(x2.size());
  for (size_t i = 0; i < x2.size(); ++i) x2r[i] = F16ToF32(F16{x2h[i]});
  std::vector<uint8_t> packed2(150);
  std::vector<float> absmax2(3);
  ref::Quantize4bitBlockwise(Format::kFP4, x2r.data(), 300, 128, packed2.data(), absmax2.data());
  EXPECT_EQ(t.at(U).shape, (Shape{150, 1}));
  EXPECT_EQ(t.at(U).bytes, packed2);
  EXPECT_EQ(t.at(U + ".absmax").dtype, "F32");
  EXPECT_EQ(t.at(U + ".absmax").bytes, Bytes(absmax2));
  EXPECT_EQ(t.at(U + ".quant_map").bytes, Bytes(Table(kFP4Bits)));
  const std::vector<uint8_t>& s2 = t.at(U + ".quant_state.bitsandbytes__fp4").bytes;
  EXPECT_EQ(std::string(s2.begin(), s2.end()),
            "{\"quant_type\": \"fp4\", \"blocksize\": 128, \"dtype\": \"float16\", \"shape\": [6, "
            "50]}");

  // LLM.int8: weight int8 [6, 50], SCB = row absmax (float32), weight_format u8 0-dim = 0.
  EXPECT_EQ(t.at(G + "weight").dtype, "I8");
  EXPECT_EQ(t.at(G + "weight").shape, (Shape{6, 50}));
  EXPECT_EQ(t.at(G + "SCB").dtype, "F32");
  EXPECT_EQ(t.at(G + "SCB").shape, (Shape{6}));
  EXPECT_EQ(t.at(G + "weight_format").dtype, "U8");
  EXPECT_EQ(t.at(G + "weight_format").shape, Shape{});
  EXPECT_EQ(t.at(G + "weight_format").bytes, std::vector<uint8_t>{0});
  const std::vector<float> scb = Floats(t.at(G + "SCB").bytes.data(), 24);
  for (int r = 0; r < 6; ++r) {
    float amax = 0;
    for (int c = 0; c < 50; ++c) amax = std::max(amax, std::fabs(x2[static_cast<size_t>(r * 50 + c)]));
    EXPECT_EQ(scb[static_cast<size_t>(r)], amax);
    for (int c = 0; c < 50; ++c) {
      const int8_t code = static_cast<int8_t>(t.at(G + "weight").bytes[static_cast<size_t>(r * 50 + c)]);
      EXPECT_LE(std::fabs(code - x2[static_cast<size_t>(r * 50 + c)] * 127.0f / amax), 0.5f + 1e-4f);
    }
  }
  EXPECT_EQ(t.at("model.norm.weight").bytes, Bytes(norm));
  // And lowbit reads back what it wrote.
  const SafetensorsFile f = SafetensorsFile::Open(Path("out.safetensors"));
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(DequantizeToF32(LoadQuantizedTensor(f, P)), DequantizeToF32(nf4));
}

TEST_F(CheckpointTest, RealModelFileReadsAndRequantizesToBnbLayout) {
  // stories260K: a real checkpoint written by another safetensors implementation.
  const std::string src = std::string(LOWBIT_SOURCE_DIR) + "/models/stories260K/stories260K.safetensors";
  const std::vector<uint8_t> raw_bytes = ReadFile(src);
  ASSERT_GT(raw_bytes.size(), 1000u) << src;
  const std::map<std::string, ParsedTensor> raw = ParseRaw(raw_bytes);
  const SafetensorsFile f = SafetensorsFile::Open(src);
  ASSERT_EQ(f.tensors().size(), raw.size());
  for (const TensorInfo& t : f.tensors()) {
    const ParsedTensor& r = raw.at(t.name);
    EXPECT_EQ(SafetensorsDTypeName(t.dtype), r.dtype) << t.name;
    EXPECT_EQ(t.shape, r.shape) << t.name;
    ASSERT_EQ(t.size, r.bytes.size()) << t.name;
    EXPECT_EQ(std::memcmp(f.data(t), r.bytes.data(), t.size), 0) << t.name;
  }
  EXPECT_EQ(f.metadata().count("config"), 1u);
  // Quantize every 2-D linear weight to NF4 + double quant in the bitsandbytes layout, keep the
  // rest (norms, embeddings) as plain tensors, and read it all back.
  std::vector<QuantizedTensor> qs;
  qs.reserve(f.tensors().size());
  std::vector<CheckpointItem> items;
  std::vector<std::vector<float>> floats;
  floats.reserve(f.tensors().size());
  for (const TensorInfo& t : f.tensors()) {
    const bool linear = t.shape.size() == 2 && t.name.rfind("tok_embeddings", 0) != 0;
    floats.push_back(f.CopyAsF32(t));
    if (linear) {
      qs.push_back(QuantizeNF4({floats.back().data(), DType::kF32, t.shape}, 64, true));
      items.push_back({t.name.substr(0, t.name.size() - 6), {}, &qs.back(), TensorLayout::kBitsandbytes});
    } else {
      items.push_back({t.name, f.View(t), nullptr, TensorLayout::kAuto});
    }
  }
  SaveCheckpoint(Path("q.safetensors"), items, f.metadata());
  const SafetensorsFile g = SafetensorsFile::Open(Path("q.safetensors"));
  EXPECT_EQ(g.metadata(), f.metadata());
  size_t quantized = 0;
  for (const CheckpointEntry& e : ListQuantizedModules(g)) {
    if (e.layout != TensorLayout::kBitsandbytes) {
      EXPECT_EQ(std::memcmp(g.data(g.Get(e.name)), f.data(f.Get(e.name)), static_cast<size_t>(e.bytes)), 0);
      continue;
    }
    ++quantized;
    EXPECT_EQ(e.format_name, "nf4");
    EXPECT_GT(e.bits_per_weight, 4.0) << e.name;  // small matrices: the 1 KiB maps dominate
    const QuantizedTensor q = LoadQuantizedTensor(g, e.prefix);
    const std::vector<float> orig = f.CopyAsF32(f.Get(e.name));
    const ErrorStats st = EstimateError({orig.data(), DType::kF32, q.shape()},
                                        {DequantizeToF32(q).data(), DType::kF32, q.shape()});
    EXPECT_LT(st.rel_l2, 0.15) << e.name;  // NF4 on Gaussian-like weights: ~0.1
  }
  EXPECT_EQ(quantized, qs.size());
  EXPECT_EQ(quantized, 35u);  // 5 layers x (wq wk wv wo w1 w2 w3)
}

TEST(CheckpointSeedTest, PythonWrittenSeedFilesLoad) {
  // fuzz/corpus/* are written by fuzz/make_seeds.py (Python's json + struct, another writer):
  // every seed must be a valid file in its layout, or the fuzzers start from rejections.
  const std::string dir = std::string(LOWBIT_SOURCE_DIR) + "/fuzz/corpus/";
  const std::map<std::string, std::string> layouts = {{"bnb_nf4_nested", "nf4"},
                                                      {"bnb_fp4", "fp4"},
                                                      {"bnb_int8", "int8"},
                                                      {"lowbit_int4", "int4"}};
  for (const char* name : {"bnb_nf4_nested", "bnb_fp4", "bnb_int8", "lowbit_int4", "plain"}) {
    const std::vector<uint8_t> b = ReadFile(dir + "fuzz_safetensors/" + name);
    ASSERT_FALSE(b.empty()) << name;
    EXPECT_EQ(fuzz::SafetensorsHarness(b.data(), b.size()), fuzz::Outcome::kAccepted) << name;
    const SafetensorsFile f = SafetensorsFile::FromMemory(b.data(), b.size());
    int quantized = 0;
    for (const CheckpointEntry& e : ListQuantizedModules(f)) {
      if (e.layout == TensorLayout::kDense) continue;
      ++quantized;
      EXPECT_EQ(e.format_name, layouts.at(name)) << name;
    }
    EXPECT_EQ(quantized, layouts.count(name) ? 1 : 0) << name;
  }
  for (const char* name : {"nf4_nested", "fp4"}) {
    const std::vector<uint8_t> b = ReadFile(dir + "fuzz_quant_state/" + name);
    EXPECT_EQ(fuzz::QuantStateJsonHarness(b.data(), b.size()), fuzz::Outcome::kAccepted) << name;
  }
}

TEST(CheckpointJsonTest, QuantStateJsonAndPythonRepr) {
  // Python 3 repr() of these doubles.
  const std::vector<std::pair<double, std::string>> reprs = {
      {0.0, "0.0"}, {-0.5, "-0.5"}, {123.0, "123.0"}, {1e-5, "1e-05"}, {1e-4, "0.0001"},
      {1e16, "1e+16"}, {1234567890123456.0, "1234567890123456.0"}, {1.5e16, "1.5e+16"},
      {static_cast<double>(0.1f), "0.10000000149011612"},
      {static_cast<double>(0.010713756f), "0.010713756084442139"}, {2.5e-300, "2.5e-300"},
      {-3.0e200, "-3e+200"}};
  for (const auto& [v, s] : reprs) EXPECT_EQ(PythonFloatRepr(v), s) << v;
  EXPECT_THROW(PythonFloatRepr(NAN), Error);

  BnbQuantStateJson s;
  s.quant_type = Format::kNF4;
  s.blocksize = 64;
  s.dtype = DType::kBF16;
  s.shape = {11008, 4096};
  s.nested = true;
  s.nested_blocksize = 256;
  s.nested_offset = 0.010713756f;
  // The example of bnb-formats.md §5.1, byte for byte.
  const std::string want =
      "{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"bfloat16\", \"shape\": [11008, "
      "4096], \"nested_blocksize\": 256, \"nested_dtype\": \"float32\", \"nested_offset\": "
      "0.010713756084442139}";
  EXPECT_EQ(FormatBnbQuantStateJson(s), want);
  const BnbQuantStateJson p = ParseBnbQuantStateJson(want);
  EXPECT_EQ(p.quant_type, Format::kNF4);
  EXPECT_EQ(p.shape, s.shape);
  EXPECT_EQ(p.nested_offset, s.nested_offset);
  s.quant_type = Format::kInt8;
  EXPECT_THROW(FormatBnbQuantStateJson(s), Error);

  BnbQuantizationConfig c;
  c.quant_type = Format::kNF4;
  c.use_double_quant = true;
  c.compute_dtype = DType::kBF16;
  const json j = json::parse(BnbQuantizationConfigJson(c));
  EXPECT_EQ(j.at("quant_method"), "bitsandbytes");
  EXPECT_EQ(j.at("load_in_4bit"), true);
  EXPECT_EQ(j.at("load_in_8bit"), false);
  EXPECT_EQ(j.at("bnb_4bit_quant_type"), "nf4");
  EXPECT_EQ(j.at("bnb_4bit_use_double_quant"), true);
  EXPECT_EQ(j.at("bnb_4bit_compute_dtype"), "bfloat16");
  EXPECT_EQ(j.at("bnb_4bit_quant_storage"), "uint8");
  EXPECT_EQ(j.at("llm_int8_threshold"), 6.0);
  EXPECT_TRUE(j.at("llm_int8_skip_modules").is_null());
  c.load_in_4bit = false;
  c.llm_int8_skip_modules = {"lm_head"};
  const json j8 = json::parse(BnbQuantizationConfigJson(c));
  EXPECT_EQ(j8.at("load_in_8bit"), true);
  EXPECT_EQ(j8.at("llm_int8_skip_modules"), json::array({"lm_head"}));
}

// ---- lowbit native layout: bit-exact round trip for every format ---------------------------------

struct RoundTripCase {
  Format format;
  Granularity granularity;
  int64_t block;
  bool double_quant;
  DType input;
  Shape shape;
};

void ExpectSameTensor(const QuantizedTensor& a, const QuantizedTensor& b, const std::string& what) {
  EXPECT_EQ(a.format(), b.format()) << what;
  EXPECT_EQ(a.shape(), b.shape()) << what;
  EXPECT_EQ(a.state.dtype, b.state.dtype) << what;
  EXPECT_EQ(a.state.granularity, b.state.granularity) << what;
  EXPECT_EQ(a.state.block_size, b.state.block_size) << what;
  EXPECT_EQ(a.data, b.data) << what;
  EXPECT_EQ(Bytes(a.state.scales), Bytes(b.state.scales)) << what;
  EXPECT_EQ(a.state.zero_points, b.state.zero_points) << what;
  EXPECT_EQ(Bytes(a.state.codebook), Bytes(b.state.codebook)) << what;
  EXPECT_EQ(F32Bits(a.state.tensor_scale), F32Bits(b.state.tensor_scale)) << what;
  ASSERT_EQ(a.state.nested.has_value(), b.state.nested.has_value()) << what;
  if (a.state.nested) {
    EXPECT_EQ(a.state.nested->codes, b.state.nested->codes) << what;
    EXPECT_EQ(Bytes(a.state.nested->absmax), Bytes(b.state.nested->absmax)) << what;
    EXPECT_EQ(Bytes(a.state.nested->code), Bytes(b.state.nested->code)) << what;
    EXPECT_EQ(a.state.nested->block_size, b.state.nested->block_size) << what;
    EXPECT_EQ(F32Bits(a.state.nested->offset), F32Bits(b.state.nested->offset)) << what;
  }
  const std::vector<float> da = DequantizeToF32(a), db = DequantizeToF32(b);
  EXPECT_EQ(Bytes(da), Bytes(db)) << what;
}

TEST_F(CheckpointTest, LowbitLayoutRoundTripsEveryFormatBitExactly) {
  using G = Granularity;
  const std::vector<RoundTripCase> cases = {
      {Format::kF32, G::kDefault, 0, false, DType::kF32, {3, 5}},
      {Format::kF16, G::kDefault, 0, false, DType::kF32, {4, 7}},
      {Format::kBF16, G::kDefault, 0, false, DType::kBF16, {2, 3, 4}},
      {Format::kInt8, G::kRow, 0, false, DType::kF32, {9, 33}},
      {Format::kInt8, G::kTensor, 0, false, DType::kF16, {5, 8}},
      {Format::kInt8Asym, G::kRow, 0, false, DType::kF32, {6, 17}},
      {Format::kInt8Asym, G::kTensor, 0, false, DType::kBF16, {3, 10}},
      {Format::kInt4, G::kDefault, 32, false, DType::kF32, {5, 200}},
      {Format::kInt4, G::kDefault, 128, false, DType::kBF16, {3, 257}},
      {Format::kInt4Asym, G::kDefault, 64, false, DType::kF32, {7, 129}},
      {Format::kNF4, G::kDefault, 64, false, DType::kF32, {11, 61}},
      {Format::kNF4, G::kDefault, 32, true, DType::kBF16, {40, 300}},
      {Format::kFP4, G::kDefault, 4096, false, DType::kF32, {3, 5000}},
      {Format::kFP4, G::kDefault, 128, true, DType::kF16, {5, 999}},
      {Format::kFP8E4M3, G::kRow, 0, false, DType::kF32, {8, 9}},
      {Format::kFP8E4M3, G::kTensor, 0, false, DType::kF32, {2, 2}},
      {Format::kFP8E5M2, G::kRow, 0, false, DType::kBF16, {4, 31}},
      {Format::kBlockwise8, G::kDefault, 256, false, DType::kF32, {7, 100}},
      {Format::kBlockwise8, G::kDefault, 64, true, DType::kF32, {9, 1000}},
      {Format::kInt8, G::kRow, 0, false, DType::kF32, {17}},  // 1-D
      {Format::kMXFP4, G::kDefault, 0, false, DType::kF32, {6, 100}},  // partial last group
      {Format::kNVFP4, G::kDefault, 0, false, DType::kBF16, {5, 70}},
      {Format::kIQ4NL, G::kDefault, 0, false, DType::kF32, {4, 96}},
  };
  uint32_t seed = 100;
  int formats_seen = 0;
  std::vector<bool> seen(kNumFormats, false);
  for (const RoundTripCase& c : cases) {
    const std::string what = std::string(FormatName(c.format)) + " " + ShapeToString(c.shape) +
                             (c.double_quant ? " dq" : "");
    SCOPED_TRACE(what);
    const size_t n = static_cast<size_t>(NumElements(c.shape));
    const std::vector<float> x = RandomNormal(n, ++seed, 0.3f);
    std::vector<uint16_t> x16(n);
    for (size_t i = 0; i < n; ++i) {
      x16[i] = c.input == DType::kBF16 ? F32ToBF16(x[i]).bits : F32ToF16(x[i]).bits;
    }
    const void* data = c.input == DType::kF32 ? static_cast<const void*>(x.data()) : x16.data();
    QuantizeOptions o;
    o.block_size = c.block;
    o.double_quant = c.double_quant;
    o.granularity = c.granularity;
    const QuantizedTensor q = Quantize(c.format, {data, c.input, c.shape}, o);
    if (!seen[static_cast<size_t>(c.format)]) ++formats_seen;
    seen[static_cast<size_t>(c.format)] = true;
    SaveCheckpoint(Path("n.safetensors"), {{"enc.layer.", {}, &q, TensorLayout::kLowbit}});
    const SafetensorsFile f = SafetensorsFile::Open(Path("n.safetensors"));
    ExpectSameTensor(q, LoadQuantizedTensor(f, "enc.layer."), what);
    const std::vector<CheckpointEntry> list = ListQuantizedModules(f);
    ASSERT_EQ(list.size(), 1u);
    EXPECT_EQ(list[0].layout, TensorLayout::kLowbit);
    EXPECT_EQ(list[0].format_name, FormatName(c.format));
    EXPECT_EQ(list[0].double_quant, c.double_quant);
    EXPECT_EQ(list[0].keys.size(), PlanQuantizedTensor("enc.layer.", q, TensorLayout::kLowbit).size());
    // The state JSON names the format version.
    const std::map<std::string, ParsedTensor> raw = ParseRaw(ReadFile(Path("n.safetensors")));
    const std::vector<uint8_t>& st = raw.at("enc.layer.weight.lowbit_state").bytes;
    const json sj = json::parse(st.begin(), st.end());
    EXPECT_EQ(sj.at("version"), LOWBIT_FORMAT_VERSION);
    EXPECT_EQ(sj.at("format"), FormatName(c.format));

    // The auto layout (bnb for nf4/fp4, dense for floats) also round-trips exactly.
    SaveCheckpoint(Path("a.safetensors"), {{"m.", {}, &q, TensorLayout::kAuto}});
    const SafetensorsFile fa = SafetensorsFile::Open(Path("a.safetensors"));
    QuantizedTensor want = q;
    // The dense layout is one plain tensor: the original dtype is the stored one on load.
    if (IsDense(q.format())) want.state.dtype = GetFormatInfo(q.format()).dense_dtype;
    ExpectSameTensor(want, LoadQuantizedTensor(fa, "m."), what + " auto");
  }
  EXPECT_EQ(formats_seen, kNumFormats);
  EXPECT_EQ(ListDir().size(), 2u);
}

TEST_F(CheckpointTest, BnbLayoutRoundTripsAndRefusesWhatItCannotHold) {
  const std::vector<float> x = RandomNormal(12 * 70, 5);
  const ConstTensorView v{x.data(), DType::kF32, {12, 70}};
  QuantizedTensor i8 = QuantizeInt8(v);
  i8.state.dtype = DType::kF16;  // bnb 8-bit files do not record the dtype; f16 on load
  const std::vector<QuantizedTensor> qs = {QuantizeNF4(v, 64, true), QuantizeNF4(v, 128, false),
                                           QuantizeFP4(v, 32, true), i8};
  for (const QuantizedTensor& q : qs) {
    SaveCheckpoint(Path("b.safetensors"), {{"x.", {}, &q, TensorLayout::kBitsandbytes}});
    const SafetensorsFile f = SafetensorsFile::Open(Path("b.safetensors"));
    ExpectSameTensor(q, LoadQuantizedTensor(f, "x."), FormatName(q.format()));
  }
  const QuantizedTensor int4 = QuantizeInt4(v);
  const QuantizedTensor i8t = QuantizeInt8(v, Granularity::kTensor);
  for (const QuantizedTensor* q : {&int4, &i8t}) {
    try {
      SaveCheckpoint(Path("c.safetensors"), {{"x.", {}, q, TensorLayout::kBitsandbytes}});
      FAIL() << "saved " << FormatName(q->format()) << " in the bitsandbytes layout";
    } catch (const Error& e) {
      EXPECT_EQ(e.status(), Status::kInvalidArgument);
      EXPECT_NE(e.message().find("x.weight"), std::string::npos) << e.message();
    }
  }
  const QuantizedTensor nf4 = QuantizeNF4(v);
  EXPECT_THROW(SaveCheckpoint(Path("c.safetensors"), {{"x.", {}, &nf4, TensorLayout::kDense}}),
               Error);
  EXPECT_EQ(ListDir(), std::vector<std::string>{"b.safetensors"});
}

// ---- hostile files --------------------------------------------------------------------------------

// Loads (and, for structural damage, lists) `image`; expects Error(status) whose message
// contains `needle`. Listing validates structure only, so bad values (NaN statistics) are caught
// by the load alone.
void ExpectRejected(const std::vector<uint8_t>& image, const std::string& prefix, Status status,
                    const std::string& needle, const std::string& what, bool list_too = true) {
  for (int pass = 0; pass < (list_too ? 2 : 1); ++pass) {
    try {
      const SafetensorsFile f = SafetensorsFile::FromMemory(image.data(), image.size());
      if (pass == 0) {
        LoadQuantizedTensor(f, prefix);
      } else {
        ListQuantizedModules(f);
      }
      ADD_FAILURE() << what << ": accepted (pass " << pass << ")";
    } catch (const Error& e) {
      EXPECT_EQ(e.status(), status) << what << ": " << e.message();
      EXPECT_NE(e.message().find(needle), std::string::npos)
          << what << ": message '" << e.message() << "' lacks '" << needle << "'";
    }
  }
}

TEST(CheckpointHostileTest, MalformedSafetensorsContainersAreCorruptData) {
  const BnbNestedModule m = MakeBnbNestedModule();
  uint64_t data_bytes = 0;
  const std::string header = RawHeader(m.tensors, &data_bytes);
  std::vector<uint8_t> data;
  for (const RawTensor& t : m.tensors) data.insert(data.end(), t.bytes.begin(), t.bytes.end());
  const std::vector<uint8_t> good = ImageFromHeader(header, data);
  ASSERT_NO_THROW(LoadQuantizedTensor(SafetensorsFile::FromMemory(good.data(), good.size()), kPrefix));
  auto replaced = [&](const std::string& from, const std::string& to) {
    std::string h = header;
    const size_t at = h.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    h.replace(at, from.size(), to);
    return ImageFromHeader(h, data);
  };
  const std::string w = std::string(kPrefix) + "weight";
  const std::string bias_entry = "\"data_offsets\":[0,26]";
  std::vector<uint8_t> truncated = good;
  truncated.resize(good.size() - 3);
  ExpectRejected(truncated, kPrefix, Status::kCorruptData, "truncated", "truncated");
  std::vector<uint8_t> header_only = good;
  header_only.resize(8 + header.size() / 2);
  ExpectRejected(header_only, kPrefix, Status::kCorruptData, "runs past the end", "cut in header");
  std::vector<uint8_t> overflow = good;
  for (int i = 0; i < 8; ++i) overflow[static_cast<size_t>(i)] = 0xFF;
  ExpectRejected(overflow, kPrefix, Status::kCorruptData, "header length", "length overflow");
  ExpectRejected(replaced(bias_entry, "\"data_offsets\":[0,99999999]"), kPrefix,
                 Status::kCorruptData, "past the", "offset out of range");
  ExpectRejected(replaced(bias_entry, "\"data_offsets\":[0,30]"), kPrefix, Status::kCorruptData,
                 "needs 26 bytes", "dtype/shape vs byte count");
  ExpectRejected(replaced("\"shape\":[13]", "\"shape\":[4294967296,4294967296]"), kPrefix,
                 Status::kCorruptData, "overflows", "shape overflow");
  ExpectRejected(replaced("\"dtype\":\"BF16\"", "\"dtype\":\"F16X\""), kPrefix,
                 Status::kCorruptData, "F16X", "unknown dtype");
  // Overlap: the second tensor starts inside the first.
  ExpectRejected(replaced("\"data_offsets\":[26,", "\"data_offsets\":[20,"), kPrefix,
                 Status::kCorruptData, "data_offsets", "overlap");
  ExpectRejected(ImageFromHeader("{\"__metadata__\" \"pt\"}", data), kPrefix,
                 Status::kCorruptData, "invalid JSON", "non-JSON header");
  ExpectRejected(replaced("\"" + w + ".absmax\"", "\"" + std::string(kPrefix) + "bias\""),
                 kPrefix, Status::kCorruptData, "duplicate key", "duplicate tensor name");
}

TEST(CheckpointHostileTest, MalformedBnbModulesAreCorruptDataNamingTheKey) {
  const std::string w = std::string(kPrefix) + "weight";
  const std::string sk = w + ".quant_state.bitsandbytes__nf4";
  // Each edit takes a valid hand-built module and breaks one thing.
  struct Edit {
    const char* what;
    std::function<void(std::vector<RawTensor>&)> apply;
    Status status;
    std::string needle;
    bool list_too = true;
  };
  auto find = [](std::vector<RawTensor>& ts, const std::string& name) -> RawTensor& {
    for (RawTensor& t : ts) {
      if (t.name == name) return t;
    }
    ADD_FAILURE() << "no " << name;
    return ts[0];
  };
  auto set_json = [&](const std::string& js) {
    return [&, js](std::vector<RawTensor>& ts) {
      RawTensor& t = find(ts, sk);
      t.bytes = Bytes(js);
      t.shape = {static_cast<int64_t>(js.size())};
    };
  };
  const std::string base_js =
      "\"blocksize\": 32, \"dtype\": \"bfloat16\", \"shape\": [13, 633], \"nested_blocksize\": "
      "256, \"nested_dtype\": \"float32\", \"nested_offset\": 2.375}";
  const std::vector<Edit> edits = {
      {"quant_state not JSON", set_json("{\"quant_type\": nf4}"), Status::kCorruptData, sk},
      {"quant_state not an object", set_json("[1, 2]"), Status::kCorruptData, "not a JSON object"},
      {"quant_state invalid UTF-8", set_json("{\"quant_type\": \"\xff\"}"), Status::kCorruptData,
       "UTF-8"},
      {"unknown quant_type", set_json("{\"quant_type\": \"nf3\", " + base_js),
       Status::kCorruptData, "quant_type"},
      {"quant_type vs key suffix", set_json("{\"quant_type\": \"fp4\", " + base_js),
       Status::kCorruptData, "suffix"},
      {"blocksize as string",
       set_json("{\"quant_type\": \"nf4\", \"blocksize\": \"32\", \"dtype\": \"bfloat16\", "
                "\"shape\": [13, 633]}"),
       Status::kCorruptData, "blocksize"},
      {"blocksize zero",
       set_json("{\"quant_type\": \"nf4\", \"blocksize\": 0, \"dtype\": \"bfloat16\", \"shape\": "
                "[13, 633]}"),
       Status::kCorruptData, "blocksize"},
      {"blocksize not a bnb size (48)",
       set_json("{\"quant_type\": \"nf4\", \"blocksize\": 48, \"dtype\": \"bfloat16\", \"shape\": "
                "[13, 633], \"nested_blocksize\": 256, \"nested_dtype\": \"float32\", "
                "\"nested_offset\": 2.375}"),
       Status::kCorruptData, w},
      {"missing shape",
       set_json("{\"quant_type\": \"nf4\", \"blocksize\": 32, \"dtype\": \"bfloat16\"}"),
       Status::kCorruptData, "shape"},
      {"unknown dtype",
       set_json("{\"quant_type\": \"nf4\", \"blocksize\": 32, \"dtype\": \"int8\", \"shape\": "
                "[13, 633]}"),
       Status::kCorruptData, "dtype"},
      {"unknown key", set_json("{\"quant_type\": \"nf4\", \"evil\": 1, " + base_js),
       Status::kCorruptData, "evil"},
      {"duplicate key", set_json("{\"quant_type\": \"nf4\", \"quant_type\": \"nf4\", " + base_js),
       Status::kCorruptData, "duplicate"},
      {"nested keys partly present",
       set_json("{\"quant_type\": \"nf4\", \"blocksize\": 32, \"dtype\": \"bfloat16\", "
                "\"shape\": [13, 633], \"nested_blocksize\": 256}"),
       Status::kCorruptData, "together"},
      {"nested offset infinite in float32",
       set_json("{\"quant_type\": \"nf4\", \"blocksize\": 32, \"dtype\": \"bfloat16\", "
                "\"shape\": [13, 633], \"nested_blocksize\": 256, \"nested_dtype\": "
                "\"float32\", \"nested_offset\": 1e300}"),
       Status::kCorruptData, "nested_offset"},
      {"shape product overflow",
       set_json("{\"quant_type\": \"nf4\", \"blocksize\": 32, \"dtype\": \"bfloat16\", "
                "\"shape\": [4294967296, 4294967296]}"),
       Status::kCorruptData, "shape"},
      {"shape far larger than the file",
       set_json("{\"quant_type\": \"nf4\", \"blocksize\": 32, \"dtype\": \"bfloat16\", "
                "\"shape\": [9223372036854775807]}"),
       Status::kCorruptData, "needs more payload bytes"},
      {"shape disagrees with payload bytes",
       set_json("{\"quant_type\": \"nf4\", " + std::string(base_js).replace(
                                                   base_js.find("633"), 3, "634")),
       Status::kCorruptData, w},
      {"quant_state tensor not U8",
       [&](std::vector<RawTensor>& ts) {
         RawTensor& t = find(ts, sk);
         t.dtype = "I8";
       },
       Status::kCorruptData, sk},
      {"absmax count wrong",
       [&](std::vector<RawTensor>& ts) {
         RawTensor& t = find(ts, w + ".absmax");
         t.bytes.pop_back();
         t.shape = {static_cast<int64_t>(t.bytes.size())};
       },
       Status::kCorruptData, w + ".absmax"},
      {"absmax F32 while nested",
       [&](std::vector<RawTensor>& ts) {
         RawTensor& t = find(ts, w + ".absmax");
         t.bytes.resize(4 * t.bytes.size());
         t.dtype = "F32";
       },
       Status::kCorruptData, "expected U8"},
      {"quant_map 15 entries",
       [&](std::vector<RawTensor>& ts) {
         RawTensor& t = find(ts, w + ".quant_map");
         t.bytes.resize(60);
         t.shape = {15};
       },
       Status::kCorruptData, w + ".quant_map"},
      {"nested_quant_map missing",
       [&](std::vector<RawTensor>& ts) {
         ts.erase(std::find_if(ts.begin(), ts.end(), [&](const RawTensor& t) {
           return t.name == w + ".nested_quant_map";
         }));
       },
       Status::kCorruptData, "missing"},
      {"NaN in nested absmax",
       [&](std::vector<RawTensor>& ts) {
         RawTensor& t = find(ts, w + ".nested_absmax");
         const uint32_t nan = 0x7fc00000;
         std::memcpy(t.bytes.data(), &nan, 4);
       },
       Status::kCorruptData, "non-finite", false},
      {"Inf in quant_map",
       [&](std::vector<RawTensor>& ts) {
         RawTensor& t = find(ts, w + ".quant_map");
         const uint32_t inf = 0x7f800000;
         std::memcpy(t.bytes.data() + 8, &inf, 4);
       },
       Status::kCorruptData, "non-finite", false},
      {"both nf4 and fp4 states",
       [&](std::vector<RawTensor>& ts) {
         RawTensor t = find(ts, sk);
         t.name = w + ".quant_state.bitsandbytes__fp4";
         ts.push_back(t);
       },
       Status::kCorruptData, "both"},
  };
  for (const Edit& e : edits) {
    std::vector<RawTensor> ts = MakeBnbNestedModule().tensors;
    e.apply(ts);
    ExpectRejected(RawImage(ts), kPrefix, e.status, e.needle, e.what, e.list_too);
  }
}

TEST(CheckpointHostileTest, MalformedInt8AndLowbitModules) {
  // bnb 8-bit.
  const std::vector<int8_t> cb(12, 3);
  const std::vector<float> scb = {1, 2, 3};
  auto int8_file = [&](const std::string& scb_dtype, Shape scb_shape, std::vector<uint8_t> fmt) {
    return RawImage({{"l.SCB", scb_dtype, scb_shape, Bytes(scb)},
                     {"l.weight", "I8", {3, 4}, Bytes(cb)},
                     {"l.weight_format", "U8", {}, fmt}});
  };
  ASSERT_NO_THROW({
    const std::vector<uint8_t> ok = int8_file("F32", {3}, {0});
    LoadQuantizedTensor(SafetensorsFile::FromMemory(ok.data(), ok.size()), "l.");
  });
  ExpectRejected(int8_file("F32", {3}, {1}), "l.", Status::kUnsupportedFormat, "row",
                 "weight_format col32");
  ExpectRejected(int8_file("I32", {3}, {0}), "l.", Status::kCorruptData, "l.SCB", "SCB dtype");
  {
    std::vector<float> bad = scb;
    bad[1] = -INFINITY;
    const std::vector<uint8_t> img = RawImage({{"l.SCB", "F32", {3}, Bytes(bad)},
                                               {"l.weight", "I8", {3, 4}, Bytes(cb)}});
    ExpectRejected(img, "l.", Status::kCorruptData, "non-finite", "SCB infinite", false);
  }

  // lowbit native: take a valid int4 file and edit its state JSON.
  const std::vector<float> x = RandomNormal(4 * 64, 9);
  const QuantizedTensor q = QuantizeInt4({x.data(), DType::kF32, {4, 64}}, 32, false);
  const std::string ok_js =
      "{\"format\": \"int4_asym\", \"version\": 1, \"shape\": [4, 64], \"dtype\": \"f32\", "
      "\"granularity\": \"group\", \"block_size\": 32}";
  std::vector<RawTensor> base;
  for (const TensorSpec& s : PlanQuantizedTensor("p.", q, TensorLayout::kLowbit)) {
    base.push_back({s.name, SafetensorsDTypeName(s.dtype), s.shape, {}});
  }
  base[0].bytes = q.data;  // weight
  for (RawTensor& t : base) {
    if (t.name == "p.weight.scales") t.bytes = Bytes(q.state.scales);
    if (t.name == "p.weight.zero_points") t.bytes = q.state.zero_points;
    if (t.name == "p.weight.lowbit_state") t.bytes = Bytes(ok_js);
  }
  auto with_state = [&](const std::string& js) {
    std::vector<RawTensor> ts = base;
    for (RawTensor& t : ts) {
      if (t.name == "p.weight.lowbit_state") {
        t.bytes = Bytes(js);
        t.shape = {static_cast<int64_t>(js.size())};
      }
    }
    return RawImage(ts);
  };
  ASSERT_NO_THROW({
    const std::vector<uint8_t> img = with_state(ok_js);
    ExpectSameTensor(q, LoadQuantizedTensor(SafetensorsFile::FromMemory(img.data(), img.size()), "p."),
                     "hand-written lowbit state");
  });
  auto edited = [&](const std::string& from, const std::string& to) {
    std::string js = ok_js;
    js.replace(js.find(from), from.size(), to);
    return with_state(js);
  };
  ExpectRejected(edited("\"version\": 1", "\"version\": 99"), "p.", Status::kUnsupportedFormat,
                 "version 99", "newer version");
  ExpectRejected(edited("int4_asym", "int3"), "p.", Status::kUnsupportedFormat, "int3",
                 "unknown format");
  ExpectRejected(edited("\"version\": 1", "\"version\": 0"), "p.", Status::kCorruptData,
                 "version", "version 0");
  ExpectRejected(edited("\"group\"", "\"block\""), "p.", Status::kCorruptData, "granularity",
                 "granularity not allowed");
  // 48: ceil(64 / 48) = 2 groups per row, the same scale count as 32, but not a power of two.
  ExpectRejected(edited("\"block_size\": 32", "\"block_size\": 48"), "p.", Status::kCorruptData,
                 "block size", "block not a power of two", false);
  ExpectRejected(edited("\"block_size\": 32", "\"block_size\": 64"), "p.", Status::kCorruptData,
                 "p.weight.scales", "scale count vs block");
  ExpectRejected(edited("[4, 64]", "[4, 65]"), "p.", Status::kCorruptData, "p.weight",
                 "shape vs payload");
  ExpectRejected(edited("\"f32\"", "\"i8\""), "p.", Status::kCorruptData, "dtype",
                 "original dtype");
  ExpectRejected(edited(", \"block_size\": 32", ""), "p.", Status::kCorruptData, "block_size",
                 "missing key");
  ExpectRejected(edited("}", ", \"x\": 1}"), "p.", Status::kCorruptData, "unknown key",
                 "unknown key");
  ExpectRejected(edited("}", ", \"nested_block_size\": 256}"), "p.", Status::kCorruptData,
                 "nested_block_size", "nested on a format without it");
  ExpectRejected(with_state("\x01\x02"), "p.", Status::kCorruptData, "lowbit_state",
                 "state not JSON");
  {
    std::vector<RawTensor> ts = base;
    for (RawTensor& t : ts) {
      if (t.name == "p.weight.zero_points") t.bytes[0] = 16;  // int4 zero points are 0..15
    }
    ExpectRejected(RawImage(ts), "p.", Status::kCorruptData, "zero point", "zero point range",
                   false);
  }
}

// ---- atomic save ------------------------------------------------------------------------------

TEST_F(CheckpointTest, FailedSaveLeavesOldFileAndNoTemporaries) {
  const std::vector<float> x = RandomNormal(64 * 64, 2);
  const QuantizedTensor q = QuantizeNF4({x.data(), DType::kF32, {64, 64}});
  SaveCheckpoint(Path("c.safetensors"), {{"a.", {}, &q, TensorLayout::kAuto}});
  const std::vector<uint8_t> before = ReadFile(Path("c.safetensors"));
  // 1. A bad name after a large tensor was already streamed into the temporary.
  const uint8_t one = 1;
  try {
    SaveCheckpoint(Path("c.safetensors"),
                   {{"big", {x.data(), DType::kF32, {64, 64}}, nullptr, TensorLayout::kAuto},
                    {"bad\xff", {&one, DType::kU8, {1}}, nullptr, TensorLayout::kAuto}});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), Status::kInvalidArgument);
    EXPECT_NE(e.message().find("UTF-8"), std::string::npos) << e.message();
  }
  EXPECT_EQ(ReadFile(Path("c.safetensors")), before);
  EXPECT_EQ(ListDir(), std::vector<std::string>{"c.safetensors"});
  // 2. Duplicate keys (a quantized module and a plain tensor named alike).
  EXPECT_THROW(SaveCheckpoint(Path("c.safetensors"),
                              {{"a.", {}, &q, TensorLayout::kAuto},
                               {"a.weight", {x.data(), DType::kF32, {4}}, nullptr, TensorLayout::kAuto}}),
               Error);
  // 3. An invalid quantized tensor (payload one byte short).
  QuantizedTensor broken = q;
  broken.data.pop_back();
  EXPECT_THROW(SaveCheckpoint(Path("c.safetensors"), {{"a.", {}, &broken, TensorLayout::kAuto}}),
               Error);
  // 4. The rename fails (target is a non-empty directory).
  ASSERT_EQ(mkdir(Path("dir").c_str(), 0755), 0);
  WriteFile(Path("dir/keep"), {1});
  try {
    SaveCheckpoint(Path("dir"), {{"a.", {}, &q, TensorLayout::kAuto}});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), Status::kIoError);
  }
  std::remove(Path("dir/keep").c_str());
  rmdir(Path("dir").c_str());
  EXPECT_EQ(ReadFile(Path("c.safetensors")), before);
  EXPECT_EQ(ListDir(), std::vector<std::string>{"c.safetensors"});
}

// ---- deterministic mutation replay over quantized checkpoints ----------------------------------

TEST_F(CheckpointTest, MutationReplayOnlyCleanErrors) {
  std::vector<std::vector<uint8_t>> seeds;
  {
    // Small modules so that accepted mutants are cheap to dequantize.
    const std::vector<float> x = RandomNormal(6 * 40, 21);
    const ConstTensorView v{x.data(), DType::kF32, {6, 40}};
    const QuantizedTensor nf4dq = QuantizeNF4(v, 32, true);
    const QuantizedTensor fp4 = QuantizeFP4(v, 64, false);
    const QuantizedTensor i8 = QuantizeInt8(v);
    const QuantizedTensor i4 = QuantizeInt4(v, 32, false);
    QuantizeOptions o;
    o.block_size = 64;
    o.double_quant = true;
    const QuantizedTensor bw8 = Quantize(Format::kBlockwise8, v, o);
    const QuantizedTensor e4 = QuantizeFP8(v);
    SaveCheckpoint(Path("s1"), {{"a.", {}, &nf4dq, TensorLayout::kBitsandbytes},
                                {"b.", {}, &fp4, TensorLayout::kBitsandbytes}});
    SaveCheckpoint(Path("s2"), {{"c.", {}, &i8, TensorLayout::kBitsandbytes},
                                {"n", {x.data(), DType::kF32, {4}}, nullptr, TensorLayout::kAuto}});
    SaveCheckpoint(Path("s3"), {{"d.", {}, &i4, TensorLayout::kLowbit},
                                {"e.", {}, &bw8, TensorLayout::kLowbit}});
    SaveCheckpoint(Path("s4"), {{"f.", {}, &e4, TensorLayout::kLowbit},
                                {"g.", {}, &nf4dq, TensorLayout::kLowbit}});
    for (const char* s : {"s1", "s2", "s3", "s4"}) seeds.push_back(ReadFile(Path(s)));
    seeds.push_back(RawImage(MakeBnbNestedModule().tensors));
  }
  for (const std::vector<uint8_t>& s : seeds) {
    ASSERT_EQ(fuzz::SafetensorsHarness(s.data(), s.size()), fuzz::Outcome::kAccepted);
  }
  const auto t0 = std::chrono::steady_clock::now();
  std::mt19937_64 rng(20240601);
  constexpr int kMutations = 5000;
  const auto [accepted, rejected] =
      fuzz::ReplaySafetensorsMutations(seeds, rng, kMutations, /*max_edits=*/3);
  EXPECT_GT(accepted, 100);
  EXPECT_GT(rejected, kMutations / 4);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("checkpoint mutation replay: %d accepted, %d rejected, %.2f s\n", accepted, rejected, s);

  // The quant_state JSON reader alone: mutants must be rejected cleanly or survive a
  // format -> parse round trip unchanged (the harness traps otherwise).
  const std::vector<std::string> js = {
      "{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"bfloat16\", \"shape\": [11008, "
      "4096], \"nested_blocksize\": 256, \"nested_dtype\": \"float32\", \"nested_offset\": "
      "0.010713756084442139}",
      "{\"quant_type\": \"fp4\", \"blocksize\": 4096, \"dtype\": \"float16\", \"shape\": [7]}"};
  int js_ok = 0;
  for (int i = 0; i < 4000; ++i) {
    std::vector<uint8_t> b(js[static_cast<size_t>(i % 2)].begin(), js[static_cast<size_t>(i % 2)].end());
    fuzz::Mutate(b, rng);
    js_ok += fuzz::QuantStateJsonHarness(b.data(), b.size()) == fuzz::Outcome::kAccepted;
  }
  EXPECT_GT(js_ok, 100);
}

}  // namespace
}  // namespace io
}  // namespace lowbit
