// The EMO loss: the V = 4 toy values of research notes articles_part1.md §2.4 for every objective,
// finite differences, a naive float64 implementation with the V×V cost matrix, soft targets,
// huge logits, ignored positions, zero embedding rows, bad shapes, and the tensor node.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include <xtensor/xarray.hpp>

#include "exprgrad/exprgrad.hpp"
#include "exprgrad/ops/emo.hpp"

using namespace exprgrad;
using namespace exprgrad::ops;

namespace {
// The toy of notes §2.4: V = 4, h = 3, target 0.
xt::xarray<double> toy_e() {
    xt::xarray<double> e = xt::xarray<double>::from_shape({4, 3});
    const double v[] = {1, 0, 0, 0.8, 0.6, 0, 0, 1, 0, 0, 0, 2};
    std::copy(v, v + 12, e.begin());
    return e;
}
xt::xarray<double> toy_z() { return xt::xarray<double>({{1.0, 2.0, 0.5, -1.0}}); }
xt::xarray<long> toy_t() { return xt::xarray<long>({0}); }

void check_vec(const xt::xarray<double>& got, std::initializer_list<double> want, double tol) {
    std::size_t i = 0;
    for (double w : want) {
        INFO("entry " << i);
        CHECK(got.data()[i] == doctest::Approx(w).epsilon(tol));
        ++i;
    }
}

// Naive float64 reference with the V×V cost matrix and the product coupling (hard or soft target).
struct naive_result {
    double ce, emo;
    std::vector<double> dce, demo;
};
naive_result naive(const std::vector<double>& z, const std::vector<double>& tau, const xt::xarray<double>& e,
                   double (*cost)(double) = [](double x) { return 1 - x; }) {
    const std::size_t V = z.size(), h = e.shape()[1];
    std::vector<std::vector<double>> eh(V, std::vector<double>(h));
    for (std::size_t i = 0; i < V; ++i) {
        double n = 0;
        for (std::size_t j = 0; j < h; ++j) n += e(i, j) * e(i, j);
        n = std::max(std::sqrt(n), 1e-12);
        for (std::size_t j = 0; j < h; ++j) eh[i][j] = e(i, j) / n;
    }
    std::vector<std::vector<double>> C(V, std::vector<double>(V));
    for (std::size_t i = 0; i < V; ++i)
        for (std::size_t k = 0; k < V; ++k) {
            double dot = 0;
            for (std::size_t j = 0; j < h; ++j) dot += eh[i][j] * eh[k][j];
            C[i][k] = cost(dot);
        }
    double m = -INFINITY;
    for (double v : z) m = std::max(m, v);
    double s = 0;
    for (double v : z) s += std::exp(v - m);
    std::vector<double> p(V);
    for (std::size_t i = 0; i < V; ++i) p[i] = std::exp(z[i] - m) / s;
    naive_result r{0, 0, std::vector<double>(V), std::vector<double>(V)};
    double mass = 0;
    for (double t : tau) mass += t;
    std::vector<double> c(V, 0.0);
    for (std::size_t i = 0; i < V; ++i)
        for (std::size_t j = 0; j < V; ++j) c[i] += tau[j] * C[i][j];
    for (std::size_t i = 0; i < V; ++i) {
        r.ce -= tau[i] * std::log(p[i]);
        r.emo += p[i] * c[i];
    }
    for (std::size_t i = 0; i < V; ++i) {
        r.dce[i] = mass * p[i] - tau[i];
        r.demo[i] = p[i] * (c[i] - r.emo);
    }
    return r;
}
}  // namespace

