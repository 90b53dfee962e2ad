// `exprgrad attention-scale`: the gradient-maximisation analysis of the attention scale (kexue.fm post 9812),
// through tools::analyze_attention_scale (src/tools/scale_analysis); docs/attention.md explains the output.
// Flags → attention_scale_settings → analyze_attention_scale → printed lines.
#include "attention_scale.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exprgrad/ops/attention_scale.hpp>
#include <exprgrad/text/vocab_io.hpp>

#include "cli_options.hpp"
#include "scale_analysis.hpp"
#include <fstream>
#include <iomanip>
#include <iostream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

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

// An SVG chart: the mean-field surrogate as a line, the Monte-Carlo means with ±2 standard errors, the α → ∞
// limit and α* as dashed lines. α on a log axis when every α is positive.
void write_svg(const std::string& path, const scale_analysis& r, const attention_scale_settings& s) {
    const double W = 760, H = 480, left = 70, right = 20, top = 50, bottom = 60;
    const double pw = W - left - right, ph = H - top - bottom;
    // Without Monte-Carlo points (the draws were too costly), the axis spans the surrogate around alpha_star.
    const double around = std::max(r.alpha_star, 1.0);
    double amin = r.curve.empty() ? 0.25 * around : r.curve.front().alpha;
    double amax = r.curve.empty() ? 8.0 * around : r.curve.back().alpha;
    for (const auto& p : r.curve) {
        amin = std::min(amin, p.alpha);
        amax = std::max(amax, p.alpha);
    }
    const bool logx = amin > 0;
    double x0, x1;
    if (logx) {
        x0 = std::log10(amin / 1.25);
        x1 = std::log10(amax * 1.25);
    } else {
        x0 = amin - 0.05 * (amax - amin + 1);
        x1 = amax + 0.05 * (amax - amin + 1);
    }
    double ymax = std::max({r.mean_field_at_star, std::isfinite(r.limit) ? r.limit : 0.0, 1e-9});
    for (const auto& p : r.curve) ymax = std::max(ymax, p.exact_mean + 2 * p.exact_stderr);
    ymax *= 1.12;
    const double ymin = 0;
    auto X = [&](double a) { return left + pw * ((logx ? std::log10(a) : a) - x0) / (x1 - x0); };
    auto Y = [&](double y) { return top + ph * (1 - (y - ymin) / (ymax - ymin)); };

    std::ostringstream o;
    o << std::fixed << std::setprecision(2);
    o << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H << "\" viewBox=\"0 0 " << W
      << ' ' << H << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << "<defs><clipPath id=\"plot\"><rect x=\"" << left << "\" y=\"" << top << "\" width=\"" << pw << "\" height=\""
      << ph << "\"/></clipPath></defs>\n";
    o << "<text x=\"" << W / 2
      << "\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">E[α(1 − Σp²)] against α: n = " << s.n << ", " << s.scores
      << " scores" << (s.scores == "cosine" ? ", d = " + std::to_string(s.d) : std::string()) << ", " << r.samples
      << " draws</text>\n";
    // axes and ticks
    o << "<rect x=\"" << left << "\" y=\"" << top << "\" width=\"" << pw << "\" height=\"" << ph
      << "\" fill=\"none\" stroke=\"black\"/>\n";
    std::vector<double> xt;
    if (logx) {
        for (int e = static_cast<int>(std::floor(x0)); e <= static_cast<int>(std::ceil(x1)); ++e)
            for (double m : {1.0, 2.0, 5.0}) {
                const double v = m * std::pow(10.0, e);
                if (std::log10(v) >= x0 && std::log10(v) <= x1) xt.push_back(v);
            }
    } else {
        const double step = std::pow(10.0, std::floor(std::log10((x1 - x0) / 5)));
        for (double v = std::ceil(x0 / step) * step; v <= x1; v += step) xt.push_back(v);
    }
    for (double v : xt)
        o << "<line x1=\"" << X(v) << "\" x2=\"" << X(v) << "\" y1=\"" << top + ph << "\" y2=\"" << top + ph + 5
          << "\" stroke=\"black\"/><text x=\"" << X(v) << "\" y=\"" << top + ph + 18 << "\" text-anchor=\"middle\">"
          << num(v, 4) << "</text>\n";
    const double raw = (ymax - ymin) / 6, mag = std::pow(10.0, std::floor(std::log10(raw)));
    const double ystep = raw / mag < 2 ? 2 * mag : raw / mag < 5 ? 5 * mag : 10 * mag;
    for (double v = 0; v <= ymax; v += ystep)
        o << "<line x1=\"" << left - 5 << "\" x2=\"" << left + pw << "\" y1=\"" << Y(v) << "\" y2=\"" << Y(v)
          << "\" stroke=\"#ddd\"/><text x=\"" << left - 8 << "\" y=\"" << Y(v) + 4 << "\" text-anchor=\"end\">"
          << num(v, 4) << "</text>\n";
    o << "<text x=\"" << left + pw / 2 << "\" y=\"" << H - 15 << "\" text-anchor=\"middle\">α (multiplier on the "
      << (s.scores == "cosine" ? "cosine" : "unit-variance") << " scores)" << (logx ? ", log scale" : "")
      << "</text>\n";
    // the mean-field surrogate, sampled finely (it falls far below 0: clipped)
    o << "<polyline clip-path=\"url(#plot)\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" points=\"";
    for (int i = 0; i <= 400; ++i) {
        const double t = x0 + (x1 - x0) * i / 400.0, a = logx ? std::pow(10.0, t) : t;
        double f = s.scores == "cosine" ? ops::scale::mean_field_objective_cosine(std::fabs(a), double(s.n), s.d)
                                        : ops::scale::mean_field_objective(a, double(s.n));
        f = std::max(f, ymin - (ymax - ymin));  // keep the coordinates finite; the clip hides the rest
        o << X(a) << ',' << Y(f) << ' ';
    }
    o << "\"/>\n";
    // the α → ∞ limit and α*
    if (std::isfinite(r.limit) && r.limit <= ymax)
        o << "<line x1=\"" << left << "\" x2=\"" << left + pw << "\" y1=\"" << Y(r.limit) << "\" y2=\"" << Y(r.limit)
          << "\" stroke=\"#2ca02c\" stroke-dasharray=\"6 4\"/>\n";
    if (r.alpha_star > 0 || !logx)
        o << "<line x1=\"" << X(r.alpha_star) << "\" x2=\"" << X(r.alpha_star) << "\" y1=\"" << top << "\" y2=\""
          << top + ph << "\" stroke=\"#1f77b4\" stroke-dasharray=\"3 3\"/>\n";
    // Monte-Carlo means with ±2 standard errors
    for (const auto& p : r.curve) {
        o << "<line x1=\"" << X(p.alpha) << "\" x2=\"" << X(p.alpha) << "\" y1=\""
          << Y(p.exact_mean - 2 * p.exact_stderr) << "\" y2=\"" << Y(p.exact_mean + 2 * p.exact_stderr)
          << "\" stroke=\"#d62728\"/>";
        o << "<circle cx=\"" << X(p.alpha) << "\" cy=\"" << Y(p.exact_mean) << "\" r=\"3.5\" fill=\"#d62728\"/>\n";
    }
    // legend
    const double lx = left + pw - 386, ly = top + ph - 64;  // bottom right: below the curves
    o << "<rect x=\"" << lx - 6 << "\" y=\"" << ly - 12 << "\" width=\"386\" height=\"74\" fill=\"white\" "
      << "stroke=\"#999\"/>\n"
      << "<line x1=\"" << lx << "\" x2=\"" << lx + 24 << "\" y1=\"" << ly - 4 << "\" y2=\"" << ly - 4
      << "\" stroke=\"#1f77b4\" stroke-width=\"2\"/><text x=\"" << lx + 30 << "\" y=\"" << ly
      << "\">mean-field surrogate; dotted: α* = " << num(r.alpha_star, 5) << "</text>\n"
      << "<circle cx=\"" << lx + 12 << "\" cy=\"" << ly + 14 << "\" r=\"3.5\" fill=\"#d62728\"/><text x=\"" << lx + 30
      << "\" y=\"" << ly + 18 << "\">exact E[α(1 − Σp²)], Monte Carlo ± 2 s.e.</text>\n"
      << "<line x1=\"" << lx << "\" x2=\"" << lx + 24 << "\" y1=\"" << ly + 32 << "\" y2=\"" << ly + 32
      << "\" stroke=\"#2ca02c\" stroke-dasharray=\"6 4\"/><text x=\"" << lx + 30 << "\" y=\"" << ly + 36
      << "\">limit α → ∞: density at 0 of the top-two gap = " << num(r.limit, 5) << "</text>\n";
    o << "</svg>\n";
    write_output("--plot", path, o.str());
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
