// slice<Axis>(x, begin, end): the entries begin, ..., end-1 of x along one axis, with the bounds
// known at run time (number arguments, or sym constants written in place). The VJP scatters the
// adjoint into zeros of x's shape. concat (tensors/layout.hpp) is its partner.
#pragma once

#include "exprgrad/require_cxx20.hpp"  // first: refuses a standard older than C++20

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "exprgrad/kernels/contiguous.hpp"
#include "exprgrad/tensors/count_operand.hpp"
#include "exprgrad/tensors/graph.hpp"
#include "exprgrad/tensors/shape.hpp"
#include "exprgrad/tensors/strided_walk.hpp"

namespace exprgrad::tensors {

template <int Axis, class A, class Begin, class End>
struct Slice {
    using children = meta::type_list<A, Begin, End>;
    static constexpr const char* name = "slice";

    struct layout {
        std::size_t outer = 1, inner = 1, extent = 0, begin = 0, len = 0;
        dims out;
    };
    template <class Ctx>
    static layout plan(const Ctx& ctx, const dims& in) {
        const int ax = normalize_axis(name, Axis, in.rank);
        const std::int64_t b = detail::count_operand<Begin>(ctx, name, "begin");
        const std::int64_t e = detail::count_operand<End>(ctx, name, "end");
        layout l;
        l.extent = in[ax];
        if (b < 0 || e < b || static_cast<std::size_t>(e) > l.extent) {
            throw shape_error(name, "bounds [" + std::to_string(b) + ", " + std::to_string(e) + ") along axis " +
                                        std::to_string(Axis) + " of shape " + in.str() +
                                        " must satisfy 0 <= begin <= end <= " + std::to_string(l.extent));
        }
        for (int i = 0; i < ax; ++i) l.outer *= in[i];
        for (int i = ax + 1; i < in.rank; ++i) l.inner *= in[i];
        l.begin = static_cast<std::size_t>(b);
        l.len = static_cast<std::size_t>(e - b);
        l.out = in;
        l.out[ax] = l.len;
        return l;
    }

    template <class Ctx>
    static void forward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        const cview<T>& a = ctx.template in<A>();
        detail::require_values(name, "sliced", a.data, a.shape);
        const layout l = plan(ctx, a.shape);
        T* y = ctx.template out<Slice>(l.out);
        const std::size_t row = l.len * l.inner;
        for (std::size_t o = 0; o < l.outer; ++o) {
            const T* src = a.data + (o * l.extent + l.begin) * l.inner;
            kernels::copy_row(y + o * row, src, row);
        }
    }

    template <class Ctx>
    static void backward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        if constexpr (Ctx::template needs<A>) {
            const cview<T>& a = ctx.template in<A>();
            const layout l = plan(ctx, a.shape);
            const adjoint_view<T> g = ctx.template adj<Slice>();
            bool add = false;
            T* da = ctx.template grad<A>(add);
            const std::size_t row = l.len * l.inner;
            for (std::size_t o = 0; o < l.outer; ++o) {
                T* d = da + o * l.extent * l.inner;
                T* hit = d + l.begin * l.inner;
                if (!add) {  // a first contribution: zeros around the slice, the adjoint assigned inside it
                    std::fill(d, hit, T(0));
                    std::fill(hit + row, d + l.extent * l.inner, T(0));
                    if (g.uniform)
                        kernels::fill_value(hit, row, g.value);
                    else
                        kernels::copy_row(hit, g.data + o * row, row);
                } else if (g.uniform) {
                    kernels::add_value(hit, row, g.value);
                } else {
                    kernels::add_row(hit, g.data + o * row, row);
                }
            }
        }
    }
};

/// slice<Axis>(x, begin, end): shape(out) = shape(x) with extent end - begin along Axis (which may
/// count from the end), out[..., j, ...] = x[..., begin + j, ...]. begin and end are integers at run
/// time: number arguments (tensor<I>, passed as 2 or 2.0) or sym constants (2_c). They must satisfy
/// 0 <= begin <= end <= extent (no negative indices; begin == end gives an empty axis), otherwise
/// std::invalid_argument "exprgrad::slice: bounds [b, e) along axis A of shape (..) must satisfy
/// 0 <= begin <= end <= n"; a non-integer or NaN bound throws too. Values are copied (NaN included).
/// VJP: dx = zeros of x's shape with the adjoint written at the sliced positions; the bounds get
/// none. Example: the last 3 of 5 positions, `slice<1>(X, 2_c, 5_c)` on X of shape (B, 5, H).
template <int Axis, TensorExpr A, detail::tensor_or_constant Begin, detail::tensor_or_constant End>
constexpr Slice<Axis, A, detail::as_operand_t<Begin>, detail::as_operand_t<End>> slice(A, Begin, End) {
    return {};
}
/// Rejected: a raw number as an operand; write the bounds as constants (2_c) or pass them as arguments.
template <int Axis, class A, class Begin, class End>
requires detail::raw_among_tensors<A, Begin, End>
constexpr auto slice(A, Begin, End) {
    static_assert(detail::reject_raw<A, Begin, End>, EXPRGRAD_TENSOR_RAW_NUMBER_MESSAGE);
    return Input<0>{};
}

}  // namespace exprgrad::tensors
