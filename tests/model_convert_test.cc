// Whole-model conversion (lowbit/convert.h): module skip rules, config -> plan mapping, the
// stories260K checkpoint converted to NF4 / int8 / int4 with sizes recomputed independently from
// the format rules, summaries, and validation.
#include <cmath>
#include <cstdint>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "lowbit/convert.h"

namespace lowbit {
namespace {

const std::string kModel = std::string(LOWBIT_SOURCE_DIR) + "/models/stories260K/stories260K.safetensors";

TEST(ModuleMatches, WholeDottedComponentsOnly) {
  EXPECT_TRUE(ModuleMatches("lm_head", "lm_head"));
  EXPECT_TRUE(ModuleMatches("layers.0.attention.wq", "attention"));
  EXPECT_TRUE(ModuleMatches("layers.0.attention.wq", "wq"));
  EXPECT_TRUE(ModuleMatches("layers.0.attention.wq", "attention.wq"));
  EXPECT_TRUE(ModuleMatches("layers.1.feed_forward.w1", "layers.1"));
  EXPECT_FALSE(ModuleMatches("layers.10.feed_forward.w1", "layers.1"));
  EXPECT_FALSE(ModuleMatches("model.self_attn.q_proj", "attn"));
  EXPECT_FALSE(ModuleMatches("layers.0.attention.wq", "wq.x"));
  EXPECT_FALSE(ModuleMatches("wq", "layers.0.wq"));
  EXPECT_FALSE(ModuleMatches("layers.0.attention.wq", ""));
  // A later occurrence can match when an earlier one is inside a component.
  EXPECT_TRUE(ModuleMatches("xw1.w1", "w1"));
}

// Bytes of an NF4 tensor of n elements with flat blocks of `block` (no double quant): packed
// nibbles, one f32 absmax per block and the 16-entry f32 codebook (bnb-formats.md §1, §5.1).
int64_t Nf4Bytes(int64_t n, int64_t block) {
  return (n + 1) / 2 + 4 * ((n + block - 1) / block) + 16 * 4;
}

TEST(Convert, Stories260KToNf4WithSkippedModules) {
  const ModelWeights model = ModelWeights::FromSafetensors(kModel);
  ASSERT_EQ(model.size(), 47u);  // README: the 47 tensors of the .bin (RoPE tables dropped)
  BitsAndBytesConfig c;
  c.load_in_4bit = true;
  c.bnb_4bit_quant_type = "nf4";
  // Skip the whole last layer and every down projection (w2).
  const ModelWeights q = Convert(model, c, {"layers.4", "w2"});

  // Expected converted set, from the names alone: 2-D *.weight of layers 0-3, minus w2.
  std::set<std::string> expected;
  for (int l = 0; l < 4; ++l) {
    for (const char* w : {"attention.wq", "attention.wk", "attention.wv", "attention.wo",
                          "feed_forward.w1", "feed_forward.w3"}) {
      expected.insert("layers." + std::to_string(l) + "." + w + ".weight");
    }
  }
  const std::vector<std::string> names = q.QuantizedNames();
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()), expected);
  ASSERT_EQ(names.size(), 24u);
  EXPECT_EQ(q.size(), model.size());
  // Order and untouched tensors are preserved byte for byte.
  for (size_t i = 0; i < model.size(); ++i) {
    const ModelTensor& a = model.tensors()[i];
    const ModelTensor& b = q.tensors()[i];
    ASSERT_EQ(a.name, b.name);
    EXPECT_EQ(a.shape, b.shape);
    if (!b.is_quantized()) {
      EXPECT_EQ(a.data, b.data) << a.name;
    } else {
      EXPECT_EQ(b.quantized->format(), Format::kNF4);
      EXPECT_EQ(b.quantized->state.block_size, 64);
      // The converted weight is the input within NF4 error (bnb: mean abs err ~0.073 of
      // unit-absmax blocks; relative L2 ~0.1 for Gaussian-like weights).
      const std::vector<float> back = DequantizeToF32(*b.quantized);
      const ErrorStats e = EstimateError(ConstTensorView{a.data.data(), DType::kF32, a.shape},
                                         ConstTensorView{back.data(), DType::kF32, a.shape});
      EXPECT_LT(e.rel_l2, 0.15) << a.name;
    }
  }

