// Unigram EM training on real text: Debian's `fortunes` (English) and `fortunes-zh` (Chinese), installed
// under /usr/share/games/fortunes by the project's setup script. Without them these tests are skipped with a
// message (the rest of the suite does not need them).
#include <doctest/doctest.h>

#include <cmath>
#include <exprgrad/text/trainer.hpp>
#include <exprgrad/text/utf8.hpp>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

using exprgrad::text::count_words;
using exprgrad::text::digamma;
using exprgrad::text::piece_kind;
using exprgrad::text::train_options;
using exprgrad::text::train_progress;
using exprgrad::text::unigram_model;
using exprgrad::text::utf8_sequence_length;
using exprgrad::text::word_counts;

namespace {

const std::filesystem::path fortunes_dir = "/usr/share/games/fortunes";

// Up to `max_bytes` of lines from the named fortune files; empty if none is installed.
std::vector<std::string> read_lines(const std::vector<std::string>& names, std::size_t max_bytes) {
    std::vector<std::string> lines;
    std::size_t bytes = 0;
    for (const auto& name : names) {
        std::ifstream in(fortunes_dir / name, std::ios::binary);
        for (std::string line; bytes < max_bytes && std::getline(in, line);) {
            bytes += line.size() + 1;
            lines.push_back(line);
        }
    }
    return lines;
}

bool have_fortunes(const char* file) {
    if (std::filesystem::exists(fortunes_dir / file)) return true;
    MESSAGE("SKIPPED: " << (fortunes_dir / file).string()
                        << " is missing; install Debian's fortunes and fortunes-zh packages (the setup script does)");
    return false;
}

}  // namespace

TEST_CASE("digamma") {
    const double euler_gamma = 0.57721566490153286;
    CHECK(digamma(1.0) == doctest::Approx(-euler_gamma).epsilon(1e-13));
    CHECK(digamma(0.5) == doctest::Approx(-euler_gamma - 2 * std::log(2.0)).epsilon(1e-13));
    CHECK(digamma(10.0) == doctest::Approx(2.2517525890667211).epsilon(1e-13));  // H_9 − γ
    CHECK(digamma(1e6) == doctest::Approx(std::log(1e6) - 0.5e-6).epsilon(1e-13));
    CHECK(std::isnan(digamma(0.0)));
    CHECK(std::isnan(digamma(-1.0)));
}

TEST_CASE("count_words cuts before spaces") {
    word_counts c;
    count_words("the cat  the", true, c);
    CHECK(c.size() == 4);
    CHECK(c["the"] == 1);
    CHECK(c[" the"] == 1);
    CHECK(c[" cat"] == 1);
    CHECK(c[" "] == 1);
    word_counts whole;
    count_words("the cat", false, whole);
    CHECK(whole["the cat"] == 1);
}

