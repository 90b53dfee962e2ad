// The attention lowering: a tensor expression of the form softmax(s·Q·Kᵀ [+ mask])·V is recognized on its
// type when a program is compiled (value_and_grad, compile, evaluator) and replaced by the attention node
// (ops/attention_node.hpp), whose forward and VJP are the fused kernels (DESIGN principle 5). It registers
// itself through the tensors layer's hook, tensors::lowering<N> (tensors/lowering.hpp); a program compiled
// with tensors::unlowered(expr) runs the expression as written.
//
// Recognized (docs/attention.md, "Which forms are recognized", states the same list):
//  1. Every expression ops::attention_definition<Config>(Q, K, V[, Len][, LogS]) builds, for Config with
//     causal on or off, normalize_qk on or off, key padding on or off, and the scales inv_sqrt_d, fixed<S>,
//     learned, entropy_invariant<512, ·> and gradient_max_n<·> (not under normalize_qk, which the
//     definition refuses): the node attention_node<Config>(Q, K, V[, Len][, LogS]) with the same operands.
//     Recognition is exact: the recognizer reads Q, K, V, Len and LogS off the expression and rebuilds
//     attention_definition<Config> from them; the form is lowered only if the two types are the same.
//  2. Hand-written, unmasked: matmul(softmax(S), V) with softmax over the last axis and S one of
//        matmul(Q, Kᵀ)                     → s = 1
//        matmul(Q, Kᵀ) * c, c * matmul(Q, Kᵀ), matmul(Q, Kᵀ) / c     (c a sym constant: 2_c, c<1, 8>, fc<0.125>,
//                                            or a constant node)  → attention_config<false, false, fixed<c>>
//        matmul(Q, Kᵀ) * g, g * matmul(Q, Kᵀ), matmul(Q, Kᵀ) / g     (g any elementwise expression of other
//                                            tensors, e.g. an argument) → the node with s = 1 on the query
//                                            g·Q (resp. Q/g): s·(q·k) = (s·q)·k for a scale constant along keys
//     where Kᵀ is transpose(K) or permute<0, 1, 3, 2>(K); and any of these S under a causal mask written as
//        where(less_equal(iota<-1>(X), iota<-2>(X)), S, −∞)  (or greater_equal(iota<-2>(X), iota<-1>(X))),
//                                            X = S or Q·Kᵀ, −∞ exactly (fc<-inf>) → the same with causal = true,
//                                            for T_q = T_k only (SquareScores checks it at run time)
//  3. Otherwise, a score modification written as a map of the scores, positions (iota) and per-head parameters,
//     under masks that compare positions: the flex attention node (ops/flex_attention_lowering.hpp lists the forms).
// Not recognized (run as written): any other mask or score term (an additive mask argument, a finite fill like
// −1e9), a softmax over another axis, log_softmax.
//
// What the node asks of a lowered form, unlike the primitives: Q, K, V of rank 4 ([B, H, T, d], the same B
// and H; the node throws "exprgrad::attention: q must be [B, H, T, d], got ..." otherwise), and in form 2 a
// scale g constant along the keys (its last axis of extent 1 or rank 0; otherwise it throws, see
// ScaleOperand); a causal mask written by hand needs T_q = T_k (the node's mask aligns the diagonal
// bottom-right; otherwise it throws, see SquareScores). Wrap such a program in tensors::unlowered to run it as
// written.
#pragma once

#include "exprgrad/require_cxx20.hpp"  // first: refuses a standard older than C++20

#include <algorithm>
#include <cstddef>
#include <type_traits>

#include "exprgrad/ops/attention_definition.hpp"
#include "exprgrad/ops/attention_node.hpp"
#include "exprgrad/ops/flex_attention_lowering.hpp"
#include "exprgrad/sym/expr.hpp"
#include "exprgrad/tensors/count_operand.hpp"
#include "exprgrad/tensors/find_node.hpp"
#include "exprgrad/tensors/graph.hpp"
#include "exprgrad/tensors/layout.hpp"
#include "exprgrad/tensors/lowering.hpp"
#include "exprgrad/tensors/map.hpp"
#include "exprgrad/tensors/matmul.hpp"
#include "exprgrad/tensors/one_hot.hpp"
#include "exprgrad/tensors/permute.hpp"
#include "exprgrad/tensors/softmax.hpp"
#include "exprgrad/tensors/where.hpp"

