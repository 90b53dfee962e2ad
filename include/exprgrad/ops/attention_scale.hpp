// Scale policies of scaled dot-product attention, and the mean-field α* behind the "gradient maximisation"
// policy of kexue.fm post 9812 ("从梯度最大化看Attention的Scale操作", 22 Oct 2023,
// https://kexue.fm/archives/9812; "§1.x" below numbers the steps of the analysis of that post that
// docs/attention.md summarises). The Monte-Carlo analysis of the exact objective (research tooling, used by
// `exprgrad attention-scale`) is not installed: src/tools/scale_analysis.
// Op reference and what the analysis does and does not establish: docs/attention.md.
//
// A policy yields the final multiplier s on q·k of one query row, from the number n of keys that row
// attends, the head dimension d and whether q and k are L2-normalised (cosine attention).
#pragma once

#include "exprgrad/require_cxx20.hpp"  // first: refuses a standard older than C++20

#include "exprgrad/format.hpp"
#include "exprgrad/random.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <mutex>
#include <numbers>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <xtensor/xtensor.hpp>

#include "exprgrad/kernels/parallel.hpp"
#include "exprgrad/kernels/softmax_rows.hpp"

namespace exprgrad::ops {

/// Which n a policy that depends on the number of keys uses for a query row.
enum class scale_n {
    per_row,      ///< the number of keys the row attends (causal: its position + 1, capped by key_lengths)
    half_length,  ///< causal attention: the post's single n = L_max/2 for every row of every sequence of the
                  ///< call, L_max = T_k (the padded length; key_lengths do not change it). Without the causal
                  ///< mask every row attends its whole sequence, and this equals per_row.
};

/// A rule for the multiplier s on q·k. Build one with the functions of namespace exprgrad::scale.
struct scale_policy {
    enum class kind { inv_sqrt_d, entropy_invariant, gradient_max, fixed };
    kind which = kind::inv_sqrt_d;
    double value = 0.0;  ///< n_ref for entropy_invariant, s for fixed, unused otherwise
    scale_n n_choice = scale_n::per_row;

    /// True when the multiplier depends on n (entropy_invariant, gradient_max).
    bool depends_on_n() const noexcept { return which == kind::entropy_invariant || which == kind::gradient_max; }

    /// The multiplier for a row attending n keys with head dimension d ≥ 1; `cosine`: q and k are
    /// L2-normalised. n < 1 counts as 1. Defined in this header after namespace scale.
    double multiplier(double n, std::size_t d, bool cosine) const;

