// The 16-lane float row pieces that the row kernels (kernels/softmax_rows.hpp) and the fused attention tiles
// (kernels/softmax_block_avx512.hpp) take when ::exprgrad::kernels::avx512_enabled(): tail masks, the row
// maximum, the lane sum and e^x in 512-bit registers. Compiled with a target attribute (the default build is
// x86-64-v3), so they run only on a CPU with AVX-512F.
#pragma once

#include <cstddef>
#include <limits>

#include "exprgrad/kernels/avx512_dispatch.hpp"

namespace exprgrad::kernels::rows {

#if EXPRGRAD_HAS_AVX512_KERNELS
/// Lanes [i, min(i + 16, n)) of a row.
EXPRGRAD_AVX512_TARGET inline __mmask16 tail_mask16(std::size_t i, std::size_t n) {
    return n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1u);
}

// GCC 12's plain max/min/roundscale/scalef/extract intrinsics pass an _mm512_undefined_ps() that -Werror's
// uninitialized checks reject (GCC bug 105593); the all-ones zero-masking forms compute the same.
inline constexpr __mmask16 all16 = 0xFFFF;

/// The lower and the upper 8 lanes.
EXPRGRAD_AVX512_TARGET inline __m256 low8(__m512 v) {
    return _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xFF, _mm512_castps_pd(v), 0));
}
EXPRGRAD_AVX512_TARGET inline __m256 high8(__m512 v) {
    return _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xFF, _mm512_castps_pd(v), 1));
}

/// max_i x[i] over n entries, −inf for n = 0, NaN when some x[i] is NaN (maxps alone would drop it: it returns
/// its second operand when one is NaN, so a NaN lane is overwritten by the next batch).
EXPRGRAD_AVX512_TARGET inline float max16(const float* x, std::size_t n) {
    __m512 m = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    __mmask16 nan = 0;
    for (std::size_t i = 0; i < n; i += 16) {
        const __m512 v = _mm512_mask_loadu_ps(m, tail_mask16(i, n), x + i);
        nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        m = _mm512_maskz_max_ps(all16, m, v);
    }
    if (nan) return std::numeric_limits<float>::quiet_NaN();
    const __m256 h = _mm256_max_ps(low8(m), high8(m));
    __m128 q = _mm_max_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    q = _mm_max_ps(q, _mm_movehl_ps(q, q));
    q = _mm_max_ss(q, _mm_movehdup_ps(q));
    return _mm_cvtss_f32(q);
}

/// Σ of the 16 lanes in a fixed order (halves, then quarters, …).
EXPRGRAD_AVX512_TARGET inline float sum16(__m512 v) {
    const __m256 h = _mm256_add_ps(low8(v), high8(v));
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    q = _mm_add_ss(q, _mm_movehdup_ps(q));
    return _mm_cvtss_f32(q);
}

