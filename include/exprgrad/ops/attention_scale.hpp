// Scale policies of scaled dot-product attention, and the analysis behind the "gradient maximisation"
// policy of kexue.fm post 9812 ("从梯度最大化看Attention的Scale操作", 22 Oct 2023).
// Notes with the derivations and the reference numbers: ../shared/research/articles_part1.md §1.
// Op reference and what the analysis does and does not establish: docs/attention.md.
//
// A policy yields the final multiplier s on q·k of one query row, from the number n of keys that row
// attends, the head dimension d and whether q and k are L2-normalised (cosine attention).
#pragma once

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

#include "exprgrad/ops/detail/softmax_rows.hpp"
#include "exprgrad/tensor/parallel.hpp"

namespace exprgrad {

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
        auto num = [](double x) {
            std::string s = std::to_string(x);
            s.erase(s.find_last_not_of('0') + 1);
            if (!s.empty() && s.back() == '.') s.pop_back();
            return s;
        };
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
                                    std::to_string(n_ref));
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


namespace detail {

/// Composite Simpson rule of f over [a, b] with an even number of intervals.
template <class F>
double simpson(F&& f, double a, double b, std::size_t intervals) {
    intervals += intervals % 2;
    const double h = (b - a) / static_cast<double>(intervals);
    double s = f(a) + f(b);
    for (std::size_t i = 1; i < intervals; ++i) s += (i % 2 ? 4.0 : 2.0) * f(a + h * static_cast<double>(i));
    return s * h / 3.0;
}

}  // namespace detail

/// The density at 0 of the gap between the two largest of n i.i.d. N(0, 1) scores:
/// n(n−1)∫φ(x)²Φ(x)^{n−2}dx, by Simpson's rule on [−12, 12] (relative error below 1e-9 for 2 ≤ n ≤ 1e7).
/// It is the limit of E[α(1 − Σp²)] as α → ∞ (notes §1.5 check 4). 0 for n < 2.
/// Examples: n = 64 → 2.344, n = 512 → 3.044, n = 4096 → 3.626.
inline double top_gap_density_normal(std::size_t n) {
    if (n < 2) return 0.0;
    const double nn = static_cast<double>(n);
    auto f = [&](double x) {
        const double log_phi = -0.5 * x * x - 0.5 * std::log(2 * std::numbers::pi);
        const double log_cdf = std::log(0.5 * std::erfc(-x / std::numbers::sqrt2));
        return std::exp(2 * log_phi + (nn - 2) * log_cdf);
    };
    return nn * (nn - 1) * detail::simpson(f, -12.0, 12.0, 96000);
}

