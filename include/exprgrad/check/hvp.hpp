// Hessian-vector products of tensor programs by central finite differences of the compiled gradient:
// H·v ≈ (∇f(θ + h v) − ∇f(θ − h v)) / 2h. Numerical, not symbolic: the checker of the exact product
// tensors::hvp (tensors/hvp.hpp, reverse mode over the forward-mode tangent; docs/tensor.md "Forward mode
// and Hessian-vector products"), independent of it since it only calls the compiled gradient. Two gradient
// evaluations per product, error O(h²) + O(ε/h): about 1e-9 relative in double, 1e-4 in float.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include <xtensor/xarray.hpp>

#include "exprgrad/format.hpp"
#include "exprgrad/tensors/value_and_grad.hpp"

namespace exprgrad::check {

/// Options of hvp.
struct hvp_options {
    /// Relative step s: h = s · max(1, max|θ|) / max|v|, the maxima over every entry of the differentiated
    /// arguments θ and of the directions v. 0 (the default) takes the cube root of the number type's
    /// machine epsilon (about 6.1e-6 in double, 4.9e-3 in float), which balances the O(h²) truncation
    /// error of central differences against the O(ε/h) rounding error. Must be finite and >= 0.
    double step = 0;
};

namespace detail {
template <class T>
struct is_std_tuple : std::false_type {};
template <class... A>
struct is_std_tuple<std::tuple<A...>> : std::true_type {};

// The element type of a floating-point array A, else void (numbers, integer arrays, other objects).
template <class A, class = void>
struct float_array_value {
    using type = void;
};
template <class A>
struct float_array_value<A, std::void_t<typename A::value_type, decltype(std::declval<const A&>().shape())>> {
    using type = std::conditional_t<std::is_floating_point_v<typename A::value_type>, typename A::value_type, void>;
};

// The position of argument index K among W..., or -1.
template <int K, int... W>
constexpr int position_in() {
    int p = 0, r = -1;
    ((r = (W == K && r < 0) ? p : r, ++p), ...);
    return r;
}
}  // namespace detail

/// A compiled Hessian-vector product of a scalar tensor expression, built by hvp(loss, wrt<I...>).
/// Calling it as `H(v, args...)` returns H·v, where H is the Hessian of the loss with respect to the
/// arguments I... (jointly: the blocks between two differentiated arguments included), at the point
/// `args...` (the arguments of the loss, exactly as value_and_grad's program takes them), and v is the
/// direction: one array of the argument's shape for one wrt index, or a std::tuple of arrays in wrt
/// order for several (then the result is a std::tuple of owning xt::xarray<T>, one per wrt argument; for
/// one index a single xt::xarray<T>). T is the arguments' floating-point type, as for value_and_grad.
///
/// Method (finite differences, not symbolic): (∇f(θ + h v) − ∇f(θ − h v)) / 2h with h as in
/// hvp_options, two calls of the compiled gradient program (held and reused by this object); the
/// arguments are copied per call. Exact for quadratic losses up to rounding; otherwise an O(h²) error.
/// v = 0 returns zeros without evaluating anything. Throws std::invalid_argument "exprgrad::check::hvp:
/// ..." when a direction's shape differs from its argument's or a direction holds NaN or infinity;
/// NaN in the arguments propagates into the result. Not reentrant.
/// Example: logistic loss f(w) = mean(softplus(Xw) − y·Xw), whose Hessian is Xᵀ diag(p(1−p)) X / n:
///   auto H = check::hvp(mean(softplus(matmul(X, W)) - Y * matmul(X, W)), wrt<1>);
///   xt::xarray<double> hv = H(v, x, w, y);
template <class E, int... W>
class hvp_program {
  public:
    explicit hvp_program(hvp_options o = {}) : opts_(o) {
        if (!(std::isfinite(o.step) && o.step >= 0)) {
            throw std::invalid_argument("exprgrad::check::hvp: step must be finite and >= 0, got " +
                                        format_number(o.step));
        }
    }

