#!/usr/bin/env python3
"""Writes the seed corpora of the libFuzzer targets (standard library only; run from the repo root).

Seeds are small valid files in the layouts lowbit reads: bitsandbytes 4-bit (nf4 nested, fp4),
bitsandbytes 8-bit, lowbit native, plain tensors; bitsandbytes quant_state JSON strings; and GGUF
files with every metadata value type and every ggml type lowbit decodes.
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def safetensors(tensors, metadata=None):
    """tensors: list of (name, dtype, shape, bytes). Returns the file image."""
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    off = 0
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(data)]}
        off += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(t[3] for t in tensors)


def f32(values):
    return struct.pack("<%df" % len(values), *values)


NF4 = [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
       -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
       0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
       0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0]
FP4 = [x / 12 for x in [0, 0.0625, 8, 12, 4, 6, 2, 3, -0.0, -0.0625, -8, -12, -4, -6, -2, -3]]
DYN = [i / 127.5 - 1.0 for i in range(256)]  # any 256-entry map: loaders use the stored one


def quant_state(qt, shape, nested):
    d = {"quant_type": qt, "blocksize": 64, "dtype": "bfloat16", "shape": shape}
    if nested:
        d.update({"nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.5})
    return json.dumps(d).encode()


def gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gguf(kvs, tensors, alignment=32):
    """kvs: list of (key, type id, encoded value bytes); tensors: list of (name, ne, ggml type,
    data bytes). Returns a GGUF v3 image (tensors padded to `alignment`)."""
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs))
    for key, t, value in kvs:
        out += gguf_string(key) + struct.pack("<I", t) + value
    off = 0
    for name, ne, t, data in tensors:
        out += gguf_string(name) + struct.pack("<I", len(ne)) + struct.pack("<%dQ" % len(ne), *ne)
        out += struct.pack("<IQ", t, off)
        off += (len(data) + alignment - 1) // alignment * alignment
    out += b"\0" * ((alignment - len(out) % alignment) % alignment)
    for _, _, _, data in tensors:
        out += data + b"\0" * ((alignment - len(data) % alignment) % alignment)
    return out


def gguf_seeds():
    """Two files: every metadata value type; one small tensor of each decodable ggml type."""
    kvs = [
        ("general.architecture", 8, gguf_string("llama")),
        ("u8", 0, b"\x07"), ("i8", 1, b"\xf9"), ("u16", 2, struct.pack("<H", 700)),
        ("i16", 3, struct.pack("<h", -700)), ("u32", 4, struct.pack("<I", 70000)),
        ("i32", 5, struct.pack("<i", -70000)), ("f32", 6, struct.pack("<f", 0.5)),
        ("bool", 7, b"\x01"), ("u64", 10, struct.pack("<Q", 1 << 40)),
        ("i64", 11, struct.pack("<q", -(1 << 40))), ("f64", 12, struct.pack("<d", -2.25)),
        ("tokens", 9, struct.pack("<IQ", 8, 3) + gguf_string("a") + gguf_string("") +
         gguf_string("<0x0A>")),
        ("scores", 9, struct.pack("<IQ", 6, 2) + struct.pack("<2f", 1.0, -1.0)),
        ("general.alignment", 4, struct.pack("<I", 32)),
    ]
    blocks = {2: 18, 3: 20, 8: 34, 20: 18, 39: 17}  # q4_0 q4_1 q8_0 iq4_nl mxfp4: 32 elements
    tensors = [("f32", [3], 0, f32([1.0, -2.0, 0.5])),
               ("f16", [2, 2], 1, b"\x00\x3c" * 4),
               ("bf16", [4], 30, b"\x80\x3f" * 4)]
    for t, size in blocks.items():
        block = struct.pack("<e", 0.25)[: 2 if t != 39 else 0] + (b"\x7e" if t == 39 else b"")
        if t == 3:
            block += struct.pack("<e", -0.5)
        block += bytes((i * 29 + t) & 0xFF for i in range(size - len(block)))
        tensors.append(("t%d" % t, [32, 2], t, block * 2))
    tensors.append(("nvfp4", [64], 40, bytes([0x38, 0x30, 0x7F, 0x00]) + bytes(range(32))))
    q4k = struct.pack("<ee", 0.01, 0.002) + bytes(range(7, 19)) + bytes((i * 5) & 0xFF for i in range(128))
    q6k = bytes((i * 11) & 0xFF for i in range(192)) + bytes((i * 3 - 20) & 0xFF for i in range(16))
    q6k += struct.pack("<e", 0.003)
    tensors += [("q4_K", [256], 12, q4k), ("q6_K", [256], 14, q6k)]
    return [("metadata_types", gguf(kvs, [("x", [2], 0, f32([1.0, 2.0]))])),
            ("every_decodable_type", gguf(kvs[:1], tensors))]


def main():
    st = os.path.join(HERE, "corpus", "fuzz_safetensors")
    qs = os.path.join(HERE, "corpus", "fuzz_quant_state")
    n = 4 * 40  # 160 elements, 3 blocks of 64
    w = bytes((i * 37) & 0xFF for i in range(n // 2))
    nf4 = safetensors([
        ("m.weight", "U8", [n // 2, 1], w),
        ("m.weight.absmax", "U8", [3], bytes([10, 200, 128])),
        ("m.weight.nested_absmax", "F32", [1], f32([0.25])),
        ("m.weight.nested_quant_map", "F32", [256], f32(DYN)),
        ("m.weight.quant_map", "F32", [16], f32(NF4)),
        ("m.weight.quant_state.bitsandbytes__nf4", "U8", [len(quant_state("nf4", [4, 40], True))],
         quant_state("nf4", [4, 40], True)),
    ], {"format": "pt"})
    fp4 = safetensors([
        ("m.weight", "U8", [n // 2, 1], w),
        ("m.weight.absmax", "F32", [3], f32([1.0, 0.5, 2.0])),
        ("m.weight.quant_map", "F32", [16], f32(FP4)),
        ("m.weight.quant_state.bitsandbytes__fp4", "U8", [len(quant_state("fp4", [4, 40], False))],
         quant_state("fp4", [4, 40], False)),
        ("m.bias", "BF16", [4], b"\x80\x3f" * 4),
    ])
    int8 = safetensors([
        ("l.SCB", "F32", [3], f32([1.0, 2.0, 3.0])),
        ("l.weight", "I8", [3, 4], bytes(range(12))),
        ("l.weight_format", "U8", [], b"\x00"),
    ])
    state = json.dumps({"format": "int4", "version": 1, "shape": [2, 64], "dtype": "f32",
                        "granularity": "group", "block_size": 32}).encode()
    lowbit = safetensors([
        ("p.weight", "U8", [64], bytes(range(64))),
        ("p.weight.lowbit_state", "U8", [len(state)], state),
        ("p.weight.scales", "F32", [4], f32([0.1, 0.2, 0.3, 0.4])),
    ])
    plain = safetensors([("x", "F16", [2, 2], b"\x00\x3c" * 4), ("y", "I64", [], b"\x01" * 8)],
                        {"k": "v"})
    for name, data in [("bnb_nf4_nested", nf4), ("bnb_fp4", fp4), ("bnb_int8", int8),
                       ("lowbit_int4", lowbit), ("plain", plain)]:
        with open(os.path.join(st, name), "wb") as f:
            f.write(data)
    for name, data in [("nf4_nested", quant_state("nf4", [11008, 4096], True)),
                       ("fp4", quant_state("fp4", [7], False))]:
        with open(os.path.join(qs, name), "wb") as f:
            f.write(data)
    gg = os.path.join(HERE, "corpus", "fuzz_gguf")
    os.makedirs(gg, exist_ok=True)
    for name, data in gguf_seeds():
        with open(os.path.join(gg, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
