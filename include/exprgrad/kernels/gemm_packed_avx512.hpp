// The 512-bit path of the packed GEMM (kernels/gemm_packed.hpp) for float, taken at run time where the CPU has
// AVX-512F (kernels/avx512_dispatch.hpp): the default x86-64-v3 build's 256-bit tile reaches at most half the
// FMA peak of a CPU with 512-bit FMA units, where OpenBLAS runs 512-bit kernels.
//
// Same scheme and same arithmetic as gemm_packed.hpp, wider: op(B) is packed per (K block, N block) into panels
// of 32 columns (two zmm, zero-padded at the edge), and a tile_rows × 32 register tile of FMAs runs over each
// strip of rows and each panel. op(A) is read in place when not transposed; Aᵀ (the "TN" product dW = Xᵀ·dY) is
// packed per (K block, M block) into strips of tile_rows values per k (for all of K at once when the rows fit
// one M block and several N blocks meet them), since reading it in place strides a row of A per k and, at
// power-of-two leading dimensions, the kb rows of a K block fall into a few L1 sets.
// Partial column panels use masked loads and stores (the masked-out lanes are never read nor written in C),
// partial row strips a shorter tile. Every element of C is, per K block (the caller's kc), one chain of fused
// multiply-adds over k in increasing order from zero, then added to C (or stored): the same operations in the
// same order as the 256-bit tile, so the two paths give the same bits (the tests compare them exactly), and the
// result does not depend on how the rows or columns are split between threads.
// Functions carry EXPRGRAD_AVX512_TARGET and use no lambdas (a lambda would not inherit the attribute).
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

#include <xsimd/xsimd.hpp>

#include "exprgrad/kernels/avx512_dispatch.hpp"
#include "exprgrad/kernels/transpose8x8.hpp"

