// DType names and sizes, shape arithmetic, and bulk f32 <-> f16/bf16 conversion.
#include "lowbit/dtype.h"

#include <cmath>
#include <limits>

#include "lowbit/status.h"

namespace lowbit {

size_t DTypeSize(DType dtype) noexcept {
  switch (dtype) {
    case DType::kF64: case DType::kI64: case DType::kU64: return 8;
    case DType::kF32: case DType::kI32: case DType::kU32: return 4;
    case DType::kF16: case DType::kBF16: case DType::kI16: case DType::kU16: return 2;
    case DType::kI8: case DType::kU8: case DType::kBool: case DType::kF8E4M3: case DType::kF8E5M2:
      return 1;
  }
  return 0;
}

const char* DTypeName(DType dtype) noexcept {
  switch (dtype) {
    case DType::kF32: return "f32";
    case DType::kF16: return "f16";
    case DType::kBF16: return "bf16";
    case DType::kF64: return "f64";
    case DType::kI8: return "i8";
    case DType::kU8: return "u8";
    case DType::kI16: return "i16";
    case DType::kI32: return "i32";
    case DType::kI64: return "i64";
    case DType::kBool: return "bool";
    case DType::kF8E4M3: return "f8_e4m3";
    case DType::kF8E5M2: return "f8_e5m2";
    case DType::kU16: return "u16";
    case DType::kU32: return "u32";
    case DType::kU64: return "u64";
  }
  return "unknown";
}

DType DTypeFromName(std::string_view name) {
  for (int i = 0; i <= static_cast<int>(DType::kU64); ++i) {
    const DType d = static_cast<DType>(i);
    if (name == DTypeName(d)) return d;
  }
  if (name == "float32") return DType::kF32;
  if (name == "float16") return DType::kF16;
  if (name == "bfloat16") return DType::kBF16;
  if (name == "float64") return DType::kF64;
  if (name == "int8") return DType::kI8;
  if (name == "uint8") return DType::kU8;
  throw Error(Status::kInvalidArgument, "unknown dtype name '" + std::string(name) + "'");
}

int64_t NumElements(const Shape& shape) {
  int64_t n = 1;
  for (const int64_t d : shape) {
    Require(d >= 0, Status::kInvalidArgument,
            [&] { return "negative dimension in shape " + ShapeToString(shape); });
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d) {
      throw Error(Status::kInvalidArgument, "shape " + ShapeToString(shape) + " overflows int64");
    }
    n *= d;
  }
  return n;
}

std::string ShapeToString(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

namespace {

// ValidateView for either view type. Hot path (every matmul): messages are built only on failure.
int64_t ValidateViewParts(const Shape& shape, const void* data, DType dtype, const char* what,
                          bool float_only) {
  Require(!shape.empty(), Status::kInvalidArgument,
          [&] { return std::string(what) + ": empty shape"; });
  for (const int64_t d : shape) {
    Require(d > 0, Status::kInvalidArgument, [&] {
      return std::string(what) + ": dimensions must be positive, got " + ShapeToString(shape);
    });
  }
  const int64_t n = NumElements(shape);
  Require(data != nullptr, Status::kInvalidArgument,
          [&] { return std::string(what) + ": null data"; });
  if (float_only) {
    Require(IsFloatActivation(dtype), Status::kInvalidArgument, [&] {
      return std::string(what) + ": dtype must be f32, f16 or bf16, got " + DTypeName(dtype);
    });
  }
  return n;
}

}  // namespace

int64_t ValidateView(const ConstTensorView& view, const char* what, bool float_only) {
  return ValidateViewParts(view.shape, view.data, view.dtype, what, float_only);
}

int64_t ValidateView(const TensorView& view, const char* what, bool float_only) {
  return ValidateViewParts(view.shape, view.data, view.dtype, what, float_only);
}

void ToF32(const void* src, DType src_dtype, int64_t n, float* dst) {
  switch (src_dtype) {
    case DType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      return;
    case DType::kF16: {
      const F16* s = static_cast<const F16*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = F16ToF32(s[i]);
      return;
    }
    case DType::kBF16: {
      const BF16* s = static_cast<const BF16*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = BF16ToF32(s[i]);
      return;
    }
    default:
      throw Error(Status::kInvalidArgument,
                  std::string("cannot convert dtype ") + DTypeName(src_dtype) + " to f32");
  }
}

void FromF32(const float* src, int64_t n, void* dst, DType dst_dtype) {
  switch (dst_dtype) {
    case DType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      return;
    case DType::kF16: {
      F16* d = static_cast<F16*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = F32ToF16(src[i]);
      return;
    }
    case DType::kBF16: {
      BF16* d = static_cast<BF16*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = F32ToBF16(src[i]);
      return;
    }
    default:
      throw Error(Status::kInvalidArgument,
                  std::string("cannot convert f32 to dtype ") + DTypeName(dst_dtype));
  }
}

}  // namespace lowbit