TEST_CASE("a transport cost other than 1 - cos, as a sym expression of the cosine, against the naive double loop") {
    // c(x) = (1 − x)² + x/4: not linear in x, so a kernel that still used 1 − x would differ by 1e-2 or more
    using cost = decltype(sym::square(1_c - sym::var<0>) + sym::var<0> / 4_c);
    const std::size_t N = 4, V = 6, h = 3;
    rng g(23);
    xt::xarray<double> z = xt::xarray<double>::from_shape({N, V}), e = xt::xarray<double>::from_shape({V, h});
    for (auto& v : z) v = 4 * g.uniform() - 2;
    for (auto& v : e) v = 2 * g.uniform() - 1;
    const xt::xarray<long> t = {2, 5, -100, 0};
    for (auto obj : {emo_objective::emo, emo_objective::mode1, emo_objective::mode2}) {
        CAPTURE(to_string(obj));
        const auto r = emo_loss<cost>(z, t, e, {.objective = obj});
        double loss = 0, gap = 0;
        for (std::size_t i = 0; i < N; ++i) {
            if (t(i) == -100) continue;
            std::vector<double> zi(V), tau(V, 0.0);
            for (std::size_t k = 0; k < V; ++k) zi[k] = z(i, k);
            tau[static_cast<std::size_t>(t(i))] = 1;
            const auto ref = naive(zi, tau, e, [](double x) { return (1 - x) * (1 - x) + x / 4; });
            gap = std::max(gap, std::fabs(ref.emo - naive(zi, tau, e).emo));
            const double a = obj == emo_objective::emo     ? 0
                             : obj == emo_objective::mode1 ? 0.5
                                                           : ref.emo / (ref.ce + 1e-10);
            const double b = obj == emo_objective::emo     ? 1
                             : obj == emo_objective::mode1 ? 0.5 * ref.ce / (ref.emo + 1e-10)
                                                           : 1;
            loss += (a * ref.ce + b * ref.emo) / 3.0;  // 3 counted positions
            for (std::size_t k = 0; k < V; ++k)
                CHECK(r.dlogits(i, k) == doctest::Approx((a * ref.dce[k] + b * ref.demo[k]) / 3.0).epsilon(1e-10));
        }
        CHECK(r.loss == doctest::Approx(loss).epsilon(1e-12));
        CHECK(gap > 1e-2);  // the costs differ enough for the comparison to tell them apart
    }
    // the default cost spelled out is the default
    const auto d1 = emo_loss<decltype(1_c - sym::var<0>)>(z, t, e), d0 = emo_loss(z, t, e);
    CHECK(d1.loss == d0.loss);
}

TEST_CASE("notes §2.4 toy: ce and emo values and gradients") {
    auto ce = emo_loss(toy_z(), toy_t(), toy_e(), {.objective = emo_objective::ce});
    CHECK(ce.loss == doctest::Approx(1.495182).epsilon(1e-6));
    check_vec(ce.dlogits, {-0.775792, 0.609460, 0.135989, 0.030343}, 1e-5);
    auto emo = emo_loss(toy_z(), toy_t(), toy_e(), {.objective = emo_objective::emo});
    CHECK(emo.loss == doctest::Approx(0.288224).epsilon(1e-6));
    check_vec(emo.dlogits, {-0.064622, -0.053769, 0.096794, 0.021598}, 1e-5);
}

TEST_CASE("notes §2.4 toy: mode1, mode1_capped (the PyPI form) and mode2") {
    auto m1 = emo_loss(toy_z(), toy_t(), toy_e(), {.objective = emo_objective::mode1});
    CHECK(m1.loss == doctest::Approx(1.495182).epsilon(1e-6));
    check_vec(m1.dlogits, {-0.555512, 0.165265, 0.319056, 0.071191}, 1e-5);
    auto m2 = emo_loss(toy_z(), toy_t(), toy_e(), {.objective = emo_objective::mode2});
    CHECK(m2.loss == doctest::Approx(0.576448).epsilon(1e-6));
    check_vec(m2.dlogits, {-0.214170, 0.063716, 0.123008, 0.027447}, 1e-5);
    auto capped = emo_loss(toy_z(), toy_t(), toy_e(), {.objective = emo_objective::mode1_capped, .cap = 3.0});
    CHECK(capped.loss == doctest::Approx(1.179927).epsilon(1e-6));
    // grad = ½(∂mle + 3 ∂emo)
    const double dmle[] = {-0.775792, 0.609460, 0.135989, 0.030343};
    const double demo[] = {-0.064622, -0.053769, 0.096794, 0.021598};
    for (int k = 0; k < 4; ++k)
        CHECK(capped.dlogits.data()[k] == doctest::Approx(0.5 * (dmle[k] + 3 * demo[k])).epsilon(1e-5));
}

