// The CPU backend's dispatch-table entries: packing into the execution layout (cpu_kernels.h),
// unpacking, activation staging, and splitting matmuls into row tasks on Context::ParallelFor.
#include <Eigen/Core>
#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "backend.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/matmul_amx.h"
#include "kernels/cpu/quantize_4bit.h"
#include "lowbit/quantize.h"
#include "reference/reference.h"

namespace lowbit::cpu {
namespace {

// Output rows per ParallelFor task. Multiples of the kernels' row blocks, so a task boundary
// never changes how a row is computed; small enough to balance a few threads on N >= 1024.
constexpr int64_t kGemvRowsPerTask = 32;
constexpr int64_t kGemmRowsPerTask = 16;

int64_t RoundUp(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// Elements per execution-layout scale along a row such that no statistic boundary of the
// canonical state falls inside one; 0 when that is not a multiple of kChunk (then the weight
// takes the dense fallback).
int64_t ExecGroup(const QuantState& s, int64_t k_pad) {
  switch (s.granularity) {
    case Granularity::kRow:
    case Granularity::kTensor:
      return k_pad;
    case Granularity::kGroup:
      return s.block_size % kChunk == 0 ? s.block_size : 0;
    case Granularity::kBlock: {
      // Flat blocks start at multiples of block_size in the flattened tensor; within a row
      // they start at multiples of gcd(K, block_size) (block_size is a power of two).
      const int64_t k = s.cols();
      const int64_t g = std::min<int64_t>(s.block_size, k & -k);
      return g % kChunk == 0 ? g : 0;
    }
    default:
      return 0;
  }
}

// The decoder family of a format, read off its codec's table row.
CodeKind KindOf(Format f) {
  const FormatInfo& info = GetFormatInfo(f);
  if (info.scale_kind == ScaleKind::kNone) return CodeKind::kDense;  // f32/f16/bf16
  if (info.code_bits == 4) return CodeKind::kLut4;  // value = code_values[c] (or codebook)
  if (info.codebook_size == 256) return CodeKind::kLut8;  // blockwise8
  switch (info.dense_dtype) {  // one-byte codes decoded arithmetically
    case DType::kI8: return CodeKind::kInt8;
    case DType::kF8E4M3: return CodeKind::kFP8E4M3;
    case DType::kF8E5M2: return CodeKind::kFP8E5M2;
    default: return CodeKind::kUInt8;
  }
}

// Code a padding element gets (decodes to a finite value; its activation is zero).
uint8_t PadCode(Format f) {
  return VisitFormat(f, [](auto codec) { return decltype(codec)::PadCode(BlockStatistic{}); });
}

void PackCodes(const QuantizedTensor& w, CpuPacked& p) {
  const int64_t n = p.rows, k = p.cols;
  const uint8_t* src = w.data.data();
  p.codes.assign(static_cast<size_t>(n * p.row_bytes), 0);
  if (p.kind == CodeKind::kLut4) {
    const uint8_t pad = PadCode(p.format);
    for (int64_t r = 0; r < n; ++r) {
      uint8_t* row = p.codes.data() + r * p.row_bytes;
      for (int64_t e = 0; e < p.k_pad; ++e) {
        const int64_t i = r * k + e;
        const uint8_t c = (e < k) ? ((i & 1) ? (src[i >> 1] & 0x0F) : (src[i >> 1] >> 4)) : pad;
        // Chunk layout: element e of a chunk lives in byte e % 16, high nibble when e % 32 >= 16.
        const int64_t pos = e % kChunk;
        row[(e / kChunk) * (kChunk / 2) + pos % (kChunk / 2)] |=
            static_cast<uint8_t>(pos >= kChunk / 2 ? c << 4 : c);
      }
    }
    if ((n * k) & 1) p.pad_nibble = src[(n * k) >> 1] & 0x0F;
  } else {
    for (int64_t r = 0; r < n; ++r) {
      std::memcpy(p.codes.data() + r * p.row_bytes, src + r * k, static_cast<size_t>(k));
    }
  }
}

void PackStatistics(CpuPacked& p) {
  const QuantState& s = p.state;
  const std::vector<float> resolved = ResolveScales(s);
  const bool asym = !s.zero_points.empty();
  const size_t count = static_cast<size_t>(p.rows * p.groups_per_row);
  p.scales.resize(count);
  if (asym) p.zeros.resize(count);
  for (int64_t r = 0; r < p.rows; ++r) {
    for (int64_t g = 0; g < p.groups_per_row; ++g) {
      const int64_t stat = s.ScaleIndex(r * p.cols + g * p.group);
      const size_t dst = static_cast<size_t>(r * p.groups_per_row + g);
      // int8 stores the row absmax (bitsandbytes SCB): the code's weight is absmax / 127. A
      // tensor scale (nvfp4) folds in as the codec's f32(scale * tensor_scale); 1 otherwise.
      p.scales[dst] = (p.kind == CodeKind::kInt8) ? resolved[stat] * LOWBIT_INT8_INV_QMAX
                                                  : resolved[stat] * s.tensor_scale;
      if (asym) p.zeros[dst] = static_cast<float>(s.zero_points[stat]);
    }
  }
  if (p.kind == CodeKind::kLut8) {  // the map stored with the tensor (validated: 256 entries)
    std::copy(s.codebook.begin(), s.codebook.begin() + 256, p.lut);
  }
  if (p.kind == CodeKind::kLut4) {
    // Codebook formats (nf4, fp4): the table stored with the tensor; else the codec's code
    // values (int4: c - 8, int4_asym: c, mxfp4/nvfp4: E2M1).
    const FormatInfo& info = GetFormatInfo(p.format);
    const float* values = info.codebook_size == 16 ? s.codebook.data() : info.code_values;
    std::copy(values, values + 16, p.lut);
    for (const int offset : {0, LOWBIT_INT4_SYM_OFFSET}) {
      bool integer = true;
      for (int c = 0; c < 16; ++c) integer &= p.lut[c] == static_cast<float>(c - offset);
      if (integer) p.lut_offset = offset;
    }
  }
}

// True if p is an FP8 kind whose codes hold no Inf/NaN code, so the GEMM may use the cheaper
// finite-only decode (matmul_fp8.cc). Quantized weights always qualify; foreign payloads with
// special codes keep the exact decode.
bool FP8Finite(const CpuPacked& p) {
  if (p.kind != CodeKind::kFP8E4M3 && p.kind != CodeKind::kFP8E5M2) return false;
  // Smallest magnitude (code & 0x7F) that is Inf or NaN.
  const int first_special =
      (p.kind == CodeKind::kFP8E4M3) ? LOWBIT_FP8_E4M3_NAN : LOWBIT_FP8_E5M2_INF;
  return std::none_of(p.codes.begin(), p.codes.end(),
                      [&](uint8_t c) { return (c & 0x7F) >= first_special; });
}

std::unique_ptr<BackendPacked> Pack(const QuantizedTensor& w) {
  auto p = std::make_unique<CpuPacked>();
  p->format = w.state.format;
  p->rows = w.state.shape[0];
  p->cols = w.state.shape[1];
  p->state = w.state;
  p->k_pad = RoundUp(p->cols, kChunk);
  p->kind = KindOf(p->format);
  p->group = (p->kind == CodeKind::kDense) ? 0 : ExecGroup(w.state, p->k_pad);
  if (p->group == 0) p->kind = CodeKind::kDense;
  if (p->kind == CodeKind::kDense) {
    p->dense = DequantizeToF32(w);
    // f32 payloads are `dense` byte for byte: keep one copy (Unpack rebuilds the bytes).
    if (p->format != Format::kF32) p->canonical_data = w.data;
    p->packed_bytes =
        static_cast<int64_t>(p->dense.size() * sizeof(float) + p->canonical_data.size());
  } else {
    p->groups_per_row = (p->k_pad + p->group - 1) / p->group;
    p->row_bytes = (p->kind == CodeKind::kLut4) ? p->k_pad / 2 : p->k_pad;
    PackCodes(w, *p);
    PackStatistics(*p);
    p->fp8_finite = FP8Finite(*p);
    p->packed_bytes = static_cast<int64_t>(p->codes.size() +
                                           (p->scales.size() + p->zeros.size()) * sizeof(float));
  }
  // The saved canonical statistics count too (Unpack restores them bit-identically).
  const QuantState& s = p->state;
  p->packed_bytes += static_cast<int64_t>(
      s.scales.size() * sizeof(float) + s.zero_points.size() + s.codebook.size() * sizeof(float) +
      (s.nested ? s.nested->codes.size() + (s.nested->absmax.size() + s.nested->code.size()) *
                                               sizeof(float)
                : 0));
  return p;
}

QuantizedTensor Unpack(const BackendPacked& packed) {
  const CpuPacked& p = static_cast<const CpuPacked&>(packed);
  QuantizedTensor w;
  w.state = p.state;
  if (p.kind == CodeKind::kDense) {
    if (p.format == Format::kF32) {
      const auto* bytes = reinterpret_cast<const uint8_t*>(p.dense.data());
      w.data.assign(bytes, bytes + p.dense.size() * sizeof(float));
    } else {
      w.data = p.canonical_data;
    }
    return w;
  }
  const int64_t n = p.rows, k = p.cols;
  w.data.assign(static_cast<size_t>(PayloadBytes(p.format, n * k)), 0);
  if (p.kind == CodeKind::kLut4) {
    for (int64_t r = 0; r < n; ++r) {
      const uint8_t* row = p.codes.data() + r * p.row_bytes;
      for (int64_t e = 0; e < k; ++e) {
        const int64_t pos = e % kChunk;
        const uint8_t b = row[(e / kChunk) * (kChunk / 2) + pos % (kChunk / 2)];
        const uint8_t c = (pos >= kChunk / 2) ? (b >> 4) : (b & 0x0F);
        const int64_t i = r * k + e;
        w.data[i >> 1] |= static_cast<uint8_t>((i & 1) ? c : c << LOWBIT_NIBBLE_FIRST_SHIFT);
      }
    }
    if ((n * k) & 1) w.data[(n * k) >> 1] |= p.pad_nibble;
  } else {
    for (int64_t r = 0; r < n; ++r) {
      std::memcpy(w.data.data() + r * k, p.codes.data() + r * p.row_bytes, static_cast<size_t>(k));
    }
  }
  return w;
}

std::string Supports(Format format, BackendOp op, DType activation, const MatmulOptions& options) {
  if (static_cast<int>(format) >= kNumFormats) return "unknown format";
  if (op != BackendOp::kMatmul) return {};
  if (!IsFloatActivation(activation)) {
    return std::string("activations must be f32, f16 or bf16, got ") + DTypeName(activation);
  }
  if (options.int8_activations && options.bf16_compute) {
    return "int8_activations and bf16_compute exclude each other";
  }
  if (options.int8_activations && format != Format::kInt8 && format != Format::kInt4) {
    return std::string("int8 activations need int8 or int4 (symmetric) weights, got ") +
           FormatName(format);
  }
  return {};
}

void DequantizeEntry(const QuantizedTensor& q, float* out) {
  if (IsDense(q.state.format)) {
    ToF32(q.data.data(), GetFormatInfo(q.state.format).dense_dtype, q.state.num_elements(), out);
  } else {
    Dequantize(q, out);
  }
}

// Quantize through the dispatch table: nf4/fp4 codes from the SIMD kernel (bit-exact with the
// reference, tests/quantize_kernels_test.cc), every other format from its codec's reference.
void QuantizeEntry(const float* x, const QuantizeOptions& options, QuantizedTensor& out) {
  const Format f = out.state.format;
  if (f == Format::kNF4 || f == Format::kFP4) {
    ref::QuantizeCodebook4With(&Quantize4bitBlockwise, x, options, out);
  } else {
    GetFormatInfo(f).reference_quantize(x, options, out);
  }
}

// Widens the a.m activation rows to float32, each zero-padded to w.k_pad columns, into buf.
const float* StageActivations(const CpuPacked& w, const MatmulArgs& a, std::vector<float>& buf) {
  buf.assign(static_cast<size_t>(a.m * w.k_pad), 0.0f);
  const size_t x_bytes = DTypeSize(a.x_dtype);
  for (int64_t m = 0; m < a.m; ++m) {
    ToF32(static_cast<const uint8_t*>(a.x) + m * w.cols * x_bytes, a.x_dtype, w.cols,
          buf.data() + m * w.k_pad);
  }
  return buf.data();
}

// Runs rows(begin_row, end_row) over the w.rows output columns on ctx, in tasks of a few rows
// for GEMV (m == 1) and more for GEMM, or `rows_per_task` when given (AMX kernels: whole tile
// blocks). Below SerialMatmulMacs() multiply-adds (backend.h) the whole range runs on the calling
// thread without touching ctx: same bits, since a task boundary never changes how a row is
// computed.
template <class RowFn>
void ForEachRowTask(const CpuPacked& w, int64_t m, Context& ctx, const RowFn& rows,
                    int64_t rows_per_task = 0) {
  const int64_t n = w.rows;
  if (n * w.k_pad < SerialMatmulMacs() / m) {  // m * n * k < threshold, without overflow
    rows(int64_t{0}, n);
    return;
  }
  // The lambda captures one pointer, so the RangeFn stores it inline (no allocation per call).
  const struct {
    const RowFn* rows;
    int64_t n, rows_per_task;
  } task{&rows, n,
         rows_per_task > 0 ? rows_per_task : (m == 1) ? kGemvRowsPerTask : kGemmRowsPerTask};
  ctx.ParallelFor((n + task.rows_per_task - 1) / task.rows_per_task,
                  [t = &task](int64_t begin, int64_t end) {
                    (*t->rows)(begin * t->rows_per_task, std::min(t->n, end * t->rows_per_task));
                  });
}

// Dense and fallback weights: Eigen float32. GEMV (M = 1) runs over row tasks on ctx: Eigen's
// row-major GEMV computes each row the same way whatever the row block (blocks start at
// multiples of kGemvRowsPerTask, a multiple of its row grouping), so bits do not depend on the
// split. GEMM stays one Eigen call on the calling thread: Eigen sizes its k-blocking from the
// whole problem, so a row split can change a product's summation order (seen on NEON).
void DenseGemm(const CpuPacked& w, const MatmulArgs& a, float* y, Context& ctx) {
  using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  thread_local std::vector<float> xf;
  xf.resize(static_cast<size_t>(a.m * w.cols));
  ToF32(a.x, a.x_dtype, a.m * w.cols, xf.data());
  const Eigen::Map<const RowMajor> wm(w.dense.data(), w.rows, w.cols);
  const Eigen::Map<const RowMajor> xm(xf.data(), a.m, w.cols);
  Eigen::Map<RowMajor> ym(y, a.m, w.rows);
  if (a.m > 1) {
    ym.noalias() = xm * wm.transpose();
    return;
  }
  ForEachRowTask(w, a.m, ctx, [&](int64_t begin, int64_t end) {
    ym.row(0).segment(begin, end - begin).transpose().noalias() =
        wm.middleRows(begin, end - begin) * xm.row(0).transpose();
  });
}

// Int8-activation path (int8 / int4 weights, always packed: their groups are multiples of
// kChunk): quantize the staged float32 rows x ([a.m, w.k_pad]) to int8 on this thread, run row
// tasks.
void Int8ActGemm(const CpuPacked& w, const MatmulArgs& a, const float* x, float* y, Context& ctx) {
  LOWBIT_DCHECK_INVARIANT(w.kind == CodeKind::kLut4 || w.kind == CodeKind::kInt8);
  thread_local std::vector<float> absmax;
  thread_local std::vector<int8_t> q;
  thread_local std::vector<int32_t> qsum;
  Int8ActProblem p;
  p.w = &w;
  p.m = a.m;
  p.segment = (w.kind == CodeKind::kLut4) ? w.group : std::min(kInt8ActSegment, w.k_pad);
  p.num_segments = (w.k_pad + p.segment - 1) / p.segment;
  const bool amx = a.m >= kAmxMinRows && AmxInt8Usable();
  // AMX tiles load whole 32-row blocks of q: zero rows past m, and slack past the last row.
  q.resize(static_cast<size_t>(amx ? AmxActivationRows(a.m) * w.k_pad + kAmxSlackBytes
                                   : a.m * w.k_pad));
  if (amx) std::fill(q.begin() + a.m * w.k_pad, q.end(), int8_t{0});
  qsum.resize(static_cast<size_t>(a.m * p.num_segments));
  absmax.resize(static_cast<size_t>(a.m));
  QuantizeActivationsInt8(x, a.m, w.k_pad, p.segment, q.data(), qsum.data(), absmax.data());
  p.q = q.data();
  p.qsum = qsum.data();
  p.absmax = absmax.data();
  p.y = y;
  if (amx) {  // tasks of whole AMX weight blocks (32 rows)
    ForEachRowTask(
        w, a.m, ctx, [&](int64_t begin, int64_t end) { GemmInt8ActAmx(p, begin, end); },
        kAmxBlockRows);
    return;
  }
  ForEachRowTask(w, a.m, ctx, [&](int64_t begin, int64_t end) { GemmInt8Act(p, begin, end); });
}

// MatmulOptions::bf16_compute on an AMX-BF16 CPU: the staged float32 rows x ([a.m, w.k_pad])
// rounded to bf16 on this thread, tasks of whole AMX weight blocks.
void Bf16AmxGemm(const CpuPacked& w, const MatmulArgs& a, const float* x, float* y,
                 Context& ctx) {
  thread_local std::vector<uint16_t> xb;
  xb.resize(static_cast<size_t>(AmxActivationRows(a.m) * w.k_pad + kAmxSlackBytes));
  ActivationsToBf16Amx(x, a.m, w.k_pad, xb.data());
  GemmProblem p;
  p.w = &w;
  p.m = a.m;
  p.y = y;
  const uint16_t* x16 = xb.data();  // the caller's thread_local: tasks on workers take the pointer
  ForEachRowTask(
      w, a.m, ctx, [&](int64_t begin, int64_t end) { GemmBf16Amx(p, x16, begin, end); },
      kAmxBlockRows);
}

void Gemm(const BackendPacked& packed, const MatmulArgs& a, Context& ctx) {
  const CpuPacked& w = static_cast<const CpuPacked&>(packed);
  const int64_t n = w.rows, k = w.cols;
  // Caller-thread staging buffers, grown once and reused across calls.
  thread_local std::vector<float> xbuf, xsum, ybuf, xlut4;
  float* y = static_cast<float*>(a.y);
  if (a.y_dtype != DType::kF32) {
    ybuf.resize(static_cast<size_t>(a.m * n));
    y = ybuf.data();
  }
  if (a.options.int8_activations) {
    Int8ActGemm(w, a, StageActivations(w, a, xbuf), y, ctx);
  } else if (w.kind == CodeKind::kDense) {
    DenseGemm(w, a, y, ctx);
  } else if (a.options.bf16_compute && a.m >= kAmxMinRows && AmxBf16Usable()) {
    Bf16AmxGemm(w, a, StageActivations(w, a, xbuf), y, ctx);
  } else {
    StageActivations(w, a, xbuf);
    GemmProblem p;
    p.w = &w;
    p.m = a.m;
    p.x = xbuf.data();
    p.y = y;
    if (!w.zeros.empty()) {
      xsum.assign(static_cast<size_t>(a.m * w.groups_per_row), 0.0f);
      for (int64_t m = 0; m < a.m; ++m) {
        for (int64_t kk = 0; kk < k; ++kk) {
          xsum[m * w.groups_per_row + kk / w.group] += xbuf[m * w.k_pad + kk];
        }
      }
      p.xsum = xsum.data();
    }
    if (w.kind == CodeKind::kLut4 && a.m == 1) {
      xlut4.resize(static_cast<size_t>(RoundUp(w.k_pad, kMaxLut4GemvBlock)));
      if (PermuteXForLut4Gemv(w, xbuf.data(), xlut4.data())) p.x_lut4 = xlut4.data();
    }
    void (*kernel)(const GemmProblem&, int64_t, int64_t) =
        (w.kind == CodeKind::kLut4) ? &GemmLut4
        : (w.kind == CodeKind::kFP8E4M3 || w.kind == CodeKind::kFP8E5M2) ? &GemmFP8
                                                                           : &GemmByte;
    ForEachRowTask(w, a.m, ctx, [&](int64_t begin, int64_t end) { kernel(p, begin, end); });
  }
  if (a.bias != nullptr) {
    for (int64_t m = 0; m < a.m; ++m) {
      for (int64_t j = 0; j < n; ++j) y[m * n + j] += a.bias[j];
    }
  }
  if (a.y_dtype != DType::kF32) FromF32(y, a.m * n, a.y, a.y_dtype);
}

bool Probe() { return true; }

}  // namespace

const Backend kBackend = {
    /*name=*/"cpu",
    /*probe=*/&Probe,
    /*supports=*/&Supports,
    /*pack=*/&Pack,
    /*unpack=*/&Unpack,
    /*dequantize=*/&DequantizeEntry,
    /*gemv=*/nullptr,  // gemm specializes M == 1 itself
    /*gemm=*/&Gemm,
    /*sync=*/nullptr,
    /*quantize=*/&QuantizeEntry,
};

}  // namespace lowbit::cpu
