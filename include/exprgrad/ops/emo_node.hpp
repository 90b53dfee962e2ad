// The EMO loss node that emo_definition's form is lowered to (ops/emo_lowering.hpp): the fused kernel of
// ops/emo.hpp (one N·h·V product and SIMD row passes) with the definition's operands, whose targets are numbers
// (a floating array holding integer values or Ignore), not the integer array the emo_loss node reads.
#pragma once

#include "exprgrad/require_cxx20.hpp"  // first: refuses a standard older than C++20

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <xtensor/xarray.hpp>

#include "exprgrad/format.hpp"
#include "exprgrad/ops/emo.hpp"
#include "exprgrad/tensors/graph.hpp"

namespace exprgrad::ops {

/// emo_definition<O, Ignore, Cap>(Z, Y, E) run by the fused kernel: logits Z [..., V], targets Y with as many
/// entries as Z has rows (any shape; numbers, each an integer in [0, V) or Ignore, or an integer array), cost
/// embedding E [V, h]. Value: the loss of the definition's table (docs/emo.md); VJP: d/dZ (the kernel's
/// dlogits times the adjoint); Y and E get no gradient (the definition's are zero: Y is read as indices and E
/// is under stop_gradient). Throws std::invalid_argument "exprgrad::emo_loss: ..." for a target that is not
/// an integer ("target value 1.5 at position 3 is not an integer"), and as emo_loss for a target out of
/// range, shapes that do not fit, a +inf logit or a non-finite E (where the definition gives NaN).
/// Built by the lowering; to write it directly: `emo_definition_node<emo_objective::mode1>(Z, Y, E)`.
/// Cost: the transport cost of emo_definition's fourth parameter (a sym expression of the cosine var<0>, 1 − cos by
/// default; see the emo_loss node), passed to the kernel.
template <emo_objective O, long Ignore, class Cap, class Z, class Y, class E, class Cost = emo_default_cost>
struct EmoDefinition {
    using children = tensors::meta::type_list<Z, Y, E>;
    static constexpr const char* name = "emo_loss";
    template <class T>
    struct extra {
        xt::xarray<T> dz;                  // d loss / dz for a unit adjoint, computed with the value
        std::vector<std::int64_t> target;  // Y as integers
    };

    template <class Ctx>
    static void forward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        const tensors::cview<T>& z = ctx.template in<Z>();
        const tensors::cview<T>& e = ctx.template in<E>();
        const tensors::cview<T>& y = ctx.template in<Y>();
        auto& ex = ctx.template extra<EmoDefinition>();
        // the targets take the logits' leading shape when they have as many entries (the definition reshapes)
        tensors::dims tshape = y.shape;
        if (z.shape.rank >= 1 && z.shape.at(-1) > 0 && y.shape.size() == z.shape.size() / z.shape.at(-1)) {
            tshape = z.shape;
            tshape.rank -= 1;
        }
        const auto s = detail::check_emo_shapes<T>(z.shape, tshape, e.shape, false);
        ex.target.resize(s.rows);
        if (y.data != nullptr) {
            for (std::size_t r = 0; r < s.rows; ++r) {
                const T v = y.data[r];
                if (!(std::floor(v) == v) || std::fabs(static_cast<double>(v)) > 9.0e15)
                    throw tensors::shape_error(name, "target value " + format_number(static_cast<double>(v)) +
                                                         " at position " + std::to_string(r) + " is not an integer");
                ex.target[r] = static_cast<std::int64_t>(v);
            }
        } else {
            const std::int64_t* t = ctx.template ints<Y>();
            ex.target.assign(t, t + s.rows);
        }
        tensors::fit(ex.dz, z.shape);
        const emo_options opts{O, Ignore, Cap::value};
        detail::check_emo_options(opts);
        const double loss =
            detail::emo_hard<T, Cost>(z.data, ex.target.data(), e.data, s, opts, ex.dz.data(), nullptr, nullptr, nullptr);
        ctx.template out<EmoDefinition>(tensors::dims{})[0] = static_cast<T>(loss);
    }

    template <class Ctx>
    static void backward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        if constexpr (Ctx::template needs<Z>) {
            const tensors::adjoint_view<T> g = ctx.template adj<EmoDefinition>();
            const T gv = g.uniform ? g.value : g.data[0];
            const auto& dz = ctx.template extra<EmoDefinition>().dz;
            bool add = false;
            T* d = ctx.template grad<Z>(add);
            const T* s = dz.data();
            const std::size_t n = dz.size();
            // branches out of the loops, so that they vectorize (N·V elements: a few % of the kernel's time)
            if (add) {
                for (std::size_t i = 0; i < n; ++i) d[i] += gv * s[i];
            } else if (gv == T(1)) {
                std::copy(s, s + n, d);
            } else {
                for (std::size_t i = 0; i < n; ++i) d[i] = gv * s[i];
            }
        }
    }
};

/// The node emo_definition's form is lowered to, written directly: `emo_definition_node<emo_objective::mode1>(Z,
/// Y, E)` with the template parameters (Cost included) and operands of emo_definition (Y numbers or an integer array).
template <emo_objective O = emo_objective::mode1, long Ignore = -100, class Cap = sym::Const<3>,
          class Cost = emo_default_cost, tensors::TensorExpr Z, tensors::TensorExpr Y, tensors::TensorExpr E>
constexpr EmoDefinition<O, Ignore, Cap, Z, Y, E, Cost> emo_definition_node(Z, Y, E) {
    return {};
}

}  // namespace exprgrad::ops
