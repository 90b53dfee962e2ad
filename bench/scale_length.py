#!/usr/bin/env python3
"""Attention scale and length (issue #22, experiment 2): does the attention scale policy decide how well a
model trained at a short context reads longer ones?

tiny_lm is trained at a short context T with position information that can go past T (learned position
embeddings cannot), once per policy and seed:

  inv_sqrt_d         --position none  --scale inv_sqrt_d         (the standard 1/sqrt(d), causal mask only)
  entropy_invariant  --position none  --scale entropy_invariant  (log(n)/log(512) / sqrt(d), post 8823)
  gradient_max       --position none  --scale gradient_max       (alpha*(n) / sqrt(d), post 9812)
  alibi_inv_sqrt_d   --position alibi --scale inv_sqrt_d         (ALiBi's fixed slopes, 1/sqrt(d))

and its held-out bits per byte is measured at 1x, 2x, 4x and 8x T (tiny_lm --eval-contexts: windows of the
eval length every half window, each piece scored once with at least half a window of context). Writes a TSV
with the columns policy, seed, train_context, eval_context, bits_per_byte (header first) and prints a table
of mean +- sd over the seeds. Results and the command: docs/scale_length.md.

  nice -n 10 python3 bench/scale_length.py build/examples/tiny_lm            # the full run (~25 min, 1 core)
  python3 bench/scale_length.py build/examples/tiny_lm --quick               # seconds: checks the TSV's shape

--quick (the test suite's run) trains tiny models for a few steps with one seed, writes the TSV into a
temporary directory (unless --out is given), and fails unless the TSV has the header, one row per policy,
seed and eval context, eval contexts at 1x/2x/4x/8x the training context, and finite values.
"""
import argparse
import math
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

POLICIES = [  # name, tiny_lm flags
    ('inv_sqrt_d', ['--position', 'none', '--scale', 'inv_sqrt_d']),
    ('entropy_invariant', ['--position', 'none', '--scale', 'entropy_invariant']),
    ('gradient_max', ['--position', 'none', '--scale', 'gradient_max']),
    ('alibi_inv_sqrt_d', ['--position', 'alibi', '--scale', 'inv_sqrt_d']),
]
FACTORS = [1, 2, 4, 8]
COLUMNS = ['policy', 'seed', 'train_context', 'eval_context', 'bits_per_byte']

# The full run: sized so the 12 trainings take about 25 minutes of one (shared) core.
FULL = dict(context=32, seeds=[1, 2, 3],
            flags=['--steps', '2500', '--batch', '16', '--width', '64', '--layers', '2', '--heads', '4',
                   '--eval-bytes', '30000', '--eval-every', '500', '--ckpt-every', '100000', '--gen-pieces', '0',
                   '--threads', '1'])
QUICK = dict(context=8, seeds=[1],
             flags=['--steps', '6', '--batch', '4', '--width', '16', '--layers', '1', '--heads', '2',
                    '--vocab-size', '300', '--max-corpus', '150000', '--eval-bytes', '2000', '--eval-every', '6',
                    '--ckpt-every', '100000', '--gen-pieces', '0', '--threads', '1'])


def train(exe, policy_flags, size, seed, run_dir):
    """Trains one model; returns {eval_context: bits_per_byte} parsed from its eval_context: lines."""
    ctxs = [f * size['context'] for f in FACTORS]
    cmd = [exe] + size['flags'] + policy_flags + ['--context', str(size['context']), '--seed', str(seed),
                                                  '--eval-contexts', ','.join(map(str, ctxs)),
                                                  '--run-dir', str(run_dir)]
    r = subprocess.run(cmd, capture_output=True, text=True, errors='replace')
    if r.returncode != 0:
        sys.exit(f'{" ".join(cmd)}\nexited with {r.returncode}:\n{r.stderr}')
    out = {}
    for line in r.stdout.splitlines():
        if line.startswith('eval_context:'):
            f = line.split()  # eval_context: T train_context: C bits_per_byte: X
            if len(f) != 6 or f[2] != 'train_context:' or f[4] != 'bits_per_byte:' or int(f[3]) != size['context']:
                sys.exit(f'unexpected line from tiny_lm: {line!r}')
            out[int(f[1])] = float(f[5])
    if sorted(out) != ctxs:
        sys.exit(f'{" ".join(cmd)}\nprinted eval contexts {sorted(out)}, expected {ctxs}')
    return out


