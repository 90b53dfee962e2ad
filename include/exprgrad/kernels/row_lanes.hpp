// The lane plumbing of the row kernels (kernels/softmax_rows.hpp, the GEMM tiles): the native xsimd batch of a
// value type, horizontal max and sum in a fixed order, and loads/stores of a partial batch at the end of a row.
#pragma once

#include <array>
#include <cstddef>
#include <type_traits>

#include <xsimd/xsimd.hpp>

namespace exprgrad::kernels::rows {

/// The native SIMD batch of T (8 floats or 4 doubles with AVX2).
template <class T>
using batch = xsimd::batch<T>;

/// Lanes of batch<T>.
template <class T>
inline constexpr std::size_t lanes = batch<T>::size;

/// The largest lane; xsimd 8.1 has no reduce_max. With AVX, a three-step shuffle tree (this runs once per row
/// per key block in the attention forward pass, where a scalar loop cost about 8% of the time); otherwise a
/// scalar loop. A NaN lane may or may not be the result: callers that must propagate NaN track it themselves
/// (rows::max does).
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

/// Sum of the lanes in a fixed order (lane 0 first).
template <class T>
inline T hsum(const batch<T>& x) {
    alignas(64) std::array<T, lanes<T>> a;
    x.store_aligned(a.data());
    T s = a[0];
    for (std::size_t i = 1; i < a.size(); ++i) s += a[i];
    return s;
}

/// x[i, i + lanes) as a batch, with lanes at or beyond n set to `pad` (never reads x[n] or later).
template <class T>
inline batch<T> load_tail(const T* x, std::size_t i, std::size_t n, T pad) {
    alignas(64) std::array<T, lanes<T>> a;
    for (std::size_t l = 0; l < a.size(); ++l) a[l] = i + l < n ? x[i + l] : pad;
    return batch<T>::load_aligned(a.data());
}

/// Stores the lanes of v that fall before n at x[i, n) (never writes x[n] or later).
template <class T>
inline void store_tail(const batch<T>& v, T* x, std::size_t i, std::size_t n) {
    alignas(64) std::array<T, lanes<T>> a;
    v.store_aligned(a.data());
    for (std::size_t l = 0; i + l < n && l < a.size(); ++l) x[i + l] = a[l];
}

}  // namespace exprgrad::kernels::rows
