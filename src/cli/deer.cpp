// `exprgrad deer`: the iteration counts of the DEER variants on the notes' deterministic instance
// (src/tools/deer_instance.hpp; docs/deer.md explains the output). Flags → deer_settings → solve → printed lines.
#include "deer.hpp"

#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <iomanip>
#include <iostream>
#include <limits>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>

#include <exprgrad/kernels/parallel.hpp>
#include <exprgrad/ops/deer.hpp>
#include "deer_instance.hpp"

#include "cli_options.hpp"

namespace exprgrad::cli {

namespace {

// Sizes beyond these would take minutes or gigabytes; they are refused before anything is allocated.
constexpr std::uint64_t max_n = 1024, max_T = 10'000'000, max_cap = 10 * max_T;
constexpr std::uint64_t max_work = std::uint64_t{1} << 26;  // values stored: T·n, or T·n² for dense methods
constexpr double max_gain = 1e6;

struct deer_settings {
    std::uint64_t n = 8, T = 1000;
    double g = 1.0;
    std::string method = "newton", dtype = "f64";
    std::uint64_t cap = 0;  // 0: not given, T
    bool guard = false;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The bounds that involve two options (each option's own range is checked when it is parsed).
void check_sizes(const deer_settings& s) {
    const bool dense = s.method == "newton" || s.method == "fixed_a" || s.method == "sech_u";
    // n ≤ 1024 and T ≤ 10^7, so T·n² < 2^64: these products cannot overflow.
    const std::uint64_t work = dense ? s.T * s.n * s.n : s.T * s.n;
    if (work > max_work)
        throw tools::usage_error("--T " + std::to_string(s.T) + " with --n " + std::to_string(s.n) + ": T*n" +
                                 (dense ? "*n" : "") + " = " + std::to_string(work) +
                                 " values exceed the limit 2^26 = " + std::to_string(max_work) +
                                 (dense ? " (--method " + s.method + " stores T n x n Jacobians)" : ""));
    // T iterations suffice in exact arithmetic; a cap far beyond only lets a run that cannot converge (a clipped
    // divergence) go on for hours.
    if (s.cap > 10 * s.T)
        throw tools::usage_error("--cap " + std::to_string(s.cap) + " with --T " + std::to_string(s.T) +
                                 ": want at most 10*T = " + std::to_string(10 * s.T) +
                                 " (T iterations suffice in exact arithmetic)");
}

struct deer_result {
    ops::deer_report report;
    double max_abs_error, tol, t_setup, t_seq;
};

template <class T>
deer_result solve(const deer_settings& s) {
    deer_result out{};
    out.tol = std::is_same_v<T, double> ? 1e-10 : 1e-5;
    auto t0 = std::chrono::steady_clock::now();
    const auto cell = tools::deer_instance::cell<T>(s.n, s.g);
    const auto u = tools::deer_instance::inputs<T>(s.n, s.T);
    const xt::xarray<T> y0 = xt::zeros<T>({s.n});
    out.t_setup = seconds_since(t0);

    t0 = std::chrono::steady_clock::now();
    ops::deer_solver<std::remove_cv_t<decltype(cell)>> solver;
    const auto ref = solver.sequential(cell, y0, u);
    out.t_seq = seconds_since(t0);

    ops::deer_options o;
    o.method = ops::parse_deer_method(s.method);
    o.max_iter = s.cap;
    o.guard = s.guard;
    double last_error = 0;
    o.monitor = [&](const ops::deer_iterate& it) {
        double e = 0;
        for (std::size_t i = 0; i < it.size; ++i) {
            const double d = std::abs(it[i] - double(ref.data()[i]));
            if (!(d <= e)) e = d;  // NaN counts as the largest error
        }
        last_error = e;
        return e < out.tol;
    };
    out.report = solver.solve(cell, y0, u, o).report;
    if (out.report.overflow_at > 0) last_error = std::numeric_limits<double>::infinity();  // the non-finite iterate
    out.max_abs_error = last_error;
    return out;
}

// The printed lines (other tools parse `iterations:`, `max_abs_error:` and `converged:`).
void print(const deer_settings& s, const deer_result& r) {
    const auto& rep = r.report;
    std::ostringstream out;
    out << std::setprecision(6);
    out << "instance: n=" << s.n << " T=" << s.T << " g=" << s.g << " dtype=" << s.dtype << " method=" << s.method
        << " cap=" << (s.cap ? s.cap : s.T) << " guard=" << (s.guard ? "yes" : "no")
        << " threads=" << kernels::num_threads() << '\n';
    out << "iterations: " << rep.iterations << '\n';
    out << "max_abs_error: " << r.max_abs_error << "  (last iterate vs sequential; target < " << r.tol << ")\n";
    out << "converged: " << (rep.converged ? "yes" : "no") << '\n';
    if (rep.overflow_at > 0) out << "overflow at " << rep.overflow_at << '\n';
    if (rep.fallback) out << "fallback: yes  (the returned trajectory is the sequential one)\n";
    out << "time_setup_s: " << r.t_setup << '\n';
    out << "time_sequential_reference_s: " << r.t_seq << '\n';
    out << "time_cell_s: " << rep.t_cell << '\n';
    out << "time_jacobian_s: " << rep.t_jacobian << '\n';
    out << "time_scan_s: " << rep.t_scan << "  (linear solves, update and checks)\n";
    out << "time_fallback_s: " << rep.t_sequential << '\n';
    out << "time_deer_total_s: " << rep.t_total << "  (includes the monitor's error checks)\n";
    std::cout << out.str() << std::flush;
    if (!std::cout) throw std::runtime_error("cannot write to stdout");
}

}  // namespace

void register_deer(CLI::App& app) {
    auto s = std::make_shared<deer_settings>();
    auto* sub = app.add_subcommand(
        "deer",
        "DEER-type parallel evaluation of the tanh RNN of research notes §3.7 (x_t = tanh(A x_{t-1} + u_t), "
        "A_ij = g sin(0.37(i+1)(j+2)+0.5)/sqrt(n), u_ti = sin(0.1t+i)): iterations until max abs error vs the "
        "sequential loop < 1e-10 (f64) / 1e-5 (f32). Exit status 1 when not converged within the cap.");
    tools::add_number(*sub, "--n", s->n, "State size n (1 to 1024)", std::uint64_t{1}, max_n)
        ->required()
        ->default_str("");
    tools::add_number(*sub, "--T", s->T, "Sequence length T (1 to 10^7)", std::uint64_t{1}, max_T)
        ->required()
        ->default_str("");
    tools::add_number(*sub, "--g", s->g, "Gain g of A (spectral radius grows with g; |g| <= 1e6)", -max_gain, max_gain)
        ->required()
        ->default_str("");
    sub->add_option("--method", s->method, "newton | quasi | jacobi | fixed_a | sech_u")
        ->required()
        ->check(CLI::IsMember({"newton", "quasi", "jacobi", "fixed_a", "sech_u"}));
    sub->add_option("--dtype", s->dtype, "f64 (default) or f32")->check(CLI::IsMember({"f64", "f32"}));
    tools::add_number(*sub, "--cap", s->cap,
                      "Iteration cap, 1 to 10*T (default T, which always suffices in exact arithmetic)",
                      std::uint64_t{1}, max_cap)
        ->default_str("T");
    tools::add_switch(*sub, "--guard", s->guard, "Clip iterates to +-1e8 and map NaN to 0 (DEER's clip_ytnext)");
    sub->footer(
        "Sizes: T*n <= 2^26 values, and T*n*n <= 2^26 for newton, fixed_a and sech_u (they store T n x n Jacobians,\n"
        "512 MiB at f64). One iteration costs O(T*n^2) (newton and quasi: plus n VJPs of the cell, O(T*n^3)).\n"
        "Prints instance:, iterations:, max_abs_error:, converged: and the time of each phase (docs/deer.md).");
    sub->callback([s] {
        check_sizes(*s);
        const deer_result r = s->dtype == "f32" ? solve<float>(*s) : solve<double>(*s);
        print(*s, r);
        if (r.report.overflow_at > 0)
            throw std::runtime_error("not converged: iterate " + std::to_string(r.report.overflow_at) +
                                     " is not finite" +
                                     (r.report.fallback ? " (fell back to the sequential loop)" : ""));
        if (!r.report.converged)
            throw std::runtime_error("not converged within " + std::to_string(s->cap ? s->cap : s->T) +
                                     " iterations (max_abs_error " + tools::readable(r.max_abs_error) + ")");
    });
}

}  // namespace exprgrad::cli
