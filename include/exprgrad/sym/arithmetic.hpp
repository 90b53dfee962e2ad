// The DSL's arithmetic operators -a, a * b, a + b, a - b, a / b as smart constructors: each returns the
// simplified expression type (the rewrites and their IEEE caveats are listed in sym/build.hpp).
#pragma once

#include <cstdint>
#include <type_traits>
#include <utility>

#include "exprgrad/sym/expr.hpp"
#include "exprgrad/sym/ops.hpp"
#include "exprgrad/sym/simplify.hpp"

namespace exprgrad::sym {

// ---------------------------------------------------------------------------------------------
// Arithmetic

/// -a. Folds constants, cancels double negation, moves the sign into a constant coefficient.
template <Expression A>
constexpr auto operator-(A) {
    if constexpr (Rational<A>) {
        return detail::rat_neg<A>{};
    } else if constexpr (detail::is_neg<A>::value) {
        return typename detail::is_neg<A>::child{};
    } else if constexpr (detail::is_scaled<A>::value) {
        return detail::rat_neg<typename detail::is_scaled<A>::coef>{} * typename detail::is_scaled<A>::rest{};
    } else {
        return Node<op::Neg, A>{};
    }
}

/// a * b. Constants go to the left and are gathered; repeated factors become powers.
template <Expression A, Expression B>
constexpr auto operator*(A, B) {
    using namespace detail;
    if constexpr (Rational<A> && Rational<B>) {
        return rat_mul<A, B>{};
    } else if constexpr (is_const_v<A, 0> || is_const_v<B, 0>) {
        return Const<0>{};
    } else if constexpr (is_const_v<A, 1>) {
        return B{};
    } else if constexpr (is_const_v<B, 1>) {
        return A{};
    } else if constexpr (Rational<B>) {
        return B{} * A{};
    } else if constexpr (is_const_v<A, -1>) {
        return -B{};
    } else if constexpr (Rational<A> && is_scaled<B>::value) {
        return rat_mul<A, typename is_scaled<B>::coef>{} * typename is_scaled<B>::rest{};
    } else if constexpr (Rational<A> && is_neg<B>::value) {
        return rat_neg<A>{} * typename is_neg<B>::child{};
    } else if constexpr (Rational<A>) {
        return Node<op::Mul, A, B>{};
    } else if constexpr (is_neg<A>::value) {
        return -(typename is_neg<A>::child{} * B{});
    } else if constexpr (is_neg<B>::value) {
        return -(A{} * typename is_neg<B>::child{});
    } else if constexpr (is_scaled<A>::value) {
        return typename is_scaled<A>::coef{} * (typename is_scaled<A>::rest{} * B{});
    } else if constexpr (is_scaled<B>::value) {
        return typename is_scaled<B>::coef{} * (A{} * typename is_scaled<B>::rest{});
    } else if constexpr (std::is_same_v<typename factor<A>::base, typename factor<B>::base> &&
                         (factor<A>::exponent > 0) == (factor<B>::exponent > 0)) {
        return pow(typename factor<A>::base{}, Const<factor<A>::exponent + factor<B>::exponent>{});
    } else if constexpr (is_mul<A>::value && (factor<B>::exponent > 0) &&
                         has_factor<A, typename factor<B>::base>::value) {
        // The repeated factor is inside the chain A = L*R: merge it there, keeping the chain's order.
        using L = typename is_mul<A>::left;
        using R = typename is_mul<A>::right;
        if constexpr (std::is_same_v<typename factor<R>::base, typename factor<B>::base>)
            return L{} * (R{} * B{});
        else
            return (L{} * B{}) * R{};
    } else {
        return Node<op::Mul, A, B>{};
    }
}

/// a + b. Constants folded and kept rightmost; like terms collected; a + (-b) becomes a - b.
template <Expression A, Expression B>
constexpr auto operator+(A, B) {
    using namespace detail;
    if constexpr (Rational<A> && Rational<B>) {
        return rat_add<A, B>{};
    } else if constexpr (is_const_v<A, 0>) {
        return B{};
    } else if constexpr (is_const_v<B, 0>) {
        return A{};
    } else if constexpr (Rational<A>) {
        return B{} + A{};
    } else if constexpr (Rational<B> && is_sum_plus_const<A>::value) {
        return typename is_sum_plus_const<A>::rest{} + rat_add<typename is_sum_plus_const<A>::coef, B>{};
    } else if constexpr (std::is_same_v<typename term<A>::rest, typename term<B>::rest>) {
        return rat_add<typename term<A>::coef, typename term<B>::coef>{} * typename term<A>::rest{};
    } else if constexpr (is_neg<B>::value) {
        return A{} - typename is_neg<B>::child{};
    } else if constexpr (is_negatively_scaled<B>::value) {
        return A{} - (rat_neg<typename is_scaled<B>::coef>{} * typename is_scaled<B>::rest{});
    } else {
        return Node<op::Add, A, B>{};
    }
}

/// a - b. x - x is 0; constants folded; like terms collected.
template <Expression A, Expression B>
constexpr auto operator-(A, B) {
    using namespace detail;
    if constexpr (Rational<A> && Rational<B>) {
        return rat_add<A, rat_neg<B>>{};
    } else if constexpr (is_const_v<B, 0>) {
        return A{};
    } else if constexpr (is_const_v<A, 0>) {
        return -B{};
    } else if constexpr (std::is_same_v<A, B>) {
        return Const<0>{};
    } else if constexpr (Rational<B>) {
        return A{} + rat_neg<B>{};
    } else if constexpr (is_neg<B>::value) {
        return A{} + typename is_neg<B>::child{};
    } else if constexpr (is_negatively_scaled<B>::value) {
        return A{} + (rat_neg<typename is_scaled<B>::coef>{} * typename is_scaled<B>::rest{});
    } else if constexpr (std::is_same_v<typename term<A>::rest, typename term<B>::rest>) {
        return rat_add<typename term<A>::coef, rat_neg<typename term<B>::coef>>{} * typename term<A>::rest{};
    } else {
        return Node<op::Sub, A, B>{};
    }
}

/// a / b. Division by a constant becomes multiplication by its exact inverse.
template <Expression A, Expression B>
constexpr auto operator/(A, B) {
    using namespace detail;
    if constexpr (Rational<B>) {
        static_assert(B::num != 0, "exprgrad: division by the constant zero");
        return rat_inv<B>{} * A{};
    } else if constexpr (is_const_v<A, 0>) {
        return Const<0>{};
    } else if constexpr (is_neg<A>::value) {
        return -(typename is_neg<A>::child{} / B{});
    } else if constexpr (is_neg<B>::value) {
        return -(A{} / typename is_neg<B>::child{});
    } else if constexpr (is_scaled<A>::value) {
        return typename is_scaled<A>::coef{} * (typename is_scaled<A>::rest{} / B{});
    } else {
        return Node<op::Div, A, B>{};
    }
}

}  // namespace exprgrad::sym