/// e^y for 16 floats: y = k·ln 2 + r with k = round(y/ln 2) (ln 2 split in two so k·ln2_hi is exact),
/// e^r by its Taylor polynomial of degree 7 (|r| ≤ 0.35: truncation below 1e-8 relative), then
/// scalef(e^r, k) = e^r·2^k, which rounds subnormal results once and saturates to 0 and inf. y is first
/// clamped to [−110, 100] (e^y is 0 or inf beyond) with max/min ordered so that a NaN lane stays NaN.
/// Within 2 ulp of the correctly rounded value (tests/ops/test_attention.cpp checks it against std::exp).
EXPRGRAD_AVX512_TARGET inline __m512 exp16(__m512 y) {
    y = _mm512_maskz_max_ps(all16, _mm512_set1_ps(-110.0f), y);  // maxps returns its second operand if one is NaN
    y = _mm512_maskz_min_ps(all16, _mm512_set1_ps(100.0f), y);
    const __m512 k = _mm512_maskz_roundscale_ps(all16, _mm512_mul_ps(y, _mm512_set1_ps(1.44269504088896341f)),
                                                _MM_FROUND_TO_NEAREST_INT);
    __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693359375f), y);
    r = _mm512_fnmadd_ps(k, _mm512_set1_ps(-2.12194440054690583e-4f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_maskz_scalef_ps(all16, p, k);
}

/// tanh(x) for 16 floats, for the 512-bit flex attention rows (attn::softcap's C·tanh(score/C)).
/// For |x| < 0.625: x + x³·P(x²), P the degree-4 minimax fit to (tanh(a) − a)/a³ on [0, 0.625] (relative error
/// 4.4e-9 of tanh, below float's rounding). Above: 1 − 2/(e^(2|x|) + 1) through exp16, with x's sign put back
/// (the second form is computed only when a lane needs it). Odd: tanh16(−x) = −tanh16(x) bit for bit, and
/// tanh16(−0) = −0. Saturates exactly: ±1 from |x| ≈ 9.01 on, where std::tanh rounded to float is ±1, and for
/// ±inf. NaN in, NaN out (the compare sends NaN to the second form, which keeps it). Error against std::tanh in
/// double, measured over every positive float: at most 1.37 ulp of the float result (at x ≈ 0.6302);
/// tests/ops/test_flex_attention_float.cpp asserts 2 ulp over every 61st float and the ranges near the switch
/// and the saturation. Example: tanh16(set1(0.5f)) gives 0.46211716f in every lane.
EXPRGRAD_AVX512_TARGET inline __m512 tanh16(__m512 x) {
    // x + x³·P(x²) has x's sign (the common case needs no |x|) but gives +0 at x = −0: x's sign bit is put back
    // on every lane at the end.
    const __m512 z = _mm512_mul_ps(x, x);
    __m512 p = _mm512_set1_ps(-0.005704987328499556f);
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(0.0206390880048275f));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-0.05373971536755562f));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(0.13331441581249237f));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-0.3333328068256378f));
    __m512 t = _mm512_fmadd_ps(_mm512_mul_ps(p, z), x, x);
    // Bitwise float operations are AVX-512DQ's, the integer ones AVX-512F's (zero-masking forms: GCC bug 105593).
    const __m512i sign = _mm512_set1_epi32(static_cast<int>(0x80000000u)), xi = _mm512_castps_si512(x);
    // Lanes with x² not below 0.625² (= 0.390625 exactly), NaN included (the unordered "not less than").
    const __mmask16 big = _mm512_cmp_ps_mask(z, _mm512_set1_ps(0.390625f), _CMP_NLT_UQ);
    if (big) {
        const __m512 a = _mm512_castsi512_ps(_mm512_maskz_andnot_epi32(all16, sign, xi));
        const __m512 one = _mm512_set1_ps(1.0f);
        const __m512 e = exp16(_mm512_add_ps(a, a));
        t = _mm512_mask_mov_ps(t, big, _mm512_sub_ps(one, _mm512_div_ps(_mm512_set1_ps(2.0f), _mm512_add_ps(e, one))));
    }
    const __m512i xs = _mm512_maskz_and_epi32(all16, sign, xi);
    return _mm512_castsi512_ps(_mm512_maskz_or_epi32(all16, _mm512_castps_si512(t), xs));
}

/// Σ_i e^(x[i] − shift) over i < n, storing each term at p[i] when Store (x and p may alias).
template <bool Store = true>
EXPRGRAD_AVX512_TARGET inline float exp_shifted16(const float* x, float shift, float* p, std::size_t n) {
    const __m512 sh = _mm512_set1_ps(shift), ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    __m512 s = _mm512_setzero_ps();
    std::size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), sh));
        if constexpr (Store) _mm512_storeu_ps(p + i, e);
        s = _mm512_add_ps(s, e);
    }
    if (i < n) {
        const __mmask16 m = tail_mask16(i, n);
        const __m512 e = exp16(_mm512_sub_ps(_mm512_mask_loadu_ps(ninf, m, x + i), sh));
        if constexpr (Store) _mm512_mask_storeu_ps(p + i, m, e);
        s = _mm512_add_ps(s, e);
    }
    return sum16(s);
}
#endif

}  // namespace exprgrad::kernels::rows
