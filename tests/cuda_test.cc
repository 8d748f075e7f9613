// CUDA backend tests (built only with LOWBIT_BACKEND_CUDA).
//
// Three layers:
//   DeviceCodecs.*  the kernels' element codecs (kernels/cuda/device_codecs.h) compiled for the
//                   host and checked bit for bit against the reference codecs — runs everywhere.
//   CudaBackend.*   registration, probing and error paths — runs everywhere; on a machine without
//                   a GPU it checks that the backend refuses cleanly.
//   CudaParity.*    every CUDA op against the CPU reference (bit-exact dequantize/quantize, NMSE
//                   bounds for matmul) — GTEST_SKIP with the probe's reason when no GPU is usable.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backend.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/device_codecs.h"
#include "kernels/cuda/device_runtime.h"
#include "kernels/cuda/gemv_lane.h"
#include "kernels/cuda/weight_view.h"
#include "lowbit/fp8.h"
#include "lowbit/ops.h"
#include "lowbit/quantize.h"
#include "reference/reference.h"

namespace lowbit {
namespace {

uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

std::vector<float> RandomWeights(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& e : v) e = dist(rng);
  if (n > 7) v[7] = 0.0f;  // exact zeros and a ragged outlier exercise edge codes
  if (n > 11) v[11] = 9.0f * scale;
  return v;
}

struct Case {
  Format format;
  Granularity granularity;
  int64_t block;
  bool double_quant;
};

// Every quantized format with each granularity it allows, incl. double quantization.
std::vector<Case> AllCases() {
  return {
      {Format::kNF4, Granularity::kDefault, 64, false},
      {Format::kNF4, Granularity::kDefault, 256, true},
      {Format::kFP4, Granularity::kDefault, 64, false},
      {Format::kFP4, Granularity::kDefault, 128, true},
      {Format::kInt4, Granularity::kDefault, 32, false},
      {Format::kInt4, Granularity::kDefault, 128, false},
      {Format::kInt4Asym, Granularity::kDefault, 64, false},
      {Format::kInt8, Granularity::kRow, 0, false},
      {Format::kInt8, Granularity::kTensor, 0, false},
      {Format::kInt8Asym, Granularity::kRow, 0, false},
      {Format::kFP8E4M3, Granularity::kRow, 0, false},
      {Format::kFP8E4M3, Granularity::kTensor, 0, false},
      {Format::kFP8E5M2, Granularity::kRow, 0, false},
      {Format::kBlockwise8, Granularity::kDefault, 64, false},
      {Format::kBlockwise8, Granularity::kDefault, 256, true},
  };
}

QuantizedTensor QuantizeCase(const Case& c, const std::vector<float>& x, const Shape& shape) {
  QuantizeOptions o;
  o.granularity = c.granularity;
  o.block_size = c.block;
  o.double_quant = c.double_quant;
  return Quantize(c.format, ConstTensorView{x.data(), DType::kF32, shape}, o);
}

std::string Describe(const QuantizedTensor& q) {
  return std::string(FormatName(q.state.format)) + " " + ShapeToString(q.state.shape) +
         " block " + std::to_string(q.state.block_size) +
         " granularity " + std::to_string(static_cast<int>(q.state.granularity)) +
         (q.state.nested ? " dq" : "");
}

// The kernels' host view of a canonical tensor: statistics resolved by the reference.
struct HostView {
  std::vector<float> scales;
  float lut16[16] = {};
  cuda::WeightView view;
  explicit HostView(const QuantizedTensor& q) {
    const QuantState& s = q.state;
    view.kind = cuda::KindOf(s.format);
    view.data = q.data.data();
    view.map = cuda::MakeStatMap(s);
    if (IsDense(s.format)) return;
    scales = ResolveScales(s);
    view.scales = scales.data();
    view.zeros = s.zero_points.empty() ? nullptr : s.zero_points.data();
    if (view.kind == cuda::WKind::kLut4) {
      cuda::Lut16(s, lut16);
      view.lut = lut16;
    } else if (view.kind == cuda::WKind::kLut8) {
      view.lut = s.codebook.data();
    }
  }
};

// ---- DeviceCodecs: host-compiled kernel codecs vs the reference --------------------------------

TEST(DeviceCodecs, Fp8DecodeIsExactForAllCodes) {
  for (uint32_t c = 0; c < 256; ++c) {
    const float e4 = FP8E4M3ToF32(static_cast<uint8_t>(c));
    const float e5 = FP8E5M2ToF32(static_cast<uint8_t>(c));
    EXPECT_EQ(Bits(cuda::DecodeE4M3(c)), Bits(e4)) << "e4m3 code " << c;
    EXPECT_EQ(Bits(cuda::DecodeE5M2(c)), Bits(e5)) << "e5m2 code " << c;
  }
}

TEST(DeviceCodecs, HalfDecodeIsExactForAllCodes) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const uint16_t b = static_cast<uint16_t>(h);
    ASSERT_EQ(Bits(cuda::F16BitsToF32(b)), Bits(F16ToF32(F16{b}))) << "f16 bits " << h;
    ASSERT_EQ(Bits(cuda::BF16BitsToF32(b)), Bits(BF16ToF32(BF16{b}))) << "bf16 bits " << h;
  }
}

