// The tensor suites' gradient check of a tensor expression (doctest assertions around check::gradcheck).
#pragma once

#include <doctest/doctest.h>

#include "exprgrad/check/gradcheck.hpp"

namespace test_util {

/// Runs check::gradcheck on e at args and expects it to pass and to have checked at least one entry.
template <class E, class... Args>
void expect_gradcheck(E e, const Args&... args) {
    const auto r = exprgrad::check::gradcheck(e, args...);
    INFO(r.message());
    CHECK(r.ok);
    CHECK(r.checked > 0);
}

}  // namespace test_util
