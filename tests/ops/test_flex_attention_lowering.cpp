// The flex attention lowering (ops/flex_attention_lowering.hpp): which tensor expressions with a modification of
// the scores become the flex attention node (static_asserts on the rewritten types, so that a recognizer that
// stops matching fails to compile), and that a lowered program gives the value and every gradient (q, k, v, the
// parameters) of the same program compiled as written (tensors::unlowered). Double only.
//
// Tolerance: the fused kernels and the primitives compute the same sums in other orders (tiles of 64 keys, online
// softmax); at these sizes (T ≤ 70, d ≤ 5, inputs of order 1) they differ by a few hundred ulp, so 1e-11 relative
// to the largest entry. A missed mask, slope or cap changes entries by 1e-3 or more.
#include <doctest/doctest.h>

#include <algorithm>
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

constexpr auto Q = tensor<0>;
constexpr auto K = tensor<1>;
constexpr auto V = tensor<2>;
constexpr auto W = tensor<3>;  // the loss weights
constexpr auto m = tensor<4>;  // per-head slopes [H] (or [1]: one for every head)
constexpr auto minus_inf = fc<-std::numeric_limits<double>::infinity()>;

constexpr auto qk = matmul(Q, tensors::transpose(K));
constexpr auto i = iota<-2>(qk);  // query position
constexpr auto j = iota<-1>(qk);  // key position
constexpr auto alibi = qk * fc<0.5> - reshape<-1, 1, 1>(m) * (i - j);
constexpr auto alibi_causal = matmul(softmax(where(less_equal(iota<-1>(alibi), iota<-2>(alibi)), alibi, minus_inf)), V);
// soft-capping (Gemma 2) under a causal mask written the other way round, −∞ where the key is in the future
constexpr auto capped = fc<2.0> * tanh(qk * fc<0.5> / fc<2.0>);
constexpr auto softcap_causal = matmul(softmax(where(greater(j, i), minus_inf, capped)), V);
// a window of 3 keys (i − 3 < j ≤ i) as two nested wheres; the scale read off Q's shape (a rank-0 operand)
constexpr auto scaled = qk / sqrt(max(iota<-1>(Q)) + 1_c);
constexpr auto windowed =
    matmul(softmax(where(less_equal(j, i), where(greater(j, i - 3_c), scaled, minus_inf), minus_inf)), V);
// a head-dependent bias, the slopes learned as logarithms, and the batch index
constexpr auto by_head = matmul(softmax(qk * fc<0.5> - reshape<1, -1, 1, 1>(exp(m)) * abs(i - j) +
                                        iota<1>(qk) * fc<0.25> - iota<0>(qk) * fc<0.125>),
                                V);

template <class T>
struct is_flex : std::false_type {};
template <class Mod, class Mask, class Cfg, class... Xs>
struct is_flex<FlexAttention<Mod, Mask, Cfg, Xs...>> : std::true_type {
    static constexpr std::size_t params = sizeof...(Xs) - 3;
};
template <class E>
using lowered = tensors::lowered_t<E>;
static_assert(is_flex<lowered<decltype(alibi_causal)>>::value && is_flex<lowered<decltype(alibi_causal)>>::params == 1);
static_assert(is_flex<lowered<decltype(softcap_causal)>>::value && is_flex<lowered<decltype(softcap_causal)>>::params == 0);
static_assert(is_flex<lowered<decltype(windowed)>>::value && is_flex<lowered<decltype(windowed)>>::params == 1);
static_assert(is_flex<lowered<decltype(by_head)>>::value && is_flex<lowered<decltype(by_head)>>::params == 1);
// the causal ALiBi form's modification and mask, as a user would write them for flex_attention_forward
using alibi_node = lowered<decltype(alibi_causal)>;
constexpr auto alibi_mod = attn::score * fc<0.5> - attn::param<0> * (attn::q_idx - attn::k_idx);
constexpr auto causal_mask = sym::less(attn::k_idx, attn::q_idx);  // visible where k_idx <= q_idx (½ at a tie)
using slopes_operand = ops::detail::flex_lowering::HeadParameter<tensors::Input<4>, tensors::Input<0>>;
using expected_alibi_node =
    FlexAttention<std::remove_cv_t<decltype(alibi_mod)>, std::remove_cv_t<decltype(causal_mask)>,
                  ops::detail::flex_lowering::unit_config, tensors::Input<0>, tensors::Input<1>, tensors::Input<2>,
                  slopes_operand>;
