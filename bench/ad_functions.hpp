// The functions of the FastAD / ADBenchmark suite (J. Yang, arXiv 2102.03681), shared by
// bench_ad.cpp (primal, hand gradient, exprgrad) and peers/bench_ad_peers.cpp (ADOL-C, Sacado): the input
// generators, the size grids, the primal functions in plain double, the hand-written gradients every
// other gradient is validated against, and generic versions of the same functions over any scalar type
// with the usual arithmetic (an AD peer's active type), so every program computes one definition.
//
// This header depends on exprgrad only for its random generator (so inputs are identical everywhere)
// and on xtensor for the arrays exprgrad takes; nothing here is timed by itself.
#pragma once

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <xtensor/xarray.hpp>

#include <exprgrad/random.hpp>

namespace ad_bench {

// ---------------------------------------------------------------------------------------------
// inputs, sizes, validation

/// An array of the given shape, uniform in [lo, hi), from exprgrad's seedable generator.
inline xt::xarray<double> random_array(std::vector<std::size_t> shape, std::uint64_t seed, double lo, double hi) {
    xt::xarray<double> a = xt::xarray<double>::from_shape(shape);
    exprgrad::rng g(seed);
    for (auto& v : a) v = lo + (hi - lo) * g.uniform();
    return a;
}

/// The range each vector function draws its inputs from; prod's stay near 1 so the product neither
/// overflows nor underflows at N = 16384.
struct input_range {
    double lo, hi;
};
inline constexpr input_range sum_inputs{-1.0, 1.0};
inline constexpr input_range prod_inputs{0.99, 1.01};
inline constexpr input_range lse_inputs{-1.0, 1.0};
inline constexpr input_range normal_inputs{-2.0, 2.0};
inline constexpr std::uint64_t vector_seed = 1;

/// The vector input of N entries every program uses for one function.
inline xt::xarray<double> vector_input(std::size_t n, input_range r) {
    return random_array({n}, vector_seed, r.lo, r.hi);
}

// ADBenchmark's grids: N = 1, 16, 256, 4096, 16384; K × K matrices with K up to 181 (2K² inputs up to
// 65522); regression with p columns (N = p + 2).
inline const std::vector<long> vector_sizes{1, 16, 256, 4096, 16384};
inline const std::vector<long> matrix_sizes{8, 32, 64, 128, 181};
inline const std::vector<long> regression_sizes{10, 50, 150};

/// Exits with a message unless `got` (n entries) equals `want` to a relative 1e-9 (absolute below 1).
inline void validate(const char* name, const double* got, std::size_t n, const std::vector<double>& want) {
    if (n != want.size()) {
        std::fprintf(stderr, "%s: gradient has %zu entries, expected %zu\n", name, n, want.size());
        std::exit(1);
    }
    for (std::size_t i = 0; i < n; ++i) {
        const double err = std::abs(got[i] - want[i]) / std::max(1.0, std::abs(want[i]));
        if (!(err < 1e-9)) {
            std::fprintf(stderr, "%s: gradient entry %zu is %.17g, hand-written %.17g\n", name, i, got[i], want[i]);
            std::exit(1);
        }
    }
}
template <class Array>
void validate(const char* name, const Array& got, const std::vector<double>& want) {
    validate(name, got.data(), got.size(), want);
}

// ---------------------------------------------------------------------------------------------
// sum, prod, log_sum_exp, normal_log_pdf over a vector of N

inline double primal_sum(const double* p, std::size_t n) {
    double s = 0;
    for (std::size_t i = 0; i < n; ++i) s += p[i];
    return s;
}
inline double primal_prod(const double* p, std::size_t n) {
    double s = 1;
    for (std::size_t i = 0; i < n; ++i) s *= p[i];
    return s;
}
inline double primal_lse(const double* p, std::size_t n) {
    double m = -INFINITY;
    for (std::size_t i = 0; i < n; ++i) m = std::max(m, p[i]);
    double s = 0;
    for (std::size_t i = 0; i < n; ++i) s += std::exp(p[i] - m);
    return m + std::log(s);
}
inline constexpr double mu = -0.56, sigma = 1.37;
inline double normal_constant() { return -std::log(sigma) - 0.5 * std::log(2 * M_PI); }
inline double primal_normal(const double* p, std::size_t n) {
    const double c = normal_constant();
    double s = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const double z = (p[i] - mu) / sigma;
        s += -0.5 * z * z + c;
    }
    return s;
}

