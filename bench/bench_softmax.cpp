// The tensor layer's softmax family, forward + backward through value_and_grad, float32, 256 rows of V = 1024
// or 8192: softmax and log_softmax over the last axis and over axis 0 (a strided line), logsumexp over the last
// axis and over axis 0, and cross-entropy. Since issue #15 every one of them runs the row kernels of
// kernels/softmax_rows.hpp (before, softmax and log_softmax were scalar std::exp loops and the strided
// logsumexp too). Items per second count the logits.
//
// Run: build/bench/bench_softmax --benchmark_min_time=0.2   (table: docs/benchmarks.md)
#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <random>

#include <xtensor/xarray.hpp>

#include <exprgrad/exprgrad.hpp>

using namespace exprgrad;

namespace {

constexpr std::size_t rows_n = 256;
constexpr auto X = tensor<0>;
constexpr auto Y = tensor<1>;

xt::xarray<float> random_matrix(std::size_t r, std::size_t c, unsigned seed) {
    std::mt19937 g(seed);
    std::uniform_real_distribution<float> u(-4.0f, 4.0f);
    xt::xarray<float> a = xt::xarray<float>::from_shape({r, c});
    for (auto& v : a) v = u(g);
    return a;
}

template <class E, class... Rest>
void run(benchmark::State& st, E e, const xt::xarray<float>& a, const Rest&... rest) {
    auto prog = value_and_grad(e, wrt<0>);
    for (auto _ : st) benchmark::DoNotOptimize(prog(a, rest...).first);
    st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations()) * static_cast<std::int64_t>(a.size()));
}

std::size_t width(const benchmark::State& st) { return static_cast<std::size_t>(st.range(0)); }

void softmax_last(benchmark::State& st) {
    run(st, sum(softmax(X) * Y), random_matrix(rows_n, width(st), 1), random_matrix(rows_n, width(st), 2));
}
void log_softmax_last(benchmark::State& st) {
    run(st, sum(log_softmax(X) * Y), random_matrix(rows_n, width(st), 1), random_matrix(rows_n, width(st), 2));
}
void softmax_axis0(benchmark::State& st) {
    run(st, sum(softmax<0>(X) * Y), random_matrix(rows_n, width(st), 1), random_matrix(rows_n, width(st), 2));
}
void log_softmax_axis0(benchmark::State& st) {
    run(st, sum(log_softmax<0>(X) * Y), random_matrix(rows_n, width(st), 1), random_matrix(rows_n, width(st), 2));
}
void logsumexp_last(benchmark::State& st) { run(st, sum(logsumexp<1>(X)), random_matrix(rows_n, width(st), 1)); }
void logsumexp_axis0(benchmark::State& st) { run(st, sum(logsumexp<0>(X)), random_matrix(rows_n, width(st), 1)); }
void cross_entropy_rows(benchmark::State& st) {
    const std::size_t V = width(st);
    xt::xarray<long> t = xt::xarray<long>::from_shape({rows_n});
    std::mt19937 g(3);
    for (auto& v : t) v = static_cast<long>(g() % V);
    run(st, cross_entropy(X, Y), random_matrix(rows_n, V, 1), t);
}

}  // namespace

BENCHMARK(softmax_last)->Arg(1024)->Arg(8192)->Unit(benchmark::kMicrosecond);
BENCHMARK(log_softmax_last)->Arg(1024)->Arg(8192)->Unit(benchmark::kMicrosecond);
BENCHMARK(softmax_axis0)->Arg(1024)->Unit(benchmark::kMicrosecond);
BENCHMARK(log_softmax_axis0)->Arg(1024)->Unit(benchmark::kMicrosecond);
BENCHMARK(logsumexp_last)->Arg(1024)->Arg(8192)->Unit(benchmark::kMicrosecond);
BENCHMARK(logsumexp_axis0)->Arg(1024)->Unit(benchmark::kMicrosecond);
BENCHMARK(cross_entropy_rows)->Arg(1024)->Arg(8192)->Unit(benchmark::kMicrosecond);
BENCHMARK_MAIN();
