#!/usr/bin/env python3
"""examples/python/lowbit_ctypes.py — lowbit from Python through the C ABI, standard library only.

A small ctypes wrapper over liblowbit_c.so (docs/c-api.md) plus a runnable example:

    python3 lowbit_ctypes.py [--lib path/to/liblowbit_c.so]

quantizes a 192 x 256 matrix to NF4, runs a GEMV, and checks both against a pure-Python
reference: an independent NF4 quantizer (bitsandbytes' rules, float32 emulated exactly) must give
the same packed bytes and absmax, and the GEMV must match a float64 dot product over the
dequantized weights. Exit status 0 on success.

Inputs may be any sequence of floats, an array.array('f'), or (if numpy is installed) a
float32 numpy array; outputs are array.array('f'). Errors raise LowbitError carrying the status
code and lowbit_last_error()'s message.
"""

import array
import ctypes
import ctypes.util
import glob
import math
import os
import random
import struct
import sys

# lowbit_status (lowbit_c.h; frozen numbering).
STATUS_NAMES = ["ok", "invalid_argument", "invalid_state", "unsupported_format",
                "unsupported_backend", "unsupported_hardware", "out_of_memory", "io_error",
                "corrupt_data", "backend_error", "internal"]
# lowbit_format values.
FORMATS = {"f32": 0, "f16": 1, "bf16": 2, "int8": 3, "int8_asym": 4, "int4": 5, "int4_asym": 6,
           "nf4": 7, "fp4": 8, "fp8_e4m3": 9, "fp8_e5m2": 10, "blockwise8": 11, "mxfp4": 12,
           "nvfp4": 13, "iq4_nl": 14}
DTYPE_F32 = 0
MAX_DIMS = 8


class LowbitError(Exception):
    """A failed lowbit call: .status (int), .status_name, .message."""

    def __init__(self, status, message):
        self.status = status
        self.status_name = STATUS_NAMES[status] if 0 <= status < len(STATUS_NAMES) else "unknown"
        self.message = message
        super().__init__(f"{self.status_name}: {message}")


class _QuantizeOptions(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("block_size", ctypes.c_int64),
                ("double_quant", ctypes.c_int32), ("granularity", ctypes.c_int)]


class _TensorInfo(ctypes.Structure):
    _fields_ = [("format", ctypes.c_int), ("ndim", ctypes.c_int32),
                ("shape", ctypes.c_int64 * MAX_DIMS), ("num_elements", ctypes.c_int64),
                ("granularity", ctypes.c_int), ("block_size", ctypes.c_int64),
                ("double_quant", ctypes.c_int32), ("payload_bytes", ctypes.c_int64),
                ("statistic_bytes", ctypes.c_int64), ("total_bytes", ctypes.c_int64),
                ("bits_per_weight", ctypes.c_double)]


class _ErrorStats(ctypes.Structure):
    _fields_ = [("mean_abs", ctypes.c_double), ("mean_rel", ctypes.c_double),
                ("rel_l2", ctypes.c_double), ("mse", ctypes.c_double),
                ("max_abs", ctypes.c_double), ("snr_db", ctypes.c_double),
                ("count", ctypes.c_int64)]


def _find_library(explicit=None):
    candidates = []
    if explicit:
        candidates.append(explicit)
    if os.environ.get("LOWBIT_C_LIBRARY"):
        candidates.append(os.environ["LOWBIT_C_LIBRARY"])
    found = ctypes.util.find_library("lowbit_c")
    if found:
        candidates.append(found)
    here = os.path.dirname(os.path.abspath(__file__))
    candidates += sorted(glob.glob(os.path.join(here, "..", "..", "build", "*", "capi",
                                                "liblowbit_c.so")))
    for path in candidates:
        try:
            return ctypes.CDLL(path)
        except OSError:
            continue
    raise OSError("liblowbit_c.so not found: pass --lib PATH or set LOWBIT_C_LIBRARY")


