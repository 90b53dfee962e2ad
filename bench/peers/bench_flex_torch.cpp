// libtorch 1.13 (Debian libtorch-dev) computing the library's attention modifications (ops/attention_mods.hpp,
// issue 20) with tensor operations, as eager PyTorch code without FlexAttention would: the scores materialized,
// the bias added, tanh, masked_fill, softmax, @V; forward + backward through autograd with dout as the upstream
// gradient (the learnable ALiBi slopes and T5 table get their gradients too, as flex_attention_vjp's dparams).
// B = 1, H = 4, d = 64, float32, T ∈ {512, 1024, 2048}, 1 and 2 threads (torch::set_num_threads).
// The same variants on our side are BM_vs_torch in bench/bench_flex_attention.cpp (same names and arguments);
// bench/flex_torch_rounds.py runs both interleaved and prints docs/attention.md's table. The variants:
//   identity     attn::score, no mask               plain softmax(s)·V (ours: ops::attention; the reference)
//   causal       attn::causal                       masked_fill of the upper triangle
//   window256    attn::sliding_window<256>          masked_fill of j > i or i − j ≥ 256
//   document4    attn::document_causal, 4 documents of T/4 positions: masked_fill of (doc_i ≠ doc_j or j > i)
//   alibi        attn::alibi, no mask               + (−m_h·(i − j)), m_h learnable
//   softcap      attn::softcap<30.0>, no mask       30·tanh(s/30)
//   relbias      attn::relative_bias<32, 128>, no mask: + table[bucket(i − j), h] by index_select, table learnable
// The masks, the distances and the bucket indices are built once (not timed): what they cost is shape setup.
// Built only with -Dpeers=true. Run: build/bench/peers/bench_flex_torch --benchmark_min_time=0.1
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <cstdlib>

#include <cmath>
#include <cstddef>
#include <limits>
#include <string>

#include <exprgrad/ops/attn_relative_bias.hpp>  // attn::relative_bucket: the same buckets as ours

namespace {

constexpr long B = 1, H = 4, D = 64, NB = 32, MaxDistance = 128;
constexpr double Cap = 30.0;

enum class variant { identity, causal, window256, document4, alibi, softcap, relbias };

void BM_torch(benchmark::State& st, variant which) {
    const long T = st.range(0), threads = st.range(1);
    torch::set_num_threads(static_cast<int>(threads));
    // TORCH_FLUSH_DENORMAL=1: libtorch's own switch for subnormal floats (flushed to zero), which ALiBi's far
    // distances produce in exp and which Intel cores compute slowly; bench/flex_torch_rounds.py sets it
    if (const char* f = std::getenv("TORCH_FLUSH_DENORMAL"); f && f[0] == '1') at::globalContext().setFlushDenormal(true);
    torch::manual_seed(12345);
    const auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
    auto q = torch::rand({B, H, T, D}, f32) * 2 - 1, k = torch::rand({B, H, T, D}, f32) * 2 - 1,
         v = torch::rand({B, H, T, D}, f32) * 2 - 1, dout = torch::rand({B, H, T, D}, f32) * 2 - 1;
    for (auto* t : {&q, &k, &v}) t->set_requires_grad(true);
    const auto pos = torch::arange(T, torch::kLong);
    const auto i = pos.view({T, 1}), j = pos.view({1, T});
    torch::Tensor mask;  // true where masked
    if (which == variant::causal) mask = j > i;
    if (which == variant::window256) mask = (j > i).logical_or(i - j >= 256);
    if (which == variant::document4) {
        const auto doc = torch::div(pos, T / 4, "floor");
        mask = (doc.view({T, 1}) != doc.view({1, T})).logical_or(j > i);
    }
    const auto distance = (i - j).to(torch::kFloat32);  // [T, T]
    auto slopes = torch::tensor({0.25f, 0.0625f, 0.015625f, 0.00390625f}, f32).set_requires_grad(true);
    auto table = torch::zeros({NB, H}, f32).set_requires_grad(true);
    torch::Tensor buckets;
    if (which == variant::relbias) {
        auto b = torch::empty({T * T}, torch::kLong);
        auto* p = b.data_ptr<long>();
        for (long a = 0; a < T; ++a)
            for (long c = 0; c < T; ++c)
                p[a * T + c] = static_cast<long>(exprgrad::ops::attn::relative_bucket(a - c, NB, MaxDistance));
        buckets = b;
    }
    const double scale = 1.0 / std::sqrt(double(D));
    const float neg_inf = -std::numeric_limits<float>::infinity();
    auto forward = [&] {
        auto s = torch::matmul(q, k.transpose(-2, -1)) * scale;  // [B, H, T, T]
        switch (which) {
            case variant::identity:
                break;
            case variant::causal:
            case variant::window256:
            case variant::document4:
                s = s.masked_fill(mask, neg_inf);
                break;
            case variant::alibi:
                s = s - slopes.view({1, H, 1, 1}) * distance;
                break;
            case variant::softcap:
                s = torch::tanh(s / Cap) * Cap;
                break;
            case variant::relbias:
                s = s + table.index_select(0, buckets).view({T, T, H}).permute({2, 0, 1}).unsqueeze(0);
                break;
        }
        return torch::matmul(torch::softmax(s, -1), v);
    };
    auto step = [&] {
        auto out = forward();
        out.backward(dout);
        benchmark::DoNotOptimize(q.grad().data_ptr());
        for (auto* t : {&q, &k, &v, &slopes, &table})
            if (t->grad().defined()) t->mutable_grad().reset();
    };
    step();  // warm-up, untimed: the first call's allocations and autograd set-up
    for (auto _ : st) step();
}

// Wall-clock time (real_time) for both thread counts, the process's CPU time beside it (cpu_time).
void shapes(benchmark::internal::Benchmark* b) {
    b->ArgNames({"T", "threads"});
    for (long T : {512, 1024, 2048}) b->Args({T, 1});
    for (long T : {512, 1024, 2048}) b->Args({T, 2});
    b->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime()->UseRealTime();
}

}  // namespace

BENCHMARK_CAPTURE(BM_torch, identity, variant::identity)->Apply(shapes);
BENCHMARK_CAPTURE(BM_torch, causal, variant::causal)->Apply(shapes);
BENCHMARK_CAPTURE(BM_torch, window256, variant::window256)->Apply(shapes);
BENCHMARK_CAPTURE(BM_torch, document4, variant::document4)->Apply(shapes);
BENCHMARK_CAPTURE(BM_torch, alibi, variant::alibi)->Apply(shapes);
BENCHMARK_CAPTURE(BM_torch, softcap, variant::softcap)->Apply(shapes);
BENCHMARK_CAPTURE(BM_torch, relbias, variant::relbias)->Apply(shapes);

BENCHMARK_MAIN();
