// Unigram EM training with SentencePiece-style pruning (include/exprgrad/text/trainer.hpp).
//
// 1. Words: the corpus is cut into words (" word") with counts; EM and pruning run over distinct words.
// 2. Seed: every byte that occurs is a required one-byte piece; code points covering character_coverage
//    are required pieces; every other substring of a word (2..max_piece_length bytes, on code points) that
//    occurs at least twice is a candidate, the seed_size best by count·length kept.
// 3. Rounds: EM iterations (E: expected counts by forward–backward, which is the gradient of log Z;
//    M: score = ψ(count) − ψ(Σ counts), pieces with expected count < 0.5 dropped, as SentencePiece does),
//    then pruning: each candidate's loss is the drop in corpus log-likelihood if its Viterbi occurrences were
//    re-segmented by its best alternative segmentation (SentencePiece's PruneSentencePieces estimate); the
//    candidates with the smallest loss go, keeping max(1.1·target, shrinking_factor·current).
// 4. Final: the target number of candidates by score, one more EM iteration, pieces sorted by score.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exprgrad/format.hpp>
#include <exprgrad/text/trainer.hpp>
#include <exprgrad/text/utf8.hpp>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace exprgrad::text {

namespace {

struct candidate {
    std::string text;
    double score = 0.0;
    bool required = false;
};

using word_list = std::vector<std::pair<std::string, std::uint64_t>>;

// Code-point boundaries of a word (invalid bytes are code points of their own); includes 0 and size.
std::vector<std::size_t> boundaries_of(std::string_view w) {
    std::vector<std::size_t> b;
    for (std::size_t i = 0; i < w.size();) {
        b.push_back(i);
        const std::size_t len = utf8_sequence_length(w, i);
        i += len == 0 ? 1 : len;
    }
    b.push_back(w.size());
    return b;
}

class trainer {
  public:
    trainer(const word_counts& counts, const train_options& opt) : opt_(opt), start_(std::chrono::steady_clock::now()) {
        words_.assign(counts.begin(), counts.end());
        // Sorted, so that the floating-point sums (and hence the result) do not depend on hash order.
        std::sort(words_.begin(), words_.end());
        for (const auto& [w, c] : words_) total_bytes_ += static_cast<double>(c) * static_cast<double>(w.size());
        report("words", 0);
    }

    unigram_model run() {
        seed();
        const std::size_t target = prunable_target();
        std::size_t round = 0;
        for (;;) {
            for (std::size_t it = 0; it < opt_.em_iterations; ++it) em_step(round);
            const std::size_t prunable = count_prunable();
            const auto desired = static_cast<std::size_t>(std::ceil(1.1 * static_cast<double>(target)));
            if (prunable <= desired || round >= opt_.max_rounds) break;
            ++round;
            prune(std::max(desired, static_cast<std::size_t>(opt_.shrinking_factor * static_cast<double>(prunable))),
                  round);
        }
        finalize(target);
        em_step(round + 1);  // its own round: the cut changed the model
        report("final", round + 1);
        return build(true);
    }

  private:
    void report(std::string_view stage, std::size_t round, double objective = 0.0) const {
        if (!opt_.progress) return;
        train_progress p;
        p.stage = stage;
        p.round = round;
        p.pieces = cands_.size();
        p.objective = objective;
        p.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
        opt_.progress(p);
    }

