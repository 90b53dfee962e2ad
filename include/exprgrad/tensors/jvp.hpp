// Forward mode for tensor programs: jvp(expr, wrt<I...>) compiles the tangent expression of expr
// (tensors/tangent.hpp, derived per node at compile time) beside expr itself into one program.
#pragma once

#include "exprgrad/require_cxx20.hpp"  // first: refuses a standard older than C++20

#include <algorithm>
#include <type_traits>
#include <utility>

#include <xtensor/xarray.hpp>

#include "exprgrad/tensors/graph.hpp"
#include "exprgrad/tensors/tangent.hpp"
#include "exprgrad/tensors/tangent_nodes.hpp"
#include "exprgrad/tensors/value_and_grad.hpp"

namespace exprgrad::tensors {

namespace detail {
template <class T>
xt::xarray<T> owned_copy(const cview<T>& v) {
    xt::xarray<T> a = xt::xarray<T>::from_shape(v.shape.xshape());
    std::copy(v.data, v.data + v.size(), a.data());
    return a;
}

template <int Base, class Seq>
struct tangent_inputs;
template <int Base, int... K>
struct tangent_inputs<Base, std::integer_sequence<int, K...>> {
    using type = meta::type_list<Input<Base + K>...>;
};

/// What a jvp (Hvp false) or hvp (Hvp true) program of E for wrt<W...> compiles: the tangents of W... are
/// the placeholders after E's own, tensor<base + k>; `root` is the TangentRoot over the tangent expression
/// (zeros of E's shape when E does not depend on W...), the argument check, and E itself for jvp.
template <bool Hvp, class E, int... W>
struct tangent_program {
    static constexpr int base =
        std::max(max_input_of(tensor_nodes_t<E, false>{}), max_index_of(std::integer_sequence<int, W...>{})) + 1;
    static constexpr int arity = base + static_cast<int>(sizeof...(W));
    using raw = tangent_t<E, base, W...>;
    using tangent = std::conditional_t<is_zero_v<raw>, ZerosLike<E>, raw>;
    using check = TangentCheck<Hvp, meta::type_list<Input<W>...>,
                               typename tangent_inputs<base, std::make_integer_sequence<int, sizeof...(W)>>::type>;
    using root = std::conditional_t<Hvp, TangentRoot<true, check, tangent>, TangentRoot<false, check, tangent, E>>;
};
}  // namespace detail

/// jvp(expr, wrt<I...>): the compiled forward-mode program of a tensor expression. Called with the
/// expression's arguments (tensor<0> up to the highest tensor<J> it reads or differentiates, n of them)
/// followed by one tangent per differentiated argument, in wrt order (v_k of the shape of argument I_k),
/// it returns {value, tangent}: the expression's value y = f(x) and its directional derivative
///     dy = Σ_k ∂f/∂x_{I_k} · v_k      (the Jacobian-vector product J·v, an array of y's shape),
/// both as owning xt::xarray<T> (T the arguments' floating type, float or double). The value and the
/// tangent are computed in one pass: every primal node once, then the tangent nodes that read them
/// (about two to three forward passes of work). Tangent rules: see tensors/tangent.hpp (maps use the
/// scalar layer's symbolic derivatives; max splits among ties, relu'(0) = 1/2 as the VJPs do).
/// Domain: the nodes of tensors/tangent.hpp (a node without a rule, e.g. prod or a structured op of ops/,
/// does not compile). NaN: a NaN in the arguments or the tangents propagates to the tangent as in the
/// VJP (0·NaN is NaN), except where a node does not read it (where's unselected operand). Errors: a
/// tangent whose shape differs from its argument's, or that is an integer array, throws
/// std::invalid_argument "exprgrad::jvp: the tangent of argument I (argument n+k of the call) has shape
/// (..), but argument I has shape (..)" before anything is computed; the nodes throw as in value_and_grad.
/// A wrong number of arguments does not compile. Not reentrant (one call at a time per program).
/// Example: `auto J = jvp(tanh(matmul(X, W)), wrt<1>);  auto [y, dy] = J(x, w, v);`  (dy = (1 − y²)·(x·v)).
template <class E, int... W>
class jvp_program {
    using types = detail::tangent_program<false, E, W...>;

  public:
    /// The number of arguments a call takes: the expression's, then one tangent per wrt index.
    static constexpr int arity = types::arity;

    template <class... Args>
    auto operator()(const Args&... args) {
        using T = typename detail::value_type_of_args<Args...>::type;
        static_assert(static_cast<int>(sizeof...(Args)) == arity,
                      "exprgrad: jvp: pass the expression's arguments (tensor<0> up to the highest it reads or "
                      "differentiates), then one tangent per wrt index, in wrt order");
        auto& p = progs_.template get<T>();
        const cview<T>& tangent = p.forward(args...);
        return std::pair<xt::xarray<T>, xt::xarray<T>>(detail::owned_copy(p.template in<E>()),
                                                       detail::owned_copy(tangent));
    }

  private:
    detail::program_pair<typename types::root, std::integer_sequence<int>> progs_;
};

/// Compiles the forward-mode program of E for the arguments W... (see jvp_program).
template <TensorExpr E, int... W>
jvp_program<std::remove_cvref_t<E>, W...> jvp(E, wrt_t<W...>) {
    static_assert(sizeof...(W) > 0, "exprgrad: jvp(expr, wrt<I...>) needs at least one argument index");
    return {};
}

}  // namespace exprgrad::tensors
