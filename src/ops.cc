// Public matrix ops: validate arguments, pick the backend (src/backend.h), call its entries and
// apply the documented defaults of optional entries.
#include "lowbit/ops.h"

#include <string>

#include "backend.h"
#include "lowbit/quantize.h"

namespace lowbit {

struct PackedWeight::Impl {
  const Backend* backend = nullptr;
  std::unique_ptr<BackendPacked> packed;
  int format_version = LOWBIT_FORMAT_VERSION;
};

PackedWeight::PackedWeight() = default;
PackedWeight::~PackedWeight() = default;
PackedWeight::PackedWeight(PackedWeight&&) noexcept = default;
PackedWeight& PackedWeight::operator=(PackedWeight&&) noexcept = default;
PackedWeight::PackedWeight(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

namespace {

const PackedWeight::Impl& Checked(const PackedWeight& w) {
  Require(w.impl() != nullptr && w.impl()->packed != nullptr, Status::kInvalidState,
          "PackedWeight is empty (moved-from or default-constructed)");
  Require(w.impl()->format_version == LOWBIT_FORMAT_VERSION, Status::kInvalidState, [&] {
    return "PackedWeight has format version " + std::to_string(w.impl()->format_version) +
           ", this library reads " + std::to_string(LOWBIT_FORMAT_VERSION);
  });
  return *w.impl();
}

// Throws naming the backend and the reason when it cannot run (format, op, activation).
void RequireSupport(const Backend& b, Format format, BackendOp op, DType activation,
                    const MatmulOptions& options, const char* what) {
  const std::string reason = b.supports(format, op, activation, options);
  Require(reason.empty(), Status::kUnsupportedFormat, [&] {
    return std::string(what) + ": backend '" + b.name + "' cannot run format " +
           FormatName(format) + " with " + DTypeName(activation) + " activations: " + reason;
  });
}

}  // namespace

Format PackedWeight::format() const { return Checked(*this).packed->format; }
int64_t PackedWeight::rows() const { return Checked(*this).packed->rows; }
int64_t PackedWeight::cols() const { return Checked(*this).packed->cols; }
const char* PackedWeight::backend() const { return Checked(*this).backend->name; }
int64_t PackedWeight::packed_bytes() const { return Checked(*this).packed->packed_bytes; }

PackedWeight Pack(const QuantizedTensor& w, const std::string& backend) {
  ValidateQuantizedTensor(w);
  Require(w.state.shape.size() == 2, Status::kInvalidArgument,
          "Pack: weight must be 2-D [N, K], got " + ShapeToString(w.state.shape));
  const Backend& b = FindBackend(backend);
  RequireSupport(b, w.state.format, BackendOp::kPack, DType::kF32, MatmulOptions{}, "Pack");
  auto impl = std::make_unique<PackedWeight::Impl>();
  impl->backend = &b;
  impl->packed = b.pack(w);
  return PackedWeight(std::move(impl));
}

QuantizedTensor Unpack(const PackedWeight& w) {
  const PackedWeight::Impl& p = Checked(w);
  return p.backend->unpack(*p.packed);
}

void Matmul(const PackedWeight& w, const ConstTensorView& x, const TensorView& y,
            const MatmulOptions& options, const float* bias, Context* ctx) {
  const PackedWeight::Impl& p = Checked(w);
  const int64_t n = p.packed->rows, k = p.packed->cols;
  const int64_t nx = ValidateView(x, "Matmul x");
  const int64_t ny = ValidateView(y, "Matmul y");
  Require(x.shape.size() <= 2, Status::kInvalidArgument,
          [&] { return "Matmul: x must be [M, K] or [K], got " + ShapeToString(x.shape); });
  Require(x.shape.back() == k, Status::kInvalidArgument, [&] {
    return "Matmul: x " + ShapeToString(x.shape) + " last dim must equal K = " +
           std::to_string(k);
  });
  const int64_t m = nx / k;
  // y must be [N] for x [K], [M, N] for x [M, K] (compared in place: no Shape is built).
  const bool y_exact = (x.shape.size() == 1)
                           ? (y.shape.size() == 1 && y.shape[0] == n)
                           : (y.shape.size() == 2 && y.shape[0] == m && y.shape[1] == n);
  Require(y_exact || (ny == n && m == 1 && y.shape.back() == n), Status::kInvalidArgument, [&] {
    const Shape expected = (x.shape.size() == 1) ? Shape{n} : Shape{m, n};
    return "Matmul: y " + ShapeToString(y.shape) + " must be " + ShapeToString(expected) +
           " for x " + ShapeToString(x.shape) + " and W [" + std::to_string(n) + ", " +
           std::to_string(k) + "]";
  });
  Require(x.data != y.data, Status::kInvalidArgument, "Matmul: y must not alias x");
  RequireSupport(*p.backend, p.packed->format, BackendOp::kMatmul, x.dtype, options, "Matmul");
  MatmulArgs args;
  args.m = m;
  args.x = x.data;
  args.x_dtype = x.dtype;
  args.y = y.data;
  args.y_dtype = y.dtype;
  args.bias = bias;
  args.options = options;
  Context& c = ctx ? *ctx : DefaultContext();
  if (m == 1 && p.backend->gemv != nullptr) {
    p.backend->gemv(*p.packed, args, c);
  } else {
    p.backend->gemm(*p.packed, args, c);
  }
  if (p.backend->sync != nullptr) p.backend->sync();
}

void Matmul(const PackedWeight& w, const ConstTensorView& x, const TensorView& y, const float* bias,
            Context* ctx) {
  Matmul(w, x, y, MatmulOptions{}, bias, ctx);
}

void Matmul(const QuantizedTensor& w, const ConstTensorView& x, const TensorView& y, const float* bias,
            Context* ctx) {
  Matmul(Pack(w), x, y, MatmulOptions{}, bias, ctx);
}

void Gemv(const PackedWeight& w, const ConstTensorView& x, const TensorView& y, const float* bias,
          Context* ctx) {
  Require(NumElements(x.shape) == w.cols(), Status::kInvalidArgument, [&] {
    return "Gemv: x " + ShapeToString(x.shape) + " must hold exactly K = " +
           std::to_string(w.cols()) + " elements (M = 1)";
  });
  Matmul(w, x, y, MatmulOptions{}, bias, ctx);
}

void Gemm(const PackedWeight& w, const ConstTensorView& x, const TensorView& y, const float* bias,
          Context* ctx) {
  Matmul(w, x, y, MatmulOptions{}, bias, ctx);
}

}  // namespace lowbit
