// The library's attention modifications (issue 20): the common score and mask modifications of the literature,
// each a one-line scalar DSL expression of the flex attention placeholders (ops/attn_placeholders.hpp), to pass
// to flex_attention_forward / flex_attention_vjp or flex_attention_node as they are or combined with others:
//
//   auto r = flex_attention_forward(q, k, v, attn::alibi, attn::sliding_window<256>, {slopes}, opts);
//   auto s = flex_attention_forward(q, k, v, attn::softcap<50.0>, attn::causal, {}, opts);
//
// Masks are visible where their value is > 0 (the flex contract), and q_idx, k_idx are 0-based positions with no
// alignment between T_q and T_k: attn::causal aligns bottom-right through the sequence placeholders (q_len,
// k_len: ops/attn_sequence.hpp), as the options' causal mask; causal_top_left, sliding_window and prefix_lm are
// top-left aligned (row i is compared with key i). Document masks read per-position ids (attn::q_doc, k_doc)
// passed as flex_documents. They are ordinary expressions, so `to_string(attn::causal)` prints them and
// `d(attn::alibi, attn::score)` is 1. The block mask classifies the tiles of all these masks by interval
// arithmetic (ops/detail/flex_block_mask.hpp). Op reference, the table of these modifications and their speed:
// docs/flex_attention.md.
//
// T5's relative-position bias table is in ops/attn_relative_bias.hpp (included here). The post's scale policies
// under causal masking: attn::entropy_invariant_causal<n_ref> and attn::gradient_max_causal (α*(n), the root of a
// transcendental equation, by unrolled Newton steps).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include <xtensor/xtensor.hpp>

#include "exprgrad/ops/attn_placeholders.hpp"
#include "exprgrad/ops/attn_relative_bias.hpp"  // attn::relative_bias<NB, MaxDistance>, attn::relative_bucket
#include "exprgrad/ops/attn_sequence.hpp"
#include "exprgrad/ops/detail/constexpr_log.hpp"
#include "exprgrad/sym/functions.hpp"

namespace exprgrad::ops::detail::flex {

template <std::intmax_t W>
consteval auto make_sliding_window() {
    static_assert(W >= 1, "attn::sliding_window<W>: the window width W must be at least 1 (the key itself)");
    // min(i − j + 1, W − (i − j)) > 0  ⇔  j ≤ i and i − j < W, for integer positions: one node, no product of
    // comparisons.
    return sym::min(attn::q_idx - attn::k_idx + sym::c<1>, sym::c<W> - (attn::q_idx - attn::k_idx));
}

template <std::intmax_t P>
consteval auto make_prefix_lm() {
    static_assert(P >= 0, "attn::prefix_lm<P>: the prefix length P must be at least 0");
    // max(P − j, i − j + 1) > 0  ⇔  j < P or j ≤ i.
    return sym::max(sym::c<P> - attn::k_idx, attn::q_idx - attn::k_idx + sym::c<1>);
}

template <double C>
consteval auto make_softcap() {
    static_assert(C > 0.0 && C < 1e300, "attn::softcap<C>: the cap C must be a finite number > 0");
    return sym::fc<C> * sym::tanh(attn::score / sym::fc<C>);
}

template <double NRef>
consteval auto make_entropy_invariant_causal() {
    static_assert(NRef > 1.0 && NRef < 1e300, "attn::entropy_invariant_causal<n_ref>: n_ref must be a finite number > 1");
    return attn::score * sym::log(attn::q_idx + sym::c<1>) * sym::fc<1.0 / constexpr_log(NRef)>;
}

/// α*(n) for n = q_idx + 1 ≥ 2 (the root of (1 + 2α²)e^{α²} = n, scale::gradient_max_alpha) as an expression: K
/// Newton steps on h(α) = log1p(2α²) + α² − log n from α₀ = √log(n + 1) ≥ √log n ≥ α*, where h ≥ 0, so the steps
/// decrease monotonically to the root (h is increasing and convex, as in gradient_max_alpha); 5 steps reach 1e-15
/// relative for every n ≥ 2 (checked for n ≤ 5000 and powers of ten to 1e9). At n = 1 the root is a double
/// root and the steps approach it linearly, never reaching 0 (no 0/0); the caller zeroes that row.
template <int K>
consteval auto gradient_max_newton() {
    if constexpr (K == 0) {
        return sym::sqrt(sym::log(attn::q_idx + sym::c<2>));
    } else {
        constexpr auto a = gradient_max_newton<K - 1>();
        constexpr auto a2 = a * a;
        constexpr auto h = sym::log1p(sym::c<2> * a2) + a2 - sym::log(attn::q_idx + sym::c<1>);
        return a - h / (sym::c<4> * a / (sym::c<1> + sym::c<2> * a2) + sym::c<2> * a);
    }
}

}  // namespace exprgrad::ops::detail::flex

