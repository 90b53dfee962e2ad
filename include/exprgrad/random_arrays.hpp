// Arrays of random numbers for data (inputs, targets, masks, noise), drawn from the library's generator
// exprgrad::rng. Like the initializers of nn/init.hpp, every value is computed by the library from the
// generator's 64-bit words (no std:: distributions, whose output differs between standard libraries), in
// row-major element order, in double and rounded once to the element type, so a seed gives the same array
// everywhere.
//
//   rng gen(42);
//   auto x = random::normal<float>(gen, {64, 16}, 0.0, 1.0);      // N(0, 1), shape (64, 16)
//   auto w = random::uniform(gen, {16, 4}, -0.5, 0.5);            // double, U[-0.5, 0.5)
//   auto y = random::integers(gen, {64}, 0, 4);                   // int64 labels in [0, 4)
//   auto keep = random::bernoulli<float>(gen, x.shape(), 0.9);    // 1 with probability 0.9, else 0
//
// A base utility (a top-level file, below every layer): it includes only random.hpp and xtensor. The
// functions live in exprgrad::random, so `normal` and `uniform` do not collide with nn::init's in-place
// initializers of the same names.
#pragma once

#include "exprgrad/require_cxx20.hpp"  // first: refuses a standard older than C++20

#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include <xtensor/xarray.hpp>

#include "exprgrad/random.hpp"

namespace exprgrad::random {

namespace detail {

inline void require(bool ok, const char* fn, const std::string& what) {
    if (!ok) throw std::invalid_argument(std::string("exprgrad::random::") + fn + ": " + what);
}

// The shortest decimal that reads back to v ("0.1", "-1", "nan", "inf").
inline std::string num(double v) {
    char buf[40];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, r.ptr);
}

template <class Shape>
std::string shape_string(const Shape& shape) {
    std::string s = "(";
    bool first = true;
    for (auto d : shape) {
        s += (first ? "" : ", ") + std::to_string(d);
        first = false;
    }
    return s + (shape.size() == 1 ? ",)" : ")");
}

/// The shape as xarray's shape type, refused when a dimension is negative or when the element count
/// (or its size in bytes) does not fit: an overflowing count would make the allocator's byte count wrap.
template <class T, class Shape>
typename xt::xarray<T>::shape_type checked_shape(const char* fn, const Shape& shape) {
    typename xt::xarray<T>::shape_type s;
    constexpr std::size_t max_count = static_cast<std::size_t>(std::numeric_limits<std::ptrdiff_t>::max()) / sizeof(T);
    std::size_t count = 1;
    bool overflow = false, empty = false;
    for (auto d : shape) {
        static_assert(std::is_integral_v<decltype(d)>, "exprgrad: a shape is a list of integer dimensions");
        if constexpr (std::is_signed_v<decltype(d)>) {
            require(d >= 0, fn, "negative dimension " + std::to_string(d) + " in shape " + shape_string(shape));
        }
        const auto u = static_cast<std::size_t>(d);
        if (u == 0) empty = true;
        if (u != 0 && count > max_count / u) overflow = true;
        if (!overflow) count *= u;
        s.push_back(u);
    }
    require(empty || !overflow, fn, "shape " + shape_string(shape) + " has more elements than an array can hold");
    return s;
}

// A new array of `shape` filled with f() in row-major element order.
template <class T, class Shape, class F>
xt::xarray<T> draw(const char* fn, const Shape& shape, F&& f) {
    xt::xarray<T> a = xt::xarray<T>::from_shape(checked_shape<T>(fn, shape));
    for (auto& v : a) v = f();
    return a;
}

}  // namespace detail

/// normal<T>(gen, shape, mean, stddev): an array of `shape` whose elements are mean + stddev * z, z a
/// standard normal from gen.normal() (Box–Muller, one normal per element, two uniforms drawn), computed
/// in double and rounded to T (float or double). The same values, for the same generator state, as
/// nn::init::normal filling an array of that shape. Requires finite mean and finite stddev >= 0
/// (stddev = 0 gives mean everywhere, still drawing); NaN, infinities and stddev < 0 throw
/// std::invalid_argument naming the function and the value. A value beyond T's range becomes ±inf.
/// Example: `auto x = random::normal<float>(gen, {2, 3}, 0.0, 1.0);`
template <class T = double, class Shape>
xt::xarray<T> normal(rng& gen, const Shape& shape, double mean = 0.0, double stddev = 1.0) {
    static_assert(std::is_floating_point_v<T>, "exprgrad: random::normal draws into a float or double array");
    detail::require(std::isfinite(mean), "normal", "mean must be finite, got " + detail::num(mean));
    detail::require(std::isfinite(stddev) && stddev >= 0.0, "normal",
                    "stddev must be finite and >= 0, got " + detail::num(stddev));
    return detail::draw<T>("normal", shape, [&] { return static_cast<T>(mean + stddev * gen.normal()); });
}
/// normal with a braced shape: `random::normal(gen, {2, 3})`.
template <class T = double>
xt::xarray<T> normal(rng& gen, std::initializer_list<std::size_t> shape, double mean = 0.0, double stddev = 1.0) {
    return normal<T, std::initializer_list<std::size_t>>(gen, shape, mean, stddev);
}

