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

#include "exprgrad/ops/attention_scale.hpp"
#include "exprgrad/ops/detail/gemm_avx512.hpp"
#include "exprgrad/ops/detail/softmax_block_avx512.hpp"
#include "exprgrad/ops/detail/softmax_rows.hpp"
#include "exprgrad/tensors/parallel.hpp"

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

namespace detail::attention {

namespace rows = exprgrad::ops::detail::rows;

inline constexpr std::size_t block_q = 64;  // query rows per block
inline constexpr std::size_t block_k = 64;  // keys per block
inline constexpr std::size_t tile_rows = 6;
static_assert(block_k == 64, "the 512-bit score tiles (softmax_block_avx512.hpp) are 64 keys wide");

/// Width of a register tile: two SIMD batches (16 floats or 8 doubles with AVX2).
template <class T>
inline constexpr std::size_t tile_width = 2 * rows::lanes<T>;

template <class T>
using buffer = std::vector<T, xsimd::aligned_allocator<T>>;

inline std::size_t round_up(std::size_t x, std::size_t m) { return (x + m - 1) / m * m; }

/// Grows v to at least n elements and never shrinks it: workspaces keep their memory between calls, so a
/// repeated call allocates nothing (fresh pages cost more than the small-T kernels themselves).
template <class V>
void grow(V& v, std::size_t n) {
    if (v.size() < n) v.resize(n);
}

/// One register tile: C[R × W] (+)= A·B for k in [0, K), with A(r, k) = a[r·ars + k·aks] (any layout:
/// elements are broadcast one at a time) and B row-major with leading dimension ldb. With limits, row r
/// takes only k in [beg[r], end[r]): masked products are skipped rather than multiplied by zero, so a
/// non-finite value in a masked position never reaches C. ARS, AKS: the strides when known at compile time
/// (0: use ars_, aks_), so that the six broadcast addresses are immediate offsets rather than registers.
template <std::size_t R, bool Acc, bool Limited, std::size_t ARS, std::size_t AKS, class T>
inline void tile(std::size_t K, const T* a, std::size_t ars_, std::size_t aks_, const T* b, std::size_t ldb, T* c,
                 std::size_t ldc, const std::size_t* beg, const std::size_t* end) {
    const std::size_t ars = ARS ? ARS : ars_, aks = AKS ? AKS : aks_;
    using B = xsimd::batch<T>;
    constexpr std::size_t L = B::size;
    [&]<std::size_t... r>(std::index_sequence<r...>) {
        B c0[R], c1[R];
        if constexpr (Acc) {
            ((c0[r] = B::load_unaligned(c + r * ldc), c1[r] = B::load_unaligned(c + r * ldc + L)), ...);
        } else {
            ((c0[r] = B(T(0)), c1[r] = B(T(0))), ...);
        }
        if constexpr (!Limited) {
            for (std::size_t k = 0; k < K; ++k) {
                const B b0 = B::load_unaligned(b + k * ldb), b1 = B::load_unaligned(b + k * ldb + L);
                const T* ak = a + k * aks;
                ((c0[r] = xsimd::fma(B(ak[r * ars]), b0, c0[r]), c1[r] = xsimd::fma(B(ak[r * ars]), b1, c1[r])), ...);
            }
        } else {
            const std::size_t lo = std::min({beg[r]...}), hi = std::min(K, std::max({end[r]...}));
            const std::size_t full_lo = std::max({beg[r]...}), full_hi = std::min({end[r]...});
            for (std::size_t k = lo; k < hi; ++k) {
                const B b0 = B::load_unaligned(b + k * ldb), b1 = B::load_unaligned(b + k * ldb + L);
                const T* ak = a + k * aks;
                if (k >= full_lo && k < full_hi) {
                    ((c0[r] = xsimd::fma(B(ak[r * ars]), b0, c0[r]), c1[r] = xsimd::fma(B(ak[r * ars]), b1, c1[r])),
                     ...);
                } else {
                    ((k >= beg[r] && k < end[r] ? (void)(c0[r] = xsimd::fma(B(ak[r * ars]), b0, c0[r]),
                                                         c1[r] = xsimd::fma(B(ak[r * ars]), b1, c1[r]))
                                                : (void)0),
                     ...);
                }
            }
        }
        ((c0[r].store_unaligned(c + r * ldc), c1[r].store_unaligned(c + r * ldc + L)), ...);
    }
    (std::make_index_sequence<R>{});
}

/// C[rows × cols] (+)= A·B with cols a multiple of tile_width; with Limited, per-row k limits as in tile. Float
/// goes to the 512-bit tiles of gemm_avx512.hpp when the CPU has them (bit-identical results).
template <bool Acc, bool Limited, std::size_t ARS, std::size_t AKS, class T>
void gemm(std::size_t rows_, std::size_t cols, std::size_t K, const T* a, std::size_t ars, std::size_t aks, const T* b,
          std::size_t ldb, T* c, std::size_t ldc, const std::size_t* beg, const std::size_t* end) {
#if EXPRGRAD_HAS_AVX512_KERNELS
    if constexpr (std::is_same_v<T, float> && tile_width<T> == 16) {
        if (::exprgrad::ops::detail::avx512_enabled()) {
            gemm512<Acc, Limited, ARS, AKS>(rows_, cols, K, a, ars, aks, b, ldb, c, ldc, beg, end);
            return;
        }
    }
#endif
    constexpr std::size_t W = tile_width<T>;
    for (std::size_t j = 0; j < cols; j += W) {
        for (std::size_t r = 0; r < rows_; r += tile_rows) {
            const T* ar = a + r * ars;
            T* cr = c + r * ldc + j;
            const std::size_t* br = beg ? beg + r : nullptr;
            const std::size_t* er = end ? end + r : nullptr;
            switch (std::min(tile_rows, rows_ - r)) {
                case 6:
                    tile<6, Acc, Limited, ARS, AKS>(K, ar, ars, aks, b + j, ldb, cr, ldc, br, er);
                    break;
                case 5:
                    tile<5, Acc, Limited, ARS, AKS>(K, ar, ars, aks, b + j, ldb, cr, ldc, br, er);
                    break;
                case 4:
                    tile<4, Acc, Limited, ARS, AKS>(K, ar, ars, aks, b + j, ldb, cr, ldc, br, er);
                    break;
                case 3:
                    tile<3, Acc, Limited, ARS, AKS>(K, ar, ars, aks, b + j, ldb, cr, ldc, br, er);
                    break;
                case 2:
                    tile<2, Acc, Limited, ARS, AKS>(K, ar, ars, aks, b + j, ldb, cr, ldc, br, er);
                    break;
                default:
                    tile<1, Acc, Limited, ARS, AKS>(K, ar, ars, aks, b + j, ldb, cr, ldc, br, er);
                    break;
            }
        }
    }
}

/// gemm with a row-major A of leading dimension lda (a compile-time stride for the common lda = 64).
template <bool Acc, class T>
void gemm_rows(std::size_t rows_, std::size_t cols, std::size_t K, const T* a, std::size_t lda, const T* b,
               std::size_t ldb, T* c, std::size_t ldc) {
    if (lda == 64)
        gemm<Acc, false, 64, 1>(rows_, cols, K, a, lda, 1, b, ldb, c, ldc, nullptr, nullptr);
    else
        gemm<Acc, false, 0, 1>(rows_, cols, K, a, lda, 1, b, ldb, c, ldc, nullptr, nullptr);
}

/// C += A·B with A's strides fixed at compile time, and per-row k limits when beg (and end) are given.
template <std::size_t ARS, std::size_t AKS, class T>
void gemm_acc(std::size_t rows_, std::size_t cols, std::size_t K, const T* a, const T* b, std::size_t ldb, T* c,
              std::size_t ldc, const std::size_t* beg, const std::size_t* end) {
    if (beg)
        gemm<true, true, ARS, AKS>(rows_, cols, K, a, ARS, AKS, b, ldb, c, ldc, beg, end);
    else
        gemm<true, false, ARS, AKS>(rows_, cols, K, a, ARS, AKS, b, ldb, c, ldc, nullptr, nullptr);
}

inline std::string shape_text(const auto& shape) {
    std::ostringstream s;
    s << '[';
    for (std::size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
    s << ']';
    return s.str();
}

[[noreturn]] inline void shape_error(const char* op, const char* what, const char* name_a, const auto& shape_a,
                                     const char* name_b, const auto& shape_b) {
    throw std::invalid_argument(std::string("exprgrad::") + op + ": " + name_a + " has shape " + shape_text(shape_a) +
                                " but " + name_b + " has shape " + shape_text(shape_b) + " (" + what + ")");
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
    buffer<T> Qs;                   // [BH][Tq][dp] s_i q̂_i: the scores come out scaled, in both passes alike
    buffer<T> Kt;                   // [BH][nkb][d][block_k] k̂ transposed per key block
    buffer<T> Vp;                   // [BH][Tk][dvp] (forward only)
    // The rows the kernels read for k̂, v and dout: the caller's arrays when no padding or normalisation is
    // needed (d, d_v multiples of the tile width), else the packed copies Kp, Vp, dOp.
    const T* kp = nullptr;
    const T* vp = nullptr;
    const T* dop = nullptr;
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
        attention_options o;
        bool valid = false;
    } packed_for;
    bool reused = false;  // whether the last prepare took the forward's packing (for tests)

    std::size_t heads() const { return B * H; }
};

inline std::size_t task_count(const attention_options& o, std::size_t units) {
    const std::size_t t = o.threads ? o.threads : num_threads();
    return std::max<std::size_t>(1, std::min(t, units));
}

/// Runs unit(u) for u in [0, units) on `chunks` parallel tasks with scratch pool[c] (sized by init before the
/// region). Tasks take the next unit from a shared counter, so a core slowed by other load does less of the
/// work; each unit writes its own outputs from its own inputs, so the results do not depend on which task
/// ran it.
template <class Scratch, class Init, class Unit>
void run_units(std::size_t units, std::size_t chunks, std::vector<Scratch>& pool, Init&& init, Unit&& unit) {
    if (units == 0) return;
    grow(pool, chunks);
    for (std::size_t c = 0; c < chunks; ++c) init(pool[c]);
    std::atomic<std::size_t> next{0};
    parallel_for(
        0, chunks, 1,
        [&](std::size_t lo, std::size_t hi) {
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
void check_inputs(const char* op, const xt::xtensor<T, 4>& q, const xt::xtensor<T, 4>& k, const xt::xtensor<T, 4>& v,
                  const attention_options& o) {
    const auto &qs = q.shape(), &ks = k.shape(), &vs = v.shape();
    if (qs[0] != ks[0] || qs[1] != ks[1]) shape_error(op, "batch and head dimensions must match", "q", qs, "k", ks);
    if (ks[0] != vs[0] || ks[1] != vs[1] || ks[2] != vs[2])
        shape_error(op, "batch, head and key-length dimensions must match", "k", ks, "v", vs);
    if (qs[3] != ks[3]) shape_error(op, "the head dimension d must match", "q", qs, "k", ks);
    if (qs[3] == 0)
        throw std::invalid_argument(std::string("exprgrad::") + op + ": q has shape " + shape_text(qs) +
                                    ": the head dimension d must be at least 1");
    if (!o.key_lengths.empty()) {
        if (o.key_lengths.size() != qs[0])
            throw std::invalid_argument(std::string("exprgrad::") + op + ": key_lengths has " +
                                        std::to_string(o.key_lengths.size()) + " entries but q has shape " +
                                        shape_text(qs) + " (one length per batch entry)");
        for (std::size_t b = 0; b < o.key_lengths.size(); ++b)
            if (o.key_lengths[b] > ks[2])
                throw std::invalid_argument(std::string("exprgrad::") + op + ": key_lengths[" + std::to_string(b) +
                                            "] = " + std::to_string(o.key_lengths[b]) + " exceeds T_k = " +
                                            std::to_string(ks[2]) + " of k with shape " + shape_text(ks));
    }
    if (o.scale.which == scale_policy::kind::fixed && !std::isfinite(o.scale.value))
        throw std::invalid_argument(std::string("exprgrad::") + op + ": " + o.scale.to_string() +
                                    " is not a finite multiplier");
    if (o.normalize_qk) {
        // ε² is what the kernels add (in T): it must be a normal T, or a zero row computes 0·(1/0) = NaN.
        const T eps2 = static_cast<T>(o.qk_eps * o.qk_eps);
        if (!(o.qk_eps > 0.0 && eps2 >= std::numeric_limits<T>::min() && std::isfinite(eps2))) {
            char buf[160];
            std::snprintf(buf, sizeof buf, "qk_eps = %g must be > 0 with qk_eps² a normal %s (qk_eps in [%.2g, %.2g])",
                          o.qk_eps, value_type_name<T>(), std::sqrt(double(std::numeric_limits<T>::min())) * 1.0001,
                          std::sqrt(double(std::numeric_limits<T>::max())) * 0.9999);
            throw std::invalid_argument(std::string("exprgrad::") + op + ": " + buf);
        }
    }
}

#if defined(__AVX__)
/// dst[c·ldd + r] = src[r·lds + c]·(scale ? scale[r] : 1) for an 8 × 8 float block: the packing of k̂ and v
/// into key-block columns (a scalar loop there cost 10% of a T = 128 forward + backward).
inline void transpose8x8(const float* src, std::size_t lds, const float* scale, float* dst, std::size_t ldd) {
    // Written out: as loops over arrays g++ kept the 24 intermediate vectors on the stack.
    auto row = [&](int i) {
        const __m256 x = _mm256_loadu_ps(src + i * lds);
        return scale ? _mm256_mul_ps(x, _mm256_set1_ps(scale[i])) : x;
    };
    const __m256 r0 = row(0), r1 = row(1), r2 = row(2), r3 = row(3), r4 = row(4), r5 = row(5), r6 = row(6), r7 = row(7);
    // t: pairs of rows interleaved (columns 0, 1 | 4, 5 and 2, 3 | 6, 7)
    const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    // u: one column of four rows in each 128-bit half (column c | c + 4)
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(dst + 0 * ldd, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(dst + 1 * ldd, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(dst + 2 * ldd, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(dst + 3 * ldd, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(dst + 4 * ldd, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(dst + 5 * ldd, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(dst + 6 * ldd, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(dst + 7 * ldd, _mm256_permute2f128_ps(u3, u7, 0x31));
}
#endif

/// Whether two option sets give the same packing, key counts and multipliers (threads do not matter).
inline bool same_packing_options(const attention_options& a, const attention_options& b) {
    return a.causal == b.causal && a.normalize_qk == b.normalize_qk && a.qk_eps == b.qk_eps &&
           a.key_lengths == b.key_lengths && a.scale.which == b.scale.which && a.scale.value == b.scale.value &&
           a.scale.n_choice == b.scale.n_choice;
}

/// Whether P holds the packing of exactly these arrays (addresses and shapes) and options.
template <class T>
bool packed_from(const problem<T>& P, const xt::xtensor<T, 4>& q, const xt::xtensor<T, 4>& k,
                 const xt::xtensor<T, 4>& v, const attention_options& o) {
    const auto& r = P.packed_for;
    auto same = [](const auto& shape, const std::array<std::size_t, 4>& s) {
        return std::equal(s.begin(), s.end(), shape.begin());
    };
    return r.valid && r.q == q.data() && r.k == k.data() && r.v == v.data() && same(q.shape(), r.qs) &&
           same(k.shape(), r.ks) && same(v.shape(), r.vs) && same_packing_options(r.o, o);
}

/// Per-row key counts (P.nrow, P.kend) and multipliers (P.srow) of a problem whose sizes are set.
template <class T>
void count_keys_and_scale(const attention_options& o, problem<T>& P) {
    const std::size_t B = P.B, Tq = P.Tq, Tk = P.Tk, d = P.d;
    // Key counts: a prefix [0, n) per row, non-decreasing in the row index.
    P.nrow.assign(B * Tq, 0);
    P.kend.assign(B, 0);
    for (std::size_t b = 0; b < B; ++b) {
        const std::size_t len = o.key_lengths.empty() ? Tk : o.key_lengths[b];
        for (std::size_t i = 0; i < Tq; ++i) {
            std::size_t n = len;
            if (o.causal) {
                const long long last =
                    static_cast<long long>(i) + static_cast<long long>(Tk) - static_cast<long long>(Tq);
                n = std::min<std::size_t>(len, last < 0 ? 0 : static_cast<std::size_t>(last) + 1);
            }
            P.nrow[b * Tq + i] = n;
            P.kend[b] = std::max(P.kend[b], n);
        }
    }
    // Multipliers, computed once per distinct n (gradient_max solves an equation for each).
    P.srow.assign(B * Tq, T(0));
    const scale_policy& pol = o.scale;
    if (!pol.depends_on_n()) {
        std::fill(P.srow.begin(), P.srow.end(), static_cast<T>(pol.multiplier(1.0, d, P.cosine)));
    } else {
        std::vector<double> by_n(Tk + 1, std::numeric_limits<double>::quiet_NaN());
        // The post's single n = L_max/2 for the whole call (L_max = T_k, whatever the key lengths).
        const bool half = o.causal && pol.n_choice == scale_n::half_length;
        const double s_half = half ? pol.multiplier(static_cast<double>(Tk) / 2.0, d, P.cosine) : 0.0;
        for (std::size_t b = 0; b < B; ++b) {
            for (std::size_t i = 0; i < Tq; ++i) {
                const std::size_t n = P.nrow[b * Tq + i];
                if (half) {
                    P.srow[b * Tq + i] = static_cast<T>(s_half);
                    continue;
                }
                if (std::isnan(by_n[n])) by_n[n] = pol.multiplier(static_cast<double>(n), d, P.cosine);
                P.srow[b * Tq + i] = static_cast<T>(by_n[n]);
            }
        }
    }
}

/// Sizes, key counts and multipliers, and the packed operands into P, whose buffers are reused: s·q̂ (and q̂
/// under normalize_qk) padded to the tile width, k̂ᵀ per key block, v padded when d_v needs it; for the backward
/// also vᵀ per key block and k̂ padded or normalised when needed. Every element a kernel reads is written here,
/// padding included. With reuse_forward, a backward whose arrays and options are those of the last forward
/// (packed_from) keeps that forward's s·q̂, k̂ᵀ, key counts and multipliers.
template <class T>
void prepare(const xt::xtensor<T, 4>& q, const xt::xtensor<T, 4>& k, const xt::xtensor<T, 4>& v,
             const attention_options& o, bool backward, problem<T>& P, bool reuse_forward = false) {
    // The backward can take q̂·s, k̂ᵀ, the multipliers and key counts from the forward's packing.
    const bool reuse = backward && reuse_forward && packed_from(P, q, k, v, o);
    P.reused = reuse;
    P.packed_for.valid = false;  // until this call's packing is complete
    P.B = q.shape()[0];
    P.H = q.shape()[1];
    P.Tq = q.shape()[2];
    P.Tk = k.shape()[2];
    P.d = q.shape()[3];
    P.dv = v.shape()[3];
    P.dp = round_up(P.d, tile_width<T>);
    P.dvp = round_up(P.dv, tile_width<T>);
    P.nqb = (P.Tq + block_q - 1) / block_q;
    P.nkb = (P.Tk + block_k - 1) / block_k;
    P.cosine = o.normalize_qk;
    const std::size_t Tq = P.Tq, Tk = P.Tk, d = P.d, dv = P.dv, dp = P.dp, dvp = P.dvp;

    if (!reuse) count_keys_and_scale(o, P);

    const std::size_t BH = P.heads();
    P.qsrc = q.data();
    grow(P.Qs, BH * Tq * dp);
    grow(P.Kt, BH * P.nkb * d * block_k);
    const bool copy_v = !backward && dvp != dv, copy_k = backward && (dp != d || P.cosine);
    if (copy_v) grow(P.Vp, BH * Tk * dvp);
    P.vp = copy_v ? P.Vp.data() : v.data();
    if (P.cosine) {
        grow(P.Qp, BH * Tq * dp);
        grow(P.qinv, BH * Tq);
        grow(P.kinv, BH * Tk);
    }
    if (backward) {
        if (copy_k) grow(P.Kp, BH * Tk * dp);
        P.kp = copy_k ? P.Kp.data() : k.data();
        grow(P.Vt, BH * P.nkb * dv * block_k);
    }
    const T eps2 = static_cast<T>(o.qk_eps * o.qk_eps);
    // Row r of x (width w) into dst (width wp): scaled by c, zero-padded.
    auto pack_row = [](const T* x, std::size_t w, std::size_t wp, T c, bool scaled, T* dst) {
        using Bt = xsimd::batch<T>;
        std::size_t i = 0;
        if (scaled) {
            for (; i + Bt::size <= w; i += Bt::size) (Bt::load_unaligned(x + i) * Bt(c)).store_unaligned(dst + i);
            for (; i < w; ++i) dst[i] = x[i] * c;
        } else {
            std::copy(x, x + w, dst);
        }
        std::fill(dst + w, dst + wp, T(0));
    };
    // Rows [j0, j0 + nj) of x (width w) transposed into a w × block_k block, columns past nj zero; row jj
    // scaled by c[j0 + jj] when c is given.
    auto pack_block_t = [](const T* x, std::size_t w, std::size_t j0, std::size_t nj, const T* c, T* dst) {
        if (nj < block_k)
            for (std::size_t i = 0; i < w; ++i) std::fill(dst + i * block_k + nj, dst + (i + 1) * block_k, T(0));
        std::size_t jj = 0;
#if defined(__AVX__)
        if constexpr (std::is_same_v<T, float>)
            for (; jj + 8 <= nj; jj += 8) {
                std::size_t i = 0;
                for (; i + 8 <= w; i += 8)
                    transpose8x8(x + (j0 + jj) * w + i, w, c ? c + j0 + jj : nullptr, dst + i * block_k + jj, block_k);
                for (; i < w; ++i)
                    for (std::size_t t = jj; t < jj + 8; ++t)
                        dst[i * block_k + t] = c ? x[(j0 + t) * w + i] * c[j0 + t] : x[(j0 + t) * w + i];
            }
#endif
        for (; jj < nj; ++jj) {
            const T* src = x + (j0 + jj) * w;
            const T cj = c ? c[j0 + jj] : T(1);
            for (std::size_t i = 0; i < w; ++i) dst[i * block_k + jj] = c ? src[i] * cj : src[i];
        }
    };
    parallel_for(0, BH, packing_grain(Tq + Tk, d + dv), [&](std::size_t lo, std::size_t hi) {
        for (std::size_t bh = lo; bh < hi; ++bh) {
            const std::size_t b = bh / P.H;
            const T* qh = q.data() + bh * Tq * d;
            const T* kh = k.data() + bh * Tk * d;
            const T* vh = v.data() + bh * Tk * dv;
            T* qinv = P.cosine ? P.qinv.data() + bh * Tq : nullptr;
            T* kinv = P.cosine ? P.kinv.data() + bh * Tk : nullptr;
            if (P.cosine && !reuse) {
                for (std::size_t i = 0; i < Tq; ++i)
                    qinv[i] = T(1) / std::sqrt(rows::dot(qh + i * d, qh + i * d, d) + eps2);
                for (std::size_t j = 0; j < Tk; ++j)
                    kinv[j] = T(1) / std::sqrt(rows::dot(kh + j * d, kh + j * d, d) + eps2);
            }
            for (std::size_t i = 0; i < Tq && !reuse; ++i) {
                const T* src = qh + i * d;
                if (P.cosine) {
                    T* dst = P.Qp.data() + (bh * Tq + i) * dp;
                    pack_row(src, d, dp, qinv[i], true, dst);
                    src = dst;
                }
                pack_row(src, d, dp, P.srow[b * Tq + i], true, P.Qs.data() + (bh * Tq + i) * dp);
            }
            for (std::size_t kb = 0; kb < P.nkb; ++kb) {
                const std::size_t j0 = kb * block_k, nj = std::min(block_k, Tk - j0);
                if (!reuse) pack_block_t(kh, d, j0, nj, kinv, P.Kt.data() + (bh * P.nkb + kb) * d * block_k);
                if (backward) pack_block_t(vh, dv, j0, nj, nullptr, P.Vt.data() + (bh * P.nkb + kb) * dv * block_k);
            }
            for (std::size_t j = 0; j < Tk; ++j) {
                if (copy_v) pack_row(vh + j * dv, dv, dvp, T(1), false, P.Vp.data() + (bh * Tk + j) * dvp);
                if (copy_k)
                    pack_row(kh + j * d, d, dp, P.cosine ? kinv[j] : T(1), P.cosine, P.Kp.data() + (bh * Tk + j) * dp);
            }
        }
    });
    auto& r = P.packed_for;
    r.q = q.data();
    r.k = k.data();
    r.v = v.data();
    std::copy(q.shape().begin(), q.shape().end(), r.qs.begin());
    std::copy(k.shape().begin(), k.shape().end(), r.ks.begin());
    std::copy(v.shape().begin(), v.shape().end(), r.vs.begin());
    r.o = o;
    r.valid = true;
}

/// Calls tile.template operator()<R>(r) for row tiles [r, r + R) covering [0, rows): R = 4, then 2 and 1.
template <class Tile>
void for_row_tiles(std::size_t rows_, Tile&& tile) {
    std::size_t r = 0;
    for (; r + 4 <= rows_; r += 4) tile.template operator()<4>(r);
    if (r + 2 <= rows_) {
        tile.template operator()<2>(r);
        r += 2;
    }
    if (r < rows_) tile.template operator()<1>(r);
}

template <class T>
struct forward_scratch {
    buffer<T> S, acc;
    std::vector<T> m, l, corr, bsum;
    std::vector<std::size_t> beg, valid;
    bool nonfinite = false;  // a row of this task's blocks got a non-finite lse (checked after the forward)
};

/// One query block of one head: online softmax over the key blocks the block attends.
template <class T>
void forward_block(const problem<T>& P, std::size_t bh, std::size_t qb, forward_scratch<T>& w, T* out, T* lse) {
    constexpr T ninf = -std::numeric_limits<T>::infinity();
    const std::size_t b = bh / P.H, i0 = qb * block_q, nr = std::min(block_q, P.Tq - i0);
    const std::size_t* n = P.nrow.data() + b * P.Tq + i0;
    const std::size_t dvp = P.dvp, dp = P.dp;
    std::size_t kend = 0;
    for (std::size_t r = 0; r < nr; ++r) kend = std::max(kend, n[r]);
    std::fill(w.m.begin(), w.m.end(), ninf);
    std::fill(w.l.begin(), w.l.end(), T(0));
    std::fill(w.acc.begin(), w.acc.begin() + nr * dvp, T(0));
    const T* Q = P.Qs.data() + (bh * P.Tq + i0) * dp;
    for (std::size_t j0 = 0; j0 < kend; j0 += block_k) {
        const std::size_t nc = std::min(block_k, kend - j0);
        const T* Kt = P.Kt.data() + (bh * P.nkb + j0 / block_k) * P.d * block_k;
        bool partial = false;
        for (std::size_t r = 0; r < nr; ++r) {
            w.valid[r] = n[r] > j0 ? std::min(nc, n[r] - j0) : 0;
            partial |= w.valid[r] < nc;
        }
#if EXPRGRAD_HAS_AVX512_KERNELS
        if constexpr (std::is_same_v<T, float>) {
            if (::exprgrad::ops::detail::avx512_enabled()) {
                // Scores and the online-softmax step in registers, 4 rows at a time.
                for_row_tiles(nr, [&]<int R>(std::size_t r) {
                    forward_tile16<R>(P.d, Q + r * dp, dp, Kt, w.valid.data() + r, w.m.data() + r, w.corr.data() + r,
                                      w.bsum.data() + r, w.S.data() + r * block_k);
                });
                finish_online16(nr, w.corr.data(), w.bsum.data(), w.l.data());
                for (std::size_t r = 0; r < nr; ++r)
                    if (w.corr[r] != T(1)) rows::scale(w.acc.data() + r * dvp, w.corr[r], dvp);
                gemm_acc<block_k, 1>(nr, dvp, nc, w.S.data(), P.vp + (bh * P.Tk + j0) * dvp, dvp, w.acc.data(), dvp,
                                     partial ? w.beg.data() : nullptr, partial ? w.valid.data() : nullptr);
                continue;
            }
        }
#endif
        gemm_rows<false>(nr, block_k, P.d, Q, dp, Kt, block_k, w.S.data(), block_k);
        for (std::size_t r = 0; r < nr; ++r) {
            const std::size_t valid = w.valid[r];
            if (valid == 0) continue;
            T* row = w.S.data() + r * block_k;
            const T m_new = std::max(w.m[r], rows::max(row, valid));
            const T corr = std::exp(w.m[r] - m_new);  // 0 for the first block of the row
            const T sum = rows::exp_shifted(row, m_new, row, valid);
            w.l[r] = w.l[r] * corr + sum;
            if (corr != T(1)) rows::scale(w.acc.data() + r * dvp, corr, dvp);
            w.m[r] = m_new;
        }
        gemm_acc<block_k, 1>(nr, dvp, nc, w.S.data(), P.vp + (bh * P.Tk + j0) * dvp, dvp, w.acc.data(), dvp,
                             partial ? w.beg.data() : nullptr, partial ? w.valid.data() : nullptr);
    }
    for (std::size_t r = 0; r < nr; ++r) {
        T* o = out + (i0 + r) * P.dv;
        if (n[r] == 0) {
            std::fill(o, o + P.dv, T(0));
            lse[i0 + r] = ninf;
            continue;
        }
        rows::scale_into(w.acc.data() + r * dvp, T(1) / w.l[r], o, P.dv);
        lse[i0 + r] = w.m[r] + std::log(w.l[r]);
        // One compare per row: overflowing scores (or NaN inputs) end in a NaN or infinite lse.
        if (!std::isfinite(lse[i0 + r])) w.nonfinite = true;
    }
}

/// The forward over all query blocks; true when some row that attends a key got a non-finite lse.
template <class T>
bool forward(const problem<T>& P, const attention_options& o, std::vector<forward_scratch<T>>& pool, T* out, T* lse) {
    auto init = [&](forward_scratch<T>& w) {
        w.nonfinite = false;
        grow(w.S, block_q * block_k);
        grow(w.acc, block_q * P.dvp);
        grow(w.m, block_q);
        grow(w.l, block_q);
        grow(w.corr, block_q);
        grow(w.bsum, block_q);
        w.beg.assign(block_q, 0);
        grow(w.valid, block_q);
    };
    const std::size_t units = P.heads() * P.nqb;
    if (units == 0) return false;
    const std::size_t chunks = task_count(o, units);
    run_units(units, chunks, pool, init, [&](std::size_t u, forward_scratch<T>& w) {
        const std::size_t bh = u / P.nqb, qb = u % P.nqb;
        forward_block(P, bh, qb, w, out + bh * P.Tq * P.dv, lse + bh * P.Tq);
    });
    return std::any_of(pool.begin(), pool.begin() + chunks, [](const forward_scratch<T>& w) { return w.nonfinite; });
}

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
    const xt::xtensor<T, 4>& k;
    const xt::xtensor<T, 4>& v;
    const problem<T>& P;
    std::vector<std::size_t> first = std::vector<std::size_t>(P.heads(), std::size_t(-1));
    std::size_t operator()(std::size_t bh) {
        if (first[bh] == std::size_t(-1)) {
            std::size_t j = 0;
            for (; j < P.Tk; ++j)
                if (!finite_row(k.data() + (bh * P.Tk + j) * P.d, P.d) ||
                    !finite_row(v.data() + (bh * P.Tk + j) * P.dv, P.dv))
                    break;
            first[bh] = j;
        }
        return first[bh];
    }
};

/// Row i's scores over its attended keys, in double (for the message; O(n·d) for the one row reported).
struct score_range {
    double top = 0;   // max |s_i·q̂_i·k̂_j|
    double term = 0;  // max |s_i·q̂_ix·k̂_jx|, a single product
    double max = -std::numeric_limits<double>::infinity();  // max s_i·q̂_i·k̂_j
};

template <class T>
score_range row_score_range(const problem<T>& P, const xt::xtensor<T, 4>& q, const xt::xtensor<T, 4>& k,
                            std::size_t bh, std::size_t i) {
    const std::size_t b = bh / P.H, n = P.nrow[b * P.Tq + i];
    const T* qi = q.data() + (bh * P.Tq + i) * P.d;
    double s = static_cast<double>(P.srow[b * P.Tq + i]);
    if (P.cosine) s *= static_cast<double>(P.qinv[bh * P.Tq + i]);
    score_range r;
    for (std::size_t j = 0; j < n; ++j) {
        const T* kj = k.data() + (bh * P.Tk + j) * P.d;
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
[[noreturn]] void overflow_error(const char* op, const problem<T>& P, const xt::xtensor<T, 4>& q,
                                 const xt::xtensor<T, 4>& k, const xt::xtensor<T, 4>& v, const T* dout, const T* lse,
                                 std::size_t bh, std::size_t i) {
    const std::size_t b = bh / P.H, n = P.nrow[b * P.Tq + i];
    const double tmax = static_cast<double>(std::numeric_limits<T>::max());
    const auto sr = row_score_range(P, q, k, bh, i);
    const double top = sr.top, term = sr.term;
    char buf[400];
    if (lse && top <= tmax && term <= tmax && sr.max - double(lse[bh * P.Tq + i]) > std::log(tmax)) {
        std::snprintf(buf, sizeof buf,
                      "exprgrad::%s: exp(s·q·k − lse) overflows %s at batch %zu head %zu row %zu: lse_i = %.6g but "
                      "the row's scores reach %.6g; pass the lse that attention_forward returned for these q and k",
                      op, value_type_name<T>(), b, bh % P.H, i, double(lse[bh * P.Tq + i]), sr.max);
    } else if (!dout || !(top <= tmax && term <= tmax)) {
        std::snprintf(buf, sizeof buf,
                      "exprgrad::%s: scores overflow %s at batch %zu head %zu row %zu, whose inputs are finite: "
                      "|s·q·k| over its %zu keys reaches %.3g (largest term %.3g, s = %.3g, %s max %.3g); scale q "
                      "or k down, or use normalize_qk",
                      op, value_type_name<T>(), b, bh % P.H, i, n, top, term, double(P.srow[b * P.Tq + i]),
                      value_type_name<T>(), tmax);
    } else {
        double dv = 0;  // the largest |dout_i·v_j| over the attended keys
        const T* di = dout + (bh * P.Tq + i) * P.dv;
        for (std::size_t j = 0; j < n; ++j) {
            double t = 0;
            for (std::size_t x = 0; x < P.dv; ++x) t += double(di[x]) * double(v.data()[(bh * P.Tk + j) * P.dv + x]);
            dv = std::max(dv, std::abs(t));
        }
        std::snprintf(buf, sizeof buf,
                      "exprgrad::%s: the gradient overflows %s at batch %zu head %zu row %zu, whose inputs are "
                      "finite: |dout_i·v_j| reaches %.3g and |s·q·k| %.3g (%s max %.3g); scale dout or v down",
                      op, value_type_name<T>(), b, bh % P.H, i, dv, top, value_type_name<T>(), tmax);
    }
    throw std::overflow_error(buf);
}

/// After a forward whose some row got a non-finite lse: throws std::overflow_error for the first such row
/// (attending at least one key) that reads only finite inputs; rows that read a NaN or Inf are left as they are.
template <class T>
void check_forward_overflow(const char* op, const problem<T>& P, const xt::xtensor<T, 4>& q,
                            const xt::xtensor<T, 4>& k, const xt::xtensor<T, 4>& v, const T* lse) {
    first_bad_keys<T> bad{k, v, P};
    for (std::size_t bh = 0; bh < P.heads(); ++bh)
        for (std::size_t i = 0; i < P.Tq; ++i) {
            const std::size_t b = bh / P.H, n = P.nrow[b * P.Tq + i];
            if (n == 0 || std::isfinite(lse[bh * P.Tq + i])) continue;
            if (!finite_row(q.data() + (bh * P.Tq + i) * P.d, P.d) || bad(bh) < n) continue;  // propagation
            overflow_error(op, P, q, k, v, static_cast<const T*>(nullptr), static_cast<const T*>(nullptr), bh, i);
        }
}

/// After a VJP whose some row got a non-finite ∂L/∂s_i (rs): the same for the rows whose q_i, dout_i, out_i,
/// lse_i and attended keys and values are all finite.
template <class T>
void check_vjp_overflow(const char* op, const problem<T>& P, const xt::xtensor<T, 4>& q, const xt::xtensor<T, 4>& k,
                        const xt::xtensor<T, 4>& v, const xt::xtensor<T, 4>& out, const xt::xtensor<T, 3>& lse,
                        const xt::xtensor<T, 4>& dout, const double* rs) {
    first_bad_keys<T> bad{k, v, P};
    for (std::size_t bh = 0; bh < P.heads(); ++bh)
        for (std::size_t i = 0; i < P.Tq; ++i) {
            const std::size_t b = bh / P.H, n = P.nrow[b * P.Tq + i], row = bh * P.Tq + i;
            if (n == 0 || std::isfinite(rs[row])) continue;
            if (!finite_row(q.data() + row * P.d, P.d) || !finite_row(dout.data() + row * P.dv, P.dv) ||
                !finite_row(out.data() + row * P.dv, P.dv) || !std::isfinite(lse.data()[row]) || bad(bh) < n)
                continue;  // propagation
            overflow_error(op, P, q, k, v, dout.data(), lse.data(), bh, i);
        }
}

template <class T>
struct backward_scratch {
    buffer<T> Pm, dS, dK, dV, G;
    std::vector<std::size_t> zero, valid, kbeg, kfin;
};

/// P and dS of one (query block, key block) pair of head bh; false when no row of the block attends a key
/// of the key block. Also sets the per-row and per-key limits of the masked accumulations.
template <class T>
bool backward_pair(const problem<T>& P, std::size_t bh, std::size_t qb, std::size_t j0, std::size_t nc, const T* lse,
                   backward_scratch<T>& w, bool& partial) {
    const std::size_t b = bh / P.H, i0 = qb * block_q, nr = std::min(block_q, P.Tq - i0);
    const std::size_t* n = P.nrow.data() + b * P.Tq + i0;
    bool any = false;
    partial = false;
    for (std::size_t r = 0; r < nr; ++r) {
        w.valid[r] = n[r] > j0 ? std::min(nc, n[r] - j0) : 0;
        any |= w.valid[r] > 0;
        partial |= w.valid[r] < nc;
    }
    if (!any) return false;
    const std::size_t kb = j0 / block_k;
    const T* Qs = P.Qs.data() + (bh * P.Tq + i0) * P.dp;
    const T* Kt = P.Kt.data() + (bh * P.nkb + kb) * P.d * block_k;
    const T* dO = P.dop + (bh * P.Tq + i0) * P.dvp;
    const T* Vt = P.Vt.data() + (bh * P.nkb + kb) * P.dv * block_k;
    bool tile_done = false;
#if EXPRGRAD_HAS_AVX512_KERNELS
    if constexpr (std::is_same_v<T, float>) {
        if (::exprgrad::ops::detail::avx512_enabled()) {
            // Scores, P, dP and dS in registers, 4 rows at a time.
            const float* D = P.Drow.data() + bh * P.Tq + i0;
            for_row_tiles(nr, [&]<int R>(std::size_t r) {
                backward_tile16<R>(P.d, Qs + r * P.dp, P.dp, Kt, P.dv, dO + r * P.dvp, P.dvp, Vt, w.valid.data() + r,
                                   lse + i0 + r, D + r, w.Pm.data() + r * block_k, w.dS.data() + r * block_k);
            });
            tile_done = true;
        }
    }
#endif
    if (!tile_done) {
        gemm_rows<false>(nr, block_k, P.d, Qs, P.dp, Kt, block_k, w.Pm.data(), block_k);
        gemm_rows<false>(nr, block_k, P.dv, dO, P.dvp, Vt, block_k, w.dS.data(), block_k);
        for (std::size_t r = 0; r < nr; ++r) {
            const std::size_t valid = w.valid[r];
            T* p = w.Pm.data() + r * block_k;
            T* ds = w.dS.data() + r * block_k;
            if (valid > 0) {
                rows::exp_shifted(p, lse[i0 + r], p, valid);  // p = exp(s·q̂·k̂ − lse): the forward's softmax
                rows::softmax_vjp(p, ds, P.Drow[bh * P.Tq + i0 + r], ds, valid);
            }
            std::fill(p + valid, p + block_k, T(0));
            std::fill(ds + valid, ds + block_k, T(0));
        }
    }
    if (partial) {
        // Key c gets contributions from the rows r with valid[r] > c: a suffix of the block, as valid[r]
        // does not decrease with r.
        for (std::size_t c = 0; c < nc; ++c) {
            std::size_t first = nr, last = 0;
            for (std::size_t r = 0; r < nr; ++r)
                if (w.valid[r] > c) {
                    first = std::min(first, r);
                    last = r + 1;
                }
            w.kbeg[c] = first < last ? first : 0;
            w.kfin[c] = first < last ? last : 0;
        }
    }
    return true;
}

/// dV and dK of a key block += contributions of one query block (rows of the accumulators: keys).
template <class T>
void accumulate_kv(const problem<T>& P, std::size_t bh, std::size_t qb, std::size_t nc, bool partial,
                   backward_scratch<T>& w, T* dK, std::size_t ldk, T* dV, std::size_t ldv) {
    const std::size_t i0 = qb * block_q, nr = std::min(block_q, P.Tq - i0);
    const std::size_t* kb = partial ? w.kbeg.data() : nullptr;
    const std::size_t* ke = partial ? w.kfin.data() : nullptr;
    gemm_acc<1, block_k>(nc, P.dvp, nr, w.Pm.data(), P.dop + (bh * P.Tq + i0) * P.dvp, P.dvp, dV, ldv, kb, ke);
    gemm_acc<1, block_k>(nc, P.dp, nr, w.dS.data(), P.Qs.data() + (bh * P.Tq + i0) * P.dp, P.dp, dK, ldk, kb, ke);
}

/// G (rows of one query block, leading dimension dp) += dS · k̂ of the key block: G_i = Σ_j dS_ij k̂_j.
template <class T>
void accumulate_q(const problem<T>& P, std::size_t bh, std::size_t qb, std::size_t j0, std::size_t nc, bool partial,
                  backward_scratch<T>& w, T* G) {
    const std::size_t nr = std::min(block_q, P.Tq - qb * block_q);
    gemm_acc<block_k, 1>(nr, P.dp, nc, w.dS.data(), P.kp + (bh * P.Tk + j0) * P.dp, P.dp, G, P.dp,
                         partial ? w.zero.data() : nullptr, partial ? w.valid.data() : nullptr);
}

/// dk, dv rows of a finished key block (through the normalisation's VJP under normalize_qk).
template <class T>
void store_kv(const problem<T>& P, std::size_t bh, std::size_t j0, std::size_t nc, const backward_scratch<T>& w, T* dk,
              T* dv) {
    for (std::size_t c = 0; c < nc; ++c) {
        const std::size_t j = j0 + c;
        const T* gk = w.dK.data() + c * P.dp;
        T* ok = dk + j * P.d;
        if (P.cosine) {
            const T* kh = P.kp + (bh * P.Tk + j) * P.dp;
            const T dot = rows::dot(kh, gk, P.d), inv = P.kinv[bh * P.Tk + j];
            for (std::size_t x = 0; x < P.d; ++x) ok[x] = inv * (gk[x] - kh[x] * dot);
        } else {
            std::copy(gk, gk + P.d, ok);
        }
        std::copy(w.dV.data() + c * P.dvp, w.dV.data() + c * P.dvp + P.dv, dv + j * P.dv);
    }
}

/// dq rows of a finished query block from G, and each row's ∂L/∂s_i = q̂_i·G_i into rs.
template <class T>
void store_q(const problem<T>& P, std::size_t bh, std::size_t qb, const T* G, T* dq, double* rs) {
    const std::size_t b = bh / P.H, i0 = qb * block_q, nr = std::min(block_q, P.Tq - i0);
    for (std::size_t r = 0; r < nr; ++r) {
        const std::size_t i = i0 + r;
        T* oq = dq + i * P.d;
        const T* g = G + r * P.dp;
        if (P.nrow[b * P.Tq + i] == 0) {  // attends nothing: no gradient, whatever q holds
            std::fill(oq, oq + P.d, T(0));
            rs[i] = 0.0;
            continue;
        }
        const T* qh = P.cosine ? P.Qp.data() + (bh * P.Tq + i) * P.dp : P.qsrc + (bh * P.Tq + i) * P.d;
        const T s = P.srow[b * P.Tq + i];
        rs[i] = static_cast<double>(rows::dot(qh, g, P.d));
        if (P.cosine) {
            const T dot = s * rows::dot(qh, g, P.d), inv = P.qinv[bh * P.Tq + i];
            for (std::size_t x = 0; x < P.d; ++x) oq[x] = inv * (s * g[x] - qh[x] * dot);
        } else {
            rows::scale_into(g, s, oq, P.d);
        }
    }
}

template <class T>
void backward(problem<T>& P, const attention_options& o, std::vector<backward_scratch<T>>& pool, const T* lse_all,
              T* dq, T* dk, T* dv, double* rs) {
    const std::size_t BH = P.heads();
    std::size_t g_rows = 0;
    auto init = [&](backward_scratch<T>& w) {
        grow(w.Pm, block_q * block_k);
        grow(w.dS, block_q * block_k);
        grow(w.dK, block_k * P.dp);
        grow(w.dV, block_k * P.dvp);
        w.zero.assign(block_q, 0);
        grow(w.valid, block_q);
        grow(w.kbeg, block_k);
        grow(w.kfin, block_k);
        w.G.resize(g_rows * P.dp);
    };
    const std::size_t threads = o.threads ? o.threads : num_threads();
    auto key_block_pass = [&](std::size_t bh, std::size_t j0, backward_scratch<T>& w, T* G) {
        // One key block against every query block in order; G (all rows of the head) gets dS·k̂ when given.
        const std::size_t b = bh / P.H, nc = std::min(block_k, P.kend[b] - j0);
        // Accumulate straight into the outputs' rows when they need no normalisation VJP or unpadding.
        const bool direct = !P.cosine && P.dp == P.d && P.dvp == P.dv;
        T* dK = direct ? dk + (bh * P.Tk + j0) * P.d : w.dK.data();
        T* dV = direct ? dv + (bh * P.Tk + j0) * P.dv : w.dV.data();
        std::fill(dK, dK + nc * P.dp, T(0));
        std::fill(dV, dV + nc * P.dvp, T(0));
        bool partial = false;
        for (std::size_t qb = 0; qb < P.nqb; ++qb) {
            if (!backward_pair(P, bh, qb, j0, nc, lse_all + bh * P.Tq, w, partial)) continue;
            accumulate_kv(P, bh, qb, nc, partial, w, dK, P.dp, dV, P.dvp);
            if (G) accumulate_q(P, bh, qb, j0, nc, partial, w, G + qb * block_q * P.dp);
        }
        if (!direct) store_kv(P, bh, j0, nc, w, dk + bh * P.Tk * P.d, dv + bh * P.Tk * P.dv);
    };
    if (BH >= threads) {
        // One task per head: a single pass over the key blocks accumulates dk, dv and G together.
        g_rows = P.Tq;
        run_units(BH, task_count(o, BH), pool, init, [&](std::size_t bh, backward_scratch<T>& w) {
            std::fill(w.G.begin(), w.G.end(), T(0));
            for (std::size_t j0 = 0; j0 < P.kend[bh / P.H]; j0 += block_k) key_block_pass(bh, j0, w, w.G.data());
            for (std::size_t qb = 0; qb < P.nqb; ++qb)
                store_q(P, bh, qb, w.G.data() + qb * block_q * P.dp, dq + bh * P.Tq * P.d, rs + bh * P.Tq);
        });
        return;
    }
    // Fewer heads than threads: key blocks in parallel for dk, dv, then query blocks in parallel for dq. Each
    // accumulator sees the same products in the same order as in the single pass, so the results are equal.
    const std::size_t ku = BH * P.nkb;
    run_units(ku, task_count(o, ku), pool, init, [&](std::size_t u, backward_scratch<T>& w) {
        const std::size_t bh = u / P.nkb, j0 = (u % P.nkb) * block_k;
        if (j0 < P.kend[bh / P.H]) key_block_pass(bh, j0, w, nullptr);
    });
    g_rows = block_q;
    const std::size_t qu = BH * P.nqb;
    run_units(qu, task_count(o, qu), pool, init, [&](std::size_t u, backward_scratch<T>& w) {
        const std::size_t bh = u / P.nqb, qb = u % P.nqb;
        std::fill(w.G.begin(), w.G.end(), T(0));
        bool partial = false;
        for (std::size_t j0 = 0; j0 < P.kend[bh / P.H]; j0 += block_k) {
            const std::size_t nc = std::min(block_k, P.kend[bh / P.H] - j0);
            if (backward_pair(P, bh, qb, j0, nc, lse_all + bh * P.Tq, w, partial))
                accumulate_q(P, bh, qb, j0, nc, partial, w, w.G.data());
        }
        store_q(P, bh, qb, w.G.data(), dq + bh * P.Tq * P.d, rs + bh * P.Tq);
    });
}

template <class A, class S>
void fit(A& a, const S& shape) {
    if (!std::equal(shape.begin(), shape.end(), a.shape().begin())) a.resize(shape);
}

}  // namespace detail::attention

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

/// Forward pass into caller-owned arrays (resized when their shapes differ): out [B, H, T_q, d_v] and
/// lse [B, H, T_q]. Same contract as attention_forward; out and lse must not alias q, k or v. This is the
/// entry point the attention tensor-expression node calls with its workspace.
template <attention_value T>
void attention_forward_into(const xt::xtensor<T, 4>& q, const xt::xtensor<T, 4>& k, const xt::xtensor<T, 4>& v,
                            const attention_options& opts, xt::xtensor<T, 4>& out, xt::xtensor<T, 3>& lse,
                            attention_workspace<T>& ws = detail::attention::thread_workspace<T>()) {
    namespace A = detail::attention;
    A::check_inputs("attention_forward", q, k, v, opts);
    auto& P = ws.problem;
    A::prepare(q, k, v, opts, false, P);
    A::fit(out, std::array<std::size_t, 4>{P.B, P.H, P.Tq, P.dv});
    A::fit(lse, std::array<std::size_t, 3>{P.B, P.H, P.Tq});
    if (A::forward(P, opts, ws.forward_tasks, out.data(), lse.data()))
        A::check_forward_overflow("attention_forward", P, q, k, v, lse.data());
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
    constexpr const char* op = "attention_vjp";
    A::check_inputs(op, q, k, v, opts);
    const auto &qs = q.shape(), &vs = v.shape();
    const std::array<std::size_t, 4> os{qs[0], qs[1], qs[2], vs[3]};
    if (!std::equal(os.begin(), os.end(), out.shape().begin()))
        A::shape_error(op, "out must have shape [B, H, T_q, d_v] from q and v", "out", out.shape(), "q", qs);
    if (!std::equal(os.begin(), os.end(), dout.shape().begin()))
        A::shape_error(op, "dout must have the shape of out", "dout", dout.shape(), "out", out.shape());
    if (lse.shape()[0] != qs[0] || lse.shape()[1] != qs[1] || lse.shape()[2] != qs[2])
        A::shape_error(op, "lse must have shape [B, H, T_q]", "lse", lse.shape(), "q", qs);
    auto& P = ws.problem;
    A::prepare(q, k, v, opts, true, P, reuse == attention_reuse::forward);
    const std::size_t BH = P.heads();
    const bool copy_dout = P.dvp != P.dv;  // else the kernels read dout itself
    if (copy_dout) A::grow(P.dOp, BH * P.Tq * P.dvp);
    P.dop = copy_dout ? P.dOp.data() : dout.data();
    A::grow(P.Drow, BH * P.Tq);
    parallel_for(0, BH, A::packing_grain(P.Tq, P.dv), [&](std::size_t lo, std::size_t hi) {
        for (std::size_t bh = lo; bh < hi; ++bh)
            for (std::size_t i = 0; i < P.Tq; ++i) {
                const T* src = dout.data() + (bh * P.Tq + i) * P.dv;
                if (copy_dout) {
                    T* dst = P.dOp.data() + (bh * P.Tq + i) * P.dvp;
                    std::copy(src, src + P.dv, dst);
                    std::fill(dst + P.dv, dst + P.dvp, T(0));
                }
                // D_i = dO_i·O_i = Σ_j p_ij dP_ij: the softmax VJP's inner product, from the forward's output.
                P.Drow[bh * P.Tq + i] = detail::rows::dot(src, out.data() + (bh * P.Tq + i) * P.dv, P.dv);
            }
    });
    A::fit(g.dq, q.shape());
    A::fit(g.dk, k.shape());
    A::fit(g.dv, v.shape());
    for (std::size_t bh = 0; bh < BH; ++bh) {  // keys no row attends keep a zero gradient (the others are written)
        const std::size_t j0 = P.kend[bh / P.H];
        std::fill(g.dk.data() + (bh * P.Tk + j0) * P.d, g.dk.data() + (bh + 1) * P.Tk * P.d, T(0));
        std::fill(g.dv.data() + (bh * P.Tk + j0) * P.dv, g.dv.data() + (bh + 1) * P.Tk * P.dv, T(0));
    }
    auto& rs = ws.row_dscale;
    rs.assign(BH * P.Tq, 0.0);
    A::backward(P, opts, ws.backward_tasks, lse.data(), g.dq.data(), g.dk.data(), g.dv.data(), rs.data());
    g.dscale = 0.0;
    g.dlog_scale = 0.0;
    for (std::size_t bh = 0; bh < BH; ++bh)
        for (std::size_t i = 0; i < P.Tq; ++i) {
            const double r = rs[bh * P.Tq + i];
            g.dscale += r;
            g.dlog_scale += static_cast<double>(P.srow[(bh / P.H) * P.Tq + i]) * r;
        }
    // A row's overflow makes its ∂L/∂s_i, and so dscale, non-finite: one compare per call.
    if (!std::isfinite(g.dscale)) A::check_vjp_overflow(op, P, q, k, v, out, lse, dout, rs.data());
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
