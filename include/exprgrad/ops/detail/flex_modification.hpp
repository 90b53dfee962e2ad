// flex attention's kernels, part 2: the score and mask modifications evaluated on one row of a score tile,
// xsimd batch by batch, with their symbolic derivatives (d(score_mod, attn::score), d(score_mod, param<I>)),
// each distinct subexpression once (sym::compiled_nodes over the union of the node lists).
#pragma once

#include <array>
#include <cstddef>
#include <limits>
#include <tuple>
#include <type_traits>
#include <utility>

#include <xsimd/xsimd.hpp>

#include "exprgrad/kernels/avx512_dispatch.hpp"
#include "exprgrad/kernels/row_lanes.hpp"
#include "exprgrad/ops/attn_placeholders.hpp"
#include "exprgrad/ops/attn_sequence.hpp"
#include "exprgrad/ops/detail/flex_avx512.hpp"
#include "exprgrad/sym/evaluate.hpp"

namespace exprgrad::ops::detail::flex {

/// E with every occurrence of the node From replaced by To, no simplification: only to ask what E reads besides
/// From.
template <class E, class From, class To>
struct replace_node {
    using type = std::conditional_t<std::is_same_v<E, From>, To, E>;
};
template <class Op, class... Cs, class From, class To>
struct replace_node<sym::Node<Op, Cs...>, From, To> {
    using type = std::conditional_t<std::is_same_v<sym::Node<Op, Cs...>, From>, To,
                                    sym::Node<Op, typename replace_node<Cs, From, To>::type...>>;
};

/// Whether E reads the positions only through their difference q_idx − k_idx (the node attn::q_idx − attn::k_idx).
template <class E>
inline constexpr bool reads_positions_as_distance_v = [] {
    using R = typename replace_node<E, std::remove_cvref_t<decltype(attn::q_idx - attn::k_idx)>, sym::Const<0>>::type;
    return !reads_v<R, 3> && !reads_v<R, 4>;
}();

/// Whether E reaches the score (var 0) only through sums, differences and negations from its root, so that E is
/// ±score + ... + B(the rest). With ∂E/∂score = 1 this makes E exactly score + E(score = 0). The derivative alone
/// cannot tell: step, sign and the comparisons have a zero derivative by definition, so score + p·step(score)
/// also has ∂/∂score = 1 while depending on the score elsewhere.
template <class E>
inline constexpr bool score_only_summed_v = !reads_v<E, 0>;
template <>
inline constexpr bool score_only_summed_v<sym::Var<0>> = true;
template <class A, class B>
inline constexpr bool score_only_summed_v<sym::Node<sym::op::Add, A, B>> =
    score_only_summed_v<A> && score_only_summed_v<B>;
template <class A, class B>
inline constexpr bool score_only_summed_v<sym::Node<sym::op::Sub, A, B>> =
    score_only_summed_v<A> && score_only_summed_v<B>;
template <class A>
inline constexpr bool score_only_summed_v<sym::Node<sym::op::Neg, A>> = score_only_summed_v<A>;

/// E as the kernels evaluate it: every quotient of a score-dependent x by a compile-time constant c
/// (x / fc<c>; sym already writes x / Const<n, m> as a product) becomes x · (1/c), the reciprocal computed in
/// double, so a soft-capping `C·tanh(score / C)` costs a multiply per score instead of a division. The product
/// is within an ulp or two of the quotient (the tests' tolerances hold). Left as divisions: quotients of
/// positions, parameters and sequence ids (a bucket boundary computed from them stays exact); any quotient
/// under step, less or sign, whose output an ulp can flip (score · less(score / 0.3, 15) at score 4.5: the
/// quotient is 14.999999f, the product 15); and c = 0 or |c| < 1/FLT_MAX, whose reciprocal is not finite in
/// float (0 · inf would turn a zero score into NaN).
template <class E>
struct by_reciprocal {
    using type = E;
};
template <class E>
using by_reciprocal_t = typename by_reciprocal<E>::type;
template <class Op, class... Cs>
struct by_reciprocal<sym::Node<Op, Cs...>> {
    using type = sym::Node<Op, by_reciprocal_t<Cs>...>;
};
// Discontinuous at a threshold: kept as written.
template <class A>
struct by_reciprocal<sym::Node<sym::op::Step, A>> {
    using type = sym::Node<sym::op::Step, A>;
};
template <class A>
struct by_reciprocal<sym::Node<sym::op::Sign, A>> {
    using type = sym::Node<sym::op::Sign, A>;
};
template <class A, class B>
struct by_reciprocal<sym::Node<sym::op::Less, A, B>> {
    using type = sym::Node<sym::op::Less, A, B>;
};
// 1/C finite in float: |C| ≥ 1/FLT_MAX (checked before 1/C is formed, which is no constant for C = 0).
template <double C>
inline constexpr bool reciprocal_finite_v = (C < 0 ? -C : C) >= 1.0 / 3.4028234663852886e38;
template <class A, double C>
    requires(reads_v<A, 0> && reciprocal_finite_v<C>)
struct by_reciprocal<sym::Node<sym::op::Div, A, sym::FConst<C>>> {
    using type = sym::Node<sym::op::Mul, by_reciprocal_t<A>, sym::FConst<1.0 / C>>;
};

/// Score modification Mod and mask Mask compiled for the value type T.
template <class T, class Mod, class Mask>
struct modification {
    using Bt = xsimd::batch<T>;
    using mask_type = Mask;
    /// The same score modification without a mask: what a tile the block mask finds fully visible runs (one
    /// instantiation of its row passes per score modification, whatever the mask).
    using unmasked = modification<T, Mod, sym::Const<1, 1>>;
    static constexpr std::size_t L = Bt::size;
    static constexpr std::size_t np = param_count_v<Mod>;
    static constexpr bool sequence = reads_sequence_v<Mask>;
    static constexpr bool key_docs = reads_v<Mask, attn::first_sequence + 3>;
    static constexpr std::size_t nargs = sequence ? attn::first_sequence + 4 : attn::first_param + np;
    static constexpr bool masked = !mask_always_visible<Mask>();
    using dscore_exact = decltype(sym::d(Mod{}, attn::score));
    // What the row passes evaluate: Mod and its partials with constant quotients of the score as products
    // (by_reciprocal); a relative bias keeps its form (its table is built once per call).
    template <class E>
    using evaluated = std::conditional_t<std::is_same_v<dscore_exact, sym::Const<1>>, E, by_reciprocal_t<E>>;
    using mod = evaluated<Mod>;
    using dscore = evaluated<dscore_exact>;
    template <std::size_t I>
    using dparam = evaluated<decltype(sym::d(Mod{}, attn::param<static_cast<int>(I)>))>;
    /// A relative bias: score_mod = score + B(b, h, i − j, params) (∂/∂score is the constant 1 and the positions
    /// are read only as q_idx − k_idx; ALiBi, T5's bucketed table). Then B is tabulated once per call and head
    /// for every distance (tabulate), the forward adds the table's entries to the scores, and the backward sums
    /// dS along the diagonals of each tile (one sum per distance) and evaluates ∂B/∂param_I once per distance
    /// (diagonal_params) instead of once per score.
    static constexpr bool relative = !identity_mod_v<Mod> && std::is_same_v<dscore_exact, sym::Const<1>> &&
                                     score_only_summed_v<Mod> && reads_positions_as_distance_v<Mod>;
    /// Whether the relative bias table depends on the batch index (one table per batch entry and head).
    static constexpr bool relative_per_batch = reads_v<Mod, 1>;
    /// Whether the rows of a tile that needs no mask evaluation take the 512-bit kernels (flex_avx512.hpp) where
    /// kernels::avx512_enabled(): float, no mask here (the block mask's full tiles and modifications without a
    /// mask), and a relative bias or a parameter-free modification of the score alone. The forward calls them
    /// itself (flex_forward.hpp, the row pass fused with its exponentials), the backward through backward_row.
    static constexpr bool wide16 = std::is_same_v<T, float> && !masked &&
                                   (relative || (np == 0 && avx512::pointwise_v<mod, dscore>));

