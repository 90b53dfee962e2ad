// Exact byte-level conditioning (include/exprgrad/text/byte_conditioning.hpp).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exprgrad/format.hpp>
#include <exprgrad/text/byte_conditioning.hpp>
#include <limits>
#include <stdexcept>
#include <string>

namespace exprgrad::text {

namespace {

constexpr double neg_inf = -std::numeric_limits<double>::infinity();

// Draws an index with probabilities ∝ exp(lw[i] − max) or takes the first argmax; -1 if all are −∞.
std::ptrdiff_t pick(const std::vector<double>& lw, rng& gen, bool greedy) {
    std::ptrdiff_t best = -1;
    for (std::size_t i = 0; i < lw.size(); ++i) {
        if (lw[i] == neg_inf) continue;
        if (best < 0 || lw[i] > lw[static_cast<std::size_t>(best)]) best = static_cast<std::ptrdiff_t>(i);
    }
    if (greedy || best < 0) return best;
    const double mx = lw[static_cast<std::size_t>(best)];
    double z = 0;
    for (const double x : lw) z += std::exp(x - mx);
    double u = gen.uniform() * z;
    std::ptrdiff_t last = best;
    for (std::size_t i = 0; i < lw.size(); ++i) {
        if (lw[i] == neg_inf) continue;
        last = static_cast<std::ptrdiff_t>(i);
        u -= std::exp(lw[i] - mx);
        if (u < 0) return last;
    }
    return last;  // rounding left u above the sum
}

std::string quote(std::string_view s) {
    std::string o = "\"";
    for (const char ch : s.substr(0, 40)) {
        const auto u = static_cast<unsigned char>(ch);
        if (u < 0x20 || u == 0x7f || ch == '"' || ch == '\\') {
            char b[8];
            std::snprintf(b, sizeof b, "\\x%02X", u);
            o += b;
        } else {
            o += ch;
        }
    }
    return o + (s.size() > 40 ? "...\"" : "\"");
}

}  // namespace

struct prefix_conditioner::tail_split {
    std::vector<piece_id> head;
    std::size_t begin = 0;
    std::string_view text;  // t = prompt[begin, n)
};

prefix_conditioner::prefix_conditioner(const unigram_model& model, prefix_conditioning_options options)
    : model_(&model), options_(options), index_(model), allowed_(model.size(), 0) {
    const vocabulary& v = model.vocab();
    for (std::size_t i = 0; i < v.size(); ++i) allowed_[i] = v[static_cast<piece_id>(i)].kind != piece_kind::control;
    if (options.end_piece) {
        const piece_id e = *options.end_piece;
        if (e < 0 || static_cast<std::size_t>(e) >= v.size() || v[e].kind != piece_kind::control) {
            throw std::invalid_argument("prefix_conditioner: end_piece must be a control piece id in [0, " +
                                        std::to_string(v.size()) + "), got " + std::to_string(e));
        }
        allowed_[static_cast<std::size_t>(e)] = 1;
    }
}

prefix_conditioner::tail_split prefix_conditioner::split(std::string_view prompt) const {
    tail_split t;
    const std::vector<piece_id> ids = model_->encode(prompt);
    const std::size_t k = std::min(options_.backoff_pieces, ids.size());
    t.head.assign(ids.begin(), ids.end() - static_cast<std::ptrdiff_t>(k));
    for (const piece_id id : t.head) t.begin += model_->vocab()[id].text.size();
    t.text = prompt.substr(t.begin);
    return t;
}

std::pair<double, double> prefix_conditioner::cost(std::string_view prompt) const {
    const tail_split t = split(prompt);
    const std::size_t L = t.text.size();
    if (L == 0) return {0.0, 1.0};
    // count[s] = number of segmentations of t[0, s) into pieces (each a partial path, i.e. a node).
    std::vector<double> count(L + 1, 0.0);
    count[0] = 1;
    double nodes = 0, exact_end = 0;
    for (std::size_t s = 0; s < L; ++s) {
        if (count[s] == 0) continue;
        nodes += count[s];
        const std::string_view rem = t.text.substr(s);
        for (const piece_id id : index_.pieces_prefix_of(rem)) {
            const std::size_t len = model_->vocab()[id].text.size();
            if (len < rem.size()) {
                count[s + len] += count[s];
            } else {
                exact_end += count[s];
            }
        }
    }
    return {nodes, exact_end};
}

std::vector<double> prefix_conditioner::log_q(const next_piece_log_probs& next, std::span<const piece_id> context,
                                              const char* who) const {
    std::vector<double> lp = next(context);
    const std::size_t V = allowed_.size();
    if (lp.size() != V) {
        throw std::invalid_argument(std::string(who) + ": the language model returned " + std::to_string(lp.size()) +
                                    " log-probabilities for a vocabulary of " + std::to_string(V) + " (context of " +
                                    std::to_string(context.size()) + " pieces)");
    }
    double mx = neg_inf;
    for (std::size_t i = 0; i < V; ++i) {
        if (std::isnan(lp[i]) || lp[i] == std::numeric_limits<double>::infinity()) {
            throw std::invalid_argument(std::string(who) + ": the language model returned " +
                                        (std::isnan(lp[i]) ? "NaN" : "+inf") + " for piece " + std::to_string(i) +
                                        " (context of " + std::to_string(context.size()) + " pieces)");
        }
        if (allowed_[i]) mx = std::max(mx, lp[i]);
    }
    if (mx == neg_inf) {
        std::fill(lp.begin(), lp.end(), neg_inf);
        return lp;
    }
    double z = 0;
    for (std::size_t i = 0; i < V; ++i)
        if (allowed_[i]) z += std::exp(lp[i] - mx);
    const double lz = mx + std::log(z);
    for (std::size_t i = 0; i < V; ++i) lp[i] = allowed_[i] ? lp[i] - lz : neg_inf;
    return lp;
}

prefix_conditioning prefix_conditioner::condition(std::string_view prompt, const next_piece_log_probs& next) const {
    const tail_split t = split(prompt);
    prefix_conditioning out;
    out.head = t.head;
    out.tail_begin = t.begin;
    const std::size_t L = t.text.size();
    if (L == 0) {
        out.paths.push_back({{}, 0.0, 1.0});
        return out;
    }
    const double calls = cost(prompt).first;
    if (calls > static_cast<double>(options_.max_model_calls)) {
        throw std::length_error("prefix_conditioner: the prompt's last " + std::to_string(L) + " bytes (backoff_pieces = " +
                                std::to_string(options_.backoff_pieces) + ") have " + format_number(calls) +
                                " partial segmentations, each a model call: more than max_model_calls = " +
                                std::to_string(options_.max_model_calls) + " (raise it or lower backoff_pieces)");
    }
    // The forward pass: nodes[s] are the partial paths with text t[0, s) and positive probability, in the
    // order they were reached; a node's successors end later, so increasing s visits every node after all
    // its predecessors.
    struct partial_path {
        std::vector<piece_id> path;
        double log_weight;
    };
    std::vector<std::vector<partial_path>> nodes(L);
    nodes[0].push_back({{}, 0.0});
    std::vector<piece_id> context = t.head;
    for (std::size_t s = 0; s < L; ++s) {
        const std::string_view rem = t.text.substr(s);
        for (partial_path& node : nodes[s]) {
            context.resize(t.head.size());
            context.insert(context.end(), node.path.begin(), node.path.end());
            const std::vector<double> lq = log_q(next, context, "prefix_conditioner");
            ++out.model_calls;
            auto extend = [&](piece_id id) {
                std::vector<piece_id> p = node.path;
                p.push_back(id);
                return p;
            };
            for (const piece_id id : index_.pieces_prefix_of(rem)) {
                const std::size_t len = model_->vocab()[id].text.size();
                const double w = node.log_weight + lq[static_cast<std::size_t>(id)];
                if (len < rem.size() && w != neg_inf) nodes[s + len].push_back({extend(id), w});
            }
            for (const piece_id id : index_.pieces_starting_with(rem)) {
                const double w = node.log_weight + lq[static_cast<std::size_t>(id)];
                if (w != neg_inf) out.paths.push_back({extend(id), w, 0.0});
            }
            node.path = {};  // no longer needed
        }
    }
    double mx = neg_inf;
    for (const auto& p : out.paths) mx = std::max(mx, p.log_weight);
    if (mx == neg_inf) {
        throw std::domain_error(
            "prefix_conditioner: no piece sequence of positive probability produces text "
            "starting with the prompt's tail " +
            quote(t.text) + " (bytes " + std::to_string(t.begin) + ".." + std::to_string(prompt.size()) +
            " of the prompt)");
    }
    double z = 0;
    for (const auto& p : out.paths) z += std::exp(p.log_weight - mx);
    out.log_prefix_probability = mx + std::log(z);
    for (auto& p : out.paths) p.probability = std::exp(p.log_weight - out.log_prefix_probability);
    return out;
}

std::array<double, next_byte_outcomes> prefix_conditioner::next_byte_distribution(
    std::string_view prompt, const next_piece_log_probs& next) const {
    const auto [nodes, exact_end] = cost(prompt);
    if (nodes + exact_end > static_cast<double>(options_.max_model_calls)) {
        throw std::length_error("prefix_conditioner: the prompt's tail (backoff_pieces = " +
                                std::to_string(options_.backoff_pieces) + ") needs " + format_number(nodes + exact_end) +
                                " model calls for the next-byte distribution: more than max_model_calls = " +
                                std::to_string(options_.max_model_calls) + " (raise it or lower backoff_pieces)");
    }
    const prefix_conditioning c = condition(prompt, next);
    const vocabulary& v = model_->vocab();
    std::array<double, next_byte_outcomes> out{};
    std::vector<piece_id> context;
    for (const covering_path& p : c.paths) {
        // Bytes of the path beyond the prompt: its text is prompt[c, n) + overhang.
        std::size_t path_bytes = 0;
        for (const piece_id id : p.pieces) path_bytes += v[id].text.size();
        const std::size_t tail = prompt.size() - c.tail_begin;
        if (path_bytes > tail) {
            const std::string& last = v[p.pieces.back()].text;
            const auto byte = static_cast<unsigned char>(last[last.size() - (path_bytes - tail)]);
            out[byte] += p.probability;
            continue;
        }
        context = c.head;
        context.insert(context.end(), p.pieces.begin(), p.pieces.end());
        const std::vector<double> lq = log_q(next, context, "prefix_conditioner");
        for (std::size_t y = 0; y < lq.size(); ++y) {
            if (lq[y] == neg_inf) continue;
            const piece& next_piece = v[static_cast<piece_id>(y)];
            const std::size_t slot = next_piece.kind == piece_kind::control
                                         ? end_of_text_outcome
                                         : static_cast<unsigned char>(next_piece.text[0]);
            out[slot] += p.probability * std::exp(lq[y]);
        }
    }
    return out;
}

prefix_generation prefix_conditioner::generate(std::string_view prompt, const next_piece_log_probs& next, rng& gen,
                                               const prefix_generation_options& generation) const {
    const prefix_conditioning c = condition(prompt, next);
    prefix_generation out;
    out.model_calls = c.model_calls;
    std::vector<double> lw(c.paths.size());
    for (std::size_t i = 0; i < lw.size(); ++i) lw[i] = c.paths[i].log_weight;
    const std::ptrdiff_t chosen = pick(lw, gen, generation.greedy);  // ≥ 0: condition() found mass
    out.pieces = c.head;
    const auto& path = c.paths[static_cast<std::size_t>(chosen)].pieces;
    out.pieces.insert(out.pieces.end(), path.begin(), path.end());
    out.text = model_->decode(out.pieces);
    const std::size_t target = prompt.size() + generation.min_new_bytes;
    for (std::size_t i = 0; i < generation.max_new_pieces; ++i) {
        if (generation.min_new_bytes > 0 && out.text.size() >= target) break;
        const std::vector<double> lq = log_q(next, out.pieces, "prefix_conditioner::generate");
        ++out.model_calls;
        const std::ptrdiff_t y = pick(lq, gen, generation.greedy);
        if (y < 0) break;
        if (options_.end_piece && static_cast<piece_id>(y) == *options_.end_piece) {
            out.ended = true;
            break;
        }
        out.pieces.push_back(static_cast<piece_id>(y));
        out.text += model_->vocab()[static_cast<piece_id>(y)].text;
    }
    return out;
}

}  // namespace exprgrad::text