namespace exprgrad::ops {

namespace detail::attention_lowering {

namespace t = tensors;
namespace meta = tensors::meta;

/// A scale operand of a hand-written form (2. above), passed through unchanged: it checks that the scale is
/// constant along the keys (rank 0 or last axis of extent 1), the condition under which s·(q·k) = (s·q)·k.
template <class A>
struct ScaleOperand {
    using children = meta::type_list<A>;
    static constexpr const char* name = "attention";
    template <class Ctx>
    static void forward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        const t::cview<T>& a = ctx.template in<A>();
        if (a.shape.rank > 0 && a.shape.at(-1) != 1) {
            throw t::shape_error(name,
                                 "a scale in softmax(s·Q·Kᵀ)·V must be constant along the keys (last axis of "
                                 "extent 1), got shape " +
                                     a.shape.str() + "; compile with tensors::unlowered(...) to run it as written");
        }
        t::detail::require_values(name, "a scale", a.data, a.shape);
        T* y = ctx.template out<ScaleOperand>(a.shape);
        std::copy(a.data, a.data + a.size(), y);
    }
    template <class Ctx>
    static void backward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        if constexpr (Ctx::template needs<A>) {
            const t::adjoint_view<T> g = ctx.template adj<ScaleOperand>();
            if (g.uniform) {
                ctx.template grad_uniform<A>(g.value);
            } else {
                bool add = false;
                T* da = ctx.template grad<A>(add);
                const std::size_t n = ctx.template in<A>().size();
                for (std::size_t i = 0; i < n; ++i) da[i] = add ? da[i] + g.data[i] : g.data[i];
            }
        }
    }
};

// ---- reading the pieces off an expression

// Kᵀ (transpose(K) or permute<0, 1, 3, 2>(K)) and Q·Kᵀ: the same reading as the flex lowering's.
using flex_lowering::is_qk;
using flex_lowering::keys_of;

template <class X>
struct is_one_hot : std::false_type {};
template <class I, class N>
struct is_one_hot<t::OneHot<I, N>> : std::true_type {};

// The first node of E, in pre-order, that satisfies P; void when none does.
template <template <class> class P, class E>
using find = t::find_node<P, E>;

// The first child of a node (its first tensor operand), void for a leaf or void.
template <class X, class = void>
struct first_child {
    using type = void;
};
template <class X>
struct first_child<X, std::void_t<typename X::children>> {
    template <class L>
    struct head {
        using type = void;
    };
    template <class C, class... Cs>
    struct head<meta::type_list<C, Cs...>> {
        using type = C;
    };
    using type = typename head<typename X::children>::type;
};
// The kept operand of where(c, x, 0): x.
template <class X>
struct where_kept {
    using type = void;
};
template <class C, class A, class B>
struct where_kept<t::Where<C, A, B>> {
    using type = A;
};
// The second operand of the scores map qk * s (learned: log s; fixed<S>: ConstantNode<S>).
template <class QK>
struct scores_of {
    template <class X>
    struct is : std::false_type {};
    template <class F, class... As>
    struct is<t::Map<F, QK, As...>> : std::true_type {};
};
template <class X>
struct second_operand {
    using type = void;
};
template <class F, class A, class B>
struct second_operand<t::Map<F, A, B>> {
    using type = B;
};
template <class X>
struct constant_of {
    using type = void;
};
template <class K>
struct constant_of<t::ConstantNode<K>> {
    using type = K;
};

// ---- 1. the forms of attention_definition, rebuilt and compared

template <class... Ls>
struct concat;
template <class... As>
struct concat<meta::type_list<As...>> {
    using type = meta::type_list<As...>;
};
template <class... As, class... Bs, class... Ls>
struct concat<meta::type_list<As...>, meta::type_list<Bs...>, Ls...> : concat<meta::type_list<As..., Bs...>, Ls...> {};
template <class... Ls>
using concat_t = typename concat<Ls...>::type;

// attention_definition<Cfg> of the pieces read off (void when a piece is missing: nothing matches it).
template <class Cfg, class Q, class K, class V, class... Extra>
struct rebuilt {
    static constexpr auto get() {
        if constexpr (!(std::is_void_v<Q> || std::is_void_v<K> || std::is_void_v<V> || (std::is_void_v<Extra> || ...)))
            return std::type_identity<decltype(::exprgrad::ops::attention_definition<Cfg>(Q{}, K{}, V{},
                                                                                          Extra{}...))>{};
        else
            return std::type_identity<void>{};
    }
    using type = typename decltype(get())::type;
    using node = Attention<Cfg, Q, K, V, Extra...>;
};

