// Seeded test inputs shared by the tensor and check suites.
#pragma once

#include <cstdint>
#include <initializer_list>

#include <xtensor/xarray.hpp>

#include "exprgrad/random.hpp"

namespace test_util {

/// An array of `shape` with entries uniform in [lo, hi), drawn from exprgrad::rng(seed) in row-major order.
inline xt::xarray<double> random_array(std::initializer_list<std::size_t> shape, std::uint64_t seed, double lo = -1,
                                       double hi = 1) {
    xt::xarray<double> a = xt::xarray<double>::from_shape(shape);
    exprgrad::rng g(seed);
    for (auto& v : a) v = lo + (hi - lo) * g.uniform();
    return a;
}

}  // namespace test_util
