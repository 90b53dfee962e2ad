// The flex attention lowering: a tensor expression softmax(mod(Q·Kᵀ) [masked])·V whose score modification is
// an elementwise map of the scores, positions and per-head parameters is recognized on its type and replaced by
// the flex attention node (ops/flex_attention_node.hpp), whose forward and VJP are the fused kernels with the
// modification translated into the scalar DSL of attn:: placeholders. The attention lowering
// (ops/attention_lowering.hpp) asks this header for a replacement when none of its own forms match; a program
// compiled with tensors::unlowered(expr) runs the expression as written.
//
// Recognized (docs/flex_attention.md, "Lowering tensor expressions", states the same list): matmul(softmax(Z), V)
// with softmax over the last axis and Z either the scores S or S under masks,
//   Z = where(C, Z', −∞) | where(C, −∞, Z') | S        (−∞ exactly: fc<-inf>; nested wheres: every C must hold)
//   S = Q·Kᵀ | map(f, Q·Kᵀ, operands...)                  (Kᵀ = transpose(K) or permute<0, 1, 3, 2>(K); maps fuse,
//                                                        so s·Q·Kᵀ − m·(i − j) is one such map)
// where each operand of the map is one of
//   iota<A>(Q·Kᵀ)            A = −1 or 3: attn::k_idx; −2 or 2: attn::q_idx; 1 or −3: attn::head; 0 or −4:
//                            attn::batch (the query head: the node's q is [B, H_q, T_q, d])
//   reshape<-1, 1, 1>(P), reshape<1, -1, 1, 1>(P)   a per-head parameter attn::param<I> (P: H_q values, or one
//                            for every head; any tensor expression: an argument, exp(log_m), ...; gradients flow)
//   a full reduction (sum(X), max(X), ...: rank 0)   a parameter with one value for every head
// and each condition C is one comparison (less, less_equal, greater, greater_equal, equal, not_equal) of two index
// expressions: maps of iota<A>(Q·Kᵀ) or iota<A>(S) and constants (e.g. less_equal(iota<-1>(S), iota<-2>(S)),
// the causal mask; greater(iota<-1>(S), iota<-2>(S) - 8_c), a window). The scale is part of f: the node runs with
// attn::score = ⟨q_i, k_j⟩ (scale 1). Anything else (an additive bias argument, a finite fill like −1e9, a
// condition that is a product of comparisons, an operand whose shape the type does not pin to one value per head)
// is not recognized and runs as written.
//
// What the node asks of a lowered form, unlike the primitives: Q, K, V of rank 4 with the flex node's shapes (q
// [B, H_q, T_q, d], k [B, H_kv, T_k, d], v [B, H_kv, T_k, d_v], H_q a multiple of H_kv; it throws naming the op
// otherwise), and each parameter of H_q values or one (HeadParameter throws otherwise). A row whose keys are all
// masked gives 0 (the kernels' convention) where the expression as written gives NaN. H_kv < H_q (grouped-query
// attention) runs lowered, while the expression as written refuses it (matmul's broadcast needs equal head counts
// or one): such a program fails under tensors::unlowered(...). The comparisons are read
// as the kernels' mask (visible where > 0): less(a, b) as b − a, less_equal(a, b) as sym::less(a, b) (½ at a tie),
// equal as less(a, b)·less(b, a), not_equal as |a − b|, exact for the finite index values iota gives.
#pragma once

#include "exprgrad/require_cxx20.hpp"  // first: refuses a standard older than C++20

#include <cstddef>
#include <string>
#include <type_traits>

#include "exprgrad/ops/attn_placeholders.hpp"
#include "exprgrad/ops/flex_attention_node.hpp"
#include "exprgrad/sym/expr.hpp"
#include "exprgrad/sym/functions.hpp"
#include "exprgrad/tensors/compare.hpp"
#include "exprgrad/tensors/count_operand.hpp"
#include "exprgrad/tensors/graph.hpp"
#include "exprgrad/tensors/iota.hpp"
#include "exprgrad/tensors/map.hpp"
#include "exprgrad/tensors/matmul.hpp"
#include "exprgrad/tensors/permute.hpp"
#include "exprgrad/tensors/reduce.hpp"
#include "exprgrad/tensors/reshape.hpp"
#include "exprgrad/tensors/softmax.hpp"
#include "exprgrad/tensors/where.hpp"