template <class E, class Q, class K, class V, class Len, class LogS, class Cfgs>
struct first_config {
    using type = E;  // none matched
};
template <class E, class Q, class K, class V, class Len, class LogS, class Cfg, class... Cfgs>
struct first_config<E, Q, K, V, Len, LogS, meta::type_list<Cfg, Cfgs...>> {
    // the operands Cfg takes: the key lengths when padded, then log s when learned
    using r = std::conditional_t<
        Cfg::learned_scale,
        std::conditional_t<Cfg::padded, rebuilt<Cfg, Q, K, V, Len, LogS>, rebuilt<Cfg, Q, K, V, LogS>>,
        std::conditional_t<Cfg::padded, rebuilt<Cfg, Q, K, V, Len>, rebuilt<Cfg, Q, K, V>>>;
    // lazily: the next configuration is rebuilt only when this one does not match
    using type = typename std::conditional_t<std::is_same_v<typename r::type, E>, std::type_identity<typename r::node>,
                                             first_config<E, Q, K, V, Len, LogS, meta::type_list<Cfgs...>>>::type;
};

// The configurations tried for a form with the given structure (masked: the root is where(has_key, ·, 0)).
template <bool Masked, bool Padded, bool Cosine, bool Learned, class Fixed>
struct candidates {
    template <bool Causal>
    using scales = meta::type_list<
        attention_config<Causal, Cosine, scale_type::inv_sqrt_d, Padded>,
        attention_config<Causal, Cosine, scale_type::entropy_invariant<512, scale_n::per_row>, Padded>,
        attention_config<Causal, Cosine, scale_type::entropy_invariant<512, scale_n::half_length>, Padded>>;
    template <bool Causal>
    using grad_max = std::conditional_t<
        Cosine, meta::type_list<>,
        meta::type_list<attention_config<Causal, false, scale_type::gradient_max, Padded>,
                        attention_config<Causal, false, scale_type::gradient_max_n<scale_n::half_length>, Padded>>>;
    template <bool Causal>
    using learned =
        std::conditional_t<Learned, meta::type_list<attention_config<Causal, Cosine, scale_type::learned, Padded>>,
                           meta::type_list<>>;
    template <bool Causal>
    using fixed =
        std::conditional_t<std::is_void_v<Fixed>, meta::type_list<>,
                           meta::type_list<attention_config<Causal, Cosine, scale_type::fixed<Fixed>, Padded>>>;
    template <bool Causal>
    using all = concat_t<learned<Causal>, fixed<Causal>, scales<Causal>, grad_max<Causal>>;
    // unmasked forms are neither causal nor padded; a masked form without padding is causal
    using type =
        std::conditional_t<!Masked, all<false>, std::conditional_t<Padded, concat_t<all<true>, all<false>>, all<true>>>;
};

template <class QH>
struct normalized_operand {  // q where QH = l2_normalize(q), void otherwise
    using x = typename first_child<QH>::type;
    using type = typename std::conditional_t<
        std::is_void_v<x>, std::type_identity<void>,
        std::conditional_t<std::is_same_v<decltype(ops::detail::attention_definition::l2_normalize(
                                              std::conditional_t<std::is_void_v<x>, t::Input<0>, x>{})),
                                          QH>,
                           std::type_identity<x>, std::type_identity<void>>>::type;
};

template <class E, class Inner, bool Masked>
struct definition_form {
    using type = E;
};
template <class E, class Z, class VU, bool Masked>
struct definition_form<E, t::Matmul<t::Softmax<false, -1, Z>, VU>, Masked> {
    using qk = typename find<is_qk, E>::type;
    template <class QK, bool = !std::is_void_v<QK>>
    struct with_qk {
        using type = E;
    };
    template <class QH, class KT>
    struct with_qk<t::Matmul<QH, KT>, true> {
        using KH = typename keys_of<KT>::type;
        using q_norm = typename normalized_operand<QH>::type;
        static constexpr bool cosine = !std::is_void_v<q_norm>;
        using Q = std::conditional_t<cosine, q_norm, QH>;
        using K_used = std::conditional_t<cosine, typename first_child<KH>::type, KH>;
        using one_hot = typename find<is_one_hot, E>::type;
        static constexpr bool padded = !std::is_void_v<one_hot>;
        using Len = typename first_child<std::conditional_t<padded, one_hot, void>>::type;
        using K = std::conditional_t<padded, typename where_kept<K_used>::type, K_used>;
        using V = std::conditional_t<padded, typename where_kept<VU>::type, VU>;
        using scores = typename find<scores_of<t::Matmul<QH, KT>>::template is, E>::type;
        using second = typename second_operand<scores>::type;
        using fixed = typename constant_of<second>::type;
        static constexpr bool learned = !std::is_void_v<second> && std::is_void_v<fixed>;
        static constexpr bool readable = !std::is_void_v<Q> && !std::is_void_v<K> && !std::is_void_v<V>;
        using type = typename std::conditional_t<
            readable,
            first_config<E, Q, K, V, Len, second, typename candidates<Masked, padded, cosine, learned, fixed>::type>,
            std::type_identity<E>>::type;
    };
    using type = typename with_qk<qk>::type;
};

