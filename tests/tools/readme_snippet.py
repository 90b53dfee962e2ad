#!/usr/bin/env python3
"""Extracts the C++ block that follows the `readme-snippet` marker in README.md, compiles it with the
flags a consumer uses, and runs it: the README's first program must build and run as shown."""
import argparse
import os
import re
import subprocess
import sys
import tempfile


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--readme", required=True)
    ap.add_argument("--include", action="append", default=[])
    ap.add_argument("--lib", required=True, help="directory holding libexprgrad")
    ap.add_argument("compiler", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = [c for c in a.compiler if c != "--"]
    text = open(a.readme, encoding="utf-8").read()
    m = re.search(r"<!-- readme-snippet[^>]*-->\s*```cpp\n(.*?)```", text, re.S)
    if not m:
        print("README.md has no readme-snippet block\nreadme_snippet: 0 passed, 1 failed")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "snippet.cpp")
        exe = os.path.join(tmp, "snippet")
        open(src, "w", encoding="utf-8").write(m.group(1))
        args = cmd + ["-std=c++20", "-O1", "-march=x86-64-v3", "-DXTENSOR_USE_XSIMD"]
        blas = subprocess.run(["pkg-config", "--cflags", "--libs", "openblas"], capture_output=True, text=True)
        args += [f"-I{d}" for d in a.include] + [src, "-o", exe, f"-L{a.lib}", "-lexprgrad", f"-Wl,-rpath,{a.lib}"]
        args += blas.stdout.split() + ["-pthread"]
        r = subprocess.run(args, capture_output=True, text=True)
        if r.returncode != 0:
            print(r.stderr[:5000])
            print("readme_snippet: 0 passed, 1 failed")
            return 1
        run = subprocess.run([exe], capture_output=True, text=True)
        print(run.stdout.strip())
        ok = run.returncode == 0 and run.stdout.startswith("2.08696")
    print(f"readme_snippet: {int(ok)} passed, {int(not ok)} failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