TEST_CASE("against a naive float64 implementation with the V×V cost matrix, and finite differences") {
    const std::size_t N = 5, V = 7, h = 3;
    rng g(11);
    xt::xarray<double> z = xt::xarray<double>::from_shape({N, V}), e = xt::xarray<double>::from_shape({V, h});
    for (auto& v : z) v = 4 * g.uniform() - 2;
    for (auto& v : e) v = 2 * g.uniform() - 1;
    xt::xarray<long> t = {3, -100, 0, 6, 2};
    for (auto obj : {emo_objective::ce, emo_objective::emo, emo_objective::mode1, emo_objective::mode1_capped,
                     emo_objective::mode2}) {
        const emo_options o{.objective = obj, .cap = 1.5};
        auto r = emo_loss(z, t, e, o);
        double loss = 0;
        std::size_t n = 0;
        for (std::size_t i = 0; i < N; ++i) {
            if (t(i) == -100) continue;
            ++n;
        }
        for (std::size_t i = 0; i < N; ++i) {
            std::vector<double> zi(V), tau(V, 0.0);
            for (std::size_t k = 0; k < V; ++k) zi[k] = z(i, k);
            if (t(i) == -100) {
                for (std::size_t k = 0; k < V; ++k) CHECK(r.dlogits(i, k) == 0.0);
                continue;
            }
            tau[static_cast<std::size_t>(t(i))] = 1;
            const auto ref = naive(zi, tau, e);
            double a = 0, b = 0;
            switch (obj) {
                case emo_objective::ce:
                    a = 1, b = 0;
                    break;
                case emo_objective::emo:
                    a = 0, b = 1;
                    break;
                case emo_objective::mode1:
                    a = 0.5, b = 0.5 * ref.ce / (ref.emo + 1e-10);
                    break;
                case emo_objective::mode1_capped:
                    a = 0.5, b = 0.5 * std::min(ref.ce / (ref.emo + 1e-10), 1.5);
                    break;
                case emo_objective::mode2:
                    a = ref.emo / (ref.ce + 1e-10), b = 1;
                    break;
            }
            loss += (a * ref.ce + b * ref.emo) / static_cast<double>(n);
            for (std::size_t k = 0; k < V; ++k) {
                CHECK(r.dlogits(i, k) ==
                      doctest::Approx((a * ref.dce[k] + b * ref.demo[k]) / static_cast<double>(n)).epsilon(1e-10));
            }
        }
        CHECK(r.loss == doctest::Approx(loss).epsilon(1e-12));
    }
    // finite differences of the value for the objectives without stop-gradient weights (check::vjp_check: every
    // logit, random directions; targets and embeddings held fixed in the lambdas). NaN policy of ops/emo.hpp: a
    // NaN logit makes its position's loss and gradient NaN; entry 0 is in row 0, which has a target.
    for (auto obj : {emo_objective::ce, emo_objective::emo}) {
        const emo_options o{.objective = obj};
        auto f = [&](const std::vector<xt::xarray<double>>& in) { return emo_loss(in[0], t, e, o).loss; };
        auto vjp = [&](const std::vector<xt::xarray<double>>& in, const xt::xarray<double>& dout) {
            return std::vector<xt::xarray<double>>{dout() * emo_loss(in[0], t, e, o).dlogits};
        };
        check::vjp_check_options c;
        c.rtol = 1e-7;
        c.nan_entries = 1;
        c.nan_grad = check::nan_gradient::entry_nonfinite;
        const auto r = check::vjp_check(f, vjp, {z}, c);
        INFO(r.message());
        CHECK(r);
    }
}

