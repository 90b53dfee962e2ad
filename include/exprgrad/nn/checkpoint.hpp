// Checkpoints: a directory holding the parameters as .npy files, the optimizer state, the schedule state,
// the generator states and a versioned manifest; written atomically, loaded with full validation.
//
//   nn::save_checkpoint("run/ckpt", params, {.opt = &opt, .sched = &sched, .generators = {{"data", &gen}}});
//   nn::load_checkpoint("run/ckpt", params, {.opt = &opt, .sched = &sched, .generators = {{"data", &gen}}});
//
// Directory layout (format version 1; docs/nn.md has the full description):
//
//   <dir>/manifest.txt                    the manifest (below), written last
//   <dir>/params/<name>.npy               one per parameter, NumPy format 1.0, '<f4' or '<f8', C order
//   <dir>/optimizer/<buffer>/<name>.npy   optimizer buffers (exp_avg, exp_avg_sq, momentum_buffer)
//
// The manifest is ASCII text, one record per line, fields separated by single spaces, '\n' line ends:
//
//   exprgrad-checkpoint 1                 first line: magic and format version
//   dtype float32                         float32 or float64: the type of every array
//   parameter <name> [d0,d1,...]          one per parameter, in insertion order ([] for a 0-d array)
//   optimizer <kind>                      optional block: sgd, adam or adamw
//   optimizer.step <t>
//   optimizer.hyper <name> <value>        every hyperparameter, lr first
//   optimizer.buffer <name>               buffer names, in order
//   optimizer.param <name>                parameters the buffers belong to (absent before the first step)
//   schedule <kind>                       optional block
//   schedule.step <s>
//   schedule.hyper <name> <value>
//   rng <name> <w0> <w1> <w2> <w3>        generator state: four 64-bit words, 16 hex digits each
//   end                                   last line: proves the manifest is complete
//
// Numbers are exact: integers in decimal, doubles in the shortest decimal form that reads back to the
// same bits (std::to_chars / std::from_chars, independent of the locale).
//
// Atomicity: save_checkpoint writes everything into a fresh sibling directory `<dir>.tmp-XXXXXX`
// (mkdtemp), fsyncs every file and directory, then moves it into place:
//  - if <dir> does not exist: rename(tmp, dir), one atomic step;
//  - if <dir> exists (and is a checkpoint or an empty directory; anything else is refused): on Linux,
//    renameat2(RENAME_EXCHANGE) swaps the two directories in one atomic step and the old one (now under
//    the tmp name) is removed; where the exchange is unsupported, the old checkpoint is renamed to
//    `<dir>.old-XXXXXX`, the new one renamed to <dir>, and the old one removed. In that fallback a crash
//    between the two renames leaves no <dir>, but a complete old checkpoint at <dir>.old-XXXXXX and a
//    complete new one at <dir>.tmp-XXXXXX (POSIX has no atomic replacement of a non-empty directory);
// then the parent directory is fsynced. So <dir> never names a half-written checkpoint. A crash can
// leave stale `<dir>.tmp-*` / `<dir>.old-*` directories behind; they are never read and may be deleted.
// One writer per directory at a time.
//
// Loading opens the directory once and reads every file relative to it, so a concurrent save that
// replaces the directory cannot mix two checkpoints. Everything is validated before anything is changed:
// a missing or unreadable file, a malformed manifest line, an unknown version, a dtype or shape that does
// not match, a truncated or malformed .npy file, parameters or generators that do not match the ones
// passed, or an optimizer/schedule state that the given objects refuse, throws nn::checkpoint_error
// naming the file (and the manifest line) and the problem, and leaves params, optimizer, schedule and
// generators untouched. Gradients are not saved; loading leaves them as they are.
#pragma once

#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xtensor/xarray.hpp>
// GCC 12 reports false -Wmaybe-uninitialized positives inside std::regex (used by xnpy.hpp) at -O1
// with sanitizers, which -Werror turns into errors; the warnings are in libstdc++, not here.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <xtensor/xnpy.hpp>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#include "exprgrad/nn/optimizer.hpp"
#include "exprgrad/nn/parameters.hpp"
#include "exprgrad/nn/schedule.hpp"
#include "exprgrad/random.hpp"

namespace exprgrad::nn {

/// The checkpoint format version this code writes and the only one it reads.
inline constexpr int checkpoint_format_version = 1;

/// Thrown by save_checkpoint and load_checkpoint. what() is "<file>:<line>: <problem>" (":<line>" only
/// for manifest lines).
class checkpoint_error : public std::runtime_error {
  public:
    checkpoint_error(std::filesystem::path file, std::size_t line, const std::string& problem)
        : std::runtime_error(file.string() + (line ? ":" + std::to_string(line) : std::string()) + ": " + problem),
          file_(std::move(file)),
          line_(line),
          problem_(problem) {}

    /// The file (or directory) the problem is in.
    const std::filesystem::path& file() const noexcept { return file_; }
    /// The 1-based manifest line, or 0.
    std::size_t line() const noexcept { return line_; }
    /// The problem, without the location.
    const std::string& problem() const noexcept { return problem_; }

