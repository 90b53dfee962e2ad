// Parameter initializers. Every random initializer fills the array in row-major element order from one
// exprgrad::rng, computing each value in double and rounding it once to the element type, so a seed gives
// the same parameters on every platform and standard library (no std:: distributions).
//
//   rng gen(42);
//   auto w = xt::xarray<float>::from_shape({784, 128});      // (fan_in, fan_out): matmul(X, W)
//   nn::init::kaiming_uniform(w, gen);                       // U(-b, b), b = sqrt(2) * sqrt(3 / 784)
//
// Formulas follow torch.nn.init (Glorot & Bengio 2010; He et al. 2015). Arguments are checked: a
// non-finite bound, mean or standard deviation, a < b violated or std < 0 throws std::invalid_argument
// naming the initializer and the value; fan-based initializers also throw for arrays with fewer than 2
// dimensions or a zero fan.
#pragma once

#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <string>

#include <xtensor/xarray.hpp>

#include "exprgrad/format.hpp"
#include "exprgrad/random.hpp"

namespace exprgrad::nn::init {

/// How the first two dimensions of a weight map to fans. `in_out` is the library's convention for
/// `matmul(X, W)` with W of shape (fan_in, fan_out); `out_in` is PyTorch's (Linear weight (out, in),
/// convolution (out, in, k...)). Dimensions after the first two form the receptive field, which
/// multiplies both fans.
enum class layout { in_out, out_in };

/// Which fan a Kaiming initializer preserves: fan_in keeps the forward activations' variance, fan_out
/// the backward gradients'.
enum class fan_mode { fan_in, fan_out };

/// The fans of a weight of the given shape (dimension >= 2).
struct fans {
    double fan_in;
    double fan_out;
};

namespace detail {

inline void require(bool ok, const char* who, const std::string& what) {
    if (!ok) throw std::invalid_argument(std::string("nn::init::") + who + ": " + what);
}

// Fills `a` with f() for each element in row-major order, rounding the double once to the element type.
template <class Array, class F>
void fill_with(Array& a, F&& f) {
    using T = typename Array::value_type;
    for (auto& v : a) v = static_cast<T>(f());
}

}  // namespace detail

/// Fans of a weight of shape `shape`: with receptive field r = product of dimensions 2.., and
/// (d0, d1) the first two dimensions, `in_out` gives fan_in = d0 * r, fan_out = d1 * r and `out_in`
/// gives fan_in = d1 * r, fan_out = d0 * r. Throws std::invalid_argument for fewer than 2 dimensions.
/// Example: compute_fans({784, 128}) == {784, 128}; compute_fans({16, 3, 5, 5}, layout::out_in) ==
/// {75, 400}.
template <class Shape>
fans compute_fans(const Shape& shape, layout l = layout::in_out) {
    detail::require(shape.size() >= 2, "compute_fans",
                    "fans need an array of at least 2 dimensions, got shape " + format_shape(shape));
    double receptive = 1.0;
    for (std::size_t i = 2; i < shape.size(); ++i) receptive *= static_cast<double>(shape[i]);
    const double d0 = static_cast<double>(shape[0]) * receptive;
    const double d1 = static_cast<double>(shape[1]) * receptive;
    return l == layout::in_out ? fans{d0, d1} : fans{d1, d0};
}

/// The recommended gain for a nonlinearity, as torch.nn.init.calculate_gain: "linear", "identity",
/// "sigmoid" -> 1; "tanh" -> 5/3; "relu" -> sqrt(2); "leaky_relu" -> sqrt(2 / (1 + slope^2)); "selu" ->
/// 3/4. Throws std::invalid_argument for any other name.
inline double gain(const std::string& nonlinearity, double negative_slope = 0.01) {
    if (nonlinearity == "linear" || nonlinearity == "identity" || nonlinearity == "sigmoid") return 1.0;
    if (nonlinearity == "tanh") return 5.0 / 3.0;
    if (nonlinearity == "relu") return std::sqrt(2.0);
    if (nonlinearity == "leaky_relu") return std::sqrt(2.0 / (1.0 + negative_slope * negative_slope));
    if (nonlinearity == "selu") return 0.75;
    throw std::invalid_argument("nn::init::gain: unknown nonlinearity \"" + nonlinearity + "\"");
}

/// Sets every element to 0.
template <class Array>
void zeros(Array& a) {
    a.fill(typename Array::value_type(0));
}

/// Sets every element to `value` (rounded to the element type; NaN and Inf are allowed here on purpose,
/// e.g. for masks).
template <class Array>
void constant(Array& a, double value) {
    a.fill(static_cast<typename Array::value_type>(value));
}

/// Uniform on [lo, hi): each element is lo + (hi - lo) * u with u = gen.uniform() in [0, 1), computed in
/// double (for float arrays the rounding can reach hi). Requires finite lo <= hi.
/// Example: uniform(w, gen, -0.1, 0.1).
template <class Array>
void uniform(Array& a, rng& gen, double lo, double hi) {
    detail::require(std::isfinite(lo) && std::isfinite(hi) && lo <= hi, "uniform",
                    "needs finite lo <= hi, got lo = " + format_number(lo) + ", hi = " + format_number(hi));
    const double width = hi - lo;
    detail::fill_with(a, [&] { return lo + width * gen.uniform(); });
}

/// Normal: each element is mean + std * z with z = gen.normal() (Box–Muller, one normal per element).
/// Requires finite mean and finite std >= 0. Example: normal(w, gen, 0.0, 0.02).
template <class Array>
void normal(Array& a, rng& gen, double mean, double std) {
    detail::require(
        std::isfinite(mean) && std::isfinite(std) && std >= 0.0, "normal",
        "needs finite mean and finite std >= 0, got mean = " + format_number(mean) + ", std = " + format_number(std));
    detail::fill_with(a, [&] { return mean + std * gen.normal(); });
}

/// Xavier/Glorot uniform: U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out)), so the variance is
/// gain^2 * 2 / (fan_in + fan_out). Example: xavier_uniform(w, gen, gain("tanh")).
template <class Array>
void xavier_uniform(Array& a, rng& gen, double gain = 1.0, layout l = layout::in_out) {
    const fans f = compute_fans(a.shape(), l);
    detail::require(f.fan_in + f.fan_out > 0, "xavier_uniform", "zero fans for shape " + format_shape(a.shape()));
    const double b = gain * std::sqrt(6.0 / (f.fan_in + f.fan_out));
    detail::require(std::isfinite(b), "xavier_uniform", "non-finite gain " + format_number(gain));
    uniform(a, gen, -std::abs(b), std::abs(b));
}

/// Xavier/Glorot normal: N(0, s^2) with s = gain * sqrt(2 / (fan_in + fan_out)).
template <class Array>
void xavier_normal(Array& a, rng& gen, double gain = 1.0, layout l = layout::in_out) {
    const fans f = compute_fans(a.shape(), l);
    detail::require(f.fan_in + f.fan_out > 0, "xavier_normal", "zero fans for shape " + format_shape(a.shape()));
    const double s = gain * std::sqrt(2.0 / (f.fan_in + f.fan_out));
    detail::require(std::isfinite(s), "xavier_normal", "non-finite gain " + format_number(gain));
    normal(a, gen, 0.0, std::abs(s));
}

/// Kaiming/He uniform: U(-b, b) with b = gain * sqrt(3 / fan), fan chosen by `mode`, so the variance
/// is gain^2 / fan. The default gain sqrt(2) is for ReLU. Example: kaiming_uniform(w, gen).
template <class Array>
void kaiming_uniform(Array& a, rng& gen, double gain = std::sqrt(2.0), fan_mode mode = fan_mode::fan_in,
                     layout l = layout::in_out) {
    const fans f = compute_fans(a.shape(), l);
    const double fan = mode == fan_mode::fan_in ? f.fan_in : f.fan_out;
    detail::require(fan > 0, "kaiming_uniform", "zero fan for shape " + format_shape(a.shape()));
    const double b = gain * std::sqrt(3.0 / fan);
    detail::require(std::isfinite(b), "kaiming_uniform", "non-finite gain " + format_number(gain));
    uniform(a, gen, -std::abs(b), std::abs(b));
}

/// Kaiming/He normal: N(0, s^2) with s = gain / sqrt(fan), fan chosen by `mode`.
template <class Array>
void kaiming_normal(Array& a, rng& gen, double gain = std::sqrt(2.0), fan_mode mode = fan_mode::fan_in,
                    layout l = layout::in_out) {
    const fans f = compute_fans(a.shape(), l);
    const double fan = mode == fan_mode::fan_in ? f.fan_in : f.fan_out;
    detail::require(fan > 0, "kaiming_normal", "zero fan for shape " + format_shape(a.shape()));
    const double s = gain / std::sqrt(fan);
    detail::require(std::isfinite(s), "kaiming_normal", "non-finite gain " + format_number(gain));
    normal(a, gen, 0.0, std::abs(s));
}

/// Aliases under the other common names.
template <class Array>
void glorot_uniform(Array& a, rng& gen, double gain = 1.0, layout l = layout::in_out) {
    xavier_uniform(a, gen, gain, l);
}
template <class Array>
void glorot_normal(Array& a, rng& gen, double gain = 1.0, layout l = layout::in_out) {
    xavier_normal(a, gen, gain, l);
}
template <class Array>
void he_uniform(Array& a, rng& gen, double gain = std::sqrt(2.0), fan_mode mode = fan_mode::fan_in,
                layout l = layout::in_out) {
    kaiming_uniform(a, gen, gain, mode, l);
}
template <class Array>
void he_normal(Array& a, rng& gen, double gain = std::sqrt(2.0), fan_mode mode = fan_mode::fan_in,
               layout l = layout::in_out) {
    kaiming_normal(a, gen, gain, mode, l);
}

}  // namespace exprgrad::nn::init
