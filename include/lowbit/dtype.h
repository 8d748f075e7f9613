// lowbit/dtype.h — element types, tensor views, and exact float32 <-> bfloat16/float16 conversion.
#ifndef LOWBIT_DTYPE_H_
#define LOWBIT_DTYPE_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace lowbit {

// Element types of dense tensors (activations, unquantized weights, stored statistics) and of
// safetensors payloads. Numbers are persisted nowhere; names are (see DTypeName).
enum class DType : uint8_t {
  kF32 = 0,
  kF16 = 1,
  kBF16 = 2,
  kF64 = 3,
  kI8 = 4,
  kU8 = 5,
  kI16 = 6,
  kI32 = 7,
  kI64 = 8,
  kBool = 9,
  kF8E4M3 = 10,
  kF8E5M2 = 11,
  kU16 = 12,
  kU32 = 13,
  kU64 = 14,
};

// Bytes per element.
size_t DTypeSize(DType dtype) noexcept;
// Short stable name: "f32", "f16", "bf16", "f64", "i8", "u8", "i16", "i32", "i64", "bool",
// "f8_e4m3", "f8_e5m2", "u16", "u32", "u64".
const char* DTypeName(DType dtype) noexcept;
// Inverse of DTypeName; also accepts torch-style names ("float32", "float16", "bfloat16").
// Throws Error(kInvalidArgument) for an unknown name.
DType DTypeFromName(std::string_view name);
// True for f32, f16 and bf16: the dtypes lowbit quantizes from and dequantizes to.
constexpr bool IsFloatActivation(DType d) {
  return d == DType::kF32 || d == DType::kF16 || d == DType::kBF16;
}

// Logical shape, outermost dimension first (row-major).
using Shape = std::vector<int64_t>;
// Product of the dims; throws Error(kInvalidArgument) for a negative dim or int64 overflow.
int64_t NumElements(const Shape& shape);
// "[4096, 11008]".
std::string ShapeToString(const Shape& shape);

// bfloat16 and IEEE float16 storage: 16 bits, layout-compatible with hwy::bfloat16_t/float16_t.
struct BF16 {
  uint16_t bits;
};
struct F16 {
  uint16_t bits;
};
static_assert(sizeof(BF16) == 2 && sizeof(F16) == 2, "16-bit storage types");

inline uint32_t F32Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float F32FromBits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline float BF16ToF32(BF16 b) { return F32FromBits(static_cast<uint32_t>(b.bits) << 16); }

// Round to nearest, ties to even. NaN stays NaN (quiet bit forced so truncation cannot make it
// Inf); +-Inf stays Inf; values that round past the max finite bfloat16 become Inf (IEEE).
inline BF16 F32ToBF16(float f) {
  const uint32_t u = F32Bits(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return BF16{static_cast<uint16_t>((u >> 16) | 0x0040u)};
  const uint32_t lsb = (u >> 16) & 1u;
  return BF16{static_cast<uint16_t>((u + 0x7FFFu + lsb) >> 16)};
}

// Exact widening (every float16 value is a float32 value).
inline float F16ToF32(F16 h) {
  const uint32_t sign = static_cast<uint32_t>(h.bits & 0x8000u) << 16;
  const uint32_t exp = (h.bits >> 10) & 0x1Fu;
  uint32_t man = h.bits & 0x3FFu;
  if (exp == 0x1F) return F32FromBits(sign | 0x7F800000u | (man << 13));  // Inf / NaN
  if (exp != 0) return F32FromBits(sign | ((exp + 112u) << 23) | (man << 13));
  if (man == 0) return F32FromBits(sign);  // +-0
  // Subnormal: value = man * 2^-24; normalize.
  int e = -1;
  do {
    man <<= 1;
    ++e;
  } while ((man & 0x400u) == 0);
  return F32FromBits(sign | ((112u - static_cast<uint32_t>(e)) << 23) | ((man & 0x3FFu) << 13));
}

// Round to nearest, ties to even, including into and within the subnormal range. Magnitudes that
// round past 65504 become Inf; NaN stays NaN (quiet).
inline F16 F32ToF16(float f) {
  const uint32_t u = F32Bits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t abs = u & 0x7FFFFFFFu;
  if (abs > 0x7F800000u) return F16{static_cast<uint16_t>(sign | 0x7E00u | ((abs >> 13) & 0x3FFu))};
  if (abs >= 0x47800000u) return F16{static_cast<uint16_t>(sign | 0x7C00u)};  // >= 65536: Inf
  if (abs >= 0x38800000u) {  // normal half range (>= 2^-14)
    const uint32_t lsb = (abs >> 13) & 1u;
    const uint32_t rounded = abs + 0xFFFu + lsb;  // may carry into the exponent: still correct
    return F16{static_cast<uint16_t>(sign | ((rounded - 0x38000000u) >> 13))};
  }
  if (abs < 0x33000000u) return F16{sign};  // < 2^-25: rounds to zero (2^-25 exact tie -> 0)
  // Subnormal half: value = m * 2^-24, m = round(abs_value * 2^24).
  const uint32_t exp = abs >> 23;
  const uint32_t man = (abs & 0x7FFFFFu) | 0x800000u;
  const uint32_t shift = 126u - exp;  // 14..24 for exp in [102, 112]
  const uint32_t half_bit = 1u << (shift - 1);
  uint32_t m = man >> shift;
  const uint32_t rest = man & ((1u << shift) - 1u);
  if (rest > half_bit || (rest == half_bit && (m & 1u))) ++m;
  return F16{static_cast<uint16_t>(sign | m)};
}

// Read-only view of a dense tensor owned by the caller; nothing is copied. `data` must hold
// NumElements(shape) contiguous row-major elements of `dtype`.
struct ConstTensorView {
  const void* data = nullptr;
  DType dtype = DType::kF32;
  Shape shape;
};
// Writable view of a dense tensor owned by the caller.
struct TensorView {
  void* data = nullptr;
  DType dtype = DType::kF32;
  Shape shape;
  operator ConstTensorView() const { return {data, dtype, shape}; }
};

// Throws Error(kInvalidArgument) naming `what` if the view is null, has a non-positive dim, or
// (when `float_only`) is not f32/f16/bf16. Returns the element count.
int64_t ValidateView(const ConstTensorView& view, const char* what, bool float_only = true);
// Same for a writable view (no conversion to ConstTensorView, which would copy the shape).
int64_t ValidateView(const TensorView& view, const char* what, bool float_only = true);

// Converts n elements of an f32/f16/bf16 buffer to float32 (exact) and back (RNE).
void ToF32(const void* src, DType src_dtype, int64_t n, float* dst);
void FromF32(const float* src, int64_t n, void* dst, DType dst_dtype);

}  // namespace lowbit

#endif  // LOWBIT_DTYPE_H_
