// The Monte-Carlo analysis of the attention scale (src/tools/scale_analysis.hpp) against check 4 of the research
// notes on kexue.fm post 9812 (means and standard errors of E[α(1 − Σp²)], its α → ∞ limit), its O(n) per-draw
// value against the engine's VJP Jacobian, its stopping rule, determinism and argument checks.
#include <doctest/doctest.h>

#include <cmath>
#include <numbers>
#include <stdexcept>
#include <vector>

#include <exprgrad/kernels/parallel.hpp>
#include <exprgrad/ops/attention_scale.hpp>

#include "scale_analysis.hpp"

using namespace exprgrad;
using tools::analyze_attention_scale;
using tools::scale_analysis_options;
using tools::score_model;

namespace {

// Sanitizer builds run this Monte Carlo about 50 times slower; they take fewer draws, and the tolerances below
// follow our own standard error, so the check keeps its meaning (with a wider band).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr std::size_t draw_divisor = 16;
#else
constexpr std::size_t draw_divisor = 1;
#endif

// |x − ref| within half a unit of the last digit given (ref printed with `digits` decimals).
bool to_digits(double x, double ref, int digits) { return std::fabs(x - ref) <= 0.5 * std::pow(10.0, -digits) + 1e-12; }

}  // namespace

TEST_CASE("the O(n) per-draw value equals the VJP Jacobian's ½Σ|J| (check 1's rows)") {
    const std::vector<std::vector<double>> rows = {{1, 2, 3}, {0.5, -1, 2, 0}, {0, 0, 0, 0}};
    for (const auto& s : rows)
        for (const double alpha : {1.0, 2.5}) {
            std::vector<double> scratch(s.size()), work;
            CHECK(
                tools::scale::objective(s.data(), s.size(), alpha, scratch.data()) ==
                doctest::Approx(exprgrad::ops::scale::exact_objective(s.data(), s.size(), alpha, work)).epsilon(1e-13));
        }
}

TEST_CASE("the O(n) objective keeps its relative accuracy when p is nearly one-hot") {
    // s = [0, −t]: p_2 = e^{−αt}/(1 + e^{−αt}) =: q, and α(1 − Σp²) = α·2q(1 − q) exactly; 1 − Σp² computed
    // directly would lose every digit once q < 1e-16.
    for (const double at : {5.0, 20.0, 40.0, 300.0}) {
        CAPTURE(at);
        const std::vector<double> s = {0.0, -at};
        const double q = std::exp(-at) / (1 + std::exp(-at));
        std::vector<double> scratch(2);
        CHECK(tools::scale::objective(s.data(), 2, 1.0, scratch.data()) ==
              doctest::Approx(2 * q * (1 - q)).epsilon(1e-12));
    }
    // Random rows: the same value as the VJP Jacobian's, at several α.
    tools::normal_rng g(3, 0);
    std::vector<double> s(37), scratch(37), work;
    for (auto& x : s) x = g.normal();
    for (const double a : {0.0, 0.3, 2.0, 9.0})
        CHECK(tools::scale::objective(s.data(), s.size(), a, scratch.data()) ==
              doctest::Approx(ops::scale::exact_objective(s.data(), s.size(), a, work)).epsilon(1e-12).scale(1e-300));
}

TEST_CASE("a target standard error stops the draws early; samples = 0 skips the Monte Carlo") {
    scale_analysis_options o;
    o.n = 64;
    o.alphas = {0.5, 1.0};
    o.samples = 100000;
    o.target_stderr = 0.01;
    const auto r = analyze_attention_scale(o);
    CHECK(r.samples >= 64);
    CHECK(r.samples < o.samples);
    for (const auto& p : r.curve) CHECK(p.exact_stderr <= 0.01);
    // The draws of a round are the same whatever the rounds: a fixed count equal to r.samples gives the same means.
    o.target_stderr = 0.0;
    o.samples = r.samples;
    const auto fixed = analyze_attention_scale(o);
    CHECK(fixed.samples == r.samples);
    for (std::size_t a = 0; a < 2; ++a)
        CHECK(fixed.curve[a].exact_mean == doctest::Approx(r.curve[a].exact_mean).epsilon(1e-13));
    // A target that is never reached: exactly `samples` draws.
    o.samples = 200;
    o.target_stderr = 1e-9;
    CHECK(analyze_attention_scale(o).samples == 200);
    o.samples = 0;
    const auto none = analyze_attention_scale(o);
    CHECK(none.samples == 0);
    CHECK(none.curve.empty());
    CHECK(none.alpha_star == ops::scale::gradient_max_alpha(64));
    o.target_stderr = -1;
    CHECK_THROWS_AS(analyze_attention_scale(o), std::invalid_argument);
}