TEST(DeviceCodecs, Bf16RoundingMatchesLibrary) {
  std::mt19937 rng(3);
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < 200000; ++i) {
    uint32_t u = bits(rng);
    if (i < 4) u = (i == 0) ? 0x7F800000u : (i == 1) ? 0x7FC00001u : (i == 2) ? 0x3F808000u : 0x3F818000u;
    float f;
    std::memcpy(&f, &u, 4);
    ASSERT_EQ(cuda::F32ToBF16Bits(f), F32ToBF16(f).bits) << "bits " << u;
  }
}

TEST(DeviceCodecs, FourBitEncodeMatchesReferenceRules) {
  std::vector<float> probes = {0.0f, -0.0f, 1.0f, -1.0f, std::nanf("")};
  for (const float t : kNF4Thresholds) {
    probes.insert(probes.end(), {t, std::nextafter(t, 2.0f), std::nextafter(t, -2.0f)});
  }
  for (const float t : kFP4Thresholds) {
    for (const float s : {1.0f, -1.0f}) {
      probes.insert(probes.end(), {s * t, s * std::nextafter(t, 2.0f), s * std::nextafter(t, -2.0f)});
    }
  }
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (int i = 0; i < 100000; ++i) probes.push_back(u(rng));
  for (const float y : probes) {
    EXPECT_EQ(cuda::EncodeNF4(y), ref::QuantizeNF4Value(y)) << "nf4 y = " << y;
    EXPECT_EQ(cuda::EncodeFP4(y), ref::QuantizeFP4Value(y)) << "fp4 y = " << y;
  }
}

TEST(DeviceCodecs, BlockEncodersReproduceReferenceTensors) {
  // Recompute whole reference tensors from the element encoders with the same segment statistics
  // the device kernels use (odd element count: padded last nibble).
  const Shape shape = {9, 67};
  const std::vector<float> x = RandomWeights(9 * 67, 11);
  const int64_t n = 9 * 67;
  for (const Format f : {Format::kNF4, Format::kFP4}) {
    const QuantizedTensor r = Quantize4bit(ConstTensorView{x.data(), DType::kF32, shape}, f, 64);
    std::vector<uint8_t> packed(r.data.size(), 0);
    for (int64_t i = 0; i < n; i += 2) {
      const float amax = r.state.scales[i / r.state.block_size];
      const uint32_t hi = cuda::Encode4bit(f == Format::kNF4, x[i], amax);
      const uint32_t lo = (i + 1 < n) ? cuda::Encode4bit(f == Format::kNF4, x[i + 1], amax)
                                      : (f == Format::kNF4 ? LOWBIT_NF4_ZERO_CODE : LOWBIT_FP4_ZERO_CODE);
      packed[i / 2] = static_cast<uint8_t>(hi << 4 | lo);
    }
    EXPECT_EQ(packed, r.data) << FormatName(f);
  }
  for (const Granularity g : {Granularity::kRow, Granularity::kTensor}) {
    const QuantizedTensor r = QuantizeInt8(ConstTensorView{x.data(), DType::kF32, shape}, g);
    for (int64_t i = 0; i < n; ++i) {
      const float amax = r.state.scales[g == Granularity::kRow ? i / 67 : 0];
      ASSERT_EQ(static_cast<uint8_t>(cuda::EncodeInt8(x[i], amax)), r.data[i]) << "element " << i;
    }
  }
}

