// ops/deer.hpp on random cells: DEER against the sequential loop on random tanh-RNN and GRU cells (float64
// and float32) and the engine's Jacobians. (test_deer.cpp: the notes' instance; test_deer_vjp.cpp: gradients,
// fallback, overflow; split for the compile-time budget.)
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <xtensor/xarray.hpp>
#include <xtensor/xview.hpp>

#include "exprgrad/check/vjp_check.hpp"
#include "exprgrad/ops/deer.hpp"
#include "deer_instance.hpp"
#include "exprgrad/random.hpp"
#include "deer_test_util.hpp"

using namespace exprgrad;
using namespace exprgrad::ops;
using namespace deer_test;

TEST_CASE("DEER equals the sequential loop on random cells: 1e-10 in float64, 1e-5 in float32") {
    const std::size_t B = 3, T = 300, n = 6, m = 4;
    rng g(7);
    const auto xd = rand_array<double>({B, T, m}, g, -1, 1);
    const auto y0d = rand_array<double>({B, n}, g, -0.5, 0.5);
    const xt::xarray<float> xf = xd, y0f = y0d;
    const auto rnn_d = random_rnn<double>(n, m, 0.9, 11);
    const auto rnn_f = random_rnn<float>(n, m, 0.9, 11);
    const auto gru_d = random_gru<double>(n, m, 12);
    const auto gru_f = random_gru<float>(n, m, 12);
    const auto ref_rd = deer_sequential(rnn_d, y0d, xd), ref_gd = deer_sequential(gru_d, y0d, xd);
    const auto ref_rf = deer_sequential(rnn_f, y0f, xf), ref_gf = deer_sequential(gru_f, y0f, xf);
    for (auto meth : all_methods) {
        const std::string method = to_string(meth);
        CAPTURE(method);
        deer_options o;
        o.method = meth;
        auto a = deer_solve(rnn_d, y0d, xd, o);
        CHECK(a.report.converged);
        CHECK_FALSE(a.report.fallback);
        CHECK(max_abs_diff(a.y, ref_rd) < 1e-10);
        auto b = deer_solve(gru_d, y0d, xd, o);
        CHECK(b.report.converged);
        CHECK_FALSE(b.report.fallback);
        CHECK(max_abs_diff(b.y, ref_gd) < 1e-10);
        auto c = deer_solve(rnn_f, y0f, xf, o);
        CHECK(c.report.converged);
        CHECK_FALSE(c.report.fallback);
        CHECK(max_abs_diff(c.y, ref_rf) < 1e-5);
        auto d = deer_solve(gru_f, y0f, xf, o);
        CHECK(d.report.converged);
        CHECK_FALSE(d.report.fallback);
        CHECK(max_abs_diff(d.y, ref_gf) < 1e-5);
    }
    // unbatched inputs give an unbatched trajectory equal to one sequence of the batch
    const xt::xarray<double> x0 = xt::view(xd, 1), s0 = xt::view(y0d, 1), r0 = xt::view(ref_rd, 1);
    const auto one = deer_solve(rnn_d, s0, x0);
    CHECK(one.y.dimension() == 2);
    CHECK(max_abs_diff(one.y, r0) < 1e-10);
}

TEST_CASE("the engine's Jacobians: tanh RNN sech²(pre)·A; GRU at zero input and bias is ½(I + ½U_h)") {
    const std::size_t n = 4, m = 3, rows = 5;
    rng g(3);
    const auto cell = random_rnn<double>(n, m, 1.0, 5);
    const auto yp = rand_array<double>({rows, n}, g, -1, 1);
    const auto x = rand_array<double>({rows, m}, g, -1, 1);
    const auto J = deer_jacobian(cell, yp, x);
    const auto &A = cell.params[0], &U = cell.params[1], &b = cell.params[2];
    for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t i = 0; i < n; ++i) {
            double pre = b(i);
            for (std::size_t j = 0; j < n; ++j) pre += A(i, j) * yp(r, j);
            for (std::size_t k = 0; k < m; ++k) pre += U(i, k) * x(r, k);
            const double s2 = 1.0 / (std::cosh(pre) * std::cosh(pre));
            for (std::size_t j = 0; j < n; ++j) CHECK(J(r, i, j) == doctest::Approx(s2 * A(i, j)).epsilon(1e-13));
        }
    // GRU with zero biases, zero input, zero state
    auto gru = random_gru<double>(n, m, 9);
    for (std::size_t k : {2, 5, 8}) gru.params[k] = xt::zeros<double>({n});
    const auto Jg = deer_jacobian(gru, xt::xarray<double>(xt::zeros<double>({std::size_t(1), n})),
                                  xt::xarray<double>(xt::zeros<double>({std::size_t(1), m})));
    const auto& Uh = gru.params[7];
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t j = 0; j < n; ++j)
            CHECK(Jg(0, i, j) == doctest::Approx(0.5 * ((i == j ? 1.0 : 0.0) + 0.5 * Uh(i, j))).epsilon(1e-14));
}
