// Compile-time regression: all third-order partials of a composite function, gathered and
// evaluated with common-subexpression elimination. tests/tools/compile_time.py times this file.
#include <cstdio>
#include <tuple>

#include <exprgrad/sym.hpp>

using namespace exprgrad::sym;
using namespace exprgrad::sym::literals;

int main() {
    constexpr auto x = var<0>;
    constexpr auto y = var<1>;
    constexpr auto f = exp(sin(x) * y) / (1_c + x * x) + log1p(x * x * y * y) * tanh(x - y);
    constexpr auto fxx = d(d(f, x), x);
    constexpr auto fxy = d(d(f, x), y);
    constexpr auto fyy = d(d(f, y), y);
    const auto third = std::tuple{d(fxx, x), d(fxx, y), d(fxy, y), d(fyy, y), d(fyy, x), d(fxy, x)};
    constexpr std::size_t types = std::apply([](auto... e) { return node_count_v<decltype(e)...>; }, third);
    static_assert(types >= 300, "the compile-time regression test must hold at least 300 node types");
    const auto v = evaluate_all(third, 0.5, 2.0);
    std::printf("%zu distinct node types, d3f/dx3(0.5, 2) = %.17g\n", types, v[0]);
    return 0;
}