// The same reductions with eight independent accumulators. Without -ffast-math the compiler may not
// reorder a floating-point reduction, so the single-accumulator loops above run at one add (or multiply)
// per FP latency, not vectorized; these are what plain C++ reaches with the same flags (bench_ad times
// them as <fn>_primal8, a second, stricter baseline). log_sum_exp has none: its cost is the scalar exp.
inline double primal8_sum(const double* p, std::size_t n) {
    double acc[8] = {};
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (std::size_t j = 0; j < 8; ++j) acc[j] += p[i + j];
    double s = 0;
    for (; i < n; ++i) s += p[i];
    for (double a : acc) s += a;
    return s;
}
inline double primal8_prod(const double* p, std::size_t n) {
    double acc[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (std::size_t j = 0; j < 8; ++j) acc[j] *= p[i + j];
    double s = 1;
    for (; i < n; ++i) s *= p[i];
    for (double a : acc) s *= a;
    return s;
}
inline double primal8_normal(const double* p, std::size_t n) {
    const double c = normal_constant();
    double acc[8] = {};
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (std::size_t j = 0; j < 8; ++j) {
            const double z = (p[i + j] - mu) / sigma;
            acc[j] += -0.5 * z * z;
        }
    double s = 0;
    for (; i < n; ++i) {
        const double z = (p[i] - mu) / sigma;
        s += -0.5 * z * z;
    }
    for (double a : acc) s += a;
    return s + static_cast<double>(n) * c;
}

inline double hand_sum(const double* p, double* g, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) g[i] = 1;
    return primal_sum(p, n);
}
inline double hand_prod(const double* p, double* g, std::size_t n) {
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
inline double hand_lse(const double* p, double* g, std::size_t n) {
    const double l = primal_lse(p, n);
    for (std::size_t i = 0; i < n; ++i) g[i] = std::exp(p[i] - l);
    return l;
}
inline double hand_normal(const double* p, double* g, std::size_t n) {
    const double c = normal_constant();
    double s = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const double z = (p[i] - mu) / sigma;
        s += -0.5 * z * z + c;
        g[i] = -z / sigma;
    }
    return s;
}

/// The hand-written gradient of `hand` at `p`, as a vector (what peers are validated against).
template <class Hand>
std::vector<double> hand_gradient(Hand hand, const double* p, std::size_t n) {
    std::vector<double> g(n);
    hand(p, g.data(), n);
    return g;
}

// Generic forms over an AD scalar T (loops over T, as a user of an operator-overloading tool writes
// them). log_sum_exp's shift `m` is a passive constant: lse(x) = m + log Σ exp(x - m) for any m, so the
// gradient is exact without differentiating through max, and the peer records one operation fewer per
// entry than the primal does.
template <class T>
T generic_sum(const T* p, std::size_t n) {
    T s = 0.0;
    for (std::size_t i = 0; i < n; ++i) s += p[i];
    return s;
}
template <class T>
T generic_prod(const T* p, std::size_t n) {
    T s = 1.0;
    for (std::size_t i = 0; i < n; ++i) s *= p[i];
    return s;
}
template <class T>
T generic_lse(const T* p, std::size_t n, double m) {
    T s = 0.0;
    for (std::size_t i = 0; i < n; ++i) s += exp(p[i] - m);
    return m + log(s);
}
template <class T>
T generic_normal(const T* p, std::size_t n) {
    const double c = normal_constant();
    T s = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
        T z = (p[i] - mu) / sigma;
        s += -0.5 * z * z + c;
    }
    return s;
}

// ---------------------------------------------------------------------------------------------
// matrix_product: sum of the entries of A·B, A and B K×K

struct matrix_inputs {
    xt::xarray<double> a, b;
    explicit matrix_inputs(std::size_t k) : a(random_array({k, k}, 2, -1, 1)), b(random_array({k, k}, 3, -1, 1)) {}
};

/// The primal: C = A·B through BLAS, then the sum of C's entries (c is a K² scratch buffer).
inline double primal_mm(const double* a, const double* b, double* c, std::size_t k) {
    const int ki = static_cast<int>(k);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, ki, ki, ki, 1.0, a, ki, b, ki, 0.0, c, ki);
    return primal_sum(c, k * k);
}

