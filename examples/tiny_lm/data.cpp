#include "data.hpp"

#include "nn/file_io.hpp"

#include <exprgrad/kernels/parallel.hpp>

#include <sys/stat.h>

#include <cerrno>
#include <cstdint>
#include <fstream>
#include <stdexcept>
#include <string>
#include <system_error>

namespace tiny_lm {

namespace {

enum class line_read { line, end, too_long };

// One line without its '\n' into `line`, at most `cap` bytes (a longer one is not stored: too_long);
// `raw` counts every byte consumed. A last line without '\n' counts as a line.
line_read next_line(std::streambuf& in, std::string& line, std::size_t cap, std::size_t& raw) {
    line.clear();
    for (;;) {
        const int c = in.sbumpc();
        if (c == std::char_traits<char>::eof()) return line.empty() ? line_read::end : line_read::line;
        ++raw;
        if (c == '\n') return line_read::line;
        if (line.size() == cap) return line_read::too_long;
        line.push_back(static_cast<char>(c));
    }
}

}  // namespace

void load_corpus(const std::string& corpus_dir, std::size_t max_bytes, std::vector<std::string>& train,
                 std::vector<std::string>& held_out) {
    const std::string dir = "'" + corpus_dir + "'";
    // '' + "/work" would name the root's /work: an empty name is refused, not read from '/'.
    if (corpus_dir.empty())
        throw std::runtime_error("--corpus-dir '': empty; pass a directory of fortune files (e.g. /usr/share/games/fortunes)");
    // The kept bytes stop at max_bytes (as before); the raw bytes read (separators, blank lines, a line
    // longer than the cap) are bounded too, so /dev/zero-like content cannot grow memory or run forever.
    const std::size_t raw_limit = max_bytes > (SIZE_MAX - max_line_bytes) / 2 ? SIZE_MAX : 2 * max_bytes + max_line_bytes;
    std::size_t bytes = 0, fortune = 0, raw = 0;
    for (const char* name :
         {"fortunes",      "literature", "science", "wisdom",     "people",      "politics", "work",
          "computers",     "education",  "food",    "humorists",  "law",         "love",     "men-women",
          "miscellaneous", "news",       "pets",    "platitudes", "songs-poems", "sports"}) {
        if (bytes >= max_bytes || raw >= raw_limit) break;
        const std::string path = corpus_dir + "/" + name;
        // The type is checked before opening: a FIFO without a writer would block the open forever.
        struct stat st {};
        if (::stat(path.c_str(), &st) != 0) {
            if (errno == ENOENT) continue;  // the collection has fewer files: the others are read
            throw std::runtime_error("--corpus-dir " + dir + ": '" + path + "': cannot read it: " +
                                     std::error_code(errno, std::generic_category()).message());
        }
        if (!S_ISREG(st.st_mode))
            throw std::runtime_error("--corpus-dir " + dir + ": '" + path + "' " +
                                     exprgrad::detail::file_kind(st.st_mode) + ", not a regular file");
        std::ifstream in(path, std::ios::binary);
        if (!in)
            throw std::runtime_error("--corpus-dir " + dir + ": '" + path + "': cannot open it");
        std::string line;
        std::size_t line_no = 0;
        while (bytes < max_bytes && raw < raw_limit) {
            const line_read r = next_line(*in.rdbuf(), line, max_line_bytes, raw);
            if (r == line_read::end) break;
            ++line_no;
            if (r == line_read::too_long)
                throw std::runtime_error("--corpus-dir " + dir + ": '" + path + "' line " + std::to_string(line_no) +
                                         " is longer than " + std::to_string(max_line_bytes) +
                                         " bytes: not a fortunes text file");
            if (line == "%") {
                ++fortune;
                continue;
            }
            while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.pop_back();
            if (line.empty()) continue;
            bytes += line.size() + 1;
            (fortune % 20 == 0 ? held_out : train).push_back(line);
        }
        if (in.bad())
            throw std::runtime_error("--corpus-dir " + dir + ": '" + path + "': read error");
    }
    if (train.size() < 100 || held_out.size() < 10) {
        std::string why = "--corpus-dir " + dir + ": " + std::to_string(train.size()) + " training and " +
                          std::to_string(held_out.size()) +
                          " held-out lines in the fortunes files (need at least 100 and 10); ";
        if (bytes >= max_bytes || raw >= raw_limit)
            why += "--max-corpus " + std::to_string(max_bytes) + " stopped the reading after " + std::to_string(raw) +
                   " bytes: raise it";
        else
            why += "install the Debian package 'fortunes', or pass --corpus-dir a directory of fortune files";
        throw std::runtime_error(why);
    }
}

namespace {

// Sequence b of a batch: a crop of the stream [eos] line line ... starting anywhere in the first line, so
// that position 0 is as often mid-line as in the held-out windows.
void draw_sequence(const exprgrad::text::unigram_model& tok, const std::vector<std::string>& lines, std::size_t b,
                   std::size_t T, double alpha, exprgrad::rng& data, exprgrad::rng& sampler,
                   std::vector<std::int32_t>& s, xt::xarray<std::int32_t>& tokens, xt::xarray<std::int32_t>& targets,
                   std::size_t& bytes) {
    s.assign(1, eos);
    std::size_t offset = 0;
    bool drawn = false;
    for (std::size_t r = data.below(lines.size()); s.size() < offset + T + 1; r = (r + 1) % lines.size()) {
        for (exprgrad::text::piece_id id : tok.sample(lines[r], alpha, sampler)) s.push_back(id);
        s.push_back(eos);
        bytes += lines[r].size() + 1;
        if (!drawn) {
            offset = data.below(s.size() - 1);
            drawn = true;
        }
    }
    for (std::size_t t = 0; t < T; ++t) {
        tokens(b, t) = s[offset + t];
        targets(b, t) = s[offset + t + 1];
    }
}

std::uint64_t splitmix64(std::uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

}  // namespace

void make_batch(const exprgrad::text::unigram_model& tok, const std::vector<std::string>& lines, std::size_t B,
                std::size_t T, double alpha, exprgrad::rng& data, exprgrad::rng& sampler,
                xt::xarray<std::int32_t>& tokens, xt::xarray<std::int32_t>& targets, std::size_t& bytes) {
    tokens.resize({B, T});
    targets.resize({B, T});
    std::vector<std::int32_t> s;
    for (std::size_t b = 0; b < B; ++b) draw_sequence(tok, lines, b, T, alpha, data, sampler, s, tokens, targets, bytes);
}

std::uint64_t sequence_seed(const exprgrad::rng& key, std::uint64_t index) {
    std::uint64_t h = splitmix64(index);
    for (const std::uint64_t w : key.state()) h = splitmix64(h ^ w);
    return h;
}

void make_sequences(const exprgrad::text::unigram_model& tok, const std::vector<std::string>& lines,
                    std::uint64_t first, std::size_t count, std::size_t T, double alpha, const exprgrad::rng& data,
                    const exprgrad::rng& sampler, xt::xarray<std::int32_t>& tokens,
                    xt::xarray<std::int32_t>& targets, std::size_t& bytes) {
    tokens.resize({count, T});
    targets.resize({count, T});
    // The sequences are independent (each its own generators, its own rows): drawn on the thread pool, one
    // chunk of sequences per thread; the byte counts are whole numbers, so their sum is the same in any order.
    std::vector<std::size_t> chunk_bytes(count, 0);
    exprgrad::kernels::parallel_for(0, count, 1, [&](std::size_t lo, std::size_t hi) {
        std::vector<std::int32_t> s;
        for (std::size_t b = lo; b < hi; ++b) {
            exprgrad::rng d(sequence_seed(data, first + b)), m(sequence_seed(sampler, first + b));
            draw_sequence(tok, lines, b, T, alpha, d, m, s, tokens, targets, chunk_bytes[b]);
        }
    });
    for (const std::size_t n : chunk_bytes) bytes += n;
}

}  // namespace tiny_lm
