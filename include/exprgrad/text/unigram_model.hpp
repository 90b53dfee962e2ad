// The unigram tokenizer: a vocabulary of scored pieces and the lattice algorithms over it — Viterbi
// decoding, exact sampling (post 9811's reservoir, FFBS), the log partition function, expected piece counts
// (its gradient), entropy and n-best. Posts: https://kexue.fm/archives/9768 and
// https://kexue.fm/archives/9811; guide: docs/tokenizer.md. Standard headers only; the algorithms are
// compiled (src/text/unigram_model.cpp).
//
// Every algorithm makes one or two passes over the text, walking the piece trie from each position; no
// lattice is stored. Cost O(n·m) for n bytes and longest piece m, memory O(n) (O(n·k) for k-best).
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "lattice.hpp"
#include "matcher.hpp"
#include "random.hpp"
#include "vocabulary.hpp"

namespace exprgrad::text {

/// Which library's rules the lattice follows. The mode fixes the edge set and how ties are broken; all
/// algorithms (encode, sample, log_partition, ...) use the same lattice.
enum class mode {
    /// Edges: every normal piece where it occurs (with `utf8_boundaries`, pieces longer than one byte only
    /// from and to code-point boundaries): the regular edges. Byte fallback: if the regular edges give no
    /// path from 0 to n, a byte-fallback edge (s, s + 1) (the byte's fallback piece) is added at every
    /// position s where no regular edge starts, and nowhere else; then every position has an outgoing edge,
    /// so every byte string has a segmentation. If the regular edges do segment the text, they are the whole
    /// lattice, so the distribution, log Z, entropy, marginals, samples, n-best and Viterbi are exactly
    /// those of the vocabulary alone (e.g. notes T1: 3 segmentations of "watching", log Z(0) = log 3).
    /// Scores in double. Viterbi ties: of the paths with equal best score into a position, the one whose
    /// last piece is longest wins.
    native,
    /// SentencePiece 0.1.97's unigram encoder (Model::EncodeOptimized), for vocabularies imported from it:
    /// edges start only at character starts (lead-byte lengths, unvalidated, as SentencePiece does); a
    /// character with no one-character piece gets one unknown edge scored min(normal scores) − 10; control
    /// pieces are never matched. Viterbi uses EncodeOptimized's exact arithmetic: best scores are stored as
    /// float; a piece candidate is float score + float best added and compared (with the stored float) in
    /// double, then stored rounded to float; an unknown-character candidate is float + float compared in
    /// float. Of equal candidates the first (the longest last piece) is kept, as SentencePiece does.
    sentencepiece,
    /// jieba's dictionary segmentation (`jieba.cut(text, HMM=False)` on runs of Han characters): edges are
    /// dictionary words starting and ending at code-point boundaries; a character starts a one-character
    /// unknown edge scored log(1/total) only if no word starts there; Viterbi runs right to left and on
    /// equal scores the longer word on the left wins, exactly as jieba's route computation.
    jieba,
};

/// Construction options of a unigram_model.
struct model_options {
    // Qualified: inside the struct, the member `mode` hides the enum of the same name.
    text::mode mode = text::mode::native;
    /// Native mode: keep pieces longer than one byte from splitting a UTF-8 code point (they must start and
    /// end at code-point boundaries; an invalid byte is its own code point). Single bytes stay available, so
    /// every text is still encodable.
    bool utf8_boundaries = false;
    /// Score of byte-fallback pieces added for bytes the vocabulary lacks, and of unknown-character edges in
    /// the sentencepiece mode: min(normal scores) − fallback_penalty (SentencePiece's kUnkPenalty is 10).
    double fallback_penalty = 10.0;
    /// The jieba mode's unknown-character score, log(1/total) (set by the jieba importer). NaN = unset, in
    /// which case min(normal scores) − fallback_penalty is used.
    double unknown_score = std::numeric_limits<double>::quiet_NaN();
};

/// Summary of the segmentation distribution of one text at one α (see unigram_model::analyze).
struct lattice_stats {
    double log_partition = 0.0;     ///< log Z(α)
    double entropy = 0.0;           ///< H = −Σ P(w) log P(w), nats
    double expected_score = 0.0;    ///< E[score(w)]
    std::vector<double> marginals;  ///< [V] expected count of each piece id (empty unless requested)
};

/// The largest α accepted: with |score| ≤ max_abs_score, α·score sums stay finite in float64.
inline constexpr double max_alpha = 1e200;

/// A unigram tokenizer over byte strings.
///
/// The model copies the vocabulary and appends a byte-fallback piece (kind `byte`) for every byte value
/// that neither a one-byte normal piece nor a byte piece of the vocabulary covers, so every byte string has
/// at least one segmentation (in the native mode through the fallback edges of mode::native, used only for
/// texts the normal pieces cannot segment; in the compatible modes unknown characters are covered by
/// unknown edges). Control pieces are never
/// matched inside text.
///
/// α conventions (shared by every function taking α): the distribution is P(w) ∝ exp(α · score(w));
/// α = 0 is uniform over segmentations, large α approaches the Viterbi segmentation. sample() with α < 0
/// returns the Viterbi segmentation; log_partition, marginals, entropy and analyze throw
/// std::invalid_argument for α < 0. NaN or α > max_alpha (1e200, including +∞) throws everywhere.
///
/// Thread safety: const member functions may be called concurrently (each call uses thread-local
/// scratch buffers); set_score must not run concurrently with anything else.
///
/// Example:
///     vocabulary v = vocabulary::with_specials();
///     v.add("watch", -1); v.add("ing", -1);
///     unigram_model m(v);
///     auto ids = m.encode("watching");                  // {id("watch"), id("ing")}
///     exprgrad::rng gen(1);
///     auto s = m.sample("watching", 0.1, gen);          // a random segmentation
///     double lz = m.log_partition("watching", 1.0);
class unigram_model {
  public:
    /// Builds the model (min(normal scores) is taken as 0 if there is no normal piece). Throws
    /// std::invalid_argument if options.fallback_penalty is not finite.
    explicit unigram_model(vocabulary vocab, model_options options = {});

