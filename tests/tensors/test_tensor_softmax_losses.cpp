// Tensor expressions and compile-time reverse mode: softmax, log_softmax, rms_norm, layer_norm, embedding and
// cross_entropy against gradcheck (central finite differences in double), and cross_entropy's value, ignored
// positions and out-of-range target against a naive computation.
#include <doctest/doctest.h>

#include <cmath>
#include <stdexcept>

#include <xtensor/xarray.hpp>

#include "exprgrad/exprgrad.hpp"
#include "expect_gradcheck.hpp"
#include "random_arrays.hpp"

using namespace exprgrad;

namespace {
constexpr auto X = tensor<0>;
constexpr auto Y = tensor<1>;
constexpr auto Z = tensor<2>;

using test_util::random_array;
using test_util::expect_gradcheck;
}  // namespace

TEST_CASE("gradcheck: softmax, log_softmax, norms, embedding, cross_entropy") {
    const auto a = random_array({3, 5}, 12, -3, 3);
    const auto w = random_array({5}, 13, 0.5, 1.5), b = random_array({5}, 14);
    expect_gradcheck(sum(square(softmax(X)) * Y), a, random_array({3, 5}, 15));
    expect_gradcheck(sum(log_softmax(X) * Y), a, random_array({3, 5}, 16));
    expect_gradcheck(sum(softmax<0>(X) * Y), a, random_array({3, 5}, 17));
    expect_gradcheck(sum(rms_norm(X, Y) * Z), a, w, random_array({3, 5}, 18));
    expect_gradcheck(sum(layer_norm(X, Y, Z) * tensor<3>), a, w, b, random_array({3, 5}, 19));
    xt::xarray<long> idx = {{0, 2}, {2, 1}};
    expect_gradcheck(sum(square(embedding(X, Y))), random_array({3, 4}, 20), idx);
    xt::xarray<long> targets = {1, 4, -100};
    expect_gradcheck(cross_entropy(X, Y), a, targets);
}

TEST_CASE("cross_entropy: the mean over non-ignored positions against a naive value") {
    xt::xarray<double> z = {{1.0, 2.0, 0.5}, {0.1, 0.2, 0.3}, {3.0, -1.0, 0.0}};
    xt::xarray<long> t = {2, -100, 0};
    auto p = value_and_grad(cross_entropy(X, Y), wrt<0>);
    auto [loss, g] = p(z, t);
    auto ce = [&](int r, int k) {
        double s = 0;
        for (int j = 0; j < 3; ++j) s += std::exp(z(r, j));
        return std::log(s) - z(r, k);
    };
    CHECK(loss == doctest::Approx((ce(0, 2) + ce(2, 0)) / 2).epsilon(1e-14));
    CHECK(std::get<0>(g)(1, 0) == 0.0);  // ignored row
    // every position ignored: 0 and zero gradients
    xt::xarray<long> none = {-100, -100, -100};
    auto [l0, g0] = p(z, none);
    CHECK(l0 == 0.0);
    CHECK(xt::amax(xt::abs(std::get<0>(g0)))() == 0.0);
    // a target out of range throws naming it
    xt::xarray<long> bad = {2, 7, 0};
    CHECK_THROWS_WITH_AS(p(z, bad), "exprgrad::cross_entropy: target 7 at position 1 is out of range for 3 classes",
                         std::invalid_argument);
}
