// Token healing (post 9762, "a problem of large-vocabulary LMs on continuation tasks",
// https://kexue.fm/archives/9762): a prompt's last pieces were segmented without knowing what
// follows, so a language model rarely continues them; back off and let the first generated piece(s) re-cover
// the removed text. Standard headers only; compiled in src/text/token_healing.cpp.
#pragma once

#include <cstddef>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "matcher.hpp"
#include "random.hpp"
#include "unigram_model.hpp"

namespace exprgrad::text {

/// The two back-off rules.
enum class healing_mode {
    /// Su's rule: remove the last piece r, allow only pieces whose text starts with r, renormalize the
    /// language model's distribution over them, draw one, and emit its text after r.
    su,
    /// The general rule (as in guidance / llama.cpp token healing): remove the last k pieces, k the largest
    /// j ≤ max_backoff whose concatenation is a proper prefix of some piece (k = 0: nothing to heal); then
    /// decode step by step allowing a piece only if it extends the removed text (which ends the healing) or
    /// is a prefix of what remains of it (which consumes that much), renormalizing at each step.
    general,
};

/// Options of token_healer::heal.
struct healing_options {
    healing_mode mode = healing_mode::su;
    std::size_t max_backoff = 4;  ///< general mode: the largest k considered
    bool greedy = false;          ///< take the most probable allowed piece instead of sampling
    std::size_t max_steps = 256;  ///< general mode: a bound on the constrained steps
};

/// The language model: log-probabilities (natural log, −∞ allowed) of every piece id given the context, a
/// vector of length V. Values need not be normalized: healing renormalizes over the allowed pieces.
using next_piece_log_probs = std::function<std::vector<double>(std::span<const piece_id> context)>;

/// One constrained decoding step: the allowed pieces, their renormalized probabilities and the choice.
struct healing_step {
    std::vector<piece_id> candidates;
    std::vector<double> probabilities;
    piece_id chosen = 0;
};

/// The outcome: the context to continue decoding from (prompt pieces minus the backed-off ones, plus the
/// pieces chosen), the text to show after the prompt, how many pieces were backed off, and the steps.
struct healing_result {
    std::vector<piece_id> context;
    std::string emitted;
    std::size_t backed_off = 0;
    std::vector<healing_step> steps;
};

/// Token healing over a model's normal and byte pieces (control pieces are never candidates).
///
/// Example (the post's example, notes §4.4): with pieces 白云, 白云山, 白云机场, 白云路 and language-model
/// probabilities 0.10, 0.02, 0.05, 0.01 after "广州的", healing "广州的白云" in the su mode draws among the
/// four with probabilities 0.5556, 0.1111, 0.2778, 0.0556; drawing 白云机场 emits "机场".
class token_healer {
  public:
    /// Indexes the model's pieces; `model` must outlive the healer.
    explicit token_healer(const unigram_model& model);

    /// Encodes `prompt` (Viterbi) and heals its end; see healing_mode. An empty prompt, or k = 0 in the general
    /// mode, returns the prompt's pieces unchanged with nothing emitted. If every allowed piece has
    /// probability 0 (all −∞), the backed-off piece is taken again (su) or healing stops with the removed
    /// pieces restored (general). Throws std::invalid_argument if the callback returns a vector whose length
    /// is not V or contains NaN or +∞.
    healing_result heal(std::string_view prompt, const next_piece_log_probs& next, rng& gen,
                        const healing_options& options = {}) const;

    /// The same for a prompt already segmented into `ids`.
    healing_result heal_ids(std::span<const piece_id> ids, const next_piece_log_probs& next, rng& gen,
                            const healing_options& options = {}) const;

    /// Ids of the pieces whose text starts with `prefix` (the prefix itself included if it is a piece),
    /// in byte order of their texts.
    std::vector<piece_id> pieces_starting_with(std::string_view prefix) const;
    /// Ids of the pieces that are prefixes of `text` (non-empty), shortest first.
    std::vector<piece_id> pieces_prefix_of(std::string_view text) const;
    /// The general mode's k for these pieces: the largest j ≤ max_backoff such that the text of the last j
    /// pieces is a proper prefix of some piece, or 0.
    std::size_t backoff(std::span<const piece_id> ids, std::size_t max_backoff) const;

    /// p_i = exp(logp[c_i]) / Σ_j exp(logp[c_j]) over the candidates (a stable softmax); all zeros if every
    /// candidate is −∞. Throws std::invalid_argument for NaN or +∞ among them, std::out_of_range for a bad id.
    static std::vector<double> renormalize(std::span<const double> logp, std::span<const piece_id> candidates);

  private:
    const unigram_model* model_;
    std::vector<std::pair<std::string, piece_id>> sorted_;  // matchable pieces by text
    prefix_matcher all_;                                    // matchable pieces, single bytes included
};

}  // namespace exprgrad::text
