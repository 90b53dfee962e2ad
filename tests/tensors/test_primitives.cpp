// The tensor primitives of issue #17, part one (stop_gradient, comparisons, where, iota, permute;
// the rest in test_primitives_indexing.cpp): values against naive loops written here, gradients
// against check::gradcheck (central finite differences in double), shape errors by message.
#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include <xtensor/xarray.hpp>

#include "exprgrad/exprgrad.hpp"
#include "primitives_util.hpp"

using namespace exprgrad;
using namespace primitives_test;

// ---------------------------------------------------------------------------------------------
// stop_gradient

TEST_CASE("stop_gradient: the value passes, the gradient does not") {
    const auto a = random_array({3, 4}, 11), b = random_array({3, 4}, 12);
    check_close(eval(stop_gradient(X), a), a, 0);
    // d/dX sum(X * sg(X)) = sg(X) = X, not 2X; d/dY sum(X * sg(Y)) = 0
    auto prog = value_and_grad(sum(X * stop_gradient(X) + X * stop_gradient(Y)), wrt<0, 1>);
    auto [v, g] = prog(a, b);
    double want = 0;
    for (std::size_t i = 0; i < a.size(); ++i) want += a.data()[i] * (a.data()[i] + b.data()[i]);
    CHECK(v == doctest::Approx(want));
    check_close(std::get<0>(g), a + b);
    check_close(std::get<1>(g), xt::zeros<double>({3, 4}), 0);
    // the other argument still gets its ordinary gradient
    expect_gradcheck(sum(tanh(X) * stop_gradient(Y)), wrt<0>, a, b);
}

// ---------------------------------------------------------------------------------------------
// comparisons

TEST_CASE("comparisons: 0/1 with broadcasting, IEEE NaN rules, zero gradient") {
    xt::xarray<double> a = random_array({3, 4}, 21);
    xt::xarray<double> b = random_array({4}, 22);
    a(0, 1) = b(1);  // a tie
    a(2, 2) = std::numeric_limits<double>::quiet_NaN();
    const auto naive = [&](auto rel) {
        xt::xarray<double> r = xt::zeros<double>({3, 4});
        for (std::size_t i = 0; i < 3; ++i)
            for (std::size_t j = 0; j < 4; ++j) r(i, j) = rel(a(i, j), b(j)) ? 1.0 : 0.0;
        return r;
    };
    check_close(eval(less(X, Y), a, b), naive([](double p, double q) { return p < q; }), 0);
    check_close(eval(less_equal(X, Y), a, b), naive([](double p, double q) { return p <= q; }), 0);
    check_close(eval(greater(X, Y), a, b), naive([](double p, double q) { return p > q; }), 0);
    check_close(eval(greater_equal(X, Y), a, b), naive([](double p, double q) { return p >= q; }), 0);
    check_close(eval(equal(X, Y), a, b), naive([](double p, double q) { return p == q; }), 0);
    check_close(eval(not_equal(X, Y), a, b), naive([](double p, double q) { return p != q; }), 0);
    CHECK(eval(equal(X, Y), a, b)(0, 1) == 1.0);
    CHECK(eval(less_equal(X, Y), a, b)(2, 2) == 0.0);
    CHECK(eval(not_equal(X, Y), a, b)(2, 2) == 1.0);
    // a number argument broadcasts
    check_close(eval(greater(X, Y), xt::xarray<double>{1.0, 2.0, 3.0}, 2.0), xt::xarray<double>{0.0, 0.0, 1.0}, 0);

    // the comparison is a constant for the gradient: d/dX sum(less(X, Y) * X) = less(X, Y)
    const auto c = random_array({3, 4}, 23), d = random_array({4}, 24);
    auto prog = value_and_grad(sum(less(X, Y) * X), wrt<0, 1>);
    auto [v, g] = prog(c, d);
    (void)v;
    xt::xarray<double> mask = xt::zeros<double>({3, 4});
    for (std::size_t i = 0; i < 3; ++i)
        for (std::size_t j = 0; j < 4; ++j) mask(i, j) = c(i, j) < d(j) ? 1.0 : 0.0;
    check_close(std::get<0>(g), mask, 0);
    check_close(std::get<1>(g), xt::zeros<double>({4}), 0);

    CHECK(message_of([&] { (void)eval(less(X, Y), c, random_array({3}, 1)); }) ==
          "exprgrad::less: shapes (3, 4) and (3,) do not broadcast");
}

// ---------------------------------------------------------------------------------------------
// where

