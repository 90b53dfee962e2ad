// nn::sgd: stochastic gradient descent with momentum (torch.optim.SGD). See nn/optimizer.hpp for the
// conventions shared by the optimizers (arithmetic in T, NaN/Inf policy, state).
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

}  // namespace exprgrad::nn