namespace exprgrad::kernels::packed::avx512 {

/// Rows of the 512-bit register tile: 8 × 2 = 16 zmm accumulators, enough independent chains to cover the FMA
/// latency on two ports, and 8 divides the flagship's row counts (128, 512, 1024).
inline constexpr std::size_t tile_rows = 8;
/// Columns of the register tile and of a packed B panel: two zmm of 16 floats.
inline constexpr std::size_t panel_width = 32;
/// The M block: rows of A that meet one packed B block before the next (a multiple of tile_rows).
inline constexpr std::size_t mc = 128;

#if EXPRGRAD_HAS_AVX512_KERNELS

namespace detail {

// The calling thread's packing buffers (0: B, 1: Aᵀ), grown on demand and kept, as in gemm_packed.hpp.
inline float* scratch(int which, std::size_t size) {
    thread_local std::vector<float, xsimd::aligned_allocator<float, 64>> bufs[2];
    auto& v = bufs[which];
    if (v.size() < size) v.resize(size);
    return v.data();
}

// The lanes [0, n) of 16, n clamped to [0, 16].
EXPRGRAD_AVX512_TARGET inline __mmask16 lanes(std::size_t n) {
    return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1u);
}

// Rows of Aᵀ that pack_at copies at a time, across all strips.
inline constexpr std::size_t pack_rows = 8;

// Fetches `rows` rows of `cols` floats at stride ld into the cache ahead of their copy.
EXPRGRAD_AVX512_TARGET inline void prefetch_rows(const float* p, std::size_t ld, std::size_t rows, std::size_t cols) {
    for (std::size_t r = 0; r < rows; ++r, p += ld)
        for (std::size_t c = 0; c < cols; c += 16) __builtin_prefetch(p + c, 0, 3);
}

// op(B)[p0 + k, j0 + c] for k < kb, c < cols into panels of 32 columns (k-major rows of 32 values); columns
// past `cols` are zero.
EXPRGRAD_AVX512_TARGET inline void pack_b(bool tb, const float* b, std::size_t ldb, std::size_t p0, std::size_t j0,
                                          std::size_t kb, std::size_t cols, float* dst) {
    constexpr std::size_t W = panel_width;
    for (std::size_t q = 0; q < cols; q += W, dst += W * kb) {
        const std::size_t nc = std::min(W, cols - q);
        if (tb) {
            // op(B)(k, j) = b[j·ldb + k]: a transpose, read along k; 8 × 8 blocks in registers (one float at a time
            // was a quarter of the packing's time in tiny_lm's dX = dY·Wᵀ), the edges one by one
#if defined(__AVX__)
            const std::size_t nc8 = nc / 8 * 8, kb8 = kb / 8 * 8;
#else
            const std::size_t nc8 = 0, kb8 = 0;  // a build below AVX: the scalar loop below
#endif
            for (std::size_t c = 0; c < nc8; c += 8) {
                const float* s = b + (j0 + q + c) * ldb + p0;
#if defined(__AVX__)
                for (std::size_t k = 0; k < kb8; k += 8) transpose8x8(s + k, ldb, nullptr, dst + k * W + c, W);
#endif
                for (std::size_t r = 0; r < 8; ++r)
                    for (std::size_t k = kb8; k < kb; ++k) dst[k * W + c + r] = s[r * ldb + k];
            }
            for (std::size_t c = nc8; c < nc; ++c) {
                const float* s = b + (j0 + q + c) * ldb + p0;
                for (std::size_t k = 0; k < kb; ++k) dst[k * W + c] = s[k];
            }
            for (std::size_t k = 0; k < kb && nc < W; ++k) std::fill(dst + k * W + nc, dst + (k + 1) * W, 0.0f);
        } else {
            // masked loads read nothing past the matrix and give zeros there
            const __mmask16 m0 = lanes(nc), m1 = lanes(nc > 16 ? nc - 16 : 0);
            const float* s = b + p0 * ldb + j0 + q;
            for (std::size_t k = 0; k < kb; ++k, s += ldb) {
                _mm512_store_ps(dst + k * W, _mm512_maskz_loadu_ps(m0, s));
                _mm512_store_ps(dst + k * W + 16, _mm512_maskz_loadu_ps(m1, s + 16));
            }
        }
    }
}

// op(A) = Aᵀ, rows [i0, i0 + rows) and k in [p0, p0 + kb), into strips of tile_rows rows: strip s holds
// op(A)(i0 + s·tile_rows + r, p0 + k) at s·tile_rows·kb + k·tile_rows + r. A short last strip keeps the stride
// (its missing rows are never read).
EXPRGRAD_AVX512_TARGET inline void pack_at(const float* a, std::size_t lda, std::size_t p0, std::size_t i0,
                                           std::size_t kb, std::size_t rows, float* dst) {
    constexpr std::size_t R = tile_rows;
    static_assert(R <= 16);
    // a few rows of A at a time across all strips, the next rows prefetched: a strip at a time read 32 bytes
    // per row of A and waited on L3 (A of dW = Xᵀ·dY at M = 512 is 2 MiB); a row at a time wrote to every strip
    // at once, kb·32 bytes apart, into a few L1 sets. Measured (bench_gemm, TN, M = 512): 130 → 137 GFLOP/s.
    const float* src = a + p0 * lda + i0;
    for (std::size_t k0 = 0; k0 < kb; k0 += pack_rows) {
        const std::size_t k1 = std::min(kb, k0 + pack_rows);
        prefetch_rows(src + k1 * lda, lda, std::min(pack_rows, kb - k1), rows);
        for (std::size_t s = 0; s < rows; s += R) {
            const __mmask16 m = lanes(std::min(R, rows - s));
            for (std::size_t k = k0; k < k1; ++k)
                _mm512_mask_storeu_ps(dst + s * kb + k * R, m, _mm512_maskz_loadu_ps(m, src + k * lda + s));
        }
    }
}

// The register tile: C[R × 16·NV] (+)= op(A)·Bp over kb with Bp a packed panel; op(A)(r, k) at a[k·tile_rows + r]
// (PackedA) or a[r·lda + k]. Only the lanes of m0 (columns 0..15) and m1 (16..31) of C are read and written.
template <int R, int NV, bool Acc, bool PackedA>
EXPRGRAD_AVX512_TARGET inline void tile(std::size_t kb, const float* a, std::size_t lda, const float* bp, float* c,
                                        std::size_t ldc, __mmask16 m0, __mmask16 m1) {
    const std::size_t ars = PackedA ? 1 : lda, aks = PackedA ? tile_rows : 1;
    // C's lines are fetched while the FMAs run and added after them: the chains do not wait for C
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
        __builtin_prefetch(c + r * ldc, 1, 3);
        __builtin_prefetch(c + r * ldc + 16 * NV - 1, 1, 3);
    }
    __m512 acc[R][NV];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
    const float* ak = a;
    const float* bk = bp;
    for (std::size_t k = 0; k < kb; ++k, ak += aks, bk += panel_width) {
        __m512 bv[NV];
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v) bv[v] = _mm512_load_ps(bk + 16 * v);
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) {
            const __m512 x = _mm512_set1_ps(ak[r * ars]);
#pragma GCC unroll 2
            for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(x, bv[v], acc[r][v]);
        }
    }
    const __mmask16 m[2] = {m0, m1};
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v) {
            float* cr = c + r * ldc + 16 * v;
            __m512 s = acc[r][v];
            if constexpr (Acc) s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(m[v], cr));
            _mm512_mask_storeu_ps(cr, m[v], s);
        }
}

