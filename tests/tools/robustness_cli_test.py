#!/usr/bin/env python3
"""Table-driven robustness test of the `exprgrad` command-line tool (issue #16: every bad input gets a clear
error, nothing is silently wrong). Every subcommand (abc, tok *, attention-scale, deer) gets the same categories
of hostile input: empty strings, negative values for unsigned options, 2^64, 1e309, nan, inf, hexadecimal,
surrounding blanks, very long values, zero sizes, values beyond the documented upper bounds, unknown subcommands
and options, missing values, directories and closed descriptors as input, nonexistent files. Each case expects
an exit status (2 for usage errors, 1 for failures) and a stderr line naming the option or file and the value
(tests/tools/refusal.py checks: at most three lines, none over 400 characters, no signal, a time limit).
Accepted inputs (status 0) are in the table too, so that it cannot pass by refusing everything.

Usage: robustness_cli_test.py path/to/exprgrad
"""
import math
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refusal import Case, run_cases  # noqa: E402

U64 = "18446744073709551616"  # 2^64
LONG = "9" * 100000           # a very long value: the message shows a short prefix and the length


def closed_stdin(argv):
    """The command with its standard input closed (descriptor 0 not open)."""
    return ["sh", "-c", 'exec "$0" "$@" <&-', *argv]


def has_line(pattern):
    def check(p):
        out = p.stdout.decode("utf-8", "replace")
        return None if re.search(pattern, out, re.M) else f"stdout lacks /{pattern}/: {out[:300]!r}"
    return check


def finite_alpha_star(p):
    out = p.stdout.decode()
    m = re.search(r"^alpha_star: (\S+)", out, re.M)
    if not m or not math.isfinite(float(m.group(1))):
        return f"no finite alpha_star line: {out[:200]!r}"
    if "nan" in out.lower():
        return "NaN in the output"
    return None


def number_cases(name, argv_before, option, argv_after, bad_values, status=2):
    """One case per bad value of `option`: the message names the option and quotes the value."""
    cases = []
    for value, why in bad_values:
        shown = re.escape(value[:40])
        cases.append(Case(f"{name} {option} {value[:20]!r}: {why}", [*argv_before, option, value, *argv_after],
                          status, rf"{re.escape(option)}: '{shown}"))
    return cases


UNSIGNED_BAD = [("", "empty"), ("-1", "negative"), ("-0", "minus sign"), (U64, "2^64"), ("1e309", "huge"),
                ("nan", "nan"), ("inf", "inf"), ("0x10", "hex"), (" 5", "leading blank"), ("5 ", "trailing blank"),
                ("1.5", "not whole"), ("5x", "junk"), (LONG, "very long")]
DOUBLE_BAD = [("", "empty"), ("1e309", "overflows"), ("-1e309", "overflows"), ("nan", "nan"), ("inf", "inf"),
              ("-inf", "-inf"), ("0x10", "hex"), (" 1", "leading blank"), ("1 ", "trailing blank"), ("1,5", "comma"),
              ("abc", "junk"), (LONG, "very long")]


