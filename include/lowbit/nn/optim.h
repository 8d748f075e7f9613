// lowbit/nn/optim.h — AdamW for adapter parameters, with optional 8-bit optimizer states.
//
// Decoupled weight decay (Loshchilov & Hutter) with bias correction, per step t (from 1):
//   p -= lr * weight_decay * p
//   m = beta1 * m + (1 - beta1) * g;   v = beta2 * v + (1 - beta2) * g^2
//   p -= lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)
// With eight_bit_states, m and v of every parameter with at least min_8bit_size elements are
// stored between steps as blockwise 8-bit codes (bitsandbytes' 8-bit Adam idea): m with the
// signed dynamic map, v with the unsigned dynamic map (LOWBIT_DYNAMIC_MAP_UNSIGNED_INIT), one
// float32 absmax per `state_block_size` elements. Each step dequantizes, updates in float32 and
// re-quantizes with the fresh block absmax (nearest code, bitsandbytes' dQuantize rule), keeping
// the sign of m as bitsandbytes' kOptimizerStatic8bit2StateBlockwise does (a code of the wrong
// sign moves one step toward m's sign). Differences from that kernel, all O(ulp) or O(lr²·wd):
// the decay is applied before the Adam update (torch.optim.AdamW order; bnb multiplies after),
// y = m * f32(1/absmax) instead of an approximate division, and NaN/Inf gradients are not
// skipped. Thread safety: one optimizer per thread.
#ifndef LOWBIT_NN_OPTIM_H_
#define LOWBIT_NN_OPTIM_H_

#include <cstdint>
#include <vector>

#include "lowbit/nn/lora.h"

namespace lowbit::nn {

struct AdamWOptions {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.01f;
  bool eight_bit_states = false;
  int64_t state_block_size = 256;  // bitsandbytes' blockwise optimizer block
  int64_t min_8bit_size = 4096;    // smaller tensors keep float32 states (as bitsandbytes)
};

class AdamW {
 public:
  // `params` must stay valid for the optimizer's lifetime. Throws for null pointers, sizes
  // <= 0, lr <= 0, betas outside [0, 1), eps <= 0, weight_decay < 0 or a block size that is not
  // a power of two in [64, 4096].
  AdamW(std::vector<Parameter> params, const AdamWOptions& options = {});

  // One update of every parameter from its current gradient.
  void Step();
  // Sets every parameter's gradient to zero.
  void ZeroGrad();
  int64_t step_count() const { return t_; }
  const AdamWOptions& options() const { return options_; }
  void set_lr(float lr);
  // Bytes held for m and v (codes + absmax for 8-bit states).
  int64_t StateBytes() const;
  // Dequantized float32 states of parameter i (for inspection and tests).
  std::vector<float> FirstMoment(size_t i) const;
  std::vector<float> SecondMoment(size_t i) const;

 private:
  struct State {
    bool quantized = false;
    std::vector<float> m, v;               // float32 states
    std::vector<uint8_t> qm, qv;           // 8-bit codes
    std::vector<float> absmax_m, absmax_v;  // per block
  };
  AdamWOptions options_;
  std::vector<Parameter> params_;
  std::vector<State> states_;
  int64_t t_ = 0;
};

}  // namespace lowbit::nn

#endif  // LOWBIT_NN_OPTIM_H_