    template <class... Es>
    using nodes_of = sym::compiled_nodes<Bt, sym::node_list_t<Es...>>;
    // The forward needs the modified score (and the mask), the backward also every partial.
    using fwd_nodes = std::conditional_t<masked, nodes_of<mod, Mask>, nodes_of<mod>>;
    using fwd_full_nodes = nodes_of<mod>;  // a tile the block mask finds fully visible: no mask evaluation
    template <std::size_t... Is>
    static auto bwd_list(std::index_sequence<Is...>) {
        if constexpr (masked)
            return nodes_of<mod, Mask, dscore, dparam<Is>...>{};
        else
            return nodes_of<mod, dscore, dparam<Is>...>{};
    }
    using bwd_nodes = decltype(bwd_list(std::make_index_sequence<np>{}));
    template <std::size_t... Is>
    static auto bwd_full_list(std::index_sequence<Is...>) {
        return nodes_of<mod, dscore, dparam<Is>...>{};
    }
    using bwd_full_nodes = decltype(bwd_full_list(std::make_index_sequence<np>{}));

    /// The indices and parameters of one row: every argument but the score and k_idx.
    struct row_args {
        std::array<Bt, nargs> a;
        const T* k_doc = nullptr;
        const T* bias = nullptr;  // relative: B at (i, j) for j = 0, 1, ... (problem::rel_row)
        T* diag = nullptr;        // relative, backward: the tile's per-distance dS sums, at this row's offset
        row_args(std::size_t b, std::size_t h, std::size_t i, const T* par, const sequence_view<T>& sv) {
            a[1] = Bt(static_cast<T>(b));
            a[2] = Bt(static_cast<T>(h));
            a[3] = Bt(static_cast<T>(i));
            for (std::size_t p = 0; p < np; ++p) a[attn::first_param + p] = Bt(par[p]);
            if constexpr (sequence) {
                constexpr std::size_t s = attn::first_sequence;
                a[s] = Bt(sv.q_len);
                a[s + 1] = Bt(sv.k_len);
                a[s + 2] = Bt(sv.q_doc ? sv.q_doc[i] : T(0));
                a[s + 3] = Bt(T(0));
                k_doc = sv.k_doc;
            }
        }
        /// The keys j .. j + L − 1 of the next batch (their positions kj).
        void keys(const Bt& kj, std::size_t j) {
            a[4] = kj;
            if constexpr (key_docs) a[attn::first_sequence + 3] = Bt::load_unaligned(k_doc + j);
        }
    };

