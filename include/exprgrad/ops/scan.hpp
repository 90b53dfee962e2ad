// Associative scans of affine maps and the linear-recurrence solver built on them (the parallel scan behind
// DEER, kexue.fm post 9783 https://kexue.fm/archives/9783 and Lim et al., ICLR 2024; docs/deer.md).
//
// An affine map is a pair (M, v): x ↦ M x + v, with M dense (n×n, row-major) or diagonal (n values).
// Composition "apply (M1, v1), then (M2, v2)" is the associative product
//     (M2, v2) ∘ (M1, v1) = (M2·M1, M2·v1 + v2),      identity (I, 0).
// The linear recurrence y_t = M_t y_{t−1} + b_t (t = 0..T−1, y_{−1} = y0) is the vector part of the
// inclusive scan of the maps (M_t, b_t) applied to y0; its adjoint (transpose) is the reverse scan
//     λ_t = g_t + M_{t+1}ᵀ λ_{t+1},  λ_{T−1} = g_{T−1},   dy0 = M_0ᵀ λ_0,
// which is what a backward pass through the recurrence needs (∂L/∂b_t = λ_t, ∂L/∂y0 = dy0).
//
// Parallel algorithm (per sequence, when the time axis is split; see scan_options):
//   1. the time axis is cut into C contiguous chunks; chunk 0 runs the plain recurrence from y0 (its
//      start is known), and every other chunk computes its summary map — the composition of its maps —
//      in parallel (diagonal: every prefix of the summary is kept, O(T·n) scratch; dense: only the
//      whole summary, an n×n product per step, O(T·n³) work);
//   2. the summaries are applied in chunk order to carry the true state into each chunk (C steps);
//   3. fix-up: diagonal y_t = z_t + P_t ⊙ s_c, elementwise and split over all threads; dense
//      recomputes each chunk's recurrence from its carried state, chunks in parallel.
// Work: diagonal ≈ 3·T·n operations vs T·n sequentially, dense ≈ T·n³ vs T·n². Depth ≈ T/C.
// On a CPU with P cores the dense split pays only for n ≤ 2; the automatic choice below follows that.
//
// Rounding: chunk 0 and every sequence run without a time split are bit-identical to the sequential
// recurrence. In split chunks the carried state comes from the composed map, so values differ from
// the sequential loop by rounding (a few ulps times the growth of the products). The result depends
// only on the chunk count, never on timing or the thread count: with a fixed `scan_options::chunks`,
// 1 and 2 threads give bit-identical results; with the automatic count (the thread count) they differ
// by rounding.
//
// NaN/Inf: propagate as in the sequential recurrence, with one exception of the split algorithm: a
// prefix product that overflows to ±inf times a carried state that is exactly 0 gives NaN where the
// sequential loop gives a finite value (needs |∏ M| > 1e308 within one chunk; the loop itself then
// overflows for any nonzero state).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <vector>

#include <xsimd/xsimd.hpp>
#include <xtensor/xarray.hpp>

#include "exprgrad/fields.hpp"
#include "exprgrad/kernels/parallel.hpp"
#include "exprgrad/tensors/shape.hpp"

namespace exprgrad::ops {

/// How linear_recurrence splits its work. Both fields are listed in the BOOST_HANA_ADAPT_STRUCT below.
struct scan_options {
    /// Time chunks per sequence: 0 chooses automatically (the thread count when the split pays:
    /// diagonal maps with T ≥ 2·min_chunk, dense maps with n ≤ 2; else 1); 1 forces the sequential
    /// recurrence; k > 1 forces k chunks whatever the thread count (results then do not depend on it).
    std::size_t chunks = 0;
    /// Minimum steps per chunk of the automatic split (short chunks cost more than they save).
    std::size_t min_chunk = 1024;
};

}  // namespace exprgrad::ops

// The one list of scan_options' fields (what to_string and deer_options' printout show).
BOOST_HANA_ADAPT_STRUCT(exprgrad::ops::scan_options, chunks, min_chunk);

