// lowbit/quantize.h — the functional API: quantize, dequantize, error statistics, quant info.
//
// All functions here are thread-safe (no shared mutable state) and run on the calling thread.
// They validate every argument and throw lowbit::Error on bad input.
#ifndef LOWBIT_QUANTIZE_H_
#define LOWBIT_QUANTIZE_H_

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "lowbit/dtype.h"
#include "lowbit/format.h"
#include "lowbit/quant_state.h"

namespace lowbit {

struct QuantizeOptions {
  // Block (nf4/fp4/blockwise8: flat elements) or group (int4: elements along a row) size;
  // 0 = the format's default (64, 64, 4096, 128). Must be a power of two in the format's range.
  int64_t block_size = 0;
  // nf4/fp4: double-quantize the absmax (bitsandbytes compress_statistics=True, nested block
  // 256). blockwise8: nested=True (offset = mean, nested block = block_size).
  bool double_quant = false;
  // int8 / int8_asym / fp8: kRow (default) or kTensor.
  Granularity granularity = Granularity::kDefault;
  // Double quant only: use this offset instead of the mean of the absmax (bit-exact comparison
  // with a reference whose mean was reduced in another order). NaN = compute the mean.
  float nested_offset = std::numeric_limits<float>::quiet_NaN();
};

// Quantizes `x` (f32, f16 or bf16; any shape with positive dims) to `format`. The result owns
// its payload and state. Dense formats (f32/f16/bf16) just convert.
QuantizedTensor Quantize(Format format, const ConstTensorView& x,
                         const QuantizeOptions& options = {});

// Dequantizes into `out` (f32, f16 or bf16; NumElements(out.shape) == q.num_elements). Each value
// is computed in float32 and rounded once to out.dtype (round to nearest even).
void Dequantize(const QuantizedTensor& q, const TensorView& out);
// Convenience: dequantizes to a new float32 vector.
std::vector<float> DequantizeToF32(const QuantizedTensor& q);

// The same two operations on a named backend ("cpu", "cuda"; "" = CPU, see
// docs/backends.md). Same validation, same results bit for bit; inputs and outputs are host
// memory. A backend without a device codec for a format uses the CPU codecs for Dequantize and
// throws Error(kUnsupportedFormat) naming the format for Quantize (cuda quantizes nf4, fp4,
// int8). Unknown or unusable backends throw Error(kUnsupportedBackend).
QuantizedTensor Quantize(Format format, const ConstTensorView& x, const QuantizeOptions& options,
                         const std::string& backend);
void Dequantize(const QuantizedTensor& q, const TensorView& out, const std::string& backend);

// ---- bitsandbytes-style convenience forms ------------------------------------------------------
// quantize_4bit(A, blocksize, compress_statistics, quant_type); bitsandbytes' default quant_type
// is fp4, ours is nf4 (the type everyone uses); pass it explicitly to be unambiguous.
QuantizedTensor Quantize4bit(const ConstTensorView& x, Format quant_type = Format::kNF4,
                             int64_t block_size = LOWBIT_4BIT_DEFAULT_BLOCK,
                             bool compress_statistics = false);
QuantizedTensor QuantizeNF4(const ConstTensorView& x, int64_t block_size = 64,
                            bool double_quant = false);
QuantizedTensor QuantizeFP4(const ConstTensorView& x, int64_t block_size = 64,
                            bool double_quant = false);
// quantize_blockwise(A, code=dynamic, blocksize=4096, nested=False).
QuantizedTensor QuantizeBlockwise(const ConstTensorView& x, int64_t block_size = 4096,
                                  bool nested = false);
// Int8Params: row-wise absmax int8 weights (CB = data as int8, SCB = state.scales).
QuantizedTensor QuantizeInt8(const ConstTensorView& x, Granularity g = Granularity::kRow);
QuantizedTensor QuantizeInt4(const ConstTensorView& x, int64_t group_size = 128,
                             bool symmetric = true);
QuantizedTensor QuantizeFP8(const ConstTensorView& x, Format fp8_format = Format::kFP8E4M3,
                            Granularity g = Granularity::kRow);

// LLM.int8 activation quantization (bitsandbytes int8_vectorwise_quant): x is 2-D [rows, cols].
// row_stats[r] = absmax of row r over elements with |x| < threshold (all when threshold == 0);
// codes = round_half_even(x * 127 / row_stats), elements with |x| >= threshold -> 0, and when
// rows > 1 every outlier column is zeroed in all rows. outlier_cols ascending.
struct Int8VectorwiseResult {
  std::vector<int8_t> codes;       // [rows, cols]
  std::vector<float> row_stats;    // [rows]
  std::vector<int64_t> outlier_cols;
};
Int8VectorwiseResult Int8VectorwiseQuant(const ConstTensorView& x, float threshold = 0.0f);

// ---- Error statistics and info ---------------------------------------------------------------
struct ErrorStats {
  double mean_abs = 0;   // mean |a - b|
  double mean_rel = 0;   // mean |a - b| / (|a| + 1e-8)  (bitsandbytes' relerr)
  double rel_l2 = 0;     // ||a - b||_2 / ||a||_2
  double mse = 0;        // mean (a - b)^2
  double max_abs = 0;    // max |a - b|
  double snr_db = 0;     // 10 log10(sum a^2 / sum (a - b)^2); +inf when exact
  int64_t count = 0;
};
// Compares two float tensors of equal element count (any of f32/f16/bf16).
ErrorStats EstimateError(const ConstTensorView& original, const ConstTensorView& approx);

struct QuantInfo {
  Format format;
  Shape shape;
  Granularity granularity;
  int64_t block_size;
  bool double_quant;
  int64_t payload_bytes;     // code bytes
  int64_t statistic_bytes;   // scales, zero points, nested state, codebook
  int64_t total_bytes;       // payload + statistics
  double bits_per_weight;    // 8 * total_bytes / elements
  double compression_ratio;  // original bytes (in state.dtype) / total_bytes
};
QuantInfo GetQuantInfo(const QuantizedTensor& q);
// One line: "nf4 [4096, 4096] block 64 dq: 8.39 MiB, 4.127 bits/weight, 7.75x vs f32".
std::string ToString(const QuantInfo& info);

}  // namespace lowbit

#endif  // LOWBIT_QUANTIZE_H_
