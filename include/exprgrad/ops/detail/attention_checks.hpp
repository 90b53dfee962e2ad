// attention's kernels, part 4: telling overflow from NaN propagation after a row came out non-finite.
#pragma once

#include <cmath>
#include <cstddef>
#include <limits>
#include <stdexcept>
#include <string>

#include <xtensor/xtensor.hpp>

#include "exprgrad/format.hpp"
#include "exprgrad/ops/detail/attention_forward.hpp"

namespace exprgrad::ops::detail::attention {

// Overflow diagnosis. It runs only after a row came out non-finite (a NaN or infinite lse in the forward, a
// non-finite ∂L/∂s_i in the VJP), so the kernels pay one compare per row. A row whose own inputs are finite
// cannot be NaN by propagation: its scores (or the VJP's products) overflowed the value type, and the call
// throws; a row that reads a NaN or Inf keeps it, as documented.

template <class T>
bool finite_row(const T* x, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i)
        if (!std::isfinite(x[i])) return false;
    return true;
}

/// Per head, the first key j whose k_j or v_j holds a NaN or Inf (T_k when none), computed on first use.
template <class T>
struct first_bad_keys {
    const attention_view<T, 4>& k;
    const attention_view<T, 4>& v;
    const problem<T>& P;
    std::vector<std::size_t> first = std::vector<std::size_t>(P.heads(), std::size_t(-1));
    std::size_t operator()(std::size_t bh) {
        if (first[bh] == std::size_t(-1)) {
            std::size_t j = 0;
            for (; j < P.Tk; ++j)
                if (!finite_row(k.row(bh, j), P.d) || !finite_row(v.row(bh, j), P.dv))
                    break;
            first[bh] = j;
        }
        return first[bh];
    }
};

/// Row i's scores over its attended keys, in double (for the message; O(n·d) for the one row reported).
struct score_range {
    double top = 0;                                         // max |s_i·q̂_i·k̂_j|
    double term = 0;                                        // max |s_i·q̂_ix·k̂_jx|, a single product
    double max = -std::numeric_limits<double>::infinity();  // max s_i·q̂_i·k̂_j
};

template <class T>
score_range row_score_range(const problem<T>& P, const attention_view<T, 4>& q, const attention_view<T, 4>& k, std::size_t bh,
                            std::size_t i) {
    const std::size_t b = bh / P.H, n = P.nrow[b * P.Tq + i];
    const T* qi = q.row(bh, i);
    double s = static_cast<double>(P.srow[b * P.Tq + i]);
    if (P.cosine) s *= static_cast<double>(P.qinv[bh * P.Tq + i]);
    score_range r;
    for (std::size_t j = 0; j < n; ++j) {
        const T* kj = k.row(bh, j);
        const double c = s * (P.cosine ? static_cast<double>(P.kinv[bh * P.Tk + j]) : 1.0);
        double dot = 0;
        for (std::size_t x = 0; x < P.d; ++x) {
            const double t = c * static_cast<double>(qi[x]) * static_cast<double>(kj[x]);
            dot += t;
            r.term = std::max(r.term, std::abs(t));
        }
        r.top = std::max(r.top, std::abs(dot));
        r.max = std::max(r.max, dot);
    }
    return r;
}