// Rows [0, rows) of one panel: whole tiles, then one shorter tile for the rest.
template <int NV, bool Acc, bool PackedA>
EXPRGRAD_AVX512_TARGET inline void strip(std::size_t rows, std::size_t kb, const float* a, std::size_t lda,
                                         const float* bp, float* c, std::size_t ldc, __mmask16 m0, __mmask16 m1) {
    constexpr std::size_t R = tile_rows;
    static_assert(R == 8);
    const std::size_t a_step = PackedA ? R * kb : R * lda;
    std::size_t i = 0;
    for (; i + R <= rows; i += R, a += a_step, c += R * ldc) tile<8, NV, Acc, PackedA>(kb, a, lda, bp, c, ldc, m0, m1);
    switch (rows - i) {
        case 7:
            tile<7, NV, Acc, PackedA>(kb, a, lda, bp, c, ldc, m0, m1);
            break;
        case 6:
            tile<6, NV, Acc, PackedA>(kb, a, lda, bp, c, ldc, m0, m1);
            break;
        case 5:
            tile<5, NV, Acc, PackedA>(kb, a, lda, bp, c, ldc, m0, m1);
            break;
        case 4:
            tile<4, NV, Acc, PackedA>(kb, a, lda, bp, c, ldc, m0, m1);
            break;
        case 3:
            tile<3, NV, Acc, PackedA>(kb, a, lda, bp, c, ldc, m0, m1);
            break;
        case 2:
            tile<2, NV, Acc, PackedA>(kb, a, lda, bp, c, ldc, m0, m1);
            break;
        case 1:
            tile<1, NV, Acc, PackedA>(kb, a, lda, bp, c, ldc, m0, m1);
            break;
        default:
            break;
    }
}

// A panel of `cols` ≤ 32 columns: one zmm per row when 16 suffice (half the FMAs at a narrow edge).
template <bool PackedA>
EXPRGRAD_AVX512_TARGET inline void panel(bool acc, std::size_t rows, std::size_t cols, std::size_t kb, const float* a,
                                         std::size_t lda, const float* bp, float* c, std::size_t ldc) {
    const __mmask16 m0 = lanes(cols), m1 = lanes(cols > 16 ? cols - 16 : 0);
    if (cols > 16) {
        if (acc)
            strip<2, true, PackedA>(rows, kb, a, lda, bp, c, ldc, m0, m1);
        else
            strip<2, false, PackedA>(rows, kb, a, lda, bp, c, ldc, m0, m1);
    } else {
        if (acc)
            strip<1, true, PackedA>(rows, kb, a, lda, bp, c, ldc, m0, m1);
        else
            strip<1, false, PackedA>(rows, kb, a, lda, bp, c, ldc, m0, m1);
    }
}

}  // namespace detail