TEST_CASE("training on English fortunes: size, coverage, EM progress, determinism, round trip") {
    if (!have_fortunes("fortunes")) return;
    // 200 kB for training, the next lines held out.
    const auto all = read_lines({"fortunes", "wisdom", "computers", "people", "science"}, 260000);
    REQUIRE(all.size() > 1000);
    const std::size_t split = all.size() * 10 / 13;
    const std::vector<std::string> train(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(split));
    const std::vector<std::string> held(all.begin() + static_cast<std::ptrdiff_t>(split), all.end());

    train_options opt;
    opt.vocab_size = 1000;
    std::vector<train_progress> progress;
    opt.progress = [&](const train_progress& p) { progress.push_back(p); };
    const unigram_model m = exprgrad::text::train_unigram(train, opt);
    CHECK(m.size() == 1000);
    CHECK(m.vocab().has_reserved_specials());
    CHECK(m.options().utf8_boundaries);
    // Progress: every stage reported; within a round the EM objective does not increase (EM never lowers
    // the likelihood; the M-step's dropping of rare pieces and the ψ prior can only nudge it by a little).
    REQUIRE(progress.size() > 4);
    CHECK(progress.front().stage == "words");
    CHECK(progress.back().stage == "final");
    bool saw_prune = false;
    for (std::size_t i = 1; i < progress.size(); ++i) {
        saw_prune = saw_prune || progress[i].stage == "prune";
        if (progress[i].stage == "em" && progress[i - 1].stage == "em" && progress[i].round == progress[i - 1].round) {
            CHECK(progress[i].objective <= progress[i - 1].objective + 1e-3);
        }
    }
    CHECK(saw_prune);

    // Pieces are sorted by score after the specials, no piece is longer than 16 bytes, and no piece
    // contains an inner space.
    for (std::size_t i = 5; i < m.size(); ++i) {
        const auto& prev = m.vocab()[static_cast<int>(i - 1)];
        const auto& p = m.vocab()[static_cast<int>(i)];
        if (p.kind != piece_kind::normal || prev.kind != piece_kind::normal) continue;
        CHECK(prev.score >= p.score);
        CHECK(p.text.size() <= 16);
        CHECK(p.text.find(' ', 1) == std::string::npos);
    }
    // Held-out text round-trips and compresses: over 2 bytes per piece (bytes alone give 1; SentencePiece's
    // unigram trainer gives about 3.6 on the whole English corpus at 8000 pieces, as ours does).
    std::size_t bytes = 0, pieces = 0;
    for (const auto& line : held) {
        const auto ids = m.encode(line);
        CHECK(m.decode(ids) == line);
        bytes += line.size();
        pieces += ids.size();
    }
    const double bytes_per_piece = static_cast<double>(bytes) / static_cast<double>(pieces);
    MESSAGE("held-out bytes per piece with 1000 pieces: " << bytes_per_piece);
    CHECK(bytes_per_piece > 2.0);

    // Deterministic.
    train_options quiet = opt;
    quiet.progress = nullptr;
    const unigram_model again = exprgrad::text::train_unigram(train, quiet);
    CHECK(again.vocab() == m.vocab());
}

TEST_CASE("training on Chinese fortunes keeps code points whole") {
    if (!have_fortunes("tang300")) return;
    const auto lines = read_lines({"tang300"}, 60000);
    REQUIRE(!lines.empty());
    train_options opt;
    opt.vocab_size = 1500;
    const unigram_model m = exprgrad::text::train_unigram(lines, opt);
    CHECK(m.size() <= 1500);
    for (const auto& p : m.vocab().pieces()) {
        if (p.kind != piece_kind::normal || p.text.size() < 2) continue;
        CHECK(exprgrad::text::is_valid_utf8(p.text));
    }
    for (const auto& line : lines) {
        const auto spans = m.encode_spans(line);
        CHECK(m.decode(m.encode(line)) == line);
        for (const auto& s : spans) {
            if (s.end - s.begin >= 2) CHECK(exprgrad::text::is_valid_utf8(line.substr(s.begin, s.end - s.begin)));
        }
    }
}

TEST_CASE("bad training options are refused naming the option and the value (issue 16)") {
    const word_counts words{{" a", 3}, {" b", 1}};
    auto message = [&](const train_options& o) {
        try {
            exprgrad::text::train_unigram(words, o);
        } catch (const std::invalid_argument& e) {
            return std::string(e.what());
        }
        return std::string("no exception");
    };
    train_options o;
    o.vocab_size = 5;
    CHECK(message(o) == "train_unigram: vocab_size must be at least 261, got 5");
    o = {};
    o.max_piece_length = 1;
    CHECK(message(o) == "train_unigram: max_piece_length must be at least 2, got 1");
    o = {};
    o.character_coverage = std::nan("");
    CHECK(message(o) == "train_unigram: character_coverage must be in [0, 1], got nan");
    o = {};
    o.shrinking_factor = 1.5;
    CHECK(message(o) == "train_unigram: shrinking_factor must be in (0, 1), got 1.5");
}
