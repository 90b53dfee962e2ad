#!/usr/bin/env python3
"""EMO as the paper uses it (issue #22, experiment 3): continual fine-tuning of a pretrained tiny_lm with
cross-entropy (ce) against CE + EMO whose transport cost is the PRETRAINED output embedding, frozen (ce_emo).

Per seed s (one pretraining per seed; both fine-tunes of that seed start from it, so the two objectives are
paired):

  pretrain  tiny_lm --seed s, CE, on every Debian fortunes collection except songs-poems (its own tokenizer)
  ce        tiny_lm --init-from PRETRAIN --seed s, CE, on songs-poems only
  ce_emo    tiny_lm --init-from PRETRAIN --seed s --emo --emo-cost fixed, on songs-poems only
            (mode 1, 1/2 (CE + sg(CE/EMO) EMO); the cost 1 - cos(e_i, e_j) between rows of the head as loaded
            from PRETRAIN, held constant)

and, as a reference that is not written to the TSV, the pretrained model itself on songs-poems
(`--init-from PRETRAIN --steps 1 --lr 1e-9`: one step of a 1e-9 learning rate, the pretrained parameters to
about 1e-9), sampled twice with different draws to show the score's sampling noise. Each fine-tune reports held-out bits per byte on the songs-poems held-out fortunes (every 20th)
and the distribution score: KL of the held-out piece-bigram frequencies from those of N streams sampled at
temperature 1 (tiny_lm --samples; definition in examples/tiny_lm/distribution_score.hpp and
docs/emo_finetune.md; lower is closer). Writes a TSV with the columns objective, seed, bits_per_byte,
distribution_score (header first) and prints mean +- sd per objective and the paired differences.

  nice -n 10 python3 bench/emo_finetune.py build/examples/tiny_lm          # the full run (docs/emo_finetune.md)
  python3 bench/emo_finetune.py build/examples/tiny_lm --quick             # seconds: checks the TSV's shape

--quick (the test suite's run) trains tiny models for a few steps with one seed, writes the TSV into a
temporary directory (unless --out is given), and fails unless the TSV has the header, one row per objective
and seed, and finite values (bits per byte > 0, distribution score >= 0).
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

CORPUS = '/usr/share/games/fortunes'
FINETUNE_DOMAIN = ['songs-poems']
ALL_FILES = ['fortunes', 'literature', 'science', 'wisdom', 'people', 'politics', 'work', 'computers', 'education',
             'food', 'humorists', 'law', 'love', 'men-women', 'miscellaneous', 'news', 'pets', 'platitudes',
             'songs-poems', 'sports']  # load_corpus's list (examples/tiny_lm/data.cpp)
OBJECTIVES = [('ce', []), ('ce_emo', ['--emo', '--emo-cost', 'fixed'])]
# --with-live: also CE + EMO with the live head as the cost (tiny_lm's --emo before), printed, not in the TSV.
LIVE = ('ce_emo_live', ['--emo', '--emo-cost', 'live'])
COLUMNS = ['objective', 'seed', 'bits_per_byte', 'distribution_score']

ARCH = ['--context', '32', '--width', '64', '--layers', '2', '--heads', '4', '--threads', '1', '--gen-pieces', '0',
        '--ckpt-every', '100000']
FULL = dict(seeds=[1, 2, 3],
            pretrain=ARCH + ['--steps', '2500', '--batch', '16', '--eval-bytes', '30000', '--eval-every', '500'],
            finetune=ARCH + ['--steps', '800', '--batch', '16', '--lr', '1e-3', '--eval-bytes', '30000',
                             '--eval-every', '200', '--samples', '500'])
QUICK_ARCH = ['--context', '8', '--width', '16', '--layers', '1', '--heads', '2', '--threads', '1', '--gen-pieces', '0',
              '--ckpt-every', '100000', '--vocab-size', '300']
QUICK = dict(seeds=[1],
             pretrain=QUICK_ARCH + ['--steps', '6', '--batch', '4', '--max-corpus', '150000', '--eval-bytes', '2000',
                                    '--eval-every', '6'],
             finetune=QUICK_ARCH + ['--steps', '6', '--batch', '4', '--lr', '1e-3', '--max-corpus', '60000',
                                    '--eval-bytes', '2000', '--eval-every', '6', '--samples', '8'])


def corpus_dir(root, files):
    """A directory of symbolic links to the named fortunes files (tiny_lm reads the collection's names)."""
    root.mkdir(parents=True)
    for f in files:
        src = pathlib.Path(CORPUS) / f
        if src.exists():
            (root / f).symlink_to(src)
    return root


def with_opts(args, **opts):
    """args with options replaced or added (tiny_lm refuses an option given twice): with_opts(a, steps='1')."""
    args = list(args)
    for k, v in opts.items():
        flag = '--' + k.replace('_', '-')
        if flag in args:
            args[args.index(flag) + 1] = v
        else:
            args += [flag, v]
    return args


def run(cmd):
    """Runs tiny_lm; returns (bits_per_byte, kl_unigram, kl_bigram or None, seconds)."""
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True, errors='replace')
    if r.returncode != 0:
        sys.exit(f'{" ".join(cmd)}\nexited with {r.returncode}:\n{r.stderr}')
    bpb, kl1, kl2 = None, None, None
    for line in r.stdout.splitlines():
        f = line.split()
        if line.startswith('held-out bits/byte: model '):
            bpb = float(f[3].rstrip(','))
        elif line.startswith('distribution: '):
            # distribution: samples N pieces P kl_unigram X kl_bigram Y (...)
            if f[5] != 'kl_unigram' or f[7] != 'kl_bigram':
                sys.exit(f'unexpected line from tiny_lm: {line!r}')
            kl1, kl2 = float(f[6]), float(f[8])
    if bpb is None:
        sys.exit(f'{" ".join(cmd)}\nprinted no held-out bits/byte line:\n{r.stdout[-2000:]}')
    return bpb, kl1, kl2, time.time() - t0


