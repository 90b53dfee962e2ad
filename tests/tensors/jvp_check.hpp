// Shared checks of the forward-mode and Hessian-vector-product tests (test_jvp_*.cpp, #24).
// Forward mode (jvp) and exact Hessian-vector products (hvp) of tensor programs (#24):
//   - per node family, the JVP against central differences of the value, and the HVP of sum(E ⊙ R) (R a
//     fixed random array, so the whole second derivative of E is exercised) against check::hvp, the central
//     differences of the compiled gradient;
//   - small models against Hessians and tangents written by hand: logistic regression, softmax regression
//     with cross-entropy (an ignored row), a 2-layer tanh MLP (JVP in both weights);
//   - NaN propagation and the errors of a bad tangent or a non-scalar loss.
// Tolerances (float64): a central difference with h = 1e-5 has truncation error h²/6·|f'''| ≈ 2e-11·|f'''| and
// rounding error ≈ ε·|f|/h ≈ 2e-11·|f|; check::hvp (h ≈ 6e-6 relative) is documented at about 1e-9 relative.
// Values here are O(1)-O(10), so 1e-6 relative to 1 + max|reference| leaves three orders of margin while any
// wrong rule (a missing term, a wrong sign or factor) is off by O(1). The hand-written references use the
// same arithmetic up to summation order: 1e-12.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <tuple>

#include <xtensor/xarray.hpp>

#include "exprgrad/check/hvp.hpp"
#include "exprgrad/exprgrad.hpp"
#include "random_arrays.hpp"

namespace jvp_check {
using namespace exprgrad;
constexpr auto X = tensor<0>;
constexpr auto W = tensor<1>;

inline xt::xarray<double> random_like(const xt::xarray<double>& a, std::uint64_t seed) {
    xt::xarray<double> r = test_util::random_array({a.size()}, seed);
    r.reshape(a.shape());
    return r;
}

// Same shape and max |a − b| ≤ tol · (1 + max |b|); false on any NaN.
inline bool close(const xt::xarray<double>& a, const xt::xarray<double>& b, double tol) {
    if (a.shape() != b.shape()) return false;
    double err = 0, scale = 1;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const double d = std::abs(a.data()[i] - b.data()[i]);
        if (!(d <= err)) err = d;  // NaN sticks
        scale = std::max(scale, std::abs(b.data()[i]) + 1);
    }
    return err <= tol * scale;
}

// The checks of one node family: E's JVP in argument I against central differences of E's value, and the HVP
// of sum(E ⊙ R) (R the argument after E's own) against check::hvp; also dd = Σ dy ⊙ R.
template <int I, class E, class... Args>
void check_family(E e, const std::tuple<Args...>& args, std::uint64_t seed) {
    const xt::xarray<double>& x = std::get<I>(args);
    const xt::xarray<double> v = random_like(x, seed);
    auto J = jvp(e, wrt<I>);
    const auto [y, dy] = std::apply([&](const auto&... a) { return J(a..., v); }, args);
    auto at = [&](double s) {  // the value at x + s·v, from the same program
        auto shifted = args;
        std::get<I>(shifted) = x + s * v;
        return std::apply([&](const auto&... a) { return J(a..., v).first; }, shifted);
    };
    const double h = 1e-5;
    const xt::xarray<double> fd = (at(h) - at(-h)) / (2 * h);
    CHECK(close(y, at(0), 1e-12));
    CHECK(close(dy, fd, 1e-6));

    constexpr int n = static_cast<int>(sizeof...(Args));
    const auto loss = sum(e * tensor<n>);
    const xt::xarray<double> r = random_like(y, seed + 1);
    auto H = hvp(loss, wrt<I>);
    const auto [dd, hv] = std::apply([&](const auto&... a) { return H(a..., r, v); }, args);
    CHECK(dd == doctest::Approx(xt::sum(dy * r)()).epsilon(1e-10));
    auto H_fd = check::hvp(loss, wrt<I>);
    const xt::xarray<double> ref = std::apply([&](const auto&... a) { return H_fd(v, a..., r); }, args);
    CHECK(close(std::get<0>(hv), ref, 1e-6));
}

inline xt::xarray<double> rnd(std::initializer_list<std::size_t> shape, std::uint64_t seed) {
    return test_util::random_array(shape, seed);
}
}  // namespace jvp_check
