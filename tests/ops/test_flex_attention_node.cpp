// The flex attention node inside value_and_grad: equal to the eager kernels in value and every gradient (the
// parameters' included), and central differences through check::gradcheck.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
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

namespace {

// Self-attention: one tensor X is q, k and v. The node writes dq into X's adjoint (its first contribution) and
// must add dk and dv to it, not overwrite; with X also read elsewhere, every contribution is added.
template <class Loss, class Ref>
void check_self_attention(Loss loss, Ref ref) {
    const auto x = random_array({2, 2, 6, 4}, 21), w = random_array({2, 2, 6, 4}, 22);
    const xt::xarray<double> slopes = {0.5, -0.25};
    auto prog = value_and_grad(loss, wrt<0, 1>);
    auto want = value_and_grad(tensors::unlowered(ref), wrt<0, 1>);
    const auto [l, g] = prog(x, slopes, w);
    const auto [lr, gr] = want(x, slopes, w);
    CHECK(l == doctest::Approx(lr).epsilon(1e-11));
    const auto& [dx, ds] = g;
    const auto& [dx_r, ds_r] = gr;
    CHECK(xt::amax(xt::abs(dx_r))() > 0.1);  // a sizeable gradient: the comparison below can fail
    CHECK(max_abs_diff(dx, dx_r) <= 1e-11 * xt::amax(xt::abs(dx_r))());
    CHECK(max_abs_diff(ds, ds_r) <= 1e-11 * std::max(1.0, double(xt::amax(xt::abs(ds_r))())));
}

}  // namespace

TEST_CASE("flex attention node: self-attention (q, k, v one tensor) matches the primitives in value and gradients") {
    constexpr auto X = tensor<0>;
    constexpr auto S = tensor<1>;  // slopes [H]
    constexpr auto W = tensor<2>;
    const auto y = flex_attention_node(alibi, causal, X, X, X, S);  // scale 1/√d = 0.5 at d = 4
    constexpr auto qk = matmul(X, tensors::transpose(X));
    constexpr auto i = iota<-2>(qk);
    constexpr auto j = iota<-1>(qk);
    constexpr auto scores = qk * fc<0.5> - reshape<-1, 1, 1>(S) * (i - j);
    constexpr auto minus_inf = fc<-std::numeric_limits<double>::infinity()>;
    constexpr auto ref = matmul(softmax(where(less_equal(j, i), scores, minus_inf)), X);
    SUBCASE("the node is X's only reader") { check_self_attention(sum(y * W), sum(ref * W)); }
    SUBCASE("X is also read elsewhere") {
        check_self_attention(sum(y * W) + sum(square(X)), sum(ref * W) + sum(square(X)));
    }
}
