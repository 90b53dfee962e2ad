// The EMO loss, forward + backward, at V ∈ {8192, 32768}, h = 512, 256 positions, float32, next to
// plain cross-entropy (for scale), OpenBLAS sgemm on EMO's one product shape (256×512 by 512×V), and
// the machine's measured FMA peak. EMO's counted work is that product, 2·N·V·h flops.
// The libtorch composition is in bench/peers/ (-Dpeers=true).
//
// The DSL definition (issue 17): emo_definition<mode1> compiled by value_and_grad (lowered to the fused kernel,
// ops/emo_lowering.hpp) and compiled as written (tensors::unlowered), against emo_loss_into, forward + backward.
//
// pair_definition: emo_loss_into and the lowered program called alternately, quartiles of the per-pair CPU-time
// ratio program/kernel.
//
// Run: build/bench/bench_emo --benchmark_min_time=0.5
// The definition rows alone, interleaved (docs/emo.md):
//   EXPRGRAD_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 build/bench/bench_emo --benchmark_filter='definition|emo_mode1/'
//     --benchmark_repetitions=7 --benchmark_enable_random_interleaving=true --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <cblas.h>

#include <algorithm>
#include <ctime>
#include <type_traits>
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

// emo_definition<mode1>(Z, Y, E) compiled by value_and_grad: lowered (the kernel as a node) or as written.
template <bool Lowered>
void definition_mode1(benchmark::State& st) {
    const auto V = static_cast<std::size_t>(st.range(0));
    inputs in(V);
    const xt::xarray<float> y = xt::cast<float>(in.targets);  // the definition's targets are numbers
    constexpr auto loss = ops::emo_definition<emo_objective::mode1>(tensor<0>, tensor<1>, tensor<2>);
    static_assert(!std::is_same_v<tensors::lowered_t<decltype(loss)>, std::remove_cv_t<decltype(loss)>>,
                  "the definition is lowered");
    auto prog = [&] {
        if constexpr (Lowered)
            return value_and_grad(loss, wrt<0>);
        else
            return value_and_grad(unlowered(loss), wrt<0>);
    }();
    for (auto _ : st) {
        const auto [value, grads] = prog(in.logits, y, in.e);
        benchmark::DoNotOptimize(value);
        benchmark::DoNotOptimize(std::get<0>(grads).data());
    }
    report(st, V);
}
void definition_lowered(benchmark::State& st) { definition_mode1<true>(st); }
void definition_unlowered(benchmark::State& st) { definition_mode1<false>(st); }

// emo_loss_into and the lowered definition's program called alternately, each call timed in thread CPU time: the
// quartiles of the per-pair ratio program/kernel (alternating single calls cancels a shared machine's load drift).
double thread_cpu_seconds() {
    timespec t{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}
void pair_definition(benchmark::State& st) {
    const auto V = static_cast<std::size_t>(st.range(0));
    inputs in(V);
    const xt::xarray<float> y = xt::cast<float>(in.targets);
    auto prog = value_and_grad(ops::emo_definition<emo_objective::mode1>(tensor<0>, tensor<1>, tensor<2>), wrt<0>);
    emo_result<float> r;
    std::vector<double> ratios;
    for (auto _ : st) {
        const double t0 = thread_cpu_seconds();
        emo_loss_into(r, in.logits, in.targets, in.e, {.objective = emo_objective::mode1});
        const double t1 = thread_cpu_seconds();
        const auto [value, grads] = prog(in.logits, y, in.e);
        const double t2 = thread_cpu_seconds();
        benchmark::DoNotOptimize(r.loss);
        benchmark::DoNotOptimize(value);
        benchmark::DoNotOptimize(std::get<0>(grads).data());
        ratios.push_back((t2 - t1) / (t1 - t0));
    }
    std::sort(ratios.begin(), ratios.end());
    st.counters["ratio_median"] = ratios[ratios.size() / 2];
    st.counters["ratio_q1"] = ratios[ratios.size() / 4];
    st.counters["ratio_q3"] = ratios[3 * ratios.size() / 4];
}

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
BENCHMARK(definition_lowered)->Arg(8192)->Unit(benchmark::kMillisecond);
BENCHMARK(definition_unlowered)->Arg(8192)->Unit(benchmark::kMillisecond);
BENCHMARK(pair_definition)->Arg(8192)->Iterations(60)->Unit(benchmark::kMillisecond);
BENCHMARK_MAIN();
