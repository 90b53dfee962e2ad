#!/usr/bin/env python3
"""Runs the built `exprgrad abc` on good and bad input and checks its lines and exit codes.

Usage: abc_cli_test.py path/to/exprgrad

Expected values are the reference sums of ../shared/research/articles_part2.md §4.4 with the smallest-a
optimum (checked against brute force in tests/math/test_min_ab_plus_c.cpp).
"""
import subprocess
import sys

failures = []


def run(exe, args, stdin=""):
    p = subprocess.run([exe, "abc", *args], input=stdin, capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout.splitlines(), p.stderr.splitlines()


def expect(name, got, want):
    if got != want:
        failures.append(f"{name}: got {got!r}, want {want!r}")


def line(n, s, a, b, c):
    return f"{n}\t{s}\t{a}\t{b}\t{c}"


GOOD = {
    "0": line(0, 0, 0, 0, 0),
    "3": line(3, 3, 0, 0, 3),
    "4": line(4, 4, 0, 0, 4),  # (2, 2, 0) ties; the smaller a wins
    "129": line(129, 25, 8, 16, 1),
    "130": line(130, 23, 10, 13, 0),
    "1000": line(1000, 65, 25, 40, 0),
    "1000000007": line(1000000007, 63257, 31250, 32000, 7),
    "18446744073709551615": line(18446744073709551615, 8589934592, 4294967295, 4294967297, 0),
}

BAD = {  # argument -> reason printed after the quoted value
    "-5": "negative",
    "18446744073709551616": "greater than 2^64 - 1",
    "99999999999999999999999": "greater than 2^64 - 1",
    "12x": "not a decimal integer",
    "abc": "not a decimal integer",
    "1e6": "not a decimal integer",
    "": "empty",
    "-x": "not a decimal integer",
    "-0x1": "not a decimal integer",
    "+": "not a decimal integer",
    "-18446744073709551616": "negative",
}


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    exe = sys.argv[1]

    # Good arguments: one line each, in order, exit 0, nothing on stderr.
    args = list(GOOD)
    rc, out, err = run(exe, args)
    expect("good args: exit", rc, 0)
    expect("good args: stdout", out, [GOOD[a] for a in args])
    expect("good args: stderr", err, [])

    # Leading zeros, a sign on a number in range and surrounding blanks are accepted; n is printed normalised.
    rc, out, err = run(exe, ["007", " 130 ", "+129", "-0"])
    expect("zeros/blanks/signs: exit", rc, 0)
    expect("zeros/blanks/signs: stdout", out, [line(7, 6, 2, 3, 1), GOOD["130"], GOOD["129"], GOOD["0"]])

    # Each bad argument alone: nothing on stdout, one error line naming the value, non-zero exit.
    for arg, reason in BAD.items():
        rc, out, err = run(exe, [arg])
        expect(f"bad {arg!r}: exit", rc != 0, True)
        expect(f"bad {arg!r}: stdout", out, [])
        ok = len(err) == 1 and f"'{arg}'" in err[0] and reason in err[0]
        expect(f"bad {arg!r}: stderr {err!r}", ok, True)

    # Mixed: the good ones still print, in order; one error line per bad one; exit 1.
    mixed = ["130", "-5", "129", "12x", "--bogus", "1000", ""]
    rc, out, err = run(exe, mixed)
    expect("mixed: exit", rc, 1)
    expect("mixed: stdout", out, [GOOD["130"], GOOD["129"], GOOD["1000"]])
    expect("mixed: one stderr line per bad value", len(err), 4)
    for bad in ["'-5'", "'12x'", "'--bogus'", "''"]:
        expect(f"mixed: stderr names {bad}", any(bad in e for e in err), True)

    # No arguments: one number per line of stdin, CRLF tolerated, blank lines skipped; bad lines reported
    # (one line each), the rest printed.
    rc, out, err = run(exe, [], stdin="130\n129\r\n\n \t\nxyz\n4\n")
    expect("stdin: exit", rc, 1)
    expect("stdin: stdout", out, [GOOD["130"], GOOD["129"], GOOD["4"]])
    expect("stdin: stderr lines", len(err), 1)
    rc, out, err = run(exe, [], stdin="1000\n18446744073709551615")  # no final newline
    expect("stdin good: exit", rc, 0)
    expect("stdin good: stdout", out, [GOOD["1000"], GOOD["18446744073709551615"]])
    rc, out, err = run(exe, [], stdin="")
    expect("stdin empty: exit", rc, 0)
    expect("stdin empty: stdout", out, [])

    # A control character in the value stays on one error line.
    rc, out, err = run(exe, ["1\n2"])
    expect("newline in value: exit", rc != 0, True)
    expect("newline in value: one stderr line", len(err), 1)

    # --help describes the output format and exits 0.
    rc, out, err = run(exe, ["--help"])
    expect("help: exit", rc, 0)
    text = "\n".join(out)
    expect("help: mentions the format", "N<TAB>S<TAB>a<TAB>b<TAB>c" in text, True)
    expect("help: mentions stdin", "stdin" in text, True)

    for f in failures:
        print("FAIL", f)
    print(f"abc_cli_test: {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
