"""One harness for the table-driven robustness tests of the built programs (issue: every bad input gets a
clear error). A case runs a command and states what a refusal must look like:

  * the exit status (2 for usage errors, 1 for other failures; never a signal, never 124 or above),
  * at most three lines on stderr, none longer than 400 characters,
  * a regular expression that one stderr line must match (it names the option or file and the value),
  * a time limit of a few seconds.

Each test script builds its own table of `Case`s (with files it prepares in a temporary directory) and
calls `run_cases`, which prints one line per case and returns the number of failures.
"""
import dataclasses
import re
import signal
import subprocess
import time
from typing import Callable, Optional, Sequence


@dataclasses.dataclass
class Case:
    name: str                      # what the case is about, printed with the result
    argv: Sequence[str]            # the command, program path first
    status: int                    # the exit status expected (0 for inputs that must be accepted)
    stderr: Optional[str] = None   # regex one stderr line must match (re.search); None: stderr may be anything
    stdin: Optional[object] = None  # bytes to feed, or an open file object (a directory, /dev/null, ...)
    timeout: float = 10.0          # seconds before the case counts as hanging
    check: Optional[Callable[[subprocess.CompletedProcess], Optional[str]]] = None  # extra check: error or None


def _describe(p):
    if p.returncode < 0:
        try:
            return f"killed by signal {signal.Signals(-p.returncode).name}"
        except ValueError:
            return f"killed by signal {-p.returncode}"
    return f"exit {p.returncode}"


def run_case(case: Case) -> Optional[str]:
    """Runs one case; returns None when it behaved, else what went wrong."""
    kwargs = {}
    if isinstance(case.stdin, (bytes, bytearray)):
        kwargs["input"] = bytes(case.stdin)
    elif case.stdin is not None:
        kwargs["stdin"] = case.stdin
    else:
        kwargs["stdin"] = subprocess.DEVNULL
    start = time.monotonic()
    try:
        p = subprocess.run(list(case.argv), capture_output=True, timeout=case.timeout, **kwargs)
    except subprocess.TimeoutExpired:
        return f"did not finish within {case.timeout} s"
    seconds = time.monotonic() - start
    err = p.stderr.decode("utf-8", "replace")
    lines = [l for l in err.splitlines() if l.strip()]
    problems = []
    if p.returncode != case.status:
        problems.append(f"{_describe(p)}, expected exit {case.status}")
    if p.returncode < 0 or p.returncode >= 124:
        problems.append(f"status {p.returncode} is a signal or reserved status")
    if case.status != 0:
        if not lines:
            problems.append("nothing on stderr")
        if len(lines) > 3:
            problems.append(f"{len(lines)} lines on stderr (at most 3)")
        long = [l for l in lines if len(l) > 400]
        if long:
            problems.append(f"a stderr line of {len(long[0])} characters (at most 400)")
    if case.stderr is not None and not any(re.search(case.stderr, l) for l in lines):
        problems.append(f"no stderr line matches /{case.stderr}/")
    if case.check is not None:
        extra = case.check(p)
        if extra:
            problems.append(extra)
    if problems:
        shown = " | ".join(lines[:3])[:600]
        return "; ".join(problems) + f" ({seconds:.1f} s; stderr: {shown!r})"
    return None


def run_cases(cases: Sequence[Case]) -> int:
    """Runs every case, prints `ok`/`FAIL` lines, returns the number of failures."""
    failed = 0
    for c in cases:
        problem = run_case(c)
        if problem is None:
            print(f"ok   {c.name}")
        else:
            failed += 1
            print(f"FAIL {c.name}: {problem}")
    print(f"{len(cases) - failed} passed, {failed} failed")
    return failed
