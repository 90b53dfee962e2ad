// Multi-head scaled dot-product attention: eager forward and VJP kernels on xtensor arrays.
//
//   out[b,h,i,:] = Σ_j p_ij v[b,h,j,:],   p_ij = softmax_j(s_i · q[b,h,i,:]·k[b,h,j,:]) over the keys row i attends
//
// with the multiplier s_i given by a scale policy (ops/attention_scale.hpp). Blocked online softmax (the
// flash-attention scheme): neither pass stores a T×T matrix; the forward keeps the output and the per-row
// log-sum-exp, the backward recomputes the scores block by block. Inner loops are xsimd register tiles; work
// is spread over batch × heads (and over query or key blocks when there are fewer heads than threads) with
// exprgrad::parallel_for, and every output element is computed by one task in a fixed order, so results are
// bit-identical for every thread count.
//
// These kernels are what the attention tensor-expression node wraps: attention_forward_into and
// attention_vjp_into write into caller-owned arrays and reuse a caller-owned attention_workspace (a compiled
// program's buffers, so a call allocates nothing), and the VJP takes the forward's out and lse.
//
// Reference, masks, NaN/Inf policy and benchmarks: docs/attention.md; the scale policies follow
// https://kexue.fm/archives/9812.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <vector>

#include <xtensor/xtensor.hpp>

#include "exprgrad/kernels/parallel.hpp"
#include "exprgrad/ops/attention_options.hpp"
#include "exprgrad/ops/attention_view.hpp"
// the kernels, in five files: problem (sizes, checks), pack, forward, checks (overflow diagnosis), backward
#include "exprgrad/ops/detail/attention_backward.hpp"

