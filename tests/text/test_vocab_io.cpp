// Vocabulary files: native round trips (bit-exact scores, arbitrary bytes), atomic writes, SentencePiece and
// jieba imports, and malformed files that must throw naming the file, the line and the problem.
#include <doctest/doctest.h>

#include <unistd.h>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exprgrad/text/piece_format.hpp>
#include <exprgrad/text/vocab_io.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

using exprgrad::rng;
using exprgrad::text::format_native;
using exprgrad::text::format_piece;
using exprgrad::text::format_segmentation;
using exprgrad::text::loaded_vocabulary;
using exprgrad::text::mode;
using exprgrad::text::model_options;
using exprgrad::text::parse_pieces;
using exprgrad::text::parse_vocabulary;
using exprgrad::text::piece_kind;
using exprgrad::text::piece_span;
using exprgrad::text::unigram_model;
using exprgrad::text::unknown_id;
using exprgrad::text::vocab_format;
using exprgrad::text::vocabulary;
using exprgrad::text::vocabulary_file_error;

namespace {

std::string header(std::size_t pieces) {
    return "exprgrad-unigram\tversion=1\tpieces=" + std::to_string(pieces) + "\tutf8_boundaries=0\n";
}
const std::string specials = "control\t0\t<pad>\ncontrol\t0\t<bos>\ncontrol\t0\t<eos>\ncontrol\t0\t<mask>\n";

// Expects a vocabulary_file_error at `line` whose problem contains `fragment`.
void expect_error(const std::string& content, vocab_format format, std::size_t line, const std::string& fragment) {
    INFO("content: " << content);
    try {
        parse_vocabulary(content, format, "test.vocab");
        FAIL("no exception");
    } catch (const vocabulary_file_error& e) {
        CHECK(e.file() == "test.vocab");
        CHECK(e.line() == line);
        INFO("problem: " << e.problem());
        CHECK(e.problem().find(fragment) != std::string::npos);
        const std::string prefix = "test.vocab:" + std::to_string(line) + ": ";
        CHECK(std::string(e.what()).rfind(line > 0 ? prefix : "test.vocab: ", 0) == 0);
    }
}

std::filesystem::path temp_dir() {
    const auto dir = std::filesystem::temp_directory_path() / ("exprgrad_text_test_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    return dir;
}

}  // namespace

TEST_CASE("native format round trip: arbitrary bytes, exact scores, options") {
    rng g(5);
    vocabulary v = vocabulary::with_specials();
    v.add("\t\\\n\r \x01\x7f\xff\xe4\xbd\xa0<0x41>", -0.1);
    v.add("\xe2\x96\x81x", 1e-300);
    v.add("z", -1.0 / 3.0);
    for (int i = 0; i < 200; ++i) {
        std::string s(1 + g.next_u64() % 8, '\0');
        for (char& c : s) c = static_cast<char>(g.next_u64());
        if (!v.find(s)) v.add(s, (g.uniform() - 0.5) * 1e3);
    }
    model_options opt;
    opt.utf8_boundaries = true;
    const unigram_model m(v, opt);
    const std::string text = format_native(m.vocab(), m.options());
    const loaded_vocabulary back = parse_vocabulary(text, vocab_format::native);
    CHECK(back.vocab == m.vocab());  // texts, kinds and scores bit for bit
    CHECK(back.options.utf8_boundaries);
    CHECK(back.options.mode == mode::native);
    // Every line is one piece: no raw LF/CR/TAB inside the escaped piece field.
    std::size_t lines = 0;
    for (const char c : text) lines += c == '\n';
    CHECK(lines == m.size() + 1);
    CHECK_THROWS_AS(format_native(vocabulary{}), std::invalid_argument);
}

TEST_CASE("atomic save and load") {
    const auto dir = temp_dir();
    const std::string path = (dir / "v.vocab").string();
    vocabulary v = vocabulary::with_specials();
    v.add("hello", -2.5);
    exprgrad::text::save_native(path, v);
    v.add("world", -3.5);
    exprgrad::text::save_native(path, v);  // replaces
    const unigram_model m = exprgrad::text::load_model(path, vocab_format::native);
    CHECK(m.vocab().find("world"));
    std::size_t files = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        (void)entry;
        ++files;
    }
    CHECK(files == 1);  // no temporary file left behind
    try {
        exprgrad::text::load_vocabulary((dir / "missing.vocab").string(), vocab_format::native);
        FAIL("no exception");
    } catch (const vocabulary_file_error& e) {
        CHECK(e.line() == 0);
        CHECK(std::string(e.what()).find("missing.vocab") != std::string::npos);
    }
    CHECK_THROWS_AS(exprgrad::text::save_native((dir / "no_such_dir" / "x").string(), v), std::runtime_error);
    std::filesystem::remove_all(dir);
}

