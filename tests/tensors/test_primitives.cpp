// The tensor primitives of issue #17 (stop_gradient, comparisons, where, iota, permute, slice and
// concat, batched matmul, take_along_axis, one_hot): values against naive loops written here,
// gradients against check::gradcheck (central finite differences in double), shape errors by message.
#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <limits>
#include <stdexcept>
#include <string>
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

template <class E, class... Args>
void expect_gradcheck(E e, const Args&... args) {
    const auto r = check::gradcheck(e, args...);
    INFO(r.message());
    CHECK(r.ok);
    CHECK(r.checked > 0);
}

/// The forward value of e on the arguments, as an owning array.
template <class E, class... Args>
xt::xarray<double> eval(E, const Args&... args) {
    tensors::program<double, E, std::integer_sequence<int>> p;
    const auto& v = p.forward(args...);
    xt::xarray<double> out = xt::xarray<double>::from_shape(v.shape.xshape());
    std::copy(v.data, v.data + v.size(), out.begin());
    return out;
}

void check_close(const xt::xarray<double>& got, const xt::xarray<double>& want, double tol = 1e-12) {
    REQUIRE(got.shape() == want.shape());
    for (std::size_t i = 0; i < got.size(); ++i) {
        INFO("flat index " << i);
        if (std::isnan(want.data()[i])) {
            CHECK(std::isnan(got.data()[i]));
        } else {
            CHECK(std::abs(got.data()[i] - want.data()[i]) <= tol * std::max(1.0, std::abs(want.data()[i])));
        }
    }
}

template <class F>
std::string message_of(F&& f) {
    try {
        f();
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    return "(no exception)";
}
}  // namespace

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
                for (std::size_t k = 0; k < 4; ++k) want(i, j, k) = static_cast<double>(axis == 0 ? i : axis == 1 ? j : k);
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

// ---------------------------------------------------------------------------------------------
// slice and concat

TEST_CASE("slice: run-time bounds along any axis; the VJP scatters into zeros") {
    const auto a = random_array({3, 5, 2}, 61);
    const auto s = eval(slice<1>(X, Y, Z), a, 1, 4);
    REQUIRE(s.shape() == std::vector<std::size_t>{3, 3, 2});
    for (std::size_t i = 0; i < 3; ++i)
        for (std::size_t j = 0; j < 3; ++j)
            for (std::size_t k = 0; k < 2; ++k) CHECK(s(i, j, k) == a(i, j + 1, k));
    const auto s0 = eval(slice<0>(X, 2_c, 3_c), a);
    REQUIRE(s0.shape() == std::vector<std::size_t>{1, 5, 2});
    for (std::size_t j = 0; j < 5; ++j)
        for (std::size_t k = 0; k < 2; ++k) CHECK(s0(0, j, k) == a(2, j, k));
    const auto s2 = eval(slice<-1>(X, 1_c, 2_c), a);
    REQUIRE(s2.shape() == std::vector<std::size_t>{3, 5, 1});
    for (std::size_t i = 0; i < 3; ++i)
        for (std::size_t j = 0; j < 5; ++j) CHECK(s2(i, j, 0) == a(i, j, 1));
    CHECK(eval(slice<1>(X, Y, Z), a, 2, 2).size() == 0);

    expect_gradcheck(sum(square(slice<1>(X, Y, Z))), wrt<0>, a, 1, 4);
    auto prog = value_and_grad(sum(slice<1>(X, 1_c, 4_c)), wrt<0>);
    auto [v, g] = prog(a);
    (void)v;
    for (std::size_t i = 0; i < 3; ++i)
        for (std::size_t j = 0; j < 5; ++j)
            for (std::size_t k = 0; k < 2; ++k) CHECK(std::get<0>(g)(i, j, k) == (j >= 1 && j < 4 ? 1.0 : 0.0));

    CHECK(message_of([&] { (void)eval(slice<1>(X, Y, Z), a, 2, 6); }) ==
          "exprgrad::slice: bounds [2, 6) along axis 1 of shape (3, 5, 2) must satisfy 0 <= begin <= end <= 5");
    CHECK(message_of([&] { (void)eval(slice<1>(X, Y, Z), a, 3, 2); }).find("bounds [3, 2)") != std::string::npos);
    CHECK(message_of([&] { (void)eval(slice<1>(X, Y, Z), a, 0.5, 2); }) ==
          "exprgrad::slice: begin must be an integer, got 0.500000");
}

