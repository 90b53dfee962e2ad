// A packed general matrix product of our own: C (+)= op(A)·op(B), row-major, op(X) = X or Xᵀ, written for the
// float GEMMs of tiny_lm's linear layers ([1024, 128]·[128, 384] and their backward products) to see whether it
// beats OpenBLAS there. With 256-bit FMAs it does not clearly (bench/bench_gemm.cpp, docs/benchmarks.md under
// issue 18). For float on a CPU with AVX-512F, gemm() takes the 512-bit path of kernels/gemm_packed_avx512.hpp
// (chosen at run time, the same bits): on an Emerald Rapids core it is ahead of OpenBLAS's SkylakeX kernels on 14
// of the 15 flagship shapes, hot and cold, and level on the 15th (a dW = Xᵀ·dY). This kernel is the baseline for
// fusing a GEMM with its neighbours.
// Scheme: op(B) is packed per (K block, N block) into panels of tile_width columns (zero-padded at the edge)
// in an aligned per-thread buffer that grows and is then reused (the steady state allocates nothing); op(A) is
// read in place (packing it cost more than it saved at these shapes); a tile_rows × tile_width register tile
// of FMAs runs over each strip of rows and each panel. Partial column tiles go through a small buffer, partial
// row tiles use a shorter tile. Every element of C is, per K block, one chain of fused multiply-adds over k in
// increasing order from zero, then added to C (or stored), so the result does not depend on the thread count.
// With several threads (kernels/parallel.hpp) the rows, or the columns when there are more tiles of them, are
// split into contiguous tile-aligned ranges.
#pragma once

#include <algorithm>
#include <cstddef>
#include <type_traits>
#include <utility>
#include <vector>

#include <xsimd/xsimd.hpp>

#include "exprgrad/kernels/avx512_dispatch.hpp"
#include "exprgrad/kernels/gemm_packed_avx512.hpp"
#include "exprgrad/kernels/parallel.hpp"
#include "exprgrad/kernels/row_lanes.hpp"

