// The few nodes forward mode needs beyond the public ones (tensors/tangent.hpp writes every tangent with
// them and the public nodes, so that the tangent is itself a tensor expression that reverse mode can
// differentiate again for Hessian-vector products):
//   Spread<Axis, R, Like>        R (Like's shape without Axis) repeated along Axis: the "keepdims" a
//                                softmax or a norm tangent needs; VJP: the adjoint summed over Axis.
//   ZerosLike<A>                 zeros of A's shape (the tangent of a constant operand of concat/where).
//   CrossEntropyTargets<I, L, T> the cross-entropy's target distribution over the counted rows, divided by
//                                their count (no gradient).
//   TangentCheck<Hvp, Ws, Ts>    checks each tangent argument against its primal argument before any node
//                                of the tangent runs, so a mismatch names jvp/hvp and the argument.
//   TangentRoot<Hvp, C, Tn, Ps>  the root of a jvp/hvp program: Tn's value, with C and the primal output Ps
//                                (jvp) gathered in front.
#pragma once

#include "exprgrad/require_cxx20.hpp"  // first: refuses a standard older than C++20

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>

#include "exprgrad/kernels/contiguous.hpp"
#include "exprgrad/tensors/graph.hpp"
#include "exprgrad/tensors/reduce.hpp"
#include "exprgrad/tensors/shape.hpp"

namespace exprgrad::tensors {

/// R repeated along Axis of Like's shape: out[o, i, j] = R[o, j] around Axis (all_axes: R has one
/// element, repeated everywhere). Like's values are not read and get no gradient. Throws naming
/// "spread" when R's size is not Like's size without Axis.
template <int Axis, class R, class Like>
struct Spread {
    using children = meta::type_list<R, Like>;
    static constexpr const char* name = "spread";

    template <class Ctx>
    static void forward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        const dims shape = ctx.template in<Like>().shape;
        const cview<T>& r = ctx.template in<R>();
        const auto s = detail::split_axis(name, shape, Axis);
        if (r.size() != s.outer * s.inner) {
            throw shape_error(name, "a value of shape " + r.shape.str() + " cannot be repeated along axis " +
                                        std::to_string(Axis) + " of shape " + shape.str());
        }
        T* y = ctx.template out<Spread>(shape);
        for (std::size_t o = 0; o < s.outer; ++o)
            for (std::size_t i = 0; i < s.len; ++i)
                std::copy(r.data + o * s.inner, r.data + (o + 1) * s.inner, y + (o * s.len + i) * s.inner);
    }

    template <class Ctx>
    static void backward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        if constexpr (Ctx::template needs<R>) {
            const auto s = detail::split_axis(name, ctx.template in<Like>().shape, Axis);
            const adjoint_view<T> g = ctx.template adj<Spread>();
            if (g.uniform) {
                ctx.template grad_uniform<R>(g.value * static_cast<T>(s.len));
                return;
            }
            bool add = false;
            T* d = ctx.template grad<R>(add);
            for (std::size_t o = 0; o < s.outer; ++o) {
                for (std::size_t j = 0; j < s.inner; ++j) {
                    T acc = 0;
                    for (std::size_t i = 0; i < s.len; ++i) acc += g.data[(o * s.len + i) * s.inner + j];
                    d[o * s.inner + j] = add ? d[o * s.inner + j] + acc : acc;
                }
            }
        }
    }
};

/// Zeros of A's shape (A's values are not read).
template <class A>
struct ZerosLike {
    using children = meta::type_list<A>;
    static constexpr const char* name = "zeros_like";
    template <class Ctx>
    static void forward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        const dims shape = ctx.template in<A>().shape;
        kernels::fill_value(ctx.template out<ZerosLike>(shape), shape.size(), T(0));
    }
    template <class Ctx>
    static void backward(Ctx&) {}
};

