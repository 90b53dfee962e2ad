// Round trips on random bytes and random UTF-8, the utf8_boundaries option, and the rules of the
// SentencePiece- and jieba-compatible modes on small hand-made vocabularies.
#include <doctest/doctest.h>

#include <cmath>
#include <exprgrad/text/piece_format.hpp>
#include <exprgrad/text/unigram_model.hpp>
#include <exprgrad/text/utf8.hpp>
#include <exprgrad/text/vocab_io.hpp>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "lattice_fixtures.hpp"

using exprgrad::rng;
using exprgrad::text::is_valid_utf8;
using exprgrad::text::mode;
using exprgrad::text::model_options;
using exprgrad::text::piece_id;
using exprgrad::text::piece_kind;
using exprgrad::text::piece_span;
using exprgrad::text::sampler;
using exprgrad::text::unigram_model;
using exprgrad::text::unknown_id;
using exprgrad::text::utf8_sequence_length;
using exprgrad::text::vocabulary;
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
vocabulary random_vocab(rng& g, const std::string& corpus, std::size_t count) {
    vocabulary v = vocabulary::with_specials();
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
        const unigram_model m(random_vocab(g, corpus, 300));
        for (int k = 0; k < 20; ++k) {
            const std::string text = random_bytes(g, g.next_u64() % 200, trial % 2 ? 256 : 8);
            CHECK(m.decode(m.encode(text)) == text);
            CHECK(m.decode(m.sample(text, 0.3, g)) == text);
            CHECK(m.decode(m.sample(text, 0.0, g, sampler::ffbs)) == text);
            CHECK(m.decode(m.sample(text, 1.0, g, sampler::biased_sigmoid)) == text);
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
        const vocabulary v = random_vocab(g, corpus, 400);
        const unigram_model loose(v);
        model_options opt;
        opt.utf8_boundaries = true;
        const unigram_model strict(v, opt);
        for (int k = 0; k < 20; ++k) {
            const std::string text = random_utf8(g, g.next_u64() % 100);
            REQUIRE(is_valid_utf8(text));
            CHECK(loose.decode(loose.encode(text)) == text);
            CHECK(strict.decode(strict.encode(text)) == text);
            for (const auto& spans : {strict.encode_spans(text), strict.sample_spans(text, 0.5, g),
                                      strict.sample_spans(text, 0.5, g, sampler::ffbs)}) {
                for (const piece_span& s : spans) {
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
    vocabulary v;
    v.add("<unk>", 0, piece_kind::control);
    v.add("<s>", 0, piece_kind::control);
    v.add("a", -0.5);
    v.add("b", -0.499999999);
    v.add("ab", -1.0);
    model_options spm;
    spm.mode = mode::sentencepiece;
    const unigram_model native(v), compat(v, spm);
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

namespace {

// `exprgrad tok encode --vocab-format spm` on each line: spaces become U+2581, the sentencepiece mode, the
// CLI's printing (merged unknown runs, byte pieces as <0xHH>).
std::vector<std::string> spm_encode_lines(const std::string& vocab, const std::vector<std::string>& lines) {
    const auto loaded = exprgrad::text::parse_vocabulary(vocab, exprgrad::text::vocab_format::sentencepiece);
    const unigram_model m(loaded.vocab, loaded.options);
    std::vector<std::string> out;
    for (const std::string& line : lines) {
        out.push_back(exprgrad::text::format_segmentation(line, m.encode_spans(line), true, &m.vocab()));
    }
    return out;
}

}  // namespace

TEST_CASE("sentencepiece mode: exact ties as Debian's spm_encode 0.1.97") {
    // The pieces of en8000 (spm_train --vocab_size=8000 --model_type=unigram
    // --normalization_rule_name=identity --add_dummy_prefix=false on the English fortunes) that occur in the
    // texts below, scores exported with %.9g (spm_export_vocab-style, through the C++ API). Viterbi only
    // uses pieces occurring in the text and no character is unknown, so the result is the full model's.
    const std::string vocab =
        "<unk>\t0\n<s>\t0\n</s>\t0\n\xe2\x96\x81\t-2.65668607\n.\t-3.33551264\ns\t-3.4716866\n"
        "\xe2\x96\x81"
        "a\t-4.18904877\n--\t-4.38870525\n:\t-5.19929647\nd\t-5.37516737\n-\t-5.39260721\n"
        "\xe2\x96\x81"
        "on\t-5.76175308\ne\t-5.78851557\nn\t-5.86458349\n?\t-5.90539265\n"
        "\xe2\x96\x81"
        "he\t-6.08285761\na\t-6.10879755\n\xe2\x96\x81"
        "one\t-6.26115751\n...\t-6.59672928\n"
        "\xe2\x96\x81"
        "has\t-6.60067034\no\t-6.83808613\non\t-6.88364887\n*\t-7.19004536\nas\t-7.35161448\n"
        "h\t-7.43289852\n\xe2\x96\x81...\t-7.55842352\n_\t-7.64218616\nN\t-7.66618061\nNo\t-7.81728077\n"
        "ne\t-7.89613771\none\t-8.12242317\nhe\t-8.12810326\nad\t-8.17604446\n\xe2\x96\x81head\t-8.24815273\n"
        "ha\t-8.77162743\nhead\t-9.15382767\n\xe2\x96\x81o\t-9.18709469\n___\t-9.40596485\n"
        "\xe2\x96\x81ha\t-9.42555523\n__\t-9.51817036\n***\t-9.53240108\nhas\t-9.57878876\n"
        "\xe2\x96\x81h\t-9.60139751\n??\t-9.70756435\n**\t-10.6429873\n";
    // Recorded with `spm_encode --model en8000.model < ties.txt` (Debian sentencepiece 0.1.97). Sums in
    // float32 gave "- --", "* *** ***" and "... head . ..." on the first, second and fifth line.
    const std::vector<std::string> text = {
        "---", "*******", "_____", "???", "No one has a head....", ": : : ..............."};
    const std::vector<std::string> want = {
        "-- -",
        "*** *** *",
        "__ ___",
        "? ??",
        "No \xe2\x96\x81one \xe2\x96\x81has \xe2\x96\x81"
        "a \xe2\x96\x81head ... .",
        ": \xe2\x96\x81 : \xe2\x96\x81 : \xe2\x96\x81... ... ... ... ...",
    };
    CHECK(spm_encode_lines(vocab, text) == want);
}

TEST_CASE("sentencepiece mode: byte fallback as spm_encode prints it") {
    // The normal pieces of mix_bftrue / mix_bffalse (spm_train --vocab_size=4000 --model_type=unigram
    // --normalization_rule_name=identity --add_dummy_prefix=false --byte_fallback=true / false on English and
    // Chinese fortunes) that occur in the texts; the byte_fallback model also has <0x00>..<0xFF>. 龘 is in
    // neither vocabulary.
    const std::string pieces =
        "\xe2\x96\x81\t-2.31260777\ne\t-5.84149456\nc\t-5.98483372\nr\t-6.06539631\nre\t-6.18886423\n"
        "a\t-6.35427427\nh\t-6.78222895\nar\t-7.06834698\nch\t-7.32437468\nra\t-7.3337636\n"
        "\xe2\x96\x81"
        "c\t-7.73025036\nha\t-8.08314991\nare\t-9.26528263\nchar\t-9.64688206\n";
    std::string bytes;
    char line[32];
    for (int b = 0; b < 256; ++b) {
        std::snprintf(line, sizeof line, "<0x%02X>\t0\n", b);
        bytes += line;
    }
    const std::string head = "<unk>\t0\n<s>\t0\n</s>\t0\n";
    const std::vector<std::string> text = {"rare \xe9\xbe\x98 char", "\xe9\xbe\x98\xe9\xbe\x98 rare"};
    // Recorded with `spm_encode --model mix_bftrue.model < bf.txt` and `... mix_bffalse.model`.
    const std::vector<std::string> with_bytes = {
        "ra re \xe2\x96\x81 <0xE9> <0xBE> <0x98> \xe2\x96\x81 char",
        "<0xE9> <0xBE> <0x98> <0xE9> <0xBE> <0x98> \xe2\x96\x81 ra re",
    };
    const std::vector<std::string> without = {
        "ra re \xe2\x96\x81 \xe9\xbe\x98 \xe2\x96\x81 char",
        "\xe9\xbe\x98\xe9\xbe\x98 \xe2\x96\x81 ra re",
    };
    CHECK(spm_encode_lines(head + bytes + pieces, text) == with_bytes);
    CHECK(spm_encode_lines(head + pieces, text) == without);
    // The ids are the vocabulary's byte pieces, and decode inverts encode.
    const auto loaded =
        exprgrad::text::parse_vocabulary(head + bytes + pieces, exprgrad::text::vocab_format::sentencepiece);
    const unigram_model m(loaded.vocab, loaded.options);
    const auto ids = m.encode(text[0]);
    CHECK(std::count(ids.begin(), ids.end(), piece_id{3 + 0xE9}) == 1);
    CHECK(m.decode(ids) == text[0]);
    rng gen(3);
    CHECK(m.decode(m.sample(text[1], 0.5, gen)) == text[1]);
}

TEST_CASE("jieba mode: right-to-left ties, unknown characters only where no word starts") {
    // All four words with frequency 2, total 8: "AB C" and "A BC" tie.
    vocabulary v = vocabulary::with_specials();
    for (const char* w : {"A", "AB", "BC", "C"}) v.add(w, std::log(2.0) - std::log(8.0));
    model_options jb;
    jb.mode = mode::jieba;
    jb.unknown_score = -std::log(8.0);
    const unigram_model native(v), jieba(v, jb);
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
    vocabulary han = vocabulary::with_specials();
    han.add("\xe5\xa4\xa9", std::log(3.0) - std::log(10.0));              // 天
    han.add("\xe5\xa4\xa9\xe6\xb0\x94", std::log(5.0) - std::log(10.0));  // 天气
    jb.unknown_score = -std::log(10.0);
    const unigram_model hm(han, jb);
    const std::string t = "\xe4\xbb\x8a\xe5\xa4\xa9\xe5\xa4\xa9\xe6\xb0\x94";  // 今天天气
    const auto hs = hm.encode_spans(t);
    REQUIRE(hs.size() == 3);
    CHECK(hs[0].id == unknown_id);
    CHECK(hs[0].end == 3);
    CHECK(hm.vocab()[hs[1].id].text == "\xe5\xa4\xa9");
    CHECK(hm.vocab()[hs[2].id].text == "\xe5\xa4\xa9\xe6\xb0\x94");
}

TEST_CASE("set_score and vocabulary invariants") {
    vocabulary v = vocabulary::with_specials();
    CHECK(v.has_reserved_specials());
    v.add("ab", -1);
    CHECK_THROWS_AS(v.add("ab", -2), std::invalid_argument);
    CHECK_THROWS_AS(v.add("", -2), std::invalid_argument);
    CHECK_THROWS_AS(v.add("x", NAN), std::invalid_argument);
    CHECK_THROWS_AS(v.add("xy", 0, piece_kind::byte), std::invalid_argument);
    CHECK_THROWS_AS(v.add("<pad>", 0, piece_kind::control), std::invalid_argument);
    v.add("<pad>", 0);  // a normal piece may spell a control name: it is text
    unigram_model m(v);
    CHECK_THROWS_AS(m.set_score(0, 1.0), std::invalid_argument);  // control
    CHECK_THROWS_AS(m.set_score(4, INFINITY), std::invalid_argument);
    CHECK_THROWS_AS(m.set_score(-1, 0.0), std::out_of_range);
    CHECK(m.size() == 6 + 256 - 0);  // 4 specials, ab, <pad> text, 256 byte pieces
}
