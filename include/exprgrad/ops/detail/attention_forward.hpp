// attention's kernels, part 3: the forward pass, blocked online softmax over key blocks (the flash-attention
// scheme), one task per (head, query block).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

#include "exprgrad/ops/detail/attention_pack.hpp"

namespace exprgrad::ops::detail::attention {

/// Calls tile.template operator()<R>(r) for row tiles [r, r + R) covering [0, rows): R = 4, then 2 and 1.
template <class Tile>
void for_row_tiles(std::size_t rows_, Tile&& tile) {
    std::size_t r = 0;
    for (; r + 4 <= rows_; r += 4) tile.template operator()<4>(r);
    if (r + 2 <= rows_) {
        tile.template operator()<2>(r);
        r += 2;
    }
    if (r < rows_) tile.template operator()<1>(r);
}

template <class T>
struct forward_scratch {
    buffer<T> S, acc;
    std::vector<T> m, l, corr, bsum;
    std::vector<std::size_t> beg, valid;
    bool nonfinite = false;  // a row of this task's blocks got a non-finite lse (checked after the forward)
};

/// One query block of one head: online softmax over the key blocks the block attends. Row i of the head's output
/// is written at out + out_rows.at(bh, H, i), its lse at lse[i].
template <class T>
void forward_block(const problem<T>& P, std::size_t bh, std::size_t qb, forward_scratch<T>& w, T* out,
                   const attention_rows& out_rows, T* lse) {
    constexpr T ninf = -std::numeric_limits<T>::infinity();
    const std::size_t b = bh / P.H, i0 = qb * block_q, nr = std::min(block_q, P.Tq - i0);
    const std::size_t* n = P.nrow.data() + b * P.Tq + i0;
    const std::size_t dvp = P.dvp, dp = P.dp;
    std::size_t kend = 0;
    for (std::size_t r = 0; r < nr; ++r) kend = std::max(kend, n[r]);
    std::fill(w.m.begin(), w.m.end(), ninf);
    std::fill(w.l.begin(), w.l.end(), T(0));
    std::fill(w.acc.begin(), w.acc.begin() + nr * dvp, T(0));
    const T* Q = P.Qs.data() + (bh * P.Tq + i0) * dp;
    for (std::size_t j0 = 0; j0 < kend; j0 += block_k) {
        const std::size_t nc = std::min(block_k, kend - j0);
        const T* Kt = P.Kt.data() + (bh * P.nkb + j0 / block_k) * P.d * block_k;
        bool partial = false;
        for (std::size_t r = 0; r < nr; ++r) {
            w.valid[r] = n[r] > j0 ? std::min(nc, n[r] - j0) : 0;
            partial |= w.valid[r] < nc;
        }
#if EXPRGRAD_HAS_AVX512_KERNELS
        if constexpr (std::is_same_v<T, float>) {
            if (::exprgrad::kernels::avx512_enabled()) {
                // Scores and the online-softmax step in registers, 4 rows at a time.
                for_row_tiles(nr, [&]<int R>(std::size_t r) {
                    forward_tile16<R>(P.d, Q + r * dp, dp, Kt, w.valid.data() + r, w.m.data() + r, w.corr.data() + r,
                                      w.bsum.data() + r, w.S.data() + r * block_k);
                });
                finish_online16(nr, w.corr.data(), w.bsum.data(), w.l.data());
                for (std::size_t r = 0; r < nr; ++r)
                    if (w.corr[r] != T(1)) rows::scale(w.acc.data() + r * dvp, w.corr[r], dvp);
                gemm_acc<block_k, 1>(nr, dvp, nc, w.S.data(), P.vp + P.vp_rows.at(bh, P.H, j0), P.vp_rows.t_step,
                                     w.acc.data(), dvp,
                                     partial ? w.beg.data() : nullptr, partial ? w.valid.data() : nullptr);
                continue;
            }
        }
#endif
        gemm_rows<false>(nr, block_k, P.d, Q, dp, Kt, block_k, w.S.data(), block_k);
        for (std::size_t r = 0; r < nr; ++r) {
            const std::size_t valid = w.valid[r];
            if (valid == 0) continue;
            T* row = w.S.data() + r * block_k;
            const T m_new = std::max(w.m[r], rows::max(row, valid));
            const T corr = std::exp(w.m[r] - m_new);  // 0 for the first block of the row
            const T sum = rows::exp_shifted(row, m_new, row, valid);
            w.l[r] = w.l[r] * corr + sum;
            if (corr != T(1)) rows::scale(w.acc.data() + r * dvp, corr, dvp);
            w.m[r] = m_new;
        }
        gemm_acc<block_k, 1>(nr, dvp, nc, w.S.data(), P.vp + P.vp_rows.at(bh, P.H, j0), P.vp_rows.t_step, w.acc.data(),
                             dvp,
                             partial ? w.beg.data() : nullptr, partial ? w.valid.data() : nullptr);
    }
    for (std::size_t r = 0; r < nr; ++r) {
        T* o = out + out_rows.at(bh, P.H, i0 + r);
        if (n[r] == 0) {
            std::fill(o, o + P.dv, T(0));
            lse[i0 + r] = ninf;
            continue;
        }
        rows::scale_into(w.acc.data() + r * dvp, T(1) / w.l[r], o, P.dv);
        lse[i0 + r] = w.m[r] + std::log(w.l[r]);
        // One compare per row: overflowing scores (or NaN inputs) end in a NaN or infinite lse.
        if (!std::isfinite(lse[i0 + r])) w.nonfinite = true;
    }
}

/// The forward over all query blocks; true when some row that attends a key got a non-finite lse.
template <class T>
bool forward(const problem<T>& P, const attention_options& o, std::vector<forward_scratch<T>>& pool, T* out,
             const attention_rows& out_rows, T* lse) {
    auto init = [&](forward_scratch<T>& w) {
        w.nonfinite = false;
        grow(w.S, block_q * block_k);
        grow(w.acc, block_q * P.dvp);
        grow(w.m, block_q);
        grow(w.l, block_q);
        grow(w.corr, block_q);
        grow(w.bsum, block_q);
        w.beg.assign(block_q, 0);
        grow(w.valid, block_q);
    };
    const std::size_t units = P.heads() * P.nqb;
    if (units == 0) return false;
    const std::size_t chunks = task_count(o, units);
    run_units(units, chunks, pool, init, [&](std::size_t u, forward_scratch<T>& w) {
        const std::size_t bh = u / P.nqb, qb = u % P.nqb;
        forward_block(P, bh, qb, w, out, out_rows, lse + bh * P.Tq);
    });
    return std::any_of(pool.begin(), pool.begin() + chunks, [](const forward_scratch<T>& w) { return w.nonfinite; });
}

}  // namespace exprgrad::ops::detail::attention
