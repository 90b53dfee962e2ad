// to_string and to_latex: minimal parentheses that keep the evaluation order.
#include <doctest/doctest.h>

#include <string>

#include "exprgrad/sym.hpp"

using namespace exprgrad::sym;
using namespace exprgrad::sym::literals;

namespace {
constexpr auto x = var<0>;
constexpr auto y = var<1>;
constexpr auto z = var<2>;
}  // namespace

TEST_CASE("infix text") {
    CHECK(to_string(exp(sin(x) * y) / (1_c + x * x)) == "exp(sin(x0)*x1)/(x0^2 + 1)");
    CHECK(to_string(x - (y - z)) == "x0 - (x1 - x2)");
    CHECK(to_string((x - y) - z) == "x0 - x1 - x2");
    CHECK(to_string(x * (y + z)) == "x0*(x1 + x2)");
    CHECK(to_string(x / (y * z)) == "x0/(x1*x2)");
    CHECK(to_string((x / y) / z) == "x0/x1/x2");
    CHECK(to_string(-x) == "-x0");
    CHECK(to_string(-(x * y)) == "-(x0*x1)");
    CHECK(to_string(pow(x, c<1, 2>)) == "x0^(1/2)");
    CHECK(to_string(pow(x, c<-1>)) == "x0^(-1)");
    CHECK(to_string(pow(x + y, 3_c)) == "(x0 + x1)^3");
    CHECK(to_string(pow(x, y)) == "x0^x1");
    CHECK(to_string(c<1, 2> * x) == "(1/2)*x0");
    CHECK(to_string(x - 2_c * y) == "x0 - 2*x1");
    CHECK(to_string(min(x, y) + abs(z)) == "min(x0, x1) + abs(x2)");
    CHECK(to_string(fc<0.5> * x) == "0.5*x0");
    CHECK(to_string(constants::pi * x) == "pi*x0");
    CHECK(to_string(x + pow(y, 2_c), {"a", "b"}) == "a + b^2");
}

TEST_CASE("derivatives print") {
    CHECK(to_string(d(sin(x) * x, x)) == "x0*cos(x0) + sin(x0)");
    CHECK(to_string(d(x * x * x, x)) == "3*x0^2");
    CHECK(to_string(d(log(x), x)) == "1/x0");
    CHECK(to_string(d(abs(x), x)) == "sign(x0)");
    CHECK(to_string(d(min(x, y), x)) == "less(x0, x1)");
}

TEST_CASE("LaTeX") {
    CHECK(to_latex(exp(sin(x) * y) / (1_c + x * x)) ==
          "\\frac{\\exp\\left(\\sin\\left(x_{0}\\right) \\cdot x_{1}\\right)}{{x_{0}}^{2} + 1}");
    CHECK(to_latex(sqrt(x) + abs(y)) == "\\sqrt{x_{0}} + \\left|x_{1}\\right|");
    CHECK(to_latex(pow(x, c<1, 2>)) == "{x_{0}}^{\\frac{1}{2}}");
    CHECK(to_latex(x * y, {"\\alpha", "\\beta"}) == "\\alpha \\cdot \\beta");
}
