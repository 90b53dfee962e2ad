// Printing expressions as infix text and as LaTeX, with the fewest parentheses that keep the
// evaluation order (sums and products associate to the left, as they evaluate). The text reads back
// with the usual precedence (^ binds tightest, then unary minus, then * and /, then + and -) to the
// same IEEE value: the only liberties taken are exact in IEEE arithmetic, a + (-c) printed as a - c
// and -(a*b) printed as -a*b (negation is exact and rounding is symmetric).
#pragma once

#include <charconv>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "exprgrad/sym/expr.hpp"
#include "exprgrad/sym/ops.hpp"

namespace exprgrad::sym {

namespace detail {

struct printed {
    std::string text;
    int prec;  // binding strength, as in print_spec; a text fraction 1/2 binds like a product (2)
    // The text starts with a minus sign. With prec >= 2 the text without that sign is exactly the
    // negated value (a negative constant, a negation, or a product/quotient whose first factor is one).
    bool leading_minus = false;
    bool fraction = false;  // a LaTeX \frac, bracketed as the base of a power
};

struct print_style {
    bool latex;
    const std::vector<std::string>* names;
};

inline std::string wrap(const printed& p, bool need, bool latex) {
    if (!need) return p.text;
    return latex ? "\\left(" + p.text + "\\right)" : "(" + p.text + ")";
}

inline std::string var_name(int i, const print_style& s) {
    if (s.names != nullptr && static_cast<std::size_t>(i) < s.names->size())
        return (*s.names)[static_cast<std::size_t>(i)];
    return s.latex ? "x_{" + std::to_string(i) + "}" : "x" + std::to_string(i);
}

inline std::string shortest(double v) {
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, r.ptr);
}

// A floating constant: shortest round-trip text; in LaTeX 1e-300 is written 10^{-300} and 2.5e+20
// is 2.5 \cdot 10^{20}.
inline printed float_text(double v, const print_style& s) {
    const std::string t = shortest(v);
    const bool neg = !t.empty() && t[0] == '-';
    const std::size_t epos = t.find('e');
    if (!s.latex || epos == std::string::npos) return {t, neg ? 3 : 5, neg};
    std::string mant = t.substr(0, epos);
    std::string ex = t.substr(epos + 1);
    std::string sign;
    if (!ex.empty() && (ex[0] == '+' || ex[0] == '-')) {
        if (ex[0] == '-') sign = "-";
        ex.erase(0, 1);
    }
    while (ex.size() > 1 && ex[0] == '0') ex.erase(0, 1);
    const std::string pow10 = "10^{" + sign + ex + "}";
    const std::string mag = neg ? mant.substr(1) : mant;
    if (mag == "1") return {(neg ? "-" : "") + pow10, neg ? 3 : 4, neg};
    return {mant + " \\cdot " + pow10, 2, neg};
}

inline printed rational_text(std::intmax_t n, std::intmax_t d, const print_style& s) {
    const bool neg = n < 0;
    const std::string mag = std::to_string(neg ? -n : n);
    if (d == 1) return {(neg ? "-" : "") + mag, neg ? 3 : 5, neg};
    // In text a fraction binds like a quotient: 1/2*x and x + 1/2 read back as written, x*(1/2) and
    // (1/2)^x need their brackets. -1/2 reads as (-1)/2, the same value as -(1/2).
    if (s.latex)
        return {std::string(neg ? "-" : "") + "\\frac{" + mag + "}{" + std::to_string(d) + "}", neg ? 3 : 5, neg, !neg};
    return {(neg ? "-" : "") + mag + "/" + std::to_string(d), 2, neg};
}

template <class E>
struct printer;

template <int I>
struct printer<Var<I>> {
    static printed run(const print_style& s) { return {var_name(I, s), 5}; }
};
template <std::intmax_t N, std::intmax_t D>
struct printer<Const<N, D>> {
    static printed run(const print_style& s) { return rational_text(N, D, s); }
};
template <double V>
struct printer<FConst<V>> {
    static printed run(const print_style& s) { return float_text(V, s); }
};
template <class Tag>
struct printer<Named<Tag>> {
    static printed run(const print_style& s) { return {s.latex ? Tag::latex : Tag::name, 5}; }
};

template <class Op>
struct exponent_of {
    static printed run(const printed& b, const print_style&) { return b; }
};
template <std::intmax_t N, std::intmax_t D>
struct exponent_of<op::PowC<N, D>> {
    template <class Ignored>
    static printed run(const Ignored&, const print_style& s) {
        return rational_text(N, D, s);
    }
};

template <class Op, class... Cs>
struct printer<Node<Op, Cs...>> {
    static printed run(const print_style& s) {
        constexpr print_spec spec = Op::print;
        const printed args[] = {printer<Cs>::run(s)...};
        const bool L = s.latex;
        switch (spec.kind) {
            case notation::infix: {
                const printed& a = args[0];
                const printed& b = args[1];
                // a + (-t) prints as a - t and a - (-t) as a + t: IEEE defines a - t as a + (-t).
                constexpr bool plus = std::is_same_v<Op, op::Add>;
                if ((plus || std::is_same_v<Op, op::Sub>)&&b.leading_minus && b.prec >= 2) {
                    return {wrap(a, a.prec < spec.prec, L) + (plus ? " - " : " + ") + b.text.substr(1), spec.prec,
                            a.leading_minus && a.prec >= spec.prec};
                }
                // Left operand: parenthesize if it binds more loosely; right operand: also if equal,
                // since a - (b - c) and a*(b*c) evaluate in a different order than a - b - c.
                std::string t = wrap(a, a.prec < spec.prec, L) + (L ? spec.latex : spec.text) +
                                wrap(b, b.prec <= spec.prec || b.leading_minus, L);
                return {t, spec.prec, a.leading_minus && a.prec >= spec.prec};
            }
            case notation::fraction: {
                const printed& a = args[0];
                const printed& b = args[1];
                if (L) return {"\\frac{" + a.text + "}{" + b.text + "}", 5, false, true};
                return {wrap(a, a.prec < 2, false) + "/" + wrap(b, b.prec <= 2 || b.leading_minus, false), 2,
                        a.leading_minus && a.prec >= 2};
            }
            case notation::prefix: {
                const printed& a = args[0];
                // -(a*b) prints as -a*b, read back as (-a)*b: the same value, negation being exact.
                if (a.prec == 2 && !a.leading_minus) return {std::string(L ? spec.latex : spec.text) + a.text, 2, true};
                return {std::string(L ? spec.latex : spec.text) + wrap(a, a.prec < 4 || a.leading_minus, L), 3, true};
            }
            case notation::power: {
                const printed& base = args[0];
                const printed ex = exponent_of<Op>::run(args[sizeof...(Cs) - 1], s);
                if (L) {
                    if (base.prec < 5 || base.fraction) return {wrap(base, true, true) + "^{" + ex.text + "}", 4};
                    return {"{" + base.text + "}^{" + ex.text + "}", 4};
                }
                return {wrap(base, base.prec < 5, false) + "^" + wrap(ex, ex.prec < 5, false), 4};
            }
            case notation::absolute:
                return {L ? "\\left|" + args[0].text + "\\right|" : "abs(" + args[0].text + ")", 5};
            case notation::root:
                return {L ? "\\sqrt{" + args[0].text + "}" : "sqrt(" + args[0].text + ")", 5};
            case notation::call:
            default: {
                std::string t = std::string(L ? spec.latex : spec.text) + (L ? "\\left(" : "(");
                for (std::size_t i = 0; i < sizeof...(Cs); ++i) t += (i ? ", " : "") + args[i].text;
                return {t + (L ? "\\right)" : ")"), 5};
            }
        }
    }
};

}  // namespace detail

/// Infix text of an expression, variables printed as x0, x1, ... or as the given names.
/// Example: `to_string(exp(sin(x) * y) / (1_c + x * x))` is `exp(sin(x0)*x1)/(x0^2 + 1)`.
template <Expression E>
std::string to_string(E, const std::vector<std::string>& names = {}) {
    return detail::printer<E>::run({false, &names}).text;
}

/// LaTeX of an expression (\frac, \sqrt, x^{n}, \exp\left(...\right)), variables x_{0}, ... or names.
template <Expression E>
std::string to_latex(E, const std::vector<std::string>& names = {}) {
    return detail::printer<E>::run({true, &names}).text;
}

}  // namespace exprgrad::sym
