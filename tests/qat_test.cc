// Quantization-aware training (lowbit/nn/qat.h): FakeQuantize equals Dequantize(Quantize) for every
// format of the table; STE and clipped-STE gradients element by element against an oracle built
// from each format's decoded values; LSQ gradients against the exact rule and central finite
// differences; the QAT layer's gradients; bit-exact LSQ export; a training run beating RTN;
// argument errors.
#include "lowbit/nn/qat.h"

#include <gtest/gtest.h>

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <iterator>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "lowbit/nn/optim.h"
#include "lowbit/ops.h"
#include "nn_test_util.h"

namespace lowbit::nn {
namespace {

using nntest::MatD;
using nntest::Randn;
using nntest::ToMat;

uint32_t Bits(float f) { return F32Bits(f); }

// Counts elements whose float32 bit patterns differ (and reports the first).
::testing::AssertionResult SameBits(const std::vector<float>& got, const std::vector<float>& want) {
  if (got.size() != want.size()) {
    return ::testing::AssertionFailure() << "sizes " << got.size() << " vs " << want.size();
  }
  int64_t bad = 0, first = -1;
  for (size_t i = 0; i < got.size(); ++i) {
    if (Bits(got[i]) != Bits(want[i])) {
      if (bad++ == 0) first = static_cast<int64_t>(i);
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << got.size() << " differ, first @" << first
                                       << ": " << got[first] << " vs " << want[first];
}

template <class T>
void ExpectThrowsStatus(T&& fn, Status status, const std::string& needle = "") {
  try {
    fn();
    ADD_FAILURE() << "no exception (expected " << StatusName(status) << ")";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), status) << e.what();
    if (!needle.empty()) EXPECT_NE(e.message().find(needle), std::string::npos) << e.what();
  }
}

ConstTensorView View(const std::vector<float>& v, Shape shape) {
  return ConstTensorView{v.data(), DType::kF32, std::move(shape)};
}

// Option sets that exercise each format: 0 = defaults; 1 = the smallest block/group, or
// per-tensor statistics for row formats; 2 = double quantization where the format has it.
bool OptionsFor(Format f, int variant, QuantizeOptions* o) {
  const FormatInfo& info = GetFormatInfo(f);
  *o = QuantizeOptions{};
  if (variant == 0) return true;
  if (variant == 1) {
    if (info.default_granularity == Granularity::kBlock ||
        info.default_granularity == Granularity::kGroup) {
      o->block_size = info.min_block;
      return true;
    }
    if (info.granularities & (1u << static_cast<int>(Granularity::kTensor))) {
      o->granularity = Granularity::kTensor;
      return true;
    }
    return false;
  }
  if (!info.supports_double_quant) return false;
  o->double_quant = true;
  o->block_size = info.min_block;
  return true;
}

// ---- FakeQuantize forward
// ------------------------------------------------------------------------

TEST(FakeQuantize, EqualsDequantizeOfQuantizeForEveryFormatInTheTable) {
  const Shape shape{7, 75};  // rows cross flat blocks, groups have a tail, odd element count
  const std::vector<float> x = Randn(7 * 75, 1, 0.7);
  std::vector<uint16_t> xb(x.size());
  FromF32(x.data(), static_cast<int64_t>(x.size()), xb.data(), DType::kBF16);
  int checked = 0;
  for (int fi = 0; fi < kNumFormats; ++fi) {
    const Format f = static_cast<Format>(fi);
    for (int variant = 0; variant < 3; ++variant) {
      QuantizeOptions o;
      if (!OptionsFor(f, variant, &o)) continue;
      SCOPED_TRACE(std::string(FormatName(f)) + " options " + std::to_string(variant));
      for (const DType dt : {DType::kF32, DType::kBF16}) {
        const ConstTensorView in{dt == DType::kF32 ? static_cast<const void*>(x.data()) : xb.data(),
                                 dt, shape};
        const std::vector<float> want = DequantizeToF32(Quantize(f, in, o));
        EXPECT_TRUE(SameBits(FakeQuantize(f, in, o), want));
        std::vector<float> out(x.size(), -1.0f);
        FakeQuantize(f, in, o, TensorView{out.data(), DType::kF32, {7 * 75}});
        EXPECT_TRUE(SameBits(out, want));
        ++checked;
      }
    }
  }
  EXPECT_GE(checked, 2 * kNumFormats);
  // Independent checks of the dense roundings: f16/bf16 round to nearest even, f32 is a copy.
  std::vector<float> f16(x.size()), bf16(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    f16[i] = F16ToF32(F32ToF16(x[i]));
    bf16[i] = BF16ToF32(F32ToBF16(x[i]));
  }
  EXPECT_TRUE(SameBits(FakeQuantize(Format::kF16, View(x, shape)), f16));
  EXPECT_TRUE(SameBits(FakeQuantize(Format::kBF16, View(x, shape)), bf16));
  EXPECT_TRUE(SameBits(FakeQuantize(Format::kF32, View(x, shape)), x));
}

// ---- STE and clipped STE
// -------------------------------------------------------------------------

TEST(FakeQuantizeBackward, SteCopiesTheGradientForEveryFormat) {
  const std::vector<float> x = Randn(4 * 64, 2), g = Randn(4 * 64, 3);
  for (int fi = 0; fi < kNumFormats; ++fi) {
    const Format f = static_cast<Format>(fi);
    std::vector<float> gx(g.size(), 7.0f);
    FakeQuantizeBackward(f, View(x, {4, 64}), {}, SteMode::kIdentity, g.data(), gx.data());
    EXPECT_TRUE(SameBits(gx, g)) << FormatName(f);
    std::vector<float> inplace = g;
    FakeQuantizeBackward(f, View(x, {4, 64}), {}, SteMode::kIdentity, inplace.data(),
                         inplace.data());
    EXPECT_TRUE(SameBits(inplace, g)) << FormatName(f);
  }
}

// How the oracle below reads a format: grid formats get half a step beyond their extreme codes,
// codebooks end at their extreme entries (qat.h).
enum class OracleFamily { kDense, kGrid, kCodebook };
OracleFamily FamilyOf(Format f) {
  switch (f) {
    case Format::kF32:
    case Format::kF16:
    case Format::kBF16:
      return OracleFamily::kDense;
    case Format::kInt8:
    case Format::kInt8Asym:
    case Format::kInt4:
    case Format::kInt4Asym:
    case Format::kFP8E4M3:
    case Format::kFP8E5M2:
    case Format::kMXFP4:  // E2M1 elements saturate like a grid: half a step past +-6
    case Format::kNVFP4:
    case Format::kIQ4NL:  // a fixed non-linear grid: half a step past its extreme values
      return OracleFamily::kGrid;
    case Format::kNF4:
    case Format::kFP4:
    case Format::kBlockwise8:
      return OracleFamily::kCodebook;
    default:
      ADD_FAILURE() << "a format was appended to the table: decide its representable-range rule "
                       "(qat.h, src/nn/qat.cc RuleFor) and add it here: "
                    << FormatName(f);
      return OracleFamily::kDense;
  }
}

// Codes the format's quantizer can emit (int4: nibble 0 = -8 and int8: -128 never are; fp8 NaN
// and Inf codes decode to non-finite values and are dropped by the caller).
bool EmittedCode(Format f, int code) {
  if (f == Format::kInt4) return code != 0;
  if (f == Format::kInt8) return code != 0x80;
  return true;
}

// The oracle: for every element, the values its statistic decodes each emitted code to, obtained
// by running Dequantize on a copy of `q` whose payload holds that code everywhere. Grid formats:
// inside iff lo - (lo2 - lo)/2 < x < hi + (hi - hi2)/2 (lo2 / hi2 the second smallest / largest
// value); codebooks: inside iff lo <= x <= hi. Independent of src/nn/qat.cc's per-format formulas.
std::vector<uint8_t> OracleInside(const QuantizedTensor& q, const std::vector<float>& x) {
  const Format f = q.state.format;
  const int64_t n = q.state.num_elements();
  const int bits = GetFormatInfo(f).code_bits;
  std::vector<std::set<float>> values(static_cast<size_t>(n));
  for (int code = 0; code < (1 << bits); ++code) {
    if (!EmittedCode(f, code)) continue;
    QuantizedTensor c = q;
    const uint8_t byte =
        bits == 4 ? static_cast<uint8_t>(code << 4 | code) : static_cast<uint8_t>(code);
    std::fill(c.data.begin(), c.data.end(), byte);
    const std::vector<float> d = DequantizeToF32(c);
    for (int64_t i = 0; i < n; ++i) {
      if (std::isfinite(d[i])) values[i].insert(d[i] == 0.0f ? 0.0f : d[i]);  // -0 == 0
    }
  }
  std::vector<uint8_t> inside(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const std::set<float>& v = values[i];
    const double lo = *v.begin(), hi = *v.rbegin();
    if (FamilyOf(f) == OracleFamily::kCodebook) {
      inside[i] = x[i] >= lo && x[i] <= hi;
    } else {
      const double lo2 = *std::next(v.begin()), hi2 = *std::next(v.rbegin());
      inside[i] = x[i] > lo - (lo2 - lo) / 2 && x[i] < hi + (hi - hi2) / 2;
    }
  }
  return inside;
}

TEST(FakeQuantizeBackward, ClippedSteZeroesExactlyOutsideTheRangeOfEveryQuantizedFormat) {
  const Shape shape{6, 100};
  const std::vector<float> x = Randn(600, 4, 0.5), g = Randn(600, 5);
  for (int fi = 0; fi < kNumFormats; ++fi) {
    const Format f = static_cast<Format>(fi);
    if (FamilyOf(f) == OracleFamily::kDense) continue;
    for (int variant = 0; variant < 3; ++variant) {
      QuantizeOptions o;
      if (!OptionsFor(f, variant, &o)) continue;
      SCOPED_TRACE(std::string(FormatName(f)) + " options " + std::to_string(variant));
      const QuantizedTensor q = Quantize(f, View(x, shape), o);
      // x itself (statistics from the same blocks) and x stretched past them (fixed statistics).
      for (const float stretch : {1.0f, 1.6f}) {
        std::vector<float> xs(x);
        for (float& v : xs) v *= stretch;
        const std::vector<uint8_t> want = OracleInside(q, xs);
        const std::vector<uint8_t> got = InRepresentableRange(q, View(xs, shape));
        int64_t outside = 0;
        for (size_t i = 0; i < want.size(); ++i) {
          ASSERT_EQ(got[i], want[i]) << "stretch " << stretch << " element " << i << " x " << xs[i];
          outside += want[i] == 0;
        }
        if (stretch > 1.0f) {  // the comparison above saw both kinds of elements
          EXPECT_GT(outside, 10);
          EXPECT_LT(outside, 590);
        }
        if (stretch == 1.0f) {
          // The clipped backward on the statistics Quantize computes from x.
          std::vector<float> gx(g.size(), 9.0f);
          FakeQuantizeBackward(f, View(x, shape), o, SteMode::kClipped, g.data(), gx.data());
          for (size_t i = 0; i < g.size(); ++i) {
            ASSERT_EQ(Bits(gx[i]), Bits(want[i] ? g[i] : 0.0f)) << i;
          }
        }
      }
    }
  }
}

TEST(FakeQuantizeBackward, NothingIsOutsideWhenTheAbsmaxComesFromTheSameBlock) {
  // int4 / int8 / fp8 / nf4 / fp4: the statistic covers its block in float32, so the clipped
  // STE equals the STE; blockwise8 is the exception (its lowest code is -0.99297·absmax), and so
  // is mxfp4 (its power-of-two scale leaves |x / X| up to 8, and 7..8 saturates).
  for (uint64_t seed = 10; seed < 16; ++seed) {
    const std::vector<float> x = Randn(5 * 96, seed, 0.1 * static_cast<double>(seed));
    for (const Format f : {Format::kInt4, Format::kInt8, Format::kFP8E4M3, Format::kFP8E5M2,
                           Format::kNF4, Format::kFP4}) {
      for (int variant = 0; variant < 2; ++variant) {
        QuantizeOptions o;
        if (!OptionsFor(f, variant, &o)) continue;
        const std::vector<uint8_t> in =
            InRepresentableRange(Quantize(f, View(x, {5, 96}), o), View(x, {5, 96}));
        EXPECT_EQ(std::count(in.begin(), in.end(), 0), 0) << FormatName(f) << " seed " << seed;
      }
    }
  }
  std::vector<float> x = Randn(256, 20, 0.3);
  x[77] = -5.0f;  // the absmax of the only block, on the negative side
  const std::vector<uint8_t> in =
      InRepresentableRange(Quantize(Format::kBlockwise8, View(x, {256}), {}), View(x, {256}));
  for (int i = 0; i < 256; ++i) EXPECT_EQ(in[i], i == 77 ? 0 : 1) << i;
}

TEST(FakeQuantizeBackward, DenseFormatsClipOnlyOverflow) {
  const std::vector<float> x = {
      1.0f, -65504.0f, 65519.0f, 65520.0f, -70000.0f, 3.0e38f, std::numeric_limits<float>::max()};
  const std::vector<float> g = {1, 2, 3, 4, 5, 6, 7};
  std::vector<float> gx(x.size());
  FakeQuantizeBackward(Format::kF16, View(x, {7}), {}, SteMode::kClipped, g.data(), gx.data());
  EXPECT_EQ(gx, (std::vector<float>{1, 2, 3, 0, 0, 0, 0}));  // 65520 rounds to Inf in f16
  FakeQuantizeBackward(Format::kBF16, View(x, {7}), {}, SteMode::kClipped, g.data(), gx.data());
  EXPECT_EQ(gx, (std::vector<float>{1, 2, 3, 4, 5, 6, 0}));  // FLT_MAX rounds to Inf in bf16
  FakeQuantizeBackward(Format::kF32, View(x, {7}), {}, SteMode::kClipped, g.data(), gx.data());
  EXPECT_EQ(gx, g);
}

// ---- LSQ
// ------------------------------------------------------------------------------------------

LsqOptions Lsq(Format f, int64_t group = 0, Granularity gran = Granularity::kDefault,
               bool scale_gradient = true) {
  LsqOptions o;
  o.format = f;
  o.quantize.block_size = group;
  o.quantize.granularity = gran;
  o.scale_gradient = scale_gradient;
  return o;
}

std::vector<float> LsqForward(const LsqQuantizer& l, const std::vector<float>& w) {
  std::vector<float> out(w.size());
  l.Forward(w.data(), out.data());
  return out;
}

TEST(Lsq, AbsmaxInitIsRoundToNearestInt4BitForBit) {
  for (const Shape& shape : {Shape{6, 100}, Shape{5, 77}}) {  // group tails; odd element count
    const std::vector<float> w = Randn(NumElements(shape), 30, 0.2);
    const QuantizedTensor rtn = Quantize(Format::kInt4, View(w, shape), {32});
    const LsqQuantizer l(View(w, shape), Lsq(Format::kInt4, 32));
    EXPECT_TRUE(SameBits(LsqForward(l, w), DequantizeToF32(rtn)));
    const QuantizedTensor e = l.Export(w.data());
    EXPECT_EQ(e.data, rtn.data);
    EXPECT_TRUE(SameBits(e.state.scales, rtn.state.scales));
    EXPECT_EQ(e.state.block_size, 32);
    EXPECT_EQ(e.state.granularity, Granularity::kGroup);
  }
}

TEST(Lsq, AbsmaxInitIsRoundToNearestInt8WhenTheAbsmaxRoundTrips) {
  // Row absmax 127·2^-6: s = 2^-6 and f32(127 s) give back the absmax exactly, so the LSQ codes
  // and values are QuantizeInt8's (the rounding rule is the same: x · f32(127 / absmax), RNE).
  const float a = 127.0f / 64.0f;
  std::vector<float> w = Randn(8 * 50, 31, 0.5);
  for (float& v : w) v = std::clamp(v, -a, a);
  for (int r = 0; r < 8; ++r) w[r * 50 + r] = (r & 1) ? -a : a;
  for (const Granularity gran : {Granularity::kRow, Granularity::kTensor}) {
    QuantizeOptions qo;
    qo.granularity = gran;
    const QuantizedTensor rtn = Quantize(Format::kInt8, View(w, {8, 50}), qo);
    const LsqQuantizer l(View(w, {8, 50}), Lsq(Format::kInt8, 0, gran));
    EXPECT_TRUE(SameBits(LsqForward(l, w), DequantizeToF32(rtn)));
    const QuantizedTensor e = l.Export(w.data());
    EXPECT_EQ(e.data, rtn.data);
    EXPECT_TRUE(SameBits(e.state.scales, rtn.state.scales));
  }
}

TEST(Lsq, RoundsHalfToEvenLikeTheQuantizers) {
  // Step 1 exactly (int4 absmax 7; int8 absmax 127): ties land on even codes, as Quantize's.
  std::vector<float> w4(32, 0.0f), w8(32, 0.0f);
  const std::vector<float> ties4 = {7.0f, 0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 3.5f, 6.5f, -6.5f};
  const std::vector<float> want4 = {7.0f, 0.0f, 2.0f, 2.0f, 0.0f, -2.0f, -2.0f, 4.0f, 6.0f, -6.0f};
  const std::vector<float> ties8 = {127.0f, 0.5f, 1.5f, 2.5f, -2.5f, 125.5f, 126.5f, -126.5f};
  const std::vector<float> want8 = {127.0f, 0.0f, 2.0f, 2.0f, -2.0f, 126.0f, 126.0f, -126.0f};
  std::copy(ties4.begin(), ties4.end(), w4.begin());
  std::copy(ties8.begin(), ties8.end(), w8.begin());
  const LsqQuantizer l4(View(w4, {1, 32}), Lsq(Format::kInt4, 32));
  const LsqQuantizer l8(View(w8, {1, 32}), Lsq(Format::kInt8));
  ASSERT_EQ(l4.steps()[0], 1.0f);
  ASSERT_EQ(l8.steps()[0], 1.0f);
  const std::vector<float> f4 = LsqForward(l4, w4), f8 = LsqForward(l8, w8);
  for (size_t i = 0; i < want4.size(); ++i) EXPECT_EQ(f4[i], want4[i]) << ties4[i];
  for (size_t i = 0; i < want8.size(); ++i) EXPECT_EQ(f8[i], want8[i]) << ties8[i];
  EXPECT_TRUE(SameBits(f4, DequantizeToF32(Quantize(Format::kInt4, View(w4, {1, 32}), {32}))));
  EXPECT_TRUE(SameBits(f8, DequantizeToF32(Quantize(Format::kInt8, View(w8, {1, 32})))));
}

TEST(Lsq, PaperInitIsTwiceMeanAbsOverSqrtQp) {
  const std::vector<float> w = Randn(3 * 70, 32, 0.3);
  LsqOptions o = Lsq(Format::kInt4, 32);
  o.init = LsqInit::kLsqPaper;
  const LsqQuantizer l(View(w, {3, 70}), o);
  ASSERT_EQ(l.num_steps(), 9);  // 3 groups per row: 32, 32, 6
  for (int r = 0; r < 3; ++r) {
    for (int g = 0; g < 3; ++g) {
      const int begin = g * 32, end = std::min(70, begin + 32);
      double sum = 0;
      for (int c = begin; c < end; ++c) sum += std::fabs(w[r * 70 + c]);
      EXPECT_EQ(l.steps()[r * 3 + g],
                static_cast<float>(2.0 * (sum / (end - begin)) / std::sqrt(7.0)));
      EXPECT_FLOAT_EQ(l.gradient_scale(r * 3 + g), 1.0f / std::sqrt((end - begin) * 7.0f));
    }
  }
}

// The documented rule, written out independently: u, rint(u), inside iff |rint(u)| <= Qp.
struct RuleGrad {
  std::vector<float> grad_w;
  std::vector<double> grad_s;
  int64_t inside = 0, outside = 0;
};
RuleGrad ExpectedLsqGrad(const LsqQuantizer& l, const std::vector<float>& w,
                         const std::vector<float>& g, const std::vector<float>& grad_w0) {
  RuleGrad r;
  r.grad_w = grad_w0;
  r.grad_s.assign(static_cast<size_t>(l.num_steps()), 0.0);
  const float qp = static_cast<float>(l.qmax());
  std::vector<int64_t> count(static_cast<size_t>(l.num_steps()), 0);
  for (size_t i = 0; i < w.size(); ++i) {
    const int64_t k = l.layout().ScaleIndex(static_cast<int64_t>(i));
    ++count[k];
    const float s = l.steps()[k];
    float u;
    if (l.format() == Format::kInt8) {
      const float a = s * 127.0f;
      u = w[i] * (127.0f / a);
    } else {
      u = w[i] / s;
    }
    const float rr = std::nearbyint(u);
    if (std::fabs(rr) <= qp) {
      r.grad_w[i] += g[i];
      r.grad_s[k] += static_cast<double>(g[i]) * (static_cast<double>(rr) - u);
      ++r.inside;
    } else {
      r.grad_s[k] += static_cast<double>(g[i]) * (rr > 0 ? qp : -qp);
      ++r.outside;
    }
  }
  for (int64_t k = 0; k < l.num_steps(); ++k) {
    if (l.options().scale_gradient) r.grad_s[k] /= std::sqrt(static_cast<double>(count[k]) * qp);
  }
  return r;
}

TEST(Lsq, GradientsFollowTheExactRule) {
  struct Case {
    LsqOptions o;
    Shape shape;
  };
  const Case cases[] = {{Lsq(Format::kInt4, 32), {6, 100}},
                        {Lsq(Format::kInt4, 64, Granularity::kDefault, false), {5, 77}},
                        {Lsq(Format::kInt8), {6, 100}},
                        {Lsq(Format::kInt8, 0, Granularity::kTensor), {6, 100}}};
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(FormatName(c.o.format)) + " " + ShapeToString(c.shape));
    const int64_t n = NumElements(c.shape);
    const std::vector<float> w = Randn(n, 40, 0.3), g = Randn(n, 41), gw0 = Randn(n, 42);
    LsqQuantizer l(View(w, c.shape), c.o);
    // Steps shrunk below the initialization: in every group some elements saturate, most do not.
    std::mt19937_64 rng(43);
    std::uniform_real_distribution<float> u(0.45f, 0.9f);
    for (float& s : l.steps()) s *= u(rng);
    std::vector<float> gw = gw0;
    l.Backward(w.data(), g.data(), gw.data());
    const RuleGrad want = ExpectedLsqGrad(l, w, g, gw0);
    EXPECT_GT(want.outside, n / 50);
    EXPECT_GT(want.inside, n / 2);
    EXPECT_TRUE(SameBits(gw, want.grad_w));
    for (int64_t k = 0; k < l.num_steps(); ++k) {
      EXPECT_NEAR(l.grad_steps()[k], want.grad_s[k], 1e-6 * (1 + std::fabs(want.grad_s[k]))) << k;
    }
    // Accumulates until ZeroGrad; grad_w may be null.
    const std::vector<float> first = l.grad_steps();
    l.Backward(w.data(), g.data(), nullptr);
    for (int64_t k = 0; k < l.num_steps(); ++k) EXPECT_FLOAT_EQ(l.grad_steps()[k], 2 * first[k]);
    l.ZeroGrad();
    for (const float v : l.grad_steps()) EXPECT_EQ(v, 0.0f);
  }
}

