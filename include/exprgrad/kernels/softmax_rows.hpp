// The one set of SIMD row kernels of the softmax family: row maximum, the exp-shifted sum, softmax,
// log-softmax, log-sum-exp and their VJPs, plus the row arithmetic they need (dot, scale). Every user calls
// these: the tensor nodes softmax / log_softmax / logsumexp / cross_entropy (tensors/), EMO (ops/emo.hpp), the
// attention kernels (ops/detail/attention_*.hpp) and the scale analysis (ops/attention_scale.hpp), so the
// analysis measures the very code the ops run.
//
// Rows are contiguous. Strided lines (a softmax over an axis that is not the last) are copied, a block of
// adjacent lines at a time, into contiguous scratch rows with kernels::gather_lines, run through these kernels,
// and put back with kernels::scatter_lines (kernels/contiguous.hpp): they then round exactly as the same values
// in contiguous rows.
//
// Every function has a fixed order of operations for a given n (lanes in order, then the lanes combined in
// order, then a tail that is padded into one more batch), so equal inputs give bit-equal results whatever
// thread runs them. Exponentials always go through sym::num::exp_batch (ours for double, xsimd::exp for
// float), tails included, or, for float where kernels::avx512_enabled(), through rows::exp16 (≤ 2 ulp).
// Float sums of exponentials are taken in float lanes over blocks of 512 entries and the block sums added in
// double, so a 32768-wide vocabulary row is summed as accurately as a short one.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <limits>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#include "exprgrad/kernels/avx512_dispatch.hpp"
#include "exprgrad/kernels/row_lanes.hpp"
#include "exprgrad/kernels/rows_avx512.hpp"
#include "exprgrad/sym/batch_exp.hpp"

