// to_string and to_latex: minimal parentheses that keep the evaluation order.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

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
    CHECK(to_string(-(x * y)) == "-x0*x1");  // (-x0)*x1 == -(x0*x1) in IEEE
    CHECK(to_string(-(x / y)) == "-x0/x1");
    CHECK(to_string(-pow(x, 2_c) * y) == "-x0^2*x1");
    CHECK(to_string(-pow(x, 2_c)) == "-x0^2");    // -(x0^2)
    CHECK(to_string(pow(-x, 3_c)) == "(-x0)^3");  // not -x0^3
    CHECK(to_string(-(x + y)) == "-(x0 + x1)");
    CHECK(to_string(-(x - y)) == "-(x0 - x1)");
    CHECK(to_string(x - 2_c) == "x0 - 2");
    CHECK(to_string(x - c<1, 2>) == "x0 - 1/2");
    CHECK(to_string(x + c<1, 2>) == "x0 + 1/2");
    CHECK(to_string(x - fc<-0.5>) == "x0 + 0.5");
    CHECK(to_string(x + fc<-0.5>) == "x0 - 0.5");
    CHECK(to_string(x * fc<-0.5>) == "x0*(-0.5)");
    CHECK(to_string(c<1, 2> / sqrt(x)) == "1/2/sqrt(x0)");
    CHECK(to_string(x / c<1, 3>) == "3*x0");
    CHECK(to_string(y * (c<1, 2> * x)) == "1/2*(x1*x0)");
    CHECK(to_string(pow(c<1, 2>, x)) == "(1/2)^x0");
    CHECK(to_string(pow(x, c<-1, 2>)) == "x0^(-1/2)");
    CHECK(to_string(pow(x, c<1, 2>)) == "x0^(1/2)");
    CHECK(to_string(pow(x, c<-1>)) == "x0^(-1)");
    CHECK(to_string(pow(x + y, 3_c)) == "(x0 + x1)^3");
    CHECK(to_string(pow(x, y)) == "x0^x1");
    CHECK(to_string(c<1, 2> * x) == "1/2*x0");
    CHECK(to_string(c<-1, 2> * x) == "-1/2*x0");
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
    CHECK(to_string(d(pow(x, y), x)) == "x1*x0^(x1 - 1)");
    CHECK(to_string(d(sqrt(x), x)) == "1/2/sqrt(x0)");
    CHECK(to_string(d(x / y, y)) == "-x0/x1*(1/x1)");
}

TEST_CASE("LaTeX") {
    CHECK(to_latex(exp(sin(x) * y) / (1_c + x * x)) ==
          "\\frac{\\exp\\left(\\sin\\left(x_{0}\\right) \\cdot x_{1}\\right)}{{x_{0}}^{2} + 1}");
    CHECK(to_latex(sqrt(x) + abs(y)) == "\\sqrt{x_{0}} + \\left|x_{1}\\right|");
    CHECK(to_latex(pow(x, c<1, 2>)) == "{x_{0}}^{\\frac{1}{2}}");
    CHECK(to_latex(x - 2_c) == "x_{0} - 2");
    CHECK(to_latex(x - c<1, 2>) == "x_{0} - \\frac{1}{2}");
    CHECK(to_latex(-(x * y)) == "-x_{0} \\cdot x_{1}");
    CHECK(to_latex(-(x + y)) == "-\\left(x_{0} + x_{1}\\right)");
    CHECK(to_latex(pow(x / y, z)) == "\\left(\\frac{x_{0}}{x_{1}}\\right)^{x_{2}}");
    CHECK(to_latex(pow(c<1, 2>, x)) == "\\left(\\frac{1}{2}\\right)^{x_{0}}");
    CHECK(to_latex(pow(x + y, 3_c)) == "\\left(x_{0} + x_{1}\\right)^{3}");
    CHECK(to_latex(pow(exp(x), 2_c)) == "{\\exp\\left(x_{0}\\right)}^{2}");
    CHECK(to_latex(x + fc<1e-300>) == "x_{0} + 10^{-300}");
    CHECK(to_latex(fc<2.5e20> * x) == "2.5 \\cdot 10^{20} \\cdot x_{0}");
    CHECK(to_latex(x * fc<-1e-300>) == "x_{0} \\cdot \\left(-10^{-300}\\right)");
    CHECK(to_latex(x + fc<0.25>) == "x_{0} + 0.25");
    CHECK(to_latex(x * y, {"\\alpha", "\\beta"}) == "\\alpha \\cdot \\beta");
}

namespace {
// Reads to_string's text back with the usual precedence (^ tightest, right operand an atom or a
// bracket; then unary minus; then * /; then + -, all left-associative) and evaluates it in double
// with the op table's own bodies, so that a printed form is checked to denote the same IEEE value.
// A constant exponent (an integer or a bracketed rational) is PowC's evaluation, any other pow(a, b).
struct reader {
    std::string s;
    std::size_t i = 0;
    std::vector<double> args;

