#!/usr/bin/env python3
"""End-to-end training throughput of the flagship against the same model in libtorch (issue #18).

Runs, interleaved round by round, `tiny_lm --steps S --eval-every 100000 --ckpt-every 100000 --eval-bytes 2000
--threads T` (the issue's command) and `tiny_lm_torch --steps S --threads T --blas-threads K` (bench/peers; the
same model, its parameters copied from tiny_lm's and checked equal on one batch) at each thread count, libtorch
at every OpenBLAS thread count up to T (and, at T > 1, both sides' other threading: tiny_lm --parallel ops, each
operation threaded instead of one model copy per thread, and tiny_lm_torch --replicas T, one copy per thread), and prints the median, minimum and maximum of the last `N pieces/s` of
each configuration, and per core budget the ratio of medians, each side at its best setting within the budget
(any thread count up to it: libtorch 1.13 from Debian runs slower at 2 threads than at 1 on a 2-core VM). Writes the raw runs as TSV when --tsv is given.

Usage: bench/tiny_lm_vs_torch.py --tiny-lm build/examples/tiny_lm --torch build-peers/bench/peers/tiny_lm_torch
                                 [--rounds 5] [--steps 400] [--threads 1,2] [--tsv docs/results/tiny_lm_vs_torch.tsv]
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import openblas_core  # noqa: E402

RATE = re.compile(r"(\d+) pieces/s")


def last_rate(text, what):
    rates = RATE.findall(text)
    if not rates:
        sys.exit(f"tiny_lm_vs_torch: no 'N pieces/s' in the output of {what}:\n{text[-2000:]}")
    return float(rates[-1])


def run(cmd, env):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"tiny_lm_vs_torch: {' '.join(cmd)} failed with {p.returncode}:\n{p.stdout[-2000:]}{p.stderr[-2000:]}")
    return p.stdout + p.stderr


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiny-lm", required=True)
    ap.add_argument("--torch", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--tsv")
    ap.add_argument("--openblas-coretype", default="auto",
                    help="auto (default: the CPU's best core when OpenBLAS chose a weaker one), none, or a name")
    a = ap.parse_args()
    threads = [int(t) for t in a.threads.split(",")]
    blas_env, blas_line = openblas_core.coretype_env(a.openblas_coretype)
    print(blas_line, flush=True)
    configs = []
    for t in threads:
        configs.append(("exprgrad", t, t))
        if t > 1:
            configs.append(("exprgrad-ops", t, t))  # --parallel ops: the per-operation threading, for comparison
        for k in range(1, t + 1):
            configs.append(("libtorch", t, k))
        if t > 1:
            configs.append(("libtorch-copies", t, 1))  # --replicas t: one model copy per thread, as tiny_lm's default
    rows, rates = [], {c: [] for c in configs}
    for r in range(a.rounds):
        # Alternate the order each round so neither side always runs first after the other.
        order = configs if r % 2 == 0 else list(reversed(configs))
        for (who, t, k) in order:
            env = dict(os.environ, OMP_NUM_THREADS=str(t), OPENBLAS_NUM_THREADS=str(k), **blas_env)
            if who.startswith("libtorch") and t > 1:
                # libtorch's OpenMP threads spin while waiting; on a 2-core VM that halved its speed at 2 threads
                # (8.0k against 17.6k pieces/s passive, one run each), so the peer runs passive: its best setting.
                env["OMP_WAIT_POLICY"] = "PASSIVE"
            if who.startswith("exprgrad"):
                extra = ["--parallel", "ops"] if who == "exprgrad-ops" else []
                with tempfile.TemporaryDirectory() as d:
                    out = run([a.tiny_lm, "--steps", str(a.steps), "--eval-every", "100000", "--ckpt-every", "100000",
                               "--eval-bytes", "2000", "--threads", str(t), "--run-dir", os.path.join(d, "run")] + extra,
                              env)
            elif who == "libtorch-copies":
                out = run([a.torch, "--steps", str(a.steps), "--replicas", str(t)], env)
            else:
                out = run([a.torch, "--steps", str(a.steps), "--threads", str(t), "--blas-threads", str(k)], env)
            v = last_rate(out, who)
            rates[(who, t, k)].append(v)
            rows.append((r + 1, who, t, k, v))
            print(f"round {r + 1}: {who:12s} threads {t} blas {k}: {v:.0f} pieces/s", flush=True)
    print()
    print("| side | threads | BLAS threads | median pieces/s | range |")
    print("|---|---|---|---|---|")
    for c in configs:
        v = rates[c]
        print(f"| {c[0]} | {c[1]} | {c[2]} | {statistics.median(v):.0f} | {min(v):.0f}–{max(v):.0f} |")
    print()
    for t in threads:
        # Each side at its best setting within t cores: any thread count up to t, any BLAS thread count.
        ours = max(statistics.median(rates[c]) for c in configs if c[0] == "exprgrad" and c[1] <= t)
        best_c = max((c for c in configs if c[0].startswith("libtorch") and c[1] <= t),
                     key=lambda c: statistics.median(rates[c]))
        best = statistics.median(rates[best_c])
        how = f"{best_c[1]} copies" if best_c[0] == "libtorch-copies" else f"{best_c[1]} threads, BLAS {best_c[2]}"
        print(f"{t} cores: exprgrad {ours:.0f} / libtorch {best:.0f} (its best: {how}) = {ours / best:.2f}")
    if a.tsv:
        with open(a.tsv, "w") as f:
            f.write("round\tside\tthreads\tblas_threads\tpieces_per_s\n")
            for row in rows:
                f.write("\t".join(str(x) for x in row[:4]) + f"\t{row[4]:.0f}\n")


if __name__ == "__main__":
    main()
