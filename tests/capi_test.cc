// tests/capi_test.cc — the C ABI (liblowbit_c.so) against the C++ API it wraps: every format
// bit-identical, matmul against an Eigen float64 reference, layers, files, the error model
// (every function with NULLs, bad sizes, bad enums, destroyed handles), thread-local messages,
// and the exported symbol set.
#include <gtest/gtest.h>
#include <unistd.h>

#include <Eigen/Dense>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "lowbit/format.h"
#include "lowbit/io/checkpoint.h"
#include "lowbit/io/safetensors.h"
#include "lowbit/lowbit_c.h"
#include "lowbit/nn/linear.h"
#include "lowbit/ops.h"
#include "lowbit/quantize.h"
#include "lowbit/status.h"

namespace {

using lowbit::ConstTensorView;
using lowbit::DType;
using lowbit::Format;

// Weights with a heavy tail: N(0, 0.02²) plus a few large entries, like real LLM weights.
std::vector<float> RandomWeights(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<float> w(static_cast<size_t>(n));
  for (float& v : w) v = normal(rng);
  for (int i = 0; i < 8; ++i) w[rng() % w.size()] = (i % 2 ? 0.6f : -0.8f);
  return w;
}

std::vector<float> RandomActivations(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) v = u(rng);
  return x;
}

std::string TempPath(const std::string& name) {
  return ::testing::TempDir() + "capi_test_" + std::to_string(::getpid()) + "_" + name;
}

// Owns a C handle for the duration of a test.
struct TensorHandle {
  lowbit_tensor_t* t = nullptr;
  ~TensorHandle() { lowbit_tensor_destroy(t); }
};
struct PackedHandle {
  lowbit_packed_t* p = nullptr;
  ~PackedHandle() { lowbit_packed_destroy(p); }
};
struct LinearHandle {
  lowbit_linear_t* l = nullptr;
  ~LinearHandle() { lowbit_linear_destroy(l); }
};

std::vector<uint8_t> Payload(const lowbit_tensor_t* t) {
  const uint8_t* data = nullptr;
  int64_t bytes = -1;
  EXPECT_EQ(lowbit_tensor_payload(t, &data, &bytes), LOWBIT_OK);
  return std::vector<uint8_t>(data, data + bytes);
}

std::vector<float> Scales(const lowbit_tensor_t* t) {
  int64_t count = -1;
  EXPECT_EQ(lowbit_tensor_scales(t, nullptr, 0, &count), LOWBIT_OK);
  std::vector<float> s(static_cast<size_t>(count));
  EXPECT_EQ(lowbit_tensor_scales(t, s.data(), count, &count), LOWBIT_OK);
  return s;
}

std::vector<float> DequantizeC(const lowbit_tensor_t* t, int64_t n) {
  std::vector<float> out(static_cast<size_t>(n));
  EXPECT_EQ(lowbit_dequantize(t, out.data(), LOWBIT_DTYPE_F32, n), LOWBIT_OK)
      << lowbit_last_error();
  return out;
}

// Bitwise equality of two float vectors (NaN-safe, -0 != +0).
void ExpectSameBits(const std::vector<float>& a, const std::vector<float>& b) {
  ASSERT_EQ(a.size(), b.size());
  if (a.empty()) return;
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
}

constexpr int64_t kRows = 64, kCols = 256;

// ---- Library ------------------------------------------------------------------------------------

TEST(CApiLibrary, VersionsAndNames) {
  EXPECT_EQ(lowbit_abi_version(), static_cast<uint32_t>(LOWBIT_ABI_VERSION));
  EXPECT_STREQ(lowbit_version(), "0.1.0");
  for (int s = 0; s <= LOWBIT_INTERNAL; ++s) {
    EXPECT_STREQ(lowbit_status_name(static_cast<lowbit_status>(s)),
                 lowbit::StatusName(static_cast<lowbit::Status>(s)));
  }
  EXPECT_STREQ(lowbit_status_name(static_cast<lowbit_status>(-1)), "unknown");
  for (int f = 0; f < lowbit::kNumFormats; ++f) {
    const char* name = lowbit_format_name(static_cast<lowbit_format>(f));
    EXPECT_STREQ(name, lowbit::FormatName(static_cast<Format>(f)));
    lowbit_format back = LOWBIT_FORMAT_F32;
    ASSERT_EQ(lowbit_format_from_name(name, &back), LOWBIT_OK);
    EXPECT_EQ(back, f);
  }
  EXPECT_STREQ(lowbit_format_name(static_cast<lowbit_format>(lowbit::kNumFormats)), "unknown");
}

TEST(CApiLibrary, ContextThreads) {
  lowbit_context_t* ctx = nullptr;
  ASSERT_EQ(lowbit_context_create(3, &ctx), LOWBIT_OK);
  int32_t threads = 0;
  EXPECT_EQ(lowbit_context_num_threads(ctx, &threads), LOWBIT_OK);
  EXPECT_EQ(threads, 3);
  lowbit_context_destroy(ctx);
  EXPECT_EQ(lowbit_context_num_threads(ctx, &threads), LOWBIT_INVALID_ARGUMENT);
  EXPECT_NE(std::strstr(lowbit_last_error(), "not a live lowbit_context_t"), nullptr);
}

// ---- Every format: the C ABI gives the C++ API's bytes ------------------------------------------

struct FormatCase {
  Format format;
  int64_t block_size;
  bool double_quant;
  lowbit_granularity granularity;
};

std::vector<FormatCase> AllFormatCases() {
  std::vector<FormatCase> cases;
  for (int f = 0; f < lowbit::kNumFormats; ++f) {
    cases.push_back({static_cast<Format>(f), 0, false, LOWBIT_GRANULARITY_DEFAULT});
  }
  cases.push_back({Format::kNF4, 128, true, LOWBIT_GRANULARITY_DEFAULT});
  cases.push_back({Format::kFP4, 256, true, LOWBIT_GRANULARITY_DEFAULT});
  cases.push_back({Format::kBlockwise8, 256, true, LOWBIT_GRANULARITY_DEFAULT});
  cases.push_back({Format::kInt4, 32, false, LOWBIT_GRANULARITY_DEFAULT});
  cases.push_back({Format::kInt4Asym, 64, false, LOWBIT_GRANULARITY_DEFAULT});
  cases.push_back({Format::kInt8, 0, false, LOWBIT_GRANULARITY_TENSOR});
  cases.push_back({Format::kFP8E4M3, 0, false, LOWBIT_GRANULARITY_TENSOR});
  return cases;
}

std::string CaseName(const FormatCase& c) {
  return std::string(lowbit::FormatName(c.format)) + " b" + std::to_string(c.block_size) +
         (c.double_quant ? " dq" : "") + " g" + std::to_string(c.granularity);
}

