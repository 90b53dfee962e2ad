// Tensor expressions and compile-time reverse mode: a value and gradient against the closed form, elementwise
// maps against gradcheck (central finite differences in double) with broadcasting and fusion, CSE by type,
// shape errors, NaN and inf, and a steady-state call that allocates nothing. The other nodes have their own
// files: test_tensor_reductions.cpp, test_tensor_matmul_layout.cpp, test_tensor_softmax_losses.cpp.
#include <doctest/doctest.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <type_traits>

#include <xtensor/xarray.hpp>
#include <xtensor/xtensor.hpp>

#include "alloc_counter.hpp"
#include "exprgrad/exprgrad.hpp"
#include "expect_gradcheck.hpp"
#include "random_arrays.hpp"

using namespace exprgrad;

namespace {
constexpr auto X = tensor<0>;
constexpr auto Y = tensor<1>;
constexpr auto Z = tensor<2>;
constexpr auto x = var<0>;

using test_util::random_array;
using test_util::expect_gradcheck;
}  // namespace

TEST_CASE("value_and_grad of mean(square(matmul(X, W))) against the closed form") {
    xt::xarray<double> a = {{1.0, 2.0}, {3.0, 4.0}, {5.0, 6.0}};
    xt::xarray<double> w = {{0.5, -1.0}, {0.25, 2.0}};
    auto prog = value_and_grad(mean(square(matmul(X, Y))), wrt<1>);
    auto [loss, grads] = prog(a, w);
    // XW = [[1, 3], [2.5, 5], [4, 7]]; mean of squares = 106.25 / 6; dW = (2/6) Xᵀ(XW)
    CHECK(loss == doctest::Approx(106.25 / 6).epsilon(1e-15));
    const auto& dw = std::get<0>(grads);
    CHECK(dw(0, 0) == doctest::Approx(28.5 / 3));
    CHECK(dw(0, 1) == doctest::Approx(53.0 / 3));
    CHECK(dw(1, 0) == doctest::Approx(36.0 / 3));
    CHECK(dw(1, 1) == doctest::Approx(68.0 / 3));
}

TEST_CASE("gradcheck: elementwise maps with broadcasting and fusion") {
    const auto a = random_array({3, 4}, 1), b = random_array({4}, 2), c = random_array({3, 1}, 3);
    expect_gradcheck(sum(X * Y + Z), a, b, c);
    expect_gradcheck(sum(tanh(X) * sigmoid(Y) / (square(Z) + 1_c)), a, b, c);
    expect_gradcheck(mean(map(log(1_c + exp(x)), X * Y)), a, b);
    expect_gradcheck(sum(exp(X) - X * X), a);
    expect_gradcheck(sum(relu(X) + softplus(X)), a);
    // a scalar argument broadcasts and gets the summed gradient
    const auto r = check::gradcheck(sum(X * Y), a, 0.7);
    CHECK(r.ok);
}

TEST_CASE("maps fuse: map(f, map(g, x)) is one node reading x") {
    using fused = decltype(exp(tanh(X) * 2_c));
    static_assert(std::is_same_v<tensors::tensor_nodes_t<fused>, sym::meta::type_list<tensors::Input<0>, fused>>);
    // the repeated argument is read once
    using sq = decltype(X * X);
    static_assert(sym::meta::type_list<tensors::Input<0>, sq>::size == tensors::tensor_nodes_t<sq>::size);
    CHECK(true);
}

TEST_CASE("shape errors name the op and both shapes") {
    const auto a = random_array({3, 4}, 21), b = random_array({5, 2}, 22);
    auto p = value_and_grad(sum(matmul(X, Y)), wrt<0>);
    CHECK_THROWS_WITH_AS(p(a, b), "exprgrad::matmul: shapes (3, 4) and (5, 2) do not multiply", std::invalid_argument);
    auto q = value_and_grad(sum(X + Y), wrt<0>);
    CHECK_THROWS_WITH_AS(q(a, random_array({3}, 23)), "exprgrad::map: shapes (3, 4) and (3,) do not broadcast",
                         std::invalid_argument);
    auto r = value_and_grad(X * Y, wrt<0>);
    CHECK_THROWS_AS(r(a, a), std::invalid_argument);  // not a scalar
    xt::xarray<long> idx = {0, 9};
    auto e = value_and_grad(sum(embedding(X, Y)), wrt<0>);
    CHECK_THROWS_WITH_AS(e(a, idx), "exprgrad::embedding: index 9 at position 1 is out of range for a table of 3 rows",
                         std::invalid_argument);
}

TEST_CASE("options are part of the type: nodes that differ only in an option are not merged") {
    using s0 = decltype(sum<0>(X));
    using s1 = decltype(sum<1>(X));
    static_assert(!std::is_same_v<s0, s1>);
    using both = decltype(sum(s0{}) + sum(s1{}));
    static_assert(tensors::tensor_nodes_t<both>::size == 6);  // X, sum<0>, sum<1>, two full sums, the map
    // the same subexpression used twice is one node
    using twice = decltype(sum(matmul(X, Y)) * sum(matmul(X, Y)));
    static_assert(tensors::tensor_nodes_t<twice>::size == 5);  // X, Y, matmul, sum, map
    CHECK(true);
}

TEST_CASE("NaN and inf in inputs propagate, no crash") {
    xt::xarray<double> a = {{1.0, std::nan("")}, {2.0, 3.0}};
    auto p = value_and_grad(sum(exp(X)), wrt<0>);
    CHECK(std::isnan(p(a).first));
    xt::xarray<double> b = {{1.0, INFINITY}, {2.0, 3.0}};
    CHECK(std::isinf(p(b).first));
}

TEST_CASE("a steady-state call allocates nothing; float programs work the same") {
    xt::xarray<float> a = xt::ones<float>({16, 8});
    xt::xarray<float> w = xt::ones<float>({8, 4}) * 0.1f;
    xt::xarray<long> t = xt::zeros<long>({16});
    auto prog = value_and_grad(cross_entropy(tanh(matmul(X, Y)), Z) + mean(square(Y)), wrt<0, 1>);
    auto [l1, g1] = prog(a, w, t);
    const long before = exprgrad_test::allocation_count();
    auto [l2, g2] = prog(a, w, t);
    const long after = exprgrad_test::allocation_count();
    if (exprgrad_test::alloc_counting_enabled()) {
        CHECK(after - before == 0);
        // the counter works: a fresh program allocates its workspace
        auto fresh = value_and_grad(cross_entropy(tanh(matmul(X, Y)), Z) + mean(square(Y)), wrt<0, 1>);
        const long b2 = exprgrad_test::allocation_count();
        (void)fresh(a, w, t);
        CHECK(exprgrad_test::allocation_count() - b2 > 0);
    } else {
        MESSAGE("allocation counting is off under AddressSanitizer");
    }
    CHECK(l1 == l2);
    static_assert(std::is_same_v<decltype(l2), float>);
}
