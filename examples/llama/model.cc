// The Llama-2 forward pass of the example (see model.h): checkpoint loading, model building,
// and the batched forward with KV cache.
#include "examples/llama/model.h"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstring>

#include "examples/llama/data.h"
#include "lowbit/quantize.h"

namespace lowbit::llama {

namespace {

constexpr int kHeaderInts = 7;
constexpr float kRmsNormEps = 1e-5f;   // Llama-2's RMSNorm epsilon
constexpr double kRopeTheta = 10000.0;  // RoPE base frequency
// Query rows per attention block: large enough for efficient Eigen products, small enough that
// the masked (future) part of a block costs little during a 512-token prefill.
constexpr int32_t kQueryChunk = 64;

// y = x / rms(x) * weight over `dim` elements, per row of a [n, dim] batch.
void RmsNorm(const float* x, const float* weight, int32_t n, int32_t dim, float* y) {
  for (int32_t t = 0; t < n; ++t) {
    const float* xr = x + static_cast<int64_t>(t) * dim;
    float* yr = y + static_cast<int64_t>(t) * dim;
    double ss = 0;
    for (int32_t i = 0; i < dim; ++i) ss += static_cast<double>(xr[i]) * xr[i];
    const float inv = static_cast<float>(1.0 / std::sqrt(ss / dim + kRmsNormEps));
    for (int32_t i = 0; i < dim; ++i) yr[i] = weight[i] * (inv * xr[i]);
  }
}

}  // namespace

const char* LinearName(Linear l) {
  static constexpr const char* kNames[kNumLinears] = {"wq", "wk", "wv", "wo", "w1", "w3", "w2"};
  return kNames[static_cast<int>(l)];
}

Shape LinearShape(const Config& c, Linear l) {
  switch (l) {
    case Linear::kWq: return {c.dim, c.dim};
    case Linear::kWk:
    case Linear::kWv: return {c.kv_dim(), c.dim};
    case Linear::kWo: return {c.dim, c.dim};
    case Linear::kW1:
    case Linear::kW3: return {c.hidden_dim, c.dim};
    case Linear::kW2: return {c.dim, c.hidden_dim};
  }
  throw Error(Status::kInvalidArgument, "unknown linear " + std::to_string(static_cast<int>(l)));
}

ConstTensorView FloatWeights::LinearView(int layer, Linear l) const {
  Require(layer >= 0 && layer < config.n_layers, Status::kInvalidArgument,
          "layer " + std::to_string(layer) + " out of range");
  return {layers[layer].linear[static_cast<int>(l)].data(), DType::kF32, LinearShape(config, l)};
}

FloatWeights LoadLlama2c(const std::string& path) {
  const std::string bytes = ReadFile(path);
  FloatWeights w;
  Config& c = w.config;
  Require(bytes.size() >= kHeaderInts * 4, Status::kCorruptData, path + ": shorter than header");
  int32_t header[kHeaderInts];
  std::memcpy(header, bytes.data(), sizeof(header));
  c = Config{header[0], header[1], header[2], header[3], header[4], header[5], header[6]};
  Require(c.vocab_size > 0, Status::kCorruptData,
          path + ": untied classifier (negative vocab_size) is not supported by this example");
  Require(c.dim > 0 && c.hidden_dim > 0 && c.n_layers > 0 && c.n_heads > 0 && c.n_kv_heads > 0 &&
              c.seq_len > 0 && c.dim % c.n_heads == 0 && c.n_heads % c.n_kv_heads == 0 &&
              c.head_size() % 2 == 0 && c.dim <= 65536 && c.hidden_dim <= 262144 &&
              c.n_layers <= 1024 && c.vocab_size <= 1 << 20 && c.seq_len <= 1 << 20,
          Status::kCorruptData, path + ": implausible header");

  const int64_t dim = c.dim, hidden = c.hidden_dim, layers = c.n_layers, kv = c.kv_dim();
  const int64_t rope_floats = 2 * static_cast<int64_t>(c.seq_len) * (c.head_size() / 2);
  const int64_t floats = c.vocab_size * dim + layers * (2 * dim + 2 * dim * dim + 2 * kv * dim +
                                                        3 * hidden * dim) +
                         dim + rope_floats;
  Require(static_cast<int64_t>(bytes.size()) == kHeaderInts * 4 + floats * 4,
          Status::kCorruptData,
          path + ": " + std::to_string(bytes.size()) + " bytes, expected " +
              std::to_string(kHeaderInts * 4 + floats * 4) + " for this header");

  const char* p = bytes.data() + kHeaderInts * 4;
  auto take = [&p](std::vector<float>& dst, int64_t n) {
    dst.resize(static_cast<size_t>(n));
    std::memcpy(dst.data(), p, static_cast<size_t>(n) * 4);
    p += n * 4;
  };
  // Tensors of one kind are stored for all layers together.
  w.layers.resize(static_cast<size_t>(layers));
  take(w.token_embedding, c.vocab_size * dim);
  for (auto& l : w.layers) take(l.rms_att, dim);
  for (Linear kind : {Linear::kWq, Linear::kWk, Linear::kWv, Linear::kWo}) {
    const int64_t n = NumElements(LinearShape(c, kind));
    for (auto& l : w.layers) take(l.linear[static_cast<int>(kind)], n);
  }
  for (auto& l : w.layers) take(l.rms_ffn, dim);
  for (Linear kind : {Linear::kW1, Linear::kW2, Linear::kW3}) {
    const int64_t n = NumElements(LinearShape(c, kind));
    for (auto& l : w.layers) take(l.linear[static_cast<int>(kind)], n);
  }
  take(w.rms_final, dim);  // the legacy RoPE tables that follow are recomputed, not read
  return w;
}

void Model::SetLinear(int layer, Linear l, const QuantizedTensor& q) {
  Require(q.shape() == LinearShape(config, l), Status::kInvalidArgument,
          std::string("SetLinear: ") + LinearName(l) + " must be " +
              ShapeToString(LinearShape(config, l)) + ", got " + ShapeToString(q.shape()));
  layers[layer].linear[static_cast<int>(l)] = Pack(q);
  layers[layer].linear_bytes[static_cast<int>(l)] = GetQuantInfo(q).total_bytes;
}

int64_t Model::LinearWeightBytes() const {
  int64_t bytes = 0;
  for (const Layer& layer : layers) {
    for (int i = 0; i < kNumLinears; ++i) {
      bytes += layer.linear_bytes[i] +
               static_cast<int64_t>(layer.input_scale[i].size() * sizeof(float));
    }
  }
  return bytes;
}

int64_t Model::LinearWeightCount() const {
  int64_t count = 0;
  for (Linear l : kAllLinears) count += NumElements(LinearShape(config, l));
  return count * config.n_layers;
}

Model BuildModel(const FloatWeights& w, const LinearQuantizer& quantize) {
  Model m;
  m.config = w.config;
  m.token_embedding = w.token_embedding;
  m.rms_final = w.rms_final;
  m.classifier = Pack(Quantize(
      Format::kF32, {w.token_embedding.data(), DType::kF32, {w.config.vocab_size, w.config.dim}}));
  m.layers.resize(w.layers.size());
  for (int i = 0; i < w.config.n_layers; ++i) {
    m.layers[i].rms_att = w.layers[i].rms_att;
    m.layers[i].rms_ffn = w.layers[i].rms_ffn;
    for (Linear l : kAllLinears) m.SetLinear(i, l, quantize(i, l, w.LinearView(i, l)));
  }
  return m;
}

Session::Session(const Model& model, Context* ctx) : model_(model), ctx_(ctx) {
  const Config& c = model.config;
  const size_t cache = static_cast<size_t>(c.n_layers) * c.seq_len * c.kv_dim();
  key_cache_.assign(cache, 0.0f);
  value_cache_.assign(cache, 0.0f);
  scores_.resize(static_cast<size_t>(kQueryChunk) * c.seq_len);  // one attention block
  const int32_t half = c.head_size() / 2;
  rope_cos_.resize(static_cast<size_t>(c.seq_len) * half);
  rope_sin_.resize(rope_cos_.size());
  for (int32_t pos = 0; pos < c.seq_len; ++pos) {
    for (int32_t i = 0; i < half; ++i) {
      const double freq = std::pow(kRopeTheta, -2.0 * i / c.head_size());
      rope_cos_[pos * half + i] = static_cast<float>(std::cos(pos * freq));
      rope_sin_[pos * half + i] = static_cast<float>(std::sin(pos * freq));
    }
  }
}

void Session::RunLinear(int layer, Linear l, const float* x, int32_t n, float* y,
                        const LinearObserver* observer) {
  const Model::Layer& ml = model_.layers[layer];
  const PackedWeight& w = ml.linear[static_cast<int>(l)];
  const std::vector<float>& s = ml.input_scale[static_cast<int>(l)];
  const int64_t k = w.cols();
  if (observer != nullptr) (*observer)(layer, l, x, n, k);
  if (!s.empty()) {
    scaled_.resize(static_cast<size_t>(n * k));
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t i = 0; i < k; ++i) scaled_[t * k + i] = x[t * k + i] / s[i];
    }
    x = scaled_.data();
  }
  Matmul(w, ConstTensorView{x, DType::kF32, {n, k}}, TensorView{y, DType::kF32, {n, w.rows()}},
         nullptr, ctx_);
}

