#!/usr/bin/env python3
"""examples/tiny_lm data-parallel under `mpirun -np 2` (issue #21), at a tiny size:
- two ranks equal one process with the same global batch: after 20 steps the parameters agree within
  1e-5 relative (L2 over all of them) and the held-out bits per byte within 1e-4; rank 0 alone prints; so do
  two ranks of two threads each (each rank's model copies summed before the all-reduce);
- two 2-rank runs are bit-identical (parameters, optimizer state, history);
- the checkpoint records the number of ranks, and a 2-rank run stopped after step 10 resumes on one
  process (the data position is recomputed) and ends near the uninterrupted run;
- an exception on one rank, or its sudden exit, ends both ranks with a message (a hang would hit the
  timeout of the run).
Usage: tiny_lm_mpi_test.py path/to/mpirun path/to/tiny_lm (the environment allows mpirun as root)"""
import array
import math
import os
import pathlib
import struct
import subprocess
import sys
import tempfile

MPIRUN, EXE = sys.argv[1], sys.argv[2]
SMALL = ['--steps', '20', '--batch', '4', '--context', '24', '--width', '32', '--layers', '2', '--heads', '2',
         '--vocab-size', '300', '--max-corpus', '150000', '--eval-bytes', '4000', '--eval-every', '10',
         '--ckpt-every', '10', '--gen-pieces', '4', '--threads', '1']
TWO = [MPIRUN, '-np', '2', '--oversubscribe']
failures = []


def check(ok, what):
    print(('ok   ' if ok else 'FAIL ') + what)
    if not ok:
        failures.append(what)


def run(cmd, expect_ok=True, env=None):
    e = dict(os.environ)
    e.update(env or {})
    # A hang (the failure this guards against) ends here, not in the suite's timeout.
    r = subprocess.run(cmd, capture_output=True, text=True, errors='replace', timeout=120, env=e)
    if expect_ok and r.returncode != 0:
        print(r.stdout, r.stderr)
        sys.exit(f'{" ".join(cmd)} exited with {r.returncode}')
    return r


def npy(path):
    """The float32 values of a NumPy 1.0 '<f4' file (what nn::save_checkpoint writes)."""
    b = path.read_bytes()
    if b[:6] != b'\x93NUMPY' or b"'<f4'" not in b[:128]:
        sys.exit(f'{path}: not a float32 .npy file')
    header = struct.unpack('<H', b[8:10])[0]
    a = array.array('f')
    a.frombytes(b[10 + header:])
    return a


def arrays(run_dir):
    return {p.relative_to(run_dir): p.read_bytes() for p in sorted((run_dir / 'ckpt').rglob('*.npy'))}


def relative_l2(a_dir, b_dir):
    """||a − b|| / ||a|| over every parameter of the two checkpoints."""
    num = den = 0.0
    names = sorted(p.name for p in (a_dir / 'ckpt' / 'params').glob('*.npy'))
    if not names or names != sorted(p.name for p in (b_dir / 'ckpt' / 'params').glob('*.npy')):
        sys.exit(f'{a_dir} and {b_dir} hold different parameters')
    for n in names:
        a, b = npy(a_dir / 'ckpt' / 'params' / n), npy(b_dir / 'ckpt' / 'params' / n)
        num += sum((x - y) ** 2 for x, y in zip(a, b))
        den += sum(x * x for x in a)
    return math.sqrt(num / den)


def bpb(out):
    lines = [l for l in out.splitlines() if l.startswith('held-out bits/byte: model ')]
    return [float(l.split()[3].rstrip(',')) for l in lines]


with tempfile.TemporaryDirectory() as tmp:
    one, two, again, stop = (pathlib.Path(tmp) / x for x in ('one', 'two', 'again', 'stop'))
    r1 = run([EXE] + SMALL + ['--run-dir', str(one)])
    r2 = run(TWO + [EXE] + SMALL + ['--run-dir', str(two)])
    rel = relative_l2(one, two)
    check(rel < 1e-5, f'2 ranks vs 1 process after 20 steps: parameters agree within 1e-5 relative ({rel:.2e})')
    b1, b2 = bpb(r1.stdout), bpb(r2.stdout)
    check(len(b1) == 1 and len(b2) == 1 and abs(b1[0] - b2[0]) < 1e-4,
          f'held-out bits/byte printed once, 1 process {b1} vs 2 ranks {b2}')
    progress = [l for l in r2.stderr.splitlines() if 'pieces/s' in l]
    check(len(progress) == 3, f'rank 0 alone prints the progress (3 lines: steps 1, 10, 20; got {len(progress)})')
    check(r2.stdout.count('corpus:') == 1 and r2.stdout.count('prompt:') == 3, 'rank 0 alone prints the report')
    check('all-reduce: 2 ranks' in r2.stdout and 'all-reduce' not in r1.stdout,
          'the 2-rank run reports its all-reduce, one process does not')
    # Two ranks of two threads: each rank first sums its two model copies' gradients (--parallel data), then the
    # ranks all-reduce: still the one process's global batch.
    twot = pathlib.Path(tmp) / 'two_threads'
    run(TWO + [EXE] + SMALL[:-1] + ['2', '--run-dir', str(twot)])
    rel = relative_l2(one, twot)
    check(rel < 1e-5, f'2 ranks x 2 threads (data-parallel) vs 1 process: parameters within 1e-5 relative ({rel:.2e})')
    manifest = (two / 'ckpt' / 'manifest.txt').read_text()
    check('meta world_size 2\n' in manifest and 'meta world_size 1\n' in (one / 'ckpt' / 'manifest.txt').read_text(),
          'the checkpoints record the number of ranks')

    run(TWO + [EXE] + SMALL + ['--run-dir', str(again)])
    fa, fb = arrays(two), arrays(again)
    check(len(fa) > 20 and fa == fb, f'two 2-rank runs: bit-identical parameters and optimizer state ({len(fa)} arrays)')
    check((two / 'history.tsv').read_text() == (again / 'history.tsv').read_text(), 'two 2-rank runs: same history')

    # Stopped by 2 ranks after step 10, resumed by one process: the same stream of data from step 11.
    s = run(TWO + [EXE] + SMALL + ['--run-dir', str(stop), '--stop-after', '10'])
    check(s.stdout.count('stopped after step 10') == 1, 'the 2-rank run stops after step 10')
    r = run([EXE] + SMALL + ['--run-dir', str(stop), '--resume'])
    check('written by 2 ranks' in r.stdout and 'resumed from' in r.stdout,
          'one process resumes the 2-rank checkpoint and says so')
    rel = relative_l2(one, stop)
    check(rel < 1e-5, f'... and ends within 1e-5 relative of the uninterrupted run ({rel:.2e})')

    # Failures: an exception on rank 1 (rank 0 waits for it in the gradient all-reduce), a sudden exit of rank 0.
    for fault, rank, message in (('throw_on_rank_1_at_step_3', 1, 'injected fault (EXPRGRAD_FAULT) on rank 1'),
                                 ('exit_on_rank_0_at_step_3', 0, 'exited')):
        f = run(TWO + [EXE] + SMALL + ['--run-dir', str(pathlib.Path(tmp) / fault)], expect_ok=False,
                env={'EXPRGRAD_FAULT': fault})
        check(f.returncode != 0 and message in f.stderr,
              f'{fault}: both ranks end (exit {f.returncode}) with a message naming the failure')

if failures:
    sys.exit(f'{len(failures)} check(s) failed')
print('all checks passed')