// Weights placed away from every rounding boundary: w = s·(k + f), k an integer in [-10, 10]
// (|k| >= 8 saturates for int4), |f| <= 0.35. Every u is then >= 0.15 from a half-integer, so
// the finite-difference steps below (which move u by < 0.02) never change a code: the
// quantizer is differentiable there, with dv̂/ds = q and dv̂/dv = 0 exactly.
struct SmoothPoint {
  std::vector<float> w;
  Shape shape;
};
SmoothPoint AwayFromBoundaries(LsqQuantizer& l, uint64_t seed) {
  SmoothPoint p;
  p.shape = l.shape();
  const int64_t n = l.num_elements();
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> frac(-0.35f, 0.35f), step(0.02f, 0.05f);
  const int kmax = l.qmax() + 3;
  std::uniform_int_distribution<int> code(-kmax, kmax);
  for (float& s : l.steps()) s = step(rng);
  p.w.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const float s = l.steps()[l.layout().ScaleIndex(i)];
    // int8: keep most codes small enough that u ≈ v/s has the same margin in float32.
    const int k =
        l.qmax() > 7 ? (code(rng) % 12) + (i % 5 == 0 ? 128 * ((i & 1) ? 1 : -1) : 0) : code(rng);
    p.w[i] = s * (static_cast<float>(k) + frac(rng));
  }
  return p;
}

