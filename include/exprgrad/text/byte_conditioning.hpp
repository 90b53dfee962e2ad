// Exact byte-level conditioning of a token-level language model on a byte prefix (issue #23): the
// distribution of what follows a prompt given that the generated TEXT starts with the prompt, whatever
// pieces produce it. Token healing (token_healing.hpp, post 9762 https://kexue.fm/archives/9762) backs off
// and constrains the first step(s) heuristically; this marginalizes exactly over the segmentations of the
// prompt's tail, walking the tail's lattice forward with the model's piece probabilities on its edges.
// Derivation and cost: docs/tokenizer.md, "Exact byte-level conditioning". Compiled in
// src/text/byte_conditioning.cpp; standard headers only.
//
// Definitions. The generator is an autoregressive model over pieces: at each step, given the context
// pieces, the callback gives log-scores ℓ(y) for all V pieces and the next piece y is drawn from
//     q(y | ctx) = exp(ℓ(y)) / Σ_{y' allowed} exp(ℓ(y')),
// the allowed pieces being every normal and byte piece, plus `end_piece` (if set), which ends the text.
// The text of a piece sequence is the concatenation of its pieces' bytes. Let b = prompt (n bytes),
// h = the prompt's canonical (Viterbi) pieces minus the last `backoff_pieces` of them, c = the bytes h covers
// (b[0, c) = decode(h)), t = b[c, n) the tail. A covering path is a piece sequence x_1..x_k such that
// decode(x_1..x_{k−1}) = t[0, s) for some s < |t| and text(x_k) starts with t[s, |t|) (the last piece crosses
// or touches the end of the prompt); for t empty the only covering path is the empty one. Every piece
// sequence continuing h whose text starts with t has exactly one covering path as its prefix (the shortest
// prefix whose text reaches n), so with P(path) = Π_i q(x_i | h, x_<i),
//     P(text starts with b | first pieces h) = Σ_{covering paths} P(path)                       (1)
//     P(path | text starts with b, h) = P(path) / (1).                                         (2)
// (2) is EXACT for the model; it equals the model's full conditional P(· | text starts with b) when
// backoff_pieces covers the whole prompt (c = 0), and otherwise under the assumption that the canonical head
// h is how the text b[0, c) was produced (what a deterministic tokenizer's training data makes true: the
// model saw only canonical segmentations; with subword regularization it is an approximation in the head
// only). Cost: the partial paths (decode = t[0, s), s < |t|) are the nodes of the forward pass; each is one
// model call plus O(V) work, and their number N = Σ_{s<|t|} (number of segmentations of t[0, s)) grows
// exponentially with the tail (Fibonacci-like for real vocabularies). Paths are not merged: the callback
// may depend on the whole context (a transformer does), so no two partial paths share a state.
// `max_model_calls` bounds N; a tail exceeding it is refused before any model call, never truncated.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "random.hpp"
#include "token_healing.hpp"
#include "unigram_model.hpp"

