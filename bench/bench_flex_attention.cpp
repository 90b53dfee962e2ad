// Flex attention (ops/flex_attention.hpp) against ops::attention at B = 1, H = 4, d = 64, float32, causal, one
// thread (CPU time): the identity modification (dispatched to ops::attention), the causal mask written as a
// mask_mod (the fused kernels with a mask and no score change), ALiBi with that mask, and tanh soft-capping
// with the options' causal mask; forward, and forward + backward; ALiBi also with the options' causal mask (as the
// identity has it); and at T = 4096 the sliding window attn::sliding_window<256> against full causal attention,
// forward + backward (issue 20), with the causal mask written as attn::causal and the causal document mask of
// eight packed documents of 512 positions (attn::document_causal). The modifications are the library's
// (ops/attention_mods.hpp); the block mask classifies every tile of these masks once per shape.
// bench/flex_rounds.py runs this program in interleaved rounds and prints the medians (docs/flex_attention.md).
// BM_vs_torch: the modifications that bench/peers/bench_flex_torch.cpp computes with libtorch, at its shapes
// (bench/flex_torch_rounds.py; flex_rounds.py's default filter leaves them out).
// Run alone:
//   build/bench/bench_flex_attention --benchmark_min_time=0.1
#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include <xtensor/xtensor.hpp>

#include <exprgrad/ops/attention_mods.hpp>
#include <exprgrad/ops/flex_attention.hpp>

using namespace exprgrad;
using namespace exprgrad::ops;
using namespace exprgrad::sym::literals;

namespace {

constexpr std::size_t B = 1, H = 4, D = 64;

xt::xtensor<float, 4> random4(std::size_t T, std::uint64_t seed) {
    auto x = xt::xtensor<float, 4>::from_shape({B, H, T, D});
    std::uint64_t s = seed * 0x9E3779B97F4A7C15ULL + 1;
    for (auto& e : x) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        e = static_cast<float>(static_cast<double>(s >> 11) * 0x1.0p-52 - 1.0);
    }
    return x;
}

struct inputs {
    xt::xtensor<float, 4> q, k, v, dout;
    std::vector<xt::xtensor<float, 1>> slopes;
    explicit inputs(std::size_t T) : q(random4(T, 1)), k(random4(T, 2)), v(random4(T, 3)), dout(random4(T, 4)) {
        xt::xtensor<float, 1> s = xt::zeros<float>({H});
        for (std::size_t h = 0; h < H; ++h) s(h) = 1.0f / static_cast<float>(2u << h);  // ALiBi's 2^(−8h/H), H = 4
        slopes = {s};
    }
};

constexpr auto alibi = attn::alibi;        // score − param<0>·(q_idx − k_idx)
constexpr auto causal_mask = attn::causal;  // q_idx − k_idx + 1 > 0
constexpr auto softcap = attn::softcap<30.0>;
constexpr auto window = attn::sliding_window<256>;

attention_options causal_options() {
    attention_options o;
    o.causal = true;
    o.threads = 1;
    return o;
}

template <class Run>
void run(benchmark::State& st, Run&& fn) {
    kernels::set_num_threads(1);
    const inputs in(static_cast<std::size_t>(st.range(0)));
    for (auto _ : st) fn(in);
}

void BM_attention(benchmark::State& st, bool backward) {
    run(st, [&](const inputs& in) {
        const auto o = causal_options();
        if (backward) {
            auto g = attention_vjp(in.q, in.k, in.v, in.dout, o);
            benchmark::DoNotOptimize(g.dq.data());
        } else {
            auto r = attention_forward(in.q, in.k, in.v, o);
            benchmark::DoNotOptimize(r.out.data());
        }
    });
}

template <class Mod, class Mask>
void BM_flex(benchmark::State& st, bool backward, Mod mod, Mask mask, bool options_causal, bool params) {
    run(st, [&](const inputs& in) {
        auto o = causal_options();
        o.causal = options_causal;
        const std::vector<xt::xtensor<float, 1>> none;
        const auto& p = params ? in.slopes : none;
        if (backward) {
            auto g = flex_attention_vjp(in.q, in.k, in.v, in.dout, mod, mask, p, o);
            benchmark::DoNotOptimize(g.dq.data());
        } else {
            auto r = flex_attention_forward(in.q, in.k, in.v, mod, mask, p, o);
            benchmark::DoNotOptimize(r.out.data());
        }
    });
}

/// attn::document_causal over documents of `len` positions packed into each row, forward + backward.
void BM_flex_documents(benchmark::State& st, std::size_t len) {
    run(st, [&](const inputs& in) {
        const std::size_t T = in.q.shape()[2];
        static flex_documents docs;
        if (docs.q.shape()[1] != T) {
            auto ids = xt::xtensor<std::int64_t, 2>::from_shape({B, T});
            for (std::size_t i = 0; i < T; ++i) ids(0, i) = static_cast<std::int64_t>(i / len);
            docs = flex_documents::self(ids);
        }
        auto g = flex_attention_vjp(in.q, in.k, in.v, in.dout, attn::score, attn::document_causal, {}, causal_options(),
                                    docs);
        benchmark::DoNotOptimize(g.dq.data());
    });
}

