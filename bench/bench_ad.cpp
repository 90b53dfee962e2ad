// The functions of the FastAD / ADBenchmark suite (research notes anchors_autodiff.md §2.1), in
// double, side by side in one run: the primal (plain C++, BLAS where it multiplies matrices), a
// hand-written gradient, and exprgrad's compiled value_and_grad (built once, outside the timed loop,
// as ADBenchmark does for FastAD). Every gradient is validated against the hand-written one before
// it is timed. Peers (ADOL-C, Sacado, libtorch) are in bench/peers/, built with -Dpeers=true.
//
// Run: build/bench/bench_ad --benchmark_min_time=0.2
// The ratios gradient / primal at the largest sizes are what docs/benchmarks.md records.
#include <benchmark/benchmark.h>

#include <cblas.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <xtensor/xarray.hpp>

#include <exprgrad/exprgrad.hpp>

using namespace exprgrad;

namespace {

constexpr auto X = tensor<0>;
constexpr auto Y = tensor<1>;
constexpr auto x = var<0>;

xt::xarray<double> random_array(std::vector<std::size_t> shape, std::uint64_t seed, double lo, double hi) {
    xt::xarray<double> a = xt::xarray<double>::from_shape(shape);
    rng g(seed);
    for (auto& v : a) v = lo + (hi - lo) * g.uniform();
    return a;
}

void validate(const char* name, const xt::xarray<double>& got, const std::vector<double>& want) {
    if (got.size() != want.size()) {
        std::fprintf(stderr, "%s: gradient has %zu entries, expected %zu\n", name, got.size(), want.size());
        std::exit(1);
    }
    for (std::size_t i = 0; i < want.size(); ++i) {
        const double err = std::abs(got.data()[i] - want[i]) / std::max(1.0, std::abs(want[i]));
        if (!(err < 1e-9)) {
            std::fprintf(stderr, "%s: gradient entry %zu is %.17g, hand-written %.17g\n", name, i, got.data()[i], want[i]);
            std::exit(1);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// sum, prod, log_sum_exp, normal_log_pdf over a vector of N

double primal_sum(const double* p, std::size_t n) {
    double s = 0;
    for (std::size_t i = 0; i < n; ++i) s += p[i];
    return s;
}
double primal_prod(const double* p, std::size_t n) {
    double s = 1;
    for (std::size_t i = 0; i < n; ++i) s *= p[i];
    return s;
}
double primal_lse(const double* p, std::size_t n) {
    double m = -INFINITY;
    for (std::size_t i = 0; i < n; ++i) m = std::max(m, p[i]);
    double s = 0;
    for (std::size_t i = 0; i < n; ++i) s += std::exp(p[i] - m);
    return m + std::log(s);
}
constexpr double mu = -0.56, sigma = 1.37;
double primal_normal(const double* p, std::size_t n) {
    const double c = -std::log(sigma) - 0.5 * std::log(2 * M_PI);
    double s = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const double z = (p[i] - mu) / sigma;
        s += -0.5 * z * z + c;
    }
    return s;
}

double hand_sum(const double* p, double* g, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) g[i] = 1;
    return primal_sum(p, n);
}
double hand_prod(const double* p, double* g, std::size_t n) {
    double run = 1;
    for (std::size_t i = n; i-- > 0;) {
        g[i] = run;
        run *= p[i];
    }
    double prefix = 1;
    for (std::size_t i = 0; i < n; ++i) {
        g[i] *= prefix;
        prefix *= p[i];
    }
    return run;
}
double hand_lse(const double* p, double* g, std::size_t n) {
    const double l = primal_lse(p, n);
    for (std::size_t i = 0; i < n; ++i) g[i] = std::exp(p[i] - l);
    return l;
}
double hand_normal(const double* p, double* g, std::size_t n) {
    const double c = -std::log(sigma) - 0.5 * std::log(2 * M_PI);
    double s = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const double z = (p[i] - mu) / sigma;
        s += -0.5 * z * z + c;
        g[i] = -z / sigma;
    }
    return s;
}

constexpr auto normal_expr = sum(map(-c<1, 2> * square((x - fc<mu>) / fc<sigma>) - log(fc<sigma>) -
                                         c<1, 2> * log(2_c * constants::pi),
                                     X));

template <class Primal>
void run_primal(benchmark::State& st, Primal f, double lo, double hi) {
    const auto n = static_cast<std::size_t>(st.range(0));
    const auto a = random_array({n}, 1, lo, hi);
    for (auto _ : st) benchmark::DoNotOptimize(f(a.data(), n));
}
template <class Hand>
void run_hand(benchmark::State& st, Hand f, double lo, double hi) {
    const auto n = static_cast<std::size_t>(st.range(0));
    const auto a = random_array({n}, 1, lo, hi);
    std::vector<double> g(n);
    for (auto _ : st) {
        benchmark::DoNotOptimize(f(a.data(), g.data(), n));
        benchmark::ClobberMemory();
    }
}
template <class E, class Hand>
void run_exprgrad(benchmark::State& st, E e, Hand hand, const char* name, double lo, double hi) {
    const auto n = static_cast<std::size_t>(st.range(0));
    const auto a = random_array({n}, 1, lo, hi);
    auto prog = value_and_grad(e, wrt<0>);
    std::vector<double> want(n);
    hand(a.data(), want.data(), n);
    validate(name, std::get<0>(prog(a).second), want);
    for (auto _ : st) {
        auto r = prog(a);
        benchmark::DoNotOptimize(r.first);
        benchmark::DoNotOptimize(std::get<0>(r.second).data());
    }
}

// prod's inputs stay near 1 so the product neither overflows nor underflows at N = 16384.
#define VECTOR_BENCH(fn, expr, lo, hi)                                                                     \
    void fn##_primal(benchmark::State& st) { run_primal(st, primal_##fn, lo, hi); }                        \
    void fn##_hand(benchmark::State& st) { run_hand(st, hand_##fn, lo, hi); }                              \
    void fn##_exprgrad(benchmark::State& st) { run_exprgrad(st, expr, hand_##fn, #fn, lo, hi); }          \
    BENCHMARK(fn##_primal)->RangeMultiplier(16)->Range(1, 16384);                                          \
    BENCHMARK(fn##_hand)->RangeMultiplier(16)->Range(1, 16384);                                            \
    BENCHMARK(fn##_exprgrad)->RangeMultiplier(16)->Range(1, 16384);

VECTOR_BENCH(sum, sum(X), -1.0, 1.0)
VECTOR_BENCH(prod, prod(X), 0.99, 1.01)
VECTOR_BENCH(lse, logsumexp(X), -1.0, 1.0)
VECTOR_BENCH(normal, normal_expr, -2.0, 2.0)

// ---------------------------------------------------------------------------------------------
// matrix_product: sum of the entries of A·B, A and B K×K

void mm_primal(benchmark::State& st) {
    const auto k = static_cast<std::size_t>(st.range(0));
    const auto a = random_array({k, k}, 2, -1, 1), b = random_array({k, k}, 3, -1, 1);
    std::vector<double> c(k * k);
    for (auto _ : st) {
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(k), static_cast<int>(k),
                    static_cast<int>(k), 1.0, a.data(), static_cast<int>(k), b.data(), static_cast<int>(k), 0.0,
                    c.data(), static_cast<int>(k));
        benchmark::DoNotOptimize(primal_sum(c.data(), k * k));
    }
}
// dA[i, j] = sum_n B[j, n] and dB[i, j] = sum_m A[m, i]: the hand gradient needs no product.
void mm_hand_grads(const double* a, const double* b, double* da, double* db, std::size_t k) {
    std::vector<double> rb(k), ca(k, 0.0);
    for (std::size_t j = 0; j < k; ++j) rb[j] = primal_sum(b + j * k, k);
    for (std::size_t m = 0; m < k; ++m)
        for (std::size_t i = 0; i < k; ++i) ca[i] += a[m * k + i];
    for (std::size_t i = 0; i < k; ++i)
        for (std::size_t j = 0; j < k; ++j) {
            da[i * k + j] = rb[j];
            db[i * k + j] = ca[i];
        }
}
void mm_hand(benchmark::State& st) {
    const auto k = static_cast<std::size_t>(st.range(0));
    const auto a = random_array({k, k}, 2, -1, 1), b = random_array({k, k}, 3, -1, 1);
    std::vector<double> c(k * k), da(k * k), db(k * k);
    for (auto _ : st) {
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(k), static_cast<int>(k),
                    static_cast<int>(k), 1.0, a.data(), static_cast<int>(k), b.data(), static_cast<int>(k), 0.0,
                    c.data(), static_cast<int>(k));
        benchmark::DoNotOptimize(primal_sum(c.data(), k * k));
        mm_hand_grads(a.data(), b.data(), da.data(), db.data(), k);
        benchmark::ClobberMemory();
    }
}
void mm_exprgrad(benchmark::State& st) {
    const auto k = static_cast<std::size_t>(st.range(0));
    const auto a = random_array({k, k}, 2, -1, 1), b = random_array({k, k}, 3, -1, 1);
    auto prog = value_and_grad(sum(matmul(X, Y)), wrt<0, 1>);
    std::vector<double> da(k * k), db(k * k);
    mm_hand_grads(a.data(), b.data(), da.data(), db.data(), k);
    auto r = prog(a, b);
    validate("matrix_product dA", std::get<0>(r.second), da);
    validate("matrix_product dB", std::get<1>(r.second), db);
    for (auto _ : st) {
        auto q = prog(a, b);
        benchmark::DoNotOptimize(q.first);
    }
}
BENCHMARK(mm_primal)->Arg(8)->Arg(32)->Arg(64)->Arg(128)->Arg(181);
BENCHMARK(mm_hand)->Arg(8)->Arg(32)->Arg(64)->Arg(128)->Arg(181);
BENCHMARK(mm_exprgrad)->Arg(8)->Arg(32)->Arg(64)->Arg(128)->Arg(181);

// ---------------------------------------------------------------------------------------------
// regression: Bayesian linear regression, y ~ N(X w + b, s), w ~ N(0, 1), b ~ N(0, 1),
// s ~ Uniform(0.1, 10); X is 1000 × p; the gradient is with respect to w, b and s (N = p + 2).

constexpr std::size_t rows = 1000;

struct regression_data {
    xt::xarray<double> xm, y, w;
    double b = 0.3, s = 1.7;
    explicit regression_data(std::size_t p)
        : xm(random_array({rows, p}, 4, -1, 1)), y(random_array({rows, 1}, 5, -2, 2)), w(random_array({p, 1}, 6, -1, 1)) {}
};

double regression_primal(const regression_data& d, std::vector<double>& mu_buf) {
    const std::size_t p = d.w.size();
    cblas_dgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(rows), static_cast<int>(p), 1.0, d.xm.data(),
                static_cast<int>(p), d.w.data(), 1, 0.0, mu_buf.data(), 1);
    double l = 0;
    for (std::size_t i = 0; i < rows; ++i) {
        const double z = (d.y.data()[i] - mu_buf[i] - d.b) / d.s;
        l += -0.5 * z * z;
    }
    // the log-density up to its constant terms (they do not change the gradient)
    l -= static_cast<double>(rows) * std::log(d.s);
    for (std::size_t j = 0; j < p; ++j) l += -0.5 * d.w.data()[j] * d.w.data()[j];
    l += -0.5 * d.b * d.b;
    return l;
}
// dw = Xᵀ r / s - w, db = Σ r / s - b, ds = Σ (r² - 1) / s with r = (y - Xw - b) / s.
void regression_hand(const regression_data& d, std::vector<double>& mu_buf, std::vector<double>& r,
                     std::vector<double>& g) {
    const std::size_t p = d.w.size();
    regression_primal(d, mu_buf);
    double sb = 0, ss = 0;
    for (std::size_t i = 0; i < rows; ++i) {
        r[i] = (d.y.data()[i] - mu_buf[i] - d.b) / d.s;
        sb += r[i];
        ss += r[i] * r[i] - 1;
    }
    cblas_dgemv(CblasRowMajor, CblasTrans, static_cast<int>(rows), static_cast<int>(p), 1.0 / d.s, d.xm.data(),
                static_cast<int>(p), r.data(), 1, 0.0, g.data(), 1);
    for (std::size_t j = 0; j < p; ++j) g[j] -= d.w.data()[j];
    g[p] = sb / d.s - d.b;
    g[p + 1] = ss / d.s;
}

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
    validate("regression dw", std::get<0>(res.second), std::vector<double>(g.begin(), g.begin() + static_cast<long>(p)));
    validate("regression db", std::get<1>(res.second), {g[p]});
    validate("regression ds", std::get<2>(res.second), {g[p + 1]});
    for (auto _ : st) {
        auto q = prog(d.xm, d.y, d.b, d.s, d.w);
        benchmark::DoNotOptimize(q.first);
    }
}
BENCHMARK(regression_primal_bench)->Arg(10)->Arg(50)->Arg(150);
BENCHMARK(regression_hand_bench)->Arg(10)->Arg(50)->Arg(150);
BENCHMARK(regression_exprgrad_bench)->Arg(10)->Arg(50)->Arg(150);

}  // namespace

BENCHMARK_MAIN();
