// Optimizers (SGD with momentum, Adam, AdamW) and gradient clipping over a parameter_set.
//
//   nn::adamw<float> opt({.lr = 1e-3, .weight_decay = 0.01});
//   for (...) { compute grads; nn::clip_grad_norm(params, 1.0); opt.set_lr(sched.lr()); opt.step(params);
//               sched.step(); params.zero_grad(); }
//
// The update rules are those of the PyTorch documentation (torch.optim.SGD, Adam, AdamW, maximize =
// false, amsgrad = false, foreach/fused off), written out at each class. Per-element arithmetic is in
// the parameter type T, in the order PyTorch's single-tensor implementation uses; the scalar
// coefficients (bias corrections, step size) are computed in double and rounded once to T. The loops
// are plain and sequential, so a run is bit-for-bit reproducible.
//
// NaN/Inf policy: non-finite gradients are not checked and propagate into the moments and parameters,
// as in PyTorch (check the norm returned by clip_grad_norm to skip such steps). Invalid hyperparameters
// throw std::invalid_argument at construction; a gradient whose shape differs from its value's, or a
// parameter set that differs from the one the optimizer state belongs to, throws std::invalid_argument
// naming the parameter before anything is modified.
//
// State: the step count t and per-parameter buffers (SGD: momentum_buffer; Adam/AdamW: exp_avg,
// exp_avg_sq), bound to the parameter names at the first step(). state() and load_state() save and
// restore it (nn/checkpoint.hpp writes it to disk). Hyperparameters other than lr are fixed at
// construction: load_state() checks that they equal the saved ones (so a resumed run cannot silently
// change its optimizer) and restores lr.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <xtensor/xarray.hpp>
#include <xtensor/xbuilder.hpp>

#include "exprgrad/nn/parameters.hpp"

namespace exprgrad::nn {

/// A named scalar hyperparameter (booleans are 0 or 1).
struct hyperparameter {
    std::string name;
    double value;
};

/// Everything an optimizer needs to continue exactly where it stopped.
template <parameter_value T>
struct optimizer_state {
    std::string kind;                       ///< "sgd", "adam" or "adamw"
    std::uint64_t step = 0;                 ///< number of step() calls so far
    std::vector<hyperparameter> hyper;      ///< in the optimizer's fixed order, lr first
    std::vector<std::string> buffer_names;  ///< e.g. {"exp_avg", "exp_avg_sq"}
    std::vector<std::string> param_names;   ///< parameters the buffers belong to (empty before the first step)
    std::vector<std::vector<xt::xarray<T>>> buffers;  ///< buffers[b][p]: buffer b of parameter p
};

namespace detail {

inline std::string shape_str(const xt::svector<std::size_t, 4>& s) {
    std::ostringstream os;
    os << '(';
    for (std::size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
    os << ')';
    return os.str();
}
template <class S>
std::string any_shape_str(const S& s) {
    return shape_str(xt::svector<std::size_t, 4>(s.begin(), s.end()));
}

inline std::string num_str(double v) {
    std::ostringstream os;
    os.precision(17);
    os << v;
    return os.str();
}

inline void require_hyper(bool ok, const char* who, const char* name, double v, const char* domain) {
    if (!ok)
        throw std::invalid_argument(std::string("nn::") + who + ": " + name + " = " + num_str(v) +
                                    " is out of range (" + domain + ")");
}

}  // namespace detail

/// The common interface of the optimizers, so training code and checkpoints can take any of them.
template <parameter_value T>
class optimizer {
  public:
    virtual ~optimizer() = default;

    /// "sgd", "adam" or "adamw".
    virtual const char* kind() const noexcept = 0;

    /// Names of the per-parameter state buffers, in a fixed order.
    virtual std::vector<std::string> buffer_names() const = 0;

    /// The hyperparameters, lr first, in a fixed order.
    virtual std::vector<hyperparameter> hyperparameters() const = 0;

    /// Learning rate used by the next step().
    double lr() const noexcept { return lr_; }

    /// Sets the learning rate (finite, >= 0; otherwise throws std::invalid_argument).
    void set_lr(double lr) {
        detail::require_hyper(std::isfinite(lr) && lr >= 0.0, kind(), "lr", lr, "finite, >= 0");
        lr_ = lr;
    }

