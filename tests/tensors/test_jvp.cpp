// Forward mode (jvp) and exact Hessian-vector products (hvp) of tensor programs (#24):
//   - per node family, the JVP against central differences of the value, and the HVP of sum(E ⊙ R) (R a
//     fixed random array, so the whole second derivative of E is exercised) against check::hvp, the central
//     differences of the compiled gradient;
//   - small models against Hessians and tangents written by hand: logistic regression, softmax regression
//     with cross-entropy (an ignored row), a 2-layer tanh MLP (JVP in both weights);
//   - NaN propagation and the errors of a bad tangent or a non-scalar loss.
// Tolerances (float64): a central difference with h = 1e-5 has truncation error h²/6·|f'''| ≈ 2e-11·|f'''| and
// rounding error ≈ ε·|f|/h ≈ 2e-11·|f|; check::hvp (h ≈ 6e-6 relative) is documented at about 1e-9 relative.
// Values here are O(1)-O(10), so 1e-6 relative to 1 + max|reference| leaves three orders of margin while any
// wrong rule (a missing term, a wrong sign or factor) is off by O(1). The hand-written references use the
// same arithmetic up to summation order: 1e-12.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <tuple>

#include <xtensor/xarray.hpp>
#include <xtensor/xtensor.hpp>

#include "exprgrad/check/hvp.hpp"
#include "exprgrad/exprgrad.hpp"
#include "random_arrays.hpp"

using namespace exprgrad;

namespace {
constexpr auto X = tensor<0>;
constexpr auto W = tensor<1>;

xt::xarray<double> random_like(const xt::xarray<double>& a, std::uint64_t seed) {
    xt::xarray<double> r = test_util::random_array({a.size()}, seed);
    r.reshape(a.shape());
    return r;
}

// Same shape and max |a − b| ≤ tol · (1 + max |b|); false on any NaN.
bool close(const xt::xarray<double>& a, const xt::xarray<double>& b, double tol) {
    if (a.shape() != b.shape()) return false;
    double err = 0, scale = 1;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const double d = std::abs(a.data()[i] - b.data()[i]);
        if (!(d <= err)) err = d;  // NaN sticks
        scale = std::max(scale, std::abs(b.data()[i]) + 1);
    }
    return err <= tol * scale;
}

// The checks of one node family: E's JVP in argument I against central differences of E's value, and the HVP
// of sum(E ⊙ R) (R the argument after E's own) against check::hvp; also dd = Σ dy ⊙ R.
template <int I, class E, class... Args>
void check_family(E e, const std::tuple<Args...>& args, std::uint64_t seed) {
    const xt::xarray<double>& x = std::get<I>(args);
    const xt::xarray<double> v = random_like(x, seed);
    auto J = jvp(e, wrt<I>);
    const auto [y, dy] = std::apply([&](const auto&... a) { return J(a..., v); }, args);
    auto at = [&](double s) {  // the value at x + s·v, from the same program
        auto shifted = args;
        std::get<I>(shifted) = x + s * v;
        return std::apply([&](const auto&... a) { return J(a..., v).first; }, shifted);
    };
    const double h = 1e-5;
    const xt::xarray<double> fd = (at(h) - at(-h)) / (2 * h);
    CHECK(close(y, at(0), 1e-12));
    CHECK(close(dy, fd, 1e-6));

    constexpr int n = static_cast<int>(sizeof...(Args));
    const auto loss = sum(e * tensor<n>);
    const xt::xarray<double> r = random_like(y, seed + 1);
    auto H = hvp(loss, wrt<I>);
    const auto [dd, hv] = std::apply([&](const auto&... a) { return H(a..., r, v); }, args);
    CHECK(dd == doctest::Approx(xt::sum(dy * r)()).epsilon(1e-10));
    auto H_fd = check::hvp(loss, wrt<I>);
    const xt::xarray<double> ref = std::apply([&](const auto&... a) { return H_fd(v, a..., r); }, args);
    CHECK(close(std::get<0>(hv), ref, 1e-6));
}

xt::xarray<double> rnd(std::initializer_list<std::size_t> shape, std::uint64_t seed) {
    return test_util::random_array(shape, seed);
}
}  // namespace

TEST_CASE("jvp and hvp of maps with broadcasting") {
    check_family<0>(sin(X * W) + X * X * W / (2_c + exp(X)), std::tuple{rnd({3, 4}, 1), rnd({4}, 2)}, 3);
    check_family<1>(sin(X * W) + softplus(X * W), std::tuple{rnd({3, 4}, 1), rnd({4}, 2)}, 4);
}

