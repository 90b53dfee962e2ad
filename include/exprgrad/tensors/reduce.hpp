// Reductions over one axis or over all elements: sum, mean, max, logsumexp. The reduced axis and
// the kind are part of the node's type. The adjoint of a full sum or mean stays uniform (one value,
// never materialized) for the nodes below it.
#pragma once

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

#include <xsimd/xsimd.hpp>

#include "exprgrad/kernels/contiguous.hpp"
#include "exprgrad/kernels/softmax_rows.hpp"
#include "exprgrad/tensors/graph.hpp"
#include "exprgrad/tensors/shape.hpp"

namespace exprgrad::tensors {

/// Reduce over every element (the result has rank 0).
inline constexpr int all_axes = INT_MIN;

enum class reduction { sum, mean, max, logsumexp, prod };

namespace detail {
constexpr const char* reduction_name(reduction r) {
    switch (r) {
        case reduction::sum:
            return "sum";
        case reduction::mean:
            return "mean";
        case reduction::max:
            return "max";
        case reduction::prod:
            return "prod";
        default:
            return "logsumexp";
    }
}

// The input seen as [outer, len, inner] around the reduced axis.
struct axis_split {
    std::size_t outer = 1, len = 1, inner = 1;
    dims out;
};
inline axis_split split_axis(const char* op, const dims& in, int axis) {
    axis_split s;
    if (axis == all_axes) {
        s.len = in.size();
        return s;
    }
    const int a = normalize_axis(op, axis, in.rank);
    for (int i = 0; i < in.rank; ++i) {
        if (i < a) s.outer *= in[i];
        if (i > a) s.inner *= in[i];
        if (i != a) s.out.push(in[i]);
    }
    s.len = in[a];
    return s;
}

}  // namespace detail

/// A reduction of A over `Axis` (negative counts from the end; all_axes for every element).
/// sum and mean propagate NaN and inf as IEEE sums do; max returns NaN if any element is NaN and
/// its gradient goes to the maximal elements, split evenly among ties; logsumexp is computed as
/// m + log(sum(exp(x - m))) with m the maximum (exact for ±1e4 inputs), -inf for an empty or
/// all -inf input. The mean of zero elements is NaN.
template <reduction R, int Axis, class A>
struct Reduce {
    using children = meta::type_list<A>;
    static constexpr const char* name = detail::reduction_name(R);
    // logsumexp over contiguous lines keeps exp(x - max) and 1/sum for its VJP, so the backward
    // pass is one multiply per element instead of a second exp.
    template <class T>
    struct extra {
        std::vector<T> e, inv_sum;
    };

    template <class Ctx>
    static void forward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        const cview<T>& a = ctx.template in<A>();
        const auto s = detail::split_axis(name, a.shape, Axis);
        T* out = ctx.template out<Reduce>(s.out);
        const T* x = a.data;
        if constexpr (R == reduction::logsumexp) {
            if (s.inner == 1) {
                auto& ex = ctx.template extra<Reduce>();
                ex.e.resize(a.size());
                ex.inv_sum.resize(s.outer);
                for (std::size_t o = 0; o < s.outer; ++o) {
                    const T* p = x + o * s.len;
                    const T m = kernels::rows::max(p, s.len);
                    if (m != m || m == -std::numeric_limits<T>::infinity() || m == std::numeric_limits<T>::infinity()) {
                        out[o] = m;
                        ex.inv_sum[o] = std::numeric_limits<T>::quiet_NaN();  // backward recomputes this line
                        continue;
                    }
                    const T sum = kernels::rows::exp_shifted(p, m, ex.e.data() + o * s.len, s.len);
                    out[o] = m + std::log(sum);
                    ex.inv_sum[o] = T(1) / sum;
                }
                return;
            }
        }
        if constexpr (R == reduction::max || R == reduction::logsumexp) {
            if (s.inner != 1) {  // strided lines: blocks of adjacent lines copied into contiguous rows
                T* rows = scratch<T>(kernels::line_block * s.len).data();
                for (std::size_t o = 0; o < s.outer; ++o) {
                    for (std::size_t j0 = 0; j0 < s.inner; j0 += kernels::line_block) {
                        const std::size_t nb = std::min(kernels::line_block, s.inner - j0);
                        kernels::gather_lines(x + o * s.len * s.inner + j0, s.inner, s.len, nb, rows);
                        for (std::size_t c = 0; c < nb; ++c)
                            out[o * s.inner + j0 + c] = reduce_line(rows + c * s.len, s.len, std::size_t(1));
                    }
                }
                return;
            }
        }
        for (std::size_t o = 0; o < s.outer; ++o) {
            for (std::size_t j = 0; j < s.inner; ++j) {
                const T* base = x + o * s.len * s.inner + j;
                out[o * s.inner + j] = reduce_line(base, s.len, s.inner);
            }
        }
    }

