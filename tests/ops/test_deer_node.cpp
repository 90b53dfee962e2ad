// The DEER node inside tensor programs: its value equals the sequential recurrence, and gradcheck passes
// through it (to y0, the inputs, every cell parameter, and upstream nodes) for the tanh RNN and the GRU.
#include <doctest/doctest.h>

#include <xtensor/xarray.hpp>

#include "exprgrad/check/gradcheck.hpp"
#include "exprgrad/exprgrad.hpp"
#include "exprgrad/nn/init.hpp"
#include "exprgrad/ops/deer_node.hpp"

using namespace exprgrad;
using namespace exprgrad::ops;

namespace {
xt::xarray<double> randn(std::vector<std::size_t> shape, rng& gen, double s = 1.0) {
    xt::xarray<double> a = xt::xarray<double>::from_shape(shape);
    nn::init::normal(a, gen, 0.0, s);
    return a;
}
}  // namespace

TEST_CASE("DEER node: value equals the sequential recurrence; gradcheck through it") {
    rng gen(11);
    const std::size_t B = 2, T = 7, n = 3, m = 2;
    const auto y0 = randn({B, n}, gen), x = randn({B, T, m}, gen), A = randn({n, n}, gen, 0.5), U = randn({n, m}, gen),
               b = randn({n}, gen, 0.1);
    constexpr auto y = ops::deer_node(tanh_rnn_expr, tensor<0>, tensor<1>, tensor<2>, tensor<3>, tensor<4>);
    auto prog = value_and_grad(sum(square(y)), wrt<0, 1, 2, 3, 4>);
    auto [value, grads] = prog(y0, x, A, U, b);
    const auto ref = deer_sequential(tanh_rnn_cell(A, U, b), y0, x);
    CHECK(value == doctest::Approx(xt::sum(ref * ref)()).epsilon(1e-12));
    // the eager VJP gives the same gradients
    const auto g = deer_vjp(tanh_rnn_cell(A, U, b), y0, x, ref, 2.0 * ref);
    CHECK(xt::allclose(std::get<0>(grads), g.dy0, 1e-10, 1e-12));
    CHECK(xt::allclose(std::get<1>(grads), g.dx, 1e-10, 1e-12));
    CHECK(xt::allclose(std::get<2>(grads), g.dparams[0], 1e-10, 1e-12));
    auto r = check::gradcheck(sum(square(y)), y0, x, A, U, b);
    CHECK(r.ok);

    // Inputs computed upstream (a projection), a quasi-Newton node, the output read by a matmul.
    const auto xin = randn({B, T, 4}, gen), W = randn({4, m}, gen), V = randn({n, 2}, gen);
    constexpr auto up = ops::deer_node<deer_method::quasi>(tanh_rnn_expr, tensor<0>, matmul(tensor<1>, tensor<2>),
                                                           tensor<3>, tensor<4>, tensor<5>);
    auto r2 = check::gradcheck(sum(tanh(matmul(up, tensor<6>))), y0, xin, W, A, U, b, V);
    CHECK(r2.ok);
}

TEST_CASE("DEER node: GRU cell, unbatched shapes") {
    rng gen(12);
    const std::size_t T = 6, n = 2, m = 3;
    std::vector<xt::xarray<double>> p;
    for (int k = 0; k < 3; ++k) {
        p.push_back(randn({n, m}, gen, 0.7));
        p.push_back(randn({n, n}, gen, 0.7));
        p.push_back(randn({n}, gen, 0.1));
    }
    const auto y0 = randn({n}, gen), x = randn({T, m}, gen);
    constexpr auto y = ops::deer_node(gru_expr, tensor<0>, tensor<1>, tensor<2>, tensor<3>, tensor<4>, tensor<5>,
                                      tensor<6>, tensor<7>, tensor<8>, tensor<9>, tensor<10>);
    auto r = check::gradcheck(sum(square(y)), y0, x, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8]);
    CHECK(r.ok);
    auto prog = value_and_grad(sum(y), wrt<0>);
    auto [v, g] = prog(y0, x, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8]);
    const auto ref = deer_sequential(gru_cell(p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8]), y0, x);
    CHECK(v == doctest::Approx(xt::sum(ref)()).epsilon(1e-12));
    CHECK(std::get<0>(g).shape(0) == n);
}