class Lowbit:
    """The loaded C library with typed entry points."""

    def __init__(self, path=None):
        lib = self._lib = _find_library(path)
        P, I64, I32, VP = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int32, ctypes.c_void_p
        sig = {
            "lowbit_version": ([], ctypes.c_char_p),
            "lowbit_abi_version": ([], ctypes.c_uint32),
            "lowbit_last_error": ([], ctypes.c_char_p),
            "lowbit_quantize_options_init": ([ctypes.POINTER(_QuantizeOptions)], None),
            "lowbit_quantize": ([ctypes.c_int, VP, ctypes.c_int, ctypes.POINTER(I64), I32,
                                 ctypes.POINTER(_QuantizeOptions), ctypes.POINTER(P)], ctypes.c_int),
            "lowbit_tensor_destroy": ([P], None),
            "lowbit_dequantize": ([P, VP, ctypes.c_int, I64], ctypes.c_int),
            "lowbit_tensor_get_info": ([P, ctypes.POINTER(_TensorInfo)], ctypes.c_int),
            "lowbit_tensor_payload": ([P, ctypes.POINTER(ctypes.POINTER(ctypes.c_uint8)),
                                       ctypes.POINTER(I64)], ctypes.c_int),
            "lowbit_tensor_scales": ([P, ctypes.POINTER(ctypes.c_float), I64, ctypes.POINTER(I64)],
                                     ctypes.c_int),
            "lowbit_tensor_error": ([P, VP, ctypes.c_int, I64, ctypes.POINTER(_ErrorStats)],
                                    ctypes.c_int),
            "lowbit_pack": ([P, ctypes.c_char_p, ctypes.POINTER(P)], ctypes.c_int),
            "lowbit_packed_destroy": ([P], None),
            "lowbit_gemv": ([P, VP, ctypes.c_int, I64, VP, ctypes.c_int, I64,
                             ctypes.POINTER(ctypes.c_float), P], ctypes.c_int),
            "lowbit_gemm": ([P, VP, ctypes.c_int, I64, I64, VP, ctypes.c_int, I64,
                             ctypes.POINTER(ctypes.c_float), P], ctypes.c_int),
            "lowbit_save_tensors": ([ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p),
                                     ctypes.POINTER(P), I64, ctypes.c_int], ctypes.c_int),
            "lowbit_load_tensor": ([ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(P)],
                                   ctypes.c_int),
        }
        for name, (argtypes, restype) in sig.items():
            fn = getattr(lib, name)
            fn.argtypes = argtypes
            fn.restype = restype
        if lib.lowbit_abi_version() != 1:
            raise OSError(f"liblowbit_c ABI {lib.lowbit_abi_version()}, this wrapper expects 1")

    @property
    def version(self):
        return self._lib.lowbit_version().decode()

    def check(self, status):
        """Raises LowbitError for a non-zero status, with the thread's last error message."""
        if status != 0:
            raise LowbitError(status, self._lib.lowbit_last_error().decode(errors="replace"))

    def quantize(self, values, shape, fmt="nf4", block_size=0, double_quant=False):
        """Quantizes row-major float values of `shape` to `fmt`; returns a Tensor."""
        buf, keep = _as_f32_buffer(values)
        if len(keep) != math.prod(shape):
            raise ValueError(f"{len(keep)} values for shape {tuple(shape)}")
        dims = (ctypes.c_int64 * len(shape))(*shape)
        opts = _QuantizeOptions()
        self._lib.lowbit_quantize_options_init(ctypes.byref(opts))
        opts.block_size = block_size
        opts.double_quant = 1 if double_quant else 0
        handle = ctypes.c_void_p()
        if fmt not in FORMATS:
            raise LowbitError(3, f"unknown format '{fmt}' (valid: {', '.join(FORMATS)})")
        self.check(self._lib.lowbit_quantize(FORMATS[fmt], buf, DTYPE_F32, dims, len(shape),
                                             ctypes.byref(opts), ctypes.byref(handle)))
        del keep
        return Tensor(self, handle)

    def load(self, path, prefix):
        """Loads the tensor stored under module `prefix` of a safetensors file."""
        handle = ctypes.c_void_p()
        self.check(self._lib.lowbit_load_tensor(path.encode(), prefix.encode(),
                                                ctypes.byref(handle)))
        return Tensor(self, handle)

    def save(self, path, tensors, layout=0):
        """Writes {prefix: Tensor} to a safetensors file atomically (layout 0 = auto)."""
        names = (ctypes.c_char_p * len(tensors))(*[p.encode() for p in tensors])
        handles = (ctypes.c_void_p * len(tensors))(*[t._h for t in tensors.values()])
        self.check(self._lib.lowbit_save_tensors(path.encode(), names, handles, len(tensors),
                                                 layout))


