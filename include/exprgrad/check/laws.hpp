// Derivative laws for symbolic expressions: a public checker so that users test their own
// functions the way the suite tests every op of the table.
//
// At random points (each variable uniform in its interval) it checks, in double:
//   1. every symbolic first partial against a central finite difference (Richardson-extrapolated,
//      error O(h^4));
//   2. every symbolic second partial against the finite difference of the symbolic first partial;
//   3. the symmetry of the symbolic Hessian;
//   4. that value_and_grad equals the value and the partials evaluated one by one.
// Finite differences are only meaningful where the function is smooth, so a point is skipped when
// two step sizes disagree (a kink, a jump or a pole within reach) or the value is not finite; the
// report counts skipped points, and fails if too few points could be checked.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "exprgrad/format.hpp"
#include "exprgrad/sym/derivative.hpp"
#include "exprgrad/sym/evaluate.hpp"
#include "exprgrad/sym/ops.hpp"
#include "exprgrad/sym/print.hpp"

namespace exprgrad::check {

/// Options of check_derivative_laws.
struct law_options {
    std::vector<sym::interval> domain{};  ///< sampling interval per variable; missing ones are [-2, 2]
    std::size_t points = 40;              ///< random points to try
    std::uint64_t seed = 0x5eed;          ///< seed of the point sampler (deterministic)
    double rtol = 1e-6;                   ///< tolerance vs finite differences, relative to max(1, |value|)
    double symmetry_rtol = 1e-10;         ///< tolerance of H_ij vs H_ji
    double cse_rtol = 1e-13;              ///< tolerance of value_and_grad vs separate evaluation
    double min_checked_fraction = 0.7;    ///< fail if fewer points than this fraction could be checked
    double step = 1e-3;                   ///< finite-difference step, scaled by max(1, |x_i|)
};

/// What check_derivative_laws found. Converts to true when every law held.
struct law_report {
    bool ok = true;
    std::size_t points_checked = 0;
    std::size_t points_skipped = 0;
    double worst_error = 0.0;  ///< largest scaled error seen against finite differences
    std::vector<std::string> failures;

