// One SVG chart writer for the programs (the `exprgrad attention-scale --plot` chart, tiny_lm's loss.svg):
// x/y axes with ticks, line series, point series with optional error bars, dashed reference lines, a title,
// axis labels and a legend. Part of exprgrad_tools (not installed).
//
//   tools::svg_chart c;
//   c.x_range = {0, 10};
//   c.y_range = {0, 1};
//   c.series.push_back({.label = "loss", .x = {0, 5, 10}, .y = {1, 0.5, 0.25}});
//   const std::string svg = tools::to_svg(c);   // write it with the atomic file writer
//
// Geometry (what a test can recompute): the plot area is the rectangle [left, width − right] ×
// [top, height − bottom]; a point (x, y) is drawn at
//   X = left + (width − left − right) · (t(x) − t(x_lo)) / (t(x_hi) − t(x_lo)),  t = log10 if log_x, else t(x) = x
//   Y = top + (height − top − bottom) · (1 − (y − y_lo) / (y_hi − y_lo))
// and every coordinate is written with two decimals ("%.2f"). Series are clipped to the plot area.
#pragma once

#include <string>
#include <vector>

namespace exprgrad::tools {

/// A closed interval of an axis; lo < hi, both finite (and > 0 on a log axis).
struct chart_range {
    double lo = 0;
    double hi = 1;
};

/// One data series. `x` and `y` have the same, non-zero length; every value is finite (a caller drops the
/// points it has no value for, e.g. steps without a held-out loss, before adding the series).
struct chart_series {
    enum class style { line, points };
    std::string label;              ///< legend text; empty: not in the legend
    std::string color = "#1f77b4";  ///< any SVG colour
    style draw = style::line;       ///< a polyline through the points, or a circle at each point
    std::vector<double> x{}, y{};
    /// Points only: empty, or one finite half-length ≥ 0 per point, drawn as a vertical bar y ± err.
    std::vector<double> err{};
    double stroke = 2;  ///< line width (line) or circle radius (points), > 0
};

/// A dashed reference line across the plot: horizontal at y = at, or vertical at x = at. Drawn only when
/// `at` lies inside its axis' range (a rule outside it is skipped, not an error); `at` must not be NaN.
struct chart_rule {
    bool vertical = false;
    double at = 0;
    std::string color = "#555";
    std::string dash = "6 4";  ///< SVG stroke-dasharray
    std::string label{};       ///< legend text; empty: not in the legend
};

/// A chart: axes ranges, what is drawn, texts. Texts are escaped for XML (&, <, >, quotes).
struct svg_chart {
    double width = 720, height = 400;                     ///< pixels
    double left = 72, right = 20, top = 40, bottom = 50;  ///< margins around the plot area
    chart_range x_range, y_range;
    bool log_x = false;  ///< x on a log10 axis (ticks at 1, 2, 5 per decade); needs x_range.lo > 0
    std::string title{}, x_label{}, y_label{};
    std::vector<chart_series> series{};
    std::vector<chart_rule> rules{};
    enum class corner { top_right, bottom_right, top_left, bottom_left };
    corner legend = corner::top_right;  ///< where the legend box sits inside the plot area
};

/// The chart as a complete SVG document in UTF-8 (starting with "<svg", no XML declaration; ending with
/// "</svg>\n").
/// Ticks: 2 to 7 per axis at multiples of 1, 2 or 5 × 10^k (log axis: 1, 2, 5 per decade, only 1 beyond six
/// decades), labelled with up to four significant digits ("%.4g"; labels, not messages). Throws std::invalid_argument
/// naming the problem ("svg_chart: series 'loss' has a non-finite y at point 3: nan") for: a non-finite or empty range
/// (lo ≥ hi), log_x with x_range.lo ≤ 0, a plot area of zero or negative size, a series with no points, x and y (or
/// err) of different lengths, a non-finite coordinate or error, an x ≤ 0 on a log axis, a stroke ≤ 0, a NaN rule
/// position. Points outside the ranges are clipped, not refused. Never returns a partial document.
std::string to_svg(const svg_chart& chart);

}  // namespace exprgrad::tools