    /// Number of completed step() calls (t of the formulas after the step).
    std::uint64_t step_count() const noexcept { return step_; }

    /// Names of the parameters the state is bound to, in order (empty before the first step).
    const std::vector<std::string>& param_names() const noexcept { return names_; }

    /// The state buffers, buffers()[b][p], without copying (for checkpoint writers).
    const std::vector<std::vector<xt::xarray<T>>>& buffers() const noexcept { return buffers_; }

    /// Applies one update to every parameter of `params` from its `grad` (formulas at each class).
    /// The first call binds the state to the parameters' names and shapes; later calls (and calls after
    /// load_state) must pass a set with the same names in the same order and the same shapes, else
    /// std::invalid_argument.
    void step(parameter_set<T>& params) {
        check_params(params);
        if (!bound()) bind(params);
        ++step_;
        update(params, step_);
    }

    /// A copy of the whole state.
    optimizer_state<T> state() const {
        return optimizer_state<T>{kind(), step_, hyperparameters(), buffer_names(), names_, buffers_};
    }

    /// Throws std::invalid_argument if `s` was written by a differently configured optimizer: other
    /// kind, other hyperparameter names or values (lr excepted; it must only be finite and >= 0), or
    /// other buffer names. Ignores the step and the buffers themselves.
    void check_compatible(const optimizer_state<T>& s) const {
        const std::string who = std::string("nn::") + kind() + "::load_state: ";
        if (s.kind != kind()) throw std::invalid_argument(who + "state is for a \"" + s.kind + "\" optimizer");
        const auto mine = hyperparameters();
        if (s.hyper.size() != mine.size())
            throw std::invalid_argument(who + "state has " + std::to_string(s.hyper.size()) +
                                        " hyperparameters, expected " + std::to_string(mine.size()));
        for (std::size_t i = 0; i < mine.size(); ++i) {
            const auto& h = s.hyper[i];
            if (h.name != mine[i].name)
                throw std::invalid_argument(who + "hyperparameter " + std::to_string(i) + " is \"" + h.name +
                                            "\", expected \"" + mine[i].name + "\"");
            if (i == 0) {
                if (!(std::isfinite(h.value) && h.value >= 0.0))
                    throw std::invalid_argument(who + "saved lr = " + detail::num_str(h.value) +
                                                " is not finite and >= 0");
            } else if (!(h.value == mine[i].value)) {
                throw std::invalid_argument(who + "saved " + h.name + " = " + detail::num_str(h.value) +
                                            " differs from this optimizer's " + detail::num_str(mine[i].value));
            }
        }
        if (s.buffer_names != buffer_names()) throw std::invalid_argument(who + "state has other buffer names");
    }

    /// Throws std::invalid_argument describing the first problem if `s` cannot be loaded into this
    /// optimizer: check_compatible fails, the buffer lists are inconsistent with the parameter names,
    /// buffers of one parameter differ in shape, or a parameter name is invalid.
    void check_state(const optimizer_state<T>& s) const {
        check_compatible(s);
        const std::string who = std::string("nn::") + kind() + "::load_state: ";
        if (s.buffers.size() != s.buffer_names.size())
            throw std::invalid_argument(who + "state has " + std::to_string(s.buffers.size()) + " buffer lists for " +
                                        std::to_string(s.buffer_names.size()) + " buffer names");
        for (const auto& list : s.buffers)
            if (list.size() != s.param_names.size())
                throw std::invalid_argument(who + "a buffer list has " + std::to_string(list.size()) + " arrays for " +
                                            std::to_string(s.param_names.size()) + " parameters");
        for (std::size_t p = 0; p < s.param_names.size(); ++p) {
            if (!is_valid_parameter_name(s.param_names[p]))
                throw std::invalid_argument(who + "invalid parameter name \"" + s.param_names[p] + "\"");
            for (std::size_t b = 1; b < s.buffers.size(); ++b)
                if (s.buffers[b][p].shape() != s.buffers[0][p].shape())
                    throw std::invalid_argument(who + "buffers of \"" + s.param_names[p] + "\" differ in shape");
        }
    }

    /// Replaces the state by `s` after check_state(s) (strong guarantee: on a throw nothing changed).
    void load_state(optimizer_state<T> s) {
        check_state(s);
        lr_ = s.hyper[0].value;
        step_ = s.step;
        names_ = std::move(s.param_names);
        buffers_ = std::move(s.buffers);
    }

