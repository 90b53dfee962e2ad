// A tour of the symbolic core: write a function, print it and its derivatives, evaluate the value
// and gradient with shared subexpressions, and run it over arrays with SIMD.
//
//   build/examples/tour            (the flagship, a trained language model, is examples/tiny_lm)
#include <array>
#include <cstdio>
#include <iostream>
#include <tuple>

#include <exprgrad/exprgrad.hpp>
#include <xtensor/xio.hpp>

using namespace exprgrad;

int main() {
    constexpr auto x = var<0>;
    constexpr auto y = var<1>;

    // 1. A function of two variables; its type is its meaning, simplified as it is built.
    constexpr auto f = exp(sin(x) * y) / (1_c + x * x);
    std::cout << "f(x, y)   = " << to_string(f, {"x", "y"}) << "\n";
    std::cout << "f(0.5, 2) = " << f(0.5, 2.0) << "\n\n";

    // 2. Derivatives are expressions too: print them, evaluate them, differentiate again.
    const auto dfdx = d(f, x);
    std::cout << "df/dx     = " << to_string(dfdx, {"x", "y"}) << "\n";
    std::cout << "LaTeX     : " << to_latex(d(f, y), {"x", "y"}) << "\n";
    const auto h = hessian(f);
    std::cout << "Hessian at (0.5, 2):\n";
    std::printf("  [% .6f % .6f]\n  [% .6f % .6f]\n", std::get<0>(std::get<0>(h))(0.5, 2.0),
                std::get<1>(std::get<0>(h))(0.5, 2.0), std::get<0>(std::get<1>(h))(0.5, 2.0),
                std::get<1>(std::get<1>(h))(0.5, 2.0));
    std::cout << "d2f/dy2   = " << to_string(std::get<1>(std::get<1>(h)), {"x", "y"}) << "\n\n";

    // 3. Value and gradient in one evaluation: each distinct subexpression computed once.
    const auto [value, gradient] = value_and_grad(f)(0.5, 2.0);
    std::printf("value_and_grad(f)(0.5, 2) = %.6f, [%.6f, %.6f]\n", value, gradient[0], gradient[1]);
    std::printf("distinct subexpressions: f alone %zu, f with its gradient %zu\n\n", node_count_v<decltype(f)>,
                node_count_v<decltype(f), decltype(d(f, x)), decltype(d(f, y))>);

    // 4. The same expression over arrays, with AVX2 batches of 8 floats and a scalar tail.
    xt::xtensor<float, 1> xs = xt::linspace<float>(-1.0f, 1.0f, 11);
    xt::xtensor<float, 1> out = map(f, xs, 2.0f);  // a scalar argument broadcasts
    auto [v, g] = map_value_and_grad(f, xs, 2.0f);
    std::cout << "xs          = " << xs << "\n";
    std::cout << "f(xs, 2)    = " << out << "\n";
    std::cout << "df/dx(xs,2) = " << g[0] << "\n";
    // The same into arrays the caller owns: reused across calls, they are not reallocated.
    xt::xtensor<float, 1> ys = xt::full_like(xs, 2.0f);
    xt::xtensor<float, 1> v_out;
    std::array<xt::xtensor<float, 1>, 2> g_out;
    map_value_and_grad_into(f, v_out, g_out, xs, ys);
    std::cout << "df/dy(xs,2) = " << g_out[1] << "\n";

    // 5. The derivative laws, checked numerically (finite differences, Hessian symmetry).
    const auto report = check::check_derivative_laws(f);
    if (!report) std::cerr << report.message();
    std::cout << "\n" << report.message() << "\n";
    std::cout << build_info() << "\n";
    return report.ok ? 0 : 1;
}
