// The attention kernels' score tiles fused with their softmax steps, for float with 512-bit vectors: R query
// rows × one key block of 64 keys, the scores s·q̂·k̂ held in 4R registers while the step runs on them.
// Forward: the online-softmax update (running max, rescale factor, block sum, P). Backward: P = exp(S − lse)
// and then dP = dO·vᵀ in the same registers, dS = P·(dP − D). Done row by row through the generic row
// functions, each exponential waited on its row's reductions (about 1.4 cycles per score) and every score
// went through memory twice more; here R rows' exponentials are in flight together. ops/attention.hpp
// calls these when ::exprgrad::kernels::avx512_enabled().
#pragma once

#include <cstddef>
#include <limits>

#include "exprgrad/kernels/avx512_dispatch.hpp"
#include "exprgrad/kernels/rows_avx512.hpp"

namespace exprgrad::kernels::tiles {

#if EXPRGRAD_HAS_AVX512_KERNELS

/// Lanes of the 16-key group g (keys 16g … 16g + 15 of the block) that a row with n valid keys attends.
EXPRGRAD_AVX512_TARGET inline __mmask16 group_mask16(std::size_t g, std::size_t n) {
    return 16 * g < n ? rows::tail_mask16(16 * g, n) : __mmask16(0);
}

/// acc[r][g] = Σ_f A[r·lda + f] · Bt[f·64 + 16g + lane] for f < K: R rows of A against a 64-column panel.
template <int R>
EXPRGRAD_AVX512_TARGET inline void panel64(std::size_t K, const float* A, std::size_t lda, const float* Bt,
                                           __m512 (&acc)[R][4]) {
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
        for (int g = 0; g < 4; ++g) acc[r][g] = _mm512_setzero_ps();
    for (std::size_t f = 0; f < K; ++f) {
        __m512 b[4];
#pragma GCC unroll 4
        for (int g = 0; g < 4; ++g) b[g] = _mm512_loadu_ps(Bt + f * 64 + 16 * g);
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) {
            const __m512 a = _mm512_set1_ps(A[r * lda + f]);
#pragma GCC unroll 4
            for (int g = 0; g < 4; ++g) acc[r][g] = _mm512_fmadd_ps(a, b[g], acc[r][g]);
        }
    }
}

/// Forward, rows [0, R) of a query block against one key block: S = Q·Kt (Q rows with leading dimension ldq,
/// K = d features; Kt the block's d × 64 panel), then for each row r with valid[r] > 0 keys:
/// m_new = max(m[r], max_j S_rj), P_rj = exp(S_rj − m_new) for j < valid[r] and 0 for the other keys of the block,
/// bsum[r] = Σ_j P_rj, cexp[r] = m[r] − m_new (the rescale exponent, exponentiated by finish_online16), m[r] = m_new.
/// A row with no valid key gets cexp = 0, bsum = 0 and P untouched. P: leading dimension 64.
template <int R>
EXPRGRAD_AVX512_TARGET inline void forward_tile16(std::size_t d, const float* Q, std::size_t ldq, const float* Kt,
                                                  const std::size_t* valid, float* m, float* cexp, float* bsum,
                                                  float* P) {
    using rows::all16;
    __m512 s[R][4];
    panel64<R>(d, Q, ldq, Kt, s);
    const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
        const std::size_t n = valid[r];
        if (n == 0) {
            cexp[r] = 0.0f;
            bsum[r] = 0.0f;
            continue;
        }
        __mmask16 k[4];
        __m512 mx = ninf;
#pragma GCC unroll 4
        for (int g = 0; g < 4; ++g) {
            k[g] = group_mask16(g, n);
            mx = _mm512_maskz_max_ps(all16, mx, _mm512_mask_mov_ps(ninf, k[g], s[r][g]));
        }
        const __m256 h = _mm256_max_ps(rows::low8(mx), rows::high8(mx));
        __m128 q = _mm_max_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
        q = _mm_max_ps(q, _mm_movehl_ps(q, q));
        q = _mm_max_ss(q, _mm_movehdup_ps(q));
        const float row_max = _mm_cvtss_f32(q);
        const float m_new = m[r] < row_max ? row_max : m[r];  // std::max(m, row_max)
        const __m512 sh = _mm512_set1_ps(m_new);
        __m512 sum = _mm512_setzero_ps();
#pragma GCC unroll 4
        for (int g = 0; g < 4; ++g) {
            const __m512 e = _mm512_maskz_mov_ps(k[g], rows::exp16(_mm512_sub_ps(s[r][g], sh)));
            _mm512_storeu_ps(P + r * 64 + 16 * g, e);
            sum = _mm512_add_ps(sum, e);
        }
        cexp[r] = m[r] - m_new;
        m[r] = m_new;
        bsum[r] = rows::sum16(sum);
    }
}

/// After the forward tiles of a key block: corr[r] = exp(cexp[r]) (the factor on row r's accumulator; 1 for a
/// row that attended none of the block, 0 for its first block) and l[r] ← l[r]·corr[r] + bsum[r], for r < nr.
EXPRGRAD_AVX512_TARGET inline void finish_online16(std::size_t nr, float* cexp, const float* bsum, float* l) {
    for (std::size_t r = 0; r < nr; r += 16) {
        const __mmask16 k = rows::tail_mask16(r, nr);
        const __m512 c = rows::exp16(_mm512_maskz_loadu_ps(k, cexp + r));
        _mm512_mask_storeu_ps(cexp + r, k, c);
        _mm512_mask_storeu_ps(l + r, k,
                              _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, l + r), c, _mm512_maskz_loadu_ps(k, bsum + r)));
    }
}

/// Backward, rows [0, R) of a query block against one key block: P = exp(Qs·Kt − lse[r]) and
/// dS = P·(dO·Vt − D[r]) on the row's valid keys, both 0 on the block's other keys (so that masked entries,
/// even NaN ones, add nothing to the products that follow). Qs: s·q̂ rows (leading dimension ldq, d features);
/// dO rows (leading dimension ldo, dv features); Kt, Vt: the key block's d × 64 and dv × 64 panels. P, dS:
/// leading dimension 64.
template <int R>
EXPRGRAD_AVX512_TARGET inline void backward_tile16(std::size_t d, const float* Qs, std::size_t ldq, const float* Kt,
                                                   std::size_t dv, const float* dO, std::size_t ldo, const float* Vt,
                                                   const std::size_t* valid, const float* lse, const float* D, float* P,
                                                   float* dS) {
    __m512 acc[R][4];
    panel64<R>(d, Qs, ldq, Kt, acc);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
        const std::size_t n = valid[r];
        const __m512 sh = _mm512_set1_ps(n ? lse[r] : 0.0f);
#pragma GCC unroll 4
        for (int g = 0; g < 4; ++g)
            _mm512_storeu_ps(P + r * 64 + 16 * g,
                             _mm512_maskz_mov_ps(group_mask16(g, n), rows::exp16(_mm512_sub_ps(acc[r][g], sh))));
    }
    panel64<R>(dv, dO, ldo, Vt, acc);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
        const std::size_t n = valid[r];
        const __m512 dd = _mm512_set1_ps(D[r]);
#pragma GCC unroll 4
        for (int g = 0; g < 4; ++g)
            _mm512_storeu_ps(dS + r * 64 + 16 * g,
                             _mm512_maskz_mul_ps(group_mask16(g, n), _mm512_loadu_ps(P + r * 64 + 16 * g),
                                                 _mm512_sub_ps(acc[r][g], dd)));
    }
}

#endif  // EXPRGRAD_HAS_AVX512_KERNELS

}  // namespace exprgrad::kernels::tiles