  private:
    std::filesystem::path file_;
    std::size_t line_;
    std::string problem_;
};

/// What a checkpoint holds besides the parameters. Null pointers and an empty list are skipped: saving
/// writes only what is given; loading restores only what is given (and throws if the checkpoint lacks
/// it), ignoring what the checkpoint has beyond it.
template <parameter_value T>
struct checkpoint_items {
    optimizer<T>* opt = nullptr;
    lr_schedule* sched = nullptr;
    std::vector<std::pair<std::string, rng*>> generators;  ///< (name, generator); names as parameter names
};

namespace detail {

namespace fs = std::filesystem;

inline std::string errno_text(int e) { return std::error_code(e, std::generic_category()).message(); }

template <parameter_value T>
constexpr const char* dtype_name() {
    return std::is_same_v<T, float> ? "float32" : "float64";
}
template <parameter_value T>
constexpr const char* npy_descr() {
    return std::is_same_v<T, float> ? "<f4" : "<f8";
}

template <class S>
std::string manifest_shape(const S& shape) {
    std::string s = "[";
    for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
    return s + "]";
}

inline std::string format_double(double v) {
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, r.ptr);
}

inline std::string format_hex64(std::uint64_t v) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
    return buf;
}

// ---- files: write with fsync, read relative to an open directory ----

class fd_guard {
  public:
    explicit fd_guard(int fd) : fd_(fd) {}
    fd_guard(const fd_guard&) = delete;
    fd_guard& operator=(const fd_guard&) = delete;
    ~fd_guard() {
        if (fd_ >= 0) ::close(fd_);
    }
    int get() const noexcept { return fd_; }
    // Closes now and reports the error of close (a deferred write error shows up there).
    int close_checked() noexcept {
        const int r = ::close(fd_);
        fd_ = -1;
        return r;
    }

  private:
    int fd_;
};

inline void write_file_synced(const fs::path& path, std::string_view bytes) {
    fd_guard fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (fd.get() < 0) throw checkpoint_error(path, 0, "cannot create file: " + errno_text(errno));
    std::size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t w = ::write(fd.get(), bytes.data() + done, bytes.size() - done);
        if (w < 0) {
            if (errno == EINTR) continue;
            throw checkpoint_error(path, 0, "cannot write file: " + errno_text(errno));
        }
        done += static_cast<std::size_t>(w);
    }
    if (::fsync(fd.get()) != 0) throw checkpoint_error(path, 0, "cannot fsync file: " + errno_text(errno));
    if (fd.close_checked() != 0) throw checkpoint_error(path, 0, "cannot close file: " + errno_text(errno));
}

inline void make_dir(const fs::path& path) {
    if (::mkdir(path.c_str(), 0755) != 0)
        throw checkpoint_error(path, 0, "cannot create directory: " + errno_text(errno));
}

// Makes a directory's entries durable. EINVAL means the file system cannot sync directories: nothing to do.
inline void fsync_dir(const fs::path& path) {
    fd_guard fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd.get() < 0) throw checkpoint_error(path, 0, "cannot open directory: " + errno_text(errno));
    if (::fsync(fd.get()) != 0 && errno != EINVAL)
        throw checkpoint_error(path, 0, "cannot fsync directory: " + errno_text(errno));
}

// Reads a whole regular file given relative to the open directory `dirfd`; `shown` is the path used in
// messages.
inline std::string read_file_at(int dirfd, const std::string& rel, const fs::path& shown) {
    fd_guard fd(::openat(dirfd, rel.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) {
        const int e = errno;
        throw checkpoint_error(shown, 0,
                               e == ENOENT ? std::string("missing file") : "cannot open file: " + errno_text(e));
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) throw checkpoint_error(shown, 0, "cannot stat file: " + errno_text(errno));
    if (!S_ISREG(st.st_mode)) throw checkpoint_error(shown, 0, "not a regular file");
    std::string bytes(static_cast<std::size_t>(st.st_size), '\0');
    std::size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t r = ::read(fd.get(), bytes.data() + done, bytes.size() - done);
        if (r < 0) {
            if (errno == EINTR) continue;
            throw checkpoint_error(shown, 0, "cannot read file: " + errno_text(errno));
        }
        if (r == 0) break;
        done += static_cast<std::size_t>(r);
    }
    if (done != bytes.size()) throw checkpoint_error(shown, 0, "file shrank while being read");
    return bytes;
}

// ---- npy: a strict header reader, then xtensor's loader ----

struct npy_header {
    std::string descr;
    bool fortran_order = false;
    std::vector<std::size_t> shape;
    std::size_t data_offset = 0;
};

class npy_parser {
  public:
    npy_parser(std::string_view text, const fs::path& file) : s_(text), file_(file) {}