// L = Σ c v̂ + ½ Σ d v̂², a smooth loss of the LSQ output; dL/dv̂ = c + d v̂.
struct SmoothLoss {
  std::vector<float> c, d;
  double operator()(const std::vector<float>& v) const {
    double l = 0;
    for (size_t i = 0; i < v.size(); ++i)
      l += c[i] * static_cast<double>(v[i]) + 0.5 * d[i] * v[i] * v[i];
    return l;
  }
  std::vector<float> Grad(const std::vector<float>& v) const {
    std::vector<float> g(v.size());
    for (size_t i = 0; i < v.size(); ++i) g[i] = c[i] + d[i] * v[i];
    return g;
  }
};

TEST(Lsq, GradientsMatchCentralDifferencesWhereTheQuantizerIsDifferentiable) {
  for (const LsqOptions& o : {Lsq(Format::kInt4, 32, Granularity::kDefault, false),
                              Lsq(Format::kInt8, 0, Granularity::kDefault, false)}) {
    SCOPED_TRACE(FormatName(o.format));
    const Shape shape{4, 96};
    const int64_t n = 4 * 96;
    std::vector<float> w0 = Randn(n, 50);
    LsqQuantizer l(View(w0, shape), o);
    const SmoothPoint p = AwayFromBoundaries(l, 51);
    const std::vector<float>& w = p.w;
    SmoothLoss loss{Randn(n, 52), Randn(n, 53, 0.5)};
    const std::vector<float> v = LsqForward(l, w);
    const std::vector<float> gv = loss.Grad(v);
    std::vector<float> gw(static_cast<size_t>(n), 0.0f);
    l.Backward(w.data(), gv.data(), gw.data());
    const std::vector<float> steps = l.steps();

    // (1) Along (w, s) -> λ(w, s) every u is unchanged and v̂ scales by λ, so the directional
    // derivative of L is exactly Σ dL/dw · w + Σ dL/ds · s for LSQ's rule (inside: w + (r-u)s =
    // r s; outside: q s): a finite-difference check that covers the STE terms too.
    auto scaled_loss = [&](double lambda) {
      std::vector<float> ws(w);
      for (float& x : ws) x = static_cast<float>(x * lambda);
      for (size_t k = 0; k < steps.size(); ++k)
        l.steps()[k] = static_cast<float>(steps[k] * lambda);
      const double r = loss(LsqForward(l, ws));
      l.steps() = steps;
      return r;
    };
    const double h = 1e-3;
    const double fd = (scaled_loss(1 + h) - scaled_loss(1 - h)) / (2 * h);
    double analytic = 0;
    for (int64_t i = 0; i < n; ++i) analytic += static_cast<double>(gw[i]) * w[i];
    for (size_t k = 0; k < steps.size(); ++k)
      analytic += static_cast<double>(l.grad_steps()[k]) * steps[k];
    EXPECT_NEAR(analytic, fd, 1e-3 * (1 + std::fabs(fd)));

    // (2) Along one step s_k: the exact derivative is Σ_k dL/dv̂ · q. LSQ's dL/ds_k is that minus
    // the STE term Σ_{inside} dL/dv̂ · u (the gradient the rounding would pass if it were the
    // identity), and saturated elements contribute exactly their finite difference.
    for (int64_t k = 0; k < l.num_steps(); k += 3) {
      auto loss_at = [&](double s) {
        l.steps()[k] = static_cast<float>(s);
        const double r = loss(LsqForward(l, w));
        l.steps() = steps;
        return r;
      };
      const double hs = 5e-4 * steps[k];  // moves u by < 0.07 (|u| < 140)
      const double fd_s = (loss_at(steps[k] + hs) - loss_at(steps[k] - hs)) / (2 * hs);
      double ste_term = 0;
      for (int64_t i = 0; i < n; ++i) {
        if (l.layout().ScaleIndex(i) != k) continue;
        const double u = static_cast<double>(w[i]) / steps[k];
        if (std::fabs(std::nearbyint(u)) <= l.qmax()) ste_term += gv[i] * u;
      }
      EXPECT_NEAR(l.grad_steps()[k], fd_s - ste_term, 2e-3 * (1 + std::fabs(fd_s))) << "step " << k;
    }

    // (3) Saturated weights: dL/dw = 0, and so is their finite difference (q stays ±Qp).
    int saturated = 0;
    for (int64_t i = 0; i < n && saturated < 12; ++i) {
      const double u = static_cast<double>(w[i]) / steps[l.layout().ScaleIndex(i)];
      if (std::fabs(std::nearbyint(u)) <= l.qmax()) continue;
      ++saturated;
      std::vector<float> wp(w), wm(w);
      wp[i] += 5e-4f * std::fabs(w[i]);  // |u| >= Qp + 0.65 stays beyond Qp + 0.5
      wm[i] -= 5e-4f * std::fabs(w[i]);
      EXPECT_EQ(loss(LsqForward(l, wp)), loss(LsqForward(l, wm))) << i;
      EXPECT_EQ(gw[i], 0.0f) << i;
    }
    EXPECT_EQ(saturated, 12);
  }
}