/// C[i0 .. i1) × [j0 .. j1) of C (+)= op(A)·op(B) for float on the calling thread, with the arguments of
/// packed::gemm plus its K block kc and the bytes of its packed B block: the 512-bit counterpart of
/// packed::detail::gemm_range, giving the same bits. Requires a CPU with AVX-512F (avx512_enabled()); k ≥ 1.
/// NaN and infinities propagate as in the naive loop (zero padding only meets discarded lanes).
/// Example: gemm_range(true, false, 0, 128, 0, 384, 1024, x, 128, dy, 384, dw, 384, false, 256, 256 << 10)
/// is dW = Xᵀ·dY for X [1024, 128], dY [1024, 384].
EXPRGRAD_AVX512_TARGET inline void gemm_range(bool ta, bool tb, std::size_t i0, std::size_t i1, std::size_t j0,
                                              std::size_t j1, std::size_t k, const float* a, std::size_t lda,
                                              const float* b, std::size_t ldb, float* c, std::size_t ldc,
                                              bool accumulate, std::size_t kc, std::size_t b_block_bytes) {
    constexpr std::size_t W = panel_width, R = tile_rows;
    const std::size_t kcap = std::min(k, kc);
    // the N block: as many whole panels as fit b_block_bytes at this K block
    const std::size_t nc = std::max(W, b_block_bytes / sizeof(float) / kcap / W * W);
    const std::size_t n = j1 - j0;
    float* bpack = detail::scratch(0, kcap * std::min(nc, (n + W - 1) / W * W));
    // Aᵀ of a range of at most mc rows met by several N blocks (dW of a wide layer: 128 × 1024 × 1024) is packed
    // once for all of K, not once per N block; only up to 4 MiB (k is a batch's token count for dW, and the
    // per-thread buffer is kept)
    const std::size_t mr = (std::min(mc, i1 - i0) + R - 1) / R * R;
    const bool a_once = ta && i1 - i0 <= mc && n > nc && k * mr * sizeof(float) <= (std::size_t(4) << 20);
    float* apack = ta ? detail::scratch(1, (a_once ? k : kcap) * mr) : nullptr;
    if (a_once)
        for (std::size_t pc = 0; pc < k; pc += kc)
            detail::pack_at(a, lda, pc, i0, std::min(kc, k - pc), i1 - i0, apack + pc * mr);
    for (std::size_t jc = j0; jc < j1; jc += nc) {
        const std::size_t nb = std::min(nc, j1 - jc);
        for (std::size_t pc = 0; pc < k; pc += kc) {
            const std::size_t kb = std::min(kc, k - pc);
            const bool acc = accumulate || pc > 0;
            detail::pack_b(tb, b, ldb, pc, jc, kb, nb, bpack);
            for (std::size_t ic = i0; ic < i1; ic += mc) {
                const std::size_t mb = std::min(mc, i1 - ic);
                const float* ap = a_once ? apack + pc * mr : apack;
                if (ta && !a_once) detail::pack_at(a, lda, pc, ic, kb, mb, apack);
                for (std::size_t jr = 0; jr < nb; jr += W) {
                    const float* bp = bpack + jr * kb;
                    const std::size_t cols = std::min(W, nb - jr);
                    float* ct = c + ic * ldc + jc + jr;
                    if (ta)
                        detail::panel<true>(acc, mb, cols, kb, ap, 0, bp, ct, ldc);
                    else
                        detail::panel<false>(acc, mb, cols, kb, a + ic * lda + pc, lda, bp, ct, ldc);
                }
            }
        }
    }
}

#endif  // EXPRGRAD_HAS_AVX512_KERNELS

}  // namespace exprgrad::kernels::packed::avx512
