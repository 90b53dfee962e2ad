// The EMO lowering: the expression ops::emo_definition<O, Ignore, Cap>(Z, Y, E) builds is recognized on its type
// when a program is compiled (value_and_grad, compile, evaluator) and replaced by the EmoDefinition node
// (ops/emo_node.hpp), whose forward and VJP are the fused EMO kernel of ops/emo.hpp (one N·h·V product, SIMD row
// passes). It registers itself through tensors::lowering<N> (tensors/lowering.hpp), like the attention lowering;
// a program compiled with tensors::unlowered(expr) runs the definition as written.
//
// Recognized (docs/emo.md, "Lowered to the kernel", states the same list): every form emo_definition builds for
// the objectives emo, mode1, mode1_capped (any Cap) and mode2, any Ignore, any Cost, any operand expressions Z, Y,
// E: emo_definition<O, Ignore, Cap, Cost>(Z, Y, E) → emo_definition_node<O, Ignore, Cap, Cost>(Z, Y, E)
// (Cap = sym::Const<3> for the objectives that do not read it, whose forms do not depend on it). Recognition is
// exact: Y and Ignore are read off the count of positions, Z off the class count max(iota(Z)) + 1, E off
// ê = sg(E / max(‖E‖, 1e-12)), Cap off min(w, Cap) and Cost off the product softmax · Cost(cosine), and the form
// is lowered only if emo_definition rebuilt from them is the same type, so an edited definition runs as written.
// Not recognized: the objective ce (its form is plain cross-entropy and holds no E: it runs as written; the
// tensors' cross_entropy is its fused node).
// What the node does differently (documented at EmoDefinition): it refuses a +inf logit and a non-finite E, a
// non-integer target and shapes the kernel does not take (targets must have one entry per row of Z), where the
// definition gives NaN or its own errors; where rounding makes Σ p_k c_k negative, the node's gradient keeps
// p_k·c_k for the clamped EMO term (the definition's is 0). Within rounding everywhere else.
#pragma once

#include "exprgrad/require_cxx20.hpp"  // first: refuses a standard older than C++20

#include <type_traits>

#include "exprgrad/ops/emo_definition.hpp"
#include "exprgrad/ops/emo_cost.hpp"
#include "exprgrad/ops/emo_node.hpp"
#include "exprgrad/sym/expr.hpp"
#include "exprgrad/sym/ops.hpp"
#include "exprgrad/tensors/compare.hpp"
#include "exprgrad/tensors/count_operand.hpp"
#include "exprgrad/tensors/find_node.hpp"
#include "exprgrad/tensors/lowering.hpp"
#include "exprgrad/tensors/map.hpp"
#include "exprgrad/tensors/matmul.hpp"
#include "exprgrad/tensors/reduce.hpp"
#include "exprgrad/tensors/reshape.hpp"
#include "exprgrad/tensors/stop_gradient.hpp"
#include "exprgrad/tensors/where.hpp"

