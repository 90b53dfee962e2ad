// Token healing (include/exprgrad/text/token_healing.hpp).
#include <algorithm>
#include <cmath>
#include <exprgrad/text/token_healing.hpp>
#include <limits>
#include <stdexcept>
#include <string>

namespace exprgrad::text {

namespace {

// Draws an index with the given probabilities (or takes the most probable one); -1 if all are 0.
std::ptrdiff_t choose(const std::vector<double>& p, rng& gen, bool greedy) {
    std::ptrdiff_t best = -1, last = -1;
    for (std::size_t i = 0; i < p.size(); ++i) {
        if (p[i] <= 0) continue;
        last = static_cast<std::ptrdiff_t>(i);
        if (best < 0 || p[i] > p[static_cast<std::size_t>(best)]) best = last;
    }
    if (greedy || best < 0) return best;
    const double u = gen.uniform();
    double acc = 0;
    for (std::size_t i = 0; i < p.size(); ++i) {
        acc += p[i];
        if (u < acc && p[i] > 0) return static_cast<std::ptrdiff_t>(i);
    }
    return last;  // rounding left u above the sum
}

std::vector<double> call_model(const next_piece_log_probs& next, std::span<const piece_id> context, std::size_t v) {
    std::vector<double> logp = next(context);
    if (logp.size() != v) {
        throw std::invalid_argument("token_healer: the language model returned " + std::to_string(logp.size()) +
                                    " log-probabilities for a vocabulary of " + std::to_string(v));
    }
    return logp;
}

}  // namespace

token_healer::token_healer(const unigram_model& model) : model_(&model) {
    const auto& pieces = model.vocab().pieces();
    std::vector<std::pair<std::string, std::int32_t>> keys;
    for (std::size_t i = 0; i < pieces.size(); ++i) {
        if (pieces[i].kind == piece_kind::control) continue;
        sorted_.emplace_back(pieces[i].text, static_cast<piece_id>(i));
        keys.emplace_back(pieces[i].text, static_cast<std::int32_t>(i));
    }
    std::sort(sorted_.begin(), sorted_.end());
    all_ = prefix_matcher(std::move(keys));
}

std::vector<piece_id> token_healer::pieces_starting_with(std::string_view prefix) const {
    std::vector<piece_id> out;
    auto it = std::lower_bound(sorted_.begin(), sorted_.end(), prefix,
                               [](const auto& entry, std::string_view p) { return std::string_view(entry.first) < p; });
    for (; it != sorted_.end() && std::string_view(it->first).substr(0, prefix.size()) == prefix; ++it) {
        out.push_back(it->second);
    }
    return out;
}

std::vector<piece_id> token_healer::pieces_prefix_of(std::string_view text) const {
    std::vector<piece_id> out;
    all_.for_each_prefix(reinterpret_cast<const unsigned char*>(text.data()), text.size(),
                         [&](std::size_t, std::int32_t id) { out.push_back(id); });
    return out;
}

std::size_t token_healer::backoff(std::span<const piece_id> ids, std::size_t max_backoff) const {
    std::size_t best = 0;
    std::string tail;
    for (std::size_t j = 1; j <= std::min(max_backoff, ids.size()); ++j) {
        tail = model_->vocab().at(ids[ids.size() - j]).text + tail;
        // A proper prefix of some piece: some piece starts with tail and is longer.
        const auto c = pieces_starting_with(tail);
        const bool proper =
            std::any_of(c.begin(), c.end(), [&](piece_id id) { return model_->vocab()[id].text.size() > tail.size(); });
        if (proper) best = j;
    }
    return best;
}

std::vector<double> token_healer::renormalize(std::span<const double> logp, std::span<const piece_id> candidates) {
    double max_lp = -std::numeric_limits<double>::infinity();
    for (const piece_id id : candidates) {
        if (id < 0 || static_cast<std::size_t>(id) >= logp.size()) {
            throw std::out_of_range("token_healer::renormalize: piece id " + std::to_string(id) + " out of range");
        }
        const double lp = logp[static_cast<std::size_t>(id)];
        if (std::isnan(lp) || lp == std::numeric_limits<double>::infinity()) {
            throw std::invalid_argument("token_healer: log-probability of piece " + std::to_string(id) + " is " +
                                        (std::isnan(lp) ? "NaN" : "+inf"));
        }
        max_lp = std::max(max_lp, lp);
    }
    std::vector<double> p(candidates.size(), 0.0);
    if (max_lp == -std::numeric_limits<double>::infinity()) return p;
    double sum = 0;
    for (std::size_t i = 0; i < candidates.size(); ++i) {
        p[i] = std::exp(logp[static_cast<std::size_t>(candidates[i])] - max_lp);
        sum += p[i];
    }
    for (double& x : p) x /= sum;
    return p;
}

healing_result token_healer::heal(std::string_view prompt, const next_piece_log_probs& next, rng& gen,
                                  const healing_options& options) const {
    const std::vector<piece_id> ids = model_->encode(prompt);
    return heal_ids(ids, next, gen, options);
}

healing_result token_healer::heal_ids(std::span<const piece_id> ids, const next_piece_log_probs& next, rng& gen,
                                      const healing_options& options) const {
    const vocabulary& vocab = model_->vocab();
    healing_result result;
    result.context.assign(ids.begin(), ids.end());
    if (ids.empty()) return result;

    if (options.mode == healing_mode::su) {
        const std::string& r = vocab.at(ids.back()).text;
        result.context.pop_back();
        result.backed_off = 1;
        healing_step step;
        step.candidates = pieces_starting_with(r);
        step.probabilities = renormalize(call_model(next, result.context, vocab.size()), step.candidates);
        const std::ptrdiff_t k = choose(step.probabilities, gen, options.greedy);
        step.chosen = k < 0 ? ids.back() : step.candidates[static_cast<std::size_t>(k)];
        result.context.push_back(step.chosen);
        result.emitted = vocab[step.chosen].text.substr(r.size());
        result.steps.push_back(std::move(step));
        return result;
    }

    const std::size_t k = backoff(ids, options.max_backoff);
    if (k == 0) return result;
    std::string remaining;
    for (std::size_t j = ids.size() - k; j < ids.size(); ++j) remaining += vocab.at(ids[j]).text;
    result.context.resize(ids.size() - k);
    result.backed_off = k;
    for (std::size_t step_no = 0; step_no < options.max_steps; ++step_no) {
        healing_step step;
        // Pieces that finish the removed text, then pieces that consume part of it (proper prefixes).
        step.candidates = pieces_starting_with(remaining);
        for (const piece_id id : pieces_prefix_of(remaining)) {
            if (vocab[id].text.size() < remaining.size()) step.candidates.push_back(id);
        }
        step.probabilities = renormalize(call_model(next, result.context, vocab.size()), step.candidates);
        const std::ptrdiff_t c = choose(step.probabilities, gen, options.greedy);
        if (c < 0) {
            // Nothing allowed has probability > 0: restore the removed pieces.
            result.context.assign(ids.begin(), ids.end());
            result.steps.push_back(std::move(step));
            return result;
        }
        step.chosen = step.candidates[static_cast<std::size_t>(c)];
        const std::string& t = vocab[step.chosen].text;
        result.context.push_back(step.chosen);
        result.steps.push_back(std::move(step));
        if (t.size() >= remaining.size()) {
            result.emitted = t.substr(remaining.size());
            return result;
        }
        remaining.erase(0, t.size());
    }
    throw std::runtime_error("token_healer: healing did not finish within max_steps");
}

}  // namespace exprgrad::text