TEST_CASE("check 4: Monte Carlo of the exact objective, and its α → ∞ limit") {
    // The notes' means and standard errors (20,000 draws for n = 64, 4,000 for n = 512). Our estimate and
    // theirs are independent, so their difference has standard deviation √(se² + se_ref²); we allow 3.5 of
    // those (a false alarm at 12 comparisons has probability about 0.6%, and the seed is fixed) plus half a
    // unit of the printed digit.
    struct row {
        std::size_t n, samples;
        std::vector<double> mean, se, unit;
    };
    const std::vector<double> alphas = {1, 2.5, 6, 10, 20, 40};
    const std::vector<row> table = {
        {64,
         20000,
         {0.9611, 1.887, 2.26, 2.30, 2.35, 2.37},
         {0.0001, 0.003, 0.01, 0.02, 0.03, 0.04},
         {1e-4, 1e-3, 1e-2, 1e-2, 1e-2, 1e-2}},
        {512,
         4000,
         {0.9948, 2.249, 2.91, 3.03, 3.00, 3.13},
         {0.0001, 0.004, 0.03, 0.04, 0.06, 0.10},
         {1e-4, 1e-3, 1e-2, 1e-2, 1e-2, 1e-2}},
    };
    for (const auto& t : table) {
        CAPTURE(t.n);
        scale_analysis_options o;
        o.n = t.n;
        o.samples = t.samples / draw_divisor;
        o.alphas = alphas;
        const auto r = analyze_attention_scale(o);
        REQUIRE(r.curve.size() == alphas.size());
        for (std::size_t a = 0; a < alphas.size(); ++a) {
            CAPTURE(alphas[a]);
            const auto& pt = r.curve[a];
            CAPTURE(pt.exact_mean);
            CAPTURE(pt.exact_stderr);
            CHECK(pt.alpha == alphas[a]);
            // our standard error is the notes' within a factor 2 (same draw count, same distribution)
            CHECK(pt.exact_stderr < 2 * t.se[a] * std::sqrt(double(draw_divisor)) + t.unit[a] / 2);
            CHECK(std::fabs(pt.exact_mean - t.mean[a]) <=
                  3.5 * std::sqrt(pt.exact_stderr * pt.exact_stderr + t.se[a] * t.se[a]) + t.unit[a] / 2);
            CHECK(pt.mean_field == ops::scale::mean_field_objective(alphas[a], static_cast<double>(t.n)));
        }
        // No finite maximiser: at large α the exact expectation is near the limit, far above f(α*) territory
        // where the surrogate has collapsed (f(40) is hugely negative).
        CHECK(r.curve.back().exact_mean > r.mean_field_at_star);
        CHECK(std::fabs(r.curve.back().exact_mean - r.limit) < 3.5 * r.curve.back().exact_stderr + 0.01);
    }
    // The limit n(n−1)∫φ²Φ^{n−2}, to the digits of the notes.
    CHECK(to_digits(tools::scale::top_gap_density_normal(64), 2.344, 3));
    CHECK(to_digits(tools::scale::top_gap_density_normal(512), 3.044, 3));
    CHECK(to_digits(tools::scale::top_gap_density_normal(4096), 3.626, 3));
    // n = 2: the gap of two normals is N(0, 2), density 1/(2√π) at 0 on each side: 1/√π.
    CHECK(tools::scale::top_gap_density_normal(2) == doctest::Approx(1 / std::sqrt(std::numbers::pi)).epsilon(1e-10));
    // Uniform scores (cosine with d = 3): n(n−1)∫(1/4)((x+1)/2)^{n−2} = n/2.
    CHECK(tools::scale::top_gap_density_cosine(10, 3) == doctest::Approx(5.0).epsilon(1e-9));
    CHECK(tools::scale::top_gap_density_cosine(2, 3) == doctest::Approx(1.0).epsilon(1e-9));
}

TEST_CASE("the analysis is deterministic for a seed, whatever the thread count") {
    scale_analysis_options o;
    o.n = 40;
    o.samples = 300;
    o.scores = score_model::cosine;
    o.d = 16;
    const std::size_t saved = kernels::num_threads();
    kernels::set_num_threads(1);
    const auto a = analyze_attention_scale(o);
    kernels::set_num_threads(2);
    const auto b = analyze_attention_scale(o);
    kernels::set_num_threads(saved);
    REQUIRE(a.curve.size() == b.curve.size());
    for (std::size_t i = 0; i < a.curve.size(); ++i) {
        CHECK(a.curve[i].exact_mean == b.curve[i].exact_mean);
        CHECK(a.curve[i].exact_stderr == b.curve[i].exact_stderr);
    }
    o.seed += 1;
    const auto c = analyze_attention_scale(o);
    CHECK(c.curve[3].exact_mean != a.curve[3].exact_mean);
    CHECK(a.alpha_star == ops::scale::gradient_max_alpha_cosine(40, 16));
    CHECK(a.gradient_max == a.alpha_star);  // cosine: no 1/√d
    CHECK(a.inv_sqrt_d == doctest::Approx(0.25));
}

