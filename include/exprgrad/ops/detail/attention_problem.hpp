// attention's kernels, part 1 (ops/attention.hpp is the contract): block sizes, the problem every task of a
// call shares (sizes, per-row key counts and multipliers, packed operands), task splitting and input checks.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <xsimd/xsimd.hpp>
#include <xtensor/xtensor.hpp>

#include "exprgrad/format.hpp"
#include "exprgrad/kernels/flush_subnormals.hpp"
#include "exprgrad/kernels/gemm_tiles.hpp"
#include "exprgrad/kernels/parallel.hpp"
#include "exprgrad/kernels/softmax_block_avx512.hpp"
#include "exprgrad/kernels/softmax_rows.hpp"
#include "exprgrad/ops/attention_options.hpp"
#include "exprgrad/ops/attention_view.hpp"
#include "exprgrad/tensors/shape.hpp"

namespace exprgrad::ops::detail::attention {

namespace rows = exprgrad::kernels::rows;
using namespace ::exprgrad::kernels::tiles;  // the register tiles (kernels/gemm_tiles.hpp and its 512-bit versions)

inline constexpr std::size_t block_q = 64;  // query rows per block
inline constexpr std::size_t block_k = 64;  // keys per block
static_assert(block_k == 64, "the 512-bit score tiles (softmax_block_avx512.hpp) are 64 keys wide");

template <class T>
using buffer = std::vector<T, xsimd::aligned_allocator<T>>;

inline std::size_t round_up(std::size_t x, std::size_t m) { return (x + m - 1) / m * m; }

/// Grows v to at least n elements and never shrinks it: workspaces keep their memory between calls, so a
/// repeated call allocates nothing (fresh pages cost more than the small-T kernels themselves).
template <class V>
void grow(V& v, std::size_t n) {
    if (v.size() < n) v.resize(n);
}

// Two inputs whose shapes do not fit, as the library's one argument error (tensors::shape_error): returned,
// to be thrown, e.g. "exprgrad::attention_forward: q has shape (1, 2, 3, 4) but k has shape (1, 2, 3, 5) (...)".
inline std::invalid_argument shape_mismatch(const char* op, const char* what, const char* name_a, const auto& shape_a,
                                            const char* name_b, const auto& shape_b) {
    return tensors::shape_error(op, std::string(name_a) + " has shape " + format_shape(shape_a) + " but " + name_b +
                                        " has shape " + format_shape(shape_b) + " (" + what + ")");
}

/// Heads per parallel task of the O(T·d) packing loops: about 64 Ki elements each, so that small problems run
/// them on the calling thread (waking the pool costs more than packing a few thousand elements).
inline std::size_t packing_grain(std::size_t rows_per_head, std::size_t width) {
    return std::max<std::size_t>(1, (std::size_t(1) << 16) / std::max<std::size_t>(1, rows_per_head * width));
}

/// Everything a call shares between its tasks: sizes, per-row key counts and multipliers, packed operands.
template <class T>
struct problem {
    std::size_t B = 0, H = 0, Tq = 0, Tk = 0, d = 0, dv = 0;
    std::size_t dp = 0, dvp = 0;  // d and dv rounded up to the tile width (zero padding)
    std::size_t nqb = 0, nkb = 0;
    bool cosine = false;
    std::vector<std::size_t> nrow;  // [B][Tq] keys attended by each row: always the prefix [0, n)
    std::vector<std::size_t> kend;  // [B] max over rows of nrow: keys at or past it are never read
    std::vector<T> srow;            // [B][Tq] multiplier of each row
    buffer<T> Qp;                   // [BH][Tq][dp] q̂ = q normalised (under normalize_qk only)
    const T* qsrc = nullptr;        // q itself: q̂ when not normalising
    attention_rows q_rows, k_rows, v_rows;  // where the rows of q, k, v start (row-major, or strided views)
    buffer<T> Qs;                   // [BH][Tq][dp] s_i q̂_i: the scores come out scaled, in both passes alike
    buffer<T> Kt;                   // [BH][nkb][d][block_k] k̂ transposed per key block
    buffer<T> Vp;                   // [BH][Tk][dvp] (forward only)
    // The rows the kernels read for k̂, v and dout: the caller's arrays when no padding or normalisation is
    // needed (d, d_v multiples of the tile width), else the packed copies Kp, Vp, dOp.
    const T* kp = nullptr;
    const T* vp = nullptr;
    const T* dop = nullptr;
    attention_rows kp_rows, vp_rows, dop_rows;  // where their rows start (the packed copies: row-major)
    std::vector<T> qinv, kinv;  // [BH][T] 1/√(‖·‖² + ε²) under normalize_qk
    // backward only
    buffer<T> Kp;         // [BH][Tk][dp] k̂
    buffer<T> Vt;         // [BH][nkb][dv][block_k] v transposed per key block
    buffer<T> dOp;        // [BH][Tq][dvp]
    std::vector<T> Drow;  // [BH][Tq] dO·O
    // What the packed q̂·s, k̂ᵀ, multipliers and key counts were made from (attention_reuse::forward).
    struct {
        const T *q = nullptr, *k = nullptr, *v = nullptr;
        std::array<std::size_t, 4> qs{}, ks{}, vs{};
        attention_rows qr, kr, vr;
        attention_options o;
        bool valid = false;
    } packed_for;
    bool reused = false;  // whether the last prepare took the forward's packing (for tests)

