// AdamW (lowbit/nn/optim.h): float32 states against a float64 scalar reference of
// torch.optim.AdamW, 8-bit blockwise states against an independent implementation of
// bitsandbytes' rules (nearest code, fresh block absmax, sign-preserved first moment) and against
// bitsandbytes' own 8-bit-vs-32-bit bounds, the re-derivation of both dynamic 8-bit maps of
// format_layout.h from their float32 construction, state sizes and validation.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "lowbit/format.h"
#include "lowbit/nn/optim.h"

namespace lowbit::nn {
namespace {

const float kUnsignedMap[256] = LOWBIT_DYNAMIC_MAP_UNSIGNED_INIT;

uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// bitsandbytes create_dynamic_map(signed, max_exponent_bits=7, total_bits=8) in float32, as
// bnb-formats.md §2.1: per decade i = 0..6, k = 2^i + 1 (signed) or 2^(i+1) + 1 (unsigned)
// torch.linspace(0.1, 1, k) points (single-rounding, two-sided linspace), the float32 means of
// neighbours, times f32(10^(i-6)); then 0 and 1.0; signed adds the negations; sorted.
std::vector<float> DeriveDynamicMap(bool is_signed) {
  std::vector<float> data;
  for (int i = 0; i < 7; ++i) {
    const int k = is_signed ? (1 << i) + 1 : (1 << (i + 1)) + 1;
    const float step = (1.0f - 0.1f) / static_cast<float>(k - 1);
    std::vector<float> b(static_cast<size_t>(k));
    for (int j = 0; j < k; ++j) {
      b[static_cast<size_t>(j)] = j < k / 2 ? std::fmaf(step, static_cast<float>(j), 0.1f)
                                            : std::fmaf(-step, static_cast<float>(k - 1 - j), 1.0f);
    }
    const float decade = static_cast<float>(std::pow(10.0, i - 6));
    for (int j = 0; j + 1 < k; ++j) {
      const float mean = (b[static_cast<size_t>(j)] + b[static_cast<size_t>(j + 1)]) / 2.0f;
      data.push_back(decade * mean);
      if (is_signed) data.push_back(-(decade * mean));
    }
  }
  data.push_back(0.0f);
  data.push_back(1.0f);
  std::sort(data.begin(), data.end());
  return data;
}

TEST(DynamicMaps, RederivedBitExactly) {
  const std::vector<float> s = DeriveDynamicMap(true), u = DeriveDynamicMap(false);
  ASSERT_EQ(s.size(), 256u);
  ASSERT_EQ(u.size(), 256u);
  for (int i = 0; i < 256; ++i) {
    EXPECT_EQ(Bits(s[static_cast<size_t>(i)]), Bits(kDynamicMap[i])) << "signed " << i;
    EXPECT_EQ(Bits(u[static_cast<size_t>(i)]), Bits(kUnsignedMap[i])) << "unsigned " << i;
  }
  // Facts quoted in bnb-formats.md §2.1.
  EXPECT_EQ(Bits(kDynamicMap[0]), 0xbf7e3333u);
  EXPECT_EQ(kUnsignedMap[0], 0.0f);
  EXPECT_EQ(kUnsignedMap[255], 1.0f);
  EXPECT_NEAR(kUnsignedMap[1], 3.25e-7, 0.01e-7);
  EXPECT_NEAR(kUnsignedMap[254], 0.99648, 1e-5);
}

// ---- float32 states vs torch.optim.AdamW in float64 --------------------------------------------

struct ScalarAdamW {
  AdamWOptions o;
  std::vector<double> p, m, v;
  int t = 0;
  void Step(const std::vector<float>& g) {
    ++t;
    const double bc1 = 1 - std::pow(double{o.beta1}, t), bc2 = 1 - std::pow(double{o.beta2}, t);
    for (size_t i = 0; i < p.size(); ++i) {
      p[i] *= 1 - double{o.lr} * o.weight_decay;
      m[i] = o.beta1 * m[i] + (1 - double{o.beta1}) * g[i];
      v[i] = o.beta2 * v[i] + (1 - double{o.beta2}) * double{g[i]} * g[i];
      p[i] -= o.lr * (m[i] / bc1) / (std::sqrt(v[i] / bc2) + o.eps);
    }
  }
};

std::vector<float> Randn(size_t n, std::mt19937_64& rng, double scale) {
  std::normal_distribution<double> d(0.0, scale);
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(d(rng));
  return v;
}

// Overwrites `v` in place: the optimizer holds pointers into it (assigning a new vector would
// move a different buffer in).
void Refill(std::vector<float>& v, std::mt19937_64& rng, double scale) {
  const std::vector<float> fresh = Randn(v.size(), rng, scale);
  std::copy(fresh.begin(), fresh.end(), v.begin());
}

TEST(AdamW, Float32StatesMatchScalarReference) {
  std::mt19937_64 rng(1);
  AdamWOptions o;
  o.lr = 1e-2f;
  o.weight_decay = 0.1f;
  std::vector<float> a = Randn(300, rng, 0.5), b = Randn(77, rng, 0.5);
  std::vector<float> ga(a.size()), gb(b.size());
  AdamW opt({Parameter{"a", a.data(), ga.data(), 300}, Parameter{"b", b.data(), gb.data(), 77}}, o);
  ScalarAdamW ra{o, {a.begin(), a.end()}, std::vector<double>(300), std::vector<double>(300)};
  ScalarAdamW rb{o, {b.begin(), b.end()}, std::vector<double>(77), std::vector<double>(77)};
  for (int step = 0; step < 20; ++step) {
    Refill(ga, rng, 0.1);
    Refill(gb, rng, 0.1);
    opt.Step();
    ra.Step(ga);
    rb.Step(gb);
  }
  EXPECT_EQ(opt.step_count(), 20);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], ra.p[i], 2e-6) << i;
  for (size_t i = 0; i < b.size(); ++i) EXPECT_NEAR(b[i], rb.p[i], 2e-6) << i;
  const std::vector<float> m = opt.FirstMoment(0), v = opt.SecondMoment(0);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_NEAR(m[i], ra.m[i], 1e-6 + 1e-5 * std::abs(ra.m[i])) << i;
    EXPECT_NEAR(v[i], ra.v[i], 1e-9 + 1e-5 * ra.v[i]) << i;
  }
  EXPECT_EQ(opt.StateBytes(), (300 + 77) * 2 * 4);
  opt.ZeroGrad();
  for (const float g : ga) ASSERT_EQ(g, 0.0f);
}

