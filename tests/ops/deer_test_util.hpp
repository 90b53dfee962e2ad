// Helpers shared by the DEER tests (test_deer.cpp, test_deer_cells.cpp, test_deer_vjp.cpp).
#pragma once

#include <cmath>
#include <cstddef>
#include <vector>

#include <doctest/doctest.h>
#include <xtensor/xarray.hpp>

#include "exprgrad/ops/deer.hpp"
#include "exprgrad/random.hpp"

namespace deer_test {

/// max |a − b| over the elements, in double; NaN anywhere gives NaN (a failed comparison).
template <class T>
double max_abs_diff(const xt::xarray<T>& a, const xt::xarray<T>& b) {
    REQUIRE(a.size() == b.size());
    double m = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const double d = std::abs(double(a.data()[i]) - double(b.data()[i]));
        if (!(d <= m)) m = d;  // NaN propagates as a failure
    }
    return m;
}

/// An array of the shape with elements uniform in [lo, hi).
template <class T>
xt::xarray<T> rand_array(std::vector<std::size_t> shape, exprgrad::rng& g, double lo, double hi) {
    xt::xarray<T> a = xt::xarray<T>::from_shape(shape);
    for (auto& v : a) v = T(lo + (hi - lo) * g.uniform());
    return a;
}

/// A tanh RNN cell of state n and input m: A scaled by scale/√n, U and b uniform.
template <class T>
auto random_rnn(std::size_t n, std::size_t m, double scale, std::uint64_t seed) {
    exprgrad::rng g(seed);
    auto A = rand_array<T>({n, n}, g, -scale / std::sqrt(double(n)), scale / std::sqrt(double(n)));
    auto U = rand_array<T>({n, m}, g, -1, 1);
    auto b = rand_array<T>({n}, g, -0.5, 0.5);
    return exprgrad::ops::tanh_rnn_cell(A, U, b);
}
/// A GRU cell of state n and input m with uniform weights (recurrent ones scaled by 1.5/√n).
template <class T>
auto random_gru(std::size_t n, std::size_t m, std::uint64_t seed) {
    exprgrad::rng g(seed);
    auto W = [&] { return rand_array<T>({n, m}, g, -1, 1); };
    auto U = [&] { return rand_array<T>({n, n}, g, -1.5 / std::sqrt(double(n)), 1.5 / std::sqrt(double(n))); };
    auto b = [&] { return rand_array<T>({n}, g, -0.5, 0.5); };
    auto Wz = W(), Uz = U(), bz = b(), Wr = W(), Ur = U(), br = b(), Wh = W(), Uh = U(), bh = b();
    return exprgrad::ops::gru_cell(Wz, Uz, bz, Wr, Ur, br, Wh, Uh, bh);
}
using exprgrad::ops::deer_method;
inline constexpr deer_method all_methods[] = {deer_method::newton, deer_method::quasi, deer_method::jacobi,
                                              deer_method::fixed_a, deer_method::sech_u};

}  // namespace deer_test
