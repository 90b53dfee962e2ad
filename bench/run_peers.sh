#!/usr/bin/env bash
# The side-by-side comparison against the Debian-packaged peers (docs/benchmarks_ad.md):
#   bench_ad         primal, hand-written gradient and exprgrad on the ADBenchmark functions
#   bench_ad_peers   ADOL-C, Sacado Rad and Sacado DFad on the same functions, sizes and inputs
#   bench_mlp_torch  an MLP's forward + backward, exprgrad against libtorch
# Installs the peer packages when missing (needs root), configures a separate build directory with
# -Dpeers=true (never touches build/), builds the three programs one at a time (the libtorch translation
# unit alone takes ~1.5 GB), runs them on one thread, and writes their outputs (text and JSON) and the
# ratio tables to the output directory.
#
# Usage: bench/run_peers.sh [OUTPUT_DIR]          (default: build-peers/results)
#   BUILD_DIR=build-peers   MIN_TIME=0.1 (seconds, --benchmark_min_time)   FILTER=regex (all programs)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=${BUILD_DIR:-build-peers}
out=${1:-$build/results}
min_time=${MIN_TIME:-0.1}
filter=${FILTER:-.}

packages=(libadolc-dev libtrilinos-sacado-dev libtrilinos-kokkos-dev libtrilinos-teuchos-dev libopenmpi-dev
          libtorch-dev libbenchmark-dev libopenblas-dev python3)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "run_peers.sh: missing packages ${missing[*]}; run as root to install them" >&2
        exit 1
    fi
    echo "run_peers.sh: installing ${missing[*]}"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

if [[ -f $build/build.ninja ]]; then
    meson configure "$build" -Dpeers=true
else
    meson setup "$build" -Dpeers=true -Dtests=false
fi
programs=(bench/bench_ad bench/peers/bench_ad_peers bench/peers/bench_mlp_torch)
for target in "${programs[@]}"; do
    meson compile -C "$build" "$target"
done

# One thread everywhere: exprgrad's pool, OpenBLAS (the primal's GEMM, exprgrad's and libtorch's),
# OpenMP (libtorch). The programs also set these themselves where they can.
export EXPRGRAD_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
mkdir -p "$out"
out=$(cd "$out" && pwd)
{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$root" diff --quiet 2>/dev/null || echo ' (with local changes)')"
    lscpu | grep -E '^(Model name|CPU\(s\)|Thread|L2|L3)' || true
    echo "compiler: $(c++ --version | head -1)"
    dpkg-query -W -f='${Package} ${Version}\n' libadolc-dev libtrilinos-sacado-dev libtorch-dev libopenblas0-pthread libbenchmark-dev 2>/dev/null || true
    echo "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$out/machine.txt"
cat "$out/machine.txt"

for target in "${programs[@]}"; do
    name=$(basename "$target")
    echo "== $name"
    # ADOL-C may write tape files into the working directory: run from the output directory.
    (cd "$out" && "$root/$build/$target" --benchmark_min_time="$min_time" --benchmark_filter="$filter" \
        --benchmark_out="$out/$name.json" --benchmark_out_format=json) 2>&1 | tee "$out/$name.txt"
done
echo "load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/machine.txt"

python3 "$root/bench/peers/tables.py" "$out" > "$out/tables.md"
echo "== tables: $out/tables.md"
cat "$out/tables.md"
