// AWQ scale search and int4 quantization (see include/lowbit/calibrate/awq.h).
#include "lowbit/calibrate/awq.h"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "lowbit/quantize.h"

namespace lowbit::calibrate {

namespace {

using MatrixRm = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// AWQ clamps s_c = mean|x_c|^α from below so channels that are (almost) never active do not get
// a near-zero scale, which would blow up x / s.
constexpr double kMinScale = 1e-4;

MatrixRm ToMatrix(const ConstTensorView& v, int64_t rows, int64_t cols, const char* what) {
  MatrixRm m(rows, cols);
  ToF32(v.data, v.dtype, rows * cols, m.data());
  Require(m.allFinite(), Status::kInvalidArgument, std::string(what) + " has non-finite values");
  return m;
}

// Output error Σ ||Y_ref − Xs Qᵀ||² / T of quantized tensors against the float outputs.
double OutputError(const std::vector<QuantizedTensor>& qs, const std::vector<MatrixRm>& y_ref,
                   const MatrixRm& xs) {
  double error = 0;
  for (size_t i = 0; i < qs.size(); ++i) {
    const std::vector<float> deq = DequantizeToF32(qs[i]);
    const Eigen::Map<const MatrixRm> wq(deq.data(), qs[i].shape()[0], xs.cols());
    error += (y_ref[i] - xs * wq.transpose()).cast<double>().squaredNorm() / xs.rows();
  }
  return error;
}

// AWQ's auto-clip for one scaled weight w: [N, K] whose input is xs: [T, K]. For every row r and
// group g, picks the shrink that minimises d_gᵀ G_g d_g, d_g = w_rg − Q(clip(w_rg)), G_g =
// xs_gᵀ xs_g / T (the group's share of the output error, cross-group terms ignored as in AWQ).
// Groups quantize independently, so quantizing the whole matrix clipped at one shrink gives
// every group's candidate at once. Returns the quantized clipped matrix.
QuantizedTensor ClipSearch(const MatrixRm& w, const MatrixRm& xs, Format format,
                           const QuantizeOptions& qopt, int64_t group, int clip_grid,
                           double max_shrink) {
  const int64_t n = w.rows(), k = w.cols(), t = xs.rows();
  const int64_t groups = (k + group - 1) / group;
  std::vector<Eigen::MatrixXd> gram;
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t b = g * group, len = std::min(group, k - b);
    const Eigen::MatrixXd xg = xs.middleCols(b, len).cast<double>();
    gram.push_back(xg.transpose() * xg / static_cast<double>(t));
  }
  Eigen::MatrixXd best_err = Eigen::MatrixXd::Constant(n, groups,
                                                       std::numeric_limits<double>::infinity());
  MatrixRm best_w = w;
  const int steps = std::max(1, static_cast<int>(max_shrink * clip_grid));
  for (int step = 0; step < steps; ++step) {
    const float shrink = 1.0f - static_cast<float>(step) / clip_grid;
    MatrixRm clipped(n, k);
    for (int64_t r = 0; r < n; ++r) {
      for (int64_t g = 0; g < groups; ++g) {
        const int64_t b = g * group, len = std::min(group, k - b);
        const float m = w.row(r).segment(b, len).cwiseAbs().maxCoeff() * shrink;
        clipped.row(r).segment(b, len) = w.row(r).segment(b, len).cwiseMax(-m).cwiseMin(m);
      }
    }
    const QuantizedTensor q =
        Quantize(format, ConstTensorView{clipped.data(), DType::kF32, {n, k}}, qopt);
    const std::vector<float> deq = DequantizeToF32(q);
    const Eigen::Map<const MatrixRm> wq(deq.data(), n, k);
    for (int64_t r = 0; r < n; ++r) {
      for (int64_t g = 0; g < groups; ++g) {
        const int64_t b = g * group, len = std::min(group, k - b);
        const Eigen::VectorXd d =
            (w.row(r).segment(b, len) - wq.row(r).segment(b, len)).cast<double>().transpose();
        const double e = d.dot(gram[g] * d);
        if (e < best_err(r, g)) {
          best_err(r, g) = e;
          best_w.row(r).segment(b, len) = clipped.row(r).segment(b, len);
        }
      }
    }
  }
  return Quantize(format, ConstTensorView{best_w.data(), DType::kF32, {n, k}}, qopt);
}

}  // namespace

