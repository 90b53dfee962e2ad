// A consumer of exprgrad built only from installed files (or as a Meson subproject).
#include <cmath>
#include <cstdio>

#include <exprgrad/exprgrad.hpp>

using namespace exprgrad;

int main() {
    constexpr auto x = var<0>;
    const double g = d(x * sin(x), x)(1.0);
    xt::xtensor<float, 1> xs = {1.0f, 2.0f, 3.0f};
    xt::xtensor<float, 1> ys = map(x * x, xs);
    std::printf("%s: d(x sin x)/dx at 1 = %.12f, map = %g\n", build_info(), g, static_cast<double>(ys(2)));
    return std::abs(g - (std::sin(1.0) + std::cos(1.0))) < 1e-12 && ys(2) == 9.0f ? 0 : 1;
}
