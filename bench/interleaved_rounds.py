#!/usr/bin/env python3
"""Interleaved before/after rounds of Google Benchmark programs from two build directories, as markdown tables.

Each round runs every benchmark program once from the base build and once from the new build, alternating
which goes first, so that load from other work on a shared machine falls on both sides alike. The table gives,
per benchmark, the median and the range [min-max] over the rounds of each side and the ratio of the medians.
Times are CPU times (the programs below run their work on the calling thread; bench_emo is run on one thread).

Usage (from the repository top, with a second worktree of the base commit built with -Dbench=true):
  python3 bench/interleaved_rounds.py --base ../kbase/build --new build --rounds 7
docs/benchmarks.md ("One copy of each kernel") was made this way.
"""
import argparse
import json
import os
import statistics
import subprocess

ONE_THREAD = {"EXPRGRAD_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
# program, filter, min_time, extra environment, title
PROGRAMS = [
    ("bench_map", "exprgrad", "0.2", {}, "bench_map (simd::map_value_and_grad, 1e6 floats), CPU ms"),
    ("bench_attention", "BM_exprgrad.*threads:1", "0.2", {}, "bench_attention (one thread, B = 1, H = 4, d = 64), CPU ms"),
    ("bench_emo", "emo_ce|emo_mode1/|plain_cross", "0.2", ONE_THREAD, "bench_emo (one thread), CPU ms"),
    ("bench_softmax", "", "0.1", {}, "bench_softmax (256 rows, float32), CPU µs"),
]


def run(build, program, flt, min_time, env):
    cmd = [os.path.join(build, "bench", program), "--benchmark_min_time=" + min_time, "--benchmark_format=json"]
    if flt:
        cmd.append("--benchmark_filter=" + flt)
    out = subprocess.run(cmd, env={**os.environ, **env}, check=True, capture_output=True, text=True).stdout
    return {b["name"]: b["cpu_time"] for b in json.loads(out)["benchmarks"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True, help="build directory of the base commit")
    ap.add_argument("--new", required=True, help="build directory of the change")
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    times = {p[0]: {} for p in PROGRAMS}  # program -> name -> side -> [times]
    for r in range(args.rounds):
        sides = [("base", args.base), ("new", args.new)]
        for side, build in sides if r % 2 == 0 else sides[::-1]:
            for program, flt, min_time, env, _ in PROGRAMS:
                for name, t in run(build, program, flt, min_time, env).items():
                    times[program].setdefault(name, {}).setdefault(side, []).append(t)
    for program, _, _, _, title in PROGRAMS:
        print(f"\n{title}, {args.rounds} rounds\n")
        print("| benchmark | before: median [min–max] | after: median [min–max] | after / before |")
        print("|---|---|---|---|")
        for name, sides in times[program].items():
            a, b = sides.get("base", []), sides.get("new", [])
            if not a or not b:
                continue
            ma, mb = statistics.median(a), statistics.median(b)
            short = name.replace("/threads:1", "").replace("BM_exprgrad_", "")
            print(f"| {short} | {ma:.3g} [{min(a):.3g}–{max(a):.3g}] | {mb:.3g} [{min(b):.3g}–{max(b):.3g}] | "
                  f"{mb / ma:.2f} |")


if __name__ == "__main__":
    main()