TEST_CASE("concat along every axis, and slice undoes it") {
    const auto a = random_array({2, 3, 4}, 71);
    const auto b0 = random_array({1, 3, 4}, 72), b1 = random_array({2, 2, 4}, 73), b2 = random_array({2, 3, 5}, 74);
    const auto c0 = eval(concat<0>(X, Y), a, b0);
    const auto c1 = eval(concat<1>(X, Y), a, b1);
    const auto c2 = eval(concat<2>(X, Y), a, b2);
    REQUIRE(c0.shape() == std::vector<std::size_t>{3, 3, 4});
    REQUIRE(c1.shape() == std::vector<std::size_t>{2, 5, 4});
    REQUIRE(c2.shape() == std::vector<std::size_t>{2, 3, 9});
    for (std::size_t i = 0; i < 3; ++i)
        for (std::size_t j = 0; j < 3; ++j)
            for (std::size_t k = 0; k < 4; ++k) CHECK(c0(i, j, k) == (i < 2 ? a(i, j, k) : b0(i - 2, j, k)));
    for (std::size_t i = 0; i < 2; ++i)
        for (std::size_t j = 0; j < 5; ++j)
            for (std::size_t k = 0; k < 4; ++k) CHECK(c1(i, j, k) == (j < 3 ? a(i, j, k) : b1(i, j - 3, k)));
    for (std::size_t i = 0; i < 2; ++i)
        for (std::size_t j = 0; j < 3; ++j)
            for (std::size_t k = 0; k < 9; ++k) CHECK(c2(i, j, k) == (k < 4 ? a(i, j, k) : b2(i, j, k - 4)));
    check_close(eval(slice<1>(concat<1>(X, Y), 0_c, 3_c), a, b1), a, 0);
    check_close(eval(concat<-1>(X, Y), a, b2), c2, 0);
    expect_gradcheck(sum(square(concat<0>(X, Y))), a, b0);
    expect_gradcheck(sum(square(concat<1>(X, Y))), a, b1);
    expect_gradcheck(sum(square(concat<2>(X, Y))), a, b2);
}

// ---------------------------------------------------------------------------------------------
// batched matmul

namespace {
// naive [.., M, K]·[.., K, N] over rank-4 outputs, operands broadcast by index clamping
xt::xarray<double> naive_matmul4(const xt::xarray<double>& a4, const xt::xarray<double>& b4) {
    const std::size_t B0 = std::max(a4.shape()[0], b4.shape()[0]), B1 = std::max(a4.shape()[1], b4.shape()[1]);
    const std::size_t M = a4.shape()[2], K = a4.shape()[3], N = b4.shape()[3];
    xt::xarray<double> c = xt::zeros<double>({B0, B1, M, N});
    for (std::size_t p = 0; p < B0; ++p)
        for (std::size_t q = 0; q < B1; ++q)
            for (std::size_t i = 0; i < M; ++i)
                for (std::size_t j = 0; j < N; ++j) {
                    double s = 0;
                    for (std::size_t k = 0; k < K; ++k)
                        s += a4(a4.shape()[0] == 1 ? 0 : p, a4.shape()[1] == 1 ? 0 : q, i, k) *
                             b4(b4.shape()[0] == 1 ? 0 : p, b4.shape()[1] == 1 ? 0 : q, k, j);
                    c(p, q, i, j) = s;
                }
    return c;
}
}  // namespace

TEST_CASE("matmul: rank-4 operands and broadcast batch axes") {
    const auto a = random_array({2, 3, 5, 4}, 81), b = random_array({2, 3, 4, 5}, 82);
    check_close(eval(matmul(X, Y), a, b), naive_matmul4(a, b));
    expect_gradcheck(sum(square(matmul(X, Y))), a, b);

    // broadcast: [2, 1, 5, 4]·[3, 4, 6] -> [2, 3, 5, 6]
    const auto c = random_array({2, 1, 5, 4}, 83), d = random_array({3, 4, 6}, 84);
    xt::xarray<double> d4 = d;
    d4.reshape({1, 3, 4, 6});
    check_close(eval(matmul(X, Y), c, d), naive_matmul4(c, d4));
    expect_gradcheck(sum(square(matmul(X, Y))), c, d);
    // a shared left factor [M, K]·[B, K, N]
    const auto e = random_array({5, 4}, 85), f = random_array({3, 4, 2}, 86);
    expect_gradcheck(sum(square(matmul(X, Y))), e, f);

    // the uniform adjoint of a sum (row and column sums) against the buffer adjoint of sum(·Z), Z = 1
    const xt::xarray<double> ones = xt::ones<double>({2, 3, 5, 6});
    auto uni = value_and_grad(sum(matmul(X, Y)), wrt<0, 1>);
    auto buf = value_and_grad(sum(matmul(X, Y) * Z), wrt<0, 1>);
    auto [v1, g1] = uni(c, d);
    auto [v2, g2] = buf(c, d, ones);
    CHECK(v1 == doctest::Approx(v2));
    check_close(std::get<0>(g1), std::get<0>(g2));
    check_close(std::get<1>(g1), std::get<1>(g2));

    CHECK(message_of([&] { (void)eval(matmul(X, Y), random_array({2, 3, 5, 4}, 1), random_array({4, 4, 5}, 2)); }) ==
          "exprgrad::matmul: shapes (2, 3, 5, 4) and (4, 4, 5) do not multiply");
}

