// The small vocabulary that lets one op body serve double, float, xsimd::batch and user number
// types: constants of the evaluation type, lane-wise selection, NaN tests.
#pragma once

#include "exprgrad/require_cxx20.hpp"  // first: refuses a standard older than C++20

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include <xsimd/xsimd.hpp>

namespace exprgrad::sym::num {

namespace detail {
template <class T>
struct is_batch : std::false_type {};
template <class T, class A>
struct is_batch<xsimd::batch<T, A>> : std::true_type {};
}  // namespace detail

/// Satisfied by xsimd::batch types.
template <class T>
concept Batch = detail::is_batch<std::remove_cvref_t<T>>::value;

/// The scalar type of T: T itself, or the element type of a batch.
template <class T>
struct scalar_of {
    using type = T;
};
template <Batch T>
struct scalar_of<T> {
    using type = typename T::value_type;
};
template <class T>
using scalar_of_t = typename scalar_of<T>::type;

/// The rational constant n/d in the evaluation type T, rounded once where T's scalar type holds n
/// and d exactly (as `float(1) / float(10)` is the float nearest 0.1).
template <class T>
constexpr T rational(std::intmax_t n, std::intmax_t d) {
    if constexpr (std::is_arithmetic_v<T>) {
        return d == 1 ? static_cast<T>(n) : static_cast<T>(n) / static_cast<T>(d);
    } else if constexpr (Batch<T>) {
        return T(rational<scalar_of_t<T>>(n, d));
    } else {
        return T(static_cast<double>(n) / static_cast<double>(d));
    }
}

/// The double v in the evaluation type T.
template <class T>
constexpr T constant(double v) {
    if constexpr (Batch<T>) {
        return T(static_cast<scalar_of_t<T>>(v));
    } else {
        return static_cast<T>(v);
    }
}

/// Lane-wise `cond ? a : b`; cond is bool for scalars and batch_bool for batches.
template <class C, class T>
inline T select(const C& cond, const T& a, const T& b) {
    if constexpr (Batch<T>) {
        return xsimd::select(cond, a, b);
    } else {
        return cond ? a : b;
    }
}

/// f applied lane by lane to a batch (f takes and returns scalars), for the ops whose xsimd kernels are not
/// accurate enough. Example: `num::per_lane([](double v) { return std::erf(v); }, x)`.
template <class F, Batch B>
inline B per_lane(F f, const B& a) {
    alignas(64) typename B::value_type x[B::size];
    a.store_aligned(x);
    for (auto& v : x) v = f(v);
    return B::load_aligned(x);
}

/// f(a_i, b_i) lane by lane for two batches of one type. Example: `num::per_lane(pow_fn, x, y)`.
template <class F, Batch B>
inline B per_lane(F f, const B& a, const B& b) {
    alignas(64) typename B::value_type x[B::size], y[B::size];
    a.store_aligned(x);
    b.store_aligned(y);
    for (std::size_t i = 0; i < B::size; ++i) x[i] = f(x[i], y[i]);
    return B::load_aligned(x);
}

}  // namespace exprgrad::sym::num
