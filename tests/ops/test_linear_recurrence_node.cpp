// The linear-recurrence node inside tensor programs: its value equals a plain loop written here for
// every map kind (per step, shared, scalar, dense), its gradients equal the closed-form AR(1)
// adjoint and pass gradcheck with nodes upstream and downstream, and bad shapes throw.
#include <doctest/doctest.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include <xtensor/xarray.hpp>

#include "exprgrad/check/gradcheck.hpp"
#include "exprgrad/exprgrad.hpp"
#include "exprgrad/ops/linear_recurrence_node.hpp"

using namespace exprgrad;
using namespace exprgrad::ops;

namespace {

xt::xarray<double> uniform(std::vector<std::size_t> shape, std::uint64_t seed, double lo, double hi) {
    xt::xarray<double> a = xt::xarray<double>::from_shape(shape);
    rng g(seed);
    for (auto& v : a) v = lo + (hi - lo) * g.uniform();
    return a;
}

// y_t = M_t y_{t−1} + b_t from y_{−1} = 0, with the map of step t read by `map(s, t, i, j)`.
template <class Map>
xt::xarray<double> loop(const xt::xarray<double>& b, Map map) {
    const std::size_t rank = b.dimension(), B = rank == 3 ? b.shape(0) : 1,
                      T = rank == 1 ? b.shape(0) : b.shape(rank - 2), n = rank == 1 ? 1 : b.shape(rank - 1);
    xt::xarray<double> y = xt::xarray<double>::from_shape(b.shape());
    for (std::size_t s = 0; s < B; ++s) {
        std::vector<double> prev(n, 0.0);
        for (std::size_t t = 0; t < T; ++t) {
            std::vector<double> cur(n);
            for (std::size_t i = 0; i < n; ++i) {
                double v = b.data()[(s * T + t) * n + i];
                for (std::size_t j = 0; j < n; ++j) v += map(s, t, i, j) * prev[j];
                cur[i] = v;
            }
            prev = cur;
            for (std::size_t i = 0; i < n; ++i) y.data()[(s * T + t) * n + i] = cur[i];
        }
    }
    return y;
}

bool close(const xt::xarray<double>& a, const xt::xarray<double>& b) {
    return a.shape() == b.shape() && xt::allclose(a, b, 1e-12, 1e-13);
}

constexpr auto rec = ops::linear_recurrence(tensor<0>, tensor<1>);

}  // namespace

