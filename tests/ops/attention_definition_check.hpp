// The comparison shared by the attention_definition tests (split over six translation units to keep each
// under about 25 s and 1.5 GB of compiler memory): attention_definition<Cfg> against attention_forward / attention_vjp.
// What is compared: attention_definition (ops/attention_definition.hpp), the DSL form of attention, against the fused
// kernels: out, dq, dk, dv (and ∂L/∂log s for the learned scale) equal attention_forward / attention_vjp for every
// scale policy, causal on and off, key padding (a fully padded entry included), T_q = T_k, T_q < T_k and
// T_q > T_k (causal rows that attend nothing), and cosine attention.
//
// Tolerance: both sides compute in double the same sums (a softmax over T_k ≤ 9 keys of d ≤ 8 products,
// then T_k products), in different orders (the kernel blocks and pre-multiplies q by s, the engine forms
// s·(Q·Kᵀ) with BLAS), and the definition's gradient_max α* comes from five Newton steps (3e-16 relative).
// The rounding of each side is a few hundred ulp at most (≈ (d + T_k)·2.2e-16 per value, times the
// gradient's chain of three products), so 1e-12 relative to the largest entry leaves a 10× margin and still
// fails on any wrong term (a missed mask, a wrong scale or offset changes entries by 1e-3 or more).
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include <xtensor/xarray.hpp>
#include <xtensor/xsort.hpp>
#include <xtensor/xtensor.hpp>

#include "exprgrad/exprgrad.hpp"
#include "exprgrad/ops/attention_definition.hpp"
#include "random_arrays.hpp"
#include "scaled_error.hpp"

namespace attention_definition_check {

using namespace exprgrad;
using namespace exprgrad::ops;
using test_util::random_array;
using test_util::scaled_error;

struct sizes {
    std::size_t B, H, Tq, Tk, d, dv;
};


constexpr double tol = 1e-12;

// One comparison: the program of sum(attention_definition<Cfg>(Q, K, V, ...) * W), compiled as written
// (tensors::unlowered: without it the program would run the attention node, see test_attention_lowering.cpp),
// differentiated with respect to Q, K, V, W (dL/dW is the definition's output) and log s, against the kernels with dout = W.
template <class Cfg>
void check_against_kernel(const sizes& z, const std::vector<std::size_t>& lengths, std::uint64_t seed,
                          double log_s = std::log(0.7)) {
    CAPTURE(z.B);
    CAPTURE(z.H);
    CAPTURE(z.Tq);
    CAPTURE(z.Tk);
    CAPTURE(z.d);
    CAPTURE(z.dv);
    const auto q = random_array({z.B, z.H, z.Tq, z.d}, seed, -1.5, 1.5);
    const auto k = random_array({z.B, z.H, z.Tk, z.d}, seed + 1, -1.5, 1.5);
    const auto v = random_array({z.B, z.H, z.Tk, z.dv}, seed + 2, 0.25, 1.25);  // rows of out are >= 0.25
    const auto w = random_array({z.B, z.H, z.Tq, z.dv}, seed + 3);
    xt::xarray<int> len = xt::xarray<int>::from_shape({lengths.size()});
    std::copy(lengths.begin(), lengths.end(), len.begin());
    xt::xarray<double> ls = log_s;

    constexpr auto Q = tensor<0>;
    constexpr auto K = tensor<1>;
    constexpr auto V = tensor<2>;
    constexpr auto W = tensor<3>;
    attention_options o = Cfg::options();
    o.key_lengths = lengths;
    double dlog_s = 0;
    xt::xarray<double> out, dq, dk, dv;
    auto take = [&](auto&& r) {
        auto& [loss, g] = r;
        (void)loss;
        dq = std::get<0>(g), dk = std::get<1>(g), dv = std::get<2>(g), out = std::get<3>(g);
        if constexpr (Cfg::learned_scale) dlog_s = static_cast<double>(std::get<4>(g)());
    };
    if constexpr (Cfg::padded && Cfg::learned_scale) {
        take(value_and_grad(tensors::unlowered(sum(attention_definition<Cfg>(Q, K, V, tensor<4>, tensor<5>) * W)), wrt<0, 1, 2, 3, 5>)(
            q, k, v, w, len, ls));
    } else if constexpr (Cfg::padded) {
        take(value_and_grad(tensors::unlowered(sum(attention_definition<Cfg>(Q, K, V, tensor<4>) * W)), wrt<0, 1, 2, 3>)(q, k, v, w, len));
    } else if constexpr (Cfg::learned_scale) {
        take(
            value_and_grad(tensors::unlowered(sum(attention_definition<Cfg>(Q, K, V, tensor<4>) * W)), wrt<0, 1, 2, 3, 4>)(q, k, v, w, ls));
    } else {
        take(value_and_grad(tensors::unlowered(sum(attention_definition<Cfg>(Q, K, V) * W)), wrt<0, 1, 2, 3>)(q, k, v, w));
    }
    if constexpr (Cfg::learned_scale) o.scale = scale::fixed(std::exp(log_s));

    const xt::xtensor<double, 4> qt = q, kt = k, vt = v, wt = w;
    const auto f = attention_forward(qt, kt, vt, o);
    const auto g = attention_vjp(qt, kt, vt, f.out, f.lse, wt, o);
    CHECK(scaled_error(out, f.out) <= tol);
    CHECK(scaled_error(dq, g.dq) <= tol);
    CHECK(scaled_error(dk, g.dk) <= tol);
    CHECK(scaled_error(dv, g.dv) <= tol);
    if constexpr (Cfg::learned_scale) CHECK(dlog_s == doctest::Approx(g.dlog_scale).epsilon(tol));
    // the comparison can fail: every row that attends a key has out >= 0.25 (a definition returning 0 fails)
    CHECK(xt::amax(f.out)() >= 0.25);
}

// The shapes each configuration is checked on: T_q = T_k, T_q < T_k, T_q > T_k (causal rows 0..1 attend
// nothing), and one query with one key.
const sizes same{2, 2, 5, 5, 4, 3}, wide{1, 3, 3, 7, 8, 5}, tall{2, 1, 6, 4, 3, 2}, tiny{1, 1, 1, 1, 1, 1};

template <class Cfg>
void check_shapes(std::uint64_t seed) {
    if constexpr (Cfg::padded) {
        check_against_kernel<Cfg>(same, {5, 2}, seed);
        check_against_kernel<Cfg>(wide, {4}, seed + 10);
        check_against_kernel<Cfg>(tall, {0, 3}, seed + 20);  // batch entry 0 fully padded: out = 0, dq = 0
        check_against_kernel<Cfg>(tiny, {1}, seed + 30);
    } else {
        check_against_kernel<Cfg>(same, {}, seed);
        check_against_kernel<Cfg>(wide, {}, seed + 10);
        check_against_kernel<Cfg>(tall, {}, seed + 20);
        check_against_kernel<Cfg>(tiny, {}, seed + 30);
    }
}

// causal off/on × padded off/on for one scale policy
template <class Scale, bool Cosine = false>
void check_masks(std::uint64_t seed) {
    check_shapes<attention_config<false, Cosine, Scale, false>>(seed);
    check_shapes<attention_config<true, Cosine, Scale, false>>(seed + 100);
    check_shapes<attention_config<false, Cosine, Scale, true>>(seed + 200);
    check_shapes<attention_config<true, Cosine, Scale, true>>(seed + 300);
}

}  // namespace attention_definition_check