// ---- 2. the hand-written forms

template <class G>
struct reads_var0 : std::false_type {};
template <>
struct reads_var0<sym::Var<0>> : std::true_type {};
template <class Op, class... Cs>
struct reads_var0<sym::Node<Op, Cs...>> : std::bool_constant<(reads_var0<Cs>::value || ...)> {};

// F = var0 · g, g · var0 or var0 / g with g free of var0: the multiplier g (or 1/g) as a sym expression.
template <class F>
struct linear_in_var0 : std::false_type {};
template <class G>
requires(!reads_var0<G>::value) struct linear_in_var0<sym::Node<sym::op::Mul, sym::Var<0>, G>> : std::true_type {
    using multiplier = G;
};
template <class G>
requires(!reads_var0<G>::value) struct linear_in_var0<sym::Node<sym::op::Mul, G, sym::Var<0>>> : std::true_type {
    using multiplier = G;
};
template <class G>
requires(!reads_var0<G>::value) struct linear_in_var0<sym::Node<sym::op::Div, sym::Var<0>, G>> : std::true_type {
    using multiplier = decltype(sym::c<1> / G{});
};

template <class Cfg, class Q, class K, class V>
struct made {
    using node = Attention<Cfg, Q, K, V>;
};
using unit_scale = attention_config<false, false, scale_type::fixed<std::remove_cvref_t<decltype(sym::c<1>)>>>;

template <class S, class V>
struct hand_form {
    using type = void;
};
template <class Q, class KT, class V>
requires(keys_of<KT>::value) struct hand_form<t::Matmul<Q, KT>, V> {
    using type = typename made<unit_scale, Q, typename keys_of<KT>::type, V>::node;
};
template <class F, class Q, class KT, class... As, class V>
requires(keys_of<KT>::value&& linear_in_var0<F>::value) struct hand_form<t::Map<F, t::Matmul<Q, KT>, As...>, V> {
    using K = typename keys_of<KT>::type;
    using M = typename linear_in_var0<F>::multiplier;
    template <class X, class = void>
    struct const_operand {  // the multiplier as a sym constant: g itself, or a ConstantNode read as var<1>
        using type = void;
    };
    template <class X>
    requires sym::Constant<X>
    struct const_operand<X> {
        using type = X;
    };
    using node_const =
        std::conditional_t<sizeof...(As) == 1 &&
                               (std::is_same_v<F, sym::Node<sym::op::Mul, sym::Var<0>, sym::Var<1>>> ||
                                std::is_same_v<F, sym::Node<sym::op::Mul, sym::Var<1>, sym::Var<0>>>),
                           typename constant_of<typename first_child<t::Map<F, As...>>::type>::type, void>;
    using constant = std::conditional_t<!std::is_void_v<typename const_operand<M>::type>,
                                        typename const_operand<M>::type, node_const>;
    template <class C, class = void>
    struct build {  // s = g: the node runs on the query g·Q with s = 1
        using type = typename made<unit_scale, decltype(t::map(F{}, Q{}, ScaleOperand<As>{}...)), K, V>::node;
    };
    template <class C>
    struct build<C, std::enable_if_t<!std::is_void_v<C>>> {
        using type = typename made<attention_config<false, false, scale_type::fixed<C>>, Q, K, V>::node;
    };
    using type = typename build<constant>::type;
};

// where(j ≤ i, S, −∞) with i = iota<-2>(X), j = iota<-1>(X), X the scores S or Q·Kᵀ: the node's causal mask
// (j ≤ i + T_k − T_q) when T_q = T_k, which SquareScores checks at run time.
template <class X>
struct causal_condition : std::false_type {};
template <class X>
struct causal_condition<t::Compare<t::cmp::less_equal, t::Iota<-1, X>, t::Iota<-2, X>>> : std::true_type {
    using like = X;
};
template <class X>
struct causal_condition<t::Compare<t::cmp::greater_equal, t::Iota<-2, X>, t::Iota<-1, X>>> : std::true_type {
    using like = X;
};
template <class M>
struct is_minus_infinity : std::false_type {};
template <class K>
struct is_minus_infinity<t::ConstantNode<K>> : std::bool_constant<(K::value < 0 && K::value * 0.5 == K::value)> {};

