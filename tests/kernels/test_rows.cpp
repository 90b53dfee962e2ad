// The row kernels (kernels/softmax_rows.hpp) and the elementwise loop (kernels/contiguous.hpp) against naive
// long-double references: random rows of many lengths (1, every tail length around the batch widths, the
// 512-entry float sum blocks), −inf entries, NaN and +inf propagation, scores of ±1e4. Each case runs with
// the 512-bit float path forced on and off (on a CPU without AVX-512F both runs take the 256-bit path).
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "exprgrad/kernels/avx512_dispatch.hpp"
#include "exprgrad/kernels/contiguous.hpp"
#include "exprgrad/kernels/softmax_rows.hpp"

namespace rows = exprgrad::kernels::rows;
namespace kernels = exprgrad::kernels;

namespace {

using ld = long double;

constexpr std::size_t lengths[] = {1,  2,  3,  4,  5,  7,   8,   9,   15,  16,   17,   31,
                                   32, 33, 63, 64, 65, 100, 511, 512, 513, 1000, 1025, 4097};

template <class T>
constexpr T ninf = -std::numeric_limits<T>::infinity();

struct avx512_guard {
    explicit avx512_guard(bool on) { kernels::force_avx512(on); }
    ~avx512_guard() { kernels::reset_avx512(); }
};

template <class T>
std::vector<T> random_row(std::size_t n, unsigned seed, double lo = -10, double hi = 10) {
    std::mt19937 g(seed);
    std::uniform_real_distribution<double> u(lo, hi);
    std::vector<T> x(n);
    for (auto& v : x) v = static_cast<T>(u(g));
    return x;
}

// The naive reference: m = max, s = Σ e^(x − m), all in long double.
struct reference {
    ld m = -INFINITY, s = 0;
    std::vector<ld> p, logp;
    template <class T>
    explicit reference(const std::vector<T>& x) {
        for (T v : x) m = std::max(m, static_cast<ld>(v));
        for (T v : x) s += std::exp(static_cast<ld>(v) - m);
        for (T v : x) {
            p.push_back(std::exp(static_cast<ld>(v) - m) / s);
            logp.push_back(static_cast<ld>(v) - m - std::log(s));
        }
    }
    ld lse() const { return m + std::log(s); }
};

template <class T>
constexpr ld eps = std::numeric_limits<T>::epsilon();

// Relative rounding bound of the kernels' sums and softmax entries: x − m rounded once (up to 10 ulp of e^(x − m)
// for |x − m| ≤ 20), a few ulp for the exponential and the final operations, plus one ulp per term that a lane
// accumulates (float lanes restart every 512 entries, the block sums are added in double).
template <class T>
ld tolerance(std::size_t n) {
    const std::size_t per_lane_block = std::is_same_v<T, float> ? std::min<std::size_t>(n, 512) : n;
    const std::size_t terms = (per_lane_block + rows::lanes<T> - 1) / rows::lanes<T>;
    return eps<T> * static_cast<ld>(32 + terms);
}

// |got − want| ≤ rel·|want|, with an absolute floor at T's smallest normal number (results that underflow).
template <class T>
bool close(T got, ld want, ld rel) {
    if (std::isinf(want)) return static_cast<ld>(got) == want;
    return std::fabs(static_cast<ld>(got) - want) <= rel * std::fabs(want) + std::numeric_limits<T>::min();
}

template <class T>
void check_row(const std::vector<T>& x, const std::string& what) {
    const std::size_t n = x.size();
    const reference r(x);
    const ld tol = tolerance<T>(n);
    static_assert(std::is_floating_point_v<T>);
    INFO(what << ", n = " << n);
    CHECK(static_cast<ld>(rows::max(x.data(), n)) == r.m);
    const T lse = rows::logsumexp(x.data(), n);
    CHECK(std::fabs(static_cast<ld>(lse) - r.lse()) <= tol * (1 + std::fabs(r.lse())));

    std::vector<T> p(n), e(n), y(n);
    const T shift = static_cast<T>(r.m);
    const T s = rows::exp_shifted(x.data(), shift, e.data(), n);
    CHECK(close(s, r.s, tol));
    CHECK(rows::sum_exp(x.data(), shift, n) == s);  // the same sum, bit for bit
    // each term against e^(x − shift) with the difference rounded to T as the kernel rounds it
    for (std::size_t i = 0; i < n; ++i) CHECK(close(e[i], std::exp(static_cast<ld>(T(x[i] - shift))), 8 * eps<T>));

    const T ret = rows::softmax(x.data(), p.data(), n);
    CHECK(std::fabs(static_cast<ld>(ret) - r.lse()) <= tol * (1 + std::fabs(r.lse())));
    for (std::size_t i = 0; i < n; ++i) CHECK(close(p[i], r.p[i], 2 * tol));

    const T shift_l = rows::log_softmax(x.data(), y.data(), n);
    CHECK(std::fabs(static_cast<ld>(shift_l) - r.lse()) <= tol * (1 + std::fabs(r.lse())));
    for (std::size_t i = 0; i < n; ++i) {
        if (std::isinf(r.logp[i])) {
            CHECK(y[i] == static_cast<T>(r.logp[i]));
        } else {
            CHECK(std::fabs(static_cast<ld>(y[i]) - r.logp[i]) <= tol * (1 + std::fabs(r.lse())));
        }
    }

    // c·e^(x − lse) = c·softmax: the logsumexp / cross-entropy VJP, accumulated and stored
    const T c = T(0.75);
    std::vector<T> d(n, T(1));
    rows::scaled_exp_into(x.data(), lse, c, d.data(), n, true);
    for (std::size_t i = 0; i < n; ++i) {
        const ld want = c * std::exp(static_cast<ld>(T(x[i] - lse)));
        CHECK(std::fabs(static_cast<ld>(d[i]) - (1 + want)) <= 8 * eps<T> * want + eps<T>);
    }
    rows::scaled_exp_into(x.data(), lse, c, d.data(), n);
    for (std::size_t i = 0; i < n; ++i) {
        CHECK(close(d[i], c * std::exp(static_cast<ld>(T(x[i] - lse))), 8 * eps<T>));
        CHECK(close(d[i], c * r.p[i], 4 * tol * (1 + std::fabs(r.lse()))));  // and against the exact softmax
    }

    // the VJPs on the kernel's own p and y, against the formulas in long double on the same inputs
    const std::vector<T> g = random_row<T>(n, 7 + static_cast<unsigned>(n), -1, 1);
    ld D = 0, S = 0, gmax = 0;
    for (std::size_t i = 0; i < n; ++i) {
        D += static_cast<ld>(p[i]) * g[i];
        S += g[i];
        gmax = std::max<ld>(gmax, std::fabs(g[i]));
    }
    CHECK(std::fabs(static_cast<ld>(rows::dot(p.data(), g.data(), n)) - D) <= tol * (1 + gmax));
    std::vector<T> out(n, T(2));
    rows::softmax_vjp(p.data(), g.data(), static_cast<T>(D), out.data(), n, true);
    for (std::size_t i = 0; i < n; ++i)
        CHECK(std::fabs(static_cast<ld>(out[i]) - (2 + static_cast<ld>(p[i]) * (g[i] - static_cast<ld>(T(D))))) <=
              4 * eps<T> * (2 + gmax));
    rows::log_softmax_vjp(y.data(), g.data(), static_cast<T>(S), out.data(), n);
    for (std::size_t i = 0; i < n; ++i) {
        const ld want = g[i] - std::exp(static_cast<ld>(y[i])) * static_cast<ld>(static_cast<T>(S));
        CHECK(std::fabs(static_cast<ld>(out[i]) - want) <= 8 * eps<T> * (gmax + std::fabs(S)));
    }
}

template <class T>
void random_rows(bool avx512) {
    avx512_guard guard(avx512);
    unsigned seed = 1;
    for (std::size_t n : lengths) {
        check_row(random_row<T>(n, seed++), "uniform in [-10, 10)");
        // −inf entries (a causal or padding mask), never the whole row
        auto masked = random_row<T>(n, seed++);
        for (std::size_t i = 1; i < n; i += 3) masked[i] = ninf<T>;
        check_row(masked, "every third entry -inf");
        // scores of ±1e4: e^x overflows without the shift
        auto big = random_row<T>(n, seed++, -1, 1);
        for (std::size_t i = 0; i < n; ++i) big[i] += (i % 2 ? T(-1e4) : T(1e4));
        check_row(big, "±1e4");
    }
}

}  // namespace

