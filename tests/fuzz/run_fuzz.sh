#!/bin/sh
# Builds the vocabulary/encoding libFuzzer target with clang++-14 (Debian: clang-14, libclang-rt-14-dev,
# libfuzzer-14-dev) and runs it for at most FUZZ_SECONDS (default 60) seconds. Exits non-zero on a crash,
# a sanitizer report or a build failure. Usage: tests/fuzz/run_fuzz.sh [WORK_DIR]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=${1:-$(mktemp -d "${TMPDIR:-/tmp}/exprgrad_fuzz.XXXXXX")}
seconds=${FUZZ_SECONDS:-60}
cxx=${CXX_FUZZ:-clang++-14}
mkdir -p "$work/corpus"

if ! command -v "$cxx" >/dev/null 2>&1; then
    echo "run_fuzz.sh: $cxx not found (install clang-14 libclang-rt-14-dev libfuzzer-14-dev)" >&2
    exit 1
fi
# The build tree's config header is not needed by text/; -I the source include directory only.
"$cxx" -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I"$root/include" "$here/fuzz_vocab.cpp" "$root"/src/text/*.cpp -o "$work/fuzz_vocab"

# Seeds: one small vocabulary per format, each followed by a text.
printf '\000exprgrad-unigram\tversion=1\tpieces=6\tutf8_boundaries=0\ncontrol\t0\t<pad>\ncontrol\t0\t<bos>\ncontrol\t0\t<eos>\ncontrol\t0\t<mask>\nnormal\t-1.5\tab\nbyte\t-9\t\\xff\n\377\000abcab\377' > "$work/corpus/native"
printf '\001<unk>\t0\n<s>\t0\n\342\226\201the\t-3.5\nth\t-4\n<0x41>\t-10\n\377\000the cat' > "$work/corpus/spm"
printf '\002\345\244\251 3 n\n\345\244\251\346\260\224 5\n\377\000\344\273\212\345\244\251\345\244\251\346\260\224' > "$work/corpus/jieba"

# Inputs that once crashed it (tests/fuzz/regressions) run first, as part of the corpus.
cp "$here"/regressions/* "$work/corpus/"

"$work/fuzz_vocab" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "$work/corpus"
