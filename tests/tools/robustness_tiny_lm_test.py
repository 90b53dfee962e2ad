#!/usr/bin/env python3
"""Robustness of examples/tiny_lm (issue #16), at a tiny size so that each case takes a few seconds.

1. A table of refusals (tests/tools/refusal.py): zero intervals, --eval-bytes 0, bad numbers, bounds;
   --resume with each option that shapes the model, the data or the tokenizer changed (exit 2, naming
   the option and both values, the run directory untouched); --resume without a checkpoint (exit 1,
   nothing written); damaged checkpoints (NaN inside an .npy with a matching checksum, a wrong checksum,
   a schedule step beyond the run, optimizer and schedule steps that disagree, a truncated manifest, an
   edited history), a tokenizer.txt that is not the checkpoint's and corpus files changed since (exit 1,
   naming the file or directory); and
   accepted cases (exit 0): intervals larger than --steps, a resume with only session options changed.
2. Kill-and-resume through fault injection (EXPRGRAD_FAULT, src/nn/file_io.hpp), one case per window:
   the tokenizer written before any checkpoint (alone, and over an older run's checkpoint), the
   checkpoint staged but not renamed, the new checkpoint in place with the old one not yet removed, the
   checkpoint saved but history.tsv not rewritten. Each resumed run must end bit-identical (every .npy,
   history.tsv, the printed results) to an uninterrupted run.
Usage: robustness_tiny_lm_test.py path/to/tiny_lm"""
import os
import pathlib
import re
import shutil
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from refusal import Case, run_cases  # noqa: E402

EXE = sys.argv[1]
STEPS = 4
SMALL = ['--steps', str(STEPS), '--batch', '2', '--context', '16', '--width', '16', '--layers', '1', '--heads', '2',
         '--vocab-size', '280', '--max-corpus', '60000', '--eval-bytes', '1500', '--eval-every', '2',
         '--ckpt-every', '2', '--gen-pieces', '2', '--threads', '1', '--lr', '3e-3', '--prompt', 'The be']
FAULT_STATUS = 86  # what fault_point exits with
failures = 0


def opt(args, name, value):
    """SMALL with one option replaced (or added)."""
    args = list(args)
    if name in args:
        args[args.index(name) + 1] = value
    else:
        args += [name, value]
    return args


def run(args, env=None, status=0):
    r = subprocess.run([EXE] + args, capture_output=True, text=True, errors='replace', timeout=120,
                       env=None if env is None else {**os.environ, **env})
    if r.returncode != status:
        print(r.stdout[-2000:], r.stderr[-2000:])
        sys.exit(f'tiny_lm {" ".join(args)} exited with {r.returncode}, expected {status}')
    return r


def snapshot(d):
    """Every file under d with its bytes (to check that a refusal wrote nothing)."""
    d = pathlib.Path(d)
    if not d.exists():
        return None
    return {str(p.relative_to(d)): (p.read_bytes() if p.is_file() else None) for p in sorted(d.rglob('*'))}


def unchanged(d):
    before = snapshot(d)
    return lambda p: None if snapshot(d) == before else f'{d} was changed by a refused run'


def edit(path, fn):
    p = pathlib.Path(path)
    p.write_bytes(fn(p.read_bytes()))


def fnv1a64(b):
    h = 0xcbf29ce484222325
    for c in b:
        h = ((h ^ c) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def restamp_manifest(ckpt):
    """Rewrite the manifest's last line, its own checksum (FNV-1a 64 of the bytes before it), after an edit."""
    m = re.sub(rb'manifest_checksum [0-9a-f]{16}\n$', b'', (ckpt / 'manifest.txt').read_bytes())
    (ckpt / 'manifest.txt').write_bytes(m + b'manifest_checksum %016x\n' % fnv1a64(m))


def restamp(ckpt, rel):
    """Rewrite the manifest's checksum of `rel` to match the file (so only the check under test fires)."""
    sums = fnv1a64((ckpt / rel).read_bytes())
    edit(ckpt / 'manifest.txt',
         lambda m: re.sub(rb'(checksum ' + re.escape(rel.encode()) + rb' )[0-9a-f]{16}', b'\\g<1>%016x' % sums, m))
    restamp_manifest(ckpt)


def with_float(npy, index, value):
    """An .npy of float32 with element `index` (from the end of the data) replaced."""
    b = bytearray(npy)
    b[len(b) - 4 * (index + 1):len(b) - 4 * index] = struct.pack('<f', value)
    return bytes(b)


def results(out):
    return [l for l in out.splitlines() if l.startswith(('held-out bits/byte', '  without', '  with'))]


def arrays(d):
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(pathlib.Path(d).rglob('*.npy'))}