TEST_CASE("soft targets: the product-coupling bound without the V×V matrix; one-hot equals hard") {
    const std::size_t N = 3, V = 6, h = 4;
    rng g(12);
    xt::xarray<double> z = xt::xarray<double>::from_shape({N, V}), e = xt::xarray<double>::from_shape({V, h});
    xt::xarray<double> tau = xt::zeros<double>({N, V});
    for (auto& v : z) v = 4 * g.uniform() - 2;
    for (auto& v : e) v = 2 * g.uniform() - 1;
    for (std::size_t i = 0; i < N; ++i) {
        double s = 0;
        for (std::size_t k = 0; k < V; ++k) s += tau(i, k) = g.uniform();
        for (std::size_t k = 0; k < V; ++k) tau(i, k) /= s;
    }
    auto r = emo_loss(z, tau, e, {.objective = emo_objective::emo});
    double want = 0;
    for (std::size_t i = 0; i < N; ++i) {
        std::vector<double> zi(V), ti(V);
        for (std::size_t k = 0; k < V; ++k) zi[k] = z(i, k), ti[k] = tau(i, k);
        const auto ref = naive(zi, ti, e);
        want += ref.emo / N;
        for (std::size_t k = 0; k < V; ++k) CHECK(r.dlogits(i, k) == doctest::Approx(ref.demo[k] / N).epsilon(1e-10));
    }
    CHECK(r.loss == doctest::Approx(want).epsilon(1e-12));
    xt::xarray<double> onehot = xt::zeros<double>({N, V});
    xt::xarray<long> hard = {2, 0, 5};
    for (std::size_t i = 0; i < N; ++i) onehot(i, static_cast<std::size_t>(hard(i))) = 1;
    for (auto obj : {emo_objective::ce, emo_objective::mode1, emo_objective::mode2}) {
        auto a = emo_loss(z, onehot, e, {.objective = obj});
        auto b = emo_loss(z, hard, e, {.objective = obj});
        CHECK(a.loss == doctest::Approx(b.loss).epsilon(1e-12));
        for (std::size_t k = 0; k < a.dlogits.size(); ++k)
            CHECK(a.dlogits.data()[k] == doctest::Approx(b.dlogits.data()[k]).epsilon(1e-10));
    }
}

TEST_CASE("huge logits, zero embedding rows, float32, all positions ignored") {
    xt::xarray<double> e = toy_e();
    xt::xarray<double> z = {{1e4, -1e4, 0.0, 1e4 - 3}};
    auto r = emo_loss(z, toy_t(), e, {.objective = emo_objective::mode1});
    CHECK(std::isfinite(r.loss));
    for (double v : r.dlogits) CHECK(std::isfinite(v));
    xt::xarray<double> e0 = e;
    for (std::size_t j = 0; j < 3; ++j) e0(2, j) = 0;  // a padded vocabulary slot
    auto r0 = emo_loss(toy_z(), toy_t(), e0, {.objective = emo_objective::emo});
    CHECK(std::isfinite(r0.loss));
    for (double v : r0.dlogits) CHECK(std::isfinite(v));
    xt::xarray<float> zf = xt::cast<float>(toy_z());
    xt::xarray<float> ef = xt::cast<float>(e);
    auto rf = emo_loss(zf, toy_t(), ef, {.objective = emo_objective::mode1});
    CHECK(rf.loss == doctest::Approx(1.495182).epsilon(1e-5));
    CHECK(rf.emo >= 0.0);
    xt::xarray<long> none = {-100};
    auto ri = emo_loss(toy_z(), none, e);
    CHECK(ri.loss == 0.0);
    CHECK(ri.count == 0);
    for (double v : ri.dlogits) CHECK(v == 0.0);
}

