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

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <functional>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <xtensor/xadapt.hpp>
#include <xtensor/xarray.hpp>

#include "exprgrad/ops/scan.hpp"
#include "exprgrad/tensors/graph.hpp"
#include "exprgrad/tensors/layout.hpp"
#include "exprgrad/tensors/map.hpp"
#include "exprgrad/tensors/matmul.hpp"
#include "exprgrad/tensors/shape.hpp"

namespace exprgrad::ops {

/// The Jacobian approximation of a DEER iteration (see the top of ops/deer.hpp).
enum class deer_method { newton, quasi, jacobi, fixed_a, sech_u };

/// "newton", "quasi", "jacobi", "fixed_a", "sech_u".
inline const char* to_string(deer_method m) {
    switch (m) {
        case deer_method::newton:
            return "newton";
        case deer_method::quasi:
            return "quasi";
        case deer_method::jacobi:
            return "jacobi";
        case deer_method::fixed_a:
            return "fixed_a";
        case deer_method::sech_u:
            return "sech_u";
    }
    return "?";
}

/// Parses a method name (as printed by to_string); throws std::invalid_argument otherwise.
inline deer_method parse_deer_method(const std::string& s) {
    for (auto m :
         {deer_method::newton, deer_method::quasi, deer_method::jacobi, deer_method::fixed_a, deer_method::sech_u})
        if (s == to_string(m)) return m;
    throw std::invalid_argument("exprgrad::deer: unknown method '" + s +
                                "' (newton, quasi, jacobi, fixed_a or sech_u)");
}

/// The current iterate, as a monitor sees it: iteration k (1-based) and the values [batch, T, n]
/// (one of f64 / f32 is set, by the solve's dtype).
struct deer_iterate {
    std::size_t iteration = 0;
    const double* f64 = nullptr;
    const float* f32 = nullptr;
    std::size_t size = 0;
    double operator[](std::size_t i) const { return f64 ? f64[i] : double(f32[i]); }
};

/// Options of deer_solve.
struct deer_options {
    deer_method method = deer_method::newton;
    std::size_t max_iter = 0;     ///< iteration cap; 0 = T (always enough in exact arithmetic)
    /// Tolerances; negative: the dtype's default (top of ops/deer.hpp). NaN or +inf throws
    /// std::invalid_argument (as does a method outside the enum).
    double atol = -1, rtol = -1;
    /// NaN → 0 and clip to ±1e8 after each solve (DEER's clip_ytnext). A stop on an iterate the guard changed
    /// reports converged = false (and falls back when `fallback`): a clipped iterate is not the trajectory.
    bool guard = false;
    bool fallback = true;         ///< not converged: evaluate sequentially (false: return the last iterate)
    scan_options scan{};          ///< how the linear solves split their work
    /// Called after every iteration; returning true stops with converged = true. When set, it
    /// replaces the built-in stopping rule.
    std::function<bool(const deer_iterate&)> monitor{};
};

/// What a solve did. Times are wall-clock seconds per phase.
struct deer_report {
    deer_method method = deer_method::newton;
    std::size_t iterations = 0;  ///< iterations run (fallback excluded)
    double residual = 0;         ///< max |Y^(k) − Y^(k−1)| of the last iteration
    bool converged = false;
    bool fallback = false;        ///< the trajectory comes from the sequential evaluation
    std::size_t overflow_at = 0;  ///< first iteration with a non-finite iterate (0: none)
    double t_cell = 0, t_jacobian = 0, t_scan = 0, t_sequential = 0, t_total = 0;
};

/// The trajectory y [T, n] or [batch, T, n] (the inputs' batching) and the report.
template <class T>
struct deer_result {
    xt::xarray<T> y;
    deer_report report;
};

/// The gradients deer_vjp returns: ∂L/∂y0 (y0's shape), ∂L/∂x (the inputs' shape), ∂L/∂params[i].
template <class T, std::size_t P>
struct deer_grads {
    xt::xarray<T> dy0, dx;
    std::array<xt::xarray<T>, P> dparams;
};

/// A cell: its expression type E (tensor<0> state, tensor<1> input, tensor<2 + i> = params[i]) and
/// the P parameter arrays it is evaluated with. Build one with make_cell, tanh_rnn_cell or gru_cell.
template <class E, class T, std::size_t P>
struct deer_cell {
    using expr_type = E;
    using value_type = T;
    static constexpr std::size_t num_params = P;
    std::array<xt::xarray<T>, P> params;
};

/// Binds a cell expression to its parameters (all of one floating type):
/// `auto cell = make_cell(tanh(matmul(tensor<0>, transpose(tensor<2>)) + tensor<1>), A);`
template <tensors::TensorExpr E, class A0, class... As>
auto make_cell(E, const A0& p0, const As&... ps) {
    using T = typename A0::value_type;
    static_assert(std::is_floating_point_v<T>, "exprgrad: DEER cells compute in float or double");
    return deer_cell<std::remove_cvref_t<E>, T, 1 + sizeof...(As)>{{xt::xarray<T>(p0), xt::xarray<T>(ps)...}};
}

/// The expression of the tanh RNN cell y = tanh(A y + U x + b), in row form:
/// tanh(Yprev·Aᵀ + X·Uᵀ + b) with A [n, n] = tensor<2>, U [n, m] = tensor<3>, b [n] = tensor<4>.
inline constexpr auto tanh_rnn_expr =
    tensors::tanh(tensors::matmul(tensors::Input<0>{}, tensors::transpose(tensors::Input<2>{})) +
              tensors::matmul(tensors::Input<1>{}, tensors::transpose(tensors::Input<3>{})) + tensors::Input<4>{});

/// The tanh RNN cell y_t = tanh(A y_{t−1} + U x_t + b): A [n, n], U [n, m], b [n].
/// With U = I and b = 0 it is the post's x_t = tanh(A x_{t−1} + u_t). Example:
/// `auto r = deer_solve(tanh_rnn_cell(A, U, b), y0, x);`
template <class AA, class AU, class AB>
auto tanh_rnn_cell(const AA& A, const AU& U, const AB& b) {
    return make_cell(tanh_rnn_expr, A, U, b);
}

namespace detail {
template <int I>
constexpr tensors::Input<I> in{};
template <class W, class U, class B>
constexpr auto affine(W, U, B) {  // X·Wᵀ + H·Uᵀ + b
    return tensors::matmul(in<1>, tensors::transpose(W{})) + tensors::matmul(in<0>, tensors::transpose(U{})) + B{};
}
inline constexpr auto gru_z = tensors::sigmoid(affine(in<2>, in<3>, in<4>));
inline constexpr auto gru_r = tensors::sigmoid(affine(in<5>, in<6>, in<7>));
inline constexpr auto gru_h =
    tensors::tanh(tensors::matmul(in<1>, tensors::transpose(in<8>)) + tensors::matmul(gru_r * in<0>, tensors::transpose(in<9>)) + in<10>);
}  // namespace detail

/// The expression of the GRU cell (the post's and Cho et al.'s convention):
///   z = σ(W_z x + U_z h + b_z),  r = σ(W_r x + U_r h + b_r),  ĥ = tanh(W_h x + U_h (r ⊙ h) + b_h),
///   h' = (1 − z) ⊙ h + z ⊙ ĥ,
/// parameters tensor<2..10> = W_z, U_z, b_z, W_r, U_r, b_r, W_h, U_h, b_h (W [n, m], U [n, n], b [n]).
inline constexpr auto gru_expr =
    (sym::c<1> - detail::gru_z) * detail::in<0> + detail::gru_z * detail::gru_h;

/// The GRU cell (see gru_expr) with W_* [n, m], U_* [n, n], b_* [n]. Its fixed_a Jacobian at zero
/// input and bias is ½(I + ½U_h), the post's matrix.
template <class A>
auto gru_cell(const A& Wz, const A& Uz, const A& bz, const A& Wr, const A& Ur, const A& br, const A& Wh, const A& Uh,
              const A& bh) {
    return make_cell(gru_expr, Wz, Uz, bz, Wr, Ur, br, Wh, Uh, bh);
}

namespace detail {

inline const char* deer_op_name = "deer";
using clock = std::chrono::steady_clock;
inline double since(clock::time_point t0) { return std::chrono::duration<double>(clock::now() - t0).count(); }

template <int... I>
auto wrt_all(std::integer_sequence<int, I...>) -> std::integer_sequence<int, 0, (I + 1)...>;

template <class T>
auto view2(const T* p, std::size_t rows, std::size_t cols) {
    return xt::adapt(const_cast<T*>(p), rows * cols, xt::no_ownership(), std::array<std::size_t, 2>{rows, cols});
}

template <class T>
T default_tol() {
    return std::is_same_v<T, float> ? T(2e-6) : T(1e-12);
}

// The options' domain (deer_options): a method of the enum (another value read Jacobians that were never
// computed); atol, rtol not NaN (which silently meant the default) and not +inf (which stops at once).
inline void check_options(const deer_options& o) {
    const int m = static_cast<int>(o.method);
    if (m < static_cast<int>(deer_method::newton) || m > static_cast<int>(deer_method::sech_u)) {
        throw std::invalid_argument(std::string("exprgrad::") + deer_op_name +
                                    ": method must be newton, quasi, jacobi, fixed_a or sech_u, got the value " +
                                    std::to_string(m));
    }
    for (const auto& [name, v] : {std::pair{"atol", o.atol}, std::pair{"rtol", o.rtol}}) {
        if (std::isnan(v) || v == std::numeric_limits<double>::infinity()) {
            throw std::invalid_argument(std::string("exprgrad::") + deer_op_name + ": " + name +
                                        " must be finite (negative: the dtype's default), got " +
                                        (std::isnan(v) ? "nan" : "inf"));
        }
    }
}

}  // namespace detail

/// The DEER engine for cells of type Cell in the number type T: it owns the compiled programs and
/// the workspace (reused across calls), so repeated solves allocate only when shapes grow. Not
/// reentrant (one call at a time per object). deer_solve / deer_vjp / deer_sequential build one per
/// call; keep one for loops.
template <class Cell>
class deer_solver {
  public:
    using T = typename Cell::value_type;
    using E = typename Cell::expr_type;
    static constexpr std::size_t P = Cell::num_params;