    // Parses "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }" followed by spaces and '\n'.
    void parse(npy_header& h) {
        bool seen_descr = false, seen_fortran = false, seen_shape = false;
        ws();
        expect('{');
        for (;;) {
            ws();
            if (peek() == '}') break;
            const std::string key = quoted();
            ws();
            expect(':');
            ws();
            if (key == "descr") {
                h.descr = quoted();
                seen_descr = true;
            } else if (key == "fortran_order") {
                if (word("True"))
                    h.fortran_order = true;
                else if (word("False"))
                    h.fortran_order = false;
                else
                    fail("fortran_order is neither True nor False");
                seen_fortran = true;
            } else if (key == "shape") {
                h.shape = tuple();
                seen_shape = true;
            } else {
                fail("unexpected header key '" + key + "'");
            }
            ws();
            if (peek() == ',') {
                ++i_;
                continue;
            }
            ws();
            if (peek() != '}') fail("expected ',' or '}' in the header");
        }
        ++i_;
        while (i_ < s_.size() && s_[i_] == ' ') ++i_;
        if (i_ + 1 != s_.size() || s_[i_] != '\n') fail("the header does not end with a newline after the dictionary");
        if (!seen_descr) fail("the header has no 'descr'");
        if (!seen_fortran) fail("the header has no 'fortran_order'");
        if (!seen_shape) fail("the header has no 'shape'");
    }

  private:
    [[noreturn]] void fail(const std::string& what) const {
        throw checkpoint_error(file_, 0, "malformed .npy header: " + what);
    }
    char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
    void ws() {
        while (i_ < s_.size() && s_[i_] == ' ') ++i_;
    }
    void expect(char c) {
        if (peek() != c) fail(std::string("expected '") + c + "'");
        ++i_;
    }
    bool word(std::string_view w) {
        if (s_.substr(i_, w.size()) != w) return false;
        i_ += w.size();
        return true;
    }
    std::string quoted() {
        const char q = peek();
        if (q != '\'' && q != '"') fail("expected a quoted string");
        const std::size_t end = s_.find(q, i_ + 1);
        if (end == std::string_view::npos) fail("unterminated string");
        std::string out(s_.substr(i_ + 1, end - i_ - 1));
        i_ = end + 1;
        return out;
    }
    std::vector<std::size_t> tuple() {
        std::vector<std::size_t> dims;
        expect('(');
        for (;;) {
            ws();
            if (peek() == ')') break;
            std::uint64_t v = 0;
            const auto r = std::from_chars(s_.data() + i_, s_.data() + s_.size(), v);
            if (r.ec != std::errc() || r.ptr == s_.data() + i_)
                fail("a dimension of the shape is not a non-negative integer");
            i_ = static_cast<std::size_t>(r.ptr - s_.data());
            dims.push_back(static_cast<std::size_t>(v));
            ws();
            if (peek() == ',') {
                ++i_;
                continue;
            }
            if (peek() != ')') fail("expected ',' or ')' in the shape");
        }
        ++i_;
        return dims;
    }

    std::string_view s_;
    const fs::path& file_;
    std::size_t i_ = 0;
};

inline npy_header parse_npy_header(std::string_view bytes, const fs::path& file) {
    static constexpr char magic[] = "\x93NUMPY";
    if (bytes.size() < 10 || bytes.substr(0, 6) != std::string_view(magic, 6))
        throw checkpoint_error(
            file, 0, bytes.size() < 10 ? "truncated .npy file (no complete header)" : "not a .npy file (bad magic)");
    const auto major = static_cast<unsigned char>(bytes[6]), minor = static_cast<unsigned char>(bytes[7]);
    std::size_t len = 0, start = 0;
    if (major == 1 && minor == 0) {
        len = static_cast<unsigned char>(bytes[8]) | (std::size_t{static_cast<unsigned char>(bytes[9])} << 8);
        start = 10;
    } else if (major == 2 && minor == 0) {
        if (bytes.size() < 12) throw checkpoint_error(file, 0, "truncated .npy file (no complete header)");
        for (int k = 3; k >= 0; --k) len = (len << 8) | static_cast<unsigned char>(bytes[8 + k]);
        start = 12;
    } else {
        throw checkpoint_error(
            file, 0, "unsupported .npy format version " + std::to_string(major) + "." + std::to_string(minor));
    }
    if (len > bytes.size() - start) throw checkpoint_error(file, 0, "truncated .npy file (header cut short)");
    npy_header h;
    npy_parser(bytes.substr(start, len), file).parse(h);
    h.data_offset = start + len;
    return h;
}

inline std::string describe_descr(const std::string& d) {
    if (d == "<f4") return "'<f4' (float32)";
    if (d == "<f8") return "'<f8' (float64)";
    return "'" + d + "'";
}

