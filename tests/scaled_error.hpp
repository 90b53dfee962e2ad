// The error measure of the tests that compare two computations of the same arrays (a kernel and its definition,
// a lowered program and the program as written).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>

#include <doctest/doctest.h>

namespace test_util {

/// max |a − b| over max(1, max |b|), for arrays of the same size (REQUIRE'd); a NaN difference counts as
/// infinite, so a NaN on either side fails any tolerance.
template <class A, class E>
double scaled_error(const A& a, const E& b) {
    REQUIRE(a.size() == b.size());
    double err = 0, big = 1;
    for (std::size_t i = 0; i < b.size(); ++i) {
        const double x = a.data()[i], y = b.data()[i];
        const double e = std::fabs(x - y);
        err = std::isnan(e) ? INFINITY : std::max(err, e);
        big = std::max(big, std::fabs(y));
    }
    return err / big;
}

}  // namespace test_util
