// SIMD dequantization (kernels/cpu/dequantize.cc) vs the scalar reference codecs, bit for bit, for
// every quantized format, granularity and double-quant variant, odd shapes and tails, on every
// Highway target (each forced in turn).
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backend.h"
#include "format_test_util.h"
#include "gtest/gtest.h"
#include "hwy/targets.h"
#include "lowbit/quantize.h"
#include "reference/reference.h"

namespace lowbit {
namespace {

struct Case {
  const char* name;
  Format format;
  QuantizeOptions options;
};

QuantizeOptions Opts(int64_t block, bool dq = false, Granularity g = Granularity::kDefault) {
  QuantizeOptions o;
  o.block_size = block;
  o.double_quant = dq;
  o.granularity = g;
  return o;
}

std::vector<Case> Cases() {
  return {
      {"int8_row", Format::kInt8, Opts(0, false, Granularity::kRow)},
      {"int8_tensor", Format::kInt8, Opts(0, false, Granularity::kTensor)},
      {"int8_asym_row", Format::kInt8Asym, Opts(0, false, Granularity::kRow)},
      {"int8_asym_tensor", Format::kInt8Asym, Opts(0, false, Granularity::kTensor)},
      {"int4_g32", Format::kInt4, Opts(32)},
      {"int4_g128", Format::kInt4, Opts(128)},
      {"int4_asym_g32", Format::kInt4Asym, Opts(32)},
      {"int4_asym_g64", Format::kInt4Asym, Opts(64)},
      {"nf4_b64", Format::kNF4, Opts(64)},
      {"nf4_b32_dq", Format::kNF4, Opts(32, true)},
      {"fp4_b64", Format::kFP4, Opts(64)},
      {"fp4_b128_dq", Format::kFP4, Opts(128, true)},
      {"blockwise8_b64", Format::kBlockwise8, Opts(64)},
      {"blockwise8_b4096_nested", Format::kBlockwise8, Opts(4096, true)},
      {"fp8_e4m3_row", Format::kFP8E4M3, Opts(0, false, Granularity::kRow)},
      {"fp8_e4m3_tensor", Format::kFP8E4M3, Opts(0, false, Granularity::kTensor)},
      {"fp8_e5m2_row", Format::kFP8E5M2, Opts(0, false, Granularity::kRow)},
      {"fp8_e5m2_tensor", Format::kFP8E5M2, Opts(0, false, Granularity::kTensor)},
      {"mxfp4", Format::kMXFP4, Opts(0)},
      {"nvfp4", Format::kNVFP4, Opts(0)},
      {"iq4_nl", Format::kIQ4NL, Opts(0)},
  };
}

// Shapes with odd row lengths (groups starting at odd nibbles), tails shorter than any vector,
// single elements, and 1-D tensors.
const std::vector<Shape>& Shapes() {
  static const std::vector<Shape> shapes = {{1},      {1, 1},    {3, 37}, {7, 129},
                                            {5, 200}, {2, 1000}, {4099},  {3, 5, 33}};
  return shapes;
}

// Overwrites the payload with random bytes (every code, incl. FP8 NaN/Inf/subnormal codes and all
// nibbles) and, for asymmetric formats, the zero points with random valid values. The state stays
// valid, so both codecs must decode the same arbitrary bytes.
void Scramble(QuantizedTensor& q, uint32_t seed) {
  std::mt19937 gen(seed);
  for (uint8_t& b : q.data) b = static_cast<uint8_t>(gen());
  const int qmax =
      (q.state.format == Format::kInt4Asym) ? LOWBIT_INT4_ASYM_QMAX : LOWBIT_UINT8_QMAX;
  for (uint8_t& z : q.state.zero_points) z = static_cast<uint8_t>(gen() % (qmax + 1));
}

// Bitwise comparison (NaN payloads and signed zeros included).
void ExpectSameBits(const std::vector<float>& got, const std::vector<float>& want,
                    const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    if (F32Bits(got[i]) != F32Bits(want[i])) {
      FAIL() << what << ": element " << i << " got " << got[i] << " (0x" << std::hex
             << F32Bits(got[i]) << ") want " << want[i] << " (0x" << F32Bits(want[i]) << ")";
    }
  }
}

class DequantizeKernelTest : public ::testing::TestWithParam<int64_t> {
 protected:
  void SetUp() override { hwy::SetSupportedTargetsForTest(GetParam()); }
  void TearDown() override { hwy::SetSupportedTargetsForTest(0); }
};

TEST_P(DequantizeKernelTest, BitExactWithReferenceOnEveryFormatShapeAndCode) {
  int checked = 0;
  for (const Case& c : Cases()) {
    for (const Shape& shape : Shapes()) {
      const int64_t n = NumElements(shape);
      const std::vector<float> x = testing::Randn(n, static_cast<uint32_t>(n * 31 + 7));
      QuantizedTensor q;
      try {
        q = Quantize(c.format, {x.data(), DType::kF32, shape}, c.options);
      } catch (const Error&) {
        continue;  // shape not allowed for this case (e.g. kTensor granularity is always fine)
      }
      for (int variant = 0; variant < 2; ++variant) {
        if (variant == 1) Scramble(q, static_cast<uint32_t>(n + 11));
        std::vector<float> want(static_cast<size_t>(n)), got(static_cast<size_t>(n), -1.0f);
        GetFormatInfo(c.format).reference_dequantize(q, want.data());
        CpuBackend().dequantize(q, got.data());
        ExpectSameBits(got, want,
                       std::string(c.name) + " " + ShapeToString(shape) +
                           (variant ? " random codes" : " quantized") + " on " +
                           hwy::TargetName(GetParam()));
        if (HasFatalFailure()) return;
        ++checked;
      }
    }
  }
  EXPECT_GE(checked, static_cast<int>(Cases().size() * Shapes().size()));
}

// The public entry (lowbit::Dequantize) uses the same kernel: check f32 output and the single
// RNE rounding to bf16/f16 against Eigen's conversion of the reference values.
TEST_P(DequantizeKernelTest, PublicDequantizeMatchesReferenceInEveryOutputDtype) {
  const Shape shape = {9, 77};
  const std::vector<float> x = testing::Randn(NumElements(shape), 5);
  for (const Case& c : Cases()) {
    const QuantizedTensor q = Quantize(c.format, {x.data(), DType::kF32, shape}, c.options);
    std::vector<float> want(x.size());
    GetFormatInfo(c.format).reference_dequantize(q, want.data());
    for (const DType dt : {DType::kF32, DType::kBF16, DType::kF16}) {
      std::vector<uint8_t> out(x.size() * DTypeSize(dt));
      Dequantize(q, TensorView{out.data(), dt, shape});
      const testing::DenseTensor expected(want, dt, shape);
      ExpectSameBits(testing::WidenWithEigen(out, dt), expected.values(),
                     std::string(c.name) + " to " + DTypeName(dt));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllTargets, DequantizeKernelTest,
                         ::testing::ValuesIn(hwy::SupportedAndGeneratedTargets()),
                         [](const ::testing::TestParamInfo<int64_t>& info) {
                           return std::string(hwy::TargetName(info.param));
                         });

}  // namespace
}  // namespace lowbit
