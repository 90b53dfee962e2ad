// The EMO loss (earth mover's distance over token embeddings, kexue.fm post 9797 and Ren et al.,
// "EMO", ICLR 2024), combined with cross-entropy; docs/emo.md, https://kexue.fm/archives/9797.
//
// Per position with logits z, p = softmax(z) and target t:
//   c_k   = 1 − ⟨ê_k, ê_t⟩ (emo_loss<Cost>: Cost(⟨ê_k, ê_t⟩)),  ê = e / max(‖e‖, 1e-12)  (cost of moving k to t)
//   EMO   = Σ_k p_k c_k, clamped at ≥ 0;  ∂EMO/∂z_k = p_k (c_k − EMO)
//   CE    = logsumexp(z) − z_t;           ∂CE/∂z_k  = p_k − δ_kt
// Objectives (sg = stop-gradient; weights per position):
//   ce            CE
//   emo           EMO
//   mode1         ½(CE + w·EMO), w = sg(CE / (EMO + 1e-10))     (value ≈ CE, gradient differs)
//   mode1_capped  ½(CE + w·EMO), w = min(sg(CE / (EMO + 1e-10)), cap)
//   mode2         w·CE + EMO,    w = sg(EMO / (CE + 1e-10))
// The loss is the mean over the positions whose target is not ignore_index (0 with zero gradients
// when all are ignored). The costs of a batch come from one product of the targets' normalized rows
// with Êᵀ (N×h by h×V, through BLAS); everything else is O(N·V); no V×V matrix is ever built.
// Soft targets τ use the product-coupling upper bound Σ_ij p_i τ_j c_ij = Σ_k p_k (Στ − ⟨ê_k, τÊ⟩).
//
// NaN/Inf: a NaN logit makes its position's loss and gradient NaN (propagated, not refused); a −inf
// logit (a masked class) is exact, probability 0, when the target is another class; logits up to ±1e4 are
// exact (the softmax subtracts the row maximum); zero rows of E (padded vocabulary slots) give ê = 0, not NaN.
// Refused (std::invalid_argument naming emo_loss, the argument and the value): soft targets with an entry
// < 0 or NaN, or a row sum off 1 by more than 1e-4 (the row is named); cap NaN or < 0; an objective outside
// the enum; V = 0; a cost embedding with h = 0; a +inf logit (row and class named); a cost embedding with an
// inf or NaN entry (row and column named); an integer target outside [0, V) that is not ignore_index,
// including unsigned targets above the int64 range (never wrapped to a negative index). See emo_loss.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include <xtensor/xarray.hpp>

#include "exprgrad/ops/detail/emo_kernel.hpp"
#include "exprgrad/ops/emo_cost.hpp"
#include "exprgrad/ops/emo_loss_node.hpp"  // the node ops::emo_loss(Z, Y, E) on tensor expressions
#include "exprgrad/ops/emo_options.hpp"
#include "exprgrad/tensors/reduce.hpp"
#include "exprgrad/tensors/shape.hpp"

