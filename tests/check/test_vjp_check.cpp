// check::vjp_check: passes on correct VJPs (elementwise, matrix product, scalar output, held-fixed arguments) and
// FAILS on wrong ones (off by a factor, transposed, ignoring an argument, ignoring the cotangent, hiding a NaN).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include <xtensor/xarray.hpp>
#include <xtensor/xmath.hpp>

#include "exprgrad/exprgrad.hpp"

using namespace exprgrad;
using arr = xt::xarray<double>;
using inputs = std::vector<arr>;

namespace {
arr random_array(std::vector<std::size_t> shape, std::uint64_t seed) {
    arr a = arr::from_shape(shape);
    rng g(seed);
    for (auto& v : a) v = 2 * g.uniform() - 1;
    return a;
}
// C = A B for A (m×k), B (k×n), by loops (no BLAS: the check is of the harness).
arr matmul(const arr& a, const arr& b) {
    arr c = xt::zeros<double>({a.shape(0), b.shape(1)});
    for (std::size_t i = 0; i < a.shape(0); ++i)
        for (std::size_t j = 0; j < b.shape(1); ++j)
            for (std::size_t l = 0; l < a.shape(1); ++l) c(i, j) += a(i, l) * b(l, j);
    return c;
}
arr transpose(const arr& a) {
    arr t = arr::from_shape({a.shape(1), a.shape(0)});
    for (std::size_t i = 0; i < a.shape(0); ++i)
        for (std::size_t j = 0; j < a.shape(1); ++j) t(j, i) = a(i, j);
    return t;
}
auto mm = [](const inputs& in) { return matmul(in[0], in[1]); };
// dA = dC Bᵀ, dB = Aᵀ dC
auto mm_vjp = [](const inputs& in, const arr& dc) {
    return inputs{matmul(dc, transpose(in[1])), matmul(transpose(in[0]), dc)};
};
}  // namespace

TEST_CASE("vjp_check passes on correct VJPs") {
    SUBCASE("elementwise tanh") {
        auto f = [](const inputs& in) { return arr(xt::tanh(in[0])); };
        auto df = [](const inputs& in, const arr& d) { return inputs{arr(d * (1 - xt::square(xt::tanh(in[0]))))}; };
        const auto r = check::vjp_check(f, df, {random_array({3, 4}, 1)});
        CHECK(r);
        CHECK(r.checked == 3 + 12);
        CHECK(r.message().find("vjp_check ok") == 0);
    }
    SUBCASE("matrix product, both arguments, beyond max_elements (sampled)") {
        check::vjp_check_options o;
        o.max_elements = 5;
        const auto r = check::vjp_check(mm, mm_vjp, {random_array({4, 3}, 2), random_array({3, 5}, 3)}, o);
        CHECK(r);
        CHECK(r.checked == 2 * (3 + 5));
    }
    SUBCASE("scalar output: log-sum-exp") {
        auto f = [](const inputs& in) { return std::log(xt::sum(xt::exp(in[0]))()); };
        auto df = [](const inputs& in, const arr& d) {
            const arr e = xt::exp(in[0]);
            return inputs{arr(d() * e / xt::sum(e)())};
        };
        CHECK(check::vjp_check(f, df, {random_array({6}, 4)}));
    }
    SUBCASE("a -inf mask held fixed; its gradient may be empty") {
        // f(x, m) = exp(x + m) with m = 0 or -inf: m has no finite difference, so only x is checked
        arr m = {0.0, -INFINITY, 0.0};
        auto f = [](const inputs& in) { return arr(xt::exp(in[0] + in[1])); };
        auto df = [](const inputs& in, const arr& d) { return inputs{arr(d * xt::exp(in[0] + in[1])), arr()}; };
        check::vjp_check_options o;
        o.wrt = {0};
        o.nan_grad = check::nan_gradient::entry_nonfinite;
        CHECK(check::vjp_check(f, df, {random_array({3}, 5), m}, o));
        o.wrt = {};  // perturbing the mask: the gradient's size no longer matches, the report says so
        const auto r = check::vjp_check(f, df, {random_array({3}, 5), m}, o);
        CHECK_FALSE(r);
        CHECK(r.message().find("argument 1") != std::string::npos);
    }
}

