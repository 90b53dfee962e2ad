// Compiling tensor expressions: value_and_grad(expr, wrt<I...>) for scalar losses, and compile()
// for blocks with a forward pass and a vector-Jacobian product (runtime composition, nn/).
#pragma once

#include <array>
#include <memory>
#include <stdexcept>
#include <tuple>
#include <type_traits>
#include <utility>

#include <xtensor/xarray.hpp>

#include "exprgrad/tensor/graph.hpp"

namespace exprgrad::tex {

namespace detail {
template <class... Args>
struct value_type_of_args {
    using type = double;
};
template <class A, class = void>
struct floating_value {
    using type = void;
};
template <class A>
struct floating_value<A, std::void_t<typename A::value_type>> {
    using type = std::conditional_t<std::is_floating_point_v<typename A::value_type>, typename A::value_type, void>;
};
template <class A, class... Args>
struct value_type_of_args<A, Args...> {
    using mine = typename floating_value<A>::type;
    using type = std::conditional_t<std::is_void_v<mine>, typename value_type_of_args<Args...>::type, mine>;
};

// Holds one program per number type, created on first use (float and double calls share nothing).
template <class E, class Wrt>
class program_pair {
  public:
    template <class T>
    program<T, E, Wrt>& get() {
        if constexpr (std::is_same_v<T, float>) {
            if (!f_) f_ = std::make_unique<program<float, E, Wrt>>();
            return *f_;
        } else {
            static_assert(std::is_same_v<T, double>, "exprgrad: tensor programs compute in float or double");
            if (!d_) d_ = std::make_unique<program<double, E, Wrt>>();
            return *d_;
        }
    }

  private:
    std::unique_ptr<program<float, E, Wrt>> f_;
    std::unique_ptr<program<double, E, Wrt>> d_;
};
}  // namespace detail

template <class T, int>
using grad_ref = const xt::xarray<T>&;

/// value_and_grad(loss, wrt<I...>): a compiled program. Calling it with the arguments returns
/// {value, grads} where value is the loss (the expression must have one element) and grads a
/// std::tuple of `const xt::xarray<T>&`, the gradient with respect to each argument in wrt order.
/// T is the value type of the floating-point array arguments (float or double; all must agree).
/// The program owns its workspace and reuses it: gradients stay valid until its next call, and it
/// is not reentrant (one call at a time per program object; copy-construct another for a thread).
/// Example:
///   auto prog = value_and_grad(mean(square(matmul(X, W))), wrt<1>);
///   auto [loss, grads] = prog(Xv, Wv);   const auto& dW = std::get<0>(grads);
template <class E, int... W>
class grad_program {
  public:
    template <class... Args>
    auto operator()(const Args&... args) {
        using T = typename detail::value_type_of_args<Args...>::type;
        auto& p = progs_.template get<T>();
        const cview<T>& out = p.forward(args...);
        if (out.size() != 1) {
            throw shape_error("value_and_grad", "the differentiated expression must have one element, but has shape " +
                                                    out.shape.str() + " (reduce it with sum or mean)");
        }
        const T value = out.data[0];
        p.backward_uniform(T(1));
        return std::pair<T, std::tuple<grad_ref<T, W>...>>(value,
                                                           std::tuple<grad_ref<T, W>...>(p.template grad_of<W>()...));
    }

  private:
    detail::program_pair<E, std::integer_sequence<int, W...>> progs_;
};

/// Compiles the gradient program of a scalar tensor expression with respect to the arguments W.
template <TensorExpr E, int... W>
grad_program<std::remove_cvref_t<E>, W...> value_and_grad(E, wrt_t<W...>) {
    static_assert(sizeof...(W) > 0, "exprgrad: value_and_grad(expr, wrt<I...>) needs at least one argument index");
    return {};
}

/// A compiled block: forward(args...) returns the output (a view of a buffer the block owns), and
/// vjp(dout) then computes the gradients with respect to the wrt arguments, read with grad<I>().
/// The pieces that runtime composition (nn::sequential) builds on. Not reentrant.
/// Example: `auto blk = compile<float>(tanh(matmul(X, W)), wrt<0, 1>); auto y = blk.forward(x, w);
///           blk.vjp(dy.data()); const auto& dx = blk.grad<0>();`
template <class T, class E, int... W>
class block {
  public:
    template <class... Args>
    const cview<T>& forward(const Args&... args) {
        return p_.forward(args...);
    }
    /// The VJP of the last forward call with the output adjoint `dout` (the output's shape).
    void vjp(const T* dout) { p_.backward(dout); }
    /// The gradient with respect to argument I after vjp.
    template <int I>
    const xt::xarray<T>& grad() {
        return p_.template grad_of<I>();
    }

  private:
    program<T, E, std::integer_sequence<int, W...>> p_;
};

/// Compiles E into a block computing in T (float or double) with VJPs for the arguments W.
template <class T, TensorExpr E, int... W>
block<T, std::remove_cvref_t<E>, W...> compile(E, wrt_t<W...>) {
    return {};
}

}  // namespace exprgrad::tex