TEST(DeviceCodecs, StatIndexMatchesScaleIndex) {
  const std::vector<float> x = RandomWeights(24 * 160, 13);
  for (const Shape& shape : {Shape{24, 160}, Shape{40, 96}, Shape{3, 1280}}) {
    for (const Case& c : AllCases()) {
      const QuantizedTensor q = QuantizeCase(c, x, shape);
      const cuda::StatMap m = cuda::MakeStatMap(q.state);
      const int64_t cols = q.state.cols();
      for (int64_t i = 0; i < q.state.num_elements(); ++i) {
        ASSERT_EQ(cuda::StatIndexFlat(m, i), q.state.ScaleIndex(i)) << Describe(q) << " at " << i;
        ASSERT_EQ(cuda::StatIndex(m, i / cols, i % cols), q.state.ScaleIndex(i)) << Describe(q);
      }
    }
  }
}

TEST(DeviceCodecs, DequantElementIsBitExactForEveryFormat) {
  const std::vector<float> x = RandomWeights(33 * 97, 17, 0.05f);
  for (const Shape& shape : {Shape{33, 97}, Shape{16, 128}, Shape{3201}}) {
    for (const Case& c : AllCases()) {
      if (shape.size() == 1 && c.format == Format::kInt8Asym) continue;
      const QuantizedTensor q = QuantizeCase(c, x, shape);
      std::vector<float> want(static_cast<size_t>(q.state.num_elements()));
      GetFormatInfo(q.state.format).reference_dequantize(q, want.data());
      const HostView hv(q);
      for (int64_t i = 0; i < q.state.num_elements(); ++i) {
        ASSERT_EQ(Bits(cuda::DequantElement(hv.view, i)), Bits(want[i])) << Describe(q) << " at " << i;
      }
    }
    for (const Format dense : {Format::kF32, Format::kF16, Format::kBF16}) {
      const QuantizedTensor q = Quantize(dense, ConstTensorView{x.data(), DType::kF32, shape});
      const std::vector<float> want = DequantizeToF32(q);
      const HostView hv(q);
      for (int64_t i = 0; i < q.state.num_elements(); ++i) {
        ASSERT_EQ(Bits(cuda::DequantElement(hv.view, i)), Bits(want[i])) << FormatName(dense);
      }
    }
  }
}

// The fused GEMV kernel's per-lane function run for all 32 lanes of a row on the host.
template <cuda::WKind kKind, bool kZeros>
float HostGemvRow(const cuda::GemvArgs& a, int64_t r) {
  float acc = 0.0f;
  for (int lane = 0; lane < cuda::kWarpLanes; ++lane) {
    switch (a.x_type) {
      case cuda::DenseType::kF32:
        acc += cuda::GemvLaneSum<kKind, kZeros, cuda::DenseType::kF32>(a, a.lut16, r, lane);
        break;
      case cuda::DenseType::kF16:
        acc += cuda::GemvLaneSum<kKind, kZeros, cuda::DenseType::kF16>(a, a.lut16, r, lane);
        break;
      case cuda::DenseType::kBF16:
        acc += cuda::GemvLaneSum<kKind, kZeros, cuda::DenseType::kBF16>(a, a.lut16, r, lane);
        break;
    }
  }
  return cuda::GemvFinish<kKind>(a, r, acc);
}

