// The packed GEMM (kernels/gemm_packed.hpp) against a naive triple loop in double: every transpose, sizes that
// leave partial tiles and partial K, M and N blocks, leading dimensions wider than the matrices, accumulate mode,
// K = 0, NaN and infinity propagation, and the same bits on one and two threads. Every check runs on both paths
// (the 256-bit tile and, where the CPU has AVX-512F, the 512-bit one of kernels/gemm_packed_avx512.hpp), and the
// two paths give the same bits.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <limits>
#include <vector>

#include "exprgrad/kernels/avx512_dispatch.hpp"
#include "exprgrad/kernels/gemm_packed.hpp"
#include "exprgrad/kernels/parallel.hpp"

using exprgrad::kernels::num_threads;
using exprgrad::kernels::set_num_threads;
using exprgrad::kernels::packed::gemm;

namespace {

std::vector<float> values(std::size_t n, unsigned seed) {
    std::vector<float> v(n);
    unsigned s = seed * 2654435761u + 1;
    for (auto& x : v) {
        s = s * 1664525u + 1013904223u;
        x = static_cast<float>(s >> 8) / static_cast<float>(1u << 24) - 0.5f;
    }
    return v;
}

struct problem {
    bool ta, tb;
    std::size_t m, n, k, pad;  // pad: extra columns in every leading dimension
    std::size_t lda() const { return (ta ? m : k) + pad; }
    std::size_t ldb() const { return (tb ? k : n) + pad; }
    std::size_t ldc() const { return n + pad; }
    std::vector<float> a = values((ta ? k : m) * lda(), 1), b = values((tb ? n : k) * ldb(), 2);
    float at(std::size_t i, std::size_t p) const { return ta ? a[p * lda() + i] : a[i * lda() + p]; }
    float bt(std::size_t p, std::size_t j) const { return tb ? b[j * ldb() + p] : b[p * ldb() + j]; }

    // c0 (+)= op(A)·op(B) in double; the largest error of c against it relative to the sum of |terms|, in
    // units of the float rounding bound of a chain of k + 1 additions ((k + 1)·2⁻²⁴): at most 1 when correct.
    // Where the double result is NaN or infinite (NaN or infinite inputs), c must be the same NaN or infinity,
    // else the error is infinite.
    double error(const std::vector<float>& c, const std::vector<float>& c0, bool acc) const {
        double worst = 0;
        for (std::size_t i = 0; i < m; ++i)
            for (std::size_t j = 0; j < n; ++j) {
                double s = acc ? c0[i * ldc() + j] : 0.0, mag = std::abs(s);
                for (std::size_t p = 0; p < k; ++p) {
                    s += double(at(i, p)) * double(bt(p, j));
                    mag += std::abs(double(at(i, p)) * double(bt(p, j)));
                }
                const double got = c[i * ldc() + j];
                if (!std::isfinite(s)) {
                    const bool same = std::isnan(s) ? std::isnan(got) : got == s;
                    if (!same) worst = std::numeric_limits<double>::infinity();
                    continue;
                }
                worst = std::max(worst, std::abs(got - s) / (mag + 1e-30));
            }
        return worst / (double(k + 1) * 0x1p-24);
    }
    std::vector<float> run(bool acc, const std::vector<float>& c0) const {
        std::vector<float> c = c0;
        gemm(ta, tb, m, n, k, a.data(), lda(), b.data(), ldb(), c.data(), ldc(), acc);
        return c;
    }
};

struct thread_guard {
    std::size_t saved = num_threads();
    ~thread_guard() { set_num_threads(saved); }
};

// Runs f(wide) with the 256-bit path (wide = false) and then the 512-bit one (on a CPU without AVX-512F both
// runs take the 256-bit path); the automatic choice is restored after, also when a check throws.
template <class F>
void on_both_paths(F f) {
    struct reset {
        ~reset() { exprgrad::kernels::reset_avx512(); }
    } guard;
    for (bool wide : {false, true}) {
        exprgrad::kernels::force_avx512(wide);
        CAPTURE(wide);
        f(wide);
    }
}

// op(A)·op(B) on the 256-bit path and on the 512-bit path, the same bits (NaN compared as NaN).
bool same_on_both_paths(const problem& p, bool acc, const std::vector<float>& c0) {
    std::vector<float> out[2];
    on_both_paths([&](bool wide) { out[wide] = p.run(acc, c0); });
    for (std::size_t i = 0; i < c0.size(); ++i) {
        const float x = out[0][i], y = out[1][i];
        if (!(std::isnan(x) ? std::isnan(y) : std::memcmp(&x, &y, sizeof x) == 0)) return false;
    }
    return true;
}

}  // namespace