namespace exprgrad::ops {

namespace detail::emo_lowering {

namespace t = tensors;
namespace meta = tensors::meta;
// The first node of E, in pre-order, that satisfies P; void when none does.
template <template <class> class P, class E>
using find = t::find_node<P, E>;

// The sole child of a one-operand node; void otherwise.
template <class X, class = void>
struct only_child {
    using type = void;
};
template <class X>
struct only_child<X, std::void_t<typename X::children>> {
    template <class L>
    struct one {
        using type = void;
    };
    template <class C>
    struct one<meta::type_list<C>> {
        using type = C;
    };
    using type = typename one<typename X::children>::type;
};

// Z where N = class_count(Z) = max(iota<-1>(Z)) + 1
template <class N>
struct class_count_of {
    template <class X>
    struct inner {
        using type = void;
    };
    template <class Z>
    struct inner<t::Reduce<t::reduction::max, t::all_axes, t::Iota<-1, Z>>> {
        using type = Z;
    };
    using type = typename inner<typename only_child<N>::type>::type;
};
template <class N>
struct is_class_count {
    using Z = typename class_count_of<N>::type;
    static constexpr bool value = [] {
        if constexpr (std::is_void_v<Z>)
            return false;
        else
            return std::is_same_v<decltype(emo_definition::class_count(Z{})), N>;
    }();
};

// E where N = normalized_embedding(E)
template <class N>
struct embedding_of {
    using type = void;
};
template <class F, class E, class W>
struct embedding_of<t::StopGradient<t::Map<F, E, W>>> {
    using type = E;
};
template <class N>
struct is_normalized_embedding {
    using E = typename embedding_of<N>::type;
    static constexpr bool value = [] {
        if constexpr (std::is_void_v<E>)
            return false;
        else
            return std::is_same_v<decltype(emo_definition::normalized_embedding(E{})), N>;
    }();
};

// Cap where N = where(greater(w, Cap), Cap, w), the capped weight of mode1_capped
template <class N>
struct cap_of {
    using type = void;
};
template <class W, class K>
struct cap_of<t::Where<t::Compare<t::cmp::greater, W, t::ConstantNode<K>>, t::ConstantNode<K>, W>> {
    using type = K;
};
template <class N>
struct is_cap : std::bool_constant<!std::is_void_v<typename cap_of<N>::type>> {};

// Cost where N = softmax(z) · cost as emo_definition's map fuses it: Map<var<0> · Cost[var<1>], S, Matmul<A, B>>,
// var<1> the cosine product; the cost with var<1> renamed var<0> (the rebuild below confirms it). Void otherwise.
template <class N>
struct cost_of {
    using type = void;
};
template <class C, class S, class A, class B>
struct cost_of<t::Map<sym::Node<sym::op::Mul, sym::Var<0>, C>, S, t::Matmul<A, B>>> {
    using type = typename t::detail::subst<C, meta::type_list<sym::Var<0>, sym::Var<0>>>::type;
};
template <class N>
struct is_cost_product : std::bool_constant<!std::is_void_v<typename cost_of<N>::type>> {};

// the first objective whose rebuilt definition is E, as its node; E when none
template <class E, long Ignore, class Cap, class Cost, class Z, class Y, class Emb, emo_objective... Os>
struct first_objective {
    using type = E;
};
template <class E, long Ignore, class Cap, class Cost, class Z, class Y, class Emb, emo_objective O,
          emo_objective... Os>
struct first_objective<E, Ignore, Cap, Cost, Z, Y, Emb, O, Os...> {
    using built = decltype(::exprgrad::ops::emo_definition<O, Ignore, Cap, Cost>(Z{}, Y{}, Emb{}));
    // lazily: the next objective is rebuilt only when this one does not match
    using type = typename std::conditional_t<std::is_same_v<built, E>,
                                             std::type_identity<EmoDefinition<O, Ignore, Cap, Z, Y, Emb, Cost>>,
                                             first_objective<E, Ignore, Cap, Cost, Z, Y, Emb, Os...>>::type;
};

// The root of emo_definition: where(any, sum(where(counted, per_position, 0)) / where(any, count, 1), 0) with
// count = sum(counted), any = greater(count, 0), counted = not_equal(reshape<-1, 1>(Y), Ignore).
template <class E>
struct lower_emo {
    using type = E;
};
template <class Any, class F, class Y, class K, class PerPosition, class Zero, class D, class Zero2>
struct lower_emo<t::Where<
    Any,
    t::Map<
        F,
        t::Reduce<t::reduction::sum, t::all_axes,
                  t::Where<t::Compare<t::cmp::not_equal, t::Reshape<Y, -1, 1>, t::ConstantNode<K>>, PerPosition, Zero>>,
        D>,
    Zero2>> {
    using E =
        t::Where<Any,
                 t::Map<F,
                        t::Reduce<t::reduction::sum, t::all_axes,
                                  t::Where<t::Compare<t::cmp::not_equal, t::Reshape<Y, -1, 1>, t::ConstantNode<K>>,
                                           PerPosition, Zero>>,
                        D>,
                 Zero2>;
    static constexpr bool integral_ignore = [] {
        if constexpr (requires { K::den; })
            return K::den == 1;
        else
            return false;
    }();
    using Z = typename class_count_of<typename find<is_class_count, PerPosition>::type>::type;
    using Emb = typename embedding_of<typename find<is_normalized_embedding, PerPosition>::type>::type;
    using found_cap = typename cap_of<typename find<is_cap, PerPosition>::type>::type;
    using found_cost = typename cost_of<typename find<is_cost_product, PerPosition>::type>::type;
    using cost = std::conditional_t<std::is_void_v<found_cost>, emo_default_cost, found_cost>;
    static constexpr bool readable = integral_ignore && !std::is_void_v<Z> && !std::is_void_v<Emb>;
    template <bool Readable, class = void>
    struct with {
        using type = E;
    };
    template <class V>
    struct with<true, V> {
        static constexpr long ignore = static_cast<long>(K::num);
        using type = typename std::conditional_t<
            std::is_void_v<found_cap>,
            first_objective<E, ignore, sym::Const<3>, cost, Z, Y, Emb, emo_objective::mode1, emo_objective::mode2,
                            emo_objective::emo>,
            first_objective<E, ignore, found_cap, cost, Z, Y, Emb, emo_objective::mode1_capped>>::type;
    };
    using type = typename with<readable>::type;
};

}  // namespace detail::emo_lowering

}  // namespace exprgrad::ops

namespace exprgrad::tensors {

// emo_definition's root (see ops::detail::emo_lowering::lower_emo); every other where keeps the primary template.
template <class Any, class F, class Y, class K, class PerPosition, class Zero, class D, class Zero2>
struct lowering<
    Where<Any,
          Map<F, Reduce<reduction::sum, all_axes,
                        Where<Compare<cmp::not_equal, Reshape<Y, -1, 1>, ConstantNode<K>>, PerPosition, Zero>>,
              D>,
          Zero2>>
    : ops::detail::emo_lowering::lower_emo<
          Where<Any,
                Map<F, Reduce<reduction::sum, all_axes,
                              Where<Compare<cmp::not_equal, Reshape<Y, -1, 1>, ConstantNode<K>>, PerPosition, Zero>>,
                    D>,
                Zero2>> {};

}  // namespace exprgrad::tensors
