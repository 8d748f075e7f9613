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
    double error = 0;
    for (size_t i = 0; i < ws.size(); ++i) {
      const MatrixRm scaled = ws[i].array().rowwise() * s.array();
      qs.push_back(Quantize(options.format,
                            ConstTensorView{scaled.data(), DType::kF32, {scaled.rows(), k}}, qopt));
      const std::vector<float> deq = DequantizeToF32(qs.back());
      const Eigen::Map<const MatrixRm> wq(deq.data(), scaled.rows(), k);
      error += (y_ref[i] - xs * wq.transpose()).cast<double>().squaredNorm() / t;
    }
    if (step == 0) best.rtn_error = error;
    if (error < best.error) {
      best.error = error;
      best.alpha = static_cast<float>(alpha);
      best.weights = std::move(qs);
      best.input_scales.assign(s.data(), s.data() + k);
    }
  }
  return best;
}

}  // namespace lowbit::calibrate
