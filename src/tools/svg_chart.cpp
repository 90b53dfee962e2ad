// The SVG chart writer (contract and geometry in svg_chart.hpp).
#include "svg_chart.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include <exprgrad/format.hpp>

namespace exprgrad::tools {
namespace {

[[noreturn]] void refuse(const std::string& what) { throw std::invalid_argument("svg_chart: " + what); }

// Coordinates: two decimals are a hundredth of a pixel, finer than any screen, and keep files small.
std::string coord(double v) {
    char b[48];
    std::snprintf(b, sizeof b, "%.2f", v);
    return b;
}

// Tick labels: four significant digits, so 3 × 0.1 prints as 0.3 (not a message: a label on an axis).
std::string tick_label(double v) {
    char b[48];
    std::snprintf(b, sizeof b, "%.4g", v == 0 ? 0.0 : v);  // no "-0"
    return b;
}

std::string escaped(const std::string& s) {
    std::string out;
    for (const char c : s) {
        switch (c) {
            case '&':
                out += "&amp;";
                break;
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '"':
                out += "&quot;";
                break;
            case '\'':
                out += "&apos;";
                break;
            default:
                out += c;
        }
    }
    return out;
}

// Characters, not bytes, of a UTF-8 label (for the legend's width): continuation bytes do not count.
std::size_t characters(const std::string& s) {
    return static_cast<std::size_t>(
        std::count_if(s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

void check_range(const char* axis, const chart_range& r) {
    if (!(std::isfinite(r.lo) && std::isfinite(r.hi) && r.lo < r.hi))
        refuse(std::string(axis) + " range [" + format_number(r.lo) + ", " + format_number(r.hi) +
               "] must be finite with lo < hi");
}

void check(const svg_chart& c) {
    check_range("x", c.x_range);
    check_range("y", c.y_range);
    if (c.log_x && !(c.x_range.lo > 0)) refuse("a log x axis needs x_range.lo > 0, got " + format_number(c.x_range.lo));
    if (!(c.width - c.left - c.right > 0 && c.height - c.top - c.bottom > 0) || !std::isfinite(c.width) ||
        !std::isfinite(c.height))
        refuse("the plot area is empty: width " + format_number(c.width) + ", height " + format_number(c.height) +
               " with margins " + format_number(c.left) + ", " + format_number(c.right) + ", " + format_number(c.top) +
               ", " + format_number(c.bottom));
    for (const auto& s : c.series) {
        const std::string name = "series '" + s.label + "'";
        if (s.x.empty()) refuse(name + " has no points");
        if (s.x.size() != s.y.size())
            refuse(name + " has " + format_number(s.x.size()) + " x and " + format_number(s.y.size()) + " y values");
        if (!s.err.empty() && (s.err.size() != s.x.size() || s.draw != chart_series::style::points))
            refuse(name + ": error bars need a points series with one err per point, got " +
                   format_number(s.err.size()) + " for " + format_number(s.x.size()) + " points");
        if (!(s.stroke > 0) || !std::isfinite(s.stroke)) refuse(name + " has stroke " + format_number(s.stroke));
        for (std::size_t i = 0; i < s.x.size(); ++i) {
            const std::string at = " at point " + format_number(i) + ": ";
            if (!std::isfinite(s.x[i])) refuse(name + " has a non-finite x" + at + format_number(s.x[i]));
            if (!std::isfinite(s.y[i])) refuse(name + " has a non-finite y" + at + format_number(s.y[i]));
            if (c.log_x && !(s.x[i] > 0))
                refuse(name + " has x = " + format_number(s.x[i]) + " at point " + format_number(i) + " on a log axis");
            if (!s.err.empty() && !(std::isfinite(s.err[i]) && s.err[i] >= 0))
                refuse(name + " has error bar " + format_number(s.err[i]) + " at point " + format_number(i));
        }
    }
    for (const auto& r : c.rules)
        if (std::isnan(r.at)) refuse("rule '" + r.label + "' is at nan");
}

// Ticks at 1, 2 or 5 × 10^k: the smallest such step giving at most six intervals.
std::vector<double> linear_ticks(const chart_range& r) {
    const double raw = (r.hi - r.lo) / 6, mag = std::pow(10.0, std::floor(std::log10(raw)));
    const double f = raw / mag, step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
    std::vector<double> t;
    // the small slack keeps a tick that lands on a bound despite rounding (0.1 · 3 vs 0.3)
    for (double i = std::ceil(r.lo / step - 1e-9); i * step <= r.hi + 1e-9 * step; ++i) t.push_back(i * step);
    return t;
}

// 1, 2, 5 per decade; 1 per decade only when the range spans more than six decades.
std::vector<double> log_ticks(const chart_range& r) {
    const double a = std::log10(r.lo), b = std::log10(r.hi);
    std::vector<double> t;
    const std::vector<double> mantissas = b - a > 6 ? std::vector<double>{1} : std::vector<double>{1, 2, 5};
    for (int e = static_cast<int>(std::floor(a)); e <= static_cast<int>(std::ceil(b)); ++e)
        for (const double m : mantissas) {
            const double v = m * std::pow(10.0, e);
            if (v >= r.lo * (1 - 1e-12) && v <= r.hi * (1 + 1e-12)) t.push_back(v);
        }
    return t;
}

}  // namespace

std::string to_svg(const svg_chart& c) {
    check(c);
    const double pw = c.width - c.left - c.right, ph = c.height - c.top - c.bottom;
    auto t = [&](double x) { return c.log_x ? std::log10(x) : x; };
    const double x0 = t(c.x_range.lo), x1 = t(c.x_range.hi);
    auto X = [&](double x) { return c.left + pw * (t(x) - x0) / (x1 - x0); };
    auto Y = [&](double y) { return c.top + ph * (1 - (y - c.y_range.lo) / (c.y_range.hi - c.y_range.lo)); };
    const std::string bottom_y = coord(c.top + ph);

    // No XML declaration: UTF-8 is XML's default, and readers (tiny_lm's test) expect "<svg" first.
    std::string o = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + coord(c.width) + "\" height=\"" +
                    coord(c.height) + "\" viewBox=\"0 0 " + coord(c.width) + ' ' + coord(c.height) +
                    "\" font-family=\"sans-serif\" font-size=\"12\">\n";
    o += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
    o += "<defs><clipPath id=\"plot-area\"><rect x=\"" + coord(c.left) + "\" y=\"" + coord(c.top) + "\" width=\"" +
         coord(pw) + "\" height=\"" + coord(ph) + "\"/></clipPath></defs>\n";
    if (!c.title.empty())
        o += "<text x=\"" + coord(c.width / 2) + "\" y=\"" + coord(c.top / 2 + 5) +
             "\" text-anchor=\"middle\" font-size=\"15\">" + escaped(c.title) + "</text>\n";
    // grid lines and tick labels
    for (const double v : linear_ticks(c.y_range))
        o += "<line x1=\"" + coord(c.left - 5) + "\" x2=\"" + coord(c.left + pw) + "\" y1=\"" + coord(Y(v)) +
             "\" y2=\"" + coord(Y(v)) + "\" stroke=\"#ddd\"/><text x=\"" + coord(c.left - 8) + "\" y=\"" +
             coord(Y(v) + 4) + "\" text-anchor=\"end\">" + tick_label(v) + "</text>\n";
    for (const double v : c.log_x ? log_ticks(c.x_range) : linear_ticks(c.x_range))
        o += "<line x1=\"" + coord(X(v)) + "\" x2=\"" + coord(X(v)) + "\" y1=\"" + bottom_y + "\" y2=\"" +
             coord(c.top + ph + 5) + "\" stroke=\"black\"/><text x=\"" + coord(X(v)) + "\" y=\"" +
             coord(c.top + ph + 18) + "\" text-anchor=\"middle\">" + tick_label(v) + "</text>\n";
    o += "<rect x=\"" + coord(c.left) + "\" y=\"" + coord(c.top) + "\" width=\"" + coord(pw) + "\" height=\"" +
         coord(ph) + "\" fill=\"none\" stroke=\"black\"/>\n";
    if (!c.x_label.empty())
        o += "<text x=\"" + coord(c.left + pw / 2) + "\" y=\"" + coord(c.height - 12) + "\" text-anchor=\"middle\">" +
             escaped(c.x_label) + "</text>\n";
    if (!c.y_label.empty()) {
        const std::string cy = coord(c.top + ph / 2);
        o += "<text x=\"16\" y=\"" + cy + "\" transform=\"rotate(-90 16 " + cy + ")\" text-anchor=\"middle\">" +
             escaped(c.y_label) + "</text>\n";
    }
    // reference lines, then the series, all clipped to the plot area
    for (const auto& r : c.rules) {
        const chart_range& range = r.vertical ? c.x_range : c.y_range;
        if (!(r.at >= range.lo && r.at <= range.hi)) continue;
        const std::string a = coord(r.vertical ? X(r.at) : Y(r.at));
        o += r.vertical
                 ? "<line x1=\"" + a + "\" x2=\"" + a + "\" y1=\"" + coord(c.top) + "\" y2=\"" + bottom_y
                 : "<line x1=\"" + coord(c.left) + "\" x2=\"" + coord(c.left + pw) + "\" y1=\"" + a + "\" y2=\"" + a;
        o += "\" stroke=\"" + escaped(r.color) + "\" stroke-dasharray=\"" + escaped(r.dash) + "\"/>\n";
    }
    for (const auto& s : c.series) {
        const std::string color = escaped(s.color);
        if (s.draw == chart_series::style::line) {
            o += "<polyline clip-path=\"url(#plot-area)\" fill=\"none\" stroke=\"" + color + "\" stroke-width=\"" +
                 coord(s.stroke) + "\" points=\"";
            for (std::size_t i = 0; i < s.x.size(); ++i)
                o += (i ? " " : "") + coord(X(s.x[i])) + ',' + coord(Y(s.y[i]));
            o += "\"/>\n";
            continue;
        }
        o += "<g clip-path=\"url(#plot-area)\" fill=\"" + color + "\" stroke=\"" + color + "\">\n";
        for (std::size_t i = 0; i < s.x.size(); ++i) {
            const std::string cx = coord(X(s.x[i]));
            if (!s.err.empty())
                o += "<line x1=\"" + cx + "\" x2=\"" + cx + "\" y1=\"" + coord(Y(s.y[i] - s.err[i])) + "\" y2=\"" +
                     coord(Y(s.y[i] + s.err[i])) + "\"/>";
            o += "<circle cx=\"" + cx + "\" cy=\"" + coord(Y(s.y[i])) + "\" r=\"" + coord(s.stroke) + "\"/>\n";
        }
        o += "</g>\n";
    }
    // the legend: one line per labelled series or rule, in a box at the chosen corner of the plot area
    struct entry {
        std::string label, color, dash;
        bool point;
    };
    std::vector<entry> entries;
    std::size_t widest = 0;
    for (const auto& s : c.series)
        if (!s.label.empty()) entries.push_back({s.label, s.color, "", s.draw == chart_series::style::points});
    for (const auto& r : c.rules)
        if (!r.label.empty()) entries.push_back({r.label, r.color, r.dash, false});
    for (const auto& e : entries) widest = std::max(widest, characters(e.label));
    if (!entries.empty()) {
        const double bw = 44 + 6.8 * static_cast<double>(widest), bh = 8 + 18 * static_cast<double>(entries.size());
        const bool right = c.legend == svg_chart::corner::top_right || c.legend == svg_chart::corner::bottom_right;
        const bool upper = c.legend == svg_chart::corner::top_right || c.legend == svg_chart::corner::top_left;
        const double bx = right ? c.left + pw - bw - 8 : c.left + 8, by = upper ? c.top + 8 : c.top + ph - bh - 8;
        o += "<rect x=\"" + coord(bx) + "\" y=\"" + coord(by) + "\" width=\"" + coord(bw) + "\" height=\"" + coord(bh) +
             "\" fill=\"white\" stroke=\"#999\"/>\n";
        for (std::size_t i = 0; i < entries.size(); ++i) {
            const auto& e = entries[i];
            const double y = by + 17 + 18 * static_cast<double>(i);
            const std::string color = escaped(e.color);
            if (e.point)
                o += "<circle cx=\"" + coord(bx + 18) + "\" cy=\"" + coord(y - 4) + "\" r=\"3.5\" fill=\"" + color +
                     "\"/>";
            else
                o += "<line x1=\"" + coord(bx + 6) + "\" x2=\"" + coord(bx + 30) + "\" y1=\"" + coord(y - 4) +
                     "\" y2=\"" + coord(y - 4) + "\" stroke=\"" + color + "\" stroke-width=\"2\"" +
                     (e.dash.empty() ? std::string() : " stroke-dasharray=\"" + escaped(e.dash) + "\"") + "/>";
            o += "<text x=\"" + coord(bx + 36) + "\" y=\"" + coord(y) + "\">" + escaped(e.label) + "</text>\n";
        }
    }
    o += "</svg>\n";
    return o;
}

}  // namespace exprgrad::tools
