// Run-time choice of the 512-bit float kernels (attention tiles, softmax rows). The default build targets
// x86-64-v3, so 512-bit code lives in functions with a target attribute and runs only when the CPU reports
// AVX-512F; on a CPU with 512-bit FMA units the 256-bit kernels reach at most half of its peak.
#pragma once

#include <atomic>
#include <cstdlib>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(EXPRGRAD_NO_AVX512)
#define EXPRGRAD_HAS_AVX512_KERNELS 1
#include <immintrin.h>
/// The attribute of every 512-bit kernel (lambdas do not inherit it: the kernels use none).
#define EXPRGRAD_AVX512_TARGET __attribute__((target("avx512f,avx2,fma")))
#else
#define EXPRGRAD_HAS_AVX512_KERNELS 0
#endif

namespace exprgrad::kernels {

/// -1: decide from the CPU and the environment; 0 or 1: forced (tests run both paths).
inline std::atomic<int> avx512_override{-1};

/// Whether the float kernels take the 512-bit path: the header was compiled for x86-64 with GCC or Clang
/// (and without EXPRGRAD_NO_AVX512), the CPU supports AVX-512F, and the environment variable
/// EXPRGRAD_NO_AVX512 is unset, empty or "0". Read once per process (force_avx512 overrides it).
inline bool avx512_enabled() {
#if EXPRGRAD_HAS_AVX512_KERNELS
    const int forced = avx512_override.load(std::memory_order_relaxed);
    if (forced >= 0) return forced != 0;
    static const bool detected = [] {
        const char* off = std::getenv("EXPRGRAD_NO_AVX512");
        if (off && *off && !(off[0] == '0' && off[1] == '\0')) return false;
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") != 0;
    }();
    return detected;
#else
    return false;
#endif
}

/// Forces the 512-bit path on (true) or off (false) for the whole process, for tests and benchmarks. Where
/// the CPU lacks AVX-512F, on is taken as off (the kernels would fault). Not for use while kernels run.
inline void force_avx512(bool on) {
#if EXPRGRAD_HAS_AVX512_KERNELS
    __builtin_cpu_init();
    avx512_override.store(on && __builtin_cpu_supports("avx512f") ? 1 : 0, std::memory_order_relaxed);
#else
    (void)on;
#endif
}

/// Back to the automatic choice of avx512_enabled.
inline void reset_avx512() { avx512_override.store(-1, std::memory_order_relaxed); }

}  // namespace exprgrad::kernels
