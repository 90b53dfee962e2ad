// The machine's measured single-thread FMA peak, for benchmarks that report a fraction of it:
// independent chains of fused multiply-adds on AVX2 registers, long enough to hide the latency.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>

#include <xsimd/xsimd.hpp>

namespace exprgrad::bench {

/// Single-thread float32 FMA throughput in GFLOP/s (2 flops per lane per FMA), best of a few runs.
inline double fma_peak_gflops() {
    using B = xsimd::batch<float>;
    constexpr int chains = 12;  // enough independent accumulators to cover FMA latency × ports
    double best = 0;
    for (int rep = 0; rep < 5; ++rep) {
        B acc[chains];
        for (int c = 0; c < chains; ++c) acc[c] = B(1.0f + 0.001f * static_cast<float>(c));
        const B a(0.999999f), b(1e-7f);
        const std::size_t iters = 20'000'000;
        const auto t0 = std::chrono::steady_clock::now();
        for (std::size_t i = 0; i < iters; ++i) {
            for (int c = 0; c < chains; ++c) {
                acc[c] = xsimd::fma(acc[c], a, b);
                asm volatile("" : "+x"(acc[c].data));  // keeps every chain alive, in its register
            }
        }
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        float sink = 0;
        for (int c = 0; c < chains; ++c) sink += xsimd::hadd(acc[c]);
        asm volatile("" : : "r"(sink));
        const double flops = 2.0 * static_cast<double>(B::size) * chains * static_cast<double>(iters);
        best = std::max(best, flops / s / 1e9);
    }
    return best;
}

}  // namespace exprgrad::bench
