// gradcheck for tensor expressions: the program's analytic gradient against central finite
// differences, in double, for every floating-point array argument.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <xtensor/xarray.hpp>

#include "exprgrad/random.hpp"
#include "exprgrad/tensor/graph.hpp"

namespace exprgrad::check {

/// Options of gradcheck.
struct gradcheck_options {
    double step = 1e-6;            ///< finite-difference step, scaled by max(1, |x|)
    double rtol = 1e-5;            ///< tolerance relative to max(1, |analytic|, |numeric|)
    std::size_t max_entries = 64;  ///< entries checked per argument (a fixed sample beyond that)
    std::uint64_t seed = 7;        ///< seed of the output projection and of the entry sample
};

/// What gradcheck found; converts to true when every checked entry agreed.
struct gradcheck_report {
    bool ok = true;
    std::size_t checked = 0;
    double worst_error = 0;
    int worst_argument = -1;
    std::size_t worst_index = 0;
    double worst_analytic = 0, worst_numeric = 0;
    explicit operator bool() const { return ok; }
    /// "ok" or the worst entry: argument, flat index, analytic and numeric values.
    std::string message() const {
        std::ostringstream s;
        s.precision(12);
        s << (ok ? "gradcheck ok" : "gradcheck FAILED") << ": " << checked << " entries, worst scaled error "
          << worst_error;
        if (worst_argument >= 0) {
            s << " at argument " << worst_argument << " flat index " << worst_index << " (analytic " << worst_analytic
              << ", numeric " << worst_numeric << ")";
        }
        return s.str();
    }
};

namespace detail {
template <class A>
auto as_double(const A& a) {
    if constexpr (std::is_arithmetic_v<A>) {
        return static_cast<double>(a);
    } else if constexpr (std::is_floating_point_v<typename A::value_type>) {
        return xt::xarray<double>(a);
    } else {
        return xt::xarray<typename A::value_type>(a);
    }
}
template <class A>
constexpr bool is_float_array = [] {
    if constexpr (std::is_arithmetic_v<A>)
        return false;
    else
        return std::is_floating_point_v<typename A::value_type>;
}();

}  // namespace detail

/// Checks the analytic gradient of the tensor expression E with respect to every floating-point
/// array argument against central finite differences, in double (arguments are converted). A
/// non-scalar output is projected on fixed random weights first. Integer arguments are passed
/// through. Example: `auto r = gradcheck(sum(tanh(matmul(X, W))), x, w); CHECK(r.ok);`
template <tex::TensorExpr E, class... Args>
gradcheck_report gradcheck(E, const gradcheck_options& opts, const Args&... raw) {
    auto args = std::make_tuple(detail::as_double(raw)...);
    using wrt = decltype([]<std::size_t... Is>(std::index_sequence<Is...>) {
        return std::integer_sequence<int, static_cast<int>(Is)...>{};
    }(std::index_sequence_for<Args...>{}));
    gradcheck_report report;
    tex::program<double, std::remove_cvref_t<E>, std::integer_sequence<int>> plain;
    auto run = [&](auto& p) -> const tex::cview<double>& {
        return std::apply([&](const auto&... a) -> const tex::cview<double>& { return p.forward(a...); }, args);
    };
    // the projection weights
    const auto& out0 = run(plain);
    std::vector<double> w(out0.size());
    rng g(opts.seed);
    for (auto& v : w) v = out0.size() == 1 ? 1.0 : g.uniform() * 2 - 1;
    auto projected = [&] {
        const auto& o = run(plain);
        double s = 0;
        for (std::size_t i = 0; i < o.size(); ++i) s += w[i] * o.data[i];
        return s;
    };
    tex::program<double, std::remove_cvref_t<E>, wrt> diff;
    run(diff);
    diff.backward(w.data());
    auto check_arg = [&](auto I) {
        constexpr std::size_t i = decltype(I)::value;
        using A = std::tuple_element_t<i, std::tuple<Args...>>;
        if constexpr (detail::is_float_array<A>) {
            auto& x = std::get<i>(args);
            const xt::xarray<double> analytic = diff.template grad_of<static_cast<int>(i)>();
            const std::size_t n = x.size();
            std::vector<std::size_t> entries;
            if (n <= opts.max_entries) {
                for (std::size_t k = 0; k < n; ++k) entries.push_back(k);
            } else {
                for (std::size_t k = 0; k < opts.max_entries; ++k) entries.push_back(g.below(n));
            }
            for (std::size_t k : entries) {
                const double x0 = x.data()[k];
                const double h = opts.step * std::max(1.0, std::abs(x0));
                x.data()[k] = x0 + h;
                const double up = projected();
                x.data()[k] = x0 - h;
                const double down = projected();
                x.data()[k] = x0;
                const double numeric = (up - down) / (2 * h);
                const double a = analytic.size() == n ? analytic.data()[k] : 0.0;
                const double err = std::abs(a - numeric) / std::max({1.0, std::abs(a), std::abs(numeric)});
                ++report.checked;
                if (report.worst_argument < 0 || !(err <= report.worst_error)) {
                    report.worst_error = std::isnan(err) ? std::numeric_limits<double>::infinity() : err;
                    report.worst_argument = static_cast<int>(i);
                    report.worst_index = k;
                    report.worst_analytic = a;
                    report.worst_numeric = numeric;
                }
            }
        }
    };
    [&]<std::size_t... Is>(std::index_sequence<Is...>) { (check_arg(std::integral_constant<std::size_t, Is>{}), ...); }
    (std::index_sequence_for<Args...>{});
    report.ok = report.worst_error <= opts.rtol;
    return report;
}

/// gradcheck with default options.
template <tex::TensorExpr E, class... Args>
requires(!std::is_same_v<std::remove_cvref_t<std::tuple_element_t<0, std::tuple<Args..., void>>>, gradcheck_options>)
    gradcheck_report gradcheck(E e, const Args&... args) {
    return gradcheck(e, gradcheck_options{}, args...);
}

}  // namespace exprgrad::check