TEST(Lsq, ExportDequantizesToTheForwardBitForBit) {
  struct Case {
    LsqOptions o;
    Shape shape;
  };
  const Case cases[] = {{Lsq(Format::kInt4, 32), {9, 77}},  // odd element count (padding)
                        {Lsq(Format::kInt4, 128), {3, 300}},
                        {Lsq(Format::kInt8), {9, 77}},
                        {Lsq(Format::kInt8, 0, Granularity::kTensor), {9, 77}}};
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(FormatName(c.o.format)) + " " + ShapeToString(c.shape));
    const int64_t n = NumElements(c.shape);
    std::vector<float> w = Randn(n, 60, 0.2);
    LsqQuantizer l(View(w, c.shape), c.o);
    // As after training: weights and steps moved away from round-to-nearest.
    const std::vector<float> noise = Randn(n, 61, 0.03);
    for (int64_t i = 0; i < n; ++i) w[i] += noise[i];
    std::mt19937_64 rng(62);
    std::uniform_real_distribution<float> u(0.6f, 1.3f);
    for (float& s : l.steps()) s *= u(rng);
    const QuantizedTensor e = l.Export(w.data());
    ValidateQuantizedTensor(e);
    EXPECT_EQ(e.state.shape, c.shape);
    EXPECT_EQ(e.data.size(), static_cast<size_t>(PayloadBytes(c.o.format, n)));
    const std::vector<float> forward = LsqForward(l, w);
    EXPECT_TRUE(SameBits(DequantizeToF32(e), forward));
    // And the exported tensor multiplies like any other weight: y = x · Ŵᵀ.
    const int64_t rows = c.shape[0], cols = c.shape[1], m = 3;
    const std::vector<float> x = Randn(m * cols, 63);
    std::vector<float> y(static_cast<size_t>(m * rows));
    Matmul(Pack(e), ConstTensorView{x.data(), DType::kF32, {m, cols}},
           TensorView{y.data(), DType::kF32, {m, rows}});
    const MatD want = ToMat(x, m, cols) * ToMat(forward, rows, cols).transpose();
    for (int64_t i = 0; i < m * rows; ++i) {
      EXPECT_NEAR(y[i], want.data()[i], 1e-4 * (1 + std::fabs(want.data()[i]))) << i;
    }
  }
}