namespace exprgrad::ops {

namespace detail::flex_lowering {

namespace t = tensors;
namespace meta = tensors::meta;

/// A per-head parameter operand of a lowered form: P's values (H_q of them, or one for every head) as the [H_q]
/// array the flex node takes; Q is read for its head count only. Its VJP sums over the heads when P has one value.
template <class P, class Q>
struct HeadParameter {
    using children = meta::type_list<P, Q>;
    static constexpr const char* name = "flex_attention";
    template <class Ctx>
    static void forward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        const t::cview<T>& p = ctx.template in<P>();
        const t::cview<T>& q = ctx.template in<Q>();
        if (q.shape.rank != 4)
            throw t::shape_error(name, "q must be [B, H, T, d], got " + q.shape.str() +
                                           "; compile with tensors::unlowered(...) to run it as written");
        const std::size_t h = q.shape[1], n = p.size();
        if (n != h && n != 1)
            throw t::shape_error(name, "a per-head parameter of softmax(mod(Q·Kᵀ))·V needs " + std::to_string(h) +
                                           " values (one per query head) or one, got shape " + p.shape.str() +
                                           "; compile with tensors::unlowered(...) to run it as written");
        t::dims d;
        d.push(h);
        T* y = ctx.template out<HeadParameter>(d);
        for (std::size_t i = 0; i < h; ++i) y[i] = p.data[n == 1 ? 0 : i];
    }
    template <class Ctx>
    static void backward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        if constexpr (Ctx::template needs<P>) {  // q receives nothing: only its shape is read
            const std::size_t n = ctx.template in<P>().size(), h = ctx.template in<Q>().shape[1];
            const t::adjoint_view<T> g = ctx.template adj<HeadParameter>();
            bool add = false;
            T* dp = ctx.template grad<P>(add);
            if (n == 1) {
                T s = 0;
                for (std::size_t i = 0; i < h; ++i) s += g.uniform ? g.value : g.data[i];
                dp[0] = add ? dp[0] + s : s;
            } else {
                for (std::size_t i = 0; i < n; ++i) {
                    const T v = g.uniform ? g.value : g.data[i];
                    dp[i] = add ? dp[i] + v : v;
                }
            }
        }
    }
};

// ---- the scores Q·Kᵀ

template <class X>
struct keys_of : std::false_type {};
template <class K>
struct keys_of<t::Transpose<K>> : std::true_type {
    using type = K;
};
template <class K>
struct keys_of<t::Permute<K, 0, 1, 3, 2>> : std::true_type {
    using type = K;
};
template <class X>
struct is_qk : std::false_type {};
template <class Q, class KT>
struct is_qk<t::Matmul<Q, KT>> : std::bool_constant<keys_of<KT>::value> {};

// The Q·Kᵀ operand of the scores S (S itself, or the first such operand of the map S); void when none.
template <class S>
struct qk_of {
    using type = std::conditional_t<is_qk<S>::value, S, void>;
};
template <class F, class... As>
struct qk_of<t::Map<F, As...>> {
    template <class L>
    struct first {
        using type = void;
    };
    template <class A, class... Rest>
    struct first<meta::type_list<A, Rest...>> {
        using type = typename std::conditional_t<is_qk<A>::value, std::type_identity<A>,
                                                 first<meta::type_list<Rest...>>>::type;
    };
    using type = typename first<meta::type_list<As...>>::type;
};

// ---- leaves: what one operand of the score map stands for

enum class leaf_kind { none, score, index, param };

