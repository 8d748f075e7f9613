#!/usr/bin/env python3
"""bench/summarize.py — turns lowbit_bench JSON output into a table (python3 stdlib only).

Usage:
  summarize.py results.json            # a file written with --benchmark_out=... (JSON)
  summarize.py -                       # JSON on stdin
  summarize.py --bench build/bench/bench/lowbit_bench [--quick] [--repetitions 3]
               [--out results.json] [-- extra benchmark flags]

Per benchmark it uses the median aggregate when the run had repetitions, else the median of
the iterations it finds. Columns:
  GB/s or GFLOP/s   bytes_per_second (weight + scale bytes for GEMV, float32 bytes for
                    quantize/dequantize, DRAM bytes for MemRead) or the FLOP/s counter (GEMM)
  time              per call (ms, or us below 0.1 ms)
  vs f32_eigen      speed-up in time over f32_eigen with the same op, shape, M and threads
                    (GemvCApi rows: over GemvCApi f32_eigen, the C ABI's f32 format)
  of MemRead        GB/s as a fraction of BM_MemRead with the same thread count (GEMV only;
                    not for the cache-resident 64x64 per-call-overhead GEMV)
  cpu/wall          main-thread CPU time / wall time: 1.00 when the benchmark had its cores to
                    itself; lower values mean other processes took the CPU (shared machines)

With --time cpu, single-thread rows use the main thread's CPU time instead of wall time
(robust when other processes share the cores; multi-thread rows keep wall time, since the
main thread's CPU time misses the workers).
"""

import argparse
import json
import re
import statistics
import subprocess
import sys

# The key cases: the roofline, the DRAM-bound GEMV of every format, hot-cache GEMV at
# 4096x4096, GEMM at M=32, and the codecs. Also documented in docs/performance.md.
QUICK_FILTER = (r"BM_MemRead|BM_Gemv/.*/(stream|4096x4096)/|BM_Gemm/.*/M32/|"
                r"BM_(Quantize|Dequantize)/")

NAME_RE = {
    "MemRead": re.compile(r"^BM_MemRead/(?P<mib>\d+)/threads:(?P<t>\d+)$"),
    "Gemv": re.compile(r"^BM_Gemv/(?P<fmt>[^/]+)/(?P<act>[^/]+)/(?P<shape>[^/]+)"
                       r"/threads:(?P<t>\d+)$"),
    "GemvCApi": re.compile(r"^BM_GemvCApi/(?P<fmt>[^/]+)/(?P<act>[^/]+)/(?P<shape>[^/]+)"
                           r"/threads:(?P<t>\d+)$"),
    "Gemm": re.compile(r"^BM_Gemm/(?P<fmt>[^/]+)/(?P<act>[^/]+)/M(?P<m>\d+)/(?P<shape>[^/]+)"
                       r"/threads:(?P<t>\d+)$"),
    "Quantize": re.compile(r"^BM_Quantize/(?P<fmt>[^/]+)$"),
    "Dequantize": re.compile(r"^BM_Dequantize/(?P<fmt>[^/]+)$"),
}
TIME_SCALE = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def base_name(name):
    """Strips Google Benchmark's suffixes: /real_time, /manual_time and aggregate names."""
    name = re.sub(r"_(mean|median|stddev|cv)$", "", name)
    return re.sub(r"/(real_time|manual_time)$", "", name)


def collect(doc):
    """Returns {base name: {"seconds": s, "bps": bytes/s or None, "flops": FLOP/s or None}}."""
    runs, medians = {}, {}
    for b in doc.get("benchmarks", []):
        if b.get("error_occurred"):
            continue
        name = base_name(b.get("run_name", b["name"]))
        scale = TIME_SCALE[b.get("time_unit", "ns")]
        row = {
            "seconds": b["real_time"] * scale,
            "cpu_seconds": b.get("cpu_time", b["real_time"]) * scale,
            "bps": b.get("bytes_per_second"),
            "flops": b.get("FLOP/s"),
        }
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                medians[name] = row
        else:
            runs.setdefault(name, []).append(row)
    out = {}
    for name, rows in runs.items():
        if name in medians:
            out[name] = medians[name]
            continue
        out[name] = {
            key: (statistics.median(r[key] for r in rows) if rows[0][key] is not None else None)
            for key in ("seconds", "cpu_seconds", "bps", "flops")
        }
    for name, row in medians.items():
        out.setdefault(name, row)
    return out


def parse(name):
    for kind, rx in NAME_RE.items():
        m = rx.match(name)
        if m:
            return kind, m.groupdict()
    return None, None


def fmt_ratio(x):
    return "" if x is None else f"{x:.2f}x"


def use_cpu_time(row):
    """The row re-timed with the main thread's CPU time (rates scaled to match)."""
    if not row["cpu_seconds"]:
        return row
    k = row["seconds"] / row["cpu_seconds"]
    out = dict(row)
    out["seconds"] = row["cpu_seconds"]
    for key in ("bps", "flops"):
        if row[key] is not None:
            out[key] = row[key] * k
    return out


