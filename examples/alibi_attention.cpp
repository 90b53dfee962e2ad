// ALiBi attention (Press, Smith & Lewis, "Train Short, Test Long", 2021) written with the tensor primitives:
// no position embeddings; instead each head h adds a linear penalty −m_h·(i − j) to the score of query i on key
// j ≤ i, with slopes m_h = 2^(−8(h+1)/H). Everything, slopes and mask included, is one tensor expression, so
// the engine derives every gradient; we check them against finite differences, then run the same attention on
// flex attention's fused kernels.
//
//   build/examples/alibi_attention            (prints the loss, and the gradient check's worst entry)
//
// This form (a bias on the scores by position and head, under a causal mask by position) is one the attention
// lowering sends to flex attention's fused kernels (docs/flex_attention.md, "Lowering tensor expressions"): the
// program below runs them, not the primitives with their T×T scores; step 7 compares it with the program compiled
// as written (tensors::unlowered).
#include <cmath>
#include <cstdio>
#include <limits>

#include <exprgrad/exprgrad.hpp>

using namespace exprgrad;

int main() {
    constexpr auto Q = tensor<0>;  // [B, H, T, d]
    constexpr auto K = tensor<1>;  // [B, H, T, d]
    constexpr auto V = tensor<2>;  // [B, H, T, d_v]
    constexpr auto W = tensor<3>;  // [B, H, T, d_v]: weights of a toy loss sum(out · W)

    // 1. Scores and positions. iota<axis>(x) counts along an axis of x: i is the query, j the key, h the head.
    constexpr auto qk = matmul(Q, transpose(K));  // [B, H, T, T]
    constexpr auto i = iota<-2>(qk);
    constexpr auto j = iota<-1>(qk);
    constexpr auto h = iota<1>(qk);
    constexpr auto d = max(iota<-1>(Q)) + 1_c;  // the head dimension, read off Q's shape (rank 0)
    constexpr auto heads = max(h) + 1_c;

    // 2. The bias: slope m_h = 2^(-8(h+1)/H) = exp(-8 ln 2 (h+1)/H), times the distance i - j.
    constexpr auto slope = exp(fc<-8 * 0.6931471805599453> * (h + 1_c) / heads);
    constexpr auto scores = qk / sqrt(d) - slope * (i - j);

    // 3. The causal mask (keys j ≤ i) as −inf before the softmax, then the weighted sum of the values.
    constexpr auto visible = less_equal(j, i);
    constexpr auto out = matmul(softmax(where(visible, scores, fc<-std::numeric_limits<double>::infinity()>)), V);
    constexpr auto loss = sum(out * W);

    // 4. Value and gradients with respect to Q, K and V.
    const std::size_t B = 1, H = 4, T = 6, D = 4;
    rng gen(17);
    const auto q = random::normal(gen, {B, H, T, D});
    const auto k = random::normal(gen, {B, H, T, D});
    const auto v = random::normal(gen, {B, H, T, D});
    const auto w = random::normal(gen, {B, H, T, D});
    auto prog = value_and_grad(loss, wrt<0, 1, 2>);
    const auto [value, grads] = prog(q, k, v, w);
    const auto& dk = std::get<1>(grads);
    std::printf("loss: %.6f\n", value);
    std::printf("dloss/dk[0, 3, 2, 1]: %.6f\n", dk(0, 3, 2, 1));

    // 5. Every gradient entry against central finite differences (check::gradcheck, in double).
    const auto report = check::gradcheck(loss, wrt<0, 1, 2>, q, k, v, w);
    std::printf("gradcheck: %s\n", report.message().c_str());

    // 6. For speed, the same attention runs on flex attention's fused kernels (docs/flex_attention.md): the bias
    //    as a score modification, the slopes as a parameter array. Same loss and gradients, up to rounding.
    const auto alibi = attn::score - attn::param<0> * (attn::q_idx - attn::k_idx);
    const auto causal = attn::q_idx - attn::k_idx + 1_c;  // visible where k_idx <= q_idx
    xt::xarray<double> slopes = xt::xarray<double>::from_shape({H});
    for (std::size_t m = 0; m < H; ++m) slopes(m) = std::exp2(-8.0 * static_cast<double>(m + 1) / H);
    auto fused = value_and_grad(sum(flex_attention_node(alibi, causal, Q, K, V, tensor<4>) * W), wrt<0, 1, 2>);
    const auto [fused_value, fused_grads] = fused(q, k, v, w, slopes);
    const double dk_gap = xt::amax(xt::abs(std::get<1>(fused_grads) - dk))();
    std::printf("flex attention: loss %.6f, max |dk difference| %.3g\n", fused_value, dk_gap);
    const bool same = std::fabs(fused_value - value) <= 1e-9 * (1 + std::fabs(value)) && dk_gap <= 1e-9;

    // 7. The same loss compiled as written (the primitives, no lowering): same loss and gradients, up to rounding.
    auto written = value_and_grad(unlowered(loss), wrt<0, 1, 2>);
    const auto [written_value, written_grads] = written(q, k, v, w);
    const double written_gap = xt::amax(xt::abs(std::get<1>(written_grads) - dk))();
    std::printf("as written: loss %.6f, max |dk difference| %.3g\n", written_value, written_gap);
    const bool same_written =
        std::fabs(written_value - value) <= 1e-9 * (1 + std::fabs(value)) && written_gap <= 1e-9;
    return report.ok && same && same_written ? 0 : 1;
}
