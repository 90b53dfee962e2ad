// What writing attention symbolically costs (issue 17, part 3): value and gradients (dq, dk, dv) of causal
// attention, loss = sum(attention(Q, K, V) · W), at B = 2, H = 4, T = 256, d = 64 in double on one thread:
//   kernel       attention_forward_into + attention_vjp_into, called directly (arrays and workspace reused)
//   node         value_and_grad of the attention node, attention_node<causal>(Q, K, V)
//   definition   value_and_grad of attention_definition<causal>(Q, K, V): lowered to the node when compiled
//   unlowered    the same definition compiled as written (tensors::unlowered): the primitives, T×T scores
//   alibi        ALiBi attention written with the primitives (examples/alibi_attention.cpp's expression),
//                compiled as written (unlowered: since #19 the lowering sends it to the flex kernels): its cost
//                against the fused causal kernel
//   alibi_flex   the same ALiBi through flex attention's fused kernels (a score modification)
//   alibi512_*   #19's flex lowering, ALiBi under a causal mask written with the primitives, B = 1, H = 4,
//                T = 512, d = 64, float: the program lowered to the flex node (lowered), compiled as written
//                (unlowered), and the kernels called directly (direct: flex_attention_forward; for the gradients
//                the node's kernel calls, forward_into + vjp); forward only (fwd: evaluator) and value and
//                gradients dq, dk, dv, dslopes (grad: value_and_grad)
//   pair_*       the kernel and the node's (resp. the definition's) program called alternately, each call timed
//                in thread CPU time: quartiles of the per-pair ratio program/kernel; pair_flex: alibi512's lowered
//                program (the flex node) against the flex kernels over views of preallocated buffers
// Goal: definition within 5% of kernel. Run (medians of interleaved rounds, docs/attention.md):
//   EXPRGRAD_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 build/bench/bench_attention_lowering
//     --benchmark_repetitions=7 --benchmark_enable_random_interleaving=true
//     --benchmark_report_aggregates_only=true --benchmark_min_time=0.5
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <cstddef>
#include <limits>
#include <type_traits>
#include <vector>

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

