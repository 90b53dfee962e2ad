// The rewrite pass a tensor program is compiled with (DESIGN principle 5): before a program gathers its
// nodes, every node type N of the expression is replaced by lowered_t<N>, the node a higher layer registered
// as N's fused equivalent (ops/attention_lowering.hpp registers softmax(s·Q·Kᵀ + mask)·V → the attention
// node). The rewrite is a type-to-type map, so it costs nothing at run time and is visible to static_assert:
// `static_assert(std::is_same_v<tensors::lowered_t<decltype(expr)>, Expected>)`.
//
// How it is wired: tensors/node.hpp gathers lowered_t<N> instead of N (and the children of the replacement,
// not those of N), and a program looks every node up through lowered_t, so a parent that reads its written
// child N reads the replacement's buffer and sends its adjoint there. Nothing else changes: nodes keep their
// forward and backward unchanged.
//
// The hook: a higher layer specializes `tensors::lowering<N>` (member `type`, the replacement; the primary
// template keeps N). A replacement must compute the same value and the same VJPs as N, up to rounding, for
// every input N accepts, or document where it does not. Which replacements apply depends on the headers a
// translation unit includes; include the same headers wherever one program type is compiled.
//
// The opt-out: `unlowered(expr)` compiles expr as written (no node replaced). value_and_grad, compile and
// evaluator accept it at the root of a program; the tests use it to compare a definition with its kernel.
#pragma once

#include "exprgrad/require_cxx20.hpp"  // first: refuses a standard older than C++20

#include <type_traits>

#include "exprgrad/sym/type_list.hpp"

namespace exprgrad::tensors {

/// The lowering hook: `lowering<N>::type` is the node that replaces N when a program is compiled; N itself
/// unless a higher layer specializes it (see the top of this header). Specializations must not recurse into
/// N's children: the pass applies to every node on its own, children first.
template <class N>
struct lowering {
    using type = N;
};

namespace detail {
template <class N, class R = typename lowering<N>::type>
struct lower_fixpoint {
    using type = typename lower_fixpoint<R>::type;  // a replacement may itself be replaced
};
template <class N>
struct lower_fixpoint<N, N> {
    using type = N;
};
}  // namespace detail

/// N after the lowering pass: lowering<N> applied until nothing changes (cv-qualifiers dropped first, so that
/// `decltype(e)` of a constexpr variable e can be passed).
/// Example: `static_assert(std::is_same_v<lowered_t<decltype(sum(X))>, decltype(sum(X))>);` (nothing to lower).
template <class N>
using lowered_t = typename detail::lower_fixpoint<std::remove_cv_t<N>>::type;

/// The root of a program compiled without the lowering pass; built by unlowered(expr). It is not a node:
/// inside a larger expression it does not compile (a static_assert says so).
template <class E>
struct Unlowered {
    using children = sym::meta::type_list<E>;
    static constexpr const char* name = "unlowered";
    template <class Ctx>
    static void forward(Ctx&) {
        static_assert(!std::is_same_v<Ctx, Ctx>,
                      "exprgrad: unlowered(expr) applies to a whole program: pass it to value_and_grad, compile or "
                      "evaluator, not inside an expression");
    }
    template <class Ctx>
    static void backward(Ctx&) {}
};

/// unlowered(expr): the same expression, compiled as written: value_and_grad(unlowered(f), wrt<0>) runs every
/// primitive of f even where a fused node is registered for a part of it (a definition's reference program,
/// to test a kernel against it or to time both). Same value and gradients as f up to rounding.
/// Example: `auto ref = value_and_grad(unlowered(sum(attention_definition(Q, K, V))), wrt<0>);`
template <class E>
requires requires { typename E::children; }
constexpr Unlowered<E> unlowered(E) { return {}; }

namespace detail {
/// The expression a program compiles and whether it lowers it: Unlowered<E> gives E without the pass.
template <class E>
struct program_root {
    using type = E;
    static constexpr bool lower = true;
};
template <class E>
struct program_root<Unlowered<E>> {
    using type = E;
    static constexpr bool lower = false;
};
/// The node a program keeps for the written node N.
template <bool Lower, class N>
struct lowered_if {
    using type = lowered_t<N>;
};
template <class N>
struct lowered_if<false, N> {
    using type = N;
};
}  // namespace detail

}  // namespace exprgrad::tensors
