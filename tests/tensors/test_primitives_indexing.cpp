// The tensor primitives of issue #17, part two (slice and concat, batched matmul, take_along_axis,
// one_hot, run-time reshape): values against naive loops written here, gradients against
// check::gradcheck, shape errors by message. Two files keep each translation unit's compile time
// small.
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
    // one tensor sliced three times, overlapping: the first VJP assigns (zeros around its slice), the others add
    expect_gradcheck(sum(square(slice<1>(X, 0_c, 3_c))) + sum(slice<1>(X, 2_c, 5_c) * slice<1>(X, 1_c, 4_c)), wrt<0>, a);
    // and with a uniform adjoint (a plain sum) next to a non-uniform one
    expect_gradcheck(sum(slice<1>(X, 1_c, 3_c)) + sum(square(slice<1>(X, 2_c, 5_c))), wrt<0>, a);
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
    // the same for a shared right factor [2, 3, 5, 4]·[4, 6] (one GEMM over the stacked rows)
    const auto w = random_array({4, 6}, 87);
    auto [v3, g3] = uni(random_array({2, 3, 5, 4}, 88), w);
    auto [v4, g4] = buf(random_array({2, 3, 5, 4}, 88), w, ones);
    CHECK(v3 == doctest::Approx(v4));
    check_close(std::get<0>(g3), std::get<0>(g4));
    check_close(std::get<1>(g3), std::get<1>(g4));
    expect_gradcheck(sum(square(matmul(X, Y))), random_array({2, 3, 5, 4}, 89), w);

    CHECK(message_of([&] {
              (void)eval(matmul(X, Y), random_array({2, 3, 5, 4}, 1), random_array({4, 4, 5}, 2));
          }) == "exprgrad::matmul: shapes (2, 3, 5, 4) and (4, 4, 5) do not multiply");
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

// ---------------------------------------------------------------------------------------------
// reshape with run-time sizes

TEST_CASE("reshape: sizes at run time, -1 inferred, 0 kept; the VJP reshapes back") {
    const auto a = random_array({2, 3, 8}, 111);
    const auto r = eval(reshape(X, Y, Z), a, 6, -1);
    REQUIRE(r.shape() == std::vector<std::size_t>{6, 8});
    for (std::size_t i = 0; i < a.size(); ++i) CHECK(r.data()[i] == a.data()[i]);
    // heads split off the model axis: [B, T, H·D] -> [B, T, H, D] with H at run time
    const auto h = eval(reshape(X, 0_c, 0_c, Y, -1_c), a, 2);
    REQUIRE(h.shape() == std::vector<std::size_t>{2, 3, 2, 4});
    for (std::size_t b = 0; b < 2; ++b)
        for (std::size_t t = 0; t < 3; ++t)
            for (std::size_t k = 0; k < 2; ++k)
                for (std::size_t d = 0; d < 4; ++d) CHECK(h(b, t, k, d) == a(b, t, k * 4 + d));
    // and merged back after a permute: [B, H, T, D] -> [B, T, H·D]
    check_close(
        eval(reshape(permute<0, 2, 1, 3>(permute<0, 2, 1, 3>(reshape(X, 0_c, 0_c, Y, -1_c))), 0_c, 0_c, -1_c), a, 2), a,
        0);
    expect_gradcheck(sum(square(reshape(X, Y, Z)) * W4), wrt<0>, a, 4, -1, random_array({4, 12}, 112));
    // the compile-time form still reshapes
    check_close(eval(reshape<-1, 8>(X), a), r, 0);

    CHECK(message_of([&] { (void)eval(reshape(X, Y, Z), a, -1, -1); }) ==
          "exprgrad::reshape: at most one dimension may be -1");
    CHECK(message_of([&] { (void)eval(reshape(X, Y, Z), a, 5, -1); }) ==
          "exprgrad::reshape: cannot infer -1 reshaping (2, 3, 8)");
    CHECK(message_of([&] { (void)eval(reshape(X, Y, Z), a, 5, 5); }) ==
          "exprgrad::reshape: cannot reshape (2, 3, 8) into (5, 5)");
    CHECK(message_of([&] { (void)eval(reshape(X, Y, Z), a, 2.5, -1); }) ==
          "exprgrad::reshape: a size must be an integer, got 2.500000");
    CHECK(message_of([&] { (void)eval(reshape(X, Y, Z), a, -3, 8); }) ==
          "exprgrad::reshape: sizes must be positive, -1 (inferred) or 0 (kept), got -3");
}

TEST_CASE("reshape: inside a program a view of its operand (no copy); as the output a buffer of its own") {
    const auto a = random_array({2, 3, 8}, 113);
    using inner = decltype(reshape<-1, 8>(X));
    tensors::program<double, decltype(sum(square(inner{}))), std::integer_sequence<int, 0>> p;
    (void)p.forward(a);
    CHECK(p.in<inner>().data == a.data());  // the argument's own elements
    CHECK(p.in<inner>().shape.str() == "(6, 8)");
    p.backward_uniform(1.0);
    check_close(p.grad_of<0>(), 2.0 * a, 0);  // the adjoint handed back under x's shape
    CHECK(p.grad_of<0>().shape() == a.shape());
    auto out = compile<double>(reshape<-1, 8>(X), wrt<0>);
    CHECK(out.forward(a).data != a.data());  // a block's output outlives a change of its argument
    // At the output, a reshape of a node takes the node's buffer over, under the new shape.
    const xt::xarray<double> twice = tensors::evaluate(reshape<-1, 8>(X * 2_c), a);
    REQUIRE(twice.shape() == std::vector<std::size_t>{6, 8});
    for (std::size_t i = 0; i < a.size(); ++i) CHECK(twice.data()[i] == 2.0 * a.data()[i]);
    // A reshaped operand that also reaches the loss another way: the two adjoints add.
    expect_gradcheck(sum(square(reshape(X, Y, Z)) * W4) + sum(square(X)), wrt<0>, a, 4, -1, random_array({4, 12}, 114));
}