TEST_CASE("malformed native files name the line and the problem; nothing is half-loaded") {
    expect_error("", vocab_format::native, 1, "empty file");
    expect_error("hello\n", vocab_format::native, 1, "not an exprgrad unigram vocabulary");
    expect_error("exprgrad-unigram\tversion=2\tpieces=4\n" + specials, vocab_format::native, 1, "unsupported version");
    expect_error("exprgrad-unigram\tpieces=4\n" + specials, vocab_format::native, 1, "no version");
    expect_error("exprgrad-unigram\tversion=1\tpieces=x\n" + specials, vocab_format::native, 1, "not a count");
    expect_error("exprgrad-unigram\tversion=1\tpieces=4\tcolour=red\n" + specials, vocab_format::native, 1,
                 "unknown header field");
    expect_error(header(6) + specials + "normal\t-1\tab\n", vocab_format::native, 7,
                 "announces 6 pieces");  // truncated
    expect_error(header(5) + specials + "normal\t-1\tab\nnormal\t-1\tcd\n", vocab_format::native, 7, "announces 5");
    expect_error(header(5) + specials + "normal\t-1\n", vocab_format::native, 6, "expected 3 tab-separated fields");
    expect_error(header(5) + specials + "weird\t-1\tab\n", vocab_format::native, 6, "unknown kind");
    expect_error(header(5) + specials + "normal\tnan\tab\n", vocab_format::native, 6, "not a finite number");
    expect_error(header(5) + specials + "normal\t1e999\tab\n", vocab_format::native, 6, "not a finite number");
    expect_error(header(5) + specials + "normal\t-1x\tab\n", vocab_format::native, 6, "not a finite number");
    // Finite but beyond the lattice's range: sums of such scores would overflow (fuzzer finding).
    expect_error(header(5) + specials + "normal\t-2e30\tab\n", vocab_format::native, 6, "in [-1e30, 1e30]");
    expect_error(header(5) + specials + "normal\t\tab\n", vocab_format::native, 6, "not a finite number");
    expect_error(header(5) + specials + "normal\t-1\ta\\q\n", vocab_format::native, 6, "unknown escape");
    expect_error(header(5) + specials + "normal\t-1\ta\\x4\n", vocab_format::native, 6, "two hex digits");
    expect_error(header(5) + specials +
                     "normal\t-1\ta\x01"
                     "b\n",
                 vocab_format::native, 6, "unescaped control byte 0x01");
    expect_error(header(5) + specials + "normal\t-1\t\n", vocab_format::native, 6, "empty text");
    expect_error(header(6) + specials + "normal\t-1\tab\nnormal\t-2\tab\n", vocab_format::native, 7,
                 "duplicates piece 4");
    expect_error(header(5) + specials + "byte\t-1\tab\n", vocab_format::native, 6, "one byte");
    expect_error(header(4) + "control\t0\t<pad>\ncontrol\t0\t<eos>\ncontrol\t0\t<bos>\ncontrol\t0\t<mask>\n",
                 vocab_format::native, 3, "reserved for the control piece <bos>");
    expect_error(header(2) + "control\t0\t<pad>\ncontrol\t0\t<bos>\n", vocab_format::native, 4, "4 reserved");

    // A failed load leaves the previous value untouched.
    loaded_vocabulary v = parse_vocabulary(header(5) + specials + "normal\t-1\tab\n", vocab_format::native);
    try {
        v = parse_vocabulary(header(5) + specials + "normal\tx\tcd\n", vocab_format::native);
    } catch (const vocabulary_file_error&) {}
    CHECK(v.vocab.size() == 5);
    CHECK(v.vocab.find("ab"));
}