// The kernel and a program called alternately, call by call, each timed in thread CPU time: the median of the
// per-pair ratios program/kernel. Alternating single calls cancels the slow drift of a shared machine's load,
// which the medians of separate 0.5 s repetitions above do not (their coefficient of variation is 5-15% at load 5).
double thread_cpu_seconds() {
    timespec t{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}
template <class E>
void paired_ratio(benchmark::State& st, E loss) {
    const inputs& x = in();
    const attention_options o = causal::options();
    xt::xtensor<double, 4> out;
    xt::xtensor<double, 3> lse;
    attention_grads<double> g;
    attention_workspace<double> ws;
    auto prog = value_and_grad(loss, wrt<0, 1, 2>);
    std::vector<double> ratios;
    for (auto _ : st) {
        const double t0 = thread_cpu_seconds();
        attention_forward_into(x.q, x.k, x.v, o, out, lse, ws);
        double l = 0;
        for (std::size_t i = 0; i < out.size(); ++i) l += out.data()[i] * x.w.data()[i];
        attention_vjp_into(x.q, x.k, x.v, out, lse, x.w, o, g, ws, attention_reuse::forward);
        const double t1 = thread_cpu_seconds();
        const auto [value, grads] = prog(x.q, x.k, x.v, x.w);
        const double t2 = thread_cpu_seconds();
        benchmark::DoNotOptimize(l);
        benchmark::DoNotOptimize(value);
        benchmark::DoNotOptimize(std::get<0>(grads).data());
        ratios.push_back((t2 - t1) / (t1 - t0));
    }
    std::sort(ratios.begin(), ratios.end());
    st.counters["ratio_median"] = ratios[ratios.size() / 2];
    st.counters["ratio_q1"] = ratios[ratios.size() / 4];
    st.counters["ratio_q3"] = ratios[3 * ratios.size() / 4];
}
void BM_pair_node(benchmark::State& st) { paired_ratio(st, sum(attention_node<causal>(Q, K, V) * W)); }
void BM_pair_definition(benchmark::State& st) { paired_ratio(st, sum(attention_definition<causal>(Q, K, V) * W)); }

void BM_alibi(benchmark::State& st) {
    constexpr auto qk = matmul(Q, transpose(K));
    constexpr auto i = iota<-2>(qk);
    constexpr auto j = iota<-1>(qk);
    constexpr auto h = iota<1>(qk);
    constexpr auto slope = exp(fc<-8 * 0.6931471805599453> * (h + 1_c) / (max(h) + 1_c));
    constexpr auto scores = qk / sqrt(max(iota<-1>(Q)) + 1_c) - slope * (i - j);
    constexpr auto out =
        matmul(softmax(where(less_equal(j, i), scores, fc<-std::numeric_limits<double>::infinity()>)), V);
    run_program(st, unlowered(sum(out * W)));
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

// ---- #19: ALiBi written with the primitives, lowered to the flex kernels

constexpr std::size_t T2 = 512;
struct inputs512 {
    xt::xtensor<float, 4> q, k, v, w;
    xt::xtensor<float, 1> slopes;
    inputs512() {
        rng gen(11);
        q = random::normal(gen, {1, H, T2, D});
        k = random::normal(gen, {1, H, T2, D});
        v = random::normal(gen, {1, H, T2, D});
        w = random::normal(gen, {1, H, T2, D});
        slopes = xt::xtensor<float, 1>::from_shape({H});
        for (std::size_t h = 0; h < H; ++h) slopes(h) = static_cast<float>(std::exp2(-8.0 * double(h + 1) / H));
    }
};
const inputs512& in512() {
    static const inputs512 x;
    return x;
}
constexpr auto qk512 = matmul(Q, transpose(K));
constexpr auto alibi512_scores = qk512 * fc<0.125> - reshape<-1, 1, 1>(tensor<4>) * (iota<-2>(qk512) - iota<-1>(qk512));
constexpr auto alibi512 = matmul(softmax(where(less_equal(iota<-1>(qk512), iota<-2>(qk512)), alibi512_scores,
                                               fc<-std::numeric_limits<double>::infinity()>)),
                                 V);
static_assert(!std::is_same_v<tensors::lowered_t<decltype(alibi512)>, std::remove_cv_t<decltype(alibi512)>>,
              "the ALiBi form is lowered");
// what the lowering builds: the same modification and mask, scale 1
const auto alibi512_mod = ops::attn::score * fc<0.125> - ops::attn::param<0> * (ops::attn::q_idx - ops::attn::k_idx);
const auto alibi512_mask = sym::less(ops::attn::k_idx, ops::attn::q_idx);

template <class E>
void run_forward512(benchmark::State& st, E expr) {
    const inputs512& x = in512();
    auto prog = evaluator(expr);
    for (auto _ : st) {
        const auto& y = prog(x.q, x.k, x.v, x.w, x.slopes);
        benchmark::DoNotOptimize(y.data());
    }
}
template <class E>
void run_grad512(benchmark::State& st, E loss) {
    const inputs512& x = in512();
    auto prog = value_and_grad(loss, wrt<0, 1, 2, 4>);
    for (auto _ : st) {
        const auto [value, grads] = prog(x.q, x.k, x.v, x.w, x.slopes);
        benchmark::DoNotOptimize(value);
        benchmark::DoNotOptimize(std::get<0>(grads).data());
    }
}
attention_options unit_scale_options() {
    attention_options o;
    o.scale = scale::fixed(1.0);
    return o;
}
void BM_alibi512_fwd_lowered(benchmark::State& st) { run_forward512(st, alibi512); }
void BM_alibi512_fwd_unlowered(benchmark::State& st) { run_forward512(st, unlowered(alibi512)); }
void BM_alibi512_fwd_direct(benchmark::State& st) {
    const inputs512& x = in512();
    const std::vector<xt::xtensor<float, 1>> params = {x.slopes};
    const attention_options o = unit_scale_options();
    for (auto _ : st) {
        const auto r = flex_attention_forward(x.q, x.k, x.v, alibi512_mod, alibi512_mask, params, o);
        benchmark::DoNotOptimize(r.out.data());
    }
}
void BM_alibi512_grad_lowered(benchmark::State& st) { run_grad512(st, sum(alibi512 * W)); }
void BM_alibi512_grad_unlowered(benchmark::State& st) { run_grad512(st, unlowered(sum(alibi512 * W))); }
void BM_alibi512_grad_direct(benchmark::State& st) {
    const inputs512& x = in512();
    const std::vector<xt::xtensor<float, 1>> params = {x.slopes};
    const attention_options o = unit_scale_options();
    // the kernels the node calls, with the forward's out and lse reused by the VJP (flex_attention_vjp would
    // recompute the forward) and one workspace
    using M = ops::detail::flex::modification<float, std::remove_cv_t<decltype(alibi512_mod)>,
                                              std::remove_cv_t<decltype(alibi512_mask)>>;
    xt::xtensor<float, 4> out;
    xt::xtensor<float, 3> lse;
    ops::detail::flex::workspace<float> ws;
    for (auto _ : st) {
        ops::detail::flex::forward_into<M>(x.q, x.k, x.v, params, o, out, lse, ws);
        float loss = 0;
        for (std::size_t i = 0; i < out.size(); ++i) loss += out.data()[i] * x.w.data()[i];  // sum(out · W)
        const auto g = ops::detail::flex::vjp<M>(x.q, x.k, x.v, out, lse, x.w, params, o, ws);
        benchmark::DoNotOptimize(loss);
        benchmark::DoNotOptimize(g.dq.data());
    }
}

// #19's lowered ALiBi (the flex node) against the flex kernels over views of preallocated buffers, called
// alternately as paired_ratio: quartiles of the per-pair ratio program/kernel.
void BM_pair_flex(benchmark::State& st) {
    const inputs512& x = in512();
    const attention_options o = unit_scale_options();
    using M = ops::detail::flex::modification<float, std::remove_cv_t<decltype(alibi512_mod)>,
                                              std::remove_cv_t<decltype(alibi512_mask)>>;
    const std::vector<attention_view<float, 1>> params = {view_of(x.slopes)};
    const auto q = view_of(x.q), k = view_of(x.k), v = view_of(x.v), w = view_of(x.w);
    std::vector<float> out(x.q.size()), lse(H * T2), dq(x.q.size()), dk(x.k.size()), dv(x.v.size()), dpar(H);
    ops::detail::flex::workspace<float> ws;
    auto prog = value_and_grad(sum(alibi512 * W), wrt<0, 1, 2, 4>);
    std::vector<double> ratios;
    for (auto _ : st) {
        const double t0 = thread_cpu_seconds();
        ops::detail::flex::forward_into<M>(q, k, v, params, o, out.data(), lse.data(), ws);
        float l = 0;
        for (std::size_t i = 0; i < out.size(); ++i) l += out[i] * x.w.data()[i];  // sum(out · W)
        ops::detail::flex::vjp_into<M>(q, k, v, attention_view<float, 4>{out.data(), q.dims},
                                       attention_view<float, 3>{lse.data(), {1, H, T2}}, w, params, o, dq.data(),
                                       dk.data(), dv.data(), dpar.data(), ws);
        const double t1 = thread_cpu_seconds();
        const auto [value, grads] = prog(x.q, x.k, x.v, x.w, x.slopes);
        const double t2 = thread_cpu_seconds();
        benchmark::DoNotOptimize(l);
        benchmark::DoNotOptimize(dq.data());
        benchmark::DoNotOptimize(value);
        benchmark::DoNotOptimize(std::get<0>(grads).data());
        ratios.push_back((t2 - t1) / (t1 - t0));
    }
    std::sort(ratios.begin(), ratios.end());
    st.counters["ratio_median"] = ratios[ratios.size() / 2];
    st.counters["ratio_q1"] = ratios[ratios.size() / 4];
    st.counters["ratio_q3"] = ratios[3 * ratios.size() / 4];
}

}  // namespace

BENCHMARK(BM_alibi512_fwd_lowered)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_alibi512_fwd_unlowered)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_alibi512_fwd_direct)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_alibi512_grad_lowered)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_alibi512_grad_unlowered)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_alibi512_grad_direct)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_kernel)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_node)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_definition)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_unlowered)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_alibi)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_alibi_flex)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_pair_node)->Unit(benchmark::kMillisecond)->Iterations(400);
BENCHMARK(BM_pair_definition)->Unit(benchmark::kMillisecond)->Iterations(400);
BENCHMARK(BM_pair_flex)->Unit(benchmark::kMillisecond)->Iterations(400);
BENCHMARK_MAIN();
