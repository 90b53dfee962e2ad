// Elementwise evaluation of symbolic expressions over xtensor arrays with xsimd batches.
//
// Full batches go through the op bodies instantiated for xsimd::batch (xsimd's math functions,
// within a few ulp of libm: the bound is measured in tests/simd); the tail that does not fill a
// batch is evaluated with the scalar path, element by element. The loop itself is
// kernels::elementwise_row, shared with the tensor maps (tensors/elementwise.hpp).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <xsimd/xsimd.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xtensor.hpp>

#include "exprgrad/format.hpp"
#include "exprgrad/kernels/contiguous.hpp"
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
    /// Where kernels::elementwise_row reads it: the array, or the one broadcast value.
    const T* pointer() const { return is_array ? data : &scalar; }
};

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
                                            " has shape " + format_shape(s) + " but argument " + std::to_string(first) +
                                            " has shape " + format_shape(shape) +
                                            " (array arguments must have equal shapes; scalars broadcast)");
            }
        }
        ++index;
    };
    (visit(xs), ...);
    return shape;
}

// Gives out the shape `shape`, reallocating only when it differs; errors name the function `op`.
template <class Out>
void fit(Out& out, const std::vector<std::size_t>& shape, const char* op = "map_into") {
    if (out.dimension() != shape.size() || !std::equal(shape.begin(), shape.end(), out.shape().begin())) {
        if constexpr (requires {
                          typename Out::shape_type;
                          std::tuple_size<typename Out::shape_type>::value;
                      }) {
            if (std::tuple_size<typename Out::shape_type>::value != shape.size()) {
                throw std::invalid_argument(std::string("exprgrad::") + op + ": output of dimension " +
                                            std::to_string(std::tuple_size<typename Out::shape_type>::value) +
                                            " cannot hold a result of shape " + format_shape(shape));
            }
            typename Out::shape_type s;
            std::copy(shape.begin(), shape.end(), s.begin());
            out.resize(s);
        } else {
            out.resize(shape);
        }
    }
}

// The SIMD loop: constant nodes are evaluated once before it, then kernels::elementwise_row (the loop the tensor
// maps run too) runs full batches through the batch body and the tail element by element through the scalar
// body. Which operands are arrays is known from their types, so the loop has no per-operand branch.
template <class T, std::size_t K, class... Es, class... Ops, std::size_t... Is>
void run_map(std::tuple<Es...>, std::array<T*, K> out, std::size_t n, const std::tuple<Ops...>& ops,
             std::index_sequence<Is...>) {
    using B = xsimd::batch<T>;
    using L = sym::node_list_t<Es...>;
    using PB = sym::compiled_nodes<B, L>;
    using PS = sym::compiled_nodes<T, L>;
    static const auto cb = PB::constants();  // depends on nothing at run time: computed once
    static const auto cs = PS::constants();
    static constexpr std::array<bool, sizeof...(Is)> step{Ops::is_array...};
    static constexpr std::array<kernels::put_mode, K> how{};  // value-initialized: every output put_mode::store
    const std::array<const T*, sizeof...(Is)> in{std::get<Is>(ops).pointer()...};
    kernels::elementwise_row(n, in, step, out, how, [&](const auto& args, auto&& emit) {
        using V = typename std::remove_cvref_t<decltype(args)>::value_type;
        std::size_t m = 0;
        if constexpr (std::is_same_v<V, B>) {
            const auto vals = PB::run(args, cb);
            (emit(m++, PB::template get<std::remove_cvref_t<Es>>(vals, cb)), ...);
        } else {
            const auto vals = PS::run(args, cs);
            (emit(m++, PS::template get<std::remove_cvref_t<Es>>(vals, cs)), ...);
        }
    });
}

}  // namespace detail

