// The attention node inside value_and_grad: equal to the eager kernels, and gradcheck through a
// projection, causal and cosine configurations.
#include <doctest/doctest.h>

#include <xtensor/xtensor.hpp>

#include "exprgrad/exprgrad.hpp"
#include "exprgrad/ops/attention_node.hpp"

using namespace exprgrad;

namespace {
xt::xarray<double> random4(std::size_t b, std::size_t h, std::size_t t, std::size_t d, std::uint64_t seed) {
    xt::xarray<double> a = xt::xarray<double>::from_shape({b, h, t, d});
    rng g(seed);
    for (auto& v : a) v = 2 * g.uniform() - 1;
    return a;
}
}  // namespace

TEST_CASE("attention node: value and gradients against the eager kernels") {
    const auto q = random4(2, 2, 5, 3, 1), k = random4(2, 2, 7, 3, 2), v = random4(2, 2, 7, 4, 3),
               w = random4(2, 2, 5, 4, 4);
    constexpr auto Q = tensor<0>;
    constexpr auto K = tensor<1>;
    constexpr auto Vv = tensor<2>;
    constexpr auto Wt = tensor<3>;
    auto prog = value_and_grad(sum(tex::attention_node<attention_config<true>>(Q, K, Vv) * Wt), wrt<0, 1, 2>);
    auto [loss, grads] = prog(q, k, v, w);
    const xt::xtensor<double, 4> qt = q, kt = k, vt = v, wt = w;
    const attention_options o{.causal = true};
    auto fwd = attention_forward(qt, kt, vt, o);
    double want = 0;
    for (std::size_t i = 0; i < fwd.out.size(); ++i) want += fwd.out.data()[i] * wt.data()[i];
    CHECK(loss == doctest::Approx(want).epsilon(1e-12));
    auto g = attention_vjp(qt, kt, vt, fwd.out, fwd.lse, wt, o);
    for (std::size_t i = 0; i < g.dq.size(); ++i)
        CHECK(std::get<0>(grads).data()[i] == doctest::Approx(g.dq.data()[i]).epsilon(1e-12));
    for (std::size_t i = 0; i < g.dk.size(); ++i)
        CHECK(std::get<1>(grads).data()[i] == doctest::Approx(g.dk.data()[i]).epsilon(1e-12));
    for (std::size_t i = 0; i < g.dv.size(); ++i)
        CHECK(std::get<2>(grads).data()[i] == doctest::Approx(g.dv.data()[i]).epsilon(1e-12));
}

TEST_CASE("attention node: gradcheck, full and cosine attention with the gradient-maximizing scale") {
    const auto q = random4(1, 2, 4, 5, 5), k = random4(1, 2, 6, 5, 6), v = random4(1, 2, 6, 3, 7);
    auto r1 = check::gradcheck(sum(square(tex::attention_node(tensor<0>, tensor<1>, tensor<2>))), q, k, v);
    INFO(r1.message());
    CHECK(r1.ok);
    using cosine = attention_config<false, true, scale_type::gradient_max>;
    auto r2 = check::gradcheck(sum(square(tex::attention_node<cosine>(tensor<0>, tensor<1>, tensor<2>))), q, k, v);
    INFO(r2.message());
    CHECK(r2.ok);
}
