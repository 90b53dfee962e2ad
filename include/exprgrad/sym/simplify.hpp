// The compile-time views the smart constructors simplify with (sym/build.hpp lists the rewrites):
// overflow-checked rational arithmetic, a term as coefficient * rest, a factor as base ^ exponent.
#pragma once

#include <cstdint>
#include <type_traits>
#include <utility>

#include "exprgrad/sym/expr.hpp"
#include "exprgrad/sym/ops.hpp"

namespace exprgrad::sym {

namespace detail {

template <class>
inline constexpr bool dependent_false = false;

template <class A, std::intmax_t N, std::intmax_t D = 1>
inline constexpr bool is_const_v = std::is_same_v<A, Const<N, D>>;

// Overflow-checked rational arithmetic, so that constant folding never silently wraps.
constexpr std::intmax_t checked_mul(std::intmax_t a, std::intmax_t b) {
    std::intmax_t r = 0;
    if (__builtin_mul_overflow(a, b, &r)) throw "exprgrad: rational constant overflow";
    return r;
}
constexpr std::intmax_t checked_add(std::intmax_t a, std::intmax_t b) {
    std::intmax_t r = 0;
    if (__builtin_add_overflow(a, b, &r)) throw "exprgrad: rational constant overflow";
    return r;
}

template <class A, class B>
using rat_add = typename make_rational<checked_add(checked_mul(A::num, B::den), checked_mul(B::num, A::den)),
                                       checked_mul(A::den, B::den)>::type;
template <class A, class B>
using rat_mul = typename make_rational<checked_mul(A::num, B::num), checked_mul(A::den, B::den)>::type;
template <class A>
using rat_neg = Const<-A::num, A::den>;
template <class A>
using rat_inv = typename make_rational<A::den, A::num>::type;

// A term seen as coefficient * rest: k*x -> (k, x), -x -> (-1, x), x -> (1, x).
template <class E>
struct term {
    using coef = Const<1>;
    using rest = E;
};
template <std::intmax_t N, std::intmax_t D, class X>
struct term<Node<op::Mul, Const<N, D>, X>> {
    using coef = Const<N, D>;
    using rest = X;
};
template <class X>
struct term<Node<op::Neg, X>> {
    using coef = Const<-1>;
    using rest = X;
};

// A factor seen as base ^ integer exponent: x^n -> (x, n), x -> (x, 1).
template <class E>
struct factor {
    using base = E;
    static constexpr std::intmax_t exponent = 1;
};
template <std::intmax_t N, class X>
struct factor<Node<op::PowC<N, 1>, X>> {
    using base = X;
    static constexpr std::intmax_t exponent = N;
};

template <class E>
struct is_neg : std::false_type {};
template <class X>
struct is_neg<Node<op::Neg, X>> : std::true_type {
    using child = X;
};

template <class E>
struct is_scaled : std::false_type {};
template <std::intmax_t N, std::intmax_t D, class X>
struct is_scaled<Node<op::Mul, Const<N, D>, X>> : std::true_type {
    using coef = Const<N, D>;
    using rest = X;
};

template <class E>
struct is_negatively_scaled : std::false_type {};
template <std::intmax_t N, std::intmax_t D, class X>
requires(N < 0) struct is_negatively_scaled<Node<op::Mul, Const<N, D>, X>> : std::true_type {
};

template <class E>
struct is_sum_plus_const : std::false_type {};
template <class X, std::intmax_t N, std::intmax_t D>
struct is_sum_plus_const<Node<op::Add, X, Const<N, D>>> : std::true_type {
    using rest = X;
    using coef = Const<N, D>;
};

template <class E>
struct is_int_pow : std::false_type {};
template <std::intmax_t N, class X>
struct is_int_pow<Node<op::PowC<N, 1>, X>> : std::true_type {
    static constexpr std::intmax_t exponent = N;
    using base = X;
};

template <class E>
struct is_mul : std::false_type {};
template <class L, class R>
struct is_mul<Node<op::Mul, L, R>> : std::true_type {
    using left = L;
    using right = R;
};

// True when the product chain E (a left-nested product, or one factor) has a factor with base Base and a
// positive exponent: x*y*x then becomes x^2*y, wherever the repeated factor sits in the chain.
template <class E, class Base>
struct has_factor : std::bool_constant<std::is_same_v<typename factor<E>::base, Base> && (factor<E>::exponent > 0)> {
};
template <class L, class R, class Base>
struct has_factor<Node<op::Mul, L, R>, Base>
    : std::bool_constant<(std::is_same_v<typename factor<R>::base, Base> && (factor<R>::exponent > 0)) ||
                         has_factor<L, Base>::value> {};

// a^n for a rational a and an integer n, when numerator and denominator fit in intmax_t (else no folding).
template <class A, std::intmax_t N>
struct rat_pow {
    static constexpr std::intmax_t m = N < 0 ? -N : N;
    static constexpr bool fits = [] {
        if (N < 0 && A::num == 0) return false;  // 0^-n is +inf: not a rational
        std::intmax_t p = 1, q = 1;
        for (std::intmax_t i = 0; i < m; ++i)
            if (__builtin_mul_overflow(p, A::num, &p) || __builtin_mul_overflow(q, A::den, &q)) return false;
        return true;
    }();
    static constexpr std::pair<std::intmax_t, std::intmax_t> value = [] {
        std::intmax_t p = 1, q = 1;
        if constexpr (fits)
            for (std::intmax_t i = 0; i < m; ++i) p *= A::num, q *= A::den;
        return std::pair{p, q};
    }();
};

template <class A, std::intmax_t N>
constexpr bool rat_pow_fits() {
    if constexpr (Rational<A>)
        return rat_pow<A, N>::fits;
    else
        return false;
}

}  // namespace detail

}  // namespace exprgrad::sym