namespace exprgrad::ops {

/// Memory the kernels reuse between calls: packed operands (O(T·d) per head) and per-task scratch. It only
/// grows. Pass one to the *_into functions to own it (a compiled program does); the other functions use one
/// per calling thread. Not to be shared by concurrent calls.
template <attention_value T>
struct attention_workspace {
    detail::attention::problem<T> problem;
    std::vector<detail::attention::forward_scratch<T>> forward_tasks;
    std::vector<detail::attention::backward_scratch<T>> backward_tasks;
    std::vector<double> row_dscale;
};

namespace detail::attention {

template <class T>
attention_workspace<T>& thread_workspace() {
    thread_local attention_workspace<T> ws;
    return ws;
}

}  // namespace detail::attention

/// Forward pass over views of the caller's arrays (no copy of q, k, v, which may be strided views), writing the
/// rows of out [B, H, T_q, d_v] where out_rows says (e.g. the heads merged back into a [B, T_q, H·d_v] array:
/// {T_q·H·d_v, d_v, H·d_v}) and lse [B, H, T_q] row-major. Same contract as attention_forward; out and lse must not
/// overlap q, k or v, and out's rows must not overlap each other.
/// Example: with merged = attention_rows{T * H * dv, dv, H * dv},
/// `attention_forward_into(qv, kv, vv, opts, y.data(), merged, lse.data(), ws);`
template <attention_value T>
void attention_forward_into(const attention_view<T, 4>& q, const attention_view<T, 4>& k,
                            const attention_view<T, 4>& v, const attention_options& opts, T* out,
                            const attention_rows& out_rows, T* lse,
                            attention_workspace<T>& ws = detail::attention::thread_workspace<T>()) {
    namespace A = detail::attention;
    A::check_inputs("attention_forward", q, k, v, opts);
    auto& P = ws.problem;
    A::prepare(q, k, v, opts, false, P);
    if (A::forward(P, opts, ws.forward_tasks, out, out_rows, lse))
        A::check_forward_overflow("attention_forward", P, q, k, v, lse);
}

/// Forward pass over views of the caller's arrays (no copy of q, k, v), writing out [B, H, T_q, d_v] and
/// lse [B, H, T_q] into caller-owned buffers of at least that many elements (row-major). Same contract as
/// attention_forward; out and lse must not overlap q, k or v. This is the entry point the attention
/// tensor-expression node calls with the program's buffers and its workspace.
/// Example: `attention_forward_into(view_of(q), view_of(k), view_of(v), opts, out_buf.data(), lse_buf.data(), ws);`
template <attention_value T>
void attention_forward_into(const attention_view<T, 4>& q, const attention_view<T, 4>& k,
                            const attention_view<T, 4>& v, const attention_options& opts, T* out, T* lse,
                            attention_workspace<T>& ws = detail::attention::thread_workspace<T>()) {
    attention_forward_into(q, k, v, opts, out, attention_rows::row_major(q.dims[1], q.dims[2], v.dims[3]), lse, ws);
}

/// Forward pass into caller-owned arrays (resized when their shapes differ): out [B, H, T_q, d_v] and
/// lse [B, H, T_q]. Same contract as attention_forward; out and lse must not alias q, k or v.
template <attention_value T>
void attention_forward_into(const xt::xtensor<T, 4>& q, const xt::xtensor<T, 4>& k, const xt::xtensor<T, 4>& v,
                            const attention_options& opts, xt::xtensor<T, 4>& out, xt::xtensor<T, 3>& lse,
                            attention_workspace<T>& ws = detail::attention::thread_workspace<T>()) {
    namespace A = detail::attention;
    const auto qv = view_of(q), kv = view_of(k), vv = view_of(v);
    A::check_inputs("attention_forward", qv, kv, vv, opts);  // before sizing out and lse from the shapes
    A::fit(out, std::array<std::size_t, 4>{q.shape()[0], q.shape()[1], q.shape()[2], v.shape()[3]});
    A::fit(lse, std::array<std::size_t, 3>{q.shape()[0], q.shape()[1], q.shape()[2]});
    attention_forward_into(qv, kv, vv, opts, out.data(), lse.data(), ws);
}

/// Multi-head scaled dot-product attention, forward: for q [B, H, T_q, d], k [B, H, T_k, d], v [B, H, T_k, d_v]
/// (float or double), out[b,h,i] = Σ_j p_ij v[b,h,j] with p_i = softmax_j(s_i q̂_i·k̂_j) over the keys row i
/// attends (causal: j ≤ i + T_k − T_q; key padding: j < key_lengths[b]); q̂ = q, k̂ = k unless normalize_qk.
/// Returns {out, lse}, lse_i = log Σ_j exp(s_i q̂_i·k̂_j) over the attended keys.
/// - A row attending no key (key_lengths[b] = 0, or causal rows with i + T_k − T_q < 0) gets out = 0 and
///   lse = −inf; its keys and values are not read.
/// - Stable for scores s·q·k up to ±1e4 and beyond, as long as they fit the value type (the online maximum
///   is subtracted before exp).
/// - Scores that overflow the type (|s·q̂·k̂| or one of its products beyond float's 3.4e38, e.g. q = k = 1e20
///   in float) cannot give a finite lse: the call throws std::overflow_error naming the row, "exprgrad::
///   attention_forward: scores overflow float at batch 0 head 1 row 3, whose inputs are finite: ...", rather
///   than return NaN. Detected from the lse the kernel computes (one compare per row); the row's inputs are
///   scanned only then, to tell overflow from NaN propagation.
/// - Masked keys are never multiplied in: NaN or Inf in a masked key or value leaves the row finite. A NaN or
///   Inf in q, k or v that a row does use makes that row's out (and lse) NaN or Inf (no exception).
/// - Throws std::invalid_argument naming the op and the shapes on mismatched shapes, d = 0, bad key_lengths,
///   a non-finite scale::fixed(s) or, under normalize_qk, a qk_eps that is not > 0 with a normal qk_eps²
///   (see attention_options::qk_eps; a zero row then gives q̂ = 0, a uniform softmax).
/// Example: `auto [out, lse] = attention_forward(q, k, v, {.causal = true});`
template <attention_value T>
attention_result<T> attention_forward(const xt::xtensor<T, 4>& q, const xt::xtensor<T, 4>& k,
                                      const xt::xtensor<T, 4>& v, const attention_options& opts = {}) {
    attention_result<T> r;
    attention_forward_into(q, k, v, opts, r.out, r.lse);
    return r;
}

/// The output of attention_forward only. Example: `auto out = attention(q, k, v, opts);`
template <attention_value T>
xt::xtensor<T, 4> attention(const xt::xtensor<T, 4>& q, const xt::xtensor<T, 4>& k, const xt::xtensor<T, 4>& v,
                            const attention_options& opts = {}) {
    return attention_forward(q, k, v, opts).out;
}

/// What attention_vjp_into may take from its workspace.
enum class attention_reuse {
    /// Pack q and k again (always correct).
    none,
    /// The caller promises that q, k and v are the arrays of the last attention_forward_into on this workspace,
    /// holding the same values: its packed s·q̂, k̂ᵀ, multipliers and key counts are reused (a compiled
    /// program's forward and backward of one node). Checked where it is cheap: other array addresses, shapes or
    /// options than the forward's (or another call on the workspace since) make the VJP pack again. Changed
    /// values, or a new array that happens to occupy a freed array's address, are not detected and give wrong
    /// gradients.
    forward,
};

/// ∂L/∂s summed over rows and ∂L/∂log s, what the view entry point of the VJP returns besides dq, dk, dv.
struct attention_scale_grads {
    double dscale = 0.0;
    double dlog_scale = 0.0;
};

/// The VJP with each gradient's rows where dq_rows, dk_rows, dv_rows say (strided rows of the caller's buffers, e.g.
/// the q, k, v heads of a [B, T, 3·H·d] projection's gradient); q, k, v, out and dout may be strided views. Same
/// contract as the row-major version below; every row of dq, dk, dv is written, nothing between them.
/// Example: the heads of qkv [B, T, 3·H·d] and of its gradient g: with r = attention_rows{3 * T * H * d, d, 3 * H * d},
/// `attention_vjp_into(qv, kv, vv, outv, lsev, doutv, o, g, r, g + H * d, r, g + 2 * H * d, r, ws);`
template <attention_value T>
attention_scale_grads attention_vjp_into(const attention_view<T, 4>& q, const attention_view<T, 4>& k,
                                         const attention_view<T, 4>& v, const attention_view<T, 4>& out,
                                         const attention_view<T, 3>& lse, const attention_view<T, 4>& dout,
                                         const attention_options& opts, T* dq, const attention_rows& dq_rows, T* dk,
                                         const attention_rows& dk_rows, T* dv, const attention_rows& dv_rows,
                                         attention_workspace<T>& ws = detail::attention::thread_workspace<T>(),
                                         attention_reuse reuse = attention_reuse::none) {
    namespace A = detail::attention;
    constexpr const char* op = "attention_vjp";
    A::check_inputs(op, q, k, v, opts);
    const auto &qs = q.shape(), &vs = v.shape();
    const std::array<std::size_t, 4> os{qs[0], qs[1], qs[2], vs[3]};
    if (!std::equal(os.begin(), os.end(), out.shape().begin()))
        throw A::shape_mismatch(op, "out must have shape [B, H, T_q, d_v] from q and v", "out", out.shape(), "q", qs);
    if (!std::equal(os.begin(), os.end(), dout.shape().begin()))
        throw A::shape_mismatch(op, "dout must have the shape of out", "dout", dout.shape(), "out", out.shape());
    if (lse.shape()[0] != qs[0] || lse.shape()[1] != qs[1] || lse.shape()[2] != qs[2])
        throw A::shape_mismatch(op, "lse must have shape [B, H, T_q]", "lse", lse.shape(), "q", qs);
    auto& P = ws.problem;
    A::prepare(q, k, v, opts, true, P, reuse == attention_reuse::forward);
    const std::size_t BH = P.heads();
    const bool copy_dout = P.dvp != P.dv;  // else the kernels read dout itself, strided or not
    if (copy_dout) A::grow(P.dOp, BH * P.Tq * P.dvp);
    P.dop = copy_dout ? P.dOp.data() : dout.data();
    P.dop_rows = copy_dout ? attention_rows::row_major(P.H, P.Tq, P.dvp) : dout.rows();
    A::grow(P.Drow, BH * P.Tq);
    kernels::parallel_for(0, BH, A::packing_grain(P.Tq, P.dv), [&](std::size_t lo, std::size_t hi) {
        for (std::size_t bh = lo; bh < hi; ++bh)
            for (std::size_t i = 0; i < P.Tq; ++i) {
                const T* src = dout.row(bh, i);
                if (copy_dout) {
                    T* dst = P.dOp.data() + (bh * P.Tq + i) * P.dvp;
                    std::copy(src, src + P.dv, dst);
                    std::fill(dst + P.dv, dst + P.dvp, T(0));
                }
                // D_i = dO_i·O_i = Σ_j p_ij dP_ij: the softmax VJP's inner product, from the forward's output.
                P.Drow[bh * P.Tq + i] = kernels::rows::dot(src, out.row(bh, i), P.dv);
            }
    });
    for (std::size_t bh = 0; bh < BH; ++bh) {  // keys no row attends keep a zero gradient (the others are written)
        for (std::size_t j = P.kend[bh / P.H]; j < P.Tk; ++j) {
            std::fill_n(dk + dk_rows.at(bh, P.H, j), P.d, T(0));
            std::fill_n(dv + dv_rows.at(bh, P.H, j), P.dv, T(0));
        }
    }
    auto& rs = ws.row_dscale;
    rs.assign(BH * P.Tq, 0.0);
    A::backward(P, opts, ws.backward_tasks, lse.data(), dq, dq_rows, dk, dk_rows, dv, dv_rows, rs.data());
    attention_scale_grads g;
    for (std::size_t bh = 0; bh < BH; ++bh)
        for (std::size_t i = 0; i < P.Tq; ++i) {
            const double r = rs[bh * P.Tq + i];
            g.dscale += r;
            g.dlog_scale += static_cast<double>(P.srow[(bh / P.H) * P.Tq + i]) * r;
        }
    // A row's overflow makes its ∂L/∂s_i, and so dscale, non-finite: one compare per call.
    if (!std::isfinite(g.dscale)) A::check_vjp_overflow(op, P, q, k, v, out, lse, dout, rs.data());
    return g;
}

/// VJP over views of the caller's arrays (no copy of q, k, v, out, lse, dout), writing dq [B, H, T_q, d],
/// dk [B, H, T_k, d] and dv [B, H, T_k, d_v] into caller-owned buffers of that many elements (row-major, every
/// element written, none read) and returning {dscale, dlog_scale}. Same contract as attention_vjp; the gradient
/// buffers must not overlap each other or the inputs; `reuse` as documented at attention_reuse (the views'
/// pointers, shapes and strides are what it compares). This is the entry point the attention node calls.
/// Example: `auto s = attention_vjp_into(qv, kv, vv, outv, lsev, doutv, o, dq, dk, dv, ws, attention_reuse::forward);`
template <attention_value T>
attention_scale_grads attention_vjp_into(const attention_view<T, 4>& q, const attention_view<T, 4>& k,
                                         const attention_view<T, 4>& v, const attention_view<T, 4>& out,
                                         const attention_view<T, 3>& lse, const attention_view<T, 4>& dout,
                                         const attention_options& opts, T* dq, T* dk, T* dv,
                                         attention_workspace<T>& ws = detail::attention::thread_workspace<T>(),
                                         attention_reuse reuse = attention_reuse::none) {
    const auto &qs = q.shape(), &ks = k.shape(), &vs = v.shape();
    return attention_vjp_into(q, k, v, out, lse, dout, opts, dq, attention_rows::row_major(qs[1], qs[2], qs[3]), dk,
                              attention_rows::row_major(ks[1], ks[2], ks[3]), dv,
                              attention_rows::row_major(vs[1], vs[2], vs[3]), ws, reuse);
}


/// VJP into a caller-owned result (arrays resized when their shapes differ). Same contract as attention_vjp;
/// `reuse` as documented at attention_reuse.
/// Example: `attention_forward_into(q, k, v, o, out, lse, ws);
///           attention_vjp_into(q, k, v, out, lse, dout, o, g, ws, attention_reuse::forward);`
template <attention_value T>
void attention_vjp_into(const xt::xtensor<T, 4>& q, const xt::xtensor<T, 4>& k, const xt::xtensor<T, 4>& v,
                        const xt::xtensor<T, 4>& out, const xt::xtensor<T, 3>& lse, const xt::xtensor<T, 4>& dout,
                        const attention_options& opts, attention_grads<T>& g,
                        attention_workspace<T>& ws = detail::attention::thread_workspace<T>(),
                        attention_reuse reuse = attention_reuse::none) {
    namespace A = detail::attention;
    const auto qv = view_of(q), kv = view_of(k), vv = view_of(v);
    A::check_inputs("attention_vjp", qv, kv, vv, opts);  // before sizing the gradients from the shapes
    A::fit(g.dq, q.shape());
    A::fit(g.dk, k.shape());
    A::fit(g.dv, v.shape());
    const attention_scale_grads s = attention_vjp_into(qv, kv, vv, view_of(out), view_of(lse), view_of(dout), opts,
                                                       g.dq.data(), g.dk.data(), g.dv.data(), ws, reuse);
    g.dscale = s.dscale;
    g.dlog_scale = s.dlog_scale;
}

/// The analytic VJP of attention_forward: given q, k, v, the forward's out and lse, and dout = ∂L/∂out, returns
/// {dq, dk, dv, dscale, dlog_scale}. Recomputes the scores block by block (no T×T storage):
///   p_ij = exp(s_i q̂_i·k̂_j − lse_i),  dS_ij = p_ij (dout_i·v_j − dout_i·out_i),
///   dq̂_i = s_i Σ_j dS_ij k̂_j,  dk̂_j = Σ_i s_i dS_ij q̂_i,  dv_j = Σ_i p_ij dout_i,  ∂L/∂s_i = Σ_j dS_ij q̂_i·k̂_j,
/// then dq, dk through the normalisation under normalize_qk: dq = (dq̂ − q̂(q̂·dq̂))/√(‖q‖² + ε²).
/// The policy's multipliers are treated as constants (their dependence on n is not differentiated).
/// Rows attending no key contribute nothing and get dq = 0 (even if their dout is NaN); keys no row attends
/// get dk = dv = 0. Throws like attention_forward, and when out, lse or dout have the wrong shape; a row whose
/// inputs (q_i, dout_i, out_i, lse_i and its keys and values) are finite but whose scores or products
/// dout_i·v_j overflow the type throws std::overflow_error naming the row (detected from the non-finite
/// ∂L/∂s_i the kernel sums anyway); NaN or Inf inputs propagate as in the forward.
/// Example: `auto g = attention_vjp(q, k, v, out, lse, dout, opts); g.dq, g.dk, g.dv, g.dscale`.
template <attention_value T>
attention_grads<T> attention_vjp(const xt::xtensor<T, 4>& q, const xt::xtensor<T, 4>& k, const xt::xtensor<T, 4>& v,
                                 const xt::xtensor<T, 4>& out, const xt::xtensor<T, 3>& lse,
                                 const xt::xtensor<T, 4>& dout, const attention_options& opts = {}) {
    attention_grads<T> g;
    attention_vjp_into(q, k, v, out, lse, dout, opts, g);
    return g;
}

/// Convenience VJP that recomputes the forward pass first (when out and lse were not kept).
/// Example: `auto g = attention_vjp(q, k, v, dout, opts);`
template <attention_value T>
attention_grads<T> attention_vjp(const xt::xtensor<T, 4>& q, const xt::xtensor<T, 4>& k, const xt::xtensor<T, 4>& v,
                                 const xt::xtensor<T, 4>& dout, const attention_options& opts = {}) {
    const auto f = attention_forward(q, k, v, opts);
    return attention_vjp(q, k, v, f.out, f.lse, dout, opts);
}

}  // namespace exprgrad::ops
