// The GEMM choice of kernels/blas_core.hpp and blas::gemm on both back ends: exprgrad's packed kernel (forced)
// and OpenBLAS give the naive product for every transpose, beta 0 and 1, and the shapes that blas::gemm
// sends elsewhere (GEMV for a vector, OpenBLAS for alpha ≠ 1).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "exprgrad/kernels/blas.hpp"
#include "exprgrad/kernels/blas_core.hpp"

namespace kern = exprgrad::kernels;

namespace {

std::vector<float> values(std::size_t n, unsigned seed) {
    std::vector<float> v(n);
    unsigned s = seed * 2246822519u + 7;
    for (auto& x : v) {
        s = s * 1664525u + 1013904223u;
        x = static_cast<float>(s >> 8) / static_cast<float>(1u << 24) - 0.5f;
    }
    return v;
}

// C = alpha·op(A)·op(B) + beta·C in double, the reference.
std::vector<double> naive(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, float alpha,
                          const std::vector<float>& a, const std::vector<float>& b, float beta,
                          const std::vector<float>& c) {
    std::vector<double> r(m * n);
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t j = 0; j < n; ++j) {
            double s = 0;
            for (std::size_t p = 0; p < k; ++p)
                s += double(ta ? a[p * m + i] : a[i * k + p]) * double(tb ? b[j * k + p] : b[p * n + j]);
            r[i * n + j] = double(alpha) * s + (beta == 0.0f ? 0.0 : double(beta) * double(c[i * n + j]));
        }
    return r;
}

}  // namespace

// Forces one GEMM for the scope, back to the automatic choice at its end (also when a check throws).
struct own_gemm_scope {
    explicit own_gemm_scope(bool on) { kern::force_own_gemm(on); }
    ~own_gemm_scope() { kern::reset_own_gemm(); }
};

TEST_CASE("blas_core: OpenBLAS's kernel families by width, in any case, unknown names never narrower") {
    CHECK(kern::blas_core_width("SkylakeX") == 512);
    CHECK(kern::blas_core_width("SKYLAKEX") == 512);  // a single-target build's name
    CHECK(kern::blas_core_width("Cooperlake") == 512);
    CHECK(kern::blas_core_width("Haswell") == 256);
    CHECK(kern::blas_core_width("ZEN") == 256);
    CHECK(kern::blas_core_width("Prescott") == 128);
    CHECK(kern::blas_core_width("Sandybridge") == 128);
    CHECK(kern::blas_core_width("") == 0);
    CHECK(kern::blas_core_width("NewCore9000") == 0);
    CHECK(kern::blas_core_narrower("Prescott", 512));
    CHECK(kern::blas_core_narrower("Prescott", 256));
    CHECK(kern::blas_core_narrower("Haswell", 512));
    CHECK_FALSE(kern::blas_core_narrower("Haswell", 256));
    CHECK_FALSE(kern::blas_core_narrower("SKYLAKEX", 512));
    CHECK_FALSE(kern::blas_core_narrower("", 512));
    CHECK_FALSE(kern::blas_core_narrower("NewCore9000", 512));
    CHECK_FALSE(kern::blas_core_narrower("Prescott", 128));
}

TEST_CASE("blas_core: this process's core, its rule and the log line agree") {
    CHECK_FALSE(kern::blas_core_name().empty());
    CHECK(kern::blas_core_narrower_than_cpu() == kern::blas_core_narrower(kern::blas_core_name(), kern::cpu_fma_width()));
    const std::string note = kern::gemm_backend_note();
    CHECK(note.rfind("GEMM: ", 0) == 0);
    CHECK(note.find(kern::gemm_uses_own_kernel<float>() ? "packed kernel" : "OpenBLAS") != std::string::npos);
    const char* env = std::getenv("EXPRGRAD_GEMM");
    if (!env || !*env || std::string(env) == "auto") {
        // the automatic rule: float takes the 512-bit tile where it runs
        if (kern::avx512_enabled()) CHECK(kern::gemm_uses_own_kernel<float>());
        if (kern::blas_core_width(kern::blas_core_name()) == 512) CHECK_FALSE(kern::gemm_uses_own_kernel<double>());
    }
}

TEST_CASE("blas::gemm: exprgrad's packed kernel and OpenBLAS against the naive product") {
    struct shape {
        std::size_t m, n, k;
    };
    for (const bool own : {true, false}) {
        const own_gemm_scope scope(own);
        CHECK(kern::gemm_uses_own_kernel<float>() == own);
        CHECK(kern::gemm_uses_own_kernel<double>() == own);
        for (const shape s : {shape{150, 96, 260}, shape{37, 19, 300}, shape{5, 7, 1}, shape{64, 1, 33},
                              shape{1, 50, 20}, shape{8, 8, 0}})
            for (const bool ta : {false, true})
                for (const bool tb : {false, true})
                    for (const float beta : {0.0f, 1.0f})
                        for (const float alpha : {1.0f, 0.5f}) {
                            CAPTURE(own);
                            CAPTURE(s.m);
                            CAPTURE(s.n);
                            CAPTURE(s.k);
                            CAPTURE(ta);
                            CAPTURE(tb);
                            CAPTURE(beta);
                            CAPTURE(alpha);
                            const auto a = values(s.m * s.k, 1), b = values(s.k * s.n, 2);
                            auto c = values(s.m * s.n, 3);
                            const auto want = naive(ta, tb, s.m, s.n, s.k, alpha, a, b, beta, c);
                            kern::blas::gemm(ta, tb, s.m, s.n, s.k, alpha, a.data(), ta ? s.m : s.k, b.data(),
                                             tb ? s.k : s.n, beta, c.data(), s.n);
                            double worst = 0;
                            for (std::size_t i = 0; i < c.size(); ++i)
                                worst = std::isfinite(c[i]) ? std::max(worst, std::abs(double(c[i]) - want[i]))
                                                            : std::numeric_limits<double>::infinity();
                            // float products summed over k: |error| ≤ ~k·2⁻²⁴·Σ|a||b| ≤ k·2⁻²⁴·k/4
                            CHECK(worst <= 2e-7 * double(s.k + 1) * double(s.k + 1));
                        }
    }
}

TEST_CASE("blas::gemm: beta = 0 ignores NaN in C, and a wider ldc leaves the padding alone, on both back ends") {
    const std::size_t m = 20, n = 17, k = 9, ldc = 24;
    const auto a = values(m * k, 4), b = values(k * n, 5);
    const auto want = naive(false, false, m, n, k, 1.0f, a, b, 0.0f, std::vector<float>(m * n, 0.0f));
    for (const bool own : {true, false}) {
        CAPTURE(own);
        const own_gemm_scope scope(own);
        std::vector<float> c(m * ldc, std::numeric_limits<float>::quiet_NaN());
        kern::blas::gemm(false, false, m, n, k, 1.0f, a.data(), k, b.data(), n, 0.0f, c.data(), ldc);
        double worst = 0;
        bool padding_kept = true, finite = true;
        for (std::size_t i = 0; i < m; ++i) {
            for (std::size_t j = 0; j < n; ++j) {
                finite = finite && std::isfinite(c[i * ldc + j]);
                worst = std::max(worst, std::abs(double(c[i * ldc + j]) - want[i * n + j]));
            }
            for (std::size_t j = n; j < ldc; ++j) padding_kept = padding_kept && std::isnan(c[i * ldc + j]);
        }
        CHECK(finite);
        CHECK(worst <= 1e-5);
        CHECK(padding_kept);
    }
}
