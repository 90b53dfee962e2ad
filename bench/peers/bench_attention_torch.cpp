// libtorch 1.13 (Debian libtorch-dev) at the shapes of bench/bench_attention.cpp: B = 1, H = 4, d = 64, float32,
// T ∈ {128, 512, 2048}, causal or not, 1 and 2 threads. libtorch 1.13 has no fused attention, so this is the
// composition softmax(QKᵀ·s + mask)·V, forward under NoGradGuard, and forward + backward through autograd
// with dout as the upstream gradient. Work is counted as in bench_attention (4·d flops per attended pair
// forward, 14·d forward + backward, T(T+1)/2 pairs when causal), so GFLOP/s compare directly; libtorch computes
// the masked half anyway.
// Built only with -Dpeers=true (<torch/torch.h> costs ~30 s and 1.2 GB to compile).
// Run: build/bench/peers/bench_attention_torch --benchmark_min_time=0.2
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <cmath>
#include <cstddef>
#include <limits>

namespace {

constexpr long B = 1, H = 4, D = 64;

double pairs(long T, bool causal) { return causal ? T * (T + 1) / 2.0 : double(T) * double(T); }

void BM_torch(benchmark::State& st, bool backward) {
    const long T = st.range(0), threads = st.range(2);
    const bool causal = st.range(1) != 0;
    torch::set_num_threads(static_cast<int>(threads));
    torch::manual_seed(12345);
    const auto opts = torch::TensorOptions().dtype(torch::kFloat32);
    auto q = torch::rand({B, H, T, D}, opts) * 2 - 1, k = torch::rand({B, H, T, D}, opts) * 2 - 1,
         v = torch::rand({B, H, T, D}, opts) * 2 - 1, dout = torch::rand({B, H, T, D}, opts) * 2 - 1;
    q.set_requires_grad(backward);
    k.set_requires_grad(backward);
    v.set_requires_grad(backward);
    const auto mask = torch::ones({T, T}, torch::kBool).triu(1);  // true above the diagonal: masked
    const double scale = 1.0 / std::sqrt(double(D));
    auto forward = [&] {
        auto s = torch::matmul(q, k.transpose(-2, -1)) * scale;
        if (causal) s = s.masked_fill(mask, -std::numeric_limits<float>::infinity());
        return torch::matmul(torch::softmax(s, -1), v);
    };
    for (auto _ : st) {
        if (backward) {
            auto out = forward();
            out.backward(dout);
            benchmark::DoNotOptimize(q.grad().data_ptr());
            q.mutable_grad().reset();
            k.mutable_grad().reset();
            v.mutable_grad().reset();
        } else {
            torch::NoGradGuard no_grad;
            auto out = forward();
            benchmark::DoNotOptimize(out.data_ptr());
        }
    }
    const double flops = (backward ? 14.0 : 4.0) * D * pairs(T, causal) * H * B;
    st.counters["GFLOP/s"] = benchmark::Counter(flops / 1e9, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_torch_forward(benchmark::State& st) { BM_torch(st, false); }
void BM_torch_forward_backward(benchmark::State& st) { BM_torch(st, true); }

// One thread: timed by the thread's CPU time, which other load on the shared machine does not inflate (all
// work runs on the calling thread). Two threads: wall-clock time (the pool's workers are other threads).
void one_thread(benchmark::internal::Benchmark* b) {
    b->ArgNames({"T", "causal", "threads"});
    for (long causal : {0, 1})
        for (long T : {128, 512, 2048}) b->Args({T, causal, 1});
    b->Unit(benchmark::kMillisecond);
}
void two_threads(benchmark::internal::Benchmark* b) {
    b->ArgNames({"T", "causal", "threads"});
    for (long causal : {0, 1})
        for (long T : {128, 512, 2048}) b->Args({T, causal, 2});
    b->Unit(benchmark::kMillisecond)->UseRealTime();
}

}  // namespace

BENCHMARK(BM_torch_forward)->Apply(one_thread);
BENCHMARK(BM_torch_forward)->Apply(two_threads);
BENCHMARK(BM_torch_forward_backward)->Apply(one_thread);
BENCHMARK(BM_torch_forward_backward)->Apply(two_threads);

BENCHMARK_MAIN();
