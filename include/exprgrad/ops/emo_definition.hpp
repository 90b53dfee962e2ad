// The EMO loss defined in the DSL: the reference definition of what the fused kernel (ops/emo.hpp's
// emo_loss, eager and as a node) computes for hard targets, written only from tensor primitives (softmax,
// logsumexp, take_along_axis, one_hot, matmul, comparisons, where, stop_gradient), so that the engine
// derives its gradient. It is the readable statement of the kernel's contract and the oracle its tests
// compare against. A program compiled from it runs the kernel (ops/emo_lowering.hpp lowers the form, every
// objective but ce); compiled as written (tensors::unlowered) it builds N×V costs in several passes, ~5× slower.
//
// Per counted position (target t ≠ Ignore) with logits z, p = softmax(z):
//   c_k = 1 − ⟨ê_k, ê_t⟩ (or Cost(⟨ê_k, ê_t⟩)),  ê = e / max(‖e‖, 1e-12),  E under stop_gradient (as in the kernel)
//   CE  = logsumexp(z) − z_t,   EMO = max(Σ_k p_k c_k, 0)
//   ce: CE   emo: EMO   mode1: ½(CE + sg(CE/(EMO + 1e-10))·EMO)
//   mode1_capped: ½(CE + min(sg(CE/(EMO + 1e-10)), Cap)·EMO)   mode2: sg(EMO/(CE + 1e-10))·CE + EMO
//   loss = Σ over counted positions / their count (0, with zero gradients, when none is counted).
// docs/emo.md ("Defined in the DSL") maps each term to the code below.
#pragma once

#include "exprgrad/require_cxx20.hpp"  // first: refuses a standard older than C++20

#include <type_traits>

#include "exprgrad/ops/emo.hpp"
#include "exprgrad/sym/expr.hpp"
#include "exprgrad/tensors/compare.hpp"
#include "exprgrad/tensors/count_operand.hpp"
#include "exprgrad/tensors/elementwise.hpp"
#include "exprgrad/tensors/iota.hpp"
#include "exprgrad/tensors/layout.hpp"
#include "exprgrad/tensors/map.hpp"
#include "exprgrad/tensors/matmul.hpp"
#include "exprgrad/tensors/one_hot.hpp"
#include "exprgrad/tensors/reduce.hpp"
#include "exprgrad/tensors/reshape.hpp"
#include "exprgrad/tensors/softmax.hpp"
#include "exprgrad/tensors/stop_gradient.hpp"
#include "exprgrad/tensors/take_along_axis.hpp"
#include "exprgrad/tensors/where.hpp"

