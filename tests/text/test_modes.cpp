// Round trips on random bytes and random UTF-8, the utf8_boundaries option, and the rules of the
// SentencePiece- and jieba-compatible modes on small hand-made vocabularies.
#include <doctest/doctest.h>

#include <cmath>
#include <exprgrad/text/unigram_model.hpp>
#include <exprgrad/text/utf8.hpp>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "lattice_fixtures.hpp"

using exprgrad::rng;
using exprgrad::text::is_valid_utf8;
using exprgrad::text::Mode;
using exprgrad::text::ModelOptions;
using exprgrad::text::piece_id;
using exprgrad::text::PieceKind;
using exprgrad::text::Sampler;
using exprgrad::text::Span;
using exprgrad::text::UnigramModel;
using exprgrad::text::unknown_id;
using exprgrad::text::utf8_sequence_length;
using exprgrad::text::Vocabulary;
using namespace text_test;

namespace {

std::string random_bytes(rng& g, std::size_t n, unsigned alphabet) {
    std::string s(n, '\0');
    for (char& c : s) c = static_cast<char>(g.next_u64() % alphabet);
    return s;
}

void append_utf8(std::string& s, std::uint32_t cp) {
    if (cp < 0x80) {
        s += static_cast<char>(cp);
    } else if (cp < 0x800) {
        s += static_cast<char>(0xC0 | (cp >> 6));
        s += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        s += static_cast<char>(0xE0 | (cp >> 12));
        s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        s += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        s += static_cast<char>(0xF0 | (cp >> 18));
        s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        s += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

// Random UTF-8 from a small alphabet of 1- to 4-byte code points, so that pieces repeat.
std::string random_utf8(rng& g, std::size_t chars) {
    static const std::uint32_t alphabet[] = {'a', 'b', ' ', 0xE9, 0x3B1, 0x4E2D, 0x6587, 0x1F600, 0x10FFFF, 0};
    std::string s;
    for (std::size_t i = 0; i < chars; ++i) append_utf8(s, alphabet[g.next_u64() % 10]);
    return s;
}

// A vocabulary of random substrings of `corpus` with random scores in [−12, −1].
Vocabulary random_vocab(rng& g, const std::string& corpus, std::size_t count) {
    Vocabulary v = Vocabulary::with_specials();
    for (std::size_t i = 0; i < count; ++i) {
        const std::size_t len = 1 + g.next_u64() % 6;
        if (corpus.size() < len) break;
        const std::size_t at = g.next_u64() % (corpus.size() - len + 1);
        const std::string piece = corpus.substr(at, len);
        if (!v.find(piece)) v.add(piece, -1.0 - 11.0 * g.uniform());
    }
    return v;
}

bool starts_code_point(const std::string& s, std::size_t pos) {
    if (pos == s.size()) return true;
    // pos starts a code point iff decoding from the previous boundaries lands on it.
    for (std::size_t i = 0; i < s.size();) {
        if (i == pos) return true;
        if (i > pos) return false;
        const std::size_t len = utf8_sequence_length(s, i);
        i += len == 0 ? 1 : len;
    }
    return false;
}

}  // namespace

TEST_CASE("round trip decode(encode(x)) == x on random bytes, native mode") {
    rng g(2024);
    for (int trial = 0; trial < 20; ++trial) {
        const std::string corpus = random_bytes(g, 2000, trial % 2 ? 256 : 8);
        const UnigramModel m(random_vocab(g, corpus, 300));
        for (int k = 0; k < 20; ++k) {
            const std::string text = random_bytes(g, g.next_u64() % 200, trial % 2 ? 256 : 8);
            CHECK(m.decode(m.encode(text)) == text);
            CHECK(m.decode(m.sample(text, 0.3, g)) == text);
            CHECK(m.decode(m.sample(text, 0.0, g, Sampler::ffbs)) == text);
            CHECK(m.decode(m.sample(text, 1.0, g, Sampler::biased_sigmoid)) == text);
            // The Viterbi path has the best score among the n-best list's first entry.
            const auto best = m.nbest(text, 3);
            REQUIRE(!best.empty());
            CHECK(best[0].score == doctest::Approx(m.score(m.encode_spans(text))).epsilon(1e-12));
        }
    }
}

TEST_CASE("round trip on random UTF-8; utf8_boundaries keeps multi-byte pieces on code points") {
    rng g(77);
    for (int trial = 0; trial < 10; ++trial) {
        const std::string corpus = random_utf8(g, 1500);
        // Pieces that may split code points (random byte substrings of valid UTF-8).
        const Vocabulary v = random_vocab(g, corpus, 400);
        const UnigramModel loose(v);
        ModelOptions opt;
        opt.utf8_boundaries = true;
        const UnigramModel strict(v, opt);
        for (int k = 0; k < 20; ++k) {
            const std::string text = random_utf8(g, g.next_u64() % 100);
            REQUIRE(is_valid_utf8(text));
            CHECK(loose.decode(loose.encode(text)) == text);
            CHECK(strict.decode(strict.encode(text)) == text);
            for (const auto& spans : {strict.encode_spans(text), strict.sample_spans(text, 0.5, g),
                                      strict.sample_spans(text, 0.5, g, Sampler::ffbs)}) {
                for (const Span& s : spans) {
                    if (s.end - s.begin < 2) continue;
                    CHECK(starts_code_point(text, s.begin));
                    CHECK(starts_code_point(text, s.end));
                }
            }
            // The strict lattice is a sub-lattice: fewer segmentations.
            CHECK(strict.log_partition(text, 0.0) <= loose.log_partition(text, 0.0) + 1e-9);
        }
    }
}

TEST_CASE("sentencepiece mode: unknown characters, float32 scores, control pieces") {
    Vocabulary v;
    v.add("<unk>", 0, PieceKind::control);
    v.add("<s>", 0, PieceKind::control);
    v.add("a", -0.5);
    v.add("b", -0.499999999);
    v.add("ab", -1.0);
    ModelOptions spm;
    spm.mode = Mode::sentencepiece;
    const UnigramModel native(v), compat(v, spm);
    // In double, "a b" = −0.999999999 beats "ab" = −1; in float32 they tie and the longer last piece wins.
    CHECK(key_of("ab", native.encode_spans("ab")) == "a b");
    CHECK(key_of("ab", compat.encode_spans("ab")) == "ab");

    // An unknown character is one edge scored min(normal scores) − 10 = −11, expanded into byte pieces.
    const std::string text =
        "a\xe2\x98\x83"
        "b";  // a ☃ b
    const auto spans = compat.encode_spans(text);
    REQUIRE(spans.size() == 3);
    CHECK(spans[1].id == unknown_id);
    CHECK(spans[1].end - spans[1].begin == 3);
    CHECK(compat.unknown_score() == doctest::Approx(-11.0));
    const auto ids = compat.encode(text);
    CHECK(ids.size() == 5);
    CHECK(compat.decode(ids) == text);
    // The lattice has the unknown edge once: segmentations of "a☃b" are {a, ☃, b} only.
    CHECK(compat.log_partition(text, 0.0) == doctest::Approx(0.0));
    // Control names are never matched inside text.
    CHECK(key_of("<s>", compat.encode_spans("<s>")) == "< s >");
    // Marginals of the unknown edge go to the byte pieces of its bytes.
    const auto marg = compat.marginals(text, 1.0);
    CHECK(marg[static_cast<std::size_t>(compat.byte_piece(0xe2))] == doctest::Approx(1.0));
}

TEST_CASE("jieba mode: right-to-left ties, unknown characters only where no word starts") {
    // All four words with frequency 2, total 8: "AB C" and "A BC" tie.
    Vocabulary v = Vocabulary::with_specials();
    for (const char* w : {"A", "AB", "BC", "C"}) v.add(w, std::log(2.0) - std::log(8.0));
    ModelOptions jb;
    jb.mode = Mode::jieba;
    jb.unknown_score = -std::log(8.0);
    const UnigramModel native(v), jieba(v, jb);
    CHECK(key_of("ABC", native.encode_spans("ABC")) == "A BC");  // longer last piece
    CHECK(key_of("ABC", jieba.encode_spans("ABC")) == "AB C");   // longer word on the left (jieba's route)

    // "B" is not a word, but "BC" starts at B: no fallback there, so "AB" + "C" is the only way through "ABC"
    // besides A BC. "X" starts no word: one unknown edge scored log(1/total).
    const auto spans = jieba.encode_spans("XAB");
    REQUIRE(spans.size() == 2);
    CHECK(spans[0].id == unknown_id);
    CHECK(key_of("XAB", spans) == "X AB");
    CHECK(jieba.score(spans) == doctest::Approx(-std::log(8.0) + std::log(2.0) - std::log(8.0)));
    CHECK(jieba.log_partition("ABC", 0.0) == doctest::Approx(std::log(2.0)));  // "A BC", "AB C"
    CHECK(jieba.decode(jieba.encode("XABC")) == "XABC");
    // Han characters: a code point is never split.
    Vocabulary han = Vocabulary::with_specials();
    han.add("\xe5\xa4\xa9", std::log(3.0) - std::log(10.0));              // 天
    han.add("\xe5\xa4\xa9\xe6\xb0\x94", std::log(5.0) - std::log(10.0));  // 天气
    jb.unknown_score = -std::log(10.0);
    const UnigramModel hm(han, jb);
    const std::string t = "\xe4\xbb\x8a\xe5\xa4\xa9\xe5\xa4\xa9\xe6\xb0\x94";  // 今天天气
    const auto hs = hm.encode_spans(t);
    REQUIRE(hs.size() == 3);
    CHECK(hs[0].id == unknown_id);
    CHECK(hs[0].end == 3);
    CHECK(hm.vocabulary()[hs[1].id].text == "\xe5\xa4\xa9");
    CHECK(hm.vocabulary()[hs[2].id].text == "\xe5\xa4\xa9\xe6\xb0\x94");
}

TEST_CASE("set_score and vocabulary invariants") {
    Vocabulary v = Vocabulary::with_specials();
    CHECK(v.has_reserved_specials());
    v.add("ab", -1);
    CHECK_THROWS_AS(v.add("ab", -2), std::invalid_argument);
    CHECK_THROWS_AS(v.add("", -2), std::invalid_argument);
    CHECK_THROWS_AS(v.add("x", NAN), std::invalid_argument);
    CHECK_THROWS_AS(v.add("xy", 0, PieceKind::byte), std::invalid_argument);
    CHECK_THROWS_AS(v.add("<pad>", 0, PieceKind::control), std::invalid_argument);
    v.add("<pad>", 0);  // a normal piece may spell a control name: it is text
    UnigramModel m(v);
    CHECK_THROWS_AS(m.set_score(0, 1.0), std::invalid_argument);  // control
    CHECK_THROWS_AS(m.set_score(4, INFINITY), std::invalid_argument);
    CHECK_THROWS_AS(m.set_score(-1, 0.0), std::out_of_range);
    CHECK(m.size() == 6 + 256 - 0);  // 4 specials, ab, <pad> text, 256 byte pieces
}
