// Public matrix ops: validation, then the backend. PLACEHOLDER reference backend (dequantize +
// Eigen) until the CPU kernels and the dispatch table land (issue 3).
#include "lowbit/ops.h"

#include <Eigen/Core>

#include "lowbit/quantize.h"

namespace lowbit {

struct PackedWeight::Impl {
  QuantizedTensor canonical;
  std::vector<float> dense;  // [N, K] float32
};

PackedWeight::PackedWeight() = default;
PackedWeight::~PackedWeight() = default;
PackedWeight::PackedWeight(PackedWeight&&) noexcept = default;
PackedWeight& PackedWeight::operator=(PackedWeight&&) noexcept = default;
PackedWeight::PackedWeight(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

static const PackedWeight::Impl& Checked(const PackedWeight& w) {
  Require(w.impl() != nullptr, Status::kInvalidState, "PackedWeight is empty (moved-from or default)");
  return *w.impl();
}
Format PackedWeight::format() const { return Checked(*this).canonical.state.format; }
int64_t PackedWeight::rows() const { return Checked(*this).canonical.state.shape[0]; }
int64_t PackedWeight::cols() const { return Checked(*this).canonical.state.shape[1]; }
const char* PackedWeight::backend() const { return "cpu"; }
int64_t PackedWeight::packed_bytes() const {
  return static_cast<int64_t>(Checked(*this).dense.size() * sizeof(float));
}

PackedWeight Pack(const QuantizedTensor& w, const std::string& backend) {
  ValidateQuantizedTensor(w);
  Require(w.state.shape.size() == 2, Status::kInvalidArgument,
          "Pack: weight must be 2-D [N, K], got " + ShapeToString(w.state.shape));
  Require(backend.empty() || backend == "cpu", Status::kUnsupportedBackend,
          "Pack: unknown backend '" + backend + "'");
  auto impl = std::make_unique<PackedWeight::Impl>();
  impl->canonical = w;
  impl->dense = DequantizeToF32(w);
  return PackedWeight(std::move(impl));
}

QuantizedTensor Unpack(const PackedWeight& w) { return Checked(w).canonical; }

void Matmul(const PackedWeight& w, const ConstTensorView& x, const TensorView& y, const float* bias,
            Context* ctx) {
  (void)ctx;
  const PackedWeight::Impl& p = Checked(w);
  const int64_t n = w.rows(), k = w.cols();
  const int64_t nx = ValidateView(x, "Matmul x");
  const int64_t ny = ValidateView(y, "Matmul y");
  Require(x.shape.back() == k, Status::kInvalidArgument,
          "Matmul: x " + ShapeToString(x.shape) + " last dim must equal K = " + std::to_string(k));
  const int64_t m = nx / k;
  Require(ny == m * n && y.shape.back() == n, Status::kInvalidArgument,
          "Matmul: y " + ShapeToString(y.shape) + " must be [" + std::to_string(m) + ", " +
              std::to_string(n) + "]");
  std::vector<float> xf(static_cast<size_t>(nx)), yf(static_cast<size_t>(ny));
  ToF32(x.data, x.dtype, nx, xf.data());
  using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Eigen::Map<const RowMajor> W(p.dense.data(), n, k);
  Eigen::Map<const RowMajor> X(xf.data(), m, k);
  Eigen::Map<RowMajor> Y(yf.data(), m, n);
  Y.noalias() = X * W.transpose();
  if (bias) Y.rowwise() += Eigen::Map<const Eigen::RowVectorXf>(bias, n);
  FromF32(yf.data(), ny, y.data, y.dtype);
}

void Matmul(const QuantizedTensor& w, const ConstTensorView& x, const TensorView& y, const float* bias,
            Context* ctx) {
  Matmul(Pack(w), x, y, bias, ctx);
}

void Gemv(const PackedWeight& w, const ConstTensorView& x, const TensorView& y, const float* bias,
          Context* ctx) {
  Require(NumElements(x.shape) == w.cols(), Status::kInvalidArgument,
          "Gemv: x must hold exactly K = " + std::to_string(w.cols()) + " elements (M = 1)");
  Matmul(w, x, y, bias, ctx);
}
void Gemm(const PackedWeight& w, const ConstTensorView& x, const TensorView& y, const float* bias,
          Context* ctx) {
  Matmul(w, x, y, bias, ctx);
}

}  // namespace lowbit
