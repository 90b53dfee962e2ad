// ops/scan.hpp: the affine-map monoid, and the linear-recurrence solver (dense and diagonal, forward
// and reverse, batched) against the plain sequential recurrence; thread-count independence.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include <xtensor/xarray.hpp>
#include <xtensor/xmanipulation.hpp>
#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>

#include "exprgrad/ops/scan.hpp"
#include "exprgrad/random.hpp"

using namespace exprgrad;
using namespace exprgrad::ops;

namespace {

template <class T>
xt::xarray<T> rand_array(std::vector<std::size_t> shape, std::uint64_t seed, double lo, double hi) {
    xt::xarray<T> a = xt::xarray<T>::from_shape(shape);
    rng g(seed);
    for (auto& v : a) v = T(lo + (hi - lo) * g.uniform());
    return a;
}

// The reference: y_t = M_t y_{t−1} + b_t, per sequence, in long double.
template <class T>
xt::xarray<T> naive_forward(const xt::xarray<T>& M, const xt::xarray<T>& b, const xt::xarray<T>& y0, bool dense) {
    const std::size_t B = b.dimension() == 3 ? b.shape(0) : 1, Tn = b.shape(b.dimension() - 2),
                      n = b.shape(b.dimension() - 1);
    xt::xarray<T> y = xt::xarray<T>::from_shape(b.shape());
    for (std::size_t s = 0; s < B; ++s) {
        std::vector<long double> st(y0.data() + s * n, y0.data() + (s + 1) * n), nx(n);
        for (std::size_t t = 0; t < Tn; ++t) {
            for (std::size_t i = 0; i < n; ++i) {
                long double v = b.data()[(s * Tn + t) * n + i];
                if (dense) {
                    for (std::size_t j = 0; j < n; ++j)
                        v += (long double)M.data()[((s * Tn + t) * n + i) * n + j] * st[j];
                } else {
                    v += (long double)M.data()[(s * Tn + t) * n + i] * st[i];
                }
                nx[i] = v;
            }
            st = nx;
            for (std::size_t i = 0; i < n; ++i) y.data()[(s * Tn + t) * n + i] = T(st[i]);
        }
    }
    return y;
}

// The reference adjoint: λ_t = g_t + M_{t+1}ᵀ λ_{t+1}; dy0 = M_0ᵀ λ_0.
template <class T>
std::pair<xt::xarray<T>, xt::xarray<T>> naive_reverse(const xt::xarray<T>& M, const xt::xarray<T>& g, bool dense) {
    const std::size_t B = g.dimension() == 3 ? g.shape(0) : 1, Tn = g.shape(g.dimension() - 2),
                      n = g.shape(g.dimension() - 1);
    xt::xarray<T> lam = xt::xarray<T>::from_shape(g.shape());
    xt::xarray<T> dy0 = xt::xarray<T>::from_shape({B * n});
    auto mat = [&](std::size_t s, std::size_t t, std::size_t i, std::size_t j) -> long double {
        if (dense) return M.data()[((s * Tn + t) * n + i) * n + j];
        return i == j ? (long double)M.data()[(s * Tn + t) * n + i] : 0.0L;
    };
    for (std::size_t s = 0; s < B; ++s) {
        std::vector<long double> l(n, 0.0L), nx(n);
        for (std::size_t t = Tn; t-- > 0;) {
            for (std::size_t i = 0; i < n; ++i) {
                long double v = g.data()[(s * Tn + t) * n + i];
                if (t + 1 < Tn)
                    for (std::size_t j = 0; j < n; ++j) v += mat(s, t + 1, j, i) * l[j];
                nx[i] = v;
            }
            l = nx;
            for (std::size_t i = 0; i < n; ++i) lam.data()[(s * Tn + t) * n + i] = T(l[i]);
        }
        for (std::size_t i = 0; i < n; ++i) {
            long double v = 0;
            for (std::size_t j = 0; j < n; ++j) v += mat(s, 0, j, i) * l[j];
            dy0.data()[s * n + i] = T(v);
        }
    }
    return {lam, dy0};
}

template <class T>
double max_rel_diff(const xt::xarray<T>& a, const xt::xarray<T>& b) {
    REQUIRE(a.size() == b.size());
    double m = 0;
    for (std::size_t i = 0; i < a.size(); ++i)
        m = std::max(m, std::abs(double(a.data()[i]) - double(b.data()[i])) / (1.0 + std::abs(double(b.data()[i]))));
    return m;
}

template <class T>
bool bit_equal(const xt::xarray<T>& a, const xt::xarray<T>& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (!(a.data()[i] == b.data()[i])) return false;
    return true;
}

struct thread_guard {
    std::size_t saved = kernels::num_threads();
    ~thread_guard() { kernels::set_num_threads(saved); }
};

}  // namespace

