// The attention kernels' register-tile product C (+)= A·B for float with 512-bit FMAs, chosen at run time
// (ops/attention.hpp calls it when the CPU has AVX-512F), so that the default x86-64-v3 build still runs
// everywhere and uses the full FMA width where there is one: on a CPU with 512-bit FMA units the 256-bit
// kernels reach at most half of its peak.
//
// Same contract and same arithmetic as attention.hpp's `gemm`: every element of C is one chain of fused
// multiply-adds over k in increasing order, so the results are bit-identical to the 256-bit kernels (the
// tests compare both paths exactly). Functions here carry a target attribute and no lambdas (a lambda
// would not inherit it).
#pragma once

#include <cstddef>

#include "exprgrad/kernels/avx512_dispatch.hpp"

namespace exprgrad::kernels::tiles {

#if EXPRGRAD_HAS_AVX512_KERNELS

/// One k of a tile: acc[r] += A(r, k)·B[k, :] for every row r (Masked: only rows with beg[r] ≤ k < end[r]).
template <int R, int NV, bool Masked>
EXPRGRAD_AVX512_TARGET __attribute__((always_inline)) inline void tile_step512(
    std::size_t k, const float* a, std::size_t ars, std::size_t aks, const float* b, std::size_t ldb,
    __m512 (&acc)[R][NV], const std::size_t* beg, const std::size_t* end) {
    __m512 bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_loadu_ps(b + k * ldb + 16 * v);
    const float* ak = a + k * aks;
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
        if (Masked && !(k >= beg[r] && k < end[r])) continue;
        const __m512 x = _mm512_set1_ps(ak[r * ars]);
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(x, bv[v], acc[r][v]);
    }
}

/// C[R × 16·NV] (+)= A·B over k in [0, K) (or each row's [beg[r], end[r]) with Limited), A(r, k) at
/// a[r·ars + k·aks], B row-major with leading dimension ldb: the same tile as attention.hpp's `tile`.
template <int R, int NV, bool Acc, bool Limited, std::size_t ARS, std::size_t AKS>
EXPRGRAD_AVX512_TARGET inline void tile512(std::size_t K, const float* a, std::size_t ars_, std::size_t aks_,
                                           const float* b, std::size_t ldb, float* c, std::size_t ldc,
                                           const std::size_t* beg, const std::size_t* end) {
    const std::size_t ars = ARS ? ARS : ars_, aks = AKS ? AKS : aks_;
    __m512 acc[R][NV];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[r][v] = Acc ? _mm512_loadu_ps(c + r * ldc + 16 * v) : _mm512_setzero_ps();
    if constexpr (!Limited) {
        for (std::size_t k = 0; k < K; ++k) tile_step512<R, NV, false>(k, a, ars, aks, b, ldb, acc, beg, end);
    } else {
        // [lo, hi): some row's range; [full_lo, full_hi): every row's range (empty when the rows share none).
        std::size_t lo = beg[0], hi = end[0], full_lo = beg[0], full_hi = end[0];
#pragma GCC unroll 16
        for (int r = 1; r < R; ++r) {
            lo = beg[r] < lo ? beg[r] : lo;
            hi = end[r] > hi ? end[r] : hi;
            full_lo = beg[r] > full_lo ? beg[r] : full_lo;
            full_hi = end[r] < full_hi ? end[r] : full_hi;
        }
        hi = hi < K ? hi : K;
        full_hi = full_hi < hi ? full_hi : hi;
        if (full_lo > full_hi) full_lo = full_hi;
        std::size_t k = lo;
        for (; k < full_lo && k < hi; ++k) tile_step512<R, NV, true>(k, a, ars, aks, b, ldb, acc, beg, end);
        for (; k < full_hi; ++k) tile_step512<R, NV, false>(k, a, ars, aks, b, ldb, acc, beg, end);
        for (; k < hi; ++k) tile_step512<R, NV, true>(k, a, ars, aks, b, ldb, acc, beg, end);
    }
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) _mm512_storeu_ps(c + r * ldc + 16 * v, acc[r][v]);
}

/// Rows [r0, r0 + R) of one column strip of width 16·NV.
template <int R, int NV, bool Acc, bool Limited, std::size_t ARS, std::size_t AKS>
EXPRGRAD_AVX512_TARGET inline void strip_rows512(std::size_t r0, std::size_t K, const float* a, std::size_t ars,
                                                 std::size_t aks, const float* b, std::size_t ldb, float* c,
                                                 std::size_t ldc, const std::size_t* beg, const std::size_t* end) {
    tile512<R, NV, Acc, Limited, ARS, AKS>(K, a + r0 * ars, ars, aks, b, ldb, c + r0 * ldc, ldc,
                                           beg ? beg + r0 : nullptr, end ? end + r0 : nullptr);
}

/// One column strip (width 16·NV) over all rows: tiles of 8 rows, then 4, 2, 1 for the rest.
template <int NV, bool Acc, bool Limited, std::size_t ARS, std::size_t AKS>
EXPRGRAD_AVX512_TARGET inline void strip512(std::size_t rows_, std::size_t K, const float* a, std::size_t ars,
                                            std::size_t aks, const float* b, std::size_t ldb, float* c, std::size_t ldc,
                                            const std::size_t* beg, const std::size_t* end) {
    std::size_t r = 0;
    for (; r + 8 <= rows_; r += 8)
        strip_rows512<8, NV, Acc, Limited, ARS, AKS>(r, K, a, ars, aks, b, ldb, c, ldc, beg, end);
    if (r + 4 <= rows_) {
        strip_rows512<4, NV, Acc, Limited, ARS, AKS>(r, K, a, ars, aks, b, ldb, c, ldc, beg, end);
        r += 4;
    }
    if (r + 2 <= rows_) {
        strip_rows512<2, NV, Acc, Limited, ARS, AKS>(r, K, a, ars, aks, b, ldb, c, ldc, beg, end);
        r += 2;
    }
    if (r < rows_) strip_rows512<1, NV, Acc, Limited, ARS, AKS>(r, K, a, ars, aks, b, ldb, c, ldc, beg, end);
}

/// C[rows × cols] (+)= A·B with cols a multiple of 16: strips of 32 columns, then one of 16.
template <bool Acc, bool Limited, std::size_t ARS, std::size_t AKS>
EXPRGRAD_AVX512_TARGET void gemm512(std::size_t rows_, std::size_t cols, std::size_t K, const float* a, std::size_t ars,
                                    std::size_t aks, const float* b, std::size_t ldb, float* c, std::size_t ldc,
                                    const std::size_t* beg, const std::size_t* end) {
    std::size_t j = 0;
    for (; j + 32 <= cols; j += 32)
        strip512<2, Acc, Limited, ARS, AKS>(rows_, K, a, ars, aks, b + j, ldb, c + j, ldc, beg, end);
    if (j < cols) strip512<1, Acc, Limited, ARS, AKS>(rows_, K, a, ars, aks, b + j, ldb, c + j, ldc, beg, end);
}

#endif  // EXPRGRAD_HAS_AVX512_KERNELS

}  // namespace exprgrad::kernels::tiles