TEST_CASE("vjp_check FAILS on wrong VJPs and names the argument") {
    const inputs ab = {random_array({4, 3}, 12), random_array({3, 5}, 13)};
    SUBCASE("off by a factor 1.01 in one argument") {
        auto bad = [](const inputs& in, const arr& dc) {
            auto g = mm_vjp(in, dc);
            g[1] *= 1.01;
            return g;
        };
        const auto r = check::vjp_check(mm, bad, ab);
        CHECK_FALSE(r);
        CHECK(r.worst_argument == 1);
        CHECK(r.worst_error > 1e-3);
        CHECK(r.message().find("vjp_check FAILED") == 0);
    }
    SUBCASE("transposed: dA = dCᵀ... for a square product") {
        const inputs sq = {random_array({3, 3}, 14), random_array({3, 3}, 15)};
        auto bad = [](const inputs& in, const arr& dc) {
            auto g = mm_vjp(in, dc);
            g[0] = transpose(g[0]);
            return g;
        };
        const auto r = check::vjp_check(mm, bad, sq);
        CHECK_FALSE(r);
        CHECK(r.worst_argument == 0);
    }
    SUBCASE("ignoring an argument (its gradient zero)") {
        auto bad = [](const inputs& in, const arr& dc) {
            auto g = mm_vjp(in, dc);
            g[0].fill(0);
            return g;
        };
        const auto r = check::vjp_check(mm, bad, ab);
        CHECK_FALSE(r);
        CHECK(r.worst_argument == 0);
        // restricted to the other argument, the same VJP passes: restriction really holds argument 0 fixed
        // (dB = Aᵀ dC does not read B, so a NaN in B leaves it finite: the NaN gradient rule is off)
        check::vjp_check_options o;
        o.wrt = {1};
        o.nan_grad = check::nan_gradient::unchecked;
        CHECK(check::vjp_check(mm, bad, ab, o));
    }
    SUBCASE("ignoring the cotangent (as if dout were ones)") {
        auto bad = [](const inputs& in, const arr& dc) { return mm_vjp(in, xt::ones_like(dc)); };
        CHECK_FALSE(check::vjp_check(mm, bad, ab));
    }
    SUBCASE("only the per-element check sees it: a wrong last entry, directions off") {
        auto f = [](const inputs& in) { return arr(xt::sin(in[0])); };
        auto bad = [](const inputs& in, const arr& d) {
            arr g = d * xt::cos(in[0]);
            g(g.size() - 1) += 1e-3;
            return inputs{g};
        };
        check::vjp_check_options o;
        o.directions = 0;
        const auto r = check::vjp_check(f, bad, {random_array({50}, 16)}, o);
        CHECK_FALSE(r);
        CHECK(r.worst_direction == -1);
        CHECK(r.worst_index == 49);
    }
    SUBCASE("a wrong number of gradients") {
        auto bad = [](const inputs& in, const arr& dc) { return inputs{mm_vjp(in, dc)[0]}; };
        CHECK_FALSE(check::vjp_check(mm, bad, ab));
    }
}

