// DEER (ops/deer.hpp) against the sequential loop on this CPU, float32, on the tanh RNN of research
// notes §3.7 (x_t = tanh(A x_{t−1} + u_t), g = 0.5, inputs shifted per sequence of the batch):
//   seq_hand   a hand-written loop (one GEMV-sized matvec and n tanh per step): the honest baseline
//   seq_cell   the same recurrence through the compiled cell, one program call per step (the fallback)
//   deer/<m>   deer_solve with the library's stopping rule, method m
// for n ∈ {1, 4, 16, 64}, T ∈ {1e3, 1e4, 1e5}, batch 1 and 16, 1 and 2 threads. Configurations whose
// dense Jacobians exceed 64 MB, or whose estimated cost exceeds a few seconds, are skipped.
// Counters: iters (DEER iterations), work and depth in flops of the model below, and the speedup over
// seq_hand that work/P + depth implies for P = 2 and P = 1024 cores (a GPU-sized machine).
//   cell per row: 2n² + 20n (matvec, tanh ≈ 20 flops);  VJP per row: 2n² + 20n
//   newton/quasi per iteration: cell + n VJPs; fixed_a/sech_u: cell (+ n VJPs once); jacobi: cell
//   scan per row: dense 2n³ + 2n² (split) — depth 2·log2(T)·(2n³); diagonal 3n — depth 2·log2(T)
//   sequential: work T·B·(2n² + 20n), depth T·(2n² + 20n) (batch rows in parallel)
// Then the diagonal scan (linear_recurrence_diag) along T at batch 1 against the one-thread plain
// recurrence: n = 1 (latency-bound) and n = 64 (throughput-bound), 1 and 2 threads.
//
// Run: build/bench/bench_deer --benchmark_min_time=0.05
//      (subsets: --benchmark_filter='scan|n:1/' ...)
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <xtensor/xarray.hpp>

#include <exprgrad/kernels/parallel.hpp>
#include <exprgrad/ops/deer.hpp>
#include "deer_instance.hpp"
#include <exprgrad/ops/scan.hpp>

using namespace exprgrad;
using namespace exprgrad::ops;