/// Evaluates f elementwise into `out`, resized to the arguments' shape if it differs (so a reused
/// output allocates nothing): out[i] = f(xs[i]...). Arrays (any xtensor expression of float or
/// double, all of one value type and one shape) and plain numbers (broadcast) may be mixed; argument
/// k binds var<k>. Throws std::invalid_argument naming both shapes when array shapes differ.
/// Example: `map_into(exp(x) * y, out, xs, 2.0f);`
template <sym::Expression F, class Out, detail::Argument... Xs>
requires(detail::Array<Xs> || ...) void map_into(F, Out& out, const Xs&... xs) {
    using T = typename detail::value_type_of<Xs...>::type;
    static_assert(std::is_floating_point_v<T>, "exprgrad: map evaluates arrays of float or double");
    static_assert(((!detail::Array<Xs> || std::is_same_v<typename detail::value_type_of<Xs>::type, T>)&&...),
                  "exprgrad: map needs all array arguments to have one value type (float or double)");
    static_assert(std::is_same_v<typename Out::value_type, T>,
                  "exprgrad: map's output must have the arguments' value type");
    static_assert(static_cast<int>(sizeof...(Xs)) >= sym::arity_v<F>,
                  "exprgrad: too few arguments: an expression reading var<I> needs at least I + 1 arguments");
    const auto shape = detail::common_shape("map", xs...);
    detail::fit(out, shape);
    std::tuple<detail::operand<T, Xs>...> ops{detail::operand<T, Xs>(xs)...};
    detail::run_map<T, 1>(std::tuple<F>{}, std::array<T*, 1>{out.data()}, out.size(), ops,
                          std::index_sequence_for<Xs...>{});
}

/// Evaluates f elementwise and returns the result as an xt::xarray of the arrays' value type
/// (assignable to xt::xtensor); see map_into. Example: `xt::xtensor<float, 1> out = map(f, xs, ys);`
template <sym::Expression F, detail::Argument... Xs>
requires(detail::Array<Xs> || ...) auto map(F f, const Xs&... xs) {
    xt::xarray<typename detail::value_type_of<Xs...>::type> out;
    map_into(f, out, xs...);
    return out;
}

/// The value and every first partial of f, elementwise, in one SIMD pass, into `value` and
/// `grads[k]` (resized when their shape differs, so reused outputs allocate nothing):
/// value[i] = f(xs[i]...), grads[k][i] = d(f, var<k>)(xs[i]...) for each argument k (a gradient
/// array even for a broadcast scalar argument). Shapes and errors as for map_into.
template <sym::Expression F, class Out, std::size_t N, detail::Argument... Xs>
requires((detail::Array<Xs> || ...) &&
         N == sizeof...(Xs)) void map_value_and_grad_into(F f, Out& value, std::array<Out, N>& grads, const Xs&... xs) {
    using T = typename detail::value_type_of<Xs...>::type;
    static_assert(std::is_floating_point_v<T>, "exprgrad: map_value_and_grad evaluates arrays of float or double");
    static_assert(((!detail::Array<Xs> || std::is_same_v<typename detail::value_type_of<Xs>::type, T>)&&...),
                  "exprgrad: map_value_and_grad needs all array arguments to have one value type");
    static_assert(std::is_same_v<typename Out::value_type, T>,
                  "exprgrad: map_value_and_grad's outputs must have the arguments' value type");
    static_assert(static_cast<int>(sizeof...(Xs)) >= sym::arity_v<F>,
                  "exprgrad: too few arguments: an expression reading var<I> needs at least I + 1 arguments");
    const auto shape = detail::common_shape("map_value_and_grad", xs...);
    std::tuple<detail::operand<T, Xs>...> ops{detail::operand<T, Xs>(xs)...};
    detail::fit(value, shape, "map_value_and_grad_into");
    std::array<T*, N + 1> out{value.data()};
    for (std::size_t k = 0; k < N; ++k) {
        detail::fit(grads[k], shape, "map_value_and_grad_into");
        out[k + 1] = grads[k].data();
    }
    auto outputs = [f]<std::size_t... Is>(std::index_sequence<Is...>) {
        return std::tuple{f, sym::d(f, sym::var<static_cast<int>(Is)>)...};
    }
    (std::make_index_sequence<N>{});
    detail::run_map<T, N + 1>(outputs, out, value.size(), ops, std::index_sequence_for<Xs...>{});
}

/// The value and every first partial of f, elementwise, in one SIMD pass, as new arrays:
/// `auto [v, g] = map_value_and_grad(f, xs, ys);` gives v[i] = f(xs[i], ys[i]) and
/// g[k][i] = d(f, var<k>)(xs[i], ys[i]). See map_value_and_grad_into.
template <sym::Expression F, detail::Argument... Xs>
requires(detail::Array<Xs> || ...) auto map_value_and_grad(F f, const Xs&... xs) {
    using A = xt::xarray<typename detail::value_type_of<Xs...>::type>;
    std::pair<A, std::array<A, sizeof...(Xs)>> result;
    map_value_and_grad_into(f, result.first, result.second, xs...);
    return result;
}

}  // namespace exprgrad::simd