TEST_CASE("SentencePiece vocabulary import") {
    const std::string content =
        "<unk>\t0\n<s>\t0\n</s>\t0\n\xe2\x96\x81the\t-3.5\nth\t-4.25\n<0x41>\t-10\n\xe2\x96\x81\t-2\n";
    const loaded_vocabulary v = parse_vocabulary(content, vocab_format::sentencepiece);
    CHECK(v.options.mode == mode::sentencepiece);
    REQUIRE(v.vocab.size() == 7);
    CHECK(v.vocab[0].kind == piece_kind::control);
    CHECK(v.vocab[2].text == "</s>");
    CHECK(v.vocab[3].text == " the");  // U+2581 → space
    CHECK(v.vocab[3].score == -3.5);
    CHECK(v.vocab[5].kind == piece_kind::byte);
    CHECK(v.vocab[5].text == "A");
    CHECK(v.vocab[6].text == " ");
    const unigram_model m(v.vocab, v.options);
    CHECK(format_segmentation(" the", m.encode_spans(" the"), true) == "\xe2\x96\x81the");

    expect_error("", vocab_format::sentencepiece, 1, "empty file");
    expect_error("<unk>\t0\nab\n", vocab_format::sentencepiece, 2, "expected 'piece<TAB>score'");
    expect_error("<unk>\t0\nab\t-1\tx\n", vocab_format::sentencepiece, 2, "expected 'piece<TAB>score'");
    expect_error("ab\tminus one\n", vocab_format::sentencepiece, 1, "not a finite number");
    expect_error("ab\t-1\ncd\t-4e45\n", vocab_format::sentencepiece, 2, "in [-1e30, 1e30]");
    expect_error("ab\t-1\n\xff\t-1\n", vocab_format::sentencepiece, 2, "not valid UTF-8");
    expect_error("ab\t-1\nab\t-2\n", vocab_format::sentencepiece, 2, "duplicates piece 0");
    expect_error("\t-1\n", vocab_format::sentencepiece, 1, "empty piece");
}

TEST_CASE("jieba dictionary import") {
    // 天 3, 天气 5, 今天 0 (not a piece), total 8; with a byte-order mark and tags.
    const std::string content =
        "\xef\xbb\xbf\xe5\xa4\xa9 3 n\n\xe5\xa4\xa9\xe6\xb0\x94 5\n\xe4\xbb\x8a\xe5\xa4\xa9 0 t\n";
    const loaded_vocabulary v = parse_vocabulary(content, vocab_format::jieba);
    CHECK(v.options.mode == mode::jieba);
    CHECK(v.vocab.has_reserved_specials());
    REQUIRE(v.vocab.size() == 6);
    CHECK(v.vocab[4].text == "\xe5\xa4\xa9");
    CHECK(v.vocab[4].score == std::log(3.0) - std::log(8.0));
    CHECK(v.vocab[5].score == std::log(5.0) - std::log(8.0));
    CHECK(v.options.unknown_score == -std::log(8.0));
    CHECK_FALSE(v.vocab.find("\xe4\xbb\x8a\xe5\xa4\xa9"));
    // A repeated word takes its last frequency; total sums both lines (as jieba does).
    const loaded_vocabulary d = parse_vocabulary("a 1\nb 2\na 5\n", vocab_format::jieba);
    CHECK(d.vocab[*d.vocab.find("a")].score == std::log(5.0) - std::log(8.0));

    expect_error("", vocab_format::jieba, 1, "empty file");
    expect_error("word\n", vocab_format::jieba, 1, "expected 'word freq [tag]'");
    expect_error("a 1\n\nb 2\n", vocab_format::jieba, 2, "expected 'word freq [tag]'");
    expect_error("a 1 n x\n", vocab_format::jieba, 1, "expected 'word freq [tag]'");
    expect_error("a -1\n", vocab_format::jieba, 1, "not an integer");
    expect_error("a 1.5\n", vocab_format::jieba, 1, "not an integer");
    expect_error("\xff 1\n", vocab_format::jieba, 1, "not valid UTF-8");
    // Every frequency 0: jieba divides by the total; the error names the file and the last line.
    expect_error("a 0\nb 0 n\n", vocab_format::jieba, 2, "total frequency of the 2 lines is 0");
    try {
        parse_vocabulary("a 0\n", vocab_format::jieba, "zero.txt");
        FAIL("no error");
    } catch (const vocabulary_file_error& e) {
        CHECK(std::string(e.what()).rfind("zero.txt:1: ", 0) == 0);
    }
}

