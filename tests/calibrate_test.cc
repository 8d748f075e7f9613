// GPTQ and AWQ (include/lowbit/calibrate/) on synthetic layers: output error vs round-to-nearest
// measured with Eigen float64, identity-Hessian GPTQ == RTN bit for bit, the Hessian vs Eigen,
// outputs that decode through the normal int4 path, and bad inputs.
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include <Eigen/Core>
#include <gtest/gtest.h>

#include "format_test_util.h"
#include "lowbit/calibrate/awq.h"
#include "lowbit/calibrate/gptq.h"
#include "lowbit/ops.h"
#include "lowbit/quantize.h"

namespace lowbit::calibrate {
namespace {

using MatrixXdRm = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatrixXfRm = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Calibration activations with correlated channels and a few large ("salient") channels, the
// situation GPTQ and AWQ are built for: x = z·M + bumps, z ~ N(0, 1).
MatrixXfRm Activations(int64_t t, int64_t k, uint32_t seed) {
  const std::vector<float> z = testing::Randn(t * k, seed);
  const std::vector<float> m = testing::Randn(k * k, seed + 1);
  const MatrixXfRm Z = Eigen::Map<const MatrixXfRm>(z.data(), t, k);
  MatrixXfRm M = Eigen::Map<const MatrixXfRm>(m.data(), k, k) * 0.3f;
  M.diagonal().array() += 1.0f;
  MatrixXfRm X = Z * M;
  for (int64_t c = 0; c < k; c += 11) X.col(c) *= 8.0f;  // salient input channels
  return X;
}

MatrixXfRm Weights(int64_t n, int64_t k, uint32_t seed) {
  const std::vector<float> w = testing::Randn(n * k, seed);
  return Eigen::Map<const MatrixXfRm>(w.data(), n, k) * 0.05f;
}

ConstTensorView View(const MatrixXfRm& m) { return {m.data(), DType::kF32, {m.rows(), m.cols()}}; }

// ||X Wᵀ − (X ⊘ s) Ŵᵀ||²_F / T in float64, Ŵ decoded by lowbit's normal Dequantize.
double OutputError(const MatrixXfRm& x, const MatrixXfRm& w, const QuantizedTensor& q,
                   const std::vector<float>& s = {}) {
  const std::vector<float> deq = DequantizeToF32(q);
  const MatrixXdRm wq = Eigen::Map<const MatrixXfRm>(deq.data(), w.rows(), w.cols()).cast<double>();
  MatrixXdRm xs = x.cast<double>();
  for (size_t c = 0; c < s.size(); ++c) xs.col(c) /= s[c];
  return (x.cast<double>() * w.cast<double>().transpose() - xs * wq.transpose()).squaredNorm() /
         x.rows();
}

QuantizedTensor Rtn(Format f, const MatrixXfRm& w, int64_t group) {
  QuantizeOptions o;
  o.block_size = group;
  return Quantize(f, View(w), o);
}

TEST(Gptq, HessianIsTwiceMeanOuterProduct) {
  const MatrixXfRm x = Activations(50, 24, 1);
  HessianAccumulator acc(24);
  acc.Add(View(x.topRows(20)));
  acc.Add({x.data() + 20 * 24, DType::kF32, {30, 24}});
  EXPECT_EQ(acc.num_rows(), 50);
  const MatrixXdRm ref = 2.0 / 50 * x.cast<double>().transpose() * x.cast<double>();
  const std::vector<double> h = acc.Hessian();
  EXPECT_LT((Eigen::Map<const MatrixXdRm>(h.data(), 24, 24) - ref).cwiseAbs().maxCoeff(),
            1e-9 * ref.cwiseAbs().maxCoeff());
}

TEST(Gptq, LowersLayerOutputErrorVsRoundToNearest) {
  const int64_t t = 512, k = 256, n = 64;
  const MatrixXfRm x = Activations(t, k, 7), w = Weights(n, k, 9);
  for (Format f : {Format::kInt4, Format::kInt4Asym}) {
    for (int64_t group : {32, 128}) {
      for (bool act_order : {false, true}) {
        GptqOptions o;
        o.format = f;
        o.group_size = group;
        o.act_order = act_order;
        o.block_size = 64;  // several lazy batches
        GptqStats stats;
        const QuantizedTensor q = GptqQuantize(View(w), View(x), o, &stats);
        const double e_gptq = OutputError(x, w, q), e_rtn = OutputError(x, w, Rtn(f, w, group));
        EXPECT_LT(e_gptq, 0.8 * e_rtn) << FormatName(f) << " g" << group << " act_order "
                                       << act_order;
        EXPECT_GT(stats.damp, 0);
        EXPECT_EQ(stats.dead_columns, 0);
      }
    }
  }
}

TEST(Gptq, IdentityHessianReproducesRoundToNearestExactly) {
  // H = I: (H + damp·I)⁻¹ is diagonal, so no error is propagated and every column rounds on
  // its own, exactly as the reference codec does.
  const int64_t n = 9, k = 100;  // K not a multiple of the group; odd element count
  const MatrixXfRm w = Weights(n, k, 3);
  std::vector<double> eye(k * k, 0.0);
  for (int64_t i = 0; i < k; ++i) eye[i * k + i] = 1.0;
  for (Format f : {Format::kInt4, Format::kInt4Asym}) {
    for (int64_t group : {32, 64}) {
      for (bool act_order : {false, true}) {
        GptqOptions o;
        o.format = f;
        o.group_size = group;
        o.act_order = act_order;
        const QuantizedTensor g = GptqQuantize(View(w), eye, o);
        const QuantizedTensor r = Rtn(f, w, group);
        EXPECT_EQ(g.data, r.data) << FormatName(f) << " g" << group;
        EXPECT_EQ(g.state.scales, r.state.scales);
        EXPECT_EQ(g.state.zero_points, r.state.zero_points);
      }
    }
  }
}

TEST(Gptq, OutputIsAPlainInt4TensorThatDecodesAndMultiplies) {
  const MatrixXfRm x = Activations(128, 96, 11), w = Weights(40, 96, 12);
  GptqOptions o;
  o.group_size = 32;
  const QuantizedTensor q = GptqQuantize(View(w), View(x), o);
  EXPECT_EQ(q.format(), Format::kInt4);
  EXPECT_EQ(q.shape(), (Shape{40, 96}));
  EXPECT_EQ(q.state.block_size, 32);
  EXPECT_NO_THROW(ValidateQuantizedTensor(q, Status::kInvalidArgument));
  const std::vector<float> deq = DequantizeToF32(q);
  // Every decoded value is an integer multiple (−7..7) of its group's scale.
  for (int64_t r = 0; r < 40; ++r) {
    for (int64_t c = 0; c < 96; ++c) {
      const float s = q.state.scales[r * 3 + c / 32];
      const float m = deq[r * 96 + c] / s;
      EXPECT_NEAR(m, std::round(m), 1e-4);
      EXPECT_LE(std::fabs(m), 7.0f + 1e-4f);
    }
  }
  // Matmul through a packed weight agrees with x · deqᵀ.
  std::vector<float> y(128 * 40);
  Matmul(Pack(q), View(x), TensorView{y.data(), DType::kF32, {128, 40}});
  const MatrixXfRm ref = x * Eigen::Map<const MatrixXfRm>(deq.data(), 40, 96).transpose();
  EXPECT_LT((Eigen::Map<const MatrixXfRm>(y.data(), 128, 40) - ref).cwiseAbs().maxCoeff(), 1e-3);
}

TEST(Gptq, DeadInputChannelsGetZeroWeights) {
  MatrixXfRm x = Activations(64, 64, 21);
  x.col(5).setZero();
  const MatrixXfRm w = Weights(8, 64, 22);
  GptqOptions o;
  o.group_size = 32;
  GptqStats stats;
  const QuantizedTensor q = GptqQuantize(View(w), View(x), o, &stats);
  EXPECT_EQ(stats.dead_columns, 1);
  const std::vector<float> deq = DequantizeToF32(q);
  for (int64_t r = 0; r < 8; ++r) EXPECT_EQ(deq[r * 64 + 5], 0.0f);
}

TEST(Gptq, RejectsBadInputs) {
  const MatrixXfRm x = Activations(16, 64, 1), w = Weights(4, 64, 2);
  const std::vector<double> h(64 * 64, 0.0);
  GptqOptions o;
  o.group_size = 32;
  auto expect = [](Status s, auto&& fn) {
    try {
      fn();
      ADD_FAILURE() << "no throw";
    } catch (const Error& e) {
      EXPECT_EQ(e.status(), s) << e.what();
    }
  };
  GptqOptions nf4 = o;
  nf4.format = Format::kNF4;
  expect(Status::kUnsupportedFormat, [&] { GptqQuantize(View(w), View(x), nf4); });
  GptqOptions bad_group = o;
  bad_group.group_size = 48;
  expect(Status::kInvalidArgument, [&] { GptqQuantize(View(w), View(x), bad_group); });
  GptqOptions bad_damp = o;
  bad_damp.percdamp = 0;
  expect(Status::kInvalidArgument, [&] { GptqQuantize(View(w), View(x), bad_damp); });
  expect(Status::kInvalidArgument,
         [&] { GptqQuantize(View(w), std::vector<double>(63 * 63, 0.0), o); });
  std::vector<double> nan_h = h;
  nan_h[3] = std::numeric_limits<double>::quiet_NaN();
  expect(Status::kInvalidArgument, [&] { GptqQuantize(View(w), nan_h, o); });
  std::vector<double> negative(64 * 64, 0.0);  // -I stays indefinite under any dampening
  for (int i = 0; i < 64; ++i) negative[i * 64 + i] = -1.0;
  expect(Status::kInvalidArgument, [&] { GptqQuantize(View(w), negative, o); });
  expect(Status::kInvalidArgument, [&] {
    GptqQuantize({w.data(), DType::kF32, {256}}, View(x), o);  // 1-D weight
  });
  expect(Status::kInvalidArgument, [&] { HessianAccumulator(0); });
  HessianAccumulator acc(64);
  expect(Status::kInvalidArgument, [&] { acc.Add({x.data(), DType::kF32, {32, 32}}); });
  MatrixXfRm bad_x = x;
  bad_x(0, 0) = std::numeric_limits<float>::infinity();
  expect(Status::kInvalidArgument, [&] { acc.Add(View(bad_x)); });
}

TEST(Awq, ScalesLowerActivationWeightedErrorVsRoundToNearest) {
  const int64_t t = 512, k = 128;
  const MatrixXfRm x = Activations(t, k, 31);
  const MatrixXfRm w1 = Weights(48, k, 32), w2 = Weights(80, k, 33);
  for (Format f : {Format::kInt4, Format::kInt4Asym}) {
    for (int64_t group : {32, 128}) {
      for (int clip_grid : {0, 20}) {
        AwqOptions o;
        o.format = f;
        o.group_size = group;
        o.clip_grid = clip_grid;
        const AwqResult r = AwqQuantize({View(w1), View(w2)}, View(x), o);
        ASSERT_EQ(r.weights.size(), 2u);
        ASSERT_EQ(r.input_scales.size(), static_cast<size_t>(k));
        // Independent float64 errors of the returned tensors and of plain RTN.
        const double e_awq = OutputError(x, w1, r.weights[0], r.input_scales) +
                             OutputError(x, w2, r.weights[1], r.input_scales);
        const double e_rtn = OutputError(x, w1, Rtn(f, w1, group)) +
                             OutputError(x, w2, Rtn(f, w2, group));
        EXPECT_NEAR(r.error, e_awq, 1e-3 * e_awq);
        EXPECT_NEAR(r.rtn_error, e_rtn, 1e-3 * e_rtn);
        EXPECT_LT(e_awq, 0.9 * e_rtn) << FormatName(f) << " g" << group << " clip " << clip_grid;
        EXPECT_GT(r.alpha, 0.0f);
        EXPECT_LT(r.alpha, 1.0f);
        if (clip_grid == 0) EXPECT_FALSE(r.clipped);
        for (const QuantizedTensor& q : r.weights) {
          EXPECT_EQ(q.format(), f);
          EXPECT_EQ(q.state.block_size, group);
          EXPECT_NO_THROW(ValidateQuantizedTensor(q, Status::kInvalidArgument));
        }
        // Salient channels (large activations) get scales > 1, so finer weight resolution.
        EXPECT_GT(r.input_scales[0], r.input_scales[1]);
      }
    }
  }
}

TEST(Awq, ClipSearchNeverRaisesTheError) {
  const MatrixXfRm x = Activations(256, 64, 41), w = Weights(32, 64, 42);
  AwqOptions no_clip;
  no_clip.group_size = 32;
  no_clip.clip_grid = 0;
  AwqOptions clip = no_clip;
  clip.clip_grid = 20;
  const AwqResult a = AwqQuantize({View(w)}, View(x), no_clip);
  const AwqResult b = AwqQuantize({View(w)}, View(x), clip);
  EXPECT_EQ(a.alpha, b.alpha);  // the scale search does not depend on clipping
  EXPECT_LE(b.error, a.error);
}

TEST(Awq, SingleGridPointIsRoundToNearest) {
  // grid = 1 tries only α = 0 (s = 1); without clipping that is plain RTN, byte for byte.
  const MatrixXfRm x = Activations(64, 64, 51), w = Weights(16, 64, 52);
  AwqOptions o;
  o.group_size = 32;
  o.grid = 1;
  o.clip_grid = 0;
  const AwqResult r = AwqQuantize({View(w)}, View(x), o);
  const QuantizedTensor rtn = Rtn(Format::kInt4, w, 32);
  EXPECT_EQ(r.alpha, 0.0f);
  EXPECT_EQ(r.weights[0].data, rtn.data);
  EXPECT_EQ(r.weights[0].state.scales, rtn.state.scales);
  for (float s : r.input_scales) EXPECT_EQ(s, 1.0f);
  EXPECT_EQ(r.error, r.rtn_error);
}

TEST(Awq, RejectsBadInputs) {
  const MatrixXfRm x = Activations(16, 64, 1), w = Weights(4, 64, 2), w32 = Weights(4, 32, 3);
  auto expect = [](Status s, auto&& fn) {
    try {
      fn();
      ADD_FAILURE() << "no throw";
    } catch (const Error& e) {
      EXPECT_EQ(e.status(), s) << e.what();
    }
  };
  AwqOptions o;
  o.group_size = 32;
  expect(Status::kInvalidArgument, [&] { AwqQuantize({}, View(x), o); });
  expect(Status::kInvalidArgument, [&] { AwqQuantize({View(w), View(w32)}, View(x), o); });
  AwqOptions fp4 = o;
  fp4.format = Format::kFP4;
  expect(Status::kUnsupportedFormat, [&] { AwqQuantize({View(w)}, View(x), fp4); });
  AwqOptions grid0 = o;
  grid0.grid = 0;
  expect(Status::kInvalidArgument, [&] { AwqQuantize({View(w)}, View(x), grid0); });
  AwqOptions shrink = o;
  shrink.max_shrink = 1.0;
  expect(Status::kInvalidArgument, [&] { AwqQuantize({View(w)}, View(x), shrink); });
  AwqOptions clip = o;
  clip.clip_grid = -1;
  expect(Status::kInvalidArgument, [&] { AwqQuantize({View(w)}, View(x), clip); });
  AwqOptions bad_group = o;
  bad_group.group_size = 24;
  expect(Status::kInvalidArgument, [&] { AwqQuantize({View(w)}, View(x), bad_group); });
  MatrixXfRm bad_w = w;
  bad_w(1, 1) = std::numeric_limits<float>::quiet_NaN();
  expect(Status::kInvalidArgument, [&] { AwqQuantize({View(bad_w)}, View(x), o); });
}

}  // namespace
}  // namespace lowbit::calibrate
