// Evaluation with common-subexpression elimination: the distinct node types of all requested
// outputs are gathered into one list in topological order (children first), each is evaluated
// once into an array, and the outputs are read from it. Type identity is structural equality, so
// this is exact, and it is what makes value_and_grad cheaper than evaluating partials one by one.
#pragma once

#include <array>
#include <cstddef>
#include <tuple>
#include <type_traits>
#include <utility>

#include "exprgrad/sym/derivative.hpp"
#include "exprgrad/sym/expr.hpp"
#include "exprgrad/sym/numeric.hpp"
#include "exprgrad/sym/type_list.hpp"

namespace exprgrad::sym {

namespace detail {

// collect<E, L>: L with every node of E not yet in L appended, children before parents.
template <class E, class L, bool Present = meta::contains_v<E, L>>
struct collect;
template <class L, class... Es>
struct collect_all;
template <class L>
struct collect_all<L> {
    using type = L;
};
template <class L, class E, class... Es>
struct collect_all<L, E, Es...> {
    using type = typename collect_all<typename collect<E, L>::type, Es...>::type;
};
template <class E, class L>
struct collect<E, L, true> {
    using type = L;
};
template <class E, class L>
struct collect<E, L, false> {
    using type = typename meta::push_back<L, E>::type;
};
template <class Op, class... Cs, class L>
struct collect<Node<Op, Cs...>, L, false> {
    using type = typename meta::push_back<typename collect_all<L, Cs...>::type, Node<Op, Cs...>>::type;
};

template <class T, class E, class L, std::size_t NArgs>
struct node_eval;
template <class T, int I, class L, std::size_t NArgs>
struct node_eval<T, Var<I>, L, NArgs> {
    template <std::size_t N>
    static T run(const std::array<T, N>&, const std::array<T, NArgs>& args) { return args[I]; }
};
template <class T, std::intmax_t Nu, std::intmax_t De, class L, std::size_t NArgs>
struct node_eval<T, Const<Nu, De>, L, NArgs> {
    template <std::size_t N>
    static T run(const std::array<T, N>&, const std::array<T, NArgs>&) { return num::rational<T>(Nu, De); }
};
template <class T, double V, class L, std::size_t NArgs>
struct node_eval<T, FConst<V>, L, NArgs> {
    template <std::size_t N>
    static T run(const std::array<T, N>&, const std::array<T, NArgs>&) { return num::constant<T>(V); }
};
template <class T, class Tag, class L, std::size_t NArgs>
struct node_eval<T, Named<Tag>, L, NArgs> {
    template <std::size_t N>
    static T run(const std::array<T, N>&, const std::array<T, NArgs>&) { return num::constant<T>(Tag::value); }
};
template <class T, class Op, class... Cs, class L, std::size_t NArgs>
struct node_eval<T, Node<Op, Cs...>, L, NArgs> {
    template <std::size_t N>
    static T run(const std::array<T, N>& vals, const std::array<T, NArgs>&) {
        return Op::eval(vals[meta::index_of_v<Cs, L>]...);
    }
};

template <class T, std::size_t NArgs, class... Ns>
inline std::array<T, sizeof...(Ns)> eval_list(meta::type_list<Ns...>, const std::array<T, NArgs>& args) {
    using L = meta::type_list<Ns...>;
    std::array<T, sizeof...(Ns)> vals;
    std::size_t i = 0;
    ((vals[i++] = node_eval<T, Ns, L, NArgs>::run(vals, args)), ...);
    return vals;
}

// The number type of one evaluation: one shared type, or plain numbers promoted to floating point.
template <class... Args>
struct common_number {
    static constexpr bool all_arithmetic = (std::is_arithmetic_v<Args> && ...);
    static constexpr bool all_same = (std::is_same_v<Args, std::tuple_element_t<0, std::tuple<Args...>>> && ...);
    static_assert(all_arithmetic || all_same,
                  "exprgrad: the arguments of one evaluation must share one number type (double, float, one "
                  "xsimd::batch type or your own) or all be plain numbers");
    using type = std::conditional_t<all_arithmetic, std::common_type_t<double, Args...>,
                                    std::tuple_element_t<0, std::tuple<Args..., void>>>;
};
template <>
struct common_number<> {
    using type = double;
};
template <class... Args>
    requires(sizeof...(Args) > 0 && (std::is_arithmetic_v<Args> && ...))
struct common_number<Args...> {
    using common = std::common_type_t<Args...>;
    // float stays float; integers and mixtures with double evaluate in double.
    using type = std::conditional_t<std::is_floating_point_v<common>, common, double>;
};

}  // namespace detail

/// The distinct node types of the expressions Es, children before parents.
template <Expression... Es>
using node_list_t = typename detail::collect_all<meta::type_list<>, std::remove_cvref_t<Es>...>::type;

/// Number of distinct node types (leaves included) of the expressions Es together.
template <Expression... Es>
inline constexpr std::size_t node_count_v = node_list_t<Es...>::size;

/// Evaluates several expressions at once, each distinct subexpression once. Returns
/// std::array<T, sizeof...(Es)>. All expressions read the same arguments.
template <Expression... Es, class... Args>
inline auto evaluate_all(std::tuple<Es...>, const Args&... args) {
    using T = typename detail::common_number<Args...>::type;
    constexpr int needed = detail::max_arity<Es...>::value;
    static_assert(static_cast<int>(sizeof...(Args)) >= needed,
                  "exprgrad: too few arguments: an expression reading var<I> needs at least I + 1 arguments");
    using L = node_list_t<Es...>;
    const std::array<T, sizeof...(Args)> a{static_cast<T>(args)...};
    const auto vals = detail::eval_list(L{}, a);
    return std::array<T, sizeof...(Es)>{vals[meta::index_of_v<std::remove_cvref_t<Es>, L>]...};
}

/// The value of f at the arguments: `f(0.5, 2.0)`. Works for double, float, xsimd::batch and any
/// number type with the arithmetic and math functions the ops use (found by argument-dependent
/// lookup). Plain numbers of mixed types evaluate in double. The IEEE value of the simplified form.
template <Expression E, class... Args>
inline auto evaluate(E, const Args&... args) {
    return evaluate_all(std::tuple<E>{}, args...)[0];
}

/// A callable giving the value of f and all its first partials at once, each distinct
/// subexpression of the value and the partials evaluated once.
/// `auto [v, g] = value_and_grad(f)(0.5, 2.0);` gives v = f(0.5, 2.0), g[i] = d(f, var<i>)(0.5, 2.0).
template <Expression F>
constexpr auto value_and_grad(F f) {
    return [f](const auto&... args) {
        constexpr auto n = static_cast<std::size_t>(arity_v<F>);
        const auto all = evaluate_all(std::tuple_cat(std::tuple<F>{}, grad(f)), args...);
        using T = std::remove_const_t<typename decltype(all)::value_type>;
        std::array<T, n> g;
        for (std::size_t i = 0; i < n; ++i) g[i] = all[i + 1];
        return std::pair<T, std::array<T, n>>{all[0], g};
    };
}

}  // namespace exprgrad::sym