TEST(CApiQuantize, EveryFormatMatchesCxxApi) {
  const int64_t n = kRows * kCols;
  const std::vector<float> w = RandomWeights(n, 1);
  const int64_t shape[2] = {kRows, kCols};
  for (const FormatCase& c : AllFormatCases()) {
    SCOPED_TRACE(CaseName(c));
    lowbit_quantize_options o;
    lowbit_quantize_options_init(&o);
    o.block_size = c.block_size;
    o.double_quant = c.double_quant ? 1 : 0;
    o.granularity = c.granularity;
    TensorHandle t;
    ASSERT_EQ(lowbit_quantize(static_cast<lowbit_format>(c.format), w.data(), LOWBIT_DTYPE_F32,
                              shape, 2, &o, &t.t),
              LOWBIT_OK)
        << lowbit_last_error();
    EXPECT_STREQ(lowbit_last_error(), "");

    lowbit::QuantizeOptions cpp;
    cpp.block_size = c.block_size;
    cpp.double_quant = c.double_quant;
    cpp.granularity = static_cast<lowbit::Granularity>(c.granularity);
    const lowbit::QuantizedTensor q =
        lowbit::Quantize(c.format, ConstTensorView{w.data(), DType::kF32, {kRows, kCols}}, cpp);

    EXPECT_EQ(Payload(t.t), q.data);
    ExpectSameBits(Scales(t.t), lowbit::ResolveScales(q.state));
    ExpectSameBits(DequantizeC(t.t, n), lowbit::DequantizeToF32(q));
    // f16 / bf16 outputs are the same bits as the C++ Dequantize into that dtype.
    for (const DType dt : {DType::kF16, DType::kBF16}) {
      std::vector<uint16_t> c_out(static_cast<size_t>(n)), cpp_out(static_cast<size_t>(n));
      ASSERT_EQ(lowbit_dequantize(t.t, c_out.data(), static_cast<lowbit_dtype>(dt), n), LOWBIT_OK);
      lowbit::Dequantize(q, lowbit::TensorView{cpp_out.data(), dt, {n}});
      EXPECT_EQ(c_out, cpp_out);
    }

    lowbit_tensor_info info;
    ASSERT_EQ(lowbit_tensor_get_info(t.t, &info), LOWBIT_OK);
    const lowbit::QuantInfo qi = lowbit::GetQuantInfo(q);
    EXPECT_EQ(info.format, static_cast<lowbit_format>(c.format));
    EXPECT_EQ(info.ndim, 2);
    EXPECT_EQ(info.shape[0], kRows);
    EXPECT_EQ(info.shape[1], kCols);
    EXPECT_EQ(info.num_elements, n);
    EXPECT_EQ(info.granularity, static_cast<lowbit_granularity>(qi.granularity));
    EXPECT_EQ(info.block_size, qi.block_size);
    EXPECT_EQ(info.double_quant, c.double_quant ? 1 : 0);
    EXPECT_EQ(info.payload_bytes, qi.payload_bytes);
    EXPECT_EQ(info.statistic_bytes, qi.statistic_bytes);
    EXPECT_EQ(info.total_bytes, qi.total_bytes);
    EXPECT_DOUBLE_EQ(info.bits_per_weight, qi.bits_per_weight);

    // Error statistics agree with the C++ EstimateError on the same data.
    lowbit_error_stats stats;
    ASSERT_EQ(lowbit_tensor_error(t.t, w.data(), LOWBIT_DTYPE_F32, n, &stats), LOWBIT_OK);
    const std::vector<float> back = lowbit::DequantizeToF32(q);
    const lowbit::ErrorStats ref = lowbit::EstimateError({w.data(), DType::kF32, {n}},
                                                         {back.data(), DType::kF32, {n}});
    EXPECT_EQ(stats.count, n);
    EXPECT_DOUBLE_EQ(stats.mean_abs, ref.mean_abs);
    EXPECT_DOUBLE_EQ(stats.max_abs, ref.max_abs);
    EXPECT_DOUBLE_EQ(stats.mse, ref.mse);
  }
}

TEST(CApiQuantize, Bf16InputAndOneDimensional) {
  const std::vector<float> w = RandomWeights(1000, 2);
  std::vector<uint16_t> bf(w.size());
  lowbit::FromF32(w.data(), static_cast<int64_t>(w.size()), bf.data(), DType::kBF16);
  const int64_t shape[1] = {1000};
  TensorHandle t;
  ASSERT_EQ(lowbit_quantize(LOWBIT_FORMAT_NF4, bf.data(), LOWBIT_DTYPE_BF16, shape, 1, nullptr,
                            &t.t),
            LOWBIT_OK)
      << lowbit_last_error();
  const lowbit::QuantizedTensor q =
      lowbit::Quantize(Format::kNF4, ConstTensorView{bf.data(), DType::kBF16, {1000}});
  EXPECT_EQ(Payload(t.t), q.data);
  ExpectSameBits(DequantizeC(t.t, 1000), lowbit::DequantizeToF32(q));
}

TEST(CApiErrorStats, MatchesDirectComputation) {
  const std::vector<float> a = {1.0f, -2.0f, 3.0f, 0.5f};
  const std::vector<float> b = {1.5f, -2.0f, 2.0f, 0.5f};
  lowbit_error_stats s;
  ASSERT_EQ(lowbit_error_stats_compute(a.data(), LOWBIT_DTYPE_F32, b.data(), LOWBIT_DTYPE_F32, 4,
                                       &s),
            LOWBIT_OK);
  EXPECT_DOUBLE_EQ(s.mean_abs, (0.5 + 0 + 1 + 0) / 4);
  EXPECT_DOUBLE_EQ(s.max_abs, 1.0);
  EXPECT_DOUBLE_EQ(s.mse, (0.25 + 1) / 4);
  EXPECT_NEAR(s.snr_db, 10 * std::log10((1 + 4 + 9 + 0.25) / 1.25), 1e-9);
  EXPECT_EQ(s.count, 4);
}

// ---- Matmul -------------------------------------------------------------------------------------