// Reads a .npy file holding a T array, validating everything; returns it in row-major order.
template <parameter_value T>
xt::xarray<T> read_npy(int dirfd, const std::string& rel, const fs::path& shown) {
    std::string bytes = read_file_at(dirfd, rel, shown);
    const npy_header h = parse_npy_header(bytes, shown);
    if (h.descr != npy_descr<T>())
        throw checkpoint_error(
            shown, 0, "wrong dtype " + describe_descr(h.descr) + ", expected " + describe_descr(npy_descr<T>()));
    std::size_t count = 1;
    for (const std::size_t d : h.shape) {
        if (d != 0 && count > (std::size_t(-1) / sizeof(T)) / d)
            throw checkpoint_error(shown, 0, "shape " + manifest_shape(h.shape) + " is too large");
        count *= d;
    }
    const std::size_t want = count * sizeof(T), have = bytes.size() - h.data_offset;
    if (have != want)
        throw checkpoint_error(shown, 0,
                               (have < want ? "truncated .npy file: " : "trailing bytes in .npy file: ") +
                                   std::to_string(have) + " data bytes, shape " + manifest_shape(h.shape) + " needs " +
                                   std::to_string(want));
    try {
        std::istringstream in(std::move(bytes));
        xt::xarray<T> a = xt::load_npy<T>(in);
        if (!std::equal(a.shape().begin(), a.shape().end(), h.shape.begin(), h.shape.end()))
            throw std::runtime_error("it read shape " + manifest_shape(a.shape()));
        return a;
    } catch (const checkpoint_error&) {
        throw;
    } catch (const std::exception& e) {
        throw checkpoint_error(shown, 0, std::string("xtensor's npy reader failed: ") + e.what());
    }
}

// ---- manifest ----

struct manifest_param {
    std::string name;
    std::vector<std::size_t> shape;
    std::size_t line;
};

struct manifest {
    std::string dtype;
    std::vector<manifest_param> params;
    bool has_opt = false;
    std::size_t opt_line = 0;
    std::string opt_kind;
    std::optional<std::uint64_t> opt_step;
    std::vector<hyperparameter> opt_hyper;
    std::vector<std::string> opt_buffers;
    std::vector<std::string> opt_params;
    bool has_sched = false;
    std::size_t sched_line = 0;
    std::string sched_kind;
    std::optional<std::uint64_t> sched_step;
    std::vector<hyperparameter> sched_hyper;
    struct generator {
        std::string name;
        rng::state_type state;
        std::size_t line;
    };
    std::vector<generator> generators;
};

class manifest_reader {
  public:
    manifest_reader(std::string_view text, const fs::path& file) : text_(text), file_(file) {}

    manifest read() {
        manifest m;
        if (text_.empty()) fail(1, "empty manifest");
        if (text_.back() != '\n') fail(count_lines(), "the manifest does not end with a newline (truncated?)");
        std::vector<std::string_view> lines;
        for (std::size_t pos = 0; pos < text_.size();) {
            const std::size_t nl = text_.find('\n', pos);
            lines.push_back(text_.substr(pos, nl - pos));
            pos = nl + 1;
        }
        read_header(lines[0]);
        bool ended = false;
        for (std::size_t i = 1; i < lines.size(); ++i) {
            const std::size_t ln = i + 1;
            if (ended) fail(ln, "text after 'end'");
            const auto f = split(lines[i], ln);
            const std::string_view key = f[0];
            if (key == "end") {
                arity(f, 0, ln);
                ended = true;
            } else if (key == "dtype") {
                arity(f, 1, ln);
                if (!m.dtype.empty()) fail(ln, "duplicate 'dtype'");
                if (f[1] != "float32" && f[1] != "float64") fail(ln, "unknown dtype '" + std::string(f[1]) + "'");
                m.dtype = f[1];
            } else if (key == "parameter") {
                arity(f, 2, ln);
                const std::string name = checked_name(f[1], ln);
                for (const auto& p : m.params)
                    if (p.name == name) fail(ln, "duplicate parameter \"" + name + "\"");
                m.params.push_back({name, parse_shape(f[2], ln), ln});
            } else if (key == "optimizer") {
                arity(f, 1, ln);
                if (m.has_opt) fail(ln, "duplicate 'optimizer'");
                m.has_opt = true;
                m.opt_line = ln;
                m.opt_kind = checked_name(f[1], ln);
            } else if (key == "optimizer.step") {
                arity(f, 1, ln);
                need(m.has_opt, "optimizer", ln);
                if (m.opt_step) fail(ln, "duplicate 'optimizer.step'");
                m.opt_step = parse_u64(f[1], ln);
            } else if (key == "optimizer.hyper") {
                arity(f, 2, ln);
                need(m.has_opt, "optimizer", ln);
                m.opt_hyper.push_back({checked_name(f[1], ln), parse_double(f[2], ln)});
            } else if (key == "optimizer.buffer") {
                arity(f, 1, ln);
                need(m.has_opt, "optimizer", ln);
                m.opt_buffers.push_back(checked_name(f[1], ln));
            } else if (key == "optimizer.param") {
                arity(f, 1, ln);
                need(m.has_opt, "optimizer", ln);
                m.opt_params.push_back(checked_name(f[1], ln));
            } else if (key == "schedule") {
                arity(f, 1, ln);
                if (m.has_sched) fail(ln, "duplicate 'schedule'");
                m.has_sched = true;
                m.sched_line = ln;
                m.sched_kind = checked_name(f[1], ln);
            } else if (key == "schedule.step") {
                arity(f, 1, ln);
                need(m.has_sched, "schedule", ln);
                if (m.sched_step) fail(ln, "duplicate 'schedule.step'");
                m.sched_step = parse_u64(f[1], ln);
            } else if (key == "schedule.hyper") {
                arity(f, 2, ln);
                need(m.has_sched, "schedule", ln);
                m.sched_hyper.push_back({checked_name(f[1], ln), parse_double(f[2], ln)});
            } else if (key == "rng") {
                arity(f, 5, ln);
                const std::string name = checked_name(f[1], ln);
                for (const auto& g : m.generators)
                    if (g.name == name) fail(ln, "duplicate rng \"" + name + "\"");
                rng::state_type st{};
                for (std::size_t k = 0; k < 4; ++k) st[k] = parse_hex64(f[2 + k], ln);
                if (st[0] == 0 && st[1] == 0 && st[2] == 0 && st[3] == 0)
                    fail(ln, "rng \"" + name + "\" has the all-zero state, which xoshiro256** never reaches");
                m.generators.push_back({name, st, ln});
            } else {
                fail(ln, "unknown key '" + std::string(key) + "'");
            }
        }
        if (!ended) fail(lines.size(), "no 'end' line: the manifest is incomplete");
        if (m.dtype.empty()) fail(1, "no 'dtype' line");
        if (m.has_opt && !m.opt_step) fail(m.opt_line, "'optimizer' without 'optimizer.step'");
        if (m.has_sched && !m.sched_step) fail(m.sched_line, "'schedule' without 'schedule.step'");
        return m;
    }