namespace exprgrad::ops {

namespace detail {
// A field added to scan_options but not to the list above: the binding or the assertion stops the build.
static_assert(field_count_v<scan_options> == 2, "scan_options: update BOOST_HANA_ADAPT_STRUCT");
[[maybe_unused]] inline void scan_options_field_guard(const scan_options& o) {
    [[maybe_unused]] const auto& [f1, f2] = o;
}
}  // namespace detail

/// The options as `name=value` pairs (exprgrad::fields_to_string); the defaults print "chunks=0
/// min_chunk=1024". For logs and run reports; not parsed back. Never throws except std::bad_alloc.
inline std::string to_string(const scan_options& o) { return fields_to_string(o); }

namespace detail {

inline const char* scan_op_name = "linear_recurrence";

// ---- the step kernels (one sequence, one step); SIMD over channels for the diagonal case

template <class T>
using simd_batch = xsimd::batch<T>;

// out = a ⊙ x + c  (x may alias out)
template <class T>
inline void diag_axpy(const T* a, const T* x, const T* c, T* out, std::size_t n) {
    constexpr std::size_t W = simd_batch<T>::size;
    std::size_t j = 0;
    for (; j + W <= n; j += W) {
        const auto r = xsimd::fma(simd_batch<T>::load_unaligned(a + j), simd_batch<T>::load_unaligned(x + j),
                                  simd_batch<T>::load_unaligned(c + j));
        r.store_unaligned(out + j);
    }
    for (; j < n; ++j) out[j] = std::fma(a[j], x[j], c[j]);  // fused like the SIMD lanes, at every -O level
}
// p = a ⊙ p
template <class T>
inline void diag_mul(const T* a, T* p, std::size_t n) {
    constexpr std::size_t W = simd_batch<T>::size;
    std::size_t j = 0;
    for (; j + W <= n; j += W) {
        (simd_batch<T>::load_unaligned(a + j) * simd_batch<T>::load_unaligned(p + j)).store_unaligned(p + j);
    }
    for (; j < n; ++j) p[j] = a[j] * p[j];
}
// y += p ⊙ s over len contiguous values, s broadcast when its period is 1
template <class T>
inline void fixup_rows(T* y, const T* p, const T* s, std::size_t rows, std::size_t n) {
    constexpr std::size_t W = simd_batch<T>::size;
    if (n == 1) {
        const simd_batch<T> sb(s[0]);
        std::size_t i = 0;
        for (; i + W <= rows; i += W) {
            xsimd::fma(simd_batch<T>::load_unaligned(p + i), sb, simd_batch<T>::load_unaligned(y + i))
                .store_unaligned(y + i);
        }
        for (; i < rows; ++i) y[i] = std::fma(p[i], s[0], y[i]);
        return;
    }
    for (std::size_t r = 0; r < rows; ++r) diag_axpy(p + r * n, s, y + r * n, y + r * n, n);
}

// out = A x + c (A row-major n×n; Trans: Aᵀ x + c); out must not alias x
template <bool Trans, class T>
inline void dense_axpy(const T* a, const T* x, const T* c, T* out, std::size_t n) {
    if constexpr (!Trans) {
        for (std::size_t i = 0; i < n; ++i) {
            T s = c[i];
            for (std::size_t j = 0; j < n; ++j) s += a[i * n + j] * x[j];
            out[i] = s;
        }
    } else {
        std::copy(c, c + n, out);
        for (std::size_t j = 0; j < n; ++j) {
            const T xj = x[j];
            for (std::size_t i = 0; i < n; ++i) out[i] += a[j * n + i] * xj;
        }
    }
}
// p = op(A) p for n×n matrices (tmp: n×n scratch)
template <bool Trans, class T>
inline void dense_lmul(const T* a, T* p, T* tmp, std::size_t n) {
    std::fill(tmp, tmp + n * n, T(0));
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t k = 0; k < n; ++k) {
            const T aik = Trans ? a[k * n + i] : a[i * n + k];
            for (std::size_t j = 0; j < n; ++j) tmp[i * n + j] += aik * p[k * n + j];
        }
    std::copy(tmp, tmp + n * n, p);
}

// ---- one sequence, viewed as steps s = 0..T−1 in scan order. Forward: step s is time s with map
// (M_s, b_s). Reverse: step s is time T−1−s with map (M_{T−s}ᵀ, g_{T−1−s}); its step 0 has no map
// (it starts from the zero state), so M_0 is never read by the reverse scan.
template <class T, bool Dense, bool Rev>
struct sequence {
    const T* m;           // maps of this sequence
    std::size_t mstride;  // elements between consecutive steps' maps (0: one map for every step)
    const T* c;           // offsets [T, n]
    T* y;                 // result [T, n]
    const T* start;       // y0 (forward; null = 0); null in reverse
    std::size_t steps, n;

    std::size_t time(std::size_t s) const { return Rev ? steps - 1 - s : s; }
    const T* map(std::size_t s) const { return m + (Rev ? steps - s : s) * mstride; }
    const T* off(std::size_t s) const { return c + time(s) * n; }
    T* out(std::size_t s) const { return y + time(s) * n; }

