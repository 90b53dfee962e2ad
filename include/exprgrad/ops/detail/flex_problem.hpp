// flex attention's kernels, part 1 (ops/flex_attention.hpp is the contract): the problem every task of a call
// shares (sizes, grouped-query head map, per-row key limits and multipliers, parameters, packed operands),
// the input checks, and the packing into the layouts of the register tiles (kernels/gemm_tiles.hpp). The block
// sizes, buffers and task runner are those of ops::attention (ops/detail/attention_problem.hpp).
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include <xtensor/xtensor.hpp>

#include "exprgrad/format.hpp"
#include "exprgrad/ops/attention_options.hpp"
#include "exprgrad/ops/attention_view.hpp"
#include "exprgrad/ops/detail/attention_pack.hpp"  // attention::transpose8x8
#include "exprgrad/ops/detail/attention_problem.hpp"
#include "exprgrad/ops/detail/flex_block_mask.hpp"
#include "exprgrad/tensors/shape.hpp"

namespace exprgrad::ops::detail::flex {

using attention::block_k;
using attention::block_q;
using attention::buffer;
using attention::grow;
using attention::round_up;
namespace tiles = ::exprgrad::kernels::tiles;

/// Everything a call shares between its tasks. Query heads h read key/value head h / G (G = H_q / H_kv).
template <class T>
struct problem {
    std::size_t B = 0, Hq = 0, Hkv = 0, G = 1, Tq = 0, Tk = 0, d = 0, dv = 0;
    std::size_t dp = 0, dvp = 0, nqb = 0, nkb = 0, np = 0;
    bool cosine = false;
    std::vector<std::size_t> nrow;  // [B][Tq] keys the options let row i see: the prefix [0, n)
    std::vector<std::size_t> kend;  // [B] max of nrow: keys at or past it are never read
    std::vector<T> srow;            // [B·H_q][T_q] multiplier of each row
    std::vector<T> par;             // [H_q][np] the parameters, per query head
    std::vector<T> qinv, kinv;      // 1/√(‖·‖² + ε²) per row under normalize_qk
    buffer<T> Qh, Kh;               // q̂, k̂ under normalize_qk: [B·H][T][d]
    const T* qhat = nullptr;        // q̂ rows (q itself when not normalising)
    const T* khat = nullptr;
    buffer<T> Qs;         // [B·H_q][T_q][dp] s_i q̂_i, zero-padded: the scores come out scaled
    buffer<T> Kt;         // [B·H_kv][nkb][d][block_k] k̂ transposed per key block
    buffer<T> Vp;         // [B·H_kv][T_k][dvp] v padded (forward)
    buffer<T> Kp;         // [B·H_kv][T_k][dp] k̂ padded (backward)
    buffer<T> Vt;         // [B·H_kv][nkb][dv][block_k] v transposed per key block (backward)
    buffer<T> dOp;        // [B·H_q][T_q][dvp] dout padded (backward)
    std::vector<T> Drow;  // [B·H_q][T_q] dout_i·out_i
    const T* vp = nullptr;
    const T* dop = nullptr;
    std::vector<T> q_doc, k_doc;  // document ids as T: [B][T_q] and [B][nkb·block_k] (empty unless the mask reads them)
    block_mask<T> bm;             // the tiles' classes (kept for the next call of the same shape)
    // A forward followed by its backward (flex_attention_vjp): the forward keeps each computed tile of raw scores
    // s_i q̂_i·k̂_j here, [B·H_q][nqb][nkb][block_q][block_k], and the backward reads it instead of computing the
    // product again (one of its five; the same values, so the same bits). Null: not kept (recomputed).
    buffer<T> kept;
    T* scores = nullptr;