namespace {

struct problem {
    std::size_t n, T, B;
    xt::xarray<float> A, u, y0;
    problem(std::size_t n_, std::size_t T_, std::size_t B_) : n(n_), T(T_), B(B_) {
        A = tools::deer_instance::matrix<float>(n, 0.5);
        u = xt::xarray<float>::from_shape({B, T, n});
        for (std::size_t b = 0; b < B; ++b)
            for (std::size_t t = 0; t < T; ++t)
                for (std::size_t i = 0; i < n; ++i) u(b, t, i) = std::sin(0.1f * float(t + 1 + 7 * b) + float(i));
        y0 = xt::zeros<float>({B, n});
    }
};

double cell_flops(double n) { return 2 * n * n + 20 * n; }

struct model {
    double work = 0, depth = 0;
};
model seq_model(const problem& p) {
    return {double(p.T * p.B) * cell_flops(double(p.n)), double(p.T) * cell_flops(double(p.n))};
}
model deer_model(const problem& p, deer_method m, double iters) {
    const double n = double(p.n), rows = double(p.T * p.B), lg = std::log2(double(p.T) + 1);
    const bool dense = m == deer_method::newton || m == deer_method::fixed_a || m == deer_method::sech_u;
    double w_it = cell_flops(n), d_it = cell_flops(n), w_once = 0, d_once = 0;
    if (m == deer_method::newton || m == deer_method::quasi) {
        w_it += n * cell_flops(n);
        d_it += cell_flops(n);
    }
    if (m == deer_method::sech_u) w_once = n * cell_flops(n), d_once = cell_flops(n);
    if (m != deer_method::jacobi) {
        w_it += dense ? 2 * n * n * n + 2 * n * n : 3 * n;
        d_it += dense ? 2 * lg * 2 * n * n * n : 2 * lg;
    }
    return {rows * (iters * w_it + w_once), iters * d_it + d_once};
}
void put_model(benchmark::State& st, const problem& p, const model& mine) {
    const model s = seq_model(p);
    for (double P : {2.0, 1024.0}) {
        const double seq_t = s.work / std::min(P, double(p.B)) >= s.depth ? s.work / std::min(P, double(p.B)) : s.depth;
        st.counters["implied_x_P" + std::to_string(int(P))] = seq_t / (mine.work / P + mine.depth);
    }
    st.counters["work_Mflop"] = mine.work * 1e-6;
    st.counters["depth_Mflop"] = mine.depth * 1e-6;
}

bool too_big(std::size_t n, std::size_t T, std::size_t B, deer_method m) {
    const double rows = double(T * B), nn = double(n);
    const bool dense = m == deer_method::newton || m == deer_method::fixed_a || m == deer_method::sech_u;
    if (dense && rows * nn * nn * 4 > 64e6) return true;                  // Jacobian memory
    if (m != deer_method::jacobi && rows * nn * nn > 2.5e7) return true;  // n VJPs per iteration
    return rows * nn * nn > 2e8;
}

void bm_seq_hand(benchmark::State& st) {
    const problem p(std::size_t(st.range(0)), std::size_t(st.range(1)), std::size_t(st.range(2)));
    kernels::set_num_threads(std::size_t(st.range(3)));
    std::vector<float> y(p.B * p.n), t(p.n), out(p.B * p.T * p.n);
    for (auto _ : st) {
        // batch rows are independent: split them over threads, each sequence a plain loop
        kernels::parallel_for(0, p.B, 1, [&](std::size_t lo, std::size_t hi) {
            std::vector<float> tmp(p.n);
            for (std::size_t b = lo; b < hi; ++b) {
                float* s = y.data() + b * p.n;
                std::fill(s, s + p.n, 0.0f);
                for (std::size_t k = 0; k < p.T; ++k) {
                    for (std::size_t i = 0; i < p.n; ++i) {
                        float acc = p.u(b, k, i);
                        for (std::size_t j = 0; j < p.n; ++j) acc += p.A(i, j) * s[j];
                        tmp[i] = std::tanh(acc);
                    }
                    std::copy(tmp.begin(), tmp.end(), s);
                    std::copy(tmp.begin(), tmp.end(), out.data() + (b * p.T + k) * p.n);
                }
            }
        });
        benchmark::DoNotOptimize(out.data());
    }
    put_model(st, p, seq_model(p));
    st.counters["iters"] = 0;
}

void bm_seq_cell(benchmark::State& st) {
    const problem p(std::size_t(st.range(0)), std::size_t(st.range(1)), std::size_t(st.range(2)));
    kernels::set_num_threads(std::size_t(st.range(3)));
    const auto cell = make_cell(tools::deer_instance::cell_expr, p.A);
    deer_solver<std::remove_cv_t<decltype(cell)>> s;
    for (auto _ : st) benchmark::DoNotOptimize(s.sequential(cell, p.y0, p.u).data());
    put_model(st, p, seq_model(p));
    st.counters["iters"] = 0;
}

void bm_deer(benchmark::State& st, deer_method m) {
    const problem p(std::size_t(st.range(0)), std::size_t(st.range(1)), std::size_t(st.range(2)));
    kernels::set_num_threads(std::size_t(st.range(3)));
    const auto cell = make_cell(tools::deer_instance::cell_expr, p.A);
    deer_solver<std::remove_cv_t<decltype(cell)>> s;
    deer_options o;
    o.method = m;
    deer_report rep;
    for (auto _ : st) {
        auto r = s.solve(cell, p.y0, p.u, o);
        rep = r.report;
        benchmark::DoNotOptimize(r.y.data());
    }
    st.counters["iters"] = double(rep.iterations);
    st.counters["fallback"] = rep.fallback ? 1 : 0;
    put_model(st, p, deer_model(p, m, double(rep.iterations)));
}

void deer_args(benchmark::internal::Benchmark* b, deer_method m, bool seq) {
    b->ArgNames({"n", "T", "B", "threads"})->Unit(benchmark::kMillisecond)->UseRealTime();
    for (long n : {1, 4, 16, 64})
        for (long T : {1000, 10000, 100000})
            for (long B : {1, 16})
                for (long th : {1, 2}) {
                    if (!seq && too_big(std::size_t(n), std::size_t(T), std::size_t(B), m)) continue;
                    if (seq && double(T * B) * double(n * n) > 2e8) continue;
                    b->Args({n, T, B, th});
                }
}

// ---- the diagonal scan along T at batch 1

void bm_recurrence_plain(benchmark::State& st) {
    const std::size_t n = std::size_t(st.range(0)), T = std::size_t(st.range(1));
    std::vector<float> m(T * n), b(T * n), y(T * n);
    for (std::size_t i = 0; i < T * n; ++i) m[i] = 0.5f + 0.4f * std::sin(float(i)), b[i] = std::cos(float(i));
    for (auto _ : st) {
        for (std::size_t j = 0; j < n; ++j) y[j] = b[j];
        for (std::size_t t = 1; t < T; ++t)
            for (std::size_t j = 0; j < n; ++j) y[t * n + j] = m[t * n + j] * y[(t - 1) * n + j] + b[t * n + j];
        benchmark::DoNotOptimize(y.data());
    }
    st.SetItemsProcessed(std::int64_t(st.iterations()) * std::int64_t(T * n));
}

void bm_scan_diag(benchmark::State& st) {
    const std::size_t n = std::size_t(st.range(0)), T = std::size_t(st.range(1));
    kernels::set_num_threads(std::size_t(st.range(2)));
    std::vector<float> m(T * n), b(T * n), y(T * n);
    for (std::size_t i = 0; i < T * n; ++i) m[i] = 0.5f + 0.4f * std::sin(float(i)), b[i] = std::cos(float(i));
    scan_options o;
    o.chunks = std::size_t(st.range(3));  // 0: automatic (splits T over the threads)
    for (auto _ : st) {
        linear_recurrence_diag(m.data(), b.data(), static_cast<const float*>(nullptr), y.data(), 1, T, n, n, T * n, o);
        benchmark::DoNotOptimize(y.data());
    }
    st.SetItemsProcessed(std::int64_t(st.iterations()) * std::int64_t(T * n));
}

}  // namespace