AwqResult AwqQuantize(const std::vector<ConstTensorView>& weights, const ConstTensorView& x,
                      const AwqOptions& options) {
  Require(!weights.empty(), Status::kInvalidArgument, "AwqQuantize: no weights given");
  Require(options.format == Format::kInt4 || options.format == Format::kInt4Asym,
          Status::kUnsupportedFormat,
          std::string("AwqQuantize: format must be int4 or int4_asym, got ") +
              FormatName(options.format));
  Require(options.grid >= 1, Status::kInvalidArgument,
          "AwqQuantize: grid must be >= 1, got " + std::to_string(options.grid));
  Require(options.clip_grid >= 0, Status::kInvalidArgument,
          "AwqQuantize: clip_grid must be >= 0, got " + std::to_string(options.clip_grid));
  Require(options.max_shrink >= 0 && options.max_shrink < 1, Status::kInvalidArgument,
          "AwqQuantize: max_shrink must be in [0, 1), got " +
              std::to_string(options.max_shrink));
  const int64_t nx = ValidateView(x, "AwqQuantize x");
  const int64_t k = x.shape.back();
  const int64_t t = nx / k;
  std::vector<MatrixRm> ws;
  for (size_t i = 0; i < weights.size(); ++i) {
    const std::string what = "AwqQuantize weights[" + std::to_string(i) + "]";
    ValidateView(weights[i], what.c_str());
    Require(weights[i].shape.size() == 2 && weights[i].shape[1] == k, Status::kInvalidArgument,
            what + " " + ShapeToString(weights[i].shape) + " must be 2-D [N, K] with K = " +
                std::to_string(k) + " (the last dim of x)");
    ws.push_back(ToMatrix(weights[i], weights[i].shape[0], k, what.c_str()));
  }
  const MatrixRm X = ToMatrix(x, t, k, "AwqQuantize x");

  // Per-input-channel mean magnitude, and the float output each layer should reproduce.
  const Eigen::VectorXd mean_abs = X.cast<double>().cwiseAbs().colwise().mean().transpose();
  std::vector<MatrixRm> y_ref;
  for (const MatrixRm& w : ws) y_ref.push_back(X * w.transpose());

  QuantizeOptions qopt;
  qopt.block_size = options.group_size;
  AwqResult best;
  best.error = std::numeric_limits<double>::infinity();
  for (int step = 0; step < options.grid; ++step) {
    const double alpha = static_cast<double>(step) / options.grid;
    Eigen::VectorXd sd(k);
    for (int64_t c = 0; c < k; ++c) sd[c] = std::max(std::pow(mean_abs[c], alpha), kMinScale);
    sd /= std::sqrt(sd.maxCoeff() * sd.minCoeff());
    const Eigen::RowVectorXf s = sd.cast<float>().transpose();
    const MatrixRm xs = X.array().rowwise() / s.array();

    std::vector<QuantizedTensor> qs;
    for (const MatrixRm& w : ws) {
      const MatrixRm scaled = w.array().rowwise() * s.array();
      qs.push_back(Quantize(options.format,
                            ConstTensorView{scaled.data(), DType::kF32, {scaled.rows(), k}}, qopt));
    }
    const double error = OutputError(qs, y_ref, xs);
    if (step == 0) best.rtn_error = error;
    if (error < best.error) {
      best.error = error;
      best.alpha = static_cast<float>(alpha);
      best.weights = std::move(qs);
      best.input_scales.assign(s.data(), s.data() + k);
    }
  }

  if (options.clip_grid > 0) {
    const Eigen::Map<const Eigen::RowVectorXf> s(best.input_scales.data(), k);
    const MatrixRm xs = X.array().rowwise() / s.array();
    const int64_t group = best.weights[0].state.block_size;
    std::vector<QuantizedTensor> qs;
    for (const MatrixRm& w : ws) {
      const MatrixRm scaled = w.array().rowwise() * s.array();
      qs.push_back(ClipSearch(scaled, xs, options.format, qopt, group, options.clip_grid,
                              options.max_shrink));
    }
    const double error = OutputError(qs, y_ref, xs);
    if (error < best.error) {
      best.error = error;
      best.clipped = true;
      best.weights = std::move(qs);
    }
  }
  return best;
}

}  // namespace lowbit::calibrate