    void skip() {
        while (i < s.size() && s[i] == ' ') ++i;
    }
    bool eat(char ch) {
        skip();
        if (i < s.size() && s[i] == ch) {
            ++i;
            return true;
        }
        return false;
    }
    void expect(char ch) {
        if (!eat(ch)) throw std::runtime_error("expected '" + std::string(1, ch) + "' at " + std::to_string(i));
    }
    double sum() {
        double v = product();
        for (;;) {
            if (eat('+'))
                v = v + product();
            else if (eat('-'))
                v = v - product();
            else
                return v;
        }
    }
    double product() {
        double v = unary();
        for (;;) {
            if (eat('*'))
                v = v * unary();
            else if (eat('/'))
                v = v / unary();
            else
                return v;
        }
    }
    double unary() {
        if (eat('-')) return -unary();
        return power();
    }
    static double ipow(double a, long m) {
        if (m == 1) return a;
        if (m % 2 == 0) {
            const double h = ipow(a, m / 2);
            return h * h;
        }
        return ipow(a, m - 1) * a;
    }
    double power() {
        const double base = atom();
        if (!eat('^')) return base;
        skip();
        const std::size_t start = i;
        const double ex = atom();
        std::string t = s.substr(start, i - start);
        if (t.front() == '(') t = t.substr(1, t.size() - 2);
        long n = 0, d = 1;
        char slash = 0;
        int used = 0;
        const bool rational_exponent =
            t.find_first_not_of("-/0123456789") == std::string::npos &&
            ((std::sscanf(t.c_str(), "%ld%n", &n, &used) == 1 && static_cast<std::size_t>(used) == t.size()) ||
             (std::sscanf(t.c_str(), "%ld%c%ld%n", &n, &slash, &d, &used) == 3 &&
              static_cast<std::size_t>(used) == t.size()));
        if (!rational_exponent) return op::Pow::eval(base, ex);
        // PowC's rules, written out again: integers up to 8 multiply (a negative power multiplies 1/a),
        // half-integers up to 15/2 go through sqrt (+0 at -0, +inf at -inf), the rest through pow.
        const long m = n < 0 ? -n : n;
        if (d == 1 && m <= 8) return n < 0 ? ipow(1.0 / base, m) : ipow(base, m);
        if (d == 2 && m <= 15) {
            const double r = base == -INFINITY ? INFINITY : std::sqrt(base) + 0.0;
            const double p = m == 1 ? r : ipow(r, m);
            return n < 0 ? 1.0 / p : p;
        }
        return std::pow(base, static_cast<double>(n) / static_cast<double>(d));
    }
    double call(const std::string& f) {
        std::vector<double> a{sum()};
        while (eat(',')) a.push_back(sum());
        expect(')');
        const double u = a[0];
        if (f == "min") return op::Min::eval(u, a.at(1));
        if (f == "max") return op::Max::eval(u, a.at(1));
        if (f == "less") return op::Less::eval(u, a.at(1));
        if (f == "exp") return op::Exp::eval(u);
        if (f == "log") return op::Log::eval(u);
        if (f == "log1p") return op::Log1p::eval(u);
        if (f == "expm1") return op::Expm1::eval(u);
        if (f == "sqrt") return op::Sqrt::eval(u);
        if (f == "tanh") return op::Tanh::eval(u);
        if (f == "sigmoid") return op::Sigmoid::eval(u);
        if (f == "softplus") return op::Softplus::eval(u);
        if (f == "sin") return op::Sin::eval(u);
        if (f == "cos") return op::Cos::eval(u);
        if (f == "sign") return op::Sign::eval(u);
        if (f == "step") return op::Step::eval(u);
        if (f == "abs") return op::Abs::eval(u);
        if (f == "erf") return op::Erf::eval(u);
        throw std::runtime_error("unknown function " + f);
    }
    double atom() {
        skip();
        if (i >= s.size()) throw std::runtime_error("unexpected end");
        if (eat('(')) {
            const double v = sum();
            expect(')');
            return v;
        }
        if (std::isdigit(static_cast<unsigned char>(s[i]))) {
            char* end = nullptr;
            const double v = std::strtod(s.c_str() + i, &end);
            i = static_cast<std::size_t>(end - s.c_str());
            return v;
        }
        std::size_t j = i;
        while (j < s.size() && std::isalnum(static_cast<unsigned char>(s[j]))) ++j;
        const std::string name = s.substr(i, j - i);
        if (name.empty()) throw std::runtime_error("unexpected '" + s.substr(i) + "'");
        i = j;
        if (eat('(')) return call(name);
        if (name == "pi") return constants::pi_tag::value;
        if (name == "e") return constants::e_tag::value;
        if (name[0] == 'x') return args.at(std::stoul(name.substr(1)));
        throw std::runtime_error("unknown name " + name);
    }
};

double read_back(const std::string& text, const std::vector<double>& args) {
    reader r{text, 0, args};
    const double v = r.sum();
    r.skip();
    if (r.i != text.size()) throw std::runtime_error("trailing text at " + std::to_string(r.i));
    return v;
}

template <class E>
void check_reads_back(E f) {
    const std::string text = to_string(f);
    for (const auto& p : {std::vector<double>{0.7, -1.3, 2.1}, std::vector<double>{1.9, 0.35, 0.6},
                          std::vector<double>{-2.5, 3.75, 1e-3}}) {
        const double want = f(p[0], p[1], p[2]);
        double got = 0;
        try {
            got = read_back(text, p);
        } catch (const std::exception& ex) {
            FAIL_CHECK(text << ": " << ex.what());
            continue;
        }
        INFO(text << " at (" << p[0] << ", " << p[1] << ", " << p[2] << ")");
        if (std::isnan(want))
            CHECK(std::isnan(got));
        else  // not bit for bit: the compiler may contract a*b + c into an FMA in one evaluation and not the other
            CHECK(std::fabs(got - want) <= 1e-9 * std::max(1.0, std::fabs(want)));
    }
}

template <class... Es>
void check_all_read_back(Es... fs) {
    (check_reads_back(fs), ...);
}
}  // namespace