def main(exe):
    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        vocab = os.path.join(tmp, "t2.vocab")
        with open(vocab, "w") as f:
            f.write("exprgrad-unigram\tversion=1\tpieces=10\tutf8_boundaries=0\n"
                    "control\t0\t<pad>\ncontrol\t0\t<bos>\ncontrol\t0\t<eos>\ncontrol\t0\t<mask>\n"
                    "normal\t1.0\tA\nnormal\t1.2\tB\nnormal\t1.5\tC\nnormal\t1.6\tAB\nnormal\t1.7\tBC\nnormal\t1.8\tABC\n")
        corpus = os.path.join(tmp, "corpus.txt")
        with open(corpus, "w") as f:
            f.write("the cat sat on the mat\n" * 50)
        missing = os.path.join(tmp, "no_such_file")
        out_vocab = os.path.join(tmp, "out.vocab")
        directory = os.open(tmp, os.O_RDONLY)  # a descriptor of a directory, given as standard input
        fifo = os.path.join(tmp, "fifo")
        os.mkfifo(fifo)
        esc_tmp = re.escape(tmp[:40])

        # ---- the tool itself
        cases += [
            Case("unknown subcommand", [exe, "frobnicate"], 2, r"^exprgrad: unknown subcommand 'frobnicate'"),
            Case("missing subcommand", [exe], 2, r"^exprgrad: missing subcommand"),
            Case("unknown option", [exe, "--frob"], 2, r"^exprgrad: unknown option '--frob'"),
            Case("unknown option before a subcommand", [exe, "--frob", "abc"], 2, r"^exprgrad.*: .*--frob"),
            Case("unknown tok subcommand", [exe, "tok", "frob"], 2, r"^exprgrad tok: unknown subcommand 'frob'"),
            Case("missing tok subcommand", [exe, "tok"], 2, r"^exprgrad tok: missing subcommand"),
            Case("accepted: --help", [exe, "--help"], 0, check=has_line(r"attention-scale")),
        ]

        # ---- abc: numbers are data (each refused on its own line, exit 1), stdin checked
        for value, why in [("", "empty"), ("-1", "negative"), (U64, "greater than 2\\^64 - 1"),
                           ("1e309", "not a decimal integer"), ("nan", "not a decimal integer"),
                           ("inf", "not a decimal integer"), ("0x10", "not a decimal integer"),
                           (LONG, "greater than 2\\^64 - 1")]:
            cases.append(Case(f"abc {value[:20]!r}", [exe, "abc", value], 1,
                              rf"^exprgrad abc: invalid number '{re.escape(value[:40])}.*{why}"))
        cases += [
            Case("abc stdin is a directory", [exe, "abc"], 1, r"^exprgrad abc: standard input is a directory",
                 stdin=directory),
            Case("abc stdin closed", closed_stdin([exe, "abc"]), 1, r"^exprgrad abc: standard input is closed"),
            Case("accepted: abc 130", [exe, "abc", "130"], 0, check=has_line(r"^130\t23\t10\t13\t0$")),
            Case("accepted: abc 2^64 - 1", [exe, "abc", "18446744073709551615"], 0,
                 check=has_line(r"^18446744073709551615\t")),
            Case("accepted: abc stdin /dev/null", [exe, "abc"], 0, stdin=open(os.devnull, "rb")),
        ]

        # ---- tok
        sample = [exe, "tok", "sample", "--vocab", vocab]
        score = [exe, "tok", "score", "--vocab", vocab]
        train = [exe, "tok", "train", "-q", "-o", out_vocab]
        cases += number_cases("tok sample", sample + ["--alpha", "1"], "--seed", [], UNSIGNED_BAD)
        cases += number_cases("tok sample", sample + ["--seed", "1"], "--alpha", [], DOUBLE_BAD)
        cases += number_cases("tok sample", sample + ["--seed", "1", "--alpha", "1"], "--count", [],
                              [("0", "zero"), ("1000001", "beyond 10^6"), ("-1", "negative"), ("", "empty")])
        cases += number_cases("tok score", score, "--alpha", [], DOUBLE_BAD + [("-1", "negative")])
        cases += number_cases("tok train", train, "--vocab-size", [corpus],
                              [("260", "below 261"), ("0", "zero"), (U64, "2^64"), ("1073741825", "beyond 2^30"),
                               ("", "empty"), ("8e3.5", "junk")])
        cases += number_cases("tok train", train, "--max-piece-length", [corpus],
                              [("1", "below 2"), ("1025", "beyond 1024"), ("-16", "negative")])
        cases += number_cases("tok train", train, "--character-coverage", [corpus],
                              [("1.5", "above 1"), ("-0.1", "negative"), ("nan", "nan"), ("", "empty")])
        cases += [
            Case("tok sample --seed missing value", sample + ["--alpha", "1", "--seed"], 2, r"--seed"),
            Case("tok score --alpha missing", score, 2, r"^exprgrad tok score: --alpha is required"),
            Case("tok encode unknown option", [exe, "tok", "encode", "--vocab", vocab, "--frob", "1"], 2,
                 r"^exprgrad tok encode: .*--frob"),
            Case("tok encode nonexistent vocabulary", [exe, "tok", "encode", "--vocab", missing], 1,
                 rf"--vocab: '.*no_such_file': No such file"),
            Case("tok encode vocabulary is a directory", [exe, "tok", "encode", "--vocab", tmp], 1,
                 rf"--vocab: '{esc_tmp}.*is a directory, not a file"),
            Case("tok encode stdin is a directory", [exe, "tok", "encode", "--vocab", vocab], 1,
                 r"^exprgrad tok encode: standard input is a directory", stdin=directory),
            Case("tok decode stdin is a directory", [exe, "tok", "decode"], 1,
                 r"^exprgrad tok decode: standard input is a directory", stdin=directory),
            Case("tok decode stdin closed", closed_stdin([exe, "tok", "decode"]), 1,
                 r"^exprgrad tok decode: standard input is closed"),
            Case("tok score stdin closed", closed_stdin(score + ["--alpha", "1"]), 1, r"standard input is closed"),
            Case("tok sample stdin is a directory", sample + ["--alpha", "1", "--seed", "1"], 1,
                 r"standard input is a directory", stdin=directory),
            Case("tok train FILE is a directory", train + [tmp], 1,
                 rf"^exprgrad tok train: FILES: '{esc_tmp}.*is a directory, not a file"),
            Case("tok train FILE does not exist", train + [corpus, missing], 1,
                 r"^exprgrad tok train: FILES: '.*no_such_file': No such file"),
            Case("tok train stdin is a directory", train, 1, r"standard input is a directory", stdin=directory),
            Case("tok train stdin closed", closed_stdin(train), 1, r"standard input is closed"),
            Case("tok decode: a bad 1 MB line is not echoed whole", [exe, "tok", "decode"], 1,
                 r"^exprgrad tok decode: line 1: ", stdin=b"\\q" + b"x" * (1 << 20) + b"\n"),
            Case("accepted: tok decode", [exe, "tok", "decode"], 0, stdin=b"A BC\n", check=has_line(r"^ABC$")),
            Case("accepted: tok sample, seed 2^64 - 1, Viterbi alpha", sample + ["--alpha", "-1e308", "--seed",
                                                                            "18446744073709551615"], 0,
                 stdin=b"ABC\n", check=has_line(r"^A B C$")),  # the best score: 1.0 + 1.2 + 1.5 > 1.6 + 1.5, ...
            Case("accepted: tok score, alpha 0 and count in exponent form", score + ["--alpha", "0"], 0,
                 stdin=b"ABC\n", check=has_line(r"^1\.3862943611198906\d*\t")),  # log 4 segmentations, uniform
            Case("accepted: tok train on a file", train + ["--vocab-size", "2.61e2", corpus], 0),
            # an endless line (a device) was read into memory until OOM: refused at the line cap, naming the file
            Case("tok train FILE /dev/zero (one endless line)", train + ["/dev/zero"], 1,
                 r"^exprgrad tok train: FILES: '/dev/zero': a line longer than 67108864 bytes", timeout=30),
            Case("tok train stdin /dev/zero", train, 1,
                 r"^exprgrad tok train: standard input: a line longer than 67108864 bytes",
                 stdin=open("/dev/zero", "rb"), timeout=30),
            # a pipe (what process substitution gives as /dev/fd/N) is still read
            Case("accepted: tok train on a pipe /dev/fd/N",
                 ["bash", "-c", 'exec "$0" "$@" <(cat "$1")', *train, corpus], 0),
            # alpha beyond the library's 1e200 was refused per line with a 387-character number, not naming --alpha
            Case("tok sample --alpha 1e250 (beyond 1e200)", sample + ["--seed", "1", "--alpha", "1e250"], 2,
                 r"^exprgrad tok sample: --alpha: '1e250'.{0,200}1e\+?200", stdin=b"ABC\n"),
            Case("tok score --alpha 1e300 (beyond 1e200)", score + ["--alpha", "1e300"], 2,
                 r"^exprgrad tok score: --alpha: '1e300'.{0,200}1e\+?200", stdin=b"ABC\n"),
            Case("accepted: tok sample --alpha 1e200 (the limit)", sample + ["--seed", "1", "--alpha", "1e200"], 0,
                 stdin=b"ABC\n", check=has_line(r"^A B C$")),
            Case("tok sample --help states the alpha bound", sample + ["--help"], 0, check=has_line(r"at most 1e200")),
        ]

        # ---- attention-scale
        att = [exe, "attention-scale"]
        cases += number_cases("attention-scale", att, "--n", [],
                              UNSIGNED_BAD + [("0", "zero"), ("1", "below 2"), ("4294967297", "beyond 2^32")])
        cases += number_cases("attention-scale", att + ["--n", "8"], "--d", [],
                              [("0", "zero"), ("1048577", "beyond 2^20"), ("", "empty"), ("-64", "negative")])
        cases += number_cases("attention-scale", att + ["--n", "8"], "--samples", [],
                              [("0", "zero"), ("1", "one draw"), ("1000000001", "beyond 10^9"), (U64, "2^64")])
        cases += number_cases("attention-scale", att + ["--n", "8"], "--seed", [], [("-1", "negative"), (U64, "2^64")])
        cases += number_cases("attention-scale", att + ["--n", "8"], "--stderr", [],
                              [("-1", "negative"), ("nan", "nan"), ("inf", "inf"), ("", "empty")])
        cases += number_cases("attention-scale", att + ["--n", "8", "--alphas", "1"], "--alphas", [],
                              [("1e308", "overflows the scores"), ("10001", "beyond 1e4"), ("-1", "negative"),
                               ("nan", "nan"), ("inf", "inf"), ("", "empty")])
        cases += [
            Case("attention-scale --n missing", att, 2, r"^exprgrad attention-scale: --n is required"),
            Case("attention-scale --n missing value", att + ["--n"], 2, r"--n"),
            Case("attention-scale --scores unknown", att + ["--n", "8", "--scores", "laplace"], 2, r"--scores.*laplace"),
            Case("attention-scale cosine d = 1", att + ["--n", "8", "--scores", "cosine", "--d", "1"], 2,
                 r"--d: 1 with --scores cosine"),
            Case("attention-scale --samples beyond the work limit", att + ["--n", "7777", "--samples", "100000"], 2,
                 r"--samples 100000 with --n 7777: .* score evaluations exceed the limit 2e\+09"),
            Case("attention-scale --samples with n beyond the Monte-Carlo bound",
                 att + ["--n", "4194305", "--samples", "2"], 2, r"--samples 2 with --n 4194305"),
            Case("attention-scale --plot not .svg", att + ["--n", "8", "--plot", "x.png"], 2, r"--plot: 'x.png'"),
            Case("attention-scale --csv into a missing directory",
                 att + ["--n", "8", "--samples", "2", "--csv", os.path.join(missing, "c.csv")], 1,
                 r"^exprgrad attention-scale: --csv: .*no_such_file/c.csv.*No such file or directory"),
            # an empty path read as "no --csv" and wrote nothing with exit 0
            Case("attention-scale --csv ''", att + ["--n", "64", "--csv", ""], 2,
                 r"^exprgrad attention-scale: --csv.*empty path"),
            Case("attention-scale --plot ''", att + ["--n", "64", "--plot", ""], 2,
                 r"^exprgrad attention-scale: --plot.*empty path"),
            # a directory: the reason, not just "cannot write"
            Case("attention-scale --csv a directory", att + ["--n", "8", "--samples", "2", "--csv", tmp], 1,
                 rf"^exprgrad attention-scale: --csv: {esc_tmp}.*is a directory"),
            # a FIFO with no reader hung the program; the atomic writer refuses it
            Case("attention-scale --csv a FIFO", att + ["--n", "8", "--samples", "2", "--csv", fifo], 1,
                 r"^exprgrad attention-scale: --csv: .*fifo.*(FIFO|fifo|pipe)", timeout=20),
            Case("accepted: attention-scale --csv to a file",
                 att + ["--n", "8", "--samples", "2", "--csv", os.path.join(tmp, "c.csv")], 0,
                 check=lambda p: None if os.path.getsize(os.path.join(tmp, "c.csv")) > 0 else "empty CSV"),
            Case("attention-scale unknown option", att + ["--n", "8", "--frob"], 2, r"--frob"),
            Case("accepted: attention-scale n = 2^32 (bad_alloc before)", att + ["--n", "4294967296"], 0,
                 check=finite_alpha_star),
            Case("accepted: attention-scale n = 7777, default settings (455 s before)", att + ["--n", "7777"], 0,
                 check=finite_alpha_star),
            Case("accepted: attention-scale n = 50000, default settings", att + ["--n", "50000"], 0,
                 check=finite_alpha_star),
            Case("accepted: attention-scale cosine, d = 2^20", att + ["--n", "512", "--scores", "cosine", "--d",
                                                                     "1048576"], 0, check=finite_alpha_star),
            Case("accepted: attention-scale cosine, d = 2, n = 2^32", att + ["--n", "4294967296", "--scores", "cosine",
                                                                            "--d", "2"], 0, check=finite_alpha_star),
            Case("accepted: attention-scale cosine, d = 3, n = 2^32", att + ["--n", "4294967296", "--scores", "cosine",
                                                                            "--d", "3"], 0, check=finite_alpha_star),
            Case("accepted: attention-scale alpha 1e4", att + ["--n", "8", "--alphas", "1", "1e4"], 0,
                 check=finite_alpha_star),
        ]

        # ---- deer (its numbers are checked in deer_cli_test.py; here the categories)
        deer = [exe, "deer"]
        rest = ["--T", "10", "--g", "0.5", "--method", "newton"]
        cases += number_cases("deer", deer, "--n", rest,
                              UNSIGNED_BAD + [("0", "zero"), ("4294967296", "segfaulted"), ("1025", "beyond 1024")])
        cases += number_cases("deer", deer + ["--n", "4"], "--T", ["--g", "0.5", "--method", "newton"],
                              [("0", "zero"), ("9223372036854775808", "2^63"), (U64, "2^64"), ("-1", "negative"),
                               ("10000001", "beyond 10^7"), ("", "empty")])
        cases += number_cases("deer", deer + ["--n", "4", "--T", "10"], "--g", ["--method", "newton"], DOUBLE_BAD)
        cases += number_cases("deer", deer + ["--n", "4", *rest], "--cap", [],
                              [("0", "zero"), (U64, "2^64"), ("-1", "negative")])
        cases += [
            Case("deer --method missing value", deer + ["--n", "4", "--T", "10", "--g", "1", "--method"], 2, r"--method"),
            Case("deer --dtype unknown", deer + ["--n", "4", *rest, "--dtype", "f16"], 2, r"--dtype.*f16"),
            Case("accepted: deer", deer + ["--n", "4", *rest], 0, check=has_line(r"^converged: yes$")),
            # a flag takes no value and is given once (--guard=2, --guard=false and --guard --guard were accepted)
            Case("deer --guard=2", deer + ["--n", "4", *rest, "--guard=2"], 2, r"--guard"),
            Case("deer --guard=false", deer + ["--n", "4", *rest, "--guard=false"], 2, r"--guard"),
            Case("deer --guard twice", deer + ["--n", "4", *rest, "--guard", "--guard"], 2, r"--guard"),
            Case("accepted: deer --guard", deer + ["--n", "4", *rest, "--guard"], 0, check=has_line(r"^converged: ")),
            Case("tok train -q twice", [exe, "tok", "train", "-q", "-q", "-o", os.path.join(tmp, "q.vocab"), corpus],
                 2, r"-q|--quiet"),
            Case("tok train --no-split-whitespace=yes",
                 [*train, "--no-split-whitespace=yes", corpus], 2, r"--no-split-whitespace"),
        ]

        failed = run_cases(cases)
        os.close(directory)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