// iota along axis A of the scores [B, H, T_q, T_k]: the placeholder of that axis (void for another axis).
template <int A>
struct axis_placeholder {
    using type = void;
};
template <>
struct axis_placeholder<-1> {
    using type = std::remove_cv_t<decltype(attn::k_idx)>;
};
template <>
struct axis_placeholder<3> : axis_placeholder<-1> {};
template <>
struct axis_placeholder<-2> {
    using type = std::remove_cv_t<decltype(attn::q_idx)>;
};
template <>
struct axis_placeholder<2> : axis_placeholder<-2> {};
template <>
struct axis_placeholder<1> {
    using type = std::remove_cv_t<decltype(attn::head)>;
};
template <>
struct axis_placeholder<-3> : axis_placeholder<1> {};
template <>
struct axis_placeholder<0> {
    using type = std::remove_cv_t<decltype(attn::batch)>;
};
template <>
struct axis_placeholder<-4> : axis_placeholder<0> {};

// X as a leaf, with QK the scores' Q·Kᵀ and S the scores (iota of either gives positions).
template <class X, class QK, class S>
struct leaf {
    static constexpr leaf_kind kind = std::is_same_v<X, QK> ? leaf_kind::score : leaf_kind::none;
    using expr = std::remove_cv_t<decltype(attn::score)>;
};
template <int A, class L, class QK, class S>
requires((std::is_same_v<L, QK> || std::is_same_v<L, S>) && !std::is_void_v<typename axis_placeholder<A>::type>)
struct leaf<t::Iota<A, L>, QK, S> {
    static constexpr leaf_kind kind = leaf_kind::index;
    using expr = typename axis_placeholder<A>::type;
};
template <class K, class QK, class S>
struct leaf<t::ConstantNode<K>, QK, S> {
    static constexpr leaf_kind kind = leaf_kind::index;
    using expr = K;
};
template <class P, class QK, class S>
struct leaf<t::Reshape<P, -1, 1, 1>, QK, S> {  // [n, 1, 1]: broadcast along the head axis of [B, H, T_q, T_k]
    static constexpr leaf_kind kind = leaf_kind::param;
    using operand = P;
};
template <class P, class QK, class S>
struct leaf<t::Reshape<P, 1, -1, 1, 1>, QK, S> {
    static constexpr leaf_kind kind = leaf_kind::param;
    using operand = P;
};
template <t::reduction R, class A, class QK, class S>
struct leaf<t::Reduce<R, t::all_axes, A>, QK, S> {  // rank 0: one value for every head
    static constexpr leaf_kind kind = leaf_kind::param;
    using operand = t::Reduce<R, t::all_axes, A>;
};

// ---- the score modification: the map's function with its operands replaced by their leaves

template <class QK, class Q, std::size_t NP, class Leaves, class Params, class... As>
struct fold_leaves {
    static constexpr bool ok = true;
    using leaves = Leaves;
    using params = Params;
};
template <class QK, class Q, std::size_t NP, class Leaves, class Params, class A, class... As>
struct fold_leaves<QK, Q, NP, Leaves, Params, A, As...> {
    using L = leaf<A, QK, QK>;
    template <leaf_kind Kd, class = void>
    struct step {  // score or index: its placeholder expression
        using next = fold_leaves<QK, Q, NP, typename meta::push_back<Leaves, typename L::expr>::type, Params, As...>;
    };
    template <class D>
    struct step<leaf_kind::param, D> {
        using next = fold_leaves<QK, Q, NP + 1,
                                 typename meta::push_back<Leaves, std::remove_cv_t<decltype(attn::param<int(NP)>)>>::type,
                                 typename meta::push_back<Params, HeadParameter<typename L::operand, Q>>::type, As...>;
    };
    template <class D>
    struct step<leaf_kind::none, D> {
        struct next {
            static constexpr bool ok = false;
            using leaves = void;
            using params = void;
        };
    };
    using n = typename step<L::kind>::next;
    static constexpr bool ok = n::ok;
    using leaves = typename n::leaves;
    using params = typename n::params;
};

