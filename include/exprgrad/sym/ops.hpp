// The op table: every elementwise op is defined here once, with
//   eval      one generic body for double, float, xsimd::batch and user number types,
//   partials  the derivative with respect to each child, written in the DSL itself,
//   print     how to_string and to_latex show it,
//   domain    where the derivative-law tests sample each argument (open intervals, avoiding poles).
// Adding an op is one entry here plus its name in `all_ops` at the bottom; the smart constructor in
// build.hpp gives it a spelling, and the derivative-law tests pick it up from `all_ops`.
//
// Conventions at kinks (fixed, tested): abs'(0) = 0 (sign(0) = 0); min/max ties split the derivative
// 1/2 and 1/2 (step(0) = 1/2). NaN propagates through every op, including min, max, sign and step.
#pragma once

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <tuple>
#include <type_traits>

#include "exprgrad/sym/batch_exp.hpp"
#include "exprgrad/sym/expr.hpp"
#include "exprgrad/sym/numeric.hpp"
#include "exprgrad/sym/type_list.hpp"

namespace exprgrad::sym {

/// How an op is printed; `prec` is the binding strength (1 sums, 2 products, 3 unary minus,
/// 4 powers, 5 atoms and calls).
enum class notation { infix, prefix, call, fraction, power, absolute, root };

struct print_spec {
    notation kind;
    int prec;
    const char* text;   // operator symbol or function name
    const char* latex;  // LaTeX operator or function command
};

/// Sampling interval of one argument for the derivative-law tests.
struct interval {
    double lo, hi;
};

namespace op {

inline constexpr interval wide{-2.0, 2.0};
inline constexpr interval positive{0.2, 3.0};

struct Add {
    static constexpr int arity = 2;
    static constexpr print_spec print{notation::infix, 1, " + ", " + "};
    static constexpr std::array<interval, 2> domain{wide, wide};
    template <class T>
    static T eval(const T& a, const T& b) {
        return a + b;
    }
    template <class A, class B>
    static constexpr auto partials(A, B) {
        return std::tuple{c<1>, c<1>};
    }
};

struct Sub {
    static constexpr int arity = 2;
    static constexpr print_spec print{notation::infix, 1, " - ", " - "};
    static constexpr std::array<interval, 2> domain{wide, wide};
    template <class T>
    static T eval(const T& a, const T& b) {
        return a - b;
    }
    template <class A, class B>
    static constexpr auto partials(A, B) {
        return std::tuple{c<1>, c<-1>};
    }
};

struct Mul {
    static constexpr int arity = 2;
    static constexpr print_spec print{notation::infix, 2, "*", " \\cdot "};
    static constexpr std::array<interval, 2> domain{wide, wide};
    template <class T>
    static T eval(const T& a, const T& b) {
        return a * b;
    }
    template <class A, class B>
    static constexpr auto partials(A a, B b) {
        return std::tuple{b, a};
    }
};

struct Div {
    static constexpr int arity = 2;
    static constexpr print_spec print{notation::fraction, 2, "/", "\\frac"};
    static constexpr std::array<interval, 2> domain{wide, interval{0.3, 2.0}};
    template <class T>
    static T eval(const T& a, const T& b) {
        return a / b;
    }
    // d(a/b)/db = -(a/b) * (1/b) reuses the node a/b and the reciprocal of the other partial, so
    // value and gradient cost two divisions, not three.
    template <class A, class B>
    static constexpr auto partials(A a, B b) {
        return std::tuple{c<1> / b, -(a / b) * (c<1> / b)};
    }
};

struct Neg {
    static constexpr int arity = 1;
    static constexpr print_spec print{notation::prefix, 3, "-", "-"};
    static constexpr std::array<interval, 1> domain{wide};
    template <class T>
    static T eval(const T& a) {
        return -a;
    }
    template <class A>
    static constexpr auto partials(A) {
        return std::tuple{c<-1>};
    }
};

struct Exp {
    static constexpr int arity = 1;
    static constexpr print_spec print{notation::call, 5, "exp", "\\exp"};
    static constexpr std::array<interval, 1> domain{wide};
    template <class T>
    [[gnu::always_inline]] static T eval(const T& a) {
        if constexpr (num::Batch<T>) {
            return num::exp_batch(a);  // our double kernel, twice xsimd's speed (sym/batch_exp.hpp)
        } else {
            using std::exp;
            return exp(a);
        }
    }
    template <class A>
    static constexpr auto partials(A a) {
        return std::tuple{exp(a)};
    }
};

struct Log {
    static constexpr int arity = 1;
    static constexpr print_spec print{notation::call, 5, "log", "\\log"};
    static constexpr std::array<interval, 1> domain{positive};
    template <class T>
    static T eval(const T& a) {
        using std::log;
        return log(a);
    }
    template <class A>
    static constexpr auto partials(A a) {
        return std::tuple{c<1> / a};
    }
};

struct Log1p {
    static constexpr int arity = 1;
    static constexpr print_spec print{notation::call, 5, "log1p", "\\operatorname{log1p}"};
    static constexpr std::array<interval, 1> domain{interval{-0.8, 3.0}};
    template <class T>
    static T eval(const T& a) {
        using std::log1p;
        return log1p(a);
    }
    template <class A>
    static constexpr auto partials(A a) {
        return std::tuple{c<1> / (a + c<1>)};
    }
};

struct Expm1 {
    static constexpr int arity = 1;
    static constexpr print_spec print{notation::call, 5, "expm1", "\\operatorname{expm1}"};
    static constexpr std::array<interval, 1> domain{wide};
    template <class T>
    static T eval(const T& a) {
        if constexpr (num::Batch<T>) {
            return num::expm1_batch(a);  // xsimd's, range-corrected for float (sym/batch_exp.hpp)
        } else {
            using std::expm1;
            return expm1(a);
        }
    }
    // exp(a), not expm1(a) + 1, which loses all digits for a < -37.
    template <class A>
    static constexpr auto partials(A a) {
        return std::tuple{exp(a)};
    }
};

struct Sqrt {
    static constexpr int arity = 1;
    static constexpr print_spec print{notation::root, 5, "sqrt", "\\sqrt"};
    static constexpr std::array<interval, 1> domain{positive};
    template <class T>
    static T eval(const T& a) {
        using std::sqrt;
        return sqrt(a);
    }
    template <class A>
    static constexpr auto partials(A a) {
        return std::tuple{c<1, 2> / sqrt(a)};
    }
};

struct Tanh {
    static constexpr int arity = 1;
    static constexpr print_spec print{notation::call, 5, "tanh", "\\tanh"};
    static constexpr std::array<interval, 1> domain{wide};
    template <class T>
    static T eval(const T& a) {
        using std::tanh;
        return tanh(a);
    }
    template <class A>
    static constexpr auto partials(A a) {
        return std::tuple{c<1> - pow(tanh(a), c<2>)};
    }
};

struct Sigmoid {
    static constexpr int arity = 1;
    static constexpr print_spec print{notation::call, 5, "sigmoid", "\\sigma"};
    static constexpr std::array<interval, 1> domain{wide};
    // 1 / (1 + e^-a): exp overflows to +inf for a < -89 (float), giving the correct limit 0.
    template <class T>
    static T eval(const T& a) {
        const T one = num::rational<T>(1, 1);
        return one / (one + Exp::eval(-a));  // the Exp op's exponential, in batches too
    }
    template <class A>
    static constexpr auto partials(A a) {
        return std::tuple{sigmoid(a) * (c<1> - sigmoid(a))};
    }
};

struct Softplus {
    static constexpr int arity = 1;
    static constexpr print_spec print{notation::call, 5, "softplus", "\\operatorname{softplus}"};
    static constexpr std::array<interval, 1> domain{wide};
    // log(1 + e^a) in the stable form max(a, 0) + log1p(e^-|a|).
    template <class T>
    static T eval(const T& a) {
        using std::abs;
        using std::log1p;
        const T zero = num::rational<T>(0, 1);
        return num::select(a > zero, a, zero) + log1p(Exp::eval(-abs(a)));
    }
    template <class A>
    static constexpr auto partials(A a) {
        return std::tuple{sigmoid(a)};
    }
};

struct Sin {
    static constexpr int arity = 1;
    static constexpr print_spec print{notation::call, 5, "sin", "\\sin"};
    static constexpr std::array<interval, 1> domain{wide};
    template <class T>
    static T eval(const T& a) {
        using std::sin;
        return sin(a);
    }
    template <class A>
    static constexpr auto partials(A a) {
        return std::tuple{cos(a)};
    }
};

struct Cos {
    static constexpr int arity = 1;
    static constexpr print_spec print{notation::call, 5, "cos", "\\cos"};
    static constexpr std::array<interval, 1> domain{wide};
    template <class T>
    static T eval(const T& a) {
        using std::cos;
        return cos(a);
    }
    template <class A>
    static constexpr auto partials(A a) {
        return std::tuple{-sin(a)};
    }
};

struct Sign {
    static constexpr int arity = 1;
    static constexpr print_spec print{notation::call, 5, "sign", "\\operatorname{sign}"};
    static constexpr std::array<interval, 1> domain{wide};
    // 1, -1, or the argument itself for ±0 and NaN.
    template <class T>
    static T eval(const T& a) {
        const T zero = num::rational<T>(0, 1);
        const T one = num::rational<T>(1, 1);
        return num::select(a > zero, one, num::select(a < zero, -one, a));
    }
    template <class A>
    static constexpr auto partials(A) {
        return std::tuple{c<0>};
    }
};

/// less(a, b): 1 if a < b, 0 if a > b, 1/2 if a == b (infinities included), NaN if either is NaN. The partials of
/// min and max: step(b − a) would give NaN at a tie of two equal infinities (∞ − ∞).
struct Less {
    static constexpr int arity = 2;
    static constexpr print_spec print{notation::call, 5, "less", "\\operatorname{less}"};
    static constexpr std::array<interval, 2> domain{wide, wide};
    template <class T>
    static T eval(const T& a, const T& b) {
        const T zero = num::rational<T>(0, 1);
        const T one = num::rational<T>(1, 1);
        const T half = num::rational<T>(1, 2);
        return num::select(a < b, one, num::select(b < a, zero, num::select(a == b, half, a + b)));
    }
    template <class A, class B>
    static constexpr auto partials(A, B) {
        return std::tuple{c<0>, c<0>};
    }
};

struct Step {
    static constexpr int arity = 1;
    static constexpr print_spec print{notation::call, 5, "step", "\\operatorname{H}"};
    static constexpr std::array<interval, 1> domain{wide};
    // Heaviside step with step(0) = 1/2 (the tie convention of min and max); NaN stays NaN.
    template <class T>
    static T eval(const T& a) {
        return Less::eval(num::rational<T>(0, 1), a);
    }
    template <class A>
    static constexpr auto partials(A) {
        return std::tuple{c<0>};
    }
};

struct Abs {
    static constexpr int arity = 1;
    static constexpr print_spec print{notation::absolute, 5, "abs", ""};
    static constexpr std::array<interval, 1> domain{wide};
    template <class T>
    static T eval(const T& a) {
        using std::abs;
        return abs(a);
    }
    template <class A>
    static constexpr auto partials(A a) {
        return std::tuple{sign(a)};
    }
};

struct Erf {
    static constexpr int arity = 1;
    static constexpr print_spec print{notation::call, 5, "erf", "\\operatorname{erf}"};
    static constexpr std::array<interval, 1> domain{wide};
    // xsimd 8.1's double-precision erf is up to 67 ulp from the correctly rounded value (measured
    // on [-4, 4]); libm's is within 1 ulp, so double batches take libm lane by lane.
    template <class T>
    static T eval(const T& a) {
        using std::erf;
        if constexpr (num::Batch<T> && std::is_same_v<num::scalar_of_t<T>, double>) {
            return num::per_lane([](double v) { return std::erf(v); }, a);
        } else {
            return erf(a);
        }
    }
    // 2/sqrt(pi) * exp(-a^2); the constant is the double nearest 2/sqrt(pi).
    template <class A>
    static constexpr auto partials(A a) {
        return std::tuple{fc<1.1283791670955126> * exp(-pow(a, c<2>))};
    }
};

struct Min {
    static constexpr int arity = 2;
    static constexpr print_spec print{notation::call, 5, "min", "\\min"};
    static constexpr std::array<interval, 2> domain{wide, wide};
    // a < b ? a : b, ties give a, and a NaN in either argument gives NaN (a + b).
    template <class T>
    static T eval(const T& a, const T& b) {
        return num::select(a < b, a, num::select(b < a, b, num::select(a == b, a, a + b)));
    }
    template <class A, class B>
    static constexpr auto partials(A a, B b) {
        return std::tuple{less(a, b), less(b, a)};
    }
};

struct Max {
    static constexpr int arity = 2;
    static constexpr print_spec print{notation::call, 5, "max", "\\max"};
    static constexpr std::array<interval, 2> domain{wide, wide};
    template <class T>
    static T eval(const T& a, const T& b) {
        return num::select(a > b, a, num::select(b > a, b, num::select(a == b, a, a + b)));
    }
    template <class A, class B>
    static constexpr auto partials(A a, B b) {
        return std::tuple{less(b, a), less(a, b)};
    }
};

/// a^b with an expression exponent (IEEE pow: NaN for a < 0 and non-integer b).
struct Pow {
    static constexpr int arity = 2;
    static constexpr print_spec print{notation::power, 4, "^", "^"};
    static constexpr std::array<interval, 2> domain{positive, wide};
    // Batches take libm's pow lane by lane: xsimd 8's pow is up to 33 ulp off (double) and breaks IEEE's special
    // values (0^0 = 0, 0^-1 = 0, NaN^0 = NaN, 1^NaN = NaN), which made a gradient depend on the lane.
    template <class T>
    static T eval(const T& a, const T& b) {
        if constexpr (num::Batch<T>) {
            return num::per_lane([](auto u, auto v) { return std::pow(u, v); }, a, b);
        } else {
            using std::pow;
            return pow(a, b);
        }
    }
    template <class A, class B>
    static constexpr auto partials(A a, B b) {
        return std::tuple{b * pow(a, b - c<1>), pow(a, b) * log(a)};
    }
};

namespace detail {
// a^n for a compile-time n >= 1 by repeated squaring: exact for small integers, any sign of a.
template <std::intmax_t N, class T>
inline T ipow(const T& a) {
    if constexpr (N == 1) {
        return a;
    } else if constexpr (N % 2 == 0) {
        const T h = ipow<N / 2>(a);
        return h * h;
    } else {
        return ipow<N - 1>(a) * a;
    }
}
}  // namespace detail

/// a^(N/D) with a compile-time rational exponent, with IEEE pow's special values. Integer exponents up to 8
/// multiply (valid for negative a; within about 4 ulp), half-integers up to 15/2 go through sqrt, other
/// exponents through libm's pow (lane by lane for batches: repeated squaring to x^63 was 38 ulp off).
template <std::intmax_t N, std::intmax_t D>
struct PowC {
    static constexpr int arity = 1;
    static constexpr std::intmax_t num = N;
    static constexpr std::intmax_t den = D;
    static constexpr print_spec print{notation::power, 4, "^", "^"};
    static constexpr std::array<interval, 1> domain{D == 1 ? wide : positive};
    template <class T>
    static T eval(const T& a) {
        using std::pow;
        using std::sqrt;
        constexpr std::intmax_t m = N < 0 ? -N : N;
        if constexpr (D == 1 && m <= 8) {
            // A negative power multiplies the reciprocal, so x^-3 underflows gradually as pow does.
            if constexpr (N < 0)
                return detail::ipow<m>(num::rational<T>(1, 1) / a);
            else
                return detail::ipow<m>(a);
        } else if constexpr (D == 2 && m <= 15) {
            // pow(−0, m/2) = +0 and pow(−inf, m/2) = +inf, where sqrt gives −0 and NaN.
            const T inf = num::constant<T>(std::numeric_limits<double>::infinity());
            const T r = num::select(a == -inf, inf, sqrt(a) + num::rational<T>(0, 1));
            const T p = m == 1 ? r : detail::ipow<m>(r);
            if constexpr (N < 0)
                return num::rational<T>(1, 1) / p;
            else
                return p;
        } else if constexpr (num::Batch<T>) {
            return num::per_lane([](auto v) { return std::pow(v, num::rational<decltype(v)>(N, D)); }, a);
        } else {
            return pow(a, num::rational<T>(N, D));
        }
    }
    template <class A>
    static constexpr auto partials(A a) {
        return std::tuple{c<N, D> * pow(a, c<N - D, D>)};
    }
};

}  // namespace op

/// Every op of the table, as instantiated by the derivative-law tests (PowC at representative
/// exponents). A new op is added here too.
using all_ops = meta::type_list<op::Add, op::Sub, op::Mul, op::Div, op::Neg, op::Exp, op::Log, op::Log1p, op::Expm1,
                                op::Sqrt, op::Tanh, op::Sigmoid, op::Softplus, op::Sin, op::Cos, op::Sign, op::Step,
                                op::Less, op::Abs, op::Erf, op::Min, op::Max, op::Pow, op::PowC<2, 1>, op::PowC<3, 1>,
                                op::PowC<-1, 1>, op::PowC<-2, 1>, op::PowC<1, 2>, op::PowC<-3, 2>, op::PowC<1, 3>>;

}  // namespace exprgrad::sym
