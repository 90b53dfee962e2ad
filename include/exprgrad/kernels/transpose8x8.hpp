// An 8 × 8 float transpose in AVX registers, optionally scaling each source row: what packs matrices into the
// column blocks the register tiles read (attention's k̂ and v key blocks, the GEMM's transposed B panels).
#pragma once

#include "exprgrad/require_cxx20.hpp"  // first: refuses a standard older than C++20

#include <cstddef>

#if defined(__AVX__)
#include <immintrin.h>
#endif

namespace exprgrad::kernels {

#if defined(__AVX__)
/// dst[c·ldd + r] = src[r·lds + c]·(scale ? scale[r] : 1) for an 8 × 8 float block (scale may be null). A scalar
/// loop packing attention's k̂ and v into key-block columns cost 10% of a T = 128 forward + backward.
/// Example: `transpose8x8(a, 8, nullptr, t, 8)` for row-major 8 × 8 arrays a and t gives t = aᵀ.
inline void transpose8x8(const float* src, std::size_t lds, const float* scale, float* dst, std::size_t ldd) {
    // Written out: as loops over arrays g++ kept the 24 intermediate vectors on the stack.
    auto row = [&](int i) {
        const __m256 x = _mm256_loadu_ps(src + i * lds);
        return scale ? _mm256_mul_ps(x, _mm256_set1_ps(scale[i])) : x;
    };
    const __m256 r0 = row(0), r1 = row(1), r2 = row(2), r3 = row(3), r4 = row(4), r5 = row(5), r6 = row(6), r7 = row(7);
    // t: pairs of rows interleaved (columns 0, 1 | 4, 5 and 2, 3 | 6, 7)
    const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    // u: one column of four rows in each 128-bit half (column c | c + 4)
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(dst + 0 * ldd, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(dst + 1 * ldd, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(dst + 2 * ldd, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(dst + 3 * ldd, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(dst + 4 * ldd, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(dst + 5 * ldd, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(dst + 6 * ldd, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(dst + 7 * ldd, _mm256_permute2f128_ps(u3, u7, 0x31));
}
#endif

}  // namespace exprgrad::kernels
