// SIMD loops over contiguous arrays that the nodes share: fill, add a value, add a row, sum. They exist
// because GCC 12 at -O2 (our default, and many users') vectorizes only loops whose trip count it knows:
// the plain loops ran one element per cycle or, for sums, one per add latency.
#pragma once

#include <cstddef>

#include <xsimd/xsimd.hpp>

namespace exprgrad::tensors {

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

namespace detail {

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
}  // namespace detail

}  // namespace exprgrad::tensors
