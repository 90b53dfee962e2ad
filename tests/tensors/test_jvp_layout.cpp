// jvp and hvp per node family, part 4 (jvp_check.hpp): cross_entropy, the layout primitives, the nodes without
// a tangent.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <tuple>

#include <xtensor/xarray.hpp>
#include <xtensor/xtensor.hpp>

#include "jvp_check.hpp"

using namespace exprgrad;
using namespace jvp_check;

TEST_CASE("jvp and hvp of cross_entropy with an ignored row") {
    const xt::xarray<std::int64_t> t = {2, -1, 0, 3};
    check_family<0>(cross_entropy<-1>(X * X, tensor<1>), std::tuple{rnd({4, 5}, 20), t}, 21);
}

TEST_CASE("jvp and hvp of the layout primitives: permute, reshape, slice, concat, where, take_along_axis") {
    const auto laid = concat<1>(permute<1, 0>(reshape<4, 3>(X)), slice<1>(X, 1_c, 3_c));
    const auto picked = take_along_axis<1>(X, tensor<1>);
    const auto chosen = where(greater(X, W * 0_c), X * X, sin(X)) + where(less(X, W * 0_c), X, fc<-3.0>);
    const xt::xarray<std::int64_t> idx = {{3, 0}, {1, 1}, {2, 0}};
    check_family<0>(concat<1>(laid * laid, sin(picked) * picked), std::tuple{rnd({3, 4}, 22), idx}, 23);
    check_family<0>(chosen * chosen, std::tuple{rnd({3, 4}, 24), rnd({4}, 25)}, 26);
}

TEST_CASE("jvp and hvp: one_hot, comparisons and stop_gradient carry no tangent, embedding carries the table's") {
    const xt::xarray<std::int64_t> t = {1, 0, 3};
    check_family<0>(one_hot(tensor<1>, 4_c) * X * X + greater(X, X * X) * X, std::tuple{rnd({3, 4}, 27), t}, 28);
    // stop_gradient(x)·x has the tangent stop_gradient(x)·v, as its VJP treats stop_gradient(x) as a constant (so
    // finite differences of the value, which see x move inside it, are no reference here): the HVP of
    // sum(x · stop_gradient(x)) is 0, not 2v, and its directional derivative x·v, not 2x·v
    auto H = hvp(sum(X * stop_gradient(X)), wrt<0>);
    const xt::xarray<double> x = rnd({5}, 29), v = rnd({5}, 30);
    const auto [dd, hv] = H(x, v);
    CHECK(dd == doctest::Approx(xt::sum(x * v)()).epsilon(1e-12));
    CHECK(close(std::get<0>(hv), xt::zeros<double>({5}), 0));
    const xt::xarray<std::int64_t> rows = {{2, 0}, {1, 1}};
    check_family<0>(square(embedding(X, tensor<1>)), std::tuple{rnd({3, 4}, 31), rows}, 32);
}

// Logistic regression, f(w) = mean(softplus(Xw) − y·Xw): ∇f = Xᵀ(p − y)/n, H = Xᵀ diag(p(1 − p)) X / n.
