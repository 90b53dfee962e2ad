#!/usr/bin/env python3
"""Refusals of the example programs other than the flagship (emo_vs_ce, self_pretraining): every number is
parsed strictly into its documented range, and options that contradict each other are named. Each case
expects exit 2 and one stderr line naming the option and the value (tests/tools/refusal.py).

Usage: robustness_examples_test.py path/to/emo_vs_ce path/to/self_pretraining"""
import sys

from refusal import Case, run_cases

emo, spt = sys.argv[1], sys.argv[2]
cases = []
for flag, value, why in [
    ("--steps", "-1", "negative"), ("--steps", "0", "out of range"), ("--steps", "", "empty"),
    ("--steps", "3x", ""), ("--steps", " 3", ""), ("--steps", "1e400", ""), ("--steps", "nan", ""),
    ("--seed", "18446744073709551616", "out of range"), ("--seed", "-1", "negative"),
    ("--batch", "99999999999999999999999", "out of range"), ("--corpus", "10", "out of range"),
    ("--sample", "0x10", ""),
]:
    cases.append(Case(f"emo_vs_ce {flag} {value!r}", [emo, flag, value], 2, rf"^emo_vs_ce: {flag}: .*{why}"))
cases.append(Case("emo_vs_ce unknown option", [emo, "--bogus"], 2, r"^emo_vs_ce: .*--bogus"))
cases.append(Case("emo_vs_ce missing value", [emo, "--steps"], 2, r"^emo_vs_ce: .*--steps"))

for args, pattern in [
    (["--p-list", "1.5"], r"--p-list: '1.5'"), (["--p-list", "nan"], r"--p-list: 'nan'"),
    (["--mask-prob", "-0.1"], r"--mask-prob: '-0.1'"), (["--lr", "inf"], r"--lr: 'inf'"),
    (["--max-args", "1"], r"--max-args: '1'"), (["--max-depth", "0"], r"--max-depth: '0'"),
    (["--heads", "0"], r"--heads: '0'"), (["--heads", "3"], r"--heads: 3 does not divide --width 64"),
    (["--min-len", "50", "--max-len", "10"], r"--min-len: 50 exceeds --max-len 10"),
    (["--epochs", "12", "--pretrain-epochs", "12"], r"--pretrain-epochs: 12 must be less than --epochs 12"),
    (["--seeds", "0"], r"--seeds: '0'"), (["--train", "4294967296000"], r"--train: '4294967296000'"),
    (["--threads", "-2"], r"--threads: '-2'"), (["--width", "1.5"], r"--width: '1.5'"),
]:
    cases.append(Case(f"self_pretraining {' '.join(args)}", [spt, *args], 2, rf"^self_pretraining: {pattern}"))

# Accepted inputs, so that the table cannot pass by refusing everything: --help exits 0 and lists options.
cases.append(Case("emo_vs_ce --help", [emo, "--help"], 0,
                  check=lambda p: None if b"--steps" in p.stdout else "help does not list --steps"))
cases.append(Case("self_pretraining --help", [spt, "--help"], 0,
                  check=lambda p: None if b"--p-list" in p.stdout else "help does not list --p-list"))
sys.exit(1 if run_cases(cases) else 0)
