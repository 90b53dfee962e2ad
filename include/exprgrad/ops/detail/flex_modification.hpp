// flex attention's kernels, part 2: the score and mask modifications evaluated on one row of a score tile,
// xsimd batch by batch, with their symbolic derivatives (d(score_mod, attn::score), d(score_mod, param<I>)),
// each distinct subexpression once (sym::compiled_nodes over the union of the node lists).
#pragma once

#include <array>
#include <cstddef>
#include <limits>
#include <tuple>
#include <utility>

#include <xsimd/xsimd.hpp>

#include "exprgrad/ops/attn_placeholders.hpp"
#include "exprgrad/sym/evaluate.hpp"

namespace exprgrad::ops::detail::flex {

/// Score modification Mod and mask Mask compiled for the value type T.
template <class T, class Mod, class Mask>
struct modification {
    using Bt = xsimd::batch<T>;
    using mask_type = Mask;
    static constexpr std::size_t L = Bt::size;
    static constexpr std::size_t np = param_count_v<Mod>;
    static constexpr std::size_t nargs = attn::first_param + np;
    static constexpr bool masked = !mask_always_visible<Mask>();
    using dscore = decltype(sym::d(Mod{}, attn::score));
    template <std::size_t I>
    using dparam = decltype(sym::d(Mod{}, attn::param<static_cast<int>(I)>));

    template <class... Es>
    using nodes_of = sym::compiled_nodes<Bt, sym::node_list_t<Es...>>;
    // The forward needs the modified score (and the mask), the backward also every partial.
    using fwd_nodes = std::conditional_t<masked, nodes_of<Mod, Mask>, nodes_of<Mod>>;
    template <std::size_t... Is>
    static auto bwd_list(std::index_sequence<Is...>) {
        if constexpr (masked)
            return nodes_of<Mod, Mask, dscore, dparam<Is>...>{};
        else
            return nodes_of<Mod, dscore, dparam<Is>...>{};
    }
    using bwd_nodes = decltype(bwd_list(std::make_index_sequence<np>{}));

    /// The indices and parameters of one row: every argument but the score and k_idx.
    struct row_args {
        std::array<Bt, nargs> a;
        row_args(std::size_t b, std::size_t h, std::size_t i, const T* par) {
            a[1] = Bt(static_cast<T>(b));
            a[2] = Bt(static_cast<T>(h));
            a[3] = Bt(static_cast<T>(i));
            for (std::size_t p = 0; p < np; ++p) a[attn::first_param + p] = Bt(par[p]);
        }
    };

    static Bt lane_iota() {
        alignas(64) std::array<T, L> v;
        for (std::size_t l = 0; l < L; ++l) v[l] = static_cast<T>(l);
        return Bt::load_aligned(v.data());
    }

    /// Whether the keys of a batch are visible: k_idx < lim (the options' prefix) and mask > 0 (NaN: hidden).
    template <class Nodes>
    static auto visible(const typename Nodes::values& vals, const typename Nodes::values& consts, const Bt& kj,
                        const Bt& lim) {
        if constexpr (masked)
            return (kj < lim) & (Nodes::template get<Mask>(vals, consts) > Bt(T(0)));
        else
            return kj < lim;
    }

    /// Whether any key of a tile is visible to one of its rows: row r (query i0 + r) may see keys j0 + c for
    /// c < valid[r]. Evaluates the mask alone (no score is needed), so that a tile the mask hides entirely
    /// costs no matrix product: under a causal or sliding-window mask_mod most tiles are skipped this way.
    static bool any_visible(std::size_t b, std::size_t h, std::size_t i0, std::size_t nr, std::size_t j0,
                            const std::size_t* valid, const T* par) {
        if constexpr (!masked) {
            for (std::size_t r = 0; r < nr; ++r)
                if (valid[r] > 0) return true;
            return false;
        } else {
            using N = nodes_of<Mask>;
            const auto consts = N::constants();
            const Bt iota = lane_iota();
            for (std::size_t r = 0; r < nr; ++r) {
                if (valid[r] == 0) continue;
                row_args ra(b, h, i0 + r, par);
                ra.a[0] = Bt(T(0));
                const Bt lim(static_cast<T>(j0 + valid[r]));
                for (std::size_t c = 0; c < valid[r]; c += L) {
                    const Bt kj = iota + Bt(static_cast<T>(j0 + c));
                    ra.a[4] = kj;
                    const auto vals = N::run(ra.a, consts);
                    if (xsimd::any((kj < lim) & (N::template get<Mask>(vals, consts) > Bt(T(0))))) return true;
                }
            }
            return false;
        }
    }