    /// Solves the recurrence of `cell` from y0 [n] or [batch, n] over inputs [T, m] or [batch, T, m].
    template <class AY, class AX>
    deer_result<T> solve(const Cell& cell, const AY& y0_in, const AX& x_in, const deer_options& o = {}) {
        const auto t_start = detail::clock::now();
        detail::check_options(o);
        bind_shapes(y0_in, x_in);
        deer_result<T> res;
        deer_report& rep = res.report;
        rep.method = o.method;
        res.y = out_shape();
        T* Y = res.y.data();
        const std::size_t N = rows_ * n_;
        for (std::size_t b = 0; b < B_; ++b)
            for (std::size_t t = 0; t < T_; ++t) std::copy(y0(b), y0(b) + n_, Y + (b * T_ + t) * n_);
        if (T_ == 0 || n_ == 0) {
            rep.converged = true;
            return res;
        }
        const std::size_t cap = o.max_iter ? o.max_iter : T_;
        const T atol = o.atol >= 0 ? T(o.atol) : detail::default_tol<T>();
        const T rtol = o.rtol >= 0 ? T(o.rtol) : detail::default_tol<T>();
        const bool dense =
            o.method == deer_method::newton || o.method == deer_method::fixed_a || o.method == deer_method::sech_u;
        std::size_t mstep = dense ? n_ * n_ : n_, mbatch = T_ * mstep;

        // Jacobians that stay fixed over the iterations
        if (o.method == deer_method::fixed_a || o.method == deer_method::sech_u) {
            auto t0 = detail::clock::now();
            const bool at_input = o.method == deer_method::sech_u;
            const std::size_t r = at_input ? rows_ : 1;
            zeros_.assign(r * n_, T(0));
            if (!at_input) xzero_.assign(m_, T(0));
            forward(cell, zeros_.data(), at_input ? x_.data() : xzero_.data(), r);
            jacobians(r, true);
            if (!at_input) mstep = mbatch = 0;  // one matrix for every step
            rep.t_jacobian += detail::since(t0);
        }
        ynew_.resize(N);
        rhs_.resize(N);
        for (std::size_t k = 1; k <= cap; ++k) {
            auto t0 = detail::clock::now();
            shift(Y);
            const T* F = forward(cell, yprev_.data(), x_.data(), rows_);
            rep.t_cell += detail::since(t0);
            if (o.method == deer_method::newton || o.method == deer_method::quasi) {
                t0 = detail::clock::now();
                jacobians(rows_, dense);
                rep.t_jacobian += detail::since(t0);
            }
            t0 = detail::clock::now();
            if (o.method == deer_method::jacobi) {
                std::copy(F, F + N, ynew_.begin());
            } else {
                // b_t = F_t − J_t·Yprev_t, then the linear recurrence
                for (std::size_t r = 0; r < rows_; ++r) {
                    const T* yp = yprev_.data() + r * n_;
                    T* out = rhs_.data() + r * n_;
                    if (dense) {
                        const T* J = jac_.data() + (mstep ? r * n_ * n_ : 0);
                        for (std::size_t i = 0; i < n_; ++i) {
                            T s = 0;
                            for (std::size_t j = 0; j < n_; ++j) s += J[i * n_ + j] * yp[j];
                            out[i] = F[r * n_ + i] - s;
                        }
                    } else {
                        const T* d = jac_.data() + r * n_;
                        for (std::size_t i = 0; i < n_; ++i) out[i] = F[r * n_ + i] - d[i] * yp[i];
                    }
                }
                if (dense) {
                    linear_recurrence_dense(jac_.data(), rhs_.data(), y0_.data(), ynew_.data(), B_, T_, n_, mstep,
                                            mbatch, o.scan);
                } else {
                    linear_recurrence_diag(jac_.data(), rhs_.data(), y0_.data(), ynew_.data(), B_, T_, n_, n_, T_ * n_,
                                           o.scan);
                }
            }
            // Whether the guard changed this iterate: then it is not the recurrence's own trajectory.
            bool guarded = false;
            if (o.guard) {
                for (auto& v : ynew_) {
                    const T g = std::isnan(v) ? T(0) : std::clamp(v, T(-1e8), T(1e8));
                    guarded |= !(g == v);
                    v = g;
                }
            }
            // update size and the built-in rule
            bool finite = true, small = true;
            T delta = 0;
            for (std::size_t i = 0; i < N; ++i) {
                const T v = ynew_[i];
                if (!std::isfinite(v)) finite = false;
                const T d = std::abs(v - Y[i]);
                delta = std::max(delta, d);
                if (!(d <= atol + rtol * std::abs(v))) small = false;
            }
            std::copy(ynew_.begin(), ynew_.end(), Y);
            rep.t_scan += detail::since(t0);
            rep.iterations = k;
            rep.residual = double(delta);
            if (!finite) {
                rep.overflow_at = k;
                break;
            }
            bool stop = small;
            if (o.monitor) {
                deer_iterate it;
                it.iteration = k;
                it.size = N;
                if constexpr (std::is_same_v<T, double>)
                    it.f64 = Y;
                else
                    it.f32 = Y;
                stop = o.monitor(it);
            }
            if (stop) {
                // A guarded iterate can be a fixed point of "solve, then clip" (a diverging cell clipped at
                // ±1e8 repeats itself): that is not the recurrence's trajectory, so it is not convergence;
                // the fallback below (when enabled) evaluates the recurrence itself.
                rep.converged = !guarded;
                break;
            }
        }
        if (!rep.converged && o.fallback) {
            auto t0 = detail::clock::now();
            sequential_into(cell, Y);
            rep.fallback = true;
            rep.t_sequential = detail::since(t0);
        }
        rep.t_total = detail::since(t_start);
        return res;
    }

