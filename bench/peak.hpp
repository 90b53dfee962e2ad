// The machine's measured single-core FMA peak, for benchmarks that report a fraction of it: 12
// independent chains of fused multiply-adds (latency 4, two ports), timed by the thread's CPU time so that
// other load on the machine does not lower it. fma_peak_gflops is the 256-bit (8-lane) rate, the instruction
// set of the default build; fma_peak_512_gflops the 16-lane rate where the CPU has AVX-512F (0 elsewhere),
// and machine_fma_peak_gflops the larger: the peak of kernels that choose 512-bit code at run time.
#pragma once

#include <immintrin.h>
#include <time.h>

#include <algorithm>

namespace exprgrad::bench {

__attribute__((noinline)) inline float fma_chains(long iterations, const float* init) {
    __m256 a[12];
    for (int i = 0; i < 12; ++i) a[i] = _mm256_set1_ps(init[i]);  // distinct starts: no chain can be merged
    const __m256 m = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-7f);
    for (long it = 0; it < iterations; ++it) {
        a[0] = _mm256_fmadd_ps(a[0], m, c);
        a[1] = _mm256_fmadd_ps(a[1], m, c);
        a[2] = _mm256_fmadd_ps(a[2], m, c);
        a[3] = _mm256_fmadd_ps(a[3], m, c);
        a[4] = _mm256_fmadd_ps(a[4], m, c);
        a[5] = _mm256_fmadd_ps(a[5], m, c);
        a[6] = _mm256_fmadd_ps(a[6], m, c);
        a[7] = _mm256_fmadd_ps(a[7], m, c);
        a[8] = _mm256_fmadd_ps(a[8], m, c);
        a[9] = _mm256_fmadd_ps(a[9], m, c);
        a[10] = _mm256_fmadd_ps(a[10], m, c);
        a[11] = _mm256_fmadd_ps(a[11], m, c);
    }
    __m256 s = a[0];
    for (int i = 1; i < 12; ++i) s = _mm256_add_ps(s, a[i]);
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0];
}

inline constexpr double flops_per_chain_iteration = 12.0 * 8 * 2;

/// The same chains with 16-lane FMAs (call only where the CPU has AVX-512F).
__attribute__((noinline, target("avx512f"))) inline float fma_chains_512(long iterations, const float* init) {
    __m512 a[12];
    for (int i = 0; i < 12; ++i) a[i] = _mm512_set1_ps(init[i]);
    const __m512 m = _mm512_set1_ps(0.9999999f), c = _mm512_set1_ps(1e-7f);
    for (long it = 0; it < iterations; ++it) {
#pragma GCC unroll 12
        for (int i = 0; i < 12; ++i) a[i] = _mm512_fmadd_ps(a[i], m, c);
    }
    __m512 s = a[0];
    for (int i = 1; i < 12; ++i) s = _mm512_add_ps(s, a[i]);
    float out[16];
    _mm512_storeu_ps(out, s);
    return out[0];
}

inline constexpr double flops_per_chain_iteration_512 = 12.0 * 16 * 2;
inline volatile float sink;

inline double thread_seconds() {
    timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

/// GFLOP/s of chains(n, init) per second of the thread's CPU time (so other load on the machine does not
/// lower it), flops per iteration given: the best of 5 runs of about 0.05 s.
inline double best_chain_gflops(float (*chains)(long, const float*), long n, double flops_per_iteration) {
    static const float init[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    double best = 0;
    for (int r = 0; r < 5; ++r) {
        const double t0 = thread_seconds();
        sink = chains(n, init);
        best = std::max(best, n * flops_per_iteration / (thread_seconds() - t0) / 1e9);
    }
    return best;
}

/// One core's FMA throughput with 8-lane (256-bit) FMAs, measured once per process.
inline double fma_peak_gflops() {
    static const double peak = best_chain_gflops(fma_chains, 20'000'000, flops_per_chain_iteration);
    return peak;
}

/// fma_peak_gflops for 16-lane FMAs; 0 where the CPU lacks AVX-512F.
inline double fma_peak_512_gflops() {
    static const double peak = __builtin_cpu_supports("avx512f")
                                   ? best_chain_gflops(fma_chains_512, 10'000'000, flops_per_chain_iteration_512)
                                   : 0.0;
    return peak;
}

/// The larger of the two: what code that picks its vector width at run time can reach on one core.
inline double machine_fma_peak_gflops() { return std::max(fma_peak_gflops(), fma_peak_512_gflops()); }

}  // namespace exprgrad::bench