static_assert(std::is_same_v<alibi_node, expected_alibi_node>);

// not recognized: run as written
template <class E>
constexpr bool kept = std::is_same_v<lowered<E>, E>;
using additive_bias = decltype(matmul(softmax(qk * fc<0.5> + tensor<4>), V));  // the bias's shape is not in the type
static_assert(kept<additive_bias>);
using raw_slopes = decltype(matmul(softmax(qk * fc<0.5> - m * (i - j)), V));  // m [H, 1, 1]? the type cannot tell
static_assert(kept<raw_slopes>);
constexpr auto both = less_equal(j, i) * greater(j, i - 3_c);  // a product of comparisons as the condition
using product_mask = decltype(matmul(softmax(where(both, capped, minus_inf)), V));
static_assert(kept<product_mask>);
using finite_fill = decltype(matmul(softmax(where(less_equal(j, i), capped, fc<-1e30>)), V));
static_assert(kept<finite_fill>);
using over_queries = decltype(matmul(softmax<-2>(capped), V));
static_assert(kept<over_queries>);

constexpr double tol = 1e-11;

// value_and_grad of f with respect to every argument but V's weights... lowered against unlowered.
template <int... Wrt, class F, class... Args>
void same_as_written(F f, const Args&... args) {
    auto lowered_prog = value_and_grad(f, wrt<Wrt...>);
    auto written = value_and_grad(unlowered(f), wrt<Wrt...>);
    const auto [l1, g1] = lowered_prog(args...);
    const auto [l2, g2] = written(args...);
    CHECK(std::fabs(l1 - l2) <= tol * std::max(1.0, std::fabs(l2)));
    const auto arrays = [](const auto& g) {
        return std::apply([](const auto&... a) { return std::vector<xt::xarray<double>>{a...}; }, g);
    };
    const std::vector<xt::xarray<double>> a = arrays(g1), b = arrays(g2);
    for (std::size_t n = 0; n < a.size(); ++n) {
        CAPTURE(n);
        CHECK(scaled_error(a[n], b[n]) <= tol);
        CHECK(xt::amax(xt::abs(b[n]))() > 1e-3);  // the comparison can fail: no gradient is zero
    }
}

}  // namespace

TEST_CASE("ALiBi under a causal mask by iota lowers to the flex node: value, dq, dk, dv, dslopes") {
    // T_q ≠ T_k, T_k past one 64-key tile, d and d_v not SIMD multiples; key/value heads shared (MQA)
    const auto q = random_array({2, 3, 67, 5}, 61, -1.5, 1.5), k = random_array({2, 1, 70, 5}, 62, -1.5, 1.5),
               v = random_array({2, 1, 70, 3}, 63), w = random_array({2, 3, 67, 3}, 64);
    const xt::xarray<double> slopes = {0.5, 0.25, 0.125};
    same_as_written<0, 1, 2, 4>(sum(alibi_causal * W), q, k, v, w, slopes);
    // one slope for every head: broadcast, its gradient summed over the heads
    const xt::xarray<double> one = {0.3};
    same_as_written<0, 1, 2, 4>(sum(alibi_causal * W), q, k, v, w, one);
    // a slope count that is neither H nor 1: refused with a sentence (as written, the broadcast fails as well)
    const xt::xarray<double> two = {0.3, 0.2};
    CHECK_THROWS_WITH_AS(value_and_grad(sum(alibi_causal * W), wrt<0>)(q, k, v, w, two),
                         doctest::Contains("per-head parameter"), std::invalid_argument);
}

