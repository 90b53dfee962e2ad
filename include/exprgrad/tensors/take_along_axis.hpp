// take_along_axis<Axis>(x, idx): entries of x picked along one axis by an integer index array of the
// same rank (NumPy's take_along_axis, PyTorch's gather). The VJP scatters (adds) the adjoint back to
// the picked positions, so an index picked twice receives both contributions.
#pragma once

#include "exprgrad/require_cxx20.hpp"  // first: refuses a standard older than C++20

#include <algorithm>
#include <cstddef>
#include <string>

#include "exprgrad/tensors/graph.hpp"
#include "exprgrad/tensors/index_operand.hpp"
#include "exprgrad/tensors/shape.hpp"
#include "exprgrad/tensors/strided_walk.hpp"

namespace exprgrad::tensors {

template <int Axis, class X, class Idx>
struct TakeAlongAxis {
    using children = meta::type_list<X, Idx>;
    static constexpr const char* name = "take_along_axis";

    struct layout {
        int ax = 0;
        std::size_t outer = 1, inner = 1, extent = 0, picks = 0;  // picks: idx's extent along the axis
    };
    static layout plan(const dims& x, const dims& idx) {
        layout l;
        bool ok = x.rank == idx.rank && x.rank > 0;
        if (ok) l.ax = normalize_axis(name, Axis, x.rank);
        for (int i = 0; ok && i < x.rank; ++i) ok = i == l.ax || x[i] == idx[i];
        if (!ok) {
            throw shape_error(name, "x of shape " + x.str() + " and indices of shape " + idx.str() +
                                        " must have the same rank and agree outside axis " + std::to_string(Axis));
        }
        for (int i = 0; i < l.ax; ++i) l.outer *= x[i];
        for (int i = l.ax + 1; i < x.rank; ++i) l.inner *= x[i];
        l.extent = x[l.ax];
        l.picks = idx[l.ax];
        return l;
    }
    // calls f(output position, input position) for every output entry
    template <class Ctx, class F>
    static void each(const Ctx& ctx, const layout& l, F&& f) {
        const auto index = detail::read_indices<Idx>(ctx, name, l.extent, Axis, false);
        for (std::size_t o = 0; o < l.outer; ++o)
            for (std::size_t j = 0; j < l.picks; ++j)
                for (std::size_t i = 0; i < l.inner; ++i) {
                    const std::size_t p = (o * l.picks + j) * l.inner + i;
                    f(p, (o * l.extent + index(p)) * l.inner + i);
                }
    }

    template <class Ctx>
    static void forward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        const cview<T>& x = ctx.template in<X>();
        detail::require_values(name, "x", x.data, x.shape);
        const dims ishape = ctx.template in<Idx>().shape;
        const layout l = plan(x.shape, ishape);
        T* y = ctx.template out<TakeAlongAxis>(ishape);
        each(ctx, l, [&](std::size_t p, std::size_t q) { y[p] = x.data[q]; });
    }

    template <class Ctx>
    static void backward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        if constexpr (Ctx::template needs<X>) {
            const cview<T>& x = ctx.template in<X>();
            const layout l = plan(x.shape, ctx.template in<Idx>().shape);
            const adjoint_view<T> g = ctx.template adj<TakeAlongAxis>();
            bool add = false;
            T* dx = ctx.template grad<X>(add);
            if (!add) std::fill(dx, dx + x.size(), T(0));
            each(ctx, l, [&](std::size_t p, std::size_t q) { dx[q] += g.uniform ? g.value : g.data[p]; });
        }
    }
};

/// take_along_axis<Axis>(x, idx)[..., j, ...] = x[..., idx[..., j, ...], ...] (the index replacing
/// position j along Axis, which may count from the end). idx has x's rank and x's extents except
/// along Axis (any extent there, the output's): shape(out) = shape(idx). Indices are an integer
/// array argument or integer-valued; each must lie in [0, extent) (no negative indices), otherwise
/// std::invalid_argument "exprgrad::take_along_axis: index v at position p is out of range [0, n)
/// along axis A of extent n"; mismatched shapes throw naming both. NaN in x is copied. VJP:
/// dx = zeros with the adjoint added at each picked position; idx gets none. Example: the logit
/// of each target, `take_along_axis<-1>(logits, targets)` with logits [B, T, V], targets [B, T, 1].
template <int Axis, TensorExpr X, TensorExpr Idx>
constexpr TakeAlongAxis<Axis, X, Idx> take_along_axis(X, Idx) {
    return {};
}
/// Rejected: a raw number as an operand; pass it as an argument (tensor<I>).
template <int Axis, class X, class Idx>
requires detail::raw_among_tensors<X, Idx>
constexpr auto take_along_axis(X, Idx) {
    static_assert(detail::reject_raw<X, Idx>, EXPRGRAD_TENSOR_RAW_NUMBER_MESSAGE);
    return Input<0>{};
}

}  // namespace exprgrad::tensors
