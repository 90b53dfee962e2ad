// SIMD building blocks of softmax over one row, shared by the attention kernels (ops/attention.hpp) and the
// scale analysis (ops/attention_scale.hpp), so that the analysis measures the very code the op runs.
//
// Every function has a fixed order of operations for a given n (lanes in order, then the lanes combined in
// order, then a tail that is padded into one more batch), so equal inputs give bit-equal results whatever
// thread runs them. Exponentials always go through sym::num::exp_batch (ours for double, xsimd::exp for float), tails
// included.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <limits>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#include "exprgrad/kernels/avx512_dispatch.hpp"
#include "exprgrad/sym/batch_exp.hpp"

namespace exprgrad::kernels::rows {

template <class T>
using batch = xsimd::batch<T>;

template <class T>
inline constexpr std::size_t lanes = batch<T>::size;

/// The largest lane; xsimd 8.1 has no reduce_max. With AVX, a three-step shuffle tree (this runs once per row
/// per key block in the forward pass, where a scalar loop cost about 8% of the time); otherwise a scalar loop.
/// A NaN lane may or may not be the result (the callers' exp turns a NaN row into NaN either way).
template <class T>
inline T hmax(const batch<T>& x) {
#if XSIMD_WITH_AVX
    if constexpr (std::is_same_v<T, float> && lanes<T> == 8) {
        const __m256 v = x;
        __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        m = _mm_max_ss(m, _mm_movehdup_ps(m));
        return _mm_cvtss_f32(m);
    } else if constexpr (std::is_same_v<T, double> && lanes<T> == 4) {
        const __m256d v = x;
        __m128d m = _mm_max_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
        m = _mm_max_sd(m, _mm_unpackhi_pd(m, m));
        return _mm_cvtsd_f64(m);
    }
#endif
    alignas(64) std::array<T, lanes<T>> a;
    x.store_aligned(a.data());
    T m = a[0];
    for (std::size_t i = 1; i < a.size(); ++i) m = (a[i] > m || m != m) ? a[i] : m;
    return m;
}

/// Sum of the lanes in a fixed order.
template <class T>
inline T hsum(const batch<T>& x) {
    alignas(64) std::array<T, lanes<T>> a;
    x.store_aligned(a.data());
    T s = a[0];
    for (std::size_t i = 1; i < a.size(); ++i) s += a[i];
    return s;
}

/// x[i, i + lanes) as a batch, with lanes at or beyond n set to `pad`.
template <class T>
inline batch<T> load_tail(const T* x, std::size_t i, std::size_t n, T pad) {
    alignas(64) std::array<T, lanes<T>> a;
    for (std::size_t l = 0; l < a.size(); ++l) a[l] = i + l < n ? x[i + l] : pad;
    return batch<T>::load_aligned(a.data());
}

template <class T>
inline void store_tail(const batch<T>& v, T* x, std::size_t i, std::size_t n) {
    alignas(64) std::array<T, lanes<T>> a;
    v.store_aligned(a.data());
    for (std::size_t l = 0; i + l < n && l < a.size(); ++l) x[i + l] = a[l];
}

#if EXPRGRAD_HAS_AVX512_KERNELS
/// 16-lane float versions of max and exp_shifted, taken when ::exprgrad::kernels::avx512_enabled().

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

EXPRGRAD_AVX512_TARGET inline float max16(const float* x, std::size_t n) {
    __m512 m = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    for (std::size_t i = 0; i < n; i += 16)
        m = _mm512_maskz_max_ps(all16, m, _mm512_mask_loadu_ps(m, tail_mask16(i, n), x + i));
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

EXPRGRAD_AVX512_TARGET inline float exp_shifted16(const float* x, float shift, float* p, std::size_t n) {
    const __m512 sh = _mm512_set1_ps(shift), ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    __m512 s = _mm512_setzero_ps();
    std::size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), sh));
        _mm512_storeu_ps(p + i, e);
        s = _mm512_add_ps(s, e);
    }
    if (i < n) {
        const __mmask16 m = tail_mask16(i, n);
        const __m512 e = exp16(_mm512_sub_ps(_mm512_mask_loadu_ps(ninf, m, x + i), sh));
        _mm512_mask_storeu_ps(p + i, m, e);
        s = _mm512_add_ps(s, e);
    }
    return sum16(s);
}
#endif

