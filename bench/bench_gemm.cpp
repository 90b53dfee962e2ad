// The float GEMMs of the flagship (tiny_lm: 2 blocks, width 128, 4 heads, context 64, batch 16, vocabulary
// 1024, so M = 1024 rows) at their exact shapes and transposes, OpenBLAS's cblas_sgemm against our packed
// kernel (kernels/gemm_packed.hpp), side by side per shape. For a linear layer Y = X·W with X [1024, Din] and
// W [Din, Dout]: forward NN (1024, Dout, Din), dX = dY·Wᵀ NT (1024, Din, Dout), dW = Xᵀ·dY TN (Din, Dout, 1024).
// Layers: QKV 128→384, attention out 128→128, feed-forward 128→512 and 512→128, head 128→1024.
// Counters: GFLOP/s (2·M·N·K per product), frac_256 and frac_512, of the one-core 256-bit and 512-bit FMA
// peaks (bench/peak.hpp; frac_512 is 0 where the CPU lacks AVX-512F).
// range(5): 0 OpenBLAS, 1 ours on the 256-bit path, 2 ours on the 512-bit path (kernels/gemm_packed_avx512.hpp;
// where the CPU lacks AVX-512F it runs the 256-bit path); range(6): threads (1 timed by CPU time, 2 by
// wall-clock time); range(7): cold caches (see BM_gemm).
// OpenBLAS 0.3.21 does not know newer CPUs (Sapphire and Emerald Rapids) and then falls back to its SSE3
// "Prescott" kernels: set OPENBLAS_CORETYPE (SkylakeX on an AVX-512 CPU, Haswell on an AVX2 one) for a fair
// comparison.
// Run: OPENBLAS_CORETYPE=SkylakeX nice -n 10 build/bench/bench_gemm --benchmark_min_time=0.2
//      --benchmark_repetitions=3
#include <benchmark/benchmark.h>

#include <cstddef>
#include <vector>

#include <cblas.h>

#include "peak.hpp"

#include <exprgrad/kernels/avx512_dispatch.hpp>
#include <exprgrad/kernels/blas.hpp>
#include <exprgrad/kernels/gemm_packed.hpp>
#include <exprgrad/kernels/parallel.hpp>

namespace {

std::vector<float> filled(std::size_t n, unsigned seed) {
    std::vector<float> v(n);
    unsigned s = seed;
    for (auto& x : v) {
        s = s * 1664525u + 1013904223u;
        x = static_cast<float>(s >> 8) / static_cast<float>(1u << 24) - 0.5f;
    }
    return v;
}

void BM_gemm(benchmark::State& st) {
    const bool ta = st.range(0) != 0, tb = st.range(1) != 0;
    const auto m = static_cast<std::size_t>(st.range(2)), n = static_cast<std::size_t>(st.range(3)),
               k = static_cast<std::size_t>(st.range(4));
    const bool ours = st.range(5) != 0;
    if (ours) exprgrad::kernels::force_avx512(st.range(5) == 2);
    const auto threads = static_cast<std::size_t>(st.range(6));
    exprgrad::kernels::set_num_threads(threads);
    openblas_set_num_threads(static_cast<int>(threads));
    const auto a = filled(m * k, 1), b = filled(k * n, 2);
    std::vector<float> c(m * n, 0.0f);
    const std::size_t lda = ta ? m : k, ldb = tb ? k : n;
    // cold: before every product (untimed) 4 MiB are written, evicting A, B and C from L1 and L2 as the rest
    // of a training step does
    const bool cold = st.range(7) != 0;
    std::vector<float> evict(cold ? (1u << 20) : 0);
    for (auto _ : st) {
        if (cold) {
            st.PauseTiming();
            for (auto& x : evict) x += 1.0f;
            benchmark::ClobberMemory();
            st.ResumeTiming();
        }
        if (ours)
            exprgrad::kernels::packed::gemm(ta, tb, m, n, k, a.data(), lda, b.data(), ldb, c.data(), n, false);
        else
            cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(m), int(n),
                        int(k), 1.0f, a.data(), int(lda), b.data(), int(ldb), 0.0f, c.data(), int(n));
        benchmark::DoNotOptimize(c.data());
        benchmark::ClobberMemory();
    }
    exprgrad::kernels::reset_avx512();
    const double gflop = 2.0 * double(m) * double(n) * double(k) / 1e9;
    st.counters["GFLOP/s"] = benchmark::Counter(gflop, benchmark::Counter::kIsIterationInvariantRate);
    st.counters["frac_256"] = benchmark::Counter(gflop / (exprgrad::bench::fma_peak_gflops() * double(threads)),
                                                 benchmark::Counter::kIsIterationInvariantRate);
    const double peak512 = exprgrad::bench::fma_peak_512_gflops();
    st.counters["frac_512"] = benchmark::Counter(peak512 > 0 ? gflop / (peak512 * double(threads)) : 0.0,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

// {ta, tb, M, N, K} of every GEMM of a training step (forward, dX, dW of each linear layer)
constexpr long shapes[][5] = {
    {0, 0, 1024, 384, 128},  {0, 1, 1024, 128, 384},  {1, 0, 128, 384, 1024},   // QKV
    {0, 0, 1024, 128, 128},  {0, 1, 1024, 128, 128},  {1, 0, 128, 128, 1024},   // attention out
    {0, 0, 1024, 512, 128},  {0, 1, 1024, 128, 512},  {1, 0, 128, 512, 1024},   // feed-forward up
    {0, 0, 1024, 128, 512},  {0, 1, 1024, 512, 128},  {1, 0, 512, 128, 1024},   // feed-forward down
    {0, 0, 1024, 1024, 128}, {0, 1, 1024, 128, 1024}, {1, 0, 128, 1024, 1024},  // head
};

void args_one(benchmark::internal::Benchmark* b) {
    b->ArgNames({"ta", "tb", "M", "N", "K", "ours", "threads", "cold"});
    for (long cold : {0, 1})
        for (const auto& s : shapes)
            for (long ours : {0, 1, 2}) b->Args({s[0], s[1], s[2], s[3], s[4], ours, 1, cold});
}
void args_two(benchmark::internal::Benchmark* b) {
    b->ArgNames({"ta", "tb", "M", "N", "K", "ours", "threads", "cold"});
    for (const auto& s : shapes)
        for (long ours : {0, 1, 2}) b->Args({s[0], s[1], s[2], s[3], s[4], ours, 2, 0});
}

}  // namespace

BENCHMARK(BM_gemm)->Apply(args_one);
BENCHMARK(BM_gemm)->Apply(args_two)->UseRealTime();
BENCHMARK_MAIN();
