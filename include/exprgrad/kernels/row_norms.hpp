// Row norms of a row-major matrix [v, h] and its rows scaled to unit length: EMO's normalised cost
// embedding (ops/emo.hpp), in SIMD and over the thread pool.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>

#include <xsimd/xsimd.hpp>

#include "exprgrad/kernels/parallel.hpp"

namespace exprgrad::kernels {

// 1 / max(‖e_k‖, 1e-12) for every row of E [v, h] (zero rows get 1e12 and stay zero when scaled).
// Float lanes accumulate blocks of 64 products; the blocks are summed in double. A row holding an inf or NaN
// calls on_nonfinite(row, column, value) for its first such entry (the caller throws with its own name);
// finite rows whose float sum overflows get inv = 0, so their normalised row is 0.
template <class T, class OnNonFinite>
void inverse_row_norms(const T* e, T* inv, std::size_t v, std::size_t h, OnNonFinite&& on_nonfinite) {
    using B = xsimd::batch<T>;
    constexpr std::size_t W = B::size;
    parallel_for(0, v, 256, [&](std::size_t lo, std::size_t hi) {
        for (std::size_t i = lo; i < hi; ++i) {
            const T* r = e + i * h;
            double ss = 0;
            std::size_t j = 0;
            while (j + W <= h) {
                B acc(T(0));
                const std::size_t end = std::min(h - (h - j) % W, j + 64 * W);
                for (; j < end; j += W) {
                    const B x = B::load_unaligned(r + j);
                    acc = xsimd::fma(x, x, acc);
                }
                ss += static_cast<double>(xsimd::hadd(acc));
            }
            for (; j < h; ++j) ss += static_cast<double>(r[j]) * r[j];
            if (!std::isfinite(ss)) {
                // looked for only here (rare): an inf/NaN entry, not a finite overflow
                for (std::size_t c = 0; c < h; ++c) {
                    if (!std::isfinite(r[c])) {
                        on_nonfinite(i, c, r[c]);
                        break;
                    }
                }
            }
            inv[i] = static_cast<T>(1.0 / std::max(std::sqrt(ss), 1e-12));
        }
    });
}

// Ê: rows of E scaled to unit length (zero rows stay zero), given the inverse norms.
template <class T>
void normalize_rows(const T* e, const T* inv, T* out, std::size_t v, std::size_t h) {
    parallel_for(0, v, 256, [&](std::size_t lo, std::size_t hi) {
        for (std::size_t i = lo; i < hi; ++i)
            for (std::size_t j = 0; j < h; ++j) out[i * h + j] = e[i * h + j] * inv[i];
    });
}

}  // namespace exprgrad::kernels
