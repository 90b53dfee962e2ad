// ops/deer.hpp: the deterministic instance of the research notes (articles_part2.md §3.7) — iteration
// counts of every method, the T-bound, the tiny gradient reference — the guard on a diverging cell, the
// error messages and the options' printout. Random cells: test_deer_cells.cpp.
//
// Test cases labelled "slow" (doctest test suite "slow", skipped by default; run them with
// `--test-suite=slow --no-skip`) hold the expensive table cells: n = 32 with g ≥ 1 for quasi/newton
// (up to 992 iterations × 32 VJPs over 1000 rows) and the T = 10000 row.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <xtensor/xarray.hpp>
#include <xtensor/xview.hpp>

#include "exprgrad/check/vjp_check.hpp"
#include "exprgrad/ops/deer.hpp"
#include "deer_instance.hpp"
#include "exprgrad/random.hpp"
#include "deer_test_util.hpp"

using namespace exprgrad;
using namespace exprgrad::ops;
using namespace deer_test;

namespace {

constexpr int overflow = -1;

// Runs one method on the notes' instance in float64 from the zero guess, counting iterations until
// max |Y^(k) − Y_seq| < 1e-10 (the notes' rule). Returns the count, or `overflow` when an iterate
// became non-finite first (no guard).
int notes_count(std::size_t n, std::size_t T, double g, deer_method m) {
    const auto cell = tools::deer_instance::cell<double>(n, g);
    const auto u = tools::deer_instance::inputs<double>(n, T);
    const xt::xarray<double> y0 = xt::zeros<double>({n});
    const auto ref = deer_sequential(cell, y0, u);
    deer_options o;
    o.method = m;
    o.monitor = [&](const deer_iterate& it) {
        double e = 0;
        for (std::size_t i = 0; i < it.size; ++i) e = std::max(e, std::abs(it[i] - ref.data()[i]));
        return e < 1e-10;
    };
    const auto r = deer_solve(cell, y0, u, o);
    if (r.report.overflow_at > 0) {
        CHECK(r.report.fallback);
        CHECK(max_abs_diff(r.y, ref) == 0.0);  // the fallback is the sequential loop
        return overflow;
    }
    CHECK(r.report.converged);
    return int(r.report.iterations);
}

struct table_row {
    std::size_t n, T;
    double g;
    int jacobi, fixed_a, sech_u, quasi, newton;
};

// Notes §3.7, float64 ("overflow" = non-finite iterate without clipping).
const std::vector<table_row> notes_table = {
    {4, 64, 0.5, 20, 24, 12, 18, 4},
    {4, 64, 1.0, 34, 59, 45, 23, 5},
    {4, 64, 2.0, 64, 64, 64, 37, 9},
    {8, 1000, 0.5, 17, 18, 10, 16, 4},
    {8, 1000, 1.0, 29, 851, 20, 26, 4},
    {8, 1000, 2.0, 124, overflow, 982, 98, 9},
    {32, 1000, 0.5, 23, 25, 8, 22, 4},
    {32, 1000, 1.0, 104, overflow, 12, 95, 4},
    {32, 1000, 2.0, 1000, overflow, overflow, 992, 328},
    {8, 10000, 0.5, 17, 18, 10, 16, 4},
    {8, 10000, 1.0, 29, overflow, 20, 26, 4},
    {8, 10000, 2.0, 124, overflow, overflow, 98, 9},
};

bool is_slow(const table_row& r, deer_method m) {
    if (r.T == 10000) return true;
    return r.n == 32 && r.g >= 1.0 && (m == deer_method::quasi || m == deer_method::newton);
}

void check_table(bool slow) {
    for (const auto& row : notes_table) {
        const std::pair<deer_method, int> cells[] = {{deer_method::jacobi, row.jacobi},
                                                     {deer_method::fixed_a, row.fixed_a},
                                                     {deer_method::sech_u, row.sech_u},
                                                     {deer_method::quasi, row.quasi},
                                                     {deer_method::newton, row.newton}};
        for (auto [m, want] : cells) {
            if (is_slow(row, m) != slow) continue;
            CAPTURE(row.n);
            CAPTURE(row.T);
            CAPTURE(row.g);
            const std::string method = to_string(m);
            CAPTURE(method);
            const int got = notes_count(row.n, row.T, row.g, m);
            if (row.n == 32 && row.g == 2.0 && m == deer_method::newton) {
                // Far from the solution, Newton's iterates on this instance are large and the count
                // depends on rounding: four algebraically equal formulations of the same iteration
                // in plain float64 loops gave 300, 311, 317 and 323 (the notes: 328). We check the
                // T-bound and the order of magnitude, not the exact number.
                MESSAGE("newton n=32 T=1000 g=2: " << got << " iterations (notes: 328)");
                CHECK(got >= 250);
                CHECK(got <= 400);
            } else {
                CHECK(got == want);
            }
        }
    }
}

}  // namespace

