// DEER against libtorch 1.13's nn::RNN with the same weights, and the hand-written sequential loop, in
// one run, on the tanh RNN of research notes §3.7 (x_t = tanh(A x_{t−1} + u_t), g = 0.5): nn::RNN with
// tanh, no bias, W_ih = I, W_hh = A computes exactly this recurrence. float32, one thread everywhere,
// forward only (libtorch under NoGradGuard), n ∈ {1, 4, 16, 64}, T ∈ {1e3, 1e4, 1e5}, batch 1 and 16.
// Each configuration first checks that libtorch's trajectory equals the sequential one (max |Δ| < 1e-4).
// Built only with -Dpeers=true. Run: EXPRGRAD_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
//   build-peers/bench/peers/bench_deer_torch --benchmark_min_time=0.05
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <cmath>
#include <stdexcept>
#include <string>

#include <xtensor/xarray.hpp>

#include <exprgrad/kernels/parallel.hpp>
#include <exprgrad/ops/deer.hpp>
#include "deer_instance.hpp"

using namespace exprgrad;

namespace {

struct problem {
    long n, T, B;
    xt::xarray<float> A, u, y0;
    problem(long n_, long T_, long B_) : n(n_), T(T_), B(B_) {
        A = tools::deer_instance::matrix<float>(std::size_t(n), 0.5);
        u = xt::xarray<float>::from_shape({std::size_t(B), std::size_t(T), std::size_t(n)});
        for (long b = 0; b < B; ++b)
            for (long t = 0; t < T; ++t)
                for (long i = 0; i < n; ++i) u(b, t, i) = std::sin(0.1f * float(t + 1 + 7 * b) + float(i));
        y0 = xt::zeros<float>({std::size_t(B), std::size_t(n)});
    }
};

void one_thread() {
    set_num_threads(1);
    torch::set_num_threads(1);
}

// The honest baseline: one matvec and n tanh per step and sequence.
void seq_hand(const problem& p, float* y) {
    std::vector<float> h(std::size_t(p.n)), nh(std::size_t(p.n));
    for (long b = 0; b < p.B; ++b) {
        std::fill(h.begin(), h.end(), 0.0f);
        for (long t = 0; t < p.T; ++t) {
            const float* ut = &p.u(b, t, 0);
            for (long i = 0; i < p.n; ++i) {
                float s = ut[i];
                for (long j = 0; j < p.n; ++j) s += p.A(i, j) * h[std::size_t(j)];
                nh[std::size_t(i)] = std::tanh(s);
            }
            h.swap(nh);
            std::copy(h.begin(), h.end(), y + (b * p.T + t) * p.n);
        }
    }
}

struct torch_rnn {
    torch::nn::RNN rnn{nullptr};
    torch::Tensor x, h0;
    explicit torch_rnn(const problem& p) {
        rnn = torch::nn::RNN(torch::nn::RNNOptions(p.n, p.n).bias(false).batch_first(true).nonlinearity(torch::kTanh));
        torch::NoGradGuard g;
        rnn->named_parameters()["weight_ih_l0"].copy_(torch::eye(p.n));
        rnn->named_parameters()["weight_hh_l0"].copy_(torch::from_blob(const_cast<float*>(p.A.data()), {p.n, p.n}));
        x = torch::from_blob(const_cast<float*>(p.u.data()), {p.B, p.T, p.n}).clone();
        h0 = torch::zeros({1, p.B, p.n});
    }
    torch::Tensor run() { return std::get<0>(rnn->forward(x, h0)); }
};

bool skip(benchmark::State& st, const problem& p, bool dense) {
    const double jac = dense ? double(p.B * p.T) * double(p.n * p.n) * 4 : 0;
    if (jac > 64e6 || double(p.B * p.T) * double(p.n * p.n) > 2e8) {
        st.SkipWithError("skipped: too large for this benchmark");
        return true;
    }
    return false;
}

void bm_seq_hand(benchmark::State& st) {
    one_thread();
    problem p(st.range(0), st.range(1), st.range(2));
    xt::xarray<float> y = xt::xarray<float>::from_shape({std::size_t(p.B), std::size_t(p.T), std::size_t(p.n)});
    for (auto _ : st) {
        seq_hand(p, y.data());
        benchmark::DoNotOptimize(y.data());
    }
}

void bm_torch_rnn(benchmark::State& st) {
    one_thread();
    problem p(st.range(0), st.range(1), st.range(2));
    torch_rnn r(p);
    torch::NoGradGuard g;
    {
        xt::xarray<float> ref = xt::xarray<float>::from_shape({std::size_t(p.B), std::size_t(p.T), std::size_t(p.n)});
        seq_hand(p, ref.data());
        const auto out = r.run().contiguous();
        double err = 0;
        for (std::size_t i = 0; i < ref.size(); ++i)
            err = std::max(err, double(std::abs(out.data_ptr<float>()[i] - ref.data()[i])));
        if (!(err < 1e-4))
            throw std::runtime_error("libtorch RNN differs from the recurrence by " + std::to_string(err));
    }
    for (auto _ : st) {
        auto out = r.run();
        benchmark::DoNotOptimize(out.data_ptr());
    }
}

void bm_deer(benchmark::State& st, deer_method m) {
    one_thread();
    problem p(st.range(0), st.range(1), st.range(2));
    const bool dense = m == deer_method::newton;
    if (skip(st, p, dense)) return;
    auto cell = make_cell(tools::deer_instance::cell_expr, p.A);
    deer_solver<decltype(cell)> s;
    deer_options o;
    o.method = m;
    double iters = 0;
    for (auto _ : st) {
        auto r = s.solve(cell, p.y0, p.u, o);
        iters = double(r.report.iterations);
        benchmark::DoNotOptimize(r.y.data());
    }
    st.counters["iters"] = iters;
}
void bm_deer_newton(benchmark::State& st) { bm_deer(st, deer_method::newton); }
void bm_deer_quasi(benchmark::State& st) { bm_deer(st, deer_method::quasi); }
void bm_deer_jacobi(benchmark::State& st) { bm_deer(st, deer_method::jacobi); }

void shapes(benchmark::internal::Benchmark* b) {
    b->ArgNames({"n", "T", "B"});
    for (long B : {1, 16})
        for (long n : {1, 4, 16, 64})
            for (long T : {1000, 10000, 100000}) b->Args({n, T, B});
    b->Unit(benchmark::kMillisecond);
}

}  // namespace

BENCHMARK(bm_seq_hand)->Apply(shapes);
BENCHMARK(bm_torch_rnn)->Apply(shapes);
BENCHMARK(bm_deer_newton)->Apply(shapes);
BENCHMARK(bm_deer_quasi)->Apply(shapes);
BENCHMARK(bm_deer_jacobi)->Apply(shapes);
BENCHMARK_MAIN();
