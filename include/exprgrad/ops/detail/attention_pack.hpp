// attention's kernels, part 2: packing q, k and v into the layouts the register tiles read (s·q̂, k̂ᵀ in key
// blocks, v padded), and the check that a VJP may reuse the forward's packing.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <type_traits>

#include <xsimd/xsimd.hpp>
#include <xtensor/xtensor.hpp>

#include "exprgrad/kernels/transpose8x8.hpp"
#include "exprgrad/ops/detail/attention_problem.hpp"

namespace exprgrad::ops::detail::attention {

#if defined(__AVX__)
using ::exprgrad::kernels::transpose8x8;  // flex attention's packing calls it by this name
#endif


/// Whether two option sets give the same packing, key counts and multipliers (threads do not matter).
inline bool same_packing_options(const attention_options& a, const attention_options& b) {
    return a.causal == b.causal && a.normalize_qk == b.normalize_qk && a.qk_eps == b.qk_eps &&
           a.key_lengths == b.key_lengths && a.scale.which == b.scale.which && a.scale.value == b.scale.value &&
           a.scale.n_choice == b.scale.n_choice;
}

/// Whether P holds the packing of exactly these arrays (addresses and shapes) and options.
template <class T>
bool packed_from(const problem<T>& P, const attention_view<T, 4>& q, const attention_view<T, 4>& k,
                 const attention_view<T, 4>& v, const attention_options& o) {
    const auto& r = P.packed_for;
    auto same = [](const auto& shape, const std::array<std::size_t, 4>& s) {
        return std::equal(s.begin(), s.end(), shape.begin());
    };
    return r.valid && r.q == q.data() && r.k == k.data() && r.v == v.data() && same(q.shape(), r.qs) &&
           same(k.shape(), r.ks) && same(v.shape(), r.vs) && r.qr == q.rows() && r.kr == k.rows() &&
           r.vr == v.rows() && same_packing_options(r.o, o);
}

/// Per-row key counts (P.nrow, P.kend) and multipliers (P.srow) of a problem whose sizes are set.
template <class T>
void count_keys_and_scale(const attention_options& o, problem<T>& P) {
    const std::size_t B = P.B, Tq = P.Tq, Tk = P.Tk, d = P.d;
    // Key counts: a prefix [0, n) per row, non-decreasing in the row index.
    P.nrow.assign(B * Tq, 0);
    P.kend.assign(B, 0);
    for (std::size_t b = 0; b < B; ++b) {
        const std::size_t len = o.key_lengths.empty() ? Tk : o.key_lengths[b];
        for (std::size_t i = 0; i < Tq; ++i) {
            std::size_t n = len;
            if (o.causal) {
                const long long last =
                    static_cast<long long>(i) + static_cast<long long>(Tk) - static_cast<long long>(Tq);
                n = std::min<std::size_t>(len, last < 0 ? 0 : static_cast<std::size_t>(last) + 1);
            }
            P.nrow[b * Tq + i] = n;
            P.kend[b] = std::max(P.kend[b], n);
        }
    }
    // Multipliers, computed once per distinct n (gradient_max solves an equation for each).
    P.srow.assign(B * Tq, T(0));
    const scale_policy& pol = o.scale;
    if (!pol.depends_on_n()) {
        std::fill(P.srow.begin(), P.srow.end(), static_cast<T>(pol.multiplier(1.0, d, P.cosine)));
    } else {
        std::vector<double> by_n(Tk + 1, std::numeric_limits<double>::quiet_NaN());
        // The post's single n = L_max/2 for the whole call (L_max = T_k, whatever the key lengths).
        const bool half = o.causal && pol.n_choice == scale_n::half_length;
        const double s_half = half ? pol.multiplier(static_cast<double>(Tk) / 2.0, d, P.cosine) : 0.0;
        for (std::size_t b = 0; b < B; ++b) {
            for (std::size_t i = 0; i < Tq; ++i) {
                const std::size_t n = P.nrow[b * Tq + i];
                if (half) {
                    P.srow[b * Tq + i] = static_cast<T>(s_half);
                    continue;
                }
                if (std::isnan(by_n[n])) by_n[n] = pol.multiplier(static_cast<double>(n), d, P.cosine);
                P.srow[b * Tq + i] = static_cast<T>(by_n[n]);
            }
        }
    }
}

/// Sizes, key counts and multipliers, and the packed operands into P, whose buffers are reused: s·q̂ (and q̂
/// under normalize_qk) padded to the tile width, k̂ᵀ per key block, v padded when d_v needs it; for the backward
/// also vᵀ per key block and k̂ padded or normalised when needed. Every element a kernel reads is written here,
/// padding included. With reuse_forward, a backward whose arrays and options are those of the last forward
/// (packed_from) keeps that forward's s·q̂, k̂ᵀ, key counts and multipliers.
template <class T>
void prepare(const attention_view<T, 4>& q, const attention_view<T, 4>& k, const attention_view<T, 4>& v,
             const attention_options& o, bool backward, problem<T>& P, bool reuse_forward = false) {
    // The backward can take q̂·s, k̂ᵀ, the multipliers and key counts from the forward's packing.
    const bool reuse = backward && reuse_forward && packed_from(P, q, k, v, o);
    P.reused = reuse;
    P.packed_for.valid = false;  // until this call's packing is complete
    P.B = q.shape()[0];
    P.H = q.shape()[1];
    P.Tq = q.shape()[2];
    P.Tk = k.shape()[2];
    P.d = q.shape()[3];
    P.dv = v.shape()[3];
    P.dp = round_up(P.d, tile_width<T>);
    P.dvp = round_up(P.dv, tile_width<T>);
    P.nqb = (P.Tq + block_q - 1) / block_q;
    P.nkb = (P.Tk + block_k - 1) / block_k;
    P.cosine = o.normalize_qk;
    const std::size_t Tq = P.Tq, Tk = P.Tk, d = P.d, dv = P.dv, dp = P.dp, dvp = P.dvp;

    if (!reuse) count_keys_and_scale(o, P);

    const std::size_t BH = P.heads();
    P.qsrc = q.data();
    P.q_rows = q.rows();
    P.k_rows = k.rows();
    P.v_rows = v.rows();
    grow(P.Qs, BH * Tq * dp);
    grow(P.Kt, BH * P.nkb * d * block_k);
    // The kernels read k (backward) and v (forward) rows in place, strided or not, when they need no padding.
    const bool copy_v = !backward && dvp != dv, copy_k = backward && (dp != d || P.cosine);
    if (copy_v) grow(P.Vp, BH * Tk * dvp);
    P.vp = copy_v ? P.Vp.data() : v.data();
    P.vp_rows = copy_v ? attention_rows::row_major(P.H, Tk, dvp) : P.v_rows;
    if (P.cosine) {
        grow(P.Qp, BH * Tq * dp);
        grow(P.qinv, BH * Tq);
        grow(P.kinv, BH * Tk);
    }
    if (backward) {
        if (copy_k) grow(P.Kp, BH * Tk * dp);
        P.kp = copy_k ? P.Kp.data() : k.data();
        P.kp_rows = copy_k ? attention_rows::row_major(P.H, Tk, dp) : P.k_rows;
        grow(P.Vt, BH * P.nkb * dv * block_k);
    }
    const T eps2 = static_cast<T>(o.qk_eps * o.qk_eps);
    // Row r of x (width w) into dst (width wp): scaled by c, zero-padded.
    auto pack_row = [](const T* x, std::size_t w, std::size_t wp, T c, bool scaled, T* dst) {
        using Bt = xsimd::batch<T>;
        std::size_t i = 0;
        if (scaled) {
            for (; i + Bt::size <= w; i += Bt::size) (Bt::load_unaligned(x + i) * Bt(c)).store_unaligned(dst + i);
            for (; i < w; ++i) dst[i] = x[i] * c;
        } else {
            std::copy(x, x + w, dst);
        }
        std::fill(dst + w, dst + wp, T(0));
    };
    // Rows [j0, j0 + nj) of x (width w, rows ld apart) transposed into a w × block_k block, columns past nj zero;
    // row jj scaled by c[j0 + jj] when c is given.
    auto pack_block_t = [](const T* x, std::size_t w, std::size_t ld, std::size_t j0, std::size_t nj, const T* c,
                           T* dst) {
        if (nj < block_k)
            for (std::size_t i = 0; i < w; ++i) std::fill(dst + i * block_k + nj, dst + (i + 1) * block_k, T(0));
        std::size_t jj = 0;
#if defined(__AVX__)
        if constexpr (std::is_same_v<T, float>)
            for (; jj + 8 <= nj; jj += 8) {
                std::size_t i = 0;
                for (; i + 8 <= w; i += 8)
                    transpose8x8(x + (j0 + jj) * ld + i, ld, c ? c + j0 + jj : nullptr, dst + i * block_k + jj,
                                 block_k);
                for (; i < w; ++i)
                    for (std::size_t t = jj; t < jj + 8; ++t)
                        dst[i * block_k + t] = c ? x[(j0 + t) * ld + i] * c[j0 + t] : x[(j0 + t) * ld + i];
            }
#endif
        for (; jj < nj; ++jj) {
            const T* src = x + (j0 + jj) * ld;
            const T cj = c ? c[j0 + jj] : T(1);
            for (std::size_t i = 0; i < w; ++i) dst[i * block_k + jj] = c ? src[i] * cj : src[i];
        }
    };
    kernels::parallel_for(0, BH, packing_grain(Tq + Tk, d + dv), [&](std::size_t lo, std::size_t hi) {
        for (std::size_t bh = lo; bh < hi; ++bh) {
            const std::size_t b = bh / P.H;
            // Head bh's rows: row i of q at qh + i·lq (likewise k, v), in place in a strided view.
            const T* qh = q.row(bh, 0);
            const T* kh = k.row(bh, 0);
            const T* vh = v.row(bh, 0);
            const std::size_t lq = P.q_rows.t_step, lk = P.k_rows.t_step, lv = P.v_rows.t_step;
            T* qinv = P.cosine ? P.qinv.data() + bh * Tq : nullptr;
            T* kinv = P.cosine ? P.kinv.data() + bh * Tk : nullptr;
            if (P.cosine && !reuse) {
                for (std::size_t i = 0; i < Tq; ++i)
                    qinv[i] = T(1) / std::sqrt(rows::dot(qh + i * lq, qh + i * lq, d) + eps2);
                for (std::size_t j = 0; j < Tk; ++j)
                    kinv[j] = T(1) / std::sqrt(rows::dot(kh + j * lk, kh + j * lk, d) + eps2);
            }
            for (std::size_t i = 0; i < Tq && !reuse; ++i) {
                const T* src = qh + i * lq;
                if (P.cosine) {
                    T* dst = P.Qp.data() + (bh * Tq + i) * dp;
                    pack_row(src, d, dp, qinv[i], true, dst);
                    src = dst;
                }
                pack_row(src, d, dp, P.srow[b * Tq + i], true, P.Qs.data() + (bh * Tq + i) * dp);
            }
            for (std::size_t kb = 0; kb < P.nkb; ++kb) {
                const std::size_t j0 = kb * block_k, nj = std::min(block_k, Tk - j0);
                if (!reuse) pack_block_t(kh, d, lk, j0, nj, kinv, P.Kt.data() + (bh * P.nkb + kb) * d * block_k);
                if (backward)
                    pack_block_t(vh, dv, lv, j0, nj, nullptr, P.Vt.data() + (bh * P.nkb + kb) * dv * block_k);
            }
            for (std::size_t j = 0; j < Tk; ++j) {
                if (copy_v) pack_row(vh + j * lv, dv, dvp, T(1), false, P.Vp.data() + (bh * Tk + j) * dvp);
                if (copy_k)
                    pack_row(kh + j * lk, d, dp, P.cosine ? kinv[j] : T(1), P.cosine, P.Kp.data() + (bh * Tk + j) * dp);
            }
        }
    });
    auto& r = P.packed_for;
    r.q = q.data();
    r.k = k.data();
    r.v = v.data();
    std::copy(q.shape().begin(), q.shape().end(), r.qs.begin());
    std::copy(k.shape().begin(), k.shape().end(), r.ks.begin());
    std::copy(v.shape().begin(), v.shape().end(), r.vs.begin());
    r.qr = P.q_rows;
    r.kr = P.k_rows;
    r.vr = P.v_rows;
    r.o = o;
    r.valid = true;
}

}  // namespace exprgrad::ops::detail::attention