/// q[r, v] = [t_r == v] / n for the rows r whose target t_r is not Ignore (n of them), 0 on ignored rows:
/// the gradient of cross_entropy<Ignore>(L, T) is softmax(L)·Σ_v q[r, v] − q. Same checks as cross_entropy.
template <long Ignore, class L, class Tg>
struct CrossEntropyTargets {
    using children = meta::type_list<L, Tg>;
    static constexpr const char* name = "cross_entropy";
    template <class Ctx>
    static void forward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        const dims shape = ctx.template in<L>().shape;
        const std::int64_t* t = ctx.template ints<Tg>();
        if (shape.rank < 1) throw shape_error(name, "logits must have at least one dimension");
        const std::size_t V = shape.at(-1), rows = V ? shape.size() / V : 0;
        if (ctx.template in<Tg>().shape.size() != rows) {
            throw shape_error(name, "targets of shape " + ctx.template in<Tg>().shape.str() +
                                        " do not match logits of shape " + shape.str());
        }
        T* q = ctx.template out<CrossEntropyTargets>(shape);
        kernels::fill_value(q, shape.size(), T(0));
        std::size_t n = 0;
        for (std::size_t r = 0; r < rows; ++r) {
            if (t[r] == Ignore) continue;
            if (t[r] < 0 || static_cast<std::size_t>(t[r]) >= V) {
                throw shape_error(name, "target " + std::to_string(t[r]) + " at row " + std::to_string(r) +
                                            " is out of range [0, " + std::to_string(V) + ")");
            }
            ++n;
        }
        const T w = T(1) / static_cast<T>(n);  // n = 0: never stored, so the tangent is 0 (cross_entropy's all-ignored 0)
        for (std::size_t r = 0; r < rows; ++r)
            if (t[r] != Ignore) q[r * V + static_cast<std::size_t>(t[r])] = w;
    }
    template <class Ctx>
    static void backward(Ctx&) {}
};

template <bool Hvp, class Ws, class Ts>
struct TangentCheck;
/// Tangent argument Ts_k must be a floating array of the shape of primal argument Ws_k.
template <bool Hvp, int... W, int... Tk>
struct TangentCheck<Hvp, meta::type_list<Input<W>...>, meta::type_list<Input<Tk>...>> {
    using children = meta::type_list<Input<W>..., Input<Tk>...>;
    static constexpr const char* name = Hvp ? "hvp" : "jvp";
    template <class Ctx>
    static void forward(Ctx& ctx) {
        (check<W, Tk>(ctx), ...);
        ctx.template out<TangentCheck>(dims{})[0] = 0;
    }
    template <class Ctx>
    static void backward(Ctx&) {}

  private:
    template <int Wi, int Ti, class Ctx>
    static void check(Ctx& ctx) {
        const auto& p = ctx.template in<Input<Wi>>();
        const auto& t = ctx.template in<Input<Ti>>();
        const std::string which = "the tangent of argument " + std::to_string(Wi) + " (argument " +
                                  std::to_string(Ti) + " of the call)";
        if (t.data == nullptr) throw shape_error(name, which + " must be a floating-point array or number");
        if (!(p.shape == t.shape)) {
            throw shape_error(name, which + " has shape " + t.shape.str() + ", but argument " + std::to_string(Wi) +
                                        " has shape " + p.shape.str());
        }
    }
};

/// The root of a jvp (Hvp false: Ps is the primal output, computed beside) or hvp program (Hvp true: Tn
/// must have one element). Value: Tn's; VJP: the adjoint passed to Tn.
template <bool Hvp, class C, class Tn, class... Ps>
struct TangentRoot {
    using children = meta::type_list<C, Ps..., Tn>;
    static constexpr const char* name = Hvp ? "hvp" : "jvp";
    template <class Ctx>
    static void forward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        const cview<T>& t = ctx.template in<Tn>();
        if (Hvp && t.size() != 1) {
            throw shape_error(name, "the differentiated expression must have one element, but has shape " +
                                        t.shape.str() + " (reduce it with sum or mean)");
        }
        std::copy(t.data, t.data + t.size(), ctx.template out<TangentRoot>(t.shape));
    }
    template <class Ctx>
    static void backward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        const adjoint_view<T> g = ctx.template adj<TangentRoot>();
        if (g.uniform) {
            ctx.template grad_uniform<Tn>(g.value);
            return;
        }
        bool add = false;
        T* d = ctx.template grad<Tn>(add);
        const std::size_t n = ctx.template in<Tn>().size();
        for (std::size_t i = 0; i < n; ++i) d[i] = add ? d[i] + g.data[i] : g.data[i];
    }
};

namespace detail {
template <int Axis, class R, class Like, class Wrt>
struct needs_grad<Spread<Axis, R, Like>, Wrt> : needs_grad<R, Wrt> {};
template <class A, class Wrt>
struct needs_grad<ZerosLike<A>, Wrt> : std::false_type {};
template <long I, class L, class Tg, class Wrt>
struct needs_grad<CrossEntropyTargets<I, L, Tg>, Wrt> : std::false_type {};
template <bool H, class Ws, class Ts, class Wrt>
struct needs_grad<TangentCheck<H, Ws, Ts>, Wrt> : std::false_type {};
template <bool H, class C, class Tn, class... Ps, class Wrt>
struct needs_grad<TangentRoot<H, C, Tn, Ps...>, Wrt> : needs_grad<Tn, Wrt> {};
}  // namespace detail

}  // namespace exprgrad::tensors