TEST(CApiMatmul, GemvAndGemmMatchCxxAndEigenFloat64) {
  const int64_t m = 3;
  const std::vector<float> w = RandomWeights(kRows * kCols, 3);
  const std::vector<float> x = RandomActivations(m * kCols, 4);
  const std::vector<float> bias = RandomActivations(kRows, 5);
  const int64_t shape[2] = {kRows, kCols};
  lowbit_context_t* ctx = nullptr;
  ASSERT_EQ(lowbit_context_create(2, &ctx), LOWBIT_OK);
  for (int f = static_cast<int>(Format::kInt8); f < lowbit::kNumFormats; ++f) {
    const Format format = static_cast<Format>(f);
    SCOPED_TRACE(lowbit::FormatName(format));
    TensorHandle t;
    ASSERT_EQ(lowbit_quantize(static_cast<lowbit_format>(f), w.data(), LOWBIT_DTYPE_F32, shape, 2,
                              nullptr, &t.t),
              LOWBIT_OK);
    PackedHandle p;
    ASSERT_EQ(lowbit_pack(t.t, "cpu", &p.p), LOWBIT_OK) << lowbit_last_error();
    lowbit_packed_info info;
    ASSERT_EQ(lowbit_packed_get_info(p.p, &info), LOWBIT_OK);
    EXPECT_EQ(info.rows, kRows);
    EXPECT_EQ(info.cols, kCols);
    EXPECT_STREQ(info.backend, "cpu");
    EXPECT_GT(info.packed_bytes, 0);

    // Unpack restores the canonical tensor bit for bit.
    TensorHandle u;
    ASSERT_EQ(lowbit_unpack(p.p, &u.t), LOWBIT_OK);
    EXPECT_EQ(Payload(u.t), Payload(t.t));

    // Independent reference: dequantized W in float64 through Eigen.
    const std::vector<float> wd = DequantizeC(t.t, kRows * kCols);
    const Eigen::MatrixXd W =
        Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
            wd.data(), kRows, kCols)
            .cast<double>();
    const Eigen::MatrixXd X =
        Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
            x.data(), m, kCols)
            .cast<double>();
    Eigen::MatrixXd Y = X * W.transpose();
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < kRows; ++j) Y(i, j) += bias[j];
    }

    std::vector<float> y(static_cast<size_t>(m * kRows), -1.0f);
    ASSERT_EQ(lowbit_gemm(p.p, x.data(), LOWBIT_DTYPE_F32, m, kCols, y.data(), LOWBIT_DTYPE_F32,
                          kRows, bias.data(), ctx),
              LOWBIT_OK)
        << lowbit_last_error();
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < kRows; ++j) {
        EXPECT_NEAR(y[i * kRows + j], Y(i, j), 1e-4 * (1 + std::abs(Y(i, j))));
      }
    }
    // The C++ API on the same packed weight gives the same bits.
    const lowbit::PackedWeight pw = lowbit::Pack(lowbit::Unpack(lowbit::Pack(
        lowbit::Quantize(format, ConstTensorView{w.data(), DType::kF32, {kRows, kCols}}))));
    std::vector<float> y_cpp(y.size());
    lowbit::Gemm(pw, {x.data(), DType::kF32, {m, kCols}}, {y_cpp.data(), DType::kF32, {m, kRows}},
                 bias.data());
    ExpectSameBits(y, y_cpp);

    std::vector<float> yv(static_cast<size_t>(kRows));
    ASSERT_EQ(lowbit_gemv(p.p, x.data(), LOWBIT_DTYPE_F32, kCols, yv.data(), LOWBIT_DTYPE_F32,
                          kRows, nullptr, nullptr),
              LOWBIT_OK);
    for (int64_t j = 0; j < kRows; ++j) {
      EXPECT_NEAR(yv[j], Y(0, j) - bias[j], 1e-4 * (1 + std::abs(Y(0, j))));
    }
  }
  lowbit_context_destroy(ctx);
}

// ---- Linear layers ------------------------------------------------------------------------------

TEST(CApiLinear, Linear4bitAndLinear8bitMatchCxxLayers) {
  const int64_t in = 256, out = 48, m = 2;
  const std::vector<float> w = RandomWeights(in * out, 6);
  const std::vector<float> bias = RandomActivations(out, 7);
  const std::vector<float> x = RandomActivations(m * in, 8);
  std::vector<float> y(static_cast<size_t>(m * out)), y_cpp(y.size());

  LinearHandle l4;
  ASSERT_EQ(lowbit_linear4bit_create(in, out, w.data(), bias.data(), LOWBIT_FORMAT_NF4, 64, 1,
                                     LOWBIT_DTYPE_BF16, &l4.l),
            LOWBIT_OK)
      << lowbit_last_error();
  int64_t fi = 0, fo = 0;
  lowbit_format wf = LOWBIT_FORMAT_F32;
  ASSERT_EQ(lowbit_linear_get_info(l4.l, &fi, &fo, &wf), LOWBIT_OK);
  EXPECT_EQ(fi, in);
  EXPECT_EQ(fo, out);
  EXPECT_EQ(wf, LOWBIT_FORMAT_NF4);
  ASSERT_EQ(lowbit_linear_forward(l4.l, x.data(), LOWBIT_DTYPE_F32, m, y.data(), LOWBIT_DTYPE_F32,
                                  nullptr),
            LOWBIT_OK);
  lowbit::nn::Linear4bitOptions o4;
  o4.quant_type = Format::kNF4;
  o4.block_size = 64;
  o4.compress_statistics = true;
  o4.compute_dtype = DType::kBF16;
  lowbit::nn::Linear4bit::FromLinear(in, out, w.data(), bias.data(), o4)
      ->Forward({x.data(), DType::kF32, {m, in}}, {y_cpp.data(), DType::kF32, {m, out}});
  ExpectSameBits(y, y_cpp);

  LinearHandle l8;
  ASSERT_EQ(lowbit_linear8bit_create(in, out, w.data(), bias.data(), 6.0f, &l8.l), LOWBIT_OK)
      << lowbit_last_error();
  ASSERT_EQ(lowbit_linear_forward(l8.l, x.data(), LOWBIT_DTYPE_F32, m, y.data(), LOWBIT_DTYPE_F32,
                                  nullptr),
            LOWBIT_OK);
  lowbit::nn::Linear8bitOptions o8;
  o8.has_fp16_weights = false;
  o8.threshold = 6.0f;
  lowbit::nn::Linear8bit::FromLinear(in, out, w.data(), bias.data(), o8)
      ->Forward({x.data(), DType::kF32, {m, in}}, {y_cpp.data(), DType::kF32, {m, out}});
  ExpectSameBits(y, y_cpp);
  ASSERT_EQ(lowbit_linear_get_info(l8.l, &fi, &fo, &wf), LOWBIT_OK);
  EXPECT_EQ(wf, LOWBIT_FORMAT_INT8);

  // A quant type a 4-bit layer cannot hold.
  lowbit_linear_t* bad = nullptr;
  EXPECT_EQ(lowbit_linear4bit_create(in, out, w.data(), nullptr, LOWBIT_FORMAT_INT8, 0, 0,
                                     LOWBIT_DTYPE_F32, &bad),
            LOWBIT_UNSUPPORTED_FORMAT);
  EXPECT_NE(std::strstr(lowbit_last_error(), "int8"), nullptr) << lowbit_last_error();
  EXPECT_EQ(bad, nullptr);
}

// ---- Files --------------------------------------------------------------------------------------

