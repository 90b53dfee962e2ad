// Attention (ops/attention.hpp) side by side with a naive materialised implementation and the machine's
// measured FMA peak, at B = 1, H = 4, d = 64, float32, T ∈ {128, 512, 2048}, with and without the causal mask,
// on 1 and 2 threads. Work is counted as in issue 4: 4·d flops per attended (query, key) pair forward and
// 10·d backward (recomputing the scores), so 14·d forward + backward; the causal case counts only the
// T(T+1)/2 pairs it must do. Counters: GFLOP/s, peak_frac = GFLOP/s / (threads × the one-core FMA peak with
// the widest FMAs the CPU has: 512-bit where it has AVX-512F, which the float kernels then use), and
// frac_256 against the 256-bit peak; both peaks measured in the same run (bench/peak.hpp). One-thread runs are timed by
// CPU time, two-thread runs by wall-clock time (see one_thread, two_threads). Run: build/bench/bench_attention
// --benchmark_min_time=0.2   (tables: docs/attention.md)
#include <benchmark/benchmark.h>

#include <immintrin.h>
#include "peak.hpp"

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <limits>
#include <vector>

#include <xtensor/xtensor.hpp>

#include <exprgrad/ops/attention.hpp>

using namespace exprgrad;
using namespace exprgrad::ops;

