// Vocabulary file formats (include/exprgrad/text/vocab_io.hpp).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exprgrad/text/utf8.hpp>
#include <exprgrad/text/vocab_io.hpp>
#include <fstream>
#include <sstream>
#include <unordered_map>
#include <vector>

namespace exprgrad::text {

namespace {

constexpr std::string_view native_magic = "exprgrad-unigram";
constexpr std::string_view u2581 = "\xe2\x96\x81";

// Splits content into lines (LF); a final LF does not start an empty last line. One CR before each line end
// is dropped, so CRLF files read like LF files (jieba strips it too; no format has a meaningful raw CR at a
// line end: the native format escapes CR in pieces, and the last field of the other formats is a number or
// a tag).
std::vector<std::string_view> split_lines(std::string_view content) {
    std::vector<std::string_view> lines;
    std::size_t start = 0;
    auto push = [&](std::string_view line) {
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        lines.push_back(line);
    };
    while (start < content.size()) {
        const std::size_t end = content.find('\n', start);
        if (end == std::string_view::npos) {
            push(content.substr(start));
            break;
        }
        push(content.substr(start, end - start));
        start = end + 1;
    }
    return lines;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
    std::vector<std::string_view> out;
    std::size_t start = 0;
    for (;;) {
        const std::size_t end = s.find(sep, start);
        if (end == std::string_view::npos) {
            out.push_back(s.substr(start));
            return out;
        }
        out.push_back(s.substr(start, end - start));
        start = end + 1;
    }
}

// A field of the file, quoted for an error message: printable ASCII and well-formed UTF-8 as is, other bytes
// (controls, NUL, stray bytes) as \xHH, at most about 60 characters; a longer field ends in "..." and its size,
// so a 10 MB line never ends up whole in a message.
std::string quote(std::string_view field) {
    static constexpr char hex[] = "0123456789abcdef";
    constexpr std::size_t limit = 60;
    std::string out = "'";
    std::size_t i = 0;
    while (i < field.size() && out.size() < limit + 1) {
        const std::size_t len = utf8_sequence_length(field, i);
        const auto b = static_cast<unsigned char>(field[i]);
        if (len > 1) {
            out.append(field.substr(i, len));
            i += len;
            continue;
        }
        if (len == 0 || b < 0x20 || b == 0x7F || b == '\\' || b == '\'') {
            out += "\\x";
            out += hex[b >> 4];
            out += hex[b & 15];
        } else {
            out += static_cast<char>(b);
        }
        ++i;
    }
    out += '\'';
    if (i < field.size()) out.insert(out.size() - 1, "...").append(" (" + std::to_string(field.size()) + " bytes)");
    return out;
}

// A finite double written in full (no leading/trailing junk). strtod accepts what %.17g prints.
bool parse_double(std::string_view s, double& out) {
    if (s.empty() || s.size() > 64) return false;
    const std::string copy(s);
    char* end = nullptr;
    errno = 0;
    out = std::strtod(copy.c_str(), &end);
    if (end != copy.c_str() + copy.size()) return false;
    if (std::isspace(static_cast<unsigned char>(copy[0]))) return false;
    return std::isfinite(out);
}

std::string escape_native(std::string_view bytes) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    for (std::size_t i = 0; i < bytes.size();) {
        const std::size_t len = utf8_sequence_length(bytes, i);
        const auto b = static_cast<unsigned char>(bytes[i]);
        if (len > 1) {
            out.append(bytes.substr(i, len));
            i += len;
            continue;
        }
        if (b == '\\') {
            out += "\\\\";
        } else if (b == '\t') {
            out += "\\t";
        } else if (b == '\n') {
            out += "\\n";
        } else if (b == '\r') {
            out += "\\r";
        } else if (len == 0 || b < 0x20 || b == 0x7F) {
            out += "\\x";
            out += hex[b >> 4];
            out += hex[b & 15];
        } else {
            out += static_cast<char>(b);
        }
        ++i;
    }
    return out;
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Inverse of escape_native; returns the problem, or an empty string.
std::string unescape_native(std::string_view s, std::string& out) {
    out.clear();
    for (std::size_t i = 0; i < s.size(); ++i) {
        const auto b = static_cast<unsigned char>(s[i]);
        if (b < 0x20 || b == 0x7F) {
            return "unescaped control byte 0x" + std::string(1, "0123456789abcdef"[b >> 4]) +
                   std::string(1, "0123456789abcdef"[b & 15]) + " in the piece (write it as \\xHH)";
        }
        if (b != '\\') {
            out += s[i];
            continue;
        }
        if (i + 1 >= s.size()) return "backslash at the end of the piece";
        const char e = s[++i];
        if (e == '\\') {
            out += '\\';
        } else if (e == 't') {
            out += '\t';
        } else if (e == 'n') {
            out += '\n';
        } else if (e == 'r') {
            out += '\r';
        } else if (e == 'x') {
            if (i + 2 >= s.size() || hex_digit(s[i + 1]) < 0 || hex_digit(s[i + 2]) < 0) {
                return "\\x must be followed by two hex digits";
            }
            out += static_cast<char>(hex_digit(s[i + 1]) * 16 + hex_digit(s[i + 2]));
            i += 2;
        } else {
            return "unknown escape '\\" + std::string(1, e) + "'";
        }
    }
    return {};
}

std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
    std::string out;
    for (std::size_t i = 0; i < s.size();) {
        if (s.substr(i, from.size()) == from) {
            out += to;
            i += from.size();
        } else {
            out += s[i++];
        }
    }
    return out;
}

loaded_vocabulary parse_native(std::string_view content, const std::string& name) {
    const auto lines = split_lines(content);
    auto fail = [&](std::size_t line, const std::string& problem) -> vocabulary_file_error {
        return vocabulary_file_error(name, line, problem);
    };
    if (lines.empty()) throw fail(1, "empty file: expected the header 'exprgrad-unigram<TAB>version=1<TAB>...'");
    const auto header = split(lines[0], '\t');
    if (header[0] != native_magic) {
        throw fail(1, "not an exprgrad unigram vocabulary (the first field must be 'exprgrad-unigram')");
    }
    std::size_t pieces = 0;
    bool have_version = false, have_pieces = false;
    loaded_vocabulary out;
    for (std::size_t k = 1; k < header.size(); ++k) {
        const std::string_view field = header[k];
        const std::size_t eq = field.find('=');
        if (eq == std::string_view::npos) throw fail(1, "header field " + quote(field) + " is not key=value");
        const std::string_view key = field.substr(0, eq), value = field.substr(eq + 1);
        if (key == "version") {
            if (value != "1") throw fail(1, "unsupported version " + quote(value) + " (this reader knows 1)");
            have_version = true;
        } else if (key == "pieces") {
            const auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), pieces);
            if (ec != std::errc() || ptr != value.data() + value.size() || value.empty() || pieces > 0x7FFFFFFF) {
                throw fail(1, "pieces=" + quote(value) + " is not a count");
            }
            have_pieces = true;
        } else if (key == "utf8_boundaries") {
            if (value != "0" && value != "1") throw fail(1, "utf8_boundaries must be 0 or 1");
            out.options.utf8_boundaries = value == "1";
        } else {
            throw fail(1, "unknown header field " + quote(key));
        }
    }
    if (!have_version) throw fail(1, "the header has no version=");
    if (!have_pieces) throw fail(1, "the header has no pieces=");
    if (lines.size() - 1 != pieces) {
        throw fail(lines.size() < pieces + 1 ? lines.size() + 1 : pieces + 2,
                   "the header announces " + std::to_string(pieces) + " pieces, the file has " +
                       std::to_string(lines.size() - 1) + " lines after it");
    }
    std::string text;
    for (std::size_t i = 1; i < lines.size(); ++i) {
        const auto fields = split(lines[i], '\t');
        if (fields.size() != 3) {
            throw fail(i + 1, "expected 3 tab-separated fields (kind, score, piece), found " +
                                  std::to_string(fields.size()) + " in " + quote(lines[i]));
        }
        piece_kind kind;
        if (fields[0] == "normal") {
            kind = piece_kind::normal;
        } else if (fields[0] == "control") {
            kind = piece_kind::control;
        } else if (fields[0] == "byte") {
            kind = piece_kind::byte;
        } else {
            throw fail(i + 1, "unknown kind " + quote(fields[0]) + " (normal, control or byte)");
        }
        double score;
        if (!parse_double(fields[1], score))
            throw fail(i + 1, "score " + quote(fields[1]) + " is not a finite number");
        const std::string problem = unescape_native(fields[2], text);
        if (!problem.empty()) throw fail(i + 1, problem);
        const std::size_t id = i - 1;
        if (id < 4 && (kind != piece_kind::control || text != special_names[id])) {
            throw fail(i + 1, "id " + std::to_string(id) + " is reserved for the control piece " +
                                  std::string(special_names[id]));
        }
        try {
            out.vocab.add(text, score, kind);
        } catch (const std::invalid_argument& e) {
            throw fail(i + 1, e.what());
        }
    }
    if (pieces < 4) throw fail(pieces + 2, "a native vocabulary starts with the 4 reserved control pieces");
    return out;
}

