// Multi-head attention defined in the DSL: the reference definition of what the fused kernel
// (ops/attention.hpp, the attention_node of ops/attention_node.hpp) computes, written only from tensor
// primitives (matmul, softmax, iota, comparisons, where, reductions, reshape, one_hot), so that the engine
// derives its gradients. It is the readable statement of the kernel's contract and the oracle its tests
// compare against; it stores the full T_q×T_k score matrix, so use the kernel for speed.
//
//   out[b,h,i,:] = Σ_j p_ij v[b,h,j,:],  p_i = softmax_j(s_i · q̂_i·k̂_j + mask_ij)
//   mask_ij = 0 where key j is visible to query i, −inf elsewhere; visible iff
//     (causal)  j ≤ i + T_k − T_q        (bottom-right alignment, the kernel's)
//     (padded)  j < key_lengths[b]
//   a row with no visible key gives out = 0; s_i from the scale policy of the configuration.
//
// docs/attention.md ("Defined in the DSL") maps each term to the code below.
#pragma once

#include "exprgrad/require_cxx20.hpp"  // first: refuses a standard older than C++20

#include <cstddef>
#include <cstdint>
#include <limits>
#include <tuple>
#include <type_traits>

#include "exprgrad/ops/attention_node.hpp"
#include "exprgrad/sym/expr.hpp"
#include "exprgrad/tensors/compare.hpp"
#include "exprgrad/tensors/count_operand.hpp"
#include "exprgrad/tensors/elementwise.hpp"
#include "exprgrad/tensors/iota.hpp"
#include "exprgrad/tensors/layout.hpp"
#include "exprgrad/tensors/map.hpp"
#include "exprgrad/tensors/matmul.hpp"
#include "exprgrad/tensors/one_hot.hpp"
#include "exprgrad/tensors/reduce.hpp"
#include "exprgrad/tensors/reshape.hpp"
#include "exprgrad/tensors/softmax.hpp"
#include "exprgrad/tensors/where.hpp"