    template <class Ctx>
    static void backward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        const cview<T>& a = ctx.template in<A>();
        const auto s = detail::split_axis(name, a.shape, Axis);
        const adjoint_view<T> g = ctx.template adj<Reduce>();
        if constexpr (R == reduction::sum || R == reduction::mean) {
            const T scale = R == reduction::mean ? T(1) / static_cast<T>(s.len) : T(1);
            if (g.uniform) {
                ctx.template grad_uniform<A>(g.value * scale);
                return;
            }
        }
        const T* gd = g.uniform ? nullptr : g.data;
        const T* y = ctx.template in<Reduce>().data;
        bool add = false;
        T* da = ctx.template grad<A>(add);
        if constexpr (R == reduction::logsumexp) {
            if (s.inner == 1) {
                const auto& ex = ctx.template extra<Reduce>();
                for (std::size_t o = 0; o < s.outer; ++o) {
                    const T gv = gd ? gd[o] : g.value;
                    if (ex.inv_sum[o] != ex.inv_sum[o]) {
                        line_vjp(a.data + o * s.len, da + o * s.len, s.len, 1, gv, y[o], add);
                    } else {
                        kernels::rows::scale_into(ex.e.data() + o * s.len, gv * ex.inv_sum[o], da + o * s.len, s.len,
                                                  add);
                    }
                }
                return;
            }
            // strided lines: blocks of adjacent lines copied into contiguous rows, d = g·e^(x − lse) over them
            T* rows = scratch<T>(kernels::line_block * s.len).data();
            for (std::size_t o = 0; o < s.outer; ++o) {
                for (std::size_t j0 = 0; j0 < s.inner; j0 += kernels::line_block) {
                    const std::size_t nb = std::min(kernels::line_block, s.inner - j0), base = o * s.len * s.inner + j0;
                    kernels::gather_lines(a.data + base, s.inner, s.len, nb, rows);
                    for (std::size_t c = 0; c < nb; ++c) {
                        const std::size_t r = o * s.inner + j0 + c;
                        kernels::rows::scaled_exp_into(rows + c * s.len, y[r], gd ? gd[r] : g.value, rows + c * s.len,
                                                       s.len);
                    }
                    kernels::scatter_lines(rows, s.len, nb, da + base, s.inner, add);
                }
            }
            return;
        }
        for (std::size_t o = 0; o < s.outer; ++o) {
            for (std::size_t j = 0; j < s.inner; ++j) {
                const std::size_t r = o * s.inner + j;
                const T gv = gd ? gd[r] : g.value;
                const T* xb = a.data + o * s.len * s.inner + j;
                T* db = da + o * s.len * s.inner + j;
                line_vjp(xb, db, s.len, s.inner, gv, y[r], add);
            }
        }
    }

  private:
    template <class T>
    static T reduce_line(const T* p, std::size_t len, std::size_t stride) {
        if constexpr (R == reduction::prod) {
            if (stride == 1) {
                // lane-wise partial products in four independent accumulators (one would wait on
                // the multiply latency every batch), then across accumulators and lanes
                using B = xsimd::batch<T>;
                constexpr std::size_t W = B::size;
                B acc(T(1)), acc1(T(1)), acc2(T(1)), acc3(T(1));
                std::size_t i = 0;
                for (; i + 4 * W <= len; i += 4 * W) {
                    acc *= B::load_unaligned(p + i);
                    acc1 *= B::load_unaligned(p + i + W);
                    acc2 *= B::load_unaligned(p + i + 2 * W);
                    acc3 *= B::load_unaligned(p + i + 3 * W);
                }
                acc = (acc * acc1) * (acc2 * acc3);
                for (; i + W <= len; i += W) acc *= B::load_unaligned(p + i);
                alignas(64) T lanes[W];
                acc.store_aligned(lanes);
                T r = 1;
                for (std::size_t k = 0; k < W; ++k) r *= lanes[k];
                for (; i < len; ++i) r *= p[i];
                return r;
            }
            T r = 1;
            for (std::size_t i = 0; i < len; ++i) r *= p[i * stride];
            return r;
        } else if constexpr (R == reduction::sum || R == reduction::mean) {
            T sum = stride == 1 ? kernels::sum_contiguous(p, len) : T(0);
            if (stride != 1)
                for (std::size_t i = 0; i < len; ++i) sum += p[i * stride];
            return R == reduction::mean ? sum / static_cast<T>(len) : sum;
        } else {
            // max and logsumexp: the row kernels (forward hands strided lines over as contiguous copies)
            if constexpr (R == reduction::max) {
                return len == 0 ? std::numeric_limits<T>::quiet_NaN() : kernels::rows::max(p, len);
            } else {
                return kernels::rows::logsumexp(p, len);
            }
        }
    }

    template <class T>
    static void line_vjp(const T* x, T* d, std::size_t len, std::size_t stride, T g, T y, bool add) {
        auto put = [&](std::size_t i, T v) {
            if (add)
                d[i * stride] += v;
            else
                d[i * stride] = v;
        };
        if constexpr (R == reduction::sum || R == reduction::mean) {
            const T v = R == reduction::sum ? g : g / static_cast<T>(len);
            if (stride == 1) {
                if (add)
                    kernels::add_value(d, len, v);
                else
                    kernels::fill_value(d, len, v);
            } else {
                for (std::size_t i = 0; i < len; ++i) put(i, v);
            }
        } else if constexpr (R == reduction::prod) {
            // d/dx_i = product of the others. Where the product y is a finite normal number, every x_i
            // is nonzero and that is y / x_i (one SIMD division pass). Otherwise (zeros, underflow,
            // overflow) prefix × suffix products, exact where some x_j = 0.
            if (stride == 1 && std::isfinite(y) && std::abs(y) >= std::numeric_limits<T>::min()) {
                using B = xsimd::batch<T>;
                constexpr std::size_t W = B::size;
                const B gy(g * y);
                std::size_t i = 0;
                for (; i + W <= len; i += W) {
                    B v = gy / B::load_unaligned(x + i);
                    if (add) v += B::load_unaligned(d + i);
                    v.store_unaligned(d + i);
                }
                for (; i < len; ++i) put(i, g * y / x[i]);
                return;
            }
            auto& suffix = scratch<T>(len);
            T run = 1;
            for (std::size_t i = len; i-- > 0;) {
                suffix[i] = run;
                run *= x[i * stride];
            }
            T prefix = 1;
            for (std::size_t i = 0; i < len; ++i) {
                put(i, g * (prefix * suffix[i]));
                prefix *= x[i * stride];
            }
        } else if constexpr (R == reduction::max) {
            std::size_t ties = 0;
            for (std::size_t i = 0; i < len; ++i) ties += x[i * stride] == y ? 1 : 0;
            const T share = ties ? g / static_cast<T>(ties) : T(0);
            for (std::size_t i = 0; i < len; ++i) put(i, x[i * stride] == y ? share : T(0));
        } else {
            // d logsumexp / dx_i = exp(x_i - lse): the softmax of the line (contiguous: backward hands strided
            // lines over as contiguous copies)
            kernels::rows::scaled_exp_into(x, y, g, d, len, add);
        }
    }
};

/// Product over an axis (or all elements); its gradient uses prefix and suffix products, so it is
/// exact where elements are zero.
template <int Axis = all_axes, TensorExpr A>
constexpr Reduce<reduction::prod, Axis, A> prod(A) {
    return {};
}
/// Sum over an axis (or all elements): `sum<1>(X)`, `sum(X)`.
template <int Axis = all_axes, TensorExpr A>
constexpr Reduce<reduction::sum, Axis, A> sum(A) {
    return {};
}
/// Mean over an axis (or all elements).
template <int Axis = all_axes, TensorExpr A>
constexpr Reduce<reduction::mean, Axis, A> mean(A) {
    return {};
}
/// Maximum over an axis (or all elements); gradient split among ties.
template <int Axis = all_axes, TensorExpr A>
constexpr Reduce<reduction::max, Axis, A> max(A) {
    return {};
}
/// log(sum(exp(x))) over an axis (or all elements), computed stably.
template <int Axis = all_axes, TensorExpr A>
constexpr Reduce<reduction::logsumexp, Axis, A> logsumexp(A) {
    return {};
}

}  // namespace exprgrad::tensors