def check_tsv(path, seeds):
    """The TSV's shape and values; returns a list of problems (empty: fine)."""
    problems = []
    lines = pathlib.Path(path).read_text().splitlines()
    # the columns, spelled out here so that a wrong COLUMNS fails the check
    if not lines or lines[0].split('\t') != ['objective', 'seed', 'bits_per_byte', 'distribution_score']:
        return [f'header {lines[0] if lines else None!r}, expected {chr(9).join(COLUMNS)!r}']
    rows = [l.split('\t') for l in lines[1:]]
    got = [tuple(r[:2]) for r in rows if len(r) == len(COLUMNS)]
    if len(got) != len(rows):
        problems.append('a row without exactly 4 fields')
    expected = {(o, str(s)) for o, _ in OBJECTIVES for s in seeds}
    if sorted(got) != sorted(expected):
        problems.append(f'not one row per objective and seed: {sorted(got)}, expected {sorted(expected)}')
    for r in rows:
        if len(r) != len(COLUMNS):
            continue
        try:
            bpb, score = float(r[2]), float(r[3])
        except ValueError:
            problems.append(f'a value that is not a number (row {r})')
            continue
        if not math.isfinite(bpb) or bpb <= 0:
            problems.append(f'bits_per_byte {r[2]!r} is not a finite positive number (row {r})')
        if not math.isfinite(score) or score < 0:
            problems.append(f'distribution_score {r[3]!r} is not a finite number >= 0 (row {r})')
    return problems