TEST_CASE("row kernels against a long-double reference, float and double, 256- and 512-bit paths") {
    for (bool avx512 : {false, true}) {
        random_rows<float>(avx512);
        random_rows<double>(avx512);
    }
}

TEST_CASE("one-entry rows are exact") {
    for (double v : {-3.5, 0.0, 1e4, -1e4}) {
        float p = 0, y = 1;
        const float x = static_cast<float>(v);
        CHECK(rows::softmax(&x, &p, 1) == x);
        CHECK(p == 1.0f);
        CHECK(rows::log_softmax(&x, &y, 1) == x);
        CHECK(y == 0.0f);
        CHECK(rows::logsumexp(&x, 1) == x);
        CHECK(rows::max(&x, 1) == x);
    }
}

TEST_CASE("special values: NaN anywhere, +inf, rows of -inf, empty rows") {
    for (bool avx512 : {false, true}) {
        avx512_guard guard(avx512);
        for (std::size_t n : lengths) {
            for (std::size_t at : {std::size_t(0), n / 2, n - 1}) {
                INFO("n = " << n << ", NaN at " << at << ", avx512 = " << avx512);
                auto x = random_row<float>(n, 99 + static_cast<unsigned>(n));
                x[at] = std::numeric_limits<float>::quiet_NaN();
                std::vector<float> p(n), y(n);
                CHECK(std::isnan(rows::max(x.data(), n)));
                CHECK(std::isnan(rows::logsumexp(x.data(), n)));
                CHECK(std::isnan(rows::softmax(x.data(), p.data(), n)));
                CHECK(std::all_of(p.begin(), p.end(), [](float v) { return std::isnan(v); }));
                rows::log_softmax(x.data(), y.data(), n);
                CHECK(std::all_of(y.begin(), y.end(), [](float v) { return std::isnan(v); }));
                // NaN wins over +inf
                x[(at + 1) % n] = std::numeric_limits<float>::infinity();
                if (n > 1) CHECK(std::isnan(rows::logsumexp(x.data(), n)));
                // +inf alone: logsumexp is +inf, the softmax is NaN (e^(inf − inf))
                x[at] = 0.0f;
                x[(at + 1) % n] = std::numeric_limits<float>::infinity();
                CHECK(rows::logsumexp(x.data(), n) == std::numeric_limits<float>::infinity());
                CHECK(rows::max(x.data(), n) == std::numeric_limits<float>::infinity());
                rows::softmax(x.data(), p.data(), n);
                CHECK(std::isnan(p[(at + 1) % n]));
            }
            // a fully masked row: p = 0 and −inf from softmax, NaN from log_softmax (−inf − −inf)
            std::vector<double> x(n, ninf<double>), p(n, 5.0), y(n);
            CHECK(rows::softmax(x.data(), p.data(), n) == ninf<double>);
            CHECK(std::all_of(p.begin(), p.end(), [](double v) { return v == 0.0; }));
            CHECK(rows::logsumexp(x.data(), n) == ninf<double>);
            CHECK(rows::max(x.data(), n) == ninf<double>);
            rows::log_softmax(x.data(), y.data(), n);
            CHECK(std::all_of(y.begin(), y.end(), [](double v) { return std::isnan(v); }));
        }
        CHECK(rows::max(static_cast<const float*>(nullptr), 0) == ninf<float>);
        CHECK(rows::logsumexp(static_cast<const double*>(nullptr), 0) == ninf<double>);
        CHECK(rows::sum_exp(static_cast<const double*>(nullptr), 0.0, 0) == 0.0);
    }
}

