// What a compiled tensor program returns and how long it lives (issue #16's traps): a temporary
// program's gradients are owning arrays, a named program's are its reused workspace; gradients are
// assigned on each call, never accumulated; an argument the output does not depend on gets zeros of
// its shape. What must not compile is in tests/compile_fail/ (temporary blocks, extra arguments).
#include <doctest/doctest.h>

#include <cstdint>
#include <initializer_list>
#include <tuple>
#include <type_traits>
#include <vector>

#include <xtensor/xarray.hpp>

#include "exprgrad/exprgrad.hpp"
#include "random_arrays.hpp"

using namespace exprgrad;

namespace {
constexpr auto X = tensor<0>;
constexpr auto Y = tensor<1>;
constexpr auto Z = tensor<2>;

using test_util::random_array;
}  // namespace

TEST_CASE("a temporary program's gradients are owning arrays; a named program's are its workspace") {
    const auto a = random_array({3, 4}, 30), w = random_array({4, 2}, 31), y = random_array({3, 2}, 32);
    const auto loss = mean(square(matmul(X, Y) - Z));
    // The trap of issue #16: calling the temporary returned by value_and_grad. The gradients must
    // outlive the program, so they are arrays, not references into its destroyed workspace.
    auto [v, g] = value_and_grad(loss, wrt<0, 1>)(a, w, y);
    static_assert(std::is_same_v<std::tuple_element_t<0, decltype(g)>, xt::xarray<double>>);
    static_assert(std::is_same_v<std::tuple_element_t<1, decltype(g)>, xt::xarray<double>>);
    // Another program allocates after the temporary died (it would reuse the freed buffers).
    auto prog = value_and_grad(loss, wrt<0, 1>);
    auto [v2, g2] = prog(a, w, y);
    static_assert(std::is_same_v<std::tuple_element_t<0, decltype(g2)>, const xt::xarray<double>&>);
    CHECK(v == v2);
    CHECK(std::get<0>(g) == std::get<0>(g2));
    CHECK(std::get<1>(g) == std::get<1>(g2));
    // independently, by naive loops: R = XW - Y, dL/dX = (2/6) R Wᵀ, dL/dW = (2/6) Xᵀ R
    xt::xarray<double> res = xt::zeros<double>({3, 2}), dx = xt::zeros<double>({3, 4}), dw = xt::zeros<double>({4, 2});
    for (std::size_t i = 0; i < 3; ++i)
        for (std::size_t j = 0; j < 2; ++j) {
            res(i, j) = -y(i, j);
            for (std::size_t k = 0; k < 4; ++k) res(i, j) += a(i, k) * w(k, j);
        }
    for (std::size_t i = 0; i < 3; ++i)
        for (std::size_t j = 0; j < 2; ++j)
            for (std::size_t k = 0; k < 4; ++k) {
                dx(i, k) += res(i, j) * w(k, j) / 3;
                dw(k, j) += a(i, k) * res(i, j) / 3;
            }
    CHECK(xt::allclose(std::get<0>(g), dx, 1e-12, 1e-14));
    CHECK(xt::allclose(std::get<1>(g), dw, 1e-12, 1e-14));
}

TEST_CASE("value_and_grad assigns its gradients: each call's are fresh, never accumulated") {
    const auto a = random_array({3, 4}, 33), b = random_array({3, 4}, 34);
    auto prog = value_and_grad(sum(square(X)), wrt<0>);
    const xt::xarray<double> first = std::get<0>(prog(a).second);
    CHECK(xt::allclose(first, 2.0 * a));
    (void)prog(b);  // another input in between
    const auto [v, g] = prog(a);
    CHECK(std::get<0>(g) == first);  // the same gradient again, not 2x or a sum with b's
    CHECK(v == doctest::Approx(xt::sum(a * a)()));
}

TEST_CASE("the gradient of an argument the output does not depend on is zeros of its shape") {
    const auto a = random_array({3, 4}, 35), b = random_array({2, 5}, 36);
    auto prog = value_and_grad(sum(square(X)), wrt<0, 1>);  // tensor<1> is not read
    auto [v, g] = prog(a, b);
    const auto& gb = std::get<1>(g);
    REQUIRE(gb.dimension() == 2);
    CHECK(gb.shape()[0] == 2);
    CHECK(gb.shape()[1] == 5);
    CHECK(xt::amax(xt::abs(gb))() == 0.0);
    // read but not on a path to the output's dependence: the same rule
    auto q = value_and_grad(sum(square(X)) + sum(Y * 0_c), wrt<1>);
    const auto& gq = std::get<0>(q(a, b).second);
    CHECK(gq.shape() == b.shape());
    CHECK(xt::amax(xt::abs(gq))() == 0.0);
    // a compiled block: grad<I> of an unread argument after vjp
    auto blk = compile<double>(tanh(X), wrt<0, 1>);
    const auto& out = blk.forward(a, b);
    std::vector<double> dout(out.size(), 1.0);
    blk.vjp(dout.data());
    CHECK(blk.grad<1>().shape() == b.shape());
    CHECK(blk.grad<0>().shape() == a.shape());
    // a number argument's zero gradient is one element of rank 0
    auto s = value_and_grad(sum(X), wrt<0, 1>);
    CHECK(std::get<1>(s(a, 0.5).second).dimension() == 0);
    CHECK(std::get<1>(s(a, 0.5).second).size() == 1);
}
