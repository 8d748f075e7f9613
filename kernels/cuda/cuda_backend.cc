// The CUDA backend's dispatch-table entries (src/backend.h): packing canonical weights into device
// memory, device dequantize / quantize, the fused GEMV and the dequantize-tile + cuBLAS GEMM.
//
// Execution layout (DESIGN §4): the canonical payload copied to the device unchanged, plus the
// resolved float32 statistics (double quantization undone on the host with the reference
// decompression), zero points and the code table. Keeping the canonical bytes means Unpack is a
// download and the dequantize kernel serves both Dequantize and the GEMM tiles.
//
// Matmul paths:
//   M == 1, K % 32 == 0, format nf4/fp4/int4/int4_asym/int8/int8_asym/fp8_e4m3/fp8_e5m2:
//       fused GEMV kernel (gemv_kernels.cu).
//   otherwise (M > 1, other formats/shapes): rows of W are dequantized in tiles of at most
//       kTileBytes into a device buffer in the activation's type (float32 for f32 activations,
//       bf16 for bf16, f16 for f16 unless |w| could exceed the f16 range, then float32) and
//       multiplied with cublasGemmEx (float32 accumulation, no TF32), then bias + rounding.
// Activations, outputs and bias may be host or device memory (device pointers are used in
// place). All entries serialize on one mutex and one stream; results are complete when an entry
// with host outputs returns, and after sync() otherwise.
#include "kernels/cuda/cuda_backend.h"

#include <cublas_api.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "backend.h"
#include "kernels/cuda/device_runtime.h"
#include "kernels/cuda/launch.h"
#include "kernels/cuda/weight_view.h"
#include "lowbit/quantize.h"
#include "reference/reference.h"

namespace lowbit::cuda {
namespace {

// Upper bound on the dequantized tile of the GEMM path: large enough that cuBLAS sees GEMMs of
// thousands of rows, small next to any GPU this targets (A100 40 GB and up).
constexpr size_t kTileBytes = size_t{64} << 20;
// float16 range: tiles of weights whose magnitude bound exceeds it use float32.
constexpr float kF16Max = 65504.0f;

std::mutex& Mutex() {
  static std::mutex mu;
  return mu;
}

// Staging buffers reused across calls (guarded by Mutex()).
struct Staging {
  DeviceBuffer x, x_conv, bias, y, acc, tile;
};
Staging& Stage() {
  static Staging s;
  return s;
}

DenseType ToDense(DType d) {
  switch (d) {
    case DType::kF16: return DenseType::kF16;
    case DType::kBF16: return DenseType::kBF16;
    default: return DenseType::kF32;
  }
}
size_t DenseSize(DenseType t) { return t == DenseType::kF32 ? 4 : 2; }
cudaDataType CudaType(DenseType t) {
  switch (t) {
    case DenseType::kF16: return CUDA_R_16F;
    case DenseType::kBF16: return CUDA_R_16BF;
    default: return CUDA_R_32F;
  }
}

// A canonical tensor's statistics and tables on the device.
struct DeviceWeight {
  WKind kind = WKind::kF32;
  StatMap map;
  float lut16[16] = {};
  DeviceBuffer data, scales, zeros, lut;
  float max_scale = 0.0f;  // max |resolved statistic|

  void Upload(const QuantizedTensor& q, bool upload_payload) {
    const QuantState& s = q.state;
    kind = KindOf(s.format);
    map = MakeStatMap(s);
    if (upload_payload) data = UploadCopy(q.data.data(), q.data.size());
    if (IsDense(s.format)) return;
    const std::vector<float> resolved = ResolveScales(s);  // reference decompression: exact
    for (const float v : resolved) max_scale = std::max(max_scale, std::fabs(v));
    scales = UploadCopy(resolved.data(), resolved.size() * sizeof(float));
    if (!s.zero_points.empty()) zeros = UploadCopy(s.zero_points.data(), s.zero_points.size());
    if (kind == WKind::kLut4) {
      Lut16(s, lut16);
      lut = UploadCopy(lut16, sizeof(lut16));
    } else if (kind == WKind::kLut8) {
      lut = UploadCopy(s.codebook.data(), s.codebook.size() * sizeof(float));
    }
  }