TEST_CASE("CRLF line ends are accepted in every format (jieba strips the CR too)") {
    auto crlf = [](const std::string& lf) {
        std::string out;
        for (const char c : lf) out += c == '\n' ? std::string("\r\n") : std::string(1, c);
        return out;
    };
    const std::string jieba = "ab 5\ncd 3 n\n\xe5\xa4\xa9 2\n";
    const std::string spm =
        "<unk>\t0\n\xe2\x96\x81"
        "a\t-1.5\nb\t-2\n";
    const std::string native = header(6) + specials + "normal\t-1\tab\nbyte\t-9\t\\x0d\n";
    for (const auto& [lf, format] : {std::pair{jieba, vocab_format::jieba}, std::pair{spm, vocab_format::sentencepiece},
                                     std::pair{native, vocab_format::native}}) {
        INFO(lf);
        const loaded_vocabulary a = parse_vocabulary(lf, format), b = parse_vocabulary(crlf(lf), format);
        CHECK(a.vocab == b.vocab);
        // The last line without its LF, ending in a CR.
        const std::string cut = crlf(lf).substr(0, crlf(lf).size() - 1);
        CHECK(parse_vocabulary(cut, format).vocab == a.vocab);
    }
    // jieba's own reading of j2 = "ab 5\r\ncd 3\r\n": P(ab) = 5/8.
    const loaded_vocabulary j = parse_vocabulary("ab 5\r\ncd 3\r\n", vocab_format::jieba);
    CHECK(j.vocab[*j.vocab.find("ab")].score == std::log(5.0) - std::log(8.0));
    // An escaped CR inside a native piece stays a CR (it is written \r, never raw).
    const loaded_vocabulary r = parse_vocabulary(header(5) + specials + "normal\t-1\ta\\r\r\n", vocab_format::native);
    CHECK(r.vocab[4].text == "a\r");
}

TEST_CASE("a UTF-8 byte-order mark is skipped in every format, never glued to the first piece (issue 16)") {
    const std::string bom = "\xef\xbb\xbf";
    const std::string spm = "\xe2\x96\x81the\t-3.5\nth\t-4.25\n";
    const std::string jieba = "ab 5\ncd 3 n\n";
    const std::string native = header(5) + specials + "normal\t-1\tab\n";
    for (const auto& [text, format] :
         {std::pair{spm, vocab_format::sentencepiece}, std::pair{jieba, vocab_format::jieba},
          std::pair{native, vocab_format::native}}) {
        INFO(text);
        const loaded_vocabulary plain = parse_vocabulary(text, format), marked = parse_vocabulary(bom + text, format);
        CHECK(plain.vocab == marked.vocab);
        CHECK(plain.options.mode == marked.options.mode);
    }
    const loaded_vocabulary v = parse_vocabulary(bom + spm, vocab_format::sentencepiece);
    CHECK(v.vocab[0].text == " the");  // not "\xef\xbb\xbf the"
    // Only at the start of the file: elsewhere it is an ordinary character of a piece.
    const loaded_vocabulary mid = parse_vocabulary("a\t-1\n" + bom + "b\t-2\n", vocab_format::sentencepiece);
    CHECK(mid.vocab[1].text == bom + "b");
    // From a file, too.
    const auto dir = temp_dir();
    const std::string path = (dir / "bom.vocab").string();
    std::ofstream(path, std::ios::binary) << bom + spm;
    CHECK(exprgrad::text::load_vocabulary(path, vocab_format::sentencepiece).vocab[0].text == " the");
    std::filesystem::remove_all(dir);
}

