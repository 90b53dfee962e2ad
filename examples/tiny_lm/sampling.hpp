// Ancestral sampling of whole streams from the tiny language model, many at once: the samples whose
// statistics the distribution score (distribution_score.hpp) compares with held-out text.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include <exprgrad/random.hpp>
#include <exprgrad/text/unigram_model.hpp>

#include "model.hpp"

namespace tiny_lm {

/// `count` streams of `length` pieces each, every one starting after <eos> (`eos`, as a line start of the
/// training stream; the returned streams begin with it, so each holds length + 1 ids). Piece t + 1 is drawn
/// at temperature 1 from the model's next-piece distribution given the last min(t + 1, context) pieces (a
/// window that slides once the stream is longer than the context, as training windows start anywhere in the
/// stream); control pieces other than <eos> (which the model never sees as targets) are excluded and the
/// rest renormalized. Rows are drawn `batch` at a time in one forward pass each; the draws use `gen` in the
/// order stream 0..count−1 within a step, so the result is deterministic for a seed and a batch size.
/// Example: sample_streams(model, tok, 200, 64, 32, eos, gen) gives 200 streams of 65 ids.
std::vector<std::vector<std::int32_t>> sample_streams(language_model& model, const exprgrad::text::unigram_model& tok,
                                                      std::size_t count, std::size_t length, std::size_t batch,
                                                      std::int32_t eos, exprgrad::rng& gen);

}  // namespace tiny_lm