TEST(CApiFiles, SaveLoadRoundTripEveryFormatAndLayout) {
  const std::vector<float> w = RandomWeights(kRows * kCols, 9);
  const int64_t shape[2] = {kRows, kCols};
  const std::string path = TempPath("roundtrip.safetensors");
  for (const FormatCase& c : AllFormatCases()) {
    for (const lowbit_layout layout :
         {LOWBIT_LAYOUT_AUTO, LOWBIT_LAYOUT_LOWBIT, LOWBIT_LAYOUT_BITSANDBYTES}) {
      SCOPED_TRACE(CaseName(c) + " layout " + std::to_string(layout));
      lowbit_quantize_options o;
      lowbit_quantize_options_init(&o);
      o.block_size = c.block_size;
      o.double_quant = c.double_quant;
      o.granularity = c.granularity;
      TensorHandle t;
      ASSERT_EQ(lowbit_quantize(static_cast<lowbit_format>(c.format), w.data(), LOWBIT_DTYPE_F32,
                                shape, 2, &o, &t.t),
                LOWBIT_OK);
      const char* prefixes[] = {"model.proj."};
      const lowbit_tensor_t* tensors[] = {t.t};
      const bool bnb_ok = (c.format == Format::kNF4 || c.format == Format::kFP4 ||
                           (c.format == Format::kInt8 && c.granularity != LOWBIT_GRANULARITY_TENSOR));
      const bool lowbit_ok = !lowbit::IsDense(c.format) || layout == LOWBIT_LAYOUT_AUTO;
      const lowbit_status s = lowbit_save_tensors(path.c_str(), prefixes, tensors, 1, layout);
      if (layout == LOWBIT_LAYOUT_BITSANDBYTES && !bnb_ok) {
        EXPECT_EQ(s, LOWBIT_INVALID_ARGUMENT);
        EXPECT_GT(std::strlen(lowbit_last_error()), 0u);
        continue;
      }
      if (layout == LOWBIT_LAYOUT_LOWBIT && !lowbit_ok) {
        // Dense formats have no native layout of their own: either saved or refused cleanly.
        if (s != LOWBIT_OK) {
          EXPECT_EQ(s, LOWBIT_INVALID_ARGUMENT);
          continue;
        }
      } else {
        ASSERT_EQ(s, LOWBIT_OK) << lowbit_last_error();
      }
      TensorHandle back;
      ASSERT_EQ(lowbit_load_tensor(path.c_str(), "model.proj.", &back.t), LOWBIT_OK)
          << lowbit_last_error();
      ExpectSameBits(DequantizeC(back.t, kRows * kCols), DequantizeC(t.t, kRows * kCols));
      lowbit_tensor_info a, b;
      ASSERT_EQ(lowbit_tensor_get_info(t.t, &a), LOWBIT_OK);
      ASSERT_EQ(lowbit_tensor_get_info(back.t, &b), LOWBIT_OK);
      EXPECT_EQ(a.format, b.format);
      EXPECT_EQ(a.block_size, b.block_size);
      if (layout != LOWBIT_LAYOUT_BITSANDBYTES) EXPECT_EQ(Payload(back.t), Payload(t.t));
      // The file is what the C++ checkpoint API reads.
      const lowbit::io::SafetensorsFile file = lowbit::io::SafetensorsFile::Open(path);
      const lowbit::QuantizedTensor q = lowbit::io::LoadQuantizedTensor(file, "model.proj.");
      ExpectSameBits(lowbit::DequantizeToF32(q), DequantizeC(t.t, kRows * kCols));
    }
  }
  std::remove(path.c_str());
}

TEST(CApiFiles, SeveralTensorsAndDuplicateKeys) {
  const std::vector<float> w = RandomWeights(kRows * kCols, 10);
  const int64_t shape[2] = {kRows, kCols};
  TensorHandle a, b;
  ASSERT_EQ(lowbit_quantize(LOWBIT_FORMAT_NF4, w.data(), LOWBIT_DTYPE_F32, shape, 2, nullptr, &a.t),
            LOWBIT_OK);
  ASSERT_EQ(lowbit_quantize(LOWBIT_FORMAT_INT4, w.data(), LOWBIT_DTYPE_F32, shape, 2, nullptr, &b.t),
            LOWBIT_OK);
  const std::string path = TempPath("two.safetensors");
  const char* prefixes[] = {"a.", "b."};
  const lowbit_tensor_t* tensors[] = {a.t, b.t};
  ASSERT_EQ(lowbit_save_tensors(path.c_str(), prefixes, tensors, 2, LOWBIT_LAYOUT_AUTO), LOWBIT_OK);
  TensorHandle la, lb;
  ASSERT_EQ(lowbit_load_tensor(path.c_str(), "a.", &la.t), LOWBIT_OK);
  ASSERT_EQ(lowbit_load_tensor(path.c_str(), "b.", &lb.t), LOWBIT_OK);
  EXPECT_EQ(Payload(la.t), Payload(a.t));
  EXPECT_EQ(Payload(lb.t), Payload(b.t));

  // Duplicate keys: refused, and the previous file survives (atomic save).
  const char* dup[] = {"a.", "a."};
  EXPECT_EQ(lowbit_save_tensors(path.c_str(), dup, tensors, 2, LOWBIT_LAYOUT_AUTO),
            LOWBIT_INVALID_ARGUMENT);
  EXPECT_GT(std::strlen(lowbit_last_error()), 0u);
  TensorHandle again;
  ASSERT_EQ(lowbit_load_tensor(path.c_str(), "b.", &again.t), LOWBIT_OK);
  EXPECT_EQ(Payload(again.t), Payload(b.t));
  std::remove(path.c_str());
}

TEST(CApiFiles, CorruptAndMissingFiles) {
  const std::string path = TempPath("corrupt.safetensors");
  {
    std::ofstream f(path, std::ios::binary);
    const uint64_t header_len = 1000000;  // far beyond the file
    f.write(reinterpret_cast<const char*>(&header_len), 8);
    f << "{\"a\":";
  }
  lowbit_tensor_t* t = nullptr;
  EXPECT_EQ(lowbit_load_tensor(path.c_str(), "", &t), LOWBIT_CORRUPT_DATA);
  EXPECT_NE(std::strstr(lowbit_last_error(), "lowbit_load_tensor: "), nullptr);
  EXPECT_EQ(t, nullptr);
  {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    const std::string json = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,9]}}";
    const uint64_t header_len = json.size();
    f.write(reinterpret_cast<const char*>(&header_len), 8);
    f << json << std::string(9, '\0');
  }
  EXPECT_EQ(lowbit_load_tensor(path.c_str(), "", &t), LOWBIT_CORRUPT_DATA);
  std::remove(path.c_str());
  EXPECT_EQ(lowbit_load_tensor(path.c_str(), "", &t), LOWBIT_IO_ERROR);
  EXPECT_NE(std::strstr(lowbit_last_error(), "corrupt.safetensors"), nullptr);
}

TEST(CApiFiles, LoadsGgufTensorsByNameOrPrefix) {
  const std::string dir = std::string(LOWBIT_SOURCE_DIR) + "/tests/data/gguf/";
  const std::string path = dir + "stories260K-q4_0.gguf";
  // q4_0 loads as int4 group 32 and dequantizes to ggml's own values, bit for bit.
  TensorHandle t;
  ASSERT_EQ(lowbit_load_tensor(path.c_str(), "synthetic.0.weight", &t.t), LOWBIT_OK)
      << lowbit_last_error();
  lowbit_tensor_info info;
  ASSERT_EQ(lowbit_tensor_get_info(t.t, &info), LOWBIT_OK);
  EXPECT_EQ(info.format, LOWBIT_FORMAT_INT4);
  ASSERT_EQ(info.ndim, 2);
  EXPECT_EQ(info.shape[0], 48);
  EXPECT_EQ(info.shape[1], 512);
  std::vector<float> got(48 * 512);
  ASSERT_EQ(lowbit_dequantize(t.t, got.data(), LOWBIT_DTYPE_F32, 48 * 512), LOWBIT_OK);
  const lowbit::io::SafetensorsFile ref =
      lowbit::io::SafetensorsFile::Open(dir + "stories260K-q4_0.dequantized.safetensors");
  const lowbit::io::TensorInfo& r = ref.Get("synthetic.0.weight");
  ASSERT_EQ(r.size, got.size() * sizeof(float));
  EXPECT_EQ(std::memcmp(got.data(), ref.data(r), r.size), 0);
  // A module prefix gets "weight" appended.
  TensorHandle p;
  ASSERT_EQ(lowbit_load_tensor(path.c_str(), "layers.0.attention.wq.", &p.t), LOWBIT_OK);
  // Missing tensor, and a type without a conversion.
  lowbit_tensor_t* none = nullptr;
  EXPECT_EQ(lowbit_load_tensor(path.c_str(), "nope", &none), LOWBIT_INVALID_ARGUMENT);
  EXPECT_NE(std::strstr(lowbit_last_error(), "nopeweight"), nullptr) << lowbit_last_error();
  EXPECT_EQ(none, nullptr);
  // A GGUF file whose data section is cut short is corrupt, not a crash.
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string cut = TempPath("cut.gguf");
  {
    std::ofstream out(cut, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size() / 2));
  }
  EXPECT_EQ(lowbit_load_tensor(cut.c_str(), "synthetic.0.weight", &none), LOWBIT_CORRUPT_DATA);
  EXPECT_NE(std::strstr(lowbit_last_error(), "past the end"), nullptr) << lowbit_last_error();
  std::remove(cut.c_str());
}