TEST_CASE("notes §3.7: iteration counts of every method equal the table (float64)") { check_table(false); }

TEST_CASE("notes §3.7: iteration counts, expensive cells" * doctest::test_suite("slow") * doctest::skip()) {
    check_table(true);
}

TEST_CASE("notes §3.7: T-bound on the chaotic instance n=8, T=30, g=3") {
    CHECK(notes_count(8, 30, 3.0, deer_method::newton) == 18);
    CHECK(notes_count(8, 30, 3.0, deer_method::jacobi) == 30);
    CHECK(notes_count(8, 30, 3.0, deer_method::fixed_a) == 30);
    CHECK(notes_count(8, 30, 3.0, deer_method::quasi) == 30);
    // every method converges within T = 30 iterations
    CHECK(notes_count(8, 30, 3.0, deer_method::sech_u) <= 30);
}

TEST_CASE("notes §3.7: tiny gradient reference (n=2, T=5, g=1)") {
    const std::size_t n = 2, T = 5;
    const auto cell = tools::deer_instance::cell<double>(n, 1.0);
    CHECK(cell.params[0](0, 0) == doctest::Approx(0.6687702795).epsilon(1e-9));
    CHECK(cell.params[0](1, 1) == doctest::Approx(0.2893581143).epsilon(1e-9));
    const auto u = tools::deer_instance::inputs<double>(n, T);
    const xt::xarray<double> y0 = xt::zeros<double>({n});
    const auto r = deer_solve(cell, y0, u);
    CHECK(r.report.converged);
    CHECK_FALSE(r.report.fallback);
    xt::xarray<double> c = xt::xarray<double>::from_shape({T, n});
    double L = 0;
    for (std::size_t t = 1; t <= T; ++t)
        for (std::size_t i = 0; i < n; ++i) {
            c(t - 1, i) = std::cos(0.3 * double(t) + double(i));
            L += c(t - 1, i) * r.y(t - 1, i);
        }
    CHECK(std::abs(r.y(4, 0) - 0.9433978516) < 1e-9);
    CHECK(std::abs(r.y(4, 1) - 0.9537707049) < 1e-9);
    CHECK(std::abs(L - 0.113192557696) < 1e-9);
    const auto g = deer_vjp(cell, y0, u, r.y, c);
    CHECK(std::abs(g.dx(0, 0) - 1.3057260893) < 1e-9);
    CHECK(std::abs(g.dx(0, 1) - 0.3172995784) < 1e-9);
    CHECK(std::abs(g.dx(4, 0) - 0.0077811271) < 1e-9);
    CHECK(std::abs(g.dx(4, 1) - -0.0723604470) < 1e-9);
    const auto& dA = g.dparams[0];
    CHECK(std::abs(dA(0, 0) - 0.1984295763) < 1e-9);
    CHECK(std::abs(dA(0, 1) - 0.5511483720) < 1e-9);
    CHECK(std::abs(dA(1, 0) - -0.1462372832) < 1e-9);
    CHECK(std::abs(dA(1, 1) - -0.1475675655) < 1e-9);
}

namespace {
// y_t = 2·y_{t−1} + x_t (n = 1): diverges; its values pass 1e8 at t ≈ 27 and overflow double at t ≈ 1024.
xt::xarray<double> two() {
    xt::xarray<double> a = xt::xarray<double>::from_shape({1, 1});
    a(0, 0) = 2.0;
    return a;
}
const auto doubling_cell = make_cell(
    tensors::matmul(tensors::Input<0>{}, tensors::transpose(tensors::Input<2>{})) + tensors::Input<1>{}, two());
// The recurrence by a plain loop, independent of the engine.
xt::xarray<double> doubling_loop(const xt::xarray<double>& x) {
    xt::xarray<double> y = xt::xarray<double>::from_shape({x.shape(0), std::size_t(1)});
    double prev = 0;
    for (std::size_t t = 0; t < x.shape(0); ++t) y(t, 0) = prev = 2 * prev + x(t, 0);
    return y;
}
// Equal value by value, ±inf equal to itself.
bool same_values(const xt::xarray<double>& a, const xt::xarray<double>& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (!(a.data()[i] == b.data()[i])) return false;
    return true;
}
}  // namespace

