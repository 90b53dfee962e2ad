// `exprgrad attention-scale`: the gradient-maximisation analysis of the attention scale (kexue.fm post 9812),
// through exprgrad::analyze_attention_scale. Research notes: ../shared/research/articles_part1.md §1;
// docs/attention.md explains the output.
#include "attention_scale.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exprgrad/ops/attention_scale.hpp>
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

struct settings {
    std::size_t n = 0;
    std::size_t d = 64;
    std::string scores = "normal";
    std::size_t samples = 1000;
    std::uint64_t seed = 9812;
    std::vector<double> alphas;
    std::string csv, plot;
    // The numbers as typed, parsed by run() so that a bad one gets a message naming the option and the value.
    std::string n_text, d_text = "64", samples_text = "1000", seed_text = "9812";
    std::vector<std::string> alpha_texts;
};

[[noreturn]] void bad_value(const std::string& option, const std::string& text, const std::string& want) {
    throw std::invalid_argument("attention-scale: " + option + " must be " + want + ", got '" + text + "'");
}

// An integer in [lo, hi], written in decimal digits, or in exponent form when it is a whole number (1e3).
std::uint64_t parse_count(const std::string& option, const std::string& text, std::uint64_t lo, std::uint64_t hi) {
    const std::string want = "an integer from " + std::to_string(lo) + " to " + std::to_string(hi);
    if (text.empty()) bad_value(option, text, want);
    if (text.find_first_not_of("0123456789") == std::string::npos) {
        if (text.size() > 19) bad_value(option, text, want);
        const std::uint64_t v = std::stoull(text);
        if (v < lo || v > hi) bad_value(option, text, want);
        return v;
    }
    std::size_t used = 0;
    double x = 0;
    try {
        x = std::stod(text, &used);
    } catch (const std::exception&) {
        bad_value(option, text, want);
    }
    if (used != text.size() || !(x >= static_cast<double>(lo) && x <= static_cast<double>(hi)) || x != std::floor(x))
        bad_value(option, text, want);
    return static_cast<std::uint64_t>(x);
}

double parse_alpha(const std::string& text) {
    std::size_t used = 0;
    double x = 0;
    try {
        x = std::stod(text, &used);
    } catch (const std::exception&) {
        bad_value("--alphas", text, "finite numbers ≥ 0");
    }
    if (used != text.size() || !std::isfinite(x) || x < 0.0) bad_value("--alphas", text, "finite numbers ≥ 0");
    return x;
}

std::string num(double x, int precision = 6) {
    std::ostringstream s;
    s << std::setprecision(precision) << x;
    return s.str();
}

void write_csv(const std::string& path, const scale_analysis& r) {
    std::ofstream f(path);
    f << "alpha,mean_field,exact_mean,exact_stderr\n" << std::setprecision(17);
    for (const auto& p : r.curve)
        f << p.alpha << ',' << p.mean_field << ',' << p.exact_mean << ',' << p.exact_stderr << '\n';
    f.flush();
    if (!f) throw std::runtime_error("attention-scale: cannot write the CSV file '" + path + "'");
}

// An SVG chart: the mean-field surrogate as a line, the Monte-Carlo means with ±2 standard errors, the α → ∞
// limit and α* as dashed lines. α on a log axis when every α is positive.
void write_svg(const std::string& path, const scale_analysis& r, const settings& s) {
    const double W = 760, H = 480, left = 70, right = 20, top = 50, bottom = 60;
    const double pw = W - left - right, ph = H - top - bottom;
    double amin = r.curve.front().alpha, amax = r.curve.back().alpha;
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
      << " scores" << (s.scores == "cosine" ? ", d = " + std::to_string(s.d) : std::string()) << ", " << s.samples
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
        double f = s.scores == "cosine" ? scale::mean_field_objective_cosine(std::fabs(a), double(s.n), s.d)
                                        : scale::mean_field_objective(a, double(s.n));
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
    std::ofstream f(path);
    f << o.str();
    f.flush();
    if (!f) throw std::runtime_error("attention-scale: cannot write the plot file '" + path + "'");
}