  protected:
    explicit optimizer(double lr) : lr_(lr) {}
    optimizer(const optimizer&) = default;
    optimizer& operator=(const optimizer&) = default;

    /// Applies step number t (1-based) to the bound parameters; buffers_ are allocated.
    virtual void update(parameter_set<T>& params, std::uint64_t t) = 0;

    // buffers_[b][p]; bound buffers start as zeros (SGD's momentum buffer is then overwritten by the
    // first gradient, as PyTorch's clone).
    std::vector<std::vector<xt::xarray<T>>> buffers_;

  private:
    void check_params(const parameter_set<T>& params) const {
        const std::string who = std::string("nn::") + kind() + "::step: ";
        for (const auto& p : params)
            if (p.grad.shape() != p.value.shape())
                throw std::invalid_argument(who + "parameter \"" + p.name + "\" has value shape " +
                                            detail::any_shape_str(p.value.shape()) + " but grad shape " +
                                            detail::any_shape_str(p.grad.shape()));
        if (!bound()) return;
        if (params.size() != names_.size())
            throw std::invalid_argument(who + "the optimizer state holds " + std::to_string(names_.size()) +
                                        " parameters, the set passed has " + std::to_string(params.size()));
        for (std::size_t i = 0; i < names_.size(); ++i) {
            if (params[i].name != names_[i])
                throw std::invalid_argument(who + "parameter " + std::to_string(i) + " is \"" + params[i].name +
                                            "\", the optimizer state has \"" + names_[i] + "\"");
            for (const auto& list : buffers_)
                if (list[i].shape() != params[i].value.shape())
                    throw std::invalid_argument(who + "parameter \"" + names_[i] + "\" has shape " +
                                                detail::any_shape_str(params[i].value.shape()) +
                                                ", its optimizer state has shape " +
                                                detail::any_shape_str(list[i].shape()));
        }
    }

    // The state is bound from the first step on (even to an empty set), so a later set must match it.
    bool bound() const noexcept { return step_ != 0 || !names_.empty(); }

    void bind(const parameter_set<T>& params) {
        std::vector<std::string> names;
        std::vector<std::vector<xt::xarray<T>>> bufs(buffer_names().size());
        for (const auto& p : params) names.push_back(p.name);
        for (auto& list : bufs)
            for (const auto& p : params) list.push_back(xt::zeros<T>(p.value.shape()));
        names_ = std::move(names);
        buffers_ = std::move(bufs);
    }

    double lr_;
    std::uint64_t step_ = 0;
    std::vector<std::string> names_;
};

/// Options of sgd; designated initializers read well: `nn::sgd<float> opt({.lr = 0.1, .momentum = 0.9});`
struct sgd_options {
    double lr = 1e-2;           ///< γ, finite >= 0
    double momentum = 0.0;      ///< μ, finite >= 0
    double dampening = 0.0;     ///< τ, finite in [0, 1]
    double weight_decay = 0.0;  ///< λ (L2 penalty added to the gradient), finite >= 0
    bool nesterov = false;      ///< needs momentum > 0 and dampening == 0
};

/// Stochastic gradient descent with momentum (torch.optim.SGD). At step t, for each parameter θ with
/// gradient g:
///
///     g ← g + λ θ                          (if λ ≠ 0)
///     b ← g                                (t = 1)       momentum_buffer, if μ ≠ 0
///     b ← μ b + (1 − τ) g                  (t > 1)
///     g ← g + μ b  (nesterov)  or  g ← b   (otherwise)   if μ ≠ 0
///     θ ← θ − γ g
///
/// Example (μ = 0.9, γ = 0.1, θ = 1, g = 0.5 twice): θ1 = 0.95, b2 = 0.95, θ2 = 0.855.
template <parameter_value T>
class sgd final : public optimizer<T> {
  public:
    explicit sgd(sgd_options o = {}) : optimizer<T>(o.lr), o_(o) {
        detail::require_hyper(std::isfinite(o.lr) && o.lr >= 0, "sgd", "lr", o.lr, "finite, >= 0");
        detail::require_hyper(std::isfinite(o.momentum) && o.momentum >= 0, "sgd", "momentum", o.momentum,
                              "finite, >= 0");
        detail::require_hyper(std::isfinite(o.dampening) && o.dampening >= 0 && o.dampening <= 1, "sgd", "dampening",
                              o.dampening, "[0, 1]");
        detail::require_hyper(std::isfinite(o.weight_decay) && o.weight_decay >= 0, "sgd", "weight_decay",
                              o.weight_decay, "finite, >= 0");
        if (o.nesterov && (o.momentum <= 0 || o.dampening != 0))
            throw std::invalid_argument("nn::sgd: nesterov needs momentum > 0 and dampening == 0");
    }

