// Tensor expressions and compile-time reverse mode: the reductions (sum, mean, logsumexp, max, prod, over an axis
// and over all elements) against gradcheck (central finite differences in double) and naive values, a product
// with zero entries, and logsumexp exact at scores of ±1e4.
#include <doctest/doctest.h>

#include <cmath>

#include <xtensor/xarray.hpp>

#include "exprgrad/exprgrad.hpp"
#include "expect_gradcheck.hpp"
#include "random_arrays.hpp"

using namespace exprgrad;

namespace {
constexpr auto X = tensor<0>;

using test_util::random_array;
using test_util::expect_gradcheck;
}  // namespace

TEST_CASE("gradcheck: reductions over an axis and over all elements") {
    const auto a = random_array({3, 4, 5}, 4);
    expect_gradcheck(sum(square(sum<1>(X))), a);
    expect_gradcheck(sum(square(mean<-1>(X))), a);
    expect_gradcheck(sum(square(logsumexp<0>(X))), a);
    expect_gradcheck(sum(max<2>(X) * max<2>(X)), a);
    expect_gradcheck(logsumexp(X), a);
    expect_gradcheck(sum(prod<1>(X)), a);
    expect_gradcheck(prod(X), random_array({6}, 24, 0.5, 1.5));
    // zero-safe: the gradient of a product with a zero entry is the product of the others
    xt::xarray<double> z = {2.0, 0.0, 3.0, 0.0};
    xt::xarray<double> z1 = {2.0, 0.0, 3.0, 5.0};
    auto pp = value_and_grad(prod(X), wrt<0>);
    CHECK(std::get<0>(pp(z1).second)(1) == 30.0);
    CHECK(std::get<0>(pp(z).second)(1) == 0.0);
    // values against naive loops
    xt::xarray<double> v = {{1.0, 5.0, 3.0}, {-2.0, 0.5, 4.0}};
    auto p = value_and_grad(sum(max<1>(X)), wrt<0>);
    CHECK(p(v).first == 9.0);
    auto q = value_and_grad(sum(logsumexp<1>(X)), wrt<0>);
    const double naive = std::log(std::exp(1.0) + std::exp(5.0) + std::exp(3.0)) +
                         std::log(std::exp(-2.0) + std::exp(0.5) + std::exp(4.0));
    CHECK(q(v).first == doctest::Approx(naive).epsilon(1e-14));
}

TEST_CASE("logsumexp and softmax are exact for scores of ±1e4") {
    xt::xarray<double> v = {{1e4, 1e4 - 1, -1e4}};
    auto p = value_and_grad(sum(logsumexp<1>(X)), wrt<0>);
    auto [val, g] = p(v);
    CHECK(val == doctest::Approx(1e4 + std::log(1 + std::exp(-1.0))).epsilon(1e-15));
    CHECK(std::get<0>(g)(0, 2) == 0.0);
    CHECK(std::isfinite(std::get<0>(g)(0, 0)));
}