TEST_CASE("softmax with a scale, and exp_shifted in place") {
    const std::vector<double> x = {1, 2, 3};
    std::vector<double> p(3);
    const double lse = rows::softmax(x.data(), 2.0, p.data(), 3);
    const double s = std::exp(2.0) + std::exp(4.0) + std::exp(6.0);
    CHECK(lse == doctest::Approx(std::log(s)).epsilon(1e-15));
    for (std::size_t i = 0; i < 3; ++i) CHECK(p[i] == doctest::Approx(std::exp(2.0 * x[i]) / s).epsilon(1e-15));
    std::vector<float> e = {0.0f, std::log(2.0f), -std::numeric_limits<float>::infinity()};
    CHECK(rows::exp_shifted(e.data(), 0.0f, e.data(), 3) == doctest::Approx(3.0f).epsilon(1e-6));
    CHECK(e[0] == 1.0f);
    CHECK(e[1] == doctest::Approx(2.0f).epsilon(1e-6));
    CHECK(e[2] == 0.0f);
}

TEST_CASE("gather_lines and scatter_lines move blocks of strided lines through contiguous rows") {
    std::vector<double> m(12);  // 4 rows × 3 columns
    for (std::size_t i = 0; i < m.size(); ++i) m[i] = static_cast<double>(i);
    std::vector<double> rows_(8);
    kernels::gather_lines(m.data() + 1, 3, 4, 2, rows_.data());  // columns 1 and 2
    CHECK(rows_ == std::vector<double>{1, 4, 7, 10, 2, 5, 8, 11});
    kernels::scatter_lines(rows_.data(), 4, 2, m.data(), 3, true);  // added into columns 0 and 1
    CHECK(m == std::vector<double>{1, 3, 2, 7, 9, 5, 13, 15, 8, 19, 21, 11});
    kernels::scatter_lines(rows_.data(), 4, 1, m.data() + 2, 3);  // column 2 overwritten by the first row
    CHECK(m[2] == 1.0);
    CHECK(m[11] == 10.0);
    // a strided softmax through the copies rounds exactly as the contiguous one
    const auto x = random_row<float>(3 * 37, 11);  // 37 rows × 3 columns
    std::vector<float> cols(3 * 37), p(37), q(37);
    kernels::gather_lines(x.data(), 3, 37, 3, cols.data());
    for (std::size_t c = 0; c < 3; ++c) {
        for (std::size_t i = 0; i < 37; ++i) q[i] = x[i * 3 + c];
        rows::softmax(q.data(), p.data(), 37);
        rows::softmax(cols.data() + c * 37, cols.data() + c * 37, 37);
        CHECK(std::equal(p.begin(), p.end(), cols.begin() + static_cast<std::ptrdiff_t>(c * 37)));
    }
}

