#!/usr/bin/env python3
"""Ratio tables (Markdown) from the Google Benchmark JSON files that bench/run_peers.sh writes.

Usage: tables.py DIR   (DIR holds bench_ad.json, bench_ad_peers.json, bench_mlp_torch.json)

Every time is the CPU time per iteration (the machine is shared: wall time includes waiting for a core).
"""
import json
import os
import sys

UNIT_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}
FUNCTIONS = [("sum", "sum", "N"), ("prod", "prod", "N"), ("lse", "log_sum_exp", "N"),
             ("normal", "normal_log_pdf", "N"), ("mm", "matrix_product", "K (N = 2K²)"),
             ("regression", "regression", "p (N = p + 2)"), ("sv", "stochastic_volatility", "T (N = 2T + 3)")]
TOOLS = ["primal", "hand", "exprgrad", "adolc", "sacado_rad", "sacado_dfad"]


def load(path):
    if not os.path.exists(path) or os.path.getsize(path) == 0:  # not run, or FILTER matched nothing
        return []
    with open(path) as f:
        return [b for b in json.load(f)["benchmarks"] if b.get("run_type", "iteration") == "iteration"]


def cpu_ns(b):
    return b["cpu_time"] * UNIT_NS[b["time_unit"]]


def fmt_time(ns):
    if ns is None:
        return "–"
    if ns < 1e3:
        return f"{ns:.0f} ns"
    if ns < 1e6:
        return f"{ns / 1e3:.3g} µs"
    return f"{ns / 1e6:.3g} ms"


def fmt_ratio(r):
    if r is None:
        return "–"
    return f"{r:.2f}" if r < 10 else f"{r:.0f}"


def ad_tables(benchmarks):
    times = {}  # (fn, tool) -> {size: ns}
    for b in benchmarks:
        name, size = b["name"].rsplit("/", 1)
        name = name.removesuffix("_bench")
        fn, tool = name.split("_", 1)
        times.setdefault((fn, tool), {})[int(size)] = cpu_ns(b)
    out = []
    for fn, title, size_name in FUNCTIONS:
        sizes = sorted(times.get((fn, "primal"), {}))
        if not sizes:
            continue
        out.append(f"#### {title}\n")
        strict = bool(times.get((fn, "primal8")))
        extra = " exprgrad ÷ primal8 |" if strict else ""
        out.append(f"| {size_name} | primal | exprgrad | hand ÷ primal | exprgrad ÷ primal |{extra} ADOL-C ÷ primal "
                   "| Rad ÷ primal | DFad ÷ primal | ADOL-C ÷ exprgrad | Rad ÷ exprgrad | DFad ÷ exprgrad |")
        out.append("|" + "---|" * (12 if strict else 11))
        for n in sizes:
            t = {tool: times.get((fn, tool), {}).get(n) for tool in TOOLS}
            primal, ours = t["primal"], t["exprgrad"]
            over = lambda tool: None if t[tool] is None or primal is None else t[tool] / primal
            vs = lambda tool: None if t[tool] is None or ours is None else t[tool] / ours
            row = [str(n), fmt_time(primal), fmt_time(ours)]
            row += [fmt_ratio(over(tool)) for tool in TOOLS[1:3]]
            if strict:
                p8 = times[(fn, "primal8")].get(n)
                row.append(fmt_ratio(None if p8 is None or ours is None else ours / p8))
            row += [fmt_ratio(over(tool)) for tool in TOOLS[3:]]
            row += [fmt_ratio(vs(tool)) for tool in TOOLS[3:]]
            out.append("| " + " | ".join(row) + " |")
        out.append("")
    return "\n".join(out)


def mlp_table(benchmarks):
    times = {}
    for b in benchmarks:
        parts = b["name"].split("/")
        tool = parts[0].removeprefix("mlp_")
        batch = int(parts[1].split(":")[1])
        width = int(parts[2].split(":")[1])
        times[(tool, batch, width)] = cpu_ns(b)
    batches = sorted({k[1] for k in times})
    widths = sorted({k[2] for k in times})
    if not batches:
        return ""
    out = ["libtorch time / exprgrad time (> 1: exprgrad is faster); in brackets exprgrad's time / libtorch's time\n"]
    out.append("| batch \\ width | " + " | ".join(str(w) for w in widths) + " |")
    out.append("|" + "---|" * (len(widths) + 1))
    for b in batches:
        cells = []
        for w in widths:
            e, t = times.get(("exprgrad", b, w)), times.get(("torch", b, w))
            if e is None or t is None:
                cells.append("–")
            else:
                cells.append(f"**{t / e:.2f}** ({fmt_time(e)} / {fmt_time(t)})")
        out.append(f"| {b} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "."
    ad = load(os.path.join(d, "bench_ad.json")) + load(os.path.join(d, "bench_ad_peers.json"))
    print("### AD suite (CPU time per gradient; ratios)\n")
    print(ad_tables(ad))
    print("### MLP forward + backward, float32, one thread\n")
    print(mlp_table(load(os.path.join(d, "bench_mlp_torch.json"))))


if __name__ == "__main__":
    main()
