// check::vjp_check: a hand-written vector-Jacobian product against central finite differences, in the spirit of
// Stan Math's expect_ad. Where check::gradcheck tests the program of a tensor expression, vjp_check tests any
// function of arrays and the VJP written for it (an op's backward kernel, a layer's backward, a scan's adjoint).
#pragma once

#include "exprgrad/require_cxx20.hpp"  // first: refuses a standard older than C++20

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <ostream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <xtensor/xarray.hpp>

#include "exprgrad/format.hpp"
#include "exprgrad/random.hpp"

namespace exprgrad::check {

/// What the NaN/inf part of vjp_check requires. Ops document their own NaN policy, so each rule can be
/// switched off; the default is the usual contract "a NaN input is never hidden".
enum class nan_gradient {
    unchecked,        ///< the gradient under a NaN input is not looked at
    any_nonfinite,    ///< some gradient entry of a checked argument is NaN or ±inf (none silently all-finite)
    entry_nonfinite,  ///< the gradient at the poisoned entry itself is NaN or ±inf
    /// every gradient entry that reads the poisoned entry is NaN or ±inf; "reads" = changes when that input
    /// moves by max(1, |x|) / 2 (a final bias: no gradient reads it, so nothing is required)
    affected_nonfinite
};

/// Options of vjp_check. Every field has a default; `wrt` restricts the check to chosen arguments.
struct vjp_check_options {
    /// Finite-difference step h; an argument x moves by h · max(1, max|x|) along each direction.
    double step = 1e-6;
    /// Tolerance on the scaled error (see vjp_check). 0 chooses it from the step:
    /// 1e4 · (DBL_EPSILON / step + step²), the rounding and truncation terms of a central difference
    /// (2.2e-6 for the default step).
    double rtol = 0;
    /// Random directions per checked argument (entries uniform in [-1, 1]).
    std::size_t directions = 3;
    /// Entries checked one by one per argument: all of them when the argument has at most this many
    /// entries, otherwise a seeded sample of this many. 0 turns the per-element check off.
    std::size_t max_elements = 64;
    /// Seed of the cotangent, the directions, the element sample and the poisoned entries.
    std::uint64_t seed = 7;
    /// The arguments that are perturbed and checked; empty means all. The others are held fixed
    /// (masks holding -inf, integer targets stored as doubles, quantities without a derivative), and
    /// their entries of the VJP's result are ignored (they may be empty arrays).
    std::vector<std::size_t> wrt = {};
    /// NaN checks: for each poisoned argument (nan_args, or every checked argument when empty), `nan_entries`
    /// entries (the first and seeded others) are set to NaN one at a time; the value must then hold a NaN
    /// (if nan_value) and the gradient of the checked arguments obey nan_grad. nan_entries = 0 turns the NaN
    /// and inf checks off; nan_args leaves out an argument the function refuses to take as NaN (it throws).
    bool nan_value = true;
    nan_gradient nan_grad = nan_gradient::any_nonfinite;
    std::size_t nan_entries = 2;
    std::vector<std::size_t> nan_args = {};
    /// +inf check (off by default: tanh(+inf) = 1 is a correct finite value): with an entry set to +inf the
    /// value must hold a NaN or ±inf.
    bool inf_value = false;

    /// The tolerance in use: rtol, or the one chosen from the step.
    double tolerance() const { return rtol > 0 ? rtol : 1e4 * (DBL_EPSILON / step + step * step); }
};

/// What vjp_check found; converts to true when everything checked passed, and prints its message (so that
/// doctest's `CHECK(check::vjp_check(...))` shows the report on failure).
/// - worst_*: the comparison with the largest scaled error: argument index, direction (-1 for a per-element
///   comparison, whose flat index is worst_index), the VJP's and the finite difference's value.
/// - failures: the NaN/inf or shape findings, one line each (empty when none).
struct vjp_report {
    bool ok = true;
    std::size_t checked = 0;
    double tolerance = 0;
    double worst_error = 0;
    int worst_argument = -1;
    int worst_direction = -1;
    std::size_t worst_index = 0;
    double worst_vjp = 0, worst_fd = 0;
    std::vector<std::string> failures;

