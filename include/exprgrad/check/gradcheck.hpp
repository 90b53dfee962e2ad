// gradcheck for tensor expressions: the program's analytic gradient against central finite
// differences, in double, over the differentiated arguments (those of wrt<I...> or of a compiled
// value_and_grad program; every floating-point array argument only when asked without either).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <xtensor/xarray.hpp>

#include "exprgrad/format.hpp"
#include "exprgrad/random.hpp"
#include "exprgrad/tensors/graph.hpp"
#include "exprgrad/tensors/value_and_grad.hpp"  // grad_program: its wrt is the set to check

namespace exprgrad::check {

/// Options of gradcheck.
struct gradcheck_options {
    double step = 1e-6;            ///< finite-difference step h, scaled by max(1, |x|)
    double rtol = 1e-5;            ///< tolerance on |analytic - numeric| / max(1, |analytic|, |numeric|)
    std::size_t max_entries = 64;  ///< entries checked per argument (a fixed random sample beyond that)
    std::uint64_t seed = 7;        ///< seed of the output projection and of the entry sample
};

/// What gradcheck found; converts to true when every checked entry agreed.
/// - ok: every checked entry's scaled error is <= rtol (a NaN error counts as +inf, so fails).
/// - checked: the number of entries compared, over all checked arguments.
/// - worst_*: the entry with the largest scaled error: its argument index (-1 if none was checked),
///   flat row-major index, analytic and numeric derivative.
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
        std::string s = std::string(ok ? "gradcheck ok" : "gradcheck FAILED") + ": " + format_number(checked) +
                        " entries, worst scaled error " + format_number(worst_error);
        if (worst_argument >= 0) {
            s += " at argument " + format_number(worst_argument) + " flat index " + format_number(worst_index) +
                 " (analytic " + format_number(worst_analytic) + ", numeric " + format_number(worst_numeric) + ")";
        }
        return s;
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

/// Checks the analytic gradient of the tensor expression E against central finite differences,
/// in double (arguments are converted; integer arrays pass through unchanged).
///
/// gradcheck(e, wrt<I...>, [opts,] args...) perturbs and checks only the arguments I... (each must
/// be a floating-point array): the others are inputs held fixed, so a mask holding -inf, or any
/// argument without a meaningful derivative, never enters the check. gradcheck(e, [opts,] args...)
/// checks every floating-point array argument. A non-scalar output is projected on fixed random
/// weights w first (the check is then of d(w·out)/dx). For each checked entry x_k:
/// numeric = (f(x_k + h) - f(x_k - h)) / 2h with h = step · max(1, |x_k|), and the scaled error is
/// |analytic - numeric| / max(1, |analytic|, |numeric|). A call takes exactly the arguments the
/// program takes (one per placeholder up to the highest tensor<I>). NaN in the result fails the
/// check (it is reported, never thrown).
/// Example: `auto r = gradcheck(sum(tanh(matmul(X, W)) + M), wrt<0, 1>, x, w, mask); CHECK(r.ok);`
template <tensors::TensorExpr E, int... W, class... Args>
gradcheck_report gradcheck(E, tensors::wrt_t<W...>, const gradcheck_options& opts, const Args&... raw) {
    static_assert(sizeof...(W) > 0, "exprgrad: gradcheck(expr, wrt<I...>, args...) needs at least one index");
    static_assert(((W >= 0 && W < static_cast<int>(sizeof...(Args))) && ...),
                  "exprgrad: gradcheck: a wrt index names no argument of the call");
    using arg_types = std::tuple<Args..., double>;  // the extra double keeps a bad index from a second error
    static_assert((detail::is_float_array<std::tuple_element_t<static_cast<std::size_t>(W < 0 ? 0 : W), arg_types>> &&
                   ...),
                  "exprgrad: gradcheck: a wrt argument must be a floating-point array");
    auto args = std::make_tuple(detail::as_double(raw)...);
    using wrt = std::integer_sequence<int, W...>;
    gradcheck_report report;
    tensors::program<double, std::remove_cvref_t<E>, std::integer_sequence<int>> plain;
    auto run = [&](auto& p) -> const tensors::cview<double>& {
        return std::apply([&](const auto&... a) -> const tensors::cview<double>& { return p.forward(a...); }, args);
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
    tensors::program<double, std::remove_cvref_t<E>, wrt> diff;
    run(diff);
    diff.backward(w.data());
    auto check_arg = [&](auto I) {
        constexpr int i = decltype(I)::value;
        auto& x = std::get<static_cast<std::size_t>(i)>(args);
        const xt::xarray<double> analytic = diff.template grad_of<i>();
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
            const double a = analytic.data()[k];
            const double err = std::abs(a - numeric) / std::max({1.0, std::abs(a), std::abs(numeric)});
            ++report.checked;
            if (report.worst_argument < 0 || !(err <= report.worst_error)) {
                report.worst_error = std::isnan(err) ? std::numeric_limits<double>::infinity() : err;
                report.worst_argument = i;
                report.worst_index = k;
                report.worst_analytic = a;
                report.worst_numeric = numeric;
            }
        }
    };
    (check_arg(std::integral_constant<int, W>{}), ...);
    report.ok = report.worst_error <= opts.rtol;
    return report;
}

namespace detail {
template <class... Args>
constexpr bool first_is_options =
    std::is_same_v<std::remove_cvref_t<std::tuple_element_t<0, std::tuple<Args..., void>>>, gradcheck_options>;
template <class T>
struct is_wrt : std::false_type {};
template <int... W>
struct is_wrt<tensors::wrt_t<W...>> : std::true_type {};

// The indices of the floating-point array arguments, as a wrt_t.
template <class Acc, std::size_t I, class... Args>
struct float_args {
    using type = Acc;
};
template <int... W, std::size_t I, class A, class... Args>
struct float_args<tensors::wrt_t<W...>, I, A, Args...>
    : float_args<std::conditional_t<is_float_array<A>, tensors::wrt_t<W..., static_cast<int>(I)>, tensors::wrt_t<W...>>,
                 I + 1, Args...> {};
}  // namespace detail

/// gradcheck with default options over the wrt arguments.
template <tensors::TensorExpr E, int... W, class... Args>
requires(!detail::first_is_options<Args...>) gradcheck_report
    gradcheck(E e, tensors::wrt_t<W...> w, const Args&... args) {
    return gradcheck(e, w, gradcheck_options{}, args...);
}

/// gradcheck over every floating-point array argument.
template <tensors::TensorExpr E, class... Args>
gradcheck_report gradcheck(E e, const gradcheck_options& opts, const Args&... args) {
    using all = typename detail::float_args<tensors::wrt_t<>, 0, Args...>::type;
    static_assert(!std::is_same_v<all, tensors::wrt_t<>>, "exprgrad: gradcheck needs a floating-point array argument");
    return gradcheck(e, all{}, opts, args...);
}

/// gradcheck(prog, [opts,] args...): checks a compiled program `prog = value_and_grad(loss, wrt<I...>)`
/// over exactly its differentiated arguments I...; every other argument (a mask holding -inf, indices,
/// a fixed temperature) is an input held fixed, as with gradcheck(loss, wrt<I...>, args...). The
/// check compiles its own double programs of the same expression (float arguments are converted), so
/// `prog`'s workspace and last results are untouched. Same report, options and NaN policy as above.
/// Example: `auto prog = value_and_grad(sum(softmax(S + M)), wrt<0>); CHECK(gradcheck(prog, s, m).ok);`
template <class E, int... W, class... Args>
gradcheck_report gradcheck(const tensors::grad_program<E, W...>&, const gradcheck_options& opts, const Args&... args) {
    return gradcheck(E{}, tensors::wrt<W...>, opts, args...);
}

/// gradcheck of a compiled value_and_grad program with default options.
template <class E, int... W, class... Args>
requires(!detail::first_is_options<Args...>) gradcheck_report
    gradcheck(const tensors::grad_program<E, W...>& prog, const Args&... args) {
    return gradcheck(prog, gradcheck_options{}, args...);
}

/// gradcheck with default options over every floating-point array argument.
template <tensors::TensorExpr E, class... Args>
requires(!detail::first_is_options<Args...> &&
         !detail::is_wrt<std::remove_cvref_t<std::tuple_element_t<0, std::tuple<Args..., void>>>>::value)
    gradcheck_report gradcheck(E e, const Args&... args) {
    return gradcheck(e, gradcheck_options{}, args...);
}

}  // namespace exprgrad::check