    // y_s = A_s x + c_s with x = state (null: zero state, y_s = c_s)
    void step(std::size_t s, const T* state, T* tmp) const {
        T* o = out(s);
        if (state == nullptr) {
            std::copy(off(s), off(s) + n, o);
        } else if constexpr (Dense) {
            dense_axpy<Rev>(map(s), state, off(s), tmp, n);
            std::copy(tmp, tmp + n, o);
        } else {
            diag_axpy(map(s), state, off(s), o, n);
        }
    }
    // the plain recurrence over [lo, hi) from `state` (null: zero)
    void run(std::size_t lo, std::size_t hi, const T* state, T* tmp) const {
        if constexpr (!Dense) {
            if (n == 1) {  // one channel: the state stays in a register, one fma per step
                if (lo == hi) return;
                std::size_t s = lo;
                T x = state == nullptr ? *off(s) : std::fma(*map(s), *state, *off(s));
                *out(s) = x;
                for (++s; s < hi; ++s) {
                    x = std::fma(*map(s), x, *off(s));
                    *out(s) = x;
                }
                return;
            }
        }
        for (std::size_t s = lo; s < hi; ++s) {
            step(s, state, tmp);
            state = out(s);
        }
    }
};

template <class T, bool Dense, bool Rev>
void solve_sequence(const sequence<T, Dense, Rev>& q, std::size_t chunks) {
    const std::size_t Tn = q.steps, n = q.n;
    if (Tn == 0) return;
    chunks = std::max<std::size_t>(1, std::min(chunks, Tn));
    if (chunks == 1) {
        std::vector<T> tmp(Dense ? n : 0);
        q.run(0, Tn, q.start, tmp.data());
        return;
    }
    // Chunk bounds. Dense: chunk 0 (plain recurrence, n² per step) gets (n + 2)× the steps of the
    // others (n³ + n² per step in the summary pass, n² in the fix-up), which balances the two passes.
    std::vector<std::size_t> e(chunks + 1, 0);
    {
        const double w0 = Dense ? double(n) + 2 : 1.0, total = w0 + double(chunks - 1);
        const std::size_t first = std::clamp<std::size_t>(std::size_t(double(Tn) * w0 / total), 1, Tn - (chunks - 1));
        e[1] = first;
        for (std::size_t c = 1; c < chunks; ++c) e[c + 1] = first + (Tn - first) * c / (chunks - 1);
    }
    // Summaries: diagonal keeps every prefix product (P, one row per step); dense keeps the chunk's product.
    const std::size_t psize = Dense ? chunks * n * n : (Tn - e[1]) * n;
    std::vector<T> prod(psize);
    std::vector<T> zend(chunks * n, T(0));  // dense: the chunk's vector part from the zero state
    kernels::parallel_for(
        0, chunks, 1,
        [&](std::size_t lo_c, std::size_t hi_c) {
            std::vector<T> tmp(Dense ? 2 * n * n + n : 0);
            for (std::size_t c = lo_c; c < hi_c; ++c) {
                const std::size_t lo = e[c], hi = e[c + 1];
                if (c == 0) {
                    q.run(lo, hi, q.start, tmp.data());
                    continue;
                }
                if constexpr (Dense) {
                    T* p = prod.data() + c * n * n;
                    T* z = zend.data() + c * n;
                    T* zt = tmp.data() + n * n;
                    std::fill(p, p + n * n, T(0));
                    for (std::size_t i = 0; i < n; ++i) p[i * n + i] = 1;
                    for (std::size_t s = lo; s < hi; ++s) {
                        dense_axpy<Rev>(q.map(s), z, q.off(s), zt, n);
                        std::copy(zt, zt + n, z);
                        dense_lmul<Rev>(q.map(s), p, tmp.data(), n);
                    }
                } else {
                    // z_s written into y, P_s into prod (rows in scan order from e[1])
                    const T* prev_z = nullptr;
                    for (std::size_t s = lo; s < hi; ++s) {
                        T* p = prod.data() + (s - e[1]) * n;
                        if (s == lo) {
                            std::copy(q.map(s), q.map(s) + n, p);
                        } else {
                            std::copy(p - n, p, p);
                            diag_mul(q.map(s), p, n);
                        }
                        q.step(s, prev_z, nullptr);
                        prev_z = q.out(s);
                    }
                }
            }
        },
        chunks);
    // Carry: the state entering each chunk, in chunk order.
    std::vector<T> carry(chunks * n);
    std::copy(q.out(e[1] - 1), q.out(e[1] - 1) + n, carry.data() + n);
    std::vector<T> tmp(n);
    for (std::size_t c = 1; c + 1 < chunks; ++c) {
        const T* s_in = carry.data() + c * n;
        T* s_out = carry.data() + (c + 1) * n;
        if constexpr (Dense) {
            dense_axpy<false>(prod.data() + c * n * n, s_in, zend.data() + c * n, s_out, n);
        } else {
            const std::size_t last = e[c + 1] - 1;
            diag_axpy(prod.data() + (last - e[1]) * n, s_in, q.out(last), s_out, n);
        }
    }
    if constexpr (Dense) {
        // Fix-up: recompute each chunk from its true starting state.
        kernels::parallel_for(
            1, chunks, 1,
            [&](std::size_t lo_c, std::size_t hi_c) {
                std::vector<T> t2(n);
                for (std::size_t c = lo_c; c < hi_c; ++c) q.run(e[c], e[c + 1], carry.data() + c * n, t2.data());
            },
            chunks - 1);
    } else {
        // Fix-up: y_s = z_s + P_s ⊙ s_c, elementwise, split over every thread. Reverse order means rows
        // of y are visited backwards in memory; each step is still a contiguous row.
        const std::size_t rows = Tn - e[1];
        kernels::parallel_for(0, rows, 256, [&](std::size_t lo, std::size_t hi) {
            std::size_t c = 1;
            std::size_t r = lo;
            while (r < hi) {
                while (e[c + 1] - e[1] <= r) ++c;
                const std::size_t end = std::min(hi, e[c + 1] - e[1]);
                if (!Rev) {
                    // a contiguous run of rows (n == 1: one vector loop over all of them)
                    fixup_rows(q.out(e[1] + r), prod.data() + r * n, carry.data() + c * n, end - r, n);
                } else {
                    for (std::size_t k = r; k < end; ++k)
                        fixup_rows(q.out(e[1] + k), prod.data() + k * n, carry.data() + c * n, 1, n);
                }
                r = end;
            }
        });
    }
}

inline std::size_t auto_chunks(bool dense, std::size_t steps, std::size_t n, const scan_options& o) {
    if (o.chunks != 0) return o.chunks;
    const std::size_t p = kernels::num_threads();
    if (p <= 1 || (dense && n > 2)) return 1;
    return std::clamp<std::size_t>(steps / std::max<std::size_t>(o.min_chunk, 1), 1, p);
}

template <class T, bool Dense, bool Rev>
void solve_all(const T* m, std::size_t mstride, std::size_t mbatch, const T* c, T* y, const T* y0, std::size_t batch,
               std::size_t steps, std::size_t n, const scan_options& o) {
    auto seq = [&](std::size_t b) {
        return sequence<T, Dense, Rev>{m + b * mbatch,
                                       mstride,
                                       c + b * steps * n,
                                       y + b * steps * n,
                                       (Rev || y0 == nullptr) ? nullptr : y0 + b * n,
                                       steps,
                                       n};
    };
    const std::size_t chunks = auto_chunks(Dense, steps, n, o);
    if (o.chunks == 0 && batch >= kernels::num_threads()) {
        // enough sequences to keep every thread busy: split the batch, each sequence sequential (exact)
        kernels::parallel_for(0, batch, 1, [&](std::size_t lo, std::size_t hi) {
            for (std::size_t b = lo; b < hi; ++b) solve_sequence(seq(b), 1);
        });
        return;
    }
    for (std::size_t b = 0; b < batch; ++b) solve_sequence(seq(b), chunks);
}

}  // namespace detail