TEST_CASE("linear_recurrence node: the value equals the plain loop for every kind of map") {
    const std::size_t B = 2, T = 9, n = 3;
    auto prog = tensors::compile<double>(rec, wrt<0, 1>);
    SUBCASE("per step, [T]") {
        const auto m = uniform({T}, 1, -0.9, 0.9), b = uniform({T}, 2, -1, 1);
        const auto& y = prog.forward(m, b);
        const auto want = loop(b, [&](auto, auto t, auto, auto) { return m(t); });
        CHECK(close(xt::adapt(y.data, y.size(), xt::no_ownership(), want.shape()), want));
    }
    SUBCASE("per step, [B, T, n]") {
        const auto m = uniform({B, T, n}, 3, -0.9, 0.9), b = uniform({B, T, n}, 4, -1, 1);
        const auto& y = prog.forward(m, b);
        const auto want = loop(b, [&](auto s, auto t, auto i, auto j) { return i == j ? m(s, t, i) : 0.0; });
        CHECK(close(xt::adapt(y.data, y.size(), xt::no_ownership(), want.shape()), want));
    }
    SUBCASE("shared over time, [n] with [T, n] and [B, n] with [B, T, n]") {
        const auto m = uniform({n}, 5, -0.9, 0.9), b = uniform({T, n}, 6, -1, 1);
        const auto& y = prog.forward(m, b);
        const auto want = loop(b, [&](auto, auto, auto i, auto j) { return i == j ? m(i) : 0.0; });
        CHECK(close(xt::adapt(y.data, y.size(), xt::no_ownership(), want.shape()), want));
        const auto mb = uniform({B, n}, 7, -0.9, 0.9), bb = uniform({B, T, n}, 8, -1, 1);
        const auto& y2 = prog.forward(mb, bb);
        const auto want2 = loop(bb, [&](auto s, auto, auto i, auto j) { return i == j ? mb(s, i) : 0.0; });
        CHECK(close(xt::adapt(y2.data, y2.size(), xt::no_ownership(), want2.shape()), want2));
    }
    SUBCASE("one value for everything: a number, a 0-d array and a [1] array") {
        const auto b = uniform({B, T, n}, 9, -1, 1);
        const auto want = loop(b, [&](auto, auto, auto i, auto j) { return i == j ? 0.7 : 0.0; });
        for (int form = 0; form < 3; ++form) {
            CAPTURE(form);
            const auto& y = form == 0   ? prog.forward(0.7, b)
                            : form == 1 ? prog.forward(xt::xarray<double>(0.7), b)
                                        : prog.forward(xt::xarray<double>{0.7}, b);
            CHECK(close(xt::adapt(y.data, y.size(), xt::no_ownership(), want.shape()), want));
        }
    }
    SUBCASE("dense, [T, n, n] and [B, T, n, n]") {
        const auto m = uniform({T, n, n}, 10, -0.5, 0.5), b = uniform({T, n}, 11, -1, 1);
        const auto& y = prog.forward(m, b);
        const auto want = loop(b, [&](auto, auto t, auto i, auto j) { return m(t, i, j); });
        CHECK(close(xt::adapt(y.data, y.size(), xt::no_ownership(), want.shape()), want));
        const auto mb = uniform({B, T, n, n}, 12, -0.5, 0.5), bb = uniform({B, T, n}, 13, -1, 1);
        const auto& y2 = prog.forward(mb, bb);
        const auto want2 = loop(bb, [&](auto s, auto t, auto i, auto j) { return mb(s, t, i, j); });
        CHECK(close(xt::adapt(y2.data, y2.size(), xt::no_ownership(), want2.shape()), want2));
    }
}

TEST_CASE("linear_recurrence node: AR(1) gradients equal the closed-form adjoint") {
    // L = Σ_t w_t h_t with h_t = φ h_{t−1} + e_t: λ_t = w_t + φ λ_{t+1}, ∂L/∂e = λ,
    // ∂L/∂φ = Σ_{t≥1} λ_t h_{t−1}.
    const std::size_t T = 40;
    const double phi = 0.93;
    const auto e = uniform({T}, 21, -1, 1), w = uniform({T}, 22, -1, 1);
    auto prog = value_and_grad(sum(rec * tensor<2>), wrt<0, 1>);
    auto [value, grads] = prog(phi, e, w);
    std::vector<double> h(T), lam(T);
    for (std::size_t t = 0; t < T; ++t) h[t] = (t ? phi * h[t - 1] : 0.0) + e(t);
    for (std::size_t t = T; t-- > 0;) lam[t] = w(t) + (t + 1 < T ? phi * lam[t + 1] : 0.0);
    double want_value = 0, want_dphi = 0;
    for (std::size_t t = 0; t < T; ++t) want_value += w(t) * h[t];
    for (std::size_t t = 1; t < T; ++t) want_dphi += lam[t] * h[t - 1];
    CHECK(value == doctest::Approx(want_value).epsilon(1e-13));
    CHECK(std::get<0>(grads)() == doctest::Approx(want_dphi).epsilon(1e-12));
    for (std::size_t t = 0; t < T; ++t) CHECK(std::get<1>(grads)(t) == doctest::Approx(lam[t]).epsilon(1e-12));
}

