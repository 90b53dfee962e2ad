// where(cond, a, b): a where cond > 0, b elsewhere, with NumPy broadcasting of all three. The VJP
// routes the adjoint to a at the selected positions and to b at the others (summed over the axes
// along which an operand is broadcast); cond receives none.
#pragma once

#include "exprgrad/require_cxx20.hpp"  // first: refuses a standard older than C++20

#include <algorithm>
#include <array>
#include <cstddef>
#include <stdexcept>

#include "exprgrad/tensors/count_operand.hpp"
#include "exprgrad/tensors/graph.hpp"
#include "exprgrad/tensors/shape.hpp"
#include "exprgrad/tensors/strided_walk.hpp"

namespace exprgrad::tensors {

template <class C, class A, class B>
struct Where {
    using children = meta::type_list<C, A, B>;
    static constexpr const char* name = "where";

    template <class T>
    static dims shape_of(const cview<T>& c, const cview<T>& a, const cview<T>& b) {
        // one message naming all three shapes rather than a pairwise one
        try {
            return broadcast(name, broadcast(name, c.shape, a.shape), b.shape);
        } catch (const std::invalid_argument&) {
            throw shape_error(name, "shapes " + c.shape.str() + ", " + a.shape.str() + " and " + b.shape.str() +
                                        " (cond, a, b) do not broadcast");
        }
    }
    template <class T>
    static std::array<detail::strides, 3> plan(const cview<T>& c, const cview<T>& a, const cview<T>& b,
                                               const dims& out) {
        return {detail::broadcast_strides(c.shape, out), detail::broadcast_strides(a.shape, out),
                detail::broadcast_strides(b.shape, out)};
    }

    template <class Ctx>
    static void forward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        const cview<T>& c = ctx.template in<C>();
        const cview<T>& a = ctx.template in<A>();
        const cview<T>& b = ctx.template in<B>();
        detail::require_values(name, "cond", c.data, c.shape);
        detail::require_values(name, "a", a.data, a.shape);
        detail::require_values(name, "b", b.data, b.shape);
        const dims out = shape_of(c, a, b);
        T* y = ctx.template out<Where>(out);
        detail::strided_walk(out, plan(c, a, b, out), [&](std::size_t i, const std::array<std::size_t, 3>& o) {
            y[i] = c.data[o[0]] > T(0) ? a.data[o[1]] : b.data[o[2]];
        });
    }

    template <class Ctx>
    static void backward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        const cview<T>& c = ctx.template in<C>();
        const cview<T>& a = ctx.template in<A>();
        const cview<T>& b = ctx.template in<B>();
        const dims out = shape_of(c, a, b);
        const adjoint_view<T> g = ctx.template adj<Where>();
        const auto st = plan(c, a, b, out);
        // pick = true: the positions where cond selects this operand
        auto route = [&](T* d, bool add, std::size_t n, std::size_t k, bool pick) {
            if (!add) std::fill(d, d + n, T(0));
            detail::strided_walk(out, st, [&](std::size_t i, const std::array<std::size_t, 3>& o) {
                if ((c.data[o[0]] > T(0)) == pick) d[o[k]] += g.uniform ? g.value : g.data[i];
            });
        };
        if constexpr (Ctx::template needs<A>) {
            bool add = false;
            T* da = ctx.template grad<A>(add);
            route(da, add, a.size(), 1, true);
        }
        if constexpr (Ctx::template needs<B>) {
            bool add = false;
            T* db = ctx.template grad<B>(add);
            route(db, add, b.size(), 2, false);
        }
    }
};

/// where(cond, a, b)[i] = a[i] if cond[i] > 0 else b[i], all three broadcast together (NumPy rules;
/// std::invalid_argument "exprgrad::where: shapes (..), (..) and (..) (cond, a, b) do not broadcast"
/// otherwise). A NaN cond selects b (NaN > 0 is false); a NaN in the operand not selected does not
/// reach the value or the gradient. VJP: da = Σ_broadcast g·[cond > 0], db = Σ_broadcast g·[cond ≤ 0],
/// none to cond. Typically cond is a comparison: `where(greater(X, Y), X, Y)` is the elementwise
/// maximum with the whole gradient going to the larger operand (Y at ties). a and b may also be sym
/// constants (a rank-0 value): `where(future, fc<-1e9>, S)` masks scores.
template <TensorExpr C, detail::tensor_or_constant A, detail::tensor_or_constant B>
constexpr Where<C, detail::as_operand_t<A>, detail::as_operand_t<B>> where(C, A, B) {
    return {};
}
/// Rejected: a raw number as an operand; pass it as an argument (tensor<I>).
template <class C, class A, class B>
requires detail::raw_among_tensors<C, A, B>
constexpr auto where(C, A, B) {
    static_assert(detail::reject_raw<C, A, B>, EXPRGRAD_TENSOR_RAW_NUMBER_MESSAGE);
    return Input<0>{};
}

}  // namespace exprgrad::tensors
