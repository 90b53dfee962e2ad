// The EMO lowering (ops/emo_lowering.hpp): which forms of emo_definition become the EmoDefinition node (static
// asserts on the rewritten types, so that a recognizer that stops matching fails to compile), and that a lowered
// program gives the value and every gradient of the same program compiled as written (tensors::unlowered).
//
// Tolerance: as in test_emo_definition.cpp (the kernel against the definition, double, V ≤ 11, h ≤ 6): the two
// compute the same sums in other orders, so 1e-12 relative to the largest entry; a wrong term moves entries by
// 1e-3 or more.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include <xtensor/xarray.hpp>

#include "exprgrad/exprgrad.hpp"
#include "exprgrad/ops/emo_definition.hpp"
#include "random_arrays.hpp"
#include "scaled_error.hpp"

using namespace exprgrad;
using namespace exprgrad::ops;
using test_util::random_array;
using test_util::scaled_error;

namespace {

using I0 = tensors::Input<0>;
using I1 = tensors::Input<1>;
using I2 = tensors::Input<2>;
constexpr auto Z = tensor<0>;
constexpr auto Y = tensor<1>;
constexpr auto E = tensor<2>;
using half = sym::Const<1, 2>;

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

constexpr double tol = 1e-12;

// value_and_grad of f with respect to W... lowered against unlowered: the value and every gradient.
template <int... W, class F, class... Args>
void same_as_written(F f, const Args&... args) {
    auto lowered = value_and_grad(f, wrt<W...>);
    auto written = value_and_grad(unlowered(f), wrt<W...>);
    const auto [l1, g1] = lowered(args...);
    const auto [l2, g2] = written(args...);
    CHECK(std::fabs(l1 - l2) <= tol * std::max(1.0, std::fabs(l2)));
    CHECK(std::fabs(l2) > 1e-3);
    const auto arrays = [](const auto& g) {
        return std::apply([](const auto&... a) { return std::vector<xt::xarray<double>>{a...}; }, g);
    };
    const std::vector<xt::xarray<double>> a = arrays(g1), b = arrays(g2);
    double biggest = 0;  // the comparison can fail: the gradients are not all zero
    for (std::size_t i = 0; i < a.size(); ++i) {
        CAPTURE(i);
        CHECK(scaled_error(a[i], b[i]) <= tol);
        biggest = std::max(biggest, double(xt::amax(xt::abs(b[i]))()));
    }
    CHECK(biggest > 1e-3);
}

// every objective the lowering takes, on logits [B, T, V] with an ignored position and a −inf logit; gradients
// with respect to Z, Y and E (Y's and E's are zero on both sides)
template <emo_objective O, class Cap = sym::Const<3>>
void check_objective(std::uint64_t seed) {
    CAPTURE(to_string(O));
    auto z = random_array({2, 3, 11}, seed, -4, 4);
    const auto e = random_array({11, 6}, seed + 1);
    z(1, 2, 9) = -INFINITY;
    const xt::xarray<double> y = {{1, 5, 10}, {-100, 7, 0}};
    same_as_written<0, 1, 2>(emo_definition<O, -100, Cap>(Z, Y, E), z, y, e);
}

}  // namespace

TEST_CASE("a lowered EMO definition equals the definition as written, for every objective it lowers") {
    check_objective<emo_objective::emo>(10);
    check_objective<emo_objective::mode1>(20);
    check_objective<emo_objective::mode1_capped>(30);
    check_objective<emo_objective::mode1_capped, half>(40);  // a cap that binds (test_emo_definition.cpp)
    check_objective<emo_objective::mode2>(50);
}

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
