// The attention lowering (ops/attention_lowering.hpp) of attention_definition: which configurations become the
// attention node (static_asserts on the rewritten types, so that a recognizer that stops matching fails to
// compile), and that a lowered program gives the value and gradients of the same program compiled as written
// (tensors::unlowered). Hand-written attention forms: test_attention_lowering_hand_written.cpp. Kept light: a few
// programs, double only; the comparison and its tolerance are attention_lowering_check.hpp's.
#include <doctest/doctest.h>

#include <cmath>
#include <type_traits>
#include <utility>

#include <xtensor/xarray.hpp>

#include "attention_lowering_check.hpp"
#include "random_arrays.hpp"

using namespace exprgrad;
using namespace exprgrad::ops;
using namespace attention_lowering_check;
using test_util::random_array;

namespace {

using third = std::remove_cv_t<decltype(c<1, 3>)>;

// attention_definition<Cfg>(Q, K, V, X...) becomes attention_node<Cfg>(Q, K, V, X...)
template <class Cfg, class... X>
constexpr bool definition_lowers =
    std::is_same_v<tensors::lowered_t<decltype(attention_definition<Cfg>(Q, K, V, X{}...))>,
                   Attention<Cfg, I0, I1, I2, X...>>;
using causal = attention_config<true>;
using causal_padded = attention_config<true, false, scale_type::inv_sqrt_d, true>;
using cosine_padded_learned = attention_config<false, true, scale_type::learned, true>;
static_assert(definition_lowers<attention_config<>>);
static_assert(definition_lowers<causal>);
static_assert(definition_lowers<attention_config<false, true>>);
static_assert(definition_lowers<causal_padded, I3>);
static_assert(definition_lowers<cosine_padded_learned, I3, I4>);
static_assert(definition_lowers<attention_config<true, false, scale_type::learned>, I3>);
static_assert(definition_lowers<attention_config<false, false, scale_type::fixed<third>, true>, I3>);
static_assert(definition_lowers<attention_config<true, false, scale_type::gradient_max>>);
static_assert(definition_lowers<attention_config<false, false, scale_type::entropy_invariant<>, true>, I3>);

// A program over the definition holds the node and none of the definition's softmax; unlowered holds no node.
template <class E, class Node>
constexpr bool program_holds =
    sym::meta::contains_v<Node, typename tensors::program<double, E, std::integer_sequence<int, 0>>::list>;
using in_a_loss = decltype(sum(attention_definition<causal>(Q, K, V) * tensor<3>));
static_assert(program_holds<in_a_loss, Attention<causal, I0, I1, I2>>);
static_assert(tensors::program<double, in_a_loss, std::integer_sequence<int, 0>>::count == 7);  // Q K V node W ·W sum
static_assert(!program_holds<decltype(unlowered(std::declval<in_a_loss>())), Attention<causal, I0, I1, I2>>);

}  // namespace

TEST_CASE("a lowered definition equals the definition as written: causal, padded, inside a larger loss") {
    const auto q = random_array({2, 2, 5, 3}, 11, -1.5, 1.5), k = random_array({2, 2, 6, 3}, 12, -1.5, 1.5),
               v = random_array({2, 2, 6, 4}, 13), w = random_array({2, 2, 5, 4}, 14);
    const xt::xarray<int> len = {6, 3};
    // a residual and a square around it: the node's output is read twice, its adjoint is a buffer
    same_as_written<0, 1, 2, 3>(
        sum(tensors::square(attention_definition<causal_padded>(Q, K, V, tensor<4>) * tensor<3> + tensor<3>)), q, k, v,
        w, len);
}

TEST_CASE("a lowered definition equals the definition as written: cosine, padded, learned scale") {
    const auto q = random_array({1, 2, 4, 3}, 21, -1.5, 1.5), k = random_array({1, 2, 4, 3}, 22, -1.5, 1.5),
               v = random_array({1, 2, 4, 2}, 23), w = random_array({1, 2, 4, 2}, 24);
    const xt::xarray<int> len = {3};
    const xt::xarray<double> log_s = std::log(2.5);
    same_as_written<0, 1, 2, 5>(
        sum(attention_definition<cosine_padded_learned>(Q, K, V, tensor<4>, tensor<5>) * tensor<3>), q, k, v, w, len,
        log_s);
}

TEST_CASE("self-attention: one operand as q, k and v, and read again by a residual, sums its three gradients") {
    // The node writes dq straight into the operand's adjoint and adds dk and dv to it (the kernels' gradient
    // buffers must not overlap); with the residual the adjoint already holds a contribution before the node's.
    const auto x = random_array({1, 2, 5, 3}, 61, -1.5, 1.5), w = random_array({1, 2, 5, 3}, 62);
    same_as_written<0>(sum(attention_definition<causal>(Q, Q, Q) * tensor<1>), x, w);
    same_as_written<0>(sum(tensors::square(attention_definition<causal>(Q, Q, Q) * tensor<1> + Q)), x, w);
}
