// The attention lowering (ops/attention_lowering.hpp): which expression types become the attention node
// (static_asserts on the rewritten types, so that a recognizer that stops matching fails to compile), and
// that a lowered program gives the value and gradients of the same program compiled as written
// (tensors::unlowered). Kept light: a few programs, double only.
//
// Tolerance: the node and the primitives compute the same sums in other orders (the kernel blocks and
// pre-multiplies q by s); on these sizes (T ≤ 6, d ≤ 4, inputs in [-1.5, 1.5]) their difference is a few
// hundred ulp at most, so 1e-12 relative to the largest entry, as in attention_definition_check.hpp. A missed
// mask or scale changes entries by 1e-3 or more.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include <xtensor/xarray.hpp>

#include "exprgrad/exprgrad.hpp"
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
using I3 = tensors::Input<3>;
using I4 = tensors::Input<4>;
constexpr auto Q = tensor<0>;
constexpr auto K = tensor<1>;
constexpr auto V = tensor<2>;
using third = std::remove_cv_t<decltype(c<1, 3>)>;
using unit_scale = ops::detail::attention_lowering::unit_scale;

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

// hand-written forms
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

// A program over the definition holds the node and none of the definition's softmax; unlowered holds no node.
template <class E, class Node>
constexpr bool program_holds =
    sym::meta::contains_v<Node, typename tensors::program<double, E, std::integer_sequence<int, 0>>::list>;
using in_a_loss = decltype(sum(attention_definition<causal>(Q, K, V) * tensor<3>));
static_assert(program_holds<in_a_loss, Attention<causal, I0, I1, I2>>);
static_assert(tensors::program<double, in_a_loss, std::integer_sequence<int, 0>>::count == 7);  // Q K V node W ·W sum
static_assert(!program_holds<decltype(unlowered(std::declval<in_a_loss>())), Attention<causal, I0, I1, I2>>);

constexpr double tol = 1e-12;

// value_and_grad of f with respect to W... lowered against unlowered: the value and every gradient.
template <int... W, class F, class... Args>
void same_as_written(F f, const Args&... args) {
    auto lowered = value_and_grad(f, wrt<W...>);
    auto written = value_and_grad(unlowered(f), wrt<W...>);
    const auto [l1, g1] = lowered(args...);
    const auto [l2, g2] = written(args...);
    CHECK(std::fabs(l1 - l2) <= tol * std::max(1.0, std::fabs(l2)));
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

TEST_CASE("self-attention: one operand as q, k and v, and read again by a residual, sums its three gradients") {
    // The node writes dq straight into the operand's adjoint and adds dk and dv to it (the kernels' gradient
    // buffers must not overlap); with the residual the adjoint already holds a contribution before the node's.
    const auto x = random_array({1, 2, 5, 3}, 61, -1.5, 1.5), w = random_array({1, 2, 5, 3}, 62);
    same_as_written<0>(sum(attention_definition<causal>(Q, Q, Q) * tensor<1>), x, w);
    same_as_written<0>(sum(tensors::square(attention_definition<causal>(Q, Q, Q) * tensor<1> + Q)), x, w);
}