    /// Where the kept raw scores of (query head bh, query block qb, key block kb) are.
    std::size_t score_tile(std::size_t bh, std::size_t qb, std::size_t kb) const {
        return ((bh * nqb + qb) * nkb + kb) * block_q * block_k;
    }
    // A relative bias score_mod (modification::relative): B tabulated per distance, [B or 1][H_q][rel_len],
    // entry m of a table being query i, key j = i + m − (T_q − 1) (rel_len covers every key block's padding).
    std::vector<T> rel;
    std::size_t rel_len = 0;
    bool rel_batch = false;

    /// Query i's entries of the relative bias table (key j at [j]), or null when there is none.
    const T* rel_row(std::size_t b, std::size_t h, std::size_t i) const {
        if (rel.empty()) return nullptr;
        return rel.data() + ((rel_batch ? b * Hq : 0) + h) * rel_len + (Tq - 1 - i);
    }

    /// What the mask's sequence placeholders read for batch entry b.
    sequence_view<T> sequence(std::size_t b) const {
        return {static_cast<T>(Tq), static_cast<T>(Tk), q_doc.empty() ? nullptr : q_doc.data() + b * Tq,
                k_doc.empty() ? nullptr : k_doc.data() + b * nkb * block_k};
    }
};

/// The library's argument error naming flex attention's entry point `op`.
inline std::invalid_argument error(const char* op, const std::string& what) { return tensors::shape_error(op, what); }

/// The document ids of a call as T (checked: shapes [B, T_q] and [B, T_k], |id| < 2^24), or none when the mask
/// reads none (docs may then be null). Throws std::invalid_argument naming op when the mask reads them and docs
/// is null or does not fit.
template <class T>
void set_documents(const char* op, bool needed, const flex_documents* docs, problem<T>& P) {
    P.q_doc.clear();
    P.k_doc.clear();
    if (!needed) return;
    if (!docs)
        throw error(op, "the mask reads attn::q_doc or attn::k_doc but no document ids were given (pass "
                        "flex_documents after the options)");
    const auto &qs = docs->q.shape(), &ks = docs->k.shape();
    if (qs[0] != P.B || qs[1] != P.Tq)
        throw error(op, "flex_documents::q has shape " + format_shape(qs) + " but q needs (B, T_q) = (" +
                            format_number(P.B) + ", " + format_number(P.Tq) + ")");
    if (ks[0] != P.B || ks[1] != P.Tk)
        throw error(op, "flex_documents::k has shape " + format_shape(ks) + " but k needs (B, T_k) = (" +
                            format_number(P.B) + ", " + format_number(P.Tk) + ")");
    auto convert = [&](const xt::xtensor<std::int64_t, 2>& ids, std::size_t n, std::size_t stride, std::vector<T>& out,
                       const char* which) {
        out.assign(P.B * stride, T(0));
        for (std::size_t b = 0; b < P.B; ++b)
            for (std::size_t i = 0; i < n; ++i) {
                const std::int64_t id = ids(b, i);
                if (id <= -(std::int64_t{1} << 24) || id >= (std::int64_t{1} << 24))
                    throw error(op, std::string("flex_documents::") + which + "[" + format_number(b) + ", " +
                                        format_number(i) + "] = " + std::to_string(id) +
                                        ": document ids must be below 2^24 in magnitude (exact as float)");
                out[b * stride + i] = static_cast<T>(id);
            }
    };
    convert(docs->q, P.Tq, P.Tq, P.q_doc, "q");
    convert(docs->k, P.Tk, P.nkb * block_k, P.k_doc, "k");
}


/// Shapes, options and parameters of a call; throws std::invalid_argument naming op and the offending values.
template <class T>
void check_inputs(const char* op, const attention_view<T, 4>& q, const attention_view<T, 4>& k,
                  const attention_view<T, 4>& v, const attention_options& o, std::size_t params_given,
                  std::size_t params_needed,
                  const std::vector<std::size_t>& param_sizes) {
    using attention::shape_mismatch;
    const auto &qs = q.shape(), &ks = k.shape(), &vs = v.shape();
    // flex attention's packing reads row-major arrays only (ops::attention takes strided views)
    for (const auto* x : {&q, &k, &v})
        if (!x->contiguous())
            throw tensors::shape_error(op, std::string(x == &q ? "q" : x == &k ? "k" : "v") +
                                               " is a strided view; flex attention needs row-major q, k, v");
    if (qs[0] != ks[0]) throw shape_mismatch(op, "the batch dimensions must match", "q", qs, "k", ks);
    if (ks[0] != vs[0] || ks[1] != vs[1] || ks[2] != vs[2])
        throw shape_mismatch(op, "batch, head and key-length dimensions must match", "k", ks, "v", vs);
    if (ks[1] == 0 ? qs[1] != 0 : qs[1] % ks[1] != 0)
        throw error(op, "q has " + format_number(qs[1]) + " heads but k and v have " + format_number(ks[1]) +
                            ": the query heads must be a multiple of the key/value heads (grouped-query attention; q " +
                            format_shape(qs) + ", k " + format_shape(ks) + ")");
    if (qs[3] != ks[3]) throw shape_mismatch(op, "the head dimension d must match", "q", qs, "k", ks);
    if (qs[3] == 0) throw error(op, "q has shape " + format_shape(qs) + ": the head dimension d must be at least 1");
    if (!o.key_lengths.empty()) {
        if (o.key_lengths.size() != qs[0])
            throw error(op, "key_lengths has " + format_number(o.key_lengths.size()) + " entries but q has shape " +
                                format_shape(qs) + " (one length per batch entry)");
        for (std::size_t b = 0; b < o.key_lengths.size(); ++b)
            if (o.key_lengths[b] > ks[2])
                throw error(op, "key_lengths[" + format_number(b) + "] = " + format_number(o.key_lengths[b]) +
                                    " exceeds T_k = " + format_number(ks[2]) + " of k with shape " + format_shape(ks));
    }
    if (o.scale.which == scale_policy::kind::fixed && !std::isfinite(o.scale.value))
        throw error(op, o.scale.to_string() + " is not a finite multiplier");
    if (o.normalize_qk) {
        const T eps2 = static_cast<T>(o.qk_eps * o.qk_eps);
        if (!(o.qk_eps > 0.0 && eps2 >= std::numeric_limits<T>::min() && std::isfinite(eps2)))
            throw error(op, "qk_eps = " + format_number(o.qk_eps) + " must be > 0 with qk_eps² a normal " +
                                attention::value_type_name<T>() + " (see attention_options::qk_eps)");
    }
    if (params_given != params_needed)
        throw error(op, "the score modification reads " + format_number(params_needed) +
                            " parameter(s) (attn::param<0> .. attn::param<" + format_number(params_needed) +
                            " - 1>) but " + format_number(params_given) + " parameter array(s) were given");
    for (std::size_t i = 0; i < param_sizes.size(); ++i)
        if (param_sizes[i] != qs[1])
            throw error(op, "params[" + format_number(i) + "] has " + format_number(param_sizes[i]) +
                                " values but q has " + format_number(qs[1]) + " heads (shape " + format_shape(qs) +
                                "): one value per query head");
}

/// Sizes, per-row prefixes and multipliers. count(b, h, i, n) gives the number of keys among the prefix [0, n)
/// that row i of head h sees through the mask (called only for policies that depend on it).
template <class T, class Count>
void size_problem(const attention_view<T, 4>& q, const attention_view<T, 4>& k, const attention_view<T, 4>& v,
                  const attention_options& o, problem<T>& P, Count&& count) {
    P.B = q.shape()[0];
    P.Hq = q.shape()[1];
    P.Hkv = k.shape()[1];
    P.G = P.Hkv ? P.Hq / P.Hkv : 1;
    P.Tq = q.shape()[2];
    P.Tk = k.shape()[2];
    P.d = q.shape()[3];
    P.dv = v.shape()[3];
    P.dp = round_up(P.d, tiles::tile_width<T>);
    P.dvp = round_up(P.dv, tiles::tile_width<T>);
    P.nqb = (P.Tq + block_q - 1) / block_q;
    P.nkb = (P.Tk + block_k - 1) / block_k;
    P.cosine = o.normalize_qk;
    P.nrow.assign(P.B * P.Tq, 0);
    P.kend.assign(P.B, 0);
    for (std::size_t b = 0; b < P.B; ++b) {
        const std::size_t len = o.key_lengths.empty() ? P.Tk : o.key_lengths[b];
        for (std::size_t i = 0; i < P.Tq; ++i) {
            std::size_t n = len;
            if (o.causal) {  // bottom-right aligned, as ops::attention
                const long long last = static_cast<long long>(i + P.Tk) - static_cast<long long>(P.Tq);
                n = std::min<std::size_t>(len, last < 0 ? 0 : static_cast<std::size_t>(last) + 1);
            }
            P.nrow[b * P.Tq + i] = n;
            P.kend[b] = std::max(P.kend[b], n);
        }
    }
    const scale_policy& pol = o.scale;
    P.srow.assign(P.B * P.Hq * P.Tq, T(0));
    if (!pol.depends_on_n()) {
        std::fill(P.srow.begin(), P.srow.end(), static_cast<T>(pol.multiplier(1.0, P.d, P.cosine)));
        return;
    }
    // n = the keys the row sees (options and mask_mod); the post's single n = T_k/2 under causal half_length.
    const bool half = o.causal && pol.n_choice == scale_n::half_length;
    std::vector<double> by_n(P.Tk + 1, std::numeric_limits<double>::quiet_NaN());
    for (std::size_t b = 0; b < P.B; ++b)
        for (std::size_t h = 0; h < P.Hq; ++h)
            for (std::size_t i = 0; i < P.Tq; ++i) {
                double s = 0;
                if (half) {
                    s = pol.multiplier(static_cast<double>(P.Tk) / 2.0, P.d, P.cosine);
                } else {
                    const std::size_t n = count(b, h, i, P.nrow[b * P.Tq + i]);
                    if (std::isnan(by_n[n])) by_n[n] = pol.multiplier(static_cast<double>(n), P.d, P.cosine);
                    s = by_n[n];
                }
                P.srow[(b * P.Hq + h) * P.Tq + i] = static_cast<T>(s);
            }
}

/// The packed operands of a sized problem: s·q̂ padded, k̂ᵀ per key block, v padded (forward) or k̂ padded, vᵀ
/// per key block (backward); q̂, k̂ normalised under normalize_qk. Every element a kernel reads is written.
/// packed_forward: the forward of the same inputs has just packed P (s·q̂ and k̂ᵀ are kept, not packed again).
template <class T>
void pack(const attention_view<T, 4>& q, const attention_view<T, 4>& k, const attention_view<T, 4>& v,
          const attention_options& o, bool backward, problem<T>& P, bool packed_forward = false) {
    const std::size_t Tq = P.Tq, Tk = P.Tk, d = P.d, dv = P.dv, dp = P.dp, dvp = P.dvp;
    const std::size_t BQ = P.B * P.Hq, BK = P.B * P.Hkv;
    P.qhat = q.data();
    P.khat = k.data();
    if (P.cosine) {
        const T eps2 = static_cast<T>(o.qk_eps * o.qk_eps);
        auto normalise = [&](const T* x, std::size_t rows_, T* inv, T* out) {
            for (std::size_t r = 0; r < rows_; ++r) {
                inv[r] = T(1) / std::sqrt(kernels::rows::dot(x + r * d, x + r * d, d) + eps2);
                for (std::size_t c = 0; c < d; ++c) out[r * d + c] = x[r * d + c] * inv[r];
            }
        };
        P.qinv.resize(BQ * Tq);
        P.kinv.resize(BK * Tk);
        grow(P.Qh, BQ * Tq * d);
        grow(P.Kh, BK * Tk * d);
        normalise(q.data(), BQ * Tq, P.qinv.data(), P.Qh.data());
        normalise(k.data(), BK * Tk, P.kinv.data(), P.Kh.data());
        P.qhat = P.Qh.data();
        P.khat = P.Kh.data();
    }
    grow(P.Qs, BQ * Tq * dp);
    if (!packed_forward) kernels::parallel_for(0, BQ, attention::packing_grain(Tq, d), [&](std::size_t lo, std::size_t hi) {
        for (std::size_t bh = lo; bh < hi; ++bh)
            for (std::size_t i = 0; i < Tq; ++i) {
                const T* src = P.qhat + (bh * Tq + i) * d;
                T* dst = P.Qs.data() + (bh * Tq + i) * dp;
                // The SIMD row kernel: the compiler left the scalar loop unvectorised (4-6 % of a T = 256 forward).
                kernels::rows::scale_into(src, P.srow[bh * Tq + i], dst, d);
                std::fill(dst + d, dst + dp, T(0));
            }
    });
    grow(P.Kt, BK * P.nkb * d * block_k);
    const bool copy_v = !backward && dvp != dv;
    if (copy_v) grow(P.Vp, BK * Tk * dvp);
    P.vp = copy_v ? P.Vp.data() : v.data();
    if (backward) {
        grow(P.Kp, BK * Tk * dp);
        grow(P.Vt, BK * P.nkb * dv * block_k);
    }
    // x rows [j0, j0 + nj) (width w) transposed into a w × block_k block, columns past nj zero; 8 × 8 float
    // blocks by ops::attention's register transposition (the scalar loop cost 5-9% of a T = 256 forward).
    auto pack_t = [](const T* x, std::size_t w, std::size_t j0, std::size_t nj, T* dst) {
        std::size_t j = 0;
#if defined(__AVX__)
        if constexpr (std::is_same_v<T, float>)
            for (; j + 8 <= nj && w >= 8; j += 8) {
                std::size_t c = 0;
                for (; c + 8 <= w; c += 8)
                    attention::transpose8x8(x + (j0 + j) * w + c, w, nullptr, dst + c * block_k + j, block_k);
                for (; c < w; ++c)
                    for (std::size_t t = j; t < j + 8; ++t) dst[c * block_k + t] = x[(j0 + t) * w + c];
            }
#endif
        for (std::size_t c = 0; c < w; ++c) {
            T* out = dst + c * block_k;
            for (std::size_t jj = j; jj < nj; ++jj) out[jj] = x[(j0 + jj) * w + c];
            std::fill(out + nj, out + block_k, T(0));
        }
    };
    auto pad_rows = [](const T* x, std::size_t rows_, std::size_t w, std::size_t wp, T* dst) {
        for (std::size_t r = 0; r < rows_; ++r) {
            std::copy(x + r * w, x + (r + 1) * w, dst + r * wp);
            std::fill(dst + r * wp + w, dst + (r + 1) * wp, T(0));
        }
    };
    kernels::parallel_for(0, BK, attention::packing_grain(Tk, d + dv), [&](std::size_t lo, std::size_t hi) {
        for (std::size_t g = lo; g < hi; ++g) {
            const T* kh = P.khat + g * Tk * d;
            const T* vh = v.data() + g * Tk * dv;
            for (std::size_t kb = 0; kb < P.nkb; ++kb) {
                const std::size_t j0 = kb * block_k, nj = std::min(block_k, Tk - j0);
                if (!packed_forward) pack_t(kh, d, j0, nj, P.Kt.data() + (g * P.nkb + kb) * d * block_k);
                if (backward) pack_t(vh, dv, j0, nj, P.Vt.data() + (g * P.nkb + kb) * dv * block_k);
            }
            if (copy_v) pad_rows(vh, Tk, dv, dvp, P.Vp.data() + g * Tk * dvp);
            if (backward) pad_rows(kh, Tk, d, dp, P.Kp.data() + g * Tk * dp);
        }
    });
}

}  // namespace exprgrad::ops::detail::flex
