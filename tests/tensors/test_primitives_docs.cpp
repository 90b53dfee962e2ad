// The example of docs/tensor.md's "Primitives" section, compiled and run: ALiBi causal attention
// written with reshape, permute, batched matmul, iota, greater and where, its value against a naive
// loop and its gradients against gradcheck; and a steady-state call that allocates nothing. Keep the
// block between the markers identical to the docs.
#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <vector>

#include <xtensor/xarray.hpp>

#include "alloc_counter.hpp"
#include "exprgrad/exprgrad.hpp"
#include "random_arrays.hpp"

using namespace exprgrad;
using test_util::random_array;

TEST_CASE("docs/tensor.md: ALiBi attention from the primitives") {
    const std::size_t B = 2, T = 4, NH = 2, D = 4;
    const auto q = random_array({B, T, NH * D}, 121), k = random_array({B, T, NH * D}, 122),
               v = random_array({B, T, NH * D}, 123);
    xt::xarray<double> slopes = {0.5, 0.25};
    slopes.reshape({NH, 1, 1});
    // docs-begin docs/tensor.md
    // ALiBi causal self-attention written with the primitives: Q, K, V [B, T, H·D], the head count H
    // passed at run time, one slope per head m [H, 1, 1]
    constexpr auto Q = tensor<0>;
    constexpr auto K = tensor<1>;
    constexpr auto V = tensor<2>;
    constexpr auto H = tensor<3>;
    constexpr auto m = tensor<4>;
    constexpr auto heads = [](auto x) { return permute<0, 2, 1, 3>(reshape(x, 0_c, 0_c, H, -1_c)); };  // [B, H, T, D]
    constexpr auto s = matmul(heads(Q), transpose(heads(K))) * c<1, 2>;  // [B, H, T, T], 1/sqrt(D) for D = 4
    constexpr auto dist = iota<-1>(s) - iota<-2>(s);                     // j - i
    constexpr auto future = greater(iota<-1>(s), iota<-2>(s));           // key j after query i
    constexpr auto p = softmax(where(future, fc<-1e30>, s + m * dist));
    constexpr auto out = reshape(permute<0, 2, 1, 3>(matmul(p, heads(V))), 0_c, 0_c, -1_c);  // [B, T, H·D]
    auto prog = value_and_grad(sum(square(out)), wrt<0, 1, 2, 4>);
    auto [loss, grads] = prog(q, k, v, 2, slopes);  // dL/dQ, dL/dK, dL/dV, dL/dm
    // docs-end

    // naive: per batch, head and query, softmax over the keys j <= i of q·k/2 + m_h (j - i)
    double want = 0;
    for (std::size_t b = 0; b < B; ++b)
        for (std::size_t h = 0; h < NH; ++h)
            for (std::size_t i = 0; i < T; ++i) {
                std::vector<double> sc(i + 1);
                double mx = -1e300, z = 0;
                for (std::size_t j = 0; j <= i; ++j) {
                    double dot = 0;
                    for (std::size_t d = 0; d < D; ++d) dot += q(b, i, h * D + d) * k(b, j, h * D + d);
                    sc[j] = dot / 2 + slopes(h, 0, 0) * (static_cast<double>(j) - static_cast<double>(i));
                    mx = std::max(mx, sc[j]);
                }
                for (std::size_t j = 0; j <= i; ++j) z += std::exp(sc[j] - mx);
                for (std::size_t d = 0; d < D; ++d) {
                    double o = 0;
                    for (std::size_t j = 0; j <= i; ++j) o += std::exp(sc[j] - mx) / z * v(b, j, h * D + d);
                    want += o * o;
                }
            }
    CHECK(loss == doctest::Approx(want).epsilon(1e-12));
    CHECK(std::get<0>(grads).shape() == q.shape());
    CHECK(std::get<3>(grads).shape() == slopes.shape());
    const auto r = check::gradcheck(sum(square(out)), wrt<0, 1, 2, 4>, q, k, v, 2, slopes);
    INFO(r.message());
    CHECK(r.ok);

    // the same program in float (another instantiation of every node) agrees to float precision
    auto prog_f = value_and_grad(sum(square(out)), wrt<0, 1, 2, 4>);
    const xt::xarray<float> qf = q, kf = k, vf = v, sf = slopes;
    auto [loss_f, grads_f] = prog_f(qf, kf, vf, 2, sf);
    CHECK(static_cast<double>(loss_f) == doctest::Approx(want).epsilon(1e-4));
    const auto& dq_f = std::get<0>(grads_f);
    const auto& dq = std::get<0>(grads);
    for (std::size_t i = 0; i < dq.size(); ++i)
        CHECK(static_cast<double>(dq_f.data()[i]) == doctest::Approx(dq.data()[i]).epsilon(1e-3).scale(1));

    // a steady-state call allocates nothing, also in the index primitives
    constexpr auto X = tensor<0>;
    constexpr auto I = tensor<1>;
    auto gather =
        value_and_grad(sum(square(take_along_axis<-1>(slice<1>(X, 1_c, 3_c), I))) + sum(one_hot(I, 3_c)), wrt<0>);
    const auto x = random_array({2, 4, 3}, 124);
    xt::xarray<int> idx = {{2, 0}, {1, 1}};
    idx.reshape({2, 2, 1});
    (void)prog(q, k, v, 2, slopes);
    (void)gather(x, idx);
    const long before = exprgrad_test::allocation_count();
    (void)prog(q, k, v, 2, slopes);
    (void)gather(x, idx);
    const long after = exprgrad_test::allocation_count();
    if (exprgrad_test::alloc_counting_enabled()) {
        CHECK(after == before);
    } else {
        MESSAGE("allocation counting is off under AddressSanitizer");
    }
}