TEST_CASE("packed gemm equals the triple loop for every transpose, tails and blocks, on both paths") {
    // tiles of 6 × 16 (256-bit) and 8 × 32 (512-bit), K blocks of 256, M blocks of 72 and 128: sizes on both
    // sides of each boundary, empty and single rows and columns
    const std::size_t sizes[][3] = {{1, 1, 1},     {5, 15, 3},    {6, 16, 8},    {7, 17, 9},    {13, 33, 255},
                                    {73, 40, 257}, {72, 48, 256}, {30, 70, 513}, {150, 5, 20},  {2, 300, 600},
                                    {0, 5, 3},     {4, 0, 3},     {31, 33, 7},   {33, 31, 65},  {65, 65, 257},
                                    {17, 1, 300},  {1, 65, 31},   {9, 47, 1},    {257, 45, 40}, {20, 270, 530},
                                    {129, 32, 16}, {8, 64, 33},   {136, 31, 2}};
    for (bool ta : {false, true})
        for (bool tb : {false, true})
            for (const auto& s : sizes)
                for (std::size_t pad : {0, 3, 19})
                    for (bool acc : {false, true}) {
                        problem p{ta, tb, s[0], s[1], s[2], pad};
                        // outside the matrix (the padding columns) C must stay as it was
                        const auto c0 = values(p.m * p.ldc(), 7);
                        CAPTURE(ta);
                        CAPTURE(tb);
                        CAPTURE(s[0]);
                        CAPTURE(s[1]);
                        CAPTURE(s[2]);
                        CAPTURE(pad);
                        CAPTURE(acc);
                        std::vector<float> out[2];
                        on_both_paths([&](bool wide) {
                            const auto c = out[wide] = p.run(acc, c0);
                            CHECK(p.error(c, c0, acc) <= 1.0);
                            bool untouched = true;
                            for (std::size_t i = 0; i < p.m; ++i)
                                for (std::size_t j = p.n; j < p.ldc(); ++j)
                                    untouched = untouched && c[i * p.ldc() + j] == c0[i * p.ldc() + j];
                            CHECK(untouched);
                        });
                        // the same chains of FMAs in the same order: the same bits
                        CHECK((out[0].empty() ||  // (memcmp must not see the null data() of M = 0)
                               std::memcmp(out[0].data(), out[1].data(), out[0].size() * sizeof(float)) == 0));
                    }
}

TEST_CASE("packed gemm: assignment ignores what C held, K = 0 gives zeros or leaves C") {
    on_both_paths([](bool) {
        for (bool ta : {false, true})
            for (bool tb : {false, true}) {
                CAPTURE(ta);
                CAPTURE(tb);
                problem p{ta, tb, 9, 40, 4, 0};
                const std::vector<float> nan_c(p.m * p.ldc(), std::numeric_limits<float>::quiet_NaN());
                CHECK(p.error(p.run(false, nan_c), nan_c, false) <= 1.0);
                problem z{ta, tb, 7, 38, 0, 2};
                const auto c0 = values(z.m * z.ldc(), 3);
                const auto assigned = z.run(false, c0);
                bool zeros = true, kept = true;
                for (std::size_t i = 0; i < z.m; ++i)
                    for (std::size_t j = 0; j < z.ldc(); ++j)
                        (j < z.n ? zeros : kept) = (j < z.n ? zeros && assigned[i * z.ldc() + j] == 0.0f
                                                            : kept && assigned[i * z.ldc() + j] == c0[i * z.ldc() + j]);
                CHECK(zeros);
                CHECK(kept);
                CHECK(z.run(true, c0) == c0);
            }
    });
}

TEST_CASE("packed gemm propagates NaN to exactly its row or column, on both paths") {
    on_both_paths([](bool) {
        for (bool ta : {false, true})
            for (bool tb : {false, true}) {
                problem p{ta, tb, 14, 35, 300, 0};
                const float nan = std::numeric_limits<float>::quiet_NaN();
                // NaN at op(A)[3, 290] reaches row 3 only; at op(B)[5, 20] column 20 only
                (ta ? p.a[290 * p.lda() + 3] : p.a[3 * p.lda() + 290]) = nan;
                (tb ? p.b[20 * p.ldb() + 5] : p.b[5 * p.ldb() + 20]) = nan;
                const auto c = p.run(false, std::vector<float>(p.m * p.ldc(), 0.0f));
                bool ok = true;
                for (std::size_t i = 0; i < p.m; ++i)
                    for (std::size_t j = 0; j < p.n; ++j)
                        ok = ok && std::isnan(c[i * p.ldc() + j]) == (i == 3 || j == 20);
                CAPTURE(ta);
                CAPTURE(tb);
                CHECK(ok);
            }
    });
}

