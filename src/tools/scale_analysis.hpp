// The Monte-Carlo analysis of the attention scale of kexue.fm post 9812 (research tooling, not installed): the
// exact expected gradient objective E[α(1 − Σp²)] over random score rows, its α → ∞ limit, and the
// mean-field α* with the policies' multipliers for comparison. What a model author calls (the scale policies,
// gradient_max_alpha and the mean-field objectives) stays in the installed exprgrad/ops/attention_scale.hpp.
// Used by `exprgrad attention-scale` and tests/tools/test_scale_analysis.cpp; docs/attention.md explains it.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numbers>
#include <vector>

#include <exprgrad/random.hpp>

namespace exprgrad::tools {

/// The library's generator (exprgrad/random.hpp) on one of several independent streams, with Box–Muller
/// normals that use both values of each pair (the analysis draws many).
class normal_rng {
  public:
    normal_rng(std::uint64_t seed, std::uint64_t stream) : g_(seed ^ (0xD1B54A32D192ED03ULL * (stream + 1))) {}
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
    std::size_t samples;  ///< draws made per α (0: no Monte Carlo, curve empty)
    std::vector<scale_curve_point> curve;
};

namespace scale {

/// The density at 0 of the gap between the two largest of n i.i.d. N(0, 1) scores:
/// n(n−1)∫φ(x)²Φ(x)^{n−2}dx, by Simpson's rule on [−12, 12] (relative error below 1e-9 for 2 ≤ n ≤ 1e7).
/// It is the limit of E[α(1 − Σp²)] as α → ∞ (notes §1.5 check 4). 0 for n < 2.
/// Examples: n = 64 → 2.344, n = 512 → 3.044, n = 4096 → 3.626.
double top_gap_density_normal(std::size_t n);

/// The same density at 0 for n i.i.d. cosine scores of dimension d (density ρ(x) ∝ (1 − x²)^{(d−3)/2} on
/// [−1, 1], CDF F): n(n−1)∫ρ²F^{n−2}. For n ≤ 1000 by quadrature on a uniform grid of 2·10^5 intervals; for
/// larger n the integrand lives where the tail 1 − F is about 1/n, a region that narrows like 1/n, so the
/// integral is taken over the tail y = 1 − x ∈ [0, y_c] only (1 − F(1 − y_c) = 60/n, the rest weighs below
/// e^{−60}), on the grid y = y_c·w² of 2·10^4 intervals, with 1 − F accumulated from x = 1 (no cancellation).
/// Checked against n/2 for d = 3 (uniform scores) up to n = 2^32. The argument of notes §1.5 check 4 applies
/// unchanged (bounded i.i.d. scores with a continuous density), but the notes state it for normal scores only.
/// d ≥ 3 (for d ≤ 2 the density is unbounded and the value is +inf); 0 for n < 2.
double top_gap_density_cosine(std::size_t n, std::size_t d);

/// α(1 − Σp²) for p = softmax(α·s) over the n ≥ 1 finite scores s, in O(n): p from the engine's row softmax
/// (kernels::rows::softmax); 1 − Σp² evaluated as r(2 − r) − Σ_{i≠m}p_i², m the largest p and r = Σ_{i≠m}p_i,
/// so that nothing cancels when p is nearly one-hot. Equals exact_objective (½Σ|J| of the VJP Jacobian, check 1
/// of the tests). `p` is scratch space of n doubles. Example: s = [1, 2, 3], α = 1 → 0.4894569.
double objective(const double* s, std::size_t n, double alpha, double* p);

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
scale_analysis analyze_attention_scale(const scale_analysis_options& opts);

}  // namespace exprgrad::tools
