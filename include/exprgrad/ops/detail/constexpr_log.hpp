// ln x in constant expressions, for the compile-time constants of the attention modifications (the entropy-invariant
// factor 1/ln n_ref in ops/attention_mods.hpp, T5's bucket edges in ops/attn_relative_bias.hpp): std::log is not
// constexpr in C++20.
#pragma once

#include "exprgrad/require_cxx20.hpp"  // first: refuses a standard older than C++20

#include <numbers>

namespace exprgrad::ops::detail::flex {

/// ln x for a finite x > 0: x = 2^e·m with m in [1, 2), ln m = 2·atanh((m − 1)/(m + 1)) by its series (|u| ≤ 1/3:
/// 35 terms reach double precision; 40 are summed). constexpr, not consteval, so that a lambda of a consteval
/// function can call it with its argument. Not for x ≤ 0, inf or NaN (the loops would not end or the result is
/// meaningless): its callers pass checked compile-time constants. Example: constexpr_log(std::numbers::e) ≈ 1.
constexpr double constexpr_log(double x) {
    int e = 0;
    while (x >= 2.0) x /= 2.0, ++e;
    while (x < 1.0) x *= 2.0, --e;
    const double u = (x - 1.0) / (x + 1.0), u2 = u * u;
    double term = u, sum = 0.0;
    for (int k = 0; k < 40; ++k, term *= u2) sum += term / (2 * k + 1);
    return e * std::numbers::ln2 + 2.0 * sum;
}

}  // namespace exprgrad::ops::detail::flex
