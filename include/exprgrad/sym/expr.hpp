// The expression types of the scalar symbolic layer: leaves (variables and compile-time constants)
// and operation nodes. Every expression is an empty type whose identity is its meaning, so two
// structurally equal expressions are the same type.
#pragma once

#include "exprgrad/require_cxx20.hpp"  // first: refuses a standard older than C++20

#include <cstdint>
#include <numeric>
#include <type_traits>

namespace exprgrad::sym {

/// Gives every expression its call operator: `f(0.5, 2.0)` evaluates f (see evaluate.hpp).
template <class Self>
struct expr_base {
    template <class... Args>
    constexpr auto operator()(const Args&... args) const {
        return evaluate(Self{}, args...);
    }
};

/// The I-th argument of an expression. `var<0>(2.0) == 2.0`.
template <int I>
struct Var : expr_base<Var<I>> {
    static_assert(I >= 0, "exprgrad: a variable index must be non-negative");
    static constexpr int index = I;
};

/// An exact rational constant N/D in lowest terms with D > 0. Build it with `2_c` or `c<1, 2>`.
template <std::intmax_t N, std::intmax_t D = 1>
struct Const : expr_base<Const<N, D>> {
    static_assert(D > 0 && std::gcd(N, D) == 1, "exprgrad: Const must be a normalized rational");
    static constexpr std::intmax_t num = N;
    static constexpr std::intmax_t den = D;
    static constexpr bool is_integer = D == 1;
    static constexpr double value = static_cast<double>(N) / static_cast<double>(D);
};

/// A floating-point constant known at compile time (`fc<1e-300>`); never folded with others, so the
/// double V is what every evaluation sees (rounded to the evaluation type).
template <double V>
struct FConst : expr_base<FConst<V>> {
    static constexpr double value = V;
};

/// A named irrational constant; Tag provides `value` (double) and `name` / `latex`.
template <class Tag>
struct Named : expr_base<Named<Tag>> {
    static constexpr double value = Tag::value;
};

/// An operation applied to child expressions; Op is an entry of the op table (ops.hpp).
template <class Op, class... Cs>
struct Node : expr_base<Node<Op, Cs...>> {};

namespace detail {
template <class T>
struct is_expr : std::false_type {};
template <int I>
struct is_expr<Var<I>> : std::true_type {};
template <std::intmax_t N, std::intmax_t D>
struct is_expr<Const<N, D>> : std::true_type {};
template <double V>
struct is_expr<FConst<V>> : std::true_type {};
template <class Tag>
struct is_expr<Named<Tag>> : std::true_type {};
template <class Op, class... Cs>
struct is_expr<Node<Op, Cs...>> : std::true_type {};

template <class T>
struct is_rational : std::false_type {};
template <std::intmax_t N, std::intmax_t D>
struct is_rational<Const<N, D>> : std::true_type {};

template <class T>
struct is_var : std::false_type {};
template <int I>
struct is_var<Var<I>> : std::true_type {};
}  // namespace detail

/// Satisfied by every symbolic scalar expression type.
template <class T>
concept Expression = detail::is_expr<std::remove_cvref_t<T>>::value;

/// Satisfied by exact rational constants.
template <class T>
concept Rational = detail::is_rational<std::remove_cvref_t<T>>::value;

/// Satisfied by the variables `var<I>`.
template <class T>
concept Variable = detail::is_var<std::remove_cvref_t<T>>::value;

/// Satisfied by constants of any kind (rational, floating, named).
template <class T>
concept Constant = Expression<T> && !Variable<T> && requires {
    std::remove_cvref_t<T>::value;
};

/// The I-th argument; `var<0>` is usually bound to a name: `constexpr auto x = var<0>;`.
template <int I>
inline constexpr Var<I> var{};

namespace detail {
constexpr std::intmax_t abs_i(std::intmax_t v) { return v < 0 ? -v : v; }
template <std::intmax_t N, std::intmax_t D>
struct make_rational {
    static_assert(D != 0, "exprgrad: division by the constant zero");
    static constexpr std::intmax_t g = std::gcd(abs_i(N), abs_i(D)) == 0 ? 1 : std::gcd(abs_i(N), abs_i(D));
    static constexpr std::intmax_t sign = D < 0 ? -1 : 1;
    using type = Const<sign * N / g, sign * D / g>;
};
}  // namespace detail

/// The rational constant N/D, normalized: `c<1, 2>`, `c<-4, 6>` is `c<-2, 3>`.
template <std::intmax_t N, std::intmax_t D = 1>
inline constexpr typename detail::make_rational<N, D>::type c{};

/// A floating-point compile-time constant: `fc<0.1>` is the double nearest 0.1 (while `c<1, 10>`
/// is exact and rounds once to the evaluation type).
template <double V>
inline constexpr FConst<V> fc{};

/// Named constants; in their own namespace so that local variables `e` or `d` hide nothing.
namespace constants {
struct pi_tag {
    static constexpr double value = 3.14159265358979323846264338327950288;
    static constexpr const char* name = "pi";
    static constexpr const char* latex = "\\pi";
};
struct e_tag {
    static constexpr double value = 2.71828182845904523536028747135266250;
    static constexpr const char* name = "e";
    static constexpr const char* latex = "e";
};
/// π as a symbolic constant: `sin(constants::pi * x)`.
inline constexpr Named<pi_tag> pi{};
/// Euler's number as a symbolic constant.
inline constexpr Named<e_tag> e{};
}  // namespace constants

namespace literal_detail {
/// Why a `_c` literal was refused (none: accepted).
enum class literal_error { none, too_large, hex_float, bad_digit };

/// The exact value num/den of the characters of a C++ number literal, following C++'s integer
/// literal syntax (decimal, octal with a leading 0, hexadecimal 0x, binary 0b, digit separators ')
/// and decimal floating literals (digits, '.', exponent), which are converted exactly.
template <char... Cs>
struct literal_parser {
    static constexpr char chars[] = {Cs...};
    static constexpr std::size_t n = sizeof...(Cs);
    struct result {
        std::intmax_t num = 0;
        std::intmax_t den = 1;
        literal_error error = literal_error::none;
    };
    static constexpr int digit_value(char ch) {
        if (ch >= '0' && ch <= '9') return ch - '0';
        if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
        if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
        return 99;
    }
    static constexpr bool is_floating() {
        bool hex = n > 1 && chars[0] == '0' && (chars[1] == 'x' || chars[1] == 'X');
        for (std::size_t i = 0; i < n; ++i) {
            const char ch = chars[i];
            if (ch == '.' || ch == 'p' || ch == 'P' || (!hex && (ch == 'e' || ch == 'E'))) return true;
        }
        return false;
    }
    // num = num * base + digit, or false on overflow.
    static constexpr bool push(std::intmax_t& num, int base, int digit) {
        return !__builtin_mul_overflow(num, base, &num) && !__builtin_add_overflow(num, digit, &num);
    }
    static constexpr result parse_integer() {
        result r;
        int base = 10;
        std::size_t i = 0;
        if (n > 1 && chars[0] == '0' && (chars[1] == 'x' || chars[1] == 'X')) {
            base = 16;
            i = 2;
        } else if (n > 1 && chars[0] == '0' && (chars[1] == 'b' || chars[1] == 'B')) {
            base = 2;
            i = 2;
        } else if (n > 1 && chars[0] == '0') {
            base = 8;
            i = 1;
        }
        for (; i < n; ++i) {
            if (chars[i] == '\'') continue;
            const int v = digit_value(chars[i]);
            if (v >= base) {
                r.error = literal_error::bad_digit;
                return r;
            }
            if (!push(r.num, base, v)) {
                r.error = literal_error::too_large;
                return r;
            }
        }
        return r;
    }
    static constexpr result parse_decimal_floating() {
        result r;
        std::size_t i = 0;
        int frac_digits = 0;
        bool in_frac = false;
        for (; i < n; ++i) {
            const char ch = chars[i];
            if (ch == '\'') continue;
            if (ch == '.') {
                in_frac = true;
                continue;
            }
            if (ch == 'e' || ch == 'E') break;
            if (!push(r.num, 10, ch - '0')) {
                r.error = literal_error::too_large;
                return r;
            }
            if (in_frac) ++frac_digits;
        }
        int exponent = 0;
        if (i < n) {
            ++i;
            bool neg = false;
            if (i < n && (chars[i] == '-' || chars[i] == '+')) neg = chars[i++] == '-';
            for (; i < n; ++i) {
                if (chars[i] == '\'') continue;
                exponent = exponent * 10 + (chars[i] - '0');
                if (exponent > 100) {
                    r.error = literal_error::too_large;
                    return r;
                }
            }
            if (neg) exponent = -exponent;
        }
        exponent -= frac_digits;
        for (; exponent > 0; --exponent) {
            if (!push(r.num, 10, 0)) {
                r.error = literal_error::too_large;
                return r;
            }
        }
        for (; exponent < 0; ++exponent) {
            if (!push(r.den, 10, 0)) {
                r.error = literal_error::too_large;
                return r;
            }
        }
        return r;
    }
    static constexpr result parse() {
        if (!is_floating()) return parse_integer();
        if (n > 1 && chars[0] == '0' && (chars[1] == 'x' || chars[1] == 'X')) {
            result r;
            r.error = literal_error::hex_float;
            return r;
        }
        return parse_decimal_floating();
    }
    static constexpr result value = parse();
};
}  // namespace literal_detail

namespace literals {

/// `2_c`, `0.25_c`, `1e3_c`, `0x10_c`, `010_c` (octal 8), `0b101_c`, `1'000_c`: an exact rational
/// constant. Integer literals follow C++'s syntax; decimal floating literals are converted exactly.
/// Literals too large for a 64-bit rational fail to compile; use `fc<value>` for those.
template <char... Cs>
constexpr auto operator""_c() {
    constexpr auto r = literal_detail::literal_parser<Cs...>::value;
    static_assert(r.error != literal_detail::literal_error::too_large,
                  "exprgrad: this _c literal does not fit an exact 64-bit rational; use fc<value>");
    static_assert(r.error != literal_detail::literal_error::hex_float,
                  "exprgrad: hexadecimal floating literals are not supported by _c; use fc<value>");
    static_assert(r.error != literal_detail::literal_error::bad_digit,
                  "exprgrad: this _c literal has a digit its base does not allow");
    if constexpr (r.error == literal_detail::literal_error::none)
        return c<r.num, r.den>;
    else
        return c<0>;
}
}  // namespace literals

}  // namespace exprgrad::sym
