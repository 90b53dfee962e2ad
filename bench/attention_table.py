#!/usr/bin/env python3
"""Issue 4's attention tables: exprgrad, libtorch and the naive implementation side by side, in one run.

The machines we measure on are noisy 2-core VMs whose speed drifts by 10-20 % within minutes, so the programs
are run interleaved for several rounds (exprgrad, libtorch, exprgrad, libtorch, ...) and every cell is the
minimum over the rounds' repetitions: the ratios then compare the two under the same conditions. One-thread
rows are CPU times, two-thread rows wall-clock times (as the benchmarks report them).

Usage (from the repository root, after building build/ and build-peers/ with -Dpeers=true):
    python3 bench/attention_table.py [--rounds 3] [--naive]

libtorch runs with glibc's allocator told to keep freed memory (else every T x T temporary is a fresh mmap
whose page faults cost more than the arithmetic); one column reruns it with the default allocator.
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OURS = os.path.join(ROOT, "build/bench/bench_attention")
TORCH = os.path.join(ROOT, "build-peers/bench/peers/bench_attention_torch")
TUNED = "glibc.malloc.mmap_threshold=1073741824:glibc.malloc.trim_threshold=4294967295"
H, D = 4, 64


def run(binary, filt, env_extra, reps=3, min_time=0.1):
    env = dict(os.environ, **env_extra)
    out = subprocess.run([binary, "--benchmark_filter=" + filt, "--benchmark_min_time=%g" % min_time,
                          "--benchmark_repetitions=%d" % reps, "--benchmark_format=json"],
                         capture_output=True, text=True, env=env, check=True).stdout
    res = {}
    for b in json.loads(out)["benchmarks"]:
        if b.get("run_type") != "iteration" or b.get("error_occurred"):
            continue
        t = b["real_time"] if "/real_time" in b["run_name"] else b["cpu_time"]
        t *= {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b.get("time_unit", "ns")]
        name = b["run_name"].replace("/real_time", "")
        res[name] = min(res.get(name, float("inf")), t)
        if "GFLOP/s" in b and "fma_peak" in name:
            res[name + ":gflops"] = max(res.get(name + ":gflops", 0.0), b["GFLOP/s"])
    return res


def merge(into, new):
    for k, v in new.items():
        if k.endswith(":gflops"):
            into[k] = max(into.get(k, 0.0), v)
        else:
            into[k] = min(into.get(k, float("inf")), v)


def flops(T, causal, backward):
    pairs = T * (T + 1) / 2 if causal else T * T
    return (14.0 if backward else 4.0) * D * pairs * H


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--naive", action="store_true", help="also run the naive materialised implementation")
    a = ap.parse_args()
    ours, torch, torch_default, naive = {}, {}, {}, {}
    for threads in (1, 2):
        blas = {"OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
        for r in range(a.rounds):
            print("round %d, %d thread(s)" % (r + 1, threads), file=sys.stderr)
            merge(ours, run(OURS, "BM_(exprgrad|fma_peak).*threads:%d" % threads, {}))
            merge(torch, run(TORCH, "threads:%d" % threads, dict(blas, GLIBC_TUNABLES=TUNED)))
        if threads == 1:
            merge(torch_default, run(TORCH, "threads:1", blas, reps=1, min_time=0.05))
        if a.naive:
            merge(naive, run(OURS, "BM_naive.*threads:%d" % threads, {}, reps=1, min_time=0.05))
    peak1 = max(ours.get("BM_fma_peak/threads:1/bits:512:gflops", 0), ours["BM_fma_peak/threads:1/bits:256:gflops"])
    print("One-core FMA peak: %.1f GFLOP/s (512-bit), %.1f GFLOP/s (256-bit); two threads: %.1f, %.1f\n" % (
        ours.get("BM_fma_peak/threads:1/bits:512:gflops", 0), ours["BM_fma_peak/threads:1/bits:256:gflops"],
        ours.get("BM_fma_peak/threads:2/bits:512:gflops", 0), ours["BM_fma_peak/threads:2/bits:256:gflops"]))
    for backward in (False, True):
        for threads in (1, 2):
            print("#### %s, %d thread%s\n" % ("forward + backward" if backward else "forward", threads,
                                             "s" if threads > 1 else ""))
            print("| T | causal | exprgrad ms | GFLOP/s | of peak | libtorch ms | GFLOP/s | speed-up |"
                  " libtorch (default malloc) ms | naive ms |")
            print("|---|---|---|---|---|---|---|---|---|---|")
            for causal in (0, 1):
                for T in (128, 512, 2048):
                    key = "/T:%d/causal:%d/threads:%d" % (T, causal, threads)
                    kind = "forward_backward" if backward else "forward"
                    e = ours["BM_exprgrad_" + kind + key]
                    t = torch.get("BM_torch_" + kind + key)
                    td = torch_default.get("BM_torch_" + kind + key)
                    nv = naive.get("BM_naive_" + kind + key)
                    f = flops(T, causal, backward)
                    cell = lambda x: "%.3g" % x if x is not None else "–"
                    print("| %d | %s | %.3g | %.1f | %.0f%% | %s | %s | %s | %s | %s |" % (
                        T, "yes" if causal else "no", e, f / e / 1e6, 100 * f / e / 1e6 / (peak1 * threads),
                        cell(t), "%.1f" % (f / t / 1e6) if t else "–", "%.2fx" % (t / e) if t else "–",
                        cell(td), cell(nv)))
            print()


if __name__ == "__main__":
    main()
