// The flex attention node inside value_and_grad: equal to the eager kernels in value and every gradient (the
// parameters' included), and central differences through check::gradcheck.
#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <tuple>
#include <vector>

#include <xtensor/xtensor.hpp>

#include <exprgrad/exprgrad.hpp>

using namespace exprgrad;

namespace {

xt::xarray<double> random_array(std::vector<std::size_t> shape, std::uint64_t seed) {
    xt::xarray<double> a = xt::xarray<double>::from_shape(shape);
    rng g(seed);
    for (auto& v : a) v = 2 * g.uniform() - 1;
    return a;
}

template <class A, class B>
double max_abs_diff(const A& a, const B& b) {
    REQUIRE(a.size() == b.size());
    double m = 0;
    for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(double(a.data()[i]) - double(b.data()[i])));
    return m;
}

constexpr auto alibi = attn::score - attn::param<0> * (attn::q_idx - attn::k_idx);
constexpr auto causal = attn::q_idx - attn::k_idx + 1_c;

}  // namespace

TEST_CASE("flex attention node: ALiBi slopes as graph inputs, value and gradients equal the eager kernels") {
    // GQA: 4 query heads on 2 key/value heads; key padding through a padded configuration.
    const auto q = random_array({2, 4, 5, 3}, 1), k = random_array({2, 2, 7, 3}, 2), v = random_array({2, 2, 7, 4}, 3);
    const auto w = random_array({2, 4, 5, 4}, 4);
    const xt::xarray<double> slopes = {0.5, 0.25, -0.125, 0.0625};
    const xt::xarray<int> len = {7, 4};
    using cfg = attention_config</*causal*/ false, false, scale_type::inv_sqrt_d, /*padded*/ true>;
    const auto y = flex_attention_node<cfg>(alibi, causal, tensor<0>, tensor<1>, tensor<2>, tensor<5>, tensor<3>);
    auto prog = value_and_grad(sum(y * tensor<4>), wrt<0, 1, 2, 3>);
    auto [loss, grads] = prog(q, k, v, slopes, w, len);
    const xt::xtensor<double, 4> qt = q, kt = k, vt = v, wt = w;
    attention_options o;
    o.key_lengths = {7, 4};
    const std::vector<xt::xtensor<double, 1>> params = {xt::xtensor<double, 1>(slopes)};
    const auto f = flex_attention_forward(qt, kt, vt, alibi, causal, params, o);
    CHECK(loss == doctest::Approx(xt::sum(f.out * wt)()).epsilon(1e-12));
    const auto g = flex_attention_vjp(qt, kt, vt, wt, alibi, causal, params, o);
    CHECK(max_abs_diff(std::get<0>(grads), g.dq) <= 1e-12);
    CHECK(max_abs_diff(std::get<1>(grads), g.dk) <= 1e-12);
    CHECK(max_abs_diff(std::get<2>(grads), g.dv) <= 1e-12);
    CHECK(max_abs_diff(std::get<3>(grads), g.dparams[0]) <= 1e-12);
}

TEST_CASE("flex attention node: gradcheck of q, k, v and two parameters (softcap scale and a bias per head)") {
    const auto q = random_array({1, 2, 4, 5}, 5), k = random_array({1, 1, 6, 5}, 6), v = random_array({1, 1, 6, 3}, 7);
    const xt::xarray<double> cap = {2.0, 3.0}, bias = {0.3, -0.2};
    constexpr auto mod = attn::param<0> * tanh(attn::score / attn::param<0>) + attn::param<1> * attn::k_idx;
    constexpr auto window = less(attn::q_idx - attn::k_idx, 3_c);  // keys no more than 3 behind (and all ahead)
    const auto y =
        flex_attention_node<attention_config<true>>(mod, window, tensor<0>, tensor<1>, tensor<2>, tensor<3>, tensor<4>);
    const auto r = check::gradcheck(sum(square(y)), q, k, v, cap, bias);
    INFO(r.message());
    CHECK(r.ok);
}
