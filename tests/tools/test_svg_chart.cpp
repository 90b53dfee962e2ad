// Unit tests of the one SVG chart writer of the programs (src/tools/svg_chart.hpp): the document is
// well formed, points land where the scaling formula of svg_chart.hpp puts them, bad series are refused.
#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "svg_chart.hpp"

namespace tools = exprgrad::tools;

namespace {

// "" when every element is closed in order and the root is <svg>; otherwise what is wrong. A deliberately
// small checker: tags, self-closing tags, the XML declaration; text must hold no raw '<'.
std::string tag_problem(const std::string& doc) {
    std::vector<std::string> open;
    bool saw_root = false;
    std::size_t i = 0;
    while ((i = doc.find('<', i)) != std::string::npos) {
        const std::size_t end = doc.find('>', i);
        if (end == std::string::npos) return "unterminated tag at " + std::to_string(i);
        const std::string tag = doc.substr(i + 1, end - i - 1);
        i = end + 1;
        if (tag.empty()) return "empty tag";
        if (tag[0] == '?') continue;  // <?xml ...?>
        if (tag[0] == '/') {
            if (open.empty() || open.back() != tag.substr(1)) return "unbalanced </" + tag.substr(1) + ">";
            open.pop_back();
            continue;
        }
        const std::string name = tag.substr(0, tag.find_first_of(" \n/"));
        if (open.empty()) {
            if (saw_root || name != "svg") return "root element " + name;
            saw_root = true;
        }
        if (tag.back() != '/') open.push_back(name);
    }
    if (!saw_root) return "no root";
    if (!open.empty()) return "unclosed <" + open.back() + ">";
    return "";
}

// The value of attribute `name` of the first element `element` (e.g. polyline's points).
std::string attribute(const std::string& doc, const std::string& element, const std::string& name) {
    const std::size_t at = doc.find("<" + element + " ");
    if (at == std::string::npos) return "<no " + element + ">";
    const std::size_t end = doc.find('>', at);
    const std::size_t a = doc.find(" " + name + "=\"", at);
    if (a == std::string::npos || a > end) return "<no " + name + ">";
    const std::size_t v = a + name.size() + 3;
    return doc.substr(v, doc.find('"', v) - v);
}

std::string refusal(const tools::svg_chart& c) {
    try {
        tools::to_svg(c);
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    return "";
}

// A 200 × 100 chart whose plot area is [20, 190] × [10, 80]: 170 by 70 pixels.
tools::svg_chart small_chart() {
    tools::svg_chart c;
    c.width = 200;
    c.height = 100;
    c.left = 20;
    c.right = 10;
    c.top = 10;
    c.bottom = 20;
    c.x_range = {0, 10};
    c.y_range = {0, 1};
    return c;
}

}  // namespace

TEST_CASE("a line series: well-formed SVG, points at left + 170·x/10, top + 70·(1 − y)") {
    auto c = small_chart();
    c.title = "loss & <friends>";
    c.x_label = "step";
    c.y_label = "nats";
    c.series.push_back({.label = "train", .x = {0, 5, 10}, .y = {0, 0.5, 1}});
    const std::string svg = tools::to_svg(c);
    CHECK(tag_problem(svg) == "");
    CHECK(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0) == 0);
    CHECK(svg.size() > 7);
    CHECK(svg.substr(svg.size() - 7) == "</svg>\n");
    // X = 20 + 170·x/10: 20, 105, 190; Y = 10 + 70·(1 − y): 80, 45, 10
    CHECK(attribute(svg, "polyline", "points") == "20.00,80.00 105.00,45.00 190.00,10.00");
    CHECK(svg.find("loss &amp; &lt;friends&gt;") != std::string::npos);  // escaped, so still well formed
    CHECK(svg.find(">train</text>") != std::string::npos);               // in the legend
}

TEST_CASE("points with error bars, a log axis, reference lines inside and outside the range") {
    auto c = small_chart();
    c.log_x = true;
    c.x_range = {1, 100};
    c.series.push_back({.label = "mean",
                        .color = "#d62728",
                        .draw = tools::chart_series::style::points,
                        .x = {10},
                        .y = {0.5},
                        .err = {0.25},
                        .stroke = 3});
    c.rules.push_back({.vertical = true, .at = 10, .label = "alpha*"});
    c.rules.push_back({.vertical = false, .at = 2});  // above y_range.hi: skipped
    const std::string svg = tools::to_svg(c);
    CHECK(tag_problem(svg) == "");
    // log10(10) is halfway between log10(1) and log10(100): X = 20 + 170/2 = 105; Y(0.5) = 45
    CHECK(attribute(svg, "circle", "cx") == "105.00");
    CHECK(attribute(svg, "circle", "cy") == "45.00");
    CHECK(attribute(svg, "circle", "r") == "3.00");
    // the bar y ± 0.25: Y(0.25) = 62.5, Y(0.75) = 27.5
    CHECK(svg.find("<line x1=\"105.00\" x2=\"105.00\" y1=\"62.50\" y2=\"27.50\"/>") != std::string::npos);
    // the vertical rule at x = 10 spans the plot area's height; the horizontal one at y = 2 is not drawn
    CHECK(svg.find("<line x1=\"105.00\" x2=\"105.00\" y1=\"10.00\" y2=\"80.00\" stroke=\"#555\"") != std::string::npos);
    CHECK(svg.find("y1=\"-60.00\"") == std::string::npos);  // Y(2) = 10 + 70·(1 − 2)
}

TEST_CASE("refusals name the series and the problem") {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    auto c = small_chart();
    c.series.push_back({.label = "held-out", .x = {1, 2}, .y = {0.5, nan}});
    CHECK(refusal(c) == "svg_chart: series 'held-out' has a non-finite y at point 1: nan");
    c.series[0] = {.label = "empty"};
    CHECK(refusal(c) == "svg_chart: series 'empty' has no points");
    c.series[0] = {.label = "ragged", .x = {1, 2}, .y = {1}};
    CHECK(refusal(c) == "svg_chart: series 'ragged' has 2 x and 1 y values");
    c.series[0] = {.label = "ok", .x = {1}, .y = {1}};
    CHECK(refusal(c) == "");
    c.log_x = true;
    CHECK(refusal(c) == "svg_chart: a log x axis needs x_range.lo > 0, got 0");
    c.log_x = false;
    c.y_range = {1, 1};
    CHECK(refusal(c) == "svg_chart: y range [1, 1] must be finite with lo < hi");
}
