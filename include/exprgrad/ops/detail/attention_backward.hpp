// attention's kernels, part 5: the backward pass, recomputing P block by block from the forward's lse
// (no T×T storage), one task per (head, key block) or per (head, query block).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "exprgrad/ops/detail/attention_checks.hpp"

namespace exprgrad::ops::detail::attention {

template <class T>
struct backward_scratch {
    buffer<T> Pm, dS, dK, dV, G;
    std::vector<std::size_t> zero, valid, kbeg, kfin;
};

/// P and dS of one (query block, key block) pair of head bh; false when no row of the block attends a key
/// of the key block. Also sets the per-row and per-key limits of the masked accumulations.
template <class T>
bool backward_pair(const problem<T>& P, std::size_t bh, std::size_t qb, std::size_t j0, std::size_t nc, const T* lse,
                   backward_scratch<T>& w, bool& partial) {
    const std::size_t b = bh / P.H, i0 = qb * block_q, nr = std::min(block_q, P.Tq - i0);
    const std::size_t* n = P.nrow.data() + b * P.Tq + i0;
    bool any = false;
    partial = false;
    for (std::size_t r = 0; r < nr; ++r) {
        w.valid[r] = n[r] > j0 ? std::min(nc, n[r] - j0) : 0;
        any |= w.valid[r] > 0;
        partial |= w.valid[r] < nc;
    }
    if (!any) return false;
    const std::size_t kb = j0 / block_k;
    const T* Qs = P.Qs.data() + (bh * P.Tq + i0) * P.dp;
    const T* Kt = P.Kt.data() + (bh * P.nkb + kb) * P.d * block_k;
    const T* dO = P.dop + P.dop_rows.at(bh, P.H, i0);
    const std::size_t ldo = P.dop_rows.t_step;
    const T* Vt = P.Vt.data() + (bh * P.nkb + kb) * P.dv * block_k;
    bool tile_done = false;
#if EXPRGRAD_HAS_AVX512_KERNELS
    if constexpr (std::is_same_v<T, float>) {
        if (::exprgrad::kernels::avx512_enabled()) {
            // Scores, P, dP and dS in registers, 4 rows at a time.
            const float* D = P.Drow.data() + bh * P.Tq + i0;
            for_row_tiles(nr, [&]<int R>(std::size_t r) {
                backward_tile16<R>(P.d, Qs + r * P.dp, P.dp, Kt, P.dv, dO + r * ldo, ldo, Vt, w.valid.data() + r,
                                   lse + i0 + r, D + r, w.Pm.data() + r * block_k, w.dS.data() + r * block_k);
            });
            tile_done = true;
        }
    }
#endif
    if (!tile_done) {
        gemm_rows<false>(nr, block_k, P.d, Qs, P.dp, Kt, block_k, w.Pm.data(), block_k);
        gemm_rows<false>(nr, block_k, P.dv, dO, ldo, Vt, block_k, w.dS.data(), block_k);
        for (std::size_t r = 0; r < nr; ++r) {
            const std::size_t valid = w.valid[r];
            T* p = w.Pm.data() + r * block_k;
            T* ds = w.dS.data() + r * block_k;
            if (valid > 0) {
                rows::exp_shifted(p, lse[i0 + r], p, valid);  // p = exp(s·q̂·k̂ − lse): the forward's softmax
                rows::softmax_vjp(p, ds, P.Drow[bh * P.Tq + i0 + r], ds, valid);
            }
            std::fill(p + valid, p + block_k, T(0));
            std::fill(ds + valid, ds + block_k, T(0));
        }
    }
    if (partial) {
        // Key c gets contributions from the rows r with valid[r] > c: a suffix of the block, as valid[r]
        // does not decrease with r.
        for (std::size_t c = 0; c < nc; ++c) {
            std::size_t first = nr, last = 0;
            for (std::size_t r = 0; r < nr; ++r)
                if (w.valid[r] > c) {
                    first = std::min(first, r);
                    last = r + 1;
                }
            w.kbeg[c] = first < last ? first : 0;
            w.kfin[c] = first < last ? last : 0;
        }
    }
    return true;
}

/// dV and dK of a key block += contributions of one query block (rows of the accumulators: keys).
template <class T>
void accumulate_kv(const problem<T>& P, std::size_t bh, std::size_t qb, std::size_t nc, bool partial,
                   backward_scratch<T>& w, T* dK, std::size_t ldk, T* dV, std::size_t ldv) {
    const std::size_t i0 = qb * block_q, nr = std::min(block_q, P.Tq - i0);
    const std::size_t* kb = partial ? w.kbeg.data() : nullptr;
    const std::size_t* ke = partial ? w.kfin.data() : nullptr;
    gemm_acc<1, block_k>(nc, P.dvp, nr, w.Pm.data(), P.dop + P.dop_rows.at(bh, P.H, i0), P.dop_rows.t_step, dV, ldv,
                         kb, ke);
    gemm_acc<1, block_k>(nc, P.dp, nr, w.dS.data(), P.Qs.data() + (bh * P.Tq + i0) * P.dp, P.dp, dK, ldk, kb, ke);
}

/// G (rows of one query block, leading dimension dp) += dS · k̂ of the key block: G_i = Σ_j dS_ij k̂_j.
template <class T>
void accumulate_q(const problem<T>& P, std::size_t bh, std::size_t qb, std::size_t j0, std::size_t nc, bool partial,
                  backward_scratch<T>& w, T* G) {
    const std::size_t nr = std::min(block_q, P.Tq - qb * block_q);
    gemm_acc<block_k, 1>(nr, P.dp, nc, w.dS.data(), P.kp + P.kp_rows.at(bh, P.H, j0), P.kp_rows.t_step, G, P.dp,
                         partial ? w.zero.data() : nullptr, partial ? w.valid.data() : nullptr);
}

/// dk, dv rows of a finished key block (through the normalisation's VJP under normalize_qk), at the rows dk_rows
/// and dv_rows give.
template <class T>
void store_kv(const problem<T>& P, std::size_t bh, std::size_t j0, std::size_t nc, const backward_scratch<T>& w, T* dk,
              const attention_rows& dk_rows, T* dv, const attention_rows& dv_rows) {
    for (std::size_t c = 0; c < nc; ++c) {
        const std::size_t j = j0 + c;
        const T* gk = w.dK.data() + c * P.dp;
        T* ok = dk + dk_rows.at(bh, P.H, j);
        if (P.cosine) {
            const T* kh = P.kp + P.kp_rows.at(bh, P.H, j);
            const T dot = rows::dot(kh, gk, P.d), inv = P.kinv[bh * P.Tk + j];
            for (std::size_t x = 0; x < P.d; ++x) ok[x] = inv * (gk[x] - kh[x] * dot);
        } else {
            std::copy(gk, gk + P.d, ok);
        }
        std::copy(w.dV.data() + c * P.dvp, w.dV.data() + c * P.dvp + P.dv, dv + dv_rows.at(bh, P.H, j));
    }
}

/// dq rows of a finished query block from G (at the rows dq_rows gives), and each row's ∂L/∂s_i = q̂_i·G_i into rs.
template <class T>
void store_q(const problem<T>& P, std::size_t bh, std::size_t qb, const T* G, T* dq, const attention_rows& dq_rows,
             double* rs) {
    const std::size_t b = bh / P.H, i0 = qb * block_q, nr = std::min(block_q, P.Tq - i0);
    for (std::size_t r = 0; r < nr; ++r) {
        const std::size_t i = i0 + r;
        T* oq = dq + dq_rows.at(bh, P.H, i);
        const T* g = G + r * P.dp;
        if (P.nrow[b * P.Tq + i] == 0) {  // attends nothing: no gradient, whatever q holds
            std::fill(oq, oq + P.d, T(0));
            rs[i] = 0.0;
            continue;
        }
        const T* qh = P.cosine ? P.Qp.data() + (bh * P.Tq + i) * P.dp : P.qsrc + P.q_rows.at(bh, P.H, i);
        const T s = P.srow[b * P.Tq + i];
        rs[i] = static_cast<double>(rows::dot(qh, g, P.d));
        if (P.cosine) {
            const T dot = s * rows::dot(qh, g, P.d), inv = P.qinv[bh * P.Tq + i];
            for (std::size_t x = 0; x < P.d; ++x) oq[x] = inv * (s * g[x] - qh[x] * dot);
        } else {
            rows::scale_into(g, s, oq, P.d);
        }
    }
}

/// The backward of all heads: dq, dk, dv written at the rows dq_rows, dk_rows, dv_rows give (row-major arrays, or
/// strided rows of a caller's buffer); rs gets each row's ∂L/∂s_i.
template <class T>
void backward(problem<T>& P, const attention_options& o, std::vector<backward_scratch<T>>& pool, const T* lse_all,
              T* dq, const attention_rows& dq_rows, T* dk, const attention_rows& dk_rows, T* dv,
              const attention_rows& dv_rows, double* rs) {
    const std::size_t BH = P.heads();
    std::size_t g_rows = 0;
    auto init = [&](backward_scratch<T>& w) {
        grow(w.Pm, block_q * block_k);
        grow(w.dS, block_q * block_k);
        grow(w.dK, block_k * P.dp);
        grow(w.dV, block_k * P.dvp);
        w.zero.assign(block_q, 0);
        grow(w.valid, block_q);
        grow(w.kbeg, block_k);
        grow(w.kfin, block_k);
        w.G.resize(g_rows * P.dp);
    };
    const std::size_t threads = o.threads ? o.threads : kernels::num_threads();
    auto key_block_pass = [&](std::size_t bh, std::size_t j0, backward_scratch<T>& w, T* G) {
        // One key block against every query block in order; G (all rows of the head) gets dS·k̂ when given.
        const std::size_t b = bh / P.H, nc = std::min(block_k, P.kend[b] - j0);
        // Accumulate straight into the outputs' rows when they need no normalisation VJP or unpadding.
        // (Strided rows too: the accumulators' leading dimensions are the rows' strides.)
        const bool direct = !P.cosine && P.dp == P.d && P.dvp == P.dv;
        T* dK = direct ? dk + dk_rows.at(bh, P.H, j0) : w.dK.data();
        T* dV = direct ? dv + dv_rows.at(bh, P.H, j0) : w.dV.data();
        const std::size_t ldk = direct ? dk_rows.t_step : P.dp, ldv = direct ? dv_rows.t_step : P.dvp;
        for (std::size_t c = 0; c < nc; ++c) {
            std::fill_n(dK + c * ldk, P.dp, T(0));
            std::fill_n(dV + c * ldv, P.dvp, T(0));
        }
        bool partial = false;
        for (std::size_t qb = 0; qb < P.nqb; ++qb) {
            if (!backward_pair(P, bh, qb, j0, nc, lse_all + bh * P.Tq, w, partial)) continue;
            accumulate_kv(P, bh, qb, nc, partial, w, dK, ldk, dV, ldv);
            if (G) accumulate_q(P, bh, qb, j0, nc, partial, w, G + qb * block_q * P.dp);
        }
        if (!direct) store_kv(P, bh, j0, nc, w, dk, dk_rows, dv, dv_rows);
    };
    if (BH >= threads) {
        // One task per head: a single pass over the key blocks accumulates dk, dv and G together.
        g_rows = P.Tq;
        run_units(BH, task_count(o, BH), pool, init, [&](std::size_t bh, backward_scratch<T>& w) {
            std::fill(w.G.begin(), w.G.end(), T(0));
            for (std::size_t j0 = 0; j0 < P.kend[bh / P.H]; j0 += block_k) key_block_pass(bh, j0, w, w.G.data());
            for (std::size_t qb = 0; qb < P.nqb; ++qb)
                store_q(P, bh, qb, w.G.data() + qb * block_q * P.dp, dq, dq_rows, rs + bh * P.Tq);
        });
        return;
    }
    // Fewer heads than threads: key blocks in parallel for dk, dv, then query blocks in parallel for dq. Each
    // accumulator sees the same products in the same order as in the single pass, so the results are equal.
    const std::size_t ku = BH * P.nkb;
    run_units(ku, task_count(o, ku), pool, init, [&](std::size_t u, backward_scratch<T>& w) {
        const std::size_t bh = u / P.nkb, j0 = (u % P.nkb) * block_k;
        if (j0 < P.kend[bh / P.H]) key_block_pass(bh, j0, w, nullptr);
    });
    g_rows = block_q;
    const std::size_t qu = BH * P.nqb;
    run_units(qu, task_count(o, qu), pool, init, [&](std::size_t u, backward_scratch<T>& w) {
        const std::size_t bh = u / P.nqb, qb = u % P.nqb;
        std::fill(w.G.begin(), w.G.end(), T(0));
        bool partial = false;
        for (std::size_t j0 = 0; j0 < P.kend[bh / P.H]; j0 += block_k) {
            const std::size_t nc = std::min(block_k, P.kend[bh / P.H] - j0);
            if (backward_pair(P, bh, qb, j0, nc, lse_all + bh * P.Tq, w, partial))
                accumulate_q(P, bh, qb, j0, nc, partial, w, w.G.data());
        }
        store_q(P, bh, qb, w.G.data(), dq, dq_rows, rs + bh * P.Tq);
    });
}

}  // namespace exprgrad::ops::detail::attention
