// `exprgrad deer`: the iteration counts of the DEER variants on the notes' deterministic instance
// (research notes articles_part2.md §3.7; docs/deer.md explains the output).
#include "deer.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <iomanip>
#include <iostream>
#include <limits>
#include <memory>
#include <sstream>
#include <string>

#include <exprgrad/ops/deer.hpp>
#include <exprgrad/ops/deer_instance.hpp>
#include <exprgrad/tensor/parallel.hpp>

namespace exprgrad::cli {

namespace {

struct deer_settings {
    std::size_t n = 8, T = 1000;
    double g = 1.0;
    std::string method = "newton", dtype = "f64";
    std::size_t cap = 0;
    bool guard = false;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

template <class T>
int run_typed(const deer_settings& s) {
    const double tol = std::is_same_v<T, double> ? 1e-10 : 1e-5;
    auto t0 = std::chrono::steady_clock::now();
    const auto cell = deer_instance::cell<T>(s.n, s.g);
    const auto u = deer_instance::inputs<T>(s.n, s.T);
    const xt::xarray<T> y0 = xt::zeros<T>({s.n});
    const double t_setup = seconds_since(t0);

    t0 = std::chrono::steady_clock::now();
    deer_solver<std::remove_cv_t<decltype(cell)>> solver;
    const auto ref = solver.sequential(cell, y0, u);
    const double t_seq = seconds_since(t0);

    deer_options o;
    o.method = parse_deer_method(s.method);
    o.max_iter = s.cap;
    o.guard = s.guard;
    double last_error = 0;
    o.monitor = [&](const deer_iterate& it) {
        double e = 0;
        for (std::size_t i = 0; i < it.size; ++i) {
            const double d = std::abs(it[i] - double(ref.data()[i]));
            if (!(d <= e)) e = d;  // NaN counts as the largest error
        }
        last_error = e;
        return e < tol;
    };
    const auto r = solver.solve(cell, y0, u, o);
    const auto& rep = r.report;

    std::ostringstream out;
    out << std::setprecision(6);
    out << "instance: n=" << s.n << " T=" << s.T << " g=" << s.g << " dtype=" << s.dtype << " method=" << s.method
        << " cap=" << (s.cap ? s.cap : s.T) << " guard=" << (s.guard ? "yes" : "no") << " threads=" << num_threads()
        << '\n';
    out << "iterations: " << rep.iterations << '\n';
    if (rep.overflow_at > 0) last_error = std::numeric_limits<double>::infinity();  // the non-finite iterate
    out << "max_abs_error: " << last_error << "  (last iterate vs sequential; target < " << tol << ")\n";
    out << "converged: " << (rep.converged ? "yes" : "no") << '\n';
    if (rep.overflow_at > 0) out << "overflow at " << rep.overflow_at << '\n';
    if (rep.fallback) out << "fallback: yes  (the returned trajectory is the sequential one)\n";
    out << "time_setup_s: " << t_setup << '\n';
    out << "time_sequential_reference_s: " << t_seq << '\n';
    out << "time_cell_s: " << rep.t_cell << '\n';
    out << "time_jacobian_s: " << rep.t_jacobian << '\n';
    out << "time_scan_s: " << rep.t_scan << "  (linear solves, update and checks)\n";
    out << "time_fallback_s: " << rep.t_sequential << '\n';
    out << "time_deer_total_s: " << rep.t_total << "  (includes the monitor's error checks)\n";
    std::cout << out.str();
    return rep.converged ? 0 : 2;
}

}  // namespace

void register_deer(CLI::App& app) {
    auto s = std::make_shared<deer_settings>();
    auto* sub = app.add_subcommand(
        "deer",
        "DEER-type parallel evaluation of the tanh RNN of research notes §3.7 (x_t = tanh(A x_{t-1} + u_t), "
        "A_ij = g sin(0.37(i+1)(j+2)+0.5)/sqrt(n), u_ti = sin(0.1t+i)): iterations until max abs error vs the "
        "sequential loop < 1e-10 (f64) / 1e-5 (f32). Exit code 2 when not converged within the cap.");
    sub->add_option("--n", s->n, "State size n (>= 1)")->required()->check(CLI::PositiveNumber);
    sub->add_option("--T", s->T, "Sequence length T (>= 1)")->required()->check(CLI::PositiveNumber);
    sub->add_option("--g", s->g, "Gain g of A (spectral radius grows with g)")->required();
    sub->add_option("--method", s->method, "newton | quasi | jacobi | fixed_a | sech_u")
        ->required()
        ->check(CLI::IsMember({"newton", "quasi", "jacobi", "fixed_a", "sech_u"}));
    sub->add_option("--dtype", s->dtype, "f64 (default) or f32")->check(CLI::IsMember({"f64", "f32"}));
    sub->add_option("--cap", s->cap, "Iteration cap (default T, which always suffices in exact arithmetic)");
    sub->add_flag("--guard", s->guard, "Clip iterates to +-1e8 and map NaN to 0 (DEER's clip_ytnext)");
    sub->callback([s] {
        const int code = s->dtype == "f32" ? run_typed<float>(*s) : run_typed<double>(*s);
        if (code != 0) throw CLI::RuntimeError(code);
    });
}

}  // namespace exprgrad::cli