// ---- QatLinear
// ------------------------------------------------------------------------------------

TEST(QatLinear, LsqGradientsMatchFiniteDifferences) {
  const int64_t k = 70, n = 12, m = 5;
  std::vector<float> w0 = Randn(n * k, 70, 0.2);
  const std::vector<float> b = Randn(n, 71, 0.1);
  QatLinearOptions o;
  o.lsq = Lsq(Format::kInt4, 32, Granularity::kDefault, /*scale_gradient=*/false);
  QatLinear layer(k, n, w0.data(), b.data(), o);
  const SmoothPoint p = AwayFromBoundaries(layer.lsq(), 72);
  layer.weight() = p.w;
  const std::vector<float> x = Randn(m * k, 73), g = Randn(m * n, 74);
  std::vector<float> y(static_cast<size_t>(m * n));
  layer.Forward(View(x, {m, k}), TensorView{y.data(), DType::kF32, {m, n}});
  std::vector<float> gx(static_cast<size_t>(m * k), 5.0f);
  layer.Backward(g.data(), m, gx.data());

  // float64 reference of L = <G, x Ŵᵀ + b> as a function of x, Ŵ and b.
  const std::vector<float> w_hat = layer.FakeQuantizedWeight();
  const MatD G = ToMat(g, m, n);
  auto ref = [&](const MatD& xx, const MatD& ww, const MatD& bb) {
    MatD yy = xx * ww.transpose();
    for (int64_t i = 0; i < m; ++i) yy.row(i) += bb.row(0);
    return (yy.cwiseProduct(G)).sum();
  };
  const MatD X = ToMat(x, m, k), W = ToMat(w_hat, n, k), B = ToMat(b, 1, n);
  auto numeric = [](MatD p0, const std::function<double(const MatD&)>& f) {
    MatD grad(p0.rows(), p0.cols());
    for (int64_t i = 0; i < p0.size(); ++i) {
      const double v = p0.data()[i];
      p0.data()[i] = v + 1e-3;
      const double up = f(p0);
      p0.data()[i] = v - 1e-3;
      const double down = f(p0);
      p0.data()[i] = v;
      grad.data()[i] = (up - down) / 2e-3;
    }
    return grad;
  };
  // The layer's own output is that function.
  MatD y_ref = X * W.transpose();
  for (int64_t i = 0; i < m; ++i) y_ref.row(i) += B.row(0);
  for (int64_t i = 0; i < m * n; ++i) EXPECT_NEAR(y[i], y_ref.data()[i], 1e-5);
  const MatD dx = numeric(X, [&](const MatD& xx) { return ref(xx, W, B); });
  const MatD db = numeric(B, [&](const MatD& bb) { return ref(X, W, bb); });
  const MatD dw_hat = numeric(W, [&](const MatD& ww) { return ref(X, ww, B); });
  for (int64_t i = 0; i < m * k; ++i) EXPECT_NEAR(gx[i], dx.data()[i], 1e-5) << "dx " << i;
  for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(layer.grad_bias()[i], db.data()[i], 1e-5) << i;
  // dL/dW = dL/dŴ where the weight is inside its step's range (STE), 0 where it saturates.
  int saturated = 0;
  for (int64_t i = 0; i < n * k; ++i) {
    const float s = layer.lsq().steps()[layer.lsq().layout().ScaleIndex(i)];
    const bool inside = std::fabs(std::nearbyint(layer.weight()[i] / s)) <= 7.0f;
    saturated += !inside;
    EXPECT_NEAR(layer.grad_weight()[i], inside ? dw_hat.data()[i] : 0.0, 1e-5) << "dw " << i;
  }
  EXPECT_GT(saturated, 10);
  // Joint scaling of (W, steps) leaves every code unchanged: directional finite difference of the
  // layer's float32 forward against Σ dW·W + Σ ds·s.
  const std::vector<float> w_keep = layer.weight(), s_keep = layer.lsq().steps();
  auto layer_loss = [&](double lambda) {
    for (size_t i = 0; i < w_keep.size(); ++i)
      layer.weight()[i] = static_cast<float>(w_keep[i] * lambda);
    for (size_t i = 0; i < s_keep.size(); ++i)
      layer.lsq().steps()[i] = static_cast<float>(s_keep[i] * lambda);
    std::vector<float> yy(static_cast<size_t>(m * n));
    layer.Forward(View(x, {m, k}), TensorView{yy.data(), DType::kF32, {m, n}});
    double l = 0;
    for (int64_t i = 0; i < m * n; ++i) l += static_cast<double>(yy[i]) * g[i];
    layer.weight() = w_keep;
    layer.lsq().steps() = s_keep;
    return l;
  };
  const double fd = (layer_loss(1 + 1e-3) - layer_loss(1 - 1e-3)) / 2e-3;
  double analytic = 0;
  for (int64_t i = 0; i < n * k; ++i)
    analytic += static_cast<double>(layer.grad_weight()[i]) * w_keep[i];
  for (size_t i = 0; i < s_keep.size(); ++i)
    analytic += static_cast<double>(layer.lsq().grad_steps()[i]) * s_keep[i];
  EXPECT_NEAR(analytic, fd, 1e-3 * (1 + std::fabs(fd)));
}