TEST_CASE("printed text reads back to the same value") {
    // The reader itself: precedence as documented.
    CHECK(read_back("-x0^2", {3.0}) == -9.0);
    CHECK(read_back("(-x0)^2", {3.0}) == 9.0);
    CHECK(read_back("x0 - x1 - x2", {1.0, 2.0, 3.0}) == -4.0);
    CHECK(read_back("1/2*x0", {3.0}) == 1.5);

    check_all_read_back(x - (y - z), x - (y + z), x / (y * z), (x / y) / z, x * (y / z), (x * y) / z, -pow(x, 2_c),
                        pow(-x, 3_c), pow(x, pow(y, z)), pow(pow(x, y), z), pow(x, c<-2>), pow(x, c<-1, 2>), -(x * y),
                        -(x / y), x - 2_c, x + c<1, 2>, x - c<1, 2>, c<1, 2> * x, y * (c<1, 2> * x), x / 3_c, -x * y,
                        x + (-2_c) * y, 2_c - x, c<-2> - x, -x + y, -(x + y), -(x - y), -x - y);
    check_all_read_back(pow(c<1, 2>, x), pow(x + y, c<1, 3>), pow(x, y + z), pow(x, -y), pow(x / y, z), x / (-y),
                        pow(x / y, 2_c), pow(sqrt(x), 3_c), abs(x - y), x * (y * z), x + (y + z), c<-1, 2> * x,
                        x - c<1, 2> * y, x * (y - z), fc<-0.5> * x, x * fc<-0.5>, x - fc<-0.5>, x + fc<-0.5>,
                        x + fc<1e-300>, constants::pi * x + constants::e, -pow(x, 2_c) * y, y * -pow(x, 2_c),
                        pow(x, c<2, 3>), exp(-x), min(x, y) - max(y, z), -min(x, y), x / (y / z), x - c<1, 3> * y,
                        y - c<-1, 3>, x * c<-7, 3> - y / c<5, 7>, sqrt(abs(x)) * c<1, 3> / y, d(min(x, y), x),
                        pow(x, c<9>), pow(x, c<-3, 2>), pow(x, c<17, 2>));
    constexpr auto f = exp(sin(x) * y) / (1_c + x * x);
    constexpr auto g = log(1_c + exp(x * y)) / (1_c + x * x);
    constexpr auto h = -c<1, 2> * square((x - y) / z) - log(z) - c<1, 2> * log(2_c * constants::pi);
    check_all_read_back(d(f, x), d(f, y), d(d(f, x), y), d(d(f, x), x), d(g, x), d(d(g, x), y), h, d(h, x), d(h, z),
                        d(d(h, z), z), d(tanh(x), x), d(sigmoid(x), x), d(erf(x), x), d(pow(x, y), y), d(pow(x, y), x),
                        d(sqrt(x), x), d(pow(x, c<1, 3>), x), d(pow(x, c<-3, 2>), x), d(x / y, y), d(d(x / y, y), y),
                        d(softplus(x), x), d(d(softplus(x), x), x), d(d(tanh(x), x), x),
                        d(d(d(x * x * x * x, x), x), x), d(d(sigmoid(x), x), x), d(d(erf(x), x), x),
                        d(d(c<1, 7> / x, x), x), d(x - y * z, y), d(d(cos(x), x), x), d(pow(abs(x), c<5, 2>), x));
}
