// SIMD loops over contiguous arrays that the nodes share: fill, add a value, add a row, sum. They exist
// because GCC 12 at -O2 (our default, and many users') vectorizes only loops whose trip count it knows:
// the plain loops ran one element per cycle or, for sums, one per add latency.
#pragma once

#include <cmath>
#include <cstddef>
#include <limits>

#include <xsimd/xsimd.hpp>

#include "exprgrad/sym/batch_exp.hpp"

namespace exprgrad::kernels {

/// p[i] = v for i < n (a nonzero fill left to GCC -O2 was most of sum's gradient).
template <class T>
void fill_value(T* p, std::size_t n, T v) {
    using B = xsimd::batch<T>;
    const B b(v);
    std::size_t i = 0;
    for (; i + B::size <= n; i += B::size) b.store_unaligned(p + i);
    for (; i < n; ++i) p[i] = v;
}
/// p[i] += v for i < n, in SIMD.
template <class T>
void add_value(T* p, std::size_t n, T v) {
    using B = xsimd::batch<T>;
    const B b(v);
    std::size_t i = 0;
    for (; i + B::size <= n; i += B::size) (B::load_unaligned(p + i) + b).store_unaligned(p + i);
    for (; i < n; ++i) p[i] += v;
}

/// d[i] += r[i] for i < n. d and r must not overlap unless equal.
template <class T>
void add_row(T* d, const T* r, std::size_t n) {
    using B = xsimd::batch<T>;
    std::size_t i = 0;
    for (; i + B::size <= n; i += B::size) (B::load_unaligned(d + i) + B::load_unaligned(r + i)).store_unaligned(d + i);
    for (; i < n; ++i) d[i] += r[i];
}

// Σ p[i] in four SIMD accumulators (a single one waits on the add latency every element), then the
// lanes, then the tail: a fixed order for a given n.
template <class T>
T sum_contiguous(const T* p, std::size_t n) {
    using B = xsimd::batch<T>;
    constexpr std::size_t W = B::size;
    B acc0(T(0)), acc1(T(0)), acc2(T(0)), acc3(T(0));
    std::size_t i = 0;
    for (; i + 4 * W <= n; i += 4 * W) {
        acc0 += B::load_unaligned(p + i);
        acc1 += B::load_unaligned(p + i + W);
        acc2 += B::load_unaligned(p + i + 2 * W);
        acc3 += B::load_unaligned(p + i + 3 * W);
    }
    for (; i + W <= n; i += W) acc0 += B::load_unaligned(p + i);
    T s = xsimd::hadd((acc0 + acc1) + (acc2 + acc3));
    for (; i < n; ++i) s += p[i];
    return s;
}
// Row helpers of the reductions, the softmax family and EMO (moved from tensors/reduce.hpp).

// Largest element (NaN if any is NaN), SIMD. xsimd 8.1 has no horizontal max: lanes are stored
// and scanned.
template <class T>
T max_contiguous(const T* p, std::size_t n) {
    using B = xsimd::batch<T>;
    constexpr std::size_t W = B::size;
    T m = -std::numeric_limits<T>::infinity();
    std::size_t i = 0;
    if (n >= W) {
        B acc(m);
        B nan_seen(T(0));
        for (; i + W <= n; i += W) {
            const B v = B::load_unaligned(p + i);
            nan_seen = nan_seen + xsimd::select(v != v, B(T(1)), B(T(0)));
            acc = xsimd::max(acc, v);
        }
        if (xsimd::hadd(nan_seen) != T(0)) return std::numeric_limits<T>::quiet_NaN();
        alignas(64) T lanes[W];
        acc.store_aligned(lanes);
        for (std::size_t k = 0; k < W; ++k) m = lanes[k] > m ? lanes[k] : m;
    }
    for (; i < n; ++i) {
        if (p[i] != p[i]) return p[i];
        m = p[i] > m ? p[i] : m;
    }
    return m;
}

// sum of exp(p[i] - m), SIMD.
template <class T>
T sum_exp_contiguous(const T* p, std::size_t n, T m) {
    using B = xsimd::batch<T>;
    constexpr std::size_t W = B::size;
    B acc(T(0));
    const B mb(m);
    std::size_t i = 0;
    for (; i + W <= n; i += W) acc += ::exprgrad::sym::num::exp_batch(B::load_unaligned(p + i) - mb);
    T s = xsimd::hadd(acc);
    for (; i < n; ++i) s += std::exp(p[i] - m);
    return s;
}

// e[i] = exp(p[i] - m), returning their sum, SIMD.
template <class T>
T exp_shifted(const T* p, T* e, std::size_t n, T m) {
    using B = xsimd::batch<T>;
    constexpr std::size_t W = B::size;
    B acc(T(0));
    const B mb(m);
    std::size_t i = 0;
    for (; i + W <= n; i += W) {
        const B v = ::exprgrad::sym::num::exp_batch(B::load_unaligned(p + i) - mb);
        v.store_unaligned(e + i);
        acc += v;
    }
    T s = xsimd::hadd(acc);
    for (; i < n; ++i) {
        e[i] = std::exp(p[i] - m);
        s += e[i];
    }
    return s;
}

// d[i] (+)= c * e[i], SIMD.
template <class T>
void scale_into(const T* e, T* d, std::size_t n, T c, bool add) {
    using B = xsimd::batch<T>;
    constexpr std::size_t W = B::size;
    const B cb(c);
    std::size_t i = 0;
    for (; i + W <= n; i += W) {
        B v = cb * B::load_unaligned(e + i);
        if (add) v += B::load_unaligned(d + i);
        v.store_unaligned(d + i);
    }
    for (; i < n; ++i) d[i] = add ? d[i] + c * e[i] : c * e[i];
}

// d[i] (+)= g * exp(x[i] - shift), SIMD.
template <class T>
void put_scaled_exp(const T* x, T* d, std::size_t n, T shift, T g, bool add) {
    using B = xsimd::batch<T>;
    constexpr std::size_t W = B::size;
    const B sb(shift), gb(g);
    std::size_t i = 0;
    for (; i + W <= n; i += W) {
        B v = gb * ::exprgrad::sym::num::exp_batch(B::load_unaligned(x + i) - sb);
        if (add) v += B::load_unaligned(d + i);
        v.store_unaligned(d + i);
    }
    for (; i < n; ++i) d[i] = add ? d[i] + g * std::exp(x[i] - shift) : g * std::exp(x[i] - shift);
}

}  // namespace exprgrad::kernels
