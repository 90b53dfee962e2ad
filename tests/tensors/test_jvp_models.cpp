// jvp and hvp of small models against Hessians and tangents written by hand (1e-12), NaN propagation, the
// errors of a bad tangent or a non-scalar loss, and the docs/tensor.md example (jvp_check.hpp for the helpers).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <tuple>

#include <xtensor/xarray.hpp>
#include <xtensor/xtensor.hpp>

#include "jvp_check.hpp"

using namespace exprgrad;
using namespace jvp_check;

TEST_CASE("hvp of logistic regression equals the Hessian written by hand") {
    constexpr auto Y = tensor<2>;
    const auto z = matmul(X, W);
    auto H = hvp(mean(softplus(z) - Y * z), wrt<1>);
    const xt::xarray<double> x = rnd({6, 3}, 40), w = rnd({3, 1}, 41), v = rnd({3, 1}, 42);
    const xt::xarray<double> y = xt::xtensor<double, 2>{{1.}, {0.}, {0.}, {1.}, {1.}, {0.}};
    double hess[3][3] = {}, grad[3] = {};
    for (std::size_t i = 0; i < 6; ++i) {
        double zi = 0;
        for (std::size_t k = 0; k < 3; ++k) zi += x(i, k) * w(k, 0);
        const double p = 1 / (1 + std::exp(-zi));
        for (std::size_t a = 0; a < 3; ++a) {
            grad[a] += x(i, a) * (p - y(i, 0)) / 6;
            for (std::size_t b = 0; b < 3; ++b) hess[a][b] += p * (1 - p) * x(i, a) * x(i, b) / 6;
        }
    }
    xt::xarray<double> ref = xt::zeros<double>({3, 1});
    double dd_ref = 0;
    for (std::size_t a = 0; a < 3; ++a) {
        dd_ref += grad[a] * v(a, 0);
        for (std::size_t b = 0; b < 3; ++b) ref(a, 0) += hess[a][b] * v(b, 0);
    }
    const auto [dd, hv] = H(x, w, y, v);
    CHECK(dd == doctest::Approx(dd_ref).epsilon(1e-12));
    CHECK(close(std::get<0>(hv), ref, 1e-12));
}

// Softmax regression, f(W) = mean over counted rows of cross_entropy(XW, t): per row, H·V = xᵀ(p⊙u − p(p·u))
// with u = xV, p = softmax(xW).
TEST_CASE("hvp of softmax regression with cross_entropy equals the hand-written product") {
    auto H = hvp(cross_entropy(matmul(X, W), tensor<2>), wrt<1>);
    const xt::xarray<double> x = rnd({5, 3}, 43), w = rnd({3, 4}, 44), v = rnd({3, 4}, 45);
    const xt::xarray<std::int64_t> t = {1, -100, 3, 0, 1};
    xt::xarray<double> ref = xt::zeros<double>({3, 4});
    for (std::size_t i = 0; i < 5; ++i) {
        if (t(i) == -100) continue;
        double p[4], u[4], zmax = -1e300, s = 0, pu = 0;
        for (std::size_t c = 0; c < 4; ++c) {
            p[c] = u[c] = 0;
            for (std::size_t k = 0; k < 3; ++k) p[c] += x(i, k) * w(k, c), u[c] += x(i, k) * v(k, c);
            zmax = std::max(zmax, p[c]);
        }
        for (double& pc : p) s += pc = std::exp(pc - zmax);
        for (std::size_t c = 0; c < 4; ++c) p[c] /= s, pu += p[c] * u[c];
        for (std::size_t k = 0; k < 3; ++k)
            for (std::size_t c = 0; c < 4; ++c) ref(k, c) += x(i, k) * (p[c] * u[c] - p[c] * pu) / 4;
    }
    const auto [dd, hv] = H(x, w, t, v);
    CHECK(close(std::get<0>(hv), ref, 1e-12));
}

