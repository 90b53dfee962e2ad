// Training-time stochastic segmentation (subword regularization, post 9762's countermeasure (b)): a data
// loader segments each line with a fresh draw from P(w) ∝ exp(α·score(w)), so that a model sees both
// "白云机场" as one piece and its split forms. Standard headers only.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "random.hpp"
#include "unigram_model.hpp"

namespace exprgrad::text {

/// A per-loader segmenter: a model reference, α, a sampler and its own seeded generator, so that loaders
/// with different seeds are independent and a saved generator state (generator().state()) resumes exactly.
///
/// Example:
///     stochastic_segmenter seg(model, 0.1, /*seed=*/worker_id);
///     for (auto& line : lines) batch.push_back(seg(line));
class stochastic_segmenter {
  public:
    /// `model` must outlive the segmenter. α < 0 gives the Viterbi segmentation every time; NaN or +∞ α is
    /// rejected at the first call (std::invalid_argument, from unigram_model::sample).
    stochastic_segmenter(const unigram_model& model, double alpha, std::uint64_t seed, sampler how = sampler::reservoir)
        : model_(&model), alpha_(alpha), how_(how), gen_(seed) {}

    /// One sampled segmentation of `line` as piece ids.
    std::vector<piece_id> operator()(std::string_view line) { return model_->sample(line, alpha_, gen_, how_); }

    double alpha() const noexcept { return alpha_; }
    rng& generator() noexcept { return gen_; }

  private:
    const unigram_model* model_;
    double alpha_;
    sampler how_;
    rng gen_;
};

}  // namespace exprgrad::text