    static Bt lane_iota() {
        alignas(64) std::array<T, L> v;
        for (std::size_t l = 0; l < L; ++l) v[l] = static_cast<T>(l);
        return Bt::load_aligned(v.data());
    }

    /// Whether the keys of a batch are visible: k_idx < lim (the options' prefix) and, unless the block mask found
    /// the tile fully visible (Full), mask > 0 (NaN: hidden).
    template <bool Full, class Nodes>
    static auto visible(const typename Nodes::values& vals, const typename Nodes::values& consts, const Bt& kj,
                        const Bt& lim) {
        if constexpr (masked && !Full)
            return (kj < lim) & (Nodes::template get<Mask>(vals, consts) > Bt(T(0)));
        else
            return kj < lim;
    }

    /// The number of keys j0 <= j < j0 + n that the mask lets row i of head h see: the per-element test of the
    /// block mask's fallback (masks it cannot bound by intervals) and of scale policies that depend on n.
    static std::size_t count_visible(std::size_t b, std::size_t h, std::size_t i, std::size_t j0, std::size_t n,
                                     const T* par, const sequence_view<T>& sv) {
        if constexpr (!masked) {
            return n;
        } else {
            using N = nodes_of<Mask>;
            const auto consts = N::constants();
            const Bt iota = lane_iota(), lim(static_cast<T>(j0 + n)), one(T(1)), zero(T(0));
            row_args ra(b, h, i, par, sv);
            ra.a[0] = zero;
            double seen = 0;
            for (std::size_t c = 0; c < n; c += L) {
                const Bt kj = iota + Bt(static_cast<T>(j0 + c));
                ra.keys(kj, j0 + c);
                const auto vals = N::run(ra.a, consts);
                seen += static_cast<double>(
                    xsimd::hadd(xsimd::select((kj < lim) & (N::template get<Mask>(vals, consts) > zero), one, zero)));
            }
            return static_cast<std::size_t>(seen);
        }
    }

    /// Relative: whether the keys kj (from key j) are visible: kj < lim and, for a partly visible tile, mask > 0.
    template <bool Full>
    static auto mask_visible(row_args& ra, const Bt& kj, const Bt& lim, std::size_t j) {
        if constexpr (masked && !Full) {
            using N = nodes_of<Mask>;
            ra.keys(kj, j);
            const auto consts = N::constants();
            const auto vals = N::run(ra.a, consts);
            return (kj < lim) & (N::template get<Mask>(vals, consts) > Bt(T(0)));
        } else {
            return kj < lim;
        }
    }