namespace exprgrad::ops {

/// The loss, its gradient with respect to the logits, and the mean CE and EMO of the counted positions.
template <class T>
struct emo_result {
    T loss = 0;
    xt::xarray<T> dlogits;
    double ce = 0, emo = 0;
    std::size_t count = 0;  ///< positions not ignored
};

/// The EMO loss of logits [..., V] (float or double) against targets, with the cost embedding
/// E [V, h] (not differentiated): value and d/dlogits. Targets are integers [...] (ignore_index
/// skips a position) or, with the logits' floating type and shape, soft target distributions.
/// Throws std::invalid_argument naming the shapes, an out-of-range target and its position, a bad soft target
/// row or option (the domain is listed at emo_loss below).
/// Example: `auto r = emo_loss(logits, targets, lm_head_weight, {.objective = emo_objective::mode1});`
/// emo_loss writing into `result`, whose dlogits buffer is reused when its shape already fits (so a
/// training loop allocates nothing in steady state). See emo_loss below (also for Cost).
template <class Cost = emo_default_cost, class L, class Tg, class E, class T = typename L::value_type>
requires xt::is_xexpression<L>::value void emo_loss_into(emo_result<T>& r, const L& logits, const Tg& targets,
                                                         const E& cost_embedding, const emo_options& opts = {}) {
    static_assert(std::is_floating_point_v<T>, "exprgrad: emo_loss takes float or double logits");
    static_assert(std::is_same_v<typename E::value_type, T>, "exprgrad: the cost embedding must have the logits' type");
    xt::xarray<T> zh, eh;
    const T* z = detail::contiguous(logits, zh);
    const T* e = detail::contiguous(cost_embedding, eh);
    constexpr bool soft = std::is_floating_point_v<typename Tg::value_type>;
    detail::check_emo_options(opts);
    const tensors::dims zshape = tensors::dims::of(logits.shape());
    const auto s = detail::check_emo_shapes<T>(zshape, tensors::dims::of(targets.shape()),
                                               tensors::dims::of(cost_embedding.shape()), soft);
    tensors::fit(r.dlogits, zshape);
    if constexpr (soft) {
        static_assert(std::is_same_v<typename Tg::value_type, T>, "exprgrad: soft targets must have the logits' type");
        static_assert(std::is_same_v<Cost, emo_default_cost>, "exprgrad: soft targets take the cost 1 - cos only");
        xt::xarray<T> th;
        const T* tau = detail::contiguous(targets, th);
        r.loss = static_cast<T>(detail::emo_soft(z, tau, e, s, opts, r.dlogits.data(), &r.ce, &r.emo));
        r.count = s.rows;
    } else {
        thread_local std::vector<std::int64_t> t;
        t.resize(targets.size());
        std::size_t i = 0;
        using V = typename Tg::value_type;
        for (auto v : targets) {
            // An unsigned target above the int64 range must not wrap to a negative number (e.g. to ignore_index
            // -100 from 2^64 - 100): compare before casting and print the value as given.
            if constexpr (std::is_unsigned_v<V> && sizeof(V) >= sizeof(std::int64_t)) {
                if (v > static_cast<V>(std::numeric_limits<std::int64_t>::max())) {
                    throw tensors::shape_error(detail::emo_name, "target " + std::to_string(v) + " at position " +
                                                                 std::to_string(i) + " is out of range for " +
                                                                 std::to_string(s.V) + " classes");
                }
            }
            t[i++] = static_cast<std::int64_t>(v);
        }
        r.loss = static_cast<T>(
            detail::emo_hard<T, Cost>(z, t.data(), e, s, opts, r.dlogits.data(), &r.ce, &r.emo, &r.count));
    }
}

/// The EMO loss of logits [..., V] (float or double) against targets, with the cost embedding
/// E [V, h] (not differentiated): value and d/dlogits. Targets are integers [...] (ignore_index
/// skips a position) or, with the logits' floating type and shape, soft target distributions.
/// Domain (each violation throws std::invalid_argument "exprgrad::emo_loss: ..." naming the argument and the
/// value): logits [..., V] with V ≥ 1, no +inf (the row is named; −inf masks a class); integer targets in
/// [0, V) or ignore_index (an unsigned target above 2^63 - 1 is out of range, printed as given); soft targets
/// with entries ≥ 0 and each row summing to 1 within 1e-4 (the row index is named); E [V, h] with h ≥ 1 and
/// finite entries (the row is named); options as at emo_options.
/// NaN logits are not refused: they make their position's loss and gradient NaN.
/// Cost: the transport cost as a sym expression of the cosine var<0> (emo_default_cost = 1 − cos), applied to
/// each entry of the one N×V cosine product (hard targets only; a static_assert refuses soft ones); the gradient
/// p_k(c_k − EMO) needs c, not c′ (E gets none). A cost below 0 can make EMO clamp at 0.
/// Example: `auto r = emo_loss(logits, targets, lm_head_weight, {.objective = emo_objective::mode1});`
template <class Cost = emo_default_cost, class L, class Tg, class E>
requires xt::is_xexpression<L>::value auto emo_loss(const L& logits, const Tg& targets, const E& cost_embedding,
                                                    const emo_options& opts = {}) {
    emo_result<typename L::value_type> r;
    emo_loss_into<Cost>(r, logits, targets, cost_embedding, opts);
    return r;
}
}  // namespace exprgrad::ops
