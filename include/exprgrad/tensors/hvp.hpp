// Exact Hessian-vector products of scalar tensor programs, by reverse mode over forward mode: the tangent
// expression t(x, v) = ∇f(x)·v (tensors/tangent.hpp) is an ordinary tensor expression, so the compiled
// reverse mode differentiates it, and ∇_x t(x, v) = H(x)·v. Why this order: the forward rules are written
// once, as expressions, from the node types, and every node they produce already has a VJP; the other
// order (forward over reverse) would need a tangent rule for each node's backward code. Cost: the forward
// pass of f and of its tangent, then the backward pass over both, about 2-4 gradient evaluations.
#pragma once

#include "exprgrad/require_cxx20.hpp"  // first: refuses a standard older than C++20

#include <type_traits>
#include <utility>

#include "exprgrad/tensors/jvp.hpp"
#include "exprgrad/tensors/value_and_grad.hpp"

namespace exprgrad::tensors {

/// hvp(loss, wrt<I...>): the compiled Hessian-vector product of a scalar tensor expression. Called with
/// the loss's arguments (n of them, as value_and_grad's program takes them) followed by one direction v_k
/// per differentiated argument (of argument I_k's shape, in wrt order), it returns {dd, hv}:
///     dd = ∇f(x)·v = Σ_k ⟨∂f/∂x_{I_k}, v_k⟩      (the directional derivative, a number)
///     hv = H(x)·v, a std::tuple with (H·v)_{I_j} = Σ_k ∂²f/∂x_{I_j}∂x_{I_k} · v_k for each j
/// (the joint Hessian over the wrt arguments, cross blocks included), exact to rounding: reverse mode over
/// the forward-mode tangent, no finite differences (check::hvp is the finite-difference checker). The
/// arrays follow value_and_grad's lifetime rule: references into the program's workspace (valid until the
/// next call) on a program held in a variable, owning copies on a temporary. Second derivatives at kinks
/// follow the scalar layer's conventions (relu'' = 0, max splits among ties).
/// Domain: the nodes of tensors/tangent.hpp. NaN in the arguments or the directions propagates into dd and
/// hv. Errors: a direction of the wrong shape throws std::invalid_argument "exprgrad::hvp: the tangent of
/// argument I (argument n+k of the call) has shape (..), but argument I has shape (..)"; a loss with more
/// than one element throws "exprgrad::hvp: the differentiated expression must have one element, ...".
/// A wrong number of arguments does not compile. Not reentrant.
/// Example (logistic regression, H = Xᵀ diag(p(1−p)) X / n):
///   auto H = hvp(mean(softplus(matmul(X, W)) - Y * matmul(X, W)), wrt<1>);
///   auto [dd, hv] = H(x, w, y, v);   const auto& Hv = std::get<0>(hv);
template <TensorExpr E, int... W>
grad_program<typename detail::tangent_program<true, std::remove_cvref_t<E>, W...>::root, W...> hvp(E, wrt_t<W...>) {
    static_assert(sizeof...(W) > 0, "exprgrad: hvp(loss, wrt<I...>) needs at least one argument index");
    return {};
}

}  // namespace exprgrad::tensors