namespace exprgrad::text {

/// Options of prefix_conditioner.
struct prefix_conditioning_options {
    /// How many of the prompt's last canonical pieces are re-segmented in every possible way (the tail t);
    /// the others are the fixed head h. SIZE_MAX (or any value ≥ the number of pieces): the whole prompt,
    /// the model's exact conditional. 0: no back-off (t empty, plain continuation after h).
    std::size_t backoff_pieces = 3;
    /// The largest number of model calls N (partial segmentations of the tail; +1 per path ending exactly
    /// at the prompt's end for next_byte_distribution) accepted. A prompt needing more is refused with
    /// std::length_error naming both options and the count, before any call.
    std::size_t max_model_calls = 4096;
    /// The piece that ends the text (e.g. eos_id = 2 of the native format); it must be a control piece.
    /// Unset: no piece ends the text (the generator runs forever).
    std::optional<piece_id> end_piece = std::nullopt;
};

/// One covering path with its probability.
struct covering_path {
    std::vector<piece_id> pieces;  ///< the tail's segmentation; the last piece covers the prompt's end
    double log_weight = 0.0;       ///< log P(path) = Σ log q(x_i | h, x_<i)   (natural log)
    double probability = 0.0;      ///< (2): P(path) / Σ over covering paths
};

/// The conditional distribution over covering paths.
struct prefix_conditioning {
    std::vector<piece_id> head;           ///< h, the canonical pieces kept before the tail
    std::size_t tail_begin = 0;           ///< c, the tail's first byte in the prompt
    std::vector<covering_path> paths;     ///< every covering path of positive probability, in forward order
    double log_prefix_probability = 0.0;  ///< log (1) = log P(text starts with the tail | h)
    std::size_t model_calls = 0;          ///< callback invocations made
};

/// Options of prefix_conditioner::generate.
struct prefix_generation_options {
    bool greedy = false;              ///< take the most probable covering path, then the most probable piece each step
    std::size_t max_new_pieces = 64;  ///< pieces generated after the covering path (at most)
    /// Stop as soon as the text has at least this many bytes beyond the prompt (0: no such stop).
    std::size_t min_new_bytes = 0;
};

/// The outcome of prefix_conditioner::generate.
struct prefix_generation {
    std::vector<piece_id> pieces;  ///< h, the covering path and the continuation (end_piece not included)
    std::string text;              ///< decode(pieces); always starts with the prompt
    bool ended = false;            ///< end_piece was drawn
    std::size_t model_calls = 0;   ///< conditioning calls plus one per generated piece
};

/// Index size of next_byte_distribution's result: bytes 0–255, then "the text ends here".
inline constexpr std::size_t next_byte_outcomes = 257;
inline constexpr std::size_t end_of_text_outcome = 256;

/// Exact conditioning on a byte prefix (see the file comment for the definitions and the assumption).
///
/// The callback `next` has token_healer's contract (token_healing.hpp): context pieces → V log-scores,
/// −∞ allowed, renormalized here over the allowed pieces. Every member function throws
/// std::invalid_argument if a returned vector's length is not V or any of its entries is NaN or +∞
/// (naming the context length and the entry), and std::domain_error if no covering path has positive
/// probability (the prompt cannot be produced: every piece sequence whose text starts with it has
/// probability 0). The member functions are const: they may run concurrently if the callback may.
///
/// Example (tests/text/test_byte_conditioning.cpp, "the header's example"): pieces {a, b, ab}, a model
/// giving a, b, ab probabilities 0.2, 0.3, 0.5 at the start and b 0.9 after a: conditioning on prompt "a"
/// (backoff_pieces = 1) sums the paths [a] (then the next piece) and [ab], so P(text starts with "a") = 0.7
/// and P(next byte = 'b' | text starts with "a") = (0.2·0.9 + 0.5) / 0.7.
class prefix_conditioner {
  public:
    /// Indexes the model's pieces; `model` must outlive the conditioner. Throws std::invalid_argument if
    /// options.end_piece is set and is not a control piece of the model.
    prefix_conditioner(const unigram_model& model, prefix_conditioning_options options = {});

    const prefix_conditioning_options& options() const noexcept { return options_; }

    /// (2): every covering path of the prompt's tail with its probability, after the canonical head.
    /// Empty prompt, or backoff_pieces = 0: one empty path of probability 1 and no model call.
    /// Throws as described above and std::length_error for a tail over max_model_calls.
    prefix_conditioning condition(std::string_view prompt, const next_piece_log_probs& next) const;

    /// P(next byte = y | text starts with the prompt, h) for y in 0..255, and [256] = P(the text ends right
    /// after the prompt) (only with end_piece). A covering path whose last piece overhangs the prompt gives
    /// its mass to its first overhanging byte; a path ending exactly at the prompt's end costs one more call
    /// and spreads its mass over the first bytes of the next piece. Sums to 1 (up to rounding).
    /// Example: prompt "" with the model above: [a] = 0.2 + 0.5, [b] = 0.3.
    std::array<double, next_byte_outcomes> next_byte_distribution(std::string_view prompt,
                                                                  const next_piece_log_probs& next) const;

    /// The number of model calls condition() would make at most for this prompt (N above), and the
    /// number of paths ending exactly at the prompt's end (next_byte_distribution's extra calls), without
    /// calling the model. The counts are doubles: they can exceed any integer type.
    std::pair<double, double> cost(std::string_view prompt) const;

    /// Generation from a byte prefix: draws a covering path from (2) (greedy: the most probable one, the
    /// first in forward order on ties), then continues piece by piece from q (greedy: the argmax, lowest id
    /// on ties) until end_piece, max_new_pieces or min_new_bytes. The text always starts with the prompt.
    /// A step where every allowed piece has probability 0 ends the generation (ended stays false).
    /// Example: generate("The best way to predict the fut", next, gen, {.greedy = true, .min_new_bytes = 8}).
    prefix_generation generate(std::string_view prompt, const next_piece_log_probs& next, rng& gen,
                               const prefix_generation_options& generation = {}) const;

  private:
    struct tail_split;
    tail_split split(std::string_view prompt) const;
    // The renormalized log q over the allowed pieces (−∞ elsewhere); all −∞ if nothing allowed has mass.
    std::vector<double> log_q(const next_piece_log_probs& next, std::span<const piece_id> context,
                              const char* who) const;

    const unigram_model* model_;
    prefix_conditioning_options options_;
    token_healer index_;         // piece lookups by text (pieces starting with / prefixes of a string)
    std::vector<char> allowed_;  // [V]: normal, byte, end_piece
};

}  // namespace exprgrad::text
