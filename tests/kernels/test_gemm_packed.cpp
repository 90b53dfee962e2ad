// The packed GEMM (kernels/gemm_packed.hpp) against a naive triple loop in double: every transpose, sizes that
// leave partial tiles and partial K, M and N blocks, leading dimensions wider than the matrices, accumulate mode,
// K = 0, NaN propagation, and the same bits on one and two threads.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

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
    // units of the float rounding bound of a chain of k + 1 additions ((k + 1)·2⁻²⁴): at most 1 when correct
    double error(const std::vector<float>& c, const std::vector<float>& c0, bool acc) const {
        double worst = 0;
        for (std::size_t i = 0; i < m; ++i)
            for (std::size_t j = 0; j < n; ++j) {
                double s = acc ? c0[i * ldc() + j] : 0.0, mag = std::abs(s);
                for (std::size_t p = 0; p < k; ++p) {
                    s += double(at(i, p)) * double(bt(p, j));
                    mag += std::abs(double(at(i, p)) * double(bt(p, j)));
                }
                worst = std::max(worst, std::abs(double(c[i * ldc() + j]) - s) / (mag + 1e-30));
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

}  // namespace

TEST_CASE("packed gemm equals the triple loop for every transpose, tails and blocks") {
    // 6 × 16 tiles, K blocks of 256, M blocks of 72: sizes on both sides of each boundary
    const std::size_t sizes[][3] = {{1, 1, 1},     {5, 15, 3},    {6, 16, 8},    {7, 17, 9},   {13, 33, 255},
                                    {73, 40, 257}, {72, 48, 256}, {30, 70, 513}, {150, 5, 20}, {2, 300, 600}};
    for (bool ta : {false, true})
        for (bool tb : {false, true})
            for (const auto& s : sizes)
                for (std::size_t pad : {0, 3})
                    for (bool acc : {false, true}) {
                        problem p{ta, tb, s[0], s[1], s[2], pad};
                        // outside the matrix (the padding columns) C must stay as it was
                        const auto c0 = values(p.m * p.ldc(), 7);
                        const auto c = p.run(acc, c0);
                        CAPTURE(ta);
                        CAPTURE(tb);
                        CAPTURE(s[0]);
                        CAPTURE(s[1]);
                        CAPTURE(s[2]);
                        CAPTURE(pad);
                        CAPTURE(acc);
                        CHECK(p.error(c, c0, acc) <= 1.0);
                        bool untouched = true;
                        for (std::size_t i = 0; i < p.m; ++i)
                            for (std::size_t j = p.n; j < p.ldc(); ++j)
                                untouched = untouched && c[i * p.ldc() + j] == c0[i * p.ldc() + j];
                        CHECK(untouched);
                    }
}

TEST_CASE("packed gemm: assignment ignores what C held, K = 0 gives zeros or leaves C") {
    problem p{false, false, 9, 20, 4, 0};
    const std::vector<float> nan_c(p.m * p.ldc(), std::numeric_limits<float>::quiet_NaN());
    CHECK(p.error(p.run(false, nan_c), nan_c, false) <= 1.0);
    problem z{false, true, 7, 18, 0, 0};
    const auto c0 = values(z.m * z.ldc(), 3);
    const auto assigned = z.run(false, c0);
    CHECK(std::all_of(assigned.begin(), assigned.end(), [](float x) { return x == 0.0f; }));
    CHECK(z.run(true, c0) == c0);
}

TEST_CASE("packed gemm propagates NaN to exactly its row or column") {
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
                for (std::size_t j = 0; j < p.n; ++j) ok = ok && std::isnan(c[i * p.ldc() + j]) == (i == 3 || j == 20);
            CAPTURE(ta);
            CAPTURE(tb);
            CHECK(ok);
        }
}

TEST_CASE("packed gemm gives the same bits on one and two threads, split by rows or by columns") {
    thread_guard guard;
    for (const auto& s : {std::array<std::size_t, 3>{1024, 128, 128}, std::array<std::size_t, 3>{128, 384, 1024}}) {
        problem p{false, false, s[0], s[1], s[2], 0};
        const auto c0 = values(p.m * p.ldc(), 5);
        set_num_threads(1);
        const auto one = p.run(true, c0);
        set_num_threads(2);
        const auto two = p.run(true, c0);
        CHECK(one == two);
        CHECK(p.error(two, c0, true) <= 1.0);
    }
}
