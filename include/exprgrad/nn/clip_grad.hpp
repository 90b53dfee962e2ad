// Gradient clipping over a parameter_set: clip_grad_norm, clip_grad_value and grad_norm (as
// torch.nn.utils.clip_grad_norm_ and clip_grad_value_).
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

namespace detail {

// Σ x[i]² over n elements, each square in double, accumulated in 16 lanes (lane l takes the elements
// i ≡ l mod 16, in order; the compiler turns the lanes into SIMD code, 4 x 4 doubles with AVX2) that are
// then added pairwise (lane l + w into lane l, for w = 8, 4, 2, 1). For float x the squares are exact.
template <class T>
double sum_of_squares(const T* x, std::size_t n) {
    constexpr std::size_t L = 16;
    double acc[L] = {};
    std::size_t i = 0;
    for (; i + L <= n; i += L) {
        // Unrolled, the lanes become four SIMD accumulators held in registers (rolled, GCC 12 keeps acc in
        // memory and reloads it every step).
#pragma GCC unroll 16
        for (std::size_t l = 0; l < L; ++l) acc[l] += static_cast<double>(x[i + l]) * static_cast<double>(x[i + l]);
    }
    for (std::size_t l = 0; i + l < n; ++l) acc[l] += static_cast<double>(x[i + l]) * static_cast<double>(x[i + l]);
    for (std::size_t w = L / 2; w > 0; w /= 2)
        for (std::size_t l = 0; l < w; ++l) acc[l] += acc[l + w];
    return acc[0];
}

// The blocks of every gradient (nn/parameter_blocks.hpp).
template <parameter_value T>
std::vector<parameter_block> grad_blocks(const parameter_set<T>& params) {
    return parameter_blocks(params.size(), [&](std::size_t p) { return params[p].grad.size(); });
}

// Sum of squares of every gradient element in double: a sum_of_squares per block of
// nn/parameter_blocks.hpp (over the thread pool), the block sums added in block order, so the result is
// the same for every thread count. A NaN element makes the sum NaN; an infinite one makes it +inf. When
// it is +inf (an infinite element, or a finite overflow: only possible for double gradients beyond
// ~1e154), the norm is recomputed serially: +inf if some element is infinite, else s * sqrt(Σ (g / s)²)
// with s = max |g|, so it stays finite whenever it is representable.
template <parameter_value T>
double grad_l2_norm(const parameter_set<T>& params) {
    const auto blocks = grad_blocks(params);
    std::vector<double> partial(blocks.size());
    // Runs of at least 65536 elements (about 7 µs with AVX2): shorter ones gain less from a second thread
    // than starting its task costs.
    for_each_parameter_block(blocks, 65536, [&](std::size_t i, const parameter_block& b) {
        partial[i] = sum_of_squares(params[b.param].grad.data() + b.lo, b.hi - b.lo);
    });
    double sum = 0.0;
    for (const double s : partial) sum += s;
    if (std::isfinite(sum) || std::isnan(sum)) return std::sqrt(sum);
    double scale = 0.0;
    for (const auto& p : params)
        for (const T g : p.grad) scale = std::max(scale, std::abs(static_cast<double>(g)));
    if (!std::isfinite(scale)) return scale;  // an infinite gradient: the norm is +inf
    double scaled = 0.0;
    for (const auto& p : params)
        for (const T g : p.grad) {
            const double r = static_cast<double>(g) / scale;
            scaled += r * r;
        }
    return scale * std::sqrt(scaled);
}

// g ← g · c for the n elements of g, in SIMD batches (the scalar tail rounds the same product).
template <class T>
void scale_block(T* g, std::size_t n, T c) {
    using B = kernels::rows::batch<T>;
    constexpr std::size_t W = kernels::rows::lanes<T>;
    const B cb(c);
    std::size_t i = 0;
    for (; i + W <= n; i += W) (B::load_unaligned(g + i) * cb).store_unaligned(g + i);
    for (; i < n; ++i) g[i] = g[i] * c;
}

}  // namespace detail

/// Clips the gradients by their global L2 norm, like torch.nn.utils.clip_grad_norm_: with
/// n = sqrt(Σ over all gradient elements of g²) (accumulated in double) and c = max_norm / (n + 1e-6),
/// every gradient is multiplied by c (rounded to T) if c < 1, and left unchanged otherwise. Returns n,
/// the norm before clipping.
/// Domain: max_norm finite and >= 0, else std::invalid_argument. If n is NaN or Inf, the gradients are
/// left unchanged and n is returned (so the caller can skip the step), or, with error_if_nonfinite,
/// std::domain_error is thrown. Example: grads {3, 4}, max_norm 1: returns 5, grads become ≈ {0.6, 0.8}.
template <parameter_value T>
double clip_grad_norm(parameter_set<T>& params, double max_norm, bool error_if_nonfinite = false) {
    if (!(std::isfinite(max_norm) && max_norm >= 0.0))
        throw std::invalid_argument("nn::clip_grad_norm: max_norm = " + format_number(max_norm) +
                                    " must be finite and >= 0");
    const double norm = detail::grad_l2_norm(params);
    if (!std::isfinite(norm)) {
        if (error_if_nonfinite)
            throw std::domain_error("nn::clip_grad_norm: the total gradient norm is " + format_number(norm));
        return norm;
    }
    const double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0) {
        const T c = static_cast<T>(coef);
        detail::for_each_parameter_block(detail::grad_blocks(params), 65536,
                                         [&](std::size_t, const detail::parameter_block& b) {
                                             detail::scale_block(params[b.param].grad.data() + b.lo, b.hi - b.lo, c);
                                         });
    }
    return norm;
}

/// Clamps every gradient element to [-clip_value, clip_value], like torch.nn.utils.clip_grad_value_.
/// Domain: clip_value finite and >= 0, else std::invalid_argument. NaN elements stay NaN; ±Inf become
/// ±clip_value. Example: grads {-3, 0.5, 2}, clip 1: {-1, 0.5, 1}.
template <parameter_value T>
void clip_grad_value(parameter_set<T>& params, double clip_value) {
    if (!(std::isfinite(clip_value) && clip_value >= 0.0))
        throw std::invalid_argument("nn::clip_grad_value: clip_value = " + format_number(clip_value) +
                                    " must be finite and >= 0");
    const T hi = static_cast<T>(clip_value), lo = -hi;
    for (auto& p : params) {
        T* g = p.grad.data();
        const std::size_t n = p.grad.size();
        for (std::size_t i = 0; i < n; ++i) g[i] = g[i] < lo ? lo : (g[i] > hi ? hi : g[i]);
    }
}

/// The global L2 norm of all gradients without modifying them (as clip_grad_norm computes it).
template <parameter_value T>
double grad_norm(const parameter_set<T>& params) {
    return detail::grad_l2_norm(params);
}

}  // namespace exprgrad::nn
