// A search over a tensor expression's type: the first node, in pre-order (a node before its children, children
// left to right), that satisfies a predicate. The lowerings of attention and EMO find their forms' parts with it.
#pragma once

#include "exprgrad/require_cxx20.hpp"  // first: refuses a standard older than C++20

#include <type_traits>

#include "exprgrad/sym/type_list.hpp"

namespace exprgrad::tensors {

namespace detail {
template <template <class> class P, class L>
struct find_node_in;
}  // namespace detail

/// find_node<P, E>::type: the first node of the expression type E, in pre-order, for which P<node>::value is
/// true; void when none is. Every node type names its operands in `children` (a sym::meta::type_list).
/// Compile time only; no values are read. Example: `find_node<is_matmul, decltype(expr)>::type` is the
/// outermost product of expr (is_matmul<X>: a trait true for matmul nodes).
template <template <class> class P, class E, bool Hit = P<E>::value>
struct find_node {
    using type = E;
};
template <template <class> class P, class E>
struct find_node<P, E, false> {
    using type = typename detail::find_node_in<P, typename E::children>::type;
};

namespace detail {
template <template <class> class P>
struct find_node_in<P, sym::meta::type_list<>> {
    using type = void;
};
template <template <class> class P, class C, class... Cs>
struct find_node_in<P, sym::meta::type_list<C, Cs...>> {
    using first = typename find_node<P, C>::type;
    using type = typename std::conditional_t<std::is_void_v<first>, find_node_in<P, sym::meta::type_list<Cs...>>,
                                             std::type_identity<first>>::type;
};
}  // namespace detail

}  // namespace exprgrad::tensors
