// A learnable relative-position bias table indexed by a bucketed distance (T5: Raffel et al., "Exploring the
// Limits of Transfer Learning with a Unified Text-to-Text Transformer", JMLR 2020, section 2.1; the bucketing of
// its reference implementation, decoder form): a score modification of the flex attention placeholders whose
// parameters are the table, params[b][h] the bias of bucket b for query head h.
#pragma once

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "exprgrad/ops/attn_placeholders.hpp"
#include "exprgrad/ops/detail/constexpr_log.hpp"
#include "exprgrad/sym/functions.hpp"

namespace exprgrad::ops::detail::flex {

/// T5's bucket of a distance n (the decoder's, unidirectional form): n < NB/2 is its own bucket; from NB/2 to
/// MaxDistance the buckets are logarithmically spaced, NB/2 + ⌊log(n / (NB/2)) / log(MaxDistance / (NB/2)) ·
/// NB/2⌋, capped at NB − 1; negative n (a key after the query) is bucket 0. ln is passed in so that the function
/// serves both constant evaluation and the tests.
template <class Ln>
constexpr std::size_t t5_bucket(long long n, std::size_t NB, long long max_distance, Ln ln) {
    const long long exact = static_cast<long long>(NB / 2);
    if (n < exact) return n < 0 ? 0 : static_cast<std::size_t>(n);
    const double f = ln(double(n) / double(exact)) / ln(double(max_distance) / double(exact)) * double(NB - NB / 2);
    const std::size_t b = static_cast<std::size_t>(exact) + static_cast<std::size_t>(f);
    return b < NB ? b : NB - 1;
}

/// The smallest distance of every bucket: lower[b] = min{n ≥ 0 : bucket(n) ≥ b} (lower[0] = 0).
template <std::size_t NB, std::intmax_t MaxDistance>
consteval std::array<std::intmax_t, NB> t5_lower_edges() {
    std::array<std::intmax_t, NB> lo{};
    std::size_t b = 1;
    for (long long n = 0; b < NB && n <= MaxDistance; ++n)
        while (b < NB && t5_bucket(n, NB, MaxDistance, [](double x) { return constexpr_log(x); }) >= b) lo[b++] = n;
    return lo;
}

/// 1 where i − j ≥ Lo, 0 where i − j < Lo, for integer positions: min(max(i − j − Lo + 1, 0), 1).
template <std::intmax_t Lo>
consteval auto distance_at_least() {
    return sym::min(sym::max(attn::q_idx - attn::k_idx + sym::c<1 - Lo>, sym::c<0>), sym::c<1>);
}

template <std::size_t NB, std::intmax_t MaxDistance>
consteval auto make_relative_bias() {
    static_assert(NB >= 4 && NB <= 58, "attn::relative_bias<NB, MaxDistance>: NB must be between 4 and 58 buckets");
    static_assert(MaxDistance >= static_cast<std::intmax_t>(NB),
                  "attn::relative_bias<NB, MaxDistance>: MaxDistance must be at least NB");
    static_assert(
        [] {
            constexpr auto lo = t5_lower_edges<NB, MaxDistance>();
            for (std::size_t b = 1; b < NB; ++b)
                if (lo[b] <= lo[b - 1]) return false;
            return true;
        }(),
        "attn::relative_bias<NB, MaxDistance>: some bucket holds no distance; raise MaxDistance or lower NB");
    // indicator of bucket b: [n ≥ lo_b] − [n ≥ lo_{b+1}] (bucket 0: 1 − [n ≥ lo_1], the last: [n ≥ lo_{NB−1}]).
    return []<std::size_t... Bs>(std::index_sequence<Bs...>) {
        auto term = []<std::size_t B>(std::integral_constant<std::size_t, B>) {
            constexpr auto l = t5_lower_edges<NB, MaxDistance>();
            if constexpr (B == 0)
                return attn::param<0> * (sym::c<1> - distance_at_least<l[1]>());
            else if constexpr (B + 1 == NB)
                return attn::param<static_cast<int>(B)> * distance_at_least<l[B]>();
            else
                return attn::param<static_cast<int>(B)> * (distance_at_least<l[B]>() - distance_at_least<l[B + 1]>());
        };
        return (attn::score + ... + term(std::integral_constant<std::size_t, Bs>{}));
    }(std::make_index_sequence<NB>{});
}

}  // namespace exprgrad::ops::detail::flex

namespace exprgrad::ops::attn {

/// T5's relative-position bias as a score modification: z = score + params[bucket(i − j)][h], a learnable table of
/// NB buckets per query head (params has NB arrays of H_q values; flex_attention_vjp's dparams[b] is the gradient
/// of bucket b's row). bucket(n): distances below NB/2 exact, logarithmic up to MaxDistance, NB − 1 beyond it, and
/// a key after the query (n < 0) falls in bucket 0 (T5's decoder form; meant with a causal mask). NB (4 to 58) and
/// MaxDistance ≥ NB are compile-time numbers; positions are integers, so the buckets are exact indicator
/// expressions (min/max clamps of i − j), ∂z/∂params[b] = [bucket(i − j) = b]. The kernels recognise it as a
/// relative bias (score plus a function of i − j): the expression is evaluated once per call, head and distance
/// (T_q + T_k − 1 of them), a score adds one table entry, and the backward sums dS per distance in each tile before
/// the bucket indicators are applied, so its cost per score is ALiBi's whatever NB. Example (T5's defaults in a decoder): `flex_attention_forward(q, k, v, attn::relative_bias<32, 128>,
/// attn::causal, table, opts)` with `table` 32 arrays of H_q zeros to start from.
template <std::size_t NB, std::intmax_t MaxDistance>
inline constexpr auto relative_bias = detail::flex::make_relative_bias<NB, MaxDistance>();

/// The bucket attn::relative_bias<NB, MaxDistance> gives a distance n = i − j (a run-time helper, e.g. to
/// initialise or read the table). Example: `attn::relative_bucket(3, 8, 20)` is 3, `attn::relative_bucket(100, 8,
/// 20)` is 7.
inline std::size_t relative_bucket(long long n, std::size_t NB, long long max_distance) {
    return detail::flex::t5_bucket(n, NB, max_distance, [](double x) { return std::log(x); });
}

}  // namespace exprgrad::ops::attn
