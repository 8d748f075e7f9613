// The runtime format table, one row per codec of include/lowbit/codecs/, and name lookup.
#include "lowbit/format.h"

#include <array>
#include <string>

#include "reference/codec_reference.h"

namespace lowbit {

namespace {

// One row from a codec: the table is derived, never typed (codecs/codec.h lists the members).
template <class C>
constexpr FormatInfo RowOf() {
  constexpr bool kDense = C::kScaleKind == ScaleKind::kNone;
  FormatInfo info{};
  info.format = C::kFormat;
  info.name = C::kName;
  info.code_bits = C::kCodeBits;
  info.dense_dtype = C::kDenseDType;
  info.default_granularity = C::kDefaultGranularity;
  info.granularities = C::kGranularities;
  info.default_block = C::kDefaultBlock;
  info.min_block = C::kMinBlock;
  info.max_block = C::kMaxBlock;
  info.scale_kind = C::kScaleKind;
  info.statistic_dtype = C::kStatisticDType;
  info.has_zero_point = C::kHasZeroPoint;
  info.has_tensor_scale = C::kHasTensorScale;
  info.codebook = C::kCodebook;
  info.codebook_size = C::kCodebookSize;
  info.code_values = C::kCodeValues;
  info.supports_double_quant = C::kDoubleQuant;
  info.activation_partner = C::kActivationPartner;
  if constexpr (!kDense) {
    info.reference_quantize = &ref::QuantizeWithCodec<C>;
    info.reference_dequantize = &ref::DequantizeWithCodec<C>;
  }
  return info;
}

template <class... C>
constexpr std::array<FormatInfo, sizeof...(C)> TableOf(CodecList<C...>*) {
  return {RowOf<C>()...};
}

// Indexed by Format (VisitFormat's static_assert keeps AllCodecs in enum order).
constexpr std::array<FormatInfo, kNumFormats> kFormatTable =
    TableOf(static_cast<AllCodecs*>(nullptr));

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
