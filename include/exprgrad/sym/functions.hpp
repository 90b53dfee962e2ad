// The DSL's functions (exp, log, sqrt, tanh, sin, ..., min, max): one node of the op table each; a few
// exact constant cases fold.
#pragma once

#include <cstdint>
#include <type_traits>
#include <utility>

#include "exprgrad/sym/expr.hpp"
#include "exprgrad/sym/ops.hpp"
#include "exprgrad/sym/powers.hpp"

namespace exprgrad::sym {

// ---------------------------------------------------------------------------------------------
// Functions. Each is a node of the op table; a few exact constant cases fold.

/// e^a; exp(0) = 1. Domain: all reals; overflows to +inf above ~709 (double), ~88 (float).
template <Expression A>
constexpr auto exp(A) {
    if constexpr (detail::is_const_v<A, 0>)
        return Const<1>{};
    else
        return Node<op::Exp, A>{};
}
/// Natural logarithm; log(1) = 0. Domain a > 0; log(0) = -inf, NaN for a < 0.
template <Expression A>
constexpr auto log(A) {
    if constexpr (detail::is_const_v<A, 1>)
        return Const<0>{};
    else
        return Node<op::Log, A>{};
}
/// log(1 + a), accurate near 0. Domain a > -1; -inf at -1, NaN below.
template <Expression A>
constexpr auto log1p(A) {
    if constexpr (detail::is_const_v<A, 0>)
        return Const<0>{};
    else
        return Node<op::Log1p, A>{};
}
/// e^a - 1, accurate near 0. Domain: all reals.
template <Expression A>
constexpr auto expm1(A) {
    if constexpr (detail::is_const_v<A, 0>)
        return Const<0>{};
    else
        return Node<op::Expm1, A>{};
}
/// Square root. Domain a >= 0; NaN below; its derivative is +inf at 0.
template <Expression A>
constexpr auto sqrt(A) {
    if constexpr (detail::is_const_v<A, 0> || detail::is_const_v<A, 1>)
        return A{};
    else
        return Node<op::Sqrt, A>{};
}
/// Hyperbolic tangent. Domain: all reals.
template <Expression A>
constexpr auto tanh(A) {
    if constexpr (detail::is_const_v<A, 0>)
        return Const<0>{};
    else
        return Node<op::Tanh, A>{};
}
/// Logistic function 1 / (1 + e^-a). Domain: all reals.
template <Expression A>
constexpr auto sigmoid(A) {
    if constexpr (detail::is_const_v<A, 0>)
        return Const<1, 2>{};
    else
        return Node<op::Sigmoid, A>{};
}
/// log(1 + e^a), evaluated stably. Domain: all reals.
template <Expression A>
constexpr auto softplus(A) {
    return Node<op::Softplus, A>{};
}
/// Sine. Domain: all reals (NaN at ±inf).
template <Expression A>
constexpr auto sin(A) {
    if constexpr (detail::is_const_v<A, 0>)
        return Const<0>{};
    else
        return Node<op::Sin, A>{};
}
/// Cosine. Domain: all reals (NaN at ±inf).
template <Expression A>
constexpr auto cos(A) {
    if constexpr (detail::is_const_v<A, 0>)
        return Const<1>{};
    else
        return Node<op::Cos, A>{};
}
/// |a|; its derivative is sign(a), with sign(0) = 0.
template <Expression A>
constexpr auto abs(A) {
    if constexpr (Rational<A>)
        return Const<(A::num < 0 ? -A::num : A::num), A::den>{};
    else
        return Node<op::Abs, A>{};
}
/// Error function. Domain: all reals.
template <Expression A>
constexpr auto erf(A) {
    if constexpr (detail::is_const_v<A, 0>)
        return Const<0>{};
    else
        return Node<op::Erf, A>{};
}
/// sign(a): 1, -1, or a itself for ±0 and NaN. Derivative 0.
template <Expression A>
constexpr auto sign(A) {
    if constexpr (Rational<A>)
        return Const<(A::num > 0) - (A::num < 0)>{};
    else
        return Node<op::Sign, A>{};
}
/// Heaviside step with step(0) = 1/2; NaN stays NaN. Derivative 0.
template <Expression A>
constexpr auto step(A) {
    if constexpr (Rational<A>) {
        return typename detail::make_rational<(A::num > 0 ? 2 : (A::num < 0 ? 0 : 1)), 2>::type{};
    } else {
        return Node<op::Step, A>{};
    }
}
/// less(a, b): 1 if a < b, 0 if a > b, 1/2 at a tie (equal infinities included), NaN if either is NaN; the
/// derivative of min(a, b) with respect to a. Derivative 0. Example: `less(x, y)(1.0, 2.0) == 1`.
template <Expression A, Expression B>
constexpr auto less(A, B) {
    if constexpr (std::is_same_v<A, B>)
        return Const<1, 2>{};  // a tie, unless a is NaN: the same convention as step(a − a) → step(0)
    else if constexpr (Rational<A> && Rational<B>)
        return step(B{} - A{});
    else
        return Node<op::Less, A, B>{};
}
/// The smaller of a and b; NaN if either is NaN; at ties each argument gets half the derivative.
template <Expression A, Expression B>
constexpr auto min(A, B) {
    if constexpr (std::is_same_v<A, B>)
        return A{};
    else if constexpr (Rational<A> && Rational<B>)  // denominators are positive
        return std::conditional_t<(detail::checked_mul(B::num, A::den) < detail::checked_mul(A::num, B::den)), B, A>{};
    else
        return Node<op::Min, A, B>{};
}
/// The larger of a and b; NaN if either is NaN; at ties each argument gets half the derivative.
template <Expression A, Expression B>
constexpr auto max(A, B) {
    if constexpr (std::is_same_v<A, B>)
        return A{};
    else if constexpr (Rational<A> && Rational<B>)  // denominators are positive
        return std::conditional_t<(detail::checked_mul(A::num, B::den) < detail::checked_mul(B::num, A::den)), B, A>{};
    else
        return Node<op::Max, A, B>{};
}

}  // namespace exprgrad::sym