def table(results, time_mode="wall"):
    parsed = []
    for name, row in results.items():
        kind, f = parse(name)
        if kind:
            busy = row["cpu_seconds"] / row["seconds"] if row["seconds"] else None
            if time_mode == "cpu" and f.get("t", "1") == "1":
                row = use_cpu_time(row)
            row = dict(row, busy=busy)
            parsed.append((kind, f, row))
    memread = {f["t"]: row["bps"] for kind, f, row in parsed if kind == "MemRead"}
    eigen = {}
    for kind, f, row in parsed:
        if kind in ("Gemv", "GemvCApi", "Gemm") and f["fmt"] == "f32_eigen":
            eigen[(kind, f["shape"], f.get("m"), f["t"])] = row["seconds"]

    header = ["op", "format", "act", "shape", "threads", "GB/s or GFLOP/s", "time",
              "vs f32_eigen", "of MemRead", "cpu/wall"]
    lines = []
    order = {"MemRead": 0, "Gemv": 1, "GemvCApi": 2, "Gemm": 3, "Quantize": 4, "Dequantize": 5}
    shape_order = {"stream": 0, "4096x4096": 1, "11008x4096": 2, "4096x11008": 3, "64x64": 4}
    parsed.sort(key=lambda p: (order[p[0]], shape_order.get(p[1].get("shape"), 9),
                               int(p[1].get("m") or 0), p[1].get("fmt", ""), p[1].get("act", ""),
                               int(p[1].get("t", 1))))
    for kind, f, row in parsed:
        shape = f.get("shape", f"{f.get('mib', '')} MiB" if kind == "MemRead" else "4096x4096")
        if kind == "Gemm":
            shape = f"M{f['m']} {f['shape']}"
        speed = (f"{row['flops'] / 1e9:.1f} GFLOP/s" if row["flops"] is not None
                 else f"{row['bps'] / 1e9:.2f} GB/s")
        vs_eigen = of_mem = None
        if kind in ("Gemv", "GemvCApi", "Gemm") and f["fmt"] != "f32_eigen":
            ref = eigen.get((kind, f["shape"], f.get("m"), f["t"]))
            if ref:
                vs_eigen = ref / row["seconds"]
        # The 64x64 GEMV is cache-resident per-call overhead, not a bandwidth figure.
        if (kind in ("Gemv", "MemRead") and f.get("shape") != "64x64"
                and memread.get(f.get("t")) and row["bps"]):
            of_mem = row["bps"] / memread[f["t"]]
        ms = row["seconds"] * 1e3
        time = f"{ms:.3f} ms" if ms >= 0.1 else f"{ms * 1e3:.2f} us"
        lines.append([kind, f.get("fmt", "-"), f.get("act", "-"), shape, f.get("t", "1"), speed,
                      time, fmt_ratio(vs_eigen),
                      "" if of_mem is None else f"{100 * of_mem:.0f}%",
                      "" if row["busy"] is None else f"{row['busy']:.2f}"])
    widths = [max(len(str(r[i])) for r in [header] + lines) for i in range(len(header))]
    out = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |",
           "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += ["| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |" for r in lines]
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("json", nargs="?", help="benchmark JSON file, or - for stdin")
    ap.add_argument("--bench", help="run this lowbit_bench binary instead of reading JSON")
    ap.add_argument("--quick", action="store_true", help="only the key cases (QUICK_FILTER)")
    ap.add_argument("--repetitions", type=int, default=1)
    ap.add_argument("--out", help="also save the raw JSON here (with --bench)")
    ap.add_argument("--time", choices=("wall", "cpu"), default="wall",
                    help="cpu: time single-thread rows by the main thread's CPU time")
    ap.add_argument("extra", nargs=argparse.REMAINDER, help="-- flags passed to the binary")
    args = ap.parse_args()

    if args.bench:
        cmd = [args.bench, "--benchmark_format=json"]
        if args.quick:
            cmd.append("--benchmark_filter=" + QUICK_FILTER)
        if args.repetitions > 1:
            cmd += [f"--benchmark_repetitions={args.repetitions}",
                    "--benchmark_report_aggregates_only=true"]
        cmd += [a for a in args.extra if a != "--"]
        print("running:", " ".join(cmd), file=sys.stderr)
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, check=True, text=True)
        text = proc.stdout
        if args.out:
            with open(args.out, "w") as fh:
                fh.write(text)
    elif args.json == "-":
        text = sys.stdin.read()
    elif args.json:
        with open(args.json) as fh:
            text = fh.read()
    else:
        ap.error("give a JSON file, - for stdin, or --bench PATH")
    doc = json.loads(text)
    ctx = doc.get("context", {})
    print(f"host {ctx.get('host_name', '?')}, {ctx.get('num_cpus', '?')} CPUs, "
          f"eigen {ctx.get('eigen_isa', '?')}, highway {ctx.get('highway_target', '?')}, "
          f"L3 {int(ctx.get('l3_bytes', 0)) >> 20} MiB, "
          f"stream set {int(ctx.get('stream_set_bytes', 0)) >> 20} MiB, "
          f"date {ctx.get('date', '?')}")
    print(f"timing: {args.time}")
    print(table(collect(doc), args.time))


if __name__ == "__main__":
    main()
