// flex attention's kernels, part 3: the forward pass. Blocked online softmax (the flash-attention scheme of
// ops::attention) with the score and mask modifications applied to each score tile between the two matrix
// products; one task per (batch, query head, query block).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

#include "exprgrad/ops/detail/flex_modification.hpp"
#include "exprgrad/ops/detail/flex_problem.hpp"

namespace exprgrad::ops::detail::flex {

template <class T>
struct forward_scratch {
    buffer<T> S, acc;
    std::vector<T> m, l;
    std::vector<T> cexp, bsum;  // per row of a key block: the rescale exponent m_old − m_new, and Σ_j P_rj
    std::vector<std::size_t> beg, end, valid;
};

/// The first and one past the last entry of row[0, n) that is not −inf (masked entries are −inf): the span
/// the P·V product reads, so keys hidden at either end of it are never multiplied in.
template <class T>
std::pair<std::size_t, std::size_t> visible_span(const T* row, std::size_t n) {
    constexpr T ninf = -std::numeric_limits<T>::infinity();
    std::size_t b = 0, e = n;
    while (b < n && row[b] == ninf) ++b;
    while (e > b && row[e - 1] == ninf) --e;
    return {b, e};
}

/// One query block of one (batch, query head): online softmax over the key blocks its rows may see.
template <class M, class T>
void forward_block(const problem<T>& P, std::size_t bh, std::size_t qb, forward_scratch<T>& w, T* out, T* lse) {
    constexpr T ninf = -std::numeric_limits<T>::infinity();
    const std::size_t b = bh / P.Hq, h = bh % P.Hq, g = b * P.Hkv + h / P.G;
    const std::size_t i0 = qb * block_q, nr = std::min(block_q, P.Tq - i0);
    const std::size_t* n = P.nrow.data() + b * P.Tq + i0;
    const std::size_t dvp = P.dvp, dp = P.dp;
    std::size_t kend = 0;
    for (std::size_t r = 0; r < nr; ++r) kend = std::max(kend, n[r]);
    std::fill(w.m.begin(), w.m.begin() + nr, ninf);
    std::fill(w.l.begin(), w.l.begin() + nr, T(0));
    std::fill(w.acc.begin(), w.acc.begin() + nr * dvp, T(0));
    const T* Q = P.Qs.data() + (bh * P.Tq + i0) * dp;
    const T* par = P.par.data() + h * P.np;
    const auto sv = P.sequence(b);
    for (std::size_t j0 = 0; j0 < kend; j0 += block_k) {
        // The block mask: a tile the mask hides costs nothing, one it shows entirely skips the mask's evaluation.
        const tile_class cls = P.bm.at(b, h, qb, j0 / block_k);
        if (cls == tile_class::empty) continue;
        const std::size_t nc = std::min(block_k, kend - j0);
        const T* Kt = P.Kt.data() + (g * P.nkb + j0 / block_k) * P.d * block_k;
        bool rows = false;
        for (std::size_t r = 0; r < nr; ++r) {
            w.valid[r] = n[r] > j0 ? std::min(nc, n[r] - j0) : 0;
            rows |= w.valid[r] > 0;
        }
        if (!rows) continue;
        // The raw scores: straight into the slot the backward that follows reads them from (problem::scores), or
        // into S; the row passes below write the modified scores into S.
        T* X = P.scores ? P.scores + P.score_tile(bh, qb, j0 / block_k) : w.S.data();
        bool any = false, whole = true;  // whole: every row adds all nc keys (the product needs no row limits)
        bool fused = false;
#if EXPRGRAD_HAS_AVX512_KERNELS
        if constexpr (M::unmasked::wide16) {
            // 512-bit: the product, the modification (and a mask of positions, where the tile evaluates it) and the
            // exponentials with 4 rows' scores in registers (the row pass and the exponentials were two more
            // passes over S).
            constexpr bool mask_here = M::masked && avx512::mask16_v<typename M::mask_type>;
            const bool partial = M::masked && cls == tile_class::partial;
            if (kernels::avx512_enabled() && (!partial || mask_here)) {
                using U = typename M::unmasked;
                auto tile = [&]<int R>(std::size_t r0) {
                    const float* bias[R];
                    avx512::mask_row mr[R];
                    for (int t = 0; t < R; ++t) {
                        const std::size_t i = i0 + r0 + t;
                        bias[t] = U::relative ? P.rel_row(b, h, i) + j0 : nullptr;
                        mr[t] = {static_cast<float>(b), static_cast<float>(h), static_cast<float>(i),
                                 sv.q_len, sv.k_len, sv.q_doc ? sv.q_doc[i] : 0.0f};
                    }
                    avx512::softmax_step st[R];
                    auto run = [&]<class Mask>() {
                        avx512::forward_tile<R, typename U::mod, U::relative, Mask>(
                            P.d, Q + r0 * dp, dp, Kt, w.valid.data() + r0, bias, w.m.data() + r0, mr, j0,
                            P.scores ? X + r0 * block_k : nullptr, w.S.data() + r0 * block_k, st);
                    };
                    if constexpr (mask_here) {
                        if (partial) {
                            run.template operator()<typename M::mask_type>();
                        } else {
                            run.template operator()<sym::Const<1, 1>>();
                        }
                    } else {
                        run.template operator()<sym::Const<1, 1>>();
                    }
                    for (int t = 0; t < R; ++t) {
                        const std::size_t r = r0 + t;
                        w.beg[r] = w.end[r] = 0;
                        w.cexp[r] = w.bsum[r] = T(0);
                        whole = whole && st[t].lo == 0 && st[t].hi == nc;
                        if (st[t].lo == st[t].hi) continue;
                        if (st[t].m_new == ninf) {  // every visible modified score is −inf: nothing to add
                            whole = false;
                            continue;
                        }
                        w.cexp[r] = w.m[r] - st[t].m_new;
                        w.bsum[r] = st[t].sum;
                        w.m[r] = st[t].m_new;
                        w.beg[r] = st[t].lo;
                        w.end[r] = st[t].hi;
                        any = true;
                    }
                };
                std::size_t r0 = 0;
                for (; r0 + 4 <= nr; r0 += 4) tile.template operator()<4>(r0);
                for (; r0 < nr; ++r0) tile.template operator()<1>(r0);
                fused = true;
            }
        }
#endif
        if (!fused) {
            tiles::gemm_rows<false>(nr, block_k, P.d, Q, dp, Kt, block_k, X, block_k);
            for (std::size_t r = 0; r < nr; ++r) {
                const std::size_t valid = w.valid[r];
                T* row = w.S.data() + r * block_k;
                w.beg[r] = w.end[r] = 0;
                w.cexp[r] = w.bsum[r] = T(0);  // a row that adds nothing: its accumulator and sum stay as they are
                whole = whole && valid == nc;
                if (valid == 0) continue;
                bool done = false;  // a partial tile evaluates the mask; a full one runs the unmasked row pass
                T bm = ninf;        // the row's maximum, from the row pass (kernels::rows::max's value)
                if constexpr (M::masked) {
                    if (cls == tile_class::partial) {
                        typename M::row_args ra(b, h, i0 + r, par, sv);
                        ra.bias = P.rel_row(b, h, i0 + r);
                        bm = M::template forward_row<false>(X + r * block_k, row, block_k, valid, ra, j0);
                        done = true;
                    }
                }
                if (!done) {
                    using U = typename M::unmasked;
                    typename U::row_args ra(b, h, i0 + r, par, sv);
                    ra.bias = P.rel_row(b, h, i0 + r);
                    bm = U::template forward_row<true>(X + r * block_k, row, block_k, valid, ra, j0);
                }
                const auto [lo, hi] = visible_span(row, valid);
                whole = whole && lo == 0 && hi == nc;
                if (lo == hi) continue;
                // std::max drops a NaN second argument: keep it, so that a NaN score reaches out and lse.
                const T m_new = std::isnan(bm) ? bm : std::max(w.m[r], bm);
                if (m_new == ninf) {  // every visible modified score is −inf: nothing to add
                    whole = false;
                    continue;
                }
                w.cexp[r] = w.m[r] - m_new;  // −inf for the row's first visible block
                w.bsum[r] = kernels::rows::exp_shifted(row + lo, m_new, row + lo, hi - lo);
                w.m[r] = m_new;
                w.beg[r] = lo;
                w.end[r] = hi;
                any = true;
            }
        }
        if (!any) continue;
        // The rescale factors of all rows in one vector pass (a scalar std::exp per row and key block was 5 % of
        // a forward): corr = e^(m_old − m_new), 1 for the rows that added nothing, 0 for a first visible block.
        kernels::rows::exp_shifted(w.cexp.data(), T(0), w.cexp.data(), nr);
        for (std::size_t r = 0; r < nr; ++r) {
            const T corr = w.cexp[r];
            w.l[r] = w.l[r] * corr + w.bsum[r];
            if (corr != T(1)) kernels::rows::scale(w.acc.data() + r * dvp, corr, dvp);
        }
        tiles::gemm_acc<block_k, 1>(nr, dvp, nc, w.S.data(), P.vp + (g * P.Tk + j0) * dvp, dvp, w.acc.data(), dvp,
                                    whole ? nullptr : w.beg.data(), whole ? nullptr : w.end.data());
    }
    for (std::size_t r = 0; r < nr; ++r) {
        T* o = out + (i0 + r) * P.dv;
        if (w.m[r] == ninf) {  // no visible key (or every modified score −inf): the fully masked convention
            std::fill(o, o + P.dv, T(0));
            lse[i0 + r] = ninf;
            continue;
        }
        kernels::rows::scale_into(w.acc.data() + r * dvp, T(1) / w.l[r], o, P.dv);
        lse[i0 + r] = w.m[r] + std::log(w.l[r]);
    }
}

/// The forward over all (batch, query head, query block) units.
template <class M, class T>
void forward(const problem<T>& P, const attention_options& o, std::vector<forward_scratch<T>>& pool, T* out, T* lse) {
    auto init = [&](forward_scratch<T>& w) {
        grow(w.S, block_q * block_k);
        grow(w.acc, block_q * P.dvp);
        grow(w.m, block_q);
        grow(w.l, block_q);
        grow(w.cexp, block_q);
        grow(w.bsum, block_q);
        grow(w.beg, block_q);
        grow(w.end, block_q);
        grow(w.valid, block_q);
    };
    const std::size_t units = P.B * P.Hq * P.nqb;
    if (units == 0) return;
    attention::run_units(units, attention::task_count(o, units), pool, init, [&](std::size_t u, forward_scratch<T>& w) {
        const std::size_t bh = u / P.nqb, qb = u % P.nqb;
        forward_block<M>(P, bh, qb, w, out + bh * P.Tq * P.dv, lse + bh * P.Tq);
    });
}

}  // namespace exprgrad::ops::detail::flex
