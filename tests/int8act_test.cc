// The int8-activation kernels with a run-time dot-product extension (kernels/cpu/
// matmul_int8act.cc): x86 AVX2 and AVX3 with AVX-VNNI and forced onto the vpmaddubsw path, NEON
// with and without sdot (kernels/cpu/int8act_hooks.h), bit for bit
// against an exact integer reference, on shapes with tails: K not a multiple of 64, odd group
// counts, groups longer than one int16 span (256 elements), M = 1..9, N not a multiple of 4,
// and extreme codes that would saturate a wrong int16 bound.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "format_test_util.h"
#include "gtest/gtest.h"
#include "hwy/targets.h"
#include "kernels/cpu/int8act_hooks.h"
#include "lowbit/context.h"
#include "lowbit/ops.h"
#include "lowbit/quantize.h"
#include "int8act_reference.h"
#include "reference/reference.h"

namespace lowbit {
namespace {

bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

struct Shape3 {
  Format format;
  int64_t group;  // int4 group size; 0 for int8
  Granularity granularity;
  int64_t n, k;
};

// N = 7 and 13: row blocks of 4 plus 3 and 1 tail rows. K: 75 (3 chunks, 96 padded), 320
// (5 groups of 64), 200 (g128: a full and a partial group), 1000 (one 1024 group: 4 int16
// spans), 1600 (g512: 3 full groups of 2 spans each + a short one), 8300 (int8: two segments).
const Shape3 kShapes[] = {
    {Format::kInt8, 0, Granularity::kRow, 7, 75},
    {Format::kInt8, 0, Granularity::kTensor, 13, 200},
    {Format::kInt8, 0, Granularity::kRow, 5, 8300},
    {Format::kInt4, 32, Granularity::kDefault, 7, 75},
    {Format::kInt4, 64, Granularity::kDefault, 13, 320},
    {Format::kInt4, 128, Granularity::kDefault, 7, 200},
    {Format::kInt4, 1024, Granularity::kDefault, 5, 1000},
    {Format::kInt4, 512, Granularity::kDefault, 6, 1600},
};

enum class Codes { kRandom, kMaxPositive, kMaxNegative };

QuantizedTensor MakeWeight(const Shape3& s, Codes codes, uint32_t seed) {
  const std::vector<float> wv = testing::Randn(s.n * s.k, seed);
  const ConstTensorView view{wv.data(), DType::kF32, {s.n, s.k}};
  QuantizedTensor q =
      s.format == Format::kInt8 ? QuantizeInt8(view, s.granularity) : QuantizeInt4(view, s.group);
  if (codes == Codes::kRandom) {
    // Extreme codes at both ends: int8 -128 (valid when stored, never written by the quantizer)
    // and 127; int4 nibbles 0 (v = -8) and 15 (v = +7).
    q.data.front() = s.format == Format::kInt8 ? 0x80 : 0x0F;
    q.data.back() = s.format == Format::kInt8 ? 0x7F : 0xF0;
  } else {
    // Every weight at the magnitude that maximises the int16 pair sums of vpmaddubsw: int8 +127
    // or -128; int4 nibble 15 (+7) or 0 (-8).
    const bool pos = codes == Codes::kMaxPositive;
    const uint8_t b = s.format == Format::kInt8 ? (pos ? 0x7F : 0x80) : (pos ? 0xFF : 0x00);
    std::fill(q.data.begin(), q.data.end(), b);
  }
  return q;
}

std::vector<float> RunInt8Act(const PackedWeight& pw, const std::vector<float>& x, int64_t m,
                              int64_t n, int64_t k, Context* ctx) {
  MatmulOptions o;
  o.int8_activations = true;
  std::vector<float> y(static_cast<size_t>(m * n), -1.0f);
  Matmul(pw, ConstTensorView{x.data(), DType::kF32, {m, k}},
         TensorView{y.data(), DType::kF32, {m, n}}, o, nullptr, ctx);
  return y;
}

class Int8ActDotExtensionTest : public ::testing::Test {
 protected:
  void TearDown() override {
    cpu::SetInt8ActDotExtensionDisabledForTest(false);
    hwy::SetSupportedTargetsForTest(0);
  }
};

// The targets whose int8-activation kernels have a run-time dot-product extension: AVX2 and
// AVX3 (AVX-VNNI, else maddubs) and NEON (sdot, else int16 madd); each with and without it.
TEST_F(Int8ActDotExtensionTest, EachTargetWithAndWithoutTheExtensionMatchesReference) {
  std::vector<int64_t> targets;
  for (const int64_t t : hwy::SupportedAndGeneratedTargets()) {
    if (t == HWY_AVX2 || t == HWY_AVX3 || t == HWY_NEON) targets.push_back(t);
  }
  if (targets.empty()) GTEST_SKIP() << "CPU runs none of AVX2, AVX3, NEON";
  std::vector<bool> ext_modes = {false};
  if (cpu::CpuHasInt8DotExtension()) ext_modes.push_back(true);
  Context ctx(1);
  int runs = 0;
  for (const Shape3& s : kShapes) {
    for (const Codes codes : {Codes::kRandom, Codes::kMaxPositive, Codes::kMaxNegative}) {
      const QuantizedTensor q = MakeWeight(s, codes, static_cast<uint32_t>(s.n * s.k));
      const PackedWeight pw = Pack(q);
      for (int64_t m = 1; m <= 9; ++m) {
        std::vector<float> x = testing::Randn(m * s.k, static_cast<uint32_t>(m + 100));
        if (codes != Codes::kRandom) {  // all codes +-127: |int16 pair sums| at the bound
          for (int64_t j = 0; j < m * s.k; ++j) x[j] = (j / s.k) % 2 ? -1.0f : 1.0f;
        }
        if (m >= 5) x[4 * s.k + s.k / 2] = std::numeric_limits<float>::quiet_NaN();
        const std::vector<float> want = testing::Int8ActReference(q, x, m);
        for (const int64_t target : targets) {
          hwy::SetSupportedTargetsForTest(target);
          for (const bool ext : ext_modes) {
            cpu::SetInt8ActDotExtensionDisabledForTest(!ext);
            ASSERT_EQ(cpu::Int8ActUsesDotExtension(), ext);
            const std::vector<float> y = RunInt8Act(pw, x, m, s.n, s.k, &ctx);
            ASSERT_TRUE(SameBits(y, want))
                << FormatName(s.format) << " group " << s.group << " N=" << s.n << " K=" << s.k
                << " M=" << m << " codes " << static_cast<int>(codes) << " on "
                << hwy::TargetName(target) << (ext ? " with" : " without")
                << " the dot-product extension";
            ++runs;
          }
        }
      }
    }
  }
  EXPECT_EQ(runs, 8 * 3 * 9 * static_cast<int>(targets.size() * ext_modes.size()));
}

}  // namespace
}  // namespace lowbit
