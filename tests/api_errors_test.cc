// Bad input to every public entry of quantize.h: each must throw lowbit::Error with the right
// Status and a message naming the offending value, never crash or return garbage.
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "format_test_util.h"
#include "lowbit/quantize.h"

namespace lowbit {
namespace {

using testing::ExpectError;
constexpr Status kInvalid = Status::kInvalidArgument;

class ApiErrors : public ::testing::Test {
 protected:
  ApiErrors() : x_(testing::Randn(8 * 64, 1)) {}
  ConstTensorView X(Shape shape = {8, 64}) const { return {x_.data(), DType::kF32, std::move(shape)}; }
  std::vector<float> x_;
};

TEST_F(ApiErrors, NullDataAndBadShapes) {
  ExpectError([&] { Quantize(Format::kNF4, ConstTensorView{nullptr, DType::kF32, {8, 64}}); },
              kInvalid, {"null data"});
  ExpectError([&] { Quantize(Format::kNF4, X({8, 0})); }, kInvalid, {"[8, 0]", "positive"});
  ExpectError([&] { Quantize(Format::kInt8, X({-8, 64})); }, kInvalid, {"[-8, 64]"});
  ExpectError([&] { Quantize(Format::kInt8, X({})); }, kInvalid, {"empty shape"});
  ExpectError([&] { Quantize(Format::kNF4, X({1LL << 40, 1LL << 40})); }, kInvalid, {"overflow"});
  ExpectError([&] { Quantize(Format::kNF4, ConstTensorView{x_.data(), DType::kI8, {8, 64}}); },
              kInvalid, {"i8"});
  ExpectError([&] { QuantizeInt8(ConstTensorView{nullptr, DType::kF16, {2, 2}}); }, kInvalid,
              {"null data"});
  ExpectError([&] { QuantizeFP8(X({0})); }, kInvalid, {"[0]"});
  ExpectError([&] { QuantizeBlockwise(X({64, -1})); }, kInvalid, {"[64, -1]"});
}

TEST_F(ApiErrors, UnknownFormat) {
  ExpectError([&] { Quantize(static_cast<Format>(200), X()); }, Status::kUnsupportedFormat, {"200"});
  ExpectError([&] { Quantize4bit(X(), Format::kInt8); }, kInvalid, {"int8"});
  ExpectError([&] { QuantizeFP8(X(), Format::kNF4); }, kInvalid, {"nf4"});
}

TEST_F(ApiErrors, BlockSizes) {
  for (const int64_t b : {16, 8192, 48, 100, -64, 1}) {
    ExpectError([&] { QuantizeNF4(X(), b); }, kInvalid, {std::to_string(b), "[32, 4096]"});
    ExpectError([&] { QuantizeFP4(X(), b); }, kInvalid, {std::to_string(b)});
  }
  ExpectError([&] { QuantizeBlockwise(X(), 32); }, kInvalid, {"32", "[64, 4096]"});
  ExpectError([&] { QuantizeInt4(X(), 16); }, kInvalid, {"16", "[32, 4096]"});
  ExpectError([&] { QuantizeInt4(X(), 96, false); }, kInvalid, {"96"});
  QuantizeOptions o;
  o.block_size = 64;
  ExpectError([&] { Quantize(Format::kInt8, X(), o); }, kInvalid, {"int8", "64"});
  ExpectError([&] { Quantize(Format::kFP8E5M2, X(), o); }, kInvalid, {"fp8_e5m2", "64"});
}

TEST_F(ApiErrors, Granularity) {
  ExpectError([&] { QuantizeInt8(X(), Granularity::kBlock); }, kInvalid, {"int8", "granularity"});
  ExpectError([&] { QuantizeFP8(X(), Format::kFP8E4M3, Granularity::kGroup); }, kInvalid,
              {"fp8_e4m3", "granularity"});
  QuantizeOptions o;
  o.granularity = Granularity::kRow;
  ExpectError([&] { Quantize(Format::kNF4, X(), o); }, kInvalid, {"nf4", "granularity"});
  ExpectError([&] { Quantize(Format::kInt4, X(), o); }, kInvalid, {"int4", "granularity"});
  o.granularity = static_cast<Granularity>(77);  // out of the enum: must not shift by 77
  ExpectError([&] { Quantize(Format::kInt8, X(), o); }, kInvalid, {"77"});
}

TEST_F(ApiErrors, DoubleQuantOnlyWhereSupported) {
  QuantizeOptions o;
  o.double_quant = true;
  for (const Format f : {Format::kInt8, Format::kInt8Asym, Format::kInt4, Format::kFP8E4M3, Format::kF16}) {
    ExpectError([&] { Quantize(f, X(), o); }, kInvalid, {FormatName(f), "double quant"});
  }
  o.nested_offset = std::numeric_limits<float>::infinity();
  ExpectError([&] { Quantize(Format::kNF4, X(), o); }, kInvalid, {"nested_offset", "inf"});
}

TEST_F(ApiErrors, NonFiniteInput) {
  for (const float bad : {std::nanf(""), std::numeric_limits<float>::infinity(),
                          -std::numeric_limits<float>::infinity()}) {
    std::vector<float> x = x_;
    x[77] = bad;
    const ConstTensorView v{x.data(), DType::kF32, {8, 64}};
    for (const Format f : {Format::kNF4, Format::kFP4, Format::kBlockwise8, Format::kInt8,
                           Format::kInt8Asym, Format::kInt4, Format::kInt4Asym, Format::kFP8E4M3,
                           Format::kFP8E5M2}) {
      ExpectError([&] { Quantize(f, v); }, kInvalid, {"non-finite", "index 77"});
    }
  }
  std::vector<float> x = x_;
  x[5] = std::nanf("");
  ExpectError([&] { Int8VectorwiseQuant(ConstTensorView{x.data(), DType::kF32, {8, 64}}); }, kInvalid,
              {"NaN", "index 5"});
  x[5] = std::numeric_limits<float>::infinity();  // Inf is only acceptable as an outlier
  ExpectError([&] { Int8VectorwiseQuant(ConstTensorView{x.data(), DType::kF32, {8, 64}}); }, kInvalid,
              {"inf", "index 5"});
  const Int8VectorwiseResult r =
      Int8VectorwiseQuant(ConstTensorView{x.data(), DType::kF32, {8, 64}}, 6.0f);
  EXPECT_EQ(r.outlier_cols, (std::vector<int64_t>{5}));
}

TEST_F(ApiErrors, Int8VectorwiseArguments) {
  ExpectError([&] { Int8VectorwiseQuant(X({2, 4, 64})); }, kInvalid, {"2-D", "[2, 4, 64]"});
  ExpectError([&] { Int8VectorwiseQuant(X(), -1.0f); }, kInvalid, {"threshold", "-1"});
  ExpectError([&] { Int8VectorwiseQuant(X(), std::nanf("")); }, kInvalid, {"threshold", "nan"});
}

TEST_F(ApiErrors, EstimateErrorArguments) {
  std::vector<float> y(10);
  ExpectError([&] { EstimateError(X(), ConstTensorView{y.data(), DType::kF32, {10}}); }, kInvalid,
              {"512", "10"});
  ExpectError([&] { EstimateError(X(), ConstTensorView{nullptr, DType::kF32, {8, 64}}); }, kInvalid,
              {"null data"});
  ExpectError([&] { EstimateError(X(), ConstTensorView{y.data(), DType::kI32, {10}}); }, kInvalid,
              {"i32"});
}

// ---- corrupt / mismatched QuantizedTensor passed to Dequantize ---------------------------------

class CorruptState : public ApiErrors {
 protected:
  // Dequantize, DequantizeToF32 and GetQuantInfo must all reject `q` the same way.
  void ExpectRejected(const QuantizedTensor& q, const std::vector<std::string>& substrings,
                      Status status = kInvalid) {
    std::vector<float> out(static_cast<size_t>(512));
    ExpectError([&] { Dequantize(q, TensorView{out.data(), DType::kF32, {8, 64}}); }, status, substrings);
    ExpectError([&] { DequantizeToF32(q); }, status, substrings);
    ExpectError([&] { GetQuantInfo(q); }, status, substrings);
  }
};

TEST_F(CorruptState, PayloadAndScales) {
  QuantizedTensor q = QuantizeNF4(X(), 64);
  q.data.pop_back();
  ExpectRejected(q, {"payload is 255 bytes", "expected 256"});
  q = QuantizeNF4(X(), 64);
  q.state.scales.pop_back();
  ExpectRejected(q, {"7 scales", "expected 8"});
  q = QuantizeNF4(X(), 64);
  q.state.scales[3] = std::nanf("");
  ExpectRejected(q, {"non-finite scale", "nan", "index 3"});
  q = QuantizeInt8(X());
  q.state.scales[2] = std::numeric_limits<float>::infinity();
  ExpectRejected(q, {"non-finite scale", "inf", "index 2"});
  q = QuantizeNF4(X(), 64);
  q.state.block_size = 48;
  ExpectRejected(q, {"block size 48"});
  q = QuantizeNF4(X(), 64);
  q.state.shape = {8, -64};
  ExpectRejected(q, {"[8, -64]"});
  q = QuantizeNF4(X(), 64);
  q.state.shape = {};
  ExpectRejected(q, {"empty shape"});
  q = QuantizeNF4(X(), 64);
  q.state.format = static_cast<Format>(99);
  ExpectRejected(q, {"99"}, Status::kUnsupportedFormat);
  q = QuantizeNF4(X(), 64);
  q.state.dtype = DType::kI32;
  ExpectRejected(q, {"i32"});
  q = QuantizeInt8(X());
  q.state.granularity = Granularity::kBlock;
  ExpectRejected(q, {"granularity 1"});
  q = QuantizeInt8(X());
  q.state.granularity = static_cast<Granularity>(200);
  ExpectRejected(q, {"granularity 200"});
}

TEST_F(CorruptState, ZeroPointsAndCodebooks) {
  QuantizedTensor q = QuantizeInt4(X(), 32, /*symmetric=*/false);
  q.state.zero_points[4] = 16;
  ExpectRejected(q, {"zero point 16 out of range"});
  q = QuantizeInt4(X(), 32, false);
  q.state.zero_points.pop_back();
  ExpectRejected(q, {"15 zero points", "expected 16"});
  q = QuantizeInt4(X(), 32, true);
  q.state.zero_points.assign(16, 8);
  ExpectRejected(q, {"unexpected zero points"});
  q = QuantizeNF4(X(), 64);
  q.state.codebook.pop_back();
  ExpectRejected(q, {"codebook has 15 entries", "expected 16"});
  q = QuantizeBlockwise(X(), 64);
  q.state.codebook.resize(16);
  ExpectRejected(q, {"codebook has 16 entries", "expected 256"});
  q = QuantizeFP4(X(), 64);
  q.state.codebook[9] = std::numeric_limits<float>::infinity();
  ExpectRejected(q, {"non-finite codebook"});
  q = QuantizeInt8(X());
  q.state.codebook.assign(16, 0.0f);
  ExpectRejected(q, {"codebook has 16 entries", "expected 0"});
}

TEST_F(CorruptState, NestedState) {
  const QuantizedTensor good = QuantizeNF4(ConstTensorView{x_.data(), DType::kF32, {512}}, 32, true);
  ASSERT_TRUE(good.state.nested.has_value());
  QuantizedTensor q = good;
  q.state.nested->codes.pop_back();
  ExpectRejected(q, {"nested codes count 15", "16"});
  q = good;
  q.state.nested->absmax.push_back(1.0f);
  ExpectRejected(q, {"nested absmax count 2"});
  q = good;
  q.state.nested->code.resize(255);
  ExpectRejected(q, {"256"});
  q = good;
  q.state.nested->offset = std::nanf("");
  ExpectRejected(q, {"non-finite nested"});
  q = good;
  q.state.nested->block_size = 0;
  ExpectRejected(q, {"nested block size"});
  q = good;
  q.state.scales.assign(16, 1.0f);
  ExpectRejected(q, {"both plain and nested"});
  q = QuantizeInt8(X());
  q.state.nested = good.state.nested;
  q.state.scales.clear();
  ExpectRejected(q, {"no double quantization"});
}

TEST_F(CorruptState, OutputView) {
  const QuantizedTensor q = QuantizeNF4(X(), 64);
  std::vector<float> out(512);
  ExpectError([&] { Dequantize(q, TensorView{out.data(), DType::kF32, {8, 63}}); }, kInvalid,
              {"504", "512"});
  ExpectError([&] { Dequantize(q, TensorView{nullptr, DType::kF32, {8, 64}}); }, kInvalid,
              {"null data"});
  ExpectError([&] { Dequantize(q, TensorView{out.data(), DType::kU8, {8, 64}}); }, kInvalid, {"u8"});
  // A valid tensor still dequantizes after all that.
  EXPECT_NO_THROW(Dequantize(q, TensorView{out.data(), DType::kF32, {512}}));
}

// A broken invariant is a lowbit bug: it must surface as Error(kInternal) naming where, never abort
// the host process.
TEST(Invariants, BrokenInvariantThrowsInternalWithLocation) {
  try {
    LOWBIT_DCHECK_INVARIANT(1 + 1 == 3);
    FAIL() << "no exception";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), Status::kInternal);
    EXPECT_NE(std::string(e.what()).find("api_errors_test.cc:"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("1 + 1 == 3"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace lowbit
