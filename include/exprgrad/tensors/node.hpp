// What a tensor expression is, as types: the program inputs Input<I>, the TensorExpr concept (an empty type
// listing its `children`), and the type-level helpers a program is compiled with (collecting the distinct
// nodes, which nodes need a gradient, the wrt<...> selection). tensors/graph.hpp runs them.
#pragma once

#include "exprgrad/require_cxx20.hpp"  // first: refuses a standard older than C++20

#include <cstddef>
#include <type_traits>
#include <utility>

#include "exprgrad/sym/type_list.hpp"
#include "exprgrad/tensors/lowering.hpp"

namespace exprgrad::tensors {

namespace meta = sym::meta;

/// The I-th argument of a tensor program: a float or double array (any xtensor expression, any
/// rank), an integer array (indices, targets; never differentiated), or a plain number (rank 0).
template <int I>
struct Input {
    static_assert(I >= 0, "exprgrad: a tensor placeholder index must be non-negative");
    static constexpr int index = I;
    using children = meta::type_list<>;
    static constexpr const char* name = "tensor";
};

namespace detail {
template <class T>
struct is_input : std::false_type {};
template <int I>
struct is_input<Input<I>> : std::true_type {};

template <class T, class = void>
struct has_children : std::false_type {};
template <class T>
struct has_children<T, std::void_t<typename T::children>> : std::true_type {};
}  // namespace detail

/// Satisfied by tensor expression types (placeholders and nodes).
template <class T>
concept TensorExpr = detail::has_children<std::remove_cvref_t<T>>::value;

// Misuse: a raw run-time number (int, double, ...) among the operands of a tensor node. The
// overloads that reject it (operators in map.hpp, functions beside each node) deduce their return
// type and return a valid expression after their static_assert, so that the sentence below is the
// first error the compiler reports (a `void` result is reported first as a missing operator or
// function further out, and the sentence only hundreds of lines later).
#define EXPRGRAD_TENSOR_RAW_NUMBER_MESSAGE                                                       \
    "exprgrad: a raw number cannot appear in a tensor expression; write it as a constant (2_c, " \
    "c<1, 2>, fc<0.5>) or pass it as an argument (tensor<I>)"
namespace detail {
template <class T>
concept raw_number = std::is_arithmetic_v<std::remove_cvref_t<T>>;
/// Every operand a tensor expression or a raw number, at least one of each: the operands of a
/// rejected call.
template <class... Ts>
concept raw_among_tensors = ((TensorExpr<Ts> || raw_number<Ts>)&&...) && (raw_number<Ts> || ...) &&
                            (TensorExpr<Ts> || ...);
template <class... Ts>
inline constexpr bool reject_raw = false;
}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Gathering the nodes of an expression.

namespace detail {
// Gathering with the lowering pass (tensors/lowering.hpp) when Lower: a node is gathered as its replacement,
// and the replacement's children are gathered instead of the written node's.
template <class E, class L, bool Lower, bool Present = meta::contains_v<E, L>>
struct collect;
template <class L, class Children, bool Lower>
struct collect_children;
template <class L, bool Lower>
struct collect_children<L, meta::type_list<>, Lower> {
    using type = L;
};
template <class L, class C, class... Cs, bool Lower>
struct collect_children<L, meta::type_list<C, Cs...>, Lower> {
    using type = typename collect_children<typename collect<typename lowered_if<Lower, C>::type, L, Lower>::type,
                                           meta::type_list<Cs...>, Lower>::type;
};
template <class E, class L, bool Lower>
struct collect<E, L, Lower, true> {
    using type = L;
};
template <class E, class L, bool Lower>
struct collect<E, L, Lower, false> {
    using type =
        typename meta::push_back<typename collect_children<L, typename E::children, Lower>::type, E>::type;
};

template <class E, class Wrt>
struct needs_grad;
template <class Children, class Wrt>
struct any_needs;
template <class... Cs, class Wrt>
struct any_needs<meta::type_list<Cs...>, Wrt> : std::bool_constant<(needs_grad<Cs, Wrt>::value || ...)> {};
template <class E, class Wrt>
struct needs_grad : any_needs<typename E::children, Wrt> {};
template <int I, int... W>
struct needs_grad<Input<I>, std::integer_sequence<int, W...>> : std::bool_constant<((I == W) || ...)> {};

template <class E>
struct max_input {
    static constexpr int value = -1;
};
template <int I>
struct max_input<Input<I>> {
    static constexpr int value = I;
};
template <class... Ns>
constexpr int max_input_of(meta::type_list<Ns...>) {
    int m = -1;
    ((m = max_input<Ns>::value > m ? max_input<Ns>::value : m), ...);
    return m;
}
template <int... W>
constexpr int max_index_of(std::integer_sequence<int, W...>) {
    int m = -1;
    ((m = W > m ? W : m), ...);
    return m;
}

// The differentiated arguments the expression does not read: their gradient is zeros of their shape.
template <class L, class Wrt, class Acc = meta::type_list<>>
struct absent_wrt {
    using type = Acc;
};
template <class L, int W, int... Ws, class Acc>
struct absent_wrt<L, std::integer_sequence<int, W, Ws...>, Acc>
    : absent_wrt<L, std::integer_sequence<int, Ws...>,
                 std::conditional_t<meta::contains_v<Input<W>, L> || meta::contains_v<Input<W>, Acc>, Acc,
                                    typename meta::push_back<Acc, Input<W>>::type>> {};

template <class...>
inline constexpr bool always_false = false;

template <class Acc, class... Ts>
struct reverse {
    using type = Acc;
};
template <class... Acc, class T, class... Ts>
struct reverse<meta::type_list<Acc...>, T, Ts...> {
    using type = typename reverse<meta::type_list<T, Acc...>, Ts...>::type;
};

// Per-node saved data beyond the value (e.g. a row's log-sum-exp); empty by default.
template <class N, class T, class = void>
struct extra_of {
    struct type {};
};
template <class N, class T>
struct extra_of<N, T, std::void_t<typename N::template extra<T>>> {
    using type = typename N::template extra<T>;
};
}  // namespace detail

/// The distinct node types of E, children before parents, after the lowering pass (tensors/lowering.hpp)
/// unless Lower is false.
template <TensorExpr E, bool Lower = true>
using tensor_nodes_t =
    typename detail::collect<typename detail::lowered_if<Lower, std::remove_cvref_t<E>>::type, meta::type_list<>,
                             Lower>::type;

/// Indices of the differentiated arguments: `wrt<1>`, `wrt<0, 2>`.
template <int... I>
struct wrt_t {
    using seq = std::integer_sequence<int, I...>;
};
template <int... I>
inline constexpr wrt_t<I...> wrt{};

}  // namespace exprgrad::tensors
