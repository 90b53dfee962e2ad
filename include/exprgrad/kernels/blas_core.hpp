// Which GEMM exprgrad's matrix products use: exprgrad's packed kernel (kernels/gemm_packed.hpp) for float on a CPU
// with AVX-512F, where its 8 × 32 tile of 512-bit FMAs was 1.01-1.18x OpenBLAS's SkylakeX kernels on 14 of the
// flagship's 15 GEMM shapes (docs/benchmarks.md); OpenBLAS otherwise, unless OpenBLAS runs kernels narrower than
// the CPU's vectors. OpenBLAS built for every x86-64 core (Debian's) picks its kernels from the CPU model at load time,
// and a model it does not know falls back to "Prescott", its SSE3 kernels: OpenBLAS 0.3.21 on an Emerald Rapids
// Xeon (family 6, model 207) did, and tiny_lm trained 2.7x slower than with OPENBLAS_CORETYPE=SkylakeX
// (7.7k against 21k pieces/s, 7 Dec 2026). The choice is made at load time, so exprgrad cannot change it;
// it uses its own packed kernel (kernels/gemm_packed.hpp) instead, and says so (gemm_backend_note).
#pragma once

#include <atomic>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
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

/// The FMA vector width in bits of an OpenBLAS kernel family, by the name openblas_get_corename() reports (any
/// case: builds for every core say "SkylakeX", single-target builds "SKYLAKEX"): 512 for SkylakeX, Cooperlake,
/// SapphireRapids; 256 for Haswell, Zen and AMD's FMA3 families; 128 for the SSE families and the AVX ones
/// without FMA (Prescott, Core2, Nehalem, Sandybridge, Barcelona, ...); 0 for an empty or unknown name.
/// Example: blas_core_width("Prescott") == 128, blas_core_width("SKYLAKEX") == 512, blas_core_width("") == 0.
inline int blas_core_width(std::string_view core) {
    std::string c(core);
    for (char& ch : c) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    for (const char* n : {"skylakex", "cooperlake", "sapphirerapids"})
        if (c == n) return 512;
    for (const char* n : {"haswell", "zen", "piledriver", "steamroller", "excavator"})
        if (c == n) return 256;
    for (const char* n : {"prescott", "core2", "penryn", "dunnington", "nehalem", "sandybridge", "atom", "nano",
                          "barcelona", "opteron", "opteron_sse3", "bobcat", "bulldozer", "athlon", "katmai",
                          "coppermine", "northwood", "banias"})
        if (c == n) return 128;
    return 0;
}

/// This CPU's widest FMA vectors in bits: 512 with AVX-512F, 256 with AVX2 and FMA, else 128; 0 off x86-64.
inline int cpu_fma_width() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return 512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 256;
    return 128;
#else
    return 0;
#endif
}

/// Whether an OpenBLAS kernel family is known and narrower than cpu_width bits. An unknown name is never
/// called narrower (nothing is decided on a guess). Example: blas_core_narrower("Prescott", 512) is true,
/// blas_core_narrower("Haswell", 256) and blas_core_narrower("", 512) are false.
inline bool blas_core_narrower(std::string_view core, int cpu_width) {
    const int w = blas_core_width(core);
    return w > 0 && w < cpu_width;
}

/// blas_core_narrower(blas_core_name(), cpu_fma_width()), read once. Example: true where OpenBLAS reports
/// "Prescott" on a CPU with AVX-512F (OpenBLAS 0.3.21 on an Emerald Rapids Xeon).
inline bool blas_core_narrower_than_cpu() {
    static const bool narrower = blas_core_narrower(blas_core_name(), cpu_fma_width());
    return narrower;
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
/// 512-bit tile), and otherwise where OpenBLAS's kernels are known to be narrower than our 256-bit tile on a CPU
/// with AVX2 and FMA. Any other value of the variable is refused with std::invalid_argument naming it and the
/// value, at the first routed product or gemm_backend_note() (and again at each later one: the check is only
/// stored once it passes). force_own_gemm overrides all of it.
/// Example: on an AVX-512 CPU with OpenBLAS's SkylakeX kernels, true for float and false for double.
template <class T>
bool gemm_uses_own_kernel() {
    const int forced = own_gemm_override.load(std::memory_order_relaxed);
    if (forced >= 0) return forced != 0;
    const int env = detail::gemm_env_choice();
    if (env >= 0) return env != 0;
    if (std::is_same_v<T, float> && avx512_enabled()) return true;
    // otherwise our 256-bit tile, worth it only against narrower OpenBLAS kernels (decided once: this runs per product)
    static const bool narrower256 = blas_core_narrower(blas_core_name(), 256) && cpu_fma_width() >= 256;
    return narrower256;
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
        const char* better = cpu_fma_width() >= 512 ? "SkylakeX" : "Haswell";
        why += std::string(why.empty() ? "" : "; ") + "OpenBLAS chose its " + core +
               " kernels, narrower than this CPU's vectors (OPENBLAS_CORETYPE=" + better + " selects wider ones)";
    } else {
        why += "; OpenBLAS: " + core + " kernels";
    }
    return std::string("GEMM: exprgrad's packed kernel, ") + (avx512_enabled() ? "512-bit" : "256-bit") + " (" +
           why + ")";
}

}  // namespace exprgrad::kernels
