// `exprgrad attention-scale`: the gradient-maximisation analysis of the attention scale (kexue.fm post 9812),
// through tools::analyze_attention_scale (src/tools/scale_analysis); docs/attention.md explains the output.
// Flags → attention_scale_settings → analyze_attention_scale → printed lines.
#include "attention_scale.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exprgrad/ops/attention_scale.hpp>
#include <exprgrad/text/vocab_io.hpp>

#include <fstream>
#include <iomanip>
#include <iostream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>
#include "cli_options.hpp"
#include "scale_analysis.hpp"
#include "svg_chart.hpp"

namespace exprgrad::cli {

namespace {

using tools::analyze_attention_scale;
using tools::scale_analysis;
using tools::scale_analysis_options;
using tools::score_model;

// Work limits, in score evaluations (one score of one draw at one α, or one normal drawn): a default run stops
// drawing at default_work (well under a second on one core); an explicit --samples may ask for up to max_work.
// Beyond max_mc_n keys a draw's vectors (n doubles per thread) are not worth the memory: no Monte Carlo.
constexpr double default_work = 3e7, max_work = 2e9;
constexpr std::uint64_t max_mc_n = std::uint64_t{1} << 22;
constexpr double max_alpha = 1e4;

struct attention_scale_settings {
    std::uint64_t n = 0;
    std::uint64_t d = 64;
    std::string scores = "normal";
    std::uint64_t samples = 0;  // 0: not given, as many as default_work allows
    double stderr_target = 0.01;
    std::uint64_t seed = 9812;
    std::vector<double> alphas;
    std::string csv, plot;
};

// The default grid's size (analyze_attention_scale's), for the cost estimate.
std::size_t grid_size(const attention_scale_settings& s) {
    if (!s.alphas.empty()) return s.alphas.size();
    return s.scores == "cosine" ? 12 : 18;
}

// Score evaluations of one draw: n scores (n·d normals for cosine) and n per α of the grid.
double cost_per_draw(const attention_scale_settings& s) {
    const double gen = s.scores == "cosine" ? static_cast<double>(s.d) : 1.0;
    return static_cast<double>(s.n) * (static_cast<double>(grid_size(s)) + gen);
}

std::string num(double x, int precision = 6) {
    std::ostringstream s;
    s << std::setprecision(precision) << x;
    return s.str();
}

// Outputs go through the project's atomic writer: a FIFO or a directory is refused with the reason (an
// ofstream would block on a FIFO with no reader, and says only "cannot write" for a directory).
void write_output(const char* option, const std::string& path, const std::string& content) {
    try {
        text::write_file_atomically(path, content);
    } catch (const std::exception& e) {
        throw std::runtime_error(std::string(option) + ": " + e.what());
    }
}

void write_csv(const std::string& path, const scale_analysis& r) {
    std::ostringstream f;
    f << "alpha,mean_field,exact_mean,exact_stderr\n" << std::setprecision(17);
    for (const auto& p : r.curve)
        f << p.alpha << ',' << p.mean_field << ',' << p.exact_mean << ',' << p.exact_stderr << '\n';
    write_output("--csv", path, f.str());
}

// An SVG chart (tools::to_svg): the mean-field surrogate as a line, the Monte-Carlo means with ±2 standard
// errors, the α → ∞ limit and α* as dashed lines. α on a log axis when every α is positive.
void write_svg(const std::string& path, const scale_analysis& r, const attention_scale_settings& s) {
    // Without Monte-Carlo points (the draws were too costly), the axis spans the surrogate around alpha_star.
    const double around = std::max(r.alpha_star, 1.0);
    double amin = r.curve.empty() ? 0.25 * around : r.curve.front().alpha;
    double amax = r.curve.empty() ? 8.0 * around : r.curve.back().alpha;
    for (const auto& p : r.curve) {
        amin = std::min(amin, p.alpha);
        amax = std::max(amax, p.alpha);
    }
    tools::svg_chart c;
    c.width = 760;
    c.height = 480;
    c.left = 70;
    c.top = 50;
    c.bottom = 60;
    c.log_x = amin > 0;
    if (c.log_x)
        c.x_range = {amin / 1.25, amax * 1.25};
    else
        c.x_range = {amin - 0.05 * (amax - amin + 1), amax + 0.05 * (amax - amin + 1)};
    double ymax = std::max({r.mean_field_at_star, std::isfinite(r.limit) ? r.limit : 0.0, 1e-9});
    for (const auto& p : r.curve) ymax = std::max(ymax, p.exact_mean + 2 * p.exact_stderr);
    c.y_range = {0, ymax * 1.12};
    c.title = "E[α(1 − Σp²)] against α: n = " + std::to_string(s.n) + ", " + s.scores + " scores" +
              (s.scores == "cosine" ? ", d = " + std::to_string(s.d) : std::string()) + ", " +
              std::to_string(r.samples) + " draws";
    c.x_label = std::string("α (multiplier on the ") + (s.scores == "cosine" ? "cosine" : "unit-variance") +
                " scores)" + (c.log_x ? ", log scale" : "");
    c.legend = tools::svg_chart::corner::bottom_right;  // below the curves
    // the mean-field surrogate, sampled finely (it falls far below 0: clipped to the plot area)
    tools::chart_series mf{.label = "mean-field surrogate; dotted: α* = " + num(r.alpha_star, 5)};
    const double x0 = c.log_x ? std::log10(c.x_range.lo) : c.x_range.lo;
    const double x1 = c.log_x ? std::log10(c.x_range.hi) : c.x_range.hi;
    for (int i = 0; i <= 400; ++i) {
        const double t = x0 + (x1 - x0) * i / 400.0, a = c.log_x ? std::pow(10.0, t) : t;
        double f = s.scores == "cosine" ? ops::scale::mean_field_objective_cosine(std::fabs(a), double(s.n), s.d)
                                        : ops::scale::mean_field_objective(a, double(s.n));
        if (std::isnan(f)) continue;                         // no value to draw (the chart refuses NaN)
        f = std::clamp(f, -c.y_range.hi, 2 * c.y_range.hi);  // finite coordinates; the clip hides the rest
        mf.x.push_back(a);
        mf.y.push_back(f);
    }
    if (!mf.x.empty()) c.series.push_back(std::move(mf));
    if (!r.curve.empty()) {
        tools::chart_series mc{.label = "exact E[α(1 − Σp²)], Monte Carlo ± 2 s.e.",
                               .color = "#d62728",
                               .draw = tools::chart_series::style::points,
                               .stroke = 3.5};
        for (const auto& p : r.curve) {
            mc.x.push_back(p.alpha);
            mc.y.push_back(p.exact_mean);
            mc.err.push_back(2 * p.exact_stderr);
        }
        c.series.push_back(std::move(mc));
    }
    if (std::isfinite(r.limit))
        c.rules.push_back({.at = r.limit,
                           .color = "#2ca02c",
                           .label = "limit α → ∞: density at 0 of the top-two gap = " + num(r.limit, 5)});
    if (r.alpha_star > 0 || !c.log_x)
        c.rules.push_back({.vertical = true, .at = r.alpha_star, .color = "#1f77b4", .dash = "3 3"});
    write_output("--plot", path, tools::to_svg(c));
}

// The checks that involve several options (each option's own range is checked when it is parsed).
void check(const attention_scale_settings& s) {
    if (s.scores == "cosine" && s.d < 2)
        throw tools::usage_error("--d: " + std::to_string(s.d) + " with --scores cosine; want at least 2 (for d = 1 "
                                 "every cosine is ±1 and the objective has no finite maximiser)");
    if (!s.plot.empty()) {
        const auto dot = s.plot.rfind('.');
        const std::string ext = dot == std::string::npos ? "" : s.plot.substr(dot);
        if (ext != ".svg")
            throw tools::usage_error("--plot: " + tools::shown(s.plot) + " does not end in .svg (SVG only)");
    }
    if (s.samples != 0) {
        const double work = static_cast<double>(s.samples) * cost_per_draw(s);
        if (s.n > max_mc_n)
            throw tools::usage_error("--samples " + std::to_string(s.samples) + " with --n " + std::to_string(s.n) +
                                     ": the Monte Carlo needs n <= " + std::to_string(max_mc_n) +
                                     " (alpha_star alone: omit --samples)");
        if (work > max_work)
            throw tools::usage_error("--samples " + std::to_string(s.samples) + " with --n " + std::to_string(s.n) +
                                     ": " + tools::readable(work) + " score evaluations exceed the limit " +
                                     tools::readable(max_work) + " (lower --samples, or omit it and set --stderr)");
    }
}

void run(const attention_scale_settings& s) {
    check(s);
    scale_analysis_options o;
    o.n = s.n;
    o.d = s.d;
    o.scores = s.scores == "cosine" ? score_model::cosine : score_model::normal;
    o.seed = s.seed;
    o.alphas = s.alphas;
    o.target_stderr = s.stderr_target;
    if (s.samples != 0) {
        o.samples = s.samples;
    } else {
        // As many draws as the default work allows (none when two draws would exceed it).
        const double affordable = s.n > max_mc_n ? 0.0 : std::floor(default_work / cost_per_draw(s));
        o.samples = affordable < 2 ? 0 : static_cast<std::size_t>(std::min(affordable, 1e9));
        if (o.target_stderr == 0.0 && o.samples > 0) o.samples = std::min<std::size_t>(o.samples, 1000);
    }
    const scale_analysis r = analyze_attention_scale(o);
    const bool cosine = o.scores == score_model::cosine;
    const double sqrt_d = std::sqrt(static_cast<double>(s.d));
    // α on the scores for a multiplier s on q·k: normal scores are q·k/√d, cosine scores are q̂·k̂.
    auto alpha_of = [&](double m) { return cosine ? m : m * sqrt_d; };

    std::cout << std::setprecision(6);
    std::cout << "n: " << s.n << "\nd: " << s.d << "\nscores: " << s.scores << "\nsamples: " << r.samples
              << "\nseed: " << s.seed << '\n';
    bool reached = !r.curve.empty();
    for (const auto& p : r.curve) reached = reached && p.exact_stderr <= s.stderr_target;
    std::cout << "stderr_target: " << num(s.stderr_target)
              << (s.stderr_target == 0 ? "  (0: a fixed number of draws)"
                  : reached            ? "  (reached at every alpha)"
                                       : "  (not reached at every alpha within the draws allowed)")
              << '\n';
    std::cout << "alpha_star: " << num(r.alpha_star, 8) << '\n';
    std::cout << "mean_field_at_alpha_star: " << num(r.mean_field_at_star, 8) << '\n';
    std::cout << "# multipliers s on q·k of the policies, and the alpha they put on the "
              << (cosine ? "cosine" : "unit-variance") << " scores\n";
    std::cout << "inv_sqrt_d: " << num(r.inv_sqrt_d) << "  (alpha " << num(alpha_of(r.inv_sqrt_d)) << ")\n";
    std::cout << "entropy_invariant(512): " << num(r.entropy_invariant) << "  (alpha "
              << num(alpha_of(r.entropy_invariant)) << ")\n";
    std::cout << "gradient_max: " << num(r.gradient_max) << "  (alpha " << num(alpha_of(r.gradient_max)) << ")\n";
    std::cout << "limit_alpha_to_infinity: " << num(r.limit, 8) << "  (n(n-1)∫"
              << (cosine ? "ρ²F^{n-2}, ρ and F the density and CDF of a cosine score" : "φ²Φ^{n-2}")
              << ": the density at 0 of the gap between the two largest scores)\n";
    if (r.curve.empty()) {
        std::cout << "# Monte Carlo skipped: one draw costs n*(|grid| + " << (cosine ? "d" : "1")
                  << ") = " << tools::readable(cost_per_draw(s))
                  << " score evaluations; a default run stops at " << tools::readable(default_work)
                  << (s.n > max_mc_n ? " and draws need n <= " + std::to_string(max_mc_n) : std::string()) << "\n";
    } else {
        std::cout << "# E[alpha(1 - sum p^2)] by Monte Carlo, each draw's value from the engine's softmax\n";
        std::cout << std::left << std::setw(14) << "alpha" << std::setw(16) << "mean_field" << std::setw(14)
                  << "exact_mean" << "exact_stderr\n";
        for (const auto& p : r.curve)
            std::cout << std::setw(14) << num(p.alpha) << std::setw(16) << num(p.mean_field) << std::setw(14)
                      << num(p.exact_mean) << num(p.exact_stderr, 3) << '\n';
        std::cout << std::right;
        const auto& last = r.curve.back();
        std::cout << "exact_mean_at_largest_alpha: " << num(last.exact_mean) << " +- " << num(last.exact_stderr, 3)
                  << " at alpha " << num(last.alpha) << "  (limit " << num(r.limit)
                  << "; at large alpha the draws are heavy-tailed, so small samples tend to fall short of the limit)\n";
    }
    if (!cosine) {
        std::cout
            << "# What the research notes establish (§1.5 check 4, §1.6): alpha_star maximises only the mean-field\n"
               "# surrogate alpha(1 - e^{alpha^2}/n), which replaces sum p^2 by e^{alpha^2}/n and holds only while\n"
               "# e^{alpha^2} << n. For normal scores the exact expectation E[alpha(1 - sum p^2)] has NO finite\n"
               "# maximiser: it keeps rising with alpha towards limit_alpha_to_infinity (each draw decays like\n"
               "# alpha*e^{-alpha*gap}, but the gap between the two largest scores is random with a positive density\n"
               "# at 0). alpha_star ~ 2-3 is a heuristic of the approximation, not the exact maximiser.\n";
    } else {
        std::cout
            << "# What the research notes establish (§1.3 case B, §1.5 check 3): alpha_star maximises the mean-field\n"
               "# surrogate alpha(1 - g(2 alpha)/(n g(alpha)^2)) for cosine scores; they give no exact analysis for\n"
               "# this case. The limit printed above follows from the argument of §1.5 check 4 (bounded i.i.d.\n"
               "# scores with a continuous density), which the notes state for normal scores only; compare the\n"
               "# Monte-Carlo column with it before reading alpha_star as an optimum.\n";
    }
    if (!s.csv.empty()) {
        write_csv(s.csv, r);
        std::cout << "csv: " << s.csv << '\n';
    }
    if (!s.plot.empty()) {
        write_svg(s.plot, r, s);
        std::cout << "plot: " << s.plot << '\n';
    }
    std::cout.flush();
    if (!std::cout) throw std::runtime_error("cannot write to stdout");
}

}  // namespace

void register_attention_scale(CLI::App& app) {
    auto s = std::make_shared<attention_scale_settings>();
    CLI::App* sub = app.add_subcommand(
        "attention-scale",
        "Gradient-maximising attention scale (kexue.fm 9812): alpha_star, policies, exact Monte Carlo");
    tools::add_number(*sub, "--n", s->n, "Number of keys n (2 to 2^32)", std::uint64_t{2}, std::uint64_t{1} << 32)
        ->required()->default_str("");  // no default to show
    tools::add_number(*sub, "--d", s->d,
                      "Head dimension d (1 to 2^20; for cosine scores the dimension of the directions, >= 2)",
                      std::uint64_t{1}, std::uint64_t{1} << 20);
    sub->add_option("--scores", s->scores, "Score model: normal (q·k/√d at initialisation) or cosine (normalize_qk)")
        ->capture_default_str()
        ->check(CLI::IsMember({"normal", "cosine"}));
    tools::add_number(*sub, "--stderr", s->stderr_target,
                      "Standard error wanted at every alpha: draws stop once it is reached (0: exactly --samples)",
                      0.0, 1e6);
    tools::add_number(*sub, "--samples", s->samples,
                      "Most Monte-Carlo draws per alpha (2 to 10^9; default: what 3e7 score evaluations allow)",
                      std::uint64_t{2}, std::uint64_t{1'000'000'000})
        ->default_str("work limit");
    tools::add_number(*sub, "--seed", s->seed, "Seed of the draws (results depend only on it, not on threads)",
                      std::uint64_t{0}, ~std::uint64_t{0});
    tools::add_numbers(*sub, "--alphas", s->alphas,
                       "Grid of alpha in [0, 1e4] (default: a grid around alpha_star and up to 40)", 0.0, max_alpha);
    sub->add_option("--csv", s->csv, "Write the curves as CSV to this path")->check(tools::non_empty_path());
    sub->add_option("--plot", s->plot, "Write the curves as an SVG plot to this path (ending in .svg)")
        ->check(tools::non_empty_path());
    sub->footer(
        "Prints `key: value` lines (alpha_star, the policies' multipliers, limit_alpha_to_infinity), then a table of\n"
        "alpha, the mean-field surrogate, and the exact E[alpha(1 - sum p^2)] by Monte Carlo with its standard error.\n"
        "Cost: one draw is n*(|grid| + 1) score evaluations (cosine: n*(|grid| + d)); draws stop at --stderr or at\n"
        "3e7 evaluations (under a second; no Monte Carlo when two draws cost more). An explicit --samples may spend\n"
        "up to 2e9 (n <= 2^22). alpha_star and the limit cost about 1e5 evaluations for any n.\n"
        "Example: exprgrad attention-scale --n 512 --d 64 --scores normal");
    sub->callback([s] { run(*s); });
}

}  // namespace exprgrad::cli
