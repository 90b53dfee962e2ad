// permute<Axes...>(x): the axes of x reordered, output axis i being input axis Axes[i] (NumPy's
// transpose(x, axes)). The VJP is the inverse permutation of the adjoint. It copies, like the other
// layout nodes.
#pragma once

#include "exprgrad/require_cxx20.hpp"  // first: refuses a standard older than C++20

#include <algorithm>
#include <array>
#include <cstddef>
#include <string>

#include "exprgrad/tensors/graph.hpp"
#include "exprgrad/tensors/shape.hpp"
#include "exprgrad/kernels/contiguous.hpp"
#include "exprgrad/tensors/strided_walk.hpp"

namespace exprgrad::tensors {

namespace detail {
template <int... Axes>
constexpr bool is_permutation() {
    constexpr int n = sizeof...(Axes);
    std::array<bool, sizeof...(Axes)> seen{};
    for (int a : {Axes...}) {
        if (a < 0 || a >= n || seen[static_cast<std::size_t>(a)]) return false;
        seen[static_cast<std::size_t>(a)] = true;
    }
    return true;
}
}  // namespace detail

template <class A, int... Axes>
struct Permute {
    static_assert(sizeof...(Axes) >= 1 && sizeof...(Axes) <= dims::max_rank,
                  "exprgrad: permute<Axes...> needs 1 to 6 axes");
    static_assert(detail::is_permutation<Axes...>(),
                  "exprgrad: permute<Axes...> needs each of 0, 1, ..., rank-1 exactly once");
    using children = meta::type_list<A>;
    static constexpr const char* name = "permute";
    static constexpr std::array<int, sizeof...(Axes)> axes{Axes...};

    // The last axis stays last (e.g. heads [B, T, H, d] -> [B, H, T, d]): the data moves in contiguous runs.
    static constexpr bool keeps_last = axes.back() == static_cast<int>(sizeof...(Axes)) - 1;
    // The shape without its last axis (the runs' positions); the strides' first rank - 1 entries apply.
    static dims outer(const dims& out) {
        dims o;
        for (int i = 0; i + 1 < out.rank; ++i) o.push(out[i]);
        return o;
    }

    /// The output shape and the input strides along the output's axes.
    static dims plan(const dims& in, detail::strides& st) {
        if (in.rank != static_cast<int>(sizeof...(Axes))) {
            std::string want = "(";
            for (std::size_t i = 0; i < axes.size(); ++i) want += (i ? ", " : "") + std::to_string(axes[i]);
            throw shape_error(name, "axes " + want + ") need a tensor of rank " + std::to_string(axes.size()) +
                                        ", got shape " + in.str());
        }
        const detail::strides own = detail::row_major_strides(in);
        dims out;
        st = {};
        for (std::size_t i = 0; i < axes.size(); ++i) {
            out.push(in[axes[i]]);
            st[i] = own[static_cast<std::size_t>(axes[i])];
        }
        return out;
    }

    template <class Ctx>
    static void forward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        const cview<T>& a = ctx.template in<A>();
        detail::require_values(name, "permuted", a.data, a.shape);
        std::array<detail::strides, 1> st{};
        const dims out = plan(a.shape, st[0]);
        T* y = ctx.template out<Permute>(out);
        if constexpr (keeps_last) {  // contiguous runs of the last axis: copied whole
            const std::size_t run = out[out.rank - 1];
            detail::strided_walk(outer(out), st, [&](std::size_t i, const std::array<std::size_t, 1>& o) {
                kernels::copy_row(y + i * run, a.data + o[0], run);
            });
            return;
        }
        detail::strided_walk(out, st, [&](std::size_t i, const std::array<std::size_t, 1>& o) { y[i] = a.data[o[0]]; });
    }

    template <class Ctx>
    static void backward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        const cview<T>& a = ctx.template in<A>();
        std::array<detail::strides, 1> st{};
        const dims out = plan(a.shape, st[0]);
        const adjoint_view<T> g = ctx.template adj<Permute>();
        bool add = false;
        T* da = ctx.template grad<A>(add);
        // a bijection: each input element receives exactly one adjoint entry
        if constexpr (keeps_last) {
            if (!add && !g.uniform) {
                const std::size_t run = out[out.rank - 1];
                detail::strided_walk(outer(out), st, [&](std::size_t i, const std::array<std::size_t, 1>& o) {
                    kernels::copy_row(da + o[0], g.data + i * run, run);
                });
                return;
            }
        }
        detail::strided_walk(out, st, [&](std::size_t i, const std::array<std::size_t, 1>& o) {
            const T v = g.uniform ? g.value : g.data[i];
            da[o[0]] = add ? da[o[0]] + v : v;
        });
    }
};

/// permute<Axes...>(x): out[i_0, ..., i_{r-1}] = x[j] with j_{Axes[k]} = i_k, i.e.
/// shape(out)[k] = shape(x)[Axes[k]]. Axes must be a permutation of 0, ..., r-1 (checked at compile
/// time; negative axes are not accepted) and x must have rank r (std::invalid_argument
/// "exprgrad::permute: axes (..) need a tensor of rank r, got shape (..)" otherwise). Values are
/// moved, never combined: NaN stays where it moves. VJP: the adjoint permuted back by the inverse
/// permutation. Example: heads to the front, [B, T, H, D] -> [B, H, T, D]: `permute<0, 2, 1, 3>(X)`.
template <int... Axes, TensorExpr A>
constexpr Permute<A, Axes...> permute(A) {
    return {};
}
/// Rejected: a raw number has no axes; pass an array as an argument (tensor<I>).
template <int... Axes, detail::raw_number A>
constexpr auto permute(A) {
    static_assert(detail::reject_raw<A>, EXPRGRAD_TENSOR_RAW_NUMBER_MESSAGE);
    return Input<0>{};
}

}  // namespace exprgrad::tensors