TEST_CASE("bad input throws naming the shapes or the value") {
    xt::xarray<double> e = toy_e();
    xt::xarray<long> bad = {4};
    CHECK_THROWS_WITH_AS(emo_loss(toy_z(), bad, e),
                         "exprgrad::emo_loss: target 4 at position 0 is out of range for 4 classes",
                         std::invalid_argument);
    xt::xarray<long> two = {0, 1};
    CHECK_THROWS_WITH_AS(emo_loss(toy_z(), two, e),
                         "exprgrad::emo_loss: targets of shape (2,) do not match logits of shape (1, 4) (targets have "
                         "the logits' shape without the last axis)",
                         std::invalid_argument);
    xt::xarray<double> e5 = xt::zeros<double>({5, 3});
    CHECK_THROWS_WITH_AS(emo_loss(toy_z(), toy_t(), e5),
                         "exprgrad::emo_loss: cost embedding of shape (5, 3) does not match 4 classes of logits (1, 4) "
                         "(it must be [V, h])",
                         std::invalid_argument);
}

TEST_CASE("refused inputs (issue 16): bad soft targets, cap, objective, V = 0; each names the value") {
    auto message = [](auto&& f) {
        try {
            f();
        } catch (const std::invalid_argument& e) {
            return std::string(e.what());
        }
        return std::string("no exception");
    };
    const xt::xarray<double> e = toy_e();
    const xt::xarray<double> z = {{0.5, -1.0, 2.0, 0.0}, {1.0, 1.0, -0.5, 0.25}};
    // soft targets: a negative entry (even with row sum 1), a row sum off by more than 1e-4, NaN
    const xt::xarray<double> neg = {{0.25, 0.25, 0.25, 0.25}, {0.5, -0.25, 0.5, 0.25}};
    CHECK(message([&] { emo_loss(z, neg, e); }) ==
          "exprgrad::emo_loss: soft target row 1 has entry -0.25 at class 1 (soft targets must be >= 0)");
    const xt::xarray<double> sum09 = {{0.25, 0.25, 0.25, 0.25}, {0.3, 0.3, 0.2, 0.1}};
    CHECK(message([&] { emo_loss(z, sum09, e); }) ==
          "exprgrad::emo_loss: soft target row 1 sums to 0.9 (each row must sum to 1 within 1e-4)");
    const xt::xarray<double> twice = {{0.5, 0.5, 0.5, 0.5}, {0.25, 0.25, 0.25, 0.25}};
    CHECK(message([&] { emo_loss(z, twice, e); }).find("soft target row 0 sums to 2 ") != std::string::npos);
    xt::xarray<double> nan_t = {{0.25, 0.25, 0.25, 0.25}, {0.25, 0.25, 0.25, 0.25}};
    nan_t(0, 2) = std::numeric_limits<double>::quiet_NaN();
    CHECK(message([&] { emo_loss(z, nan_t, e); }).find("soft target row 0 has entry nan at class 2") !=
          std::string::npos);
    // within the tolerance is accepted (float rounding of a normalised row), and float targets too
    const xt::xarray<double> close = {{0.25, 0.25, 0.25, 0.25 + 5e-5}, {1.0, 0.0, 0.0, 0.0}};
    CHECK(std::isfinite(emo_loss(z, close, e).loss));
    const xt::xarray<float> zf = xt::cast<float>(z), ef = xt::cast<float>(e), tf = xt::cast<float>(sum09);
    CHECK(message([&] { emo_loss(zf, tf, ef); }).find("soft target row 1 sums to 0.9") != std::string::npos);
    // cap: NaN (silently no cap) and negative (flips the sign) refused for every objective; +inf is mode1
    const xt::xarray<long> t = {2, 0};
    for (const double cap : {std::numeric_limits<double>::quiet_NaN(), -1.0}) {
        for (auto obj : {emo_objective::mode1_capped, emo_objective::ce}) {
            const std::string m = message([&] { emo_loss(z, t, e, {.objective = obj, .cap = cap}); });
            CHECK(m == "exprgrad::emo_loss: cap must be >= 0 or +inf, got " + std::string(std::isnan(cap) ? "nan" : "-1"));
        }
    }
    const auto inf_cap = emo_loss(z, t, e, {.objective = emo_objective::mode1_capped,
                                            .cap = std::numeric_limits<double>::infinity()});
    const auto mode1 = emo_loss(z, t, e, {.objective = emo_objective::mode1});
    CHECK(inf_cap.loss == doctest::Approx(mode1.loss).epsilon(1e-12));
    const auto zero_cap = emo_loss(z, t, e, {.objective = emo_objective::mode1_capped, .cap = 0.0});
    CHECK(zero_cap.loss == doctest::Approx(0.5 * zero_cap.ce).epsilon(1e-12));  // ½(CE + 0·EMO)
    // an objective outside the enum (it gave loss 0 and zero gradients)
    CHECK(message([&] { emo_loss(z, t, e, {.objective = static_cast<emo_objective>(7)}); }) ==
          "exprgrad::emo_loss: objective must be ce, emo, mode1, mode1_capped or mode2, got the value 7");
    CHECK(message([&] { emo_loss(z, t, e, {.objective = static_cast<emo_objective>(-1)}); }).find("got the value -1") !=
          std::string::npos);
    // −inf logits (masked classes) are not refused and are exact: probability 0, as a logit of −1e4 (whose
    // exp is 0 in double too); NaN makes the position NaN (documented propagation, not refused).
    xt::xarray<double> masked = z, far = z;
    masked(0, 1) = -std::numeric_limits<double>::infinity();
    far(0, 1) = -1e4;
    for (auto obj : {emo_objective::ce, emo_objective::emo, emo_objective::mode1, emo_objective::mode2}) {
        const auto a = emo_loss(masked, t, e, {.objective = obj}), b = emo_loss(far, t, e, {.objective = obj});
        CHECK(std::isfinite(a.loss));
        CHECK(a.loss == b.loss);
        for (std::size_t i = 0; i < a.dlogits.size(); ++i) CHECK(a.dlogits.data()[i] == b.dlogits.data()[i]);
    }
    // V = 0: the logits are named, not the targets
    const xt::xarray<double> z0 = xt::zeros<double>({3, 0});
    const xt::xarray<long> t0 = {0, 0, 0};
    const xt::xarray<double> e0 = xt::zeros<double>({0, 3});
    CHECK(message([&] { emo_loss(z0, t0, e0); }) ==
          "exprgrad::emo_loss: logits of shape (3, 0) have no classes (V = 0): the last axis must be at least 1");
    // h = 0: every cost would be 1
    const xt::xarray<double> eh0 = xt::zeros<double>({4, 0});
    CHECK(message([&] { emo_loss(z, t, eh0); }) ==
          "exprgrad::emo_loss: cost embedding of shape (4, 0) has no features (h = 0): it must be [V, h] with h >= 1");
    const xt::xarray<double> s0 = xt::zeros<double>({3, 0});
    CHECK(message([&] { emo_loss(z0, s0, e0); }).find("have no classes (V = 0)") != std::string::npos);
}

