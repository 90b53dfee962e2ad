#!/usr/bin/env bash
# exprgrad setup: installs the Debian 12 packages that are missing, configures and builds.
#
#   ./setup.sh main    install, build, run the main job: examples/tiny_lm (report in build/tiny_lm_run)
#   ./setup.sh test    install, build, run the whole test suite, then the unit tests again under
#                      AddressSanitizer + UndefinedBehaviorSanitizer
#   ./setup.sh build   install and build only
set -euo pipefail
cd "$(dirname "$0")"

packages=(meson ninja-build g++ pkg-config python3 libboost-dev libxtensor-dev libxsimd-dev xtl-dev doctest-dev
          libbenchmark-dev libopenblas-dev libxtensor-blas-dev libcli11-dev fortunes fortunes-zh
          libopenmpi-dev openmpi-bin)  # Open MPI: data-parallel training (docs/distributed.md)
fuzz_packages=(clang-14 libclang-rt-14-dev libfuzzer-14-dev)

install_missing() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if ((${#missing[@]})); then
        echo "setup: installing ${missing[*]}"
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -q
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
}

configure() {  # configure BUILD_DIR [meson options...]
    local dir=$1
    shift
    if [ -f "$dir/build.ninja" ]; then
        meson configure "$dir" "$@" >/dev/null
    else
        meson setup "$dir" "$@"
    fi
}

jobs=$(nproc)

case "${1:-build}" in
    main)
        install_missing "${packages[@]}"
        configure build
        meson compile -C build -j "$jobs" tiny_lm
        # OpenBLAS falls back to its SSE3 kernels on CPU models it does not know (docs/tensor.md, "GEMM back
        # end"); it reads OPENBLAS_CORETYPE only when it loads, so the choice is made here.
        core=$(python3 bench/openblas_core.py || true)
        if [ -n "$core" ]; then
            echo "setup: OpenBLAS does not know this CPU; OPENBLAS_CORETYPE=$core"
            export OPENBLAS_CORETYPE=$core
        fi
        exec build/examples/tiny_lm --run-dir build/tiny_lm_run --threads "$jobs"
        ;;
    test)
        install_missing "${packages[@]}"
        # Without the benchmarks (-Dbench=false): they are no tests, and compiling them took ~90 s of the CI
        # budget (30 minutes, at 28 on 7 Dec 2026). `./setup.sh build` and `meson setup build` build them.
        configure build -Dbench=false
        start=$SECONDS
        meson compile -C build -j "$jobs"
        meson test -C build --num-processes "$jobs" --print-errorlogs | tee build/test-summary.log
        echo "setup: release build and suite took $((SECONDS - start)) s"
        # The unit tests again with ASan + UBSan at -Og (examples, tools and benchmarks excluded). -Og, not -O1:
        # half the compile time of our template-heavy tests (tests/ops/test_deer.cpp 88 -> 45 s CPU) for tests
        # that run 1.2-1.4 times longer (test_attention), and -O0 made them run 4 times longer. Two
        # instrumentations are off for the CI budget: ASan's use-after-scope (a third of the compile
        # time of our template-heavy tests, tests/ops/test_attention_node.cpp 52 -> 35 s CPU) and UBSan's
        # pointer-overflow (52 -> 45 s); overflows of heap, stack and globals, use after free, leaks and the
        # other UBSan checks stay on. (Checking through calls instead cut compile time by 20% but made the
        # tests run 2-6 times longer.)
        start=$SECONDS
        configure build-sanitize -Dbuildtype=plain \
            "-Dcpp_args=['-Og', '-fno-sanitize-address-use-after-scope', '-fno-sanitize=pointer-overflow']" \
            -Db_sanitize=address,undefined \
            -Db_lundef=false -Dbench=false
        meson compile -C build-sanitize -j "$jobs" $(meson introspect build-sanitize --targets |
            python3 -c 'import json,sys; print(" ".join(t["name"] for t in json.load(sys.stdin) if t["name"].startswith("test_")))')
        UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
            meson test -C build-sanitize --suite unit --num-processes "$jobs" --print-errorlogs |
            tee build-sanitize/test-summary.log
        echo "setup: sanitizer build and unit tests took $((SECONDS - start)) s"
        # libFuzzer on vocabulary parsing and encoding, at most 60 seconds.
        install_missing "${fuzz_packages[@]}"
        start=$SECONDS
        FUZZ_SECONDS=60 tests/fuzz/run_fuzz.sh build-fuzz
        echo "setup: fuzzing took $((SECONDS - start)) s"
        # One closing line over both runs (meson's own summaries are above).
        ok=$(cat build/test-summary.log build-sanitize/test-summary.log | awk '/^Ok:/ {s += $2} END {print s + 0}')
        bad=$(cat build/test-summary.log build-sanitize/test-summary.log | awk '/^Fail:|^Timeout:/ {s += $2} END {print s + 0}')
        echo "tests: $ok passed, $bad failed"
        [ "$bad" -eq 0 ]
        ;;
    build)
        install_missing "${packages[@]}"
        configure build -Dbench=true
        meson compile -C build -j "$jobs"
        ;;
    *)
        echo "usage: $0 [main|test|build]" >&2
        exit 2
        ;;
esac
