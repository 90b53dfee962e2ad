// The scale analysis (ops/attention_scale.hpp) against the reproducible checks of the research notes
// ../shared/research/articles_part1.md §1.5 (kexue.fm post 9812, "从梯度最大化看Attention的Scale操作"):
// checks 1–3 to the digits given there. The Monte Carlo of check 4 is research tooling (src/tools/scale_analysis):
// tests/tools/test_scale_analysis.cpp.
#include <doctest/doctest.h>

#include <cmath>
#include <numbers>
#include <vector>

#include <exprgrad/kernels/parallel.hpp>
#include <exprgrad/ops/attention_scale.hpp>

using namespace exprgrad;
using namespace exprgrad::ops;

namespace {

// |x − ref| within half a unit of the last digit given (ref printed with `digits` decimals).
bool to_digits(double x, double ref, int digits) { return std::fabs(x - ref) <= 0.5 * std::pow(10.0, -digits) + 1e-12; }

}  // namespace

TEST_CASE("check 1: the softmax Jacobian identity ½Σ|J| = α(1 − Σp²), from the engine's VJP") {
    struct row_case {
        std::vector<double> s;
        double alpha;
        std::vector<double> p;
        double sum_p2, half_l1;
    };
    const std::vector<row_case> cases = {
        {{1, 2, 3}, 1.0, {0.0900306, 0.2447285, 0.6652410}, 0.5105431, 0.4894569},
        {{0.5, -1, 2, 0}, 2.5, {0.0228148, 0.0005366, 0.9701120, 0.0065366}, 0.9416809, 0.1457978},
        {{0, 0, 0, 0}, 1.0, {0.25, 0.25, 0.25, 0.25}, 0.25, 0.75},
    };
    for (const auto& c : cases) {
        const std::size_t n = c.s.size();
        std::vector<double> p(n);
        exprgrad::kernels::rows::softmax(c.s.data(), c.alpha, p.data(), n);
        double sp2 = 0;
        for (std::size_t i = 0; i < n; ++i) {
            CHECK(to_digits(p[i], c.p[i], 7));
            sp2 += p[i] * p[i];
        }
        CHECK(to_digits(sp2, c.sum_p2, 7));
        const auto J = scale::softmax_jacobian(c.s, c.alpha);
        double l1 = 0;
        for (std::size_t i = 0; i < n; ++i)
            for (std::size_t j = 0; j < n; ++j) {
                l1 += std::fabs(J(i, j));
                // the closed form, for comparison only: α(p_i δ_ij − p_i p_j)
                CHECK(J(i, j) ==
                      doctest::Approx(c.alpha * (p[i] * (i == j) - p[i] * p[j])).epsilon(1e-12).scale(1e-15));
            }
        CHECK(to_digits(0.5 * l1, c.half_l1, 7));
        std::vector<double> work;
        CHECK(to_digits(scale::exact_objective(c.s.data(), n, c.alpha, work), c.half_l1, 7));
        CHECK(scale::exact_objective(c.s.data(), n, c.alpha, work) ==
              doctest::Approx(c.alpha * (1 - sp2)).epsilon(1e-13));
    }
}

TEST_CASE("check 2: normal scores, the maximiser of α(1 − e^{α²}/n)") {
    struct row {
        double n, alpha, fit, f_star, f1, f25;
        int f25_digits;
    };
    const double three_e = 3 * std::numbers::e;
    const std::vector<row> table = {
        {three_e, 1.0000, 1.2169, 0.6667, 0.6667, -156.31, 2}, {40, 1.4342, 1.6133, 1.1537, 0.9320, -29.876, 3},
        {128, 1.7109, 1.8503, 1.4613, 0.9788, -7.617, 3},      {512, 2.0084, 2.0980, 1.7869, 0.9947, -0.0294, 4},
        {1024, 2.1465, 2.2115, 1.9364, 0.9973, 1.2353, 4},     {4096, 2.4055, 2.4226, 2.2141, 0.9993, 2.1838, 4},
        {10000, 2.5617, 2.5493, 2.3804, 0.9997, 2.3705, 4},    {20000, 2.6782, 2.6435, 2.5037, 0.9999, 2.4352, 4},
    };
    for (const auto& r : table) {
        CAPTURE(r.n);
        const double a = scale::gradient_max_alpha(r.n);
        CHECK(to_digits(a, r.alpha, 4));
        CHECK(to_digits(0.84 * std::sqrt(std::log(r.n)), r.fit, 4));
        CHECK(to_digits(scale::mean_field_objective(a, r.n), r.f_star, 4));
        CHECK(to_digits(scale::mean_field_objective(1.0, r.n), r.f1, 4));
        CHECK(to_digits(scale::mean_field_objective(2.5, r.n), r.f25, r.f25_digits));
        // it is the root of (1 + 2α²)e^{α²} = n, and a maximum
        CHECK((1 + 2 * a * a) * std::exp(a * a) == doctest::Approx(r.n).epsilon(1e-12));
        CHECK(scale::mean_field_objective(a, r.n) > scale::mean_field_objective(a * 1.001, r.n));
        CHECK(scale::mean_field_objective(a, r.n) > scale::mean_field_objective(a * 0.999, r.n));
    }
    CHECK(scale::gradient_max_alpha(1.0) == 0.0);
    CHECK(scale::gradient_max_alpha(0.5) == 0.0);
    CHECK(std::isnan(scale::gradient_max_alpha(std::nan(""))));
}