// ---- 8-bit states vs bitsandbytes' rules -------------------------------------------------------

// Nearest entry of an ascending 256-value map by exhaustive search (ties: reported separately).
uint8_t Nearest(const float* map, float y, bool* tie) {
  int best = 0;
  double best_d = 1e30;
  *tie = false;
  for (int c = 0; c < 256; ++c) {
    const double d = std::abs(double{y} - map[c]);
    if (d < best_d) {
      best_d = d;
      best = c;
      *tie = false;
    } else if (d == best_d) {
      *tie = true;
    }
  }
  return static_cast<uint8_t>(best);
}

// One parameter's 8-bit Adam in the bitsandbytes blockwise scheme, written independently.
struct Scalar8bitAdamW {
  AdamWOptions o;
  std::vector<float> p;
  std::vector<uint8_t> c1, c2;
  std::vector<float> a1, a2;
  int t = 0;
  int ties = 0;
  void Step(const std::vector<float>& g) {
    ++t;
    const int64_t n = static_cast<int64_t>(p.size()), bs = o.state_block_size;
    std::vector<float> s1(p.size()), s2(p.size());
    for (int64_t i = 0; i < n; ++i) {
      s1[i] = o.beta1 * (kDynamicMap[c1[i]] * a1[i / bs]) + (1 - o.beta1) * g[i];
      s2[i] = o.beta2 * (kUnsignedMap[c2[i]] * a2[i / bs]) + (1 - o.beta2) * g[i] * g[i];
    }
    const double bc1 = 1 - std::pow(double{o.beta1}, t), bc2 = 1 - std::pow(double{o.beta2}, t);
    for (int64_t i = 0; i < n; ++i) {
      const double upd = o.lr * (s1[i] / bc1) / (std::sqrt(s2[i] / bc2) + o.eps);
      p[i] = static_cast<float>(p[i] * (1 - double{o.lr} * o.weight_decay) - upd);
    }
    for (int64_t b0 = 0; b0 < n; b0 += bs) {
      const int64_t e = std::min(n, b0 + bs);
      float m1 = 0, m2 = 0;
      for (int64_t i = b0; i < e; ++i) {
        m1 = std::max(m1, std::abs(s1[i]));
        m2 = std::max(m2, std::abs(s2[i]));
      }
      a1[b0 / bs] = m1;
      a2[b0 / bs] = m2;
      for (int64_t i = b0; i < e; ++i) {
        bool tie1 = false, tie2 = false;
        c1[i] = m1 > 0 ? Nearest(kDynamicMap, s1[i] * (1.0f / m1), &tie1) : 0;
        c2[i] = m2 > 0 ? Nearest(kUnsignedMap, s2[i] * (1.0f / m2), &tie2) : 0;
        ties += tie1 + tie2;
        if (m1 > 0 && std::signbit(kDynamicMap[c1[i]]) != std::signbit(s1[i])) {
          c1[i] = static_cast<uint8_t>(s1[i] > 0 ? c1[i] + 1 : c1[i] - 1);
        }
      }
    }
  }
};