TEST_CASE("the tensor node equals the eager kernel, inside value_and_grad") {
    const std::size_t N = 6, V = 9, h = 5, H = 4;
    rng g(13);
    xt::xarray<double> x = xt::xarray<double>::from_shape({N, H}), w = xt::xarray<double>::from_shape({H, V}),
                       e = xt::xarray<double>::from_shape({V, h});
    for (auto& v : x) v = 2 * g.uniform() - 1;
    for (auto& v : w) v = 2 * g.uniform() - 1;
    for (auto& v : e) v = 2 * g.uniform() - 1;
    xt::xarray<long> t = {1, 8, -100, 0, 4, 4};
    constexpr auto X = tensor<0>;
    constexpr auto W = tensor<1>;
    constexpr auto Y = tensor<2>;
    constexpr auto E = tensor<3>;
    auto prog = value_and_grad(ops::emo_loss<emo_objective::mode1>(matmul(X, W), Y, E), wrt<1, 3>);
    auto [loss, grads] = prog(x, w, t, e);
    xt::xarray<double> z = xt::zeros<double>({N, V});
    for (std::size_t i = 0; i < N; ++i)
        for (std::size_t k = 0; k < V; ++k)
            for (std::size_t j = 0; j < H; ++j) z(i, k) += x(i, j) * w(j, k);
    auto eager = emo_loss(z, t, e, {.objective = emo_objective::mode1});
    CHECK(loss == doctest::Approx(eager.loss).epsilon(1e-12));
    // dW = Xᵀ dZ
    for (std::size_t j = 0; j < H; ++j)
        for (std::size_t k = 0; k < V; ++k) {
            double want = 0;
            for (std::size_t i = 0; i < N; ++i) want += x(i, j) * eager.dlogits(i, k);
            CHECK(std::get<0>(grads)(j, k) == doctest::Approx(want).epsilon(1e-10));
        }
    // no gradient flows into the cost embedding (the adaptive variant detaches it)
    for (double v : std::get<1>(grads)) CHECK(v == 0.0);
    // The node's options are in its type; a negative cap is refused there too (it flipped the EMO term's sign).
    auto bad =
        value_and_grad(ops::emo_loss<emo_objective::mode1_capped, -100, sym::Const<-1>>(matmul(X, W), Y, E), wrt<1>);
    CHECK_THROWS_WITH_AS(bad(x, w, t, e), "exprgrad::emo_loss: cap must be >= 0 or +inf, got -1",
                         std::invalid_argument);
}