    explicit operator bool() const { return ok; }
    /// A readable summary: the expression, the counts, and the first failures.
    std::string message() const {
        std::string s = expression + ": " + (ok ? "ok" : "FAILED") + ", " + format_number(points_checked) +
                        " points checked, " + format_number(points_skipped) +
                        " skipped, worst scaled error vs finite differences " + format_number(worst_error);
        for (std::size_t i = 0; i < failures.size() && i < 5; ++i) s += "\n  " + failures[i];
        if (failures.size() > 5) s += "\n  ... " + format_number(failures.size() - 5) + " more";
        return s;
    }
    std::string expression;
};

namespace detail {

// SplitMix64: a fixed, documented generator, so sampled points are the same on every platform.
struct splitmix64 {
    std::uint64_t state;
    std::uint64_t next() {
        std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
    }
    double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
};

template <class E, std::size_t N>
double at(E, const std::array<double, N>& x) {
    return std::apply([](auto... a) { return sym::evaluate(E{}, a...); }, x);
}

// Richardson-extrapolated central difference of g along coordinate i with step h.
template <class E, std::size_t N>
double richardson(E g, std::array<double, N> x, std::size_t i, double h) {
    const double x0 = x[i];
    auto central = [&](double step) {
        x[i] = x0 + step;
        const double up = at(g, x);
        x[i] = x0 - step;
        const double down = at(g, x);
        x[i] = x0;
        return (up - down) / (2 * step);
    };
    return (4 * central(h / 2) - central(h)) / 3;
}

template <std::size_t... Is, class Fn>
void for_each_index(std::index_sequence<Is...>, Fn&& fn) {
    (fn(std::integral_constant<std::size_t, Is>{}), ...);
}

inline double scaled_error(double a, double b) { return std::abs(a - b) / std::max({1.0, std::abs(a), std::abs(b)}); }

}  // namespace detail

/// Checks the derivative laws of f (see the top of this header) at `opts.points` random points.
/// Example:
///   auto r = check_derivative_laws(log(x) * y, {.domain = {{0.1, 3}, {-2, 2}}});
///   if (!r) std::cerr << r.message();
template <sym::Expression F>
law_report check_derivative_laws(F f, const law_options& opts = {}) {
    constexpr std::size_t n = static_cast<std::size_t>(sym::arity_v<F>);
    law_report report;
    report.expression = sym::to_string(f);
    if constexpr (n == 0) {
        return report;
    } else {
        detail::splitmix64 rng{opts.seed};
        constexpr auto idx = std::make_index_sequence<n>{};
        for (std::size_t p = 0; p < opts.points; ++p) {
            std::array<double, n> x{};
            for (std::size_t i = 0; i < n; ++i) {
                const sym::interval iv = i < opts.domain.size() ? opts.domain[i] : sym::interval{-2.0, 2.0};
                x[i] = iv.lo + (iv.hi - iv.lo) * rng.uniform();
            }
            auto where = [&] {
                std::string s = "at (";
                for (std::size_t i = 0; i < n; ++i) s += (i ? ", " : "") + format_number(x[i]);
                return s + ")";
            };
            if (!std::isfinite(detail::at(f, x))) {
                ++report.points_skipped;
                continue;
            }
            // Collect the comparisons at this point first: a point where finite differences are
            // unreliable for any partial is skipped as a whole.
            bool smooth = true;
            std::vector<std::string> point_failures;
            double point_worst = 0.0;
            auto compare_fd = [&](auto g, std::size_t i, const std::string& what, double symbolic) {
                const double h = opts.step * std::max(1.0, std::abs(x[i]));
                const double fd = detail::richardson(g, x, i, h);
                const double fd2 = detail::richardson(g, x, i, 2 * h);
                if (!std::isfinite(fd) || !std::isfinite(fd2) ||
                    detail::scaled_error(fd, fd2) > std::max(opts.rtol, 1e-7) * 10) {
                    smooth = false;
                    return;
                }
                const double err = detail::scaled_error(symbolic, fd);
                point_worst = std::max(point_worst, err);
                if (!(err <= opts.rtol)) {
                    point_failures.push_back(what + " " + where() + ": symbolic " + format_number(symbolic) +
                                             ", finite difference " + format_number(fd));
                }
            };
            detail::for_each_index(idx, [&](auto I) {
                const auto gi = sym::d(f, sym::var<static_cast<int>(I())>);
                compare_fd(f, I(), "d/dx" + std::to_string(I()), detail::at(gi, x));
                detail::for_each_index(idx, [&](auto J) {
                    const auto hij = sym::d(gi, sym::var<static_cast<int>(J())>);
                    compare_fd(gi, J(), "d2/dx" + std::to_string(I()) + "dx" + std::to_string(J()), detail::at(hij, x));
                    const auto hji =
                        sym::d(sym::d(f, sym::var<static_cast<int>(J())>), sym::var<static_cast<int>(I())>);
                    const double a = detail::at(hij, x), b = detail::at(hji, x);
                    if (std::isfinite(a) && std::isfinite(b) && !(detail::scaled_error(a, b) <= opts.symmetry_rtol)) {
                        point_failures.push_back("Hessian not symmetric " + where() + ": H" + format_number(I()) +
                                                 format_number(J()) + " = " + format_number(a) + ", H" +
                                                 format_number(J()) + format_number(I()) + " = " + format_number(b));
                    }
                });
            });
            // value_and_grad against separate evaluation.
            const auto [v, g] = std::apply([&](auto... a) { return sym::value_and_grad(f)(a...); }, x);
            if (!(detail::scaled_error(v, detail::at(f, x)) <= opts.cse_rtol)) {
                point_failures.push_back("value_and_grad value differs from f " + where());
            }
            detail::for_each_index(idx, [&](auto I) {
                const double sep = detail::at(sym::d(f, sym::var<static_cast<int>(I())>), x);
                if (std::isfinite(sep) && !(detail::scaled_error(g[I()], sep) <= opts.cse_rtol)) {
                    point_failures.push_back("value_and_grad partial " + std::to_string(I()) +
                                             " differs from the separately evaluated d/dx" + std::to_string(I()) + " " +
                                             where());
                }
            });
            if (!smooth) {
                ++report.points_skipped;
                continue;
            }
            ++report.points_checked;
            report.worst_error = std::max(report.worst_error, point_worst);
            for (auto& m : point_failures) report.failures.push_back(std::move(m));
        }
        const double fraction = static_cast<double>(report.points_checked) / static_cast<double>(opts.points);
        if (fraction < opts.min_checked_fraction) {
            report.failures.push_back("only " + std::to_string(report.points_checked) + " of " +
                                      std::to_string(opts.points) +
                                      " points were smooth enough to check: widen or move the domain");
        }
        report.ok = report.failures.empty();
        return report;
    }
}

/// The op's sampling domain as law_options (used by the suite for every op of the table).
template <class Op>
law_options op_domain_options() {
    law_options o;
    for (const auto& iv : Op::domain) o.domain.push_back(iv);
    return o;
}

}  // namespace exprgrad::check