  // Sizes recomputed from the shapes: f32 originals, NF4 block 64 for the converted ones.
  int64_t original = 0, converted = 0, quantized = 0, params = 0;
  for (const ModelTensor& t : model.tensors()) {
    const int64_t n = t.num_elements();
    params += n;
    original += 4 * n;
    if (expected.count(t.name)) {
      converted += Nf4Bytes(n, 64);
      quantized += Nf4Bytes(n, 64);
    } else {
      converted += 4 * n;
    }
  }
  EXPECT_EQ(params, 260032);  // README: 260,032 parameters
  const ModelSizeInfo info = ModelSize(q);
  EXPECT_EQ(info.total_bytes, converted);
  EXPECT_EQ(info.quantized_bytes, quantized);
  EXPECT_EQ(info.dense_bytes, converted - quantized);
  EXPECT_EQ(info.num_quantized, 24);
  EXPECT_EQ(info.num_tensors, 47);
  EXPECT_EQ(info.num_parameters, params);
  const SizeComparison cmp = CompareModelSizes(model, q);
  EXPECT_EQ(cmp.original_bytes, original);
  EXPECT_EQ(cmp.converted_bytes, converted);
  EXPECT_EQ(cmp.saved_bytes, original - converted);
  EXPECT_DOUBLE_EQ(cmp.saved_percent, 100.0 * (original - converted) / original);
  EXPECT_DOUBLE_EQ(cmp.compression_ratio, static_cast<double>(original) / converted);

  // Everything converted (no skips besides the default lm_head): 35 matrices, 163,840 weights.
  const ModelWeights all = Convert(model, c);
  EXPECT_EQ(all.QuantizedNames().size(), 35u);
  int64_t all_bytes = 0;
  for (const ModelTensor& t : model.tensors()) {
    const bool linear = t.shape.size() == 2 && t.name != "tok_embeddings.weight";
    all_bytes += linear ? Nf4Bytes(t.num_elements(), 64) : 4 * t.num_elements();
  }
  EXPECT_EQ(ModelSize(all).total_bytes, all_bytes);

  const std::string summary = QuantizationSummary(q);
  EXPECT_NE(summary.find("layers.0.attention.wq.weight"), std::string::npos);
  EXPECT_NE(summary.find("24 of 47 tensors quantized"), std::string::npos) << summary;
  std::ostringstream os;
  PrintQuantizationSummary(q, os);
  EXPECT_EQ(os.str(), summary);
}

TEST(Convert, Int8AndInt4ConfigsOnStories260K) {
  const ModelWeights model = ModelWeights::FromSafetensors(kModel);
  BitsAndBytesConfig c8;
  c8.load_in_8bit = true;
  const ConversionPlan plan8 = MakeConversionPlan(c8);
  EXPECT_EQ(plan8.format, Format::kInt8);
  EXPECT_EQ(plan8.int8_threshold, 6.0f);
  EXPECT_EQ(plan8.modules_to_not_convert, std::vector<std::string>{"lm_head"});
  const ModelWeights q8 = Convert(model, c8);
  EXPECT_EQ(q8.QuantizedNames().size(), 35u);
  // Int8Params: SCB = row absmax; bytes = codes + one f32 per row.
  const ModelTensor& w2 = q8.Get("layers.2.feed_forward.w2.weight");
  const ModelTensor& w2_orig = model.Get("layers.2.feed_forward.w2.weight");
  const float* w = reinterpret_cast<const float*>(w2_orig.data.data());
  for (int64_t r = 0; r < 64; ++r) {
    float absmax = 0;
    for (int64_t k = 0; k < 172; ++k) absmax = std::max(absmax, std::abs(w[r * 172 + k]));
    EXPECT_EQ(w2.quantized->state.scales[static_cast<size_t>(r)], absmax) << r;
  }
  EXPECT_EQ(w2.StorageBytes(), 64 * 172 + 64 * 4);

  Int4Config c4;
  c4.group_size = 32;
  const ModelWeights q4 = Convert(model, c4, {"feed_forward"});
  EXPECT_EQ(q4.QuantizedNames().size(), 20u);  // attention only
  const ModelTensor& wq = q4.Get("layers.0.attention.wq.weight");
  EXPECT_EQ(wq.quantized->format(), Format::kInt4);
  // 64x64 int4 groups of 32: 2048 bytes of nibbles + one f32 scale per group (128 groups).
  EXPECT_EQ(wq.StorageBytes(), 64 * 64 / 2 + 4 * 64 * 2);
  Int4Config nf;
  nf.quant_type = "nf4";
  nf.group_size = 64;
  nf.compress_statistics = true;
  EXPECT_EQ(MakeConversionPlan(nf).format, Format::kNF4);
  EXPECT_TRUE(MakeConversionPlan(nf).options.double_quant);
  Int8Config asym;
  asym.symmetric = false;
  asym.threshold = 0;
  asym.per_channel = false;
  const ConversionPlan pa = MakeConversionPlan(asym);
  EXPECT_EQ(pa.format, Format::kInt8Asym);
  EXPECT_EQ(pa.options.granularity, Granularity::kTensor);
}