// S as a score modification: ok, the modification (a sym expression of attn:: placeholders) and the operands
// (HeadParameter nodes) of its parameters, in order.
template <class S, class QK, class Q>
struct score_form {
    static constexpr bool ok = std::is_same_v<S, QK>;
    using mod = std::remove_cv_t<decltype(attn::score)>;
    using params = meta::type_list<>;
};
template <class F, class... As, class QK, class Q>
struct score_form<t::Map<F, As...>, QK, Q> {
    using f = fold_leaves<QK, Q, 0, meta::type_list<>, meta::type_list<>, As...>;
    template <bool Ok, class = void>
    struct build {
        static constexpr bool ok = false;
        using mod = void;
        using params = void;
    };
    template <class D>
    struct build<true, D> {
        using mod = typename t::detail::subst<F, typename f::leaves>::type;
        using params = typename f::params;
        // every parameter must be read (the node takes one operand per param<I> up to the highest one read)
        static constexpr bool ok = flex::param_count_v<mod> == params::size;
    };
    using b = build<f::ok>;
    static constexpr bool ok = b::ok;
    using mod = typename b::mod;
    using params = typename b::params;
};

// ---- masks: comparisons of index expressions

// An index expression (iota along the scores' axes, constants, maps of them) as a sym expression; void if not one.
struct no_index {
    using expr = void;
};
template <class X, class QK, class S>
struct index_expr {
    using L = leaf<X, QK, S>;
    using type = typename std::conditional_t<L::kind == leaf_kind::index, L, no_index>::expr;
};
template <class F, class... Bs, class QK, class S>
struct index_expr<t::Map<F, Bs...>, QK, S> {
    static constexpr bool all = (!std::is_void_v<typename index_expr<Bs, QK, S>::type> && ...);
    template <bool A, class = void>
    struct build {
        using type = void;
    };
    template <class D>
    struct build<true, D> {
        using type = typename t::detail::subst<F, meta::type_list<typename index_expr<Bs, QK, S>::type...>>::type;
    };
    using type = typename build<all>::type;
};

// The flex mask (visible where > 0) of relation Rel between index expressions A and B, negated when Neg.
template <class Rel, bool Neg>
struct relation;  // the relation itself, after negation: one of the cmp:: tags
template <class Rel>
struct relation<Rel, false> {
    using type = Rel;
};
template <>
struct relation<t::cmp::less, true> {
    using type = t::cmp::greater_equal;
};
template <>
struct relation<t::cmp::less_equal, true> {
    using type = t::cmp::greater;
};
template <>
struct relation<t::cmp::greater, true> {
    using type = t::cmp::less_equal;
};
template <>
struct relation<t::cmp::greater_equal, true> {
    using type = t::cmp::less;
};
template <>
struct relation<t::cmp::equal, true> {
    using type = t::cmp::not_equal;
};
template <>
struct relation<t::cmp::not_equal, true> {
    using type = t::cmp::equal;
};
template <class Rel, class A, class B>
struct mask_of {
    using type = void;
};
template <class A, class B>
struct mask_of<t::cmp::less, A, B> {
    using type = decltype(B{} - A{});
};
template <class A, class B>
struct mask_of<t::cmp::greater, A, B> {
    using type = decltype(A{} - B{});
};
template <class A, class B>
struct mask_of<t::cmp::less_equal, A, B> {
    using type = decltype(sym::less(A{}, B{}));
};
template <class A, class B>
struct mask_of<t::cmp::greater_equal, A, B> {
    using type = decltype(sym::less(B{}, A{}));
};
template <class A, class B>
struct mask_of<t::cmp::equal, A, B> {
    using type = decltype(sym::less(A{}, B{}) * sym::less(B{}, A{}));
};
template <class A, class B>
struct mask_of<t::cmp::not_equal, A, B> {
    using type = decltype(sym::abs(A{} - B{}));
};

template <class C, bool Neg, class QK, class S>
struct condition {
    using type = void;
};
template <class Rel, class A, class B, bool Neg, class QK, class S>
struct condition<t::Compare<Rel, A, B>, Neg, QK, S> {
    using a = typename index_expr<A, QK, S>::type;
    using b = typename index_expr<B, QK, S>::type;
    using type = typename std::conditional_t<std::is_void_v<a> || std::is_void_v<b>, std::type_identity<void>,
                                             mask_of<typename relation<Rel, Neg>::type, a, b>>::type;
};