    const char* kind() const noexcept override { return "sgd"; }
    std::vector<std::string> buffer_names() const override {
        return o_.momentum != 0 ? std::vector<std::string>{"momentum_buffer"} : std::vector<std::string>{};
    }
    std::vector<hyperparameter> hyperparameters() const override {
        return {{"lr", this->lr()},
                {"momentum", o_.momentum},
                {"dampening", o_.dampening},
                {"weight_decay", o_.weight_decay},
                {"nesterov", o_.nesterov ? 1.0 : 0.0}};
    }
    const sgd_options& options() const noexcept { return o_; }

  protected:
    void update(parameter_set<T>& params, std::uint64_t t) override {
        const T lr = static_cast<T>(this->lr());
        const T wd = static_cast<T>(o_.weight_decay);
        const T mu = static_cast<T>(o_.momentum);
        const T keep = static_cast<T>(1.0 - o_.dampening);
        const bool use_momentum = o_.momentum != 0;
        for (std::size_t p = 0; p < params.size(); ++p) {
            T* th = params[p].value.data();
            const T* gr = params[p].grad.data();
            const std::size_t n = params[p].value.size();
            T* buf = use_momentum ? this->buffers_[0][p].data() : nullptr;
            for (std::size_t i = 0; i < n; ++i) {
                T g = gr[i];
                if (o_.weight_decay != 0) g = g + wd * th[i];
                if (use_momentum) {
                    buf[i] = t == 1 ? g : mu * buf[i] + keep * g;
                    g = o_.nesterov ? g + mu * buf[i] : buf[i];
                }
                th[i] = th[i] - lr * g;
            }
        }
    }