TEST_CASE("packed gemm: infinities and NaN as in the triple loop, in the last partial tile too, on both paths") {
    const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
    for (bool ta : {false, true})
        for (bool tb : {false, true})
            for (bool acc : {false, true}) {
                // 37 × 45: partial row tiles and partial column panels on both paths; K = 300: two K blocks
                problem p{ta, tb, 37, 45, 300, 5};
                auto opa = [&](std::size_t i, std::size_t q) -> float& {
                    return ta ? p.a[q * p.lda() + i] : p.a[i * p.lda() + q];
                };
                auto opb = [&](std::size_t q, std::size_t j) -> float& {
                    return tb ? p.b[j * p.ldb() + q] : p.b[q * p.ldb() + j];
                };
                opa(36, 299) = inf;  // the last row: ±inf, or NaN where the row meets column 44's -inf
                opb(10, 44) = -inf;  // the last column
                opa(0, 10) = inf;    // row 0 meets -inf in column 44: inf·(-inf) and more
                opb(260, 3) = nan;   // column 3, in the second K block
                auto c0 = values(p.m * p.ldc(), 9);
                c0[20 * p.ldc() + 40] = inf;  // accumulated into C[20, 40] only
                CAPTURE(ta);
                CAPTURE(tb);
                CAPTURE(acc);
                CHECK(same_on_both_paths(p, acc, c0));
                on_both_paths([&](bool) { CHECK(p.error(p.run(acc, c0), c0, acc) <= 1.0); });
            }
}

TEST_CASE("packed gemm gives the same bits on one and two threads, split by rows or by columns") {
    thread_guard guard;
    on_both_paths([](bool) {
        for (const auto& s : {std::array<std::size_t, 3>{1024, 128, 128}, std::array<std::size_t, 3>{128, 384, 1024},
                              std::array<std::size_t, 3>{40, 1000, 300}}) {
            for (bool ta : {false, true}) {
                problem p{ta, false, s[0], s[1], s[2], 0};
                const auto c0 = values(p.m * p.ldc(), 5);
                set_num_threads(1);
                const auto one = p.run(true, c0);
                set_num_threads(2);
                const auto two = p.run(true, c0);
                CAPTURE(s[0]);
                CAPTURE(ta);
                CHECK(one == two);
                CHECK(p.error(two, c0, true) <= 1.0);
            }
        }
    });
}

TEST_CASE("packed gemm in double: the 256-bit tile on both settings of the 512-bit switch") {
    on_both_paths([](bool) {
        for (bool ta : {false, true})
            for (bool tb : {false, true}) {
                const std::size_t m = 13, n = 37, k = 300, lda = (ta ? m : k) + 1, ldb = (tb ? k : n) + 1, ldc = n + 1;
                const auto af = values((ta ? k : m) * lda, 1), bf = values((tb ? n : k) * ldb, 2);
                const std::vector<double> a(af.begin(), af.end()), b(bf.begin(), bf.end());
                std::vector<double> c(m * ldc, 1.0);
                gemm(ta, tb, m, n, k, a.data(), lda, b.data(), ldb, c.data(), ldc, true);
                double worst = 0;
                for (std::size_t i = 0; i < m; ++i)
                    for (std::size_t j = 0; j < n; ++j) {
                        double s = 1.0, mag = 1.0;
                        for (std::size_t p = 0; p < k; ++p) {
                            const double x = ta ? a[p * lda + i] : a[i * lda + p],
                                         y = tb ? b[j * ldb + p] : b[p * ldb + j];
                            s += x * y;
                            mag += std::abs(x * y);
                        }
                        worst = std::max(worst, std::abs(c[i * ldc + j] - s) / mag);
                    }
                CAPTURE(ta);
                CAPTURE(tb);
                CHECK(worst <= 2.0 * double(k + 1) * 0x1p-53);  // both sides round: twice the bound
            }
    });
}
