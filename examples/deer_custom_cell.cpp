// Tutorial: evaluating your own recurrent cell in parallel over time with DEER (ops/deer.hpp).
//
// A cell is a tensor expression of the DSL with three kinds of placeholders:
//   tensor<0>  the previous state, [rows, n]
//   tensor<1>  the input of the step, [rows, m]
//   tensor<2>… your parameters
// Its value is the new state [rows, n]. DEER evaluates it for all T steps at once (rows = batch·T),
// derives the Jacobian ∂f/∂y that Newton needs by itself (you never write it), solves the resulting
// linear recurrence with a parallel scan, and repeats until the trajectory stops changing.
//
// Here: a "leaky" RNN with a softplus-gated input, y_t = (1 − α) y_{t−1} + α tanh(W y_{t−1} + V x_t),
// with α = sigmoid(a) per channel — not one of the built-in cells.
#include <cmath>
#include <iostream>

#include <exprgrad/exprgrad.hpp>
#include <exprgrad/ops/deer.hpp>

using namespace exprgrad;

int main() {
    constexpr auto H = tensor<0>;  // previous state [rows, n]
    constexpr auto X = tensor<1>;  // input [rows, m]
    constexpr auto W = tensor<2>;  // [n, n]
    constexpr auto V = tensor<3>;  // [n, m]
    constexpr auto a = tensor<4>;  // [n], the leak rates before the sigmoid
    // 1. the cell, written once as an expression (row form: H·Wᵀ is W h for every row)
    constexpr auto leak = sigmoid(a);
    constexpr auto cell_expr = (1_c - leak) * H + leak * tanh(matmul(H, transpose(W)) + matmul(X, transpose(V)));

    // 2. parameters and data (batch of 2 sequences, T = 2000 steps, n = 4, m = 3)
    const std::size_t B = 2, T = 2000, n = 4, m = 3;
    rng g(2023);
    auto uniform = [&](std::initializer_list<std::size_t> shape, double scale) {
        xt::xarray<double> v = xt::xarray<double>::from_shape(shape);
        for (auto& e : v) e = scale * (2 * g.uniform() - 1);
        return v;
    };
    const auto cell = make_cell(cell_expr, uniform({n, n}, 0.6), uniform({n, m}, 1.0), uniform({n}, 1.0));
    const auto x = uniform({B, T, m}, 1.0);
    const xt::xarray<double> y0 = xt::zeros<double>({B, n});

    // 3. solve with Newton (DEER) and compare with the step-by-step loop
    const auto r = deer_solve(cell, y0, x, {.method = deer_method::newton});
    const auto ref = deer_sequential(cell, y0, x);
    double err = 0;
    for (std::size_t i = 0; i < ref.size(); ++i) err = std::max(err, std::abs(r.y.data()[i] - ref.data()[i]));
    std::cout << "newton: " << r.report.iterations << " iterations, converged " << r.report.converged
              << ", max |deer - sequential| = " << err << '\n';

    // the cheaper variants use the same cell: the diagonal of the Jacobian, or none at all
    for (auto method : {deer_method::quasi, deer_method::jacobi}) {
        const auto q = deer_solve(cell, y0, x, {.method = method});
        std::cout << to_string(method) << ": " << q.report.iterations << " iterations\n";
    }

    // 4. gradients of a loss L = Σ y through the recurrence, by one reverse scan at the solution
    const xt::xarray<double> dy = xt::ones<double>(r.y.shape());
    const auto grads = deer_vjp(cell, y0, x, r.y, dy);
    std::cout << "dL/dW[0,0] = " << grads.dparams[0](0, 0) << ", dL/da[0] = " << grads.dparams[2](0) << '\n';
    return (r.report.converged && err < 1e-10) ? 0 : 1;
}