// ---------------------------------------------------------------------------------------------
// take_along_axis and one_hot

TEST_CASE("take_along_axis: picks along an axis; the VJP scatters, adding repeats") {
    const auto x = random_array({2, 4, 3}, 91);
    const xt::xarray<int> idx = {{{3, 0, 1}, {3, 3, 2}}, {{0, 1, 2}, {1, 1, 1}}};  // [2, 2, 3]
    const auto y = eval(take_along_axis<1>(X, Y), x, idx);
    REQUIRE(y.shape() == std::vector<std::size_t>{2, 2, 3});
    for (std::size_t i = 0; i < 2; ++i)
        for (std::size_t j = 0; j < 2; ++j)
            for (std::size_t k = 0; k < 3; ++k) CHECK(y(i, j, k) == x(i, static_cast<std::size_t>(idx(i, j, k)), k));
    expect_gradcheck(sum(square(take_along_axis<1>(X, Y))), wrt<0>, x, idx);
    // last axis, one pick per row: the target logits
    xt::xarray<int> t = {{2, 0, 1, 2}, {1, 1, 0, 0}};
    t.reshape({2, 4, 1});
    const auto z = eval(take_along_axis<-1>(X, Y), x, t);
    for (std::size_t i = 0; i < 2; ++i)
        for (std::size_t j = 0; j < 4; ++j) CHECK(z(i, j, 0) == x(i, j, static_cast<std::size_t>(t(i, j, 0))));
    expect_gradcheck(sum(take_along_axis<-1>(X, Y)), wrt<0>, x, t);

    const xt::xarray<int> bad = {{{3, 0, 4}, {3, 3, 2}}, {{0, 1, 2}, {1, 1, 1}}};
    CHECK(message_of([&] { (void)eval(take_along_axis<1>(X, Y), x, bad); }) ==
          "exprgrad::take_along_axis: index 4 at position 2 is out of range [0, 4) along axis 1 of extent 4");
    const xt::xarray<int> wrong = xt::zeros<int>({2, 2, 2});
    CHECK(message_of([&] { (void)eval(take_along_axis<1>(X, Y), x, wrong); }) ==
          "exprgrad::take_along_axis: x of shape (2, 4, 3) and indices of shape (2, 2, 2) must have the same rank "
          "and agree outside axis 1");
}

TEST_CASE("one_hot: a new last axis, zero gradient; with log_softmax it is cross-entropy") {
    const xt::xarray<int> idx = {{2, 0}, {4, 1}, {3, 3}};
    const auto oh = eval(one_hot(X, 5_c), idx);
    REQUIRE(oh.shape() == std::vector<std::size_t>{3, 2, 5});
    for (std::size_t i = 0; i < 3; ++i)
        for (std::size_t j = 0; j < 2; ++j)
            for (std::size_t c = 0; c < 5; ++c) CHECK(oh(i, j, c) == (static_cast<int>(c) == idx(i, j) ? 1.0 : 0.0));
    check_close(eval(one_hot(X, Y), idx, 5), oh, 0);

    // -sum(one_hot(t) * log_softmax(z)) against the naive cross-entropy sum
    const auto logits = random_array({4, 5}, 101);
    xt::xarray<int> t = xt::zeros<int>({4});
    t(0) = 1, t(1) = 4, t(2) = 0, t(3) = 1;
    double want = 0;
    for (std::size_t i = 0; i < 4; ++i) {
        double m = -1e300, s = 0;
        for (std::size_t c = 0; c < 5; ++c) m = std::max(m, logits(i, c));
        for (std::size_t c = 0; c < 5; ++c) s += std::exp(logits(i, c) - m);
        want += m + std::log(s) - logits(i, static_cast<std::size_t>(t(i)));
    }
    CHECK(eval(-sum(one_hot(Y, 5_c) * log_softmax(X)), logits, t)() == doctest::Approx(want));
    expect_gradcheck(-sum(one_hot(Y, 5_c) * log_softmax(X)), wrt<0>, logits, t);

    CHECK(message_of([&] { (void)eval(one_hot(X, 4_c), idx); }) ==
          "exprgrad::one_hot: index 4 at position 2 is out of range [0, 4) for depth 4");
}