TEST_CASE("vjp_check's NaN rules: a silently finite gradient fails; each rule can be switched off") {
    // relu's VJP written with a comparison: NaN > 0 is false, so the gradient at a NaN input is a finite 0
    // (written with `x < 0`, so that a NaN input stays NaN in the value)
    auto relu = [](const inputs& in) { return arr(xt::where(in[0] < 0.0, 0.0, in[0])); };
    auto relu_vjp = [](const inputs& in, const arr& d) { return inputs{arr(xt::where(in[0] > 0, d, 0.0))}; };
    const inputs x = {random_array({5}, 20) + 2.0};  // all positive: no kink within a step
    const auto r = check::vjp_check(relu, relu_vjp, x);
    CHECK_FALSE(r);
    CHECK(r.failures.size() >= 1);
    CHECK(r.message().find("silently finite gradient") != std::string::npos);
    CHECK(r.worst_error <= r.tolerance);  // the derivatives themselves are right
    check::vjp_check_options o;
    o.nan_grad = check::nan_gradient::unchecked;
    CHECK(check::vjp_check(relu, relu_vjp, x, o));
    // a propagating VJP passes the strict rule
    auto relu_vjp_nan = [](const inputs& in, const arr& d) {
        return inputs{arr(xt::where(xt::isnan(in[0]), in[0], xt::where(in[0] > 0, d, 0.0)))};
    };
    o.nan_grad = check::nan_gradient::entry_nonfinite;
    CHECK(check::vjp_check(relu, relu_vjp_nan, x, o));
    // a value that swallows the NaN (std::fmax returns the other argument) fails nan_value
    auto swallow = [](const inputs& in) { return arr(xt::fmax(in[0], 0.0)); };
    o.nan_grad = check::nan_gradient::unchecked;
    const auto s = check::vjp_check(swallow, relu_vjp, x, o);
    CHECK_FALSE(s);
    CHECK(s.message().find("all-finite value") != std::string::npos);
    o.nan_value = false;
    CHECK(check::vjp_check(swallow, relu_vjp, x, o));
    // +inf: tanh saturates to a finite value, so the inf rule (off by default) fails when asked for
    auto th = [](const inputs& in) { return arr(xt::tanh(in[0])); };
    auto th_vjp = [](const inputs& in, const arr& d) { return inputs{arr(d * (1 - xt::square(xt::tanh(in[0]))))}; };
    CHECK(check::vjp_check(th, th_vjp, x));
    o = {};
    o.inf_value = true;
    CHECK_FALSE(check::vjp_check(th, th_vjp, x, o));
}

TEST_CASE("vjp_check's tolerance comes from the step unless given") {
    check::vjp_check_options o;
    CHECK(o.tolerance() == doctest::Approx(1e4 * (DBL_EPSILON / 1e-6 + 1e-12)));
    o.step = 1e-4;
    CHECK(o.tolerance() == doctest::Approx(1e4 * (DBL_EPSILON / 1e-4 + 1e-8)));
    o.rtol = 1e-9;
    CHECK(o.tolerance() == 1e-9);
}

TEST_CASE("docs/tensor.md") {
    // The example of docs/tensor.md ("Checking a hand-written VJP"), verbatim between the markers.
    // docs-begin docs/tensor.md
    using arrays = std::vector<xt::xarray<double>>;
    // f(x, m) = exp(x + m): m is a mask of 0 and -inf, an input held fixed
    auto f = [](const arrays& in) { return xt::xarray<double>(xt::exp(in[0] + in[1])); };
    auto vjp = [](const arrays& in, const xt::xarray<double>& dout) {
        return arrays{dout * xt::exp(in[0] + in[1]), {}};  // no gradient for the mask
    };
    check::vjp_check_options o;
    o.wrt = {0};  // perturb and check x only
    const arrays inputs = {{0.5, -1.0, 2.0}, {0.0, -INFINITY, 0.0}};
    const check::vjp_report r = check::vjp_check(f, vjp, inputs, o);
    CHECK(r);  // on failure doctest prints r.message(): argument, direction or element, both values
    // docs-end
    CHECK(r.checked == o.directions + 3);
}

TEST_CASE("vjp_check's affected_nonfinite rule: gradients that do not read the NaN may stay finite") {
    // f(x, b) = x² + b: a NaN in b makes the value NaN, but no gradient reads b (df/db = dout, df/dx = 2x dout)
    auto f = [](const inputs& in) { return arr(in[0] * in[0] + in[1]); };
    auto df = [](const inputs& in, const arr& d) { return inputs{arr(2.0 * in[0] * d), d}; };
    const inputs xb = {random_array({4}, 30), random_array({4}, 31)};
    check::vjp_check_options o;
    CHECK_FALSE(check::vjp_check(f, df, xb, o));  // any_nonfinite asks for a NaN somewhere: none
    o.nan_grad = check::nan_gradient::affected_nonfinite;
    CHECK(check::vjp_check(f, df, xb, o));
    // a VJP that reads x but hides its NaN (std::fmax-like clean-up) fails the affected rule
    auto hiding = [](const inputs& in, const arr& d) {
        arr g = 2.0 * in[0] * d;
        for (auto& v : g)
            if (std::isnan(v)) v = 0;
        return inputs{g, d};
    };
    const auto r = check::vjp_check(f, hiding, xb, o);
    CHECK_FALSE(r);
    CHECK(r.message().find("NaN at argument 0") != std::string::npos);
}
