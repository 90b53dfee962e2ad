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

#include "exprgrad/tensors/graph.hpp"

namespace exprgrad::tensors {

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

// A call's argument count against the program's placeholders, checked where the user calls (value_and_grad's
// and evaluator's programs) as well as in program::forward, so that the library's sentence is the first error.
template <int Arity, int Count>
constexpr void check_argument_count() {
    static_assert(Count <= Arity,
                  "exprgrad: too many arguments for this tensor program: pass one per placeholder, "
                  "tensor<0> up to the highest tensor<I> it reads (or differentiates)");
    static_assert(Count >= Arity, "exprgrad: too few arguments for this tensor program: tensor<I> needs at least I + 1");
}

}  // namespace detail

template <class T, int>
using grad_ref = const xt::xarray<T>&;
template <class T, int>
using grad_array = xt::xarray<T>;

/// value_and_grad(loss, wrt<I...>): a compiled program. Calling it with the arguments returns
/// {value, grads} where value is the loss (the expression must have one element) and grads a
/// std::tuple holding the gradient with respect to each argument in wrt order, each an array of
/// that argument's shape (zeros when the loss does not depend on it). T is the value type of the
/// floating-point array arguments (float or double; all must agree).
///
/// Lifetime rule: called on a program held in a variable, the gradients are `const xt::xarray<T>&`
/// into the workspace the program owns and reuses: valid until its next call or its destruction,
/// overwritten (never accumulated into) by each call. Called on a temporary program (as in
/// `value_and_grad(f, wrt<0, 1>)(x, w)`), the gradients are owning `xt::xarray<T>` copies, so
/// `auto [v, g] = value_and_grad(f, wrt<0>)(x);` is safe (and allocates a workspace per call).
/// A call takes exactly one argument per placeholder, tensor<0> up to the highest tensor<I> the
/// loss reads or differentiates: an extra or a missing argument does not compile.
/// Not reentrant (one call at a time per program object; build another with value_and_grad for
/// each thread).
/// Example:
///   auto prog = value_and_grad(mean(square(matmul(X, W))), wrt<1>);
///   auto [loss, grads] = prog(Xv, Wv);   const auto& dW = std::get<0>(grads);
template <class E, int... W>
class grad_program {
  public:
    template <class... Args>
    auto operator()(const Args&... args) & {
        using T = typename detail::value_type_of_args<Args...>::type;
        auto r = run(args...);
        return std::pair<T, std::tuple<grad_ref<T, W>...>>(
            r.out_value, std::tuple<grad_ref<T, W>...>(r.prog.template grad_of<W>()...));
    }
    /// On a temporary program: the same results, the gradients as owning arrays (see above).
    template <class... Args>
    auto operator()(const Args&... args) && {
        using T = typename detail::value_type_of_args<Args...>::type;
        auto r = run(args...);
        return std::pair<T, std::tuple<grad_array<T, W>...>>(
            r.out_value, std::tuple<grad_array<T, W>...>(r.prog.template grad_of<W>()...));
    }

  private:
    template <class T>
    struct ran {
        program<T, E, std::integer_sequence<int, W...>>& prog;
        T out_value;
    };
    template <class... Args>
    auto run(const Args&... args) {
        using T = typename detail::value_type_of_args<Args...>::type;
        constexpr int arity = program<T, E, std::integer_sequence<int, W...>>::arity;
        detail::check_argument_count<arity, static_cast<int>(sizeof...(Args))>();
        auto& p = progs_.template get<T>();
        const cview<T>& out = p.forward(args...);
        if (out.size() != 1) {
            throw shape_error("value_and_grad", "the differentiated expression must have one element, but has shape " +
                                                    out.shape.str() + " (reduce it with sum or mean)");
        }
        const T value = out.data[0];
        p.backward_uniform(T(1));
        return ran<T>{p, value};
    }

    detail::program_pair<E, std::integer_sequence<int, W...>> progs_;
};

/// Compiles the gradient program of a scalar tensor expression with respect to the arguments W.
template <TensorExpr E, int... W>
grad_program<std::remove_cvref_t<E>, W...> value_and_grad(E, wrt_t<W...>) {
    static_assert(sizeof...(W) > 0, "exprgrad: value_and_grad(expr, wrt<I...>) needs at least one argument index");
    return {};
}

/// A compiled block: forward(args...) returns the output (a view of a buffer the block owns, valid
/// until the next call), and vjp(dout) then computes the gradients with respect to the wrt
/// arguments, read with grad<I>() (arrays of the arguments' shapes, overwritten by each vjp). The
/// pieces that runtime composition (nn::sequential) builds on. Not reentrant. A block must be kept
/// in a variable: forward and grad on a temporary block do not compile (their views would dangle).
/// Example: `auto blk = compile<float>(tanh(matmul(X, W)), wrt<0, 1>); auto y = blk.forward(x, w);
///           blk.vjp(dy.data()); const auto& dx = blk.grad<0>();`
template <class T, class E, int... W>
class block {
  public:
    template <class... Args>
    const cview<T>& forward(const Args&... args) & {
        return p_.forward(args...);
    }
    /// Refused: the view would point into the temporary block's buffers.
    template <class... Args>
    auto forward(const Args&...) && {
        static_assert(detail::always_false<Args...>,
                      "exprgrad: forward on a temporary compiled block returns a view into buffers that die with "
                      "it; keep the block in a variable (auto blk = compile<float>(expr, wrt<...>);)");
        return cview<T>{};
    }
    /// The VJP of the last forward call with the output adjoint `dout` (the output's shape).
    void vjp(const T* dout) { p_.backward(dout); }
    /// The gradient with respect to argument I after vjp.
    template <int I>
    const xt::xarray<T>& grad() & {
        return p_.template grad_of<I>();
    }
    /// Refused: the reference would point into the temporary block's buffers.
    template <int I>
    auto grad() && {
        static_assert(I < 0 && I >= 0,
                      "exprgrad: grad on a temporary compiled block returns a view into buffers that die with it; "
                      "keep the block in a variable");
        return xt::xarray<T>{};
    }

    /// Hand-overs without a copy, for tensors::record (program::hand_over_output, backward_in_place,
    /// take_grad): the output moved into dst after forward (false when the output is an argument); the VJP
    /// reading its adjoint in place; the gradient of argument I moved into dst after vjp (grad<I>() is then
    /// unspecified until the next vjp).
    bool hand_over_output(xt::xarray<T>& dst) { return p_.hand_over_output(dst); }
    void vjp_in_place(xt::xarray<T>& dout) { p_.backward_in_place(dout); }
    template <int I>
    void take_grad(xt::xarray<T>& dst) {
        p_.template take_grad<I>(dst);
    }

    /// Frees the block's buffers (values, adjoints, saved data); the next forward allocates them again.
    /// The recompute mode of a record (record::set_recompute) calls it after each forward and VJP.
    void release() { p_.release(); }
    /// The run-time state of node type N of the expression (its options, its last report), e.g.
    /// `blk.extra<decltype(node)>().report` for an ops::deer_node; reset by release().
    template <class N>
    auto& extra() & {
        return p_.template extra<N>();
    }

  private:
    program<T, E, std::integer_sequence<int, W...>> p_;
};

/// Compiles E into a block computing in T (float or double) with VJPs for the arguments W.
template <class T, TensorExpr E, int... W>
block<T, std::remove_cvref_t<E>, W...> compile(E, wrt_t<W...>) {
    return {};
}

}  // namespace exprgrad::tensors