    void seed() {
        // Byte and code-point counts.
        std::vector<double> byte_count(256, 0.0);
        std::unordered_map<std::string, double> cp_count;
        double total_cp = 0;
        for (const auto& [w, c] : words_) {
            const double cd = static_cast<double>(c);
            for (const char ch : w) byte_count[static_cast<unsigned char>(ch)] += cd;
            const auto b = boundaries_of(w);
            for (std::size_t k = 0; k + 1 < b.size(); ++k) {
                total_cp += cd;
                if (b[k + 1] - b[k] >= 2) cp_count[w.substr(b[k], b[k + 1] - b[k])] += cd;
            }
        }
        // Required code points: most frequent first until the coverage is reached (one-byte code points
        // count as covered: they are bytes).
        double covered = 0;
        for (unsigned b = 0; b < 0x80; ++b) covered += byte_count[b];
        std::vector<std::pair<std::string, double>> cps(cp_count.begin(), cp_count.end());
        std::sort(cps.begin(), cps.end(), [](const auto& a, const auto& b) {
            return a.second != b.second ? a.second > b.second : a.first < b.first;
        });
        const std::size_t max_required = opt_.vocab_size - 260;
        std::unordered_map<std::string, bool> required_cp;
        for (const auto& [cp, c] : cps) {
            if (covered >= opt_.character_coverage * total_cp || required_cp.size() >= max_required) break;
            required_cp[cp] = true;
            covered += c;
        }

        // Substring counts.
        std::unordered_map<std::string, double> sub;
        for (const auto& [w, c] : words_) {
            const double cd = static_cast<double>(c);
            std::vector<std::size_t> b;
            if (opt_.utf8_boundaries) {
                b = boundaries_of(w);
            } else {
                b.resize(w.size() + 1);
                for (std::size_t i = 0; i <= w.size(); ++i) b[i] = i;
            }
            for (std::size_t i = 0; i + 1 < b.size(); ++i) {
                for (std::size_t j = i + 1; j < b.size() && b[j] - b[i] <= opt_.max_piece_length; ++j) {
                    if (b[j] - b[i] < 2) continue;
                    // With split_by_whitespace a word has no inner space; without, pieces still do not
                    // start a new word in their middle.
                    if (j == i + 1) continue;  // a single code point: required or spelled with bytes
                    sub[w.substr(b[i], b[j] - b[i])] += cd;
                }
            }
        }
        std::vector<std::pair<std::string, double>> seeds;
        for (auto& [s, c] : sub) {
            if (c >= 2) seeds.emplace_back(s, c);
        }
        sub.clear();
        std::sort(seeds.begin(), seeds.end(), [](const auto& a, const auto& b) {
            const double ka = a.second * static_cast<double>(a.first.size());
            const double kb = b.second * static_cast<double>(b.first.size());
            return ka != kb ? ka > kb : a.first < b.first;
        });
        if (seeds.size() > opt_.seed_size) seeds.resize(opt_.seed_size);

        double total = 0;
        for (unsigned b = 0; b < 256; ++b) total += byte_count[b];
        for (const auto& [cp, r] : required_cp) total += cp_count[cp];
        for (const auto& [s, c] : seeds) total += c;
        const double log_total = std::log(total);
        for (unsigned b = 0; b < 256; ++b) {
            if (byte_count[b] > 0) {
                cands_.push_back({std::string(1, static_cast<char>(b)), std::log(byte_count[b]) - log_total, true});
            }
        }
        std::vector<std::string> req;
        for (const auto& [cp, r] : required_cp) req.push_back(cp);
        std::sort(req.begin(), req.end());
        for (const auto& cp : req) cands_.push_back({cp, std::log(cp_count[cp]) - log_total, true});
        required_multi_ = req.size();
        for (const auto& [s, c] : seeds) {
            if (required_cp.count(s) == 0) cands_.push_back({s, std::log(c) - log_total, false});
        }
        report("seed", 0);
    }

    std::size_t prunable_target() const {
        const std::size_t fixed = 260 + required_multi_;
        return opt_.vocab_size > fixed ? opt_.vocab_size - fixed : 0;
    }

    std::size_t count_prunable() const {
        std::size_t n = 0;
        for (const auto& c : cands_) n += c.required ? 0 : 1;
        return n;
    }

