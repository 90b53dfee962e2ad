#!/usr/bin/env python3
"""Runs the built `exprgrad deer` and checks its printed `iterations:`, `max_abs_error:` and `converged:` lines
against an independent evaluation in Python of the same instance (src/tools/deer_instance.hpp:
A_ij = g sin(0.37 (i+1)(j+2) + 0.5)/sqrt(n), u_{t,i} = sin(0.1 t + i), x_t = tanh(A x_{t-1} + u_t), x_0 = 0)
and of the same five iterations (ops/deer.hpp: newton, quasi, jacobi, fixed_a, sech_u from the zero iterate,
stopping when the max abs error against the sequential loop is below 1e-10), then its refusals.

Usage: deer_cli_test.py path/to/exprgrad
"""
import math
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refusal import Case, run_cases  # noqa: E402

failures = []
TOL = 1e-10


def instance(n, T, g):
    A = [[g * math.sin(0.37 * (i + 1) * (j + 2) + 0.5) / math.sqrt(n) for j in range(n)] for i in range(n)]
    U = [[math.sin(0.1 * t + i) for i in range(n)] for t in range(1, T + 1)]
    return A, U


def matvec(M, v):
    return [sum(r[j] * v[j] for j in range(len(v))) for r in M]


def cell(A, y, u):
    return [math.tanh(a + b) for a, b in zip(matvec(A, y), u)]


def sequential(A, U):
    y, out = [0.0] * len(A), []
    for u in U:
        y = cell(A, y, u)
        out.append(y)
    return out


def jacobian(method, A, yprev, u, F):
    """J_t of each method (ops/deer.hpp), as a dense list of rows; F = f(yprev, u)."""
    n = len(A)
    if method == "jacobi":
        return [[0.0] * n for _ in range(n)]
    if method == "fixed_a":  # df/dy at y = 0, u = 0: sech^2(0) A = A
        return [row[:] for row in A]
    if method == "sech_u":  # df/dy at y = 0: diag(sech^2(u)) A
        s = [1 - math.tanh(x) ** 2 for x in u]
        return [[s[i] * A[i][j] for j in range(n)] for i in range(n)]
    d = [1 - f * f for f in F]  # tanh' = 1 - tanh^2 at the current iterate
    J = [[d[i] * A[i][j] for j in range(n)] for i in range(n)]
    if method == "quasi":
        J = [[J[i][j] if i == j else 0.0 for j in range(n)] for i in range(n)]
    return J


def deer(method, A, U, cap):
    """Iterations until max |Y - sequential| < 1e-10 (or the cap); returns (iterations, last error, converged)."""
    n, T = len(A), len(U)
    ref = sequential(A, U)
    Y = [[0.0] * n for _ in range(T)]
    err = math.inf
    for k in range(1, cap + 1):
        new, y = [], [0.0] * n
        for t in range(T):
            yprev = Y[t - 1] if t > 0 else [0.0] * n
            F = cell(A, yprev, U[t])
            J = jacobian(method, A, yprev, U[t], F)
            Jy = matvec(J, yprev)
            b = [f - a for f, a in zip(F, Jy)]
            y = [a + c for a, c in zip(matvec(J, y), b)]  # y_t = J_t y_{t-1} + b_t with the new y_{t-1}
            new.append(y)
        Y = new
        err = max(abs(a - b) for ya, yb in zip(Y, ref) for a, b in zip(ya, yb))
        if err < TOL:
            return k, err, True
    return cap, err, False


def parse(out):
    kv = {}
    for line in out.splitlines():
        if ": " in line:
            k, v = line.split(": ", 1)
            kv[k] = v.split()[0]
    return kv


