// Tests of the safetensors reader/writer: golden bytes, every dtype, hostile headers, atomic saves,
// mmap of a large sparse file, and a deterministic mutation replay of the parser.
#include "lowbit/io/safetensors.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "fuzz/harness.h"
#include "test_files.h"

namespace lowbit {
namespace io {
namespace {

// A fresh, empty directory per test.
class SafetensorsTest : public testing::TempDirTest {
 protected:
  SafetensorsTest() : TempDirTest("lowbit_st_") {}
};

using testing::ReadFile;
using testing::WriteFile;

// A file image built by hand from the spec: LE64 length, header text, data.
std::vector<uint8_t> Image(const std::string& header, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> b(8);
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) b[static_cast<size_t>(i)] = static_cast<uint8_t>(n >> (8 * i));
  b.insert(b.end(), header.begin(), header.end());
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

Status ParseStatus(const std::vector<uint8_t>& image) {
  try {
    SafetensorsFile::FromMemory(image.data(), image.size());
    return Status::kOk;
  } catch (const Error& e) {
    return e.status();
  }
}

TEST_F(SafetensorsTest, WriterOutputMatchesHandBuiltGoldenBytes) {
  // Two tensors: U8 [2, 1] = {0x12, 0x34} and F32 [] = 1.5 (bits 3fc00000), plus metadata.
  const uint8_t u8[2] = {0x12, 0x34};
  const float f = 1.5f;
  {
    SafetensorsWriter w(Path("g.safetensors"), {{"format", "pt"}}, /*header_reserve=*/0);
    w.Add("w", DType::kU8, {2, 1}, u8, 2);
    w.Add("s", DType::kF32, {}, &f, 4);
    w.Commit();
  }
  std::string header =
      "{\"__metadata__\":{\"format\":\"pt\"},"
      "\"w\":{\"dtype\":\"U8\",\"shape\":[2,1],\"data_offsets\":[0,2]},"
      "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[2,6]}}";
  header.append((8 - header.size() % 8) % 8, ' ');  // data region 8-byte aligned
  const std::vector<uint8_t> golden = Image(header, {0x12, 0x34, 0x00, 0x00, 0xC0, 0x3F});
  EXPECT_EQ(ReadFile(Path("g.safetensors")), golden);
  EXPECT_EQ(ListDir(), std::vector<std::string>{"g.safetensors"});  // no temporaries left
}

TEST_F(SafetensorsTest, ReadsHandBuiltFileFromAnotherWriter) {
  // Unpadded header, keys out of offset order, a zero-size tensor, a 0-dim tensor, unicode name.
  const std::string header =
      "{\"b\":{\"dtype\":\"I16\",\"shape\":[2],\"data_offsets\":[1,5]},"
      "\"empty\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[5,5]},"
      "\"\xc3\xa9t\xc3\xa9\":{\"dtype\":\"BOOL\",\"shape\":[],\"data_offsets\":[0,1]},"
      "\"__metadata__\":{\"k\":\"v\",\"x\":\"\"}}";
  const std::vector<uint8_t> image = Image(header, {0x01, 0xFF, 0x7F, 0x00, 0x80});
  WriteFile(Path("h.safetensors"), image);
  const SafetensorsFile f = SafetensorsFile::Open(Path("h.safetensors"));
  ASSERT_EQ(f.tensors().size(), 3u);
  EXPECT_EQ(f.tensors()[0].name, "\xc3\xa9t\xc3\xa9");  // data-region order
  const TensorInfo& b = f.Get("b");
  EXPECT_EQ(b.dtype, DType::kI16);
  EXPECT_EQ(b.shape, (Shape{2}));
  EXPECT_EQ(b.offset, 1u);
  EXPECT_EQ(b.size, 4u);
  int16_t v[2];
  std::memcpy(v, f.data(b), 4);
  EXPECT_EQ(v[0], 0x7FFF);
  EXPECT_EQ(v[1], static_cast<int16_t>(0x8000));
  EXPECT_EQ(f.Get("empty").size, 0u);
  EXPECT_EQ(f.Get("empty").shape, (Shape{0, 3}));
  EXPECT_EQ(*f.data(f.Get("\xc3\xa9t\xc3\xa9")), 1);
  EXPECT_EQ(f.metadata(), (Metadata{{"k", "v"}, {"x", ""}}));
  EXPECT_EQ(f.Find("missing"), nullptr);
  try {
    f.Get("missing");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), Status::kInvalidArgument);
    EXPECT_NE(e.message().find("missing"), std::string::npos);
  }
  EXPECT_EQ(f.header_size(), header.size());
  EXPECT_EQ(f.file_size(), image.size());
}

TEST_F(SafetensorsTest, EveryDTypeRoundTrips) {
  const char* kNames[] = {"F32", "F16", "BF16", "F64", "I8",      "U8",      "I16", "I32",
                          "I64", "BOOL", "F8_E4M3", "F8_E5M2", "U16", "U32", "U64"};
  const DType kTypes[] = {DType::kF32,  DType::kF16,    DType::kBF16,   DType::kF64, DType::kI8,
                          DType::kU8,   DType::kI16,    DType::kI32,    DType::kI64, DType::kBool,
                          DType::kF8E4M3, DType::kF8E5M2, DType::kU16, DType::kU32, DType::kU64};
  std::mt19937 rng(1);
  std::vector<std::vector<uint8_t>> payloads;
  std::vector<NamedTensorView> views;
  for (int i = 0; i < 15; ++i) {
    EXPECT_STREQ(SafetensorsDTypeName(kTypes[i]), kNames[i]);
    EXPECT_EQ(SafetensorsDTypeFromName(kNames[i]), kTypes[i]);
    const Shape shape = {3, i + 1};
    payloads.emplace_back(static_cast<size_t>(3 * (i + 1)) * DTypeSize(kTypes[i]));
    for (uint8_t& b : payloads.back()) b = static_cast<uint8_t>(rng());
  }
  for (int i = 0; i < 15; ++i) {
    views.push_back({std::string("t_") + kNames[i], {payloads[static_cast<size_t>(i)].data(), kTypes[i], {3, i + 1}}});
  }
  SaveSafetensors(Path("all.safetensors"), views, {{"a", "b"}});
  const SafetensorsFile f = SafetensorsFile::Open(Path("all.safetensors"));
  ASSERT_EQ(f.tensors().size(), 15u);
  for (int i = 0; i < 15; ++i) {
    const TensorInfo& t = f.Get(std::string("t_") + kNames[i]);
    EXPECT_EQ(t.dtype, kTypes[i]);
    EXPECT_EQ(t.shape, (Shape{3, i + 1}));
    const std::vector<uint8_t>& p = payloads[static_cast<size_t>(i)];
    ASSERT_EQ(t.size, p.size());
    EXPECT_EQ(std::memcmp(f.data(t), p.data(), p.size()), 0) << kNames[i];
  }
  // The default reserve keeps the data region 8-byte aligned.
  EXPECT_EQ((8 + f.header_size()) % 8, 0u);
  EXPECT_THROW(SafetensorsDTypeFromName("F4"), Error);
  EXPECT_THROW(SafetensorsDTypeFromName("f32"), Error);
}

TEST_F(SafetensorsTest, CopyAsF32ConvertsFloatDTypes) {
  const uint16_t bf[2] = {0x3FC0, 0xC000};  // 1.5, -2
  const uint16_t hf[2] = {0x3E00, 0x0001};  // 1.5, 2^-24
  const double d[2] = {0.1, -3.0};
  SaveSafetensors(Path("f.safetensors"), {{"bf", {bf, DType::kBF16, {2}}},
                                          {"hf", {hf, DType::kF16, {2}}},
                                          {"d", {d, DType::kF64, {2}}},
                                          {"i", {bf, DType::kI16, {2}}}});
  const SafetensorsFile f = SafetensorsFile::Open(Path("f.safetensors"));
  EXPECT_EQ(f.CopyAsF32(f.Get("bf")), (std::vector<float>{1.5f, -2.0f}));
  EXPECT_EQ(f.CopyAsF32(f.Get("hf")), (std::vector<float>{1.5f, 0x1p-24f}));
  EXPECT_EQ(f.CopyAsF32(f.Get("d")), (std::vector<float>{0.1f, -3.0f}));
  EXPECT_THROW(f.CopyAsF32(f.Get("i")), Error);
}

TEST_F(SafetensorsTest, StreamingChunksAndHeaderLargerThanReserve) {
  // 300 tensors with a 16-byte reserve: Commit must fall back to rewriting with the real header.
  SafetensorsWriter w(Path("s.safetensors"), {}, 16);
  std::vector<uint8_t> big(100000);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<uint8_t>(i * 7);
  w.BeginTensor("big", DType::kU8, {100000});
  for (size_t at = 0; at < big.size(); at += 30000) {
    w.WriteChunk(big.data() + at, std::min<size_t>(30000, big.size() - at));
  }
  w.EndTensor();
  for (int i = 0; i < 300; ++i) {
    const int32_t v = i;
    w.Add("layer." + std::to_string(i) + ".some_long_parameter_name", DType::kI32, {1}, &v, 4);
  }
  w.Commit();
  const SafetensorsFile f = SafetensorsFile::Open(Path("s.safetensors"));
  EXPECT_EQ(f.tensors().size(), 301u);
  EXPECT_EQ(std::memcmp(f.data(f.Get("big")), big.data(), big.size()), 0);
  int32_t v;
  std::memcpy(&v, f.data(f.Get("layer.299.some_long_parameter_name")), 4);
  EXPECT_EQ(v, 299);
  EXPECT_EQ(ListDir().size(), 1u);
}

TEST_F(SafetensorsTest, WriterRejectsBadInput) {
  SafetensorsWriter w(Path("x.safetensors"));
  const uint8_t b[4] = {};
  w.Add("a", DType::kU8, {4}, b, 4);
  EXPECT_THROW(w.Add("a", DType::kU8, {4}, b, 4), Error);          // duplicate
  EXPECT_THROW(w.Add("__metadata__", DType::kU8, {4}, b, 4), Error);
  EXPECT_THROW(w.Add("\xff", DType::kU8, {4}, b, 4), Error);       // not UTF-8
  EXPECT_THROW(w.Add("c", DType::kU8, {5}, b, 4), Error);          // size mismatch
  EXPECT_THROW(w.Add("d", DType::kU8, {-1}, b, 0), Error);         // negative dim
  w.BeginTensor("e", DType::kU8, {4});
  EXPECT_THROW(w.WriteChunk(b, 5), Error);  // more than declared
  EXPECT_THROW(w.Commit(), Error);          // still open
  w.WriteChunk(b, 4);
  w.EndTensor();
  w.Add("c", DType::kU8, {4}, b, 4);  // the failed "c" left no trace
  w.Commit();
  EXPECT_THROW(w.Commit(), Error);
  const SafetensorsFile f = SafetensorsFile::Open(Path("x.safetensors"));
  EXPECT_EQ(f.tensors().size(), 3u);
}

TEST_F(SafetensorsTest, SavingIsAtomic) {
  const uint8_t old_data[3] = {1, 2, 3};
  SaveSafetensors(Path("m.safetensors"), {{"old", {old_data, DType::kU8, {3}}}});
  const std::vector<uint8_t> before = ReadFile(Path("m.safetensors"));
  {
    // Abandoned mid-way (e.g. an exception while quantizing): the old file stays as it was.
    SafetensorsWriter w(Path("m.safetensors"));
    const uint8_t junk[8] = {9, 9, 9, 9, 9, 9, 9, 9};
    w.Add("new", DType::kU8, {8}, junk, 8);
    EXPECT_EQ(ListDir().size(), 2u);  // the temporary sits next to the target
  }
  EXPECT_EQ(ReadFile(Path("m.safetensors")), before);
  EXPECT_EQ(ListDir(), std::vector<std::string>{"m.safetensors"});
  // A failing commit (the target is a directory, so rename fails) also leaves nothing behind.
  ASSERT_EQ(mkdir(Path("d").c_str(), 0755), 0);
  {
    SafetensorsWriter w(Path("d"));
    w.Add("x", DType::kU8, {3}, old_data, 3);
    try {
      w.Commit();
      FAIL();
    } catch (const Error& e) {
      EXPECT_EQ(e.status(), Status::kIoError);
      EXPECT_NE(e.message().find("rename"), std::string::npos);
    }
  }
  rmdir(Path("d").c_str());
  EXPECT_EQ(ListDir(), std::vector<std::string>{"m.safetensors"});
  // A successful save replaces the file in one step.
  const uint8_t new_data[2] = {7, 8};
  SaveSafetensors(Path("m.safetensors"), {{"new", {new_data, DType::kU8, {2}}}});
  const SafetensorsFile f = SafetensorsFile::Open(Path("m.safetensors"));
  EXPECT_EQ(f.tensors().size(), 1u);
  EXPECT_EQ(f.data(f.Get("new"))[1], 8);
}

TEST_F(SafetensorsTest, IoErrorsCarryStrerror) {
  try {
    SafetensorsFile::Open(Path("does_not_exist.safetensors"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), Status::kIoError);
    EXPECT_NE(e.message().find("No such file or directory"), std::string::npos) << e.message();
  }
  try {
    SafetensorsWriter w(Path("no_dir/x.safetensors"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), Status::kIoError);
    EXPECT_NE(e.message().find("No such file or directory"), std::string::npos) << e.message();
  }
  EXPECT_THROW(SafetensorsFile::Open(dir_), Error);  // a directory is not a file
}

TEST_F(SafetensorsTest, LargeSparseFileIsMappedNotRead) {
  // 10 GiB data region (sparse: no disk blocks, no RAM) behind a valid header.
  const uint64_t kBytes = uint64_t{10} << 30;
  const std::string header = "{\"big\":{\"dtype\":\"U8\",\"shape\":[" + std::to_string(kBytes) +
                             "],\"data_offsets\":[0," + std::to_string(kBytes) + "]}}";
  WriteFile(Path("big.safetensors"), Image(header, {}));
  ASSERT_EQ(truncate(Path("big.safetensors").c_str(), static_cast<off_t>(8 + header.size() + kBytes)),
            0);
  auto rss_kb = [] {
    std::ifstream statm("/proc/self/statm");
    long pages_total = 0, pages_rss = 0;
    statm >> pages_total >> pages_rss;
    return pages_rss * (sysconf(_SC_PAGESIZE) / 1024);
  };
  const long before = rss_kb();
  const SafetensorsFile f = SafetensorsFile::Open(Path("big.safetensors"));
  const TensorInfo& t = f.Get("big");
  EXPECT_EQ(t.size, kBytes);
  EXPECT_EQ(f.data(t)[kBytes - 1], 0);  // touching one page reads one page
  EXPECT_LT(rss_kb() - before, 64 * 1024) << "more than 64 MiB became resident";
}

// ---- hostile headers ------------------------------------------------------------------------------

struct HostileCase {
  const char* what;
  std::string header;
  size_t data_bytes;
};

TEST(SafetensorsHostileTest, EveryMalformedHeaderIsCorruptData) {
  const std::string ok_entry = "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}";
  const std::vector<HostileCase> cases = {
      {"not json", "hello", 0},
      {"array header", "[1,2]", 0},
      {"string header", "\"abc\"", 0},
      {"truncated json", "{\"a\":{\"dtype\":\"F32\"", 8},
      {"trailing garbage", "{" + ok_entry + "}x", 8},
      {"invalid utf-8 in name", "{\"\xff\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1},
      {"overlong utf-8", "{\"\xc0\xaf\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1},
      {"utf-16 surrogate", "{\"\xed\xa0\x80\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1},
      {"lone surrogate escape", "{\"\\ud800\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1},
      {"duplicate name", "{" + ok_entry + "," + ok_entry + "}", 8},
      {"duplicate field",
       "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8},
      {"unknown dtype", "{\"a\":{\"dtype\":\"F4\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8},
      {"lowercase dtype", "{\"a\":{\"dtype\":\"f32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8},
      {"dtype not string", "{\"a\":{\"dtype\":1,\"shape\":[2],\"data_offsets\":[0,8]}}", 8},
      {"negative dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8},
      {"float dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8},
      {"dim too big", "{\"a\":{\"dtype\":\"F32\",\"shape\":[18446744073709551616],\"data_offsets\":[0,8]}}", 8},
      {"product overflow",
       "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 8},
      {"bytes overflow", "{\"a\":{\"dtype\":\"U64\",\"shape\":[4611686018427387904],\"data_offsets\":[0,8]}}", 8},
      {"size mismatch", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8},
      {"end before begin", "{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[8,0]}}", 8},
      {"offsets past data", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 8},
      {"hole at start", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8},
      {"hole at end", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8},
      {"overlap",
       "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
       "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8},
      {"one offset", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8]}}", 8},
      {"negative offset", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", 8},
      {"missing shape", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8},
      {"extra field",
       "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}}", 8},
      {"entry not object", "{\"a\":[1]}", 0},
      {"metadata not object", "{\"__metadata__\":[],\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}", 0},
      {"metadata value not string", "{\"__metadata__\":{\"k\":1}}", 0},
      {"deep nesting", "{\"__metadata__\":{\"k\":{\"x\":[[[1]]]}}}", 0},
      {"shape not array", "{\"a\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", 8},
  };
  for (const HostileCase& c : cases) {
    const std::vector<uint8_t> image = Image(c.header, std::vector<uint8_t>(c.data_bytes, 0));
    EXPECT_EQ(ParseStatus(image), Status::kCorruptData) << c.what;
  }
  // Length field: shorter than 8 bytes, absurd, beyond the file, and a truncated data region.
  EXPECT_EQ(ParseStatus({1, 2, 3}), Status::kCorruptData);
  std::vector<uint8_t> huge = Image("{}", {});
  for (int i = 0; i < 8; ++i) huge[static_cast<size_t>(i)] = 0xFF;
  EXPECT_EQ(ParseStatus(huge), Status::kCorruptData);
  std::vector<uint8_t> past = Image("{}", {});
  past[0] = 3;
  EXPECT_EQ(ParseStatus(past), Status::kCorruptData);
  std::vector<uint8_t> cap = Image("{}", {});
  const uint64_t over = kMaxSafetensorsHeaderBytes + 1;
  for (int i = 0; i < 8; ++i) cap[static_cast<size_t>(i)] = static_cast<uint8_t>(over >> (8 * i));
  EXPECT_EQ(ParseStatus(cap), Status::kCorruptData);
  std::vector<uint8_t> truncated = Image("{" + ok_entry + "}", std::vector<uint8_t>(8, 0));
  truncated.resize(truncated.size() - 1);
  EXPECT_EQ(ParseStatus(truncated), Status::kCorruptData);
  // Sanity: the unmodified file parses; an empty tensor list is valid.
  EXPECT_EQ(ParseStatus(Image("{" + ok_entry + "}", std::vector<uint8_t>(8, 0))), Status::kOk);
  EXPECT_EQ(ParseStatus(Image("{}  ", {})), Status::kOk);
}

// ---- deterministic fuzz replay --------------------------------------------------------------------

TEST_F(SafetensorsTest, MutationReplayOnlyCleanErrors) {
  // Seeds: small valid files with every dtype, metadata, empty and 0-dim tensors.
  std::vector<std::vector<uint8_t>> seeds;
  {
    const float f[4] = {1, -2, 3.5f, 0};
    const uint8_t u[5] = {1, 2, 3, 4, 5};
    const int64_t l[2] = {-1, 7};
    SaveSafetensors(Path("s1"), {{"w", {f, DType::kF32, {2, 2}}},
                                 {"b", {u, DType::kU8, {5}}},
                                 {"e", {u, DType::kBF16, {0}}},
                                 {"s", {l, DType::kI64, {}}}},
                    {{"format", "pt"}});
    seeds.push_back(ReadFile(Path("s1")));
    SafetensorsWriter w(Path("s2"), {}, 0);
    w.Add("x", DType::kF8E4M3, {1, 3}, u, 3);
    w.Add("y", DType::kU16, {1}, u, 2);
    w.Commit();
    seeds.push_back(ReadFile(Path("s2")));
  }
  std::mt19937_64 rng(12345);
  constexpr int kMutations = 20000;
  const auto [accepted, rejected] =
      fuzz::ReplaySafetensorsMutations(seeds, rng, kMutations, /*max_edits=*/4);
  // Both paths must be exercised for the replay to mean anything.
  EXPECT_GT(accepted, 100);
  EXPECT_GT(rejected, kMutations / 2);
  std::printf("mutation replay: %d accepted, %d rejected\n", accepted, rejected);
}

}  // namespace
}  // namespace io
}  // namespace lowbit
