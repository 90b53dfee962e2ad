// flex attention's kernels, part 4: the backward pass. P is recomputed tile by tile from the forward's lse
// (no T×T storage), the modification's symbolic partials are evaluated in the same pass over the tile, and one
// task per (batch, key/value head) accumulates dk and dv over the query heads of its group, dq of those heads,
// and their parameter gradients, in a fixed order (results do not depend on the thread count).
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

#include <xsimd/xsimd.hpp>

#include "exprgrad/ops/detail/flex_modification.hpp"
#include "exprgrad/ops/detail/flex_problem.hpp"

namespace exprgrad::ops::detail::flex {

/// The distances of a block_q × block_k tile (block_q + block_k − 1), rounded up to whole batches.
template <class T>
inline constexpr std::size_t diag_len =
    (block_q + block_k - 1 + xsimd::batch<T>::size - 1) / xsimd::batch<T>::size * xsimd::batch<T>::size;

template <class T>
struct backward_scratch {
    buffer<T> S, dP, Pm, dS, vis, dK, dV, G;
    buffer<T> diag;  // a relative bias's per-distance dS sums of one pair (diag_len entries)
    std::vector<std::size_t> rbeg, rend, kbeg, kend, valid;
    bool whole = false;  // the last pair is visible everywhere: its products need no row or key limits
};

/// P, dS and the visibility of one (query block, key block) pair of query head h (key/value head g); sets the
/// pair's parameter sums dpar[I] (left alone when nothing is visible). The row spans (rbeg, rend) and key spans
/// (kbeg, kend) bound the visible entries for the products. False when no entry is visible.
template <class M, class T>
bool backward_pair(const problem<T>& P, std::size_t b, std::size_t h, std::size_t g, std::size_t qb, std::size_t j0,
                   std::size_t nc, const T* lse, backward_scratch<T>& w, double* dpar) {
    constexpr T ninf = -std::numeric_limits<T>::infinity();
    const std::size_t bh = b * P.Hq + h, i0 = qb * block_q, nr = std::min(block_q, P.Tq - i0);
    const std::size_t* n = P.nrow.data() + b * P.Tq + i0;
    // A row that sees no key (lse = −inf) contributes nothing, whatever its dout holds.
    const std::size_t kb = j0 / block_k;
    const tile_class cls = P.bm.at(b, h, qb, kb);  // the forward's block mask
    if (cls == tile_class::empty) return false;
    bool rows = false;
    for (std::size_t r = 0; r < nr; ++r) {
        w.valid[r] = n[r] > j0 && lse[i0 + r] != ninf ? std::min(nc, n[r] - j0) : 0;
        rows |= w.valid[r] > 0;
    }
    if (!rows) return false;
    const T* par = P.par.data() + h * P.np;
    const auto sv = P.sequence(b);
    // The raw scores: kept by the forward that just ran (the same product's values), or computed again.
    const T* S = w.S.data();
    if (P.scores)
        S = P.scores + P.score_tile(bh, qb, kb);
    else
        tiles::gemm_rows<false>(nr, block_k, P.d, P.Qs.data() + (bh * P.Tq + i0) * P.dp, P.dp,
                                P.Kt.data() + (g * P.nkb + kb) * P.d * block_k, block_k, w.S.data(), block_k);
    tiles::gemm_rows<false>(nr, block_k, P.dv, P.dop + (bh * P.Tq + i0) * P.dvp, P.dvp,
                            P.Vt.data() + (g * P.nkb + kb) * P.dv * block_k, block_k, w.dP.data(), block_k);
    std::array<typename M::Bt, M::np> acc;
    acc.fill(typename M::Bt(T(0)));
    if constexpr (M::relative) std::fill(w.diag.begin(), w.diag.begin() + diag_len<T>, T(0));
    for (std::size_t r = 0; r < nr; ++r) {
        const std::size_t valid = w.valid[r];
        auto row = [&]<class N, bool Full>() {
            typename N::row_args ra(b, h, i0 + r, par, sv);
            if constexpr (M::relative) {  // entry t = c − r + block_q − 1 of diag: the distance i − j
                ra.bias = P.rel_row(b, h, i0 + r);
                ra.diag = w.diag.data() + (block_q - 1 - r);
            }
            N::template backward_row<Full>(S + r * block_k, w.dP.data() + r * block_k, lse[i0 + r],
                                           P.Drow[bh * P.Tq + i0 + r], block_k, valid, ra, j0,
                                           w.Pm.data() + r * block_k, w.dS.data() + r * block_k,
                                           w.vis.data() + r * block_k, acc);
        };
        bool done = false;  // a partial tile evaluates the mask; a full one runs the unmasked row pass
        if constexpr (M::masked) {
            if (cls == tile_class::partial) {
                row.template operator()<M, false>();
                done = true;
            }
        }
        if (!done) row.template operator()<typename M::unmasked, true>();  // one instantiation per score modification
    }
    if constexpr (M::relative)
        M::diagonal_params(w.diag.data(), diag_len<T>, b, h, i0, block_q - 1, j0, par, dpar);
    else
        for (std::size_t I = 0; I < M::np; ++I) dpar[I] = static_cast<double>(xsimd::hadd(acc[I]));
    bool any = false, whole = true;
    for (std::size_t r = 0; r < nr; ++r) {
        const T* v = w.vis.data() + r * block_k;
        std::size_t lo = 0, hi = nc;
        while (lo < nc && v[lo] == T(0)) ++lo;
        while (hi > lo && v[hi - 1] == T(0)) --hi;
        w.rbeg[r] = lo;
        w.rend[r] = hi;
        any |= lo < hi;
        whole = whole && lo == 0 && hi == nc;
    }
    for (std::size_t c = 0; c < nc; ++c) {
        std::size_t lo = 0, hi = nr;
        while (lo < nr && w.vis[lo * block_k + c] == T(0)) ++lo;
        while (hi > lo && w.vis[(hi - 1) * block_k + c] == T(0)) --hi;
        w.kbeg[c] = lo;
        w.kend[c] = hi;
        whole = whole && lo == 0 && hi == nr;
    }
    w.whole = whole;
    return any;
}

/// Where pair (query head bh, query block qb, key block kb) leaves its parameter sums: one slot per pair, summed
/// in a fixed order after the pass, so that both task layouts below give the same bits.
template <class T>
double* pair_slot(const problem<T>& P, double* dpar, std::size_t bh, std::size_t qb, std::size_t kb) {
    return dpar + ((bh * P.nqb + qb) * P.nkb + kb) * P.np;
}

/// One key block of one (batch, key/value head) against every query block of every query head of the group:
/// its dk, dv rows are written; with G (the group's T_q rows per head) also G_i += Σ_j dS_ij k̂_j.
template <class M, class T>
void key_block_pass(const problem<T>& P, std::size_t b, std::size_t gl, std::size_t j0, const T* lse_all,
                    backward_scratch<T>& w, T* G, T* dk, T* dv, double* dpar) {
    const std::size_t g = b * P.Hkv + gl, dp = P.dp, dvp = P.dvp, nc = std::min(block_k, P.kend[b] - j0);
    std::fill(w.dK.begin(), w.dK.begin() + nc * dp, T(0));
    std::fill(w.dV.begin(), w.dV.begin() + nc * dvp, T(0));
    for (std::size_t hh = 0; hh < P.G; ++hh) {
        const std::size_t h = gl * P.G + hh, bh = b * P.Hq + h;
        for (std::size_t qb = 0; qb < P.nqb; ++qb) {
            if (!backward_pair<M>(P, b, h, g, qb, j0, nc, lse_all + bh * P.Tq, w,
                                  pair_slot(P, dpar, bh, qb, j0 / block_k)))
                continue;
            const std::size_t i0 = qb * block_q, nr = std::min(block_q, P.Tq - i0);
            const std::size_t* kb = w.whole ? nullptr : w.kbeg.data();
            const std::size_t* ke = w.whole ? nullptr : w.kend.data();
            tiles::gemm_acc<1, block_k>(nc, dvp, nr, w.Pm.data(), P.dop + (bh * P.Tq + i0) * dvp, dvp, w.dV.data(), dvp,
                                        kb, ke);
            tiles::gemm_acc<1, block_k>(nc, dp, nr, w.dS.data(), P.Qs.data() + (bh * P.Tq + i0) * dp, dp, w.dK.data(),
                                        dp, kb, ke);
            if (G)
                tiles::gemm_acc<block_k, 1>(nr, dp, nc, w.dS.data(), P.Kp.data() + (g * P.Tk + j0) * dp, dp,
                                            G + (hh * P.Tq + i0) * dp, dp, w.whole ? nullptr : w.rbeg.data(),
                                            w.whole ? nullptr : w.rend.data());
        }
    }
    for (std::size_t c = 0; c < nc; ++c) {
        const std::size_t j = j0 + c;
        std::copy(w.dK.data() + c * dp, w.dK.data() + c * dp + P.d, dk + (g * P.Tk + j) * P.d);
        std::copy(w.dV.data() + c * dvp, w.dV.data() + c * dvp + P.dv, dv + (g * P.Tk + j) * P.dv);
    }
}

/// dq rows [i0, i0 + nr) of query head bh from G: dq̂_i = s_i G_i.
template <class T>
void store_q(const problem<T>& P, std::size_t bh, std::size_t i0, std::size_t nr, const T* G, T* dq) {
    for (std::size_t r = 0; r < nr; ++r) {
        const std::size_t i = i0 + r;
        kernels::rows::scale_into(G + r * P.dp, P.srow[bh * P.Tq + i], dq + (bh * P.Tq + i) * P.d, P.d);
    }
}

/// The backward: dq, dk, dv of q̂, k̂ (before normalize_qk's VJP) and the parameters' sums per (query head,
/// query block, key block) into dpar [B·H_q][nqb][nkb][np] (zeroed by the caller). With at least as many
/// (batch, key/value head) units as threads, one task per unit does everything in one pass; with fewer, key
/// blocks run in parallel for dk, dv, then query blocks for dq. Each accumulator sees the same products in the
/// same order in both layouts, so the results do not depend on the thread count.
template <class M, class T>
void backward(const problem<T>& P, const attention_options& o, std::vector<backward_scratch<T>>& pool, const T* lse_all,
              T* dq, T* dk, T* dv, double* dpar) {
    std::size_t g_rows = 0;
    auto init = [&](backward_scratch<T>& w) {
        for (auto* x : {&w.S, &w.dP, &w.Pm, &w.dS, &w.vis}) grow(*x, block_q * block_k);
        grow(w.diag, diag_len<T>);
        grow(w.dK, block_k * P.dp);
        grow(w.dV, block_k * P.dvp);
        grow(w.G, g_rows * P.dp);
        grow(w.rbeg, block_q);
        grow(w.rend, block_q);
        grow(w.kbeg, block_k);
        grow(w.kend, block_k);
        grow(w.valid, block_q);
    };
    const std::size_t units = P.B * P.Hkv, threads = o.threads ? o.threads : kernels::num_threads();
    if (units >= threads) {
        g_rows = P.G * P.Tq;
        attention::run_units(units, attention::task_count(o, units), pool, init,
                             [&](std::size_t u, backward_scratch<T>& w) {
                                 const std::size_t b = u / P.Hkv, gl = u % P.Hkv;
                                 std::fill(w.G.begin(), w.G.begin() + g_rows * P.dp, T(0));
                                 for (std::size_t j0 = 0; j0 < P.kend[b]; j0 += block_k)
                                     key_block_pass<M>(P, b, gl, j0, lse_all, w, w.G.data(), dk, dv, dpar);
                                 for (std::size_t hh = 0; hh < P.G; ++hh)
                                     store_q(P, b * P.Hq + gl * P.G + hh, 0, P.Tq, w.G.data() + hh * P.Tq * P.dp, dq);
                             });
        return;
    }
    const std::size_t ku = units * P.nkb;
    attention::run_units(ku, attention::task_count(o, ku), pool, init, [&](std::size_t u, backward_scratch<T>& w) {
        const std::size_t bg = u / P.nkb, j0 = (u % P.nkb) * block_k, b = bg / P.Hkv;
        if (j0 < P.kend[b]) key_block_pass<M>(P, b, bg % P.Hkv, j0, lse_all, w, static_cast<T*>(nullptr), dk, dv, dpar);
    });
    g_rows = block_q;
    const std::size_t qu = P.B * P.Hq * P.nqb;
    attention::run_units(qu, attention::task_count(o, qu), pool, init, [&](std::size_t u, backward_scratch<T>& w) {
        const std::size_t bh = u / P.nqb, qb = u % P.nqb, b = bh / P.Hq, h = bh % P.Hq, g = b * P.Hkv + h / P.G;
        const std::size_t i0 = qb * block_q, nr = std::min(block_q, P.Tq - i0);
        std::fill(w.G.begin(), w.G.begin() + block_q * P.dp, T(0));
        for (std::size_t j0 = 0; j0 < P.kend[b]; j0 += block_k) {
            const std::size_t nc = std::min(block_k, P.kend[b] - j0);
            if (backward_pair<M>(P, b, h, g, qb, j0, nc, lse_all + bh * P.Tq, w,
                                 pair_slot(P, dpar, bh, qb, j0 / block_k)))
                tiles::gemm_acc<block_k, 1>(nr, P.dp, nc, w.dS.data(), P.Kp.data() + (g * P.Tk + j0) * P.dp, P.dp,
                                            w.G.data(), P.dp, w.whole ? nullptr : w.rbeg.data(),
                                            w.whole ? nullptr : w.rend.data());
        }
        store_q(P, bh, i0, nr, w.G.data(), dq);
    });
}

}  // namespace exprgrad::ops::detail::flex
