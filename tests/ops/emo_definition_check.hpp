// The comparison shared by the emo_definition tests (test_emo_definition*.cpp, one translation unit per group of
// objectives to keep each under about 25 s of compiler time): emo_definition (ops/emo_definition.hpp), the DSL
// form of the EMO loss, against the fused kernel emo_loss.
//
// Tolerance: both sides compute in double the same sums over V ≤ 11 classes and h ≤ 6 features, in other
// orders (the kernel sums exp blocks in SIMD lanes, forms ⟨ê_t, e_k⟩/‖e_k‖ without Ê); each value is a few
// dozen roundings of numbers below 10, so 1e-12 relative to the largest entry is a 100× margin, and any wrong
// term (a weight not stopped, a missed mask, a cost off by a normalisation) moves entries by 1e-3 or more.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <cstdint>

#include <xtensor/xarray.hpp>

#include "exprgrad/exprgrad.hpp"
#include "exprgrad/ops/emo_definition.hpp"
#include "random_arrays.hpp"
#include "scaled_error.hpp"

namespace emo_definition_check {

using namespace exprgrad;
using namespace exprgrad::ops;
using test_util::random_array;
using test_util::scaled_error;

constexpr double tol = 1e-12;

// The definition's loss, dZ and dE against emo_loss with the same objective, ignore index and cap.
template <emo_objective O, class Cap = sym::Const<3>>
void check_against_kernel(const xt::xarray<double>& z, const xt::xarray<std::int64_t>& y, const xt::xarray<double>& e,
                          bool expect_nonzero = true) {
    const xt::xarray<double> yf = xt::cast<double>(y);
    // unlowered: the definition's primitives (compiled as is, the program would run the kernel itself)
    auto prog = value_and_grad(unlowered(emo_definition<O, -100, Cap>(tensor<0>, tensor<1>, tensor<2>)), wrt<0, 2>);
    auto [loss, grads] = prog(z, yf, e);
    const auto r = emo_loss(z, y, e, emo_options{O, -100, static_cast<double>(Cap::value)});
    CHECK(loss == doctest::Approx(static_cast<double>(r.loss)).epsilon(tol));
    CHECK(scaled_error(std::get<0>(grads), r.dlogits) <= tol);
    CHECK(xt::all(xt::equal(std::get<1>(grads), 0.0)));  // E is not differentiated, as in the kernel (NaN fails)
    if (expect_nonzero) CHECK(xt::amax(xt::abs(r.dlogits))() > 1e-3);  // the comparison has something to compare
}

template <emo_objective O, class Cap = sym::Const<3>>
void check_cases(std::uint64_t seed) {
    // [N, V] with ignored positions
    {
        const auto z = random_array({6, 7}, seed, -3, 3);
        const auto e = random_array({7, 4}, seed + 1);
        const xt::xarray<std::int64_t> y = {3, -100, 0, 6, -100, 2};
        check_against_kernel<O, Cap>(z, y, e);
    }
    // [B, T, V], a zero row of E (ê = 0, cost 1 to and from it) and a −inf logit at a non-target class
    {
        auto z = random_array({2, 3, 11}, seed + 2, -4, 4);
        auto e = random_array({11, 6}, seed + 3);
        for (std::size_t j = 0; j < 6; ++j) e(5, j) = 0.0;
        z(1, 2, 9) = -INFINITY;
        const xt::xarray<std::int64_t> y = {{1, 5, 10}, {-100, 7, 0}};
        check_against_kernel<O, Cap>(z, y, e);
    }
    // every position ignored: loss 0 and zero gradients on both sides
    {
        const auto z = random_array({3, 5}, seed + 4);
        const auto e = random_array({5, 2}, seed + 5);
        const xt::xarray<std::int64_t> y = {-100, -100, -100};
        check_against_kernel<O, Cap>(z, y, e, false);
    }
}

}  // namespace emo_definition_check