    /// The vocabulary, including the byte-fallback pieces added by the constructor.
    const vocabulary& vocab() const noexcept { return vocab_; }
    /// V, the number of pieces (the length of marginals()).
    std::size_t size() const noexcept { return vocab_.size(); }
    const model_options& options() const noexcept { return options_; }
    /// The score used for unknown-character edges (compatible modes).
    double unknown_score() const noexcept { return unknown_score_; }
    /// The piece id encode() uses for byte b in a segmentation: the one-byte normal piece, else the
    /// byte-fallback piece.
    piece_id byte_piece(unsigned char b) const noexcept { return byte_id_[b]; }
    /// True for a sentencepiece-mode model whose vocabulary has byte pieces (`<0xHH>`, a SentencePiece model
    /// trained with --byte_fallback=true): encode_spans and sample_spans then give an unknown character as
    /// one span per byte with the vocabulary's byte piece, as spm_encode prints `<0xE9> <0xBE> <0x98>`.
    /// Otherwise unknown characters stay unknown_id spans (printed as one merged piece).
    bool spm_byte_fallback() const noexcept { return spm_byte_fallback_; }

    /// Replaces the score of a normal or byte piece in place (the trie is unchanged), e.g. for EM or finite
    /// differences. Throws std::out_of_range for a bad id, std::invalid_argument for a non-finite score or
    /// a control piece.
    void set_score(piece_id id, double score);

    /// Viterbi decoding: the best-scoring segmentation as piece ids (unknown edges expanded into their
    /// byte pieces). Ties follow the mode (see mode). Never throws for any bytes; empty text gives
    /// an empty result. Example: encode("watching") with {watch, ing, w, atching} all at −1 and
    /// nothing else → {watch, ing} (equal scores, the longer last piece wins).
    std::vector<piece_id> encode(std::string_view text) const;
    /// The same segmentation as spans (unknown edges kept as one span with id unknown_id, except with
    /// spm_byte_fallback(), where they become one span per byte with the byte piece's id).
    std::vector<piece_span> encode_spans(std::string_view text) const;

    /// A random segmentation. α < 0: the Viterbi segmentation (encode). α ≥ 0: with sampler::reservoir or
    /// ffbs, an exact draw from P(w) ∝ exp(α·score(w)); sampler::biased_sigmoid is post 9768's biased
    /// sampler (see sampler). Throws std::invalid_argument for NaN or +∞ α.
    std::vector<piece_id> sample(std::string_view text, double alpha, rng& gen, sampler how = sampler::reservoir) const;
    std::vector<piece_span> sample_spans(std::string_view text, double alpha, rng& gen,
                                         sampler how = sampler::reservoir) const;

