// The runtime format table and the canonical codebooks, instantiated once from format_layout.h.
#include "lowbit/format.h"

#include <string>

#include "reference/reference.h"

namespace lowbit {

const float kNF4Codebook[16] = LOWBIT_NF4_CODEBOOK_INIT;
const float kFP4Codebook[16] = LOWBIT_FP4_CODEBOOK_INIT;
const float kNF4Thresholds[15] = LOWBIT_NF4_THRESHOLDS_INIT;
const float kFP4Thresholds[7] = LOWBIT_FP4_THRESHOLDS_INIT;
const uint8_t kFP4ThresholdCodes[7] = LOWBIT_FP4_THRESHOLD_CODES_INIT;
const float kDynamicMap[256] = LOWBIT_DYNAMIC_MAP_INIT;

namespace {

constexpr uint32_t Mask(Granularity g) { return 1u << static_cast<int>(g); }
constexpr uint32_t kRowOrTensor = Mask(Granularity::kRow) | Mask(Granularity::kTensor);

// Indexed by Format; the static_assert below keeps order and enum in step.
constexpr FormatInfo kFormatTable[kNumFormats] = {
    {Format::kF32, "f32", 32, DType::kF32, Granularity::kNone, Mask(Granularity::kNone), 0, 0, 0,
     ScaleKind::kNone, false, nullptr, 0, false, Format::kF32, nullptr, nullptr},
    {Format::kF16, "f16", 16, DType::kF16, Granularity::kNone, Mask(Granularity::kNone), 0, 0, 0,
     ScaleKind::kNone, false, nullptr, 0, false, Format::kF32, nullptr, nullptr},
    {Format::kBF16, "bf16", 16, DType::kBF16, Granularity::kNone, Mask(Granularity::kNone), 0, 0, 0,
     ScaleKind::kNone, false, nullptr, 0, false, Format::kF32, nullptr, nullptr},
    {Format::kInt8, "int8", 8, DType::kI8, Granularity::kRow, kRowOrTensor, 0, 0, 0,
     ScaleKind::kAbsmax, false, nullptr, 0, false, Format::kInt8, &ref::QuantizeInt8,
     &ref::DequantizeInt8},
    {Format::kInt8Asym, "int8_asym", 8, DType::kU8, Granularity::kRow, kRowOrTensor, 0, 0, 0,
     ScaleKind::kScale, true, nullptr, 0, false, Format::kInt8, &ref::QuantizeInt8Asym,
     &ref::DequantizeInt8Asym},
    {Format::kInt4, "int4", 4, DType::kU8, Granularity::kGroup, Mask(Granularity::kGroup),
     LOWBIT_INT4_DEFAULT_GROUP, LOWBIT_INT4_MIN_GROUP, LOWBIT_INT4_MAX_GROUP, ScaleKind::kScale,
     false, nullptr, 0, false, Format::kInt8, &ref::QuantizeInt4, &ref::DequantizeInt4},
    {Format::kInt4Asym, "int4_asym", 4, DType::kU8, Granularity::kGroup, Mask(Granularity::kGroup),
     LOWBIT_INT4_DEFAULT_GROUP, LOWBIT_INT4_MIN_GROUP, LOWBIT_INT4_MAX_GROUP, ScaleKind::kScale,
     true, nullptr, 0, false, Format::kInt8, &ref::QuantizeInt4Asym, &ref::DequantizeInt4},
    {Format::kNF4, "nf4", 4, DType::kU8, Granularity::kBlock, Mask(Granularity::kBlock),
     LOWBIT_4BIT_DEFAULT_BLOCK, LOWBIT_4BIT_MIN_BLOCK, LOWBIT_4BIT_MAX_BLOCK, ScaleKind::kAbsmax,
     false, kNF4Codebook, 16, true, Format::kF32, &ref::QuantizeNF4, &ref::Dequantize4bitCodebook},
    {Format::kFP4, "fp4", 4, DType::kU8, Granularity::kBlock, Mask(Granularity::kBlock),
     LOWBIT_4BIT_DEFAULT_BLOCK, LOWBIT_4BIT_MIN_BLOCK, LOWBIT_4BIT_MAX_BLOCK, ScaleKind::kAbsmax,
     false, kFP4Codebook, 16, true, Format::kF32, &ref::QuantizeFP4, &ref::Dequantize4bitCodebook},
    {Format::kFP8E4M3, "fp8_e4m3", 8, DType::kF8E4M3, Granularity::kRow, kRowOrTensor, 0, 0, 0,
     ScaleKind::kScale, false, nullptr, 0, false, Format::kF32, &ref::QuantizeFP8,
     &ref::DequantizeFP8},
    {Format::kFP8E5M2, "fp8_e5m2", 8, DType::kF8E5M2, Granularity::kRow, kRowOrTensor, 0, 0, 0,
     ScaleKind::kScale, false, nullptr, 0, false, Format::kF32, &ref::QuantizeFP8,
     &ref::DequantizeFP8},
    {Format::kBlockwise8, "blockwise8", 8, DType::kU8, Granularity::kBlock,
     Mask(Granularity::kBlock), LOWBIT_BLOCKWISE8_DEFAULT_BLOCK, LOWBIT_BLOCKWISE8_MIN_BLOCK,
     LOWBIT_BLOCKWISE8_MAX_BLOCK, ScaleKind::kAbsmax, false, kDynamicMap, 256, true, Format::kF32,
     &ref::QuantizeBlockwise8, &ref::DequantizeBlockwise8},
};

constexpr bool TableInEnumOrder() {
  for (int i = 0; i < kNumFormats; ++i) {
    if (static_cast<int>(kFormatTable[i].format) != i) return false;
  }
  return true;
}
static_assert(TableInEnumOrder(), "kFormatTable rows must follow the Format enum");

}  // namespace

const FormatInfo& GetFormatInfo(Format format) {
  const int i = static_cast<int>(format);
  if (i < 0 || i >= kNumFormats) {
    throw Error(Status::kUnsupportedFormat, "unknown format value " + std::to_string(i));
  }
  LOWBIT_DCHECK_INVARIANT(kFormatTable[i].format == format);
  return kFormatTable[i];
}

const char* FormatName(Format format) noexcept {
  const int i = static_cast<int>(format);
  return (i >= 0 && i < kNumFormats) ? kFormatTable[i].name : "unknown";
}

Format FormatFromName(std::string_view name) {
  for (const FormatInfo& info : kFormatTable) {
    if (name == info.name) return info.format;
  }
  struct Alias {
    const char* alias;
    Format format;
  };
  static const Alias kAliases[] = {
      {"float32", Format::kF32},       {"float16", Format::kF16},   {"bfloat16", Format::kBF16},
      {"int8_row", Format::kInt8},     {"llm_int8", Format::kInt8}, {"e4m3", Format::kFP8E4M3},
      {"fp8", Format::kFP8E4M3},       {"e5m2", Format::kFP8E5M2},  {"dynamic8", Format::kBlockwise8},
      {"int4_sym", Format::kInt4},
  };
  for (const Alias& a : kAliases) {
    if (name == a.alias) return a.format;
  }
  std::string known;
  for (const FormatInfo& info : kFormatTable) known += std::string(known.empty() ? "" : ", ") + info.name;
  throw Error(Status::kUnsupportedFormat,
              "unknown format '" + std::string(name) + "' (known: " + known + ")");
}

int64_t PayloadBytes(Format format, int64_t num_elements) {
  const FormatInfo& info = GetFormatInfo(format);
  Require(num_elements >= 0, Status::kInvalidArgument,
          "negative element count " + std::to_string(num_elements));
  if (info.code_bits == 4) return (num_elements + 1) / 2;
  return num_elements * (info.code_bits / 8);
}

}  // namespace lowbit
