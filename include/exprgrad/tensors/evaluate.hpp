// Evaluating a tensor expression without gradients: evaluate(expr, args...) for one value, and
// evaluator(expr) for a compiled program called many times. Only the forward pass runs: no adjoint
// buffer is sized or filled and no node's VJP is called.
//
// Names: `evaluate` is the same word and the same meaning as sym::evaluate(f, args...) (the value
// of an expression at its arguments); the argument type picks the layer (a sym::Expression or a
// TensorExpr), as it does for value_and_grad, exp, sum and the other shared names. The reusable
// program has its own name, `evaluator`, because `evaluate(f)` with no arguments already means the
// value of a constant sym expression.
#pragma once

#include "exprgrad/require_cxx20.hpp"  // first: refuses a standard older than C++20

#include <algorithm>
#include <string>
#include <type_traits>
#include <utility>

#include <xtensor/xarray.hpp>

#include "exprgrad/tensors/graph.hpp"
#include "exprgrad/tensors/value_and_grad.hpp"  // detail::program_pair, detail::value_type_of_args

namespace exprgrad::tensors {

namespace detail {
// Owned copies of the output when the expression is a bare argument (tensor<I>), which has no node
// buffer of its own. Empty for every other expression: a default xt::xarray allocates, and a
// forward-only program should allocate nothing it does not use.
template <bool IsInput>
struct input_output_copies {
    template <class T>
    xt::xarray<T>& get() = delete;
};
template <>
struct input_output_copies<true> {
    xt::xarray<float> f;
    xt::xarray<double> d;
    template <class T>
    xt::xarray<T>& get() {
        if constexpr (std::is_same_v<T, float>) {
            return f;
        } else {
            return d;
        }
    }
};
}  // namespace detail

/// The number type of a forward-only call with these arguments: the value type of the floating-point
/// array arguments (float or double; all must agree), double when there is none.
template <class... Args>
using eval_value_t = typename detail::value_type_of_args<Args...>::type;

/// evaluator(expr): a compiled forward-only program. Calling it with the arguments returns the value
/// of the expression as an `xt::xarray<T>` of the output's shape (rank 0 for a full reduction: read
/// the number with `y()`), T being the arguments' floating-point type (float or double). Nothing is
/// differentiated: no gradient buffer is allocated and no VJP runs.
///
/// Lifetime rule (the one of value_and_grad): called on a program held in a variable, the result is
/// a `const xt::xarray<T>&` into the workspace the program owns and reuses, valid until its next call
/// or its destruction; it is an xtensor expression (`xt::sum(prog(x))`, `prog(x) * 2.0`) and
/// `auto y = prog(x);` copies it. A steady-state call allocates nothing. Called on a temporary (as in
/// `evaluator(e)(x)`), the result is an owning `xt::xarray<T>`, so nothing dangles.
/// A call takes exactly one argument per placeholder, tensor<0> up to the highest tensor<I> the
/// expression reads: an extra or a missing argument does not compile. Shape errors throw
/// std::invalid_argument naming the op; NaN and infinity propagate as in any forward pass.
/// Not reentrant (one call at a time per program object; build one per thread).
/// Example:
///   auto predict = evaluator(softmax(matmul(X, W)));
///   for (const auto& xb : batches) { const auto& p = predict(xb, w); total += xt::sum(p * onehot)(); }
template <class E>
class eval_program {
  public:
    template <class... Args>
    const xt::xarray<eval_value_t<Args...>>& operator()(const Args&... args) & {
        return run(args...);
    }
    /// On a temporary program: the same value as an owning array (see above).
    template <class... Args>
    xt::xarray<eval_value_t<Args...>> operator()(const Args&... args) && {
        return run(args...);
    }

  private:
    using none = std::integer_sequence<int>;  // no argument is differentiated
    using root = typename detail::program_root<E>::type;  // E without unlowered(...)

    template <class... Args>
    const xt::xarray<eval_value_t<Args...>>& run(const Args&... args) {
        using T = eval_value_t<Args...>;
        constexpr int arity = program<T, E, none>::arity;
        detail::check_argument_count<arity, static_cast<int>(sizeof...(Args))>();
        auto& p = progs_.template get<T>();
        const cview<T>& out = p.forward(args...);
        if constexpr (detail::is_input<root>::value) {
            if (out.data == nullptr) {
                throw shape_error("evaluate", "the expression is argument " + std::to_string(root::index) +
                                                  ", which is neither a floating-point array nor a number");
            }
            xt::xarray<T>& copy = copies_.template get<T>();
            fit(copy, out.shape);
            std::copy(out.data, out.data + out.size(), copy.data());
            return copy;
        } else {
            return p.output_array();
        }
    }

    detail::program_pair<E, none> progs_;
    detail::input_output_copies<detail::is_input<root>::value> copies_;
};

/// Compiles the forward-only program of a tensor expression (see eval_program).
/// Example: `auto f = evaluator(tanh(matmul(X, W))); const auto& y = f(x, w);`
template <TensorExpr E>
eval_program<std::remove_cvref_t<E>> evaluator(E) {
    return {};
}

/// The value of a tensor expression at the arguments, as an owning `xt::xarray<T>` (T the arguments'
/// floating-point type, float or double; double when none is an array of floats or doubles):
/// `evaluator(expr)(args...)` in one call. It builds a workspace per call, so in a loop keep an
/// evaluator in a variable instead. Same arguments, errors and NaN behaviour as evaluator.
/// Example: `xt::xarray<double> y = evaluate(X * 2_c + 1_c, x);  double m = evaluate(mean(X), x)();`
template <TensorExpr E, class... Args>
xt::xarray<eval_value_t<Args...>> evaluate(E, const Args&... args) {
    return eval_program<std::remove_cvref_t<E>>{}(args...);
}

}  // namespace exprgrad::tensors