float HostGemvRowAny(const cuda::GemvArgs& a, int64_t r) {
  const bool z = a.w.zeros != nullptr;
  switch (a.w.kind) {
    case cuda::WKind::kLut4:
      return z ? HostGemvRow<cuda::WKind::kLut4, true>(a, r) : HostGemvRow<cuda::WKind::kLut4, false>(a, r);
    case cuda::WKind::kInt8: return HostGemvRow<cuda::WKind::kInt8, false>(a, r);
    case cuda::WKind::kUInt8: return HostGemvRow<cuda::WKind::kUInt8, true>(a, r);
    case cuda::WKind::kE4M3: return HostGemvRow<cuda::WKind::kE4M3, false>(a, r);
    case cuda::WKind::kE5M2: return HostGemvRow<cuda::WKind::kE5M2, false>(a, r);
    default: ADD_FAILURE() << "no fused GEMV for this kind"; return 0.0f;
  }
}

TEST(DeviceCodecs, FusedGemvLaneLogicMatchesReference) {
  // K = 320: 10 chunks per row, so lanes 0..9 work and the two-chunk step has a ragged tail;
  // nf4 block 256 spans rows, int4 group 128 leaves a short last group.
  const int64_t n = 40, k = 320;
  const std::vector<float> w = RandomWeights(n * k, 59, 0.05f);
  const std::vector<float> bias = RandomWeights(n, 61, 0.1f);
  for (const Case& c : AllCases()) {
    if (c.format == Format::kBlockwise8) continue;
    const QuantizedTensor q = QuantizeCase(c, w, {n, k});
    std::vector<float> wf(static_cast<size_t>(n * k));
    GetFormatInfo(q.state.format).reference_dequantize(q, wf.data());
    const HostView hv(q);
    for (const DType xd : {DType::kF32, DType::kF16, DType::kBF16}) {
      std::vector<uint8_t> xb(static_cast<size_t>(k) * DTypeSize(xd));
      const std::vector<float> x0 = RandomWeights(k, 67);
      FromF32(x0.data(), k, xb.data(), xd);
      std::vector<float> xf(static_cast<size_t>(k));
      ToF32(xb.data(), xd, k, xf.data());
      cuda::GemvArgs a;
      a.w = hv.view;
      std::memcpy(a.lut16, hv.lut16, sizeof(a.lut16));
      a.rows = n;
      a.cols = k;
      a.x = xb.data();
      a.x_type = (xd == DType::kF32) ? cuda::DenseType::kF32
                 : (xd == DType::kF16) ? cuda::DenseType::kF16 : cuda::DenseType::kBF16;
      a.bias = bias.data();
      std::vector<float> got(static_cast<size_t>(n));
      std::vector<double> want(static_cast<size_t>(n));
      for (int64_t r = 0; r < n; ++r) {
        got[r] = HostGemvRowAny(a, r);
        double acc = bias[r];
        for (int64_t kk = 0; kk < k; ++kk) acc += static_cast<double>(wf[r * k + kk]) * xf[kk];
        want[r] = acc;
      }
      double num = 0, den = 0;
      for (int64_t r = 0; r < n; ++r) {
        num += (got[r] - want[r]) * (got[r] - want[r]);
        den += want[r] * want[r];
      }
      EXPECT_LT(num / den, 1e-11) << Describe(q) << " x " << DTypeName(xd);
    }
  }
}

// ---- CudaBackend: registration and clean refusal ----------------------------------------------

TEST(CudaBackend, IsRegisteredAndProbesWithoutThrowing) {
  bool found = false;
  for (const Backend* b : Backends()) found |= std::string(b->name) == "cuda";
  EXPECT_TRUE(found);
  const bool usable = cuda::kBackend.probe();  // must not throw or abort, driver or not
  EXPECT_EQ(usable, cuda::UnavailableReason().empty());
  if (!usable) std::printf("cuda unavailable here: %s\n", cuda::UnavailableReason().c_str());
}