// A 2-layer tanh MLP, out = tanh(X W1) W2: d out = ((1 − h²) ⊙ (X dW1)) W2 + h dW2.
TEST_CASE("jvp of a 2-layer MLP in both weights equals the chain rule by hand; its loss's hvp, jointly") {
    constexpr auto W2 = tensor<2>;
    const auto out = matmul(tanh(matmul(X, W)), W2);
    const xt::xarray<double> x = rnd({4, 3}, 50), w1 = rnd({3, 5}, 51), w2 = rnd({5, 2}, 52);
    const xt::xarray<double> v1 = rnd({3, 5}, 53), v2 = rnd({5, 2}, 54);
    auto J = jvp(out, wrt<1, 2>);
    const auto [y, dy] = J(x, w1, w2, v1, v2);
    xt::xarray<double> ref = xt::zeros<double>({4, 2});
    for (std::size_t i = 0; i < 4; ++i) {
        for (std::size_t j = 0; j < 5; ++j) {
            double a = 0, da = 0;
            for (std::size_t k = 0; k < 3; ++k) a += x(i, k) * w1(k, j), da += x(i, k) * v1(k, j);
            const double hj = std::tanh(a), dh = (1 - hj * hj) * da;
            for (std::size_t c = 0; c < 2; ++c) ref(i, c) += dh * w2(j, c) + hj * v2(j, c);
        }
    }
    CHECK(close(dy, ref, 1e-12));

    // the joint Hessian of a cross-entropy on the MLP, cross blocks included, against finite differences
    const xt::xarray<std::int64_t> t = {0, 1, 1, 0};
    const auto loss = cross_entropy(out, tensor<3>);
    auto H = hvp(loss, wrt<1, 2>);
    const auto [dd, hv] = H(x, w1, w2, t, v1, v2);
    const auto ref_hv = check::hvp(loss, wrt<1, 2>)(std::tuple{v1, v2}, x, w1, w2, t);
    CHECK(close(std::get<0>(hv), std::get<0>(ref_hv), 1e-6));
    CHECK(close(std::get<1>(hv), std::get<1>(ref_hv), 1e-6));

    // bad input: a tangent of the wrong shape names the operation and the argument
    const xt::xarray<double> wrong = rnd({5, 3}, 55);
    CHECK_THROWS_WITH_AS(J(x, w1, w2, wrong, v2),
                         "exprgrad::jvp: the tangent of argument 1 (argument 3 of the call) has shape (5, 3), but "
                         "argument 1 has shape (3, 5)",
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(H(x, w1, w2, t, v1, wrong),
                         "exprgrad::hvp: the tangent of argument 2 (argument 5 of the call) has shape (5, 3), but "
                         "argument 2 has shape (5, 2)",
                         std::invalid_argument);
}

TEST_CASE("jvp and hvp propagate NaN; hvp refuses a loss with several elements") {
    auto J = jvp(matmul(X, W), wrt<1>);
    const xt::xarray<double> x = rnd({2, 3}, 60), w = rnd({3, 2}, 61);
    xt::xarray<double> v = rnd({3, 2}, 62);
    v(1, 0) = std::numeric_limits<double>::quiet_NaN();
    const auto [y, dy] = J(x, w, v);
    CHECK(std::isnan(dy(0, 0)));  // column 0 reads the NaN, column 1 does not
    CHECK(std::isnan(dy(1, 0)));
    CHECK(std::isfinite(dy(0, 1)));
    CHECK(std::isfinite(y(0, 0)));

    auto H = hvp(sum(exp(matmul(X, W))), wrt<1>);
    xt::xarray<double> xn = x;
    xn(0, 0) = std::numeric_limits<double>::quiet_NaN();
    const auto [dd, hv] = H(xn, w, rnd({3, 2}, 63));
    CHECK(std::isnan(dd));
    CHECK(std::isnan(std::get<0>(hv)(0, 0)));

    auto H2 = hvp(exp(matmul(X, W)), wrt<1>);
    CHECK_THROWS_WITH_AS(H2(x, w, w),
                         "exprgrad::hvp: the differentiated expression must have one element, but has shape (2, 2) "
                         "(reduce it with sum or mean)",
                         std::invalid_argument);
}

TEST_CASE("the docs/tensor.md example of jvp and hvp") {
    const xt::xarray<double> xv = rnd({4, 3}, 70), wv = rnd({3, 1}, 71), vv = rnd({3, 1}, 72);
    // docs-begin docs/tensor.md
    auto J = jvp(tanh(matmul(X, W)), wrt<1>);         // forward mode in W
    auto [y, dy] = J(xv, wv, vv);                     // y = tanh(x·w), dy = (1 − y²) ⊙ (x·v)
    auto H = hvp(mean(square(matmul(X, W))), wrt<1>); // exact H·v: reverse mode over the tangent
    auto [dd, hv] = H(xv, wv, vv);                    // dd = ∇f·v, std::get<0>(hv) = H·v = 2 xᵀx v / n
    // docs-end
    xt::xarray<double> xw = xt::zeros<double>({4, 1}), xvv = xt::zeros<double>({4, 1}), ref = xt::zeros<double>({3, 1});
    for (std::size_t i = 0; i < 4; ++i)
        for (std::size_t k = 0; k < 3; ++k) xw(i, 0) += xv(i, k) * wv(k, 0), xvv(i, 0) += xv(i, k) * vv(k, 0);
    for (std::size_t k = 0; k < 3; ++k)
        for (std::size_t i = 0; i < 4; ++i) ref(k, 0) += 2 * xv(i, k) * xvv(i, 0) / 4;
    CHECK(close(y, xt::tanh(xw), 1e-12));
    CHECK(close(dy, (1 - xt::tanh(xw) * xt::tanh(xw)) * xvv, 1e-12));
    CHECK(dd == doctest::Approx(xt::sum(2 * xw * xvv)() / 4).epsilon(1e-12));
    CHECK(close(std::get<0>(hv), ref, 1e-12));
}