    /// Relative: out[m] = B(b, h, distance Tq − 1 − m, params of head h) for m < n (a multiple of L): the table
    /// problem::rel_row reads, entry m of it being key j of query i where m = j − i + Tq − 1.
    static void tabulate(T* out, std::size_t n, std::size_t b, std::size_t h, std::size_t Tq, const T* par) {
        using N = nodes_of<mod>;
        const auto consts = N::constants();
        row_args ra(b, h, Tq - 1, par, sequence_view<T>{});
        ra.a[0] = Bt(T(0));
        const Bt iota = lane_iota();
        for (std::size_t m = 0; m < n; m += L) {
            ra.a[4] = iota + Bt(static_cast<T>(m));
            N::template get<mod>(N::run(ra.a, consts), consts).store_unaligned(out + m);
        }
    }

    /// Relative, after a tile's backward rows: dpar[I] = Σ_t diag[t] ∂B/∂param_I at distance i0 + span − j0 − t,
    /// for t < n (a multiple of L; diag[t] the sum of dS over the tile's entries at that distance).
    static void diagonal_params(const T* diag, std::size_t n, std::size_t b, std::size_t h, std::size_t i0,
                                std::size_t span, std::size_t j0, const T* par, double* dpar) {
        if constexpr (np > 0) {
            using N = decltype([]<std::size_t... Is>(std::index_sequence<Is...>) {
                return nodes_of<dparam<Is>...>{};
            }(std::make_index_sequence<np>{}));
            const auto consts = N::constants();
            row_args ra(b, h, i0 + span, par, sequence_view<T>{});
            ra.a[0] = Bt(T(0));
            const Bt iota = lane_iota();
            std::array<Bt, np> acc;
            acc.fill(Bt(T(0)));
            for (std::size_t t = 0; t < n; t += L) {
                ra.a[4] = iota + Bt(static_cast<T>(j0 + t));
                const auto vals = N::run(ra.a, consts);
                const Bt dg = Bt::load_unaligned(diag + t);
                // Distances no visible score reaches (masked, padding, past the tile) have dg = 0 and must
                // add nothing, also where ∂B/∂param is infinite or NaN there (a log bias at a masked
                // distance), as the general path's select on visibility does. A NaN sum still propagates
                // (== is false for NaN; xsimd's != is the ordered comparison, false for NaN too).
                const auto unreached = dg == Bt(T(0));
                [&]<std::size_t... Is>(std::index_sequence<Is...>) {
                    ((acc[Is] += xsimd::select(unreached, Bt(T(0)), dg * N::template get<dparam<Is>>(vals, consts))),
                     ...);
                }(std::make_index_sequence<np>{});
            }
            for (std::size_t I = 0; I < np; ++I) dpar[I] = static_cast<double>(xsimd::hadd(acc[I]));
        }
    }

    /// All: every key of the row is visible (a full tile and valid = width): no visibility test per batch.
    template <bool All, class On>
    static Bt pick(const On& on, const Bt& x, const Bt& y) {
        if constexpr (All)
            return x;
        else
            return xsimd::select(on, x, y);
    }
    template <bool Full, bool All>
    static auto visible_keys(row_args& ra, const Bt& kj, const Bt& lim, std::size_t j) {
        if constexpr (All)
            return xsimd::batch_bool<T>(true);
        else
            return mask_visible<Full>(ra, kj, lim, j);
    }

