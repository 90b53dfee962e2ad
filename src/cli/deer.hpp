// `exprgrad deer`: DEER-type parallel evaluation of the notes' deterministic tanh RNN (ops/deer.hpp).
#pragma once

#include <CLI/CLI.hpp>

namespace exprgrad::cli {

/// `exprgrad deer --n N --T T --g G --method newton|quasi|jacobi|fixed_a|sech_u [--dtype f64|f32] [--cap K]
/// [--guard]`: runs the instance of src/tools/deer_instance.hpp (A_ij = g·sin(0.37(i+1)(j+2) + 0.5)/√n,
/// u_{t,i} = sin(0.1t + i), x_t = tanh(A x_{t−1} + u_t)) from the zero guess until the max abs error against
/// the sequential evaluation is below 1e-10 (f64) / 1e-5 (f32) or the cap (default T). Prints `iterations: K`,
/// `max_abs_error: E`, `converged: yes|no`, `overflow at K` / `fallback: yes` where they apply, and the wall
/// time of each phase. Bounds (exit 2 beyond): 1 ≤ n ≤ 1024, 1 ≤ T ≤ 10^7, T·n ≤ 2^26 and, for the dense
/// methods (newton, fixed_a, sech_u, which store T n×n Jacobians), T·n² ≤ 2^26; |g| ≤ 10^6; 1 ≤ cap ≤ 10·T.
/// Exit status 0 when converged; 1 when not (the printed lines still hold; one line on stderr says so).
void register_deer(CLI::App& app);

}  // namespace exprgrad::cli