namespace exprgrad::kernels::packed {

/// Rows of the register tile.
inline constexpr std::size_t tile_rows = 6;
/// Columns of the register tile: two SIMD batches (16 floats with AVX2).
template <class T>
inline constexpr std::size_t tile_width = 2 * rows::lanes<T>;
/// The K block: a strip of A (tile_rows × kc) and a B panel (kc × tile_width) stay in L1.
inline constexpr std::size_t kc = 256;
/// The M block: the rows of A (mc × kc) that one packed B panel meets before the next; they stay in L2.
inline constexpr std::size_t mc = 72;
/// Bytes of the packed B block (kc × nc): about half of a 512 KiB L2.
inline constexpr std::size_t b_block_bytes = 256 * 1024;

namespace detail {

template <class T>
using aligned_vector = std::vector<T, xsimd::aligned_allocator<T, 64>>;

// The calling thread's packing buffers, grown on demand and kept: pool workers live as long as the pool.
template <class T>
T* buffer(int which, std::size_t size) {
    thread_local aligned_vector<T> bufs[2];
    aligned_vector<T>& v = bufs[which];
    if (v.size() < size) v.resize(size);
    return v.data();
}

// op(B)[p0 + k, j0 + c] for k < kb, c < cols into panels of tile_width columns (k-major rows of tile_width
// values); columns past `cols` are zero.
template <class T>
void pack_b(bool tb, const T* b, std::size_t ldb, std::size_t p0, std::size_t j0, std::size_t kb, std::size_t cols,
            T* dst) {
    constexpr std::size_t W = tile_width<T>;
    for (std::size_t q = 0; q < cols; q += W, dst += W * kb) {
        const std::size_t nc = std::min(W, cols - q);
        if (tb) {
            // op(B)(k, j) = b[j * ldb + k]: a transpose, read along k
            for (std::size_t c = 0; c < nc; ++c) {
                const T* s = b + (j0 + q + c) * ldb + p0;
                for (std::size_t k = 0; k < kb; ++k) dst[k * W + c] = s[k];
            }
            for (std::size_t c = nc; c < W; ++c)
                for (std::size_t k = 0; k < kb; ++k) dst[k * W + c] = T(0);
        } else if (nc == W) {
            for (std::size_t k = 0; k < kb; ++k) std::copy_n(b + (p0 + k) * ldb + j0 + q, W, dst + k * W);
        } else {
            for (std::size_t k = 0; k < kb; ++k) {
                std::copy_n(b + (p0 + k) * ldb + j0 + q, nc, dst + k * W);
                std::fill(dst + k * W + nc, dst + (k + 1) * W, T(0));
            }
        }
    }
}

// The register tile: C[R × tile_width] (+)= op(A)·Bp over kb, with op(A)(r, k) = a[r·ars + k·aks] read in
// place (ARS, AKS: the strides when known at compile time, 0: use ars_, aks_) and Bp a packed panel.
template <std::size_t R, bool Acc, std::size_t ARS, std::size_t AKS, class T>
inline void tile(std::size_t kb, const T* a, std::size_t ars_, std::size_t aks_, const T* bp, T* c, std::size_t ldc) {
    using B = xsimd::batch<T>;
    constexpr std::size_t L = B::size, W = tile_width<T>;
    const std::size_t ars = ARS ? ARS : ars_, aks = AKS ? AKS : aks_;
    [&]<std::size_t... r>(std::index_sequence<r...>) {
        // C's lines are fetched while the FMAs run (in a training step they are rarely in cache), and added
        // after them: the chain does not wait for C
        ((__builtin_prefetch(c + r * ldc, 1, 3), __builtin_prefetch(c + r * ldc + W - 1, 1, 3)), ...);
        B c0[R], c1[R];
        ((c0[r] = B(T(0)), c1[r] = B(T(0))), ...);
        // local pointers: advancing the captured a and bp made GCC store them back every step
        const T* ak = a;
        const T* bk = bp;
        for (std::size_t k = 0; k < kb; ++k, ak += aks, bk += W) {
            const B b0 = B::load_aligned(bk), b1 = B::load_aligned(bk + L);
            ((c0[r] = xsimd::fma(B(ak[r * ars]), b0, c0[r]), c1[r] = xsimd::fma(B(ak[r * ars]), b1, c1[r])), ...);
        }
        if constexpr (Acc) {
            ((c0[r] += B::load_unaligned(c + r * ldc), c1[r] += B::load_unaligned(c + r * ldc + L)), ...);
        }
        ((c0[r].store_unaligned(c + r * ldc), c1[r].store_unaligned(c + r * ldc + L)), ...);
    }
    (std::make_index_sequence<R>{});
}

// One column strip of tiles over rows [0, rows): whole tiles in place, the last rows with a shorter tile; a strip
// of fewer than tile_width columns goes through a buffer (loaded from C when accumulating, so the arithmetic is
// the interior tiles').
template <std::size_t ARS, std::size_t AKS, class T>
void strip(bool acc, std::size_t rows, std::size_t cols, std::size_t kb, const T* a, std::size_t ars, std::size_t aks,
           const T* bp, T* c, std::size_t ldc) {
    constexpr std::size_t R = tile_rows, W = tile_width<T>;
    auto run = [&]<std::size_t N>(std::integral_constant<std::size_t, N>, const T* ar, T* cr, std::size_t ld) {
        if (acc)
            tile<N, true, ARS, AKS>(kb, ar, ars, aks, bp, cr, ld);
        else
            tile<N, false, ARS, AKS>(kb, ar, ars, aks, bp, cr, ld);
    };
    auto one = [&](std::size_t n, const T* ar, T* cr, std::size_t ld) {
        switch (n) {
            case 6:
                run(std::integral_constant<std::size_t, 6>{}, ar, cr, ld);
                break;
            case 5:
                run(std::integral_constant<std::size_t, 5>{}, ar, cr, ld);
                break;
            case 4:
                run(std::integral_constant<std::size_t, 4>{}, ar, cr, ld);
                break;
            case 3:
                run(std::integral_constant<std::size_t, 3>{}, ar, cr, ld);
                break;
            case 2:
                run(std::integral_constant<std::size_t, 2>{}, ar, cr, ld);
                break;
            default:
                run(std::integral_constant<std::size_t, 1>{}, ar, cr, ld);
                break;
        }
    };
    static_assert(R == 6);
    for (std::size_t i = 0; i < rows; i += R) {
        const std::size_t n = std::min(R, rows - i);
        const T* ar = a + i * (ARS ? ARS : ars);
        if (cols == W) {
            one(n, ar, c + i * ldc, ldc);
        } else {
            alignas(64) T t[R * W] = {};  // zeroed: the tile also reads (and discards) the columns past cols
            if (acc)
                for (std::size_t r = 0; r < n; ++r) std::copy_n(c + (i + r) * ldc, cols, t + r * W);
            one(n, ar, t, W);
            for (std::size_t r = 0; r < n; ++r) std::copy_n(t + r * W, cols, c + (i + r) * ldc);
        }
    }
}

// C[i0 .. i1) × [j0 .. j1) of the product, on the calling thread.
template <class T>
void gemm_range(bool ta, bool tb, std::size_t i0, std::size_t i1, std::size_t j0, std::size_t j1, std::size_t k,
                const T* a, std::size_t lda, const T* b, std::size_t ldb, T* c, std::size_t ldc, bool accumulate) {
    constexpr std::size_t W = tile_width<T>;
    const std::size_t kcap = std::min(k, kc);
    // the N block: as many whole panels as fit b_block_bytes at this K block
    const std::size_t nc = std::max(W, b_block_bytes / sizeof(T) / kcap / W * W);
    const std::size_t n = j1 - j0;
    T* bpack = buffer<T>(0, kcap * std::min(nc, (n + W - 1) / W * W));
    for (std::size_t jc = j0; jc < j1; jc += nc) {
        const std::size_t nb = std::min(nc, j1 - jc);
        for (std::size_t pc = 0; pc < k; pc += kc) {
            const std::size_t kb = std::min(kc, k - pc);
            const bool acc = accumulate || pc > 0;
            pack_b(tb, b, ldb, pc, jc, kb, nb, bpack);
            for (std::size_t ic = i0; ic < i1; ic += mc) {
                const std::size_t mb = std::min(mc, i1 - ic);
                for (std::size_t jr = 0; jr < nb; jr += W) {
                    const T* bp = bpack + jr * kb;
                    const std::size_t cols = std::min(W, nb - jr);
                    T* ct = c + ic * ldc + jc + jr;
                    if (ta)
                        strip<1, 0>(acc, mb, cols, kb, a + pc * lda + ic, 1, lda, bp, ct, ldc);
                    else
                        strip<0, 1>(acc, mb, cols, kb, a + ic * lda + pc, lda, 1, bp, ct, ldc);
                }
            }
        }
    }
}

}  // namespace detail

/// C = op(A)·op(B) (accumulate = false) or C += op(A)·op(B) (accumulate = true), row-major: op(A) is M×K,
/// op(B) K×N, C M×N with leading dimension ldc; op(A) = A (A is M×K, leading dimension lda) or Aᵀ (ta: A is
/// K×M), likewise op(B) (tb: B is N×K). Any sizes, including 0 (K = 0 sets C to zero or leaves it); C must not
/// overlap A or B. Without accumulate C is only written, so it may hold anything (NaN) before. NaN and
/// infinities propagate as in the naive triple loop: every C[i, j] is a chain of FMAs over k (one chain per block
/// of 256 k, added in order), and the zero padding of partial tiles only ever meets results that are discarded.
/// For float where avx512_enabled() (kernels/avx512_dispatch.hpp) it runs 512-bit tiles, with the same bits as
/// the 256-bit ones. Runs on the pool's threads (kernels/parallel.hpp) when there is enough work; from inside a
/// parallel region, on the calling thread.
/// Example: gemm(false, true, 1024, 128, 384, g, 384, w, 384, dx, 128, false) is dX = G·Wᵀ for W [128, 384].
template <class T>
void gemm(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, const T* a, std::size_t lda, const T* b,
          std::size_t ldb, T* c, std::size_t ldc, bool accumulate) {
    if (m == 0 || n == 0) return;
    if (k == 0) {
        if (!accumulate)
            for (std::size_t i = 0; i < m; ++i) std::fill_n(c + i * ldc, n, T(0));
        return;
    }
    // about 2 MFLOP per thread at least: below that the pool's start costs more than it saves
    const std::size_t per_thread = 1u << 20;
    const std::size_t threads = std::min(num_threads(), std::max<std::size_t>(1, m * n * k / per_thread));
    // float on a CPU with AVX-512F: the 512-bit tile (kernels/gemm_packed_avx512.hpp), the same bits
    bool wide = false;
#if EXPRGRAD_HAS_AVX512_KERNELS
    if constexpr (std::is_same_v<T, float>) wide = avx512_enabled();
#endif
    const std::size_t R = wide ? avx512::tile_rows : tile_rows, W = wide ? avx512::panel_width : tile_width<T>;
    // split the longer side into whole tiles
    const bool by_rows = m / R >= n / W;
    const std::size_t unit = by_rows ? R : W, units = ((by_rows ? m : n) + unit - 1) / unit;
    parallel_for(
        0, units, 1,
        [&](std::size_t lo, std::size_t hi) {
            const std::size_t i0 = by_rows ? lo * R : 0, i1 = by_rows ? std::min(m, hi * R) : m;
            const std::size_t j0 = by_rows ? 0 : lo * W, j1 = by_rows ? n : std::min(n, hi * W);
#if EXPRGRAD_HAS_AVX512_KERNELS
            if constexpr (std::is_same_v<T, float>)
                if (wide) {
                    avx512::gemm_range(ta, tb, i0, i1, j0, j1, k, a, lda, b, ldb, c, ldc, accumulate, kc,
                                       b_block_bytes);
                    return;
                }
#endif
            detail::gemm_range(ta, tb, i0, i1, j0, j1, k, a, lda, b, ldb, c, ldc, accumulate);
        },
        threads);
}

}  // namespace exprgrad::kernels::packed