def check_tsv(path, seeds, context):
    """The TSV's shape and values; returns a list of problems (empty: fine)."""
    problems = []
    lines = pathlib.Path(path).read_text().splitlines()
    if not lines or lines[0].split('\t') != COLUMNS:
        return [f'header {lines[0] if lines else None!r}, expected {chr(9).join(COLUMNS)!r}']
    rows = [l.split('\t') for l in lines[1:]]
    expected = {(p, str(s), str(context), str(f * context)) for p, _ in POLICIES for s in seeds for f in FACTORS}
    got = [tuple(r[:4]) for r in rows if len(r) == len(COLUMNS)]
    if len(got) != len(rows):
        problems.append('a row without exactly 5 fields')
    if sorted(got) != sorted(expected):
        missing, extra = sorted(expected - set(got)), sorted(set(got) - expected)
        problems.append(f'not one row per policy, seed and eval context: {len(got)} rows for {len(expected)}; '
                        f'missing {missing[:4]}, unexpected {extra[:4]}')
    for r in rows:
        try:
            v = float(r[-1])
        except ValueError:
            v = math.nan
        if not math.isfinite(v) or v <= 0:
            problems.append(f'bits_per_byte {r[-1]!r} is not a finite positive number (row {r})')
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('exe', help='path to build/examples/tiny_lm')
    ap.add_argument('--quick', action='store_true', help='tiny models, one seed: checks the TSV (the test)')
    ap.add_argument('--out', help='TSV to write (default: docs/results/scale_length.tsv; --quick: a temporary file)')
    args = ap.parse_args()
    size = QUICK if args.quick else FULL
    repo = pathlib.Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix='scale_length_') as tmp:
        out = pathlib.Path(args.out) if args.out else (pathlib.Path(tmp) / 'scale_length.tsv' if args.quick
                                                       else repo / 'docs' / 'results' / 'scale_length.tsv')
        rows = []
        for name, flags in POLICIES:
            for seed in size['seeds']:
                t0 = time.time()
                res = train(args.exe, flags, size, seed, pathlib.Path(tmp) / f'{name}_{seed}')
                rows += [(name, seed, size['context'], c, res[c]) for c in sorted(res)]
                print(f'{name} seed {seed}: ' + ', '.join(f'{c}: {res[c]:.4f}' for c in sorted(res)) +
                      f' ({time.time() - t0:.0f} s)', flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, 'w') as f:
            f.write('\t'.join(COLUMNS) + '\n')
            for p, s, t, c, b in rows:
                f.write(f'{p}\t{s}\t{t}\t{c}\t{b:.6f}\n')
        print(f'wrote {out}\n')
        # mean +- sd (sample sd over seeds) per policy and eval context
        ctxs = [f * size['context'] for f in FACTORS]
        print('| policy | ' + ' | '.join(f'eval {c} ({c // size["context"]}x)' for c in ctxs) + ' |')
        print('|---|' + '---|' * len(ctxs))
        for name, _ in POLICIES:
            cells = []
            for c in ctxs:
                v = [b for p, _, _, cc, b in rows if p == name and cc == c]
                sd = statistics.stdev(v) if len(v) > 1 else float('nan')
                cells.append(f'{statistics.mean(v):.4f} ± {sd:.4f}')
            print(f'| {name} | ' + ' | '.join(cells) + ' |')
        problems = check_tsv(out, size['seeds'], size['context'])
        for p in problems:
            print('FAIL ' + p)
        if problems:
            sys.exit(f'{len(problems)} problem(s) in {out}')
        print('TSV checked: header, one row per policy, seed and eval context, finite values')


if __name__ == '__main__':
    main()
