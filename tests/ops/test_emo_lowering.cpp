// The EMO lowering (ops/emo_lowering.hpp): which forms of emo_definition become the EmoDefinition node (static
// asserts on the rewritten types, so that a recognizer that stops matching fails to compile), and that a lowered
// program gives the value and every gradient of the same program compiled as written (tensors::unlowered): a zero
// row of E, the definition inside a larger loss, a target that is not an integer. Every objective the lowering
// takes: test_emo_lowering_objectives.cpp. The comparison and its tolerance: emo_lowering_check.hpp.
#include <doctest/doctest.h>

#include <cstddef>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include <xtensor/xarray.hpp>

#include "emo_lowering_check.hpp"
#include "random_arrays.hpp"

using namespace exprgrad;
using namespace exprgrad::ops;
using namespace emo_lowering_check;
using test_util::random_array;

namespace {

// emo_definition<O, Ignore, Cap>(Z, Y, E) becomes emo_definition_node<O, Ignore, NodeCap>(Z, Y, E)
template <emo_objective O, long Ignore = -100, class Cap = sym::Const<3>, class NodeCap = sym::Const<3>>
constexpr bool lowers = std::is_same_v<tensors::lowered_t<decltype(emo_definition<O, Ignore, Cap>(Z, Y, E))>,
                                       EmoDefinition<O, Ignore, NodeCap, I0, I1, I2>>;
static_assert(lowers<emo_objective::mode1>);
static_assert(lowers<emo_objective::mode2>);
static_assert(lowers<emo_objective::emo>);
static_assert(lowers<emo_objective::mode1_capped>);
static_assert(lowers<emo_objective::mode1_capped, -100, half, half>);
static_assert(lowers<emo_objective::mode1, -1>);
static_assert(lowers<emo_objective::mode1, -100, half>);  // mode1 does not read the cap: the same form
// operands that are expressions: the logits a product
using product_logits = decltype(emo_definition<emo_objective::mode2>(matmul(Z, tensor<3>), Y, E));
static_assert(std::is_same_v<tensors::lowered_t<product_logits>,
                             EmoDefinition<emo_objective::mode2, -100, sym::Const<3>,
                                           decltype(matmul(Z, tensor<3>)), I1, I2>>);
// not lowered: ce (plain cross-entropy, no E in its form), and an elementwise E (fused into the definition's maps)
using ce_form = decltype(emo_definition<emo_objective::ce>(Z, Y, E));
static_assert(std::is_same_v<tensors::lowered_t<ce_form>, ce_form>);
using scaled_embedding = decltype(emo_definition<emo_objective::mode1>(Z, Y, E * 2_c));
static_assert(std::is_same_v<tensors::lowered_t<scaled_embedding>, scaled_embedding>);

// A program over the definition holds the node and nothing else but its operands; unlowered holds no node.
using in_a_loss = decltype(emo_definition<emo_objective::mode1>(Z, Y, E) + sum(tensors::square(Z)));
using node = EmoDefinition<emo_objective::mode1, -100, sym::Const<3>, I0, I1, I2>;
using lowered_program = tensors::program<double, in_a_loss, std::integer_sequence<int, 0>>;
static_assert(sym::meta::contains_v<node, lowered_program::list>);
static_assert(lowered_program::count == 7);  // Z Y E node square sum +
static_assert(!sym::meta::contains_v<
              node, tensors::program<double, decltype(unlowered(std::declval<in_a_loss>())),
                                     std::integer_sequence<int, 0>>::list>);

}  // namespace

TEST_CASE("a lowered EMO definition with a zero row of E equals the definition as written, in every gradient") {
    // As written, the derivative of ‖e‖ at a zero row is infinite, under the definition's stop_gradient: the
    // program skips the nodes no adjoint reaches, so dE is 0 there as the node's (it was NaN, 0·∞).
    const auto z = random_array({4, 6}, 81, -3, 3);
    auto e = random_array({6, 3}, 82);
    for (std::size_t j = 0; j < 3; ++j) e(2, j) = 0.0;
    const xt::xarray<double> y = {2, 0, -100, 5};
    same_as_written<0, 1, 2>(emo_definition<emo_objective::mode1>(Z, Y, E), z, y, e);
}

TEST_CASE("a lowered EMO definition inside a larger loss, logits from a product, equals itself as written") {
    const auto x = random_array({5, 4}, 61, -1.5, 1.5), w = random_array({4, 7}, 62, -1.5, 1.5),
               e = random_array({7, 3}, 63);
    const xt::xarray<double> y = {3, -1, 0, 6, 2};
    // the logits' adjoint reaches W through the product, and W is read again by the penalty
    same_as_written<0, 2, 3>(emo_definition<emo_objective::mode1, -1>(matmul(Z, tensor<3>), Y, E) +
                                 sum(tensors::square(tensor<3>)) * c<1, 2>,
                             x, y, e, w);
}

TEST_CASE("the lowered EMO program refuses a target that is not an integer; as written it is the definition's") {
    const auto z = random_array({3, 4}, 71), e = random_array({4, 2}, 72);
    const xt::xarray<double> y = {1, 2.5, 0};
    CHECK_THROWS_WITH_AS(value_and_grad(emo_definition<emo_objective::mode1>(Z, Y, E), wrt<0>)(z, y, e),
                         doctest::Contains("target value 2.5 at position 1 is not an integer"), std::invalid_argument);
}