    /// The reference: y_t = f(y_{t−1}, x_t) one step at a time (all sequences of the batch per call).
    template <class AY, class AX>
    xt::xarray<T> sequential(const Cell& cell, const AY& y0_in, const AX& x_in) {
        bind_shapes(y0_in, x_in);
        xt::xarray<T> y = out_shape();
        sequential_into(cell, y.data());
        return y;
    }

    /// Gradients of a loss L(y) through the recurrence: given dy = ∂L/∂y (y's shape) at the solution
    /// y, returns ∂L/∂y0 (y0's shape), ∂L/∂x (the inputs' shape) and ∂L/∂params[i].
    template <class AY, class AX, class AS, class AG>
    auto vjp(const Cell& cell, const AY& y0_in, const AX& x_in, const AS& y_in, const AG& dy_in,
             const scan_options& so = {}) {
        bind_shapes(y0_in, x_in);
        const xt::xarray<T> ys = y_in, dy = dy_in;
        const tensors::dims want = tensors::dims::of(out_shape().shape());
        if (!(tensors::dims::of(ys.shape()) == want) || !(tensors::dims::of(dy.shape()) == want)) {
            throw tensors::shape_error(detail::deer_op_name, "deer_vjp: y " + tensors::dims::of(ys.shape()).str() + " and dy " +
                                                             tensors::dims::of(dy.shape()).str() + " must have shape " +
                                                             want.str());
        }
        deer_grads<T, P> g;
        g.dy0 = xt::xarray<T>::from_shape(y0_shape_);
        g.dx = xt::xarray<T>::from_shape(x_shape_);
        shift(ys.data());
        if (T_ == 0) {
            std::fill(g.dy0.begin(), g.dy0.end(), T(0));
            std::fill(g.dx.begin(), g.dx.end(), T(0));
            for (std::size_t i = 0; i < P; ++i) g.dparams[i] = xt::zeros_like(cell.params[i]);
            return g;
        }
        forward(cell, yprev_.data(), x_.data(), rows_);
        jacobians(rows_, true);
        // λ_t = g_t + J_{t+1}ᵀ λ_{t+1}
        lambda_.resize(rows_ * n_);
        linear_recurrence_dense_reverse(jac_.data(), dy.data(), lambda_.data(), static_cast<T*>(nullptr), B_, T_, n_,
                                        n_ * n_, T_ * n_ * n_, so);
        auto& full = full_prog();
        call(full, cell, yprev_.data(), x_.data(), rows_, std::make_index_sequence<P>{});
        full.backward(lambda_.data());
        // ∂L/∂y0 = J_1ᵀ λ_1: the Yprev gradient of the first row of each sequence
        const auto& dprev = full.template grad_of<0>();
        for (std::size_t b = 0; b < B_; ++b)
            std::copy(dprev.data() + b * T_ * n_, dprev.data() + b * T_ * n_ + n_, g.dy0.data() + b * n_);
        const auto& dx = full.template grad_of<1>();
        if (dx.size() == g.dx.size())
            std::copy(dx.begin(), dx.end(), g.dx.begin());
        else
            std::fill(g.dx.begin(), g.dx.end(), T(0));
        read_param_grads(full, cell, g.dparams, std::make_index_sequence<P>{});
        return g;
    }