TEST_CASE("guard on a diverging cell: a clipped iterate is not convergence; the recurrence's own values (issue 16)") {
    rng g(77);
    for (const std::size_t T : {60, 1100}) {  // beyond 1e8; beyond double's range (inf)
        CAPTURE(T);
        const xt::xarray<double> x = rand_array<double>({T, 1}, g, 0.5, 1.0);
        const xt::xarray<double> y0 = xt::zeros<double>({1});
        const auto ref = doubling_loop(x);
        CHECK(ref(T - 1, 0) > 1e17);
        if (T == 1100) CHECK(std::isinf(ref(T - 1, 0)));
        CHECK(same_values(deer_sequential(doubling_cell, y0, x), ref));
        for (auto m : {deer_method::newton, deer_method::quasi, deer_method::jacobi, deer_method::fixed_a,
                       deer_method::sech_u}) {
            CAPTURE(to_string(m));
            deer_options o;
            o.method = m;
            o.guard = true;
            const auto r = deer_solve(doubling_cell, y0, x, o);
            CHECK(same_values(r.y, ref));  // was clipped at 1e8 with converged = 1, fallback = 0
            CHECK_FALSE(r.report.converged);
            CHECK(r.report.fallback);
            // Without the fallback the clipped iterate is returned, and it says it did not converge.
            o.fallback = false;
            const auto c = deer_solve(doubling_cell, y0, x, o);
            CHECK_FALSE(c.report.converged);
            CHECK_FALSE(c.report.fallback);
        }
        // A monitor that accepts the clipped iterate does not make it converged either.
        deer_options o;
        o.guard = true;
        o.monitor = [](const deer_iterate&) { return true; };
        const auto r = deer_solve(doubling_cell, xt::zeros<double>({1}), x, o);
        CHECK_FALSE(r.report.converged);
        CHECK(same_values(r.y, ref));
    }
    // The guard that acts only on early iterates still converges to the true trajectory (newton from zero on the
    // notes' instance with g = 2: far from the solution its iterates are huge).
    const std::size_t n = 8, T = 200;
    const auto cell = tools::deer_instance::cell<double>(n, 2.0);
    const auto u = tools::deer_instance::inputs<double>(n, T);
    const xt::xarray<double> y0 = xt::zeros<double>({n});
    deer_options o;
    o.guard = true;
    const auto r = deer_solve(cell, y0, u, o);
    CHECK(r.report.converged);
    CHECK_FALSE(r.report.fallback);
    CHECK(max_abs_diff(r.y, deer_sequential(cell, y0, u)) < 1e-10);
}

TEST_CASE("deer: shape errors name the shapes") {
    const auto cell = tools::deer_instance::cell<double>(3, 1.0);
    CHECK_THROWS_AS(deer_solve(cell, xt::zeros<double>({3}), xt::zeros<double>({2, 4, 3})), std::invalid_argument);
    CHECK_THROWS_AS(deer_solve(cell, xt::zeros<double>({2, 3}), xt::zeros<double>({3, 4, 3})), std::invalid_argument);
    // the cell's output [rows, 3] cannot be a state of size 2
    CHECK_THROWS_AS(deer_solve(cell, xt::zeros<double>({2}), xt::zeros<double>({4, 3})), std::invalid_argument);
    const auto r = deer_solve(cell, xt::zeros<double>({3}), xt::zeros<double>({4, 3}));
    CHECK_THROWS_AS(deer_vjp(cell, xt::zeros<double>({3}), xt::zeros<double>({4, 3}), r.y, xt::zeros<double>({4, 2})),
                    std::invalid_argument);
    // Options outside their domain: NaN tolerances silently meant the default; +inf stopped at once; a method
    // outside the enum read Jacobians that were never computed (issue 16).
    auto message = [&](const deer_options& o) {
        try {
            deer_solve(cell, xt::zeros<double>({3}), xt::zeros<double>({4, 3}), o);
        } catch (const std::invalid_argument& ex) {
            return std::string(ex.what());
        }
        return std::string("no exception");
    };
    deer_options o;
    o.atol = std::numeric_limits<double>::quiet_NaN();
    CHECK(message(o) == "exprgrad::deer: atol must be finite (negative: the dtype's default), got nan");
    o.atol = -1;
    o.rtol = std::numeric_limits<double>::infinity();
    CHECK(message(o) == "exprgrad::deer: rtol must be finite (negative: the dtype's default), got inf");
    o.rtol = -1;
    o.method = static_cast<deer_method>(9);
    CHECK(message(o) == "exprgrad::deer: method must be newton, quasi, jacobi, fixed_a or sech_u, got the value 9");
    // T = 0
    const auto e = deer_solve(cell, xt::zeros<double>({3}), xt::zeros<double>({0, 3}));
    CHECK(e.y.size() == 0);
    CHECK(e.report.converged);
}