/// Throws std::overflow_error for row i of head bh, which reads only finite inputs but came out non-finite:
/// "scores overflow" when some |s·q̂·k̂| (or one of its terms) exceeds T's range; in the VJP (lse given)
/// otherwise "exp(s·q·k − lse) overflows" when the scores exceed lse_i by more than log(T's max), an lse that
/// is not these scores' log-sum-exp, and else the gradient's products dout_i·v_j.
template <class T>
[[noreturn]] void overflow_error(const char* op, const problem<T>& P, const attention_view<T, 4>& q,
                                 const attention_view<T, 4>& k, const attention_view<T, 4>& v,
                                 const attention_view<T, 4>* dout, const T* lse, std::size_t bh, std::size_t i) {
    const std::size_t b = bh / P.H, n = P.nrow[b * P.Tq + i];
    const double tmax = static_cast<double>(std::numeric_limits<T>::max());
    const auto sr = row_score_range(P, q, k, bh, i);
    const double top = sr.top, term = sr.term;
    const std::string ty = value_type_name<T>();
    const std::string where = "exprgrad::" + std::string(op) + ": ";
    const std::string at =
        " at batch " + format_number(b) + " head " + format_number(bh % P.H) + " row " + format_number(i);
    if (lse && top <= tmax && term <= tmax && sr.max - double(lse[bh * P.Tq + i]) > std::log(tmax)) {
        throw std::overflow_error(where + "exp(s·q·k − lse) overflows " + ty + at +
                                  ": lse_i = " + format_number(double(lse[bh * P.Tq + i])) +
                                  " but the row's scores reach " + format_number(sr.max) +
                                  "; pass the lse that attention_forward returned for these q and k");
    }
    if (!dout || !(top <= tmax && term <= tmax)) {
        throw std::overflow_error(
            where + "scores overflow " + ty + at + ", whose inputs are finite: |s·q·k| over its " + format_number(n) +
            " keys reaches " + format_number(top) + " (largest term " + format_number(term) +
            ", s = " + format_number(double(P.srow[b * P.Tq + i])) + ", " + ty + " max " +
            format_number(std::numeric_limits<T>::max()) + "); scale q or k down, or use normalize_qk");
    }
    double dv = 0;  // the largest |dout_i·v_j| over the attended keys
    const T* di = dout->row(bh, i);
    for (std::size_t j = 0; j < n; ++j) {
        double t = 0;
        const T* vj = v.row(bh, j);
        for (std::size_t x = 0; x < P.dv; ++x) t += double(di[x]) * double(vj[x]);
        dv = std::max(dv, std::abs(t));
    }
    throw std::overflow_error(where + "the gradient overflows " + ty + at + ", whose inputs are finite: |dout_i·v_j| " +
                              "reaches " + format_number(dv) + " and |s·q·k| " + format_number(top) + " (" + ty +
                              " max " + format_number(std::numeric_limits<T>::max()) + "); scale dout or v down");
}

/// After a forward whose some row got a non-finite lse: throws std::overflow_error for the first such row
/// (attending at least one key) that reads only finite inputs; rows that read a NaN or Inf are left as they are.
template <class T>
void check_forward_overflow(const char* op, const problem<T>& P, const attention_view<T, 4>& q, const attention_view<T, 4>& k,
                            const attention_view<T, 4>& v, const T* lse) {
    first_bad_keys<T> bad{k, v, P};
    for (std::size_t bh = 0; bh < P.heads(); ++bh)
        for (std::size_t i = 0; i < P.Tq; ++i) {
            const std::size_t b = bh / P.H, n = P.nrow[b * P.Tq + i];
            if (n == 0 || std::isfinite(lse[bh * P.Tq + i])) continue;
            if (!finite_row(q.row(bh, i), P.d) || bad(bh) < n) continue;  // propagation
            overflow_error(op, P, q, k, v, static_cast<const attention_view<T, 4>*>(nullptr),
                           static_cast<const T*>(nullptr), bh, i);
        }
}

/// After a VJP whose some row got a non-finite ∂L/∂s_i (rs): the same for the rows whose q_i, dout_i, out_i,
/// lse_i and attended keys and values are all finite.
template <class T>
void check_vjp_overflow(const char* op, const problem<T>& P, const attention_view<T, 4>& q, const attention_view<T, 4>& k,
                        const attention_view<T, 4>& v, const attention_view<T, 4>& out, const attention_view<T, 3>& lse,
                        const attention_view<T, 4>& dout, const double* rs) {
    first_bad_keys<T> bad{k, v, P};
    for (std::size_t bh = 0; bh < P.heads(); ++bh)
        for (std::size_t i = 0; i < P.Tq; ++i) {
            const std::size_t b = bh / P.H, n = P.nrow[b * P.Tq + i], row = bh * P.Tq + i;
            if (n == 0 || std::isfinite(rs[row])) continue;
            if (!finite_row(q.row(bh, i), P.d) || !finite_row(dout.row(bh, i), P.dv) ||
                !finite_row(out.row(bh, i), P.dv) || !std::isfinite(lse.data()[row]) || bad(bh) < n)
                continue;  // propagation
            overflow_error(op, P, q, k, v, &dout, lse.data(), bh, i);
        }
}

}  // namespace exprgrad::ops::detail::attention
