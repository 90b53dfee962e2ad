// Helpers of the tensor primitive tests (test_primitives*.cpp): the forward value of an expression,
// elementwise comparison, gradcheck with its report, and the message of an std::invalid_argument.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <utility>

#include <xtensor/xarray.hpp>

#include "exprgrad/exprgrad.hpp"
#include "expect_gradcheck.hpp"
#include "random_arrays.hpp"

namespace primitives_test {
using namespace exprgrad;
constexpr auto X = tensor<0>;
constexpr auto Y = tensor<1>;
constexpr auto Z = tensor<2>;
constexpr auto W4 = tensor<3>;

using test_util::random_array;

using test_util::expect_gradcheck;

/// The forward value of e on the arguments, as an owning array.
template <class E, class... Args>
xt::xarray<double> eval(E, const Args&... args) {
    tensors::program<double, E, std::integer_sequence<int>> p;
    const auto& v = p.forward(args...);
    xt::xarray<double> out = xt::xarray<double>::from_shape(v.shape.xshape());
    std::copy(v.data, v.data + v.size(), out.begin());
    return out;
}

/// Same shape, and every entry within tol (relative beyond 1); a NaN expected entry wants a NaN.
inline void check_close(const xt::xarray<double>& got, const xt::xarray<double>& want, double tol = 1e-12) {
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

/// The what() of the std::invalid_argument f throws, or "(no exception)".
template <class F>
std::string message_of(F&& f) {
    try {
        f();
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    return "(no exception)";
}
}  // namespace primitives_test