  private:
    sgd_options o_;
};

/// Options of adam and adamw.
struct adam_options {
    double lr = 1e-3;           ///< γ, finite >= 0
    double beta1 = 0.9;         ///< β1 in [0, 1)
    double beta2 = 0.999;       ///< β2 in [0, 1)
    double eps = 1e-8;          ///< ε, finite >= 0
    double weight_decay = 0.0;  ///< λ, finite >= 0 (adam: L2 added to the gradient; adamw: decoupled)
};

namespace detail {

inline void check_adam(const adam_options& o, const char* who) {
    require_hyper(std::isfinite(o.lr) && o.lr >= 0, who, "lr", o.lr, "finite, >= 0");
    require_hyper(o.beta1 >= 0 && o.beta1 < 1, who, "beta1", o.beta1, "[0, 1)");
    require_hyper(o.beta2 >= 0 && o.beta2 < 1, who, "beta2", o.beta2, "[0, 1)");
    require_hyper(std::isfinite(o.eps) && o.eps >= 0, who, "eps", o.eps, "finite, >= 0");
    require_hyper(std::isfinite(o.weight_decay) && o.weight_decay >= 0, who, "weight_decay", o.weight_decay,
                  "finite, >= 0");
}

// One Adam/AdamW step over all parameters; `decoupled` selects AdamW's decay.
template <parameter_value T>
void adam_update(parameter_set<T>& params, std::vector<std::vector<xt::xarray<T>>>& buffers, const adam_options& o,
                 double lr_d, std::uint64_t t, bool decoupled) {
    const double td = static_cast<double>(t);
    const double bc1 = 1.0 - std::pow(o.beta1, td);
    const double bc2 = 1.0 - std::pow(o.beta2, td);
    // PyTorch's single-tensor order: denom = sqrt(v) / sqrt(bc2) + eps; θ -= (γ / bc1) * m / denom.
    const T step_size = static_cast<T>(lr_d / bc1);
    const T bc2_sqrt = static_cast<T>(std::sqrt(bc2));
    const T b1 = static_cast<T>(o.beta1), one_b1 = static_cast<T>(1.0 - o.beta1);
    const T b2 = static_cast<T>(o.beta2), one_b2 = static_cast<T>(1.0 - o.beta2);
    const T eps = static_cast<T>(o.eps);
    const T wd = static_cast<T>(o.weight_decay);
    const T shrink = static_cast<T>(1.0 - lr_d * o.weight_decay);
    const bool decay = o.weight_decay != 0;
    for (std::size_t p = 0; p < params.size(); ++p) {
        T* th = params[p].value.data();
        const T* gr = params[p].grad.data();
        T* m = buffers[0][p].data();
        T* v = buffers[1][p].data();
        const std::size_t n = params[p].value.size();
        for (std::size_t i = 0; i < n; ++i) {
            T g = gr[i];
            if (decay) {
                if (decoupled)
                    th[i] = th[i] * shrink;
                else
                    g = g + wd * th[i];
            }
            m[i] = b1 * m[i] + one_b1 * g;
            v[i] = b2 * v[i] + one_b2 * g * g;
            const T denom = std::sqrt(v[i]) / bc2_sqrt + eps;
            th[i] = th[i] - step_size * (m[i] / denom);
        }
    }
}

}  // namespace detail

/// Adam (torch.optim.Adam, Kingma & Ba 2015). At step t, for each parameter θ with gradient g:
///
///     g ← g + λ θ                        (if λ ≠ 0: L2 penalty, coupled with the moments)
///     m ← β1 m + (1 − β1) g              exp_avg, starts at 0
///     v ← β2 v + (1 − β2) g²             exp_avg_sq, starts at 0
///     m̂ = m / (1 − β1^t),  v̂ = v / (1 − β2^t)
///     θ ← θ − γ m̂ / (√v̂ + ε)
///
/// evaluated as θ ← θ − (γ / (1 − β1^t)) · m / (√v / √(1 − β2^t) + ε), like PyTorch.
/// Example (γ = 0.1, θ = 1, g = 0.5, t = 1): m̂ = 0.5, v̂ = 0.25, θ = 1 − 0.1 · 0.5 / (0.5 + 1e-8) ≈ 0.9.
template <parameter_value T>
class adam final : public optimizer<T> {
  public:
    explicit adam(adam_options o = {}) : optimizer<T>(o.lr), o_(o) { detail::check_adam(o, "adam"); }

    const char* kind() const noexcept override { return "adam"; }
    std::vector<std::string> buffer_names() const override { return {"exp_avg", "exp_avg_sq"}; }
    std::vector<hyperparameter> hyperparameters() const override {
        return {{"lr", this->lr()},
                {"beta1", o_.beta1},
                {"beta2", o_.beta2},
                {"eps", o_.eps},
                {"weight_decay", o_.weight_decay}};
    }
    const adam_options& options() const noexcept { return o_; }

  protected:
    void update(parameter_set<T>& params, std::uint64_t t) override {
        detail::adam_update(params, this->buffers_, o_, this->lr(), t, false);
    }

  private:
    adam_options o_;
};

/// AdamW (torch.optim.AdamW, Loshchilov & Hutter 2019): Adam with decoupled weight decay. At step t:
///
///     θ ← θ (1 − γ λ)                    (decay applied to the parameter, not the gradient)
///     m ← β1 m + (1 − β1) g,  v ← β2 v + (1 − β2) g²
///     θ ← θ − γ m̂ / (√v̂ + ε)            with m̂, v̂ as in adam
///
/// The default λ is 0.01, as in PyTorch.
template <parameter_value T>
class adamw final : public optimizer<T> {
  public:
    explicit adamw(adam_options o = with_default_decay()) : optimizer<T>(o.lr), o_(o) {
        detail::check_adam(o, "adamw");
    }

    /// adam_options with weight_decay = 0.01 (AdamW's customary default).
    static adam_options with_default_decay() {
        adam_options o;
        o.weight_decay = 1e-2;
        return o;
    }

    const char* kind() const noexcept override { return "adamw"; }
    std::vector<std::string> buffer_names() const override { return {"exp_avg", "exp_avg_sq"}; }
    std::vector<hyperparameter> hyperparameters() const override {
        return {{"lr", this->lr()},
                {"beta1", o_.beta1},
                {"beta2", o_.beta2},
                {"eps", o_.eps},
                {"weight_decay", o_.weight_decay}};
    }
    const adam_options& options() const noexcept { return o_; }