TEST_CASE("where: selects with broadcasting, routes the gradient, none to cond") {
    xt::xarray<double> cond = random_array({3, 1}, 31);
    cond(1, 0) = std::numeric_limits<double>::quiet_NaN();  // NaN selects b
    const auto a = random_array({3, 4}, 32), b = random_array({4}, 33);
    xt::xarray<double> want = xt::zeros<double>({3, 4});
    for (std::size_t i = 0; i < 3; ++i)
        for (std::size_t j = 0; j < 4; ++j) want(i, j) = cond(i, 0) > 0 ? a(i, j) : b(j);
    check_close(eval(where(X, Y, Z), cond, a, b), want, 0);
    CHECK(eval(where(X, Y, Z), cond, a, b)(1, 2) == b(2));

    // cond held fixed (a step has no useful finite difference); a and b checked
    const auto cond2 = random_array({3, 1}, 34);
    expect_gradcheck(sum(square(where(X, Y, Z))), wrt<1, 2>, cond2, a, b);
    expect_gradcheck(sum(where(greater(Y, Z), Y, Z)), wrt<1, 2>, cond2, a, b);  // the elementwise maximum
    // a uniform adjoint, against the naive routing
    auto prog = value_and_grad(sum(where(X, Y, Z)), wrt<0, 1, 2>);
    auto [v, g] = prog(cond2, a, b);
    (void)v;
    xt::xarray<double> da = xt::zeros<double>({3, 4}), db = xt::zeros<double>({4});
    for (std::size_t i = 0; i < 3; ++i)
        for (std::size_t j = 0; j < 4; ++j) (cond2(i, 0) > 0 ? da(i, j) : db(j)) += 1;
    check_close(std::get<0>(g), xt::zeros<double>({3, 1}), 0);
    check_close(std::get<1>(g), da, 0);
    check_close(std::get<2>(g), db, 0);

    CHECK(message_of([&] { (void)eval(where(X, Y, Z), cond, a, random_array({5}, 1)); }) ==
          "exprgrad::where: shapes (3, 1), (3, 4) and (5,) (cond, a, b) do not broadcast");
}

// ---------------------------------------------------------------------------------------------
// iota

TEST_CASE("iota: the index along an axis, zero gradient, causal masks") {
    const auto s = random_array({2, 3, 4}, 41);
    for (int axis = 0; axis < 3; ++axis) {
        xt::xarray<double> want = xt::zeros<double>({2, 3, 4});
        for (std::size_t i = 0; i < 2; ++i)
            for (std::size_t j = 0; j < 3; ++j)
                for (std::size_t k = 0; k < 4; ++k)
                    want(i, j, k) = static_cast<double>(axis == 0 ? i : axis == 1 ? j : k);
        const auto got = axis == 0 ? eval(iota<0>(X), s) : axis == 1 ? eval(iota<1>(X), s) : eval(iota<-1>(X), s);
        check_close(got, want, 0);
    }
    // an integer array gives only its shape
    const xt::xarray<int> ints = {{7, 8, 9}};
    check_close(eval(iota<1>(X), ints), xt::xarray<double>{{0.0, 1.0, 2.0}}, 0);

    // causal masking of scores [T, T]: keys j > i replaced by -1e9
    const auto scores = random_array({4, 4}, 42);
    const auto masked = eval(where(greater(iota<1>(X), iota<0>(X)), Y, X), scores, -1e9);
    for (std::size_t i = 0; i < 4; ++i)
        for (std::size_t j = 0; j < 4; ++j) CHECK(masked(i, j) == (j > i ? -1e9 : scores(i, j)));
    // the gradient flows only through the kept scores (a small fill keeps the finite difference exact)
    expect_gradcheck(sum(square(where(greater(iota<1>(X), iota<0>(X)), Y, X))), wrt<0>, scores, 0.5);

    CHECK(message_of([&] { (void)eval(iota<3>(X), s); }) ==
          "exprgrad::iota: axis 3 is out of range for a tensor of rank 3");
}

// ---------------------------------------------------------------------------------------------
// permute

TEST_CASE("permute: any axis order, the inverse permutation as VJP") {
    const auto a = random_array({2, 3, 4}, 51);
    const auto p = eval(permute<2, 0, 1>(X), a);
    REQUIRE(p.shape() == std::vector<std::size_t>{4, 2, 3});
    for (std::size_t i = 0; i < 2; ++i)
        for (std::size_t j = 0; j < 3; ++j)
            for (std::size_t k = 0; k < 4; ++k) CHECK(p(k, i, j) == a(i, j, k));
    const auto b = random_array({2, 3, 4, 5}, 52);
    const auto q = eval(permute<0, 2, 1, 3>(X), b);
    REQUIRE(q.shape() == std::vector<std::size_t>{2, 4, 3, 5});
    for (std::size_t i = 0; i < 2; ++i)
        for (std::size_t j = 0; j < 3; ++j)
            for (std::size_t k = 0; k < 4; ++k)
                for (std::size_t l = 0; l < 5; ++l) CHECK(q(i, k, j, l) == b(i, j, k, l));
    // identity round trip
    check_close(eval(permute<1, 2, 0>(permute<2, 0, 1>(X)), a), a, 0);
    expect_gradcheck(sum(tanh(permute<2, 0, 1>(X)) * Y), a, random_array({4, 2, 3}, 53));
    expect_gradcheck(sum(permute<1, 0>(X)), random_array({3, 5}, 54));  // a uniform adjoint
    CHECK(message_of([&] { (void)eval(permute<1, 0>(X), a); }) ==
          "exprgrad::permute: axes (1, 0) need a tensor of rank 2, got shape (2, 3, 4)");
}