/// The libtorch comparison (bench/peers/bench_flex_torch.cpp, same names and arguments; bench/flex_torch_rounds.py):
/// forward + backward of a modification at T ∈ {512, 1024, 2048} on 1 or 2 threads, wall-clock time beside the
/// process's CPU time. `docs`: attn::document_causal's four documents of T/4 positions; `nparams`: learnable
/// parameter arrays of H values (ALiBi's slopes, the T5 table's 32 buckets, zero-initialised as T5 does).
template <class Mod, class Mask>
void BM_vs_torch(benchmark::State& st, Mod mod, Mask mask, std::size_t nparams, bool docs) {
    const auto T = static_cast<std::size_t>(st.range(0)), threads = static_cast<std::size_t>(st.range(1));
    kernels::set_num_threads(threads);
    const inputs in(T);
    std::vector<xt::xtensor<float, 1>> p;
    if (nparams == 1) p = in.slopes;
    for (std::size_t n = nparams == 1 ? 1 : 0; n < nparams; ++n) p.push_back(xt::zeros<float>({H}));
    auto o = causal_options();
    o.causal = false;
    o.threads = threads;
    auto ids = xt::xtensor<std::int64_t, 2>::from_shape({B, T});
    for (std::size_t i = 0; i < T; ++i) ids(0, i) = static_cast<std::int64_t>(i / (T / 4));
    const auto d = flex_documents::self(ids);
    auto step = [&] {
        auto g = docs ? flex_attention_vjp(in.q, in.k, in.v, in.dout, mod, mask, p, o, d)
                      : flex_attention_vjp(in.q, in.k, in.v, in.dout, mod, mask, p, o);
        benchmark::DoNotOptimize(g.dq.data());
    };
    step();  // warm-up, untimed (as the libtorch side): the block mask of the shape is classified here
    for (auto _ : st) step();
}

void torch_shapes(benchmark::internal::Benchmark* b) {
    b->ArgNames({"T", "threads"});
    for (long T : {512, 1024, 2048}) b->Args({T, 1});
    for (long T : {512, 1024, 2048}) b->Args({T, 2});
    b->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime()->UseRealTime();
}

void sizes(benchmark::internal::Benchmark* b) {
    b->ArgNames({"T"})->Arg(256)->Arg(1024)->Unit(benchmark::kMillisecond);
}
void long_sizes(benchmark::internal::Benchmark* b) { b->ArgNames({"T"})->Arg(4096)->Unit(benchmark::kMillisecond); }

}  // namespace

BENCHMARK_CAPTURE(BM_attention, fwd, false)->Apply(sizes);
BENCHMARK_CAPTURE(BM_flex, fwd_identity, false, attn::score, 1_c, true, false)->Apply(sizes);
BENCHMARK_CAPTURE(BM_flex, fwd_mask, false, attn::score, causal_mask, false, false)->Apply(sizes);
BENCHMARK_CAPTURE(BM_flex, fwd_alibi, false, alibi, causal_mask, false, true)->Apply(sizes);
BENCHMARK_CAPTURE(BM_flex, fwd_softcap, false, softcap, 1_c, true, false)->Apply(sizes);
BENCHMARK_CAPTURE(BM_flex, fwd_alibi_opts, false, alibi, 1_c, true, true)->Apply(sizes);
BENCHMARK_CAPTURE(BM_attention, fwdbwd, true)->Apply(sizes);
BENCHMARK_CAPTURE(BM_flex, fwdbwd_identity, true, attn::score, 1_c, true, false)->Apply(sizes);
BENCHMARK_CAPTURE(BM_flex, fwdbwd_mask, true, attn::score, causal_mask, false, false)->Apply(sizes);
BENCHMARK_CAPTURE(BM_flex, fwdbwd_alibi, true, alibi, causal_mask, false, true)->Apply(sizes);
BENCHMARK_CAPTURE(BM_flex, fwdbwd_softcap, true, softcap, 1_c, true, false)->Apply(sizes);
BENCHMARK_CAPTURE(BM_flex, fwdbwd_alibi_opts, true, alibi, 1_c, true, true)->Apply(sizes);
BENCHMARK_CAPTURE(BM_attention, fwdbwd, true)->Apply(long_sizes);
BENCHMARK_CAPTURE(BM_flex, fwdbwd_mask, true, attn::score, causal_mask, false, false)->Apply(long_sizes);
BENCHMARK_CAPTURE(BM_flex, fwdbwd_window256, true, attn::score, window, false, false)->Apply(long_sizes);
BENCHMARK_CAPTURE(BM_flex, fwdbwd_window256_opts, true, attn::score, window, true, false)->Apply(long_sizes);
BENCHMARK_CAPTURE(BM_flex_documents, fwdbwd_document512, 512)->Apply(long_sizes);
// Width 1 (the 64 diagonal tiles only): the floor of the fused path's cost per computed tile.
BENCHMARK_CAPTURE(BM_flex, fwdbwd_window1, true, attn::score, attn::sliding_window<1>, false, false)->Apply(long_sizes);
BENCHMARK_CAPTURE(BM_flex, fwdbwd_window1_opts, true, attn::score, attn::sliding_window<1>, true, false)
    ->Apply(long_sizes);

BENCHMARK_CAPTURE(BM_vs_torch, identity, attn::score, 1_c, 0, false)->Apply(torch_shapes);  // runs ops::attention
BENCHMARK_CAPTURE(BM_vs_torch, causal, attn::score, attn::causal, 0, false)->Apply(torch_shapes);
BENCHMARK_CAPTURE(BM_vs_torch, window256, attn::score, window, 0, false)->Apply(torch_shapes);
BENCHMARK_CAPTURE(BM_vs_torch, document4, attn::score, attn::document_causal, 0, true)->Apply(torch_shapes);
BENCHMARK_CAPTURE(BM_vs_torch, alibi, alibi, 1_c, 1, false)->Apply(torch_shapes);
BENCHMARK_CAPTURE(BM_vs_torch, softcap, softcap, 1_c, 0, false)->Apply(torch_shapes);
BENCHMARK_CAPTURE(BM_vs_torch, relbias, attn::relative_bias<32, 128>, 1_c, 32, false)->Apply(torch_shapes);

BENCHMARK_MAIN();
