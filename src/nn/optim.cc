// AdamW with float32 or blockwise 8-bit (dynamic map) optimizer states.
#include "lowbit/nn/optim.h"

#include <cmath>
#include <string>

#include "lowbit/format.h"
#include "reference/reference.h"

namespace lowbit::nn {

namespace {

// create_dynamic_map(signed=False): bitsandbytes' map for the non-negative second moment.
const float kUnsignedDynamicMap[256] = LOWBIT_DYNAMIC_MAP_UNSIGNED_INIT;

int64_t NumBlocks(int64_t n, int64_t block) { return (n + block - 1) / block; }

}  // namespace

AdamW::AdamW(std::vector<Parameter> params, const AdamWOptions& options)
    : options_(options), params_(std::move(params)) {
  const AdamWOptions& o = options;
  Require(std::isfinite(o.lr) && o.lr > 0, Status::kInvalidArgument,
          "AdamW: lr must be positive, got " + std::to_string(o.lr));
  Require(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1, Status::kInvalidArgument,
          "AdamW: betas must be in [0, 1), got " + std::to_string(o.beta1) + ", " +
              std::to_string(o.beta2));
  Require(o.eps > 0, Status::kInvalidArgument,
          "AdamW: eps must be positive, got " + std::to_string(o.eps));
  Require(o.weight_decay >= 0, Status::kInvalidArgument,
          "AdamW: weight_decay must be >= 0, got " + std::to_string(o.weight_decay));
  Require(o.state_block_size >= LOWBIT_BLOCKWISE8_MIN_BLOCK &&
              o.state_block_size <= LOWBIT_BLOCKWISE8_MAX_BLOCK &&
              (o.state_block_size & (o.state_block_size - 1)) == 0,
          Status::kInvalidArgument,
          "AdamW: state_block_size must be a power of two in [64, 4096], got " +
              std::to_string(o.state_block_size));
  Require(o.min_8bit_size >= 0, Status::kInvalidArgument, "AdamW: min_8bit_size must be >= 0");
  states_.resize(params_.size());
  for (size_t i = 0; i < params_.size(); ++i) {
    const Parameter& p = params_[i];
    Require(p.value != nullptr && p.grad != nullptr && p.size > 0, Status::kInvalidArgument,
            "AdamW: parameter '" + p.name + "' has a null pointer or size " +
                std::to_string(p.size));
    State& s = states_[i];
    s.quantized = o.eight_bit_states && p.size >= o.min_8bit_size;
    if (s.quantized) {
      // Zero states: code of 0.0 is 127 in the signed map and 0 in the unsigned map; absmax 0.
      s.qm.assign(static_cast<size_t>(p.size), LOWBIT_DYNAMIC_MAP_ZERO_CODE);
      s.qv.assign(static_cast<size_t>(p.size), 0);
      s.absmax_m.assign(static_cast<size_t>(NumBlocks(p.size, o.state_block_size)), 0.0f);
      s.absmax_v = s.absmax_m;
    } else {
      s.m.assign(static_cast<size_t>(p.size), 0.0f);
      s.v.assign(static_cast<size_t>(p.size), 0.0f);
    }
  }
}

void AdamW::set_lr(float lr) {
  Require(std::isfinite(lr) && lr > 0, Status::kInvalidArgument,
          "AdamW: lr must be positive, got " + std::to_string(lr));
  options_.lr = lr;
}

std::vector<float> AdamW::FirstMoment(size_t i) const {
  Require(i < states_.size(), Status::kInvalidArgument,
          "AdamW: parameter index " + std::to_string(i) + " out of range");
  const State& s = states_[i];
  if (!s.quantized) return s.m;
  std::vector<float> m(s.qm.size());
  ref::DequantizeBlockwise8(kDynamicMap, s.qm.data(), params_[i].size, options_.state_block_size,
                            s.absmax_m.data(), m.data());
  return m;
}

std::vector<float> AdamW::SecondMoment(size_t i) const {
  Require(i < states_.size(), Status::kInvalidArgument,
          "AdamW: parameter index " + std::to_string(i) + " out of range");
  const State& s = states_[i];
  if (!s.quantized) return s.v;
  std::vector<float> v(s.qv.size());
  ref::DequantizeBlockwise8(kUnsignedDynamicMap, s.qv.data(), params_[i].size,
                            options_.state_block_size, s.absmax_v.data(), v.data());
  return v;
}

void AdamW::Step() {
  ++t_;
  const AdamWOptions& o = options_;
  const double bc1 = 1.0 - std::pow(static_cast<double>(o.beta1), static_cast<double>(t_));
  const double bc2 = 1.0 - std::pow(static_cast<double>(o.beta2), static_cast<double>(t_));
  // step_size and the denominator correction as in torch.optim.AdamW (non-fused).
  const float step_size = static_cast<float>(o.lr / bc1);
  const float bc2_sqrt = static_cast<float>(std::sqrt(bc2));
  const float decay = 1.0f - o.lr * o.weight_decay;
  for (size_t i = 0; i < params_.size(); ++i) {
    const Parameter& p = params_[i];
    State& s = states_[i];
    std::vector<float> m = s.quantized ? FirstMoment(i) : std::move(s.m);
    std::vector<float> v = s.quantized ? SecondMoment(i) : std::move(s.v);
    for (int64_t j = 0; j < p.size; ++j) {
      const float g = p.grad[j];
      m[j] = o.beta1 * m[j] + (1.0f - o.beta1) * g;
      v[j] = o.beta2 * v[j] + (1.0f - o.beta2) * g * g;
      p.value[j] *= decay;
      p.value[j] -= step_size * m[j] / (std::sqrt(v[j]) / bc2_sqrt + o.eps);
    }
    if (s.quantized) {
      ref::QuantizeBlockwise8(kDynamicMap, m.data(), p.size, o.state_block_size, s.qm.data(),
                              s.absmax_m.data());
      // bitsandbytes keeps the first moment's sign: a code whose value has the other sign (a
      // small negative m rounding to +0) moves one code toward m's sign. Never at the ends of
      // the map: code 0 and 255 carry m's sign already.
      for (int64_t j = 0; j < p.size; ++j) {
        uint8_t& c = s.qm[static_cast<size_t>(j)];
        if (s.absmax_m[static_cast<size_t>(j / o.state_block_size)] > 0.0f &&
            std::signbit(kDynamicMap[c]) != std::signbit(m[static_cast<size_t>(j)])) {
          c = static_cast<uint8_t>(m[static_cast<size_t>(j)] > 0.0f ? c + 1 : c - 1);
        }
      }
      ref::QuantizeBlockwise8(kUnsignedDynamicMap, v.data(), p.size, o.state_block_size,
                              s.qv.data(), s.absmax_v.data());
    } else {
      s.m = std::move(m);
      s.v = std::move(v);
    }
  }
}

void AdamW::ZeroGrad() {
  for (const Parameter& p : params_) std::fill(p.grad, p.grad + p.size, 0.0f);
}

int64_t AdamW::StateBytes() const {
  int64_t bytes = 0;
  for (const State& s : states_) {
    bytes += static_cast<int64_t>((s.m.size() + s.v.size()) * sizeof(float) + s.qm.size() +
                                  s.qv.size() +
                                  (s.absmax_m.size() + s.absmax_v.size()) * sizeof(float));
  }
  return bytes;
}

}  // namespace lowbit::nn