    /// log Z(α) = log Σ_w exp(α · score(w)) over all segmentations w of `text` (natural log). The empty text
    /// has one (empty) segmentation: 0. α = 0 gives log(number of segmentations). Throws
    /// std::invalid_argument for α < 0, NaN or +∞. Example (notes T2): "ABC" with A=1.0 B=1.2 C=1.5 AB=1.6
    /// BC=1.7 ABC=1.8 at α = 1 → 4.425740.
    double log_partition(std::string_view text, double alpha) const;

    /// The expected number of occurrences of each piece id in a segmentation drawn from P(w), a [V] vector
    /// (it sums to the expected number of pieces). It is the gradient of log Z with respect to the pieces'
    /// scores divided by α: ∂ log Z / ∂ score(i) = α · marginals[i] (for α = 0 the marginals are still the
    /// expected counts under the uniform distribution). An unknown edge counts once for each of its bytes'
    /// fallback pieces. Two passes (forward, then backward with the edge posteriors). Throws like
    /// log_partition. Example (notes T6): "ABC", A=1.0 B=1.2 C=2.5 AB=3.0 BC=4.0 ABC=2.0, α = 1:
    /// A 0.506151, B 0.215396, C 0.694770, AB 0.479373, BC 0.290755, ABC 0.014476.
    std::vector<double> marginals(std::string_view text, double alpha) const;

    /// The entropy of P(w) in nats, H = −Σ P(w) log P(w): 0 when there is one segmentation; log of the count
    /// at α = 0. Not computed as log Z − α · E[score] (which cancels at large α) but by the chain rule over
    /// the first edge of a path, a sum of non-negative terms: H[s] = Σ_{edges s→e} q(s,e)·(H[e] − log q(s,e))
    /// with q(s,e) = exp(α·score + β(e) − β(s)) the edge's probability given s, β the backward log partition
    /// functions, and −log q computed without cancellation (see src/text/unigram_model.cpp). Measured
    /// relative error ≤ 2e-13 against 60-digit values, e.g. H = 1.8876e-7 for "ABC"×200 at α = 40 (notes T2). Throws
    /// like log_partition.
    double entropy(std::string_view text, double alpha) const;

    /// log Z, entropy, E[score] and (if `with_marginals`) the marginals in one forward–backward run;
    /// `weight` scales the marginals added into `accumulate` when it is non-null (size V) instead of
    /// returning them, which is what EM training does. Throws like log_partition.
    lattice_stats analyze(std::string_view text, double alpha, bool with_marginals = true) const;
    lattice_stats analyze(std::string_view text, double alpha, std::span<double> accumulate, double weight) const;

    /// The n best segmentations by score, best first (exact k-best dynamic programming over the mode's
    /// lattice, scores in double; among equal scores the native encode() order: paths found first, i.e. with
    /// the longer last piece, come first), fewer if the text has fewer. n = 0 gives none. Memory O(len·n).
    std::vector<scored_segmentation> nbest(std::string_view text, std::size_t n) const;

    /// The sum of the scores of a segmentation's edges (unknown edges score unknown_score()).
    double score(std::span<const piece_span> spans) const;

    /// The bytes of a sequence of piece ids: normal and byte pieces give their bytes, control pieces
    /// nothing. Throws std::out_of_range naming the first id outside [0, V).
    std::string decode(std::span<const piece_id> ids) const;

    /// Expands spans into piece ids (unknown spans become the byte pieces of their bytes).
    std::vector<piece_id> ids_of(std::string_view text, std::span<const piece_span> spans) const;

  private:
    // With spm_byte_fallback_, replaces unknown spans by one span per byte (the byte pieces); else returns
    // `spans` unchanged.
    std::vector<piece_span> expand_unknown(std::string_view text, std::vector<piece_span> spans) const;

    template <mode M>
    friend struct lattice_walker;

    vocabulary vocab_;
    model_options options_;
    prefix_matcher trie_;                 // normal pieces of two or more bytes
    std::vector<double> scores_;          // [V], copies of the vocabulary's scores
    std::vector<float> scores_f32_;       // [V], the sentencepiece mode's float32 scores
    piece_id byte_id_[256] = {};          // the piece of each single byte
    bool byte_is_normal_[256] = {};       // a one-byte normal piece exists
    piece_id unknown_byte_id_[256] = {};  // the piece an unknown edge's byte expands to
    bool spm_byte_fallback_ = false;
    double unknown_score_ = 0.0;
};

}  // namespace exprgrad::text
