#!/usr/bin/env python3
"""Docs examples that a test compiles and runs must be the ones the docs show.

A test marks an example with `// docs-begin docs/NAME.md` and `// docs-end`; the lines between (indentation
and trailing blanks ignored) must stand, in order and contiguous, inside one ```cpp block of docs/NAME.md.
Without this check the copy in the test and the copy in the docs drift apart silently.
`--self-test` builds a small tree with one matching and one drifted example and checks both verdicts."""
import argparse
import os
import re
import sys
import tempfile

MARK = re.compile(r"^\s*// docs-begin (\S+)\s*$")
END = re.compile(r"^\s*// docs-end\s*$")


def norm(lines):
    return [l.strip() for l in lines if l.strip()]


def cpp_blocks(text):
    return [norm(b.split("\n")) for b in re.findall(r"```cpp\n(.*?)```", text, re.S)]


def contains(block, run):
    n = len(run)
    return any(block[i:i + n] == run for i in range(len(block) - n + 1))


def check(root):
    """Returns (examples found, list of failure messages)."""
    found, failures = 0, []
    for d, _, files in os.walk(os.path.join(root, "tests")):
        for f in sorted(files):
            if not f.endswith((".cpp", ".hpp")):
                continue
            path = os.path.join(d, f)
            lines = open(path, encoding="utf-8").read().split("\n")
            i = 0
            while i < len(lines):
                m = MARK.match(lines[i])
                if not m:
                    i += 1
                    continue
                j = i + 1
                while j < len(lines) and not END.match(lines[j]):
                    j += 1
                rel = os.path.relpath(path, root)
                found += 1
                doc = os.path.join(root, m.group(1))
                run = norm(lines[i + 1:j])
                if j == len(lines):
                    failures.append(f"{rel}:{i + 1}: docs-begin without docs-end")
                elif not os.path.isfile(doc):
                    failures.append(f"{rel}:{i + 1}: names {m.group(1)}, which does not exist")
                elif not run:
                    failures.append(f"{rel}:{i + 1}: empty example")
                elif not any(contains(b, run) for b in cpp_blocks(open(doc, encoding="utf-8").read())):
                    failures.append(f"{rel}:{i + 1}: the example differs from every cpp block of {m.group(1)} "
                                    f"(first line: {run[0][:80]!r})")
                i = j + 1
    return found, failures


def self_test():
    with tempfile.TemporaryDirectory() as t:
        os.makedirs(os.path.join(t, "tests"))
        os.makedirs(os.path.join(t, "docs"))
        open(os.path.join(t, "docs", "a.md"), "w").write("x\n```cpp\nint a = 1;\n  int b = 2;\n```\n")
        open(os.path.join(t, "tests", "ok.cpp"), "w").write(
            "void f() {\n    // docs-begin docs/a.md\n    int a = 1;\n    int b = 2;\n    // docs-end\n}\n")
        found, fails = check(t)
        if found != 1 or fails:
            print("self-test: a matching example was not accepted:", fails)
            return False
        open(os.path.join(t, "tests", "bad.cpp"), "w").write(
            "void g() {\n    // docs-begin docs/a.md\n    int a = 1;\n    int b = 3;\n    // docs-end\n}\n")
        found, fails = check(t)
        if found != 2 or len(fails) != 1 or "bad.cpp" not in fails[0]:
            print("self-test: a drifted example was not reported:", fails)
            return False
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default=os.path.join(os.path.dirname(__file__), "..", ".."))
    ap.add_argument("--self-test", action="store_true")
    a = ap.parse_args()
    if not self_test():
        print("docs_sync: self-test failed")
        return 1
    if a.self_test:
        print("docs_sync: self-test passed")
        return 0
    found, fails = check(a.root)
    for f in fails:
        print(f)
    if found == 0:
        print("docs_sync: no marked example found (the markers were renamed?)")
        return 1
    print(f"docs_sync: {found - len(fails)} passed, {len(fails)} failed")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