    // The model of the current candidates: ids 0–3 specials, then cands_ in order (id = 4 + index).
    unigram_model build(bool sorted) {
        if (sorted) {
            std::stable_sort(cands_.begin(), cands_.end(), [](const candidate& a, const candidate& b) {
                return a.score != b.score ? a.score > b.score : a.text < b.text;
            });
        }
        vocabulary v = vocabulary::with_specials();
        for (const auto& c : cands_) v.add(c.text, c.score);
        model_options mo;
        mo.utf8_boundaries = opt_.utf8_boundaries;
        return unigram_model(std::move(v), mo);
    }

    void em_step(std::size_t round) {
        const unigram_model model = build(false);
        std::vector<double> expected(model.size(), 0.0);
        double log_likelihood = 0;
        for (const auto& [w, c] : words_) {
            const lattice_stats s = model.analyze(w, 1.0, std::span<double>(expected), static_cast<double>(c));
            log_likelihood += static_cast<double>(c) * s.log_partition;
        }
        // M-step (SentencePiece's variational Bayes flavour): ψ(count) − ψ(Σ counts), rare pieces dropped.
        std::vector<candidate> kept;
        double sum = 0;
        for (std::size_t i = 0; i < cands_.size(); ++i) {
            double f = expected[4 + i];
            if (!cands_[i].required && f < 0.5) continue;
            f = std::max(f, 0.5);
            kept.push_back(cands_[i]);
            kept.back().score = f;  // the count, for now
            sum += f;
        }
        const double psi_sum = digamma(sum);
        for (auto& c : kept) c.score = digamma(c.score) - psi_sum;
        cands_ = std::move(kept);
        report("em", round, -log_likelihood / std::max(total_bytes_, 1.0));
    }

    void prune(std::size_t keep, std::size_t round) {
        const unigram_model model = build(false);
        // Viterbi counts.
        std::vector<double> freq(model.size(), 0.0);
        for (const auto& [w, c] : words_) {
            for (const piece_span& s : model.encode_spans(w))
                freq[static_cast<std::size_t>(s.id)] += static_cast<double>(c);
        }
        double sum = 0;
        for (std::size_t i = 0; i < cands_.size(); ++i) sum += freq[4 + i];
        std::vector<std::pair<double, std::size_t>> loss;  // (loss, index) of prunable candidates
        for (std::size_t i = 0; i < cands_.size(); ++i) {
            if (cands_[i].required) continue;
            const auto id = static_cast<piece_id>(4 + i);
            const double f = freq[4 + i];
            if (f == 0) {
                loss.emplace_back(-std::numeric_limits<double>::infinity(), i);  // unused by Viterbi: goes first
                continue;
            }
            // The best segmentation of the piece's own text that does not use the piece.
            const auto best = model.nbest(cands_[i].text, 2);
            const scored_segmentation* alt = nullptr;
            for (const auto& seg : best) {
                if (!(seg.spans.size() == 1 && seg.spans[0].id == id)) {
                    alt = &seg;
                    break;
                }
            }
            if (alt == nullptr) {
                loss.emplace_back(std::numeric_limits<double>::infinity(), i);
                continue;
            }
            const double logsum_alt = std::log(sum + f * static_cast<double>(alt->spans.size() - 1));
            double logprob_alt = 0;
            for (const piece_span& s : alt->spans)
                logprob_alt += std::log(freq[static_cast<std::size_t>(s.id)] + f) - logsum_alt;
            const double logprob_sp = std::log(f) - std::log(sum);
            loss.emplace_back(f * (logprob_sp - logprob_alt), i);
        }
        std::sort(loss.begin(), loss.end(), [&](const auto& a, const auto& b) {
            return a.first != b.first ? a.first > b.first : cands_[a.second].text < cands_[b.second].text;
        });
        std::vector<bool> keep_it(cands_.size(), false);
        for (std::size_t i = 0; i < cands_.size(); ++i) keep_it[i] = cands_[i].required;
        for (std::size_t k = 0; k < loss.size() && k < keep; ++k) keep_it[loss[k].second] = true;
        std::vector<candidate> kept;
        for (std::size_t i = 0; i < cands_.size(); ++i) {
            if (keep_it[i]) kept.push_back(std::move(cands_[i]));
        }
        cands_ = std::move(kept);
        report("prune", round);
    }