TEST_CASE("unreadable paths, directories, NUL bytes, lines without tabs and huge lines: FILE[:LINE]: problem, short") {
    const auto dir = temp_dir();
    auto load_error = [](const std::string& path, vocab_format format) {
        try {
            exprgrad::text::load_vocabulary(path, format);
        } catch (const vocabulary_file_error& e) {
            return std::string(e.what());
        }
        return std::string("no exception");
    };
    // A directory: said so (it was called "empty file"), for every format.
    for (const auto format : {vocab_format::native, vocab_format::sentencepiece, vocab_format::jieba})
        CHECK(load_error(dir.string(), format) == dir.string() + ": is a directory, not a vocabulary file");
    // A path through a regular file, a missing file: the system's reason.
    const std::string file = (dir / "f.vocab").string();
    std::ofstream(file) << "a\t-1\n";
    CHECK(load_error(file + "/x", vocab_format::sentencepiece) == file + "/x: cannot open: Not a directory");
    CHECK(load_error((dir / "missing").string(), vocab_format::sentencepiece) ==
          (dir / "missing").string() + ": cannot open: No such file or directory");
    if (::geteuid() != 0) {  // root reads everything
        std::filesystem::permissions(file, std::filesystem::perms::none);
        CHECK(load_error(file, vocab_format::sentencepiece) == file + ": cannot open: Permission denied");
    }
    std::filesystem::remove_all(dir);
    // A device is read, but not without end: /dev/zero stops at its first NUL.
    CHECK(load_error("/dev/zero", vocab_format::sentencepiece).rfind("/dev/zero:1: NUL byte at column 1", 0) == 0);

    // NUL bytes (a binary file, UTF-16): named with line and column in every format.
    using namespace std::string_literals;
    expect_error("ab\t-1\nc\0d\t-2\n"s, vocab_format::sentencepiece, 2, "NUL byte at column 2");
    expect_error("ab 1\n\0"s, vocab_format::jieba, 2, "NUL byte at column 1");
    expect_error(header(5) + specials + "normal\t-1\ta\0b\n"s, vocab_format::native, 6, "NUL byte at column 12");
    expect_error(
        "\xff\xfe"
        "a\0\t\0"s,
        vocab_format::sentencepiece, 1, "UTF-16");  // UTF-16 with its BOM
    // Lines without tabs.
    expect_error("ab\t-1\nno tab here\n", vocab_format::sentencepiece, 2, "found no tab in 'no tab here'");
    expect_error(header(5) + specials + "normal -1 ab\n", vocab_format::native, 6, "found 1 in 'normal -1 ab'");
    // A bad 10 MB line: the message quotes at most ~60 characters of it and says how long it was.
    const std::string huge(10u << 20, 'x');
    for (const auto& [content, format, line] :
         {std::tuple{"ab\t-1\n" + huge + "\n", vocab_format::sentencepiece, 2},
          std::tuple{"ab\t" + huge + "\n", vocab_format::sentencepiece, 1},
          std::tuple{header(5) + specials + huge + "\t-1\tab\n", vocab_format::native, 6},
          std::tuple{header(5) + specials + "normal\t" + huge + "\tab\n", vocab_format::native, 6},
          std::tuple{header(5) + specials + huge + "\n", vocab_format::native, 6},
          std::tuple{"exprgrad-unigram\t" + huge + "\n", vocab_format::native, 1},
          std::tuple{"exprgrad-unigram\tversion=" + huge + "\n", vocab_format::native, 1},
          std::tuple{"exprgrad-unigram\tversion=1\tpieces=" + huge + "\n", vocab_format::native, 1},
          std::tuple{"exprgrad-unigram\t" + huge + "=1\n", vocab_format::native, 1},
          std::tuple{"a " + huge + "\n", vocab_format::jieba, 1}, std::tuple{huge + "\n", vocab_format::jieba, 1}}) {
        try {
            parse_vocabulary(content, format, "big.vocab");
            FAIL("no exception");
        } catch (const vocabulary_file_error& e) {
            const std::string m = e.what();
            INFO(m.substr(0, 300));
            CHECK(e.line() == static_cast<std::size_t>(line));
            CHECK(m.size() <= 300);
            CHECK(m.find("...' (") != std::string::npos);
            CHECK(m.find(" bytes)") != std::string::npos);
        }
    }
    // Control and stray bytes in a quoted field are written \xHH, never raw.
    expect_error(header(5) + specials + "nor\x01mal\t-1\tab\n", vocab_format::native, 6, "unknown kind 'nor\\x01mal'");
    expect_error("ab\t-1\xff\n", vocab_format::sentencepiece, 1, "score '-1\\xff' is not a finite number");
}

