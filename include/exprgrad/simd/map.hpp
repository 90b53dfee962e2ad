// Elementwise evaluation of symbolic expressions over xtensor arrays with xsimd batches.
//
// Full batches go through the op bodies instantiated for xsimd::batch (xsimd's math functions,
// within a few ulp of libm: the bound is measured in tests/simd); the tail that does not fill a
// batch is evaluated with the scalar path, element by element.
#pragma once

#include <array>
#include <cstddef>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <xsimd/xsimd.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xtensor.hpp>

#include "exprgrad/sym/derivative.hpp"
#include "exprgrad/sym/evaluate.hpp"

namespace exprgrad::simd {

namespace detail {

template <class X>
concept Array = xt::is_xexpression<std::remove_cvref_t<X>>::value;

template <class X>
concept Argument = Array<X> || std::is_arithmetic_v<std::remove_cvref_t<X>>;

template <class... Xs>
struct value_type_of;
template <>
struct value_type_of<> {
    using type = void;
};
template <class X, class... Xs>
struct value_type_of<X, Xs...> {
    using type = typename value_type_of<Xs...>::type;
};
template <Array X, class... Xs>
struct value_type_of<X, Xs...> {
    using type = typename std::remove_cvref_t<X>::value_type;
};

// A contiguous row-major view of one argument: arrays are evaluated into a temporary when they
// are not already a contiguous row-major container; scalars are broadcast.
template <class T, class X>
struct operand {
    static constexpr bool is_array = Array<X>;
    using holder = std::conditional_t<is_array, xt::xarray<T>, T>;
    holder owned{};
    const T* data = nullptr;
    T scalar{};

