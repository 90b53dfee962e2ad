// Smart constructors: the DSL's operators and functions. Each looks at its argument types and
// returns the simplified expression type, so every expression (and every derivative) is simplified
// as it is built. Rewrites used, identities of real numbers (not all of IEEE arithmetic):
//   constants folded (exact rationals); 0 + x, x + 0, x - 0, 1*x, x/1, x^1 -> x; 0*x, 0/x, x - x -> 0;
//   x^0 -> 1; constants gathered to the left of products (c1*(c2*x) -> (c1c2)*x, x/c -> (1/c)*x);
//   like terms collected (x + x -> 2*x, a*x - b*x -> (a-b)*x); repeated factors into integer powers
//   (x*x -> x^2, x^m * x^n -> x^(m+n) for integers m, n of one sign); (x^m)^n -> x^(mn) for integers;
//   negations pulled outwards and cancelled.
// A rewrite can change a result (docs/guide.md, "Simplification and IEEE values", with measured
// cases): it removes inf - inf and 0*inf (x - x, 0*x, 2*x - x at inf), skips intermediates that would
// overflow or underflow (1/3*(3*x) at 1e308), and rounds reassociated constants once (x/3, (x+1)+2).
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

// ---------------------------------------------------------------------------------------------
// Misuse: raw run-time numbers inside an expression.

/// Satisfied by built-in numbers (int, double, ...), which may not appear inside an expression.
template <class T>
concept RawNumber = std::is_arithmetic_v<std::remove_cvref_t<T>>;

// The overloads below exist only to reject a raw number with one sentence. Each one's return type is
// deduced and it returns a valid expression after its static_assert, so that the sentence is the
// first error the compiler reports (a `void` result would first be reported as "incomplete type" or
// as a missing operator in the enclosing expression).
#define EXPRGRAD_RAW_NUMBER_MESSAGE                                                                          \
    "exprgrad: a raw number cannot appear in an expression; write it as a constant (1_c, c<1, 2>, fc<0.5>) " \
    "or pass it as an argument"

#define EXPRGRAD_REJECT_RAW(op)                                                       \
    /** Rejected: a raw number as an operand; write 1_c or pass it as an argument. */ \
    template <Expression A, RawNumber B>                                              \
    constexpr auto operator op(A, B) {                                                \
        static_assert(detail::dependent_false<B>, EXPRGRAD_RAW_NUMBER_MESSAGE);       \
        return A{};                                                                   \
    }                                                                                 \
    /** Rejected: a raw number as an operand; write 1_c or pass it as an argument. */ \
    template <RawNumber B, Expression A>                                              \
    constexpr auto operator op(B, A) {                                                \
        static_assert(detail::dependent_false<B>, EXPRGRAD_RAW_NUMBER_MESSAGE);       \
        return A{};                                                                   \
    }
EXPRGRAD_REJECT_RAW(+)
EXPRGRAD_REJECT_RAW(-)
EXPRGRAD_REJECT_RAW(*)
EXPRGRAD_REJECT_RAW(/)
#undef EXPRGRAD_REJECT_RAW

/// Rejected: min with a raw number; write it as a constant (1_c) or pass it as an argument.
template <Expression A, RawNumber B>
constexpr auto min(A, B) {
    static_assert(detail::dependent_false<B>, EXPRGRAD_RAW_NUMBER_MESSAGE);
    return A{};
}
/// Rejected: min with a raw number; write it as a constant (1_c) or pass it as an argument.
template <RawNumber B, Expression A>
constexpr auto min(B, A) {
    static_assert(detail::dependent_false<B>, EXPRGRAD_RAW_NUMBER_MESSAGE);
    return A{};
}
/// Rejected: max with a raw number; write it as a constant (1_c) or pass it as an argument.
template <Expression A, RawNumber B>
constexpr auto max(A, B) {
    static_assert(detail::dependent_false<B>, EXPRGRAD_RAW_NUMBER_MESSAGE);
    return A{};
}
/// Rejected: max with a raw number; write it as a constant (1_c) or pass it as an argument.
template <RawNumber B, Expression A>
constexpr auto max(B, A) {
    static_assert(detail::dependent_false<B>, EXPRGRAD_RAW_NUMBER_MESSAGE);
    return A{};
}
/// Rejected: a raw number as the base of pow; write it as a constant (2_c) or pass it as an argument.
template <RawNumber B, Expression A>
constexpr auto pow(B, A) {
    static_assert(detail::dependent_false<B>, EXPRGRAD_RAW_NUMBER_MESSAGE);
    return A{};
}
/// Rejected: a raw exponent; write it as a constant (2_c, c<1, 2>) or pass it as an argument.
template <Expression A, RawNumber B>
constexpr auto pow(A, B) {
    static_assert(detail::dependent_false<B>,
                  "exprgrad: a raw number cannot appear in an expression; write the exponent as a constant "
                  "(2_c, c<1, 2>) or pass it as an argument");
    return A{};
}
#undef EXPRGRAD_RAW_NUMBER_MESSAGE

}  // namespace exprgrad::sym