TEST(CudaBackend, RefusesCleanlyWithoutDevice) {
  if (cuda::kBackend.probe()) GTEST_SKIP() << "a GPU is present; refusal paths do not apply";
  const std::vector<float> x = RandomWeights(64 * 64, 19);
  const QuantizedTensor q = QuantizeNF4(ConstTensorView{x.data(), DType::kF32, {64, 64}});
  try {
    Pack(q, "cuda");
    FAIL() << "Pack on an unusable cuda backend must throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), Status::kUnsupportedBackend);
    EXPECT_NE(e.message().find("cuda"), std::string::npos) << e.message();
  }
  EXPECT_THROW(Quantize(Format::kNF4, ConstTensorView{x.data(), DType::kF32, {64, 64}}, {}, "cuda"),
               Error);
  EXPECT_STREQ(FindBackend("").name, "cpu");  // "" is always the CPU backend
  EXPECT_STREQ(Pack(q).backend(), "cpu");
}

TEST(CudaBackend, SupportsNamesWhatIsMissing) {
  const MatmulOptions plain;
  EXPECT_TRUE(cuda::kBackend.supports(Format::kNF4, BackendOp::kQuantize, DType::kF32, plain).empty());
  EXPECT_TRUE(cuda::kBackend.supports(Format::kInt8, BackendOp::kQuantize, DType::kF32, plain).empty());
  EXPECT_NE(cuda::kBackend.supports(Format::kInt4, BackendOp::kQuantize, DType::kF32, plain)
                .find("int4"),
            std::string::npos);
  EXPECT_FALSE(cuda::kBackend.supports(Format::kNF4, BackendOp::kMatmul, DType::kI8, plain).empty());
  MatmulOptions int8_act;
  int8_act.int8_activations = true;
  EXPECT_FALSE(cuda::kBackend.supports(Format::kInt8, BackendOp::kMatmul, DType::kF32, int8_act).empty());
  for (int f = 0; f < kNumFormats; ++f) {
    const Format format = static_cast<Format>(f);
    const std::string reason = cuda::kBackend.supports(format, BackendOp::kMatmul, DType::kBF16, plain);
    // The E2M1 formats have no device kernels yet; the backend says so by name.
    if (format == Format::kMXFP4 || format == Format::kNVFP4 || format == Format::kIQ4NL) {
      EXPECT_NE(reason.find(FormatName(format)), std::string::npos) << reason;
    } else {
      EXPECT_TRUE(reason.empty()) << FormatName(format) << ": " << reason;
    }
  }
}

// ---- CudaParity: on a GPU ----------------------------------------------------------------------

#define LOWBIT_REQUIRE_GPU()                                                        \
  do {                                                                              \
    if (!cuda::kBackend.probe()) {                                                  \
      GTEST_SKIP() << "no usable CUDA GPU (" << cuda::UnavailableReason()           \
                   << "); run scripts/cuda_check.sh on a GPU machine";              \
    }                                                                               \
  } while (0)

TEST(CudaParity, DequantizeIsBitExact) {
  LOWBIT_REQUIRE_GPU();
  const std::vector<float> x = RandomWeights(65 * 131, 23, 0.02f);
  for (const Shape& shape : {Shape{65, 131}, Shape{32, 256}, Shape{8515}}) {
    for (const Case& c : AllCases()) {
      if (shape.size() == 1 && c.format == Format::kInt8Asym) continue;
      const QuantizedTensor q = QuantizeCase(c, x, shape);
      std::vector<float> want(static_cast<size_t>(q.state.num_elements()));
      GetFormatInfo(q.state.format).reference_dequantize(q, want.data());
      std::vector<float> got(want.size());
      Dequantize(q, TensorView{got.data(), DType::kF32, {static_cast<int64_t>(got.size())}}, "cuda");
      for (size_t i = 0; i < got.size(); ++i) {
        ASSERT_EQ(Bits(got[i]), Bits(want[i])) << Describe(q) << " at " << i;
      }
    }
  }
}

