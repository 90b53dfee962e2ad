// How well text sampled from a model matches held-out text, as piece statistics: the KL divergence of the
// held-out unigram and bigram frequencies from the samples' (smoothed) ones. The score of the EMO
// fine-tuning experiment (docs/emo_finetune.md), whose definition this is.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <exprgrad/text/unigram_model.hpp>

namespace tiny_lm {

/// The two divergences (nats) and the counts they rest on.
struct distribution_match {
    double kl_unigram = 0;  ///< KL(P₁ ‖ Q₁) over pieces
    double kl_bigram = 0;   ///< KL(P₂ ‖ Q₂) over adjacent piece pairs (within a stream)
    std::size_t reference_pieces = 0, sample_pieces = 0;
};

/// KL(reference ‖ samples) of piece unigrams and bigrams over a vocabulary of V pieces (ids in [0, V)).
/// Each argument is a list of streams; bigrams are the adjacent pairs inside a stream, never across two.
/// Reference (no smoothing): P₁(x) = c_R(x) / n_R, P₂(x, y) = c_R(x, y) / m_R (n: pieces, m: pairs).
/// Samples, smoothed so that Q > 0 everywhere: Q₁(x) = (c_S(x) + ½) / (n_S + ½V) (add-½), and
/// Q₂(x, y) = Q₁(x) · (c_S(x, y) + Q₁(y)) / (c_S(x, ·) + 1), where c_S(x, ·) counts the pairs whose first
/// piece is x: a conditional smoothed towards Q₁ with a prior of total weight one (Q₂ sums to 1).
/// KL₁ = Σ_x P₁(x) ln(P₁(x) / Q₁(x)), KL₂ = Σ_{x,y} P₂(x, y) ln(P₂(x, y) / Q₂(x, y)); 0 = identical
/// statistics, larger = further apart. Throws std::invalid_argument if V = 0, an id is outside [0, V), or
/// the reference has no pair. Example: reference {{1, 2, 1, 2}}, samples {{1, 2, 1, 2}} with V = 3 gives
/// small positive values (the smoothing), samples {{0, 0, 0}} large ones.
distribution_match piece_kl(const std::vector<std::vector<std::int32_t>>& reference,
                            const std::vector<std::vector<std::int32_t>>& samples, std::size_t V);

/// A sampled stream of pieces as the held-out text is segmented: decoded to text, cut at every `eos` into
/// lines, each line segmented again by the tokenizer's Viterbi segmentation, the lines joined by `eos`
/// (kept where they were: a leading eos stays leading). So the samples and the held-out stream are
/// compared under one segmentation, whichever segmentation the model sampled.
std::vector<std::int32_t> viterbi_resegment(const exprgrad::text::unigram_model& tok,
                                            const std::vector<std::int32_t>& sampled, std::int32_t eos);

}  // namespace tiny_lm
