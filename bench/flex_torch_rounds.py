#!/usr/bin/env python3
"""Issue 20's libtorch comparison: flex attention's modifications against libtorch 1.13's tensor operations.

Runs bench_flex_attention's BM_vs_torch rows (ours) and bench_flex_torch's BM_torch rows (libtorch: scores
materialized, bias added, tanh, masked_fill, softmax, @V, autograd) in interleaved rounds, alternating which goes
first, so load from other work on a shared machine falls on both alike. Forward + backward, B = 1, H = 4, d = 64,
float32. Per variant, T and thread count: the median time over the rounds and its range, and the ratio torch / ours
(the median over rounds of the ratio within each round, and its range). One-thread rows are the process's CPU
time, two-thread rows wall-clock time. Both programs run with glibc's allocator told to keep freed memory (else
every T x T temporary of libtorch is a fresh mmap whose page faults cost more than the arithmetic: torch's best
setting, as in bench/attention_table.py). The load average is printed before and after.

Usage (from the repository top, build/ configured with -Dbench=true -Dpeers=true):
  meson compile -C build bench_flex_attention bench_flex_torch
  nice -n 10 python3 bench/flex_torch_rounds.py --build build --rounds 5
docs/attention.md ("Flex attention's modifications against libtorch") was made this way.
--baseline EXE adds a third program in the same rounds (an older bench_flex_attention, e.g. main's, copied aside):
its median, torch / it, and its time / ours (> 1: ours is faster), so a change is measured before and after under
the same load.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import openblas_core  # noqa: E402

TUNED = "glibc.malloc.mmap_threshold=1073741824:glibc.malloc.trim_threshold=4294967295"
# TORCH_FLUSH_DENORMAL=1: bench_flex_torch turns on libtorch's flush-denormal switch, its best setting on Intel cores
# (ALiBi at T = 512: 47.7 -> 14.7 ms on Emerald Rapids), as our kernels flush subnormals themselves.
ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "2", "GLIBC_TUNABLES": TUNED, "TORCH_FLUSH_DENORMAL": "1"}


def run(exe, flt, min_time):
    cmd = [exe, "--benchmark_min_time=" + min_time, "--benchmark_format=json", "--benchmark_filter=" + flt]
    out = subprocess.run(cmd, env={**os.environ, **ENV}, check=True, capture_output=True, text=True).stdout
    res = {}
    for b in json.loads(out)["benchmarks"]:
        m = re.match(r"BM_(?:vs_)?torch/(\w+)/T:(\d+)/threads:(\d+)", b["name"])
        if m:
            key = (m.group(1), int(m.group(2)), int(m.group(3)))
            res[key] = b["cpu_time"] if key[2] == 1 else b["real_time"]
    return res


def load():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--min-time", default="0.1")
    ap.add_argument("--filter", default="", help="a regular expression on the variant/T part, e.g. 'causal|alibi'")
    ap.add_argument("--baseline", default="", help="another bench_flex_attention binary to run in the same rounds")
    ap.add_argument("--openblas-coretype", default="auto",
                    help="auto (default: the CPU's best core when OpenBLAS chose a weaker one), none, or a name")
    args = ap.parse_args()
    blas_env, blas_line = openblas_core.coretype_env(args.openblas_coretype)
    ENV.update(blas_env)
    print(blas_line)
    sides = [("ours", os.path.join(args.build, "bench", "bench_flex_attention"), "BM_vs_torch/"),
             ("torch", os.path.join(args.build, "bench", "peers", "bench_flex_torch"), "BM_torch/")]
    if args.baseline:
        sides.append(("before", args.baseline, "BM_vs_torch/"))
    print(f"load average before: {load()}")
    times = {side: {} for side, _, _ in sides}
    for r in range(args.rounds):
        for side, exe, prefix in sides[r % len(sides):] + sides[:r % len(sides)]:
            for key, t in run(exe, prefix + "(" + (args.filter or ".") + ")", args.min_time).items():
                times[side].setdefault(key, []).append(t)
    print(f"load average after: {load()}")
    print(f"\nforward + backward, B = 1, H = 4, d = 64, float32, ms (1 thread: CPU time; 2 threads: wall-clock), "
          f"{args.rounds} rounds\n")
    base = bool(args.baseline)
    extra = " before: median [min–max] | torch / before: median | before / ours: median [min–max] |" if base else ""
    print("| variant | T | threads | ours: median [min–max] | torch: median [min–max] | torch / ours: median [min–max] |"
          + extra)
    print("|---|---|---|---|---|---|" + ("---|---|---|" if base else ""))
    for key in sorted(times["ours"], key=lambda k: (k[2], list(times["ours"]).index(k))):
        a, b = times["ours"][key], times["torch"].get(key)
        if not b:
            continue
        ratios = [y / x for x, y in zip(a, b)]
        print(f"| {key[0]} | {key[1]} | {key[2]} | {statistics.median(a):.3g} [{min(a):.3g}–{max(a):.3g}] | "
              f"{statistics.median(b):.3g} [{min(b):.3g}–{max(b):.3g}] | "
              f"{statistics.median(ratios):.2f} [{min(ratios):.2f}–{max(ratios):.2f}] |", end="")
        c = times.get("before", {}).get(key)
        if base and c:
            rb = [y / x for x, y in zip(c, b)]
            sp = [y / x for x, y in zip(a, c)]
            print(f" {statistics.median(c):.3g} [{min(c):.3g}–{max(c):.3g}] | {statistics.median(rb):.2f} | "
                  f"{statistics.median(sp):.2f} [{min(sp):.2f}–{max(sp):.2f}] |", end="")
        print()
    # torch at its better thread count per cell against ours on one thread
    print("\n| variant | T | torch's best (threads) / ours on 1 thread |")
    print("|---|---|---|")
    for key in times["ours"]:
        if key[2] != 1:
            continue
        best = min(((statistics.median(times["torch"][(key[0], key[1], n)]), n) for n in (1, 2)
                    if (key[0], key[1], n) in times["torch"]), default=None)
        if best:
            print(f"| {key[0]} | {key[1]} | {best[0] / statistics.median(times['ours'][key]):.2f} ({best[1]}) |")


if __name__ == "__main__":
    main()
