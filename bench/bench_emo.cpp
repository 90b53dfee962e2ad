// The EMO loss, forward + backward, at V ∈ {8192, 32768}, h = 512, 256 positions, float32, next to
// plain cross-entropy (for scale), OpenBLAS sgemm on EMO's one product shape (256×512 by 512×V), and
// the machine's measured FMA peak. EMO's counted work is that product, 2·N·V·h flops.
// The libtorch composition is in bench/peers/ (-Dpeers=true).
//
// Run: build/bench/bench_emo --benchmark_min_time=0.5
#include <benchmark/benchmark.h>

#include <cblas.h>

#include <vector>

#include <xtensor/xarray.hpp>

#include <exprgrad/exprgrad.hpp>

#include "emo_inputs.hpp"
#include "peak.hpp"

using namespace exprgrad;

namespace {
constexpr std::size_t N = bench::emo_positions, H = bench::emo_hidden;
using inputs = bench::emo_inputs;

void report(benchmark::State& st, std::size_t V) {
    const double flops = 2.0 * N * static_cast<double>(V) * H;
    st.counters["GFLOP/s"] = benchmark::Counter(flops * static_cast<double>(st.iterations()),
                                                benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
}

void run_objective(benchmark::State& st, emo_objective o) {
    const auto V = static_cast<std::size_t>(st.range(0));
    inputs in(V);
    emo_result<float> r;
    for (auto _ : st) {
        emo_loss_into(r, in.logits, in.targets, in.e, {.objective = o});
        benchmark::DoNotOptimize(r.loss);
    }
    report(st, V);
}
void emo_ce(benchmark::State& st) { run_objective(st, emo_objective::ce); }
void emo_emo(benchmark::State& st) { run_objective(st, emo_objective::emo); }
void emo_mode1(benchmark::State& st) { run_objective(st, emo_objective::mode1); }
void emo_mode1_capped(benchmark::State& st) { run_objective(st, emo_objective::mode1_capped); }
void emo_mode2(benchmark::State& st) { run_objective(st, emo_objective::mode2); }

// Plain cross-entropy through the tensor layer, for scale.
void plain_cross_entropy(benchmark::State& st) {
    const auto V = static_cast<std::size_t>(st.range(0));
    inputs in(V);
    auto prog = value_and_grad(cross_entropy(tensor<0>, tensor<1>), wrt<0>);
    for (auto _ : st) benchmark::DoNotOptimize(prog(in.logits, in.targets).first);
}

// The one product EMO needs, alone: [N, H] · [V, H]ᵀ.
void sgemm_same_shape(benchmark::State& st) {
    const auto V = static_cast<std::size_t>(st.range(0));
    inputs in(V);
    std::vector<float> a(N * H, 0.5f), c(N * V);
    for (auto _ : st) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(N), static_cast<int>(V),
                    static_cast<int>(H), 1.0f, a.data(), static_cast<int>(H), in.e.data(), static_cast<int>(H), 0.0f,
                    c.data(), static_cast<int>(V));
        benchmark::DoNotOptimize(c.data());
    }
    report(st, V);
}

void fma_peak(benchmark::State& st) {
    double g = 0;
    for (auto _ : st) g = exprgrad::bench::fma_peak_gflops();
    st.counters["peak GFLOP/s (1 thread)"] = g;
}
}  // namespace

BENCHMARK(fma_peak)->Iterations(1)->Unit(benchmark::kMillisecond);
BENCHMARK(sgemm_same_shape)->Arg(8192)->Arg(32768)->Unit(benchmark::kMillisecond);
BENCHMARK(plain_cross_entropy)->Arg(8192)->Arg(32768)->Unit(benchmark::kMillisecond);
BENCHMARK(emo_ce)->Arg(8192)->Arg(32768)->Unit(benchmark::kMillisecond);
BENCHMARK(emo_emo)->Arg(8192)->Arg(32768)->Unit(benchmark::kMillisecond);
BENCHMARK(emo_mode1)->Arg(8192)->Arg(32768)->Unit(benchmark::kMillisecond);
BENCHMARK(emo_mode1_capped)->Arg(8192)->Arg(32768)->Unit(benchmark::kMillisecond);
BENCHMARK(emo_mode2)->Arg(8192)->Arg(32768)->Unit(benchmark::kMillisecond);
BENCHMARK_MAIN();
