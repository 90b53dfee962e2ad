// The inputs of the EMO benchmarks (bench_emo and peers/bench_emo_torch), the same numbers in both:
// N = 256 positions, h = 512, logits in [−2, 2), embedding entries in [−1, 1), uniform targets.
#pragma once

#include <cstddef>

#include <xtensor/xarray.hpp>

#include <exprgrad/random.hpp>

namespace exprgrad::bench {

inline constexpr std::size_t emo_positions = 256, emo_hidden = 512;

struct emo_inputs {
    xt::xarray<float> logits, e;  // [N, V], [V, h]
    xt::xarray<long> targets;     // [N]
    explicit emo_inputs(std::size_t V) {
        logits = xt::xarray<float>::from_shape({emo_positions, V});
        e = xt::xarray<float>::from_shape({V, emo_hidden});
        targets = xt::xarray<long>::from_shape({emo_positions});
        rng g(1);
        for (auto& v : logits) v = static_cast<float>(4 * g.uniform() - 2);
        for (auto& v : e) v = static_cast<float>(2 * g.uniform() - 1);
        for (auto& v : targets) v = static_cast<long>(g.below(V));
    }
};

}  // namespace exprgrad::bench
