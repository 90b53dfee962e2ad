// nn::adam and nn::adamw (torch.optim.Adam, AdamW). See nn/optimizer.hpp for the conventions shared by
// the optimizers (arithmetic in T, NaN/Inf policy, state).
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

#include "exprgrad/nn/optimizer_interface.hpp"
#include "exprgrad/nn/parameters.hpp"

namespace exprgrad::nn {

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

}  // namespace exprgrad::nn
