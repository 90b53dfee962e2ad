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
/// variant). Objective, ignore index and cap (a sym rational) are part of the type.
template <emo_objective O, long Ignore, class Cap, class L, class Tg, class E>
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
            detail::emo_hard(z.data, ctx.template ints<Tg>(), e.data, s, opts, ex.dz.data(), nullptr, nullptr, nullptr);
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

/// The EMO loss node: `emo_loss<emo_objective::mode1>(Z, Y, E)`; ignore index -100 and cap 3 by
/// default.
template <emo_objective O = emo_objective::mode1, long Ignore = -100, class Cap = sym::Const<3>, tensors::TensorExpr L,
          tensors::TensorExpr Tg, tensors::TensorExpr E>
constexpr EmoLoss<O, Ignore, Cap, L, Tg, E> emo_loss(L, Tg, E) {
    return {};
}

}  // namespace exprgrad::ops