void Session::Attention(int layer, int32_t n) {
  const Config& c = model_.config;
  const int32_t hs = c.head_size(), half = hs / 2, kv_dim = c.kv_dim();
  const int32_t group = c.n_heads / c.n_kv_heads;  // query heads per KV head
  const float inv_sqrt = 1.0f / std::sqrt(static_cast<float>(hs));
  float* kc = key_cache_.data() + static_cast<int64_t>(layer) * c.seq_len * kv_dim;
  float* vc = value_cache_.data() + static_cast<int64_t>(layer) * c.seq_len * kv_dim;

  // RoPE on q and k: rotate pairs (2i, 2i+1) inside each head by pos · 10000^(-2i/head_size).
  auto rotate = [&](float* v, int32_t width, int32_t pos) {
    for (int32_t j = 0; j < width; j += 2) {
      const int32_t i = (j % hs) / 2;
      const float cr = rope_cos_[pos * half + i], ci = rope_sin_[pos * half + i];
      const float a = v[j], b = v[j + 1];
      v[j] = a * cr - b * ci;
      v[j + 1] = a * ci + b * cr;
    }
  };
  for (int32_t t = 0; t < n; ++t) {
    const int32_t pos = pos_ + t;
    rotate(&q_[static_cast<int64_t>(t) * c.dim], c.dim, pos);
    rotate(&k_[static_cast<int64_t>(t) * kv_dim], kv_dim, pos);
    std::copy_n(&k_[static_cast<int64_t>(t) * kv_dim], kv_dim, kc + static_cast<int64_t>(pos) * kv_dim);
    std::copy_n(&v_[static_cast<int64_t>(t) * kv_dim], kv_dim, vc + static_cast<int64_t>(pos) * kv_dim);
  }
  // Causal softmax attention; query head h reads KV head h / group. Queries run in chunks of
  // kQueryChunk rows as Eigen products (scores = Q Kᵀ, out = P V) against the keys the chunk's
  // last row can see; each row's entries past its own position are masked to probability 0.
  using MatrixRm = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Strided = Eigen::Map<const MatrixRm, 0, Eigen::OuterStride<>>;
  using StridedOut = Eigen::Map<MatrixRm, 0, Eigen::OuterStride<>>;
  for (int32_t t0 = 0; t0 < n; t0 += kQueryChunk) {
    const int32_t rows = std::min(kQueryChunk, n - t0);
    const int32_t keys = pos_ + t0 + rows;  // keys visible to the chunk's last row
    Eigen::Map<MatrixRm> p(scores_.data(), rows, keys);
    for (int32_t h = 0; h < c.n_heads; ++h) {
      const int32_t kv_off = (h / group) * hs;
      const Strided q(&q_[static_cast<int64_t>(t0) * c.dim + h * hs], rows, hs,
                      Eigen::OuterStride<>(c.dim));
      const Strided k(kc + kv_off, keys, hs, Eigen::OuterStride<>(kv_dim));
      const Strided v(vc + kv_off, keys, hs, Eigen::OuterStride<>(kv_dim));
      p.noalias() = (q * k.transpose()) * inv_sqrt;
      for (int32_t r = 0; r < rows; ++r) {
        const int32_t visible = pos_ + t0 + r + 1;
        auto row = p.row(r).head(visible).array();
        row = (row - row.maxCoeff()).exp();
        row /= row.sum();
        p.row(r).tail(keys - visible).setZero();
      }
      StridedOut out(&att_[static_cast<int64_t>(t0) * c.dim + h * hs], rows, hs,
                     Eigen::OuterStride<>(c.dim));
      out.noalias() = p * v;
    }
  }
}

