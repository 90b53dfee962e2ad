#!/usr/bin/env python3
"""Runs the built `exprgrad tok` on small vocabularies and checks the command-line contract
(docs/tokenizer.md): the piece format, one line out per line in, decode inverting encode, --count,
score's logZ<TAB>entropy, the compatible modes, and errors naming FILE:LINE with exit status 1.

Usage: tok_cli_test.py path/to/exprgrad

Expected values: the notes' table T2 (../shared/research/articles_part2.md §2.7: "ABC" with A=1.0 B=1.2
C=1.5 AB=1.6 BC=1.7 ABC=1.8, log Z at alpha=1 is 4.425740 and the entropy 1.200679).
"""
import math
import os
import subprocess
import sys
import tempfile

failures = []


def run(exe, args, stdin=b""):
    p = subprocess.run([exe, "tok", *args], input=stdin, capture_output=True, timeout=120)
    return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")


def expect(name, got, want):
    if got != want:
        failures.append(f"{name}: got {got!r}, want {want!r}")


def native(pieces):
    lines = ["exprgrad-unigram\tversion=1\tpieces=%d\tutf8_boundaries=0" % (len(pieces) + 4)]
    lines += ["control\t0\t<pad>", "control\t0\t<bos>", "control\t0\t<eos>", "control\t0\t<mask>"]
    lines += ["normal\t%r\t%s" % (score, text) for text, score in pieces]
    return "\n".join(lines) + "\n"