TEST(CudaParity, QuantizeIsBitExact) {
  LOWBIT_REQUIRE_GPU();
  const std::vector<float> x = RandomWeights(129 * 255, 29);
  for (const Shape& shape : {Shape{129, 255}, Shape{64, 512}}) {
    for (const Case& c : AllCases()) {
      if (c.format != Format::kNF4 && c.format != Format::kFP4 && c.format != Format::kInt8) continue;
      QuantizeOptions o;
      o.granularity = c.granularity;
      o.block_size = c.block;
      o.double_quant = c.double_quant;
      o.nested_offset = 0.01f;  // same offset on both sides (the mean is summed on the host anyway)
      const ConstTensorView view{x.data(), DType::kF32, shape};
      const QuantizedTensor want = Quantize(c.format, view, o);
      const QuantizedTensor got = Quantize(c.format, view, o, "cuda");
      EXPECT_EQ(got.data, want.data) << Describe(want);
      EXPECT_EQ(got.state.scales, want.state.scales) << Describe(want);
      EXPECT_EQ(got.state.codebook, want.state.codebook) << Describe(want);
      ASSERT_EQ(got.state.nested.has_value(), want.state.nested.has_value());
      if (want.state.nested) {
        EXPECT_EQ(got.state.nested->codes, want.state.nested->codes);
        EXPECT_EQ(got.state.nested->absmax, want.state.nested->absmax);
      }
    }
  }
}

// Normalized mean squared error of `got` against a float64 reference.
double Nmse(const std::vector<float>& got, const std::vector<double>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    num += (got[i] - want[i]) * (got[i] - want[i]);
    den += want[i] * want[i];
  }
  return num / std::max(den, 1e-30);
}

// Rounding of a value to `d` (relative variance bound of the rounding error, NMSE units).
double RoundingNmse(DType d) {
  return d == DType::kBF16 ? 1e-5 : d == DType::kF16 ? 1e-6 : 1e-9;
}

std::vector<uint8_t> ToDType(const std::vector<float>& v, DType d) {
  std::vector<uint8_t> out(v.size() * DTypeSize(d));
  FromF32(v.data(), static_cast<int64_t>(v.size()), out.data(), d);
  return out;
}

// y = x · Wᵀ + bias on the CUDA backend vs float64 over the reference-dequantized W and the
// activations as the kernel sees them (already rounded to their dtype).
void CheckMatmul(const QuantizedTensor& q, int64_t m, DType xd, DType yd, bool expect_fused) {
  const int64_t n = q.state.shape[0], k = q.state.shape[1];
  const PackedWeight w = Pack(q, "cuda");
  ASSERT_STREQ(w.backend(), "cuda");
  if (m == 1) EXPECT_EQ(cuda::UsesFusedGemv(*cuda::kBackend.pack(q)), expect_fused) << Describe(q);
  const std::vector<uint8_t> xbytes = ToDType(RandomWeights(m * k, 31), xd);
  std::vector<float> xf(static_cast<size_t>(m * k));
  ToF32(xbytes.data(), xd, m * k, xf.data());
  const std::vector<float> bias = RandomWeights(n, 37, 0.1f);
  std::vector<float> wf(static_cast<size_t>(n * k));
  const FormatInfo& info = GetFormatInfo(q.state.format);
  if (info.reference_dequantize != nullptr) {
    info.reference_dequantize(q, wf.data());
  } else {
    ToF32(q.data.data(), info.dense_dtype, n * k, wf.data());
  }
  std::vector<double> want(static_cast<size_t>(m * n));
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double acc = bias[j];
      for (int64_t kk = 0; kk < k; ++kk) acc += static_cast<double>(xf[i * k + kk]) * wf[j * k + kk];
      want[i * n + j] = acc;
    }
  }
  std::vector<uint8_t> ybytes(static_cast<size_t>(m * n) * DTypeSize(yd));
  const Shape xs = (m == 1) ? Shape{k} : Shape{m, k};
  const Shape ys = (m == 1) ? Shape{n} : Shape{m, n};
  Matmul(w, ConstTensorView{xbytes.data(), xd, xs}, TensorView{ybytes.data(), yd, ys}, bias.data());
  std::vector<float> got(static_cast<size_t>(m * n));
  ToF32(ybytes.data(), yd, m * n, got.data());
  // bf16 activations multiply bf16 weight tiles on the cuBLAS path: add the weight rounding.
  const double bound = 4 * (RoundingNmse(yd) + RoundingNmse(xd) + 1e-9);
  EXPECT_LT(Nmse(got, want), bound) << Describe(q) << " m " << m << " x " << DTypeName(xd)
                                    << " y " << DTypeName(yd);
}