/// uniform<T>(gen, shape, low, high): an array of `shape` uniform in [low, high): each element is
/// low + (high - low) * u with u = gen.uniform() (a multiple of 2^-53 in [0, 1)), computed in double and
/// rounded to T (float or double). A value that rounds up to T(high) is drawn again (for float and a
/// width of 1, about once in 2^25 elements), so every element v has T(low) <= v < T(high): exactly
/// low <= v < high for double. Requires finite low < high with a finite width high - low, and at least
/// one T value between them (T(low) < T(high)); anything else (NaN included) throws
/// std::invalid_argument naming the function and the values.
/// Example: `auto w = random::uniform<float>(gen, {3, 4}, -1.0, 1.0);`
template <class T = double, class Shape>
xt::xarray<T> uniform(rng& gen, const Shape& shape, double low = 0.0, double high = 1.0) {
    static_assert(std::is_floating_point_v<T>, "exprgrad: random::uniform draws into a float or double array");
    const std::string got = ", got low = " + detail::num(low) + ", high = " + detail::num(high);
    detail::require(std::isfinite(low) && std::isfinite(high) && low < high, "uniform",
                    "needs finite low < high" + got);
    const double width = high - low;
    detail::require(std::isfinite(width), "uniform", "the width high - low overflows" + got);
    const T hi = static_cast<T>(high);
    detail::require(static_cast<T>(low) < hi, "uniform", "no value of the element type lies in [low, high)" + got);
    return detail::draw<T>("uniform", shape, [&] {
        for (;;) {
            const T v = static_cast<T>(low + width * gen.uniform());
            if (v < hi) return v;
        }
    });
}
/// uniform with a braced shape: `random::uniform(gen, {2, 3}, -1.0, 1.0)`.
template <class T = double>
xt::xarray<T> uniform(rng& gen, std::initializer_list<std::size_t> shape, double low = 0.0, double high = 1.0) {
    return uniform<T, std::initializer_list<std::size_t>>(gen, shape, low, high);
}

/// integers<T>(gen, shape, low, high): an array of `shape` of integers uniform in [low, high), each
/// low + gen.below(high - low) (exact, no modulo bias). T is a signed or unsigned integer type, not
/// bool or a character type (default std::int64_t, the type the tensor layer reads indices and targets
/// as). Requires low < high and both low and high - 1 representable in T; otherwise throws
/// std::invalid_argument naming the function and the values.
/// Example: `auto targets = random::integers(gen, {32}, 0, 10);`
template <class T = std::int64_t, class Shape>
xt::xarray<T> integers(rng& gen, const Shape& shape, std::int64_t low, std::int64_t high) {
    static_assert(std::is_integral_v<T> && !std::is_same_v<T, bool>,
                  "exprgrad: random::integers draws into an array of an integer type (bernoulli gives 0/1 masks)");
    const std::string got = ", got low = " + std::to_string(low) + ", high = " + std::to_string(high);
    detail::require(low < high, "integers", "needs low < high" + got);
    detail::require(std::in_range<T>(low) && std::in_range<T>(high - 1), "integers",
                    "[low, high) does not fit the element type" + got);
    // high - low computed modulo 2^64: exact, since 0 < high - low < 2^64
    const std::uint64_t n = static_cast<std::uint64_t>(high) - static_cast<std::uint64_t>(low);
    return detail::draw<T>("integers", shape, [&] {
        return static_cast<T>(static_cast<std::int64_t>(static_cast<std::uint64_t>(low) + gen.below(n)));
    });
}
/// integers with a braced shape: `random::integers(gen, {2, 3}, 0, 10)`.
template <class T = std::int64_t>
xt::xarray<T> integers(rng& gen, std::initializer_list<std::size_t> shape, std::int64_t low, std::int64_t high) {
    return integers<T, std::initializer_list<std::size_t>>(gen, shape, low, high);
}

/// bernoulli<T>(gen, shape, p): an array of `shape` holding 1 with probability p and 0 otherwise, each
/// element 1 exactly when gen.uniform() < p (one draw per element, also for p = 0 and p = 1, so the
/// generator advances the same whatever p). T is any arithmetic type (default double; float for a
/// dropout mask, bool, an integer type). Requires 0 <= p <= 1; NaN or anything outside throws
/// std::invalid_argument naming the function and p. Example: `auto mask = random::bernoulli<float>(gen,
/// {8, 16}, 0.9);`
template <class T = double, class Shape>
xt::xarray<T> bernoulli(rng& gen, const Shape& shape, double p) {
    static_assert(std::is_arithmetic_v<T>, "exprgrad: random::bernoulli draws into an array of numbers");
    detail::require(p >= 0.0 && p <= 1.0, "bernoulli", "p must be in [0, 1], got " + detail::num(p));
    return detail::draw<T>("bernoulli", shape, [&] { return gen.uniform() < p ? T(1) : T(0); });
}
/// bernoulli with a braced shape: `random::bernoulli(gen, {2, 3}, 0.5)`.
template <class T = double>
xt::xarray<T> bernoulli(rng& gen, std::initializer_list<std::size_t> shape, double p) {
    return bernoulli<T, std::initializer_list<std::size_t>>(gen, shape, p);
}

}  // namespace exprgrad::random