TEST_CASE("jvp and hvp of matmul: both operands, batched") {
    check_family<0>(matmul(X, transpose(X)), std::tuple{rnd({3, 4}, 5)}, 6);
    check_family<0>(matmul(tanh(X), permute<0, 2, 1>(X)), std::tuple{rnd({2, 3, 4}, 7)}, 8);
}

TEST_CASE("jvp and hvp of reductions: sum, mean, max, logsumexp over an axis and over everything") {
    check_family<0>(sum<1>(X * X) + mean<1>(X * X * X) + max<1>(X) * max<1>(X) + logsumexp<1>(X * X),
                    std::tuple{rnd({3, 4}, 9)}, 10);
    check_family<0>(logsumexp<0>(X) * max<0>(X) + logsumexp(X) * max(X * X) + mean(X) * sum<0>(X),
                    std::tuple{rnd({3, 4}, 11)}, 12);
}

TEST_CASE("jvp and hvp of softmax and log_softmax, last and first axis") {
    check_family<0>(softmax(X) * log_softmax<0>(X) + softmax<0>(X * X), std::tuple{rnd({3, 4}, 13)}, 14);
}

TEST_CASE("jvp and hvp of rms_norm and layer_norm, input and weight") {
    constexpr auto G = tensor<1>;
    constexpr auto B = tensor<2>;
    const std::tuple args{rnd({3, 4}, 15), rnd({4}, 16), rnd({4}, 17)};
    check_family<0>(rms_norm(X, G) * layer_norm(X, G, B), args, 18);
    check_family<1>(rms_norm(X, G) * layer_norm(X, G, B), args, 19);
}

TEST_CASE("jvp and hvp of cross_entropy with an ignored row") {
    const xt::xarray<std::int64_t> t = {2, -1, 0, 3};
    check_family<0>(cross_entropy<-1>(X * X, tensor<1>), std::tuple{rnd({4, 5}, 20), t}, 21);
}

TEST_CASE("jvp and hvp of the layout primitives: permute, reshape, slice, concat, where, take_along_axis") {
    const auto laid = concat<1>(permute<1, 0>(reshape<4, 3>(X)), slice<1>(X, 1_c, 3_c));
    const auto picked = take_along_axis<1>(X, tensor<1>);
    const auto chosen = where(greater(X, W * 0_c), X * X, sin(X)) + where(less(X, W * 0_c), X, fc<-3.0>);
    const xt::xarray<std::int64_t> idx = {{3, 0}, {1, 1}, {2, 0}};
    check_family<0>(concat<1>(laid * laid, sin(picked) * picked), std::tuple{rnd({3, 4}, 22), idx}, 23);
    check_family<0>(chosen * chosen, std::tuple{rnd({3, 4}, 24), rnd({4}, 25)}, 26);
}

TEST_CASE("jvp and hvp: one_hot, comparisons and stop_gradient carry no tangent, embedding carries the table's") {
    const xt::xarray<std::int64_t> t = {1, 0, 3};
    check_family<0>(one_hot(tensor<1>, 4_c) * X * X + greater(X, X * X) * X, std::tuple{rnd({3, 4}, 27), t}, 28);
    // stop_gradient(x)·x has the tangent stop_gradient(x)·v, as its VJP treats stop_gradient(x) as a constant (so
    // finite differences of the value, which see x move inside it, are no reference here): the HVP of
    // sum(x · stop_gradient(x)) is 0, not 2v, and its directional derivative x·v, not 2x·v
    auto H = hvp(sum(X * stop_gradient(X)), wrt<0>);
    const xt::xarray<double> x = rnd({5}, 29), v = rnd({5}, 30);
    const auto [dd, hv] = H(x, v);
    CHECK(dd == doctest::Approx(xt::sum(x * v)()).epsilon(1e-12));
    CHECK(close(std::get<0>(hv), xt::zeros<double>({5}), 0));
    const xt::xarray<std::int64_t> rows = {{2, 0}, {1, 1}};
    check_family<0>(square(embedding(X, tensor<1>)), std::tuple{rnd({3, 4}, 31), rows}, 32);
}

// Logistic regression, f(w) = mean(softplus(Xw) − y·Xw): ∇f = Xᵀ(p − y)/n, H = Xᵀ diag(p(1 − p)) X / n.
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
