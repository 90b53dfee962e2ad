// softmax and log_softmax over one axis, computed stably by the row kernels of kernels/softmax_rows.hpp (the
// row maximum is subtracted first, so scores of ±1e4 are exact). VJPs: softmax dx = y ⊙ (g − Σ g⊙y);
// log_softmax dx = g − softmax · Σ g. A row containing NaN gives NaN; a row of -inf only gives NaN (0/0), as
// IEEE does. Over an axis that is not the last, each line is copied into a contiguous scratch row
// (kernels::gather) and runs through the same kernels, so it rounds as the same values in a last axis would.
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
        T* line = s.inner == 1 ? nullptr : scratch<T>(s.len).data();
        for (std::size_t o = 0; o < s.outer; ++o) {
            for (std::size_t j = 0; j < s.inner; ++j) {
                const std::size_t base = o * s.len * s.inner + j;
                const T* x = a.data + base;
                T* out = y + base;
                if (line) {
                    kernels::gather(x, s.inner, s.len, line);
                    x = out = line;
                }
                if constexpr (Log) {
                    kernels::rows::log_softmax(x, out, s.len);
                } else if (kernels::rows::softmax(x, out, s.len) == -std::numeric_limits<T>::infinity()) {
                    // the kernel's convention for a fully masked row is p = 0; this node's is IEEE's 0/0
                    std::fill(out, out + s.len, std::numeric_limits<T>::quiet_NaN());
                }
                if (line) kernels::scatter(line, s.len, y + base, s.inner);
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
        // strided lines: y and g copied into two contiguous rows, the result written over the first
        T* lines = s.inner == 1 ? nullptr : scratch<T>(2 * s.len).data();
        for (std::size_t o = 0; o < s.outer; ++o) {
            for (std::size_t j = 0; j < s.inner; ++j) {
                const std::size_t base = o * s.len * s.inner + j;
                const T* yl = y + base;
                const T* gl = g + base;
                T* d = dx + base;
                bool acc = add;
                if (lines) {
                    kernels::gather(yl, s.inner, s.len, lines);
                    kernels::gather(gl, s.inner, s.len, lines + s.len);
                    yl = d = lines;
                    gl = lines + s.len;
                    acc = false;
                }
                if constexpr (Log) {
                    kernels::rows::log_softmax_vjp(yl, gl, kernels::sum_contiguous(gl, s.len), d, s.len, acc);
                } else {
                    kernels::rows::softmax_vjp(yl, gl, kernels::rows::dot(gl, yl, s.len), d, s.len, acc);
                }
                if (lines) kernels::scatter(lines, s.len, dx + base, s.inner, add);
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
