// The comparison shared by the EMO lowering tests (test_emo_lowering*.cpp): a program over emo_definition,
// lowered (the EmoDefinition node), against the same program compiled as written (tensors::unlowered), in the
// value and every gradient.
//
// Tolerance: as in test_emo_definition.cpp (the kernel against the definition, double, V ≤ 11, h ≤ 6): the two
// compute the same sums in other orders, so 1e-12 relative to the largest entry; a wrong term moves entries by
// 1e-3 or more.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <tuple>
#include <vector>

#include <xtensor/xarray.hpp>

#include "exprgrad/exprgrad.hpp"
#include "exprgrad/ops/emo_definition.hpp"
#include "scaled_error.hpp"

namespace emo_lowering_check {

using namespace exprgrad;
using namespace exprgrad::ops;
using test_util::scaled_error;

using I0 = tensors::Input<0>;
using I1 = tensors::Input<1>;
using I2 = tensors::Input<2>;
constexpr auto Z = tensor<0>;
constexpr auto Y = tensor<1>;
constexpr auto E = tensor<2>;
using half = sym::Const<1, 2>;

constexpr double tol = 1e-12;

// value_and_grad of f with respect to W... lowered against unlowered: the value and every gradient.
template <int... W, class F, class... Args>
void same_as_written(F f, const Args&... args) {
    auto lowered = value_and_grad(f, wrt<W...>);
    auto written = value_and_grad(unlowered(f), wrt<W...>);
    const auto [l1, g1] = lowered(args...);
    const auto [l2, g2] = written(args...);
    CHECK(std::fabs(l1 - l2) <= tol * std::max(1.0, std::fabs(l2)));
    CHECK(std::fabs(l2) > 1e-3);
    const auto arrays = [](const auto& g) {
        return std::apply([](const auto&... a) { return std::vector<xt::xarray<double>>{a...}; }, g);
    };
    const std::vector<xt::xarray<double>> a = arrays(g1), b = arrays(g2);
    double biggest = 0;  // the comparison can fail: the gradients are not all zero
    for (std::size_t i = 0; i < a.size(); ++i) {
        CAPTURE(i);
        CHECK(scaled_error(a[i], b[i]) <= tol);
        biggest = std::max(biggest, double(xt::amax(xt::abs(b[i]))()));
    }
    CHECK(biggest > 1e-3);
}

}  // namespace emo_lowering_check