TEST(QatLinear, SteAndClippedSteLayersOnOtherFormats) {
  const int64_t k = 64, n = 8, m = 3;
  const std::vector<float> w = Randn(n * k, 80, 0.3), x = Randn(m * k, 81), g = Randn(m * n, 82);
  for (const QatMethod method : {QatMethod::kSte, QatMethod::kClippedSte}) {
    for (const Format f :
         {Format::kNF4, Format::kBlockwise8, Format::kInt4Asym, Format::kFP8E4M3}) {
      SCOPED_TRACE(std::string(FormatName(f)) + (method == QatMethod::kSte ? " ste" : " clipped"));
      QatLinearOptions o;
      o.method = method;
      o.format = f;
      if (f == Format::kBlockwise8) o.quantize.block_size = 64;
      QatLinear layer(k, n, w.data(), nullptr, o);
      EXPECT_TRUE(
          SameBits(layer.FakeQuantizedWeight(), FakeQuantize(f, View(w, {n, k}), o.quantize)));
      EXPECT_TRUE(SameBits(DequantizeToF32(layer.Export()), layer.FakeQuantizedWeight()));
      std::vector<float> y(static_cast<size_t>(m * n));
      layer.Forward(View(x, {m, k}), TensorView{y.data(), DType::kF32, {m, n}});
      layer.Backward(g.data(), m, nullptr);
      // dL/dŴ = Gᵀ X, passed through (STE) or masked (clipped).
      const MatD dw_hat = ToMat(g, m, n).transpose() * ToMat(x, m, k);
      std::vector<float> mask(static_cast<size_t>(n * k), 1.0f);
      if (method == QatMethod::kClippedSte) {
        const std::vector<uint8_t> in =
            InRepresentableRange(Quantize(f, View(w, {n, k}), o.quantize), View(w, {n, k}));
        for (size_t i = 0; i < in.size(); ++i) mask[i] = in[i];
      }
      for (int64_t i = 0; i < n * k; ++i) {
        EXPECT_NEAR(layer.grad_weight()[i], mask[i] * dw_hat.data()[i], 1e-5) << i;
      }
      EXPECT_EQ(layer.Parameters("l.").size(), 1u);  // no bias, no steps
    }
  }
}

