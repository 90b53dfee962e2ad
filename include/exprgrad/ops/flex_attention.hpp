// Flex attention: attention whose score and mask modifications are expressions of the scalar DSL, fused into
// the tiled kernels of ops::attention, forward and backward (docs/flex_attention.md).
//
//   out[b,h,i] = Σ_j p_ij v[b,g,j],   p_i = softmax over the visible keys j of  score_mod(s_i q̂_i·k̂_j, b, h, i, j)
//
// with g = h / (H_q / H_kv) (grouped-query attention) and key j visible to row i when mask_mod(b, h, i, j) > 0,
// j < key_lengths[b] and, under options.causal, j ≤ i + T_k − T_q. The modification's partial derivatives with
// respect to the score and to each learnable parameter are derived symbolically at compile time (sym::d) and
// evaluated in xsimd batches inside the score tiles; the matrix products are the register tiles of
// ops::attention (256-bit, or 512-bit for float when the CPU has AVX-512F). PyTorch's FlexAttention
// (torch ≥ 2.5, score_mod / mask_mod) is the model; here nothing is traced or compiled at run time.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <limits>
#include <type_traits>
#include <vector>

#include <xtensor/xtensor.hpp>

#include "exprgrad/ops/attention.hpp"
#include "exprgrad/ops/attn_placeholders.hpp"
#include "exprgrad/ops/attn_sequence.hpp"
#include "exprgrad/ops/detail/flex_backward.hpp"
#include "exprgrad/ops/detail/flex_forward.hpp"