/// Composition of affine maps, dense: (M, v) ← (M2, v2) ∘ (M1, v1) = (M2·M1, M2·v1 + v2), n×n
/// row-major. The monoid the scan is built on; exposed for tests and for users composing maps.
/// Example: compose_dense(m2, v2, m1, v1, m, v, 3).
template <class T>
void compose_dense(const T* m2, const T* v2, const T* m1, const T* v1, T* m, T* v, std::size_t n) {
    std::vector<T> pm(m1, m1 + n * n), tmp(n * n);
    detail::dense_lmul<false>(m2, pm.data(), tmp.data(), n);
    detail::dense_axpy<false>(m2, v1, v2, tmp.data(), n);
    std::copy(pm.begin(), pm.end(), m);
    std::copy(tmp.begin(), tmp.begin() + n, v);
}
/// Composition of diagonal affine maps: (m2 ⊙ m1, m2 ⊙ v1 + v2) elementwise over n channels.
template <class T>
void compose_diag(const T* m2, const T* v2, const T* m1, const T* v1, T* m, T* v, std::size_t n) {
    for (std::size_t j = 0; j < n; ++j) {
        const T a = m2[j] * m1[j], b = m2[j] * v1[j] + v2[j];
        m[j] = a;
        v[j] = b;
    }
}

