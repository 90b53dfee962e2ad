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

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include <xtensor/xarray.hpp>

#include "exprgrad/format.hpp"
#include "exprgrad/kernels/blas.hpp"
#include "exprgrad/kernels/parallel.hpp"
#include "exprgrad/kernels/row_norms.hpp"
#include "exprgrad/kernels/softmax_rows.hpp"
#include "exprgrad/ops/emo_options.hpp"
#include "exprgrad/sym/arithmetic.hpp"
#include "exprgrad/sym/evaluate.hpp"
#include "exprgrad/sym/expr.hpp"
#include "exprgrad/tensors/graph.hpp"
#include "exprgrad/tensors/reduce.hpp"
#include "exprgrad/tensors/shape.hpp"

namespace exprgrad::ops {

/// The default transport cost as a sym function of the cosine x = ⟨ê_k, ê_t⟩ (var<0>): c(x) = 1 − x. Another cost
/// is a template argument of emo_loss (hard targets), e.g. `emo_loss<decltype(sym::square(1_c - sym::var<0>))>(…)`.
using emo_default_cost = std::remove_cvref_t<decltype(sym::c<1> - sym::var<0>)>;

/// The loss, its gradient with respect to the logits, and the mean CE and EMO of the counted positions.
template <class T>
struct emo_result {
    T loss = 0;
    xt::xarray<T> dlogits;
    double ce = 0, emo = 0;
    std::size_t count = 0;  ///< positions not ignored
};

namespace detail {

inline const char* emo_name = "emo_loss";

// An inf/NaN in the cost embedding would make every cost of the batch NaN: refused, row and column named.
inline void refuse_embedding_entry(std::size_t row, std::size_t col, double value) {
    throw tensors::shape_error(emo_name, "cost embedding row " + std::to_string(row) + " has entry " +
                                             format_number(value) + " at column " + std::to_string(col) +
                                             " (entries must be finite)");
}

// The options' domain (emo_options); O(1).
inline void check_emo_options(const emo_options& o) {
    const int obj = static_cast<int>(o.objective);
    if (obj < static_cast<int>(emo_objective::ce) || obj > static_cast<int>(emo_objective::mode2)) {
        throw tensors::shape_error(
            emo_name, "objective must be ce, emo, mode1, mode1_capped or mode2, got the value " + std::to_string(obj));
    }
    if (!(o.cap >= 0)) throw tensors::shape_error(emo_name, "cap must be >= 0 or +inf, got " + format_number(o.cap));
}

// Soft targets: each row a distribution, entries ≥ 0 (not NaN) and Σ within soft_mass_tol of 1. Writes the
// row sums into mass (the loss needs them) in the same pass; throws naming the first bad row.
inline constexpr double soft_mass_tol = 1e-4;
template <class T>
void check_soft_targets(const T* tau, std::size_t n, std::size_t V, double* mass) {
    std::vector<std::size_t> bad(n);  // the first entry < 0 or NaN of each row, V when none
    kernels::parallel_for(0, n, 64, [&](std::size_t lo, std::size_t hi) {
        for (std::size_t r = lo; r < hi; ++r) {
            const T* row = tau + r * V;
            double m = 0;
            std::size_t b = V;
            for (std::size_t k = 0; k < V; ++k) {
                m += row[k];
                if (!(row[k] >= T(0)) && b == V) b = k;
            }
            mass[r] = m;
            bad[r] = b;
        }
    });
    for (std::size_t r = 0; r < n; ++r) {
        if (bad[r] < V) {
            throw tensors::shape_error(emo_name, "soft target row " + std::to_string(r) + " has entry " +
                                                     format_number(tau[r * V + bad[r]]) + " at class " +
                                                     std::to_string(bad[r]) + " (soft targets must be >= 0)");
        }
        if (!(std::abs(mass[r] - 1.0) <= soft_mass_tol)) {
            throw tensors::shape_error(emo_name, "soft target row " + std::to_string(r) + " sums to " +
                                                     format_number(mass[r]) + " (each row must sum to 1 within 1e-4)");
        }
    }
}

// The combination weights of one position: dz = a·∇CE + b·∇EMO, value = a·CE + b·EMO.
inline void emo_weights(emo_objective o, double cap, double ce, double emo, double& a, double& b) {
    switch (o) {
        case emo_objective::ce:
            a = 1, b = 0;
            break;
        case emo_objective::emo:
            a = 0, b = 1;
            break;
        case emo_objective::mode1:
            a = 0.5, b = 0.5 * ce / (emo + 1e-10);
            break;
        case emo_objective::mode1_capped:
            a = 0.5, b = 0.5 * std::min(ce / (emo + 1e-10), cap);
            break;
        case emo_objective::mode2:
            a = emo / (ce + 1e-10), b = 1;
            break;
    }
}

// The per-row work shared by hard and soft targets in four SIMD passes over the row: the maximum of z and
// e_k = exp(z_k − m) into dz with Σe (the row kernels of kernels/softmax_rows.hpp); Σ e_k c_k (c_k = mass − d_k,
// d_k first scaled by inv_k when inv is given, i.e. the product read raw E rows); then the gradient.
// d_k = ⟨ê_k, target representation⟩ after scaling. `onehot` < 0 means soft targets given by tau.
template <class T, class Cost = emo_default_cost>
void emo_row(const T* z, T* d, const T* inv, std::size_t V, long onehot, const T* tau, double tau_mass,
             const emo_options& opts, T* dz, double scale, double& ce_out, double& emo_out, double& value_out,
             std::size_t row = 0) {
    using B = xsimd::batch<T>;
    constexpr std::size_t W = B::size;
    const T m = kernels::rows::max(z, V);
    // A +inf logit makes exp(z − m) NaN for the whole row (inf − inf): refuse it, from the maximum already computed.
    if (m == std::numeric_limits<T>::infinity()) {
        std::size_t k = 0;
        while (k + 1 < V && !(z[k] == m)) ++k;  // only on the error path
        throw tensors::shape_error(emo_name, "logit " + format_number(m) + " in row " + std::to_string(row) +
                                                 " at class " + std::to_string(k) + " (logits must be finite or -inf)");
    }
    if constexpr (!std::is_same_v<Cost, emo_default_cost>) {  // hard targets: c_k = Cost(cos_k), kept as d_k = 1 − c_k
        for (std::size_t j = 0; j < V; ++j) d[j] = T(1) - sym::evaluate(Cost{}, inv ? d[j] * inv[j] : d[j]);
        inv = nullptr;
    }
    const T mass = static_cast<T>(tau_mass);
    const B vm(mass);
    const double sum = static_cast<double>(kernels::rows::exp_shifted(z, m, dz, V));
    double wsum = 0;
    std::size_t k = 0;
    while (k + W <= V) {  // blocks of 512 in float lanes, summed in double
        B ws(T(0));
        const std::size_t end = std::min(V - (V - k) % W, k + 512);
        for (; k < end; k += W) {
            B dk = B::load_unaligned(d + k);
            if (inv) {
                dk *= B::load_unaligned(inv + k);
                dk.store_unaligned(d + k);
            }
            ws = xsimd::fma(B::load_unaligned(dz + k), vm - dk, ws);
        }
        wsum += static_cast<double>(xsimd::hadd(ws));
    }
    for (; k < V; ++k) {
        if (inv) d[k] *= inv[k];
        wsum += static_cast<double>(dz[k]) * (static_cast<double>(mass) - d[k]);
    }
    const double lse = static_cast<double>(m) + std::log(sum);
    double ce = 0;
    if (onehot >= 0) {
        ce = lse - static_cast<double>(z[onehot]);
    } else {
        double tz = 0;
        for (std::size_t j = 0; j < V; ++j) tz += static_cast<double>(tau[j]) * z[j];
        ce = tau_mass * lse - tz;
    }
    // rounding can push 1 − ⟨a, b⟩ below 0 (reported for bf16/fp16): clamp
    const double emo = std::max(wsum / sum, 0.0);
    double a = 0, b = 0;
    emo_weights(opts.objective, opts.cap, ce, emo, a, b);
    const T inv_sum = static_cast<T>(1.0 / sum);
    const T sa = static_cast<T>(a * scale), sb = static_cast<T>(b * scale), se = static_cast<T>(emo);
    // dz_k = sa (mass p_k − τ_k) + sb p_k (c_k − EMO), c_k = mass − d_k, p_k = e_k / Σe
    const B vsa(sa), vsb(sb), vc0(mass - se), vinv(inv_sum);
    for (k = 0; k + W <= V; k += W) {
        const B p = B::load_unaligned(dz + k) * vinv;
        B v = vsa * vm * p + vsb * p * (vc0 - B::load_unaligned(d + k));
        if (onehot < 0) v -= vsa * B::load_unaligned(tau + k);
        v.store_unaligned(dz + k);
    }
    for (; k < V; ++k) {
        const T p = dz[k] * inv_sum;
        dz[k] = sa * mass * p + sb * p * (mass - se - d[k]) - (onehot < 0 ? sa * tau[k] : T(0));
    }
    if (onehot >= 0) dz[onehot] -= sa;
    ce_out = ce;
    emo_out = emo;
    value_out = a * ce + b * emo;
}

// Per-thread scratch buffers reused across calls, one per slot (no steady-state allocation).
template <class T, int Slot>
T* scratch_slot(std::size_t n) {
    thread_local std::vector<T> v;
    if (v.size() < n) v.resize(n);
    return v.data();
}

template <class T>
struct emo_shapes {
    std::size_t rows = 0, V = 0, h = 0;
};

template <class T>
emo_shapes<T> check_emo_shapes(const tensors::dims& logits, const tensors::dims& targets, const tensors::dims& e,
                               bool soft) {
    emo_shapes<T> s;
    if (logits.rank < 1) throw tensors::shape_error(emo_name, "logits must have at least one dimension");
    s.V = logits.at(-1);
    if (s.V == 0) {
        throw tensors::shape_error(
            emo_name, "logits of shape " + logits.str() + " have no classes (V = 0): the last axis must be at least 1");
    }
    s.rows = logits.size() / s.V;
    if (soft ? !(targets == logits) : (targets.size() != s.rows || targets.rank != logits.rank - 1)) {
        throw tensors::shape_error(emo_name, "targets of shape " + targets.str() + " do not match logits of shape " +
                                                 logits.str() +
                                                 (soft ? " (soft targets have the logits' shape)"
                                                       : " (targets have the logits' shape without the last axis)"));
    }
    if (e.rank != 2 || e[0] != s.V) {
        throw tensors::shape_error(emo_name, "cost embedding of shape " + e.str() + " does not match " +
                                                 std::to_string(s.V) + " classes of logits " + logits.str() +
                                                 " (it must be [V, h])");
    }
    s.h = e[1];
    if (s.h == 0) {  // every cost would be 1: an EMO term that says nothing
        throw tensors::shape_error(
            emo_name, "cost embedding of shape " + e.str() + " has no features (h = 0): it must be [V, h] with h >= 1");
    }
    return s;
}

// Hard targets: the whole computation on raw pointers (shared by the eager kernel and the node).
template <class T, class Cost = emo_default_cost>
double emo_hard(const T* z, const std::int64_t* t, const T* e, const emo_shapes<T>& s, const emo_options& opts, T* dz,
                double* ce_mean, double* emo_mean, std::size_t* count_out) {
    std::vector<std::size_t> valid;
    valid.reserve(s.rows);
    for (std::size_t r = 0; r < s.rows; ++r) {
        if (t[r] == opts.ignore_index) continue;
        if (t[r] < 0 || static_cast<std::size_t>(t[r]) >= s.V) {
            throw tensors::shape_error(emo_name, "target " + std::to_string(t[r]) + " at position " +
                                                     std::to_string(r) + " is out of range for " + std::to_string(s.V) +
                                                     " classes");
        }
        valid.push_back(r);
    }
    const std::size_t n = valid.size();
    // rows of ignored positions get zero gradients (the others are written in full by emo_row)
    for (std::size_t r = 0, i = 0; r < s.rows; ++r) {
        if (i < n && valid[i] == r) {
            ++i;
        } else {
            std::fill(dz + r * s.V, dz + (r + 1) * s.V, T(0));
        }
    }
    if (count_out) *count_out = n;
    if (n == 0) {
        if (ce_mean) *ce_mean = 0;
        if (emo_mean) *emo_mean = 0;
        return 0;
    }
    T* inv = scratch_slot<T, 0>(s.V);
    T* g = scratch_slot<T, 1>(n * s.h);
    T* d = scratch_slot<T, 2>(n * s.V);
    // Ê is never formed: ⟨ê_t, ê_k⟩ = ⟨ê_t, e_k⟩ / ‖e_k‖, the product reads E itself and each row of
    // the result is scaled by the inverse norms while it is in cache.
    kernels::inverse_row_norms(e, inv, s.V, s.h, [](std::size_t r, std::size_t c, T x) {
        refuse_embedding_entry(r, c, static_cast<double>(x));
    });
    for (std::size_t i = 0; i < n; ++i) {
        const std::size_t tr = static_cast<std::size_t>(t[valid[i]]);
        for (std::size_t j = 0; j < s.h; ++j) g[i * s.h + j] = e[tr * s.h + j] * inv[tr];
    }
    // d[i, k] = ⟨ê_t(i), e_k⟩: the one N·h·V product
    kernels::blas::gemm(false, true, n, s.V, s.h, T(1), g, s.h, e, s.h, T(0), d, s.V);
    std::vector<double> ce(n), emo(n), val(n);
    const double scale = 1.0 / static_cast<double>(n);
    kernels::parallel_for(0, n, 8, [&](std::size_t lo, std::size_t hi) {
        for (std::size_t i = lo; i < hi; ++i) {
            const std::size_t r = valid[i];
            emo_row<T, Cost>(z + r * s.V, d + i * s.V, inv, s.V, static_cast<long>(t[r]),
                             static_cast<const T*>(nullptr), 1.0, opts, dz + r * s.V, scale, ce[i], emo[i], val[i], r);
        }
    });
    double loss = 0, sce = 0, semo = 0;
    for (std::size_t i = 0; i < n; ++i) {  // in order: the same sum for every thread count
        loss += val[i];
        sce += ce[i];
        semo += emo[i];
    }
    if (ce_mean) *ce_mean = sce * scale;
    if (emo_mean) *emo_mean = semo * scale;
    return loss * scale;
}

// Soft targets tau [rows, V]: u = τÊ, then d = u Êᵀ (two products), mean over all rows.
template <class T>
double emo_soft(const T* z, const T* tau, const T* e, const emo_shapes<T>& s, const emo_options& opts, T* dz,
                double* ce_mean, double* emo_mean) {
    const std::size_t n = s.rows;
    if (n == 0) return 0;
    std::vector<double> mass(n);
    check_soft_targets(tau, n, s.V, mass.data());  // before any work: nothing is written on a refusal
    T* eh = scratch_slot<T, 3>(s.V * s.h);
    T* inv = scratch_slot<T, 0>(s.V);
    T* u = scratch_slot<T, 1>(n * s.h);
    T* d = scratch_slot<T, 2>(n * s.V);
    kernels::inverse_row_norms(e, inv, s.V, s.h, [](std::size_t r, std::size_t c, T x) {
        refuse_embedding_entry(r, c, static_cast<double>(x));
    });
    kernels::normalize_rows(e, inv, eh, s.V, s.h);
    kernels::blas::gemm(false, false, n, s.h, s.V, T(1), tau, s.V, eh, s.h, T(0), u, s.h);
    kernels::blas::gemm(false, true, n, s.V, s.h, T(1), u, s.h, eh, s.h, T(0), d, s.V);
    std::vector<double> ce(n), emo(n), val(n);
    const double scale = 1.0 / static_cast<double>(n);
    kernels::parallel_for(0, n, 8, [&](std::size_t lo, std::size_t hi) {
        for (std::size_t r = lo; r < hi; ++r) {
            emo_row(z + r * s.V, d + r * s.V, static_cast<const T*>(nullptr), s.V, -1, tau + r * s.V, mass[r], opts,
                    dz + r * s.V, scale, ce[r], emo[r], val[r], r);
        }
    });
    double loss = 0, sce = 0, semo = 0;
    for (std::size_t r = 0; r < n; ++r) {
        loss += val[r];
        sce += ce[r];
        semo += emo[r];
    }
    if (ce_mean) *ce_mean = sce * scale;
    if (emo_mean) *emo_mean = semo * scale;
    return loss * scale;
}

// The data of a row-major contiguous array, or of a copy of it kept in `holder`.
template <class A>
const typename A::value_type* contiguous(const A& a, xt::xarray<typename A::value_type>& holder) {
    if constexpr (requires {
                      a.data();
                      a.is_contiguous();
                  }) {
        if (a.layout() == xt::layout_type::row_major && a.is_contiguous()) return a.data();
    }
    holder = a;
    return holder.data();
}

}  // namespace detail

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