    /// Row s of a score tile (block_k = a multiple of L entries, for keys j0, j0 + 1, ...): s[c] ← score_mod(x[c])
    /// where key j0 + c is visible (c < valid and, unless Full, mask_mod > 0), −inf elsewhere, x being the raw scores
    /// (s itself, or the copy the forward keeps for the backward: problem::scores). Returns the row's
    /// maximum as kernels::rows::max gives it (NaN when an entry is NaN, −inf when none is visible), found in
    /// the same pass (a second pass over the row cost about 3 % of a forward).
    template <bool Full>
    static T forward_row(const T* x, T* s, std::size_t width, std::size_t valid, row_args& ra, std::size_t j0) {
        if constexpr (Full) {
            if (valid == width) return forward_row_impl<true, true>(x, s, width, valid, ra, j0);
        }
        return forward_row_impl<Full, false>(x, s, width, valid, ra, j0);
    }
    template <bool Full, bool All>
    static T forward_row_impl(const T* x, T* s, std::size_t width, std::size_t valid, row_args& ra, std::size_t j0) {
        if constexpr (relative)
            return forward_row_relative<Full, All>(x, s, width, valid, ra, j0);
        else
            return forward_row_general<Full, All>(x, s, width, valid, ra, j0);
    }
    /// The running maximum of a row pass and whether a NaN was met (maxps drops a NaN operand).
    struct running_max {
        Bt m = Bt(-std::numeric_limits<T>::infinity());
        xsimd::batch_bool<T> nan = xsimd::batch_bool<T>(false);
        void add(const Bt& z) {
            nan = nan | xsimd::isnan(z);
            m = xsimd::max(m, z);
        }
        T value() const {
            return xsimd::any(nan) ? std::numeric_limits<T>::quiet_NaN() : kernels::rows::hmax(m);
        }
    };
    template <bool Full, bool All>
    static T forward_row_relative(const T* x, T* s, std::size_t width, std::size_t valid, row_args& ra,
                                  std::size_t j0) {
        constexpr T ninf = -std::numeric_limits<T>::infinity();
        const Bt iota = lane_iota(), lim(static_cast<T>(j0 + valid));
        const std::size_t end = (valid + L - 1) / L * L;
        running_max mx;
        for (std::size_t c = 0; c < end; c += L) {
            const Bt kj = iota + Bt(static_cast<T>(j0 + c));
            const Bt z = Bt::load_unaligned(x + c) + Bt::load_unaligned(ra.bias + j0 + c);
            const Bt out = pick<All>(visible_keys<Full, All>(ra, kj, lim, j0 + c), z, Bt(ninf));
            out.store_unaligned(s + c);
            mx.add(out);
        }
        std::fill(s + end, s + width, ninf);
        return mx.value();
    }
    template <bool Full, bool All>
    static T forward_row_general(const T* x, T* s, std::size_t width, std::size_t valid, row_args& ra,
                                 std::size_t j0) {
        using N = std::conditional_t<Full, fwd_full_nodes, fwd_nodes>;
        constexpr T ninf = -std::numeric_limits<T>::infinity();
        const auto consts = N::constants();
        const Bt iota = lane_iota(), lim(static_cast<T>(j0 + valid));
        const std::size_t end = (valid + L - 1) / L * L;
        running_max mx;
        for (std::size_t c = 0; c < end; c += L) {
            ra.a[0] = Bt::load_unaligned(x + c);
            const Bt kj = iota + Bt(static_cast<T>(j0 + c));
            if constexpr (!Full)
                ra.keys(kj, j0 + c);
            else if constexpr (!All || reads_v<Mod, 4>)
                ra.a[4] = kj;
            const auto vals = N::run(ra.a, consts);
            const Bt m = N::template get<mod>(vals, consts);
            Bt out = m;
            if constexpr (!All) out = xsimd::select(visible<Full, N>(vals, consts, kj, lim), m, Bt(ninf));
            out.store_unaligned(s + c);
            mx.add(out);
        }
        std::fill(s + end, s + width, ninf);
        return mx.value();
    }

