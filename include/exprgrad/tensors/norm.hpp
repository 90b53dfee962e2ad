// Normalizations over the last axis: rms_norm(x, w) = x / sqrt(mean(x²) + ε) ⊙ w and
// layer_norm(x, w, b) = (x − mean) / sqrt(var + ε) ⊙ w + b (biased variance). ε is a compile-time
// constant (part of the node's type), 1e-6 by default. Row statistics are accumulated in double (RMSNorm's in
// double SIMD lanes, kernels/row_stats.hpp).
#pragma once

#include <cmath>
#include <cstddef>
#include <vector>

#include "exprgrad/kernels/row_stats.hpp"
#include "exprgrad/sym/expr.hpp"
#include "exprgrad/tensors/graph.hpp"

namespace exprgrad::tensors {

namespace detail {
inline void check_norm_shapes(const char* op, const dims& x, const dims& w) {
    if (x.rank < 1 || w.rank != 1 || w[0] != x.at(-1)) {
        throw shape_error(op, "weight of shape " + w.str() + " does not match the last axis of input " + x.str());
    }
}
}  // namespace detail

template <class Eps, class X, class W>
struct RmsNorm {
    using children = meta::type_list<X, W>;
    static constexpr const char* name = "rms_norm";
    template <class T>
    struct extra {
        std::vector<T> r;  // 1 / rms per row
    };

    template <class Ctx>
    static void forward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        const cview<T>& x = ctx.template in<X>();
        const cview<T>& w = ctx.template in<W>();
        detail::check_norm_shapes(name, x.shape, w.shape);
        const std::size_t H = w.shape[0], rows = H ? x.size() / H : 0;
        T* y = ctx.template out<RmsNorm>(x.shape);
        auto& r = ctx.template extra<RmsNorm>().r;
        r.resize(rows);
        for (std::size_t i = 0; i < rows; ++i) {
            const T* xr = x.data + i * H;
            const double ss = kernels::sum_squares_double(xr, H);
            r[i] = static_cast<T>(1.0 / std::sqrt(ss / static_cast<double>(H) + Eps::value));
            kernels::scale_row(xr, r[i], w.data, y + i * H, H);
        }
    }

    template <class Ctx>
    static void backward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        const cview<T>& x = ctx.template in<X>();
        const cview<T>& w = ctx.template in<W>();
        const std::size_t H = w.shape[0], rows = H ? x.size() / H : 0;
        const auto& r = ctx.template extra<RmsNorm>().r;
        const T* g = ctx.template adj_data<RmsNorm>();
        if constexpr (Ctx::template needs<X>) {
            bool add = false;
            T* dx = ctx.template grad<X>(add);
            for (std::size_t i = 0; i < rows; ++i) {
                const T* xr = x.data + i * H;
                const T* gr = g + i * H;
                const double dot = kernels::triple_dot_double(gr, w.data, xr, H);  // sum_j g_j w_j x_j
                const T c = static_cast<T>(dot / static_cast<double>(H)) * r[i] * r[i] * r[i];
                kernels::rms_norm_input_grad_row(gr, w.data, xr, r[i], c, dx + i * H, H, add);
            }
        }
        if constexpr (Ctx::template needs<W>) {
            bool add = false;
            T* dw = ctx.template grad<W>(add);
            if (!add) std::fill(dw, dw + H, T(0));
            for (std::size_t i = 0; i < rows; ++i)
                kernels::add_scaled_product_row(g + i * H, x.data + i * H, r[i], dw, H);
        }
    }
};

template <class Eps, class X, class W, class B>
struct LayerNorm {
    using children = meta::type_list<X, W, B>;
    static constexpr const char* name = "layer_norm";
    template <class T>
    struct extra {
        std::vector<T> mean, r;  // per row mean and 1 / std
    };