TEST_CASE("the tensor node with a non-default cost equals the eager kernel with that cost") {
    // c(x) = (1 − x)² + x/4, as in the naive-loop case above (which tests the eager kernel with it)
    const std::size_t N = 5, V = 7, h = 3;
    rng g(31);
    xt::xarray<double> z = xt::xarray<double>::from_shape({N, V}), e = xt::xarray<double>::from_shape({V, h});
    for (auto& v : z) v = 4 * g.uniform() - 2;
    for (auto& v : e) v = 2 * g.uniform() - 1;
    const xt::xarray<long> t = {3, -100, 6, 0, 3};
    constexpr auto Z = tensor<0>;
    constexpr auto Y = tensor<1>;
    constexpr auto E = tensor<2>;
    // docs-begin docs/emo.md
    using cost = decltype(sym::square(1_c - sym::var<0>) + sym::var<0> / 4_c);  // c(x) = (1 − x)² + x/4
    constexpr auto loss_expr = ops::emo_loss<emo_objective::mode2, -100, sym::Const<3>, cost>(Z, Y, E);
    auto [loss, grads] = value_and_grad(loss_expr, wrt<0>)(z, t, e);  // std::get<0>(grads): d/dZ
    // docs-end
    const auto eager = emo_loss<cost>(z, t, e, {.objective = emo_objective::mode2});
    CHECK(loss == doctest::Approx(eager.loss).epsilon(1e-12));
    for (std::size_t i = 0; i < z.size(); ++i) {
        INFO("entry " << i);
        CHECK(std::get<0>(grads).data()[i] == doctest::Approx(eager.dlogits.data()[i]).epsilon(1e-12));
    }
    // the node did not fall back to 1 − cos
    CHECK(std::fabs(loss - emo_loss(z, t, e, {.objective = emo_objective::mode2}).loss) > 1e-3);
}

