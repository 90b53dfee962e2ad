// Row statistics of the normalizations (tensors/norm.hpp) in SIMD: sums over one row accumulated in double
// lanes (each float widened exactly before it is multiplied), and the per-element updates in the value type.
// The double accumulators keep the normalizations' contract (row statistics in double); four lanes times two
// accumulators only reorder the additions, so the results differ from a serial double sum by a few double
// ulps, far below float's resolution.
#pragma once

#include "exprgrad/require_cxx20.hpp"  // first: refuses a standard older than C++20

#include <cstddef>
#include <type_traits>

#include <xsimd/xsimd.hpp>
#if defined(__AVX__)
#include <immintrin.h>
#endif

namespace exprgrad::kernels {

namespace detail {
// Entries p[0 .. D::size) widened to double. xsimd's converting load goes through a stack buffer for
// float -> double; one vcvtps2pd does it in a register.
template <class T>
xsimd::batch<double> load_double(const T* p) {
    using D = xsimd::batch<double>;
#if defined(__AVX512F__)
    if constexpr (std::is_same_v<T, float> && D::size == 8) return D(_mm512_cvtps_pd(_mm256_loadu_ps(p)));
#endif
#if defined(__AVX__)
    if constexpr (std::is_same_v<T, float> && D::size == 4) return D(_mm256_cvtps_pd(_mm_loadu_ps(p)));
#endif
    return D::load_unaligned(p);
}

// Σ_j f(j) over n entries, f(j) a product of entries read as double: two double-batch accumulators
// (term(j, acc) adds the terms j .. j + D::size − 1 to acc), then a serial tail (scalar(j)).
template <class Term, class Scalar>
double double_lane_sum(std::size_t n, Term&& term, Scalar&& scalar) {
    using D = xsimd::batch<double>;
    constexpr std::size_t W = D::size;
    D a0(0.0), a1(0.0);
    std::size_t j = 0;
    for (; j + 2 * W <= n; j += 2 * W) {
        a0 = term(j, a0);
        a1 = term(j + W, a1);
    }
    if (j + W <= n) {
        a0 = term(j, a0);
        j += W;
    }
    double s = xsimd::hadd(a0 + a1);
    for (; j < n; ++j) s += scalar(j);
    return s;
}
}  // namespace detail

/// Σ_j x_j² over a row of n entries, accumulated in double.
/// Example: sum_squares_double(x, 3) with x = {1, 2, 2} is 9. NaN or inf in x gives NaN or inf.
template <class T>
double sum_squares_double(const T* x, std::size_t n) {
    using D = xsimd::batch<double>;
    return detail::double_lane_sum(
        n,
        [x](std::size_t j, D acc) {
            const D v = detail::load_double(x + j);
            return xsimd::fma(v, v, acc);
        },
        [x](std::size_t j) { return static_cast<double>(x[j]) * static_cast<double>(x[j]); });
}

/// Σ_j a_j b_j c_j over a row of n entries, accumulated in double (each product formed in double).
/// Example: a = {1, 2}, b = {3, 4}, c = {1, 1} gives 11. NaN or inf in any input gives NaN or inf.
template <class T>
double triple_dot_double(const T* a, const T* b, const T* c, std::size_t n) {
    using D = xsimd::batch<double>;
    return detail::double_lane_sum(
        n,
        [a, b, c](std::size_t j, D acc) {
            return xsimd::fma(detail::load_double(a + j) * detail::load_double(b + j), detail::load_double(c + j), acc);
        },
        [a, b, c](std::size_t j) {
            return static_cast<double>(a[j]) * static_cast<double>(b[j]) * static_cast<double>(c[j]);
        });
}

/// y_j = x_j · s · w_j for a row of n entries (RMSNorm's output: s the row's 1 / rms).
/// Example: x = {2, 4}, s = 0.5, w = {1, 3} gives y = {1, 6}. NaN propagates per entry.
template <class T>
void scale_row(const T* x, T s, const T* w, T* y, std::size_t n) {
    using B = xsimd::batch<T>;
    constexpr std::size_t W = B::size;
    const B sb(s);
    std::size_t j = 0;
    for (; j + W <= n; j += W) (B::load_unaligned(x + j) * sb * B::load_unaligned(w + j)).store_unaligned(y + j);
    for (; j < n; ++j) y[j] = x[j] * s * w[j];
}

/// dx_j (=|+=) r · g_j · w_j − c · x_j for a row of n entries (RMSNorm's input gradient, c = r³ · mean(g w x)).
/// add selects += (accumulate into dx) over = (assign). NaN propagates per entry.
template <class T>
void rms_norm_input_grad_row(const T* g, const T* w, const T* x, T r, T c, T* dx, std::size_t n, bool add) {
    using B = xsimd::batch<T>;
    constexpr std::size_t W = B::size;
    const B rb(r), cb(c);
    std::size_t j = 0;
    if (add) {
        for (; j + W <= n; j += W) {
            const B v =
                xsimd::fms(rb * B::load_unaligned(g + j), B::load_unaligned(w + j), cb * B::load_unaligned(x + j));
            (B::load_unaligned(dx + j) + v).store_unaligned(dx + j);
        }
        for (; j < n; ++j) dx[j] += r * g[j] * w[j] - c * x[j];
    } else {
        for (; j + W <= n; j += W) {
            const B v =
                xsimd::fms(rb * B::load_unaligned(g + j), B::load_unaligned(w + j), cb * B::load_unaligned(x + j));
            v.store_unaligned(dx + j);
        }
        for (; j < n; ++j) dx[j] = r * g[j] * w[j] - c * x[j];
    }
}

/// acc_j += g_j · x_j · s for a row of n entries (a normalization weight's gradient, summed over rows).
/// Example: g = {1, 2}, x = {3, 1}, s = 2 adds {6, 4}. NaN propagates per entry.
template <class T>
void add_scaled_product_row(const T* g, const T* x, T s, T* acc, std::size_t n) {
    using B = xsimd::batch<T>;
    constexpr std::size_t W = B::size;
    const B sb(s);
    std::size_t j = 0;
    for (; j + W <= n; j += W)
        xsimd::fma(B::load_unaligned(g + j) * B::load_unaligned(x + j), sb, B::load_unaligned(acc + j))
            .store_unaligned(acc + j);
    for (; j < n; ++j) acc[j] += g[j] * x[j] * s;
}

}  // namespace exprgrad::kernels