TEST_CASE("check 3: cosine scores, d = 128") {
    CHECK(to_digits(scale::cosine_mgf(1, 128), 1.0039137715, 10));
    CHECK(to_digits(scale::cosine_mgf(10, 128), 1.4761840438, 10));
    CHECK(to_digits(scale::cosine_mgf(30, 128), 30.7751020897, 10));
    CHECK(scale::cosine_mgf(-10, 128) == scale::cosine_mgf(10, 128));
    // d = 3: s is uniform on [−1, 1] and g(α) = sinh(α)/α.
    CHECK(scale::cosine_mgf(2.0, 3) == doctest::Approx(std::sinh(2.0) / 2.0).epsilon(1e-14));
    struct row {
        double n, alpha, fit, f_star;
    };
    const std::vector<row> table = {
        {40, 16.810, 12.911, 13.419},    {128, 20.309, 16.982, 17.195},  {512, 24.214, 21.834, 21.337},
        {1024, 26.084, 24.260, 23.299},  {4096, 29.700, 29.112, 27.056}, {10000, 31.959, 32.236, 29.384},
        {20000, 33.684, 34.662, 31.153},
    };
    for (const auto& r : table) {
        CAPTURE(r.n);
        const double a = scale::gradient_max_alpha_cosine(r.n, 128);
        CHECK(to_digits(a, r.alpha, 3));
        CHECK(to_digits(3.5 * std::log(r.n), r.fit, 3));
        CHECK(to_digits(scale::mean_field_objective_cosine(a, r.n, 128), r.f_star, 3));
        CHECK(scale::mean_field_objective_cosine(a, r.n, 128) >
              scale::mean_field_objective_cosine(a * 1.001, r.n, 128));
        CHECK(scale::mean_field_objective_cosine(a, r.n, 128) >
              scale::mean_field_objective_cosine(a * 0.999, r.n, 128));
    }
    CHECK(to_digits(scale::gradient_max_alpha_cosine(512, 64), 18.21, 2));
    CHECK(to_digits(scale::gradient_max_alpha_cosine(4096, 64), 22.85, 2));
    CHECK(to_digits(scale::gradient_max_alpha_cosine(512, 256), 33.18, 2));
    CHECK(to_digits(scale::gradient_max_alpha_cosine(4096, 256), 40.23, 2));
}

TEST_CASE("cosine scores for n up to 2^32: alpha* finite, g exact for uniform scores") {
    // d = 3: the cosine of uniform directions is uniform on [−1, 1], so g(α) = sinh(α)/α (both sides of the
    // switch to Hankel's expansion at α = 10^4).
    for (const double a : {50.0, 9999.0, 10000.0, 2e4, 1e6, 1e9}) {
        CAPTURE(a);
        const double log_g = a - std::log(2 * a) + std::log1p(-std::exp(-2 * a));
        CHECK(ops::detail::cosine_log_mgf(a, 3).first == doctest::Approx(log_g).epsilon(1e-13));
        // (log g)' = coth α − 1/α
        CHECK(ops::detail::cosine_log_mgf(a, 3).second == doctest::Approx(1 / std::tanh(a) - 1 / a).epsilon(1e-12));
    }
    for (const std::size_t d : {2ul, 3ul, 4ul, 64ul, 1048576ul}) {
        CAPTURE(d);
        const double a = scale::gradient_max_alpha_cosine(4294967296.0, d);
        CHECK(std::isfinite(a));
        CHECK(a > scale::gradient_max_alpha_cosine(1e6, d));
    }
}