TEST_CASE("the affine-map monoid is associative and composes as 'apply the first, then the second'") {
    const std::size_t n = 3;
    auto m1 = rand_array<double>({n, n}, 1, -1, 1), m2 = rand_array<double>({n, n}, 2, -1, 1),
         m3 = rand_array<double>({n, n}, 3, -1, 1);
    auto v1 = rand_array<double>({n}, 4, -1, 1), v2 = rand_array<double>({n}, 5, -1, 1),
         v3 = rand_array<double>({n}, 6, -1, 1), x = rand_array<double>({n}, 7, -1, 1);
    xt::xarray<double> a = xt::zeros<double>({n, n}), av = xt::zeros<double>({n}), b = a, bv = av, l = a, lv = av,
                       r = a, rv = av;
    compose_dense(m2.data(), v2.data(), m1.data(), v1.data(), a.data(), av.data(), n);  // 2∘1
    compose_dense(m3.data(), v3.data(), a.data(), av.data(), l.data(), lv.data(), n);   // 3∘(2∘1)
    compose_dense(m3.data(), v3.data(), m2.data(), v2.data(), b.data(), bv.data(), n);  // 3∘2
    compose_dense(b.data(), bv.data(), m1.data(), v1.data(), r.data(), rv.data(), n);   // (3∘2)∘1
    CHECK(max_rel_diff(l, r) < 1e-15);
    CHECK(max_rel_diff(lv, rv) < 1e-15);
    // applying the composition equals applying the maps in turn
    std::vector<double> y(x.begin(), x.end()), t(n);
    for (auto [m, v] : {std::pair{&m1, &v1}, std::pair{&m2, &v2}, std::pair{&m3, &v3}}) {
        for (std::size_t i = 0; i < n; ++i) {
            t[i] = (*v)(i);
            for (std::size_t j = 0; j < n; ++j) t[i] += (*m)(i, j) * y[j];
        }
        y = t;
    }
    for (std::size_t i = 0; i < n; ++i) {
        double z = lv(i);
        for (std::size_t j = 0; j < n; ++j) z += l(i, j) * x(j);
        CHECK(z == doctest::Approx(y[i]).epsilon(1e-14));
    }
    // diagonal
    std::vector<double> dm(2), dv(2), d1{0.5, -2}, e1{1, 3}, d2{4, 0.25}, e2{-1, 2};
    compose_diag(d2.data(), e2.data(), d1.data(), e1.data(), dm.data(), dv.data(), 2);
    CHECK(dm[0] == 2.0);
    CHECK(dm[1] == -0.5);
    CHECK(dv[0] == 3.0);  // 4·1 − 1
    CHECK(dv[1] == 2.75);
}

TEST_CASE("linear_recurrence equals the sequential recurrence: dense and diagonal, forward and reverse") {
    thread_guard tg;
    for (std::size_t threads : {1, 2}) {
        kernels::set_num_threads(threads);
        for (std::size_t chunks : {0, 1, 2, 3, 7}) {
            CAPTURE(threads);
            CAPTURE(chunks);
            scan_options o;
            o.chunks = chunks;
            o.min_chunk = 16;  // let the automatic split happen at test sizes
            for (std::size_t n : {1, 3, 8}) {
                CAPTURE(n);
                const std::size_t T = 300, B = 2;
                // contractive maps (|M| < 1), so errors do not grow along t
                const double s = 0.9 / double(n);
                auto Md = rand_array<double>({B, T, n, n}, 10 + n, -s, s);
                auto md = rand_array<double>({B, T, n}, 20 + n, -0.99, 0.99);
                auto b = rand_array<double>({B, T, n}, 30 + n, -1, 1);
                auto y0 = rand_array<double>({B, n}, 40 + n, -1, 1);
                CHECK(max_rel_diff(linear_recurrence(Md, b, y0, o), naive_forward(Md, b, y0, true)) < 1e-13);
                CHECK(max_rel_diff(linear_recurrence(md, b, y0, o), naive_forward(md, b, y0, false)) < 1e-13);
                auto [lam, dy0] = linear_recurrence_reverse(Md, b, o);
                auto [rl, rd] = naive_reverse(Md, b, true);
                CHECK(max_rel_diff(lam, rl) < 1e-13);
                CHECK(max_rel_diff(xt::xarray<double>(xt::flatten(dy0)), rd) < 1e-13);
                auto [lam2, dy02] = linear_recurrence_reverse(md, b, o);
                auto [rl2, rd2] = naive_reverse(md, b, false);
                CHECK(max_rel_diff(lam2, rl2) < 1e-13);
                CHECK(max_rel_diff(xt::xarray<double>(xt::flatten(dy02)), rd2) < 1e-13);
                // unbatched, float32
                xt::xarray<float> mf = xt::view(md, 0), bf = xt::view(b, 0), yf = xt::view(y0, 0);
                CHECK(max_rel_diff(linear_recurrence(mf, bf, yf, o), naive_forward(mf, bf, yf, false)) < 1e-5);
            }
        }
    }
}