def _as_f32_buffer(values):
    """(pointer, owner) for float32 data: numpy float32 arrays without a copy, else array('f')."""
    if hasattr(values, "dtype") and hasattr(values, "ctypes"):  # numpy, if the caller uses it
        import numpy  # noqa: F401  (only reached when numpy is installed)
        arr = values.astype("float32", copy=False)
        if not arr.flags["C_CONTIGUOUS"]:
            arr = arr.copy(order="C")
        return ctypes.c_void_p(arr.ctypes.data), arr
    if not (isinstance(values, array.array) and values.typecode == "f"):
        values = array.array("f", values)
    addr, _ = values.buffer_info()
    return ctypes.c_void_p(addr), values


class Tensor:
    """A quantized tensor (owns a lowbit_tensor_t; freed on close() or garbage collection)."""

    def __init__(self, lowbit, handle):
        self._lb, self._h = lowbit, handle

    def close(self):
        if self._h:
            self._lb._lib.lowbit_tensor_destroy(self._h)
            self._h = None

    def __del__(self):
        self.close()

    def info(self):
        info = _TensorInfo()
        self._lb.check(self._lb._lib.lowbit_tensor_get_info(self._h, ctypes.byref(info)))
        return {"format": next(k for k, v in FORMATS.items() if v == info.format),
                "shape": tuple(info.shape[i] for i in range(info.ndim)),
                "num_elements": info.num_elements, "block_size": info.block_size,
                "double_quant": bool(info.double_quant), "payload_bytes": info.payload_bytes,
                "statistic_bytes": info.statistic_bytes, "bits_per_weight": info.bits_per_weight}

    def payload(self):
        data = ctypes.POINTER(ctypes.c_uint8)()
        n = ctypes.c_int64()
        self._lb.check(self._lb._lib.lowbit_tensor_payload(self._h, ctypes.byref(data),
                                                           ctypes.byref(n)))
        return ctypes.string_at(data, n.value)

    def scales(self):
        count = ctypes.c_int64()
        lib = self._lb._lib
        self._lb.check(lib.lowbit_tensor_scales(self._h, None, 0, ctypes.byref(count)))
        out = array.array("f", bytes(4 * count.value))
        ptr = ctypes.cast(out.buffer_info()[0], ctypes.POINTER(ctypes.c_float))
        self._lb.check(lib.lowbit_tensor_scales(self._h, ptr, count.value, ctypes.byref(count)))
        return out

    def dequantize(self):
        n = self.info()["num_elements"]
        out = array.array("f", bytes(4 * n))
        self._lb.check(self._lb._lib.lowbit_dequantize(self._h, out.buffer_info()[0], DTYPE_F32,
                                                       n))
        return out

    def error(self, original):
        """Error statistics of the dequantized tensor against `original` (a dict)."""
        buf, keep = _as_f32_buffer(original)
        if len(keep) != self.info()["num_elements"]:
            raise ValueError(f"original holds {len(keep)} values, expected "
                             f"{self.info()['num_elements']}")
        stats = _ErrorStats()
        self._lb.check(self._lb._lib.lowbit_tensor_error(self._h, buf, DTYPE_F32, len(keep),
                                                         ctypes.byref(stats)))
        return {name: getattr(stats, name) for name, _ in _ErrorStats._fields_}

    def pack(self, backend=""):
        handle = ctypes.c_void_p()
        self._lb.check(self._lb._lib.lowbit_pack(self._h, backend.encode(), ctypes.byref(handle)))
        return Packed(self._lb, handle, self.info()["shape"])


