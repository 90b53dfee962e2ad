// Which GEMM exprgrad's matrix products use: exprgrad's packed kernel (kernels/gemm_packed.hpp) for float on a CPU
// with AVX-512F, where its 8 × 32 tile of 512-bit FMAs was 1.03-1.18x OpenBLAS's SkylakeX kernels on 14 of the
// flagship's 15 GEMM shapes (docs/benchmarks.md); OpenBLAS otherwise, unless OpenBLAS runs kernels narrower than
// the CPU's vectors. OpenBLAS built for every x86-64 core (Debian's) picks its kernels from the CPU model at load time,
// and a model it does not know falls back to "Prescott", its SSE3 kernels: OpenBLAS 0.3.21 on an Emerald Rapids
// Xeon (family 6, model 207) did, and tiny_lm trained 2.7x slower than with OPENBLAS_CORETYPE=SkylakeX
// (7.7k against 21k pieces/s, 7 Dec 2026). The choice is made at load time, so exprgrad cannot change it;
// it uses its own packed kernel (kernels/gemm_packed.hpp) instead, and says so (gemm_backend_note).
#pragma once

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>

#include <cblas.h>

#include "exprgrad/kernels/avx512_dispatch.hpp"

namespace exprgrad::kernels {

/// OpenBLAS's kernel family as it reports it ("SkylakeX", "Haswell", "Prescott", ...), read once.
inline const std::string& blas_core_name() {
    static const std::string name = [] {
        const char* n = openblas_get_corename();
        return std::string(n ? n : "");
    }();
    return name;
}

/// Whether OpenBLAS's kernels use narrower vectors than this CPU has: the CPU reports AVX-512F and OpenBLAS
/// runs none of its 512-bit families (SkylakeX, Cooperlake, SapphireRapids), or the CPU reports AVX2 and FMA
/// and OpenBLAS runs neither those nor its 256-bit families (Haswell, Zen). False off x86-64.
/// Example: on a CPU with AVX-512F where OpenBLAS reports "Prescott": true.
inline bool blas_core_narrower_than_cpu() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    static const bool narrower = [] {
        const std::string& core = blas_core_name();
        const bool wide512 = core == "SkylakeX" || core == "Cooperlake" || core == "SapphireRapids";
        const bool wide256 = wide512 || core == "Haswell" || core == "Zen";
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f")) return !wide512;
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return !wide256;
        return false;
    }();
    return narrower;
#else
    return false;
#endif
}

/// -1: decide from the environment and OpenBLAS's core; 0 or 1: forced (tests run both GEMMs).
inline std::atomic<int> own_gemm_override{-1};

namespace detail {
// EXPRGRAD_GEMM, read once: -1 auto, 0 blas, 1 own.
inline int gemm_env_choice() {
    static const int choice = [] {
        const char* v = std::getenv("EXPRGRAD_GEMM");
        if (!v || !*v || std::strcmp(v, "auto") == 0) return -1;
        if (std::strcmp(v, "own") == 0) return 1;
        if (std::strcmp(v, "blas") == 0) return 0;
        throw std::invalid_argument(std::string("EXPRGRAD_GEMM: expected auto, own or blas, got \"") + v + "\"");
    }();
    return choice;
}
}  // namespace detail

/// Whether blas::gemm runs exprgrad's packed kernel for T instead of OpenBLAS: EXPRGRAD_GEMM=own forces it,
/// EXPRGRAD_GEMM=blas forbids it; unset, empty or "auto": for float where kernels::avx512_enabled() (the
/// 512-bit tile), and for any T where blas_core_narrower_than_cpu(). The variable is read once; any other value
/// is refused with std::invalid_argument naming the variable and the value. force_own_gemm overrides it.
/// Example: on an AVX-512 CPU with OpenBLAS's SkylakeX kernels, true for float and false for double.
template <class T>
bool gemm_uses_own_kernel() {
    const int forced = own_gemm_override.load(std::memory_order_relaxed);
    if (forced >= 0) return forced != 0;
    const int env = detail::gemm_env_choice();
    if (env >= 0) return env != 0;
    return (std::is_same_v<T, float> && avx512_enabled()) || blas_core_narrower_than_cpu();
}

/// Forces exprgrad's packed kernel (true) or OpenBLAS (false) for blas::gemm in the whole process, for tests
/// and benchmarks; reset_own_gemm returns to the automatic choice. Not for use while products run.
inline void force_own_gemm(bool on) { own_gemm_override.store(on ? 1 : 0, std::memory_order_relaxed); }
inline void reset_own_gemm() { own_gemm_override.store(-1, std::memory_order_relaxed); }

/// One line for a program's log: which GEMM runs float products, and why. Example: "GEMM: exprgrad's packed
/// kernel, 512-bit (AVX-512F; OpenBLAS: SkylakeX kernels)", or "GEMM: OpenBLAS (Haswell kernels)".
inline std::string gemm_backend_note() {
    const std::string& core = blas_core_name();
    if (!gemm_uses_own_kernel<float>()) return "GEMM: OpenBLAS (" + core + " kernels)";
    std::string why;
    if (own_gemm_override.load(std::memory_order_relaxed) >= 0 || detail::gemm_env_choice() >= 0)
        why = "forced";
    else if (avx512_enabled())
        why = "AVX-512F";
    if (blas_core_narrower_than_cpu()) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
        __builtin_cpu_init();
        const char* better = __builtin_cpu_supports("avx512f") ? "SkylakeX" : "Haswell";
#else
        const char* better = "Haswell";
#endif
        why += std::string(why.empty() ? "" : "; ") + "OpenBLAS chose its " + core +
               " kernels, narrower than this CPU's vectors (OPENBLAS_CORETYPE=" + better + " selects wider ones)";
    } else {
        why += "; OpenBLAS: " + core + " kernels";
    }
    return std::string("GEMM: exprgrad's packed kernel, ") + (avx512_enabled() ? "512-bit" : "256-bit") + " (" +
           why + ")";
}

}  // namespace exprgrad::kernels