/// max_i x[i] over n ≥ 1 entries (−inf entries are ordinary values).
template <class T>
inline T max(const T* x, std::size_t n) {
#if EXPRGRAD_HAS_AVX512_KERNELS
    if constexpr (std::is_same_v<T, float>)
        if (::exprgrad::kernels::avx512_enabled()) return max16(x, n);
#endif
    constexpr T ninf = -std::numeric_limits<T>::infinity();
    batch<T> m(ninf);
    std::size_t i = 0;
    for (; i + lanes<T> <= n; i += lanes<T>) m = xsimd::max(m, batch<T>::load_unaligned(x + i));
    if (i < n) m = xsimd::max(m, load_tail(x, i, n, ninf));
    return hmax(m);
}

/// Σ_i a[i]·b[i].
template <class T>
inline T dot(const T* a, const T* b, std::size_t n) {
    batch<T> s(T(0));
    std::size_t i = 0;
    for (; i + lanes<T> <= n; i += lanes<T>)
        s = xsimd::fma(batch<T>::load_unaligned(a + i), batch<T>::load_unaligned(b + i), s);
    if (i < n) s = xsimd::fma(load_tail(a, i, n, T(0)), load_tail(b, i, n, T(0)), s);
    return hsum(s);
}

/// p[i] = exp(x[i] − shift) for i < n, returning Σ_i p[i]. x and p may alias. exp(−inf) = 0.
/// Float with AVX-512 (avx512_enabled): 16 lanes and exp16 below (≤ 2 ulp) instead of xsimd::exp.
template <class T>
inline T exp_shifted(const T* x, T shift, T* p, std::size_t n) {
#if EXPRGRAD_HAS_AVX512_KERNELS
    if constexpr (std::is_same_v<T, float>)
        if (::exprgrad::kernels::avx512_enabled()) return exp_shifted16(x, shift, p, n);
#endif
    const batch<T> sh(shift);
    batch<T> s(T(0));
    std::size_t i = 0;
    for (; i + lanes<T> <= n; i += lanes<T>) {
        const batch<T> e = ::exprgrad::sym::num::exp_batch(batch<T>::load_unaligned(x + i) - sh);
        e.store_unaligned(p + i);
        s += e;
    }
    if (i < n) {
        const batch<T> e =
            ::exprgrad::sym::num::exp_batch(load_tail(x, i, n, -std::numeric_limits<T>::infinity()) - sh);
        store_tail(e, p, i, n);
        s += e;
    }
    return hsum(s);
}

/// x[i] ← x[i]·c for i < n.
template <class T>
inline void scale(T* x, T c, std::size_t n) {
    const batch<T> cb(c);
    std::size_t i = 0;
    for (; i + lanes<T> <= n; i += lanes<T>) (batch<T>::load_unaligned(x + i) * cb).store_unaligned(x + i);
    for (; i < n; ++i) x[i] *= c;
}

/// y[i] = x[i]·c for i < n (x and y may alias).
template <class T>
inline void scale_into(const T* x, T c, T* y, std::size_t n) {
    const batch<T> cb(c);
    std::size_t i = 0;
    for (; i + lanes<T> <= n; i += lanes<T>) (batch<T>::load_unaligned(x + i) * cb).store_unaligned(y + i);
    for (; i < n; ++i) y[i] = x[i] * c;
}

/// The softmax VJP on one row: out[i] = p[i]·(g[i] − D) for i < n, where p = softmax(z), g = ∂L/∂p and
/// D = Σ_j p[j]·g[j] (pass it in: attention computes it as dO·O, which equals Σ p·g). Then out = ∂L/∂z.
/// out may alias p or g.
template <class T>
inline void softmax_vjp(const T* p, const T* g, T D, T* out, std::size_t n) {
    const batch<T> db(D);
    std::size_t i = 0;
    for (; i + lanes<T> <= n; i += lanes<T>)
        (batch<T>::load_unaligned(p + i) * (batch<T>::load_unaligned(g + i) - db)).store_unaligned(out + i);
    if (i < n) store_tail(load_tail(p, i, n, T(0)) * (load_tail(g, i, n, T(0)) - db), out, i, n);
}

/// Softmax of alpha·x over n ≥ 1 entries into p (p may alias x); returns log Σ exp(alpha·x). Stable: the
/// largest term is shifted to 0. When every alpha·x[i] is −inf, p is all zero and the result is −inf.
template <class T>
inline T softmax(const T* x, T alpha, T* p, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) p[i] = alpha * x[i];
    const T m = max(p, n);
    if (m == -std::numeric_limits<T>::infinity()) {
        std::fill(p, p + n, T(0));
        return m;
    }
    const T s = exp_shifted(p, m, p, n);
    scale(p, T(1) / s, n);
    return m + std::log(s);
}

}  // namespace exprgrad::kernels::rows