    /// The Jacobians ∂f/∂y [rows, n, n] of the cell at the rows of yprev [rows, n] and x [rows, m],
    /// derived by n VJPs of the batched cell (what newton uses; quasi takes their diagonals).
    template <class AP, class AX>
    xt::xarray<T> jacobian(const Cell& cell, const AP& yprev, const AX& x) {
        const xt::xarray<T> yp = yprev, xx = x;
        if (yp.dimension() != 2 || xx.dimension() != 2 || yp.shape(0) != xx.shape(0)) {
            throw tensors::shape_error(detail::deer_op_name, "jacobian: yprev must be [rows, n] and x [rows, m], got " +
                                                             tensors::dims::of(yp.shape()).str() + " and " +
                                                             tensors::dims::of(xx.shape()).str());
        }
        const std::size_t rows = yp.shape(0);
        n_ = yp.shape(1);
        m_ = xx.shape(1);
        forward(cell, yp.data(), xx.data(), rows);
        jacobians(rows, true);
        xt::xarray<T> J = xt::xarray<T>::from_shape({rows, n_, n_});
        std::copy(jac_.begin(), jac_.begin() + rows * n_ * n_, J.begin());
        return J;
    }

  private:
    using jac_program = tensors::program<T, E, std::integer_sequence<int, 0>>;
    using full_program =
        tensors::program<T, E, decltype(detail::wrt_all(std::make_integer_sequence<int, int(P) + 1>{}))>;

