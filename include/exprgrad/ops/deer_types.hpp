// DEER's options, reports and results (ops/deer.hpp describes the method).
#pragma once

#include <array>
#include <cstddef>
#include <functional>
#include <stdexcept>
#include <string>

#include <xtensor/xarray.hpp>

#include "exprgrad/fields.hpp"
#include "exprgrad/ops/scan.hpp"

namespace exprgrad::ops {

/// The Jacobian approximation of a DEER iteration (see the top of ops/deer.hpp).
enum class deer_method { newton, quasi, jacobi, fixed_a, sech_u };

/// "newton", "quasi", "jacobi", "fixed_a", "sech_u".
inline const char* to_string(deer_method m) {
    switch (m) {
        case deer_method::newton:
            return "newton";
        case deer_method::quasi:
            return "quasi";
        case deer_method::jacobi:
            return "jacobi";
        case deer_method::fixed_a:
            return "fixed_a";
        case deer_method::sech_u:
            return "sech_u";
    }
    return "?";
}

/// Parses a method name (as printed by to_string); throws std::invalid_argument otherwise.
inline deer_method parse_deer_method(const std::string& s) {
    for (auto m :
         {deer_method::newton, deer_method::quasi, deer_method::jacobi, deer_method::fixed_a, deer_method::sech_u})
        if (s == to_string(m)) return m;
    throw tensors::shape_error("deer", "unknown method '" + s + "' (newton, quasi, jacobi, fixed_a or sech_u)");
}

/// The current iterate, as a monitor sees it: iteration k (1-based) and the values [batch, T, n]
/// (one of f64 / f32 is set, by the solve's dtype).
struct deer_iterate {
    std::size_t iteration = 0;
    const double* f64 = nullptr;
    const float* f32 = nullptr;
    std::size_t size = 0;
    double operator[](std::size_t i) const { return f64 ? f64[i] : double(f32[i]); }
};

/// Options of deer_solve.
/// The solver settings are listed once, in the BOOST_HANA_ADAPT_STRUCT after this namespace (what to_string
/// prints); `monitor` is a callback, not a setting, and stays out of it.
struct deer_options {
    deer_method method = deer_method::newton;
    std::size_t max_iter = 0;  ///< iteration cap; 0 = T (always enough in exact arithmetic)
    /// Tolerances; negative: the dtype's default (top of ops/deer.hpp). NaN or +inf throws
    /// std::invalid_argument (as does a method outside the enum).
    double atol = -1, rtol = -1;
    /// NaN → 0 and clip to ±1e8 after each solve (DEER's clip_ytnext). A stop on an iterate the guard changed
    /// reports converged = false (and falls back when `fallback`): a clipped iterate is not the trajectory.
    bool guard = false;
    bool fallback = true;  ///< not converged: evaluate sequentially (false: return the last iterate)
    scan_options scan{};   ///< how the linear solves split their work
    /// Called after every iteration; returning true stops with converged = true. When set, it
    /// replaces the built-in stopping rule.
    std::function<bool(const deer_iterate&)> monitor{};
};

/// What a solve did. Times are wall-clock seconds per phase.
struct deer_report {
    deer_method method = deer_method::newton;
    std::size_t iterations = 0;  ///< iterations run (fallback excluded)
    double residual = 0;         ///< max |Y^(k) − Y^(k−1)| of the last iteration
    bool converged = false;
    bool fallback = false;        ///< the trajectory comes from the sequential evaluation
    std::size_t overflow_at = 0;  ///< first iteration with a non-finite iterate (0: none)
    double t_cell = 0, t_jacobian = 0, t_scan = 0, t_sequential = 0, t_total = 0;
};

/// The trajectory y [T, n] or [batch, T, n] (the inputs' batching) and the report.
template <class T>
struct deer_result {
    xt::xarray<T> y;
    deer_report report;
};

/// The gradients deer_vjp returns: ∂L/∂y0 (y0's shape), ∂L/∂x (the inputs' shape), ∂L/∂params[i].
template <class T, std::size_t P>
struct deer_grads {
    xt::xarray<T> dy0, dx;
    std::array<xt::xarray<T>, P> dparams;
};

}  // namespace exprgrad::ops

// The one list of deer_options' settings. monitor is left out: a std::function has no value to print or
// record (whether one is set changes the stopping rule; a log that needs it says so itself).
BOOST_HANA_ADAPT_STRUCT(exprgrad::ops::deer_options, method, max_iter, atol, rtol, guard, fallback, scan);

namespace exprgrad::ops {

namespace detail {
// A field added to deer_options but not to the list above would be missing from every printout: the
// structured binding stops compiling when the struct's field count changes (8 = the 7 listed + monitor),
// the assertion when the list's does.
static_assert(field_count_v<deer_options> == 7, "deer_options: update BOOST_HANA_ADAPT_STRUCT");
[[maybe_unused]] inline void deer_options_field_guard(const deer_options& o) {
    [[maybe_unused]] const auto& [f1, f2, f3, f4, f5, f6, f7, f8] = o;
}
}  // namespace detail

/// The settings as `name=value` pairs in declaration order (exprgrad::fields_to_string), the method by name
/// and scan as a nested {chunks=... min_chunk=...}; monitor is not printed. The defaults print
/// "method=newton max_iter=0 atol=-1 rtol=-1 guard=false fallback=true scan={chunks=0 min_chunk=1024}".
/// For logs and run reports; not parsed back. Never throws except std::bad_alloc.
inline std::string to_string(const deer_options& o) { return fields_to_string(o); }

}  // namespace exprgrad::ops