loaded_vocabulary parse_spm(std::string_view content, const std::string& name) {
    const auto lines = split_lines(content);
    loaded_vocabulary out;
    out.options.mode = mode::sentencepiece;
    if (lines.empty()) throw vocabulary_file_error(name, 1, "empty file: no pieces");
    for (std::size_t i = 0; i < lines.size(); ++i) {
        const auto fields = split(lines[i], '\t');
        if (fields.size() != 2) {
            throw vocabulary_file_error(
                name, i + 1,
                "expected 'piece<TAB>score', found " +
                    (fields.size() == 1 ? std::string("no tab")
                                        : std::to_string(fields.size()) + " tab-separated fields") +
                    " in " + quote(lines[i]));
        }
        double score;
        if (!parse_double(fields[1], score)) {
            throw vocabulary_file_error(name, i + 1, "score " + quote(fields[1]) + " is not a finite number");
        }
        const std::string_view piece = fields[0];
        if (piece.empty()) throw vocabulary_file_error(name, i + 1, "empty piece");
        piece_kind kind = piece_kind::normal;
        std::string text;
        if (piece == "<unk>" || piece == "<s>" || piece == "</s>" || piece == "<pad>" || piece == "<mask>") {
            kind = piece_kind::control;
            text = piece;
        } else if (piece.size() == 6 && piece.substr(0, 3) == "<0x" && piece[5] == '>' && hex_digit(piece[3]) >= 0 &&
                   hex_digit(piece[4]) >= 0) {
            kind = piece_kind::byte;
            text = std::string(1, static_cast<char>(hex_digit(piece[3]) * 16 + hex_digit(piece[4])));
        } else {
            if (!is_valid_utf8(piece)) throw vocabulary_file_error(name, i + 1, "piece is not valid UTF-8");
            text = replace_all(piece, u2581, " ");
        }
        try {
            out.vocab.add(std::move(text), score, kind);
        } catch (const std::invalid_argument& e) {
            throw vocabulary_file_error(name, i + 1, e.what());
        }
    }
    return out;
}

