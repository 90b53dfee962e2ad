// The functions of the FastAD / ADBenchmark suite (research notes anchors_autodiff.md §2.1), in
// double, side by side in one run: the primal (plain C++, BLAS where it multiplies matrices), a
// hand-written gradient, and exprgrad's compiled value_and_grad (built once, outside the timed loop,
// as ADBenchmark does for FastAD). Every gradient is validated against the hand-written one before
// it is timed. The definitions, inputs and size grids are in ad_functions.hpp, shared with the peers
// (ADOL-C, Sacado: peers/bench_ad_peers.cpp, built with -Dpeers=true; bench/run_peers.sh runs both).
// stochastic_volatility's AR(1) recurrence is the ops::linear_recurrence node.
//
// Run: build/bench/bench_ad --benchmark_min_time=0.2
// The ratios gradient / primal at the largest sizes are what docs/benchmarks.md records.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <xtensor/xadapt.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xbuilder.hpp>

#include <exprgrad/exprgrad.hpp>

#include "ad_functions.hpp"

using namespace exprgrad;
using namespace exprgrad::ops;
using namespace ad_bench;

namespace {

constexpr auto X = tensor<0>;
constexpr auto Y = tensor<1>;
constexpr auto x = var<0>;

constexpr auto normal_expr =
    sum(map(-c<1, 2> * square((x - fc<mu>) / fc<sigma>) - log(fc<sigma>) - c<1, 2> * log(2_c * constants::pi), X));

template <class Primal>
void run_primal(benchmark::State& st, Primal f, input_range r) {
    const auto n = static_cast<std::size_t>(st.range(0));
    const auto a = vector_input(n, r);
    for (auto _ : st) benchmark::DoNotOptimize(f(a.data(), n));
}
template <class Hand>
void run_hand(benchmark::State& st, Hand f, input_range r) {
    const auto n = static_cast<std::size_t>(st.range(0));
    const auto a = vector_input(n, r);
    std::vector<double> g(n);
    for (auto _ : st) {
        benchmark::DoNotOptimize(f(a.data(), g.data(), n));
        benchmark::ClobberMemory();
    }
}
template <class E, class Hand>
void run_exprgrad(benchmark::State& st, E e, Hand hand, const char* name, input_range r) {
    const auto n = static_cast<std::size_t>(st.range(0));
    const auto a = vector_input(n, r);
    auto prog = value_and_grad(e, wrt<0>);
    validate(name, std::get<0>(prog(a).second), hand_gradient(hand, a.data(), n));
    for (auto _ : st) {
        auto q = prog(a);
        benchmark::DoNotOptimize(q.first);
        benchmark::DoNotOptimize(std::get<0>(q.second).data());
    }
}

#define VECTOR_BENCH(fn, expr)                                                                        \
    void fn##_primal(benchmark::State& st) { run_primal(st, primal_##fn, fn##_inputs); }              \
    void fn##_hand(benchmark::State& st) { run_hand(st, hand_##fn, fn##_inputs); }                    \
    void fn##_exprgrad(benchmark::State& st) { run_exprgrad(st, expr, hand_##fn, #fn, fn##_inputs); } \
    BENCHMARK(fn##_primal)->ArgsProduct({vector_sizes});                                              \
    BENCHMARK(fn##_hand)->ArgsProduct({vector_sizes});                                                \
    BENCHMARK(fn##_exprgrad)->ArgsProduct({vector_sizes});

// The stricter baseline: the same reductions with eight accumulators (ad_functions.hpp).
template <class Primal>
void run_primal8(benchmark::State& st, Primal f8, Primal f, const char* name, input_range r) {
    const auto n = static_cast<std::size_t>(st.range(0));
    const auto a = vector_input(n, r);
    const double want = f(a.data(), n), got = f8(a.data(), n);
    if (!(std::abs(got - want) <= 1e-12 * std::max(1.0, std::abs(want)))) {
        std::fprintf(stderr, "%s: the 8-accumulator primal gives %.17g, the plain loop %.17g\n", name, got, want);
        std::exit(1);
    }
    for (auto _ : st) benchmark::DoNotOptimize(f8(a.data(), n));
}
void sum_primal8(benchmark::State& st) { run_primal8(st, primal8_sum, primal_sum, "sum", sum_inputs); }
void prod_primal8(benchmark::State& st) { run_primal8(st, primal8_prod, primal_prod, "prod", prod_inputs); }
void normal_primal8(benchmark::State& st) { run_primal8(st, primal8_normal, primal_normal, "normal", normal_inputs); }
BENCHMARK(sum_primal8)->ArgsProduct({vector_sizes});
BENCHMARK(prod_primal8)->ArgsProduct({vector_sizes});
BENCHMARK(normal_primal8)->ArgsProduct({vector_sizes});

VECTOR_BENCH(sum, sum(X))
VECTOR_BENCH(prod, prod(X))
VECTOR_BENCH(lse, logsumexp(X))
VECTOR_BENCH(normal, normal_expr)

// ---------------------------------------------------------------------------------------------
// matrix_product: sum of the entries of A·B, A and B K×K

void mm_primal(benchmark::State& st) {
    const auto k = static_cast<std::size_t>(st.range(0));
    const matrix_inputs in(k);
    std::vector<double> c(k * k);
    for (auto _ : st) benchmark::DoNotOptimize(primal_mm(in.a.data(), in.b.data(), c.data(), k));
}
void mm_hand(benchmark::State& st) {
    const auto k = static_cast<std::size_t>(st.range(0));
    const matrix_inputs in(k);
    std::vector<double> c(k * k), da(k * k), db(k * k);
    for (auto _ : st) {
        benchmark::DoNotOptimize(primal_mm(in.a.data(), in.b.data(), c.data(), k));
        mm_hand_grads(in.a.data(), in.b.data(), da.data(), db.data(), k);
        benchmark::ClobberMemory();
    }
}
void mm_exprgrad(benchmark::State& st) {
    const auto k = static_cast<std::size_t>(st.range(0));
    const matrix_inputs in(k);
    auto prog = value_and_grad(sum(matmul(X, Y)), wrt<0, 1>);
    std::vector<double> da(k * k), db(k * k);
    mm_hand_grads(in.a.data(), in.b.data(), da.data(), db.data(), k);
    auto r = prog(in.a, in.b);
    validate("matrix_product dA", std::get<0>(r.second), da);
    validate("matrix_product dB", std::get<1>(r.second), db);
    for (auto _ : st) {
        auto q = prog(in.a, in.b);
        benchmark::DoNotOptimize(q.first);
    }
}
BENCHMARK(mm_primal)->ArgsProduct({matrix_sizes});
BENCHMARK(mm_hand)->ArgsProduct({matrix_sizes});
BENCHMARK(mm_exprgrad)->ArgsProduct({matrix_sizes});

// ---------------------------------------------------------------------------------------------
// regression (see ad_functions.hpp)

constexpr auto B = tensor<2>;
constexpr auto S = tensor<3>;
constexpr auto W = tensor<4>;
// tensor<0> = X, tensor<1> = y, tensor<2> = b, tensor<3> = s, tensor<4> = w
constexpr auto regression_expr =
    sum(map(-c<1, 2> * square((var<0> - var<1>) / var<2>) - log(var<2>), Y, matmul(X, W) + B, S)) +
    sum(-c<1, 2> * square(W)) - c<1, 2> * square(B);

void regression_primal_bench(benchmark::State& st) {
    regression_data d(static_cast<std::size_t>(st.range(0)));
    std::vector<double> mu_buf(rows);
    for (auto _ : st) benchmark::DoNotOptimize(regression_primal(d, mu_buf));
}
void regression_hand_bench(benchmark::State& st) {
    const auto p = static_cast<std::size_t>(st.range(0));
    regression_data d(p);
    std::vector<double> mu_buf(rows), r(rows), g(p + 2);
    for (auto _ : st) {
        regression_hand(d, mu_buf, r, g);
        benchmark::ClobberMemory();
    }
}
void regression_exprgrad_bench(benchmark::State& st) {
    const auto p = static_cast<std::size_t>(st.range(0));
    regression_data d(p);
    auto prog = value_and_grad(regression_expr, wrt<4, 2, 3>);
    std::vector<double> mu_buf(rows), r(rows), g(p + 2);
    regression_hand(d, mu_buf, r, g);
    auto res = prog(d.xm, d.y, d.b, d.s, d.w);
    validate("regression dw", std::get<0>(res.second),
             std::vector<double>(g.begin(), g.begin() + static_cast<long>(p)));
    validate("regression db", std::get<1>(res.second), {g[p]});
    validate("regression ds", std::get<2>(res.second), {g[p + 1]});
    for (auto _ : st) {
        auto q = prog(d.xm, d.y, d.b, d.s, d.w);
        benchmark::DoNotOptimize(q.first);
    }
}
BENCHMARK(regression_primal_bench)->ArgsProduct({regression_sizes});
BENCHMARK(regression_hand_bench)->ArgsProduct({regression_sizes});
BENCHMARK(regression_exprgrad_bench)->ArgsProduct({regression_sizes});

// ---------------------------------------------------------------------------------------------
// stochastic_volatility (see ad_functions.hpp): h is the linear recurrence h_t = φ h_{t−1} + c_t with
// c_0 = μ + σ h_std_0 r and c_t = (1 − φ) μ + σ h_std_t, r = 1/√(1 − φ²) computed once (a 0-d map);
// `first` (1 at t = 0, else 0) is data that selects the first step's offset inside one elementwise map.
// tensor<0> = h_std [T], tensor<1> = φ, tensor<2> = σ, tensor<3> = μ, tensor<4> = y [T], tensor<5> = first [T]
constexpr auto sv_r = map(1_c / sqrt(1_c - square(var<0>)), tensor<1>);
constexpr auto sv_offsets =
    map(var<3> * var<0> * (1_c + var<1> * (var<5> - 1_c)) + var<4> * (1_c - var<2> * (1_c - var<1>)), tensor<0>,
        tensor<5>, tensor<1>, tensor<2>, tensor<3>, sv_r);
constexpr auto sv_h = ops::linear_recurrence(tensor<1>, sv_offsets);
constexpr auto sv_expr =
    sum(map(-c<1, 2> * square(var<0>) * exp(-var<1>) - c<1, 2> * var<1> - c<1, 2> * square(var<2>), tensor<4>, sv_h,
            tensor<0>)) +
    map(-log(5_c * (1_c + square(var<0> / 5_c))) - log(10_c * (1_c + square(var<1> / 10_c))) - log(2_c), tensor<2>,
        tensor<3>);

void sv_primal_bench(benchmark::State& st) {
    const sv_data d(static_cast<std::size_t>(st.range(0)));
    for (auto _ : st) benchmark::DoNotOptimize(sv_primal(d));
}
void sv_hand_bench(benchmark::State& st) {
    const sv_data d(static_cast<std::size_t>(st.range(0)));
    std::vector<double> h(d.steps), g(2 * d.steps + 3);
    for (auto _ : st) {
        benchmark::DoNotOptimize(sv_hand(d, h, g));
        benchmark::ClobberMemory();
    }
}
void sv_exprgrad(benchmark::State& st) {
    const sv_data d(static_cast<std::size_t>(st.range(0)));
    const std::size_t T = d.steps;
    const xt::xarray<double> hs = xt::adapt(std::vector<double>(d.x.begin(), d.x.begin() + static_cast<long>(T)));
    const xt::xarray<double> y = xt::adapt(d.y);
    xt::xarray<double> first = xt::zeros<double>({T});
    first(0) = 1;
    auto prog = value_and_grad(sv_expr, wrt<0, 1, 2, 3>);
    {
        std::vector<double> h(T), want(2 * T + 3);
        const double lp = sv_hand(d, h, want);
        auto [value, grads] = prog(hs, d.phi(), d.sigma(), d.mu(), y, first);
        std::vector<double> got(std::get<0>(grads).begin(), std::get<0>(grads).end());
        got.resize(2 * T, 0.0);
        got.push_back(std::get<1>(grads)());
        got.push_back(std::get<2>(grads)());
        got.push_back(std::get<3>(grads)());
        validate("stochastic_volatility", got.data(), got.size(), want);
        validate("stochastic_volatility (value)", &value, 1, {lp});
    }
    for (auto _ : st) {
        auto q = prog(hs, d.phi(), d.sigma(), d.mu(), y, first);
        benchmark::DoNotOptimize(q.first);
    }
}
BENCHMARK(sv_primal_bench)->ArgsProduct({sv_steps});
BENCHMARK(sv_hand_bench)->ArgsProduct({sv_steps});
BENCHMARK(sv_exprgrad)->ArgsProduct({sv_steps});

}  // namespace

BENCHMARK_MAIN();