namespace exprgrad::ops {

namespace detail::attention_definition {

// The parameters of an attention_config, read back from its type.
template <class Config>
struct config_traits;
template <bool Causal, bool NormalizeQK, class Scale, bool Padded>
struct config_traits<attention_config<Causal, NormalizeQK, Scale, Padded>> {
    static constexpr bool causal = Causal, cosine = NormalizeQK, padded = Padded;
    using scale = Scale;
};

// A sym constant as a rank-0 tensor (an operand of log, sqrt, where).
template <class K>
constexpr tensors::ConstantNode<K> constant(K) {
    return {};
}

// [.., n] → [.., n, 1]: a reduced axis put back as a broadcastable one.
template <tensors::TensorExpr X>
constexpr auto keep_axis(X x) {
    return tensors::reshape<0, 0, 0, 1>(x);
}

// The entries of a count array as numbers: lengths [B] (an integer array argument, or integer-valued)
// read through one_hot, len_b = Σ_c c·[c = len_b] with depth T_k + 1. Compare and where read values,
// which an integer argument does not carry. A length outside [0, T_k] throws in one_hot.
template <tensors::TensorExpr Len, tensors::TensorExpr Keys>
constexpr auto length_values(Len len, Keys k) {
    using namespace sym::literals;
    const auto depth = tensors::max(tensors::iota<-2>(k)) + 2_c;  // T_k + 1
    const auto oh = tensors::one_hot(len, depth);
    return tensors::sum<-1>(oh * tensors::iota<-1>(oh));
}

// x / √(Σx² + ε²) per row, ε = attention_options::qk_eps's default 1e-6 (the node's ε).
template <tensors::TensorExpr X>
constexpr auto l2_normalize(X x) {
    return x / tensors::sqrt(keep_axis(tensors::sum<-1>(tensors::square(x))) + sym::fc<1e-12>);
}

// α*(n) of scale::gradient_max_alpha, the root of (1 + 2α²)e^{α²} = n, by five Newton steps from √log n
// (the kernel's start; the steps decrease monotonically to the root, five reach it within 3e-16 relative for
// every n ≥ 2, measured against the kernel's stopping rule); 0 for n ≤ 1.
template <tensors::TensorExpr N>
constexpr auto gradient_max_alpha(N n) {
    using namespace sym::literals;
    const auto log_n = tensors::log(n);
    constexpr auto step = [](auto a, auto log_n) {
        const auto a2 = tensors::square(a);
        return a - (tensors::log1p(2_c * a2) + a2 - log_n) / (4_c * a / (1_c + 2_c * a2) + 2_c * a);
    };
    const auto a = step(step(step(step(step(tensors::sqrt(log_n), log_n), log_n), log_n), log_n), log_n);
    return tensors::where(tensors::greater(n, constant(1_c)), a, 0_c);
}

// The multiplier s_i of each row, broadcastable to the scores [B, H, T_q, T_k]; n [B, H, T_q, 1] the count of
// keys each row attends, t_k the number of keys (rank 0), d the head dimension (rank 0). Matches
// scale_policy::multiplier: n < 1 counts as 1; scale_n::half_length uses n = T_k/2 under the causal mask.
template <class Scale, bool Causal, bool Cosine>
struct multiplier;

template <bool Causal, bool Cosine>
struct multiplier<scale_type::inv_sqrt_d, Causal, Cosine> {
    template <class N, class TK, class D, class... S>
    static constexpr auto of(N, TK, D d, S...) {
        return sym::c<1> / tensors::sqrt(d);
    }
};

template <class S, bool Causal, bool Cosine>
struct multiplier<scale_type::fixed<S>, Causal, Cosine> {
    template <class N, class TK, class D, class... Sx>
    static constexpr auto of(N, TK, D, Sx...) {
        return constant(S{});
    }
};

template <bool Causal, bool Cosine>
struct multiplier<scale_type::learned, Causal, Cosine> {
    template <class N, class TK, class D, class LogS>
    static constexpr auto of(N, TK, D, LogS log_s) {
        return tensors::exp(log_s);  // s = exp(θ): the engine differentiates θ through it
    }
};

// n as the policy's scale_n asks, at least 1.
template <scale_n Choice, bool Causal, class N, class TK>
constexpr auto policy_n(N n, TK t_k) {
    using namespace sym::literals;
    if constexpr (Choice == scale_n::half_length && Causal) {
        return tensors::where(tensors::greater(t_k, constant(2_c)), t_k * sym::c<1, 2>, 1_c);
    } else {
        return tensors::where(tensors::greater(n, constant(1_c)), n, 1_c);
    }
}

template <std::intmax_t NRef, scale_n Choice, bool Causal, bool Cosine>
struct multiplier<scale_type::entropy_invariant<NRef, Choice>, Causal, Cosine> {
    static_assert(NRef > 1, "exprgrad: entropy_invariant needs n_ref > 1");
    template <class N, class TK, class D, class... S>
    static constexpr auto of(N n, TK t_k, D d, S...) {
        return tensors::log(policy_n<Choice, Causal>(n, t_k)) / tensors::log(constant(sym::c<NRef>)) / tensors::sqrt(d);
    }
};

template <scale_n Choice, bool Causal, bool Cosine>
struct multiplier<scale_type::gradient_max_n<Choice>, Causal, Cosine> {
    static_assert(!Cosine,
                  "exprgrad: attention_definition has no DSL form of gradient_max under normalize_qk (its α*_cos(n, d) "
                  "is a root of a series); use the attention node");
    template <class N, class TK, class D, class... S>
    static constexpr auto of(N n, TK t_k, D d, S...) {
        return gradient_max_alpha(policy_n<Choice, Causal>(n, t_k)) / tensors::sqrt(d);
    }
};

}  // namespace detail::attention_definition

/// Multi-head attention as a tensor expression, the reference definition of attention_node: same
/// configuration type and operands, attention_definition<Config>(Q, K, V[, Len][, LogS]).
///   Q [B, H, T_q, d], K [B, H, T_k, d], V [B, H, T_k, d_v]; out [B, H, T_q, d_v]:
///   out_i = Σ_j p_ij V_j,  p_i = softmax_j(s_i q̂_i·k̂_j over the visible keys j),
///   visible: j ≤ i + T_k − T_q when causal; j < Len[b] when padded (Len [B], integers in [0, T_k]);
///   q̂ = q/√(‖q‖² + 10⁻¹²) and k̂ likewise under normalize_qk (the node's qk_eps = 1e-6), else q̂ = q;
///   s_i = 1/√d (inv_sqrt_d), S (fixed<S>), exp(LogS) (learned, LogS one value, differentiated),
///   log(n_i)/log(n_ref)/√d (entropy_invariant), α*(n_i)/√d (gradient_max; not under normalize_qk, which
///   does not compile), n_i the number of visible keys of row i (T_k/2 with scale_n::half_length and causal),
///   at least 1. s_i depends only on sizes, so its gradient is zero, as the kernel treats it.
/// A row with no visible key (Len[b] = 0, or causal rows i < T_q − T_k) gives out = 0, gradient 0 to its q.
/// Gradients come from the engine: value_and_grad(f(attention_definition<C>(Q, K, V)), wrt<...>).
/// NaN: keys and values at j ≥ Len[b] are replaced by 0 before use, so NaN there stays out (as in the kernel);
/// a NaN in a key or value that row i masks only causally still reaches row i, as 0·NaN in p·V (the kernel
/// leaves that row finite); NaN in a visible q, k or v propagates as in the kernel.
/// Errors: mismatched shapes throw from matmul ("exprgrad::matmul: shapes ... do not multiply"), a length
/// outside [0, T_k] from one_hot ("exprgrad::one_hot: index v at position b is out of range ...").
/// Cost: O(B·H·T_q·T_k) memory for the scores (the kernel stores none).
/// Example: `auto f = sum(square(attention_definition<attention_config<true>>(tensor<0>, tensor<1>, tensor<2>)));
///           auto [l, g] = value_and_grad(f, wrt<0, 1, 2>)(q, k, v);` (causal, 1/√d).
template <class Config = attention_config<>, tensors::TensorExpr Q, tensors::TensorExpr K, tensors::TensorExpr V,
          tensors::TensorExpr... Extra>
constexpr auto attention_definition(Q q, K k, V v, Extra... extra) {
    namespace A = detail::attention_definition;
    namespace t = tensors;
    using namespace sym::literals;
    using C = A::config_traits<Config>;
    static_assert(sizeof...(Extra) == std::size_t{C::padded} + std::size_t{Config::learned_scale},
                  "exprgrad: attention_definition takes q, k, v, then the key lengths (a padded config) and then log s "
                  "(scale_type::learned), and nothing else");
    const auto extras = std::tuple{extra...};
    const auto qh = [&] {
        if constexpr (C::cosine)
            return A::l2_normalize(q);
        else
            return q;
    }();
    // padded: keys j ≥ Len[b] are zeroed first, so that nothing in them reaches a row (they are never read)
    const auto drop_padded = [&](auto x) {  // x [B, H, T_k, ·] with rows j ≥ Len[b] set to 0
        if constexpr (C::padded) {
            const auto len = t::reshape<-1, 1, 1, 1>(A::length_values(std::get<0>(extras), k));  // [B, 1, 1, 1]
            return t::where(t::less(t::iota<-2>(x), len), x, 0_c);
        } else {
            return x;
        }
    };
    const auto k_used = drop_padded(k);
    const auto v_used = drop_padded(v);
    const auto kh = [&] {
        if constexpr (C::cosine)
            return A::l2_normalize(k_used);
        else
            return k_used;
    }();
    const auto qk = t::matmul(qh, t::transpose(kh));  // [B, H, T_q, T_k]
    const auto i = t::iota<-2>(qk);
    const auto j = t::iota<-1>(qk);
    const auto t_k = t::max(j) + 1_c;  // rank 0
    const auto d = t::max(t::iota<-1>(q)) + 1_c;
    // visible keys, 1 or 0: causal j ≤ i + T_k − T_q, written j + (T_q − 1) ≤ i + (T_k − 1)
    const auto causal_visible = t::less_equal(j + t::max(i), i + t::max(j));
    const auto pad_visible = [&] {
        if constexpr (C::padded)
            return t::less(j, t::reshape<-1, 1, 1, 1>(A::length_values(std::get<0>(extras), k)));
        else
            return 0;
    }();
    const auto visible = [&] {
        if constexpr (C::causal && C::padded)
            return causal_visible * pad_visible;
        else if constexpr (C::causal)
            return causal_visible;
        else if constexpr (C::padded)
            return pad_visible;
        else
            return 0;
    }();
    constexpr bool masked = C::causal || C::padded;
    const auto n = [&] {  // keys each row attends, [B, H, T_q, 1] (or T_k, rank 0, unmasked)
        if constexpr (masked)
            return A::keep_axis(t::sum<-1>(visible));
        else
            return t_k;
    }();
    const auto s = [&] {
        using M = A::multiplier<typename C::scale, C::causal, C::cosine>;
        if constexpr (Config::learned_scale)
            return M::of(n, t_k, d, std::get<sizeof...(Extra) - 1>(extras));
        else
            return M::of(n, t_k, d);
    }();
    const auto scores = qk * s;
    if constexpr (!masked) {
        return t::matmul(t::softmax(scores), v_used);
    } else {
        // masked scores −inf (exp gives exactly 0); a row with no visible key gets 0 scores instead (a finite
        // softmax whose output is then replaced by 0, so neither its value nor its gradient is NaN)
        const auto has_key = t::greater(n, A::constant(0_c));
        const auto z =
            t::where(has_key, t::where(visible, scores, sym::fc<-std::numeric_limits<double>::infinity()>), 0_c);
        return t::where(has_key, t::matmul(t::softmax(z), v_used), 0_c);
    }
}

}  // namespace exprgrad::ops

// Programs compiled from the definition run the attention node (the rewrite is registered there).
#include "exprgrad/ops/attention_lowering.hpp"