TEST_CASE("linear_recurrence: one thread without a split is bit-identical to the plain loop") {
    thread_guard tg;
    kernels::set_num_threads(1);
    const std::size_t T = 1000, n = 5;
    auto m = rand_array<double>({T, n}, 1, -1, 1), b = rand_array<double>({T, n}, 2, -1, 1);
    auto y0 = rand_array<double>({n}, 3, -1, 1);
    // the diagonal kernels fuse multiply and add in every lane (xsimd::fma, std::fma in the tail)
    xt::xarray<double> ref_fma = xt::xarray<double>::from_shape({T, n});
    std::vector<double> st(y0.begin(), y0.end());
    for (std::size_t t = 0; t < T; ++t)
        for (std::size_t i = 0; i < n; ++i) ref_fma(t, i) = st[i] = std::fma(m(t, i), st[i], b(t, i));
    const auto y = linear_recurrence(m, b, y0);
    CHECK(bit_equal(y, ref_fma));
}

TEST_CASE("linear_recurrence: a fixed chunk count gives bit-identical results on 1 and 2 threads") {
    thread_guard tg;
    const std::size_t T = 5000, B = 1;
    for (std::size_t n : {1, 2, 16}) {
        CAPTURE(n);
        auto md = rand_array<double>({B, T, n}, 50 + n, -1.0, 1.0);
        auto Md = rand_array<double>({B, T, n, n}, 60 + n, -0.6 / double(n), 0.6 / double(n));
        auto b = rand_array<double>({B, T, n}, 70 + n, -1, 1);
        auto y0 = rand_array<double>({B, n}, 80 + n, -1, 1);
        scan_options o;
        o.chunks = 4;
        kernels::set_num_threads(1);
        const auto d1 = linear_recurrence(md, b, y0, o), D1 = linear_recurrence(Md, b, y0, o);
        const auto r1 = linear_recurrence_reverse(md, b, o).first, R1 = linear_recurrence_reverse(Md, b, o).first;
        kernels::set_num_threads(2);
        CHECK(bit_equal(linear_recurrence(md, b, y0, o), d1));
        CHECK(bit_equal(linear_recurrence(Md, b, y0, o), D1));
        CHECK(bit_equal(linear_recurrence_reverse(md, b, o).first, r1));
        CHECK(bit_equal(linear_recurrence_reverse(Md, b, o).first, R1));
        // and the split differs from the plain loop only by rounding
        scan_options seq;
        seq.chunks = 1;
        CHECK(max_rel_diff(d1, linear_recurrence(md, b, y0, seq)) < 1e-12);
        CHECK(max_rel_diff(D1, linear_recurrence(Md, b, y0, seq)) < 1e-12);
    }
}

TEST_CASE("linear_recurrence: one shared map for every step (stride 0), and shape errors") {
    const std::size_t T = 50, n = 2;
    xt::xarray<double> A = {{0.5, 0.1}, {-0.2, 0.3}};
    auto b = rand_array<double>({T, n}, 5, -1, 1);
    xt::xarray<double> y0 = {1.0, -1.0};
    xt::xarray<double> y = xt::xarray<double>::from_shape({T, n});
    scan_options o;
    o.chunks = 3;
    linear_recurrence_dense(A.data(), b.data(), y0.data(), y.data(), 1, T, n, 0, 0, o);
    xt::xarray<double> Ms = xt::xarray<double>::from_shape({T, n, n});
    for (std::size_t t = 0; t < T; ++t) xt::view(Ms, t) = A;
    CHECK(max_rel_diff(y, naive_forward(Ms, b, y0, true)) < 1e-14);
    CHECK_THROWS_AS(linear_recurrence(xt::xarray<double>::from_shape({T, 3}), b, y0), std::invalid_argument);
    CHECK_THROWS_AS(linear_recurrence(Ms, b, xt::xarray<double>{1.0}), std::invalid_argument);
    CHECK_THROWS_AS(linear_recurrence(Ms, xt::xarray<double>::from_shape({T}), y0), std::invalid_argument);
    // T = 0 and a single step
    auto e = linear_recurrence(xt::xarray<double>::from_shape({0, 2}), xt::xarray<double>::from_shape({0, 2}), y0);
    CHECK(e.size() == 0);
}