namespace exprgrad::ops {

/// flex_attention_vjp's result: the gradients with respect to q, k, v (their shapes) and to each parameter
/// (dparams[I] has H_q values: dparams[I][h] = Σ_{b,i,j} ∂L/∂score'_bhij · ∂score_mod/∂param_I).
template <class T>
struct flex_attention_grads {
    xt::xtensor<T, 4> dq;
    xt::xtensor<T, 4> dk;
    xt::xtensor<T, 4> dv;
    std::vector<xt::xtensor<T, 1>> dparams;
};

namespace detail::flex {

/// The compile-time misuse a sentence can name (DESIGN principle 7).
template <class Mod, class Mask>
constexpr void check_modifications() {
    static_assert(sym::Expression<Mod>,
                  "flex_attention: score_mod must be a scalar DSL expression of attn::score, attn::batch, attn::head, "
                  "attn::q_idx, attn::k_idx and attn::param<I> (a bare attn::score for no modification)");
    static_assert(sym::Expression<Mask>,
                  "flex_attention: mask_mod must be a scalar DSL expression of attn::batch, attn::head, attn::q_idx "
                  "and attn::k_idx (a constant such as 1_c for no mask)");
    if constexpr (sym::Expression<Mask>) {
        static_assert(!reads_v<Mask, 0>,
                      "flex_attention: mask_mod may not read attn::score (a mask depends on positions only; modify "
                      "the score with score_mod instead)");
        static_assert(!reads_any_of<Mask, attn::first_param, attn::first_sequence>(),
                      "flex_attention: mask_mod may not read attn::param<I> (parameters belong in score_mod)");
        static_assert(sym::arity_v<Mask> <= attn::first_sequence + 4,
                      "flex_attention: mask_mod reads a variable that is no attn placeholder");
    }
    if constexpr (sym::Expression<Mod>)
        static_assert(sym::arity_v<Mod> <= attn::first_sequence,
                      "flex_attention: score_mod may not read attn::q_len, attn::k_len, attn::q_doc or attn::k_doc "
                      "(the sequence placeholders belong in mask_mod), nor more than 59 parameters");
}

/// The most memory a forward keeps its raw scores in for the backward that follows (problem::scores): 64 MiB, B·H_q
/// = 4 at T = 2048 in float. Larger problems compute the product again (at T = 4096 reading the kept tiles back
/// from memory would cost about what the product does).
inline constexpr std::size_t kept_scores_limit = std::size_t{64} << 20;

template <class T>
struct workspace {
    problem<T> P;
    std::vector<forward_scratch<T>> fwd;
    std::vector<backward_scratch<T>> bwd;
    std::vector<double> dpar;
};

template <class T>
workspace<T>& thread_workspace() {
    thread_local workspace<T> ws;
    return ws;
}

/// Whether the call is ops::attention's: identity score_mod, a positive constant mask, one key head per query
/// head, no parameters. Then the existing kernels run, at their speed.
template <class Mod, class Mask>
bool plain(std::size_t hq, std::size_t hkv) {
    return identity_mod_v<Mod> && mask_always_visible<Mask>() && hq == hkv;
}

/// The parameters as T, [H][np]. params: a vector of arrays of H values each (xt::xtensor<PT, 1> or
/// attention_view<PT, 1>: anything with data() and size()).
template <class T, class Params>
std::vector<T> convert_params(const Params& params, std::size_t H) {
    std::vector<T> par(H * params.size());
    for (std::size_t I = 0; I < params.size(); ++I)
        for (std::size_t h = 0; h < H; ++h) par[h * params.size() + I] = static_cast<T>(params[I].data()[h]);
    return par;
}

template <class Params>
std::vector<std::size_t> param_sizes(const Params& params) {
    std::vector<std::size_t> s;
    for (const auto& p : params) s.push_back(p.size());
    return s;
}

/// Checks, sizes (counting visible keys when the scale policy depends on n), converts the parameters and the
/// document ids, and classifies the tiles (the block mask, kept from the last call when nothing changed).
template <class M, class T, class Params>
void setup(const char* op, const attention_view<T, 4>& q, const attention_view<T, 4>& k,
           const attention_view<T, 4>& v, const Params& params, const attention_options& o,
           const flex_documents* docs, problem<T>& P) {
    check_inputs(op, q, k, v, o, params.size(), M::np, param_sizes(params));
    P.np = M::np;
    P.par = convert_params<T>(params, q.shape()[1]);
    auto count = [&](std::size_t b, std::size_t h, std::size_t i, std::size_t n) {
        return M::count_visible(b, h, i, 0, n, P.par.data() + h * P.np, P.sequence(b));
    };
    P.q_doc.clear();  // size_problem's count may run before the ids are set: it reads them after set_documents
    P.k_doc.clear();
    P.B = q.shape()[0];
    P.Tq = q.shape()[2];
    P.Tk = k.shape()[2];
    P.nkb = (P.Tk + block_k - 1) / block_k;
    set_documents(op, reads_documents_v<typename M::mask_type>, docs, P);
    size_problem(q, k, v, o, P, count);
    classify<M>(P.bm, P.B, P.Hq, P.Tq, P.Tk, P.par.data(), P.np, P.q_doc, P.k_doc);
    P.rel.clear();
    if constexpr (M::relative) {  // B per distance: T_q + T_k − 1 of them and the last key block's padding
        P.rel_batch = M::relative_per_batch;
        P.rel_len = round_up(P.Tq + P.nkb * block_k, M::L);
        const std::size_t nb = P.rel_batch ? P.B : 1;
        P.rel.resize(nb * P.Hq * P.rel_len);
        for (std::size_t b = 0; b < nb; ++b)
            for (std::size_t h = 0; h < P.Hq; ++h)
                M::tabulate(P.rel.data() + (b * P.Hq + h) * P.rel_len, P.rel_len, b, h, P.Tq,
                            P.par.data() + h * P.np);
    }
}

/// The forward over views of the caller's arrays (no copy): writes out [B, H_q, T_q, d_v] and lse [B, H_q, T_q],
/// which the caller has sized (after check_inputs). params: views or arrays of H_q values each.
/// keep_scores: the backward of the same inputs follows in this workspace (vjp_into's packed_forward): the raw
/// score tiles are kept for it (problem::scores) when they take at most kept_scores_limit bytes.
template <class M, class T, class Params>
void forward_into(const attention_view<T, 4>& q, const attention_view<T, 4>& k, const attention_view<T, 4>& v,
                  const Params& params, const attention_options& o, T* out, T* lse, workspace<T>& ws,
                  const flex_documents* docs = nullptr, bool keep_scores = false) {
    auto& P = ws.P;
    setup<M>("flex_attention_forward", q, k, v, params, o, docs, P);
    pack(q, k, v, o, false, P);
    P.scores = nullptr;
    const std::size_t n = P.B * P.Hq * P.nqb * P.nkb * block_q * block_k;
    if (keep_scores && n * sizeof(T) <= kept_scores_limit) {
        grow(P.kept, n);
        P.scores = P.kept.data();
    }
    forward<M>(P, o, ws.fwd, out, lse);
}

/// forward_into with owning arrays: out and lse are resized.
template <class M, class T, class PT>
void forward_into(const xt::xtensor<T, 4>& q, const xt::xtensor<T, 4>& k, const xt::xtensor<T, 4>& v,
                  const std::vector<xt::xtensor<PT, 1>>& params, const attention_options& o, xt::xtensor<T, 4>& out,
                  xt::xtensor<T, 3>& lse, workspace<T>& ws, const flex_documents* docs = nullptr,
                  bool keep_scores = false) {
    const auto qv = view_of(q), kv = view_of(k), vv = view_of(v);
    check_inputs("flex_attention_forward", qv, kv, vv, o, params.size(), M::np, param_sizes(params));
    attention::fit(out, std::array<std::size_t, 4>{qv.dims[0], qv.dims[1], qv.dims[2], vv.dims[3]});
    attention::fit(lse, std::array<std::size_t, 3>{qv.dims[0], qv.dims[1], qv.dims[2]});
    forward_into<M>(qv, kv, vv, params, o, out.data(), lse.data(), ws, docs, keep_scores);
}

/// The VJP over views of the caller's arrays (out, lse: the forward's of the same inputs; dout: out's shape).
/// Writes dq, dk, dv (q's, k's, v's sizes; overwritten, none may alias an input) and dparams [np][H_q].
template <class M, class T, class Params>
void vjp_into(const attention_view<T, 4>& q, const attention_view<T, 4>& k, const attention_view<T, 4>& v,
              const attention_view<T, 4>& out, const attention_view<T, 3>& lse, const attention_view<T, 4>& dout,
              const Params& params, const attention_options& o, T* dq, T* dk, T* dv, T* dparams, workspace<T>& ws,
              const flex_documents* docs = nullptr, bool packed_forward = false) {
    auto& P = ws.P;
    if (!packed_forward) P.scores = nullptr;  // kept scores are of the forward that just ran, if any
    setup<M>("flex_attention_vjp", q, k, v, params, o, docs, P);
    if (!out.contiguous() || !dout.contiguous())
        throw tensors::shape_error("flex_attention_vjp", "out and dout must be row-major (not strided views)");
    // packed_forward: forward_into of the same inputs and workspace ran just before (the scaled q̂ and k̂ᵀ blocks
    // it packed are the backward's too).
    pack(q, k, v, o, true, P, packed_forward);
    const std::size_t BQ = P.B * P.Hq;
    grow(P.dOp, BQ * P.Tq * P.dvp);
    P.Drow.assign(BQ * P.Tq, T(0));
    for (std::size_t r = 0; r < BQ * P.Tq; ++r) {
        const T* src = dout.data() + r * P.dv;
        std::copy(src, src + P.dv, P.dOp.data() + r * P.dvp);
        std::fill(P.dOp.data() + r * P.dvp + P.dv, P.dOp.data() + (r + 1) * P.dvp, T(0));
        // D_i = dout_i·out_i = Σ_j p_ij dP_ij, the softmax VJP's inner product (0 for a fully masked row).
        if (lse.data()[r] != -std::numeric_limits<T>::infinity())
            P.Drow[r] = kernels::rows::dot(src, out.data() + r * P.dv, P.dv);
    }
    P.dop = P.dOp.data();
    // The backward writes every row of dq, and the rows of dk, dv below kend[b]; the keys no row reads (past
    // every row's prefix) get 0 here. Zeroing all of dq, dk, dv first cost ~2% of a T = 512 forward + backward.
    for (std::size_t b = 0; b < P.B; ++b)
        for (std::size_t gl = 0; gl < P.Hkv; ++gl) {
            const std::size_t g = b * P.Hkv + gl;
            std::fill(dk + (g * P.Tk + P.kend[b]) * P.d, dk + (g + 1) * P.Tk * P.d, T(0));
            std::fill(dv + (g * P.Tk + P.kend[b]) * P.dv, dv + (g + 1) * P.Tk * P.dv, T(0));
        }
    ws.dpar.assign(BQ * P.nqb * P.nkb * P.np, 0.0);
    backward<M>(P, o, ws.bwd, lse.data(), dq, dk, dv, ws.dpar.data());
    P.scores = nullptr;
    if (P.cosine) {  // through q̂ = q/√(‖q‖² + ε²): dq = (dq̂ − q̂(q̂·dq̂))/√(‖q‖² + ε²), the same for k
        auto through = [&](T* grad, const T* hat, const T* inv, std::size_t rows_) {
            for (std::size_t r = 0; r < rows_; ++r) {
                T* gr = grad + r * P.d;
                const T* hr = hat + r * P.d;
                const T dot = kernels::rows::dot(hr, gr, P.d);
                for (std::size_t c = 0; c < P.d; ++c) gr[c] = inv[r] * (gr[c] - hr[c] * dot);
            }
        };
        through(dq, P.qhat, P.qinv.data(), BQ * P.Tq);
        through(dk, P.khat, P.kinv.data(), P.B * P.Hkv * P.Tk);
    }
    for (std::size_t I = 0; I < P.np; ++I)
        for (std::size_t h = 0; h < P.Hq; ++h) {
            double s = 0;
            for (std::size_t b = 0; b < P.B; ++b)
                for (std::size_t u = 0; u < P.nqb * P.nkb; ++u)
                    s += ws.dpar[((b * P.Hq + h) * P.nqb * P.nkb + u) * P.np + I];
            dparams[I * P.Hq + h] = static_cast<T>(s);
        }
}

/// vjp_into with owning arrays: returns the gradients.
template <class M, class T, class PT>
flex_attention_grads<T> vjp(const xt::xtensor<T, 4>& q, const xt::xtensor<T, 4>& k, const xt::xtensor<T, 4>& v,
                            const xt::xtensor<T, 4>& out, const xt::xtensor<T, 3>& lse, const xt::xtensor<T, 4>& dout,
                            const std::vector<xt::xtensor<PT, 1>>& params, const attention_options& o,
                            workspace<T>& ws, const flex_documents* docs = nullptr, bool packed_forward = false) {
    const auto qv = view_of(q), kv = view_of(k), vv = view_of(v);
    check_inputs("flex_attention_vjp", qv, kv, vv, o, params.size(), M::np, param_sizes(params));
    flex_attention_grads<T> g;
    g.dq = xt::xtensor<T, 4>::from_shape(q.shape());
    g.dk = xt::xtensor<T, 4>::from_shape(k.shape());
    g.dv = xt::xtensor<T, 4>::from_shape(v.shape());
    const std::size_t Hq = qv.dims[1];
    std::vector<T> dpar(M::np * Hq);
    vjp_into<M>(qv, kv, vv, view_of(out), view_of(lse), view_of(dout), params, o, g.dq.data(), g.dk.data(),
                g.dv.data(), dpar.data(), ws, docs, packed_forward);
    g.dparams.resize(M::np);
    for (std::size_t I = 0; I < M::np; ++I) {
        g.dparams[I] = xt::xtensor<T, 1>::from_shape({Hq});
        std::copy(dpar.begin() + I * Hq, dpar.begin() + (I + 1) * Hq, g.dparams[I].data());
    }
    return g;
}

template <class Mod, class Mask, class T, class PT>
attention_result<T> forward_entry(const xt::xtensor<T, 4>& q, const xt::xtensor<T, 4>& k, const xt::xtensor<T, 4>& v,
                                  const std::vector<xt::xtensor<PT, 1>>& params, const attention_options& o,
                                  const flex_documents* docs) {
    check_modifications<Mod, Mask>();
    using M = modification<T, Mod, Mask>;
    attention_result<T> r;
    if (plain<Mod, Mask>(q.shape()[1], k.shape()[1])) {
        check_inputs("flex_attention_forward", view_of(q), view_of(k), view_of(v), o, params.size(), 0,
                     param_sizes(params));
        attention_forward_into(q, k, v, o, r.out, r.lse);
        return r;
    }
    forward_into<M>(q, k, v, params, o, r.out, r.lse, thread_workspace<T>(), docs);
    return r;
}

template <class Mod, class Mask, class T, class PT>
flex_attention_grads<T> vjp_entry(const xt::xtensor<T, 4>& q, const xt::xtensor<T, 4>& k, const xt::xtensor<T, 4>& v,
                                  const xt::xtensor<T, 4>& dout, const std::vector<xt::xtensor<PT, 1>>& params,
                                  const attention_options& o, const flex_documents* docs) {
    check_modifications<Mod, Mask>();
    using M = modification<T, Mod, Mask>;
    constexpr const char* op = "flex_attention_vjp";
    check_inputs(op, view_of(q), view_of(k), view_of(v), o, params.size(), M::np, param_sizes(params));
    const auto& qs = q.shape();
    const std::array<std::size_t, 4> os{qs[0], qs[1], qs[2], v.shape()[3]};
    if (!std::equal(os.begin(), os.end(), dout.shape().begin()))
        throw attention::shape_mismatch(op, "dout must have shape [B, H_q, T_q, d_v] from q and v", "dout",
                                        dout.shape(), "q", qs);
    if (plain<Mod, Mask>(q.shape()[1], k.shape()[1])) {
        auto a = attention_vjp(q, k, v, dout, o);
        return {std::move(a.dq), std::move(a.dk), std::move(a.dv), {}};
    }
    auto& ws = thread_workspace<T>();
    attention_result<T> f;
    forward_into<M>(q, k, v, params, o, f.out, f.lse, ws, docs, true);
    return vjp<M>(q, k, v, f.out, f.lse, dout, params, o, ws, docs, true);
}

}  // namespace detail::flex

/// Flex attention, forward. For q [B, H_q, T_q, d], k [B, H_kv, T_k, d], v [B, H_kv, T_k, d_v] (float or double,
/// H_q a multiple of H_kv; query head h reads key/value head h / (H_q / H_kv), as PyTorch's enable_gqa):
///   z_ij = score_mod(s_i q̂_i·k̂_j, b, h, i, j, params[0][h], params[1][h], ...)   (attn::score, attn::batch, ...)
///   out_i = Σ_j softmax_j(z_i)_j v_j over the visible keys,   lse_i = log Σ_j exp(z_ij) over the visible keys,
/// key j visible to row i when mask_mod(b, h, i, j) > 0 (less()'s ½ at a tie counts; NaN hides the key),
/// j < key_lengths[b], and under opts.causal j ≤ i + T_k − T_q. s_i and q̂, k̂ as in attention_forward (scale
/// policy, normalize_qk); a policy that depends on n counts the keys row i sees (mask_mod included).
/// Returns {out [B, H_q, T_q, d_v], lse [B, H_q, T_q]}. params: one array of H_q values per attn::param<I> the
/// score_mod reads (as many arrays as its highest I + 1; empty for none), float or double.
/// - Fully masked rows (no visible key, or every visible z_ij = −inf): out = 0 and lse = −inf, as attention_forward.
/// - NaN in q, k, v or a parameter that a visible pair uses makes the row's out and lse NaN. Keys outside each
///   row's visible span within a 64-key tile are never multiplied in; a key hidden between two visible keys of
///   the same tile meets p = 0 (a NaN or Inf in its value row then propagates, as in PyTorch).
/// - A bare attn::score with a positive constant mask (1_c) and H_q = H_kv runs attention_forward itself (its
///   speed, and its overflow diagnosis); everything else runs the fused kernels (scores that overflow give
///   Inf/NaN there, no exception).
/// - Throws std::invalid_argument naming flex_attention_forward and the values on mismatched shapes, H_q not a
///   multiple of H_kv, the wrong number of parameter arrays or of values in one, and attention_forward's option
///   errors. A mask_mod reading attn::score or a parameter fails to compile with a sentence naming flex_attention.
/// Example (ALiBi with a causal mask):
///   auto alibi = attn::score - attn::param<0> * (attn::q_idx - attn::k_idx);
///   auto causal = attn::q_idx - attn::k_idx + 1_c;
///   auto [out, lse] = flex_attention_forward(q, k, v, alibi, causal, {slopes}, {});
template <attention_value T, class Mod, class Mask>
attention_result<T> flex_attention_forward(const xt::xtensor<T, 4>& q, const xt::xtensor<T, 4>& k,
                                           const xt::xtensor<T, 4>& v, Mod, Mask,
                                           const std::vector<xt::xtensor<T, 1>>& params,
                                           const attention_options& opts = {}) {
    return detail::flex::forward_entry<Mod, Mask>(q, k, v, params, opts, nullptr);
}

/// flex_attention_forward with parameters of the other value type (double parameters for float q, k, v, or the
/// reverse): converted once per call.
template <attention_value T, class Mod, class Mask, attention_value PT>
requires(!std::is_same_v<T, PT>) attention_result<T> flex_attention_forward(
    const xt::xtensor<T, 4>& q, const xt::xtensor<T, 4>& k, const xt::xtensor<T, 4>& v, Mod, Mask,
    const std::vector<xt::xtensor<PT, 1>>& params, const attention_options& opts = {}) {
    return detail::flex::forward_entry<Mod, Mask>(q, k, v, params, opts, nullptr);
}

/// Flex attention, VJP: given dout = ∂L/∂out [B, H_q, T_q, d_v], returns {dq, dk, dv, dparams} (dparams[I]: H_q
/// values) of flex_attention_forward with the same arguments, which it recomputes first. Per tile, with
/// p = softmax(z) and z = score_mod(score, ...):
///   dz_ij = p_ij (dout_i·v_j − dout_i·out_i),   dscore_ij = dz_ij ∂score_mod/∂score (symbolic),
///   dparams[I][h] = Σ_{b,i,j} dz_ij ∂score_mod/∂param_I (symbolic, accumulated in double),
///   dq̂_i = s_i Σ_j dscore_ij k̂_j,  dk̂_j = Σ_{i, query heads of its group} s_i dscore_ij q̂_i,  dv_j = Σ_i p_ij dout_i,
/// then through normalize_qk as attention_vjp. Fully masked rows contribute nothing (dq = 0 there, even for a
/// NaN dout); keys no row sees get dk = dv = 0. NaN propagates as in the forward. The scale multipliers are
/// constants (not differentiated). Results do not depend on opts.threads. Throws as flex_attention_forward
/// (naming flex_attention_vjp), and when dout's shape is not [B, H_q, T_q, d_v]. Memory: the recomputed forward
/// keeps its raw score tiles for the backward (B·H_q·T_q·T_k values rounded up to 64 × 64 tiles) when they fit in
/// 64 MiB, in the calling thread's workspace, which keeps them for its next call.
/// Example: `auto g = flex_attention_vjp(q, k, v, dout, alibi, causal, params, opts); g.dparams[0]`.
template <attention_value T, class Mod, class Mask>
flex_attention_grads<T> flex_attention_vjp(const xt::xtensor<T, 4>& q, const xt::xtensor<T, 4>& k,
                                           const xt::xtensor<T, 4>& v, const xt::xtensor<T, 4>& dout, Mod, Mask,
                                           const std::vector<xt::xtensor<T, 1>>& params,
                                           const attention_options& opts = {}) {
    return detail::flex::vjp_entry<Mod, Mask>(q, k, v, dout, params, opts, nullptr);
}

/// flex_attention_vjp with parameters of the other value type (dparams are of q's type).
template <attention_value T, class Mod, class Mask, attention_value PT>
requires(!std::is_same_v<T, PT>) flex_attention_grads<T> flex_attention_vjp(
    const xt::xtensor<T, 4>& q, const xt::xtensor<T, 4>& k, const xt::xtensor<T, 4>& v, const xt::xtensor<T, 4>& dout,
    Mod, Mask, const std::vector<xt::xtensor<PT, 1>>& params, const attention_options& opts = {}) {
    return detail::flex::vjp_entry<Mod, Mask>(q, k, v, dout, params, opts, nullptr);
}

/// flex_attention_forward with document ids, for a mask_mod that reads attn::q_doc / attn::k_doc (document
/// masking, e.g. attn::document_causal): docs.q [B, T_q] and docs.k [B, T_k] hold the id of every query and key
/// position. Same contract otherwise; also throws std::invalid_argument when the ids' shapes do not match or an id
/// is 2^24 or more in magnitude, and (any overload) when a mask reads the ids and none were given. Example:
///   auto r = flex_attention_forward(q, k, v, attn::score, attn::document_causal, {}, opts, flex_documents::self(ids));
template <attention_value T, class Mod, class Mask, attention_value PT = T>
attention_result<T> flex_attention_forward(const xt::xtensor<T, 4>& q, const xt::xtensor<T, 4>& k,
                                           const xt::xtensor<T, 4>& v, Mod, Mask,
                                           const std::vector<xt::xtensor<PT, 1>>& params, const attention_options& opts,
                                           const flex_documents& docs) {
    return detail::flex::forward_entry<Mod, Mask>(q, k, v, params, opts, &docs);
}

/// flex_attention_vjp with document ids (see the flex_attention_forward overload that takes them).
template <attention_value T, class Mod, class Mask, attention_value PT = T>
flex_attention_grads<T> flex_attention_vjp(const xt::xtensor<T, 4>& q, const xt::xtensor<T, 4>& k,
                                           const xt::xtensor<T, 4>& v, const xt::xtensor<T, 4>& dout, Mod, Mask,
                                           const std::vector<xt::xtensor<PT, 1>>& params, const attention_options& opts,
                                           const flex_documents& docs) {
    return detail::flex::vjp_entry<Mod, Mask>(q, k, v, dout, params, opts, &docs);
}

}  // namespace exprgrad::ops
