// The Monte-Carlo analysis of the attention scale (contract in scale_analysis.hpp).
#include "scale_analysis.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <exprgrad/format.hpp>
#include <exprgrad/kernels/parallel.hpp>
#include <exprgrad/kernels/softmax_rows.hpp>
#include <exprgrad/ops/attention_scale.hpp>

namespace exprgrad::tools {

namespace {

/// Composite Simpson rule of f over [a, b] with an even number of intervals.
template <class F>
double simpson(F&& f, double a, double b, std::size_t intervals) {
    intervals += intervals % 2;
    const double h = (b - a) / static_cast<double>(intervals);
    double s = f(a) + f(b);
    for (std::size_t i = 1; i < intervals; ++i) s += (i % 2 ? 4.0 : 2.0) * f(a + h * static_cast<double>(i));
    return s * h / 3.0;
}

}  // namespace

namespace scale {

double top_gap_density_normal(std::size_t n) {
    if (n < 2) return 0.0;
    const double nn = static_cast<double>(n);
    auto f = [&](double x) {
        const double log_phi = -0.5 * x * x - 0.5 * std::log(2 * std::numbers::pi);
        const double log_cdf = std::log(0.5 * std::erfc(-x / std::numbers::sqrt2));
        return std::exp(2 * log_phi + (nn - 2) * log_cdf);
    };
    return nn * (nn - 1) * simpson(f, -12.0, 12.0, 96000);
}

double top_gap_density_cosine(std::size_t n, std::size_t d) {
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

double objective(const double* s, std::size_t n, double alpha, double* p) {
    exprgrad::kernels::rows::softmax(s, alpha, p, n);
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

scale_analysis analyze_attention_scale(const scale_analysis_options& opts) {
    if (opts.n < 2 || opts.d == 0 || opts.samples == 1)
        throw std::invalid_argument(
            "analyze_attention_scale: need n ≥ 2, d ≥ 1 and samples ≥ 2 (or 0), got n = " + format_number(opts.n) +
            ", d = " + format_number(opts.d) + ", samples = " + format_number(opts.samples));
    if (!(opts.target_stderr >= 0.0))
        throw std::invalid_argument("analyze_attention_scale: target_stderr must be ≥ 0, got " +
                                    format_number(opts.target_stderr));
    const bool cosine = opts.scores == score_model::cosine;
    if (cosine && opts.d < 2)
        throw std::invalid_argument(
            "analyze_attention_scale: cosine scores need d ≥ 2 (for d = 1 every score is ±1 and the "
            "mean-field objective has no finite maximiser), got d = " +
            format_number(opts.d));
    const double n = static_cast<double>(opts.n);
    scale_analysis r{};
    r.alpha_star = cosine ? exprgrad::ops::scale::gradient_max_alpha_cosine(n, opts.d)
                          : exprgrad::ops::scale::gradient_max_alpha(n);
    auto f = [&](double a) {
        return cosine ? exprgrad::ops::scale::mean_field_objective_cosine(a, n, opts.d)
                      : exprgrad::ops::scale::mean_field_objective(a, n);
    };
    r.mean_field_at_star = f(r.alpha_star);
    r.limit =
        cosine ? tools::scale::top_gap_density_cosine(opts.n, opts.d) : tools::scale::top_gap_density_normal(opts.n);
    r.inv_sqrt_d = exprgrad::ops::scale::inv_sqrt_d().multiplier(n, opts.d, cosine);
    r.entropy_invariant = exprgrad::ops::scale::entropy_invariant(512).multiplier(n, opts.d, cosine);
    r.gradient_max = exprgrad::ops::scale::gradient_max().multiplier(n, opts.d, cosine);

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
            throw std::invalid_argument("analyze_attention_scale: alpha must be finite and ≥ 0, got " +
                                        format_number(a));
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
        kernels::parallel_for(0, round, 16, [&](std::size_t lo, std::size_t hi) {
            std::vector<double> s(N), p(N), dir(cosine ? d : 0);
            for (std::size_t k = lo; k < hi; ++k) {
                normal_rng g(opts.seed, done + k);
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
                for (std::size_t a = 0; a < A; ++a)
                    values[k * A + a] = tools::scale::objective(s.data(), N, grid[a], p.data());
            }
        });
        for (std::size_t k = 0; k < round; ++k)
            for (std::size_t a = 0; a < A; ++a) {
                const double v = values[k * A + a];
                if (!std::isfinite(v))
                    throw std::domain_error("analyze_attention_scale: the objective at alpha = " +
                                            format_number(grid[a]) + " is not finite (alpha times a score overflows)");
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

}  // namespace exprgrad::tools
