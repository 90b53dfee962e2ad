// The options and results of attention (ops/attention.hpp): what a call computes, and what it returns.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <xtensor/xtensor.hpp>

#include "exprgrad/fields.hpp"
#include "exprgrad/ops/attention_scale.hpp"

namespace exprgrad::ops {

/// Options of the attention kernels. The run settings are listed once, in the BOOST_HANA_ADAPT_STRUCT at the
/// end of this file (what to_string prints); key_lengths is per batch, not a setting, and stays out of it.
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

// The one list of attention_options' settings. key_lengths is left out: it describes one batch's padding,
// not how a run is configured, and can hold thousands of entries.
BOOST_HANA_ADAPT_STRUCT(exprgrad::ops::attention_options, causal, normalize_qk, scale, qk_eps, threads);

namespace exprgrad::ops {

namespace detail {
// A field added to attention_options but not to the list above would be missing from every printout: the
// structured binding stops compiling when the struct's field count changes (6 = the 5 listed + key_lengths),
// the assertion when the list's does.
static_assert(field_count_v<attention_options> == 5, "attention_options: update BOOST_HANA_ADAPT_STRUCT");
[[maybe_unused]] inline void attention_options_field_guard(const attention_options& o) {
    [[maybe_unused]] const auto& [f1, f2, f3, f4, f5, f6] = o;
}
}  // namespace detail

/// The settings as `name=value` pairs in declaration order (exprgrad::fields_to_string; key_lengths is not
/// printed). The defaults print "causal=false normalize_qk=false scale=scale::inv_sqrt_d() qk_eps=1e-06
/// threads=0". For logs and run reports; not parsed back. Never throws except std::bad_alloc.
inline std::string to_string(const attention_options& o) { return fields_to_string(o); }

}  // namespace exprgrad::ops