TEST_CASE("deer: a y0, inputs or A the tanh cell's parameters do not take names deer_solve and the shapes (issue 16)") {
    auto message = [](auto&& f) {
        try {
            f();
        } catch (const std::invalid_argument& ex) {
            return std::string(ex.what());
        }
        return std::string("no exception");
    };
    const xt::xarray<double> A = xt::eye<double>(4) * 0.5, U = xt::ones<double>({4, 2}), b = xt::zeros<double>({4});
    const auto cell = tanh_rnn_cell(A, U, b);
    // y0 of size 5 for A [4, 4] (it was "exprgrad::matmul: shapes (20, 5) and (4, 4) do not multiply")
    const std::string y0_bad = message([&] { deer_solve(cell, xt::zeros<double>({5}), xt::zeros<double>({6, 2})); });
    CHECK(y0_bad.rfind("exprgrad::deer_solve: y0 (state size 5) and inputs (width 2) do not fit the cell's "
                       "parameters (4, 4), (4, 2), (4,): ",
                       0) == 0);
    // inputs of width 3 for U [4, 2]
    const std::string x_bad = message([&] { deer_solve(cell, xt::zeros<double>({4}), xt::zeros<double>({6, 3})); });
    CHECK(x_bad.rfind("exprgrad::deer_solve: y0 (state size 4) and inputs (width 3) do not fit", 0) == 0);
    // the other entry points say which one was called
    CHECK(message([&] { deer_sequential(cell, xt::zeros<double>({5}), xt::zeros<double>({6, 2})); })
              .rfind("exprgrad::deer_sequential: y0 (state size 5)", 0) == 0);
    // a well-shaped call still works
    CHECK(deer_solve(cell, xt::zeros<double>({4}), xt::zeros<double>({6, 2})).y.shape(1) == 4);
    // non-square A, and U / b that do not match A, refused when the cell is built
    CHECK(message([&] { tanh_rnn_cell(xt::xarray<double>(xt::zeros<double>({4, 3})), U, b); }) ==
          "exprgrad::tanh_rnn_cell: A must be square [n, n], got (4, 3)");
    CHECK(message([&] { tanh_rnn_cell(A, xt::xarray<double>(xt::zeros<double>({3, 2})), b); }) ==
          "exprgrad::tanh_rnn_cell: U must be [n, m] with n = 4 (A (4, 4)), got (3, 2)");
    CHECK(message([&] { tanh_rnn_cell(A, U, xt::xarray<double>(xt::zeros<double>({3}))); }) ==
          "exprgrad::tanh_rnn_cell: b must be [n] with n = 4 (A (4, 4)), got (3,)");
}

TEST_CASE("to_string(deer_options): the settings with scan nested, the monitor left out") {
    // expected from the defaults declared in ops/deer_types.hpp and ops/scan.hpp: newton, max_iter 0,
    // atol = rtol = -1, guard false, fallback true, scan {chunks 0, min_chunk 1024}
    CHECK(ops::to_string(deer_options{}) ==
          "method=newton max_iter=0 atol=-1 rtol=-1 guard=false fallback=true scan={chunks=0 min_chunk=1024}");
    deer_options o;
    o.method = deer_method::sech_u;
    o.max_iter = 7;
    o.atol = 1e-12;
    o.rtol = 0.5;
    o.guard = true;
    o.fallback = false;
    o.scan.chunks = 4;
    o.scan.min_chunk = 16;
    o.monitor = [](const deer_iterate&) { return true; };  // a callback, not a setting: not printed
    CHECK(ops::to_string(o) ==
          "method=sech_u max_iter=7 atol=1e-12 rtol=0.5 guard=true fallback=false scan={chunks=4 min_chunk=16}");
    CHECK(ops::to_string(scan_options{}) == "chunks=0 min_chunk=1024");
    CHECK(field_count_v<deer_options> == 7);
    CHECK(field_count_v<scan_options> == 2);
}