with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    # The reference: an uninterrupted run; and a run stopped after step 2 (its checkpoint) to resume.
    ref = tmp / 'ref'
    ref_out = run(SMALL + ['--run-dir', str(ref)]).stdout
    base = tmp / 'base'
    run(SMALL + ['--run-dir', str(base), '--stop-after', '2'])

    copies = 0

    def copy(fn=None):
        """A fresh copy of the stopped run, damaged by fn(ckpt directory)."""
        global copies
        copies += 1
        d = tmp / f'copy{copies}'
        shutil.copytree(base, d, symlinks=True)
        if fn:
            fn(d / 'ckpt')
        return d

    T = [EXE] + SMALL
    usage = [
        ('--ckpt-every 0 (was SIGFPE)', opt(SMALL, '--ckpt-every', '0'), r"--ckpt-every.*'0'"),
        ('--eval-every 0 (was SIGFPE)', opt(SMALL, '--eval-every', '0'), r"--eval-every.*'0'"),
        ('--eval-bytes 0 (was -nan bits/byte)', opt(SMALL, '--eval-bytes', '0'), r"--eval-bytes.*'0'"),
        ('--steps 0', opt(SMALL, '--steps', '0'), r"--steps.*'0'"),
        ('--steps beyond the bound', opt(SMALL, '--steps', '100000000000'), r"--steps.*'100000000000'.*10000000"),
        ('--steps 2^64 does not clamp', opt(SMALL, '--steps', '18446744073709551616'), r"--steps.*18446744073709551616"),
        ('--steps 1.5', opt(SMALL, '--steps', '1.5'), r"--steps.*'1\.5'"),
        ('--steps empty', opt(SMALL, '--steps', ''), r"--steps.*''"),
        ('--seed -1 does not wrap', opt(SMALL, '--seed', '-1'), r"--seed.*'-1'"),
        ('--seed 2^64', opt(SMALL, '--seed', '18446744073709551616'), r"--seed.*18446744073709551616"),
        ("--alpha '' is not 0", opt(SMALL, '--alpha', ''), r"--alpha.*''"),
        ('--alpha nan', opt(SMALL, '--alpha', 'nan'), r"--alpha.*'nan'"),
        ('--alpha 1e309', opt(SMALL, '--alpha', '1e309'), r"--alpha.*'1e309'"),
        ('--lr 0', opt(SMALL, '--lr', '0'), r"--lr.*'0'"),
        ('--lr -1', opt(SMALL, '--lr', '-1'), r"--lr.*'-1'"),
        ('--lr inf', opt(SMALL, '--lr', 'inf'), r"--lr.*'inf'"),
        ('--batch 0', opt(SMALL, '--batch', '0'), r"--batch.*'0'"),
        ('--batch 3x', opt(SMALL, '--batch', '3x'), r"--batch.*'3x'"),
        ('--context 0', opt(SMALL, '--context', '0'), r"--context.*'0'"),
        ('--width 0', opt(SMALL, '--width', '0'), r"--width.*'0'"),
        ('--layers 0', opt(SMALL, '--layers', '0'), r"--layers.*'0'"),
        ('--heads 0', opt(SMALL, '--heads', '0'), r"--heads.*'0'"),
        ('--width not a multiple of --heads', opt(SMALL, '--heads', '3'), r"--width 16 is not a multiple of --heads 3"),
        ('--vocab-size below 261', opt(SMALL, '--vocab-size', '100'), r"--vocab-size.*'100'"),
        ('--deer-layers of a missing block', SMALL + ['--deer-layers', '5'], r"--deer-layers: block 5 does not exist"),
        ('--deer-layers with an empty element', SMALL + ['--deer-layers', '0,,1'], r"--deer-layers.*''"),
        ('--deer-layers not a number', SMALL + ['--deer-layers', 'x'], r"--deer-layers.*'x'"),
        ('--deer-state 0', SMALL + ['--deer-state', '0'], r"--deer-state.*'0'"),
        ('--scale unknown', SMALL + ['--scale', 'bogus'], r"--scale.*'bogus'"),
        ('--position unknown', SMALL + ['--position', 'rope'], r"--position: unknown position scheme 'rope'"),
        ('--softcap -1', SMALL + ['--softcap', '-1'], r"--softcap.*'-1'"),
        ('--softcap nan', SMALL + ['--softcap', 'nan'], r"--softcap.*'nan'"),
        ('--softcap inf', SMALL + ['--softcap', 'inf'], r"--softcap.*'inf'"),
        ('--softcap below 1e-6', SMALL + ['--softcap', '1e-40'], r"--softcap: 1e-40 is below 1e-6"),
        ('--init-from empty', SMALL + ['--init-from', ''], r"--init-from: the directory is empty"),
        ('--eval-contexts past the learned positions', SMALL + ['--eval-contexts', '16,32'],
         r"--eval-contexts: 32 exceeds --context 16, the length of the learned position embeddings"),
        ('--eval-contexts 1', SMALL + ['--eval-contexts', '1'], r"--eval-contexts.*'1'"),
        ('--threads 0', opt(SMALL, '--threads', '0'), r"--threads.*'0'"),
        ('--parallel unknown', SMALL + ['--parallel', 'model'], r"--parallel: unknown mode 'model' \(one of: data, ops\)"),
        ('--max-corpus 0', opt(SMALL, '--max-corpus', '0'), r"--max-corpus.*'0'"),
        ('--gen-pieces -1', opt(SMALL, '--gen-pieces', '-1'), r"--gen-pieces.*'-1'"),
        ('--stop-after beyond the bound', SMALL + ['--stop-after', '1e12'], r"--stop-after.*'1e12'"),
        ('--emo-cost unknown', SMALL + ['--emo', '--emo-cost', 'frozen'],
         r"--emo-cost: unknown cost embedding 'frozen' \(one of: live, fixed\)"),
        ('--emo-cost fixed without --emo', SMALL + ['--emo-cost', 'fixed'], r"--emo-cost: 'fixed' .* needs --emo"),
        ('--samples -1', SMALL + ['--samples', '-1'], r"--samples.*'-1'"),
        ('--samples beyond the bound', SMALL + ['--samples', '2000000'], r"--samples.*'2000000'"),
        ('an unknown option', SMALL + ['--bogus', '1'], r"--bogus"),
    ]
    cases = []
    for name, args, rx in usage:
        d = tmp / f'usage{len(cases)}'
        cases.append(Case(name, [EXE] + args + ['--run-dir', str(d)], 2, rx,
                          check=lambda p, d=d: None if not d.exists() else f'{d} was created'))

    # --resume with a shaping option changed: exit 2, naming the option, the new and the saved value.
    changed = [('--heads', '4', '2'), ('--scale', 'gradient_max', 'inv_sqrt_d'), ('--width', '32', '16'),
               ('--seed', '2', '1'), ('--layers', '2', '1'), ('--context', '12', '16'), ('--lr', '0.001', '0.003'),
               ('--alpha', '0.5', '1'), ('--batch', '3', '2'), ('--steps', '6', '4'), ('--vocab-size', '290', '280'),
               ('--max-corpus', '50000', '60000'), ('--eval-bytes', '2000', '1500'), ('--deer-state', '8', '32'),
               ('--position', 'alibi', 'learned'), ('--softcap', '30', '0')]
    for flag, new, saved in changed:
        cases.append(Case(f'--resume with {flag} changed',
                          [EXE] + opt(SMALL, flag, new) + ['--run-dir', str(base), '--resume'], 2,
                          rf"--resume: {flag} '{re.escape(new)}' differs from the checkpoint's '{re.escape(saved)}'",
                          check=unchanged(base)))
    cases.append(Case('--resume with --emo added', T + ['--run-dir', str(base), '--resume', '--emo'], 2,
                      r"--emo 'true' differs from the checkpoint's 'false'", check=unchanged(base)))
    cases.append(Case('--resume with --deer-layers added', T + ['--run-dir', str(base), '--resume', '--deer-layers',
                                                                  '0'], 2,
                      r"--deer-layers '0' differs from the checkpoint's ''", check=unchanged(base)))
    corpus_link = tmp / 'corpus_link'
    corpus_link.symlink_to('/usr/share/games/fortunes')
    cases.append(Case('--resume with --corpus-dir changed', T + ['--run-dir', str(base), '--resume', '--corpus-dir',
                                                                   str(corpus_link)], 2,
                      r"--corpus-dir '.*corpus_link' differs from the checkpoint's '/usr/share/games/fortunes'",
                      check=unchanged(base)))

    # --init-from (fine-tuning, docs/emo_finetune.md) refuses before anything is written: no checkpoint, another
    # architecture or tokenizer size (exit 2, naming the option and both values), a tokenizer.txt that is not the
    # checkpoint's (exit 1, naming the file), the run directory itself.
    def fine_tune(args, name):
        d = tmp / name
        return [EXE] + args + ['--run-dir', str(d)], (lambda p, d=d: None if not d.exists() else f'{d} was created')

    for name, args, status, rx in [
        ('--init-from a directory without a checkpoint', SMALL + ['--init-from', str(tmp)], 2,
         r"--init-from: '.*' holds no checkpoint \(.*manifest\.txt does not exist\)"),
        ('--init-from with another --width', opt(SMALL, '--width', '32') + ['--init-from', str(base)], 2,
         r"--init-from: --width '32' differs from the checkpoint's '16' \(.*manifest\.txt\)"),
        ('--init-from with another --position', SMALL + ['--position', 'none', '--init-from', str(base)], 2,
         r"--init-from: --position 'none' differs from the checkpoint's 'learned'"),
        ('--init-from with another --vocab-size', opt(SMALL, '--vocab-size', '290') + ['--init-from', str(base)], 2,
         r"--init-from: --vocab-size '290' differs from the checkpoint's '280'"),
    ]:
        argv, created = fine_tune(args, f'init{len(cases)}')
        cases.append(Case(name, argv, status, rx, check=lambda p, c=created: c(p) or unchanged(base)(p)))
    d = copy()
    cases.append(Case('--init-from the run directory itself', T + ['--init-from', str(d), '--run-dir', str(d)], 2,
                      r"--init-from: '.*' is --run-dir itself", check=unchanged(d)))
    init_other_tok = copy()
    argv, created = fine_tune(SMALL + ['--init-from', str(init_other_tok)], 'init_tok')
    cases.append(Case("--init-from whose tokenizer.txt is another run's", argv, 1,
                      r'tokenizer\.txt: --init-from: does not belong to the checkpoint \(checksum [0-9a-f]{16}, '
                      r'the checkpoint records [0-9a-f]{16}\)', check=created))
    # Accepted: a checkpoint written before --emo-cost, --init-from and --softcap existed (no records of them)
    # resumes as their defaults (live, none, 0).
    old = copy()
    manifest = (old / 'ckpt' / 'manifest.txt').read_bytes()
    manifest = re.sub(rb'meta model\.emo_cost live\n', b'', manifest)
    manifest = re.sub(rb'meta run\.init_from [^\n]*\n', b'', manifest)
    manifest = re.sub(rb'meta model\.softcap 0\n', b'', manifest)
    (old / 'ckpt' / 'manifest.txt').write_bytes(manifest)
    restamp_manifest(old / 'ckpt')
    removed = b'emo_cost' not in manifest and b'init_from' not in manifest and b'softcap' not in manifest
    cases.append(Case('--resume of a checkpoint without the emo_cost, init_from and softcap records',
                      T + ['--run-dir', str(old), '--resume'], 0, timeout=60,
                      check=lambda p, d=old: None if removed and (d / 'report.md').exists()
                      else 'the records were not removed, or the run did not finish'))

    # --resume without a checkpoint: exit 1 at once, naming the directory; nothing written or created.
    empty = tmp / 'empty_run'
    empty.mkdir()
    cases.append(Case('--resume in a directory without a checkpoint', T + ['--run-dir', str(empty), '--resume'], 1,
                      r'--resume: no checkpoint in .*empty_run',
                      check=lambda p: None if not any(empty.iterdir()) else 'files were written'))
    missing = tmp / 'missing_run'
    cases.append(Case('--resume with a missing run directory', T + ['--run-dir', str(missing), '--resume'], 1,
                      r'--resume: no checkpoint in .*missing_run',
                      check=lambda p: None if not missing.exists() else 'the directory was created'))

    # Damaged checkpoints: exit 1 naming the file.
    def nan_param(ck):
        edit(ck / 'params' / 'tok_emb.npy', lambda b: with_float(b, 3, float('nan')))
        restamp(ck, 'params/tok_emb.npy')

    def inf_buffer(ck):
        edit(ck / 'optimizer' / 'exp_avg' / 'head.npy', lambda b: with_float(b, 0, float('inf')))
        restamp(ck, 'optimizer/exp_avg/head.npy')

    def flipped(ck):
        edit(ck / 'params' / 'head.npy', lambda b: with_float(b, 5, 0.125))

    def manifest_sub(pattern, repl, stamp=True):
        """An edit of the manifest, with its own checksum fixed (stamp) so that the check under test fires."""
        def fn(ck):
            edit(ck / 'manifest.txt', lambda m: re.sub(pattern, repl, m))
            if stamp:
                restamp_manifest(ck)
        return fn

    def negative_v(ck):
        edit(ck / 'optimizer' / 'exp_avg_sq' / 'head.npy', lambda b: with_float(b, 0, -0.25))
        restamp(ck, 'optimizer/exp_avg_sq/head.npy')

    def fifo(rel):
        def fn(ck):
            p = ck / rel
            p.unlink()
            os.mkfifo(p)
        return fn

    def replaced_by(rel, make):
        def fn(ck):
            p = ck / rel
            p.unlink()
            make(p)
        return fn

    damaged = [
        ('NaN inside a parameter .npy (checksum matching)', nan_param, r'ckpt/params/tok_emb\.npy: value nan .* not finite'),
        ('inf inside an optimizer buffer (checksum matching)', inf_buffer,
         r'ckpt/optimizer/exp_avg/head\.npy: value inf .* not finite'),
        ('a parameter changed under its checksum', flipped, r'ckpt/params/head\.npy: checksum [0-9a-f]{16} does not match'),
        ('a schedule step beyond the run',
         manifest_sub(rb'schedule\.step 2\n', b'schedule.step 9\n'), r'manifest\.txt: schedule step 9 is beyond'),
        ('optimizer and schedule steps that disagree',
         manifest_sub(rb'optimizer\.step 2\n', b'optimizer.step 1\n'),
         r'manifest\.txt: optimizer step 1 and schedule step 2 disagree'),
        ('a manifest without its end line', manifest_sub(rb'end\n(manifest_checksum [0-9a-f]{16}\n)$', b'\\1', False),
         r"manifest\.txt:\d+: no 'end' line"),
        ('a hand-edited manifest (an rng state word; was accepted)',
         manifest_sub(rb'(rng data [0-9a-f]{15})[0-9a-f]', b'\\g<1>0', False), r'manifest\.txt:\d+: manifest checksum'),
        ('a manifest without its own checksum line', manifest_sub(rb'manifest_checksum [0-9a-f]{16}\n$', b'', False),
         r"manifest\.txt:\d+: no 'manifest_checksum' line"),
        ('a negative second moment with a matching checksum (was "loss is -nan")', negative_v,
         r'ckpt/optimizer/exp_avg_sq/head\.npy: second moment \(exp_avg_sq\) of parameter "head" is negative'),
        ('a FIFO as the manifest (was a hang)', fifo('manifest.txt'), r'ckpt/manifest\.txt: is a FIFO, not a regular file'),
        ('a FIFO as a parameter .npy (was a hang)', fifo('params/head.npy'),
         r'ckpt/params/head\.npy: is a FIFO, not a regular file'),
        ('a directory as a parameter .npy', replaced_by('params/head.npy', lambda p: p.mkdir()),
         r'ckpt/params/head\.npy: is a directory, not a regular file'),
        ('/dev/zero as a parameter .npy', replaced_by('params/head.npy', lambda p: p.symlink_to('/dev/zero')),
         r'ckpt/params/head\.npy: is a device, not a regular file'),
        ('a manifest with a record removed', manifest_sub(rb'meta model\.heads 2\n', b''),
         r'manifest\.txt: records no --heads'),
        ('a manifest with a bad escape', manifest_sub(rb'meta run\.corpus_dir [^\n]*', b'meta run.corpus_dir %zz'),
         r'manifest\.txt:\d+: malformed %-escaped value'),
        ('the history in the checkpoint edited', lambda ck: edit(ck / 'files' / 'history.tsv', lambda b: b[:-5]),
         r'ckpt/files/history\.tsv: checksum'),
    ]
    for name, fn, rx in damaged:
        d = copy(fn)
        cases.append(Case(name, T + ['--run-dir', str(d), '--resume'], 1, rx, check=unchanged(d)))

    # A tokenizer.txt that is not the checkpoint's (another run's), or none.
    other = tmp / 'other'
    run(opt(opt(SMALL, '--vocab-size', '300'), '--ckpt-every', '1') + ['--run-dir', str(other), '--stop-after', '1'])
    shutil.copy(other / 'tokenizer.txt', init_other_tok / 'tokenizer.txt')  # for the --init-from case above
    d = copy()
    shutil.copy(other / 'tokenizer.txt', d / 'tokenizer.txt')
    (d / 'ckpt.tmp-abc123').mkdir()  # a refused run removes nothing, not even stale temporaries
    cases.append(Case("another run's tokenizer.txt", T + ['--run-dir', str(d), '--resume'], 1,
                      r'tokenizer\.txt: does not belong to the checkpoint \(checksum [0-9a-f]{16}, the checkpoint '
                      r'records [0-9a-f]{16}\)', check=unchanged(d)))
    d = copy()
    (d / 'tokenizer.txt').unlink()
    cases.append(Case('tokenizer.txt missing', T + ['--run-dir', str(d), '--resume'], 1,
                      r'tokenizer\.txt: cannot read', check=unchanged(d)))

    # The run directory's own files replaced by a FIFO (was a hang), a directory (was "basic_filebuf::
    # underflow error") or /dev/zero (was an OOM): refused naming the file, nothing written.
    def run_file(rel, make, kind):
        d = copy()
        p = d / rel
        p.unlink()
        make(p)
        cases.append(Case(f'{rel} {kind} on --resume', T + ['--run-dir', str(d), '--resume'], 1,
                          re.escape(rel) + rf': is a {kind}, not a regular file', check=unchanged(d)))

    run_file('tokenizer.txt', os.mkfifo, 'FIFO')
    run_file('history.tsv', os.mkfifo, 'FIFO')
    run_file('tokenizer.txt', lambda p: p.mkdir(), 'directory')
    run_file('history.tsv', lambda p: p.mkdir(), 'directory')
    run_file('history.tsv', lambda p: p.symlink_to('/dev/zero'), 'device')

    # --run-dir that cannot hold a run: named with the option.
    rfile = tmp / 'rfile'
    rfile.write_text('x')
    dangling = tmp / 'rdl'
    dangling.symlink_to(tmp / 'nowhere')
    for name, value, status, rx in [
            ('--run-dir a regular file', str(rfile), 1, r"--run-dir: '.*rfile': exists and is not a directory"),
            ("--run-dir ''", '', 2, r"--run-dir: '': "),
            ('--run-dir a dangling symlink', str(dangling), 1, r"--run-dir: '.*rdl': a dangling symbolic link"),
            ('--run-dir under a regular file', str(rfile / 'sub'), 1,
             r"--run-dir: '.*rfile/sub': cannot create the directory")]:
        cases.append(Case(name, T + ['--run-dir', value], status, rx,
                          check=lambda p: None if rfile.read_text() == 'x' else 'rfile changed'))

    # Allocation bombs: refused within the time limit naming the options (exit 2), nothing created.
    bombs = [('a 5e10-parameter model', opt(opt(opt(SMALL, '--width', '8192'), '--heads', '8'), '--layers', '64'),
              r'--width 8192 --layers 64 --heads 8 .*GB needed .*physical memory'),
             ('DEER with a 4096-wide state over 4096 x 4096 pieces',
              opt(opt(SMALL, '--context', '4096'), '--batch', '4096') + ['--deer-layers', '0', '--deer-state', '4096'],
              r'--context 4096 --batch 4096 .*--deer-state 4096 .*GB needed'),
             ('--vocab-size 1000000', opt(SMALL, '--vocab-size', '1000000'), r"--vocab-size.*'1000000'")]
    for name, args, rx in bombs:
        d = tmp / f'bomb{len(cases)}'
        cases.append(Case(name, [EXE] + args + ['--run-dir', str(d)], 2, rx, timeout=5,
                          check=lambda p, d=d: None if not d.exists() else f'{d} was created'))

    # Corpus files that are no fortunes text: refused naming the file; too little text says what was found.
    def corpus_with(name, make):
        c = tmp / f'corpus_{name}'
        c.mkdir()
        make(c / 'fortunes')
        return c

    bad_corpora = [
        ('a corpus file linked to /dev/zero (was an OOM)', corpus_with('zero', lambda p: p.symlink_to('/dev/zero')),
         SMALL, 1, r"--corpus-dir '.*corpus_zero': '.*fortunes' is a device, not a regular file"),
        ('a corpus FIFO (was a hang)', corpus_with('fifo', os.mkfifo), SMALL, 1,
         r"'.*corpus_fifo/fortunes' is a FIFO, not a regular file"),
        ('a 2 MiB line in a corpus file', corpus_with('long', lambda p: p.write_bytes(b'x' * (2 << 20))), SMALL, 1,
         r"'.*corpus_long/fortunes' line 1 is longer than 1048576 bytes"),
        ('a corpus of CRs only', corpus_with('cr', lambda p: p.write_bytes(b'ab\r' * 1000)), SMALL, 1,
         r"--corpus-dir '.*corpus_cr': 0 training and 1 held-out lines in the fortunes files \(need at least 100 "
         r"and 10\); install"),
        ('--max-corpus too small for the corpus', pathlib.Path('/usr/share/games/fortunes'),
         opt(SMALL, '--max-corpus', '1'), 1,
         r"0 training and 1 held-out lines .*--max-corpus 1 stopped the reading after \d+ bytes"),
        ("--corpus-dir ''", pathlib.Path(''), SMALL, 1, r"--corpus-dir '': empty; pass a directory"),
    ]
    for name, c, args, status, rx in bad_corpora:
        d = tmp / f'corpus_run{len(cases)}'
        cases.append(Case(name, [EXE] + args + ['--corpus-dir', '' if str(c) == '.' else str(c), '--run-dir', str(d)],
                          status, rx))

    # The corpus files changed under the same --corpus-dir since the checkpoint.
    corpus = tmp / 'corpus'
    shutil.copytree('/usr/share/games/fortunes', corpus, symlinks=True)
    d = tmp / 'corpus_run'
    run(SMALL + ['--corpus-dir', str(corpus), '--run-dir', str(d), '--stop-after', '2'])
    edit(corpus / 'fortunes', lambda b: b'A fortune added after the checkpoint.\n%\n' + b)
    cases.append(Case('corpus files changed since the checkpoint', T + ['--corpus-dir', str(corpus), '--run-dir', str(d),
                                                                         '--resume'], 1,
                      r'--corpus-dir .*corpus: the corpus read \(checksum [0-9a-f]{16}\) differs from the checkpoint',
                      check=unchanged(d)))

    # Accepted: intervals larger than --steps (once, at the end); a resume changing only session options.
    def finished(d):
        return lambda p: None if (d / 'ckpt' / 'manifest.txt').exists() and (d / 'report.md').exists() \
            else 'the run did not write its checkpoint and report'

    for flag in ('--ckpt-every', '--eval-every'):
        d = tmp / f'accept{flag}'
        cases.append(Case(f'{flag} larger than --steps', [EXE] + opt(SMALL, flag, '1000') + ['--run-dir', str(d)], 0,
                          timeout=60,
                          check=finished(d)))
    d = copy()
    ours, not_ours = ['ckpt.tmp-abc123', 'ckpt.old-XYZ789', 'history.tsv.tmp.AbC123'], \
        ['ckpt.tmp-keep', 'notes.tmp.abc123', 'history.tsv.tmp.abc1234', 'report.md.bak']
    for name in ours + not_ours:
        (d / name).mkdir() if name.startswith('ckpt.') else (d / name).write_text('x')

    def cleaned(p, d=d):
        problem = finished(d)(p)
        left = sorted(n for n in ours if (d / n).exists())
        gone = sorted(n for n in not_ours if not (d / n).exists())
        return problem or (f'stale temporaries left: {left}' if left else None) or \
            (f'files that are not ours removed: {gone}' if gone else None)

    cases.append(Case('--resume with session options changed (threads, intervals, prompts); stale temporaries removed',
                      opt(opt(opt(T, '--threads', '2'), '--eval-every', '1'), '--gen-pieces', '3')
                      + ['--prompt', 'A', '--run-dir', str(d), '--resume'], 0, timeout=60, check=cleaned))
    failures += run_cases(cases)

    # ---- kill-and-resume, one case per window, by fault injection ----
    ref_arrays, ref_history = arrays(ref / 'ckpt'), (ref / 'history.tsv').read_bytes()

    def check(ok, what):
        global failures
        print(('ok   ' if ok else 'FAIL ') + what)
        failures += not ok

    def same_as_ref(d, out, what):
        check(arrays(d / 'ckpt') == ref_arrays and len(ref_arrays) > 5,
              f'{what}: bit-identical parameters and optimizer state ({len(ref_arrays)} arrays)')
        check((d / 'history.tsv').read_bytes() == ref_history, f'{what}: the same history.tsv')
        check(results(out) == results(ref_out), f'{what}: the same bits/byte and generations')
        left = [p.name for p in d.iterdir() if '.tmp' in p.name or '.old-' in p.name]
        check(not left, f'{what}: no temporaries left ({left})')

    def fault(point):
        return {'EXPRGRAD_FAULT': point}

    # Window 1: the tokenizer is written, no checkpoint yet. --resume refuses and writes nothing; a fresh
    # run gives the uninterrupted result.
    d = tmp / 'kill_tok'
    run(SMALL + ['--run-dir', str(d)], env=fault('tokenizer_written'), status=FAULT_STATUS)
    check((d / 'tokenizer.txt').exists() and not (d / 'ckpt').exists(), 'killed after the tokenizer, before a checkpoint')
    before = snapshot(d)
    r = run(SMALL + ['--run-dir', str(d), '--resume'], status=1)
    check('no checkpoint in' in r.stderr and snapshot(d) == before, '--resume then refuses and writes nothing')
    same_as_ref(d, run(SMALL + ['--run-dir', str(d)]).stdout, 'fresh run after the kill')

    # Window 1b: a fresh run with another tokenizer killed over an older run's checkpoint: --resume of the
    # old run refuses to pair the new tokenizer with the old checkpoint.
    d = tmp / 'kill_tok_old'
    shutil.copytree(base, d)
    run(opt(SMALL, '--vocab-size', '300') + ['--run-dir', str(d)], env=fault('tokenizer_written'), status=FAULT_STATUS)
    r = run(SMALL + ['--run-dir', str(d), '--resume'], status=1)
    check('tokenizer.txt: does not belong to the checkpoint' in r.stderr,
          "a new tokenizer beside an old checkpoint is refused on --resume")

    # Window 2: the checkpoint is staged but not renamed (ckpt.tmp-* left; the step-2 checkpoint stands).
    d = tmp / 'kill_staged'
    shutil.copytree(base, d)
    run(SMALL + ['--run-dir', str(d), '--resume'], env=fault('ckpt_staged'), status=FAULT_STATUS)
    check(any(p.name.startswith('ckpt.tmp-') for p in d.iterdir()), 'killed with a staged ckpt.tmp-* left behind')
    out = run(SMALL + ['--run-dir', str(d), '--resume']).stdout
    check('removed 1 stale temporaries' in out and 'at step 2' in out, 'the resume removes it and continues at step 2')
    same_as_ref(d, out, 'resumed after a kill before the checkpoint rename')

    # Window 3: the new checkpoint is in place, the old one (under ckpt.tmp-*) not yet removed, history.tsv
    # not rewritten.
    d = tmp / 'kill_exchanged'
    shutil.copytree(base, d)
    run(SMALL + ['--run-dir', str(d), '--resume'], env=fault('ckpt_exchanged'), status=FAULT_STATUS)
    check(len((d / 'history.tsv').read_text().splitlines()) == 3, 'killed after the exchange: history.tsv still at step 2')
    out = run(SMALL + ['--run-dir', str(d), '--resume']).stdout
    check('history.tsv rewritten from the checkpoint' in out and 'at step 4' in out,
          'the resume repairs history.tsv from the checkpoint at step 4')
    same_as_ref(d, out, 'resumed after a kill after the checkpoint rename')

    # Window 4: the checkpoint saved (step 2 of a fresh run), history.tsv not written at all.
    d = tmp / 'kill_saved'
    run(SMALL + ['--run-dir', str(d)], env=fault('ckpt_saved'), status=FAULT_STATUS)
    check(not (d / 'history.tsv').exists() and (d / 'ckpt' / 'manifest.txt').exists(),
          'killed after the first checkpoint, before history.tsv')
    out = run(SMALL + ['--run-dir', str(d), '--resume']).stdout
    check('at step 2' in out, 'the resume continues at step 2')
    same_as_ref(d, out, 'resumed after a kill between the checkpoint and history.tsv')

if failures:
    sys.exit(f'{failures} check(s) failed')
print('all checks passed')