loaded_vocabulary parse_jieba(std::string_view content, const std::string& name) {
    const auto lines = split_lines(content);
    if (lines.empty()) throw vocabulary_file_error(name, 1, "empty file: no words");
    struct word_entry {
        double freq;
        std::size_t order;
    };
    std::unordered_map<std::string, word_entry> words;
    std::vector<std::string> order;
    double total = 0;
    for (std::size_t i = 0; i < lines.size(); ++i) {
        const std::string_view line = lines[i];
        const auto fields = split(line, ' ');
        if (fields.size() < 2 || fields.size() > 3) {
            throw vocabulary_file_error(name, i + 1,
                                        "expected 'word freq [tag]' separated by single spaces, found " +
                                            std::to_string(fields.size()) + " fields in " + quote(line));
        }
        if (fields[0].empty()) throw vocabulary_file_error(name, i + 1, "empty word");
        if (!is_valid_utf8(fields[0])) throw vocabulary_file_error(name, i + 1, "word is not valid UTF-8");
        for (const char c : fields[0]) {
            if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) {
                throw vocabulary_file_error(name, i + 1, "control byte in the word");
            }
        }
        std::uint64_t freq = 0;
        const std::string_view f = fields[1];
        const auto [ptr, ec] = std::from_chars(f.data(), f.data() + f.size(), freq);
        if (f.empty() || ec != std::errc() || ptr != f.data() + f.size() || freq > (std::uint64_t{1} << 53)) {
            throw vocabulary_file_error(name, i + 1, "frequency " + quote(f) + " is not an integer in [0, 2^53]");
        }
        if (fields.size() == 3 && fields[2].empty()) throw vocabulary_file_error(name, i + 1, "empty tag");
        total += static_cast<double>(freq);
        const std::string word(fields[0]);
        const auto it = words.find(word);
        if (it == words.end()) {
            words.emplace(word, word_entry{static_cast<double>(freq), order.size()});
            order.push_back(word);
        } else {
            it->second.freq = static_cast<double>(freq);
        }
    }
    if (!(total > 0)) {
        throw vocabulary_file_error(name, lines.size(),
                                    "the total frequency of the " + std::to_string(lines.size()) +
                                        " lines is 0 (every word has frequency 0): jieba's probabilities "
                                        "freq / total are undefined");
    }
    loaded_vocabulary out;
    out.vocab = vocabulary::with_specials();
    out.options.mode = mode::jieba;
    // Computed as jieba does: log(freq) − log(total), and log(1) − log(total) for unknown characters.
    const double log_total = std::log(total);
    out.options.unknown_score = 0.0 - log_total;
    for (const std::string& word : order) {
        const double freq = words.at(word).freq;
        if (freq == 0) continue;
        out.vocab.add(word, std::log(freq) - log_total);
    }
    return out;
}

}  // namespace

