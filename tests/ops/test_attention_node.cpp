// The attention node inside value_and_grad: equal to the eager kernels, and gradcheck through a
// projection, causal and cosine configurations.
#include <doctest/doctest.h>

#include <xtensor/xtensor.hpp>

#include "exprgrad/exprgrad.hpp"
#include "exprgrad/ops/attention_node.hpp"

using namespace exprgrad;
using namespace exprgrad::ops;

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
    auto prog = value_and_grad(sum(ops::attention_node<attention_config<true>>(Q, K, Vv) * Wt), wrt<0, 1, 2>);
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
    auto r1 = check::gradcheck(sum(square(ops::attention_node(tensor<0>, tensor<1>, tensor<2>))), q, k, v);
    INFO(r1.message());
    CHECK(r1.ok);
    using cosine = attention_config<false, true, scale_type::gradient_max>;
    auto r2 = check::gradcheck(sum(square(ops::attention_node<cosine>(tensor<0>, tensor<1>, tensor<2>))), q, k, v);
    INFO(r2.message());
    CHECK(r2.ok);
}

TEST_CASE("attention node: key padding and the post's single n = T_k/2, against the eager kernels") {
    const auto q = random4(2, 2, 6, 5, 11), k = random4(2, 2, 6, 5, 12), v = random4(2, 2, 6, 3, 13),
               w = random4(2, 2, 6, 3, 14);
    xt::xarray<int> len = {4, 6};
    using cfg = attention_config<true, false, scale_type::gradient_max_n<scale_n::half_length>, true>;
    auto prog = value_and_grad(sum(ops::attention_node<cfg>(tensor<0>, tensor<1>, tensor<2>, tensor<4>) * tensor<3>),
                               wrt<0, 1, 2>);
    auto [loss, grads] = prog(q, k, v, w, len);
    const xt::xtensor<double, 4> qt = q, kt = k, vt = v, wt = w;
    attention_options o{.causal = true, .scale = scale::gradient_max(scale_n::half_length), .key_lengths = {4, 6}};
    auto fwd = attention_forward(qt, kt, vt, o);
    double want = 0;
    for (std::size_t i = 0; i < fwd.out.size(); ++i) want += fwd.out.data()[i] * wt.data()[i];
    CHECK(loss == doctest::Approx(want).epsilon(1e-12));
    auto g = attention_vjp(qt, kt, vt, fwd.out, fwd.lse, wt, o);
    for (std::size_t i = 0; i < g.dk.size(); ++i)
        CHECK(std::get<1>(grads).data()[i] == doctest::Approx(g.dk.data()[i]).epsilon(1e-12));
    // Padded keys get no gradient and change nothing.
    for (std::size_t h = 0; h < 2; ++h)
        for (std::size_t j = 4; j < 6; ++j)
            for (std::size_t c = 0; c < 5; ++c) CHECK(std::get<1>(grads)(0, h, j, c) == 0.0);
    auto r = check::gradcheck(sum(square(ops::attention_node<cfg>(tensor<0>, tensor<1>, tensor<2>, tensor<3>))), q, k,
                              v, len);
    INFO(r.message());
    CHECK(r.ok);
    xt::xarray<int> bad = {4, 7};  // longer than T_k = 6
    CHECK_THROWS_WITH_AS(prog(q, k, v, w, bad), doctest::Contains("exceeds T_k"), std::invalid_argument);
    xt::xarray<int> negative = {-1, 2};
    CHECK_THROWS_WITH_AS(prog(q, k, v, w, negative), doctest::Contains("-1"), std::exception);
}

TEST_CASE("attention node: a learnable scale log s and its gradient") {
    const auto q = random4(1, 2, 5, 4, 21), k = random4(1, 2, 7, 4, 22), v = random4(1, 2, 7, 3, 23),
               w = random4(1, 2, 5, 3, 24);
    xt::xarray<double> log_s = xt::xarray<double>::from_shape({1});
    log_s(0) = std::log(0.8);
    using cfg = attention_config<true, true, scale_type::learned>;  // causal cosine attention, s learned
    auto prog = value_and_grad(sum(ops::attention_node<cfg>(tensor<0>, tensor<1>, tensor<2>, tensor<4>) * tensor<3>),
                               wrt<0, 4>);
    auto [loss, grads] = prog(q, k, v, w, log_s);
    const xt::xtensor<double, 4> qt = q, kt = k, vt = v, wt = w;
    attention_options o{.causal = true, .normalize_qk = true, .scale = scale::fixed(0.8)};
    auto fwd = attention_forward(qt, kt, vt, o);
    double want = 0;
    for (std::size_t i = 0; i < fwd.out.size(); ++i) want += fwd.out.data()[i] * wt.data()[i];
    CHECK(loss == doctest::Approx(want).epsilon(1e-12));
    auto g = attention_vjp(qt, kt, vt, fwd.out, fwd.lse, wt, o);
    CHECK(std::get<1>(grads)(0) == doctest::Approx(g.dlog_scale).epsilon(1e-12));
    CHECK(std::get<1>(grads)(0) == doctest::Approx(0.8 * g.dscale).epsilon(1e-12));
    // Central differences in log s on the loss itself (the program's gradient buffers are reused by later calls,
    // so the VJP copies them out). Only the derivative is in question here: the NaN checks are off.
    auto f = [&](const std::vector<xt::xarray<double>>& x) { return std::get<0>(prog(q, k, v, w, x[0])); };
    auto vjp = [&](const std::vector<xt::xarray<double>>& x, const xt::xarray<double>& dout) {
        const xt::xarray<double> g_log = std::get<1>(std::get<1>(prog(q, k, v, w, x[0])));
        return std::vector<xt::xarray<double>>{dout() * g_log};
    };
    check::vjp_check_options c;
    c.rtol = 1e-7;
    c.nan_entries = 0;
    const auto fd = check::vjp_check(f, vjp, {log_s}, c);
    INFO(fd.message());
    CHECK(fd);
    auto r = check::gradcheck(sum(square(ops::attention_node<cfg>(tensor<0>, tensor<1>, tensor<2>, tensor<3>))), q,
                              k, v, log_s);
    INFO(r.message());
    CHECK(r.ok);
}

TEST_CASE("attention node: scores that overflow the type throw naming the row, not NaN (issue 16)") {
    auto q = random4(1, 2, 5, 3, 11), k = random4(1, 2, 7, 3, 12);
    const auto v = random4(1, 2, 7, 4, 13), w = random4(1, 2, 5, 4, 14);
    for (std::size_t x = 0; x < 3; ++x) q(0, 1, 2, x) = 1e200, k(0, 1, 0, x) = 1e200;  // 1e400 in a score
    auto prog = value_and_grad(
        sum(ops::attention_node<attention_config<true>>(tensor<0>, tensor<1>, tensor<2>) * tensor<3>), wrt<0, 1, 2>);
    CHECK_THROWS_WITH_AS(prog(q, k, v, w),
                         doctest::Contains("exprgrad::attention_forward: scores overflow double at batch 0 head 1 row 2,"),
                         std::overflow_error);
}
