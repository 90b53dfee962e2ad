// Layout nodes: transpose of the last two axes and concatenation along an axis (reshape, with sizes
// in the type or at run time, is in tensors/reshape.hpp, included here). They copy: every node owns
// its value buffer, and the copies are cheap next to the products around them.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <string>

#include "exprgrad/tensors/graph.hpp"
#include "exprgrad/tensors/reshape.hpp"
#include "exprgrad/tensors/shape.hpp"

namespace exprgrad::tensors {

template <class A>
struct Transpose {
    using children = meta::type_list<A>;
    static constexpr const char* name = "transpose";

    template <class T>
    static void swap_last(const T* x, T* y, const dims& in, bool add) {
        const std::size_t m = in.at(-2), n = in.at(-1), batch = (m * n) != 0 ? in.size() / (m * n) : 0;
        for (std::size_t b = 0; b < batch; ++b)
            for (std::size_t i = 0; i < m; ++i)
                for (std::size_t j = 0; j < n; ++j) {
                    T& out = y[b * m * n + j * m + i];
                    out = add ? out + x[b * m * n + i * n + j] : x[b * m * n + i * n + j];
                }
    }
    template <class Ctx>
    static void forward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        const cview<T>& a = ctx.template in<A>();
        if (a.shape.rank < 2) throw shape_error(name, "needs at least two axes, got " + a.shape.str());
        dims out = a.shape;
        std::swap(out[out.rank - 1], out[out.rank - 2]);
        swap_last(a.data, ctx.template out<Transpose>(out), a.shape, false);
    }
    template <class Ctx>
    static void backward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        const dims& out = ctx.template in<Transpose>().shape;
        const T* g = ctx.template adj_data<Transpose>();
        bool add = false;
        T* da = ctx.template grad<A>(add);
        swap_last(g, da, out, add);
    }
};

template <int Axis, class A, class B>
struct Concat {
    using children = meta::type_list<A, B>;
    static constexpr const char* name = "concat";

    struct layout {
        std::size_t outer = 1, ra = 0, rb = 0;  // row lengths (axis extent × inner) of a and b
        dims out;
    };
    static layout plan(const dims& a, const dims& b) {
        if (a.rank != b.rank) throw shape_error(name, "shapes " + a.str() + " and " + b.str() + " differ in rank");
        const int ax = normalize_axis(name, Axis, a.rank);
        layout l;
        l.out = a;
        std::size_t inner = 1;
        for (int i = 0; i < a.rank; ++i) {
            if (i != ax && a[i] != b[i]) {
                throw shape_error(
                    name, "shapes " + a.str() + " and " + b.str() + " differ outside axis " + std::to_string(Axis));
            }
            if (i < ax) l.outer *= a[i];
            if (i > ax) inner *= a[i];
        }
        l.out[ax] = a[ax] + b[ax];
        l.ra = a[ax] * inner;
        l.rb = b[ax] * inner;
        return l;
    }
    template <class Ctx>
    static void forward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        const cview<T>& a = ctx.template in<A>();
        const cview<T>& b = ctx.template in<B>();
        const layout l = plan(a.shape, b.shape);
        T* y = ctx.template out<Concat>(l.out);
        for (std::size_t o = 0; o < l.outer; ++o) {
            std::copy(a.data + o * l.ra, a.data + (o + 1) * l.ra, y + o * (l.ra + l.rb));
            std::copy(b.data + o * l.rb, b.data + (o + 1) * l.rb, y + o * (l.ra + l.rb) + l.ra);
        }
    }
    template <class Ctx>
    static void backward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        const layout l = plan(ctx.template in<A>().shape, ctx.template in<B>().shape);
        const T* g = ctx.template adj_data<Concat>();
        auto split = [&](T* d, std::size_t off, std::size_t len, bool add) {
            for (std::size_t o = 0; o < l.outer; ++o)
                for (std::size_t i = 0; i < len; ++i) {
                    const T v = g[o * (l.ra + l.rb) + off + i];
                    d[o * len + i] = add ? d[o * len + i] + v : v;
                }
        };
        if constexpr (Ctx::template needs<A>) {
            bool add = false;
            T* da = ctx.template grad<A>(add);
            split(da, 0, l.ra, add);
        }
        if constexpr (Ctx::template needs<B>) {
            bool add = false;
            T* db = ctx.template grad<B>(add);
            split(db, l.ra, l.rb, add);
        }
    }
};

/// Swaps the last two axes: [..., M, N] -> [..., N, M].
template <TensorExpr A>
constexpr Transpose<A> transpose(A) {
    return {};
}
/// concat<Axis>(a, b): a followed by b along Axis (which may count from the end); a and b have the
/// same rank and the same sizes on every other axis, and shape(out)[Axis] = shape(a)[Axis] +
/// shape(b)[Axis]; otherwise std::invalid_argument "exprgrad::concat: shapes (..) and (..) differ
/// ...". Values are copied (NaN included). VJP: the adjoint split back along Axis (slice's partner).
/// Example: `concat<-1>(A, B)` joins [B, T, D1] and [B, T, D2] into [B, T, D1 + D2].
template <int Axis, TensorExpr A, TensorExpr B>
constexpr Concat<Axis, A, B> concat(A, B) {
    return {};
}
/// Rejected: a raw number as a concatenated operand; pass it as an argument (tensor<I>).
template <int Axis, class A, class B>
requires detail::raw_among_tensors<A, B>
constexpr auto concat(A, B) {
    static_assert(detail::reject_raw<A, B>, EXPRGRAD_TENSOR_RAW_NUMBER_MESSAGE);
    return Input<0>{};
}

}  // namespace exprgrad::tensors