namespace {

constexpr std::size_t B = 1, H = 4, D = 64;

using exprgrad::bench::flops_per_chain_iteration;
using exprgrad::bench::fma_chains;
using exprgrad::bench::fma_peak_gflops;
using exprgrad::bench::sink;
using exprgrad::bench::thread_seconds;

/// The FMA chains of peak.hpp on `threads` threads; range(1) = 512 for 16-lane FMAs (skipped without AVX-512F).
void BM_fma_peak(benchmark::State& st) {
    const std::size_t threads = static_cast<std::size_t>(st.range(0));
    const bool wide = st.range(1) == 512;
    if (wide && !__builtin_cpu_supports("avx512f")) {
        st.SkipWithError("no AVX-512F");
        return;
    }
    kernels::set_num_threads(threads);
    static const float init[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    const long n = 2'000'000;
    for (auto _ : st) {
        kernels::parallel_for(
            0, threads, 1,
            [&](std::size_t, std::size_t) {
                sink = wide ? exprgrad::bench::fma_chains_512(n, init) : fma_chains(n, init);
            },
            threads);
    }
    const double flops = n * (wide ? exprgrad::bench::flops_per_chain_iteration_512 : flops_per_chain_iteration);
    st.counters["GFLOP/s"] = benchmark::Counter(flops * threads / 1e9, benchmark::Counter::kIsIterationInvariantRate);
    st.counters["peak_frac"] = benchmark::Counter(flops / 1e9 / exprgrad::bench::machine_fma_peak_gflops(),
                                                  benchmark::Counter::kIsIterationInvariantRate);
}

// ---- inputs and work counts ----

struct inputs {
    xt::xtensor<float, 4> q, k, v, dout;
    explicit inputs(std::size_t T) {
        q = xt::xtensor<float, 4>::from_shape({B, H, T, D});
        k = q;
        v = q;
        dout = q;
        std::uint64_t s = 12345;
        auto next = [&] {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            return static_cast<float>(static_cast<double>(s >> 11) * 0x1.0p-53 * 2 - 1);
        };
        for (auto* a : {&q, &k, &v, &dout})
            for (auto& x : *a) x = next();
    }
};

double pairs(std::size_t T, bool causal) { return causal ? T * (T + 1) / 2.0 : double(T) * double(T); }

void report(benchmark::State& st, double flops_per_iteration, std::size_t threads) {
    st.counters["GFLOP/s"] =
        benchmark::Counter(flops_per_iteration / 1e9, benchmark::Counter::kIsIterationInvariantRate);
    // peak_frac: of the machine's peak (512-bit FMAs where the CPU has them, as the kernels then use);
    // frac_256: of the 256-bit peak, the instruction set of the default build.
    st.counters["peak_frac"] =
        benchmark::Counter(flops_per_iteration / 1e9 / (exprgrad::bench::machine_fma_peak_gflops() * threads),
                           benchmark::Counter::kIsIterationInvariantRate);
    st.counters["frac_256"] = benchmark::Counter(flops_per_iteration / 1e9 / (fma_peak_gflops() * threads),
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

// ---- exprgrad: the eager kernels into reused outputs and workspace (what the tensor node does) ----

void BM_exprgrad(benchmark::State& st, bool backward) {
    const std::size_t T = static_cast<std::size_t>(st.range(0)), threads = static_cast<std::size_t>(st.range(2));
    const bool causal = st.range(1) != 0;
    kernels::set_num_threads(threads);
    const inputs in(T);
    attention_options o;
    o.causal = causal;
    attention_workspace<float> ws;
    xt::xtensor<float, 4> out;
    xt::xtensor<float, 3> lse;
    attention_grads<float> g;
    for (auto _ : st) {
        attention_forward_into(in.q, in.k, in.v, o, out, lse, ws);
        if (backward) attention_vjp_into(in.q, in.k, in.v, out, lse, in.dout, o, g, ws, attention_reuse::forward);
        benchmark::DoNotOptimize(out.data());
        benchmark::DoNotOptimize(g.dq.data());
    }
    report(st, (backward ? 14.0 : 4.0) * D * pairs(T, causal) * H * B, threads);
}

// ---- naive: scores materialised as a T×T matrix per head, plain loops with the contiguous index innermost
// (k and v transposed once per head, so that no loop is a reduction and g++ -O2 can vectorise them) ----

struct naive_state {
    std::vector<float> P, dP, t;  // [H][T][T], [H][T][T], [H][D][T]
    xt::xtensor<float, 4> out, dq, dk, dv;
};

// x[h] (T × D) transposed into t (D × T).
void transpose(const float* x, std::size_t T, float* t) {
    for (std::size_t j = 0; j < T; ++j)
        for (std::size_t c = 0; c < D; ++c) t[c * T + j] = x[j * D + c];
}

void naive_forward(const inputs& in, bool causal, naive_state& s) {
    const std::size_t T = in.q.shape()[2];
    const float scale = 1.0f / std::sqrt(float(D));
    s.P.resize(H * T * T);
    s.t.resize(H * D * T);
    s.out = xt::zeros<float>({B, H, T, D});
    kernels::parallel_for(0, H, 1, [&](std::size_t lo, std::size_t hi) {
        for (std::size_t h = lo; h < hi; ++h) {
            const float* q = &in.q(0, h, 0, 0);
            float* kt = s.t.data() + h * D * T;
            transpose(&in.k(0, h, 0, 0), T, kt);
            const float* v = &in.v(0, h, 0, 0);
            float* P = s.P.data() + h * T * T;
            float* o = &s.out(0, h, 0, 0);
            for (std::size_t i = 0; i < T; ++i) {
                float* row = P + i * T;
                const std::size_t n = causal ? i + 1 : T;
                for (std::size_t j = 0; j < n; ++j) row[j] = 0;
                for (std::size_t c = 0; c < D; ++c)
                    for (std::size_t j = 0; j < n; ++j) row[j] += q[i * D + c] * kt[c * T + j];
                float m = -std::numeric_limits<float>::infinity();
                for (std::size_t j = 0; j < n; ++j) {
                    row[j] *= scale;
                    m = std::max(m, row[j]);
                }
                float z = 0;
                for (std::size_t j = 0; j < n; ++j) z += row[j] = std::exp(row[j] - m);
                for (std::size_t j = 0; j < n; ++j) row[j] /= z;
                for (std::size_t j = n; j < T; ++j) row[j] = 0;
                for (std::size_t j = 0; j < n; ++j)
                    for (std::size_t c = 0; c < D; ++c) o[i * D + c] += row[j] * v[j * D + c];
            }
        }
    });
}

void naive_backward(const inputs& in, bool causal, naive_state& s) {
    const std::size_t T = in.q.shape()[2];
    const float scale = 1.0f / std::sqrt(float(D));
    s.dP.resize(H * T * T);
    s.t.resize(H * D * T);
    s.dq = xt::zeros<float>({B, H, T, D});
    s.dk = xt::zeros<float>({B, H, T, D});
    s.dv = xt::zeros<float>({B, H, T, D});
    kernels::parallel_for(0, H, 1, [&](std::size_t lo, std::size_t hi) {
        for (std::size_t h = lo; h < hi; ++h) {
            const float* q = &in.q(0, h, 0, 0);
            const float* k = &in.k(0, h, 0, 0);
            float* vt = s.t.data() + h * D * T;
            transpose(&in.v(0, h, 0, 0), T, vt);
            const float* dO = &in.dout(0, h, 0, 0);
            const float* P = s.P.data() + h * T * T;
            float* dS = s.dP.data() + h * T * T;
            float *dq = &s.dq(0, h, 0, 0), *dk = &s.dk(0, h, 0, 0), *dv = &s.dv(0, h, 0, 0);
            for (std::size_t i = 0; i < T; ++i) {
                const std::size_t n = causal ? i + 1 : T;
                float* dp = dS + i * T;
                for (std::size_t j = 0; j < n; ++j) dp[j] = 0;
                for (std::size_t c = 0; c < D; ++c)
                    for (std::size_t j = 0; j < n; ++j) dp[j] += dO[i * D + c] * vt[c * T + j];
                float D_i = 0;
                for (std::size_t j = 0; j < n; ++j) D_i += P[i * T + j] * dp[j];
                for (std::size_t j = 0; j < n; ++j) dS[i * T + j] = P[i * T + j] * (dS[i * T + j] - D_i) * scale;
                for (std::size_t j = 0; j < n; ++j)
                    for (std::size_t c = 0; c < D; ++c) {
                        dq[i * D + c] += dS[i * T + j] * k[j * D + c];
                        dk[j * D + c] += dS[i * T + j] * q[i * D + c];
                        dv[j * D + c] += P[i * T + j] * dO[i * D + c];
                    }
            }
        }
    });
}

void BM_naive(benchmark::State& st, bool backward) {
    const std::size_t T = static_cast<std::size_t>(st.range(0)), threads = static_cast<std::size_t>(st.range(2));
    const bool causal = st.range(1) != 0;
    kernels::set_num_threads(threads);
    const inputs in(T);
    naive_state s;
    for (auto _ : st) {
        naive_forward(in, causal, s);
        if (backward) naive_backward(in, causal, s);
        benchmark::DoNotOptimize(s.out.data());
        benchmark::DoNotOptimize(s.dq.data());
    }
    report(st, (backward ? 14.0 : 4.0) * D * pairs(T, causal) * H * B, threads);
}

void BM_exprgrad_forward(benchmark::State& st) { BM_exprgrad(st, false); }
void BM_exprgrad_forward_backward(benchmark::State& st) { BM_exprgrad(st, true); }
void BM_naive_forward(benchmark::State& st) { BM_naive(st, false); }
void BM_naive_forward_backward(benchmark::State& st) { BM_naive(st, true); }

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

BENCHMARK(BM_fma_peak)->ArgNames({"threads", "bits"})->Args({1, 256})->Args({1, 512});
BENCHMARK(BM_fma_peak)->ArgNames({"threads", "bits"})->Args({2, 256})->Args({2, 512})->UseRealTime();
BENCHMARK(BM_exprgrad_forward)->Apply(one_thread);
BENCHMARK(BM_exprgrad_forward)->Apply(two_threads);
BENCHMARK(BM_exprgrad_forward_backward)->Apply(one_thread);
BENCHMARK(BM_exprgrad_forward_backward)->Apply(two_threads);
BENCHMARK(BM_naive_forward)->Apply(one_thread);
BENCHMARK(BM_naive_forward)->Apply(two_threads);
BENCHMARK(BM_naive_forward_backward)->Apply(one_thread);
BENCHMARK(BM_naive_forward_backward)->Apply(two_threads);

BENCHMARK_MAIN();
