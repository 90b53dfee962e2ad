// The attention lowering (ops/attention_lowering.hpp) of attention written by hand (matmul, softmax, a scale, a
// causal mask from iota and where): which forms become the attention node (static_asserts on the rewritten
// types), and that a lowered program gives the value and gradients of the same program compiled as written
// (tensors::unlowered), or refuses what the node cannot run. The definition's lowering:
// test_attention_lowering.cpp; the comparison and its tolerance: attention_lowering_check.hpp.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <type_traits>

#include <xtensor/xarray.hpp>

#include "attention_lowering_check.hpp"
#include "random_arrays.hpp"

using namespace exprgrad;
using namespace exprgrad::ops;
using namespace attention_lowering_check;
using test_util::random_array;

namespace {

using unit_scale = ops::detail::attention_lowering::unit_scale;

using constant_scaled = decltype(matmul(softmax(matmul(Q, tensors::transpose(K)) * fc<0.125>), V));
static_assert(
    std::is_same_v<tensors::lowered_t<constant_scaled>,
                   Attention<attention_config<false, false, scale_type::fixed<std::remove_cv_t<decltype(fc<0.125>)>>>,
                             I0, I1, I2>>);
using argument_scaled = decltype(matmul(softmax(matmul(Q, permute<0, 1, 3, 2>(K)) * tensor<3>), V));
static_assert(std::is_same_v<
              tensors::lowered_t<argument_scaled>,
              Attention<unit_scale,
                        tensors::Map<decltype(var<0> * var<1>), I0, ops::detail::attention_lowering::ScaleOperand<I3>>,
                        I1, I2>>);
// a causal mask written by hand (j <= i, -inf): the causal node on a query that checks T_q = T_k
constexpr auto minus_inf = fc<-std::numeric_limits<double>::infinity()>;
constexpr auto scores = matmul(Q, tensors::transpose(K)) * fc<0.125>;
constexpr auto causal_by_hand =
    matmul(softmax(where(less_equal(iota<-1>(scores), iota<-2>(scores)), scores, minus_inf)), V);
static_assert(
    std::is_same_v<tensors::lowered_t<decltype(causal_by_hand)>,
                   Attention<attention_config<true, false, scale_type::fixed<std::remove_cv_t<decltype(fc<0.125>)>>>,
                             ops::detail::attention_lowering::SquareScores<I0, I1>, I1, I2>>);
// not recognized: an additive mask argument
using masked_by_hand = decltype(matmul(softmax(matmul(Q, tensors::transpose(K)) + tensor<3>), V));
static_assert(std::is_same_v<tensors::lowered_t<masked_by_hand>, masked_by_hand>);

}  // namespace

TEST_CASE("hand-written attention with a scale argument is lowered, and equals itself as written") {
    const auto q = random_array({2, 1, 4, 3}, 31, -1.5, 1.5), k = random_array({2, 1, 5, 3}, 32, -1.5, 1.5),
               v = random_array({2, 1, 5, 2}, 33), w = random_array({2, 1, 4, 2}, 34);
    const xt::xarray<double> s = 0.8;                               // one value
    const auto per_row = random_array({2, 1, 4, 1}, 35, 0.5, 1.5);  // one per query row
    const auto per_key = random_array({2, 1, 4, 5}, 36, 0.5, 1.5);  // not a scale: varies along keys
    constexpr auto f = sum(matmul(softmax(matmul(Q, permute<0, 1, 3, 2>(K)) * tensor<3>), V) * tensor<4>);
    same_as_written<0, 1, 2, 3, 4>(f, q, k, v, s, w);
    same_as_written<0, 1, 2, 3, 4>(f, q, k, v, per_row, w);
    // the node cannot run a per-key factor: the lowered program refuses it with a sentence, as written it runs
    CHECK_THROWS_WITH_AS(value_and_grad(f, wrt<0>)(q, k, v, per_key, w),
                         doctest::Contains("must be constant along the keys"), std::invalid_argument);
    CHECK(std::isfinite(value_and_grad(unlowered(f), wrt<0>)(q, k, v, per_key, w).first));
}

TEST_CASE("hand-written causal attention is lowered, and equals itself as written when T_q = T_k") {
    const auto q = random_array({1, 2, 5, 3}, 51, -1.5, 1.5), k = random_array({1, 2, 5, 3}, 52, -1.5, 1.5),
               v = random_array({1, 2, 5, 2}, 53), w = random_array({1, 2, 5, 2}, 54);
    constexpr auto f = sum(causal_by_hand * tensor<3>);
    same_as_written<0, 1, 2, 3>(f, q, k, v, w);
    // T_q ≠ T_k: the node's mask would align the diagonal elsewhere, so the lowered program refuses
    const auto k6 = random_array({1, 2, 6, 3}, 55, -1.5, 1.5), v6 = random_array({1, 2, 6, 2}, 56);
    CHECK_THROWS_WITH_AS(value_and_grad(f, wrt<0>)(q, k6, v6, w), doctest::Contains("as many queries as keys"),
                         std::invalid_argument);
}

TEST_CASE("evaluator: a constant-scaled hand-written form gives the node's value") {
    const auto q = random_array({1, 2, 3, 4}, 41, -1.5, 1.5), k = random_array({1, 2, 3, 4}, 42, -1.5, 1.5),
               v = random_array({1, 2, 3, 4}, 43);
    constexpr auto y = matmul(softmax(matmul(Q, tensors::transpose(K)) * fc<0.125>), V);
    const xt::xarray<double> lowered = evaluate(y, q, k, v);
    const xt::xarray<double> written = evaluate(unlowered(y), q, k, v);
    CHECK(scaled_error(lowered, written) <= tol);
    attention_options o;
    o.scale = scale::fixed(0.125);
    const xt::xtensor<double, 4> qt = q, kt = k, vt = v;
    CHECK(scaled_error(lowered, attention_forward(qt, kt, vt, o).out) <= tol);
}
