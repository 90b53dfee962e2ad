// The options and results of attention (ops/attention.hpp): what a call computes, and what it returns.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <vector>

#include <xtensor/xtensor.hpp>

#include "exprgrad/ops/attention_scale.hpp"

namespace exprgrad::ops {

/// Options of the attention kernels.
struct attention_options {
    /// Causal mask aligned bottom-right (decoding with a key cache): query i attends key j iff
    /// j ≤ i + T_k − T_q (j ≤ i when T_q = T_k). Rows with i + T_k − T_q < 0 attend nothing.
    bool causal = false;
    /// L2-normalise q and k per row first, q̂ = q/√(‖q‖² + qk_eps²) (cosine attention); the VJP goes through it.
    bool normalize_qk = false;
    /// The multiplier on q·k (see attention_scale.hpp). n = the number of keys a row attends.
    scale_policy scale = scale::inv_sqrt_d();
    /// Key padding: keys j ≥ key_lengths[b] of batch entry b are masked (and never read). Empty: none masked.
    /// Otherwise one entry per batch entry, each ≤ T_k.
    std::vector<std::size_t> key_lengths{};
    /// ε of normalize_qk: > 0, with ε² a normal number of the value type (float: ε in [1.1e-19, 1.8e19];
    /// double: [1.5e-154, 1.3e154]), so that a zero row gives q̂ = 0/ε = 0 (a uniform softmax), never 0/0.
    /// Checked only under normalize_qk; 0, negative, NaN or out-of-range values throw std::invalid_argument.
    double qk_eps = 1e-6;
    /// Upper bound on the tasks run in parallel; 0: exprgrad::num_threads(). Results do not depend on it.
    std::size_t threads = 0;
};

/// attention_forward's result: out [B, H, T_q, d_v] and the per-row log-sum-exp of the scaled scores
/// lse [B, H, T_q] (−inf for a row that attends no key).
template <class T>
struct attention_result {
    xt::xtensor<T, 4> out;
    xt::xtensor<T, 3> lse;
};

/// attention_vjp's result: gradients of the loss with respect to q, k, v (shapes of q, k, v), and to the
/// multiplier: dscale = Σ_i ∂L/∂s_i (= ∂L/∂s for scale::fixed(s)) and dlog_scale = Σ_i s_i ∂L/∂s_i, the
/// gradient with respect to log s when every multiplier is scaled by one learnable factor (train log s, use
/// scale::fixed(exp(log_s)), and step log s by dlog_scale). Both are accumulated in double.
template <class T>
struct attention_grads {
    xt::xtensor<T, 4> dq;
    xt::xtensor<T, 4> dk;
    xt::xtensor<T, 4> dv;
    double dscale = 0.0;
    double dlog_scale = 0.0;
};

template <class T>
concept attention_value = std::same_as<T, float> || std::same_as<T, double>;

}  // namespace exprgrad::ops
