// check::hvp: finite-difference Hessian-vector products of a compiled tensor program against the analytic
// Hessian of the logistic loss, H = Xᵀ diag(p(1−p)) X / n (with the bias's row and column), in double and
// float, jointly over two wrt arguments; symmetry and the second difference of the loss through rms_norm,
// matmul and cross-entropy; its refusals.
#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <tuple>

#include <xtensor/xarray.hpp>

#include "exprgrad/check/hvp.hpp"
#include "exprgrad/random_arrays.hpp"
#include "exprgrad/tensors.hpp"

using namespace exprgrad;
using namespace exprgrad::tensors;

namespace {
constexpr Input<0> X{};
constexpr Input<1> W{};
constexpr Input<2> B{};
constexpr Input<3> Y{};
constexpr auto z = matmul(X, W) + B;
constexpr auto logistic = mean(softplus(z) - Y * z);

// (H v) of the logistic loss by loops: with u = X vw + vb and D = p(1 − p),
// (Hv)_w = Xᵀ (D ⊙ u) / n and (Hv)_b = Σ D ⊙ u / n.
std::pair<xt::xarray<double>, double> analytic_hv(const xt::xarray<double>& x, const xt::xarray<double>& w, double b,
                                                  const xt::xarray<double>& vw, double vb) {
    const std::size_t n = x.shape(0), d = x.shape(1);
    xt::xarray<double> hw = xt::zeros<double>({d, std::size_t(1)});
    double hb = 0;
    for (std::size_t i = 0; i < n; ++i) {
        double zi = b, ui = vb;
        for (std::size_t k = 0; k < d; ++k) {
            zi += x(i, k) * w(k, 0);
            ui += x(i, k) * vw(k, 0);
        }
        const double p = 1 / (1 + std::exp(-zi));
        const double du = p * (1 - p) * ui / static_cast<double>(n);
        for (std::size_t k = 0; k < d; ++k) hw(k, 0) += x(i, k) * du;
        hb += du;
    }
    return {hw, hb};
}

double max_scaled_error(const xt::xarray<double>& a, const xt::xarray<double>& b) {
    REQUIRE(a.size() == b.size());
    double e = 0;
    for (std::size_t i = 0; i < a.size(); ++i)
        e = std::max(e, std::abs(a.data()[i] - b.data()[i]) / std::max(1.0, std::abs(b.data()[i])));
    return e;
}
}  // namespace

TEST_CASE("hvp of the logistic loss matches Xᵀ diag(p(1-p)) X / n, jointly in w and b") {
    rng gen(3);
    const auto x = random::normal(gen, {40, 5});
    const auto y = random::bernoulli(gen, {40, 1}, 0.5);
    const auto w = random::normal(gen, {5, 1});
    const xt::xarray<double> b = {0.3};
    const auto vw = random::normal(gen, {5, 1});
    const xt::xarray<double> vb = {-0.7};
    const auto [hw_ref, hb_ref] = analytic_hv(x, w, b(0), vw, vb(0));
    REQUIRE(xt::amax(xt::abs(hw_ref))() > 1e-2);  // a direction the curvature sees

    // docs-begin docs/tensor.md
    // logistic = mean(softplus(z) - Y * z) with z = matmul(X, W) + B; arguments x, w, b, y
    auto H = check::hvp(logistic, wrt<1, 2>);                 // H: the Hessian in (w, b) jointly
    const auto [hw, hb] = H(std::tuple{vw, vb}, x, w, b, y);  // H·v at (w, b): two gradient calls
    // docs-end
    CHECK(hw.shape() == w.shape());
    CHECK(hb.shape() == b.shape());
    CHECK(max_scaled_error(hw, hw_ref) < 1e-8);
    CHECK(hb(0) == doctest::Approx(hb_ref).epsilon(1e-8));

    // w alone: the w-block of H times vw (vb = 0)
    auto Hw = check::hvp(logistic, wrt<1>);
    const xt::xarray<double> hw_only = Hw(vw, x, w, b, y);
    CHECK(max_scaled_error(hw_only, analytic_hv(x, w, b(0), vw, 0.0).first) < 1e-8);

    // float: the same product within the float step's O(h²) + O(ε/h) error
    const xt::xarray<float> xf = x, yf = y, wf = w, bf = b, vwf = vw;
    const xt::xarray<float> hwf = Hw(vwf, xf, wf, bf, yf);
    CHECK(max_scaled_error(xt::xarray<double>(hwf), analytic_hv(x, w, b(0), vw, 0.0).first) < 2e-3);
}