  private:
    [[noreturn]] void fail(std::size_t line, const std::string& what) const {
        throw checkpoint_error(file_, line, what);
    }

    std::size_t count_lines() const {
        std::size_t n = 1;
        for (const char c : text_) n += c == '\n';
        return n;
    }

    void read_header(std::string_view l) {
        static constexpr std::string_view magic = "exprgrad-checkpoint ";
        if (l.substr(0, magic.size()) != magic)
            fail(1, "not an exprgrad checkpoint manifest (first line must be 'exprgrad-checkpoint <version>')");
        const std::string_view v = l.substr(magic.size());
        int version = 0;
        const auto r = std::from_chars(v.data(), v.data() + v.size(), version);
        if (r.ec != std::errc() || r.ptr != v.data() + v.size() || v.empty())
            fail(1, "malformed version '" + std::string(v) + "'");
        if (version != checkpoint_format_version)
            fail(1, "unsupported checkpoint format version " + std::to_string(version) + " (this build reads version " +
                        std::to_string(checkpoint_format_version) + ")");
    }

    std::vector<std::string_view> split(std::string_view l, std::size_t ln) const {
        std::vector<std::string_view> f;
        std::size_t pos = 0;
        for (;;) {
            const std::size_t sp = l.find(' ', pos);
            const std::string_view tok =
                l.substr(pos, sp == std::string_view::npos ? std::string_view::npos : sp - pos);
            if (tok.empty()) fail(ln, "malformed line (empty field: fields are separated by single spaces)");
            for (const char c : tok)
                if (static_cast<unsigned char>(c) <= 32 || static_cast<unsigned char>(c) >= 127)
                    fail(ln, "malformed line (a character outside printable ASCII)");
            f.push_back(tok);
            if (sp == std::string_view::npos) break;
            pos = sp + 1;
        }
        return f;
    }

    void arity(const std::vector<std::string_view>& f, std::size_t n, std::size_t ln) const {
        if (f.size() != n + 1)
            fail(ln, "'" + std::string(f[0]) + "' takes " + std::to_string(n) + " field(s), found " +
                         std::to_string(f.size() - 1));
    }
    void need(bool ok, const char* block, std::size_t ln) const {
        if (!ok) fail(ln, std::string("this line needs a preceding '") + block + "' line");
    }
    std::string checked_name(std::string_view s, std::size_t ln) const {
        if (!is_valid_parameter_name(s)) fail(ln, "invalid name '" + std::string(s) + "'");
        return std::string(s);
    }
    std::uint64_t parse_u64(std::string_view s, std::size_t ln) const {
        std::uint64_t v = 0;
        const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
        if (r.ec != std::errc() || r.ptr != s.data() + s.size())
            fail(ln, "'" + std::string(s) + "' is not an unsigned integer");
        return v;
    }
    std::uint64_t parse_hex64(std::string_view s, std::size_t ln) const {
        std::uint64_t v = 0;
        const auto r = std::from_chars(s.data(), s.data() + s.size(), v, 16);
        if (s.size() != 16 || r.ec != std::errc() || r.ptr != s.data() + s.size())
            fail(ln, "'" + std::string(s) + "' is not a 16-digit hexadecimal word");
        return v;
    }
    double parse_double(std::string_view s, std::size_t ln) const {
        double v = 0;
        const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
        if (r.ec != std::errc() || r.ptr != s.data() + s.size()) fail(ln, "'" + std::string(s) + "' is not a number");
        return v;
    }
    std::vector<std::size_t> parse_shape(std::string_view s, std::size_t ln) const {
        if (s.size() < 2 || s.front() != '[' || s.back() != ']') fail(ln, "malformed shape '" + std::string(s) + "'");
        std::vector<std::size_t> dims;
        std::string_view body = s.substr(1, s.size() - 2);
        while (!body.empty()) {
            const std::size_t comma = body.find(',');
            const std::string_view tok = body.substr(0, comma);
            std::uint64_t v = 0;
            const auto r = std::from_chars(tok.data(), tok.data() + tok.size(), v);
            if (tok.empty() || r.ec != std::errc() || r.ptr != tok.data() + tok.size())
                fail(ln, "malformed shape '" + std::string(s) + "'");
            dims.push_back(static_cast<std::size_t>(v));
            if (comma == std::string_view::npos) break;
            body = body.substr(comma + 1);
            if (body.empty()) fail(ln, "malformed shape '" + std::string(s) + "'");
        }
        return dims;
    }