// ---- The error model ----------------------------------------------------------------------------

// Expects `status` and a message starting with the function name and containing `needle`.
#define EXPECT_C_ERROR(call, status, needle)                                  \
  do {                                                                        \
    EXPECT_EQ((call), (status)) << #call;                                     \
    EXPECT_NE(std::strstr(lowbit_last_error(), (needle)), nullptr)            \
        << #call << " said: " << lowbit_last_error();                         \
  } while (0)

TEST(CApiErrors, NullPointersInEveryFunction) {
  const std::vector<float> w = RandomWeights(64 * 64, 11);
  const int64_t shape[2] = {64, 64};
  TensorHandle t;
  ASSERT_EQ(lowbit_quantize(LOWBIT_FORMAT_NF4, w.data(), LOWBIT_DTYPE_F32, shape, 2, nullptr, &t.t),
            LOWBIT_OK);
  PackedHandle p;
  ASSERT_EQ(lowbit_pack(t.t, nullptr, &p.p), LOWBIT_OK);
  LinearHandle l;
  ASSERT_EQ(lowbit_linear4bit_from_tensor(t.t, nullptr, LOWBIT_DTYPE_F32, &l.l), LOWBIT_OK);
  std::vector<float> buf(64 * 64);
  float f = 0;
  int64_t i64 = 0;
  int32_t i32 = 0;
  const uint8_t* bytes = nullptr;
  lowbit_format fmt;
  lowbit_tensor_info ti;
  lowbit_packed_info pi;
  lowbit_error_stats es;
  lowbit_tensor_t* out_t = nullptr;
  lowbit_packed_t* out_p = nullptr;
  lowbit_linear_t* out_l = nullptr;
  lowbit_context_t* out_c = nullptr;
  const char* names[] = {"x."};
  const lowbit_tensor_t* ts[] = {t.t};
  const auto kInv = LOWBIT_INVALID_ARGUMENT;

  EXPECT_C_ERROR(lowbit_format_from_name("nf4", nullptr), kInv, "lowbit_format_from_name: out_format is NULL");
  EXPECT_C_ERROR(lowbit_context_create(1, nullptr), kInv, "out_ctx is NULL");
  EXPECT_C_ERROR(lowbit_context_num_threads(nullptr, &i32), kInv, "ctx is NULL");
  EXPECT_C_ERROR(lowbit_context_num_threads(out_c, nullptr), kInv, "ctx is NULL");
  EXPECT_C_ERROR(lowbit_quantize(LOWBIT_FORMAT_NF4, nullptr, LOWBIT_DTYPE_F32, shape, 2, nullptr, &out_t), kInv, "data is NULL");
  EXPECT_C_ERROR(lowbit_quantize(LOWBIT_FORMAT_NF4, w.data(), LOWBIT_DTYPE_F32, nullptr, 2, nullptr, &out_t), kInv, "shape is NULL");
  EXPECT_C_ERROR(lowbit_quantize(LOWBIT_FORMAT_NF4, w.data(), LOWBIT_DTYPE_F32, shape, 2, nullptr, nullptr), kInv, "out_tensor is NULL");
  EXPECT_C_ERROR(lowbit_dequantize(nullptr, buf.data(), LOWBIT_DTYPE_F32, 4096), kInv, "tensor is NULL");
  EXPECT_C_ERROR(lowbit_dequantize(t.t, nullptr, LOWBIT_DTYPE_F32, 4096), kInv, "out is NULL");
  EXPECT_C_ERROR(lowbit_tensor_get_info(nullptr, &ti), kInv, "tensor is NULL");
  EXPECT_C_ERROR(lowbit_tensor_get_info(t.t, nullptr), kInv, "out_info is NULL");
  EXPECT_C_ERROR(lowbit_tensor_payload(t.t, nullptr, &i64), kInv, "out_data is NULL");
  EXPECT_C_ERROR(lowbit_tensor_payload(t.t, &bytes, nullptr), kInv, "out_bytes is NULL");
  EXPECT_C_ERROR(lowbit_tensor_scales(t.t, nullptr, 0, nullptr), kInv, "out_count is NULL");
  EXPECT_C_ERROR(lowbit_tensor_scales(t.t, nullptr, 5, &i64), kInv, "out is NULL but capacity is 5");
  EXPECT_C_ERROR(lowbit_tensor_scales(t.t, &f, 1, &i64), kInv, "capacity 1 is smaller");
  EXPECT_C_ERROR(lowbit_tensor_scales(t.t, &f, -1, &i64), kInv, "capacity is negative");
  EXPECT_C_ERROR(lowbit_error_stats_compute(nullptr, LOWBIT_DTYPE_F32, &f, LOWBIT_DTYPE_F32, 1, &es), kInv, "original is NULL");
  EXPECT_C_ERROR(lowbit_error_stats_compute(&f, LOWBIT_DTYPE_F32, nullptr, LOWBIT_DTYPE_F32, 1, &es), kInv, "approx is NULL");
  EXPECT_C_ERROR(lowbit_error_stats_compute(&f, LOWBIT_DTYPE_F32, &f, LOWBIT_DTYPE_F32, 1, nullptr), kInv, "out_stats is NULL");
  EXPECT_C_ERROR(lowbit_tensor_error(nullptr, w.data(), LOWBIT_DTYPE_F32, 4096, &es), kInv, "tensor is NULL");
  EXPECT_C_ERROR(lowbit_tensor_error(t.t, nullptr, LOWBIT_DTYPE_F32, 4096, &es), kInv, "original is NULL");
  EXPECT_C_ERROR(lowbit_tensor_error(t.t, w.data(), LOWBIT_DTYPE_F32, 4096, nullptr), kInv, "out_stats is NULL");
  EXPECT_C_ERROR(lowbit_pack(nullptr, nullptr, &out_p), kInv, "weight is NULL");
  EXPECT_C_ERROR(lowbit_pack(t.t, nullptr, nullptr), kInv, "out_packed is NULL");
  EXPECT_C_ERROR(lowbit_unpack(nullptr, &out_t), kInv, "packed is NULL");
  EXPECT_C_ERROR(lowbit_unpack(p.p, nullptr), kInv, "out_tensor is NULL");
  EXPECT_C_ERROR(lowbit_packed_get_info(nullptr, &pi), kInv, "packed is NULL");
  EXPECT_C_ERROR(lowbit_packed_get_info(p.p, nullptr), kInv, "out_info is NULL");
  EXPECT_C_ERROR(lowbit_gemv(nullptr, buf.data(), LOWBIT_DTYPE_F32, 64, buf.data(), LOWBIT_DTYPE_F32, 64, nullptr, nullptr), kInv, "weight is NULL");
  EXPECT_C_ERROR(lowbit_gemv(p.p, nullptr, LOWBIT_DTYPE_F32, 64, buf.data(), LOWBIT_DTYPE_F32, 64, nullptr, nullptr), kInv, "x is NULL");
  EXPECT_C_ERROR(lowbit_gemv(p.p, buf.data(), LOWBIT_DTYPE_F32, 64, nullptr, LOWBIT_DTYPE_F32, 64, nullptr, nullptr), kInv, "y is NULL");
  EXPECT_C_ERROR(lowbit_gemm(nullptr, buf.data(), LOWBIT_DTYPE_F32, 1, 64, buf.data(), LOWBIT_DTYPE_F32, 64, nullptr, nullptr), kInv, "weight is NULL");
  EXPECT_C_ERROR(lowbit_gemm(p.p, nullptr, LOWBIT_DTYPE_F32, 1, 64, buf.data(), LOWBIT_DTYPE_F32, 64, nullptr, nullptr), kInv, "x is NULL");
  EXPECT_C_ERROR(lowbit_gemm(p.p, buf.data(), LOWBIT_DTYPE_F32, 1, 64, nullptr, LOWBIT_DTYPE_F32, 64, nullptr, nullptr), kInv, "y is NULL");
  EXPECT_C_ERROR(lowbit_save_tensors(nullptr, names, ts, 1, LOWBIT_LAYOUT_AUTO), kInv, "path is NULL");
  EXPECT_C_ERROR(lowbit_save_tensors("x", nullptr, ts, 1, LOWBIT_LAYOUT_AUTO), kInv, "prefixes is NULL");
  EXPECT_C_ERROR(lowbit_save_tensors("x", names, nullptr, 1, LOWBIT_LAYOUT_AUTO), kInv, "tensors is NULL");
  const char* null_name[] = {nullptr};
  const lowbit_tensor_t* null_tensor[] = {nullptr};
  EXPECT_C_ERROR(lowbit_save_tensors("x", null_name, ts, 1, LOWBIT_LAYOUT_AUTO), kInv, "prefixes[0] is NULL");
  EXPECT_C_ERROR(lowbit_save_tensors("x", names, null_tensor, 1, LOWBIT_LAYOUT_AUTO), kInv, "tensors[0] is NULL");
  EXPECT_C_ERROR(lowbit_load_tensor(nullptr, "", &out_t), kInv, "path is NULL");
  EXPECT_C_ERROR(lowbit_load_tensor("x", nullptr, &out_t), kInv, "prefix is NULL");
  EXPECT_C_ERROR(lowbit_load_tensor("x", "", nullptr), kInv, "out_tensor is NULL");
  EXPECT_C_ERROR(lowbit_linear4bit_create(64, 64, nullptr, nullptr, LOWBIT_FORMAT_NF4, 0, 0, LOWBIT_DTYPE_F32, &out_l), kInv, "w is NULL");
  EXPECT_C_ERROR(lowbit_linear4bit_create(64, 64, w.data(), nullptr, LOWBIT_FORMAT_NF4, 0, 0, LOWBIT_DTYPE_F32, nullptr), kInv, "out_layer is NULL");
  EXPECT_C_ERROR(lowbit_linear4bit_from_tensor(nullptr, nullptr, LOWBIT_DTYPE_F32, &out_l), kInv, "weight is NULL");
  EXPECT_C_ERROR(lowbit_linear4bit_from_tensor(t.t, nullptr, LOWBIT_DTYPE_F32, nullptr), kInv, "out_layer is NULL");
  EXPECT_C_ERROR(lowbit_linear8bit_create(64, 64, nullptr, nullptr, 0, &out_l), kInv, "w is NULL");
  EXPECT_C_ERROR(lowbit_linear8bit_create(64, 64, w.data(), nullptr, 0, nullptr), kInv, "out_layer is NULL");
  EXPECT_C_ERROR(lowbit_linear_forward(nullptr, buf.data(), LOWBIT_DTYPE_F32, 1, buf.data(), LOWBIT_DTYPE_F32, nullptr), kInv, "layer is NULL");
  EXPECT_C_ERROR(lowbit_linear_forward(l.l, nullptr, LOWBIT_DTYPE_F32, 1, buf.data(), LOWBIT_DTYPE_F32, nullptr), kInv, "x is NULL");
  EXPECT_C_ERROR(lowbit_linear_forward(l.l, buf.data(), LOWBIT_DTYPE_F32, 1, nullptr, LOWBIT_DTYPE_F32, nullptr), kInv, "y is NULL");
  EXPECT_C_ERROR(lowbit_linear_get_info(nullptr, &i64, &i64, &fmt), kInv, "layer is NULL");
  EXPECT_C_ERROR(lowbit_linear_get_info(l.l, nullptr, &i64, &fmt), kInv, "out_in_features is NULL");
  EXPECT_C_ERROR(lowbit_linear_get_info(l.l, &i64, nullptr, &fmt), kInv, "out_out_features is NULL");
  EXPECT_C_ERROR(lowbit_linear_get_info(l.l, &i64, &i64, nullptr), kInv, "out_weight_format is NULL");
  // Nothing was written through the out parameters.
  EXPECT_EQ(out_t, nullptr);
  EXPECT_EQ(out_p, nullptr);
  EXPECT_EQ(out_l, nullptr);
  // The void functions tolerate NULL.
  lowbit_quantize_options_init(nullptr);
  lowbit_context_destroy(nullptr);
  lowbit_tensor_destroy(nullptr);
  lowbit_packed_destroy(nullptr);
  lowbit_linear_destroy(nullptr);
}