TEST_CASE("hvp: zero direction, refusals") {
    rng gen(4);
    const auto x = random::normal(gen, {6, 3});
    const auto y = random::bernoulli(gen, {6, 1}, 0.5);
    const auto w = random::normal(gen, {3, 1});
    const xt::xarray<double> b = {0.0};
    auto H = check::hvp(logistic, wrt<1>);
    const xt::xarray<double> zero = xt::zeros<double>({3, 1});
    CHECK(xt::all(xt::equal(H(zero, x, w, b, y), 0.0)));
    CHECK_THROWS_WITH_AS(H(xt::xarray<double>(xt::zeros<double>({3})), x, w, b, y),
                         "exprgrad::check::hvp: direction 0 has shape (3,) but argument 1 has shape (3, 1)",
                         std::invalid_argument);
    xt::xarray<double> bad = zero;
    bad(1, 0) = NAN;
    CHECK_THROWS_AS(H(bad, x, w, b, y), std::invalid_argument);
    check::hvp_options o;
    o.step = -1;
    CHECK_THROWS_AS(check::hvp(logistic, wrt<1>, o), std::invalid_argument);
}

TEST_CASE("hvp through rms_norm, matmul, softmax cross-entropy: symmetric, and v·Hv is the loss's second difference") {
    // No closed form here: two independent checks. H is symmetric (u·Hv = v·Hu), and v·Hv equals the
    // second difference (f(θ + εv) − 2f(θ) + f(θ − εv)) / ε², computed from loss values alone.
    constexpr Input<1> G{};
    constexpr Input<2> Wc{};
    constexpr Input<3> T{};
    constexpr auto ce = cross_entropy(matmul(rms_norm(X, G), Wc), T);
    rng gen(9);
    const auto x = random::normal(gen, {12, 6});
    const auto g = random::uniform(gen, {6}, 0.5, 1.5);
    const auto w = random::normal(gen, {6, 4});
    const auto y = random::integers(gen, {12}, 0, 4);
    const auto ug = random::normal(gen, {6}), uw = random::normal(gen, {6, 4});
    const auto vg = random::normal(gen, {6}), vw = random::normal(gen, {6, 4});
    auto H = check::hvp(ce, wrt<1, 2>);
    const auto [hvg, hvw] = H(std::tuple{vg, vw}, x, g, w, y);
    const auto [hug, huw] = H(std::tuple{ug, uw}, x, g, w, y);
    const double u_hv = xt::sum(ug * hvg)() + xt::sum(uw * hvw)();
    const double v_hu = xt::sum(vg * hug)() + xt::sum(vw * huw)();
    CHECK(u_hv == doctest::Approx(v_hu).epsilon(1e-7));
    auto f = evaluator(ce);
    const double eps = 1e-4;
    // one call per statement: each result is the evaluator's workspace, overwritten by the next call
    const double up = f(x, xt::xarray<double>(g + eps * vg), xt::xarray<double>(w + eps * vw), y)();
    const double mid = f(x, g, w, y)();
    const double down = f(x, xt::xarray<double>(g - eps * vg), xt::xarray<double>(w - eps * vw), y)();
    const double second = (up - 2 * mid + down) / (eps * eps);
    const double v_hv = xt::sum(vg * hvg)() + xt::sum(vw * hvw)();
    REQUIRE(std::abs(v_hv) > 1e-2);
    CHECK(v_hv == doctest::Approx(second).epsilon(1e-5));
}
