#!/bin/sh
# Builds the libFuzzer targets with clang++-14 (Debian: clang-14, libclang-rt-14-dev, libfuzzer-14-dev) and
# runs them for FUZZ_SECONDS (default 60) seconds of fuzzing in total: the vocabulary/encoding target gets half,
# the strict number parser of the command-line programs a quarter, the checkpoint reader a quarter. The three
# builds run at once, and the vocabulary fuzzer runs beside the other two (one after the other), so on two cores
# the wall time is about half of the sequential one with the same fuzzing per target. Exits non-zero on a crash,
# a sanitizer report or a build failure. Usage: tests/fuzz/run_fuzz.sh [WORK_DIR]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=${1:-$(mktemp -d "${TMPDIR:-/tmp}/exprgrad_fuzz.XXXXXX")}
seconds=${FUZZ_SECONDS:-60}
number_seconds=$((seconds / 4 > 0 ? seconds / 4 : 1))
# The checkpoint reader's share (its block at the end).
ckpt_seconds=$((seconds / 4 > 0 ? seconds / 4 : 1))
vocab_seconds=$((seconds - number_seconds - ckpt_seconds > 0 ? seconds - number_seconds - ckpt_seconds : 1))
cxx=${CXX_FUZZ:-clang++-14}
mkdir -p "$work/corpus"

if ! command -v "$cxx" >/dev/null 2>&1; then
    echo "run_fuzz.sh: $cxx not found (install clang-14 libclang-rt-14-dev libfuzzer-14-dev)" >&2
    exit 1
fi
# The build tree's config header is not needed by text/; -I the source include directory only. The file
# writer text/ uses (write_file_atomically) lives with the project's other writers in src/nn/file_io.cpp.
# A failure in the foreground must not leave a background build or fuzzer running. The PIDs are kept by hand:
# dash's $(jobs -p) runs in a subshell that has no jobs.
pids=""
trap 'kill $pids 2>/dev/null || true' EXIT
build() {  # build NAME COMPILER-ARGS...: in the background, its output in $work/NAME.build.log
    name=$1
    shift
    "$cxx" -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
        -I"$root/include" "$@" -o "$work/$name" >"$work/$name.build.log" 2>&1 &
}
# finish PID NAME WHAT: waits for a background job, shows its log, fails the script if the job failed.
finish() {
    if wait "$1"; then
        cat "$work/$2.log"
    else
        cat "$work/$2.log" >&2
        echo "run_fuzz.sh: $3 failed (log above)" >&2
        exit 1
    fi
}
build fuzz_vocab "$here/fuzz_vocab.cpp" "$root"/src/text/*.cpp "$root/src/nn/file_io.cpp"
vocab_build=$!
pids="$pids $vocab_build"
build fuzz_number -I"$root/src/tools" "$here/fuzz_number.cpp" "$root/src/tools/strict_number.cpp"
number_build=$!
pids="$pids $number_build"
build fuzz_checkpoint "$here/fuzz_checkpoint.cpp" "$root/src/nn/checkpoint.cpp" "$root/src/nn/file_io.cpp"
ckpt_build=$!
pids="$pids $ckpt_build"
finish "$vocab_build" fuzz_vocab.build "building fuzz_vocab"
finish "$number_build" fuzz_number.build "building fuzz_number"
finish "$ckpt_build" fuzz_checkpoint.build "building fuzz_checkpoint"

# Seeds: one small vocabulary per format, each followed by a text.
printf '\000exprgrad-unigram\tversion=1\tpieces=6\tutf8_boundaries=0\ncontrol\t0\t<pad>\ncontrol\t0\t<bos>\ncontrol\t0\t<eos>\ncontrol\t0\t<mask>\nnormal\t-1.5\tab\nbyte\t-9\t\\xff\n\377\000abcab\377' > "$work/corpus/native"
printf '\001<unk>\t0\n<s>\t0\n\342\226\201the\t-3.5\nth\t-4\n<0x41>\t-10\n\377\000the cat' > "$work/corpus/spm"
printf '\002\345\244\251 3 n\n\345\244\251\346\260\224 5\n\377\000\344\273\212\345\244\251\345\244\251\346\260\224' > "$work/corpus/jieba"

# Inputs that once crashed it (tests/fuzz/regressions) run first, as part of the corpus.
cp "$here"/regressions/* "$work/corpus/"

"$work/fuzz_vocab" -max_total_time="$vocab_seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    "$work/corpus" >"$work/fuzz_vocab.run.log" 2>&1 &
vocab_run=$!
pids="$pids $vocab_run"

# ---- The strict number parser (src/tools/strict_number.cpp): its own corpus directory and share of the time.
mkdir -p "$work/corpus_number"
# Seeds: byte 0 picks unsigned / signed / double / double with infinities.
printf '\00018446744073709551615' > "$work/corpus_number/u64_max"
printf '\0001.5e3' > "$work/corpus_number/u_exponent"
printf '\001-9223372036854775808' > "$work/corpus_number/i64_min"
printf '\002-2.5e-308' > "$work/corpus_number/double"
printf '\0031e309' > "$work/corpus_number/huge"
printf '\003-inf' > "$work/corpus_number/inf"
"$work/fuzz_number" -max_total_time="$number_seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    "$work/corpus_number"

# ---- The checkpoint reader (src/nn/checkpoint.cpp): manifest, .npy, meta escapes and whole directories,
# its own corpus directory and ckpt_seconds of the total.
mkdir -p "$work/corpus_ckpt"
# Seeds: byte 0 picks the reader (0 manifest, 1 float .npy, 2 double .npy, 3 meta value, 4 directory).
printf '\000exprgrad-checkpoint 1\ndtype float32\nparameter w [2]\noptimizer adam\noptimizer.step 0\nschedule cosine_warmup\nschedule.step 3\nmeta corpus_dir /a%%20b\nfile history.tsv\nchecksum params/w.npy 0123456789abcdef\nrng data 0000000000000001 0000000000000002 0000000000000003 0000000000000004\nend\n' > "$work/corpus_ckpt/manifest"
printf "\001\223NUMPY\001\000\166\000{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }%*s\n\000\000\200\077\000\000\000\100" 60 '' > "$work/corpus_ckpt/npy_f4"
printf "\002\223NUMPY\002\000\164\000\000\000{'descr': '<f8', 'fortran_order': True, 'shape': (1, 1), }%*s\n\000\000\000\000\000\000\360\077" 57 '' > "$work/corpus_ckpt/npy_f8"
printf '\003a%%20b%%25' > "$work/corpus_ckpt/meta"
printf "\004exprgrad-checkpoint 1\ndtype float32\nparameter w [2]\nchecksum params/w.npy 0000000000000000\nend\n\n--\n\223NUMPY\001\000\166\000{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }%*s\n\000\000\200\077\000\000\000\100" 60 '' > "$work/corpus_ckpt/dir"
"$work/fuzz_checkpoint" -max_total_time="$ckpt_seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    "$work/corpus_ckpt"
finish "$vocab_run" fuzz_vocab.run "fuzzing the vocabulary reader"