def main():
    exe = sys.argv[1]
    with tempfile.TemporaryDirectory() as d:
        t2 = os.path.join(d, "t2.vocab")
        with open(t2, "w", encoding="utf-8") as f:
            f.write(native([("A", 1.0), ("B", 1.2), ("C", 1.5), ("AB", 1.6), ("BC", 1.7), ("ABC", 1.8),
                            (" x", -1.0), ("x", -2.0)]))
        rc, out, err = run(exe, ["encode", "--vocab", t2], b"ABC\nAB C\n\n x\t\\\xff\n")
        expect("encode rc", (rc, err), (0, ""))
        expect("encode", out.decode("utf-8", "surrogateescape").split("\n"),
               ["A B C", "A B \u2581 C", "", "\u2581x \\t \\\\ <0xFF>", ""])
        rc, back, _ = run(exe, ["decode"], out)
        expect("decode(encode)", (rc, back), (0, b"ABC\nAB C\n\n x\t\\\xff\n"))

        rc, out, err = run(exe, ["score", "--vocab", t2, "--alpha", "1"], b"ABC\n")
        log_z, entropy = (float(v) for v in out.decode().strip().split("\t"))
        expect("score rc", (rc, err), (0, ""))
        expect("score logZ", round(log_z, 6), 4.425740)
        expect("score entropy", round(entropy, 6), 1.200679)
        expect("score digits", len(out.decode().split("\t")[0].lstrip("-").replace(".", "")) >= 16, True)

        rc, out, err = run(exe, ["sample", "--vocab", t2, "--alpha", "0.5", "--seed", "7", "--count", "3"],
                           b"ABC\nABCABC\n")
        lines = out.decode().splitlines()
        expect("sample rc", (rc, err), (0, ""))
        expect("sample count", len(lines), 6)
        expect("sample texts", [l.replace(" ", "") for l in lines], ["ABC"] * 3 + ["ABCABC"] * 3)
        rc2, out2, _ = run(exe, ["sample", "--vocab", t2, "--alpha", "0.5", "--seed", "7", "--count", "3"],
                           b"ABC\nABCABC\n")
        expect("sample reproducible", out2, out)
        rc, out, _ = run(exe, ["sample", "--vocab", t2, "--alpha", "-1", "--seed", "1"], b"ABC\n")
        expect("sample alpha<0 is Viterbi", out, b"A B C\n")  # positive scores: more pieces score higher

        # Notes T1: "watching" has exactly 3 segmentations into {watch, ing, wat, ching, w, atching} (log p = -1
        # each); byte-fallback edges must not add any (they exist only for texts the pieces cannot segment).
        t1 = os.path.join(d, "t1.vocab")
        with open(t1, "w", encoding="utf-8") as f:
            f.write(native([("watch", -1.0), ("ing", -1.0), ("wat", -1.0), ("ching", -1.0), ("w", -1.0),
                            ("atching", -1.0)]))
        for alpha, want_log_z in [("0", math.log(3)), ("1", math.log(3) - 2)]:
            rc, out, err = run(exe, ["score", "--vocab", t1, "--alpha", alpha], b"watching\n")
            log_z, entropy = (float(v) for v in out.decode().strip().split("\t"))
            expect("T1 score rc alpha=" + alpha, (rc, err), (0, ""))
            expect("T1 logZ alpha=" + alpha, abs(log_z - want_log_z) < 1e-12, True)
            expect("T1 entropy alpha=" + alpha, abs(entropy - math.log(3)) < 1e-12, True)
            rc, out, err = run(exe, ["sample", "--vocab", t1, "--alpha", alpha, "--seed", "5", "--count", "3000"],
                               b"watching\n")
            seen = {}
            for line in out.decode().splitlines():
                seen[line] = seen.get(line, 0) + 1
            expect("T1 samples alpha=" + alpha, sorted(seen), ["w atching", "wat ching", "watch ing"])
            # 1000 expected each; 5 standard deviations of a binomial(3000, 1/3) are 129.
            expect("T1 uniform alpha=" + alpha, all(abs(c - 1000) < 129 for c in seen.values()), True)
        # A text the pieces cannot segment still encodes, through fallback bytes where no piece starts.
        rc, out, _ = run(exe, ["encode", "--vocab", t1], b"watchxing\n")
        expect("T1 fallback", out, b"watch x ing\n")
        # Notes T2 at alpha = 40 on "ABC"x200: the entropy is 1.88756762043476465e-07 (60-digit value from
        # tests/tools/tok_entropy_exact.py); log Z - alpha*E[score] printed 0.
        rc, out, err = run(exe, ["score", "--vocab", t2, "--alpha", "40"], b"ABC" * 200 + b"\n")
        entropy = float(out.decode().strip().split("\t")[1])
        expect("T2 x200 entropy", abs(entropy - 1.88756762043476465e-07) < 1e-12 * 1.9e-7, True)

        # jieba: ties go to the longer word on the left; unknown characters are words of their own.
        jb = os.path.join(d, "dict.txt")
        with open(jb, "w", encoding="utf-8") as f:
            f.write("A 2\nAB 2\nBC 2\nC 2\n")
        rc, out, _ = run(exe, ["encode", "--vocab", jb, "--vocab-format", "jieba"], b"ABC\nXYAB\n")
        expect("jieba", out, b"AB C\nX Y AB\n")
        with open(jb, "wb") as f:  # CRLF, as jieba reads it (it strips each line)
            f.write(b"A 2\r\nAB 2\r\nBC 2\r\nC 2\r\n")
        rc, out, err = run(exe, ["encode", "--vocab", jb, "--vocab-format", "jieba"], b"ABC\nXYAB\n")
        expect("jieba CRLF", (rc, out, err), (0, b"AB C\nX Y AB\n", ""))
        with open(jb, "wb") as f:
            f.write(b"A 0\nB 0\n")
        rc, out, err = run(exe, ["encode", "--vocab", jb, "--vocab-format", "jieba"], b"AB\n")
        expect("jieba total 0", (rc, (jb + ":2: the total frequency") in err), (1, True))
        # spm: U+2581 pieces match spaces; a run of unknown characters prints as one piece.
        spm = os.path.join(d, "m.vocab")
        with open(spm, "w", encoding="utf-8") as f:
            f.write("<unk>\t0\n<s>\t0\n</s>\t0\n\u2581the\t-1\nt\t-2\nh\t-2\ne\t-2\n\u2581\t-3\n")
        rc, out, _ = run(exe, ["encode", "--vocab", spm, "--vocab-format", "spm"], "the \u00e9\u00e9 the\n".encode())
        expect("spm", out.decode(), "t h e \u2581 \u00e9\u00e9 \u2581the\n")

        # Errors: FILE:LINE: problem, exit status 1; bad lines do not stop the others.
        bad = os.path.join(d, "bad.vocab")
        with open(bad, "w", encoding="utf-8") as f:
            f.write(native([("ab", -1.0)]).replace("normal\t-1.0", "normal\tx"))
        rc, out, err = run(exe, ["encode", "--vocab", bad], b"ab\n")
        expect("bad vocab rc", rc, 1)
        expect("bad vocab message", (bad + ":6:") in err and "not a finite number" in err, True)
        rc, out, err = run(exe, ["decode"], b"a\\q\nb\n")
        expect("bad decode line", (rc, out, "line 1" in err), (1, b"b\n", True))
        rc, out, err = run(exe, ["score", "--vocab", t2, "--alpha", "-1"], b"ABC\n")
        expect("score alpha<0", rc, 2)  # a bad option value is a usage error (exit 2)

        # train: a vocabulary of the requested size, written atomically, readable by encode.
        corpus = os.path.join(d, "corpus.txt")
        with open(corpus, "w", encoding="utf-8") as f:
            for i in range(300):
                f.write("the quick brown fox jumps over the lazy dog %d times\n" % (i % 17))
        out_vocab = os.path.join(d, "trained.vocab")
        rc, out, err = run(exe, ["train", "--vocab-size", "300", "-q", "-o", out_vocab, corpus])
        expect("train rc", (rc, err), (0, ""))
        with open(out_vocab, encoding="utf-8") as f:
            size = int(f.readline().split("\t")[2].split("=")[1])
        expect("train size", 260 < size <= 300, True)  # a tiny corpus may not fill 300 useful pieces
        rc, out, _ = run(exe, ["encode", "--vocab", out_vocab], b"the lazy dog\n")
        rc, back, _ = run(exe, ["decode"], out)
        expect("trained round trip", back, b"the lazy dog\n")

    for f in failures:
        print("FAIL", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