TEST(Convert, Fp16InputsAndAlreadyQuantizedTensors) {
  ModelWeights m;
  std::vector<F16> w(8 * 64);
  for (size_t i = 0; i < w.size(); ++i) w[i] = F32ToF16(std::sin(static_cast<float>(i)));
  m.Add("proj.weight", DType::kF16, {8, 64}, w.data(), w.size() * 2);
  m.Add("proj.bias", DType::kF16, {8}, w.data(), 16);
  std::vector<float> e(4 * 64, 0.5f);
  m.Add("embed_tokens.weight", DType::kF32, {4, 64}, e.data(), e.size() * 4);
  m.Add("lm_head.weight", DType::kF32, {4, 64}, e.data(), e.size() * 4);
  BitsAndBytesConfig c;
  c.load_in_4bit = true;
  c.bnb_4bit_quant_type = "fp4";
  const ModelWeights q = Convert(m, c);
  EXPECT_EQ(q.QuantizedNames(), std::vector<std::string>{"proj.weight"});
  EXPECT_EQ(q.Get("proj.weight").quantized->state.dtype, DType::kF16);
  EXPECT_EQ(q.Get("proj.weight").quantized->format(), Format::kFP4);
  // Converting again keeps the quantized tensor as is.
  const ModelWeights q2 = Convert(q, c);
  EXPECT_EQ(q2.Get("proj.weight").quantized->data, q.Get("proj.weight").quantized->data);
}

TEST(Convert, ValidationErrors) {
  BitsAndBytesConfig both;
  both.load_in_4bit = both.load_in_8bit = true;
  EXPECT_THROW(MakeConversionPlan(both), Error);
  EXPECT_THROW(MakeConversionPlan(BitsAndBytesConfig{}), Error);  // neither
  BitsAndBytesConfig bad_type;
  bad_type.load_in_4bit = true;
  bad_type.bnb_4bit_quant_type = "int3";
  EXPECT_THROW(MakeConversionPlan(bad_type), Error);
  BitsAndBytesConfig bad_cd;
  bad_cd.load_in_4bit = true;
  bad_cd.bnb_4bit_compute_dtype = DType::kI8;
  EXPECT_THROW(MakeConversionPlan(bad_cd), Error);
  BitsAndBytesConfig bad_thr;
  bad_thr.load_in_8bit = true;
  bad_thr.llm_int8_threshold = -1;
  EXPECT_THROW(MakeConversionPlan(bad_thr), Error);
  Int4Config dq_int4;
  dq_int4.compress_statistics = true;
  EXPECT_THROW(MakeConversionPlan(dq_int4), Error);
  Int4Config bad4;
  bad4.quant_type = "q4_0";
  EXPECT_THROW(MakeConversionPlan(bad4), Error);
  Int8Config asym_thr;
  asym_thr.symmetric = false;
  EXPECT_THROW(MakeConversionPlan(asym_thr), Error);  // threshold 6 needs symmetric

  ModelWeights m;
  std::vector<float> w(16, 1.0f);
  m.Add("a.weight", DType::kF32, {4, 4}, w.data(), 64);
  EXPECT_THROW(m.Add("a.weight", DType::kF32, {4, 4}, w.data(), 64), Error);
  EXPECT_THROW(m.Add("b.weight", DType::kF32, {4, 4}, w.data(), 60), Error);
  EXPECT_THROW(m.Add("", DType::kF32, {4, 4}, w.data(), 64), Error);
  EXPECT_THROW(m.Get("missing"), Error);
  EXPECT_EQ(m.Find("missing"), nullptr);
  // A weight the format cannot take (int4 group 64 on 4 columns is fine; block 48 is not).
  Int4Config g48;
  g48.group_size = 48;
  try {
    Convert(m, g48);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("a.weight"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ModelWeights::FromSafetensors("/nonexistent/model.safetensors"), Error);
}

}  // namespace
}  // namespace lowbit