TEST_CASE("elementwise_row: arrays and broadcast values in, store / add / sum out, every tail length") {
    for (std::size_t n : lengths) {
        INFO("n = " << n);
        const auto a = random_row<double>(n, 5 + static_cast<unsigned>(n));
        const double c = 0.25;
        std::vector<double> stored(n, -1.0), added(n, 1.0);
        double summed = 2.0;
        const std::array<const double*, 2> in{a.data(), &c};
        const std::array<bool, 2> step{true, false};
        const std::array<double*, 3> out{stored.data(), added.data(), &summed};
        const std::array<kernels::put_mode, 3> how{kernels::put_mode::store, kernels::put_mode::add,
                                                   kernels::put_mode::sum};
        kernels::elementwise_row(n, in, step, out, how, [](const auto& v, auto&& emit) {
            emit(0, v[0] * v[1]);
            emit(1, v[0] + v[1]);
            emit(2, v[0] * v[0]);
        });
        ld want = 2;
        for (std::size_t i = 0; i < n; ++i) {
            CHECK(stored[i] == a[i] * c);
            CHECK(added[i] == 1.0 + (a[i] + c));
            want += static_cast<ld>(a[i]) * a[i];
        }
        CHECK(std::fabs(summed - want) <= 1e-15L * static_cast<ld>(n) * want);
    }
}
