#!/usr/bin/env python3
"""Self-pretraining against training from scratch on ListOps (issue #22, experiment 1; post 9787, Amos et al.
"Never Train from Scratch"): at the same total number of epochs, does masked prediction on the training
inputs first (SPT), then fine-tuning, beat classification alone?

Runs examples/self_pretraining once per arm and seed (`--arm scratch|spt --seed S --seeds 1`), two runs at
a time by default, each on one thread. Both arms of a seed start from the same initialization and see the
same data set; the test accuracy is that of the best validation epoch. Writes a TSV with the columns arm,
seed, accuracy (header first; accuracy a fraction of the test set), rewritten after every finished run so
it only ever holds complete rows, and prints mean +- sd per arm, the per-seed paired difference (spt -
scratch) and the majority-class baseline. Results and the command: docs/self_pretraining.md.

  nice -n 10 python3 bench/self_pretraining.py build/examples/self_pretraining      # the full run
  python3 bench/self_pretraining.py build/examples/self_pretraining --quick         # seconds: checks the TSV

--quick (the test suite's run) trains tiny models for a few epochs with two seeds, writes the TSV into a
temporary directory (unless --out is given), and fails unless the TSV has the header, one row per arm and
seed, and accuracies that are fractions of the test set (in [0, 1], a whole number of test examples).
"""
import argparse
import concurrent.futures
import math
import os
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile
import time

ARMS = ['scratch', 'spt']
COLUMNS = ['arm', 'seed', 'accuracy']

# The full run (docs/self_pretraining.md says why this configuration): depth-2 ListOps, 10000 training
# expressions, 15 epochs per arm (SPT: 7 of masked prediction + 8 of classification).
FULL = dict(seeds=[1, 2, 3, 4, 5], test=2000,
            flags=['--train', '10000', '--val', '1000', '--test', '2000', '--max-depth', '2', '--max-args', '5',
                   '--p-list', '0.3', '--min-len', '5', '--max-len', '64', '--epochs', '15'])
QUICK = dict(seeds=[1, 2], test=100,
             flags=['--train', '200', '--val', '60', '--test', '100', '--max-depth', '2', '--min-len', '5',
                    '--max-len', '32', '--width', '16', '--heads', '2', '--mlp-hidden', '32', '--epochs', '4'])

RESULT = re.compile(r'^seed (\d+) (scratch|SPT): test acc ([0-9.]+) ')
MAJORITY = re.compile(r'majority class of test ([0-9.]+)')


def run(exe, size, arm, seed):
    """One arm for one seed; returns (test accuracy, majority-class fraction of the test set, seconds)."""
    cmd = [exe] + size['flags'] + ['--arm', arm, '--seed', str(seed), '--seeds', '1', '--threads', '1', '--quiet']
    env = dict(os.environ, EXPRGRAD_NUM_THREADS='1', OPENBLAS_NUM_THREADS='1')
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True, errors='replace', env=env)
    if r.returncode != 0:
        sys.exit(f'{" ".join(cmd)}\nexited with {r.returncode}:\n{r.stderr}')
    acc, majority = None, None
    for line in r.stdout.splitlines():
        m = RESULT.match(line)
        if m and int(m.group(1)) == seed and m.group(2).lower() == arm:
            acc = float(m.group(3))
        m = MAJORITY.search(line)
        if m:
            majority = float(m.group(1))
    if acc is None or majority is None:
        sys.exit(f'{" ".join(cmd)}\nprinted no result line for {arm} seed {seed}:\n{r.stdout[-2000:]}')
    return acc, majority, time.time() - t0


def write_tsv(path, results):
    rows = sorted(results.items(), key=lambda kv: (ARMS.index(kv[0][0]), kv[0][1]))
    tmp = pathlib.Path(str(path) + '.part')
    with open(tmp, 'w') as f:
        f.write('\t'.join(COLUMNS) + '\n')
        for (arm, seed), acc in rows:
            f.write(f'{arm}\t{seed}\t{acc:.4f}\n')
    os.replace(tmp, path)