TEST_CASE("SentencePiece byte-fallback vocabulary: <0xHH> are byte pieces next to the normal '\u2581'") {
    // The layout of `spm_train --byte_fallback=true` exports: <unk> <s> </s>, then <0x00>..<0xFF> scored 0,
    // then the normal pieces, among them U+2581 (a space) next to <0x20>.
    std::string content = "<unk>\t0\n<s>\t0\n</s>\t0\n";
    char line[32];
    for (int b = 0; b < 256; ++b) {
        std::snprintf(line, sizeof line, "<0x%02X>\t0\n", b);
        content += line;
    }
    content += "\xe2\x96\x81\t-2.3\na\t-5\n";
    const loaded_vocabulary v = parse_vocabulary(content, vocab_format::sentencepiece);
    REQUIRE(v.vocab.size() == 3 + 256 + 2);
    CHECK(v.vocab[3 + 0x20].kind == piece_kind::byte);
    CHECK(v.vocab[3 + 0x20].text == " ");
    CHECK(v.vocab[3 + 256].kind == piece_kind::normal);
    CHECK(v.vocab[3 + 256].text == " ");
    CHECK(*v.vocab.find(" ") == 3 + 256);         // the normal piece
    CHECK(*v.vocab.find_byte(0x20) == 3 + 0x20);  // the byte piece
    CHECK(*v.vocab.find("\xe9") == 3 + 0xe9);     // no normal piece: the byte piece
    const unigram_model m(v.vocab, v.options);
    CHECK(m.spm_byte_fallback());
    CHECK(m.size() == v.vocab.size());  // nothing added: every byte has its piece
    // Still a duplicate within one kind.
    expect_error("<0x41>\t0\n<0x41>\t0\n", vocab_format::sentencepiece, 2, "duplicates byte piece 0");
}