    /// Readable form, e.g. "scale::entropy_invariant(512)".
    std::string to_string() const {
        auto num = [](double x) { return format_number(x); };  // 512, 0.5, 1e-09, 1e+300: what was passed
        const std::string half = n_choice == scale_n::half_length ? "scale_n::half_length" : "";
        switch (which) {
            case kind::inv_sqrt_d:
                return "scale::inv_sqrt_d()";
            case kind::entropy_invariant:
                return "scale::entropy_invariant(" + num(value) + (half.empty() ? "" : ", " + half) + ")";
            case kind::gradient_max:
                return "scale::gradient_max(" + half + ")";
            case kind::fixed:
                return "scale::fixed(" + num(value) + ")";
        }
        return "scale::?";
    }
};

namespace scale {

/// s = 1/√d: the standard scale. Example: `opts.scale = scale::inv_sqrt_d();`
inline scale_policy inv_sqrt_d() { return {scale_policy::kind::inv_sqrt_d, 0.0, scale_n::per_row}; }

/// s = log(n)/log(n_ref) · 1/√d ("entropy invariance", kexue.fm post 8823): equals 1/√d at n = n_ref.
/// Throws std::invalid_argument unless n_ref > 1 (finite). Example: `scale::entropy_invariant(512)`.
inline scale_policy entropy_invariant(double n_ref = 512.0, scale_n n_choice = scale_n::per_row) {
    if (!(n_ref > 1.0) || !std::isfinite(n_ref))
        throw std::invalid_argument("exprgrad::scale::entropy_invariant: n_ref must be a finite number > 1, got " +
                                    format_number(n_ref));  // "got 1e-07", not std::to_string's "got 0.000000"
    return {scale_policy::kind::entropy_invariant, n_ref, n_choice};
}

/// s = α*(n)/√d, α* the maximiser of the mean-field objective α(1 − e^{α²}/n) (gradient_max_alpha); under
/// normalize_qk s = α*_cos(n, d), the maximiser of the cosine objective (gradient_max_alpha_cosine), with no
/// 1/√d. α*(n) is a heuristic of the mean-field approximation: the exact expected objective has no finite
/// maximiser for normal scores (notes §1.5 check 4, §1.6; docs/attention.md). Example: `scale::gradient_max()`.
inline scale_policy gradient_max(scale_n n_choice = scale_n::per_row) {
    return {scale_policy::kind::gradient_max, 0.0, n_choice};
}

/// s exactly (any finite value; the op throws on a non-finite s). For a learnable scale, train log s and use
/// fixed(exp(log_s)); the VJP's dlog_scale is ∂L/∂log s (and dscale is ∂L/∂s). Example: `scale::fixed(0.125)`.
inline scale_policy fixed(double s) { return {scale_policy::kind::fixed, s, scale_n::per_row}; }

/// f(α) = α(1 − e^{α²}/n): the mean-field surrogate of E[α(1 − Σp²)] for n i.i.d. N(0, 1) scores (notes
/// §1.3 case A). Any real α, n > 0. Example: mean_field_objective(1, 3e) = 2/3.
inline double mean_field_objective(double alpha, double n) { return alpha * (1.0 - std::exp(alpha * alpha) / n); }

/// The maximiser α* ≥ 0 of mean_field_objective(·, n): the root of (1 + 2α²)e^{α²} = n, to full double
/// precision; 0 for n ≤ 1 (f is then decreasing on α ≥ 0); NaN for NaN n. Examples (notes §1.5 check 2):
/// n = 3e → 1, n = 512 → 2.0084, n = 20000 → 2.6782.
inline double gradient_max_alpha(double n) {
    if (std::isnan(n)) return n;
    if (n <= 1.0) return 0.0;
    if (std::isinf(n)) return n;
    const double log_n = std::log(n);
    // h(α) = log1p(2α²) + α² − log n is increasing and convex (h'' ≥ 3/2), and h(√log n) ≥ 0: Newton's method
    // from there decreases monotonically to the root, so it stops when a step no longer decreases α
    // (a few steps, where bisection took about 60 evaluations: attention computes this for every distinct n).
    double a = std::sqrt(log_n);
    for (int it = 0; it < 100; ++it) {
        const double a2 = a * a;
        const double h = std::log1p(2.0 * a2) + a2 - log_n;
        const double dh = 4.0 * a / (1.0 + 2.0 * a2) + 2.0 * a;
        const double next = a - h / dh;
        if (!(next < a)) break;
        a = next;
    }
    return a;
}

}  // namespace scale

namespace detail {

/// log g(α) and g'(α)/g(α) for g(α) = E[e^{α s}], s the cosine between two independent uniform directions of
/// R^d, from the positive series g(α) = Σ_k α^{2k}/(2k)! · (1/2)_k/(d/2)_k. Terms follow by their ratio and
/// are rescaled before they could overflow, so any finite α works. α ≥ 0, d ≥ 1.
inline std::pair<double, double> cosine_log_mgf(double alpha, std::size_t d) {
    if (alpha == 0.0) return {0.0, 0.0};
    if (!std::isfinite(alpha)) return {alpha, alpha};
    const double half_d = 0.5 * static_cast<double>(d), a2 = alpha * alpha;
    // Large α (the series needs about α terms): g(α) = Γ(ν+1)(α/2)^{−ν} I_ν(α), ν = d/2 − 1, with Hankel's
    // expansion I_ν(α) = e^α/√(2πα) Σ_k (−1)^k a_k(ν)/α^k, a_k = Π_{j≤k}(4ν² − (2j−1)²)/(k! 8^k). Used where
    // α ≥ 10^4 and α ≥ 20ν², so each term is below 1/(40k) of the one before: a few terms give full precision.
    const double nu = half_d - 1.0;
    if (alpha >= 1e4 && alpha >= 20.0 * nu * nu) {
        const double mu = 4.0 * nu * nu;
        double term = 1.0, sum = 1.0, dsum = 0.0;  // dsum = Σ −k·term_k/α, the derivative of the sum
        for (int k = 1; k < 60; ++k) {
            term *= -(mu - (2.0 * k - 1) * (2.0 * k - 1)) / (8.0 * k * alpha);
            sum += term;
            dsum -= k * term / alpha;
            if (std::fabs(term) < 1e-18 * std::fabs(sum)) break;
        }
        const double log_g = std::lgamma(nu + 1.0) - nu * std::log(0.5 * alpha) + alpha -
                             0.5 * std::log(2.0 * std::numbers::pi * alpha) + std::log(sum);
        return {log_g, -nu / alpha + 1.0 - 0.5 / alpha + dsum / sum};
    }
    double t = 1.0, sum = 1.0, dsum = 0.0, log_scale = 0.0;  // dsum = Σ 2k t_k, so g' = dsum/α
    for (std::size_t k = 0;; ++k) {
        const double kd = static_cast<double>(k);
        const double ratio = a2 * (kd + 0.5) / ((2 * kd + 1) * (2 * kd + 2) * (kd + half_d));
        t *= ratio;
        sum += t;
        dsum += 2.0 * (kd + 1) * t;
        if (t > 1e280) {
            t *= 1e-280;
            sum *= 1e-280;
            dsum *= 1e-280;
            log_scale += 280.0 * std::numbers::ln10;
        }
        // The ratios decrease with k, so once one is below 1/2 the rest of the series is below 2t.
        if (ratio < 0.5 && t < 1e-18 * sum) break;
    }
    return {log_scale + std::log(sum), dsum / (alpha * sum)};
}

}  // namespace detail

namespace scale {

/// g(α) = E[e^{α s}] for s = cos θ between independent uniform directions of R^d (density ∝ (1 − s²)^{(d−3)/2}):
/// g(α) = ₀F₁(; d/2; α²/4), by its positive series. Any real α (g is even), d ≥ 1; +inf once it overflows
/// (α beyond about 700). Examples (notes §1.3, d = 128): g(1) = 1.0039137715, g(30) = 30.7751020897.
inline double cosine_mgf(double alpha, std::size_t d) {
    return std::exp(detail::cosine_log_mgf(std::fabs(alpha), std::max<std::size_t>(d, 1)).first);
}

/// f(α) = α(1 − g(2α)/(n g(α)²)): the mean-field objective for cosine scores (notes §1.3 case B). α ≥ 0.
inline double mean_field_objective_cosine(double alpha, double n, std::size_t d) {
    const double l1 = detail::cosine_log_mgf(alpha, d).first, l2 = detail::cosine_log_mgf(2 * alpha, d).first;
    return alpha * (1.0 - std::exp(l2 - 2 * l1) / n);
}

}  // namespace scale

namespace detail {
// The root of the cosine objective's slope by bisection (gradient_max_alpha_cosine caches it).
inline double gradient_max_alpha_cosine_uncached(double n, std::size_t d) {
    // f'(α) = 1 − (h/n)(1 + α (log h)'), h = g(2α)/g(α)²; f'(0) = 1 − 1/n > 0 and f' → −∞.
    auto slope = [&](double a) {
        const auto [l1, r1] = detail::cosine_log_mgf(a, d);
        const auto [l2, r2] = detail::cosine_log_mgf(2 * a, d);
        return 1.0 - std::exp(l2 - 2 * l1 - std::log(n)) * (1.0 + a * (2 * r2 - 2 * r1));
    };
    double lo = 0.0, hi = 1.0;
    while (slope(hi) > 0.0) {
        lo = hi;
        hi *= 2.0;
        if (hi > 1e300) return std::numeric_limits<double>::infinity();  // not reached for finite n
    }
    for (int it = 0; it < 200; ++it) {
        const double mid = 0.5 * (lo + hi);
        if (mid <= lo || mid >= hi) break;
        (slope(mid) > 0.0 ? lo : hi) = mid;
    }
    return 0.5 * (lo + hi);
}
}  // namespace detail

namespace scale {

/// The maximiser of mean_field_objective_cosine(·, n, d) over α ≥ 0: the root of its derivative, by bisection;
/// 0 for n ≤ 1. Examples (notes §1.5 check 3, d = 128): n = 512 → 24.214, n = 4096 → 29.700.
inline double gradient_max_alpha_cosine(double n, std::size_t d) {
    if (std::isnan(n)) return n;
    if (n <= 1.0) return 0.0;
    if (std::isinf(n)) return n;
    d = std::max<std::size_t>(d, 1);
    // Each value costs about a hundred series evaluations and attention asks for every distinct n of a call:
    // keep the results for the life of the process (one entry per (n, d) pair asked for).
    static std::mutex cache_mutex;
    static std::map<std::pair<double, std::size_t>, double> cache;
    {
        std::lock_guard<std::mutex> lock(cache_mutex);
        const auto it = cache.find({n, d});
        if (it != cache.end()) return it->second;
    }
    const double a = detail::gradient_max_alpha_cosine_uncached(n, d);
    std::lock_guard<std::mutex> lock(cache_mutex);
    cache.emplace(std::pair{n, d}, a);
    return a;
}

/// The exact gradient objective α(1 − Σp²) of one row of scores, measured as ½Σ_{i,j}|∂p_i/∂s_j| with p =
/// softmax(α·s) and the Jacobian built column by column from the softmax VJP that the attention kernels run
/// (kernels::rows::softmax_vjp), not from the closed form. O(n²). n ≥ 1, finite s. Example (notes §1.5 check 1):
/// s = [1, 2, 3], α = 1 → 0.4894569.
inline double exact_objective(const double* s, std::size_t n, double alpha, std::vector<double>& work) {
    namespace rows = exprgrad::kernels::rows;
    using B = rows::batch<double>;
    constexpr std::size_t L = rows::lanes<double>;
    const std::size_t np = (n + L - 1) / L * L;  // padded rows, so the |·| sum needs no scalar tail
    work.assign(3 * np, 0.0);
    double* p = work.data();
    double* g = p + np;
    double* out = g + np;
    rows::softmax(s, alpha, p, n);
    B total(0.0);
    for (std::size_t i = 0; i < n; ++i) {
        // g = e_i, so out = J_zᵀe_i (z = α·s) and D = Σ_j p_j g_j = p_i exactly.
        g[i] = 1.0;
        rows::softmax_vjp(p, g, p[i], out, n);
        g[i] = 0.0;
        for (std::size_t j = 0; j < np; j += L) total += xsimd::abs(B::load_unaligned(out + j));
    }
    return 0.5 * std::fabs(alpha) * rows::hsum(total);
}

/// The full Jacobian J[i][j] = ∂p_i/∂s_j of p = softmax(α·s), from the same VJP (one VJP per row).
inline xt::xtensor<double, 2> softmax_jacobian(const std::vector<double>& s, double alpha) {
    const std::size_t n = s.size();
    auto J = xt::xtensor<double, 2>::from_shape({n, n});
    std::vector<double> p(n), g(n, 0.0), out(n);
    if (n == 0) return J;
    exprgrad::kernels::rows::softmax(s.data(), alpha, p.data(), n);
    for (std::size_t i = 0; i < n; ++i) {
        g[i] = 1.0;
        exprgrad::kernels::rows::softmax_vjp(p.data(), g.data(), exprgrad::kernels::rows::dot(p.data(), g.data(), n),
                                             out.data(), n);
        g[i] = 0.0;
        for (std::size_t j = 0; j < n; ++j) J(i, j) = alpha * out[j];  // chain rule through z = α·s
    }
    return J;
}

}  // namespace scale

inline double scale_policy::multiplier(double n, std::size_t d, bool cosine) const {
    n = std::max(n, 1.0);
    const double inv = 1.0 / std::sqrt(static_cast<double>(std::max<std::size_t>(d, 1)));
    switch (which) {
        case kind::inv_sqrt_d:
            return inv;
        case kind::entropy_invariant:
            return std::log(n) / std::log(value) * inv;
        case kind::gradient_max:
            return cosine ? scale::gradient_max_alpha_cosine(n, d) : scale::gradient_max_alpha(n) * inv;
        case kind::fixed:
            return value;
    }
    return inv;
}

}  // namespace exprgrad::ops