    std::string_view text_;
    const fs::path& file_;
};

// ---- atomic placement ----

// Tests set this to false to exercise the portable two-rename path.
inline bool use_rename_exchange = true;

inline fs::path target_path(const fs::path& dir) {
    fs::path p = fs::absolute(dir).lexically_normal();
    if (!p.has_filename()) p = p.parent_path();  // "ckpt/" -> "ckpt"
    if (!p.has_filename() || p.filename() == "." || p.filename() == "..")
        throw checkpoint_error(dir, 0, "not a usable checkpoint directory name");
    return p;
}

inline fs::path make_temp_dir(const fs::path& target, const char* tag) {
    std::string templ = target.string() + tag + "XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr)
        throw checkpoint_error(target.parent_path(), 0, "cannot create a temporary directory: " + errno_text(errno));
    return fs::path(templ);
}

// Refuses to replace anything but a checkpoint or an empty directory (a typo must not delete a home).
inline void check_replaceable(const fs::path& target) {
    std::error_code ec;
    const auto st = fs::symlink_status(target, ec);
    if (ec || st.type() == fs::file_type::not_found) return;
    if (st.type() != fs::file_type::directory)
        throw checkpoint_error(target, 0, "exists and is not a directory; refusing to replace it");
    if (fs::is_empty(target, ec) && !ec) return;
    fd_guard fd(::open((target / "manifest.txt").c_str(), O_RDONLY | O_CLOEXEC));
    char head[20] = {};
    const bool ok = fd.get() >= 0 && ::read(fd.get(), head, sizeof head) == static_cast<ssize_t>(sizeof head) &&
                    std::string_view(head, sizeof head) == "exprgrad-checkpoint ";
    if (!ok) throw checkpoint_error(target, 0, "exists and is not an exprgrad checkpoint; refusing to replace it");
}

// Moves the finished directory `tmp` to `target` (see the header comment for the guarantees).
inline void commit_dir(const fs::path& tmp, const fs::path& target) {
    const fs::path parent = target.parent_path();
    if (::rename(tmp.c_str(), target.c_str()) == 0) {
        fsync_dir(parent);
        return;
    }
    if (errno != EEXIST && errno != ENOTEMPTY)
        throw checkpoint_error(target, 0, "cannot rename " + tmp.string() + " into place: " + errno_text(errno));
    check_replaceable(target);
    std::error_code ec;
#if defined(__linux__) && defined(RENAME_EXCHANGE)
    if (use_rename_exchange) {
        if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, target.c_str(), RENAME_EXCHANGE) == 0) {
            fsync_dir(parent);
            fs::remove_all(tmp, ec);  // tmp now holds the old checkpoint
            return;
        }
        if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
            throw checkpoint_error(target, 0, "cannot exchange " + tmp.string() + " into place: " + errno_text(errno));
    }
#endif
    const fs::path old = make_temp_dir(target, ".old-");
    if (::rename(target.c_str(), old.c_str()) != 0) {  // replaces the empty `old` directory
        const int e = errno;
        fs::remove(old, ec);
        throw checkpoint_error(target, 0, "cannot move the old checkpoint aside: " + errno_text(e));
    }
    if (::rename(tmp.c_str(), target.c_str()) != 0) {
        const int e = errno;
        if (::rename(old.c_str(), target.c_str()) != 0) {  // put the old one back if we can
            throw checkpoint_error(target, 0,
                                   "cannot rename the new checkpoint into place (" + errno_text(e) +
                                       "); the old one is at " + old.string());
        }
        throw checkpoint_error(target, 0, "cannot rename the new checkpoint into place: " + errno_text(e));
    }
    fsync_dir(parent);
    fs::remove_all(old, ec);
}

// Removes the staging directory unless released (on any failure before the commit).
class staging_dir {
  public:
    explicit staging_dir(fs::path p) : p_(std::move(p)) {}
    staging_dir(const staging_dir&) = delete;
    staging_dir& operator=(const staging_dir&) = delete;
    ~staging_dir() {
        if (!p_.empty()) {
            std::error_code ec;
            fs::remove_all(p_, ec);
        }
    }
    const fs::path& path() const noexcept { return p_; }
    void release() noexcept { p_.clear(); }

  private:
    fs::path p_;
};

}  // namespace detail