  WeightView View(const uint8_t* payload) const {
    WeightView v;
    v.kind = kind;
    v.data = payload;
    v.scales = scales.as<float>();
    v.zeros = zeros.as<uint8_t>();
    v.lut = lut.as<float>();
    v.map = map;
    return v;
  }
};

struct CudaPacked : BackendPacked {
  QuantState state;  // canonical state as given (for Unpack)
  DeviceWeight w;
  bool fused = false;    // fused GEMV applies
  float w_bound = 0.0f;  // upper bound of |w|: picks the f16 or f32 GEMM tile
};

float WeightBound(const QuantizedTensor& q, const DeviceWeight& w) {
  switch (w.kind) {
    case WKind::kLut4: {
      float m = 0.0f;
      for (const float v : w.lut16) m = std::max(m, std::fabs(v));
      return w.max_scale * (q.state.zero_points.empty() ? m : 15.0f);
    }
    case WKind::kInt8: return w.max_scale;  // code * absmax / 127
    case WKind::kUInt8: return w.max_scale * 255.0f;
    case WKind::kE4M3: return w.max_scale * LOWBIT_FP8_E4M3_MAX;
    case WKind::kE5M2: return w.max_scale * LOWBIT_FP8_E5M2_MAX;
    case WKind::kLut8: return w.max_scale;  // map entries lie in [-1, 1]
    case WKind::kF16: return kF16Max;
    default: {  // f32 / bf16 payload: measure
      const std::vector<float> v = DequantizeToF32(q);
      float m = 0.0f;
      for (const float e : v) m = std::max(m, std::fabs(e));
      return m;
    }
  }
}

std::unique_ptr<BackendPacked> Pack(const QuantizedTensor& q) {
  std::lock_guard<std::mutex> lock(Mutex());
  auto p = std::make_unique<CudaPacked>();
  p->format = q.state.format;
  p->rows = q.state.shape[0];
  p->cols = q.state.shape[1];
  p->state = q.state;
  p->w.Upload(q, /*upload_payload=*/true);
  p->fused = GemvKindSupported(p->w.kind) && p->cols % kGemvChunk == 0;
  p->w_bound = WeightBound(q, p->w);
  p->packed_bytes = static_cast<int64_t>(p->w.data.bytes() + p->w.scales.bytes() +
                                         p->w.zeros.bytes() + p->w.lut.bytes());
  SyncStream();  // the host copies in `q` may be freed once Pack returns
  return p;
}

QuantizedTensor Unpack(const BackendPacked& packed) {
  const CudaPacked& p = static_cast<const CudaPacked&>(packed);
  std::lock_guard<std::mutex> lock(Mutex());
  QuantizedTensor q;
  q.state = p.state;
  q.data.resize(static_cast<size_t>(PayloadBytes(p.format, p.rows * p.cols)));
  Download(q.data.data(), p.w.data.get(), q.data.size());
  return q;
}

std::string Supports(Format format, BackendOp op, DType activation, const MatmulOptions& options) {
  if (static_cast<int>(format) >= kNumFormats) return "unknown format";
  // The formats appended after the CUDA kernels were written have no device path yet (their CPU
  // kernels are the tested path).
  if (format == Format::kMXFP4 || format == Format::kNVFP4 || format == Format::kIQ4NL) {
    return std::string(FormatName(format)) + " is not implemented on the cuda backend yet";
  }
  switch (op) {
    case BackendOp::kQuantize:
      if (format == Format::kNF4 || format == Format::kFP4 || format == Format::kInt8) return {};
      return std::string("device quantization covers nf4, fp4 and int8, not ") + FormatName(format);
    case BackendOp::kMatmul:
      if (!IsFloatActivation(activation)) {
        return std::string("activations must be f32, f16 or bf16, got ") + DTypeName(activation);
      }
      if (options.int8_activations) {
        return "int8 activations are not implemented on the cuda backend";
      }
      return {};
    default:
      return {};
  }
}

void Dequantize(const QuantizedTensor& q, float* out) {
  std::lock_guard<std::mutex> lock(Mutex());
  DeviceWeight w;
  w.Upload(q, /*upload_payload=*/true);
  const int64_t n = q.state.num_elements();
  DeviceBuffer dst(static_cast<size_t>(n) * sizeof(float));
  LaunchDequantize(w.View(w.data.as<uint8_t>()), 0, n, dst.get(), DenseType::kF32, Stream());
  Download(out, dst.get(), static_cast<size_t>(n) * sizeof(float));
}

void Quantize(const float* x, const QuantizeOptions& o, QuantizedTensor& out) {
  std::lock_guard<std::mutex> lock(Mutex());
  QuantState& s = out.state;
  const int64_t n = s.num_elements();
  const int64_t nstats = s.num_scales();
  const bool four_bit = (s.format == Format::kNF4 || s.format == Format::kFP4);
  // Statistic segments are contiguous in flat order: blocks (nf4/fp4), rows or the whole tensor.
  const int64_t segment = four_bit ? s.block_size
                          : (s.granularity == Granularity::kRow) ? s.cols()
                                                                 : n;
  DeviceBuffer xd = UploadCopy(x, static_cast<size_t>(n) * sizeof(float));
  DeviceBuffer amax(static_cast<size_t>(nstats) * sizeof(uint32_t));
  DeviceBuffer codes(out.data.size());
  CheckCuda(cudaMemsetAsync(amax.get(), 0, amax.bytes(), Stream()), "cudaMemsetAsync");
  LaunchSegmentAbsmax(xd.as<float>(), n, segment, amax.as<uint32_t>(), Stream());
  if (four_bit) {
    LaunchEncode4bit(s.format == Format::kNF4, xd.as<float>(), n, segment, amax.as<uint32_t>(),
                     codes.as<uint8_t>(), Stream());
  } else {
    LaunchEncodeInt8(xd.as<float>(), n, segment, amax.as<uint32_t>(), codes.as<int8_t>(), Stream());
  }
  std::vector<float> absmax(static_cast<size_t>(nstats));
  CheckCuda(cudaMemcpyAsync(absmax.data(), amax.get(), amax.bytes(), cudaMemcpyDeviceToHost,
                            Stream()),
            "download absmax");
  Download(out.data.data(), codes.get(), out.data.size());
  if (four_bit) {
    const float* book = (s.format == Format::kNF4) ? kNF4Codebook : kFP4Codebook;
    s.codebook.assign(book, book + 16);
  }
  if (four_bit && o.double_quant) {
    // Double quantization of the absmax vector (small) runs the reference on the host.
    s.nested = ref::CompressStatistics(absmax.data(), nstats, LOWBIT_NESTED_BLOCK, o.nested_offset);
    s.scales.clear();
  } else {
    s.scales = std::move(absmax);
  }
}

// Device pointer for a caller buffer: `p` itself when it is device memory with `align`-byte
// alignment, else a staged copy in `stage` (host: upload; misaligned device: device copy).
const void* StageInput(const void* p, size_t bytes, size_t align, DeviceBuffer& stage) {
  const bool device = IsDevicePointer(p);
  if (device && reinterpret_cast<uintptr_t>(p) % align == 0) return p;
  stage.Resize(bytes);
  CheckCuda(cudaMemcpyAsync(stage.get(), p, bytes, device ? cudaMemcpyDeviceToDevice
                                                          : cudaMemcpyHostToDevice,
                            Stream()),
            "stage input");
  return stage.get();
}

void RequireIntRange(int64_t v, const char* what) {
  Require(v <= INT32_MAX, Status::kInvalidArgument,
          std::string("cuda backend: ") + what + " = " + std::to_string(v) +
              " exceeds the cuBLAS int range");
}

void Gemm(const BackendPacked& packed, const MatmulArgs& a, Context&) {
  const CudaPacked& p = static_cast<const CudaPacked&>(packed);
  std::lock_guard<std::mutex> lock(Mutex());
  Staging& st = Stage();
  const int64_t m = a.m, n = p.rows, k = p.cols;
  RequireIntRange(std::max({m, n, k}), "a matmul dimension");
  const DenseType x_type = ToDense(a.x_dtype), y_type = ToDense(a.y_dtype);
  DenseType ct = x_type;
  if (x_type == DenseType::kF16 && !(p.w_bound <= kF16Max)) ct = DenseType::kF32;
  const void* x = StageInput(a.x, static_cast<size_t>(m * k) * DenseSize(x_type), 16, st.x);
  if (ct != x_type) {
    st.x_conv.Resize(static_cast<size_t>(m * k) * DenseSize(ct));
    LaunchConvert(x, x_type, m * k, st.x_conv.get(), ct, Stream());
    x = st.x_conv.get();
  }
  const float* bias = a.bias ? static_cast<const float*>(StageInput(
                                   a.bias, static_cast<size_t>(n) * sizeof(float), 4, st.bias))
                             : nullptr;
  st.acc.Resize(static_cast<size_t>(m * n) * sizeof(float));
  const int64_t rows_per_tile = std::clamp<int64_t>(
      static_cast<int64_t>(kTileBytes / (static_cast<size_t>(k) * DenseSize(ct))), 1, n);
  st.tile.Resize(static_cast<size_t>(rows_per_tile * k) * DenseSize(ct));
  const WeightView view = p.w.View(p.w.data.as<uint8_t>());
  const CublasApi& blas = Cublas();
  const float alpha = 1.0f, beta = 0.0f;
  for (int64_t n0 = 0; n0 < n; n0 += rows_per_tile) {
    const int64_t nt = std::min(rows_per_tile, n - n0);
    LaunchDequantize(view, n0 * k, nt * k, st.tile.get(), ct, Stream());
    // Row-major y[m, n] = x[m, k] . W[n, k]^T is column-major y^T = W_tile^T(op T) . x^T.
    CheckCublas(blas.gemm_ex(blas.handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(nt),
                             static_cast<int>(m), static_cast<int>(k), &alpha, st.tile.get(),
                             CudaType(ct), static_cast<int>(k), x, CudaType(ct),
                             static_cast<int>(k), &beta, st.acc.as<float>() + n0, CUDA_R_32F,
                             static_cast<int>(n), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                "cublasGemmEx");
  }
  const size_t y_bytes = static_cast<size_t>(m * n) * DenseSize(y_type);
  const bool y_device = IsDevicePointer(a.y);
  void* y = a.y;
  if (!y_device) {
    st.y.Resize(y_bytes);
    y = st.y.get();
  }
  LaunchEpilogue(st.acc.as<float>(), bias, m, n, y, y_type, Stream());
  if (!y_device) Download(a.y, y, y_bytes);
}

void Gemv(const BackendPacked& packed, const MatmulArgs& a, Context& ctx) {
  const CudaPacked& p = static_cast<const CudaPacked&>(packed);
  if (!p.fused || a.m != 1) return Gemm(packed, a, ctx);
  std::lock_guard<std::mutex> lock(Mutex());
  Staging& st = Stage();
  GemvArgs g;
  g.w = p.w.View(p.w.data.as<uint8_t>());
  std::memcpy(g.lut16, p.w.lut16, sizeof(g.lut16));
  g.rows = p.rows;
  g.cols = p.cols;
  g.x_type = ToDense(a.x_dtype);
  g.x = StageInput(a.x, static_cast<size_t>(p.cols) * DenseSize(g.x_type), 16, st.x);
  g.bias = a.bias ? static_cast<const float*>(StageInput(
                        a.bias, static_cast<size_t>(p.rows) * sizeof(float), 4, st.bias))
                  : nullptr;
  g.y_type = ToDense(a.y_dtype);
  const size_t y_bytes = static_cast<size_t>(p.rows) * DenseSize(g.y_type);
  const bool y_device = IsDevicePointer(a.y);
  g.y = a.y;
  if (!y_device) {
    st.y.Resize(y_bytes);
    g.y = st.y.get();
  }
  LaunchGemv(g, Stream());
  if (!y_device) Download(a.y, g.y, y_bytes);
}

bool ProbeEntry() { return Probe().usable; }

void Sync() { SyncStream(); }

}  // namespace

std::string UnavailableReason() { return Probe().usable ? std::string() : Probe().reason; }

bool UsesFusedGemv(const BackendPacked& packed) {
  return static_cast<const CudaPacked&>(packed).fused;
}

const Backend kBackend = {
    /*name=*/"cuda",
    /*probe=*/&ProbeEntry,
    /*supports=*/&Supports,
    /*pack=*/&Pack,
    /*unpack=*/&Unpack,
    /*dequantize=*/&Dequantize,
    /*gemv=*/&Gemv,
    /*gemm=*/&Gemm,
    /*sync=*/&Sync,
    /*quantize=*/&Quantize,
};

}  // namespace lowbit::cuda