namespace exprgrad::kernels::rows {

namespace detail {

/// Float entries summed in float lanes before the running sum moves to double.
inline constexpr std::size_t sum_block = 512;

/// The lane sums of e^(x[i] − shift) over i < n, storing the terms at p when Store (256-bit path).
template <bool Store, class T>
inline batch<T> exp_lanes(const T* x, T shift, T* p, std::size_t n) {
    const batch<T> sh(shift);
    batch<T> s(T(0));
    std::size_t i = 0;
    for (; i + lanes<T> <= n; i += lanes<T>) {
        const batch<T> e = ::exprgrad::sym::num::exp_batch(batch<T>::load_unaligned(x + i) - sh);
        if constexpr (Store) e.store_unaligned(p + i);
        s += e;
    }
    if (i < n) {
        const batch<T> e =
            ::exprgrad::sym::num::exp_batch(load_tail(x, i, n, -std::numeric_limits<T>::infinity()) - sh);
        if constexpr (Store) store_tail(e, p, i, n);
        s += e;
    }
    return s;
}

/// Σ_i e^(x[i] − shift), storing the terms at p when Store. Float rows longer than sum_block: each block's lane
/// sums are added into per-lane double sums (no horizontal sum per block, which sat on the critical path), and
/// the lanes are added in order at the end; on the 512-bit path the block sums are added in double.
template <bool Store, class T>
inline T exp_pass(const T* x, T shift, T* p, std::size_t n) {
#if EXPRGRAD_HAS_AVX512_KERNELS
    if constexpr (std::is_same_v<T, float>) {
        if (::exprgrad::kernels::avx512_enabled()) {
            if (n <= sum_block) return exp_shifted16<Store>(x, shift, p, n);
            double s = 0;
            for (std::size_t i = 0; i < n; i += sum_block)
                s += static_cast<double>(
                    exp_shifted16<Store>(x + i, shift, Store ? p + i : nullptr, std::min(sum_block, n - i)));
            return static_cast<T>(s);
        }
    }
#endif
    if constexpr (std::is_same_v<T, float>) {
        if (n > sum_block) {
            std::array<double, lanes<T>> acc{};
            alignas(64) std::array<T, lanes<T>> a;
            for (std::size_t i = 0; i < n; i += sum_block) {
                const std::size_t len = std::min(sum_block, n - i);
                exp_lanes<Store>(x + i, shift, Store ? p + i : nullptr, len).store_aligned(a.data());
                for (std::size_t l = 0; l < a.size(); ++l) acc[l] += static_cast<double>(a[l]);
            }
            double s = acc[0];
            for (std::size_t l = 1; l < acc.size(); ++l) s += acc[l];
            return static_cast<T>(s);
        }
    }
    return hsum(exp_lanes<Store>(x, shift, p, n));
}

template <bool Add, class T, class Term>
[[gnu::always_inline]] inline void put_row_as(T* out, std::size_t n, Term& term) {
    std::size_t i = 0;
    auto full = [](const T* a, std::size_t j) { return batch<T>::load_unaligned(a + j); };
    for (; i + lanes<T> <= n; i += lanes<T>) {
        batch<T> v = term(i, full);
        if constexpr (Add) v += batch<T>::load_unaligned(out + i);
        v.store_unaligned(out + i);
    }
    if (i < n) {
        auto tail = [n](const T* a, std::size_t j) { return load_tail(a, j, n, T(0)); };
        batch<T> v = term(i, tail);
        if constexpr (Add) v += load_tail(out, i, n, T(0));
        store_tail(v, out, i, n);
    }
}

/// out[i] = term(i, load) for i < n, or out[i] += that when add, batch by batch: term reads its operands with
/// load(pointer, i), which pads lanes past n with 0 in the tail. The add choice is made once, outside the loop.
template <class T, class Term>
[[gnu::always_inline]] inline void put_row(T* out, std::size_t n, bool add, Term&& term) {
    if (add)
        put_row_as<true>(out, n, term);
    else
        put_row_as<false>(out, n, term);
}

}  // namespace detail

/// max_i x[i] over n entries: −inf for n = 0, NaN when some x[i] is NaN (whatever the other entries), −inf
/// entries are ordinary values. Example: max({1, -inf, 3}) = 3; max({1, NaN}) = NaN.
template <class T>
inline T max(const T* x, std::size_t n) {
#if EXPRGRAD_HAS_AVX512_KERNELS
    if constexpr (std::is_same_v<T, float>)
        if (::exprgrad::kernels::avx512_enabled()) return max16(x, n);
#endif
    constexpr T ninf = -std::numeric_limits<T>::infinity();
    // maxps returns its second operand when one is NaN, so a NaN lane does not survive the next batch: NaN is
    // tracked on the side (one compare per batch). Not with v != v: xsimd 8.1's != is an ordered compare,
    // false for NaN (the row maximum of tensors/reduce.hpp missed NaNs in full batches that way).
    batch<T> m(ninf);
    xsimd::batch_bool<T> nan(false);
    std::size_t i = 0;
    for (; i + lanes<T> <= n; i += lanes<T>) {
        const batch<T> v = batch<T>::load_unaligned(x + i);
        nan = nan | xsimd::isnan(v);
        m = xsimd::max(m, v);
    }
    if (i < n) {
        const batch<T> v = load_tail(x, i, n, ninf);
        nan = nan | xsimd::isnan(v);
        m = xsimd::max(m, v);
    }
    if (xsimd::any(nan)) return std::numeric_limits<T>::quiet_NaN();
    return hmax(m);
}

/// Σ_i a[i]·b[i] over n entries (0 for n = 0); NaN and inf propagate as in IEEE sums.
template <class T>
inline T dot(const T* a, const T* b, std::size_t n) {
    batch<T> s(T(0));
    std::size_t i = 0;
    for (; i + lanes<T> <= n; i += lanes<T>)
        s = xsimd::fma(batch<T>::load_unaligned(a + i), batch<T>::load_unaligned(b + i), s);
    if (i < n) s = xsimd::fma(load_tail(a, i, n, T(0)), load_tail(b, i, n, T(0)), s);
    return hsum(s);
}

/// p[i] = e^(x[i] − shift) for i < n, returning Σ_i p[i]. x and p may alias. e^(−inf) = 0; a NaN x[i] or shift
/// gives NaN terms (and a NaN sum). Example: exp_shifted({0, ln 2}, 0, p, 2) = 3 with p = {1, 2}.
template <class T>
inline T exp_shifted(const T* x, T shift, T* p, std::size_t n) {
    return detail::exp_pass<true>(x, shift, p, n);
}

/// Σ_i e^(x[i] − shift) for i < n without storing the terms: exp_shifted's sum, bit for bit.
template <class T>
inline T sum_exp(const T* x, T shift, std::size_t n) {
    return detail::exp_pass<false>(x, shift, static_cast<T*>(nullptr), n);
}

/// x[i] ← x[i]·c for i < n.
template <class T>
inline void scale(T* x, T c, std::size_t n) {
    const batch<T> cb(c);
    std::size_t i = 0;
    for (; i + lanes<T> <= n; i += lanes<T>) (batch<T>::load_unaligned(x + i) * cb).store_unaligned(x + i);
    for (; i < n; ++i) x[i] *= c;
}

/// y[i] = x[i]·c for i < n, or y[i] += x[i]·c when add (x and y may alias).
template <class T>
inline void scale_into(const T* x, T c, T* y, std::size_t n, bool add = false) {
    const batch<T> cb(c);
    std::size_t i = 0;
    if (add) {
        for (; i + lanes<T> <= n; i += lanes<T>)
            xsimd::fma(batch<T>::load_unaligned(x + i), cb, batch<T>::load_unaligned(y + i)).store_unaligned(y + i);
        for (; i < n; ++i) y[i] = std::fma(x[i], c, y[i]);
        return;
    }
    for (; i + lanes<T> <= n; i += lanes<T>) (batch<T>::load_unaligned(x + i) * cb).store_unaligned(y + i);
    for (; i < n; ++i) y[i] = x[i] * c;
}

/// y[i] = c·e^(x[i] − shift) for i < n, or y[i] += that when add (x and y may alias). With shift = the row's
/// log-sum-exp this is c·softmax(x): the VJP of logsumexp for the adjoint c, and cross-entropy's softmax term.
template <class T>
inline void scaled_exp_into(const T* x, T shift, T c, T* y, std::size_t n, bool add = false) {
    const batch<T> sb(shift), cb(c);
    // the tail pads x with 0; those lanes are never stored
    detail::put_row(y, n, add, [&](std::size_t i, auto load) {
        return cb * ::exprgrad::sym::num::exp_batch(load(x, i) - sb);
    });
}

/// The softmax VJP on one row: out[i] = p[i]·(g[i] − D) for i < n (or out[i] += that when add), where
/// p = softmax(z), g = ∂L/∂p and D = Σ_j p[j]·g[j] (pass it in: dot(p, g, n), or attention's dO·O, which
/// equals it). Then out = ∂L/∂z. out may alias p or g.
template <class T>
inline void softmax_vjp(const T* p, const T* g, T D, T* out, std::size_t n, bool add = false) {
    const batch<T> db(D);
    detail::put_row(out, n, add, [&](std::size_t i, auto load) { return load(p, i) * (load(g, i) - db); });
}

/// The log-softmax VJP on one row: out[i] = g[i] − e^(y[i])·S for i < n (or out[i] += that when add), where
/// y = log_softmax(z), g = ∂L/∂y and S = Σ_j g[j]. Then out = ∂L/∂z. out may alias y or g.
template <class T>
inline void log_softmax_vjp(const T* y, const T* g, T S, T* out, std::size_t n, bool add = false) {
    const batch<T> sb(S);
    detail::put_row(out, n, add, [&](std::size_t i, auto load) {
        return xsimd::fnma(::exprgrad::sym::num::exp_batch(load(y, i)), sb, load(g, i));
    });
}

/// log Σ_i e^(x[i]) over n entries, computed as m + log Σ e^(x[i] − m) with m = max(x, n), so entries of ±1e4
/// are exact. −inf for n = 0 or a row of −inf; NaN when some entry is NaN; +inf when some entry is +inf (and
/// none is NaN). Example: logsumexp({0, 0}) = ln 2.
template <class T>
inline T logsumexp(const T* x, std::size_t n) {
    const T m = max(x, n);
    if (m != m || std::isinf(m)) return m;
    return m + std::log(sum_exp(x, m, n));
}

/// Softmax over n entries into p (p may alias x): p[i] = e^(x[i] − m) / Σ_j e^(x[j] − m), m = max(x, n).
/// Returns m + log Σ_j e^(x[j] − m) (the log-sum-exp for finite rows). A row of −inf (a fully masked row) or
/// n = 0 gives p = 0 and returns −inf; a NaN or a +inf entry makes every p[i] and the result NaN (e^(inf − inf)).
/// Example: softmax({0, ln 3}, p, 2) gives p = {0.25, 0.75} and returns ln 4.
template <class T>
inline T softmax(const T* x, T* p, std::size_t n) {
    const T m = max(x, n);
    if (m == -std::numeric_limits<T>::infinity()) {
        std::fill(p, p + n, T(0));
        return m;
    }
    const T s = exp_shifted(x, m, p, n);
    scale(p, T(1) / s, n);
    return m + std::log(s);
}

/// Softmax of alpha·x over n entries into p (p may alias x); returns log Σ e^(alpha·x[i]). As softmax(x, p, n)
/// on the scaled row (one more pass to scale it). Example: softmax({1, 2}, 0, p, 2) gives p = {0.5, 0.5}.
template <class T>
inline T softmax(const T* x, T alpha, T* p, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) p[i] = alpha * x[i];
    return softmax(static_cast<const T*>(p), p, n);
}

/// Log-softmax over n entries into y (y may alias x): y[i] = x[i] − m − log Σ_j e^(x[j] − m), m = max(x, n);
/// returns the subtracted shift m + log Σ_j e^(x[j] − m). IEEE throughout: a NaN entry, a +inf entry or a row of
/// −inf makes every y[i] NaN. Example: log_softmax({0, 0}, y, 2) gives y = {−ln 2, −ln 2}.
template <class T>
inline T log_softmax(const T* x, T* y, std::size_t n) {
    const T m = max(x, n);
    const T shift = m + std::log(sum_exp(x, m, n));
    const batch<T> sb(shift);
    std::size_t i = 0;
    for (; i + lanes<T> <= n; i += lanes<T>) (batch<T>::load_unaligned(x + i) - sb).store_unaligned(y + i);
    for (; i < n; ++i) y[i] = x[i] - shift;
    return shift;
}

}  // namespace exprgrad::kernels::rows
