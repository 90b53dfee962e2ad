#!/usr/bin/env python3
"""examples/tiny_lm at a tiny size: the loss decreases; the run writes its report, plot and checkpoint;
a checkpoint round-trips (a finished run resumed evaluates to the same numbers); a run interrupted
with --stop-after and resumed ends with bit-identical parameters and optimizer state, and the same
generations, as an uninterrupted run; the DEER + EMO variant trains; --position none and alibi train without
a position table and --eval-contexts evaluates them past the training context (one line per context, the
one at the training context equal to the run's own held-out figure); a fine-tune with --init-from and the fixed EMO
cost starts from the checkpoint, resumes bit-identically and samples for the distribution score.
Usage: tiny_lm_test.py path/to/tiny_lm"""
import pathlib
import subprocess
import sys
import tempfile

EXE = sys.argv[1]
SMALL = ['--steps', '24', '--batch', '4', '--context', '24', '--width', '32', '--layers', '2', '--heads', '2',
         '--vocab-size', '300', '--max-corpus', '150000', '--eval-bytes', '4000', '--eval-every', '8',
         '--ckpt-every', '8', '--gen-pieces', '6', '--threads', '1', '--lr', '3e-3']
failures = []


def check(ok, what):
    print(('ok   ' if ok else 'FAIL ') + what)
    if not ok:
        failures.append(what)


def run(args):
    r = subprocess.run([EXE] + args, capture_output=True, text=True, errors='replace', timeout=600)
    if r.returncode != 0:
        print(r.stdout, r.stderr)
        sys.exit(f'tiny_lm {" ".join(args)} exited with {r.returncode}')
    return r.stdout


def results(out):
    """The lines that must agree between two runs of the same configuration."""
    return [l for l in out.splitlines() if l.startswith(('held-out bits/byte', '  without', '  with'))]


def files(d):
    return {p.relative_to(d): p.read_bytes() for p in sorted(pathlib.Path(d).rglob('*.npy'))}