TEST_CASE("soft-capping under a causal mask (−∞ where the key is in the future) lowers: value and gradients") {
    const auto q = random_array({1, 2, 9, 3}, 71, -2, 2), k = random_array({1, 2, 9, 3}, 72, -2, 2),
               v = random_array({1, 2, 9, 4}, 73), w = random_array({1, 2, 9, 4}, 74);
    same_as_written<0, 1, 2>(sum(softcap_causal * W), q, k, v, w);
}

TEST_CASE("a window as nested wheres with the scale read off Q's shape lowers; so does a bias by head and batch") {
    const auto q = random_array({2, 2, 7, 4}, 81, -1.5, 1.5), k = random_array({2, 2, 8, 4}, 82, -1.5, 1.5),
               v = random_array({2, 2, 8, 3}, 83), w = random_array({2, 2, 7, 3}, 84);
    const xt::xarray<double> log_slopes = {-0.7, -1.4};
    same_as_written<0, 1, 2>(sum(windowed * W), q, k, v, w);
    same_as_written<0, 1, 2, 4>(sum(by_head * W), q, k, v, w, log_slopes);
}

TEST_CASE("a form the lowering does not recognize runs as written") {
    // a product of comparisons as the mask: kept (static_assert above), and it still computes attention
    const auto q = random_array({1, 2, 6, 3}, 91, -1.5, 1.5), k = random_array({1, 2, 6, 3}, 92, -1.5, 1.5),
               v = random_array({1, 2, 6, 2}, 93), w = random_array({1, 2, 6, 2}, 94);
    const product_mask f{};
    const xt::xarray<double> y = evaluate(f, q, k, v);
    // its recognized twin (the same window as nested wheres) gives the same value through the flex node
    constexpr auto twin = matmul(softmax(where(less_equal(j, i), where(greater(j, i - 3_c), capped, minus_inf), minus_inf)), V);
    static_assert(is_flex<lowered<decltype(twin)>>::value);
    CHECK(scaled_error(evaluate(twin, q, k, v), y) <= tol);
    same_as_written<0, 1, 2>(sum(twin * W), q, k, v, w);
}

TEST_CASE("the docs example: ALiBi written with the primitives runs the flex kernels") {
    // docs-begin docs/flex_attention.md
    constexpr auto qk = matmul(tensor<0>, transpose(tensor<1>));                 // Q·Kᵀ [B, H, T_q, T_k]
    constexpr auto i = iota<-2>(qk);                                             // query positions
    constexpr auto j = iota<-1>(qk);                                             // key positions
    constexpr auto s = qk * fc<0.125> - reshape<-1, 1, 1>(tensor<3>) * (i - j);  // ALiBi; slopes m [H], a graph input
    constexpr auto out = matmul(softmax(where(less_equal(j, i), s, fc<-std::numeric_limits<double>::infinity()>)), tensor<2>);
    auto prog = value_and_grad(sum(out * tensor<4>), wrt<0, 1, 2, 3>);           // the flex kernels; dL/dm too
    auto ref = value_and_grad(unlowered(sum(out * tensor<4>)), wrt<0, 1, 2, 3>);  // the primitives, T×T scores
    // docs-end
    static_assert(is_flex<lowered<decltype(out)>>::value);
    const auto q = random_array({1, 4, 6, 8}, 101), k = random_array({1, 4, 6, 8}, 102),
               v = random_array({1, 4, 6, 8}, 103), w = random_array({1, 4, 6, 8}, 104);
    const xt::xarray<double> m = {0.5, 0.25, 0.125, 0.0625};
    const auto [l1, g1] = prog(q, k, v, m, w);
    const auto [l2, g2] = ref(q, k, v, m, w);
    CHECK(std::fabs(l1 - l2) <= tol * std::max(1.0, std::fabs(l2)));
    CHECK(scaled_error(std::get<3>(g1), std::get<3>(g2)) <= tol);
    CHECK(scaled_error(std::get<1>(g1), std::get<1>(g2)) <= tol);
}