    explicit operand(const X& x) {
        if constexpr (is_array) {
            if constexpr (requires { x.data(); } && std::is_same_v<typename X::value_type, T>) {
                if (x.layout() == xt::layout_type::row_major && x.is_contiguous()) {
                    data = x.data();
                    return;
                }
            }
            owned = x;
            data = owned.data();
        } else {
            scalar = static_cast<T>(x);
        }
    }
    template <class B>
    B batch(std::size_t i) const {
        if constexpr (is_array) return xsimd::load_unaligned(data + i); else return B(scalar);
    }
    T at(std::size_t i) const {
        if constexpr (is_array) return data[i]; else return scalar;
    }
};

inline std::string shape_text(const auto& shape) {
    std::ostringstream s;
    s << '(';
    for (std::size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
    s << (shape.size() == 1 ? ",)" : ")");
    return s.str();
}

// The common shape of the array arguments; throws naming the operation and both shapes.
template <class... Xs>
auto common_shape(const char* op, const Xs&... xs) {
    std::vector<std::size_t> shape;
    bool have = false;
    std::size_t index = 0, first = 0;
    auto visit = [&](const auto& x) {
        if constexpr (Array<decltype(x)>) {
            std::vector<std::size_t> s(x.shape().begin(), x.shape().end());
            if (!have) {
                shape = s;
                have = true;
                first = index;
            } else if (s != shape) {
                throw std::invalid_argument(std::string("exprgrad::") + op + ": argument " + std::to_string(index) +
                                            " has shape " + shape_text(s) + " but argument " +
                                            std::to_string(first) + " has shape " + shape_text(shape) +
                                            " (array arguments must have equal shapes; scalars broadcast)");
            }
        }
        ++index;
    };
    (visit(xs), ...);
    return shape;
}

template <class T, std::size_t K, class Outputs, class... Ops, std::size_t... Is>
void run_map(Outputs outputs, std::array<T*, K> out, std::size_t n, const std::tuple<Ops...>& ops,
             std::index_sequence<Is...>) {
    using B = xsimd::batch<T>;
    constexpr std::size_t W = B::size;
    const std::size_t full = n - n % W;
    for (std::size_t i = 0; i < full; i += W) {
        const auto r = sym::evaluate_all(outputs, std::get<Is>(ops).template batch<B>(i)...);
        for (std::size_t k = 0; k < K; ++k) r[k].store_unaligned(out[k] + i);
    }
    for (std::size_t i = full; i < n; ++i) {
        const auto r = sym::evaluate_all(outputs, std::get<Is>(ops).at(i)...);
        for (std::size_t k = 0; k < K; ++k) out[k][i] = r[k];
    }
}

}  // namespace detail

/// Evaluates f elementwise: out[i] = f(xs[i]...). Arrays (any xtensor expression of float or double,
/// all of one value type and one shape) and plain numbers (broadcast) may be mixed; argument k binds
/// var<k>. Returns an xt::xarray of the arrays' value type (assignable to xt::xtensor).
/// Throws std::invalid_argument naming both shapes when array shapes differ.
/// Example: `xt::xtensor<float, 1> out = map(exp(x) * y, xs, 2.0f);`
template <sym::Expression F, detail::Argument... Xs>
    requires(detail::Array<Xs> || ...)
auto map(F, const Xs&... xs) {
    using T = typename detail::value_type_of<Xs...>::type;
    static_assert(std::is_floating_point_v<T>, "exprgrad: map evaluates arrays of float or double");
    static_assert(((!detail::Array<Xs> || std::is_same_v<typename detail::value_type_of<Xs>::type, T>) && ...),
                  "exprgrad: map needs all array arguments to have one value type (float or double)");
    static_assert(static_cast<int>(sizeof...(Xs)) >= sym::arity_v<F>,
                  "exprgrad: too few arguments: an expression reading var<I> needs at least I + 1 arguments");
    const auto shape = detail::common_shape("map", xs...);
    std::tuple<detail::operand<T, Xs>...> ops{detail::operand<T, Xs>(xs)...};
    xt::xarray<T> out = xt::xarray<T>::from_shape(shape);
    detail::run_map<T, 1>(std::tuple<F>{}, std::array<T*, 1>{out.data()}, out.size(), ops,
                          std::index_sequence_for<Xs...>{});
    return out;
}

/// The value and every first partial of f, elementwise, in one SIMD pass:
/// `auto [v, g] = map_value_and_grad(f, xs, ys);` gives v[i] = f(xs[i], ys[i]) and
/// g[k][i] = d(f, var<k>)(xs[i], ys[i]) for each argument k (a gradient array even for a broadcast
/// scalar argument). Shapes and errors as for map.
template <sym::Expression F, detail::Argument... Xs>
    requires(detail::Array<Xs> || ...)
auto map_value_and_grad(F f, const Xs&... xs) {
    using T = typename detail::value_type_of<Xs...>::type;
    static_assert(std::is_floating_point_v<T>, "exprgrad: map_value_and_grad evaluates arrays of float or double");
    static_assert(((!detail::Array<Xs> || std::is_same_v<typename detail::value_type_of<Xs>::type, T>) && ...),
                  "exprgrad: map_value_and_grad needs all array arguments to have one value type");
    static_assert(static_cast<int>(sizeof...(Xs)) >= sym::arity_v<F>,
                  "exprgrad: too few arguments: an expression reading var<I> needs at least I + 1 arguments");
    constexpr std::size_t n = sizeof...(Xs);
    const auto shape = detail::common_shape("map_value_and_grad", xs...);
    std::tuple<detail::operand<T, Xs>...> ops{detail::operand<T, Xs>(xs)...};
    std::pair<xt::xarray<T>, std::array<xt::xarray<T>, n>> result;
    result.first = xt::xarray<T>::from_shape(shape);
    std::array<T*, n + 1> out{result.first.data()};
    for (std::size_t k = 0; k < n; ++k) {
        result.second[k] = xt::xarray<T>::from_shape(shape);
        out[k + 1] = result.second[k].data();
    }
    auto outputs = [f]<std::size_t... Is>(std::index_sequence<Is...>) {
        return std::tuple{f, sym::d(f, sym::var<static_cast<int>(Is)>)...};
    }(std::make_index_sequence<n>{});
    detail::run_map<T, n + 1>(outputs, out, result.first.size(), ops, std::index_sequence_for<Xs...>{});
    return result;
}

}  // namespace exprgrad::simd
