// stop_gradient(x): the value of x, with a zero vector-Jacobian product. Nothing below it is
// differentiated on its account (the node reports that it needs no gradient, so the program skips
// the backward pass of the subexpression it guards unless another path needs it).
#pragma once

#include "exprgrad/require_cxx20.hpp"  // first: refuses a standard older than C++20

#include <algorithm>
#include <type_traits>

#include "exprgrad/tensors/graph.hpp"

namespace exprgrad::tensors {

template <class A>
struct StopGradient {
    using children = meta::type_list<A>;
    static constexpr const char* name = "stop_gradient";

    template <class Ctx>
    static void forward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        const cview<T>& a = ctx.template in<A>();
        std::copy(a.data, a.data + a.size(), ctx.template out<StopGradient>(a.shape));
    }
    // never called: the node needs no gradient (see needs_grad below)
    template <class Ctx>
    static void backward(Ctx&) {}
};

namespace detail {
template <class A, class Wrt>
struct needs_grad<StopGradient<A>, Wrt> : std::false_type {};
}  // namespace detail

/// stop_gradient(x) = x in value; its VJP is zero, so d/dθ f(stop_gradient(g(θ))) treats g(θ) as a
/// constant. Any shape; NaN passes through unchanged (and no NaN gradient flows back through it).
/// Example: `sum(X * stop_gradient(X))` has gradient X with respect to X (not 2X).
template <TensorExpr A>
constexpr StopGradient<A> stop_gradient(A) {
    return {};
}
/// Rejected: a raw number; write it as a constant or pass it as an argument (tensor<I>).
template <detail::raw_number A>
constexpr auto stop_gradient(A) {
    static_assert(detail::reject_raw<A>, EXPRGRAD_TENSOR_RAW_NUMBER_MESSAGE);
    return Input<0>{};
}

}  // namespace exprgrad::tensors