def check_tsv(path, seeds, test_size):
    """The TSV's shape and values; returns a list of problems (empty: fine)."""
    lines = pathlib.Path(path).read_text().splitlines()
    # the columns, spelled out here so that a wrong COLUMNS fails the check
    if not lines or lines[0].split('\t') != ['arm', 'seed', 'accuracy']:
        return [f'header {lines[0] if lines else None!r}, expected {chr(9).join(COLUMNS)!r}']
    problems = []
    rows = [l.split('\t') for l in lines[1:]]
    if any(len(r) != len(COLUMNS) for r in rows):
        problems.append(f'a row without exactly {len(COLUMNS)} fields')
    got = sorted((r[0], r[1]) for r in rows if len(r) == len(COLUMNS))
    expected = sorted((a, str(s)) for a in ARMS for s in seeds)
    if got != expected:
        problems.append(f'rows {got}, expected one per arm and seed: {expected}')
    for r in rows:
        try:
            v = float(r[-1])
        except ValueError:
            v = math.nan
        # a fraction of the test set: in [0, 1] and a whole number of test examples (the TSV keeps 4 digits)
        if not (0.0 <= v <= 1.0) or abs(v * test_size - round(v * test_size)) > 1e-4 * test_size:
            problems.append(f'accuracy {r[-1]!r} is not a fraction of {test_size} test examples (row {r})')
    return problems


def mean_sd(v):
    return statistics.mean(v), (statistics.stdev(v) if len(v) > 1 else float('nan'))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('exe', help='path to build/examples/self_pretraining')
    ap.add_argument('--quick', action='store_true', help='tiny models, two seeds: checks the TSV (the test)')
    ap.add_argument('--out', help='TSV to write (default: docs/results/self_pretraining.tsv; --quick: a temporary file)')
    ap.add_argument('--jobs', type=int, default=2, help='runs at a time, each on one thread (default 2)')
    args = ap.parse_args()
    size = QUICK if args.quick else FULL
    repo = pathlib.Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix='self_pretraining_') as tmp:
        out = pathlib.Path(args.out) if args.out else (pathlib.Path(tmp) / 'self_pretraining.tsv' if args.quick
                                                       else repo / 'docs' / 'results' / 'self_pretraining.tsv')
        out.parent.mkdir(parents=True, exist_ok=True)
        progress = out.with_name(out.name + '.progress')
        load = os.getloadavg()
        print(f'load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}', flush=True)
        t_start = time.time()
        results, majorities = {}, set()
        # seeds in order, the two arms of a seed side by side: a cut-short run still has paired seeds
        jobs = [(arm, seed) for seed in size['seeds'] for arm in ARMS]
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            futures = {pool.submit(run, args.exe, size, arm, seed): (arm, seed) for arm, seed in jobs}
            for fut in concurrent.futures.as_completed(futures):
                arm, seed = futures[fut]
                acc, majority, secs = fut.result()
                results[(arm, seed)] = acc
                majorities.add(majority)
                # complete rows only, after every run, beside the TSV: an interrupted run leaves the last
                # complete TSV in place
                write_tsv(progress, results)
                print(f'{arm} seed {seed}: test accuracy {acc:.4f} ({secs:.0f} s)', flush=True)
        write_tsv(out, results)
        progress.unlink()
        wall = time.time() - t_start
        load = os.getloadavg()
        print(f'wrote {out}\nwall time {wall:.0f} s; load average at end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n')

        print('| arm | seeds | test accuracy mean ± sd | per seed |')
        print('|---|---|---|---|')
        for arm in ARMS:
            v = [results[(arm, s)] for s in size['seeds']]
            m, sd = mean_sd(v)
            print(f'| {arm} | {len(v)} | {m:.3f} ± {sd:.3f} | ' + ', '.join(f'{x:.3f}' for x in v) + ' |')
        print(f'| majority class | | {"/".join(f"{x:.3f}" for x in sorted(majorities))} | |')
        d = [results[('spt', s)] - results[('scratch', s)] for s in size['seeds']]
        m, sd = mean_sd(d)
        print(f'\npaired difference spt - scratch: {m:+.3f} ± {sd:.3f} (sd over {len(d)} seeds; '
              f'{sum(x > 0 for x in d)} of {len(d)} seeds favour spt)')

        problems = check_tsv(out, size['seeds'], size['test'])
        for p in problems:
            print('FAIL ' + p)
        if problems:
            sys.exit(f'{len(problems)} problem(s) in {out}')
        print('TSV checked: header, one row per arm and seed, accuracies are fractions of the test set')


if __name__ == '__main__':
    main()