void run(settings& s) {
    s.n = parse_count("--n", s.n_text, 2, std::uint64_t{1} << 32);
    s.d = parse_count("--d", s.d_text, 1, std::uint64_t{1} << 20);
    s.samples = parse_count("--samples", s.samples_text, 2, 100000000);
    s.seed = parse_count("--seed", s.seed_text, 0, UINT64_MAX);
    s.alphas.clear();
    for (const auto& a : s.alpha_texts) s.alphas.push_back(parse_alpha(a));
    if (s.scores == "cosine" && s.d < 2)
        bad_value("--d", s.d_text, "at least 2 with --scores cosine (for d = 1 every cosine is ±1 and the objective "
                                   "has no finite maximiser)");
    if (!s.plot.empty()) {
        const auto dot = s.plot.rfind('.');
        const std::string ext = dot == std::string::npos ? "" : s.plot.substr(dot);
        if (ext != ".svg")
            throw std::invalid_argument("attention-scale: --plot writes SVG only; give a path ending in .svg, got '" +
                                        s.plot + "'");
    }
    scale_analysis_options o;
    o.n = s.n;
    o.d = s.d;
    o.scores = s.scores == "cosine" ? score_model::cosine : score_model::normal;
    o.samples = s.samples;
    o.seed = s.seed;
    o.alphas = s.alphas;
    const scale_analysis r = analyze_attention_scale(o);
    const bool cosine = o.scores == score_model::cosine;
    const double sqrt_d = std::sqrt(static_cast<double>(s.d));
    // α on the scores for a multiplier s on q·k: normal scores are q·k/√d, cosine scores are q̂·k̂.
    auto alpha_of = [&](double m) { return cosine ? m : m * sqrt_d; };

    std::cout << std::setprecision(6);
    std::cout << "n: " << s.n << "\nd: " << s.d << "\nscores: " << s.scores << "\nsamples: " << s.samples
              << "\nseed: " << s.seed << '\n';
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
    std::cout << "# E[alpha(1 - sum p^2)] by Monte Carlo, each draw's value from the engine's softmax VJP\n";
    std::cout << std::left << std::setw(14) << "alpha" << std::setw(16) << "mean_field" << std::setw(14) << "exact_mean"
              << "exact_stderr\n";
    for (const auto& p : r.curve)
        std::cout << std::setw(14) << num(p.alpha) << std::setw(16) << num(p.mean_field) << std::setw(14)
                  << num(p.exact_mean) << num(p.exact_stderr, 3) << '\n';
    std::cout << std::right;
    const auto& last = r.curve.back();
    std::cout << "exact_mean_at_largest_alpha: " << num(last.exact_mean) << " +- " << num(last.exact_stderr, 3)
              << " at alpha " << num(last.alpha) << "  (limit " << num(r.limit) << "; at large alpha the draws are"
              << " heavy-tailed, so small samples tend to fall short of the limit)\n";
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
    if (!std::cout) throw std::runtime_error("attention-scale: cannot write to stdout");
}

}  // namespace

void register_attention_scale(CLI::App& app) {
    auto s = std::make_shared<settings>();
    CLI::App* sub = app.add_subcommand(
        "attention-scale",
        "Gradient-maximising attention scale (kexue.fm 9812): alpha_star, policies, exact Monte Carlo");
    sub->add_option("--n", s->n_text, "Number of keys n (2 to 2^32)")->required();
    sub->add_option("--d", s->d_text,
                    "Head dimension d (1 to 2^20; for cosine scores the dimension of the directions, >= 2)")
        ->capture_default_str();
    sub->add_option("--scores", s->scores, "Score model: normal (q·k/√d at initialisation) or cosine (normalize_qk)")
        ->capture_default_str()
        ->check(CLI::IsMember({"normal", "cosine"}));
    sub->add_option("--samples", s->samples_text, "Monte-Carlo draws per alpha (2 to 10^8)")->capture_default_str();
    sub->add_option("--seed", s->seed_text, "Seed of the draws (results depend only on it, not on threads)")
        ->capture_default_str();
    sub->add_option("--alphas", s->alpha_texts,
                    "Grid of alpha >= 0 (default: a grid around alpha_star and up to 40)");
    sub->add_option("--csv", s->csv, "Write the curves as CSV to this path");
    sub->add_option("--plot", s->plot, "Write the curves as an SVG plot to this path (ending in .svg)");
    sub->footer(
        "Prints `key: value` lines (alpha_star, the policies' multipliers, limit_alpha_to_infinity), then a table of\n"
        "alpha, the mean-field surrogate, and the exact E[alpha(1 - sum p^2)] by Monte Carlo with its standard error.\n"
        "Cost: samples x |grid| x n^2 operations. Example: exprgrad attention-scale --n 512 --d 64 --scores normal");
    sub->callback([s] { run(*s); });
}

}  // namespace exprgrad::cli
