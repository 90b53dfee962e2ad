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

#include <xsimd/xsimd.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xbuilder.hpp>

#include "exprgrad/kernels/row_lanes.hpp"
#include "exprgrad/nn/optimizer_interface.hpp"
#include "exprgrad/nn/parameter_blocks.hpp"
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

namespace detail {

enum class sgd_momentum { none, first, later };  // μ = 0; μ ≠ 0 at t = 1; μ ≠ 0 at t > 1

// The per-step scalars rounded to T: γ, λ, μ, 1 − τ.
template <class T>
struct sgd_coefficients {
    T lr, wd, mu, keep;
};

// One SGD step on n elements in SIMD batches; the last partial batch is padded (never read or written
// beyond n), so every element goes through the same instructions wherever it lies.
template <bool Decay, sgd_momentum Mom, bool Nesterov, class T>
void sgd_block(T* th, const T* gr, T* buf, std::size_t n, const sgd_coefficients<T>& c) {
    using B = kernels::rows::batch<T>;
    constexpr std::size_t W = kernels::rows::lanes<T>;
    const B lr(c.lr), wd(c.wd), mu(c.mu), keep(c.keep);
    // The fused multiply-adds are spelled out (xsimd::fma rounds twice where the target has no FMA): they are
    // the ones GCC contracted the scalar loop this replaces into, so the results are those of that loop.
    const auto update = [&](B& x, B g, B& b) {
        if constexpr (Decay) g = xsimd::fma(wd, x, g);  // g + λ θ
        if constexpr (Mom != sgd_momentum::none) {
            if constexpr (Mom == sgd_momentum::first)
                b = g;
            else
                b = xsimd::fma(mu, b, keep * g);  // μ b + (1 − τ) g
            if constexpr (Nesterov)
                g = xsimd::fma(mu, b, g);  // g + μ b
            else
                g = b;
        }
        x = xsimd::fnma(lr, g, x);  // θ − γ g
    };
    constexpr bool has_buf = Mom != sgd_momentum::none;
    std::size_t i = 0;
    for (; i + W <= n; i += W) {
        B x = B::load_unaligned(th + i), b = has_buf ? B::load_unaligned(buf + i) : B(T(0));
        update(x, B::load_unaligned(gr + i), b);
        x.store_unaligned(th + i);
        if constexpr (has_buf) b.store_unaligned(buf + i);
    }
    if (i < n) {
        B x = kernels::rows::load_tail(th, i, n, T(0)),
          b = has_buf ? kernels::rows::load_tail(buf, i, n, T(0)) : B(T(0));
        update(x, kernels::rows::load_tail(gr, i, n, T(0)), b);
        kernels::rows::store_tail(x, th, i, n);
        if constexpr (has_buf) kernels::rows::store_tail(b, buf, i, n);
    }
}

// sgd_block with the branches taken once per block instead of per element.
template <bool Decay, class T>
void sgd_dispatch_momentum(sgd_momentum mom, bool nesterov, T* th, const T* gr, T* buf, std::size_t n,
                           const sgd_coefficients<T>& c) {
    if (mom == sgd_momentum::none)
        sgd_block<Decay, sgd_momentum::none, false>(th, gr, buf, n, c);
    else if (mom == sgd_momentum::first && nesterov)
        sgd_block<Decay, sgd_momentum::first, true>(th, gr, buf, n, c);
    else if (mom == sgd_momentum::first)
        sgd_block<Decay, sgd_momentum::first, false>(th, gr, buf, n, c);
    else if (nesterov)
        sgd_block<Decay, sgd_momentum::later, true>(th, gr, buf, n, c);
    else
        sgd_block<Decay, sgd_momentum::later, false>(th, gr, buf, n, c);
}

template <class T>
void sgd_dispatch(bool decay, sgd_momentum mom, bool nesterov, T* th, const T* gr, T* buf, std::size_t n,
                  const sgd_coefficients<T>& c) {
    if (decay)
        sgd_dispatch_momentum<true>(mom, nesterov, th, gr, buf, n, c);
    else
        sgd_dispatch_momentum<false>(mom, nesterov, th, gr, buf, n, c);
}

}  // namespace detail

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
        const detail::sgd_coefficients<T> c{.lr = static_cast<T>(this->lr()),
                                            .wd = static_cast<T>(o_.weight_decay),
                                            .mu = static_cast<T>(o_.momentum),
                                            .keep = static_cast<T>(1.0 - o_.dampening)};
        const bool decay = o_.weight_decay != 0;
        const detail::sgd_momentum mom = o_.momentum == 0 ? detail::sgd_momentum::none
                                         : t == 1         ? detail::sgd_momentum::first
                                                          : detail::sgd_momentum::later;
        const auto blocks =
            detail::parameter_blocks(params.size(), [&](std::size_t p) { return params[p].value.size(); });
        // Each element's update is independent of the others, so any split of the blocks gives the same bits;
        // runs of at least 32768 elements (a few microseconds) pay for starting a task.
        detail::for_each_parameter_block(blocks, 32768, [&](std::size_t, const detail::parameter_block& b) {
            T* th = params[b.param].value.data() + b.lo;
            const T* gr = params[b.param].grad.data() + b.lo;
            T* buf = mom != detail::sgd_momentum::none ? this->buffers_[0][b.param].data() + b.lo : nullptr;
            detail::sgd_dispatch(decay, mom, o_.nesterov, th, gr, buf, b.hi - b.lo, c);
        });
    }

  private:
    sgd_options o_;
};

}  // namespace exprgrad::nn
