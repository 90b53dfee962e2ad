// What writing attention symbolically costs (issue 17, part 3): value and gradients (dq, dk, dv) of causal
// attention, loss = sum(attention(Q, K, V) · W), at B = 2, H = 4, T = 256, d = 64 in double on one thread:
//   kernel       attention_forward_into + attention_vjp_into, called directly (arrays and workspace reused)
//   node         value_and_grad of the attention node, attention_node<causal>(Q, K, V)
//   definition   value_and_grad of attention_definition<causal>(Q, K, V): lowered to the node when compiled
//   unlowered    the same definition compiled as written (tensors::unlowered): the primitives, T×T scores
//   alibi        ALiBi attention written with the primitives (examples/alibi_attention.cpp's expression), which
//                the lowering does not recognize: its cost against the fused causal kernel
//   alibi_flex   the same ALiBi through flex attention's fused kernels (a score modification)
// Goal: definition within 5% of kernel. Run (medians of interleaved rounds, docs/attention.md):
//   EXPRGRAD_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 build/bench/bench_attention_lowering
//     --benchmark_repetitions=7 --benchmark_enable_random_interleaving=true
//     --benchmark_report_aggregates_only=true --benchmark_min_time=0.5
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstddef>
#include <limits>
#include <type_traits>

#include <xtensor/xtensor.hpp>

#include <exprgrad/exprgrad.hpp>

using namespace exprgrad;
using namespace exprgrad::ops;

namespace {

constexpr std::size_t B = 2, H = 4, T = 256, D = 64;
using causal = attention_config<true>;

struct inputs {
    xt::xtensor<double, 4> q, k, v, w;
    inputs() {
        rng gen(7);
        q = random::normal(gen, {B, H, T, D});
        k = random::normal(gen, {B, H, T, D});
        v = random::normal(gen, {B, H, T, D});
        w = random::normal(gen, {B, H, T, D});
    }
};
const inputs& in() {
    static const inputs x;
    return x;
}

constexpr auto Q = tensor<0>;
constexpr auto K = tensor<1>;
constexpr auto V = tensor<2>;
constexpr auto W = tensor<3>;

void BM_kernel(benchmark::State& st) {
    const inputs& x = in();
    const attention_options o = causal::options();
    xt::xtensor<double, 4> out;
    xt::xtensor<double, 3> lse;
    attention_grads<double> g;
    attention_workspace<double> ws;
    for (auto _ : st) {
        attention_forward_into(x.q, x.k, x.v, o, out, lse, ws);
        double loss = 0;
        for (std::size_t i = 0; i < out.size(); ++i) loss += out.data()[i] * x.w.data()[i];  // the program's sum(·W)
        attention_vjp_into(x.q, x.k, x.v, out, lse, x.w, o, g, ws, attention_reuse::forward);
        benchmark::DoNotOptimize(loss);
        benchmark::DoNotOptimize(g.dq.data());
    }
}

template <class E>
void run_program(benchmark::State& st, E loss) {
    const inputs& x = in();
    auto prog = value_and_grad(loss, wrt<0, 1, 2>);
    for (auto _ : st) {
        const auto [value, grads] = prog(x.q, x.k, x.v, x.w);
        benchmark::DoNotOptimize(value);
        benchmark::DoNotOptimize(std::get<0>(grads).data());
    }
}

void BM_node(benchmark::State& st) { run_program(st, sum(attention_node<causal>(Q, K, V) * W)); }
void BM_definition(benchmark::State& st) {
    constexpr auto loss = sum(attention_definition<causal>(Q, K, V) * W);
    // the lowering did happen: the definition's program holds the node, and as many nodes as the node's program
    using def_nodes = tensors::tensor_nodes_t<decltype(loss)>;
    static_assert(
        sym::meta::contains_v<Attention<causal, tensors::Input<0>, tensors::Input<1>, tensors::Input<2>>, def_nodes> &&
        def_nodes::size == tensors::tensor_nodes_t<decltype(sum(attention_node<causal>(Q, K, V) * W))>::size);
    run_program(st, loss);
}
void BM_unlowered(benchmark::State& st) { run_program(st, unlowered(sum(attention_definition<causal>(Q, K, V) * W))); }

void BM_alibi(benchmark::State& st) {
    constexpr auto qk = matmul(Q, transpose(K));
    constexpr auto i = iota<-2>(qk);
    constexpr auto j = iota<-1>(qk);
    constexpr auto h = iota<1>(qk);
    constexpr auto slope = exp(fc<-8 * 0.6931471805599453> * (h + 1_c) / (max(h) + 1_c));
    constexpr auto scores = qk / sqrt(max(iota<-1>(Q)) + 1_c) - slope * (i - j);
    constexpr auto out =
        matmul(softmax(where(less_equal(j, i), scores, fc<-std::numeric_limits<double>::infinity()>)), V);
    run_program(st, sum(out * W));
}

// The same ALiBi attention through flex attention's fused kernels (ops/flex_attention_node.hpp): the bias as a
// score modification, slopes m_h = 2^(-8(h+1)/H) as a parameter array [H].
void BM_alibi_flex(benchmark::State& st) {
    const auto alibi = ops::attn::score - ops::attn::param<0> * (ops::attn::q_idx - ops::attn::k_idx);
    const auto causal_mask = ops::attn::q_idx - ops::attn::k_idx + 1_c;  // visible where k_idx <= q_idx
    const inputs& x = in();
    xt::xtensor<double, 1> slopes = xt::xtensor<double, 1>::from_shape({H});
    for (std::size_t h = 0; h < H; ++h) slopes(h) = std::exp2(-8.0 * static_cast<double>(h + 1) / H);
    auto prog = value_and_grad(sum(flex_attention_node(alibi, causal_mask, Q, K, V, tensor<4>) * W), wrt<0, 1, 2>);
    for (auto _ : st) {
        const auto [value, grads] = prog(x.q, x.k, x.v, x.w, slopes);
        benchmark::DoNotOptimize(value);
        benchmark::DoNotOptimize(std::get<0>(grads).data());
    }
}

}  // namespace

BENCHMARK(BM_kernel)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_node)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_definition)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_unlowered)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_alibi)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_alibi_flex)->Unit(benchmark::kMillisecond);
BENCHMARK_MAIN();
