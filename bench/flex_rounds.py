#!/usr/bin/env python3
"""Interleaved rounds of bench_flex_attention: medians over rounds, and each variant's ratio to ops::attention.

Each round runs the whole program once (every benchmark once, in order), so the variants alternate within a
round and load from other work on a shared machine falls on all of them alike; the table gives per benchmark
the median CPU time over the rounds, its range, and the ratios of medians to the ops::attention row and to the
identity row of the same pass and T ("-" where the program has no such row; at T = 4096 the ops::attention row is
full causal attention, so the sliding window's ratio is its share of that time), and the median over rounds of the
ratio within each round to the ops::attention row (steadier than the ratio of medians when other work loads the
machine unevenly across rounds).
Usage (from the repository top, built with -Dbench=true):
  python3 bench/flex_rounds.py --build build --rounds 7
docs/flex_attention.md ("Speed") was made this way.
--baseline EXE runs another bench_flex_attention (e.g. main's, copied aside) in the same rounds, alternating which
goes first, and prints its table too, with each row's median over rounds of its time / ours (> 1: ours is faster).
"""
import argparse
import json
import os
import re
import statistics
import subprocess


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--min-time", default="0.1")
    # BM_vs_torch (the libtorch comparison's rows) is bench/flex_torch_rounds.py's.
    ap.add_argument("--filter", default="BM_(attention|flex)",
                    help="passed as --benchmark_filter (a regular expression)")
    ap.add_argument("--baseline", default="", help="another bench_flex_attention binary to run in the same rounds")
    args = ap.parse_args()
    exes = [("ours", os.path.join(args.build, "bench", "bench_flex_attention"))]
    if args.baseline:
        exes.append(("baseline", args.baseline))
    all_times = {side: {} for side, _ in exes}
    for r in range(args.rounds):
        for side, exe in exes if r % 2 == 0 else exes[::-1]:
            cmd = [exe, "--benchmark_min_time=" + args.min_time, "--benchmark_format=json"]
            if args.filter:
                cmd.append("--benchmark_filter=" + args.filter)
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            for b in json.loads(out)["benchmarks"]:
                all_times[side].setdefault(b["name"], []).append(b["cpu_time"])
    for side, _ in exes:
        table(all_times[side], args.rounds, side, all_times["ours"] if side == "baseline" else None)


def table(times, rounds, side, ours):
    med = {n: statistics.median(t) for n, t in times.items()}
    print(f"\n{side}: bench_flex_attention (B = 1, H = 4, d = 64, float32, one thread), CPU ms, {rounds} rounds\n")
    print("| pass | variant | T | median [min–max] | / ops::attention | / identity | / ops::attention per round |"
          + (" baseline / ours per round |" if ours else ""))
    print("|---|---|---|---|---|---|---|" + ("---|" if ours else ""))
    for name, t in times.items():
        m = re.match(r"BM_(attention|flex)(?:_documents)?/(fwdbwd|fwd)_?(\w*)/T:(\d+)", name)
        if not m:
            continue
        kind, pas, variant, T = m.groups()
        base = med.get(f"BM_attention/{pas}/T:{T}")
        label = "ops::attention" if kind == "attention" else variant
        ident = med.get(f"BM_flex/{pas}_identity/T:{T}")
        ratio = f"{med[name] / base:.2f}" if base else "-"
        ratio_id = f"{med[name] / ident:.2f}" if ident else "-"
        base_t = times.get(f"BM_attention/{pas}/T:{T}")
        per_round = f"{statistics.median(a / b for a, b in zip(t, base_t)):.2f}" if base_t else "-"
        speed = ""
        if ours and name in ours:
            speed = f" {statistics.median(a / b for a, b in zip(t, ours[name])):.2f} |"
        print(f"| {pas} | {label} | {T} | {med[name]:.3g} [{min(t):.3g}–{max(t):.3g}] | {ratio} | {ratio_id} | {per_round} |"
              + speed)


if __name__ == "__main__":
    main()
