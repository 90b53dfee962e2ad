// The deterministic DEER test instance (DEER: https://kexue.fm/archives/9783, Lim et al., ICLR 2024; the
// instance and its iteration counts: docs/deer.md), shared by the tests, the `exprgrad deer` command and the
// benchmark. Research tooling: in exprgrad_tools, not installed.
//   A_ij = g·sin(0.37·(i+1)·(j+2) + 0.5)/√n,  u_{t,i} = sin(0.1·t + i) (t = 1..T, 0-based i, j),
//   x_0 = 0,  x_t = tanh(A x_{t−1} + u_t).
#pragma once

#include <cmath>
#include <cstddef>
#include <limits>
#include <stdexcept>
#include <string>

#include <xtensor/xarray.hpp>

#include <exprgrad/ops/deer.hpp>

namespace exprgrad::tools {

namespace detail {
/// a·b, or std::length_error naming `what` when the element count does not fit in std::size_t
/// (an overflowed count would allocate a small array and write past it).
inline std::size_t checked_count(const char* what, std::size_t a, std::size_t b) {
    if (a != 0 && b > std::numeric_limits<std::size_t>::max() / a)
        throw std::length_error(std::string("exprgrad::deer_instance::") + what + ": " + std::to_string(a) + " x " +
                                std::to_string(b) + " elements overflow std::size_t");
    return a * b;
}
}  // namespace detail

namespace deer_instance {

/// The cell of the instance: tanh(Yprev·Aᵀ + U) with A = tensor<2> and the input U = tensor<1>.
inline constexpr auto cell_expr =
    tensors::tanh(tensors::matmul(tensors::Input<0>{}, tensors::transpose(tensors::Input<2>{})) + tensors::Input<1>{});

/// A [n, n] of the instance. Throws std::length_error when n·n overflows std::size_t (and std::bad_alloc
/// when it does not fit in memory). Example: matrix<double>(2, 1.0)(0, 0) = sin(0.37·2 + 0.5)/√2.
template <class T>
xt::xarray<T> matrix(std::size_t n, double g) {
    (void)detail::checked_count("matrix", n, n);
    xt::xarray<T> a = xt::xarray<T>::from_shape({n, n});
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t j = 0; j < n; ++j)
            a(i, j) = T(g * std::sin(0.37 * double(i + 1) * double(j + 2) + 0.5) / std::sqrt(double(n)));
    return a;
}

/// The inputs u [T, n] (row t−1 holds u_t). Throws std::length_error when steps·n overflows std::size_t.
template <class T>
xt::xarray<T> inputs(std::size_t n, std::size_t steps) {
    (void)detail::checked_count("inputs", steps, n);
    xt::xarray<T> u = xt::xarray<T>::from_shape({steps, n});
    for (std::size_t t = 1; t <= steps; ++t)
        for (std::size_t i = 0; i < n; ++i) u(t - 1, i) = T(std::sin(0.1 * double(t) + double(i)));
    return u;
}

/// The instance's cell bound to A.
template <class T>
auto cell(std::size_t n, double g) {
    return ops::make_cell(cell_expr, matrix<T>(n, g));
}

}  // namespace deer_instance
}  // namespace exprgrad::tools