void Session::Forward(const int32_t* tokens, int32_t n, float* logits,
                      const LinearObserver* observer, int32_t num_layers) {
  const Config& c = model_.config;
  Require(num_layers < 0 || (num_layers <= c.n_layers && logits == nullptr),
          Status::kInvalidArgument,
          "Forward: num_layers " + std::to_string(num_layers) +
              " must be <= n_layers and needs logits == nullptr");
  const int32_t run_layers = num_layers < 0 ? c.n_layers : num_layers;
  Require(n > 0 && n <= c.seq_len - pos_, Status::kInvalidArgument,
          "Forward: " + std::to_string(n) + " tokens at position " + std::to_string(pos_) +
              " do not fit seq_len " + std::to_string(c.seq_len));
  const int64_t dim = c.dim, kv = c.kv_dim(), hidden = c.hidden_dim;
  x_.resize(n * dim);
  h_.resize(n * dim);
  q_.resize(n * dim);
  att_.resize(n * dim);
  o_.resize(n * dim);
  k_.resize(n * kv);
  v_.resize(n * kv);
  gate_.resize(n * hidden);
  up_.resize(n * hidden);
  for (int32_t t = 0; t < n; ++t) {
    Require(tokens[t] >= 0 && tokens[t] < c.vocab_size, Status::kInvalidArgument,
            "Forward: token id " + std::to_string(tokens[t]) + " out of range");
    std::copy_n(&model_.token_embedding[tokens[t] * dim], dim, &x_[t * dim]);
  }
  for (int layer = 0; layer < run_layers; ++layer) {
    const Model::Layer& ml = model_.layers[layer];
    RmsNorm(x_.data(), ml.rms_att.data(), n, c.dim, h_.data());
    RunLinear(layer, Linear::kWq, h_.data(), n, q_.data(), observer);
    RunLinear(layer, Linear::kWk, h_.data(), n, k_.data(), observer);
    RunLinear(layer, Linear::kWv, h_.data(), n, v_.data(), observer);
    Attention(layer, n);
    RunLinear(layer, Linear::kWo, att_.data(), n, o_.data(), observer);
    for (int64_t i = 0; i < n * dim; ++i) x_[i] += o_[i];

    RmsNorm(x_.data(), ml.rms_ffn.data(), n, c.dim, h_.data());
    RunLinear(layer, Linear::kW1, h_.data(), n, gate_.data(), observer);
    RunLinear(layer, Linear::kW3, h_.data(), n, up_.data(), observer);
    for (int64_t i = 0; i < n * hidden; ++i) {
      const float g = gate_[i];
      gate_[i] = g / (1.0f + std::exp(-g)) * up_[i];  // SiLU(w1 h) ⊙ (w3 h)
    }
    RunLinear(layer, Linear::kW2, gate_.data(), n, o_.data(), observer);
    for (int64_t i = 0; i < n * dim; ++i) x_[i] += o_[i];
  }
  pos_ += n;
  if (logits == nullptr) return;
  RmsNorm(x_.data(), model_.rms_final.data(), n, c.dim, h_.data());
  Matmul(model_.classifier, ConstTensorView{h_.data(), DType::kF32, {n, dim}},
         TensorView{logits, DType::kF32, {n, c.vocab_size}}, nullptr, ctx_);
}

}  // namespace lowbit::llama