    std::size_t heads() const { return B * H; }
};

inline std::size_t task_count(const attention_options& o, std::size_t units) {
    const std::size_t t = o.threads ? o.threads : kernels::num_threads();
    return std::max<std::size_t>(1, std::min(t, units));
}

/// Runs unit(u) for u in [0, units) on `chunks` parallel tasks with scratch pool[c] (sized by init before the
/// region). Tasks take the next unit from a shared counter, so a core slowed by other load does less of the
/// work; each unit writes its own outputs from its own inputs, so the results do not depend on which task
/// ran it. Each task runs with subnormals flushed to zero (kernels/flush_subnormals.hpp).
template <class Scratch, class Init, class Unit>
void run_units(std::size_t units, std::size_t chunks, std::vector<Scratch>& pool, Init&& init, Unit&& unit) {
    if (units == 0) return;
    grow(pool, chunks);
    for (std::size_t c = 0; c < chunks; ++c) init(pool[c]);
    std::atomic<std::size_t> next{0};
    kernels::parallel_for(
        0, chunks, 1,
        [&](std::size_t lo, std::size_t hi) {
            const kernels::flush_subnormals_scope flush;
            for (std::size_t c = lo; c < hi; ++c)
                for (std::size_t u = next.fetch_add(1, std::memory_order_relaxed); u < units;
                     u = next.fetch_add(1, std::memory_order_relaxed))
                    unit(u, pool[c]);
        },
        chunks);
}

template <class T>
constexpr const char* value_type_name() {
    return std::is_same_v<T, float> ? "float" : "double";
}

template <class T>
void check_inputs(const char* op, const attention_view<T, 4>& q, const attention_view<T, 4>& k, const attention_view<T, 4>& v,
                  const attention_options& o) {
    const auto &qs = q.shape(), &ks = k.shape(), &vs = v.shape();
    if (qs[0] != ks[0] || qs[1] != ks[1])
        throw shape_mismatch(op, "batch and head dimensions must match", "q", qs, "k", ks);
    if (ks[0] != vs[0] || ks[1] != vs[1] || ks[2] != vs[2])
        throw shape_mismatch(op, "batch, head and key-length dimensions must match", "k", ks, "v", vs);
    if (qs[3] != ks[3]) throw shape_mismatch(op, "the head dimension d must match", "q", qs, "k", ks);
    if (qs[3] == 0)
        throw tensors::shape_error(op, "q has shape " + format_shape(qs) + ": the head dimension d must be at least 1");
    if (!o.key_lengths.empty()) {
        if (o.key_lengths.size() != qs[0])
            throw tensors::shape_error(op, "key_lengths has " + format_number(o.key_lengths.size()) +
                                               " entries but q has shape " + format_shape(qs) +
                                               " (one length per batch entry)");
        for (std::size_t b = 0; b < o.key_lengths.size(); ++b)
            if (o.key_lengths[b] > ks[2])
                throw tensors::shape_error(
                    op, "key_lengths[" + format_number(b) + "] = " + format_number(o.key_lengths[b]) +
                            " exceeds T_k = " + format_number(ks[2]) + " of k with shape " + format_shape(ks));
    }
    if (o.scale.which == scale_policy::kind::fixed && !std::isfinite(o.scale.value))
        throw tensors::shape_error(op, o.scale.to_string() + " is not a finite multiplier");
    if (o.normalize_qk) {
        // ε² is what the kernels add (in T): it must be a normal T, or a zero row computes 0·(1/0) = NaN.
        const T eps2 = static_cast<T>(o.qk_eps * o.qk_eps);
        if (!(o.qk_eps > 0.0 && eps2 >= std::numeric_limits<T>::min() && std::isfinite(eps2))) {
            char range[64];  // the admissible range, its bounds moved inward and rounded to two digits
            std::snprintf(range, sizeof range, "[%.2g, %.2g]",
                          std::sqrt(double(std::numeric_limits<T>::min())) * 1.0001,
                          std::sqrt(double(std::numeric_limits<T>::max())) * 0.9999);
            throw tensors::shape_error(op, "qk_eps = " + format_number(o.qk_eps) +
                                               " must be > 0 with qk_eps² a normal " + value_type_name<T>() +
                                               " (qk_eps in " + range + ")");
        }
    }
}

template <class A, class S>
void fit(A& a, const S& shape) {
    if (!std::equal(shape.begin(), shape.end(), a.shape().begin())) a.resize(shape);
}

}  // namespace exprgrad::ops::detail::attention
