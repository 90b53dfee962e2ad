// The attention kernels' per-block softmax steps for float with 512-bit vectors, over all rows of a
// (query block × key block) score tile at once: the forward's online-softmax update and the backward's
// p = exp(s − lse), dS = p·(dP − D). Row by row through the generic row functions each exponential waited
// on its row's reductions (about 1.4 cycles per score); a loop over the whole tile keeps the vector units
// busy (ops/attention.hpp calls these when ::exprgrad::detail::avx512_enabled()).
#pragma once

#include <cstddef>
#include <limits>

#include "exprgrad/ops/detail/avx512_dispatch.hpp"
#include "exprgrad/ops/detail/softmax_rows.hpp"

namespace exprgrad::detail::attention {

#if EXPRGRAD_HAS_AVX512_KERNELS

/// Online-softmax update of rows [0, nr) of the score tile S (leading dimension ld): row r has valid[r]
/// scores (the rest of the row is neither read nor written). For a row with valid[r] > 0: m_new = max(m[r],
/// its largest score), S ← exp(S − m_new) on its valid entries, corr[r] = exp(m[r] − m_new) (0 when
/// m[r] = −inf), l[r] ← l[r]·corr[r] + Σ exp, m[r] ← m_new. A row with valid[r] = 0 keeps m, l and gets
/// corr[r] = 1. bsum: scratch of nr floats. Same values as the generic path's max, exp_shifted and std::exp
/// up to the exponential's rounding; NaN scores make the row's l NaN.
EXPRGRAD_AVX512_TARGET inline void online_softmax_update16(float* S, std::size_t ld, std::size_t nr,
                                                           const std::size_t* valid, float* m, float* l, float* corr,
                                                           float* bsum) {
    using rows::all16;
    const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    for (std::size_t r = 0; r < nr; ++r) {
        const std::size_t n = valid[r];
        if (n == 0) {
            corr[r] = 0.0f;  // exp(0) = 1 below
            bsum[r] = 0.0f;
            continue;
        }
        float* row = S + r * ld;
        // Full vectors with plain loads and stores, the tail masked (masked memory accesses cost more).
        const std::size_t full = n & ~std::size_t(15);
        const __mmask16 tail = rows::tail_mask16(full, n);
        __m512 mx = ninf;
        for (std::size_t i = 0; i < full; i += 16) mx = _mm512_maskz_max_ps(all16, mx, _mm512_loadu_ps(row + i));
        if (full < n) mx = _mm512_maskz_max_ps(all16, mx, _mm512_mask_loadu_ps(ninf, tail, row + full));
        const __m256 h = _mm256_max_ps(rows::low8(mx), rows::high8(mx));
        __m128 q = _mm_max_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
        q = _mm_max_ps(q, _mm_movehl_ps(q, q));
        q = _mm_max_ss(q, _mm_movehdup_ps(q));
        const float row_max = _mm_cvtss_f32(q);
        const float m_new = m[r] < row_max ? row_max : m[r];  // std::max(m, row_max)
        const __m512 sh = _mm512_set1_ps(m_new);
        __m512 sum = _mm512_setzero_ps();
        for (std::size_t i = 0; i < full; i += 16) {
            const __m512 e = rows::exp16(_mm512_sub_ps(_mm512_loadu_ps(row + i), sh));
            _mm512_storeu_ps(row + i, e);
            sum = _mm512_add_ps(sum, e);
        }
        if (full < n) {
            const __m512 e = rows::exp16(_mm512_sub_ps(_mm512_mask_loadu_ps(ninf, tail, row + full), sh));
            _mm512_mask_storeu_ps(row + full, tail, e);
            sum = _mm512_add_ps(sum, e);
        }
        corr[r] = m[r] - m_new;  // the exponent, exponentiated for all rows at once below
        m[r] = m_new;
        bsum[r] = rows::sum16(sum);
    }
    for (std::size_t r = 0; r < nr; r += 16) {
        const __mmask16 k = rows::tail_mask16(r, nr);
        const __m512 c = rows::exp16(_mm512_maskz_loadu_ps(k, corr + r));
        _mm512_mask_storeu_ps(corr + r, k, c);
        const __m512 lv = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, l + r), c, _mm512_maskz_loadu_ps(k, bsum + r));
        _mm512_mask_storeu_ps(l + r, k, lv);
    }
}

/// The backward's tile step: for rows r < nr with valid[r] entries, P[r, j] = exp(P[r, j] − lse[r]) (P holds the
/// scores on entry) and dS[r, j] = P[r, j]·(dS[r, j] − D[r]) (dS holds dP = dO·vᵀ on entry), for j < valid[r];
/// both set to 0 for valid[r] ≤ j < width (width a multiple of 16, the tile's used columns), so that masked
/// entries, even NaN ones, contribute nothing to the products that follow.
EXPRGRAD_AVX512_TARGET inline void softmax_backward_tile16(float* P, float* dS, std::size_t ld, std::size_t width,
                                                           std::size_t nr, const std::size_t* valid, const float* lse,
                                                           const float* D) {
    for (std::size_t r = 0; r < nr; ++r) {
        const std::size_t n = valid[r];
        float* p = P + r * ld;
        float* ds = dS + r * ld;
        const __m512 sh = _mm512_set1_ps(n ? lse[r] : 0.0f), dd = _mm512_set1_ps(D[r]);
        for (std::size_t i = 0; i < width; i += 16) {
            const __mmask16 k = i < n ? rows::tail_mask16(i, n) : __mmask16(0);
            const __m512 e = _mm512_maskz_mov_ps(k, rows::exp16(_mm512_sub_ps(_mm512_loadu_ps(p + i), sh)));
            _mm512_storeu_ps(p + i, e);
            _mm512_storeu_ps(ds + i, _mm512_maskz_mul_ps(k, e, _mm512_sub_ps(_mm512_loadu_ps(ds + i), dd)));
        }
    }
}

#endif  // EXPRGRAD_HAS_AVX512_KERNELS

}  // namespace exprgrad::detail::attention