/// dA[i, j] = Σ_n B[j, n] and dB[i, j] = Σ_m A[m, i]: the hand gradient needs no product.
inline void mm_hand_grads(const double* a, const double* b, double* da, double* db, std::size_t k) {
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

/// Σ_ij (A·B)_ij over T with the plain triple loop (each product entry is a dot product over T).
template <class T>
T generic_mm(const T* a, const T* b, std::size_t k) {
    T s = 0.0;
    for (std::size_t i = 0; i < k; ++i)
        for (std::size_t j = 0; j < k; ++j) {
            T c = 0.0;
            for (std::size_t l = 0; l < k; ++l) c += a[i * k + l] * b[l * k + j];
            s += c;
        }
    return s;
}

// ---------------------------------------------------------------------------------------------
// regression: Bayesian linear regression, y ~ N(X w + b, s), w ~ N(0, 1), b ~ N(0, 1),
// s ~ Uniform(0.1, 10); X is 1000 × p; the gradient is with respect to w, b and s (N = p + 2, in that
// order). The log-density is taken up to its constant terms (they do not change the gradient).

inline constexpr std::size_t rows = 1000;

struct regression_data {
    xt::xarray<double> xm, y, w;
    double b = 0.3, s = 1.7;
    explicit regression_data(std::size_t p)
        : xm(random_array({rows, p}, 4, -1, 1)),
          y(random_array({rows, 1}, 5, -2, 2)),
          w(random_array({p, 1}, 6, -1, 1)) {}
    std::size_t p() const { return w.size(); }
};

/// The primal: X w through BLAS (GEMV), then one fused loop. mu_buf has `rows` entries.
inline double regression_primal(const regression_data& d, std::vector<double>& mu_buf) {
    const std::size_t p = d.p();
    cblas_dgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(rows), static_cast<int>(p), 1.0, d.xm.data(),
                static_cast<int>(p), d.w.data(), 1, 0.0, mu_buf.data(), 1);
    double l = 0;
    for (std::size_t i = 0; i < rows; ++i) {
        const double z = (d.y.data()[i] - mu_buf[i] - d.b) / d.s;
        l += -0.5 * z * z;
    }
    l -= static_cast<double>(rows) * std::log(d.s);
    for (std::size_t j = 0; j < p; ++j) l += -0.5 * d.w.data()[j] * d.w.data()[j];
    l += -0.5 * d.b * d.b;
    return l;
}