    /// The number of keys j < n that the mask lets row i of head h see (for scale policies that depend on it).
    static std::size_t count_visible(std::size_t b, std::size_t h, std::size_t i, std::size_t n, const T* par) {
        if constexpr (!masked) {
            return n;
        } else {
            using N = nodes_of<Mask>;
            const auto consts = N::constants();
            const Bt iota = lane_iota(), lim(static_cast<T>(n)), one(T(1)), zero(T(0));
            row_args ra(b, h, i, par);
            ra.a[0] = zero;
            double seen = 0;
            for (std::size_t c = 0; c < n; c += L) {
                const Bt kj = iota + Bt(static_cast<T>(c));
                ra.a[4] = kj;
                const auto vals = N::run(ra.a, consts);
                seen += static_cast<double>(
                    xsimd::hadd(xsimd::select((kj < lim) & (N::template get<Mask>(vals, consts) > zero), one, zero)));
            }
            return static_cast<std::size_t>(seen);
        }
    }

    /// Row s of a score tile (block_k = a multiple of L entries, for keys j0, j0 + 1, ...): s[c] ← score_mod(s[c])
    /// where key j0 + c is visible (c < valid and mask_mod > 0), −inf elsewhere.
    static void forward_row(T* s, std::size_t width, std::size_t valid, row_args& ra, std::size_t j0) {
        constexpr T ninf = -std::numeric_limits<T>::infinity();
        const auto consts = fwd_nodes::constants();
        const Bt iota = lane_iota(), lim(static_cast<T>(j0 + valid));
        const std::size_t end = (valid + L - 1) / L * L;
        for (std::size_t c = 0; c < end; c += L) {
            ra.a[0] = Bt::load_unaligned(s + c);
            const Bt kj = iota + Bt(static_cast<T>(j0 + c));
            ra.a[4] = kj;
            const auto vals = fwd_nodes::run(ra.a, consts);
            const Bt m = fwd_nodes::template get<Mod>(vals, consts);
            xsimd::select(visible<fwd_nodes>(vals, consts, kj, lim), m, Bt(ninf)).store_unaligned(s + c);
        }
        std::fill(s + end, s + width, ninf);
    }

    /// The fused backward of one row: from the raw scaled scores s and dp = dout_i·v_j, with the forward's lse
    /// and D = dout_i·out_i, writes p = softmax probabilities, ds = ∂L/∂score (through the modification) and
    /// vis = 1 where visible (0 elsewhere, and past `valid`); adds Σ_j dS'_ij ∂mod/∂param_I into acc[I].
    static void backward_row(const T* s, const T* dp, T lse, T D, std::size_t width, std::size_t valid, row_args& ra,
                             std::size_t j0, T* p, T* ds, T* vis, std::array<Bt, np>& acc) {
        const auto consts = bwd_nodes::constants();
        const Bt iota = lane_iota(), lim(static_cast<T>(j0 + valid)), zero(T(0)), one(T(1));
        const Bt vlse(lse), vD(D);
        const std::size_t end = (valid + L - 1) / L * L;
        for (std::size_t c = 0; c < end; c += L) {
            ra.a[0] = Bt::load_unaligned(s + c);
            const Bt kj = iota + Bt(static_cast<T>(j0 + c));
            ra.a[4] = kj;
            const auto vals = bwd_nodes::run(ra.a, consts);
            const auto on = visible<bwd_nodes>(vals, consts, kj, lim);
            const Bt pe = xsimd::select(on, xsimd::exp(bwd_nodes::template get<Mod>(vals, consts) - vlse), zero);
            // dS' = ∂L/∂(modified score) = p (dP − D); masked entries exactly 0 (their dP may be NaN).
            const Bt dsm = xsimd::select(on, pe * (Bt::load_unaligned(dp + c) - vD), zero);
            pe.store_unaligned(p + c);
            xsimd::select(on, dsm * bwd_nodes::template get<dscore>(vals, consts), zero).store_unaligned(ds + c);
            xsimd::select(on, one, zero).store_unaligned(vis + c);
            [&]<std::size_t... Is>(std::index_sequence<Is...>) {
                ((acc[Is] += xsimd::select(on, dsm * bwd_nodes::template get<dparam<Is>>(vals, consts), zero)), ...);
            }
            (std::make_index_sequence<np>{});
        }
        std::fill(p + end, p + width, T(0));
        std::fill(ds + end, ds + width, T(0));
        std::fill(vis + end, vis + width, T(0));
    }
};

}  // namespace exprgrad::ops::detail::flex
