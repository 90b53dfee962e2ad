// Printing expressions as infix text and as LaTeX, with the fewest parentheses that keep the
// evaluation order (sums and products associate to the left, as they evaluate).
#pragma once

#include <charconv>
#include <cstdint>
#include <string>
#include <vector>

#include "exprgrad/sym/expr.hpp"
#include "exprgrad/sym/ops.hpp"

namespace exprgrad::sym {

namespace detail {

struct printed {
    std::string text;
    int prec;  // binding strength, as in print_spec
    bool leading_minus = false;
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

inline printed rational_text(std::intmax_t n, std::intmax_t d, const print_style& s) {
    const bool neg = n < 0;
    const std::string mag = std::to_string(neg ? -n : n);
    if (d == 1) return {(neg ? "-" : "") + mag, neg ? 3 : 5, neg};
    // A fraction binds like a sum, so it is parenthesized wherever it is an operand.
    std::string body = s.latex ? "\\frac{" + mag + "}{" + std::to_string(d) + "}" : mag + "/" + std::to_string(d);
    if (s.latex) return {(neg ? "-" : "") + body, neg ? 3 : 5, neg};
    return {(neg ? "-" : "") + body, 1, neg};
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
    static printed run(const print_style&) { return {shortest(V), V < 0 ? 3 : 5, V < 0}; }
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
struct exponent_of<ops::PowC<N, D>> {
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
                // Left operand: parenthesize if it binds more loosely; right operand: also if equal,
                // since a - (b - c) and a*(b*c) evaluate in a different order than a - b - c.
                std::string t = wrap(a, a.prec < spec.prec, L) + (L ? spec.latex : spec.text) +
                                wrap(b, b.prec <= spec.prec || b.leading_minus, L);
                return {t, spec.prec, a.leading_minus && a.prec >= spec.prec};
            }
            case notation::fraction: {
                const printed& a = args[0];
                const printed& b = args[1];
                if (L) return {"\\frac{" + a.text + "}{" + b.text + "}", 5};
                return {wrap(a, a.prec < 2, false) + "/" + wrap(b, b.prec <= 2 || b.leading_minus, false), 2,
                        a.leading_minus && a.prec >= 2};
            }
            case notation::prefix: {
                const printed& a = args[0];
                return {std::string(L ? spec.latex : spec.text) + wrap(a, a.prec < 4 || a.leading_minus, L), 3, true};
            }
            case notation::power: {
                const printed& base = args[0];
                const printed ex = exponent_of<Op>::run(args[sizeof...(Cs) - 1], s);
                if (L) return {"{" + wrap(base, base.prec < 5, true) + "}^{" + ex.text + "}", 4};
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