    template <class Ctx>
    static void forward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        const cview<T>& x = ctx.template in<X>();
        const cview<T>& w = ctx.template in<W>();
        const cview<T>& b = ctx.template in<B>();
        detail::check_norm_shapes(name, x.shape, w.shape);
        detail::check_norm_shapes(name, x.shape, b.shape);
        const std::size_t H = w.shape[0], rows = H ? x.size() / H : 0;
        T* y = ctx.template out<LayerNorm>(x.shape);
        auto& ex = ctx.template extra<LayerNorm>();
        ex.mean.resize(rows);
        ex.r.resize(rows);
        for (std::size_t i = 0; i < rows; ++i) {
            const T* xr = x.data + i * H;
            double s = 0;
            for (std::size_t j = 0; j < H; ++j) s += xr[j];
            const double mu = s / static_cast<double>(H);
            double v = 0;
            for (std::size_t j = 0; j < H; ++j) v += (xr[j] - mu) * (xr[j] - mu);
            ex.mean[i] = static_cast<T>(mu);
            ex.r[i] = static_cast<T>(1.0 / std::sqrt(v / static_cast<double>(H) + Eps::value));
            for (std::size_t j = 0; j < H; ++j) y[i * H + j] = (xr[j] - ex.mean[i]) * ex.r[i] * w.data[j] + b.data[j];
        }
    }

    template <class Ctx>
    static void backward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        const cview<T>& x = ctx.template in<X>();
        const cview<T>& w = ctx.template in<W>();
        const std::size_t H = w.shape[0], rows = H ? x.size() / H : 0;
        const auto& ex = ctx.template extra<LayerNorm>();
        const T* g = ctx.template adj_data<LayerNorm>();
        if constexpr (Ctx::template needs<X>) {
            bool add = false;
            T* dx = ctx.template grad<X>(add);
            for (std::size_t i = 0; i < rows; ++i) {
                const T* xr = x.data + i * H;
                const T* gr = g + i * H;
                double su = 0, sux = 0;  // mean of u = g w, and of u * xhat
                for (std::size_t j = 0; j < H; ++j) {
                    const double u = static_cast<double>(gr[j]) * w.data[j];
                    su += u;
                    sux += u * (xr[j] - ex.mean[i]) * ex.r[i];
                }
                const T mu_u = static_cast<T>(su / static_cast<double>(H));
                const T mu_ux = static_cast<T>(sux / static_cast<double>(H));
                for (std::size_t j = 0; j < H; ++j) {
                    const T xhat = (xr[j] - ex.mean[i]) * ex.r[i];
                    const T v = ex.r[i] * (gr[j] * w.data[j] - mu_u - xhat * mu_ux);
                    dx[i * H + j] = add ? dx[i * H + j] + v : v;
                }
            }
        }
        if constexpr (Ctx::template needs<W>) {
            bool add = false;
            T* dw = ctx.template grad<W>(add);
            if (!add) std::fill(dw, dw + H, T(0));
            for (std::size_t i = 0; i < rows; ++i)
                for (std::size_t j = 0; j < H; ++j) dw[j] += g[i * H + j] * (x.data[i * H + j] - ex.mean[i]) * ex.r[i];
        }
        if constexpr (Ctx::template needs<B>) {
            bool add = false;
            T* db = ctx.template grad<B>(add);
            if (!add) std::fill(db, db + H, T(0));
            for (std::size_t i = 0; i < rows; ++i)
                for (std::size_t j = 0; j < H; ++j) db[j] += g[i * H + j];
        }
    }
};

/// RMSNorm over the last axis with weight w [H]; eps a sym constant (default c<1, 1000000>).
template <TensorExpr X, TensorExpr W, sym::Constant Eps = sym::Const<1, 1000000>>
constexpr RmsNorm<Eps, X, W> rms_norm(X, W, Eps = {}) {
    return {};
}
/// Rejected: a raw number as the input, the weight or eps (write eps as a constant, c<1, 100000>).
template <class X, class W, class... Eps>
requires(sizeof...(Eps) <= 1 && detail::raw_among_tensors<X, W, Eps...>) constexpr auto rms_norm(X, W, Eps...) {
    static_assert(detail::reject_raw<X, W, Eps...>, EXPRGRAD_TENSOR_RAW_NUMBER_MESSAGE);
    return Input<0>{};
}
/// LayerNorm over the last axis with weight w [H] and bias b [H]; eps default c<1, 100000>.
template <TensorExpr X, TensorExpr W, TensorExpr B, sym::Constant Eps = sym::Const<1, 100000>>
constexpr LayerNorm<Eps, X, W, B> layer_norm(X, W, B, Eps = {}) {
    return {};
}
/// Rejected: a raw number as the input, the weight, the bias or eps (write eps as a constant).
template <class X, class W, class B, class... Eps>
requires(sizeof...(Eps) <= 1 && detail::raw_among_tensors<X, W, B, Eps...>) constexpr auto layer_norm(X, W, B, Eps...) {
    static_assert(detail::reject_raw<X, W, B, Eps...>, EXPRGRAD_TENSOR_RAW_NUMBER_MESSAGE);
    return Input<0>{};
}

}  // namespace exprgrad::tensors