/// dw = Xᵀ r / s - w, db = Σ r / s - b, ds = Σ (r² - 1) / s with r = (y - Xw - b) / s; g has p + 2 entries.
inline void regression_hand(const regression_data& d, std::vector<double>& mu_buf, std::vector<double>& r,
                            std::vector<double>& g) {
    const std::size_t p = d.p();
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

/// The same log-density over T: v holds the N = p + 2 active inputs (w, b, s); X and y are data.
template <class T>
T generic_regression(const regression_data& d, const T* v) {
    const std::size_t p = d.p();
    const T& b = v[p];
    const T& s = v[p + 1];
    T l = 0.0;
    for (std::size_t i = 0; i < rows; ++i) {
        T m = b;
        for (std::size_t j = 0; j < p; ++j) m += d.xm.data()[i * p + j] * v[j];
        T z = (d.y.data()[i] - m) / s;
        l += -0.5 * z * z;
    }
    l -= static_cast<double>(rows) * log(s);
    for (std::size_t j = 0; j < p; ++j) l += -0.5 * v[j] * v[j];
    l += -0.5 * b * b;
    return l;
}

/// The point (w, b, s) of `d` as one vector of N = p + 2 doubles, in the gradient's order.
inline std::vector<double> regression_point(const regression_data& d) {
    std::vector<double> v(d.w.begin(), d.w.end());
    v.push_back(d.b);
    v.push_back(d.s);
    return v;
}

// ---------------------------------------------------------------------------------------------
// stochastic_volatility (ADBenchmark's, after Stan's users guide): T observations y and the inputs
// x = (h_std [T], h [T], φ, σ, μ), N = 2T + 3. The latent log-volatility is the AR(1) process
//     h_0 = μ + σ h_std_0 / √(1 − φ²),   h_t = μ + φ (h_{t−1} − μ) + σ h_std_t   (t ≥ 1),
// and the log-density (normal observations with scale e^{h/2}, standard-normal h_std, Cauchy priors)
//     Σ_t [−½ y_t² e^{−h_t} − ½ h_t − ½ h_std_t²] + cauchy(σ | 5) + cauchy(μ | 10) − log 2,
// cauchy(v | s) = −log(s (1 + (v/s)²)); −log 2 is φ's uniform prior on (−1, 1). ADBenchmark writes h
// into x's middle T slots before reading it, so their gradient is 0; the layout is kept so N matches.

/// ADBenchmark's grid: x of 2^k entries becomes T = max(2^k / 2, 2) steps, N = 2T + 3 (7 to 16387).
inline const std::vector<long> sv_steps{2, 8, 128, 2048, 8192};

struct sv_data {
    std::size_t steps;
    std::vector<double> x, y;  // x as above (the h slots hold their initial, unused values)
    explicit sv_data(std::size_t t) : steps(t) {
        const auto a = random_array({2 * t + 3}, 7, -1, 1), b = random_array({t}, 8, -1, 1);
        x.assign(a.begin(), a.end());
        y.assign(b.begin(), b.end());
        x[2 * t + 1] = std::abs(x[2 * t + 1]) + 0.1;  // σ > 0, as ADBenchmark draws it
    }
    double phi() const { return x[2 * steps]; }
    double sigma() const { return x[2 * steps + 1]; }
    double mu() const { return x[2 * steps + 2]; }
};

inline double sv_cauchy(double v, double s) { return -std::log(s * (1 + (v / s) * (v / s))); }

/// The primal: one loop, h carried in a register.
inline double sv_primal(const sv_data& d) {
    const double* hs = d.x.data();
    const double phi = d.phi(), sigma = d.sigma(), mu = d.mu();
    double lp = 0, h = 0;
    for (std::size_t t = 0; t < d.steps; ++t) {
        h = t == 0 ? mu + sigma * hs[0] / std::sqrt(1 - phi * phi) : mu + phi * (h - mu) + sigma * hs[t];
        lp += -0.5 * d.y[t] * d.y[t] * std::exp(-h) - 0.5 * h - 0.5 * hs[t] * hs[t];
    }
    return lp + sv_cauchy(sigma, 5) + sv_cauchy(mu, 10) - std::log(2.0);
}

/// The hand gradient (g: N entries, h: T scratch). With g_t = ∂lp/∂h_t = ½ y_t² e^{−h_t} − ½ and the
/// adjoint λ_t = g_t + φ λ_{t+1}, r = 1/√(1 − φ²):
///   ∂/∂h_std_t = σ λ_t (× r at t = 0) − h_std_t,   ∂/∂σ = Σ_{t≥1} λ_t h_std_t + r λ_0 h_std_0 − 2σ/(25 + σ²),
///   ∂/∂μ = λ_0 + (1 − φ) Σ_{t≥1} λ_t − 2μ/(100 + μ²),   ∂/∂φ = Σ_{t≥1} λ_t (h_{t−1} − μ) + λ_0 σ h_std_0 φ r³.
inline double sv_hand(const sv_data& d, std::vector<double>& h, std::vector<double>& g) {
    const std::size_t T = d.steps;
    const double* hs = d.x.data();
    const double phi = d.phi(), sigma = d.sigma(), mu = d.mu(), r = 1 / std::sqrt(1 - phi * phi);
    double lp = 0;
    for (std::size_t t = 0; t < T; ++t) {
        h[t] = t == 0 ? mu + sigma * hs[0] * r : mu + phi * (h[t - 1] - mu) + sigma * hs[t];
        const double e = d.y[t] * d.y[t] * std::exp(-h[t]);
        lp += -0.5 * e - 0.5 * h[t] - 0.5 * hs[t] * hs[t];
        g[t] = 0.5 * e - 0.5;  // ∂lp/∂h_t for now
    }
    double lam = 0, dsigma = 0, dmu = 0, dphi = 0;
    for (std::size_t t = T; t-- > 1;) {
        lam = g[t] + phi * lam;
        g[t] = sigma * lam - hs[t];
        dsigma += lam * hs[t];
        dmu += (1 - phi) * lam;
        dphi += lam * (h[t - 1] - mu);
    }
    lam = g[0] + phi * lam;
    g[0] = sigma * r * lam - hs[0];
    dsigma += r * lam * hs[0] - 2 * sigma / (25 + sigma * sigma);
    dmu += lam - 2 * mu / (100 + mu * mu);
    dphi += lam * sigma * hs[0] * phi * r * r * r;
    std::fill(g.begin() + static_cast<long>(T), g.begin() + static_cast<long>(2 * T), 0.0);
    g[2 * T] = dphi;
    g[2 * T + 1] = dsigma;
    g[2 * T + 2] = dmu;
    return lp + sv_cauchy(sigma, 5) + sv_cauchy(mu, 10) - std::log(2.0);
}

/// The same log-density over an AD scalar T, as ADBenchmark's generic version computes it (h written
/// into the middle slots' place, a local vector here, then the densities).
template <class T>
T generic_sv(const sv_data& d, const T* x) {
    using std::exp;
    using std::log;
    using std::sqrt;
    const std::size_t n = d.steps;
    const T* hs = x;
    const T& phi = x[2 * n];
    const T& sigma = x[2 * n + 1];
    const T& mu = x[2 * n + 2];
    std::vector<T> h(n);
    for (std::size_t t = 0; t < n; ++t) h[t] = hs[t] * sigma;
    h[0] = h[0] / sqrt(1.0 - phi * phi);
    for (std::size_t t = 0; t < n; ++t) h[t] = h[t] + mu;
    for (std::size_t t = 1; t < n; ++t) h[t] = h[t] + phi * (h[t - 1] - mu);
    T lp = 0.0;
    for (std::size_t t = 0; t < n; ++t) lp += -0.5 * d.y[t] * d.y[t] * exp(-h[t]) - 0.5 * h[t] - 0.5 * hs[t] * hs[t];
    T cs = sigma / 5.0, cm = mu / 10.0;
    return lp - log(5.0 * (1.0 + cs * cs)) - log(10.0 * (1.0 + cm * cm)) - std::log(2.0);
}

}  // namespace ad_bench