TEST(CApiErrors, BadSizesShapesAndEnums) {
  const std::vector<float> w = RandomWeights(64 * 64, 12);
  std::vector<float> buf(64 * 64);
  lowbit_tensor_t* t = nullptr;
  const auto kInv = LOWBIT_INVALID_ARGUMENT;
  const int64_t good[2] = {64, 64};
  const int64_t negative[2] = {64, -64};
  const int64_t zero[2] = {0, 64};
  const int64_t huge[3] = {int64_t{1} << 40, int64_t{1} << 40, 2};
  EXPECT_C_ERROR(lowbit_quantize(LOWBIT_FORMAT_NF4, w.data(), LOWBIT_DTYPE_F32, good, 0, nullptr, &t), kInv, "ndim must be in [1, 8], got 0");
  EXPECT_C_ERROR(lowbit_quantize(LOWBIT_FORMAT_NF4, w.data(), LOWBIT_DTYPE_F32, good, 9, nullptr, &t), kInv, "got 9");
  EXPECT_C_ERROR(lowbit_quantize(LOWBIT_FORMAT_NF4, w.data(), LOWBIT_DTYPE_F32, negative, 2, nullptr, &t), kInv, "shape[1] must be positive, got -64");
  EXPECT_C_ERROR(lowbit_quantize(LOWBIT_FORMAT_NF4, w.data(), LOWBIT_DTYPE_F32, zero, 2, nullptr, &t), kInv, "shape[0] must be positive, got 0");
  EXPECT_C_ERROR(lowbit_quantize(LOWBIT_FORMAT_NF4, w.data(), LOWBIT_DTYPE_F32, huge, 3, nullptr, &t), kInv, "overflows int64");
  EXPECT_C_ERROR(lowbit_quantize(static_cast<lowbit_format>(42), w.data(), LOWBIT_DTYPE_F32, good, 2, nullptr, &t), LOWBIT_UNSUPPORTED_FORMAT, "unknown format value 42");
  EXPECT_C_ERROR(lowbit_quantize(LOWBIT_FORMAT_NF4, w.data(), static_cast<lowbit_dtype>(9), good, 2, nullptr, &t), kInv, "unknown dtype 9");
  lowbit_quantize_options o;
  lowbit_quantize_options_init(&o);
  o.struct_size = 4;
  EXPECT_C_ERROR(lowbit_quantize(LOWBIT_FORMAT_NF4, w.data(), LOWBIT_DTYPE_F32, good, 2, &o, &t), kInv, "struct_size is 4");
  lowbit_quantize_options_init(&o);
  o.granularity = static_cast<lowbit_granularity>(17);
  EXPECT_C_ERROR(lowbit_quantize(LOWBIT_FORMAT_NF4, w.data(), LOWBIT_DTYPE_F32, good, 2, &o, &t), kInv, "unknown granularity 17");
  lowbit_quantize_options_init(&o);
  o.block_size = 3;  // not a power of two: rejected by the C++ validation, message passed through
  EXPECT_EQ(lowbit_quantize(LOWBIT_FORMAT_NF4, w.data(), LOWBIT_DTYPE_F32, good, 2, &o, &t), kInv);
  EXPECT_NE(std::strstr(lowbit_last_error(), "lowbit_quantize: "), nullptr);
  EXPECT_NE(std::strstr(lowbit_last_error(), "3"), nullptr);
  std::vector<float> nan_data = w;
  nan_data[5] = std::nanf("");
  EXPECT_EQ(lowbit_quantize(LOWBIT_FORMAT_NF4, nan_data.data(), LOWBIT_DTYPE_F32, good, 2, nullptr, &t), kInv);
  EXPECT_EQ(t, nullptr);

  TensorHandle q;
  ASSERT_EQ(lowbit_quantize(LOWBIT_FORMAT_INT4, w.data(), LOWBIT_DTYPE_F32, good, 2, nullptr, &q.t), LOWBIT_OK);
  EXPECT_C_ERROR(lowbit_dequantize(q.t, buf.data(), LOWBIT_DTYPE_F32, -1), kInv, "count must be positive, got -1");
  EXPECT_C_ERROR(lowbit_dequantize(q.t, buf.data(), LOWBIT_DTYPE_F32, 4095), kInv, "count is 4095 but the tensor has 4096");
  EXPECT_C_ERROR(lowbit_dequantize(q.t, buf.data(), static_cast<lowbit_dtype>(-1), 4096), kInv, "unknown dtype -1");
  lowbit_error_stats es;
  EXPECT_C_ERROR(lowbit_tensor_error(q.t, w.data(), LOWBIT_DTYPE_F32, 10, &es), kInv, "count is 10");
  EXPECT_C_ERROR(lowbit_error_stats_compute(w.data(), LOWBIT_DTYPE_F32, w.data(), LOWBIT_DTYPE_F32, 0, &es), kInv, "count must be positive");

  PackedHandle p;
  EXPECT_C_ERROR(lowbit_pack(q.t, "tpu", &p.p), LOWBIT_UNSUPPORTED_BACKEND, "tpu");
  ASSERT_EQ(lowbit_pack(q.t, "", &p.p), LOWBIT_OK);
  EXPECT_C_ERROR(lowbit_gemv(p.p, w.data(), LOWBIT_DTYPE_F32, 63, buf.data(), LOWBIT_DTYPE_F32, 64, nullptr, nullptr), kInv, "k = 63, n = 64");
  EXPECT_C_ERROR(lowbit_gemv(p.p, w.data(), LOWBIT_DTYPE_F32, 64, buf.data(), LOWBIT_DTYPE_F32, 0, nullptr, nullptr), kInv, "n must be positive");
  EXPECT_C_ERROR(lowbit_gemm(p.p, w.data(), LOWBIT_DTYPE_F32, -2, 64, buf.data(), LOWBIT_DTYPE_F32, 64, nullptr, nullptr), kInv, "m must be positive, got -2");
  EXPECT_C_ERROR(lowbit_gemm(p.p, w.data(), LOWBIT_DTYPE_F32, INT64_MAX / 2, 64, buf.data(), LOWBIT_DTYPE_F32, 64, nullptr, nullptr), kInv, "overflows int64");

  const char* names[] = {"x."};
  const lowbit_tensor_t* ts[] = {q.t};
  EXPECT_C_ERROR(lowbit_save_tensors("x", names, ts, 0, LOWBIT_LAYOUT_AUTO), kInv, "count must be positive, got 0");
  EXPECT_C_ERROR(lowbit_save_tensors("x", names, ts, 1, static_cast<lowbit_layout>(7)), kInv, "unknown layout 7");
  EXPECT_C_ERROR(lowbit_save_tensors("/nonexistent-dir/x.safetensors", names, ts, 1, LOWBIT_LAYOUT_AUTO), LOWBIT_IO_ERROR, "nonexistent-dir");

  lowbit_linear_t* l = nullptr;
  EXPECT_C_ERROR(lowbit_linear4bit_create(0, 64, w.data(), nullptr, LOWBIT_FORMAT_NF4, 0, 0, LOWBIT_DTYPE_F32, &l), kInv, "in_features must be positive, got 0");
  EXPECT_C_ERROR(lowbit_linear4bit_create(64, -1, w.data(), nullptr, LOWBIT_FORMAT_NF4, 0, 0, LOWBIT_DTYPE_F32, &l), kInv, "out_features must be positive, got -1");
  EXPECT_C_ERROR(lowbit_linear4bit_create(64, 64, w.data(), nullptr, static_cast<lowbit_format>(99), 0, 0, LOWBIT_DTYPE_F32, &l), LOWBIT_UNSUPPORTED_FORMAT, "99");
  EXPECT_C_ERROR(lowbit_linear4bit_create(64, 64, w.data(), nullptr, LOWBIT_FORMAT_NF4, 0, 0, static_cast<lowbit_dtype>(5), &l), kInv, "compute_dtype: unknown dtype 5");
  EXPECT_C_ERROR(lowbit_linear8bit_create(64, 0, w.data(), nullptr, 0, &l), kInv, "out_features must be positive");
  EXPECT_EQ(l, nullptr);
  lowbit_context_t* ctx = nullptr;
  EXPECT_C_ERROR(lowbit_context_create(100000, &ctx), kInv, "100000");
  EXPECT_EQ(ctx, nullptr);
  EXPECT_EQ(lowbit_context_create(-1, &ctx), LOWBIT_OK);  // <= 0: hardware concurrency
  int32_t threads = 0;
  EXPECT_EQ(lowbit_context_num_threads(ctx, &threads), LOWBIT_OK);
  EXPECT_GE(threads, 1);
  lowbit_context_destroy(ctx);
}