TEST(AdamW, EightBitStatesFollowBitsandbytesRules) {
  std::mt19937_64 rng(2);
  AdamWOptions o;
  o.lr = 1e-3f;
  o.weight_decay = 0.01f;
  o.eight_bit_states = true;
  o.min_8bit_size = 512;  // the 300-element parameter keeps float32 states
  const size_t n = 1000;  // 3 full blocks of 256 and a 232-element tail
  std::vector<float> p = Randn(n, rng, 0.1), g(n), small = Randn(300, rng, 0.1), gs(300);
  AdamW opt({Parameter{"p", p.data(), g.data(), static_cast<int64_t>(n)},
             Parameter{"small", small.data(), gs.data(), 300}},
            o);
  EXPECT_EQ(opt.StateBytes(), 2 * 1000 + 2 * 4 * 4 + 300 * 8);
  Scalar8bitAdamW ref{o, p, std::vector<uint8_t>(n, 0), std::vector<uint8_t>(n, 0),
                      std::vector<float>(4, 0.0f), std::vector<float>(4, 0.0f)};
  for (int step = 0; step < 10; ++step) {
    Refill(g, rng, 0.01);
    // A few exact zeros and tiny negatives exercise the sign rule.
    for (size_t i = 0; i < n; i += 97) g[i] = (step % 2) ? -1e-9f : 0.0f;
    Refill(gs, rng, 0.01);
    opt.Step();
    ref.Step(g);
    const std::vector<float> m = opt.FirstMoment(0), v = opt.SecondMoment(0);
    int mismatches = 0;
    for (size_t i = 0; i < n; ++i) {
      const float rm = kDynamicMap[ref.c1[i]] * ref.a1[i / 256];
      const float rv = kUnsignedMap[ref.c2[i]] * ref.a2[i / 256];
      mismatches += (m[i] != rm) + (v[i] != rv);
      // The first moment's sign survives quantization.
      if (m[i] != 0.0f || rm != 0.0f) {
        EXPECT_EQ(std::signbit(m[i]), std::signbit(rm)) << step << " " << i;
      }
    }
    EXPECT_LE(mismatches, ref.ties) << "step " << step;
    for (size_t i = 0; i < n; ++i) EXPECT_NEAR(p[i], ref.p[i], 1e-6) << step << " " << i;
  }
}