    /// H·v for several wrt arguments: v a tuple of directions in wrt order.
    template <class... V, class... Args>
    auto operator()(const std::tuple<V...>& v, const Args&... args) {
        static_assert(sizeof...(V) == sizeof...(W), "exprgrad: hvp needs one direction per wrt argument");
        static_assert(((W >= 0 && W < static_cast<int>(sizeof...(Args))) && ...),
                      "exprgrad: hvp: a wrt index names no argument of the call");
        using arg_types = std::tuple<Args..., double>;  // the extra double keeps a bad index from a second error
        static_assert((!std::is_void_v<typename detail::float_array_value<
                           std::tuple_element_t<static_cast<std::size_t>(W < 0 ? 0 : W), arg_types>>::type> &&
                       ...),
                      "exprgrad: hvp: a wrt argument must be a floating-point array");
        using T = typename detail::float_array_value<
            std::tuple_element_t<static_cast<std::size_t>(first_wrt < 0 ? 0 : first_wrt), arg_types>>::type;
        const auto a = std::forward_as_tuple(args...);
        // θ ± h v, one copy per wrt argument
        std::tuple<typename wrt_array<T, W>::type...> shifted{xt::xarray<T>(std::get<W>(a))...};
        double vmax = 0, tmax = 1;
        check_directions(v, a, vmax, tmax, std::make_index_sequence<sizeof...(W)>{});
        std::tuple<typename wrt_array<T, W>::type...> result{xt::zeros<T>(std::get<W>(a).shape())...};
        if (vmax == 0) return result;
        const double s =
            opts_.step > 0 ? opts_.step : std::cbrt(static_cast<double>(std::numeric_limits<T>::epsilon()));
        const double h = s * tmax / vmax;
        auto grad_at = [&](double sign) {
            shift(shifted, a, v, sign * h, std::make_index_sequence<sizeof...(W)>{});
            std::tuple<typename wrt_array<T, W>::type...> g =
                call(shifted, a, std::make_index_sequence<sizeof...(Args)>{}).second;
            return g;
        };
        const auto up = grad_at(+1);
        const auto down = grad_at(-1);
        combine(result, up, down, 2 * h, std::make_index_sequence<sizeof...(W)>{});
        return result;
    }

    /// H·v for one wrt argument: v an array of its shape; returns one array.
    template <class V, class... Args>
    requires(!detail::is_std_tuple<std::remove_cvref_t<V>>::value && sizeof...(W) == 1) auto operator()(
        const V& v, const Args&... args) {
        return std::get<0>((*this)(std::tuple<const V&>(v), args...));
    }

  private:
    static constexpr int first_wrt = std::get<0>(std::tuple{W...});
    template <class T, int>
    struct wrt_array {
        using type = xt::xarray<T>;
    };

    template <class... V, class A, std::size_t... J>
    static void check_directions(const std::tuple<V...>& v, const A& a, double& vmax, double& tmax,
                                 std::index_sequence<J...>) {
        (check_one<J, W>(std::get<J>(v), std::get<W>(a), vmax, tmax), ...);
    }
    template <std::size_t J, int I, class Vj, class Ai>
    static void check_one(const Vj& vj, const Ai& ai, double& vmax, double& tmax) {
        const auto& vs = vj.shape();
        const auto& as = ai.shape();
        if (vs.size() != as.size() || !std::equal(vs.begin(), vs.end(), as.begin())) {
            throw std::invalid_argument("exprgrad::check::hvp: direction " + std::to_string(J) + " has shape " +
                                        format_shape(vs) + " but argument " + std::to_string(I) + " has shape " +
                                        format_shape(as));
        }
        for (const auto x : vj) {
            if (!std::isfinite(static_cast<double>(x))) {
                throw std::invalid_argument("exprgrad::check::hvp: direction " + std::to_string(J) +
                                            " holds a non-finite entry (" + format_number(static_cast<double>(x)) +
                                            ")");
            }
            vmax = std::max(vmax, std::abs(static_cast<double>(x)));
        }
        for (const auto x : ai) {
            const double d = std::abs(static_cast<double>(x));
            if (std::isfinite(d)) tmax = std::max(tmax, d);
        }
    }

    template <class S, class A, class... V, std::size_t... J>
    static void shift(S& shifted, const A& a, const std::tuple<V...>& v, double step, std::index_sequence<J...>) {
        ((std::get<J>(shifted) = std::get<W>(a) + step * std::get<J>(v)), ...);
    }

    template <std::size_t K, class S, class A>
    static const auto& pick(const S& shifted, const A& a) {
        constexpr int p = detail::position_in<static_cast<int>(K), W...>();
        if constexpr (p >= 0) {
            return std::get<static_cast<std::size_t>(p)>(shifted);
        } else {
            return std::get<K>(a);
        }
    }
    template <class S, class A, std::size_t... K>
    auto call(const S& shifted, const A& a, std::index_sequence<K...>) {
        return prog_(pick<K>(shifted, a)...);
    }

    template <class R, class G, std::size_t... J>
    static void combine(R& result, const G& up, const G& down, double two_h, std::index_sequence<J...>) {
        ((std::get<J>(result) = (std::get<J>(up) - std::get<J>(down)) / two_h), ...);
    }

    hvp_options opts_;
    tensors::grad_program<E, W...> prog_;
};

/// Builds the Hessian-vector product of the scalar tensor expression `loss` with respect to the arguments
/// W... (see hvp_program for the call, the method and its accuracy). Example:
///   auto H = check::hvp(loss, wrt<1, 2>);  auto [hw, hb] = H(std::tuple{vw, vb}, x, w, b, y);
template <tensors::TensorExpr E, int... W>
hvp_program<std::remove_cvref_t<E>, W...> hvp(E, tensors::wrt_t<W...>, hvp_options o = {}) {
    static_assert(sizeof...(W) > 0, "exprgrad: hvp(loss, wrt<I...>) needs at least one argument index");
    return hvp_program<std::remove_cvref_t<E>, W...>(o);
}

}  // namespace exprgrad::check