namespace exprgrad::ops {

namespace detail::emo_definition {
// The definition's pieces that the lowering (ops/emo_lowering.hpp) reads its operands off, by rebuilding them.
namespace t = tensors;
// V = max(iota(z)) + 1, the number of classes
template <class L>
constexpr auto class_count(L z) {
    using namespace sym::literals;
    return t::max(t::iota<-1>(z)) + 1_c;
}
// the counted positions: y ≠ Ignore, as [N, 1]
template <long Ignore, class Tg>
constexpr auto counted(Tg y) {
    return t::not_equal(t::reshape<-1, 1>(y), t::ConstantNode<sym::Const<Ignore>>{});
}
// ê = e / max(‖e‖, 1e-12), under stop_gradient
template <class E>
constexpr auto normalized_embedding(E e) {
    const auto norm = t::reshape<-1, 1>(t::sqrt(t::sum<-1>(t::square(e))));
    return t::stop_gradient(
        e / t::where(t::greater(norm, t::ConstantNode<decltype(sym::fc<1e-12>)>{}), norm, sym::fc<1e-12>));
}
}  // namespace detail::emo_definition

/// The EMO loss as a tensor expression, the reference definition of the emo_loss node: same template
/// parameters (objective O, ignored target Ignore, the weight cap Cap of mode1_capped, a sym constant) and
/// operands, emo_definition<O, Ignore, Cap>(Z, Y, E), with the formulas of ops/emo.hpp:
///   Z logits [..., V]; Y targets [...] as numbers (integer values in [0, V) or Ignore; a floating array,
///   e.g. xt::cast<double>(targets): an integer array argument carries no values that compare can read);
///   E cost embedding [V, h], not differentiated (stop_gradient); the result is a scalar, the mean over the
///   counted positions of CE, EMO or their combination (mode1 and mode2 weights under stop_gradient).
/// Gradients come from the engine: value_and_grad(emo_definition<O>(Z, Y, E), wrt<0>); compiled so, the form is
/// lowered to the fused kernel (EmoDefinition, ops/emo_node.hpp; not for O = ce), and value_and_grad(unlowered(…))
/// runs the primitives.
/// Matches the kernel's value and dlogits for every objective, ignored positions, zero rows of E (ê = 0) and
/// −inf logits at non-target classes (probability 0). Differences: the kernel refuses a +inf logit and a
/// non-finite E (std::invalid_argument), the definition gives NaN; where rounding makes Σ p_k c_k negative
/// (a position whose p is almost one-hot on its target) both clamp EMO to 0, but the definition's gradient of
/// the clamped term is then 0 where the kernel keeps p_k(c_k − 0). Soft targets are not covered.
/// NaN: a NaN logit at a counted position makes the loss NaN; ignored positions are replaced by 0 before use,
/// so NaN there stays out (as in the kernel). A target outside [0, V) that is not Ignore throws from one_hot
/// ("exprgrad::one_hot: index v at position p is out of range [0, V) ...").
/// Cost: the transport cost as a sym expression of the cosine var<0> (emo_default_cost = 1 − cos; as at the emo_loss
/// node, ops/emo_loss_node.hpp), applied as a tensor map to the N×V cosines: emo_definition<O, Ignore, Cap, Cost>.
/// Compiled, the form is lowered to emo_definition_node<O, Ignore, Cap, Cost> (the kernel with that cost). A cost
/// that is NaN for some cosine makes the positions that read it NaN.
/// Example: `auto [l, g] = value_and_grad(emo_definition<emo_objective::mode1>(tensor<0>, tensor<1>, tensor<2>),
///           wrt<0>)(logits, xt::xarray<double>(xt::cast<double>(targets)), E);`
template <emo_objective O = emo_objective::mode1, long Ignore = -100, class Cap = sym::Const<3>,
          class Cost = emo_default_cost, tensors::TensorExpr L, tensors::TensorExpr Tg, tensors::TensorExpr E>
constexpr auto emo_definition(L z, Tg y, E e) {
    namespace t = tensors;
    using namespace sym::literals;
    constexpr auto zero = t::ConstantNode<sym::Const<0>>{};
    // positions as rows: logits [N, V], targets [N, 1]
    const auto n_classes = detail::emo_definition::class_count(z);
    const auto y1 = t::reshape<-1, 1>(y);
    const auto counted = detail::emo_definition::counted<Ignore>(y);  // [N, 1]
    const auto target = t::where(counted, y1, 0_c);                                // ignored rows read class 0
    const auto zc = t::where(counted, t::reshape(z, -1_c, n_classes), 0_c);        // ignored rows: logits 0
    // CE = logsumexp(z) − z_t
    const auto ce = t::reshape<-1, 1>(t::logsumexp<-1>(zc)) - t::take_along_axis<-1>(zc, target);
    // ê = e / max(‖e‖, 1e-12), c_k = 1 − ⟨ê_k, ê_t⟩ (ê_t as one_hot(t)·Ê)
    const auto eh = detail::emo_definition::normalized_embedding(e);
    const auto e_target = t::matmul(t::one_hot(t::reshape<-1>(target), n_classes), eh);  // [N, h]
    const auto cosine = t::matmul(e_target, t::transpose(eh));                           // [N, V]
    const auto cost = [&] {
        if constexpr (std::is_same_v<Cost, emo_default_cost>)
            return 1_c - cosine;  // the form as before this parameter: the default keeps its type
        else
            return t::map(Cost{}, cosine);  // c(cos) elementwise; no gradient reaches E through it (stopped)
    }();
    // EMO = max(Σ_k p_k c_k, 0)
    const auto emo_raw = t::reshape<-1, 1>(t::sum<-1>(t::softmax(zc) * cost));
    const auto emo = t::where(t::greater(emo_raw, zero), emo_raw, 0_c);
    const auto per_position = [&] {
        if constexpr (O == emo_objective::ce) {
            return ce;
        } else if constexpr (O == emo_objective::emo) {
            return emo;
        } else if constexpr (O == emo_objective::mode1) {
            return sym::c<1, 2> * (ce + t::stop_gradient(ce / (emo + sym::fc<1e-10>)) * emo);
        } else if constexpr (O == emo_objective::mode1_capped) {
            static_assert(Cap::value >= 0, "exprgrad: the cap of mode1_capped must be >= 0");
            const auto w = ce / (emo + sym::fc<1e-10>);
            return sym::c<1, 2> *
                   (ce + t::stop_gradient(t::where(t::greater(w, t::ConstantNode<Cap>{}), Cap{}, w)) * emo);
        } else {
            static_assert(O == emo_objective::mode2, "exprgrad: emo_definition takes one of the five objectives");
            return t::stop_gradient(emo / (ce + sym::fc<1e-10>)) * ce + emo;
        }
    }();
    // the mean over counted positions, 0 when none is; the root is a where, not a map, so that an expression
    // containing the loss (loss + penalty) does not fuse it into its own map and the lowering still finds it
    const auto count = t::sum(counted);
    const auto any = t::greater(count, zero);
    return t::where(any, t::sum(t::where(counted, per_position, 0_c)) / t::where(any, count, 1_c), 0_c);
}

}  // namespace exprgrad::ops

// Compiled from the definition, a program runs the fused kernel: the form is recognized on its type and lowered
// to the EmoDefinition node (ops/emo_lowering.hpp).
#include "exprgrad/ops/emo_lowering.hpp"
