#!/usr/bin/env python3
"""Compile-time regression test: compiles one heavy translation unit at -O2 and reports its CPU
time and peak memory, failing above the given limits. The TU itself static_asserts how many
distinct node types it holds, and prints the count when run."""
import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--include", action="append", default=[])
    ap.add_argument("--source", required=True)
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--megabytes", type=float, required=True)
    ap.add_argument("compiler", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = [c for c in a.compiler if c != "--"]
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "heavy")
        args = cmd + ["-std=c++20", "-O2", "-march=x86-64-v3", "-DXTENSOR_USE_XSIMD"]
        args += [f"-I{d}" for d in a.include] + [a.source, "-o", exe]
        start = time.monotonic()
        r = subprocess.run(args, capture_output=True, text=True)
        wall = time.monotonic() - start
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        # CPU time, not wall time: the limit must not depend on what else the machine runs
        seconds = usage.ru_utime + usage.ru_stime
        peak_mb = usage.ru_maxrss / 1024.0
        if r.returncode != 0:
            print(r.stderr[:5000])
            print("compile_time: 0 passed, 1 failed")
            return 1
        out = subprocess.run([exe], capture_output=True, text=True).stdout.strip()
    print(f"{os.path.basename(a.source)}: {out}; compiled in {seconds:.1f} s of CPU ({wall:.1f} s wall), "
          f"peak {peak_mb:.0f} MB (limits {a.seconds:.0f} s CPU, {a.megabytes:.0f} MB)")
    ok = seconds <= a.seconds and peak_mb <= a.megabytes
    print(f"compile_time: {int(ok)} passed, {int(not ok)} failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