vocabulary_file_error::vocabulary_file_error(std::string file, std::size_t line, std::string problem)
    : std::runtime_error(file + (line > 0 ? ":" + std::to_string(line) : std::string()) + ": " + problem),
      file_(std::move(file)),
      line_(line),
      problem_(std::move(problem)) {}

// A vocab_format outside the enum (a cast integer) was read as jieba.
static std::invalid_argument bad_format(vocab_format format) {
    return std::invalid_argument("vocabulary format must be native, sentencepiece or jieba, got the value " +
                                 std::to_string(static_cast<int>(format)));
}

vocab_format parse_vocab_format(std::string_view name) {
    if (name == "native") return vocab_format::native;
    if (name == "spm" || name == "sentencepiece") return vocab_format::sentencepiece;
    if (name == "jieba") return vocab_format::jieba;
    throw std::invalid_argument("unknown vocabulary format " + quote(name) + " (native, spm or jieba)");
}

loaded_vocabulary parse_vocabulary(std::string_view content, vocab_format format, std::string_view name) {
    const std::string n(name);
    // A NUL byte is never part of a vocabulary's text (native escapes it as \x00): it means a binary file, or
    // UTF-16 text. One memchr over the content.
    if (const std::size_t nul = content.find('\0'); nul != std::string_view::npos) {
        const std::size_t lf = content.rfind('\n', nul);
        const std::size_t line_start = lf == std::string_view::npos ? 0 : lf + 1;
        const auto line = 1 + static_cast<std::size_t>(std::count(content.begin(), content.begin() + nul, '\n'));
        throw vocabulary_file_error(n, line,
                                    "NUL byte at column " + std::to_string(nul - line_start + 1) +
                                        " (a vocabulary is UTF-8 text: a binary file, or UTF-16?)");
    }
    // A UTF-8 byte-order mark (as Windows editors write) is not part of the first line, in every format.
    if (content.substr(0, 3) == "\xef\xbb\xbf") content.remove_prefix(3);
    switch (format) {
        case vocab_format::native:
            return parse_native(content, n);
        case vocab_format::sentencepiece:
            return parse_spm(content, n);
        case vocab_format::jieba:
            return parse_jieba(content, n);
    }
    throw bad_format(format);
}

