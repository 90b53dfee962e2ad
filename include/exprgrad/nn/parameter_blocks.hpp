// The fixed partition of a parameter_set's elements into blocks that the optimizers and gradient clipping
// (nn/sgd.hpp, nn/adam.hpp, nn/clip_grad.hpp) spread over the thread pool (kernels/parallel.hpp).
//
// Each parameter is cut from its first element into blocks of parameter_block_size elements (its last block
// shorter). The cut depends only on the parameters' sizes, never on the thread count: a block is always
// processed whole by one call, and per-block partial results (the sums of squares of clip_grad_norm) are
// combined in block order, so every thread count gives bit-identical results.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

#include "exprgrad/kernels/parallel.hpp"

namespace exprgrad::nn::detail {

/// Elements per block: small enough that two threads share the tens of parameters of a small model
/// evenly, large enough that the per-block overhead (a call, a partial sum) is negligible.
inline constexpr std::size_t parameter_block_size = 4096;

/// Elements [lo, hi) of parameter number `param`.
struct parameter_block {
    std::size_t param, lo, hi;
};

/// The blocks of `count` parameters where parameter p has size_of(p) elements, in parameter order and
/// within a parameter in element order; empty parameters have no block.
/// Example: sizes {5000, 3} give {0, 0, 4096}, {0, 4096, 5000}, {1, 0, 3}.
template <class SizeOf>
std::vector<parameter_block> parameter_blocks(std::size_t count, SizeOf&& size_of) {
    std::vector<parameter_block> blocks;
    for (std::size_t p = 0; p < count; ++p) {
        const std::size_t n = size_of(p);
        for (std::size_t lo = 0; lo < n; lo += parameter_block_size)
            blocks.push_back({p, lo, std::min(n, lo + parameter_block_size)});
    }
    return blocks;
}

/// Calls fn(b, blocks[b]) once for every block b. With fewer than 2 * min_chunk elements in all, or one
/// thread, the calls run in order on the calling thread; otherwise the blocks are split into as many
/// contiguous runs of about equal element counts (at least min_chunk each) as there are threads, one run per
/// pool task. fn must touch only its block's elements (and its own slot of a per-block result).
/// Exceptions propagate (kernels::parallel_for's contract).
template <class Fn>
void for_each_parameter_block(const std::vector<parameter_block>& blocks, std::size_t min_chunk, Fn&& fn) {
    std::vector<std::size_t> starts(blocks.size());  // element offset of each block in the whole set
    std::size_t total = 0;
    for (std::size_t b = 0; b < blocks.size(); ++b) {
        starts[b] = total;
        total += blocks[b].hi - blocks[b].lo;
    }
    const std::size_t runs =
        std::max<std::size_t>(1, std::min(kernels::num_threads(), total / std::max<std::size_t>(min_chunk, 1)));
    if (runs == 1) {
        for (std::size_t b = 0; b < blocks.size(); ++b) fn(b, blocks[b]);
        return;
    }
    // Run r takes the blocks that start in [total r / runs, total (r + 1) / runs): every block exactly once.
    kernels::parallel_for(
        0, runs, 1,
        [&](std::size_t r_lo, std::size_t r_hi) {
            for (std::size_t r = r_lo; r < r_hi; ++r) {
                const auto first = std::lower_bound(starts.begin(), starts.end(), total * r / runs);
                const auto last = std::lower_bound(starts.begin(), starts.end(), total * (r + 1) / runs);
                for (auto it = first; it != last; ++it) {
                    const auto b = static_cast<std::size_t>(it - starts.begin());
                    fn(b, blocks[b]);
                }
            }
        },
        runs);
}

}  // namespace exprgrad::nn::detail
