// ops/deer.hpp: gradcheck of deer_vjp on random tanh-RNN and GRU cells, and the fallback and overflow paths
// (split from test_deer.cpp for the compile-time budget).
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

namespace {
// Central differences of L = Σ c ⊙ y(θ) against deer_vjp, for every parameter, the inputs and y0.
// deer_vjp against central differences of deer_solve, through check::vjp_check: every element of each
// parameter, of x and of y0, random directions, and NaN propagation (ops/deer.hpp: a NaN input makes the
// output NaN where the recurrence is).
template <class Cell>
void gradcheck_vjp(Cell cell, xt::xarray<double> y0, xt::xarray<double> x, std::uint64_t seed) {
    using arrays = std::vector<xt::xarray<double>>;
    constexpr std::size_t P = Cell::num_params;
    // inputs: params[0..P), x, y0
    auto cell_of = [&](const arrays& in) {
        Cell c = cell;
        for (std::size_t k = 0; k < P; ++k) c.params[k] = in[k];
        return c;
    };
    auto f = [&](const arrays& in) { return xt::xarray<double>(deer_solve(cell_of(in), in[P + 1], in[P]).y); };
    auto vjp = [&](const arrays& in, const xt::xarray<double>& dy) {
        const Cell c = cell_of(in);
        const auto r = deer_solve(c, in[P + 1], in[P]);
        const auto g = deer_vjp(c, in[P + 1], in[P], r.y, dy);
        arrays out(g.dparams.begin(), g.dparams.end());
        out.push_back(g.dx);
        out.push_back(g.dy0);
        return out;
    };
    arrays in(cell.params.begin(), cell.params.end());
    in.push_back(x);
    in.push_back(y0);
    check::vjp_check_options o;
    o.rtol = 1e-7;
    o.max_elements = std::size_t(-1);  // every element, as the hand-written loop did
    o.seed = seed;
    const auto r = check::vjp_check(f, vjp, in, o);
    INFO(r.message());
    CHECK(r);
}
}  // namespace

TEST_CASE("gradcheck of deer_vjp (central differences): tanh RNN and GRU, batched") {
    rng g(21);
    const std::size_t B = 2, T = 7, n = 3, m = 2;
    const auto x = rand_array<double>({B, T, m}, g, -1, 1);
    const auto y0 = rand_array<double>({B, n}, g, -0.5, 0.5);
    gradcheck_vjp(random_rnn<double>(n, m, 1.2, 31), y0, x, 1);
    gradcheck_vjp(random_gru<double>(n, m, 32), y0, x, 2);
    // unbatched
    const xt::xarray<double> x1 = xt::view(x, 0), y1 = xt::view(y0, 0);
    gradcheck_vjp(random_rnn<double>(n, m, 0.8, 33), y1, x1, 3);
}

TEST_CASE("fallback: not converged within the cap gives the sequential trajectory and says so") {
    const std::size_t n = 8, T = 1000;
    const auto cell = tools::deer_instance::cell<double>(n, 1.0);
    const auto u = tools::deer_instance::inputs<double>(n, T);
    const xt::xarray<double> y0 = xt::zeros<double>({n});
    const auto ref = deer_sequential(cell, y0, u);
    deer_options o;
    o.method = deer_method::jacobi;
    o.max_iter = 5;  // jacobi needs 29 here
    const auto r = deer_solve(cell, y0, u, o);
    CHECK(r.report.iterations == 5);
    CHECK_FALSE(r.report.converged);
    CHECK(r.report.fallback);
    CHECK(max_abs_diff(r.y, ref) == 0.0);
    // without fallback the last iterate is returned, and it is not the solution yet
    o.fallback = false;
    const auto r2 = deer_solve(cell, y0, u, o);
    CHECK_FALSE(r2.report.fallback);
    CHECK(max_abs_diff(r2.y, ref) > 1e-6);
}

TEST_CASE("overflow: fixed_a on n=8, T=1000, g=2 overflows without the guard; the guard keeps it finite") {
    const std::size_t n = 8, T = 1000;
    const auto cell = tools::deer_instance::cell<double>(n, 2.0);
    const auto u = tools::deer_instance::inputs<double>(n, T);
    const xt::xarray<double> y0 = xt::zeros<double>({n});
    const auto ref = deer_sequential(cell, y0, u);
    deer_options o;
    o.method = deer_method::fixed_a;
    const auto r = deer_solve(cell, y0, u, o);
    CHECK(r.report.overflow_at > 0);
    CHECK(r.report.fallback);
    CHECK_FALSE(r.report.converged);
    CHECK(max_abs_diff(r.y, ref) == 0.0);
    o.guard = true;
    o.max_iter = 50;
    o.fallback = false;
    const auto g = deer_solve(cell, y0, u, o);
    CHECK(g.report.overflow_at == 0);
    CHECK(g.report.iterations == 50);
    for (double v : g.y) CHECK(std::isfinite(v));
}