TEST(QatLinear, ExportServesThroughLinear4bit) {
  const int64_t k = 96, n = 16, m = 4;
  const std::vector<float> w = Randn(n * k, 90, 0.2), b = Randn(n, 91), x = Randn(m * k, 92);
  QatLinearOptions o;
  o.lsq = Lsq(Format::kInt4, 32);
  QatLinear layer(k, n, w.data(), b.data(), o);
  for (float& s : layer.lsq().steps()) s *= 0.8f;
  layer.SetTraining(false);
  std::vector<float> y(static_cast<size_t>(m * n)), y4(y.size());
  layer.Forward(View(x, {m, k}), TensorView{y.data(), DType::kF32, {m, n}});
  const auto served = Linear4bit::FromQuantized(layer.Export(), b.data());
  served->Forward(View(x, {m, k}), TensorView{y4.data(), DType::kF32, {m, n}});
  for (int64_t i = 0; i < m * n; ++i) EXPECT_NEAR(y4[i], y[i], 1e-4 * (1 + std::fabs(y[i])));
  EXPECT_THROW(layer.Backward(x.data(), m, nullptr), Error);  // inference forward caches nothing
}

// QAT on a regression with correlated inputs (4 strong directions plus noise, as real activations
// have): training W and the steps on the layer's output error must beat round-to-nearest int4 on
// held-out inputs from the same distribution.
TEST(QatLinear, TrainingBeatsRoundToNearestOnHeldOutInputs) {
  const int64_t k = 64, n = 24, m = 256, dirs = 4;
  const std::vector<float> w_true = Randn(n * k, 100, 0.3), v = Randn(dirs * k, 103);
  auto inputs = [&](uint64_t seed) {
    const std::vector<float> u = Randn(m * dirs, seed), noise = Randn(m * k, seed + 7, 0.3);
    std::vector<float> x(static_cast<size_t>(m * k));
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t c = 0; c < k; ++c) {
        float s = noise[i * k + c];
        for (int64_t d = 0; d < dirs; ++d) s += u[i * dirs + d] * v[d * k + c];
        x[i * k + c] = s;
      }
    }
    return x;
  };
  const std::vector<float> x_train = inputs(101), x_test = inputs(102);
  auto output_mse = [&](const std::vector<float>& w_hat, const std::vector<float>& x) {
    const MatD e = ToMat(x, m, k) * (ToMat(w_hat, n, k) - ToMat(w_true, n, k)).transpose();
    return e.squaredNorm() / static_cast<double>(m * n);
  };
  const double rtn =
      output_mse(DequantizeToF32(Quantize(Format::kInt4, View(w_true, {n, k}), {32})), x_test);

  QatLinearOptions o;
  o.lsq = Lsq(Format::kInt4, 32);
  QatLinear layer(k, n, w_true.data(), nullptr, o);
  AdamWOptions wo;
  wo.lr = 2e-3f;
  wo.weight_decay = 0.0f;
  std::vector<Parameter> params = layer.Parameters();
  AdamW opt_w({params[0]}, wo);
  wo.lr = 2e-4f;
  AdamW opt_s({params[1]}, wo);
  const MatD y_true = ToMat(x_train, m, k) * ToMat(w_true, n, k).transpose();
  std::vector<float> y(static_cast<size_t>(m * n)), g(y.size());
  for (int step = 0; step < 150; ++step) {
    layer.Forward(View(x_train, {m, k}), TensorView{y.data(), DType::kF32, {m, n}});
    for (int64_t i = 0; i < m * n; ++i) {
      g[i] = static_cast<float>(2.0 * (y[i] - y_true.data()[i]) / static_cast<double>(m * n));
    }
    layer.ZeroGrad();
    layer.Backward(g.data(), m, nullptr);
    opt_w.Step();
    opt_s.Step();
  }
  const double qat = output_mse(DequantizeToF32(layer.Export()), x_test);
  EXPECT_LT(qat, 0.5 * rtn) << "QAT " << qat << " vs RTN " << rtn;
}

// ---- Argument errors
// -------------------------------------------------------------------------------

