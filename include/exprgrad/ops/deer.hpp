// Parallel evaluation of nonlinear recurrences by Newton-type fixed-point iteration (DEER; kexue.fm
// post 9783, https://kexue.fm/archives/9783, and Lim et al., ICLR 2024; docs/deer.md).
//
// Problem: y_t = f(y_{t−1}, x_t; θ) for t = 1..T, y_0 given. The cell f is a tensor expression of
// the DSL: tensor<0> is the previous state [rows, n], tensor<1> the input [rows, m], tensor<2...>
// the parameters; its value is the new state [rows, n], and rows must be independent (every node
// maps row r of its inputs to row r of its output, as matmul by a parameter and elementwise maps
// do). It is evaluated for all T steps at once with rows = batch·T.
//
// One iteration, from the iterate Y (every row initialised to y_0):
//   Yprev_t = Y_{t−1} (Yprev_1 = y_0),  F_t = f(Yprev_t, x_t),  J_t ≈ ∂f/∂y (per method),
//   b_t = F_t − J_t·Yprev_t,  Y ← solve y_t = J_t y_{t−1} + b_t (ops/scan.hpp).
// Methods (notes §3.2–3.4; the post's names in brackets):
//   newton   J_t = ∂f/∂y(Yprev_t, x_t), dense (DEER; quadratic near the solution)
//   quasi    the diagonal of that Jacobian [diag] (quasi-DEER)
//   jacobi   J_t = 0: Y ← F (Picard)
//   fixed_a  J = ∂f/∂y(0, 0) for every t [fixedA]   (bias-free tanh RNN: A; GRU, zero input and
//            bias: ½(I + ½U_h))
//   sech_u   J_t = ∂f/∂y(0, x_t) [sechU]             (bias-free tanh RNN: diag(sech²(u_t))·A)
// The Jacobians are derived by the engine: row i of every J_t is one VJP of the batched program
// with the seed one-hot at output coordinate i in every row, so n VJPs give all T Jacobians (the
// user never writes one). Each method uses the true f on the right-hand side, so in exact
// arithmetic step t is exact after t iterations: T iterations always suffice (notes §3.5).
//
// Stopping rule (the library's; DEER's form with tighter defaults): after iteration k, converged
// when |Y^(k) − Y^(k−1)| ≤ atol + rtol·|Y^(k)| elementwise. Defaults: float64 atol = rtol = 1e-12,
// float32 atol = rtol = 2e-6 (a few ulps above the rounding noise of the iteration; Newton's error
// after the stopping step is about the square of the last update, the linear methods' about
// update·ρ/(1−ρ)). A monitor callback may replace the rule (the tests and the CLI stop on the error
// against the sequential loop, as the notes count iterations).
// Cap: max_iter (default T). Not converged within the cap, or a non-finite iterate without the
// guard: the solver evaluates the recurrence sequentially and says so (report.fallback): the
// returned trajectory is always the recurrence's, never a half-converged iterate.
// Guard (off by default, as DEER's clip_ytnext): after each solve, NaN → 0 and clip to ±1e8. An iterate
// the guard changed is never reported as converged (a diverging cell's clipped iterate can repeat itself and
// pass the stopping rule, or the monitor's): the solve stops with converged = false and, with fallback, the
// sequential evaluation gives the recurrence's own trajectory (values beyond ±1e8 or ±inf included).
//
// Gradient (deer_vjp): at the solution, λ_t = g_t + J_{t+1}ᵀ λ_{t+1} by one reverse scan with the
// true dense Jacobians, then one VJP of the batched cell with seed λ gives ∂L/∂θ and ∂L/∂x_t, and
// ∂L/∂y_0 = J_1ᵀ λ_1 (the VJP's Yprev gradient at t = 1). It never differentiates through the
// iterations (implicit differentiation, notes §3.4).
//
// Costs per iteration: the cell over rows = batch·T (one batched program call), plus n VJPs for
// newton / quasi (sech_u and fixed_a once per solve), plus the scan: dense O(T·n²) sequential or
// O(T·n³) split, diagonal O(T·n). Memory: dense Jacobians batch·T·n² values.
//
// NaN/Inf: a NaN in the inputs or parameters makes the sequential fallback's output NaN where the
// recurrence is (report.overflow_at records the first non-finite iterate). Shapes are checked and a
// mismatch throws std::invalid_argument naming the shapes.
#pragma once

#include <xtensor/xarray.hpp>

#include "exprgrad/ops/deer_cells.hpp"
#include "exprgrad/ops/deer_solver.hpp"
#include "exprgrad/ops/deer_types.hpp"

namespace exprgrad::ops {

/// Solves y_t = f(y_{t−1}, x_t; θ), t = 1..T, by DEER-type iteration (the method in opts; see the top
/// of ops/deer.hpp). y0: [n] or [batch, n]; inputs: [T, m] or [batch, T, m]; returns {y, report}
/// with y [T, n] / [batch, T, n]. Always returns the recurrence's trajectory (sequential fallback
/// when the iteration does not converge within the cap; report.fallback says so). A y0 size or an inputs
/// width the cell's parameters do not take throws std::invalid_argument "exprgrad::deer_solve: y0 (state
/// size 5) and inputs (width 4) do not fit the cell's parameters (4, 4), ...: <the cell's error>".
/// Example: `auto r = deer_solve(tanh_rnn_cell(A, U, b), y0, x, {.method = deer_method::quasi});`
template <class Cell, class AY, class AX>
deer_result<typename Cell::value_type> deer_solve(const Cell& cell, const AY& y0, const AX& inputs,
                                                  const deer_options& opts = {}) {
    deer_solver<Cell> s;
    return s.solve(cell, y0, inputs, opts);
}

/// The sequential evaluation of the cell's recurrence (the reference DEER is checked against and the
/// fallback): same shapes as deer_solve.
template <class Cell, class AY, class AX>
xt::xarray<typename Cell::value_type> deer_sequential(const Cell& cell, const AY& y0, const AX& inputs) {
    deer_solver<Cell> s;
    return s.sequential(cell, y0, inputs);
}

/// The Jacobians ∂f/∂y [rows, n, n] of a cell at yprev [rows, n] and x [rows, m], derived by the
/// engine (n VJPs of the batched cell). Example: `auto J = deer_jacobian(gru_cell(...), h, x);`
template <class Cell, class AP, class AX>
xt::xarray<typename Cell::value_type> deer_jacobian(const Cell& cell, const AP& yprev, const AX& x) {
    deer_solver<Cell> s;
    return s.jacobian(cell, yprev, x);
}

/// The VJP of deer_solve at its solution y: given dy = ∂L/∂y, returns a struct with dy0, dx and
/// dparams (std::array, one per parameter of the cell) by one reverse adjoint scan
/// λ_t = g_t + J_{t+1}ᵀ λ_{t+1} and one VJP of the batched cell. Example:
/// `auto g = deer_vjp(cell, y0, x, r.y, dy); g.dparams[0]` (∂L/∂A for tanh_rnn_cell).
template <class Cell, class AY, class AX, class AS, class AG>
auto deer_vjp(const Cell& cell, const AY& y0, const AX& inputs, const AS& y, const AG& dy,
              const scan_options& so = {}) {
    deer_solver<Cell> s;
    return s.vjp(cell, y0, inputs, y, dy, so);
}

}  // namespace exprgrad::ops
