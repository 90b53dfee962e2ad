// softmax and log_softmax over one axis, computed stably by the row kernels of kernels/softmax_rows.hpp (the
// row maximum is subtracted first, so scores of ±1e4 are exact). VJPs: softmax dx = y ⊙ (g − Σ g⊙y);
// log_softmax dx = g − softmax · Σ g. A row containing NaN gives NaN; a row of -inf only gives NaN (0/0), as
// IEEE does. Over an axis that is not the last, blocks of adjacent lines are copied into contiguous scratch rows
// (kernels::gather_lines) and run through the same kernels, so they round as the same values in a last axis would.
#pragma once

#include <algorithm>
#include <cstddef>
#include <limits>

#include "exprgrad/kernels/contiguous.hpp"
#include "exprgrad/kernels/softmax_rows.hpp"
#include "exprgrad/tensors/graph.hpp"
#include "exprgrad/tensors/reduce.hpp"
#include "exprgrad/tensors/shape.hpp"

namespace exprgrad::tensors {

template <bool Log, int Axis, class A>
struct Softmax {
    using children = meta::type_list<A>;
    static constexpr const char* name = Log ? "log_softmax" : "softmax";

    template <class Ctx>
    static void forward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        const cview<T>& a = ctx.template in<A>();
        const auto s = detail::split_axis(name, a.shape, Axis);
        T* y = ctx.template out<Softmax>(a.shape);
        // strided lines: blocks of adjacent lines copied into contiguous rows, the result written over them
        const std::size_t block = s.inner == 1 ? 1 : kernels::line_block;
        T* rows = s.inner == 1 ? nullptr : scratch<T>(block * s.len).data();
        for (std::size_t o = 0; o < s.outer; ++o) {
            for (std::size_t j0 = 0; j0 < s.inner; j0 += block) {
                const std::size_t nb = std::min(block, s.inner - j0), base = o * s.len * s.inner + j0;
                if (rows) kernels::gather_lines(a.data + base, s.inner, s.len, nb, rows);
                for (std::size_t c = 0; c < nb; ++c) {
                    const T* x = rows ? rows + c * s.len : a.data + base;
                    T* out = rows ? rows + c * s.len : y + base;
                    if constexpr (Log) {
                        kernels::rows::log_softmax(x, out, s.len);
                    } else if (kernels::rows::softmax(x, out, s.len) == -std::numeric_limits<T>::infinity()) {
                        // the kernel's convention for a fully masked row is p = 0; this node's is IEEE's 0/0
                        std::fill(out, out + s.len, std::numeric_limits<T>::quiet_NaN());
                    }
                }
                if (rows) kernels::scatter_lines(rows, s.len, nb, y + base, s.inner);
            }
        }
    }

    template <class Ctx>
    static void backward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        const cview<T>& a = ctx.template in<A>();
        const auto s = detail::split_axis(name, a.shape, Axis);
        const T* y = ctx.template in<Softmax>().data;
        const T* g = ctx.template adj_data<Softmax>();
        bool add = false;
        T* dx = ctx.template grad<A>(add);
        // strided lines: blocks of y and g copied into contiguous rows, the result written over y's
        const std::size_t block = s.inner == 1 ? 1 : kernels::line_block;
        T* rows = s.inner == 1 ? nullptr : scratch<T>(2 * block * s.len).data();
        for (std::size_t o = 0; o < s.outer; ++o) {
            for (std::size_t j0 = 0; j0 < s.inner; j0 += block) {
                const std::size_t nb = std::min(block, s.inner - j0), base = o * s.len * s.inner + j0;
                if (rows) {
                    kernels::gather_lines(y + base, s.inner, s.len, nb, rows);
                    kernels::gather_lines(g + base, s.inner, s.len, nb, rows + nb * s.len);
                }
                for (std::size_t c = 0; c < nb; ++c) {
                    const T* yl = rows ? rows + c * s.len : y + base;
                    const T* gl = rows ? rows + (nb + c) * s.len : g + base;
                    T* d = rows ? rows + c * s.len : dx + base;
                    const bool acc = rows ? false : add;
                    if constexpr (Log) {
                        kernels::rows::log_softmax_vjp(yl, gl, kernels::sum_contiguous(gl, s.len), d, s.len, acc);
                    } else {
                        kernels::rows::softmax_vjp(yl, gl, kernels::rows::dot(gl, yl, s.len), d, s.len, acc);
                    }
                }
                if (rows) kernels::scatter_lines(rows, s.len, nb, dx + base, s.inner, add);
            }
        }
    }
};

/// softmax over an axis (default the last): `softmax(X)`, `softmax<1>(X)`.
template <int Axis = -1, TensorExpr A>
constexpr Softmax<false, Axis, A> softmax(A) {
    return {};
}
/// log_softmax over an axis (default the last).
template <int Axis = -1, TensorExpr A>
constexpr Softmax<true, Axis, A> log_softmax(A) {
    return {};
}

}  // namespace exprgrad::tensors
