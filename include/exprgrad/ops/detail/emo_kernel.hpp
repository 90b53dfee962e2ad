// The fused EMO kernel on raw pointers (ops/emo.hpp states the formulas, the domain and the NaN policy): the
// checks of options, shapes and soft targets, the per-row SIMD passes, and the hard- and soft-target drivers
// (one N·h·V product, or two for soft targets). Shared by the eager emo_loss and the nodes emo_loss and
// emo_definition_node.
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
#include "exprgrad/ops/emo_cost.hpp"
#include "exprgrad/ops/emo_options.hpp"
#include "exprgrad/sym/evaluate.hpp"
#include "exprgrad/tensors/shape.hpp"

namespace exprgrad::ops::detail {


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

}  // namespace exprgrad::ops::detail