TEST_CASE("refused inputs (issue 16): a +inf logit, a non-finite cost embedding, unsigned targets above int64") {
    auto message = [](auto&& f) {
        try {
            f();
        } catch (const std::invalid_argument& e) {
            return std::string(e.what());
        }
        return std::string("no exception");
    };
    const xt::xarray<double> e = toy_e();
    const xt::xarray<long> t = {2, 0};
    const double inf = std::numeric_limits<double>::infinity();
    // a +inf logit gave loss -nan: refused naming the row, the class and the value, for float and double
    xt::xarray<double> z = {{0.5, -1.0, 2.0, 0.0}, {1.0, 1.0, -0.5, 0.25}};
    z(1, 2) = inf;
    CHECK(message([&] { emo_loss(z, t, e); }) ==
          "exprgrad::emo_loss: logit inf in row 1 at class 2 (logits must be finite or -inf)");
    const xt::xarray<float> zf = xt::cast<float>(z), ef = xt::cast<float>(e);
    CHECK(message([&] { emo_loss(zf, t, ef); }).find("logit inf in row 1 at class 2") != std::string::npos);
    // an ignored position's logits are not read, so its +inf is no error
    const xt::xarray<long> t_ign = {2, -100};
    CHECK(std::isfinite(emo_loss(z, t_ign, e).loss));
    // soft targets go through the same row computation
    const xt::xarray<double> soft = {{0.25, 0.25, 0.25, 0.25}, {1.0, 0.0, 0.0, 0.0}};
    CHECK(message([&] { emo_loss(z, soft, e); }).find("logit inf in row 1") != std::string::npos);
    // a cost embedding entry inf or NaN made every cost NaN: the row and column are named (hard and soft)
    const xt::xarray<double> z_ok = {{0.5, -1.0, 2.0, 0.0}, {1.0, 1.0, -0.5, 0.25}};
    for (const double bad : {inf, -inf, std::numeric_limits<double>::quiet_NaN()}) {
        xt::xarray<double> eb = e;
        eb(3, 1) = bad;
        const std::string want = "exprgrad::emo_loss: cost embedding row 3 has entry " +
                                 std::string(std::isnan(bad) ? "nan" : bad > 0 ? "inf" : "-inf") +
                                 " at column 1 (entries must be finite)";
        CHECK(message([&] { emo_loss(z_ok, t, eb); }) == want);
        CHECK(message([&] { emo_loss(z_ok, soft, eb); }) == want);
    }
    // large finite float entries overflow the float sum of squares but are not refused (their row gives ê = 0)
    xt::xarray<float> ebig = ef;
    ebig(1, 0) = 1e30f;
    CHECK(std::isfinite(emo_loss(xt::xarray<float>(xt::cast<float>(z_ok)), t, ebig).loss));
    // unsigned targets: 2^64 - 100 is not ignore_index -100, 2^64 - 1 is not -1; both printed as given
    const xt::xarray<unsigned long> wrap100 = {2, static_cast<unsigned long>(-100L)};
    CHECK(message([&] { emo_loss(z_ok, wrap100, e); }) ==
          "exprgrad::emo_loss: target 18446744073709551516 at position 1 is out of range for 4 classes");
    const xt::xarray<unsigned long> max_u = {~0ul, 0};
    CHECK(message([&] { emo_loss(z_ok, max_u, e); }) ==
          "exprgrad::emo_loss: target 18446744073709551615 at position 0 is out of range for 4 classes");
    // in-range unsigned targets equal the signed ones
    const xt::xarray<unsigned long> tu = {2, 0};
    CHECK(emo_loss(z_ok, tu, e).loss == emo_loss(z_ok, t, e).loss);
}

TEST_CASE("to_string(emo_options): objective by name, ignore_index, cap") {
    // expected from the defaults declared in ops/emo_options.hpp: mode1, -100, 3.0
    CHECK(ops::to_string(emo_options{}) == "objective=mode1 ignore_index=-100 cap=3");
    const emo_options o{
        .objective = emo_objective::mode1_capped, .ignore_index = -1, .cap = std::numeric_limits<double>::infinity()};
    CHECK(ops::to_string(o) == "objective=mode1_capped ignore_index=-1 cap=inf");
    CHECK(ops::to_string(emo_options{.objective = emo_objective::ce, .cap = 0.9999}) ==
          "objective=ce ignore_index=-100 cap=0.9999");
    CHECK(ops::to_string(emo_objective::mode2) == "mode2");
    CHECK(ops::to_string(static_cast<emo_objective>(7)) == "emo_objective(7)");
    CHECK(field_count_v<emo_options> == 3);
}