template <class M>
struct is_minus_infinity : std::false_type {};
template <class K>
struct is_minus_infinity<t::ConstantNode<K>> : std::bool_constant<(K::value < 0 && K::value * 0.5 == K::value)> {};

// Z as masks over the scores: `scores` the innermost operand, `conditions` the (C, negated) pairs outside it.
template <bool Neg, class C>
struct cond_entry {};
template <class Z, class Conds = meta::type_list<>>
struct peel {
    using scores = Z;
    using conds = Conds;
};
template <class C, class A, class M, class Conds>
requires(is_minus_infinity<M>::value) struct peel<t::Where<C, A, M>, Conds>
    : peel<A, typename meta::push_back<Conds, cond_entry<false, C>>::type> {};
template <class C, class M, class A, class Conds>
requires(is_minus_infinity<M>::value && !is_minus_infinity<A>::value) struct peel<t::Where<C, M, A>, Conds>
    : peel<A, typename meta::push_back<Conds, cond_entry<true, C>>::type> {};

// The conjunction of the conditions as one mask: min of the masks (visible where every one is > 0); 1 for none.
template <class QK, class S, class L>
struct conjunction;
template <class QK, class S>
struct conjunction<QK, S, meta::type_list<>> {
    using type = std::remove_cvref_t<decltype(sym::c<1>)>;
};
template <class QK, class S, bool Neg, class C>
struct conjunction<QK, S, meta::type_list<cond_entry<Neg, C>>> {
    using type = typename condition<C, Neg, QK, S>::type;
};
template <class QK, class S, bool Neg, class C, class E2, class... Es>
struct conjunction<QK, S, meta::type_list<cond_entry<Neg, C>, E2, Es...>> {
    using first = typename condition<C, Neg, QK, S>::type;
    using rest = typename conjunction<QK, S, meta::type_list<E2, Es...>>::type;
    using type = typename std::conditional_t<std::is_void_v<first> || std::is_void_v<rest>, std::type_identity<void>,
                                             std::type_identity<decltype(sym::min(
                                                 std::conditional_t<std::is_void_v<first>, sym::Var<1>, first>{},
                                                 std::conditional_t<std::is_void_v<rest>, sym::Var<1>, rest>{}))>>::type;
};

// ---- the replacement

using unit_config = attention_config<false, false, scale_type::fixed<std::remove_cvref_t<decltype(sym::c<1>)>>>;

template <class Mod, class Mask, class Q, class K, class V, class Params>
struct flex_node;
template <class Mod, class Mask, class Q, class K, class V, class... Ps>
struct flex_node<Mod, Mask, Q, K, V, meta::type_list<Ps...>> {
    using type = FlexAttention<Mod, Mask, unit_config, Q, K, V, Ps...>;
};

/// lower<E>::type: the flex node replacing E = matmul(softmax(Z), V), or E itself when E is not a recognized form.
template <class E>
struct lower {
    using type = E;
};
template <class Z, class V>
struct lower<t::Matmul<t::Softmax<false, -1, Z>, V>> {
    using E = t::Matmul<t::Softmax<false, -1, Z>, V>;
    using p = peel<Z>;
    using S = typename p::scores;
    using QK = typename qk_of<S>::type;
    template <class X, class = void>
    struct with_qk {
        using type = E;
    };
    template <class Q, class KT>
    struct with_qk<t::Matmul<Q, KT>> {
        using K = typename keys_of<KT>::type;
        using sf = score_form<S, t::Matmul<Q, KT>, Q>;
        using mask = typename conjunction<t::Matmul<Q, KT>, S, typename p::conds>::type;
        using type = typename std::conditional_t<sf::ok && !std::is_void_v<mask>,
                                                 flex_node<typename sf::mod, mask, Q, K, V, typename sf::params>,
                                                 std::type_identity<E>>::type;
    };
    using type = typename with_qk<QK>::type;
};

}  // namespace detail::flex_lowering

}  // namespace exprgrad::ops
