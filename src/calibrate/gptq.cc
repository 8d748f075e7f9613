// GPTQ layer quantization to lowbit int4 (see include/lowbit/calibrate/gptq.h), Eigen float64.
#include "lowbit/calibrate/gptq.h"

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "lowbit/quantize.h"
#include "reference/reference.h"

namespace lowbit::calibrate {

namespace {

using MatrixRm = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Dampening retries: each multiplies the dampening by 10. Four steps take percdamp 0.01 to 100
// (H + 100·mean(diag)·I is positive definite for any PSD H up to float64 rounding).
constexpr int kMaxDampRetries = 4;
constexpr double kDampGrowth = 10.0;

std::vector<double> ToF64(const ConstTensorView& v, int64_t n, const char* what) {
  std::vector<float> f(static_cast<size_t>(n));
  ToF32(v.data, v.dtype, n, f.data());
  std::vector<double> d(f.begin(), f.end());
  for (int64_t i = 0; i < n; ++i) {
    Require(std::isfinite(d[i]), Status::kInvalidArgument,
            std::string(what) + ": element " + std::to_string(i) + " is not finite");
  }
  return d;
}

// One group's int4 parameters in the stored form (scale, zero; zero = 8 for symmetric).
struct GroupParams {
  float scale = 0;
  int32_t zero = LOWBIT_INT4_SYM_OFFSET;
};

GroupParams FindParams(Format format, const double* w, int64_t stride, int64_t count) {
  GroupParams p;
  if (format == Format::kInt4) {
    float amax = 0.0f;
    for (int64_t i = 0; i < count; ++i) {
      amax = std::max(amax, std::fabs(static_cast<float>(w[i * stride])));
    }
    p.scale = ref::Int4SymScale(amax);
    p.zero = LOWBIT_INT4_SYM_OFFSET;
  } else {
    float mn = static_cast<float>(w[0]), mx = mn;
    for (int64_t i = 0; i < count; ++i) {
      mn = std::min(mn, static_cast<float>(w[i * stride]));
      mx = std::max(mx, static_cast<float>(w[i * stride]));
    }
    uint8_t zero = 0;
    ref::AsymScaleZero(mn, mx, LOWBIT_INT4_ASYM_QMAX, &p.scale, &zero);
    p.zero = zero;
  }
  return p;
}

// The stored nibble of value w with the group's parameters, exactly as the reference codec
// (src/reference/integer.cc) rounds and clamps.
uint8_t Encode(Format format, const GroupParams& p, double w) {
  const float x = static_cast<float>(w);
  if (format == Format::kInt4) {
    return static_cast<uint8_t>(
        ref::RoundClamp(x, p.scale, -LOWBIT_INT4_SYM_QMAX, LOWBIT_INT4_SYM_QMAX) + p.zero);
  }
  const int32_t v =
      ref::RoundClamp(x, p.scale, -LOWBIT_INT4_ASYM_QMAX, LOWBIT_INT4_ASYM_QMAX) + p.zero;
  return static_cast<uint8_t>(std::clamp(v, 0, LOWBIT_INT4_ASYM_QMAX));
}

// The value the codec decodes from `code` (same float32 expression as Int4Codec / Int4AsymCodec::Decode).
double Decode(const GroupParams& p, uint8_t code) {
  return static_cast<double>(static_cast<float>(static_cast<int32_t>(code) - p.zero) * p.scale);
}

void PutNibble(std::vector<uint8_t>& packed, int64_t i, uint8_t v) {
  uint8_t& b = packed[static_cast<size_t>(i >> 1)];
  if ((i & 1) == 0) {
    b = static_cast<uint8_t>((b & 0x0F) | (v << LOWBIT_NIBBLE_FIRST_SHIFT));
  } else {
    b = static_cast<uint8_t>((b & 0xF0) | v);
  }
}

}  // namespace

HessianAccumulator::HessianAccumulator(int64_t k) : k_(k) {
  Require(k > 0, Status::kInvalidArgument,
          "HessianAccumulator: K must be positive, got " + std::to_string(k));
  xtx_.assign(static_cast<size_t>(k * k), 0.0);
}

void HessianAccumulator::Add(const ConstTensorView& x) {
  const int64_t n = ValidateView(x, "HessianAccumulator::Add x");
  Require(x.shape.back() == k_, Status::kInvalidArgument,
          "HessianAccumulator::Add: x " + ShapeToString(x.shape) + " last dim must be K = " +
              std::to_string(k_));
  const int64_t t = n / k_;
  const std::vector<double> xd = ToF64(x, n, "HessianAccumulator::Add x");
  Eigen::Map<const MatrixRm> X(xd.data(), t, k_);
  Eigen::Map<MatrixRm> S(xtx_.data(), k_, k_);
  S.noalias() += X.transpose() * X;
  rows_ += t;
}

std::vector<double> HessianAccumulator::Hessian() const {
  std::vector<double> h(xtx_.size(), 0.0);
  if (rows_ == 0) return h;
  const double f = 2.0 / static_cast<double>(rows_);
  for (size_t i = 0; i < h.size(); ++i) h[i] = f * xtx_[i];
  return h;
}

QuantizedTensor GptqQuantize(const ConstTensorView& w, const std::vector<double>& hessian,
                             const GptqOptions& options, GptqStats* stats) {
  const int64_t numel = ValidateView(w, "GptqQuantize w");
  Require(w.shape.size() == 2, Status::kInvalidArgument,
          "GptqQuantize: w must be 2-D [N, K], got " + ShapeToString(w.shape));
  Require(options.format == Format::kInt4 || options.format == Format::kInt4Asym,
          Status::kUnsupportedFormat,
          std::string("GptqQuantize: format must be int4 or int4_asym, got ") +
              FormatName(options.format));
  Require(std::isfinite(options.percdamp) && options.percdamp > 0, Status::kInvalidArgument,
          "GptqQuantize: percdamp must be positive, got " + std::to_string(options.percdamp));
  Require(options.block_size > 0, Status::kInvalidArgument,
          "GptqQuantize: block_size must be positive, got " + std::to_string(options.block_size));
  const int64_t n = w.shape[0], k = w.shape[1];
  Require(static_cast<int64_t>(hessian.size()) == k * k, Status::kInvalidArgument,
          "GptqQuantize: hessian has " + std::to_string(hessian.size()) +
              " elements, expected K*K = " + std::to_string(k * k));
  for (size_t i = 0; i < hessian.size(); ++i) {
    Require(std::isfinite(hessian[i]), Status::kInvalidArgument,
            "GptqQuantize: hessian element " + std::to_string(i) + " is not finite");
  }

  // Round-to-nearest quantization validates the group size and lays out a state of the right
  // shape (scales, zero points, payload with the odd-count padding); GPTQ overwrites the values.
  QuantizeOptions qopt;
  qopt.block_size = options.group_size;
  QuantizedTensor out = Quantize(options.format, w, qopt);
  const int64_t group = out.state.block_size;
  const int64_t groups_per_row = (k + group - 1) / group;

  std::vector<double> wd = ToF64(w, numel, "GptqQuantize w");
  MatrixRm W = Eigen::Map<const MatrixRm>(wd.data(), n, k);
  MatrixRm H = Eigen::Map<const MatrixRm>(hessian.data(), k, k);

  // Dead inputs (always zero): their weights cannot matter; fix H so it stays invertible.
  int64_t dead = 0;
  for (int64_t c = 0; c < k; ++c) {
    if (H(c, c) == 0.0) {
      H(c, c) = 1.0;
      W.col(c).setZero();
      ++dead;
    }
  }

  // perm[j] = original column quantized j-th.
  std::vector<int64_t> perm(static_cast<size_t>(k));
  std::iota(perm.begin(), perm.end(), int64_t{0});
  std::vector<GroupParams> params(static_cast<size_t>(n * groups_per_row));
  if (options.act_order) {
    std::stable_sort(perm.begin(), perm.end(),
                     [&](int64_t a, int64_t b) { return H(a, a) > H(b, b); });
    // Static groups: parameters from the original weights of each contiguous group.
    for (int64_t r = 0; r < n; ++r) {
      for (int64_t g = 0; g < groups_per_row; ++g) {
        const int64_t begin = g * group;
        params[r * groups_per_row + g] =
            FindParams(options.format, &W(r, begin), 1, std::min(group, k - begin));
      }
    }
    MatrixRm Wp(n, k), Hp(k, k);
    for (int64_t j = 0; j < k; ++j) {
      Wp.col(j) = W.col(perm[j]);
      for (int64_t i = 0; i < k; ++i) Hp(i, j) = H(perm[i], perm[j]);
    }
    W.swap(Wp);
    H.swap(Hp);
  }

  // U = upper Cholesky factor of (H + damp·I)⁻¹.
  const double mean_diag = H.diagonal().mean();
  double damp = options.percdamp * mean_diag;
  MatrixRm U;
  for (int attempt = 0;; ++attempt) {
    MatrixRm Hd = H;
    Hd.diagonal().array() += damp;
    Eigen::LLT<MatrixRm> llt(Hd);
    bool ok = llt.info() == Eigen::Success;
    if (ok) {
      const MatrixRm Hinv = llt.solve(MatrixRm::Identity(k, k));
      Eigen::LLT<MatrixRm> llt_inv(Hinv);
      ok = llt_inv.info() == Eigen::Success;
      if (ok) U = llt_inv.matrixU();
    }
    if (ok) break;
    Require(attempt < kMaxDampRetries, Status::kInvalidArgument,
            "GptqQuantize: hessian is not positive definite even with dampening " +
                std::to_string(damp));
    damp *= kDampGrowth;
  }

  // Lazy batches aligned to the groups, so that a group's parameters are computed from weights
  // that already received every update from the columns before it.
  int64_t block = options.block_size;
  if (!options.act_order && block % group != 0) block = (block / group + 1) * group;

  double proxy_loss = 0;
  std::vector<uint8_t> codes(static_cast<size_t>(n * k));  // permuted column order
  MatrixRm err(n, block);
  for (int64_t i1 = 0; i1 < k; i1 += block) {
    const int64_t i2 = std::min(i1 + block, k);
    for (int64_t j = i1; j < i2; ++j) {
      const int64_t col = perm[j];
      const int64_t g = col / group;
      if (!options.act_order && col % group == 0) {
        const int64_t count = std::min(group, k - col);
        for (int64_t r = 0; r < n; ++r) {
          params[r * groups_per_row + g] = FindParams(options.format, &W(r, j), 1, count);
        }
      }
      const double d = U(j, j);
      for (int64_t r = 0; r < n; ++r) {
        const GroupParams& p = params[r * groups_per_row + g];
        const uint8_t code = Encode(options.format, p, W(r, j));
        codes[r * k + j] = code;
        const double e = W(r, j) - Decode(p, code);
        proxy_loss += 0.5 * e * e / (d * d);
        err(r, j - i1) = e / d;
      }
      // Spread this column's error over the rest of the block now.
      W.block(0, j + 1, n, i2 - j - 1).noalias() -=
          err.col(j - i1) * U.block(j, j + 1, 1, i2 - j - 1);
    }
    // And over the columns after the block, once per block.
    if (i2 < k) {
      W.block(0, i2, n, k - i2).noalias() -=
          err.leftCols(i2 - i1) * U.block(i1, i2, i2 - i1, k - i2);
    }
  }

  for (int64_t r = 0; r < n; ++r) {
    for (int64_t g = 0; g < groups_per_row; ++g) {
      const GroupParams& p = params[r * groups_per_row + g];
      out.state.scales[r * groups_per_row + g] = p.scale;
      if (options.format == Format::kInt4Asym) {
        out.state.zero_points[r * groups_per_row + g] = static_cast<uint8_t>(p.zero);
      }
    }
    for (int64_t j = 0; j < k; ++j) PutNibble(out.data, r * k + perm[j], codes[r * k + j]);
  }
  ValidateQuantizedTensor(out, Status::kInternal);
  if (stats != nullptr) {
    stats->damp = damp;
    stats->proxy_loss = proxy_loss;
    stats->dead_columns = dead;
  }
  return out;
}

QuantizedTensor GptqQuantize(const ConstTensorView& w, const ConstTensorView& x,
                             const GptqOptions& options, GptqStats* stats) {
  ValidateView(w, "GptqQuantize w");
  Require(w.shape.size() == 2, Status::kInvalidArgument,
          "GptqQuantize: w must be 2-D [N, K], got " + ShapeToString(w.shape));
  HessianAccumulator acc(w.shape[1]);
  acc.Add(x);
  return GptqQuantize(w, acc.Hessian(), options, stats);
}

}  // namespace lowbit::calibrate