BENCHMARK(bm_recurrence_plain)
    ->ArgNames({"n", "T"})
    ->Args({1, 100000})
    ->Args({1, 1000000})
    ->Args({64, 10000})
    ->Args({64, 100000})
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(bm_scan_diag)
    ->ArgNames({"n", "T", "threads", "chunks"})
    ->ArgsProduct({{1}, {100000, 1000000}, {1, 2}, {0}})
    ->ArgsProduct({{64}, {10000, 100000}, {1, 2}, {0}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

BENCHMARK(bm_seq_hand)->Apply([](auto* b) { deer_args(b, deer_method::jacobi, true); });
BENCHMARK(bm_seq_cell)->Apply([](auto* b) { deer_args(b, deer_method::jacobi, true); });
BENCHMARK_CAPTURE(bm_deer, newton, deer_method::newton)->Apply([](auto* b) {
    deer_args(b, deer_method::newton, false);
});
BENCHMARK_CAPTURE(bm_deer, quasi, deer_method::quasi)->Apply([](auto* b) { deer_args(b, deer_method::quasi, false); });
BENCHMARK_CAPTURE(bm_deer, jacobi, deer_method::jacobi)->Apply([](auto* b) {
    deer_args(b, deer_method::jacobi, false);
});
BENCHMARK_CAPTURE(bm_deer, fixed_a, deer_method::fixed_a)->Apply([](auto* b) {
    deer_args(b, deer_method::fixed_a, false);
});
BENCHMARK_CAPTURE(bm_deer, sech_u, deer_method::sech_u)->Apply([](auto* b) {
    deer_args(b, deer_method::sech_u, false);
});

BENCHMARK_MAIN();
