// The normalizations' row kernels (kernels/row_stats.hpp) and copy_row (kernels/contiguous.hpp) against plain
// loops: every tail length around the double and float batch widths, float and double, NaN and inf propagation.
#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <limits>
#include <random>
#include <vector>

#include "exprgrad/kernels/contiguous.hpp"
#include "exprgrad/kernels/row_stats.hpp"

namespace kernels = exprgrad::kernels;

namespace {

constexpr std::size_t lengths[] = {0,  1,  2,   3,   4,   5,   7,   8,   9,   15,  16,  17,
                                   31, 32, 33, 64, 127, 128, 129, 511, 512, 513, 1000};

template <class T>
std::vector<T> random_row(std::size_t n, unsigned seed) {
    std::mt19937 gen(seed);
    std::uniform_real_distribution<double> u(-3, 3);
    std::vector<T> r(n);
    for (T& x : r) x = static_cast<T>(u(gen));
    return r;
}

template <class T>
void check_type() {
    // the bound on a reordered double sum of n products of size ≤ 27: n·27·2⁻⁵² with room
    for (const std::size_t n : lengths) {
        CAPTURE(n);
        const auto seed = static_cast<unsigned>(n);
        const auto a = random_row<T>(n, 1 + seed), b = random_row<T>(n, 2 + seed), c = random_row<T>(n, 3 + seed);
        double ss = 0, dot = 0;
        for (std::size_t j = 0; j < n; ++j) {
            ss += static_cast<double>(a[j]) * static_cast<double>(a[j]);
            dot += static_cast<double>(a[j]) * static_cast<double>(b[j]) * static_cast<double>(c[j]);
        }
        const double tol = 1e-13 * static_cast<double>(n + 1);
        CHECK(std::abs(kernels::sum_squares_double(a.data(), n) - ss) <= tol * (1 + ss));
        CHECK(std::abs(kernels::triple_dot_double(a.data(), b.data(), c.data(), n) - dot) <= tol * 30);

        const T s = static_cast<T>(0.75), r = static_cast<T>(1.25), cc = static_cast<T>(-0.5);
        std::vector<T> y(n + 1, T(7)), dx(n + 1, T(2)), acc(n + 1, T(1)), cp(n + 1, T(9));
        kernels::scale_row(a.data(), s, b.data(), y.data(), n);
        kernels::rms_norm_input_grad_row(a.data(), b.data(), c.data(), r, cc, dx.data(), n, /*add=*/true);
        kernels::add_scaled_product_row(a.data(), b.data(), s, acc.data(), n);
        kernels::copy_row(cp.data(), a.data(), n);
        const T eps = std::numeric_limits<T>::epsilon() * 16;
        for (std::size_t j = 0; j < n; ++j) {
            CAPTURE(j);
            CHECK(std::abs(y[j] - a[j] * s * b[j]) <= eps * 8);
            CHECK(std::abs(dx[j] - (T(2) + r * a[j] * b[j] - cc * c[j])) <= eps * 16);
            CHECK(std::abs(acc[j] - (T(1) + a[j] * b[j] * s)) <= eps * 16);
            CHECK(cp[j] == a[j]);
        }
        // nothing past the row is written
        CHECK(y[n] == T(7));
        CHECK(dx[n] == T(2));
        CHECK(acc[n] == T(1));
        CHECK(cp[n] == T(9));
        // assignment instead of accumulation
        kernels::rms_norm_input_grad_row(a.data(), b.data(), c.data(), r, cc, dx.data(), n, /*add=*/false);
        for (std::size_t j = 0; j < n; ++j) CHECK(std::abs(dx[j] - (r * a[j] * b[j] - cc * c[j])) <= eps * 16);
    }
}

}  // namespace

TEST_CASE("row statistics and row updates against plain loops, float and double, every tail length") {
    check_type<float>();
    check_type<double>();
}

TEST_CASE("row statistics propagate NaN and inf") {
    for (const std::size_t n : {1, 5, 9, 33}) {
        for (const std::size_t at : {std::size_t{0}, n - 1, n / 2}) {
            CAPTURE(n);
            CAPTURE(at);
            std::vector<float> x(n, 1.0f), w(n, 1.0f);
            x[at] = std::numeric_limits<float>::quiet_NaN();
            CHECK(std::isnan(kernels::sum_squares_double(x.data(), n)));
            CHECK(std::isnan(kernels::triple_dot_double(x.data(), w.data(), w.data(), n)));
            x[at] = std::numeric_limits<float>::infinity();
            CHECK(kernels::sum_squares_double(x.data(), n) == std::numeric_limits<double>::infinity());
            std::vector<float> y(n);
            kernels::scale_row(x.data(), 2.0f, w.data(), y.data(), n);
            CHECK(std::isinf(y[at]));
        }
    }
}

TEST_CASE("row statistics: the documented examples") {
    const float x[] = {1, 2, 2};
    CHECK(kernels::sum_squares_double(x, 3) == 9.0);
    const float a[] = {1, 2}, b[] = {3, 4}, c[] = {1, 1};
    CHECK(kernels::triple_dot_double(a, b, c, 2) == 11.0);
    const float xs[] = {2, 4}, w[] = {1, 3};
    float y[2];
    kernels::scale_row(xs, 0.5f, w, y, 2);
    CHECK(y[0] == 1.0f);
    CHECK(y[1] == 6.0f);
    const float g[] = {1, 2}, xx[] = {3, 1};
    float acc[] = {0, 0};
    kernels::add_scaled_product_row(g, xx, 2.0f, acc, 2);
    CHECK(acc[0] == 6.0f);
    CHECK(acc[1] == 4.0f);
}