TEST(CudaParity, GemvMatchesReference) {
  LOWBIT_REQUIRE_GPU();
  const std::vector<float> x = RandomWeights(96 * 320, 41, 0.05f);
  for (const Case& c : AllCases()) {
    const QuantizedTensor q = QuantizeCase(c, x, {96, 320});
    const bool fused = c.format != Format::kBlockwise8;
    for (const DType xd : {DType::kF32, DType::kF16, DType::kBF16}) {
      for (const DType yd : {DType::kF32, DType::kBF16}) CheckMatmul(q, 1, xd, yd, fused);
    }
  }
  // K not a multiple of 32: the dequantize + cuBLAS path.
  const QuantizedTensor odd = QuantizeNF4(ConstTensorView{x.data(), DType::kF32, {96, 200}});
  CheckMatmul(odd, 1, DType::kF32, DType::kF32, false);
  for (const Format dense : {Format::kF32, Format::kF16, Format::kBF16}) {
    CheckMatmul(Quantize(dense, ConstTensorView{x.data(), DType::kF32, {96, 320}}), 1, DType::kF16,
                DType::kF32, false);
  }
}

TEST(CudaParity, GemmMatchesReference) {
  LOWBIT_REQUIRE_GPU();
  const std::vector<float> x = RandomWeights(80 * 256, 43, 0.05f);
  for (const Case& c : AllCases()) {
    const QuantizedTensor q = QuantizeCase(c, x, {80, 256});
    for (const int64_t m : {2, 33}) CheckMatmul(q, m, DType::kBF16, DType::kF32, false);
  }
  const QuantizedTensor q = QuantizeNF4(ConstTensorView{x.data(), DType::kF32, {80, 256}});
  for (const DType xd : {DType::kF32, DType::kF16}) CheckMatmul(q, 512, xd, DType::kF16, false);
}

TEST(CudaParity, DeviceResidentActivationsAndUnpack) {
  LOWBIT_REQUIRE_GPU();
  const int64_t n = 64, k = 256;
  const std::vector<float> w = RandomWeights(n * k, 47, 0.05f);
  const QuantizedTensor q = QuantizeNF4(ConstTensorView{w.data(), DType::kF32, {n, k}});
  const PackedWeight p = Pack(q, "cuda");
  const QuantizedTensor back = Unpack(p);
  EXPECT_EQ(back.data, q.data);
  EXPECT_EQ(back.state.scales, q.state.scales);
  const std::vector<float> x = RandomWeights(k, 53);
  std::vector<float> y_host(n), y_dev_out(n);
  Matmul(p, ConstTensorView{x.data(), DType::kF32, {k}}, TensorView{y_host.data(), DType::kF32, {n}});
  cuda::DeviceBuffer xd(k * sizeof(float)), yd(n * sizeof(float));
  ASSERT_EQ(cudaMemcpy(xd.get(), x.data(), k * sizeof(float), cudaMemcpyHostToDevice), cudaSuccess);
  Matmul(p, ConstTensorView{xd.get(), DType::kF32, {k}}, TensorView{yd.get(), DType::kF32, {n}});
  ASSERT_EQ(cudaMemcpy(y_dev_out.data(), yd.get(), n * sizeof(float), cudaMemcpyDeviceToHost),
            cudaSuccess);
  EXPECT_EQ(y_dev_out, y_host);  // same kernel, same inputs: identical bits
}

TEST(CudaParity, RuntimeErrorsBecomeBackendError) {
  LOWBIT_REQUIRE_GPU();
  try {
    cuda::DeviceBuffer huge(size_t{1} << 55);  // 32 PiB: cudaMalloc must fail
    FAIL() << "allocation of 32 PiB succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), Status::kBackendError);
    EXPECT_NE(e.message().find("cuda"), std::string::npos) << e.message();
  }
}

}  // namespace
}  // namespace lowbit
