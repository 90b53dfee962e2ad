// The self-attention layer with flex attention's modifications (nn/self_attention.hpp): a mask written as a
// modification equals the options' mask through the other kernels, and a learnable modification's gradient
// equals central differences of the layer's loss.
#include <doctest/doctest.h>

#include <cmath>
#include <stdexcept>
#include <vector>

#include <xtensor/xarray.hpp>

#include "exprgrad/exprgrad.hpp"
#include "exprgrad/nn/self_attention.hpp"

using namespace exprgrad;

namespace {
xt::xarray<double> randn(std::initializer_list<std::size_t> shape, rng& gen) {
    xt::xarray<double> a = xt::xarray<double>::from_shape(shape);
    nn::init::normal(a, gen, 0.0, 1.0);
    return a;
}
constexpr auto causal = attn::q_idx - attn::k_idx + 1_c;
constexpr auto alibi = attn::score - attn::param<0> * (attn::q_idx - attn::k_idx);
}  // namespace

TEST_CASE("flex self-attention: a causal mask_mod equals the causal option (value, input and parameter gradients)") {
    rng g1(5), g2(5), data(6);
    nn::parameter_set<double> p1, p2;
    auto plain = nn::self_attention_layer<double>(p1, "a", 8, 2, {.causal = true}, g1);
    auto flex = nn::self_attention_layer<double>(p2, "a", 8, 2, attn::score, causal, {}, {}, g2);
    const auto x = randn({2, 5, 8}, data), dy = randn({2, 5, 8}, data);
    CHECK(xt::allclose(plain->forward(x), flex->forward(x), 1e-12, 1e-14));
    p1.zero_grad();
    p2.zero_grad();
    CHECK(xt::allclose(plain->backward(dy), flex->backward(dy), 1e-12, 1e-14));
    for (std::size_t i = 0; i < p1.size(); ++i) CHECK(xt::allclose(p1[i].grad, p2[i].grad, 1e-12, 1e-14));
}

TEST_CASE("flex self-attention: ALiBi slopes are learned parameters; their gradient equals central differences") {
    rng gen(7), data(8);
    nn::parameter_set<double> params;
    const xt::xtensor<double, 1> slopes = {0.25, 0.0625};
    auto layer = nn::self_attention_layer<double>(params, "a", 8, 2, alibi, causal, {}, {slopes}, gen);
    nn::parameter<double>& s = params.at("a.mod0");
    const auto x = randn({2, 6, 8}, data), w = randn({2, 6, 8}, data);
    auto loss = [&] { return xt::sum(layer->forward(x) * w)(); };
    loss();
    params.zero_grad();
    layer->backward(w);
    for (std::size_t h = 0; h < 2; ++h) {
        const double keep = s.value(h), step = 1e-6;
        s.value(h) = keep + step;
        const double up = loss();
        s.value(h) = keep - step;
        const double down = loss();
        s.value(h) = keep;
        CHECK(s.grad(h) == doctest::Approx((up - down) / (2 * step)).epsilon(1e-6));
        CHECK(s.grad(h) != 0.0);
    }
}

TEST_CASE("flex self-attention: the modification's parameters are checked at construction") {
    rng gen(9);
    nn::parameter_set<double> params;
    CHECK_THROWS_WITH_AS(nn::self_attention_layer<double>(params, "a", 8, 2, alibi, causal, {}, {}, gen),
                         doctest::Contains("the score modification reads 1 parameters, got 0"), std::invalid_argument);
    nn::parameter_set<double> other;
    CHECK_THROWS_WITH_AS(nn::self_attention_layer<double>(other, "a", 8, 2, alibi, causal, {},
                                                          {xt::xtensor<double, 1>{1.0, 2.0, 3.0}}, gen),
                         doctest::Contains("needs heads = 2 values, got 3"), std::invalid_argument);
}
