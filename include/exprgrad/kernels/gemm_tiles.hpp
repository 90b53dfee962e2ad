// Register-tile matrix products C (+)= A·B for the attention kernels: a 6-row × two-batch tile of xsimd
// FMAs, with optional per-row k limits (masked products are skipped, never multiplied by zero), dispatching
// float to the 512-bit tiles of gemm_avx512.hpp when the CPU has AVX-512F (bit-identical results). Every
// element of C is one chain of fused multiply-adds over k in increasing order.
#pragma once

#include <algorithm>
#include <cstddef>
#include <type_traits>
#include <utility>

#include <xsimd/xsimd.hpp>

#include "exprgrad/kernels/avx512_dispatch.hpp"
#include "exprgrad/kernels/gemm_avx512.hpp"
#include "exprgrad/kernels/row_lanes.hpp"

namespace exprgrad::kernels::tiles {

/// Rows of a register tile.
inline constexpr std::size_t tile_rows = 6;

/// Width of a register tile: two SIMD batches (16 floats or 8 doubles with AVX2).
template <class T>
inline constexpr std::size_t tile_width = 2 * rows::lanes<T>;

/// One register tile: C[R × W] (+)= A·B for k in [0, K), with A(r, k) = a[r·ars + k·aks] (any layout:
/// elements are broadcast one at a time) and B row-major with leading dimension ldb. With limits, row r
/// takes only k in [beg[r], end[r]): masked products are skipped rather than multiplied by zero, so a
/// non-finite value in a masked position never reaches C. ARS, AKS: the strides when known at compile time
/// (0: use ars_, aks_), so that the six broadcast addresses are immediate offsets rather than registers.
template <std::size_t R, bool Acc, bool Limited, std::size_t ARS, std::size_t AKS, class T>
inline void tile(std::size_t K, const T* a, std::size_t ars_, std::size_t aks_, const T* b, std::size_t ldb, T* c,
                 std::size_t ldc, const std::size_t* beg, const std::size_t* end) {
    const std::size_t ars = ARS ? ARS : ars_, aks = AKS ? AKS : aks_;
    using B = xsimd::batch<T>;
    constexpr std::size_t L = B::size;
    [&]<std::size_t... r>(std::index_sequence<r...>) {
        B c0[R], c1[R];
        if constexpr (Acc) {
            ((c0[r] = B::load_unaligned(c + r * ldc), c1[r] = B::load_unaligned(c + r * ldc + L)), ...);
        } else {
            ((c0[r] = B(T(0)), c1[r] = B(T(0))), ...);
        }
        if constexpr (!Limited) {
            for (std::size_t k = 0; k < K; ++k) {
                const B b0 = B::load_unaligned(b + k * ldb), b1 = B::load_unaligned(b + k * ldb + L);
                const T* ak = a + k * aks;
                ((c0[r] = xsimd::fma(B(ak[r * ars]), b0, c0[r]), c1[r] = xsimd::fma(B(ak[r * ars]), b1, c1[r])), ...);
            }
        } else {
            const std::size_t lo = std::min({beg[r]...}), hi = std::min(K, std::max({end[r]...}));
            const std::size_t full_lo = std::max({beg[r]...}), full_hi = std::min({end[r]...});
            for (std::size_t k = lo; k < hi; ++k) {
                const B b0 = B::load_unaligned(b + k * ldb), b1 = B::load_unaligned(b + k * ldb + L);
                const T* ak = a + k * aks;
                if (k >= full_lo && k < full_hi) {
                    ((c0[r] = xsimd::fma(B(ak[r * ars]), b0, c0[r]), c1[r] = xsimd::fma(B(ak[r * ars]), b1, c1[r])),
                     ...);
                } else {
                    ((k >= beg[r] && k < end[r] ? (void)(c0[r] = xsimd::fma(B(ak[r * ars]), b0, c0[r]),
                                                         c1[r] = xsimd::fma(B(ak[r * ars]), b1, c1[r]))
                                                : (void)0),
                     ...);
                }
            }
        }
        ((c0[r].store_unaligned(c + r * ldc), c1[r].store_unaligned(c + r * ldc + L)), ...);
    }
    (std::make_index_sequence<R>{});
}

/// C[rows × cols] (+)= A·B with cols a multiple of tile_width; with Limited, per-row k limits as in tile. Float
/// goes to the 512-bit tiles of gemm_avx512.hpp when the CPU has them (bit-identical results).
template <bool Acc, bool Limited, std::size_t ARS, std::size_t AKS, class T>
void gemm(std::size_t rows_, std::size_t cols, std::size_t K, const T* a, std::size_t ars, std::size_t aks, const T* b,
          std::size_t ldb, T* c, std::size_t ldc, const std::size_t* beg, const std::size_t* end) {
#if EXPRGRAD_HAS_AVX512_KERNELS
    if constexpr (std::is_same_v<T, float> && tile_width<T> == 16) {
        if (::exprgrad::kernels::avx512_enabled()) {
            gemm512<Acc, Limited, ARS, AKS>(rows_, cols, K, a, ars, aks, b, ldb, c, ldc, beg, end);
            return;
        }
    }
#endif
    constexpr std::size_t W = tile_width<T>;
    for (std::size_t j = 0; j < cols; j += W) {
        for (std::size_t r = 0; r < rows_; r += tile_rows) {
            const T* ar = a + r * ars;
            T* cr = c + r * ldc + j;
            const std::size_t* br = beg ? beg + r : nullptr;
            const std::size_t* er = end ? end + r : nullptr;
            switch (std::min(tile_rows, rows_ - r)) {
                case 6:
                    tile<6, Acc, Limited, ARS, AKS>(K, ar, ars, aks, b + j, ldb, cr, ldc, br, er);
                    break;
                case 5:
                    tile<5, Acc, Limited, ARS, AKS>(K, ar, ars, aks, b + j, ldb, cr, ldc, br, er);
                    break;
                case 4:
                    tile<4, Acc, Limited, ARS, AKS>(K, ar, ars, aks, b + j, ldb, cr, ldc, br, er);
                    break;
                case 3:
                    tile<3, Acc, Limited, ARS, AKS>(K, ar, ars, aks, b + j, ldb, cr, ldc, br, er);
                    break;
                case 2:
                    tile<2, Acc, Limited, ARS, AKS>(K, ar, ars, aks, b + j, ldb, cr, ldc, br, er);
                    break;
                default:
                    tile<1, Acc, Limited, ARS, AKS>(K, ar, ars, aks, b + j, ldb, cr, ldc, br, er);
                    break;
            }
        }
    }
}

/// gemm with a row-major A of leading dimension lda (a compile-time stride for the common lda = 64).
template <bool Acc, class T>
void gemm_rows(std::size_t rows_, std::size_t cols, std::size_t K, const T* a, std::size_t lda, const T* b,
               std::size_t ldb, T* c, std::size_t ldc) {
    if (lda == 64)
        gemm<Acc, false, 64, 1>(rows_, cols, K, a, lda, 1, b, ldb, c, ldc, nullptr, nullptr);
    else
        gemm<Acc, false, 0, 1>(rows_, cols, K, a, lda, 1, b, ldb, c, ldc, nullptr, nullptr);
}

/// C += A·B with A's strides fixed at compile time, and per-row k limits when beg (and end) are given.
template <std::size_t ARS, std::size_t AKS, class T>
void gemm_acc(std::size_t rows_, std::size_t cols, std::size_t K, const T* a, const T* b, std::size_t ldb, T* c,
              std::size_t ldc, const std::size_t* beg, const std::size_t* end) {
    if (beg)
        gemm<true, true, ARS, AKS>(rows_, cols, K, a, ARS, AKS, b, ldb, c, ldc, beg, end);
    else
        gemm<true, false, ARS, AKS>(rows_, cols, K, a, ARS, AKS, b, ldb, c, ldc, nullptr, nullptr);
}

}  // namespace exprgrad::kernels::tiles