/// Writes a checkpoint of `params` and `items` to the directory `dir`, atomically (see the top of this
/// header): `dir` afterwards holds either the complete previous contents or the complete new checkpoint.
/// `dir`'s parent directories are created if missing; an existing `dir` is replaced only if it is an
/// exprgrad checkpoint or empty. Throws checkpoint_error (naming the file) on any IO failure, or if the
/// optimizer's state belongs to other parameters than `params`, or a generator name is invalid or
/// repeated; nothing is left under `dir` or its temporary name in that case.
/// Example: save_checkpoint("ckpt", params, {.opt = &opt, .sched = &sched, .generators = {{"data", &g}}});
template <parameter_value T>
void save_checkpoint(const std::filesystem::path& dir, const parameter_set<T>& params,
                     const checkpoint_items<T>& items = {}) {
    namespace fs = std::filesystem;
    using namespace detail;
    const fs::path target = target_path(dir);
    for (std::size_t i = 0; i < items.generators.size(); ++i) {
        const auto& [name, g] = items.generators[i];
        if (!is_valid_parameter_name(name) || g == nullptr)
            throw checkpoint_error(target, 0, "invalid generator entry \"" + name + "\" (bad name or null pointer)");
        for (std::size_t j = 0; j < i; ++j)
            if (items.generators[j].first == name)
                throw checkpoint_error(target, 0, "duplicate generator \"" + name + "\"");
    }
    if (items.opt != nullptr && !items.opt->param_names().empty()) {
        const auto& names = items.opt->param_names();
        bool same = names.size() == params.size();
        for (std::size_t i = 0; same && i < names.size(); ++i) same = names[i] == params[i].name;
        if (!same)
            throw checkpoint_error(target, 0, "the optimizer's state belongs to other parameters than the ones given");
    }

    {
        std::error_code ec;
        fs::create_directories(target.parent_path(), ec);
        if (ec) throw checkpoint_error(target.parent_path(), 0, "cannot create directory: " + ec.message());
    }
    check_replaceable(target);  // fail early, before writing anything
    staging_dir tmp(make_temp_dir(target, ".tmp-"));
    const fs::path& root = tmp.path();

    std::ostringstream man;
    man << "exprgrad-checkpoint " << checkpoint_format_version << '\n';
    man << "dtype " << dtype_name<T>() << '\n';
    make_dir(root / "params");
    for (const auto& p : params) {
        man << "parameter " << p.name << ' ' << manifest_shape(p.value.shape()) << '\n';
        write_file_synced(root / "params" / (p.name + ".npy"), xt::dump_npy(p.value));
    }
    fsync_dir(root / "params");
    if (items.opt != nullptr) {
        const auto& o = *items.opt;
        man << "optimizer " << o.kind() << '\n';
        man << "optimizer.step " << o.step_count() << '\n';
        for (const auto& h : o.hyperparameters())
            man << "optimizer.hyper " << h.name << ' ' << format_double(h.value) << '\n';
        const auto bufs = o.buffer_names();
        for (const auto& b : bufs) man << "optimizer.buffer " << b << '\n';
        for (const auto& n : o.param_names()) man << "optimizer.param " << n << '\n';
        make_dir(root / "optimizer");
        for (std::size_t b = 0; b < bufs.size(); ++b) {
            const fs::path sub = root / "optimizer" / bufs[b];
            make_dir(sub);
            for (std::size_t p = 0; p < o.param_names().size(); ++p)
                write_file_synced(sub / (o.param_names()[p] + ".npy"), xt::dump_npy(o.buffers()[b][p]));
            fsync_dir(sub);
        }
        fsync_dir(root / "optimizer");
    }
    if (items.sched != nullptr) {
        const auto& s = *items.sched;
        man << "schedule " << s.kind() << '\n';
        man << "schedule.step " << s.current_step() << '\n';
        for (const auto& h : s.hyperparameters())
            man << "schedule.hyper " << h.name << ' ' << format_double(h.value) << '\n';
    }
    for (const auto& [name, g] : items.generators) {
        man << "rng " << name;
        for (const std::uint64_t w : g->state()) man << ' ' << format_hex64(w);
        man << '\n';
    }
    man << "end\n";
    write_file_synced(root / "manifest.txt", man.str());
    fsync_dir(root);

    commit_dir(root, target);
    tmp.release();
}