class Packed:
    """A 2-D weight [N, K] packed for matmul (owns a lowbit_packed_t)."""

    def __init__(self, lowbit, handle, shape):
        self._lb, self._h = lowbit, handle
        self.n, self.k = shape

    def close(self):
        if self._h:
            self._lb._lib.lowbit_packed_destroy(self._h)
            self._h = None

    def __del__(self):
        self.close()

    def gemv(self, x, bias=None):
        """y[N] = W · x[K] (+ bias)."""
        return self.gemm(x, 1, bias)

    def gemm(self, x, m, bias=None):
        """y[M, N] = x[M, K] · Wᵀ (+ bias), row-major, as a flat array('f')."""
        buf, keep = _as_f32_buffer(x)
        if len(keep) != m * self.k:  # the C ABI trusts buffer lengths; check them here
            raise ValueError(f"x holds {len(keep)} values, expected m * K = {m * self.k}")
        if bias is not None and len(bias) != self.n:
            raise ValueError(f"bias holds {len(bias)} values, expected N = {self.n}")
        y = array.array("f", bytes(4 * m * self.n))
        b = None
        if bias is not None:
            bias_arr = array.array("f", bias)
            b = ctypes.cast(bias_arr.buffer_info()[0], ctypes.POINTER(ctypes.c_float))
        lib = self._lb._lib
        if m == 1:
            status = lib.lowbit_gemv(self._h, buf, DTYPE_F32, self.k, y.buffer_info()[0],
                                     DTYPE_F32, self.n, b, None)
        else:
            status = lib.lowbit_gemm(self._h, buf, DTYPE_F32, m, self.k, y.buffer_info()[0],
                                     DTYPE_F32, self.n, b, None)
        self._lb.check(status)
        del keep
        return y


# ---- The pure-Python reference (bnb-formats.md §1.1, §1.3, §1.4) -------------------------------

def _f32(x):
    """Rounds a Python float to the nearest float32 (exact emulation)."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def _f32_bits(bits):
    return struct.unpack("<f", struct.pack("<I", bits))[0]


NF4_CODEBOOK = [_f32_bits(b) for b in (
    0xbf800000, 0xbf3239b1, 0xbf066b30, 0xbeca32a0, 0xbe91a24d, 0xbe3d353f, 0xbdba7871, 0x00000000,
    0x3da2faff, 0x3e24cae3, 0x3e7c04dd, 0x3ead033a, 0x3ee1a4b8, 0x3f1007ab, 0x3f3913b3, 0x3f800000)]
# bitsandbytes' CUDA decision-tree thresholds (code = number of thresholds below y).
NF4_THRESHOLDS = [_f32_bits(b) for b in (
    0xbf591cd9, 0xbf1c5270, 0xbeeb8480, 0xbeadea76, 0xbe703cec, 0xbe0d38bc, 0xbd3a7871, 0x3d22faff,
    0x3df64863, 0x3e5067e0, 0x3e9582d4, 0x3ec753f9, 0x3f006d03, 0x3f248daf, 0x3f5c89d9)]


def reference_nf4(values, block):
    """(packed bytes, absmax list, dequantized list) of NF4 with flat blocks of `block`.

    Products of two float32 values are exact in float64 and 1/a rounds correctly through float64
    to float32 (2*24+2 <= 53), so this equals bitsandbytes' float32 arithmetic bit for bit."""
    n = len(values)
    codes, absmax, deq = [], [], []
    for start in range(0, n, block):
        chunk = values[start:start + block]
        amax = max(abs(v) for v in chunk)
        absmax.append(amax)
        scale = _f32(1.0 / amax) if amax > 0 else float("inf")
        for v in chunk:
            y = _f32(v * scale) if amax > 0 else float("nan")
            code = sum(1 for t in NF4_THRESHOLDS if y > t)
            codes.append(code)
            deq.append(_f32(NF4_CODEBOOK[code] * amax))
    if n % 2:
        codes.append(7)
    packed = bytes((codes[i] << 4) | codes[i + 1] for i in range(0, len(codes), 2))
    return packed, absmax, deq