/// The query of a causal form written by hand, passed through unchanged: it checks T_q = T_k, where the mask
/// j ≤ i is the node's (which aligns the diagonal bottom-right, j ≤ i + T_k − T_q).
template <class Q, class K>
struct SquareScores {
    using children = meta::type_list<Q, K>;
    static constexpr const char* name = "attention";
    template <class Ctx>
    static void forward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        const t::cview<T>& q = ctx.template in<Q>();
        const t::cview<T>& k = ctx.template in<K>();
        if (q.shape.rank >= 2 && k.shape.rank >= 2 && q.shape.at(-2) != k.shape.at(-2)) {
            throw t::shape_error(name,
                                 "a causal mask written as j <= i is the attention node's only for as many "
                                 "queries as keys, got q " +
                                     q.shape.str() + " and k " + k.shape.str() +
                                     "; compile with tensors::unlowered(...) to run it as written");
        }
        t::detail::require_values(name, "q", q.data, q.shape);
        T* y = ctx.template out<SquareScores>(q.shape);
        std::copy(q.data, q.data + q.size(), y);
    }
    template <class Ctx>
    static void backward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        if constexpr (Ctx::template needs<Q>) {  // k is only read for its shape
            const t::adjoint_view<T> g = ctx.template adj<SquareScores>();
            if (g.uniform) {
                ctx.template grad_uniform<Q>(g.value);
            } else {
                bool add = false;
                T* dq = ctx.template grad<Q>(add);
                const std::size_t n = ctx.template in<Q>().size();
                for (std::size_t i = 0; i < n; ++i) dq[i] = add ? dq[i] + g.data[i] : g.data[i];
            }
        }
    }
};

template <class N>
struct with_causal_mask {
    using type = void;
};
template <bool Causal, bool Cosine, class Scale, bool Padded, class Q, class K, class V>
struct with_causal_mask<Attention<attention_config<Causal, Cosine, Scale, Padded>, Q, K, V>> {
    using type = Attention<attention_config<true, Cosine, Scale, Padded>, SquareScores<Q, K>, K, V>;
};
template <class C, class S, class M, class V>
requires(causal_condition<C>::value&& is_minus_infinity<M>::value) struct hand_form<t::Where<C, S, M>, V> {
    using X = typename causal_condition<C>::like;
    static constexpr bool same_scores = std::is_same_v<X, S> || std::is_same_v<X, typename find<is_qk, S>::type>;
    using type = std::conditional_t<same_scores, typename with_causal_mask<typename hand_form<S, V>::type>::type, void>;
};

// The replacement of the root E (void: none).
template <class E>
struct lower_attention {
    using type = E;
};
template <class Z, class V>
struct lower_attention<t::Matmul<t::Softmax<false, -1, Z>, V>> {
    using E = t::Matmul<t::Softmax<false, -1, Z>, V>;
    using def = typename definition_form<E, E, false>::type;
    using hand = typename std::conditional_t<std::is_same_v<def, E>, hand_form<Z, V>, std::type_identity<void>>::type;
    // neither: a modified-score form for the flex kernels (ops/flex_attention_lowering.hpp), else E itself
    using type = typename std::conditional_t<
        !std::is_same_v<def, E>, std::type_identity<def>,
        std::conditional_t<std::is_void_v<hand>, flex_lowering::lower<E>, std::type_identity<hand>>>::type;
};
template <class HasKey, class Z, class V, class Zero>
struct lower_attention<t::Where<HasKey, t::Matmul<t::Softmax<false, -1, Z>, V>, Zero>> {
    using E = t::Where<HasKey, t::Matmul<t::Softmax<false, -1, Z>, V>, Zero>;
    using type = typename definition_form<E, t::Matmul<t::Softmax<false, -1, Z>, V>, true>::type;
};

}  // namespace detail::attention_lowering

}  // namespace exprgrad::ops

namespace exprgrad::tensors {

/// The attention lowering's registrations (see the top of ops/attention_lowering.hpp).
template <class Z, class V>
struct lowering<Matmul<Softmax<false, -1, Z>, V>>
    : ops::detail::attention_lowering::lower_attention<Matmul<Softmax<false, -1, Z>, V>> {};
template <class HasKey, class Z, class V, class Zero>
struct lowering<Where<HasKey, Matmul<Softmax<false, -1, Z>, V>, Zero>>
    : ops::detail::attention_lowering::lower_attention<Where<HasKey, Matmul<Softmax<false, -1, Z>, V>, Zero>> {};

}  // namespace exprgrad::tensors