  protected:
    void update(parameter_set<T>& params, std::uint64_t t) override {
        detail::adam_update(params, this->buffers_, o_, this->lr(), t, true);
    }

  private:
    adam_options o_;
};

namespace detail {

// Sum of squares of every gradient element, accumulated in double in parameter order. When it
// overflows (only possible for double gradients beyond ~1e154) and no element is NaN, the norm is
// recomputed as s * sqrt(Σ (g / s)²) with s = max |g|, so it stays finite whenever it is representable.
template <parameter_value T>
double grad_l2_norm(const parameter_set<T>& params) {
    double sum = 0.0;
    for (const auto& p : params)
        for (const T g : p.grad) sum += static_cast<double>(g) * static_cast<double>(g);
    if (std::isfinite(sum) || std::isnan(sum)) return std::sqrt(sum);
    double scale = 0.0;
    for (const auto& p : params)
        for (const T g : p.grad) scale = std::max(scale, std::abs(static_cast<double>(g)));
    if (!std::isfinite(scale)) return scale;  // an infinite gradient: the norm is +inf
    double scaled = 0.0;
    for (const auto& p : params)
        for (const T g : p.grad) {
            const double r = static_cast<double>(g) / scale;
            scaled += r * r;
        }
    return scale * std::sqrt(scaled);
}

}  // namespace detail

/// Clips the gradients by their global L2 norm, like torch.nn.utils.clip_grad_norm_: with
/// n = sqrt(Σ over all gradient elements of g²) (accumulated in double) and c = max_norm / (n + 1e-6),
/// every gradient is multiplied by c (rounded to T) if c < 1, and left unchanged otherwise. Returns n,
/// the norm before clipping.
/// Domain: max_norm finite and >= 0, else std::invalid_argument. If n is NaN or Inf, the gradients are
/// left unchanged and n is returned (so the caller can skip the step), or, with error_if_nonfinite,
/// std::domain_error is thrown. Example: grads {3, 4}, max_norm 1: returns 5, grads become ≈ {0.6, 0.8}.
template <parameter_value T>
double clip_grad_norm(parameter_set<T>& params, double max_norm, bool error_if_nonfinite = false) {
    if (!(std::isfinite(max_norm) && max_norm >= 0.0))
        throw std::invalid_argument("nn::clip_grad_norm: max_norm = " + detail::num_str(max_norm) +
                                    " must be finite and >= 0");
    const double norm = detail::grad_l2_norm(params);
    if (!std::isfinite(norm)) {
        if (error_if_nonfinite)
            throw std::domain_error("nn::clip_grad_norm: the total gradient norm is " + detail::num_str(norm));
        return norm;
    }
    const double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0) {
        const T c = static_cast<T>(coef);
        for (auto& p : params) {
            T* g = p.grad.data();
            const std::size_t n = p.grad.size();
            for (std::size_t i = 0; i < n; ++i) g[i] = g[i] * c;
        }
    }
    return norm;
}

/// Clamps every gradient element to [-clip_value, clip_value], like torch.nn.utils.clip_grad_value_.
/// Domain: clip_value finite and >= 0, else std::invalid_argument. NaN elements stay NaN; ±Inf become
/// ±clip_value. Example: grads {-3, 0.5, 2}, clip 1: {-1, 0.5, 1}.
template <parameter_value T>
void clip_grad_value(parameter_set<T>& params, double clip_value) {
    if (!(std::isfinite(clip_value) && clip_value >= 0.0))
        throw std::invalid_argument("nn::clip_grad_value: clip_value = " + detail::num_str(clip_value) +
                                    " must be finite and >= 0");
    const T hi = static_cast<T>(clip_value), lo = -hi;
    for (auto& p : params) {
        T* g = p.grad.data();
        const std::size_t n = p.grad.size();
        for (std::size_t i = 0; i < n; ++i) g[i] = g[i] < lo ? lo : (g[i] > hi ? hi : g[i]);
    }
}

/// The global L2 norm of all gradients without modifying them (as clip_grad_norm computes it).
template <parameter_value T>
double grad_norm(const parameter_set<T>& params) {
    return detail::grad_l2_norm(params);
}

}  // namespace exprgrad::nn
