// Symbolic differentiation: d(f, x) builds the derivative expression by the chain rule over the op
// table's partials, simplified as it is built (build.hpp). Higher orders come by repetition.
#pragma once

#include <algorithm>
#include <tuple>
#include <type_traits>
#include <utility>

#include "exprgrad/sym/build.hpp"
#include "exprgrad/sym/expr.hpp"

namespace exprgrad::sym {

namespace detail {
template <class E>
struct arity_of {
    static constexpr int value = 0;
};
template <int I>
struct arity_of<Var<I>> {
    static constexpr int value = I + 1;
};
template <class Op, class... Cs>
struct arity_of<Node<Op, Cs...>> {
    static constexpr int value = std::max({0, arity_of<Cs>::value...});
};

template <class... Es>
struct max_arity {
    static constexpr int value = std::max({0, arity_of<Es>::value...});
};
}  // namespace detail

/// Number of arguments an expression reads: one more than its highest variable index (0 for a
/// constant). Evaluating it takes at least this many arguments.
template <Expression E>
inline constexpr int arity_v = detail::arity_of<std::remove_cvref_t<E>>::value;

namespace detail {
template <class Op, class... Cs, class X>
constexpr auto chain(Node<Op, Cs...>, X);
}

/// The derivative of f with respect to the variable x, as a new simplified expression.
/// Example: `d(sin(x) * x, x)` is `cos(x)*x + sin(x)`. Any order by repetition: `d(d(f, x), y)`.
/// Kinks follow the op table's conventions (abs'(0) = 0, min/max ties split 1/2 and 1/2).
template <Expression F, Expression X>
constexpr auto d(F, X) {
    static_assert(Variable<X>, "exprgrad: d(f, x) differentiates with respect to a variable such as var<0>");
    if constexpr (Variable<F>) {
        if constexpr (std::is_same_v<F, X>)
            return Const<1>{};
        else
            return Const<0>{};
    } else if constexpr (Constant<F>) {
        return Const<0>{};
    } else {
        return detail::chain(F{}, X{});
    }
}

/// Rejected: d with something other than an expression (say `d(f, 1.0)`) as its second argument; its
/// return type is deduced so that the sentence below is the first error the compiler reports.
template <Expression F, class X>
requires(!Expression<X>) constexpr auto d(F, X) {
    static_assert(detail::dependent_false<X>,
                  "exprgrad: d(f, x) differentiates with respect to a variable such as var<0>");
    return Const<0>{};
}

namespace detail {
template <class X, class Partials, class... Cs, std::size_t... Ks>
constexpr auto chain_sum(Partials partials, std::index_sequence<Ks...>) {
    return (Const<0>{} + ... + (std::get<Ks>(partials) * d(Cs{}, X{})));
}

// Sum over children of partial * d(child, x); terms of children free of x vanish as 0 * p = 0.
template <class Op, class... Cs, class X>
constexpr auto chain(Node<Op, Cs...>, X) {
    return chain_sum<X, decltype(Op::partials(Cs{}...)), Cs...>(Op::partials(Cs{}...),
                                                                std::index_sequence_for<Cs...>{});
}
}  // namespace detail

/// All first partials of f, in variable order: a std::tuple of expressions of size arity_v<F>.
/// Example: `auto [fx, fy] = grad(x * y);` gives `y` and `x`.
template <Expression F>
constexpr auto grad(F f) {
    return [f]<std::size_t... Is>(std::index_sequence<Is...>) { return std::tuple{d(f, var<static_cast<int>(Is)>)...}; }
    (std::make_index_sequence<arity_v<F>>{});
}

/// All second partials of f: a std::tuple of rows, row i holding d(d(f, x_i), x_j) for every j.
/// The (i, j) and (j, i) entries are built separately and may differ in form, never in value.
template <Expression F>
constexpr auto hessian(F f) {
    // Row I: the partials d(d(f, x_I), x_J) for every J (F is stateless, so F{} is f).
    constexpr auto row = []<std::size_t I, std::size_t... Js>(std::integral_constant<std::size_t, I>,
                                                              std::index_sequence<Js...>) {
        return std::tuple{d(d(F{}, var<static_cast<int>(I)>), var<static_cast<int>(Js)>)...};
    };
    (void)f;
    return [row]<std::size_t... Is>(std::index_sequence<Is...>) {
        return std::tuple{row(std::integral_constant<std::size_t, Is>{}, std::index_sequence<Is...>{})...};
    }(std::make_index_sequence<arity_v<F>>{});
}

}  // namespace exprgrad::sym