TEST_CASE("linear_recurrence node: gradcheck for every kind of map, with nodes around it") {
    const std::size_t B = 2, T = 8, n = 3;
    // maps through tanh keep |M| < 1; the output goes through a nonlinearity so the adjoint varies
    constexpr auto f = sum(tanh(ops::linear_recurrence(tanh(tensor<0>), tensor<1> * tensor<2>)));
    SUBCASE("per step") {
        auto r = check::gradcheck(f, uniform({B, T, n}, 31, -1, 1), uniform({B, T, n}, 32, -1, 1),
                                  uniform({B, T, n}, 33, -1, 1));
        CHECK_MESSAGE(r.ok, r.message());
    }
    SUBCASE("shared") {
        auto r = check::gradcheck(f, uniform({B, n}, 34, -1, 1), uniform({B, T, n}, 35, -1, 1),
                                  uniform({B, T, n}, 36, -1, 1));
        CHECK_MESSAGE(r.ok, r.message());
        auto r2 = check::gradcheck(f, uniform({n}, 37, -1, 1), uniform({T, n}, 38, -1, 1), uniform({T, n}, 39, -1, 1));
        CHECK_MESSAGE(r2.ok, r2.message());
    }
    SUBCASE("scalar") {
        auto r =
            check::gradcheck(f, uniform({1}, 40, -1, 1), uniform({B, T, n}, 41, -1, 1), uniform({B, T, n}, 42, -1, 1));
        CHECK_MESSAGE(r.ok, r.message());
        auto r2 = check::gradcheck(f, uniform({1}, 43, -1, 1), uniform({T}, 44, -1, 1), uniform({T}, 45, -1, 1));
        CHECK_MESSAGE(r2.ok, r2.message());
    }
    SUBCASE("offsets that also feed another node (their adjoint is accumulated, not overwritten)") {
        constexpr auto h = sum(tanh(ops::linear_recurrence(tanh(tensor<0>), tensor<1>))) + sum(square(tensor<1>));
        auto r = check::gradcheck(h, uniform({B, T, n}, 48, -1, 1), uniform({B, T, n}, 49, -1, 1));
        CHECK_MESSAGE(r.ok, r.message());
    }
    SUBCASE("dense") {
        constexpr auto g = sum(tanh(ops::linear_recurrence(tensor<0>, tensor<1>)));
        auto r = check::gradcheck(g, uniform({B, T, n, n}, 46, -0.4, 0.4), uniform({B, T, n}, 47, -1, 1));
        CHECK_MESSAGE(r.ok, r.message());
    }
}

TEST_CASE("linear_recurrence node: shapes that do not fit throw naming the op and both shapes") {
    auto prog = tensors::compile<double>(rec, wrt<0, 1>);
    auto message = [&](const xt::xarray<double>& m, const xt::xarray<double>& b) {
        try {
            prog.forward(m, b);
        } catch (const std::invalid_argument& e) {
            return std::string(e.what());
        }
        return std::string("no exception");
    };
    const auto b = uniform({5, 3}, 51, -1, 1);
    const std::string w = message(xt::xarray<double>::from_shape({6, 3}), b);
    CHECK(w.find("linear_recurrence") != std::string::npos);
    CHECK(w.find("(6, 3)") != std::string::npos);
    CHECK(w.find("(5, 3)") != std::string::npos);
    CHECK(message(xt::xarray<double>::from_shape({2}), b) != "no exception");
    CHECK(message(xt::xarray<double>::from_shape({5, 3, 2}), b) != "no exception");
    CHECK(message(xt::xarray<double>::from_shape({1, 1}), xt::xarray<double>::from_shape({1, 1, 1, 1})) !=
          "no exception");
    CHECK(message(xt::xarray<double>(0.5), xt::xarray<double>(1.0)) != "no exception");
}

TEST_CASE("linear_recurrence node: NaN in the offsets propagates forward from its step on") {
    auto prog = tensors::compile<double>(rec, wrt<0, 1>);
    xt::xarray<double> b = {1.0, std::nan(""), 2.0};
    const auto& y = prog.forward(0.5, b);
    CHECK(y.data[0] == 1.0);
    CHECK(std::isnan(y.data[1]));
    CHECK(std::isnan(y.data[2]));
}