/// Loads the checkpoint in `dir` into `params` and `items` (see the top of this header). The
/// checkpoint must hold exactly the parameters of `params` (same names, same shapes, dtype T), and the
/// optimizer, schedule and generators requested in `items`; the optimizer's and schedule's kind and
/// hyperparameters (lr excepted) must equal those of the given objects. On any problem throws
/// checkpoint_error naming the file, and manifest line, and changes nothing.
/// Example: load_checkpoint("ckpt", params, {.opt = &opt, .sched = &sched, .generators = {{"data", &g}}});
template <parameter_value T>
void load_checkpoint(const std::filesystem::path& dir, parameter_set<T>& params,
                     const checkpoint_items<T>& items = {}) {
    namespace fs = std::filesystem;
    using namespace detail;
    const fs::path root = fs::absolute(dir).lexically_normal();
    fd_guard dirfd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dirfd.get() < 0) {
        const int e = errno;
        throw checkpoint_error(root, 0,
                               e == ENOENT ? std::string("no such checkpoint directory")
                                           : "cannot open checkpoint directory: " + errno_text(e));
    }
    const fs::path man_path = root / "manifest.txt";
    const std::string text = read_file_at(dirfd.get(), "manifest.txt", man_path);
    const manifest m = manifest_reader(text, man_path).read();

    // Everything is read and checked into these temporaries first; the commit below cannot fail.
    if (m.dtype != dtype_name<T>())
        throw checkpoint_error(man_path, 0,
                               "the checkpoint holds " + m.dtype + " arrays, the parameters are " + dtype_name<T>());
    for (const auto& mp : m.params)
        if (!params.contains(mp.name))
            throw checkpoint_error(man_path, mp.line, "parameter \"" + mp.name + "\" is not in the parameter set");
    std::vector<xt::xarray<T>> values;
    for (const auto& p : params) {
        const manifest_param* mp = nullptr;
        for (const auto& q : m.params)
            if (q.name == p.name) mp = &q;
        if (mp == nullptr) throw checkpoint_error(man_path, 0, "the checkpoint has no parameter \"" + p.name + "\"");
        if (!std::equal(mp->shape.begin(), mp->shape.end(), p.value.shape().begin(), p.value.shape().end()))
            throw checkpoint_error(man_path, mp->line,
                                   "parameter \"" + p.name + "\" has shape " + manifest_shape(mp->shape) +
                                       " in the checkpoint but " + manifest_shape(p.value.shape()) + " in the model");
        const std::string rel = "params/" + p.name + ".npy";
        xt::xarray<T> a = read_npy<T>(dirfd.get(), rel, root / rel);
        if (!std::equal(mp->shape.begin(), mp->shape.end(), a.shape().begin(), a.shape().end()))
            throw checkpoint_error(
                root / rel, 0,
                "shape " + manifest_shape(a.shape()) + ", the manifest says " + manifest_shape(mp->shape));
        values.push_back(std::move(a));
    }

    optimizer_state<T> ostate;
    if (items.opt != nullptr) {
        if (!m.has_opt) throw checkpoint_error(man_path, 0, "the checkpoint has no optimizer state");
        ostate.kind = m.opt_kind;
        ostate.step = *m.opt_step;
        ostate.hyper = m.opt_hyper;
        ostate.buffer_names = m.opt_buffers;
        ostate.param_names = m.opt_params;
        if (!m.opt_params.empty()) {
            bool same = m.opt_params.size() == params.size();
            for (std::size_t i = 0; same && i < params.size(); ++i) same = m.opt_params[i] == params[i].name;
            if (!same)
                throw checkpoint_error(man_path, m.opt_line,
                                       "the optimizer state belongs to other parameters than the parameter set");
        }
        try {
            items.opt->check_compatible(ostate);  // kind and hyperparameters, before reading the buffers
        } catch (const std::invalid_argument& e) {
            throw checkpoint_error(man_path, m.opt_line, e.what());
        }
        for (const auto& b : m.opt_buffers) {
            std::vector<xt::xarray<T>> list;
            for (std::size_t p = 0; p < m.opt_params.size(); ++p) {
                const std::string rel = "optimizer/" + b + "/" + m.opt_params[p] + ".npy";
                xt::xarray<T> a = read_npy<T>(dirfd.get(), rel, root / rel);
                if (a.shape() != params[p].value.shape())
                    throw checkpoint_error(root / rel, 0,
                                           "shape " + manifest_shape(a.shape()) + ", parameter \"" + params[p].name +
                                               "\" has shape " + manifest_shape(params[p].value.shape()));
                list.push_back(std::move(a));
            }
            ostate.buffers.push_back(std::move(list));
        }
        try {
            items.opt->check_state(ostate);
        } catch (const std::invalid_argument& e) {
            throw checkpoint_error(man_path, m.opt_line, e.what());
        }
    }

    schedule_state sstate;
    if (items.sched != nullptr) {
        if (!m.has_sched) throw checkpoint_error(man_path, 0, "the checkpoint has no schedule state");
        sstate = schedule_state{m.sched_kind, *m.sched_step, m.sched_hyper};
        try {
            items.sched->check_state(sstate);
        } catch (const std::invalid_argument& e) {
            throw checkpoint_error(man_path, m.sched_line, e.what());
        }
    }

    std::vector<rng::state_type> gstates;
    for (const auto& [name, g] : items.generators) {
        if (g == nullptr) throw checkpoint_error(man_path, 0, "null generator pointer for \"" + name + "\"");
        const manifest::generator* found = nullptr;
        for (const auto& mg : m.generators)
            if (mg.name == name) found = &mg;
        if (found == nullptr) throw checkpoint_error(man_path, 0, "the checkpoint has no generator \"" + name + "\"");
        gstates.push_back(found->state);
    }

    // Commit: moves and plain assignments only.
    for (std::size_t i = 0; i < params.size(); ++i) params[i].value = std::move(values[i]);
    if (items.opt != nullptr) items.opt->load_state(std::move(ostate));
    if (items.sched != nullptr) items.sched->load_state(sstate);
    for (std::size_t i = 0; i < items.generators.size(); ++i) items.generators[i].second->set_state(gstates[i]);
}

}  // namespace exprgrad::nn