TEST(AdamW, EightBitStatesWithinBitsandbytesBoundsOfFloat32) {
  // tests/test_optim.py::test_optimizer8bit: 50 steps, p ~ 0.1 randn, g ~ 0.01 randn, lr 1e-3.
  // Each step compares the 8-bit optimizer with a float32 Adam step taken from the same
  // parameters and the same (dequantized) states — bnb re-syncs both after every step because
  // "the parameters diverge quickly" — and asserts bnb's bounds: < 20 state elements outside
  // atol 3e-3 / rtol 1e-3; parameter mean abs error < 6e-5 and mean relative error < 6e-4.
  std::mt19937_64 rng(3);
  const size_t n = 4096;
  std::vector<float> p = Randn(n, rng, 0.1), g(n);
  AdamWOptions o;
  o.weight_decay = 0.0f;
  o.eight_bit_states = true;
  AdamW a8({Parameter{"p", p.data(), g.data(), static_cast<int64_t>(n)}}, o);
  EXPECT_EQ(a8.StateBytes(), 2 * 4096 + 2 * 16 * 4);
  double worst_abs = 0, worst_rel = 0;
  for (int t = 1; t <= 50; ++t) {
    Refill(g, rng, 0.01);
    const std::vector<float> p0 = p, m0 = a8.FirstMoment(0), v0 = a8.SecondMoment(0);
    a8.Step();
    const std::vector<float> m8 = a8.FirstMoment(0), v8 = a8.SecondMoment(0);
    const double bc1 = 1 - std::pow(0.9, t), bc2 = 1 - std::pow(0.999, t);
    int outside = 0;
    double abs_err = 0, rel_err = 0;
    for (size_t i = 0; i < n; ++i) {
      const double m = 0.9 * m0[i] + 0.1 * g[i];
      const double v = 0.999 * v0[i] + 0.001 * double{g[i]} * g[i];
      const double p32 = p0[i] - 1e-3 * (m / bc1) / (std::sqrt(v / bc2) + 1e-8);
      outside += std::abs(m8[i] - m) > 3e-3 + 1e-3 * std::abs(m);
      outside += std::abs(v8[i] - v) > 3e-3 + 1e-3 * std::abs(v);
      abs_err += std::abs(p[i] - p32);
      rel_err += std::abs(p[i] - p32) / (std::abs(p32) + 1e-9);
    }
    EXPECT_LT(outside, 20) << "step " << t;
    EXPECT_LT(abs_err / n, 6e-5) << "step " << t;
    EXPECT_LT(rel_err / n, 6e-4) << "step " << t;
    worst_abs = std::max(worst_abs, abs_err / n);
    worst_rel = std::max(worst_rel, rel_err / n);
  }
  RecordProperty("worst_mean_abs_err", std::to_string(worst_abs));
  RecordProperty("worst_mean_rel_err", std::to_string(worst_rel));
  std::printf("8-bit vs float32 Adam step: worst mean abs err %.3g, worst mean rel err %.3g\n",
              worst_abs, worst_rel);
}

TEST(AdamW, ValidationErrors) {
  std::vector<float> p(4), g(4);
  const std::vector<Parameter> ok{Parameter{"p", p.data(), g.data(), 4}};
  auto make = [&](AdamWOptions o) { AdamW a(ok, o); };
  AdamWOptions o;
  o.lr = 0;
  EXPECT_THROW(make(o), Error);
  o = {};
  o.beta1 = 1.0f;
  EXPECT_THROW(make(o), Error);
  o = {};
  o.beta2 = -0.1f;
  EXPECT_THROW(make(o), Error);
  o = {};
  o.eps = 0;
  EXPECT_THROW(make(o), Error);
  o = {};
  o.weight_decay = -1;
  EXPECT_THROW(make(o), Error);
  o = {};
  o.state_block_size = 100;
  EXPECT_THROW(make(o), Error);
  o.state_block_size = 8192;
  EXPECT_THROW(make(o), Error);
  EXPECT_THROW(AdamW({Parameter{"null", nullptr, g.data(), 4}}), Error);
  EXPECT_THROW(AdamW({Parameter{"empty", p.data(), g.data(), 0}}), Error);
  AdamW a(ok);
  EXPECT_THROW(a.set_lr(-1), Error);
  EXPECT_THROW(a.FirstMoment(1), Error);
  a.set_lr(0.5f);
  EXPECT_EQ(a.options().lr, 0.5f);
}

}  // namespace
}  // namespace lowbit::nn
