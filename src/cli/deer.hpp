// `exprgrad deer`: DEER-type parallel evaluation of the notes' deterministic tanh RNN (ops/deer.hpp).
#pragma once

#include <CLI/CLI.hpp>

namespace exprgrad::cli {

/// `exprgrad deer --n N --T T --g G --method newton|quasi|jacobi|fixed_a|sech_u [--dtype f64|f32] [--cap K]
/// [--guard]`: runs the instance of research notes articles_part2.md §3.7 (A_ij = g·sin(0.37(i+1)(j+2) + 0.5)/√n,
/// u_{t,i} = sin(0.1t + i), x_t = tanh(A x_{t−1} + u_t)) from the zero guess until the max abs error against
/// the sequential evaluation is below 1e-10 (f64) / 1e-5 (f32) or the cap (default T). Prints `iterations: K`,
/// `max_abs_error: E`, `converged: yes|no`, `overflow at K` / `fallback: yes` where they apply, and the wall
/// time of each phase. Exit code 0 when converged, 2 when not (the printed trajectory facts still hold).
void register_deer(CLI::App& app);

}  // namespace exprgrad::cli