TEST_CASE("piece format: the command-line contract") {
    CHECK(format_piece(" a") ==
          "\xe2\x96\x81"
          "a");
    CHECK(format_piece("\t\r\\") == "\\t\\r\\\\");
    CHECK(format_piece("\xe4\xbd\xa0") == "\xe4\xbd\xa0");  // valid UTF-8 as is
    CHECK(format_piece("\xe4\xbd") == "<0xE4><0xBD>");      // a split code point
    CHECK(format_piece("a\xff") == "a<0xFF>");
    const std::string text = "ab\xe2\x98\x83\xe2\x98\x83";
    const std::vector<piece_span> spans = {{0, 1, 5}, {1, 2, 6}, {2, 5, unknown_id}, {5, 8, unknown_id}};
    CHECK(format_segmentation(text, spans) == "a b \xe2\x98\x83 \xe2\x98\x83");
    CHECK(format_segmentation(text, spans, true) == "a b \xe2\x98\x83\xe2\x98\x83");
    CHECK(parse_pieces("\xe2\x96\x81"
                       "a\\tb <0xff> <0x4A>") == " a\tb\xffJ");
    CHECK(parse_pieces("<0x4G> <0x4") == "<0x4G><0x4");
    CHECK_THROWS_AS(parse_pieces("a\\"), std::invalid_argument);
    CHECK_THROWS_AS(parse_pieces("a\\x"), std::invalid_argument);
    // The byte after a bad backslash is shown as \xHH when it is not printable (issue 16).
    CHECK_THROWS_WITH_AS(parse_pieces("ab\\\x01"), "column 3: unknown escape '\\\\x01' (expected \\t, \\r, \\n or \\\\)",
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(parse_pieces("\\\xe5\xa4\xa9"), "column 1: unknown escape '\\\\xe5' (expected \\t, \\r, \\n or \\\\)",
                         std::invalid_argument);
    // An unknown format name is quoted short.
    try {
        exprgrad::text::parse_vocab_format(std::string(100000, 'z'));
        FAIL("no exception");
    } catch (const std::invalid_argument& e) {
        CHECK(std::string(e.what()).size() < 150);
        CHECK(std::string(e.what()).find("(100000 bytes)") != std::string::npos);
    }

    // parse_pieces inverts format_segmentation for any bytes and any segmentation.
    rng g(11);
    for (int trial = 0; trial < 2000; ++trial) {
        std::string s(g.next_u64() % 40, '\0');
        for (char& c : s)
            c = static_cast<char>(g.next_u64() % 3 == 0 ? "  \\\t\r<0x>"[g.next_u64() % 10] : g.next_u64());
        std::vector<piece_span> cut;
        for (std::uint32_t i = 0; i < s.size();) {
            const std::uint32_t len = 1 + static_cast<std::uint32_t>(g.next_u64() % 4);
            const std::uint32_t end = std::min<std::uint32_t>(static_cast<std::uint32_t>(s.size()), i + len);
            cut.push_back({i, end, 0});
            i = end;
        }
        const std::string line = format_segmentation(s, cut);
        if (line.find("<0x") != std::string::npos && s.find("<0x") != std::string::npos)
            continue;  // documented ambiguity
        CHECK(parse_pieces(line) == s);
        CHECK(line.find('\n') == std::string::npos);
    }
}

TEST_CASE("empty paths, a format outside the enum, and numbers in messages stay short (issue 16)") {
    auto message = [](auto&& f) {
        try {
            f();
        } catch (const std::exception& e) {
            return std::string(e.what());
        }
        return std::string("no exception");
    };
    // "" gave ": cannot open: ..." and ": cannot rename the temporary file over it"
    CHECK(message([] { exprgrad::text::load_vocabulary("", vocab_format::native); }) ==
          "load_vocabulary: empty path (no file name given)");
    CHECK(message([] { exprgrad::text::write_file_atomically("", "x"); }) ==
          "write_file_atomically: empty path (no file name given)");
    // vocab_format(7) was parsed as jieba
    const std::string jieba_text = "a 5\nb 6\n";
    CHECK(message([&] { exprgrad::text::parse_vocabulary(jieba_text, static_cast<vocab_format>(7)); }) ==
          "vocabulary format must be native, sentencepiece or jieba, got the value 7");
    CHECK(message([] { exprgrad::text::load_vocabulary("/nonexistent", static_cast<vocab_format>(-1)); }) ==
          "vocabulary format must be native, sentencepiece or jieba, got the value -1");
    // a score of 1e308 was printed with 309 digits, and the message cut before the limit
    const std::string big =
        message([] { exprgrad::text::parse_vocabulary("<unk>\t0\na\t1e308\n", vocab_format::sentencepiece); });
    CHECK(big.find("score 1e+308 is not a finite number in [-1e30, 1e30]") != std::string::npos);
    CHECK(big.size() < 200);
    // alpha beyond 1e200: "alpha = 1e+250 > 1e200", not 251 digits
    const auto v = exprgrad::text::parse_vocabulary("<unk>\t0\na\t-1\nb\t-2\n", vocab_format::sentencepiece);
    const exprgrad::text::unigram_model m(v.vocab, v.options);
    const std::string alpha = message([&] { m.analyze("ab", 1e250, false); });
    CHECK(alpha.find("alpha = 1e+250 > 1e200") != std::string::npos);
    CHECK(alpha.size() < 200);
}