with tempfile.TemporaryDirectory() as tmp:
    a, b, c = (pathlib.Path(tmp) / x for x in 'abc')
    out_a = run(SMALL + ['--run-dir', str(a)])
    rows = [l.split('\t') for l in (a / 'history.tsv').read_text().splitlines()[1:]]
    check(len(rows) == 24, f'history has one record per step ({len(rows)})')
    train = [float(r[1]) for r in rows]
    held = [float(r[2]) for r in rows if r[2] != 'nan']
    check(sum(train[-4:]) / 4 < sum(train[:4]) / 4 - 0.3,
          f'training loss decreases: first 4 steps {sum(train[:4]) / 4:.3f}, last 4 {sum(train[-4:]) / 4:.3f}')
    check(len(held) == 3 and held[-1] < held[0], f'held-out loss decreases: {held}')
    report = (a / 'report.md').read_text()
    check('bits per byte' in report and 'with token healing' in report, 'report.md has the results and generations')
    check((a / 'loss.svg').read_text().startswith('<svg'), 'loss.svg is an SVG')
    check((a / 'ckpt' / 'manifest.txt').read_text().startswith('exprgrad-checkpoint 1\n'), 'the checkpoint exists')
    check(len(results(out_a)) == 1 + 2 * 3, 'held-out bits/byte and three generations, each with and without healing')

    # Resuming a finished run trains nothing: the reloaded parameters give the same numbers.
    again = run(SMALL + ['--run-dir', str(a), '--resume'])
    check('resumed from' in again and results(again) == results(out_a), 'checkpoint round trip: same evaluation')

    # Interrupted after step 8 (a checkpoint), resumed: the same end state as without the break.
    stopped = run(SMALL + ['--run-dir', str(b), '--stop-after', '8'])
    check('stopped after step 8' in stopped, 'the run stops after step 8')
    out_b = run(SMALL + ['--run-dir', str(b), '--resume'])
    check('resumed from' in out_b and 'at step 8' in out_b, 'the second run resumes at step 8')
    fa, fb = files(a / 'ckpt'), files(b / 'ckpt')
    check(len(fa) > 20 and fa == fb, f'bit-identical parameters and optimizer state ({len(fa)} arrays)')
    check(results(out_b) == results(out_a), 'same held-out bits/byte and same generations as the uninterrupted run')
    check((b / 'history.tsv').read_text() == (a / 'history.tsv').read_text(), 'same history')

    # Fine-tuning (#22, docs/emo_finetune.md): --init-from a's checkpoint and tokenizer, CE + EMO with the fixed
    # cost (the head as loaded). It starts where a ended, not from a random initialization; stopped and resumed,
    # it ends bit-identical to an uninterrupted fine-tune (the fixed cost is a's head again, not the resumed one);
    # the live cost trains otherwise; --samples prints the distribution line and writes samples.txt.
    ft = SMALL[:1] + ['12'] + SMALL[2:] + ['--init-from', str(a), '--emo', '--emo-cost', 'fixed']
    e, f, g = (pathlib.Path(tmp) / x for x in ('ft_e', 'ft_f', 'ft_g'))
    out_e = run(ft + ['--samples', '5', '--run-dir', str(e)])
    first_a = float((a / 'history.tsv').read_text().splitlines()[1].split('\t')[1])
    first_e = float((e / 'history.tsv').read_text().splitlines()[1].split('\t')[1])
    check('initialized from' in out_e and first_e < first_a - 0.5 and first_e < train[-1] + 0.5,
          f'--init-from starts from the trained parameters (first loss {first_e:.3f}; a: {first_a:.3f} -> {train[-1]:.3f})')
    check((e / 'tokenizer.txt').read_bytes() == (a / 'tokenizer.txt').read_bytes(), '--init-from uses its tokenizer')
    dist = [l.split() for l in out_e.splitlines() if l.startswith('distribution: ')]
    check(len(dist) == 1 and dist[0][1:3] == ['samples', '5'] and float(dist[0][6]) > 0 and float(dist[0][8]) > 0,
          f'--samples 5: one distribution line with positive divergences ({dist})')
    check((e / 'samples.txt').read_bytes().count(b'\n%\n') == 5, 'samples.txt holds the 5 samples')
    run(ft + ['--run-dir', str(f), '--stop-after', '6'])
    out_f = run(ft + ['--run-dir', str(f), '--resume'])
    fe, ff = files(e / 'ckpt'), files(f / 'ckpt')
    check('at step 6' in out_f and len(fe) > 20 and fe == ff,
          'a fixed-cost fine-tune stopped and resumed ends bit-identical to the uninterrupted one')
    run(ft[:-1] + ['live', '--run-dir', str(g)])
    check(files(g / 'ckpt') != fe, '--emo-cost live trains otherwise than fixed')

    # Every capability at once: a DEER block, CE + EMO.
    out_c = run(SMALL[:1] + ['6'] + SMALL[2:] + ['--deer-layers', '1', '--deer-state', '4', '--emo',
                                                    '--run-dir', str(c)])
    rep = (c / 'report.md').read_text()
    check('| DEER |' in rep and 'CE + EMO' in rep, 'the DEER + EMO variant trains and reports its solver')

    # Position schemes that go past the training context (#20, #22): no pos_emb; evaluated at 1x..4x.
    for position in ('none', 'alibi'):
        d = pathlib.Path(tmp) / position
        out = run(SMALL[:1] + ['12'] + SMALL[2:] + ['--position', position, '--eval-contexts', '24,48,96',
                                                     '--run-dir', str(d)])
        rows = [l.split('\t') for l in (d / 'history.tsv').read_text().splitlines()[1:]]
        train = [float(r[1]) for r in rows]
        check(sum(train[-3:]) / 3 < sum(train[:3]) / 3 - 0.2,
              f'--position {position}: training loss decreases ({sum(train[:3]) / 3:.3f} -> {sum(train[-3:]) / 3:.3f})')
        names = {p.stem for p in (d / 'ckpt' / 'params').glob('*.npy')}
        check('tok_emb' in names and 'pos_emb' not in names and not any('alibi' in n for n in names),
              f'--position {position}: no position table, no slopes among the parameters')
        evals = [l.split() for l in out.splitlines() if l.startswith('eval_context:')]
        ctx = [int(e[1]) for e in evals]
        bpb = [float(e[5]) for e in evals]
        check(ctx == [24, 48, 96] and all(e[3] == '24' for e in evals) and all(0 < b < 20 for b in bpb),
              f'--position {position}: one eval_context line per context, finite ({evals})')
        main = [float(l.split()[3].rstrip(',')) for l in out.splitlines() if l.startswith('held-out bits/byte')]
        check(len(main) == 1 and bpb and abs(bpb[0] - main[0]) < 6e-5,
              f'--position {position}: the evaluation at the training context is the run\'s ({bpb[:1]} vs {main})')

if failures:
    sys.exit(f'{len(failures)} check(s) failed')
print('all checks passed')
