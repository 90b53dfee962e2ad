// The run-time transformer stack (nn/transformer.hpp): its VJP against central finite differences in
// float64 (attention and DEER blocks, an n-dependent scale policy), a self-attention layer against a naive
// loop implementation, causality, and the errors for bad shapes.
#include <doctest/doctest.h>

#include <cmath>
#include <memory>
#include <stdexcept>
#include <vector>

#include <xtensor/xarray.hpp>

#include "exprgrad/exprgrad.hpp"
#include "exprgrad/nn/transformer.hpp"

using namespace exprgrad;

namespace {

xt::xarray<double> randn(std::initializer_list<std::size_t> shape, rng& gen) {
    xt::xarray<double> a = xt::xarray<double>::from_shape(shape);
    nn::init::normal(a, gen, 0.0, 1.0);
    return a;
}

double dot(const xt::xarray<double>& a, const xt::xarray<double>& b) {
    double s = 0;
    for (std::size_t i = 0; i < a.size(); ++i) s += a.data()[i] * b.data()[i];
    return s;
}

// Two blocks of width 8 with 2 heads; DEER blocks of state width 4.
nn::transformer_options small(bool causal, std::vector<std::size_t> deer_layers) {
    nn::transformer_options o;
    o.layers = 2;
    o.width = 8;
    o.heads = 2;
    o.attention.causal = causal;
    o.deer_layers = std::move(deer_layers);
    o.deer_state = 4;
    return o;
}

}  // namespace

TEST_CASE("transformer stack: VJP of input and every parameter equals central differences (float64)") {
    rng gen(3);
    nn::parameter_set<double> params;
    nn::transformer_options o = small(true, {1});
    o.attention.scale = scale::gradient_max();
    auto s = nn::transformer<double>(params, "tf", o, gen);
    REQUIRE(s.deer.size() == 1);
    const xt::xarray<double> x = randn({2, 5, 8}, gen), w = randn({2, 5, 8}, gen);
    auto loss = [&](const xt::xarray<double>& in) { return dot(s.blocks->forward(in), w); };
    loss(x);
    params.zero_grad();
    const xt::xarray<double> dx = s.blocks->backward(w);
    CHECK(s.deer[0]->last_report().converged);
    CHECK_FALSE(s.deer[0]->last_report().fallback);
    const double h = 1e-6;
    auto close = [](double fd, double an) { return std::abs(fd - an) <= 1e-6 * (1 + std::abs(an)); };
    for (std::size_t i = 0; i < x.size(); ++i) {
        xt::xarray<double> xp = x, xm = x;
        xp.data()[i] += h;
        xm.data()[i] -= h;
        const double fd = (loss(xp) - loss(xm)) / (2 * h);
        INFO("dx[", i, "]");
        CHECK(close(fd, dx.data()[i]));
    }
    for (auto& p : params) {
        const xt::xarray<double> g = p.grad;
        for (std::size_t i = 0; i < p.value.size(); i += 3) {
            const double v = p.value.data()[i];
            p.value.data()[i] = v + h;
            const double lp = loss(x);
            p.value.data()[i] = v - h;
            const double lm = loss(x);
            p.value.data()[i] = v;
            INFO(p.name, "[", i, "]");
            CHECK(close((lp - lm) / (2 * h), g.data()[i]));
        }
    }
}

TEST_CASE("self-attention layer equals a naive loop implementation") {
    rng gen(5);
    nn::parameter_set<double> params;
    const std::size_t B = 2, T = 4, D = 6, H = 3, dh = D / H;
    for (bool causal : {false, true}) {
        nn::parameter_set<double> ps;
        attention_options ao;
        ao.causal = causal;
        auto layer = nn::self_attention_layer<double>(ps, "a", D, H, ao, gen);
        auto& g = ps.at("a.norm").value;
        for (std::size_t i = 0; i < D; ++i) g(i) = 0.5 + 0.1 * static_cast<double>(i);
        const auto& Wqkv = ps.at("a.qkv").value;
        const auto& Wo = ps.at("a.out").value;
        const xt::xarray<double> x = randn({B, T, D}, gen);
        const xt::xarray<double> y = layer->forward(x);
        for (std::size_t b = 0; b < B; ++b) {
            // rms_norm then the projection
            xt::xarray<double> qkv = xt::zeros<double>({T, 3 * D});
            for (std::size_t t = 0; t < T; ++t) {
                double ms = 0;
                for (std::size_t i = 0; i < D; ++i) ms += x(b, t, i) * x(b, t, i) / D;
                const double r = 1.0 / std::sqrt(ms + 1e-6);
                for (std::size_t j = 0; j < 3 * D; ++j)
                    for (std::size_t i = 0; i < D; ++i) qkv(t, j) += x(b, t, i) * r * g(i) * Wqkv(i, j);
            }
            xt::xarray<double> o = xt::zeros<double>({T, D});
            for (std::size_t hh = 0; hh < H; ++hh)
                for (std::size_t t = 0; t < T; ++t) {
                    std::vector<double> p(T, 0.0);
                    double mx = -1e300, z = 0;
                    const std::size_t last = causal ? t : T - 1;
                    for (std::size_t u = 0; u <= last; ++u) {
                        double sc = 0;
                        for (std::size_t i = 0; i < dh; ++i) sc += qkv(t, hh * dh + i) * qkv(u, D + hh * dh + i);
                        p[u] = sc / std::sqrt(static_cast<double>(dh));
                        mx = std::max(mx, p[u]);
                    }
                    for (std::size_t u = 0; u <= last; ++u) z += (p[u] = std::exp(p[u] - mx));
                    for (std::size_t u = 0; u <= last; ++u)
                        for (std::size_t i = 0; i < dh; ++i)
                            o(t, hh * dh + i) += p[u] / z * qkv(u, 2 * D + hh * dh + i);
                }
            for (std::size_t t = 0; t < T; ++t)
                for (std::size_t j = 0; j < D; ++j) {
                    double want = 0;
                    for (std::size_t i = 0; i < D; ++i) want += o(t, i) * Wo(i, j);
                    CHECK(y(b, t, j) == doctest::Approx(want).epsilon(1e-12));
                }
        }
    }
}

