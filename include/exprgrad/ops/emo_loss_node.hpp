// The EMO loss as a node of a tensor program (ops::emo_loss<O, Ignore, Cap>(Z, Y, E) on tensor expressions):
// the fused kernel of ops/detail/emo_kernel.hpp with integer targets; the formulas are at the top of ops/emo.hpp.
#pragma once

#include <cstddef>

#include <xtensor/xarray.hpp>

#include "exprgrad/ops/detail/emo_kernel.hpp"
#include "exprgrad/ops/emo_cost.hpp"
#include "exprgrad/ops/emo_options.hpp"
#include "exprgrad/sym/expr.hpp"
#include "exprgrad/tensors/graph.hpp"
#include "exprgrad/tensors/shape.hpp"

namespace exprgrad::ops {

/// The EMO loss as a node of a tensor program: logits L [..., V], integer targets Tg, cost
/// embedding E [V, h] (no gradient flows into E, even when it is a live parameter: the "adaptive"
/// variant). Objective, ignore index, cap (a sym rational) and the transport cost Cost (a sym expression of
/// the cosine var<0>, emo_default_cost = 1 − cos; ops/emo_cost.hpp) are part of the type.
template <emo_objective O, long Ignore, class Cap, class L, class Tg, class E, class Cost = emo_default_cost>
struct EmoLoss {
    using children = tensors::meta::type_list<L, Tg, E>;
    static constexpr const char* name = "emo_loss";
    template <class T>
    struct extra {
        xt::xarray<T> dz;  // the gradient for a unit adjoint, computed with the value
    };

    template <class Ctx>
    static void forward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        const tensors::cview<T>& z = ctx.template in<L>();
        const tensors::cview<T>& e = ctx.template in<E>();
        const auto s = detail::check_emo_shapes<T>(z.shape, ctx.template in<Tg>().shape, e.shape, false);
        auto& ex = ctx.template extra<EmoLoss>();
        tensors::fit(ex.dz, z.shape);
        const emo_options opts{O, Ignore, Cap::value};
        detail::check_emo_options(opts);  // a negative Cap or an objective outside the enum
        const double loss =
            detail::emo_hard<T, Cost>(z.data, ctx.template ints<Tg>(), e.data, s, opts, ex.dz.data(), nullptr, nullptr, nullptr);
        ctx.template out<EmoLoss>(tensors::dims{})[0] = static_cast<T>(loss);
    }

    template <class Ctx>
    static void backward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        if constexpr (Ctx::template needs<L>) {
            const tensors::adjoint_view<T> g = ctx.template adj<EmoLoss>();
            const T gv = g.uniform ? g.value : g.data[0];
            const auto& dz = ctx.template extra<EmoLoss>().dz;
            bool add = false;
            T* d = ctx.template grad<L>(add);
            for (std::size_t i = 0; i < dz.size(); ++i) d[i] = add ? d[i] + gv * dz.data()[i] : gv * dz.data()[i];
        }
    }
};

/// The EMO loss node: `emo_loss<emo_objective::mode1>(Z, Y, E)`; ignore index -100, cap 3 and the cost
/// c(x) = 1 − x by default, with the value and d/dZ of the eager emo_loss<Cost>(z, targets, E, {O, Ignore, Cap})
/// (formulas and NaN policy at the top of ops/emo.hpp).
/// Cost: the transport cost c(x) as a sym expression of the cosine x = ⟨ê_k, ê_t⟩ = sym::var<0>, x in [−1, 1] up to
/// rounding (0 for a zero row of E); the kernel applies it to each entry of its one N×V cosine product and the
/// gradient p_k (c_k − EMO) needs c only (E gets no gradient, so c′ is never taken). A cost that is NaN for some x
/// makes the positions that read it NaN (propagated, not refused); a cost below 0 can make EMO clamp at 0.
/// Example: `using cost = decltype(sym::square(1_c - sym::var<0>) + sym::var<0> / 4_c);`  // (1 − x)² + x/4
///          `value_and_grad(emo_loss<emo_objective::mode1, -100, sym::Const<3>, cost>(Z, Y, E), wrt<0>)`
template <emo_objective O = emo_objective::mode1, long Ignore = -100, class Cap = sym::Const<3>,
          class Cost = emo_default_cost, tensors::TensorExpr L, tensors::TensorExpr Tg, tensors::TensorExpr E>
constexpr EmoLoss<O, Ignore, Cap, L, Tg, E, Cost> emo_loss(L, Tg, E) {
    return {};
}

}  // namespace exprgrad::ops