def main(argv):
    lib_path = None
    if "--lib" in argv:
        lib_path = argv[argv.index("--lib") + 1]
    lb = Lowbit(lib_path)
    print(f"liblowbit_c {lb.version}")

    rows, cols, block = 192, 256, 64
    rng = random.Random(0)
    w = array.array("f", (rng.gauss(0.0, 0.02) for _ in range(rows * cols)))
    w[1000] = 0.9  # an outlier, as real LLM weights have
    x = array.array("f", (rng.uniform(-1.0, 1.0) for _ in range(cols)))

    t = lb.quantize(w, (rows, cols), "nf4", block_size=block)
    info = t.info()
    print(f"nf4 [{rows}, {cols}] block {block}: {info['bits_per_weight']:.3f} bits/weight, "
          f"{info['payload_bytes'] + info['statistic_bytes']} bytes "
          f"(f32: {4 * rows * cols})")

    # 1. lowbit's NF4 bytes and absmax equal an independent pure-Python quantizer.
    ref_packed, ref_absmax, ref_deq = reference_nf4(list(w), block)
    ok = True
    if t.payload() != ref_packed:
        print("FAIL: packed NF4 bytes differ from the pure-Python reference")
        ok = False
    if list(t.scales()) != ref_absmax:
        print("FAIL: absmax differs from the pure-Python reference")
        ok = False
    deq = t.dequantize()
    if list(deq) != ref_deq:
        print("FAIL: dequantized values differ from the pure-Python reference")
        ok = False
    err = t.error(w)
    print(f"quantization error: mean abs {err['mean_abs']:.3e}, SNR {err['snr_db']:.2f} dB")

    # 2. GEMV against a float64 dot product over the reference weights.
    packed = t.pack()
    y = packed.gemv(x)
    worst = 0.0
    for r in range(rows):
        ref = math.fsum(ref_deq[r * cols + k] * x[k] for k in range(cols))
        worst = max(worst, abs(y[r] - ref) / (1.0 + abs(ref)))
    print(f"gemv: y[0..3] = {[round(v, 5) for v in y[:4]]}, max rel. diff vs float64 "
          f"reference {worst:.2e}")
    if worst > 1e-5:
        print("FAIL: GEMV differs from the float64 reference")
        ok = False

    # 3. Errors come back as exceptions with lowbit's message.
    try:
        lb.quantize(w, (rows, cols), "nf4", block_size=100)  # not a power of two
        print("FAIL: block size 100 was accepted")
        ok = False
    except LowbitError as e:
        print(f"expected error: {e}")
        if e.status_name != "invalid_argument" or "100" not in e.message:
            ok = False

    # 4. Optional numpy input (same bytes), when numpy is installed.
    try:
        import numpy as np
    except ImportError:
        np = None
    if np is not None:
        t2 = lb.quantize(np.frombuffer(w.tobytes(), dtype=np.float32).reshape(rows, cols),
                         (rows, cols), "nf4", block_size=block)
        if t2.payload() != t.payload():
            print("FAIL: numpy input quantized differently")
            ok = False
        print("numpy input: same bytes")
    packed.close()
    t.close()
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
