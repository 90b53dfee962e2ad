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

// node_eval<T, E, L>::run(vals, consts, args): the value of node E of list L, reading its
// children from vals (nodes that read variables) or consts (nodes that read none).
template <class T, class E, class L>
struct node_eval;
template <class T, int I, class L>
struct node_eval<T, Var<I>, L> {
    template <std::size_t N, std::size_t NArgs>
    static T run(const std::array<T, N>&, const std::array<T, N>&, const std::array<T, NArgs>& args) {
        return args[I];
    }
};
template <class T, std::intmax_t Nu, std::intmax_t De, class L>
struct node_eval<T, Const<Nu, De>, L> {
    template <std::size_t N, std::size_t NArgs>
    static T run(const std::array<T, N>&, const std::array<T, N>&, const std::array<T, NArgs>&) {
        return num::rational<T>(Nu, De);
    }
};
template <class T, double V, class L>
struct node_eval<T, FConst<V>, L> {
    template <std::size_t N, std::size_t NArgs>
    static T run(const std::array<T, N>&, const std::array<T, N>&, const std::array<T, NArgs>&) {
        return num::constant<T>(V);
    }
};
template <class T, class Tag, class L>
struct node_eval<T, Named<Tag>, L> {
    template <std::size_t N, std::size_t NArgs>
    static T run(const std::array<T, N>&, const std::array<T, N>&, const std::array<T, NArgs>&) {
        return num::constant<T>(Tag::value);
    }
};
template <class T, class Op, class... Cs, class L>
struct node_eval<T, Node<Op, Cs...>, L> {
    template <class C, std::size_t N>
    static const T& child(const std::array<T, N>& vals, const std::array<T, N>& consts) {
        if constexpr (arity_of<C>::value == 0)
            return consts[meta::index_of_v<C, L>];
        else
            return vals[meta::index_of_v<C, L>];
    }
    template <std::size_t N, std::size_t NArgs>
    static T run(const std::array<T, N>& vals, const std::array<T, N>& consts, const std::array<T, NArgs>&) {
        return Op::eval(child<Cs>(vals, consts)...);
    }
};

}  // namespace detail

/// The node list L compiled for the number type T. The nodes that read no variable (constants and
/// constant subtrees such as log(2*pi)) are evaluated once by constants(); run() evaluates the
/// others at given arguments, so a loop that keeps constants() in a local hoists constant work.
template <class T, class L, class Seq = std::make_index_sequence<L::size>>
struct compiled_nodes;
template <class T, class... Ns, std::size_t... Is>
struct compiled_nodes<T, meta::type_list<Ns...>, std::index_sequence<Is...>> {
    using list = meta::type_list<Ns...>;
    static constexpr std::size_t size = sizeof...(Ns);
    using values = std::array<T, size>;

    /// The values of the constant nodes (other entries are zero).
    static values constants() {
        values consts{};
        const std::array<T, 0> none{};
        (set_if<Ns, Is, false>(consts, consts, none), ...);
        return consts;
    }
    /// The values of the variable-dependent nodes at `args` (constant entries are zero: read them
    /// from `consts`, as get() does).
    template <std::size_t NArgs>
    static values run(const std::array<T, NArgs>& args, const values& consts) {
        // Not value-initialised as a whole: zeroing the array on every call was a memset per SIMD batch
        // (10% of map_value_and_grad's time) and kept the values in memory instead of registers. Each
        // entry is written once by set_if (constants as zero).
        values vals;
        (set_if<Ns, Is, true>(vals, consts, args), ...);
        return vals;
    }
    /// The value of node E (of this list) from the two arrays.
    template <class E>
    static const T& get(const values& vals, const values& consts) {
        if constexpr (detail::arity_of<E>::value == 0) {
            return consts[meta::index_of_v<E, list>];
        } else {
            return vals[meta::index_of_v<E, list>];
        }
    }

  private:
    template <class N, std::size_t I, bool Variable, std::size_t NArgs>
    static void set_if(values& out, const values& consts, const std::array<T, NArgs>& args) {
        if constexpr ((detail::arity_of<N>::value > 0) == Variable) {
            out[I] = detail::node_eval<T, N, list>::run(out, consts, args);
        } else if constexpr (Variable) {
            out[I] = num::rational<T>(0, 1);
        }
    }
};

namespace detail {

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
requires(sizeof...(Args) > 0 && (std::is_arithmetic_v<Args> && ...)) struct common_number<Args...> {
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
    using P = compiled_nodes<T, node_list_t<Es...>>;
    const std::array<T, sizeof...(Args)> a{static_cast<T>(args)...};
    const auto consts = P::constants();
    const auto vals = P::run(a, consts);
    return std::array<T, sizeof...(Es)>{P::template get<std::remove_cvref_t<Es>>(vals, consts)...};
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
