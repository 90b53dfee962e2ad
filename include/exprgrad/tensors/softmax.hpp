// softmax and log_softmax over one axis, computed stably (the row maximum is subtracted first, so
// scores of ±1e4 are exact). VJPs: softmax dx = y ⊙ (g − Σ g⊙y); log_softmax dx = g − softmax · Σ g.
// A row containing NaN gives NaN; a row of -inf only gives NaN (0/0), as IEEE does.
#pragma once

#include <cmath>
#include <cstddef>
#include <limits>

#include "exprgrad/tensors/graph.hpp"
#include "exprgrad/tensors/reduce.hpp"

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
        for (std::size_t o = 0; o < s.outer; ++o) {
            for (std::size_t j = 0; j < s.inner; ++j) {
                const std::size_t base = o * s.len * s.inner + j;
                const T* x = a.data + base;
                T* out = y + base;
                T m = -std::numeric_limits<T>::infinity();
                for (std::size_t i = 0; i < s.len; ++i) m = x[i * s.inner] > m ? x[i * s.inner] : m;
                T sum = 0;
                for (std::size_t i = 0; i < s.len; ++i) {
                    const T e = std::exp(x[i * s.inner] - m);
                    if constexpr (!Log) out[i * s.inner] = e;
                    sum += e;
                }
                if constexpr (Log) {
                    const T shift = m + std::log(sum);
                    for (std::size_t i = 0; i < s.len; ++i) out[i * s.inner] = x[i * s.inner] - shift;
                } else {
                    const T inv = T(1) / sum;
                    for (std::size_t i = 0; i < s.len; ++i) out[i * s.inner] *= inv;
                }
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
        for (std::size_t o = 0; o < s.outer; ++o) {
            for (std::size_t j = 0; j < s.inner; ++j) {
                const std::size_t base = o * s.len * s.inner + j;
                T dot = 0;
                for (std::size_t i = 0; i < s.len; ++i) {
                    const std::size_t k = base + i * s.inner;
                    dot += Log ? g[k] : g[k] * y[k];
                }
                for (std::size_t i = 0; i < s.len; ++i) {
                    const std::size_t k = base + i * s.inner;
                    const T v = Log ? g[k] - std::exp(y[k]) * dot : y[k] * (g[k] - dot);
                    dx[k] = add ? dx[k] + v : v;
                }
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
