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

#include <xsimd/xsimd.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xbuilder.hpp>

#include "exprgrad/kernels/row_lanes.hpp"
#include "exprgrad/nn/optimizer_interface.hpp"
#include "exprgrad/nn/parameter_blocks.hpp"
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

enum class adam_decay { none, l2, decoupled };

// The per-step scalars, computed in double and rounded once to T.
template <class T>
struct adam_coefficients {
    T step_size, bc2_sqrt, b1, one_b1, b2, one_b2, eps, wd, shrink;
};

// One Adam/AdamW step on n elements, in SIMD batches; the last partial batch is padded (never read or
// written beyond n), so every element goes through the same instructions wherever it lies.
template <adam_decay Decay, class T>
void adam_block(T* th, const T* gr, T* m, T* v, std::size_t n, const adam_coefficients<T>& c) {
    using B = kernels::rows::batch<T>;
    constexpr std::size_t W = kernels::rows::lanes<T>;
    const B step_size(c.step_size), bc2_sqrt(c.bc2_sqrt), b1(c.b1), one_b1(c.one_b1), b2(c.b2), one_b2(c.one_b2),
        eps(c.eps), wd(c.wd), shrink(c.shrink);
    // PyTorch's single-tensor order: denom = sqrt(v) / sqrt(bc2) + eps; θ -= (γ / bc1) * (m / denom). The
    // fused multiply-adds are spelled out (xsimd::fma rounds twice where the target has no FMA): they are
    // the ones GCC contracted the scalar loop this replaces into, so the results are those of that loop.
    const auto update = [&](B& x, B g, B& mm, B& vv) {
        if constexpr (Decay == adam_decay::decoupled)
            x = x * shrink;
        else if constexpr (Decay == adam_decay::l2)
            g = xsimd::fma(wd, x, g);               // g + λ θ
        mm = xsimd::fma(b1, mm, one_b1 * g);        // β1 m + (1 − β1) g
        vv = xsimd::fma(b2, vv, (one_b2 * g) * g);  // β2 v + (1 − β2) g²
        const B denom = xsimd::sqrt(vv) / bc2_sqrt + eps;
        x = xsimd::fnma(step_size, mm / denom, x);  // θ − (γ / bc1) (m / denom)
    };
    std::size_t i = 0;
    for (; i + W <= n; i += W) {
        B x = B::load_unaligned(th + i), mm = B::load_unaligned(m + i), vv = B::load_unaligned(v + i);
        update(x, B::load_unaligned(gr + i), mm, vv);
        x.store_unaligned(th + i);
        mm.store_unaligned(m + i);
        vv.store_unaligned(v + i);
    }
    if (i < n) {
        B x = kernels::rows::load_tail(th, i, n, T(0)), mm = kernels::rows::load_tail(m, i, n, T(0)),
          vv = kernels::rows::load_tail(v, i, n, T(0));
        update(x, kernels::rows::load_tail(gr, i, n, T(0)), mm, vv);
        kernels::rows::store_tail(x, th, i, n);
        kernels::rows::store_tail(mm, m, i, n);
        kernels::rows::store_tail(vv, v, i, n);
    }
}

// One Adam/AdamW step over all parameters; `decoupled` selects AdamW's decay. The blocks of
// nn/parameter_blocks.hpp go to the thread pool (each element's update is independent of the others, so
// any split gives the same bits); runs of at least 16384 elements (about 8 µs with AVX2, where the square
// root and the two divisions bound the speed) pay for starting a task on a worker the previous region woke.
template <parameter_value T>
void adam_update(parameter_set<T>& params, std::vector<std::vector<xt::xarray<T>>>& buffers, const adam_options& o,
                 double lr_d, std::uint64_t t, bool decoupled) {
    const double td = static_cast<double>(t);
    const double bc1 = 1.0 - std::pow(o.beta1, td);
    const double bc2 = 1.0 - std::pow(o.beta2, td);
    const adam_coefficients<T> c{.step_size = static_cast<T>(lr_d / bc1),
                                 .bc2_sqrt = static_cast<T>(std::sqrt(bc2)),
                                 .b1 = static_cast<T>(o.beta1),
                                 .one_b1 = static_cast<T>(1.0 - o.beta1),
                                 .b2 = static_cast<T>(o.beta2),
                                 .one_b2 = static_cast<T>(1.0 - o.beta2),
                                 .eps = static_cast<T>(o.eps),
                                 .wd = static_cast<T>(o.weight_decay),
                                 .shrink = static_cast<T>(1.0 - lr_d * o.weight_decay)};
    const adam_decay decay = o.weight_decay == 0 ? adam_decay::none
                             : decoupled         ? adam_decay::decoupled
                                                 : adam_decay::l2;
    const auto blocks = parameter_blocks(params.size(), [&](std::size_t p) { return params[p].value.size(); });
    for_each_parameter_block(blocks, 16384, [&](std::size_t, const parameter_block& b) {
        T* th = params[b.param].value.data() + b.lo;
        const T* gr = params[b.param].grad.data() + b.lo;
        T* m = buffers[0][b.param].data() + b.lo;
        T* v = buffers[1][b.param].data() + b.lo;
        const std::size_t n = b.hi - b.lo;
        if (decay == adam_decay::none)
            adam_block<adam_decay::none>(th, gr, m, v, n, c);
        else if (decay == adam_decay::l2)
            adam_block<adam_decay::l2>(th, gr, m, v, n, c);
        else
            adam_block<adam_decay::decoupled>(th, gr, m, v, n, c);
    });
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