TEST(CApiErrors, DestroyedAndWrongKindHandles) {
  const std::vector<float> w = RandomWeights(64 * 64, 13);
  const int64_t shape[2] = {64, 64};
  std::vector<float> buf(64 * 64);
  lowbit_tensor_t* t = nullptr;
  ASSERT_EQ(lowbit_quantize(LOWBIT_FORMAT_FP8_E4M3, w.data(), LOWBIT_DTYPE_F32, shape, 2, nullptr, &t), LOWBIT_OK);
  lowbit_packed_t* p = nullptr;
  ASSERT_EQ(lowbit_pack(t, nullptr, &p), LOWBIT_OK);
  lowbit_context_t* ctx = nullptr;
  ASSERT_EQ(lowbit_context_create(1, &ctx), LOWBIT_OK);

  // A tensor handle passed where a packed weight is expected (a C caller's cast mistake).
  lowbit_packed_info pi;
  EXPECT_C_ERROR(lowbit_packed_get_info(reinterpret_cast<lowbit_packed_t*>(t), &pi), LOWBIT_INVALID_ARGUMENT, "not a live lowbit_packed_t");
  // A stack address that was never a handle.
  int junk = 0;
  EXPECT_C_ERROR(lowbit_dequantize(reinterpret_cast<lowbit_tensor_t*>(&junk), buf.data(), LOWBIT_DTYPE_F32, 4096), LOWBIT_INVALID_ARGUMENT, "not a live lowbit_tensor_t");
  // Destroying one kind through another kind's destroy does nothing.
  lowbit_tensor_destroy(reinterpret_cast<lowbit_tensor_t*>(p));
  EXPECT_EQ(lowbit_packed_get_info(p, &pi), LOWBIT_OK);

  lowbit_context_destroy(ctx);
  EXPECT_C_ERROR(lowbit_gemv(p, w.data(), LOWBIT_DTYPE_F32, 64, buf.data(), LOWBIT_DTYPE_F32, 64, nullptr, ctx), LOWBIT_INVALID_ARGUMENT, "not a live lowbit_context_t");
  lowbit_tensor_destroy(t);
  EXPECT_C_ERROR(lowbit_dequantize(t, buf.data(), LOWBIT_DTYPE_F32, 4096), LOWBIT_INVALID_ARGUMENT, "tensor is not a live lowbit_tensor_t");
  lowbit_linear_t* l = nullptr;
  EXPECT_C_ERROR(lowbit_linear4bit_from_tensor(t, nullptr, LOWBIT_DTYPE_F32, &l), LOWBIT_INVALID_ARGUMENT, "weight is not a live");
  // The packed weight outlives the tensor it came from.
  EXPECT_EQ(lowbit_gemv(p, w.data(), LOWBIT_DTYPE_F32, 64, buf.data(), LOWBIT_DTYPE_F32, 64, nullptr, nullptr), LOWBIT_OK);
  lowbit_packed_destroy(p);
  EXPECT_C_ERROR(lowbit_gemv(p, w.data(), LOWBIT_DTYPE_F32, 64, buf.data(), LOWBIT_DTYPE_F32, 64, nullptr, nullptr), LOWBIT_INVALID_ARGUMENT, "weight is not a live lowbit_packed_t");
  // Double destroy is a no-op (ASan would report a double free otherwise).
  lowbit_tensor_destroy(t);
  lowbit_packed_destroy(p);
  lowbit_context_destroy(ctx);
}

