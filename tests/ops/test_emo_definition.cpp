// emo_definition (ops/emo_definition.hpp), the DSL form of the EMO loss, against the fused kernel: the loss
// and dL/dlogits equal emo_loss's for ce and emo (the other objectives: test_emo_definition_modes.cpp), on logits
// [N, V] and [B, T, V], ignored positions, all positions ignored, a zero row of E and a −inf logit; E gets no
// gradient from either (the kernel gives none; the definition has it under stop_gradient). A non-default cost,
// the cap that binds, the EMO objective's gradcheck and an out-of-range target. emo_definition_check.hpp gives
// the comparison and its tolerance (1e-12 relative: a wrong term moves entries by 1e-3 or more).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <type_traits>

#include <xtensor/xarray.hpp>

#include "emo_definition_check.hpp"

using namespace exprgrad;
using namespace exprgrad::ops;
using namespace emo_definition_check;

TEST_CASE("emo_definition equals the kernel: ce and emo") {
    check_cases<emo_objective::ce>(100);
    check_cases<emo_objective::emo>(200);
}

TEST_CASE("emo_definition with a non-default cost equals the kernel with that cost, as written and lowered") {
    // c(x) = (1 − x)² + x/4 (the eager kernel with it is tested against a naive loop in test_emo.cpp)
    using cost = decltype(sym::square(1_c - sym::var<0>) + sym::var<0> / 4_c);
    const xt::xarray<double> z = random_array({5, 7}, 41, -2, 2), e = random_array({7, 3}, 42);
    const xt::xarray<std::int64_t> y = {3, -100, 6, 0, 3};
    const xt::xarray<double> yf = xt::cast<double>(y);
    constexpr auto form = emo_definition<emo_objective::mode2, -100, sym::Const<3>, cost>(tensor<0>, tensor<1>,
                                                                                           tensor<2>);
    // the lowering reads the cost off the form and passes it on to the node
    static_assert(std::is_same_v<tensors::lowered_t<decltype(form)>,
                                 decltype(emo_definition_node<emo_objective::mode2, -100, sym::Const<3>, cost>(
                                     tensor<0>, tensor<1>, tensor<2>))>);
    const auto r = emo_loss<cost>(z, y, e, {.objective = emo_objective::mode2});
    auto check = [&](auto prog) {
        auto [loss, grads] = prog(z, yf, e);
        CHECK(loss == doctest::Approx(static_cast<double>(r.loss)).epsilon(tol));
        CHECK(scaled_error(std::get<0>(grads), r.dlogits) <= tol);
        CHECK(xt::all(xt::equal(std::get<1>(grads), 0.0)));  // E is not differentiated (NaN fails)
        // the cost was not replaced by 1 − cos
        CHECK(std::fabs(loss - emo_loss(z, y, e, {.objective = emo_objective::mode2}).loss) > 1e-3);
    };
    check(value_and_grad(unlowered(form), wrt<0, 2>));  // the definition's primitives
    check(value_and_grad(form, wrt<0, 2>));             // the kernel with the cost read off the form
}

TEST_CASE("emo_definition: the cap binds in the capped case above, so capped and uncapped differ") {
    // guards the test above: with cap 1/2 the weight CE/EMO (> 1 here) is capped, and mode1 differs from it
    const auto z = random_array({6, 7}, 300, -3, 3);
    const auto e = random_array({7, 4}, 301);
    const xt::xarray<std::int64_t> y = {3, -100, 0, 6, -100, 2};
    const auto capped = emo_loss(z, y, e, emo_options{emo_objective::mode1_capped, -100, 0.5});
    const auto free = emo_loss(z, y, e, emo_options{emo_objective::mode1, -100, 0.5});
    CHECK(capped.ce / capped.emo > 1.0);
    CHECK(std::fabs(capped.loss - free.loss) > 1e-3);
}

TEST_CASE(
    "emo_definition: gradcheck of the EMO objective (the others stop gradients, so finite differences of the value "
    "differ by design), and an out-of-range target throws") {
    const auto z = random_array({4, 5}, 700, -2, 2);
    const auto e = random_array({5, 3}, 701);
    const xt::xarray<double> y = {1, 4, -100, 0};
    auto r = check::gradcheck(unlowered(emo_definition<emo_objective::emo>(tensor<0>, tensor<1>, tensor<2>)), wrt<0>, z, y,
                              e);
    INFO(r.message());
    CHECK(r.ok);
    const xt::xarray<double> bad = {1, 5, -100, 0};  // 5 is out of range for V = 5
    CHECK_THROWS_AS(
        value_and_grad(unlowered(emo_definition<emo_objective::mode1>(tensor<0>, tensor<1>, tensor<2>)), wrt<0>)(z, bad,
                                                                                                              e),
        std::invalid_argument);
}