TEST_CASE("cosine scores: Monte Carlo at small α matches the moment expansion") {
    // E[α(1 − Σp²)] at α → 0 is α(1 − 1/n) + O(α³); with s of variance 1/d the mean-field value at small α
    // agrees with the exact mean to O(α³).
    scale_analysis_options o;
    o.n = 32;
    o.d = 8;
    o.samples = 4000;
    o.scores = score_model::cosine;
    o.alphas = {0.05};
    const auto r = analyze_attention_scale(o);
    CHECK(r.curve[0].exact_mean == doctest::Approx(0.05 * (1 - 1.0 / 32)).epsilon(1e-3));
    CHECK(r.limit == doctest::Approx(tools::scale::top_gap_density_cosine(32, 8)));
}

TEST_CASE("the random streams: 53-bit uniforms and normals with the right moments") {
    tools::normal_rng g(1, 0);
    double s = 0, s2 = 0, lo = 1, hi = 0;
    const int N = 200000;
    for (int i = 0; i < N; ++i) {
        const double u = g.uniform();
        lo = std::min(lo, u);
        hi = std::max(hi, u);
        const double z = g.normal();
        s += z;
        s2 += z * z;
    }
    CHECK(lo >= 0.0);
    CHECK(lo < 1e-4);
    CHECK(hi < 1.0);
    CHECK(hi > 1 - 1e-4);
    // mean 0 ± 4.5/√N, variance 1 ± 4.5·√2/√N
    CHECK(std::fabs(s / N) < 4.5 / std::sqrt(double(N)));
    CHECK(std::fabs(s2 / N - 1) < 4.5 * std::sqrt(2.0) / std::sqrt(double(N)));
    tools::normal_rng a(7, 3), b(7, 3), c(7, 4);
    const auto x = a.next();
    CHECK(x == b.next());
    CHECK(x != c.next());
}

TEST_CASE("analysis arguments are checked") {
    scale_analysis_options o;
    o.n = 0;
    CHECK_THROWS_AS(analyze_attention_scale(o), std::invalid_argument);
    o.n = 8;
    o.samples = 1;
    CHECK_THROWS_AS(analyze_attention_scale(o), std::invalid_argument);
    o.samples = 10;
    o.alphas = {1.5e308};  // α·s overflows: refused, never NaN rows
    CHECK_THROWS_AS(analyze_attention_scale(o), std::domain_error);
    o.samples = 10;
    o.alphas = {1.0, std::nan("")};
    CHECK_THROWS_AS(analyze_attention_scale(o), std::invalid_argument);
    o.alphas = {1.0, -1.0};  // the objective is α(1 − Σp²) for α ≥ 0
    CHECK_THROWS_WITH_AS(analyze_attention_scale(o), doctest::Contains("-1"), std::invalid_argument);
    o.alphas = {1.0};
    o.n = 1;  // one key: p = 1, nothing to maximise
    CHECK_THROWS_WITH_AS(analyze_attention_scale(o), doctest::Contains("n = 1"), std::invalid_argument);
    o.n = 8;
    o.scores = score_model::cosine;
    o.d = 1;  // scores ±1: no finite maximiser
    CHECK_THROWS_WITH_AS(analyze_attention_scale(o), doctest::Contains("d = 1"), std::invalid_argument);
    o.d = 2;
    CHECK(analyze_attention_scale(o).curve.size() == 1);
}

TEST_CASE("the top-gap limit for cosine scores up to n = 2^32") {
    // d = 3: uniform scores on [−1, 1], so the density at 0 of the top-two gap is n(n−1)∫(1/4)((x+1)/2)^{n−2}dx
    // = n/2, on both sides of the switch of quadrature at n = 1000.
    for (const std::size_t n : {1000ul, 1001ul, 100000ul, 4294967296ul})
        CHECK(tools::scale::top_gap_density_cosine(n, 3) == doctest::Approx(n / 2.0).epsilon(1e-7));
    // The two quadratures agree where they meet (d = 64: the limit grows slowly and smoothly with n).
    const double below = tools::scale::top_gap_density_cosine(1000, 64),
                 above = tools::scale::top_gap_density_cosine(1001, 64);
    CHECK(above > below);
    CHECK(above - below < 1e-3 * below);
}