TEST(CApiErrors, LastErrorIsThreadLocalAndResetBySuccess) {
  lowbit_format f;
  ASSERT_EQ(lowbit_format_from_name("bogus", &f), LOWBIT_UNSUPPORTED_FORMAT);
  const std::string mine = lowbit_last_error();
  EXPECT_NE(mine.find("lowbit_format_from_name: "), std::string::npos);
  EXPECT_NE(mine.find("bogus"), std::string::npos);
  std::string other_before, other_after;
  std::thread([&] {
    other_before = lowbit_last_error();
    lowbit_context_t* ctx = nullptr;
    (void)lowbit_context_create(1, nullptr);
    other_after = lowbit_last_error();
    lowbit_context_destroy(ctx);
  }).join();
  EXPECT_EQ(other_before, "");
  EXPECT_NE(other_after.find("out_ctx is NULL"), std::string::npos);
  EXPECT_EQ(std::string(lowbit_last_error()), mine);  // untouched by the other thread
  ASSERT_EQ(lowbit_format_from_name("nf4", &f), LOWBIT_OK);
  EXPECT_STREQ(lowbit_last_error(), "");
}

TEST(CApiErrors, ConcurrentCallsOnDistinctHandles) {
  const std::vector<float> w = RandomWeights(128 * 128, 14);
  const int64_t shape[2] = {128, 128};
  std::vector<std::thread> threads;
  std::vector<int> ok(4, 0);
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      for (int r = 0; r < 20; ++r) {
        lowbit_tensor_t* t = nullptr;
        if (lowbit_quantize(LOWBIT_FORMAT_INT4, w.data(), LOWBIT_DTYPE_F32, shape, 2, nullptr, &t) != LOWBIT_OK) return;
        lowbit_packed_t* p = nullptr;
        const lowbit_status s = lowbit_pack(t, nullptr, &p);
        lowbit_tensor_destroy(t);
        lowbit_packed_destroy(p);
        if (s != LOWBIT_OK) return;
      }
      ok[i] = 1;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(ok, std::vector<int>(4, 1));
}

// ---- The shared library exports lowbit_* and nothing else ----------------------------------------

TEST(CApiLibrary, ExportsOnlyLowbitSymbols) {
  const std::string cmd = std::string("nm -D --defined-only '") + LOWBIT_C_LIBRARY + "' 2>&1";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string out;
  char line[1024];
  while (std::fgets(line, sizeof(line), pipe) != nullptr) out += line;
  const int rc = ::pclose(pipe);
  if (rc != 0 && out.find("not found") != std::string::npos) GTEST_SKIP() << "nm not available";
  ASSERT_EQ(rc, 0) << out;
  int exported = 0;
  size_t pos = 0;
  while (pos < out.size()) {
    const size_t end = out.find('\n', pos);
    const std::string l = out.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    pos = end == std::string::npos ? out.size() : end + 1;
    const size_t sp = l.find_last_of(' ');
    if (l.empty() || sp == std::string::npos) continue;
    const std::string type = l.substr(sp - 1, 1);
    const std::string sym = l.substr(sp + 1);
    if (type == "A") continue;  // version node (LOWBIT_C_1)
    EXPECT_EQ(sym.rfind("lowbit_", 0), 0u) << "unexpected export: " << l;
    ++exported;
  }
  EXPECT_GE(exported, 30);
}

}  // namespace
