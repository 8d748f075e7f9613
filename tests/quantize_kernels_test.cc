// SIMD quantization kernels vs the scalar reference codecs, bit for bit, on every Highway target.
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "hwy/targets.h"
#include "kernels/cpu/quantize_4bit.h"
#include "lowbit/quantize.h"
#include "reference/reference.h"

namespace lowbit {
namespace {

std::vector<float> Gaussian(int64_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal;
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) v = normal(gen);
  return x;
}

class Quantize4bitKernelTest : public ::testing::TestWithParam<int64_t> {
 protected:
  void TearDown() override { hwy::SetSupportedTargetsForTest(0); }
};

TEST_P(Quantize4bitKernelTest, BitExactWithReferenceOnEveryBlockAndTail) {
  hwy::SetSupportedTargetsForTest(GetParam());
  for (const Format format : {Format::kNF4, Format::kFP4}) {
    for (const int64_t block : {32, 64, 128, 256, 4096}) {
      for (const int64_t n : {int64_t{1}, int64_t{31}, int64_t{64}, int64_t{1000}, int64_t{12347}}) {
        std::vector<float> x = Gaussian(n, static_cast<uint32_t>(n + block));
        // A zero block, exact thresholds and tiny negatives exercise the tie and sign rules.
        for (int64_t i = 0; i < std::min<int64_t>(n, block); ++i) x[i] = 0.0f;
        if (n > block + 16) {
          x[block] = 1.0f;
          x[block + 1] = kNF4Thresholds[3];
          x[block + 2] = kFP4Thresholds[5];
          x[block + 3] = -1e-6f;
          x[block + 4] = -0.0f;
        }
        const int64_t nblocks = (n + block - 1) / block;
        std::vector<uint8_t> got((n + 1) / 2, 0xAA), want((n + 1) / 2, 0x55);
        std::vector<float> got_absmax(nblocks), want_absmax(nblocks);
        cpu::Quantize4bitBlockwise(format, x.data(), n, block, got.data(), got_absmax.data());
        ref::Quantize4bitBlockwise(format, x.data(), n, block, want.data(), want_absmax.data());
        ASSERT_EQ(got, want) << FormatName(format) << " block " << block << " n " << n << " on "
                             << hwy::TargetName(GetParam());
        ASSERT_EQ(got_absmax, want_absmax);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllTargets, Quantize4bitKernelTest,
                         ::testing::ValuesIn(hwy::SupportedAndGeneratedTargets()),
                         [](const ::testing::TestParamInfo<int64_t>& info) {
                           return std::string(hwy::TargetName(info.param));
                         });

TEST(QuantizeApi, Nf4UsesKernelAndMatchesReferenceTensor) {
  const std::vector<float> x = Gaussian(300 * 173, 7);
  QuantizeOptions options;
  options.block_size = 64;
  options.double_quant = true;
  const QuantizedTensor q = Quantize(Format::kNF4, {x.data(), DType::kF32, {300, 173}}, options);
  QuantizedTensor want;
  want.state = q.state;
  want.state.nested.reset();
  want.data.assign(q.data.size(), 0);
  GetFormatInfo(Format::kNF4).reference_quantize(x.data(), options, want);
  EXPECT_EQ(q.data, want.data);
  ASSERT_TRUE(want.state.nested.has_value());
  EXPECT_EQ(q.state.nested->codes, want.state.nested->codes);
  EXPECT_EQ(q.state.nested->absmax, want.state.nested->absmax);
}

}  // namespace
}  // namespace lowbit