    explicit operator bool() const { return ok; }
    std::string message() const {
        std::string s = std::string(ok ? "vjp_check ok" : "vjp_check FAILED") + ": " + format_number(checked) +
                        " comparisons, worst scaled error " + format_number(worst_error) + " (tolerance " +
                        format_number(tolerance) + ")";
        if (worst_argument >= 0) {
            s += " at argument " + format_number(worst_argument);
            if (worst_direction >= 0)
                s += " direction " + format_number(worst_direction);
            else
                s += " element " + format_number(worst_index);
            s += " (vjp " + format_number(worst_vjp) + ", finite difference " + format_number(worst_fd) + ")";
        }
        for (const auto& f : failures) s += "; " + f;
        return s;
    }
    friend std::ostream& operator<<(std::ostream& os, const vjp_report& r) { return os << r.message(); }
};

namespace detail::vjp {
using array = xt::xarray<double>;

template <class R>
array as_array(R&& r) {
    if constexpr (std::is_arithmetic_v<std::remove_cvref_t<R>>) {
        array a = array::from_shape({});
        a() = static_cast<double>(r);
        return a;
    } else {
        return array(std::forward<R>(r));
    }
}

inline double dot(const array& a, const array& b) {
    double s = 0;
    for (std::size_t i = 0; i < a.size(); ++i) s += a.data()[i] * b.data()[i];
    return s;
}

inline bool any_nan(const array& a) {
    return std::any_of(a.begin(), a.end(), [](double v) { return std::isnan(v); });
}
inline bool any_nonfinite(const array& a) {
    return std::any_of(a.begin(), a.end(), [](double v) { return !std::isfinite(v); });
}
}  // namespace detail::vjp

/// Checks `vjp` against central finite differences of `f` at `inputs`, and checks NaN propagation.
///
/// f(inputs) returns an array (anything convertible to xt::xarray<double>) or a scalar; vjp(inputs, dout)
/// returns one gradient per input (a std::vector<xt::xarray<double>>, each of its input's size; held-fixed
/// arguments may be empty). Capture integer targets, options and other non-array inputs in the lambdas.
/// The cotangent dout has the output's shape, entries ±[0.5, 1.5) (seeded; never near zero, so a VJP that
/// ignores dout fails). For each checked argument x_a (opts.wrt, or all):
///   - directions: for `opts.directions` seeded random directions v, with h = step · max(1, max|x_a|),
///       fd  = ⟨dout, f(x_a + h v) − f(x_a − h v)⟩ / 2h      (= ⟨dout, J_a v⟩ up to O(h²))
///       an  = ⟨vjp(dout)_a, v⟩,
///     scaled error |an − fd| / max(1, |fd|, Σ_i |vjp_a,i v_i|) (the last term is the scale the inner
///     product cancels from);
///   - elements: the same with v = e_k for each entry k (all of them up to max_elements, else a sample);
///   - NaN: x_a,k = NaN for nan_entries entries of each poisoned argument: the value must hold a NaN
///     (nan_value) and the gradient of the checked arguments obey nan_grad; +inf likewise if inf_value.
/// The check passes when every scaled error is <= opts.tolerance() (a NaN error fails) and no NaN or shape
/// rule failed. Nothing is thrown for a wrong VJP: the report says what failed; an exception from f or vjp
/// propagates. Inputs are copied; f and vjp are called many times and must be deterministic.
/// Example (d/dx of x² is 2x; a VJP returning x instead fails):
///   auto f = [](const auto& in) { return xt::xarray<double>(in[0] * in[0]); };
///   auto df = [](const auto& in, const auto& dout) { return std::vector{xt::xarray<double>(2.0 * in[0] * dout)}; };
///   CHECK(check::vjp_check(f, df, {xt::xarray<double>{0.5, -1.0}}));
template <class F, class VJP>
vjp_report vjp_check(F&& f, VJP&& vjp, std::vector<xt::xarray<double>> inputs, const vjp_check_options& opts = {}) {
    using detail::vjp::array;
    using detail::vjp::as_array;
    vjp_report r;
    r.tolerance = opts.tolerance();
    std::vector<std::size_t> wrt = opts.wrt;
    if (wrt.empty())
        for (std::size_t a = 0; a < inputs.size(); ++a) wrt.push_back(a);
    for (std::size_t a : wrt) {
        if (a >= inputs.size()) {
            r.ok = false;
            r.failures.push_back("wrt names argument " + std::to_string(a) + " of " + std::to_string(inputs.size()));
            return r;
        }
    }
    auto value = [&](const std::vector<array>& in) { return as_array(f(in)); };
    auto gradient = [&](const std::vector<array>& in, const array& dout) { return std::vector<array>(vjp(in, dout)); };

    const array out0 = value(inputs);
    rng g(opts.seed);
    array dout = array::from_shape(out0.shape());
    for (auto& d : dout) d = (g.uniform() < 0.5 ? -1.0 : 1.0) * (0.5 + g.uniform());
    const std::vector<array> grads = gradient(inputs, dout);
    if (grads.size() != inputs.size()) {
        r.ok = false;
        r.failures.push_back("the vjp returned " + std::to_string(grads.size()) + " gradients for " +
                             std::to_string(inputs.size()) + " inputs");
        return r;
    }
    for (std::size_t a : wrt) {
        if (grads[a].size() != inputs[a].size()) {
            r.ok = false;
            r.failures.push_back("the gradient of argument " + std::to_string(a) + " has " +
                                 std::to_string(grads[a].size()) + " entries, the argument " +
                                 std::to_string(inputs[a].size()));
            return r;
        }
    }

    auto record = [&](double an, double fd, double scale, std::size_t a, int direction, std::size_t index) {
        const double err = std::abs(an - fd) / std::max({1.0, std::abs(fd), scale});
        const double e = std::isnan(err) ? std::numeric_limits<double>::infinity() : err;
        ++r.checked;
        if (r.worst_argument < 0 || e > r.worst_error) {
            r.worst_error = e;
            r.worst_argument = static_cast<int>(a);
            r.worst_direction = direction;
            r.worst_index = index;
            r.worst_vjp = an;
            r.worst_fd = fd;
        }
    };
    // ⟨dout, f(x_a + h v) − f(x_a − h v)⟩ / 2h, v given densely or as the unit vector e_k (dense empty).
    auto central = [&](std::size_t a, const array* v, std::size_t k, double h) {
        std::vector<array> in = inputs;
        array& x = in[a];
        auto shift = [&](double s) {
            if (v)
                for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = inputs[a].data()[i] + s * v->data()[i];
            else
                x.data()[k] = inputs[a].data()[k] + s;
        };
        shift(h);
        const array up = value(in);
        shift(-h);
        const array down = value(in);
        if (up.size() != dout.size() || down.size() != dout.size()) {
            r.failures.push_back("the output's size changed under a perturbation of argument " + std::to_string(a));
            return std::numeric_limits<double>::quiet_NaN();
        }
        double s = 0;
        for (std::size_t i = 0; i < dout.size(); ++i) s += dout.data()[i] * (up.data()[i] - down.data()[i]);
        return s / (2 * h);
    };

    for (std::size_t a : wrt) {
        const array& x = inputs[a];
        const array& ga = grads[a];
        if (x.size() == 0) continue;
        double xmax = 0;
        for (double v : x)
            if (std::isfinite(v)) xmax = std::max(xmax, std::abs(v));
        const double h = opts.step * std::max(1.0, xmax);
        for (std::size_t d = 0; d < opts.directions; ++d) {
            array v = array::from_shape(x.shape());
            for (auto& e : v) e = 2 * g.uniform() - 1;
            double an = 0, scale = 0;
            for (std::size_t i = 0; i < x.size(); ++i) {
                an += ga.data()[i] * v.data()[i];
                scale += std::abs(ga.data()[i] * v.data()[i]);
            }
            record(an, central(a, &v, 0, h), scale, a, static_cast<int>(d), 0);
        }
        std::vector<std::size_t> entries;
        if (x.size() <= opts.max_elements) {
            for (std::size_t k = 0; k < x.size(); ++k) entries.push_back(k);
        } else {
            for (std::size_t k = 0; k < opts.max_elements; ++k) entries.push_back(g.below(x.size()));
        }
        for (std::size_t k : entries) {
            const double hk = opts.step * std::max(1.0, std::abs(x.data()[k]));
            record(ga.data()[k], central(a, nullptr, k, hk), std::abs(ga.data()[k]), a, -1, k);
        }
    }

    // NaN and inf: one poisoned entry at a time.
    auto poison = [&](std::size_t a, std::size_t k, double bad, const char* what, bool check_value, bool check_grad) {
        std::vector<array> in = inputs;
        in[a].data()[k] = bad;
        const array out = value(in);
        const bool value_ok = std::isnan(bad) ? detail::vjp::any_nan(out) : detail::vjp::any_nonfinite(out);
        if (check_value && !value_ok) {
            r.failures.push_back(std::string(what) + " at argument " + std::to_string(a) + " element " +
                                 std::to_string(k) + " gave an all-finite value");
        }
        if (!check_grad || opts.nan_grad == nan_gradient::unchecked) return;
        const std::vector<array> gs = gradient(in, dout);
        bool grad_ok = false;
        if (opts.nan_grad == nan_gradient::entry_nonfinite) {
            grad_ok = gs.size() > a && gs[a].size() > k && !std::isfinite(gs[a].data()[k]);
        } else if (opts.nan_grad == nan_gradient::affected_nonfinite) {
            std::vector<array> moved = inputs;
            moved[a].data()[k] += 0.5 * std::max(1.0, std::abs(inputs[a].data()[k]));
            const std::vector<array> gm = gradient(moved, dout);
            grad_ok = true;
            for (std::size_t b : wrt) {
                if (gs.size() <= b || gm.size() <= b || gs[b].size() != grads[b].size() ||
                    gm[b].size() != grads[b].size()) {
                    grad_ok = false;
                    continue;
                }
                for (std::size_t i = 0; i < grads[b].size(); ++i)
                    if (gm[b].data()[i] != grads[b].data()[i] && std::isfinite(gs[b].data()[i])) grad_ok = false;
            }
        } else {
            for (std::size_t b : wrt) grad_ok = grad_ok || (gs.size() > b && detail::vjp::any_nonfinite(gs[b]));
        }
        if (!grad_ok) {
            r.failures.push_back(std::string(what) + " at argument " + std::to_string(a) + " element " +
                                 std::to_string(k) + " gave a silently finite gradient");
        }
    };
    for (std::size_t a : opts.nan_args.empty() ? wrt : opts.nan_args) {
        if (a >= inputs.size()) {
            r.failures.push_back("nan_args names argument " + std::to_string(a) + " of " +
                                 std::to_string(inputs.size()));
            continue;
        }
        const std::size_t n = inputs[a].size();
        if (n == 0) continue;
        std::vector<std::size_t> entries{0};
        for (std::size_t e = 1; e < std::min(opts.nan_entries, n); ++e) entries.push_back(g.below(n));
        if (opts.nan_entries == 0) entries.clear();
        for (std::size_t k : entries) {
            if (opts.nan_value || opts.nan_grad != nan_gradient::unchecked)
                poison(a, k, std::numeric_limits<double>::quiet_NaN(), "NaN", opts.nan_value, true);
            if (opts.inf_value) poison(a, k, std::numeric_limits<double>::infinity(), "+inf", true, false);
        }
    }
    r.ok = r.failures.empty() && r.worst_error <= r.tolerance;
    return r;
}

}  // namespace exprgrad::check