    /// The fused backward of one row: from the raw scaled scores s and dp = dout_i·v_j, with the forward's lse
    /// and D = dout_i·out_i, writes p = softmax probabilities, ds = ∂L/∂score (through the modification) and
    /// vis = 1 where visible (0 elsewhere, and past `valid`); adds Σ_j dS'_ij ∂mod/∂param_I into acc[I]. Full: the
    /// block mask found the tile fully visible (the mask is not evaluated).
    template <bool Full>
    static void backward_row(const T* s, const T* dp, T lse, T D, std::size_t width, std::size_t valid, row_args& ra,
                             std::size_t j0, T* p, T* ds, T* vis, std::array<Bt, np>& acc) {
#if EXPRGRAD_HAS_AVX512_KERNELS
        if constexpr (wide16) {
            if (kernels::avx512_enabled())
                return avx512::backward_row<mod, dscore, relative>(s, relative ? ra.bias + j0 : nullptr, dp, lse, D,
                                                                   width, valid, p, ds, vis,
                                                                   np > 0 ? ra.diag : nullptr);
        }
#endif
        if constexpr (Full) {
            if (valid == width) return backward_row_impl<true, true>(s, dp, lse, D, width, valid, ra, j0, p, ds, vis, acc);
        }
        backward_row_impl<Full, false>(s, dp, lse, D, width, valid, ra, j0, p, ds, vis, acc);
    }
    template <bool Full, bool All>
    static void backward_row_impl(const T* s, const T* dp, T lse, T D, std::size_t width, std::size_t valid,
                                  row_args& ra, std::size_t j0, T* p, T* ds, T* vis, std::array<Bt, np>& acc) {
        if constexpr (relative)
            backward_row_relative<Full, All>(s, dp, lse, D, width, valid, ra, j0, p, ds, vis);
        else
            backward_row_general<Full, All>(s, dp, lse, D, width, valid, ra, j0, p, ds, vis, acc);
    }
    /// Relative: ∂z/∂score = 1, so dS = dS'; the parameters' sums go through ra.diag (added to per distance).
    template <bool Full, bool All>
    static void backward_row_relative(const T* s, const T* dp, T lse, T D, std::size_t width, std::size_t valid,
                                      row_args& ra, std::size_t j0, T* p, T* ds, T* vis) {
        const Bt iota = lane_iota(), lim(static_cast<T>(j0 + valid)), zero(T(0)), one(T(1));
        const Bt vlse(lse), vD(D);
        const std::size_t end = (valid + L - 1) / L * L;
        for (std::size_t c = 0; c < end; c += L) {
            const Bt kj = iota + Bt(static_cast<T>(j0 + c));
            const auto on = visible_keys<Full, All>(ra, kj, lim, j0 + c);
            const Bt z = Bt::load_unaligned(s + c) + Bt::load_unaligned(ra.bias + j0 + c);
            const Bt pe = pick<All>(on, xsimd::exp(z - vlse), zero);
            const Bt dsm = pick<All>(on, pe * (Bt::load_unaligned(dp + c) - vD), zero);
            pe.store_unaligned(p + c);
            dsm.store_unaligned(ds + c);
            pick<All>(on, one, zero).store_unaligned(vis + c);
            if constexpr (np > 0) (Bt::load_unaligned(ra.diag + c) + dsm).store_unaligned(ra.diag + c);
        }
        std::fill(p + end, p + width, T(0));
        std::fill(ds + end, ds + width, T(0));
        std::fill(vis + end, vis + width, T(0));
    }
    template <bool Full, bool All>
    static void backward_row_general(const T* s, const T* dp, T lse, T D, std::size_t width, std::size_t valid,
                                     row_args& ra, std::size_t j0, T* p, T* ds, T* vis, std::array<Bt, np>& acc) {
        using N = std::conditional_t<Full, bwd_full_nodes, bwd_nodes>;
        const auto consts = N::constants();
        const Bt iota = lane_iota(), lim(static_cast<T>(j0 + valid)), zero(T(0)), one(T(1));
        const Bt vlse(lse), vD(D);
        const std::size_t end = (valid + L - 1) / L * L;
        for (std::size_t c = 0; c < end; c += L) {
            ra.a[0] = Bt::load_unaligned(s + c);
            const Bt kj = iota + Bt(static_cast<T>(j0 + c));
            if constexpr (!Full)
                ra.keys(kj, j0 + c);
            else if constexpr (!All || reads_v<Mod, 4>)
                ra.a[4] = kj;
            const auto vals = N::run(ra.a, consts);
            const auto on = [&] {
                if constexpr (All)
                    return xsimd::batch_bool<T>(true);
                else
                    return visible<Full, N>(vals, consts, kj, lim);
            }();
            const Bt pe = pick<All>(on, xsimd::exp(N::template get<mod>(vals, consts) - vlse), zero);
            // dS' = ∂L/∂(modified score) = p (dP − D); masked entries exactly 0 (their dP may be NaN).
            const Bt dsm = pick<All>(on, pe * (Bt::load_unaligned(dp + c) - vD), zero);
            pe.store_unaligned(p + c);
            pick<All>(on, dsm * N::template get<dscore>(vals, consts), zero).store_unaligned(ds + c);
            pick<All>(on, one, zero).store_unaligned(vis + c);
            [&]<std::size_t... Is>(std::index_sequence<Is...>) {
                ((acc[Is] += pick<All>(on, dsm * N::template get<dparam<Is>>(vals, consts), zero)), ...);
            }
            (std::make_index_sequence<np>{});
        }
        std::fill(p + end, p + width, T(0));
        std::fill(ds + end, ds + width, T(0));
        std::fill(vis + end, vis + width, T(0));
    }
};

}  // namespace exprgrad::ops::detail::flex