    std::unique_ptr<jac_program> jac_prog_ = std::make_unique<jac_program>();
    std::unique_ptr<full_program> full_;
    std::size_t B_ = 1, T_ = 0, n_ = 0, m_ = 0, rows_ = 0;
    xt::svector<std::size_t, 4> y0_shape_, x_shape_;
    bool batched_ = false;
    std::vector<T> y0_, x_, yprev_, jac_, seed_, ynew_, rhs_, lambda_, zeros_, xzero_;

    full_program& full_prog() {
        if (!full_) full_ = std::make_unique<full_program>();
        return *full_;
    }
    const T* y0(std::size_t b) const { return y0_.data() + b * n_; }

    template <class AY, class AX>
    void bind_shapes(const AY& y0_in, const AX& x_in) {
        const xt::xarray<T> y0 = y0_in, x = x_in;
        const tensors::dims yd = tensors::dims::of(y0.shape()), xd = tensors::dims::of(x.shape());
        auto bad = [&](const std::string& why) {
            return tensors::shape_error(detail::deer_op_name, why + " (y0 " + yd.str() + ", inputs " + xd.str() + ")");
        };
        if (xd.rank == 2 && yd.rank == 1) {
            batched_ = false;
            B_ = 1;
        } else if (xd.rank == 3 && yd.rank == 2) {
            batched_ = true;
            B_ = xd[0];
            if (yd[0] != B_) throw bad("y0 and the inputs disagree on the batch size");
        } else {
            throw bad("y0 [n] goes with inputs [T, m], y0 [batch, n] with inputs [batch, T, m]");
        }
        T_ = xd.at(-2);
        m_ = xd.at(-1);
        n_ = yd.at(-1);
        rows_ = B_ * T_;
        y0_shape_ = yd.xshape();
        x_shape_ = xd.xshape();
        y0_.assign(y0.begin(), y0.end());
        x_.assign(x.begin(), x.end());
        yprev_.resize(rows_ * n_);
    }
    xt::xarray<T> out_shape() const {
        return batched_ ? xt::xarray<T>::from_shape({B_, T_, n_}) : xt::xarray<T>::from_shape({T_, n_});
    }
    // Yprev: Y shifted one step within each sequence, y0 first
    void shift(const T* Y) {
        for (std::size_t b = 0; b < B_; ++b) {
            T* dst = yprev_.data() + b * T_ * n_;
            std::copy(y0(b), y0(b) + n_, dst);
            if (T_ > 1) std::copy(Y + b * T_ * n_, Y + (b * T_ + T_ - 1) * n_, dst + n_);
        }
    }
    template <class Prog, std::size_t... I>
    const T* call(Prog& p, const Cell& cell, const T* yprev, const T* x, std::size_t rows, std::index_sequence<I...>) {
        const auto& out =
            p.forward(detail::view2(yprev, rows, n_), detail::view2(x, rows, m_), cell.params[I]...);
        if (!(out.shape == tensors::dims{rows, n_})) {
            throw tensors::shape_error(detail::deer_op_name,
                                   "the cell must map a state [rows, n] = " + tensors::dims{rows, n_}.str() +
                                       " to a new state of that shape, "
                                       "but gives " +
                                       out.shape.str());
        }
        return out.data;
    }
    const T* forward(const Cell& cell, const T* yprev, const T* x, std::size_t rows) {
        return call(*jac_prog_, cell, yprev, x, rows, std::make_index_sequence<P>{});
    }
    // After forward on `rows` rows: the dense Jacobians [rows, n, n] or their diagonals [rows, n]
    // into jac_, by n VJPs with one-hot seeds.
    void jacobians(std::size_t rows, bool dense) {
        seed_.assign(rows * n_, T(0));
        jac_.resize(rows * (dense ? n_ * n_ : n_));
        for (std::size_t i = 0; i < n_; ++i) {
            for (std::size_t r = 0; r < rows; ++r) seed_[r * n_ + i] = 1;
            jac_prog_->backward(seed_.data());
            for (std::size_t r = 0; r < rows; ++r) seed_[r * n_ + i] = 0;
            const auto& g = jac_prog_->template grad_of<0>();
            if (g.size() != rows * n_) {  // the cell ignores its state: J = 0
                std::fill(jac_.begin(), jac_.end(), T(0));
                return;
            }
            const T* gp = g.data();
            if (dense) {
                for (std::size_t r = 0; r < rows; ++r)
                    std::copy(gp + r * n_, gp + (r + 1) * n_, &jac_[(r * n_ + i) * n_]);
            } else {
                for (std::size_t r = 0; r < rows; ++r) jac_[r * n_ + i] = gp[r * n_ + i];
            }
        }
    }
    void sequential_into(const Cell& cell, T* Y) {
        std::vector<T> state(y0_), xs(B_ * m_);
        for (std::size_t t = 0; t < T_; ++t) {
            for (std::size_t b = 0; b < B_; ++b)
                std::copy(x_.data() + (b * T_ + t) * m_, x_.data() + (b * T_ + t + 1) * m_, xs.data() + b * m_);
            const T* F = forward(cell, state.data(), xs.data(), B_);
            std::copy(F, F + B_ * n_, state.begin());
            for (std::size_t b = 0; b < B_; ++b) std::copy(F + b * n_, F + (b + 1) * n_, Y + (b * T_ + t) * n_);
        }
    }
    template <std::size_t... I>
    void read_param_grads(full_program& p, const Cell& cell, std::array<xt::xarray<T>, P>& d,
                          std::index_sequence<I...>) {
        (
            [&] {
                const auto& g = p.template grad_of<int(I) + 2>();
                if (g.size() == cell.params[I].size()) {
                    d[I] = xt::xarray<T>::from_shape(cell.params[I].shape());
                    std::copy(g.begin(), g.end(), d[I].begin());
                } else {
                    d[I] = xt::zeros_like(cell.params[I]);
                }
            }(),
            ...);
    }
};

/// Solves y_t = f(y_{t−1}, x_t; θ), t = 1..T, by DEER-type iteration (the method in opts; see the top
/// of ops/deer.hpp). y0: [n] or [batch, n]; inputs: [T, m] or [batch, T, m]; returns {y, report}
/// with y [T, n] / [batch, T, n]. Always returns the recurrence's trajectory (sequential fallback
/// when the iteration does not converge within the cap; report.fallback says so).
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