/// Solves y_t = M_t y_{t−1} + b_t for t = 0..T−1 with y_{−1} = y0, for `batch` independent sequences,
/// raw-pointer form. Layouts (row-major): M [batch, T, n, n] with `m_step` elements between steps
/// (n·n, or 0 for one matrix shared by every step) and `m_batch` between sequences; b and y
/// [batch, T, n]; y0 [batch, n] or null for zero. y must not alias b. NaN/Inf propagate (see the
/// top of this header). Example: linear_recurrence_dense(M, b, y0, y, 1, T, n, n * n, T * n * n);
template <class T>
void linear_recurrence_dense(const T* M, const T* b, const T* y0, T* y, std::size_t batch, std::size_t steps,
                             std::size_t n, std::size_t m_step, std::size_t m_batch, const scan_options& o = {}) {
    if (n == 1) {  // a 1×1 matrix is a diagonal: take the SIMD path
        detail::solve_all<T, false, false>(M, m_step, m_batch, b, y, y0, batch, steps, n, o);
        return;
    }
    detail::solve_all<T, true, false>(M, m_step, m_batch, b, y, y0, batch, steps, n, o);
}

/// Diagonal form of linear_recurrence_dense: y_t = m_t ⊙ y_{t−1} + b_t, m [batch, T, n] with
/// `m_step` elements between steps (n, or 0 for one diagonal shared by every step).
template <class T>
void linear_recurrence_diag(const T* m, const T* b, const T* y0, T* y, std::size_t batch, std::size_t steps,
                            std::size_t n, std::size_t m_step, std::size_t m_batch, const scan_options& o = {}) {
    detail::solve_all<T, false, false>(m, m_step, m_batch, b, y, y0, batch, steps, n, o);
}

/// The adjoint (reverse, transposed) recurrence of linear_recurrence_dense:
///   λ_t = g_t + M_{t+1}ᵀ λ_{t+1} (t = T−2..0),  λ_{T−1} = g_{T−1},  and, if dy0 is not null,
///   dy0 = M_0ᵀ λ_0  [batch, n].
/// So λ = ∂L/∂b and dy0 = ∂L/∂y0 when g = ∂L/∂y. Same layouts as the forward form.
template <class T>
void linear_recurrence_dense_reverse(const T* M, const T* g, T* lambda, T* dy0, std::size_t batch, std::size_t steps,
                                     std::size_t n, std::size_t m_step, std::size_t m_batch,
                                     const scan_options& o = {}) {
    if (n == 1) {
        detail::solve_all<T, false, true>(M, m_step, m_batch, g, lambda, nullptr, batch, steps, n, o);
    } else {
        detail::solve_all<T, true, true>(M, m_step, m_batch, g, lambda, nullptr, batch, steps, n, o);
    }
    if (dy0 != nullptr && steps > 0) {
        for (std::size_t b = 0; b < batch; ++b) {
            std::vector<T> zero(n, T(0));
            detail::dense_axpy<true>(M + b * m_batch, lambda + b * steps * n, zero.data(), dy0 + b * n, n);
        }
    }
}

/// The adjoint of linear_recurrence_diag: λ_t = g_t + m_{t+1} ⊙ λ_{t+1}, dy0 = m_0 ⊙ λ_0.
template <class T>
void linear_recurrence_diag_reverse(const T* m, const T* g, T* lambda, T* dy0, std::size_t batch, std::size_t steps,
                                    std::size_t n, std::size_t m_step, std::size_t m_batch,
                                    const scan_options& o = {}) {
    detail::solve_all<T, false, true>(m, m_step, m_batch, g, lambda, nullptr, batch, steps, n, o);
    if (dy0 != nullptr && steps > 0) {
        for (std::size_t b = 0; b < batch; ++b)
            for (std::size_t j = 0; j < n; ++j) dy0[b * n + j] = m[b * m_batch + j] * lambda[b * steps * n + j];
    }
}

