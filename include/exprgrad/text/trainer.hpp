// Unigram language-model training by EM with pruning (Kudo 2018, as SentencePiece's unigram trainer does),
// whose E-step is the lattice's gradient: the expected piece counts E[count_i] = ∂ log Z / ∂ score_i at α = 1
// (unigram_model::analyze). Standard headers only; compiled in src/text/trainer.cpp. Guide: docs/tokenizer.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "unigram_model.hpp"

namespace exprgrad::text {

/// Where training is; passed to train_options::progress.
struct train_progress {
    std::string_view stage;  ///< "words", "seed", "em", "prune" or "final"
    std::size_t round = 0;   ///< pruning round (0 before the first prune; the final EM step has its own)
    std::size_t pieces = 0;  ///< current number of candidate pieces (excluding specials and bytes)
    double objective = 0.0;  ///< "em": −Σ count·log Z(word) / Σ count·bytes, nats per byte (lower is better)
    double seconds = 0.0;    ///< since training started
};

/// Training options. Defaults follow SentencePiece where it has an equivalent.
struct train_options {
    /// Size V of the resulting model, everything included: the 4 reserved control pieces, one piece per
    /// byte value (normal if the byte occurs in the corpus, else byte fallback) and the multi-byte pieces.
    /// Must be at least 261. The result can be smaller if the corpus has fewer useful pieces.
    std::size_t vocab_size = 8000;
    std::size_t max_piece_length = 16;  ///< bytes
    /// Pieces never contain a space except as their first byte (SentencePiece's split_by_whitespace with
    /// its U+2581 prefix): the corpus is cut into words " word" before counting, which also makes EM fast.
    bool split_by_whitespace = true;
    /// Multi-byte pieces are whole UTF-8 code points (the model is built with utf8_boundaries too).
    bool utf8_boundaries = true;
    /// Code points are required pieces (never pruned) until they cover this fraction of the corpus's code
    /// points, most frequent first; rarer ones are spelled with bytes. SentencePiece's default.
    double character_coverage = 0.9995;
    std::size_t seed_size = 200000;  ///< candidate pieces kept from the substring counts (by count·length)
    std::size_t em_iterations = 2;   ///< EM iterations per pruning round
    double shrinking_factor = 0.75;  ///< each round keeps at least this fraction of the pieces
    std::size_t max_rounds = 100;    ///< safety bound on pruning rounds
    /// Called at each stage; may be empty. Exceptions it throws abort training.
    std::function<void(const train_progress&)> progress;
};

/// Word (or line) counts of a corpus: the unit EM works on.
using word_counts = std::unordered_map<std::string, std::uint64_t>;

/// Adds the words of one line to `counts`: with split_by_whitespace, the line is cut before every space
/// (" the", " cat"), otherwise the whole line is one word. Empty lines add nothing.
void count_words(std::string_view line, bool split_by_whitespace, word_counts& counts);

/// Trains a native-mode model from word counts. Throws std::invalid_argument for vocab_size < 261,
/// max_piece_length < 2, a coverage outside [0, 1] or a shrinking factor outside (0, 1) (NaN included), each
/// named with the value ("train_unigram: vocab_size must be at least 261, got 5"), and if `words` is
/// empty. Deterministic: the same counts and options give the same model.
unigram_model train_unigram(const word_counts& words, const train_options& options);

/// The same from lines of text (each line as the CLI reads it, without its newline).
unigram_model train_unigram(const std::vector<std::string>& lines, const train_options& options);

/// The digamma function ψ(x) for x > 0 (SentencePiece's M-step uses score = ψ(count) − ψ(total)).
/// Relative error below 1e-13 (recurrence up to x ≥ 10, then the asymptotic series); NaN for x ≤ 0 or NaN.
double digamma(double x);

}  // namespace exprgrad::text