namespace exprgrad::ops::attn {

/// Causal mask, bottom-right aligned: key j is visible to query i ⇔ j ≤ i + T_k − T_q (value
/// i − j + T_k − T_q + 1 > 0), so the last query sees every key, as `attention_options{.causal = true}` (which it
/// equals for every T_q, T_k) and PyTorch's causal_lower_right; with T_q = T_k it is j ≤ i, the decoder mask of
/// "Attention Is All You Need" and of every GPT. Queries i < T_q − T_k (more queries than keys) see no key: their
/// rows are fully masked (out = 0, lse = −inf). Example: `flex_attention_forward(q, k, v, attn::score,
/// attn::causal, {}, opts)`; decoding one new query against a cache of T_k keys sees all of them.
inline constexpr auto causal = q_idx - k_idx + (k_len - q_len) + sym::c<1>;

/// Causal mask, top-left aligned: visible ⇔ j ≤ i (value i − j + 1 > 0) whatever T_q and T_k (PyTorch's
/// causal_upper_left). Equals attn::causal when T_q = T_k. Example: `attn::causal_top_left`.
inline constexpr auto causal_top_left = q_idx - k_idx + sym::c<1>;

/// Sliding-window (local) causal mask of width W ≥ 1 (a compile-time integer): visible ⇔ i − W < j ≤ i, so each
/// query sees itself and the W − 1 keys before it (W keys in all; implementations differ by one here, some let
/// the query see W keys before itself). Local attention of Longformer and Mistral. W ≥ T is plain causal.
/// Example: `attn::sliding_window<256>`.
template <std::intmax_t W>
inline constexpr auto sliding_window = detail::flex::make_sliding_window<W>();

/// Prefix-LM mask with a prefix of P ≥ 0 positions (a compile-time integer): visible ⇔ j < P or j ≤ i, i.e.
/// bidirectional over the prefix, causal after it (UniLM, T5's prefix LM, PaliGemma). P = 0 is causal.
/// Example: `attn::prefix_lm<16>`.
template <std::intmax_t P>
inline constexpr auto prefix_lm = detail::flex::make_prefix_lm<P>();

/// Document mask: key j is visible to query i ⇔ they belong to the same document, docs.q[b][i] = docs.k[b][j]
/// (value min(q_doc − k_doc + 1, k_doc − q_doc + 1) > 0 for integer ids), for several sequences packed into one
/// row of a batch. Needs the ids: pass flex_documents after the options (a call without them throws). Combine it
/// with other masks with sym::min (visible where both are). Example, documents of lengths 3 and 2, bidirectional
/// within each: `flex_attention_forward(q, k, v, attn::score, attn::document, {}, opts,
/// flex_documents::self(xt::xtensor<std::int64_t, 2>{{0, 0, 0, 1, 1}}))`.
inline constexpr auto document = sym::min(q_doc - k_doc + sym::c<1>, k_doc - q_doc + sym::c<1>);

/// Causal document mask: visible ⇔ same document and j ≤ i + T_k − T_q (attn::causal within each document: the
/// packed-sequence training mask). Example: `flex_attention_forward(q, k, v, attn::score, attn::document_causal,
/// {}, opts, flex_documents::self(ids))`.
inline constexpr auto document_causal = sym::min(document, causal);

/// ALiBi (Press, Smith, Lewis, "Train Short, Test Long", ICLR 2022): z = score − m_h·(i − j) with the slope m_h
/// of head h the learnable param<0> (params[0] has H values; the paper's fixed slopes are alibi_slopes(H)). Meant
/// with a causal mask (i ≥ j, the paper's setting); without one, keys after the query get a bonus m_h·(j − i).
/// ∂z/∂m_h = −(i − j), so flex_attention_vjp's dparams[0] is the slopes' gradient. Example:
/// `flex_attention_forward(q, k, v, attn::alibi, attn::causal, {attn::alibi_slopes(4)}, opts)`.
inline constexpr auto alibi = score - param<0> * (q_idx - k_idx);

/// ALiBi's fixed slopes for H ≥ 1 heads: m_h = 2^(−8(h + 1)/H), h = 0..H−1 (the paper's geometric sequence; for
/// H not a power of two the paper's code interleaves two such sequences, not done here). Example: H = 4 gives
/// {0.25, 0.0625, 0.015625, 0.00390625}.
inline xt::xtensor<double, 1> alibi_slopes(std::size_t H) {
    xt::xtensor<double, 1> m = xt::zeros<double>({H});
    for (std::size_t h = 0; h < H; ++h) m(h) = std::exp2(-8.0 * static_cast<double>(h + 1) / static_cast<double>(H));
    return m;
}

/// Logit soft-capping at C > 0 (a compile-time double): z = C·tanh(score / C), smooth, odd, |z| < C, z ≈ score for
/// |score| ≪ C; ∂z/∂score = 1 − tanh²(score/C). Gemma 2 (C = 50 on attention logits) and Grok-1 (C = 30).
/// The fused kernels evaluate score / C as score · (1/C) (within an ulp or two; detail/flex_modification.hpp's
/// by_reciprocal says when). Example: `attn::softcap<50.0>`.
template <double C>
inline constexpr auto softcap = detail::flex::make_softcap<C>();

/// The entropy-invariant scale (kexue.fm post 8823; scale::entropy_invariant) written as a score modification
/// under a top-left causal mask: z = score · log(i + 1)/log(n_ref), n = i + 1 being the number of keys row i sees.
/// With the options' default scale (1/√d) this is s = log(n)/log(n_ref)/√d, the option form's multiplier, when
/// every row sees exactly i + 1 keys: attn::causal or opts.causal with T_q = T_k, no key_lengths shorter than a
/// row, no other mask. Where the option counts fewer keys (key_lengths, a window, a document mask) the two differ:
/// the option counts the keys actually visible, this uses i + 1. Row 0 gets z = 0 (log 1), as the option's s = 0
/// at n = 1. n_ref > 1 a compile-time double; example: `attn::entropy_invariant_causal<512.0>`.
template <double NRef>
inline constexpr auto entropy_invariant_causal = detail::flex::make_entropy_invariant_causal<NRef>();

/// The gradient-maximising scale (kexue.fm post 9812; scale::gradient_max) written as a score modification under a
/// top-left causal mask: z = score · α*(i + 1), α*(n) the root of (1 + 2α²)e^{α²} = n (scale::gradient_max_alpha;
/// 0 at n = 1, the factor min(i, 1) zeroes row 0), n = i + 1 the number of keys row i sees. With the options'
/// default scale (1/√d) this is s = α*(n)/√d, the option form's multiplier, when every row sees exactly i + 1 keys
/// (attn::causal or opts.causal with T_q = T_k, no shorter key_lengths, no other mask); elsewhere the option counts
/// the keys actually visible and this keeps i + 1. Not for normalize_qk (the option then uses the cosine
/// objective's α). α* is computed in the expression by five unrolled Newton steps, to double precision: about
/// sixty operations and seven logarithms per score (each distinct subexpression once, but per score: nothing
/// hoists the row's α* out of the row), where the option computes α* once per row. Example:
/// `flex_attention_forward(q, k, v, attn::gradient_max_causal, attn::causal, {}, opts)`.
inline constexpr auto gradient_max_causal =
    score * detail::flex::gradient_max_newton<5>() * sym::min(q_idx, sym::c<1>);

}  // namespace exprgrad::ops::attn