def mean_sd(v):
    return f'{statistics.mean(v):.4f} ± {statistics.stdev(v) if len(v) > 1 else float("nan"):.4f}'


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('exe', help='path to build/examples/tiny_lm')
    ap.add_argument('--quick', action='store_true', help='tiny models, one seed: checks the TSV (the test)')
    ap.add_argument('--with-live', action='store_true',
                    help='also fine-tune with the live head as the cost (printed only; the TSV is unchanged)')
    ap.add_argument('--out', help='TSV to write (default: docs/results/emo_finetune.tsv; --quick: a temporary file)')
    args = ap.parse_args()
    size = QUICK if args.quick else FULL
    repo = pathlib.Path(__file__).resolve().parent.parent
    t_all = time.time()
    with tempfile.TemporaryDirectory(prefix='emo_finetune_') as tmp:
        tmp = pathlib.Path(tmp)
        out = pathlib.Path(args.out) if args.out else (tmp / 'emo_finetune.tsv' if args.quick
                                                       else repo / 'docs' / 'results' / 'emo_finetune.tsv')
        pre_corpus = corpus_dir(tmp / 'corpus_pretrain', [f for f in ALL_FILES if f not in FINETUNE_DOMAIN])
        ft_corpus = corpus_dir(tmp / 'corpus_finetune', FINETUNE_DOMAIN)
        rows, extra, refs, kl1s = [], [], {}, {}
        for seed in size['seeds']:
            pre = tmp / f'pretrain_{seed}'
            bpb, _, _, sec = run([args.exe] + size['pretrain'] + ['--corpus-dir', str(pre_corpus), '--seed', str(seed),
                                                                  '--run-dir', str(pre)])
            print(f'seed {seed} pretrain: {bpb:.4f} bits/byte on the pretraining held-out ({sec:.0f} s)', flush=True)
            ft = [args.exe] + size['finetune'] + ['--corpus-dir', str(ft_corpus), '--seed', str(seed),
                                                  '--init-from', str(pre)]
            # The pretrained model itself on the fine-tuning domain (not in the TSV).
            bpb, kl1, kl2, sec = run(with_opts(ft, steps='1', lr='1e-9', run_dir=str(tmp / f'ref_{seed}')))
            # The same model sampled with other draws (--seed only seeds the data and the sampling here; the
            # step is 1e-9): how much the score moves by sampling alone.
            _, _, kl2b, _ = run(with_opts(ft, steps='1', lr='1e-9', seed=str(seed + 1000),
                                          run_dir=str(tmp / f'ref_{seed}_b')))
            refs[seed] = (bpb, kl1, kl2, kl2b)
            print(f'seed {seed} pretrained (no fine-tuning): {bpb:.4f} bits/byte, distribution {kl2:.4f} '
                  f'(unigram KL {kl1:.4f}; other samples: {kl2b:.4f}) ({sec:.0f} s)', flush=True)
            for name, flags in OBJECTIVES + ([LIVE] if args.with_live else []):
                bpb, kl1, kl2, sec = run(ft + flags + ['--run-dir', str(tmp / f'{name}_{seed}')])
                (extra if name == LIVE[0] else rows).append((name, seed, bpb, kl2))
                kl1s[(name, seed)] = kl1
                print(f'seed {seed} {name}: {bpb:.4f} bits/byte, distribution {kl2:.4f} (unigram KL {kl1:.4f}) '
                      f'({sec:.0f} s)', flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        part = out.with_name(out.name + '.part')  # written whole, then renamed: never a half-written TSV
        with open(part, 'w') as f:
            f.write('\t'.join(COLUMNS) + '\n')
            for o, s, b, d in rows:
                f.write(f'{o}\t{s}\t{b:.6f}\t{d:.6f}\n')
        os.replace(part, out)
        print(f'wrote {out} ({time.time() - t_all:.0f} s in all)\n')
        seeds = size['seeds']
        print('| objective | bits/byte | distribution score (bigram KL) | unigram KL |')
        print('|---|---|---|---|')
        print(f'| pretrained, not fine-tuned | {mean_sd([refs[s][0] for s in seeds])} | '
              f'{mean_sd([refs[s][2] for s in seeds])} | {mean_sd([refs[s][1] for s in seeds])} |')
        for name, _ in OBJECTIVES + ([LIVE] if args.with_live else []):
            b = [r[2] for r in rows + extra if r[0] == name]
            d = [r[3] for r in rows + extra if r[0] == name]
            print(f'| {name} | {mean_sd(b)} | {mean_sd(d)} | {mean_sd([kl1s[(name, s)] for s in seeds])} |')
        noise = [abs(refs[s][2] - refs[s][3]) for s in seeds]
        print('\nsampling noise of the distribution score (the pretrained model, two sets of samples): |difference| '
              + ', '.join(f'{x:.4f}' for x in noise))
        by = {(r[0], r[1]): r for r in rows}
        db = [by[('ce_emo', s)][2] - by[('ce', s)][2] for s in seeds]
        dd = [by[('ce_emo', s)][3] - by[('ce', s)][3] for s in seeds]
        print('\npaired differences ce_emo - ce per seed: bits/byte ' + ', '.join(f'{x:+.4f}' for x in db) +
              f' (mean {statistics.mean(db):+.4f}); distribution score ' + ', '.join(f'{x:+.4f}' for x in dd) +
              f' (mean {statistics.mean(dd):+.4f})')
        problems = check_tsv(out, seeds)
        for p in problems:
            print('FAIL ' + p)
        if problems:
            sys.exit(f'{len(problems)} problem(s) in {out}')
        print('TSV checked: header, one row per objective and seed, finite values')


if __name__ == '__main__':
    main()