namespace detail {
struct rec_shapes {
    bool dense = false;
    std::size_t batch = 1, steps = 0, n = 0;
};
// M [T,n,n] | [B,T,n,n] (dense) or [T,n] | [B,T,n] (diagonal, same shape as b); b [T,n] | [B,T,n].
inline rec_shapes check(const tensors::dims& m, const tensors::dims& b, const tensors::dims* y0) {
    rec_shapes s;
    auto bad = [&](const std::string& why) {
        return tensors::shape_error(scan_op_name, why + " (maps " + m.str() + ", offsets " + b.str() +
                                                      (y0 ? ", y0 " + y0->str() : std::string()) + ")");
    };
    if (b.rank != 2 && b.rank != 3) throw bad("the offsets must be [T, n] or [B, T, n]");
    s.batch = b.rank == 3 ? b[0] : 1;
    s.steps = b.at(-2);
    s.n = b.at(-1);
    if (m.rank == b.rank + 1) {
        s.dense = true;
        for (int i = 0; i < b.rank; ++i)
            if (m[i] != b[i]) throw bad("the maps' leading axes must match the offsets");
        if (m.at(-1) != s.n) throw bad("dense maps must be n×n");
    } else if (m.rank == b.rank) {
        for (int i = 0; i < b.rank; ++i)
            if (m[i] != b[i]) throw bad("diagonal maps must have the offsets' shape");
    } else {
        throw bad("the maps must be [.., T, n, n] (dense) or [.., T, n] (diagonal)");
    }
    if (y0 != nullptr && y0->size() != s.batch * s.n) throw bad("y0 must hold batch × n values");
    return s;
}
}  // namespace detail

/// Solves y_t = M_t y_{t−1} + b_t (y_{−1} = y0) on arrays. M is dense [T, n, n] / [B, T, n, n] or
/// diagonal [T, n] / [B, T, n] (the shape of b); b [T, n] / [B, T, n]; y0 [n] / [B, n]. Returns y
/// with b's shape. Throws std::invalid_argument naming the shapes when they disagree.
/// Example: `auto y = linear_recurrence(m, b, y0);` (m and b [T, n]: elementwise recurrence).
template <class AM, class AB, class AY>
auto linear_recurrence(const AM& M, const AB& b, const AY& y0, const scan_options& o = {}) {
    using T = typename AB::value_type;
    const xt::xarray<T> m = M, bb = b, yy = y0;
    const tensors::dims yd = tensors::dims::of(yy.shape());
    const auto s = detail::check(tensors::dims::of(m.shape()), tensors::dims::of(bb.shape()), &yd);
    xt::xarray<T> y = xt::xarray<T>::from_shape(bb.shape());
    if (s.dense) {
        linear_recurrence_dense(m.data(), bb.data(), yy.data(), y.data(), s.batch, s.steps, s.n, s.n * s.n,
                                s.steps * s.n * s.n, o);
    } else {
        linear_recurrence_diag(m.data(), bb.data(), yy.data(), y.data(), s.batch, s.steps, s.n, s.n, s.steps * s.n, o);
    }
    return y;
}

/// The adjoint of linear_recurrence on arrays: returns {λ, dy0} with λ_t = g_t + M_{t+1}ᵀ λ_{t+1}
/// (λ = ∂L/∂b for g = ∂L/∂y) and dy0 = M_0ᵀ λ_0 ([B, n], or [n] for unbatched input).
template <class AM, class AG>
auto linear_recurrence_reverse(const AM& M, const AG& g, const scan_options& o = {}) {
    using T = typename AG::value_type;
    const xt::xarray<T> m = M, gg = g;
    const auto s = detail::check(tensors::dims::of(m.shape()), tensors::dims::of(gg.shape()), nullptr);
    xt::xarray<T> lam = xt::xarray<T>::from_shape(gg.shape());
    xt::xarray<T> dy0 =
        gg.dimension() == 3 ? xt::xarray<T>::from_shape({s.batch, s.n}) : xt::xarray<T>::from_shape({s.n});
    if (s.dense) {
        linear_recurrence_dense_reverse(m.data(), gg.data(), lam.data(), dy0.data(), s.batch, s.steps, s.n, s.n * s.n,
                                        s.steps * s.n * s.n, o);
    } else {
        linear_recurrence_diag_reverse(m.data(), gg.data(), lam.data(), dy0.data(), s.batch, s.steps, s.n, s.n,
                                       s.steps * s.n, o);
    }
    return std::pair<xt::xarray<T>, xt::xarray<T>>(std::move(lam), std::move(dy0));
}

}  // namespace exprgrad::ops
