// The placeholders of flex attention's score and mask modifications (ops/flex_attention.hpp): scalar DSL
// leaves that stand for the score and the indices of one (query, key) pair.
//
//   auto alibi  = attn::score - attn::param<0> * (attn::q_idx - attn::k_idx);   // score_mod
//   auto causal = attn::q_idx - attn::k_idx + 1_c;                              // mask_mod: visible where > 0
//
// They are the sym layer's variables at fixed positions (score = var<0>, batch = var<1>, head = var<2>,
// q_idx = var<3>, k_idx = var<4>, param<I> = var<5 + I>), so everything the sym layer does works on them:
// d(f, attn::score) is the derivative the fused backward evaluates, and to_string prints x0 for the score,
// x3 for q_idx, x5 for param<0>. A modification is evaluated with these arguments, in that order.
#pragma once

#include <cstddef>
#include <type_traits>

#include "exprgrad/sym/derivative.hpp"
#include "exprgrad/sym/evaluate.hpp"
#include "exprgrad/sym/expr.hpp"

namespace exprgrad::ops::attn {

/// The scaled score s·⟨q_i, k_j⟩ of the pair (s from the options' scale policy, after normalize_qk).
inline constexpr sym::Var<0> score{};
/// The batch index b (0-based), as a number.
inline constexpr sym::Var<1> batch{};
/// The query head index h (0-based), as a number.
inline constexpr sym::Var<2> head{};
/// The query position i (0-based, no alignment between T_q and T_k applied), as a number.
inline constexpr sym::Var<3> q_idx{};
/// The key position j (0-based), as a number.
inline constexpr sym::Var<4> k_idx{};
/// Position of param<0> among a modification's arguments.
inline constexpr int first_param = 5;
/// The I-th learnable parameter's value for the current query head: params[I][h].
template <int I>
inline constexpr sym::Var<first_param + I> param{};

}  // namespace exprgrad::ops::attn

namespace exprgrad::ops::detail::flex {

/// Number of learnable parameters a score modification reads: one more than its highest param<I>.
template <class Mod>
inline constexpr std::size_t param_count_v = sym::arity_v<Mod> > attn::first_param
                                                 ? static_cast<std::size_t>(sym::arity_v<Mod> - attn::first_param)
                                                 : 0;

/// Whether expression E reads variable var<I>.
template <class E, int I>
inline constexpr bool reads_v = sym::meta::contains_v<sym::Var<I>, sym::node_list_t<E>>;

/// Whether the mask is a positive constant: every key visible, nothing to evaluate.
template <class Mask>
constexpr bool mask_always_visible() {
    if constexpr (sym::Constant<Mask>)
        return Mask::value > 0;
    else
        return false;
}

/// Whether the score modification is the identity (a bare attn::score).
template <class Mod>
inline constexpr bool identity_mod_v = std::is_same_v<std::remove_cvref_t<Mod>, sym::Var<0>>;

}  // namespace exprgrad::ops::detail::flex