TEST_CASE("causal blocks: outputs before position t do not depend on inputs at t") {
    rng gen(9);
    nn::parameter_set<double> params;
    auto s = nn::transformer<double>(params, "tf", small(true, {0}), gen);
    xt::xarray<double> x = randn({1, 6, 8}, gen);
    const xt::xarray<double> y0 = s.blocks->forward(x);
    for (std::size_t i = 0; i < 8; ++i) x(0, 3, i) += 1.0;
    const xt::xarray<double> y1 = s.blocks->forward(x);
    for (std::size_t t = 0; t < 6; ++t) {
        double diff = 0;
        for (std::size_t i = 0; i < 8; ++i) diff = std::max(diff, std::abs(y1(0, t, i) - y0(0, t, i)));
        if (t < 3) {
            CHECK(diff == 0.0);
        } else {
            CHECK(diff > 1e-3);
        }
    }
}

TEST_CASE("transformer and its layers refuse bad shapes with a message") {
    rng gen(1);
    nn::parameter_set<float> params;
    CHECK_THROWS_WITH_AS(nn::transformer<float>(params, "a", {.layers = 1, .width = 10, .heads = 3}, gen),
                         doctest::Contains("heads = 3"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(
        nn::transformer<float>(params, "b", {.layers = 2, .width = 8, .heads = 2, .deer_layers = {2}}, gen),
        doctest::Contains("deer layer 2"), std::invalid_argument);
    auto s = nn::transformer<float>(params, "c", {.layers = 1, .width = 8, .heads = 2}, gen);
    CHECK_THROWS_WITH_AS(s.blocks->forward(xt::zeros<float>({2, 3, 6})), doctest::Contains("[B, T, 8]"),
                         std::invalid_argument);
    nn::residual<float> r(nn::feed_forward<float>(params, "ff", 4, 8, gen));
    CHECK(r.forward(xt::ones<float>({1, 2, 4})).shape(2) == 4);
}

TEST_CASE("key padding: real positions do not depend on the padded tokens, and equal the unpadded run") {
    rng gen(21);
    nn::parameter_set<double> params;
    // bidirectional: without key padding every position would see the pads
    auto s = nn::transformer<double>(params, "tf", small(false, {}), gen);
    REQUIRE(s.attention.size() == 2);
    const xt::xarray<double> real = randn({1, 4, 8}, gen);
    xt::xarray<double> padded = xt::zeros<double>({2, 6, 8});
    for (std::size_t b = 0; b < 2; ++b)
        for (std::size_t t = 0; t < 6; ++t)
            for (std::size_t i = 0; i < 8; ++i) padded(b, t, i) = t < 4 ? real(0, t, i) : 5.0 * (double(b) + 1);
    s.set_key_lengths({});
    const xt::xarray<double> want = s.blocks->forward(real);
    s.set_key_lengths({4, 4});
    const xt::xarray<double> got = s.blocks->forward(padded);
    for (std::size_t b = 0; b < 2; ++b)
        for (std::size_t t = 0; t < 4; ++t)
            for (std::size_t i = 0; i < 8; ++i) CHECK(got(b, t, i) == doctest::Approx(want(0, t, i)).epsilon(1e-12));
    // and the gradient with respect to the padded tokens of a loss on the real positions is zero
    xt::xarray<double> w = xt::zeros<double>({2, 6, 8});
    for (std::size_t b = 0; b < 2; ++b)
        for (std::size_t t = 0; t < 4; ++t)
            for (std::size_t i = 0; i < 8; ++i) w(b, t, i) = 1.0 + double(i);
    const xt::xarray<double> dx = s.blocks->backward(w);
    double pad_grad = 0;
    for (std::size_t b = 0; b < 2; ++b)
        for (std::size_t t = 4; t < 6; ++t)
            for (std::size_t i = 0; i < 8; ++i) pad_grad = std::max(pad_grad, std::abs(dx(b, t, i)));
    CHECK(pad_grad == 0.0);
}
