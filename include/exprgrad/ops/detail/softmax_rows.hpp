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

#include "exprgrad/sym/batch_exp.hpp"

namespace exprgrad::detail::rows {

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

/// max_i x[i] over n ≥ 1 entries (−inf entries are ordinary values).
template <class T>
inline T max(const T* x, std::size_t n) {
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
template <class T>
inline T exp_shifted(const T* x, T shift, T* p, std::size_t n) {
    const batch<T> sh(shift);
    batch<T> s(T(0));
    std::size_t i = 0;
    for (; i + lanes<T> <= n; i += lanes<T>) {
        const batch<T> e = ::exprgrad::sym::num::exp_batch(batch<T>::load_unaligned(x + i) - sh);
        e.store_unaligned(p + i);
        s += e;
    }
    if (i < n) {
        const batch<T> e = ::exprgrad::sym::num::exp_batch(load_tail(x, i, n, -std::numeric_limits<T>::infinity()) - sh);
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

}  // namespace exprgrad::detail::rows