/// The same density at 0 for n i.i.d. cosine scores of dimension d (density ρ(x) ∝ (1 − x²)^{(d−3)/2} on
/// [−1, 1], CDF F): n(n−1)∫ρ²F^{n−2}. For n ≤ 1000 by quadrature on a uniform grid of 2·10^5 intervals; for
/// larger n the integrand lives where the tail 1 − F is about 1/n, a region that narrows like 1/n, so the
/// integral is taken over the tail y = 1 − x ∈ [0, y_c] only (1 − F(1 − y_c) = 60/n, the rest weighs below
/// e^{−60}), on the grid y = y_c·w² of 2·10^4 intervals, with 1 − F accumulated from x = 1 (no cancellation).
/// Checked against n/2 for d = 3 (uniform scores) up to n = 2^32. The argument of notes §1.5 check 4 applies
/// unchanged (bounded i.i.d. scores with a continuous density), but the notes state it for normal scores only.
/// d ≥ 3 (for d ≤ 2 the density is unbounded and the value is +inf); 0 for n < 2.
inline double top_gap_density_cosine(std::size_t n, std::size_t d) {
    if (n < 2) return 0.0;
    if (d < 3) return std::numeric_limits<double>::infinity();
    const double dd = static_cast<double>(d), nn = static_cast<double>(n);
    const double log_c = std::lgamma(dd / 2) - std::lgamma((dd - 1) / 2) - 0.5 * std::log(std::numbers::pi);
    // ρ at x = 1 − y, with 1 − x² = y(2 − y) computed without cancellation near x = 1.
    auto rho_y = [&](double y) {
        const double u = y * (2.0 - y);
        return u <= 0.0 ? (d == 3 ? std::exp(log_c) : 0.0) : std::exp(log_c + 0.5 * (dd - 3) * std::log(u));
    };
    if (n > 1000) {
        // ∫ over w ∈ [0, 1] with y = yc·w²: q(w) = ρ(1 − y)·dy/dw; tail G(w) = ∫_0^w q, and the integrand
        // ρ²(1 − G)^{n−2}·dy/dw = q·ρ·(1 − G)^{n−2}. Returns {G(1), the integral} for the given yc.
        auto tail_integral = [&](double yc, std::size_t N, bool with_integral) {
            const double h = 1.0 / static_cast<double>(N);
            auto q = [&](double w) { return rho_y(yc * w * w) * 2.0 * yc * w; };
            auto integrand = [&](double w, double qw, double G) {
                return qw * rho_y(yc * w * w) * std::exp((nn - 2) * std::log1p(-std::min(G, 1.0)));
            };
            double G = 0.0, total = 0.0, q0 = q(0.0);
            double g0 = with_integral ? integrand(0.0, q0, 0.0) : 0.0;
            for (std::size_t i = 0; i < N; ++i) {
                const double w0 = h * static_cast<double>(i), wm = w0 + 0.5 * h, w1 = w0 + h;
                const double qm = q(wm), q1 = q(w1);
                const double Gm = G + h / 24.0 * (5 * q0 + 8 * qm - q1), G1 = G + h / 6.0 * (q0 + 4 * qm + q1);
                if (with_integral) {
                    const double gm = integrand(wm, qm, Gm), g1 = integrand(w1, q1, G1);
                    total += h / 6.0 * (g0 + 4 * gm + g1);
                    g0 = g1;
                }
                G = G1;
                q0 = q1;
            }
            return std::pair{G, total};
        };
        // y_c with tail 60/n, by bisection on y ∈ (0, 1] (the tail at y = 1 is 1/2 > 60/n).
        const double target = 60.0 / nn;
        double lo = 0.0, hi = 1.0;
        for (int it = 0; it < 80; ++it) {
            const double mid = 0.5 * (lo + hi);
            (tail_integral(mid, 2000, false).first < target ? lo : hi) = mid;
        }
        return nn * (nn - 1) * tail_integral(hi, 20000, true).second;
    }
    auto rho = [&](double x) { return rho_y(1.0 - x); };
    constexpr std::size_t N = 200000;  // even
    const double h = 2.0 / N;
    // F at the grid points by Simpson's rule on each pair of intervals (midpoints evaluated separately).
    double F = 0.0, total = 0.0;
    double prev = rho(-1.0);
    auto integrand = [&](double r, double cdf) {
        return r * r * (n == 2 ? 1.0 : cdf > 0 ? std::exp((nn - 2) * std::log(cdf)) : 0.0);
    };
    double g_prev = integrand(prev, 0.0);
    for (std::size_t i = 0; i < N; ++i) {
        const double x0 = -1.0 + h * static_cast<double>(i);
        const double rm = rho(x0 + 0.5 * h), r1 = rho(x0 + h);
        const double Fm = F + h / 24.0 * (5 * prev + 8 * rm - r1);  // quadratic through the three points
        const double F1 = F + h / 6.0 * (prev + 4 * rm + r1);
        const double g_mid = integrand(rm, std::min(Fm, 1.0)), g1 = integrand(r1, std::min(F1, 1.0));
        total += h / 6.0 * (g_prev + 4 * g_mid + g1);
        F = F1;
        prev = r1;
        g_prev = g1;
    }
    return nn * (nn - 1) * total;
}

