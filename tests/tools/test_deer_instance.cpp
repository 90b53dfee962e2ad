// The DEER test instance's builders (src/tools/deer_instance.hpp) check their element counts: issue #16's segfault was
// `exprgrad deer --n 4294967296`, where n·n wrapped to 0 and the fill loop wrote past a tiny array.
#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <limits>
#include <stdexcept>

#include "deer_instance.hpp"

using namespace exprgrad;
using namespace exprgrad::ops;
using namespace exprgrad::tools;

TEST_CASE("the instance builders refuse element counts that overflow std::size_t") {
    const std::size_t big = std::size_t{1} << 32;  // big·big = 2^64 wraps to 0
    CHECK_THROWS_WITH_AS(deer_instance::matrix<double>(big, 1.0), doctest::Contains("4294967296 x 4294967296"),
                         std::length_error);
    CHECK_THROWS_AS(deer_instance::cell<float>(big, 1.0), std::length_error);
    CHECK_THROWS_WITH_AS(deer_instance::inputs<double>(big, big), doctest::Contains("overflow"), std::length_error);
    CHECK_THROWS_AS(deer_instance::inputs<double>(2, std::numeric_limits<std::size_t>::max()), std::length_error);
}

TEST_CASE("the instance's values: A_ij = g sin(0.37(i+1)(j+2) + 0.5)/sqrt(n), u_{t,i} = sin(0.1 t + i)") {
    const auto a = deer_instance::matrix<double>(3, 0.5);
    CHECK(a(2, 1) == doctest::Approx(0.5 * std::sin(0.37 * 3 * 3 + 0.5) / std::sqrt(3.0)));
    const auto u = deer_instance::inputs<double>(3, 4);
    CHECK(u.shape()[0] == 4);
    CHECK(u(3, 2) == doctest::Approx(std::sin(0.1 * 4 + 2)));
    CHECK(deer_instance::matrix<double>(0, 1.0).size() == 0);
}