loaded_vocabulary load_vocabulary(const std::string& path, vocab_format format) {
    if (path.empty()) throw std::invalid_argument("load_vocabulary: empty path (no file name given)");
    if (format != vocab_format::native && format != vocab_format::sentencepiece && format != vocab_format::jieba)
        throw bad_format(format);
    // POSIX calls rather than ifstream: a directory opens as a stream and reads as empty (it was reported as an
    // "empty file"), and errno after a failed ifstream is not reliable.
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw vocabulary_file_error(path, 0, std::string("cannot open: ") + std::strerror(errno));
    struct fd_closer {
        int fd;
        ~fd_closer() { ::close(fd); }
    } closer{fd};
    struct stat st {};
    if (::fstat(fd, &st) != 0)
        throw vocabulary_file_error(path, 0, std::string("cannot stat: ") + std::strerror(errno));
    if (S_ISDIR(st.st_mode)) throw vocabulary_file_error(path, 0, "is a directory, not a vocabulary file");
    // Devices and pipes are read too (process substitution), but never without end: /dev/zero stops at its
    // first chunk (a NUL, which parse_vocabulary reports with its line), an endless text stream at the cap.
    constexpr std::size_t max_bytes = std::size_t{1} << 30;
    const auto too_big = [&] {
        return vocabulary_file_error(path, 0,
                                     "larger than 1 GiB: not a vocabulary file (a device or an endless stream?)");
    };
    if (S_ISREG(st.st_mode) && static_cast<std::uint64_t>(st.st_size) > max_bytes) throw too_big();
    std::string content;
    if (S_ISREG(st.st_mode)) content.reserve(static_cast<std::size_t>(st.st_size));
    char buffer[1 << 16];
    for (;;) {
        const ssize_t got = ::read(fd, buffer, sizeof buffer);
        if (got < 0) {
            if (errno == EINTR) continue;
            throw vocabulary_file_error(path, 0, std::string("read error: ") + std::strerror(errno));
        }
        if (got == 0) break;
        content.append(buffer, static_cast<std::size_t>(got));
        if (std::memchr(buffer, 0, static_cast<std::size_t>(got))) break;  // an error at that line, whatever follows
        if (content.size() > max_bytes) throw too_big();
    }
    return parse_vocabulary(content, format, path);
}

unigram_model load_model(const std::string& path, vocab_format format) {
    loaded_vocabulary loaded = load_vocabulary(path, format);
    return unigram_model(std::move(loaded.vocab), loaded.options);
}

std::string format_native(const vocabulary& vocab, const model_options& options) {
    if (!vocab.has_reserved_specials()) {
        throw std::invalid_argument("format_native: ids 0-3 must be the control pieces <pad> <bos> <eos> <mask>");
    }
    std::string out(native_magic);
    out += "\tversion=1\tpieces=" + std::to_string(vocab.size()) +
           "\tutf8_boundaries=" + (options.utf8_boundaries ? "1" : "0") + "\n";
    char number[40];
    for (const piece& p : vocab.pieces()) {
        out += p.kind == piece_kind::normal ? "normal" : p.kind == piece_kind::control ? "control" : "byte";
        out += '\t';
        std::snprintf(number, sizeof number, "%.17g", p.score);
        out += number;
        out += '\t';
        out += escape_native(p.text);
        out += '\n';
    }
    return out;
}

void save_native(const std::string& path, const vocabulary& vocab, const model_options& options) {
    write_file_atomically(path, format_native(vocab, options));
}

// write_file_atomically is defined with the project's other writers, in src/nn/file_io.cpp.

}  // namespace exprgrad::text