TEST(QatErrors, EveryEntryValidates) {
  const std::vector<float> x = Randn(4 * 64, 110);
  const ConstTensorView xv = View(x, {4, 64});
  std::vector<float> out(x.size()), g(x.size());
  ExpectThrowsStatus([&] { FakeQuantize(static_cast<Format>(200), xv); },
                     Status::kUnsupportedFormat, "200");
  ExpectThrowsStatus(
      [&] {
        FakeQuantize(Format::kInt4, ConstTensorView{nullptr, DType::kF32, {4}});
      },
      Status::kInvalidArgument);
  ExpectThrowsStatus(
      [&] {
        FakeQuantize(Format::kInt4, xv, {}, TensorView{out.data(), DType::kF32, {4, 63}});
      },
      Status::kInvalidArgument, "252");
  ExpectThrowsStatus(
      [&] {
        FakeQuantize(Format::kInt4, xv, {}, TensorView{out.data(), DType::kF16, {4, 64}});
      },
      Status::kInvalidArgument, "f16");
  std::vector<float> alias(x);
  ExpectThrowsStatus(
      [&] {
        FakeQuantize(Format::kInt4, View(alias, {4, 64}), {},
                     TensorView{alias.data(), DType::kF32, {4, 64}});
      },
      Status::kInvalidArgument, "overlaps");
  ExpectThrowsStatus([&] { FakeQuantize(Format::kInt4, xv, {48}); }, Status::kInvalidArgument,
                     "48");
  std::vector<float> bad(x);
  bad[5] = std::nanf("");
  ExpectThrowsStatus(
      [&] {
        FakeQuantize(Format::kNF4, View(bad, {4, 64}));
      },
      Status::kInvalidArgument, "flat index 5");
  ExpectThrowsStatus(
      [&] { FakeQuantizeBackward(Format::kInt4, xv, {}, SteMode::kClipped, nullptr, g.data()); },
      Status::kInvalidArgument);
  ExpectThrowsStatus(
      [&] {
        FakeQuantizeBackward(Format::kInt4, xv, {}, static_cast<SteMode>(9), x.data(), g.data());
      },
      Status::kInvalidArgument, "9");
  ExpectThrowsStatus(
      [&] {
        FakeQuantizeBackward(static_cast<Format>(99), xv, {}, SteMode::kIdentity, x.data(),
                             g.data());
      },
      Status::kUnsupportedFormat);
  const QuantizedTensor q = Quantize(Format::kInt4, xv);
  ExpectThrowsStatus(
      [&] {
        InRepresentableRange(q, View(x, {4, 32}));
      },
      Status::kInvalidArgument, "128");

  // LSQ.
  ExpectThrowsStatus([&] { (void)LsqQuantizer(xv, Lsq(Format::kNF4)); }, Status::kUnsupportedFormat,
                     "nf4");
  ExpectThrowsStatus([&] { (void)LsqQuantizer(xv, Lsq(Format::kInt8, 32)); },
                     Status::kInvalidArgument, "32");
  ExpectThrowsStatus([&] { (void)LsqQuantizer(xv, Lsq(Format::kInt4, 24)); },
                     Status::kInvalidArgument, "24");
  LsqOptions dq = Lsq(Format::kInt4);
  dq.quantize.double_quant = true;
  ExpectThrowsStatus([&] { (void)LsqQuantizer(xv, dq); }, Status::kInvalidArgument, "double");
  ExpectThrowsStatus(
      [&] {
        (void)LsqQuantizer(View(bad, {4, 64}), Lsq(Format::kInt4, 32));
      },
      Status::kInvalidArgument, "flat index 5");
  LsqQuantizer l(xv, Lsq(Format::kInt4, 32));
  ExpectThrowsStatus([&] { l.Forward(nullptr, out.data()); }, Status::kInvalidArgument);
  ExpectThrowsStatus([&] { l.Forward(bad.data(), out.data()); }, Status::kInvalidArgument,
                     "flat index 5");
  ExpectThrowsStatus([&] { l.gradient_scale(8); }, Status::kInvalidArgument, "8");
  for (const float s : {0.0f, -1.0f, std::nanf(""), std::numeric_limits<float>::infinity()}) {
    l.steps()[3] = s;
    ExpectThrowsStatus([&] { l.Forward(x.data(), out.data()); }, Status::kInvalidState, "step 3");
    ExpectThrowsStatus([&] { l.Backward(x.data(), g.data(), nullptr); }, Status::kInvalidState,
                       "step 3");
    ExpectThrowsStatus([&] { l.Export(x.data()); }, Status::kInvalidState, "step 3");
  }
  LsqQuantizer l8(xv, Lsq(Format::kInt8));
  l8.steps()[0] = 3e37f;  // the stored absmax 127·s would overflow
  ExpectThrowsStatus([&] { l8.Export(x.data()); }, Status::kInvalidState, "step 0");

  // QatLinear.
  ExpectThrowsStatus([&] { (void)QatLinear(0, 4, x.data(), nullptr); }, Status::kInvalidArgument);
  ExpectThrowsStatus([&] { (void)QatLinear(64, 4, nullptr, nullptr); }, Status::kInvalidArgument);
  QatLinearOptions o;
  o.lsq.format = Format::kFP4;
  ExpectThrowsStatus([&] { (void)QatLinear(64, 4, x.data(), nullptr, o); },
                     Status::kUnsupportedFormat);
  o = QatLinearOptions{};
  o.method = QatMethod::kSte;
  o.format = Format::kInt4;
  o.quantize.block_size = 7;
  ExpectThrowsStatus([&] { (void)QatLinear(64, 4, x.data(), nullptr, o); },
                     Status::kInvalidArgument, "7");
  o.quantize.block_size = 0;
  QatLinear ste(64, 4, x.data(), nullptr, o);
  ExpectThrowsStatus([&] { ste.lsq(); }, Status::kInvalidState);
  ExpectThrowsStatus([&] { ste.Backward(g.data(), 4, nullptr); }, Status::kInvalidState);
  std::vector<float> y(16);
  ExpectThrowsStatus(
      [&] {
        ste.Forward(View(x, {8, 32}), TensorView{y.data(), DType::kF32, {8, 4}});
      },
      Status::kInvalidArgument, "64");
  ExpectThrowsStatus(
      [&] {
        ste.Forward(xv, TensorView{y.data(), DType::kF32, {2, 4}});
      },
      Status::kInvalidArgument);
  ste.Forward(xv, TensorView{y.data(), DType::kF32, {4, 4}});
  ExpectThrowsStatus([&] { ste.Backward(g.data(), 3, nullptr); }, Status::kInvalidArgument, "3");
  ExpectThrowsStatus([&] { ste.Backward(nullptr, 4, nullptr); }, Status::kInvalidArgument);
}

}  // namespace
}  // namespace lowbit::nn
