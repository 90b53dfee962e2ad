// DEER's engine (ops/deer.hpp describes the method): the compiled programs and workspace of the Newton
// and quasi-Newton iterations, the sequential fallback and the adjoint-scan VJP.
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

#include "exprgrad/ops/deer_cells.hpp"
#include "exprgrad/ops/deer_types.hpp"
#include "exprgrad/ops/scan.hpp"
#include "exprgrad/tensors/graph.hpp"
#include "exprgrad/tensors/layout.hpp"
#include "exprgrad/tensors/map.hpp"
#include "exprgrad/tensors/matmul.hpp"
#include "exprgrad/tensors/shape.hpp"

namespace exprgrad::ops {

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
        entry_ = "deer_solve";
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
        entry_ = "deer_sequential";
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
        entry_ = "deer_vjp";
        bind_shapes(y0_in, x_in);
        const xt::xarray<T> ys = y_in, dy = dy_in;
        const tensors::dims want = tensors::dims::of(out_shape().shape());
        if (!(tensors::dims::of(ys.shape()) == want) || !(tensors::dims::of(dy.shape()) == want)) {
            throw tensors::shape_error(detail::deer_op_name, "deer_vjp: y " + tensors::dims::of(ys.shape()).str() +
                                                                 " and dy " + tensors::dims::of(dy.shape()).str() +
                                                                 " must have shape " + want.str());
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
        entry_ = "deer_jacobian";
        entry_is_jacobian_ = true;
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
    const char* entry_ = "deer_solve";  // the public function called, for messages
    bool entry_is_jacobian_ = false;
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
        // A y0 or inputs width that does not fit the cell's parameters fails inside the cell (e.g. in its matmul):
        // say which entry point and which arguments, with their shapes, and keep the cell's own message.
        const auto& out = [&]() -> decltype(auto) {
            try {
                return p.forward(detail::view2(yprev, rows, n_), detail::view2(x, rows, m_), cell.params[I]...);
            } catch (const std::invalid_argument& e) {
                std::string params;
                ((params += (I ? ", " : "") + tensors::dims::of(cell.params[I].shape()).str()), ...);
                throw tensors::shape_error(entry_, std::string(entry_is_jacobian_ ? "yprev" : "y0") + " (state size " +
                                                       std::to_string(n_) + ") and " +
                                                       (entry_is_jacobian_ ? "x" : "inputs") + " (width " +
                                                       std::to_string(m_) + ") do not fit the cell's parameters " +
                                                       params + ": " + e.what());
            }
        }();
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

}  // namespace exprgrad::ops
