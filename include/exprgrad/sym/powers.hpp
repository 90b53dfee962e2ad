// pow and square: a rational exponent gives the constant-exponent node, an expression exponent IEEE pow.
#pragma once

#include <cstdint>
#include <type_traits>
#include <utility>

#include "exprgrad/sym/arithmetic.hpp"
#include "exprgrad/sym/expr.hpp"
#include "exprgrad/sym/ops.hpp"

namespace exprgrad::sym {

// ---------------------------------------------------------------------------------------------
// Powers

namespace detail {
template <std::intmax_t N, std::intmax_t D, class A>
constexpr auto powc(A) {
    if constexpr (N == 0) {
        return Const<1>{};  // IEEE pow(x, 0) is 1 for every x, NaN included
    } else if constexpr (N == D) {
        return A{};
    } else if constexpr (D == 1 && rat_pow_fits<A, N>()) {
        // Exact rational powers fold (2^10 = 1024, 2^-3 = 1/8); a result that overflows stays a node.
        constexpr auto pq = rat_pow<A, N>::value;
        if constexpr (N > 0)
            return typename make_rational<pq.first, pq.second>::type{};
        else
            return typename make_rational<pq.second, pq.first>::type{};
    } else if constexpr (is_const_v<A, 1>) {
        return Const<1>{};  // IEEE pow(1, y) is 1 for every y, NaN included
    } else if constexpr (D == 1 && is_int_pow<A>::value) {
        return powc<checked_mul(N, is_int_pow<A>::exponent), 1>(typename is_int_pow<A>::base{});
    } else if constexpr (D == 1 && N % 2 == 0 && is_neg<A>::value) {
        return powc<N, 1>(typename is_neg<A>::child{});
    } else {
        return Node<op::PowC<N, D>, A>{};
    }
}
}  // namespace detail

/// a^b. A rational exponent gives the constant-exponent node (integers by multiplication,
/// halves through sqrt); an expression exponent gives IEEE pow. Example: `pow(x, 2_c)`, `pow(x, y)`.
template <Expression A, Expression B>
constexpr auto pow(A a, B) {
    if constexpr (Rational<B>) {
        return detail::powc<B::num, B::den>(a);
    } else if constexpr (detail::is_const_v<A, 1>) {
        return Const<1>{};  // IEEE pow(1, y) is 1 for every y, NaN included
    } else {
        return Node<op::Pow, A, B>{};
    }
}

/// a^2.
template <Expression A>
constexpr auto square(A a) {
    return pow(a, Const<2>{});
}

}  // namespace exprgrad::sym