def run(exe, args):
    p = subprocess.run([exe, "deer", *args], capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def check_against_python(exe, n, T, g, method, cap=None):
    A, U = instance(n, T, g)
    k, err, conv = deer(method, A, U, cap or T)
    args = ["--n", str(n), "--T", str(T), "--g", str(g), "--method", method] + (["--cap", str(cap)] if cap else [])
    rc, out, stderr = run(exe, args)
    name = " ".join(args)
    kv = parse(out)
    want_rc = 0 if conv else 1
    if rc != want_rc:
        failures.append(f"{name}: exit {rc}, want {want_rc} (stderr {stderr!r})")
        return
    if kv.get("converged") != ("yes" if conv else "no"):
        failures.append(f"{name}: converged: {kv.get('converged')}, Python says {conv}")
    got_k = int(kv.get("iterations", "-1"))
    # Rounding differs between the two evaluations by ~1e-16: only an error that lands next to the threshold
    # could move the stopping iteration, by one.
    slack = 1 if 0.5 * TOL < err < 2 * TOL else 0
    if abs(got_k - k) > slack:
        failures.append(f"{name}: iterations {got_k}, Python {k}")
    got_err = float(kv.get("max_abs_error", "nan"))
    if conv:
        if not got_err < TOL:
            failures.append(f"{name}: max_abs_error {got_err} not below {TOL}")
    elif not abs(got_err - err) <= 1e-4 * err:  # 6 printed digits
        failures.append(f"{name}: max_abs_error {got_err}, Python {err:.6g}")
    if not conv and not stderr.startswith("exprgrad deer: not converged"):
        failures.append(f"{name}: stderr {stderr!r}, want a line saying it did not converge")


def main(exe):
    for method in ("newton", "quasi", "jacobi", "fixed_a", "sech_u"):
        check_against_python(exe, 3, 40, 0.8, method)
    check_against_python(exe, 1, 60, 1.5, "newton")
    check_against_python(exe, 4, 30, 1.2, "quasi")
    # Not converged within a cap: the error after exactly `cap` iterations, exit 1.
    check_against_python(exe, 3, 40, 0.8, "jacobi", cap=3)
    check_against_python(exe, 2, 50, 1.0, "fixed_a", cap=2)
    # T iterations always suffice in exact arithmetic (ops/deer.hpp): every method converges within T = 12.
    for method in ("newton", "quasi", "jacobi", "fixed_a", "sech_u"):
        rc, out, err = run(exe, ["--n", "5", "--T", "12", "--g", "1.5", "--method", method])
        kv = parse(out)
        if rc != 0 or kv.get("converged") != "yes" or not 1 <= int(kv.get("iterations", "0")) <= 12:
            failures.append(f"T-bound {method}: exit {rc}, {kv}")
    # f32: its own target 1e-5.
    rc, out, err = run(exe, ["--n", "3", "--T", "40", "--g", "0.8", "--method", "newton", "--dtype", "f32"])
    kv = parse(out)
    if rc != 0 or kv.get("converged") != "yes" or not float(kv.get("max_abs_error", "1")) < 1e-5:
        failures.append(f"f32: exit {rc}, {kv}")

    d = ["--T", "10", "--g", "0.5", "--method", "newton"]
    cases = [
        Case("n = 2^32 (segfaulted)", [exe, "deer", "--n", "4294967296", *d], 2, r"--n: '4294967296' is out of range"),
        Case("n = 2^64 (clamped)", [exe, "deer", "--n", "18446744073709551616", *d], 2, r"--n: '18446744073709551616'"),
        Case("T = 2^63", [exe, "deer", "--n", "4", "--T", "9223372036854775808", "--g", "1", "--method", "newton"], 2,
             r"--T: '9223372036854775808' is out of range"),
        Case("n beyond the bound", [exe, "deer", "--n", "1025", *d], 2, r"--n: '1025' is out of range.*1024"),
        Case("T*n*n beyond the limit", [exe, "deer", "--n", "1024", "--T", "65", "--g", "1", "--method", "newton"], 2,
             r"--T 65 with --n 1024"),
        Case("T*n beyond the limit", [exe, "deer", "--n", "8", "--T", "8388609", "--g", "1", "--method", "jacobi"], 2,
             r"--T 8388609 with --n 8"),
        Case("n = 0", [exe, "deer", "--n", "0", *d], 2, r"--n: '0' is out of range"),
        Case("cap = 0", [exe, "deer", "--n", "2", "--cap", "0", *d], 2, r"--cap: '0' is out of range"),
        Case("cap beyond 10 T", [exe, "deer", "--n", "2", "--T", "10", "--g", "1", "--method", "newton", "--cap", "101"],
             2, r"--cap 101 with --T 10: want at most 10\*T = 100"),
        Case("accepted: cap = 10 T", [exe, "deer", "--n", "2", "--T", "10", "--g", "1", "--method", "newton", "--cap",
                                      "100"], 0),
        Case("g = nan", [exe, "deer", "--n", "2", "--T", "5", "--g", "nan", "--method", "newton"], 2, r"--g: 'nan'"),
        Case("g = 1e309", [exe, "deer", "--n", "2", "--T", "5", "--g", "1e309", "--method", "newton"], 2,
             r"--g: '1e309'"),
        Case("unknown method", [exe, "deer", "--n", "2", "--T", "5", "--g", "1", "--method", "euler"], 2,
             r"--method.*euler"),
        Case("missing --g", [exe, "deer", "--n", "2", "--T", "5", "--method", "newton"], 2, r"--g"),
        Case("overflow without the guard", [exe, "deer", "--n", "8", "--T", "1000", "--g", "2", "--method", "fixed_a"],
             1, r"^exprgrad deer: not converged: iterate \d+ is not finite"),
        Case("accepted: n at its bound, one iteration", [exe, "deer", "--n", "1024", "--T", "2", "--g", "0.5",
                                                         "--method", "jacobi", "--cap", "1"], 1,
             r"^exprgrad deer: not converged within 1 iterations"),
        Case("accepted: exponent form", [exe, "deer", "--n", "2", "--T", "1e1", "--g", "0.5", "--method", "newton"], 0),
    ]
    failed = run_cases(cases)
    for f in failures:
        print("FAIL", f)
    print(f"deer_cli_test: {len(failures)} comparison failure(s)")
    return 1 if failures or failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