/// The exact gradient objective α(1 − Σp²) of one row of scores, measured as ½Σ_{i,j}|∂p_i/∂s_j| with p =
/// softmax(α·s) and the Jacobian built column by column from the softmax VJP that the attention kernels run
/// (detail::rows::softmax_vjp), not from the closed form. O(n²). n ≥ 1, finite s. Example (notes §1.5 check 1):
/// s = [1, 2, 3], α = 1 → 0.4894569.
inline double exact_objective(const double* s, std::size_t n, double alpha, std::vector<double>& work) {
    namespace rows = exprgrad::detail::rows;
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
    exprgrad::detail::rows::softmax(s.data(), alpha, p.data(), n);
    for (std::size_t i = 0; i < n; ++i) {
        g[i] = 1.0;
        exprgrad::detail::rows::softmax_vjp(p.data(), g.data(), exprgrad::detail::rows::dot(p.data(), g.data(), n),
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

namespace detail {

/// The library's generator (nn/random.hpp) on one of several independent streams, with Box–Muller
/// normals that use both values of each pair (the analysis draws many).
class rng {
  public:
    rng(std::uint64_t seed, std::uint64_t stream) : g_(seed ^ (0xD1B54A32D192ED03ULL * (stream + 1))) {}
    std::uint64_t next() { return g_.next_u64(); }
    /// Uniform in [0, 1): the top 53 bits times 2^-53.
    double uniform() { return g_.uniform(); }
    /// Standard normal by Box–Muller (both values used), u1 in (0, 1] so that log u1 is finite.
    double normal() {
        if (have_spare_) {
            have_spare_ = false;
            return spare_;
        }
        const double u1 = static_cast<double>((next() >> 11) + 1) * 0x1.0p-53, u2 = uniform();
        const double r = std::sqrt(-2.0 * std::log(u1)), t = 2.0 * std::numbers::pi * u2;
        spare_ = r * std::sin(t);
        have_spare_ = true;
        return r * std::cos(t);
    }

  private:
    exprgrad::rng g_;
    double spare_ = 0.0;
    bool have_spare_ = false;
};

}  // namespace detail

/// The score model of the analysis: i.i.d. N(0, 1) scores (q·k/√d at initialisation), or cosines between a
/// random query direction and n random key directions of R^d (normalize_qk).
enum class score_model { normal, cosine };

/// Inputs of analyze_attention_scale.
struct scale_analysis_options {
    std::size_t n = 512;  ///< number of keys, ≥ 2
    std::size_t d = 64;   ///< head dimension, ≥ 1 (cosine: the dimension of the directions, ≥ 2)
    score_model scores = score_model::normal;
    /// Monte-Carlo draws per α: exactly this many when target_stderr is 0, at most this many otherwise;
    /// 0: no Monte Carlo (curve empty); 1 is refused (no standard error from one draw).
    std::size_t samples = 2000;
    /// > 0: draw in rounds (64 draws, then doubling) and stop after the first round where every point's standard
    /// error is ≤ target_stderr (or `samples` is reached). 0: exactly `samples` draws.
    double target_stderr = 0.0;
    std::uint64_t seed = 9812;     ///< draws are a function of (seed, draw index) only
    std::vector<double> alphas{};  ///< grid of α (on the scores, before any 1/√d); empty: a default grid
};

/// One point of the curves: the mean-field surrogate f(α) and the Monte-Carlo estimate of the exact expected
/// objective E[α(1 − Σp²)] with its standard error. mean_field is −inf where f(α) is below the smallest double
/// (normal scores: e^{α²} overflows beyond α ≈ 26.6).
struct scale_curve_point {
    double alpha;
    double mean_field;
    double exact_mean;
    double exact_stderr;
};

/// Result of analyze_attention_scale.
struct scale_analysis {
    double alpha_star;          ///< maximiser of the mean-field objective (on the scores)
    double mean_field_at_star;  ///< f(α*)
    double limit;               ///< lim_{α→∞} E[α(1 − Σp²)] = density at 0 of the top-two gap
    double inv_sqrt_d;          ///< multipliers on q·k of the policies, for comparison
    double entropy_invariant;   ///< with n_ref = 512
    double gradient_max;
    std::size_t samples;        ///< draws made per α (0: no Monte Carlo, curve empty)
    std::vector<scale_curve_point> curve;
};

namespace scale {

/// α(1 − Σp²) for p = softmax(α·s) over the n ≥ 1 finite scores s, in O(n): p from the engine's row softmax
/// (detail::rows::softmax); 1 − Σp² evaluated as r(2 − r) − Σ_{i≠m}p_i², m the largest p and r = Σ_{i≠m}p_i,
/// so that nothing cancels when p is nearly one-hot. Equals exact_objective (½Σ|J| of the VJP Jacobian, check 1
/// of the tests). `p` is scratch space of n doubles. Example: s = [1, 2, 3], α = 1 → 0.4894569.
inline double objective(const double* s, std::size_t n, double alpha, double* p) {
    exprgrad::detail::rows::softmax(s, alpha, p, n);
    std::size_t m = 0;
    for (std::size_t i = 1; i < n; ++i)
        if (p[i] > p[m]) m = i;
    double r = 0.0, q2 = 0.0;
    for (std::size_t i = 0; i < n; ++i)
        if (i != m) {
            r += p[i];
            q2 += p[i] * p[i];
        }
    return std::fabs(alpha) * (r * (2.0 - r) - q2);
}

}  // namespace scale

/// The analysis of notes §1 for n keys: α* of the mean-field objective, the policies' multipliers, and
/// E[α(1 − Σp²)] over a grid of α estimated from random score rows (scale::objective, O(n) per draw and α).
/// Deterministic for a given seed, whatever the thread count. Cost: draws · n · (|grid| + 1) score evaluations
/// (cosine scores: draws · n · (|grid| + d)), plus about 10^5 evaluations for α* and the limit; memory
/// O(n · threads + draws per round · |grid|). Throws std::invalid_argument on n < 2 (one key: p = 1 and the
/// objective is 0 for every α), d = 0, d = 1 with cosine scores (every score is ±1 and the mean-field objective
/// grows without bound), samples = 1, a target_stderr that is negative or NaN, or an α that is negative or not
/// finite (the objective is α(1 − Σp²), α ≥ 0); std::domain_error when a draw's value is not finite (an α so
/// large that α·s overflows). Example: `analyze_attention_scale({.n = 64})`.
inline scale_analysis analyze_attention_scale(const scale_analysis_options& opts) {
    if (opts.n < 2 || opts.d == 0 || opts.samples == 1)
        throw std::invalid_argument(
            "exprgrad::analyze_attention_scale: need n ≥ 2, d ≥ 1 and samples ≥ 2 (or 0), got n = " +
            std::to_string(opts.n) + ", d = " + std::to_string(opts.d) + ", samples = " + std::to_string(opts.samples));
    if (!(opts.target_stderr >= 0.0))
        throw std::invalid_argument("exprgrad::analyze_attention_scale: target_stderr must be ≥ 0, got " +
                                    std::to_string(opts.target_stderr));
    const bool cosine = opts.scores == score_model::cosine;
    if (cosine && opts.d < 2)
        throw std::invalid_argument(
            "exprgrad::analyze_attention_scale: cosine scores need d ≥ 2 (for d = 1 every score is ±1 and the "
            "mean-field objective has no finite maximiser), got d = " +
            std::to_string(opts.d));
    const double n = static_cast<double>(opts.n);
    scale_analysis r{};
    r.alpha_star = cosine ? scale::gradient_max_alpha_cosine(n, opts.d) : scale::gradient_max_alpha(n);
    auto f = [&](double a) {
        return cosine ? scale::mean_field_objective_cosine(a, n, opts.d) : scale::mean_field_objective(a, n);
    };
    r.mean_field_at_star = f(r.alpha_star);
    r.limit = cosine ? scale::top_gap_density_cosine(opts.n, opts.d) : scale::top_gap_density_normal(opts.n);
    r.inv_sqrt_d = scale::inv_sqrt_d().multiplier(n, opts.d, cosine);
    r.entropy_invariant = scale::entropy_invariant(512).multiplier(n, opts.d, cosine);
    r.gradient_max = scale::gradient_max().multiplier(n, opts.d, cosine);

    std::vector<double> grid = opts.alphas;
    if (grid.empty()) {
        if (cosine) {
            for (double m : {0.125, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0})
                grid.push_back(m * std::max(r.alpha_star, 1.0));
        } else {
            grid = {0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0, 30.0, 40.0};
            grid.push_back(r.alpha_star);
        }
        std::sort(grid.begin(), grid.end());
    }
    for (double a : grid)
        if (!std::isfinite(a) || a < 0.0)
            throw std::invalid_argument("exprgrad::analyze_attention_scale: alpha must be finite and ≥ 0, got " +
                                        std::to_string(a));
    if (opts.samples == 0) return r;

    const std::size_t A = grid.size(), N = opts.n, d = opts.d;
    // Running sums in draw order (Welford), so the result does not depend on how rounds split the draws.
    std::vector<double> mean(A, 0.0), m2(A, 0.0), values;
    std::size_t done = 0;
    while (done < opts.samples) {
        const std::size_t round =
            opts.target_stderr > 0.0 ? std::min(opts.samples - done, std::max<std::size_t>(64, done)) : opts.samples;
        values.assign(round * A, 0.0);
        // Each draw is a function of (seed, draw) and writes its own slots: any partition gives the same values.
        parallel_for(0, round, 16, [&](std::size_t lo, std::size_t hi) {
            std::vector<double> s(N), p(N), dir(cosine ? d : 0);
            for (std::size_t k = lo; k < hi; ++k) {
                detail::rng g(opts.seed, done + k);
                if (cosine) {
                    // By rotational symmetry the query can be e_1: s_j = k_j[0]/‖k_j‖ for a normal vector k_j.
                    for (std::size_t j = 0; j < N; ++j) {
                        double ss = 0.0;
                        for (std::size_t c = 0; c < d; ++c) {
                            dir[c] = g.normal();
                            ss += dir[c] * dir[c];
                        }
                        s[j] = ss > 0.0 ? dir[0] / std::sqrt(ss) : 0.0;
                    }
                } else {
                    for (auto& x : s) x = g.normal();
                }
                for (std::size_t a = 0; a < A; ++a) values[k * A + a] = scale::objective(s.data(), N, grid[a], p.data());
            }
        });
        for (std::size_t k = 0; k < round; ++k)
            for (std::size_t a = 0; a < A; ++a) {
                const double v = values[k * A + a];
                if (!std::isfinite(v))
                    throw std::domain_error("exprgrad::analyze_attention_scale: the objective at alpha = " +
                                            std::to_string(grid[a]) + " is not finite (alpha times a score overflows)");
                const double delta = v - mean[a];
                mean[a] += delta / static_cast<double>(done + k + 1);
                m2[a] += delta * (v - mean[a]);
            }
        done += round;
        if (opts.target_stderr > 0.0 && done >= 2) {
            bool reached = true;
            for (std::size_t a = 0; a < A; ++a)
                reached = reached && std::sqrt(m2[a] / static_cast<double>(done - 1) / static_cast<double>(done)) <=
                                         opts.target_stderr;
            if (reached) break;
        }
    }
    r.samples = done;
    for (std::size_t a = 0; a < A; ++a) {
        const double se = std::sqrt(m2[a] / static_cast<double>(done - 1) / static_cast<double>(done));
        r.curve.push_back({grid[a], f(grid[a]), mean[a], se});
    }
    return r;
}

}  // namespace exprgrad