    void finalize(std::size_t target) {
        std::vector<std::size_t> order;
        for (std::size_t i = 0; i < cands_.size(); ++i) {
            if (!cands_[i].required) order.push_back(i);
        }
        std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
            return cands_[a].score != cands_[b].score ? cands_[a].score > cands_[b].score
                                                      : cands_[a].text < cands_[b].text;
        });
        std::vector<bool> keep_it(cands_.size(), false);
        for (std::size_t i = 0; i < cands_.size(); ++i) keep_it[i] = cands_[i].required;
        for (std::size_t k = 0; k < order.size() && k < target; ++k) keep_it[order[k]] = true;
        std::vector<candidate> kept;
        for (std::size_t i = 0; i < cands_.size(); ++i) {
            if (keep_it[i]) kept.push_back(std::move(cands_[i]));
        }
        cands_ = std::move(kept);
    }

    const train_options& opt_;
    std::chrono::steady_clock::time_point start_;
    word_list words_;
    double total_bytes_ = 0;
    std::vector<candidate> cands_;
    std::size_t required_multi_ = 0;
};

}  // namespace

void count_words(std::string_view line, bool split_by_whitespace, word_counts& counts) {
    if (line.empty()) return;
    if (!split_by_whitespace) {
        ++counts[std::string(line)];
        return;
    }
    std::size_t start = 0;
    for (std::size_t i = 1; i <= line.size(); ++i) {
        if (i == line.size() || line[i] == ' ') {
            ++counts[std::string(line.substr(start, i - start))];
            start = i;
        }
    }
}

unigram_model train_unigram(const word_counts& words, const train_options& options) {
    // Each refusal names the option and the value passed.
    auto number = [](double x) { return format_number(x); };
    if (options.vocab_size < 261) {
        throw std::invalid_argument("train_unigram: vocab_size must be at least 261, got " +
                                    std::to_string(options.vocab_size));
    }
    if (options.max_piece_length < 2) {
        throw std::invalid_argument("train_unigram: max_piece_length must be at least 2, got " +
                                    std::to_string(options.max_piece_length));
    }
    if (!(options.character_coverage >= 0 && options.character_coverage <= 1)) {
        throw std::invalid_argument("train_unigram: character_coverage must be in [0, 1], got " +
                                    number(options.character_coverage));
    }
    if (!(options.shrinking_factor > 0 && options.shrinking_factor < 1)) {
        throw std::invalid_argument("train_unigram: shrinking_factor must be in (0, 1), got " +
                                    number(options.shrinking_factor));
    }
    if (words.empty()) throw std::invalid_argument("train_unigram: empty corpus");
    trainer t(words, options);
    return t.run();
}

unigram_model train_unigram(const std::vector<std::string>& lines, const train_options& options) {
    word_counts counts;
    for (const auto& line : lines) count_words(line, options.split_by_whitespace, counts);
    return train_unigram(counts, options);
}

double digamma(double x) {
    if (!(x > 0)) return std::numeric_limits<double>::quiet_NaN();
    double result = 0;
    // ψ(x) = ψ(x + 1) − 1/x until the asymptotic series is accurate.
    while (x < 10) {
        result -= 1 / x;
        x += 1;
    }
    const double inv = 1 / x, inv2 = inv * inv;
    result += std::log(x) - 0.5 * inv -
              inv2 * (1.0 / 12 - inv2 * (1.0 / 120 - inv2 * (1.0 / 252 - inv2 * (1.0 / 240 - inv2 / 132))));
    return result;
}

}  // namespace exprgrad::text
