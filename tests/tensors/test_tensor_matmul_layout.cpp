// Tensor expressions and compile-time reverse mode: matmul (2-D, batched 3-D, a shared right factor, the
// matrix-vector shapes of the GEMV path) and the layout nodes transpose, reshape and concat, against gradcheck
// (central finite differences in double).
#include <doctest/doctest.h>

#include <xtensor/xarray.hpp>

#include "exprgrad/exprgrad.hpp"
#include "expect_gradcheck.hpp"
#include "random_arrays.hpp"

using namespace exprgrad;

namespace {
constexpr auto X = tensor<0>;
constexpr auto Y = tensor<1>;

using test_util::random_array;
using test_util::expect_gradcheck;
}  // namespace

TEST_CASE("gradcheck: matmul 2-D, batched 3-D, shared right factor; transpose, reshape, concat") {
    const auto a = random_array({3, 4}, 5), w = random_array({4, 2}, 6);
    const auto ab = random_array({2, 3, 4}, 7), wb = random_array({2, 4, 5}, 8);
    expect_gradcheck(sum(tanh(matmul(X, Y))), a, w);
    expect_gradcheck(sum(square(matmul(X, Y))), ab, wb);
    expect_gradcheck(sum(sin(matmul(X, Y))), ab, w);
    expect_gradcheck(sum(matmul(X, Y)), a, w);  // the uniform-adjoint path
    // matrix-vector shapes take the GEMV path, forward and in both VJPs
    expect_gradcheck(sum(tanh(matmul(X, Y))), a, random_array({4, 1}, 25));
    expect_gradcheck(sum(tanh(matmul(X, Y))), random_array({1, 4}, 26), w);
    expect_gradcheck(sum(tanh(matmul(X, Y))), random_array({1, 4}, 27), random_array({4, 1}, 28));
    expect_gradcheck(sum(tanh(matmul(X, Y))), random_array({2, 1, 4}, 29), w);
    expect_gradcheck(sum(matmul(X, Y)), ab, wb);
    expect_gradcheck(sum(matmul(X, Y)), ab, w);
    expect_gradcheck(sum(square(transpose(X)) * Y), a, random_array({4, 3}, 9));
    expect_gradcheck(sum(square(reshape<-1, 2>(X))), a);
    expect_gradcheck(sum(square(concat<1>(X, Y))), a, random_array({3, 2}, 10));
    expect_gradcheck(sum(square(concat<0>(X, Y))), a, random_array({1, 4}, 11));
}
