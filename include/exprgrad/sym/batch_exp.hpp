// e^x over xsimd batches. For double it is our own, about 2× faster than xsimd::exp (1.3 vs 2.6 ns
// per lane on the AVX2 target, measured on 8192-element arrays) and within 2 ulp of the correctly
// rounded value; for float the same method measured no faster than xsimd's (0.34 ns per lane both),
// so float keeps xsimd::exp.
//
// Method (double): e^x = 2^k · e^r with k = round(x / ln 2) and r = x − k·ln 2 (Cody–Waite: ln 2
// split in a high part with trailing zero bits and a low part, so k·ln2_hi is exact), |r| ≤ ln 2 / 2;
// e^r by its Taylor polynomial of degree 13 (truncation below 1e-17 relative), evaluated by Estrin's
// scheme: a dependency chain 4 fma deep instead of Horner's 13, which is what made the loop
// latency-bound. k is rounded by adding 1.5·2^52: the low bits of the sum are then k as an integer
// (AVX2 has no double → int64 conversion). 2^k is built from exponent bits; where some lane's 2^k is
// not a normal number (results near overflow or subnormal) it is applied in two halves 2^k1 · 2^k2,
// so those results are rounded once, not flushed.
// Special values: exp(+inf) = +inf, exp(−inf) = 0, NaN → NaN, overflow → +inf, underflow → 0.
#pragma once

#include <cmath>
#include <cstddef>
#include <limits>
#include <cstdint>
#include <type_traits>

#include <xsimd/xsimd.hpp>

namespace exprgrad::sym::num {

namespace exp_detail {

inline constexpr double lo = -745.2, hi = 709.79;    // beyond: 0 and +inf after rounding
inline constexpr double magic = 6755399441055744.0;  // 1.5·2^52
inline constexpr double log2e = 1.4426950408889634074;
inline constexpr double ln2_hi = 6.93147180369123816490e-01;  // 32 significant bits
inline constexpr double ln2_lo = 1.90821492927058770002e-10;
inline constexpr std::int64_t bias = 1023;
inline constexpr int mantissa = 52;

// 1/k! for k = 0..13
inline constexpr double inv_factorial[14] = {
    1.0,        1.0,         1.0 / 2,      1.0 / 6,       1.0 / 24,       1.0 / 120,       1.0 / 720,
    1.0 / 5040, 1.0 / 40320, 1.0 / 362880, 1.0 / 3628800, 1.0 / 39916800, 1.0 / 479001600, 1.0 / 6227020800.0};

// Always inlined: called out of line from a map's loop it loses the overlap between iterations
// that its short dependency chains are for (measured 4 ns instead of 1.3 ns per lane).
template <class A>
[[gnu::always_inline]] inline xsimd::batch<double, A> exp_double(const xsimd::batch<double, A>& x) {
    using B = xsimd::batch<double, A>;
    using I = xsimd::batch<std::int64_t, A>;
    const B xc = xsimd::min(xsimd::max(x, B(lo)), B(hi));
    const B m(magic);
    const B t = xsimd::fma(xc, B(log2e), m);  // k in the low bits of t
    const B k = t - m;
    const B r = xsimd::fnma(k, B(ln2_lo), xsimd::fnma(k, B(ln2_hi), xc));
    auto c = [](int d) { return B(inv_factorial[d]); };
    const B r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
    const B q0 = xsimd::fma(c(1), r, c(0)), q1 = xsimd::fma(c(3), r, c(2)), q2 = xsimd::fma(c(5), r, c(4)),
            q3 = xsimd::fma(c(7), r, c(6)), q4 = xsimd::fma(c(9), r, c(8)), q5 = xsimd::fma(c(11), r, c(10)),
            q6 = xsimd::fma(c(13), r, c(12));
    const B u0 = xsimd::fma(q1, r2, q0), u1 = xsimd::fma(q3, r2, q2), u2 = xsimd::fma(q5, r2, q4);
    const B p = xsimd::fma(xsimd::fma(q6, r4, u2), r8, xsimd::fma(u1, r4, u0));
    const I m_bits = xsimd::bitwise_cast<I>(m);
    const I b(bias);
    auto pow2 = [&](const B& tk) {
        return xsimd::bitwise_cast<B>((xsimd::bitwise_cast<I>(tk) - m_bits + b) << mantissa);
    };
    B y;
    if (xsimd::all(xsimd::abs(k) < B(double(bias - 1)))) {
        y = p * pow2(t);  // the usual case: 2^k is a normal number
    } else {
        const B t1 = xsimd::fma(k, B(0.5), m);  // k1 = round(k / 2), k2 = k − k1: both normal
        y = (p * pow2(t1)) * pow2((k - (t1 - m)) + m);
    }
    return xsimd::select(xsimd::isnan(x), x, y);
}

}  // namespace exp_detail

/// Recomputes the lanes of y selected by `redo` as f(x) lane by lane: the rare lanes that a batch kernel
/// gets wrong (out of its range), so that a value never depends on its position in an array.
template <class T, class A, class F>
[[gnu::noinline]] xsimd::batch<T, A> redo_lanes(const xsimd::batch<T, A>& y, const xsimd::batch<T, A>& x,
                                               const xsimd::batch_bool<T, A>& redo, F f) {
    constexpr std::size_t L = xsimd::batch<T, A>::size;
    alignas(64) T xs[L], ys[L];
    alignas(64) bool mask[L];
    x.store_aligned(xs);
    y.store_aligned(ys);
    redo.store_aligned(mask);
    for (std::size_t i = 0; i < L; ++i)
        if (mask[i]) ys[i] = f(xs[i]);
    return xsimd::batch<T, A>::load_aligned(ys);
}

/// e^x lane by lane for an xsimd batch. double: within 2 ulp of the correctly rounded result over
/// the whole range, subnormal results included (tested against std::exp in long double); float:
/// xsimd::exp on [−87, 88], and std::exp for the lanes outside (xsimd's float exp overflows from 88.38, where
/// e^x is still finite up to 88.72, and flushes results below e^−87.3 to 0 instead of subnormals).
/// NaN lanes give NaN; +inf gives +inf, −inf gives 0.
/// Example: `auto y = num::exp_batch(xsimd::batch<double>(1.0));  // e in every lane`
template <class T, class A>
[[gnu::always_inline]] inline xsimd::batch<T, A> exp_batch(const xsimd::batch<T, A>& x) {
    if constexpr (std::is_same_v<T, double>) {
        return exp_detail::exp_double(x);
    } else {
        using B = xsimd::batch<T, A>;
        const B y = xsimd::exp(x);
        // −inf (the padding of softmax tails) is exact already; only finite lanes out of range are redone.
        const auto outside = (x > B(T(88))) | ((x < B(T(-87))) & (x > B(-std::numeric_limits<T>::infinity())));
        if (xsimd::any(outside)) [[unlikely]]
            return redo_lanes(y, x, outside, [](T v) { return std::exp(v); });
        return y;
    }
}

/// e^x − 1 lane by lane: xsimd::expm1, with std::expm1 for float lanes above 88 (xsimd's overflows early).
template <class T, class A>
inline xsimd::batch<T, A> expm1_batch(const xsimd::batch<T, A>& x) {
    using B = xsimd::batch<T, A>;
    const B y = xsimd::expm1(x);
    if constexpr (std::is_same_v<T, float>) {
        const auto outside = x > B(T(88));
        if (xsimd::any(outside)) [[unlikely]]
            return redo_lanes(y, x, outside, [](T v) { return std::expm1(v); });
    }
    return y;
}

}  // namespace exprgrad::sym::num
