// Checkpoint I/O (declared in exprgrad/nn/checkpoint.hpp, which documents the format and guarantees):
// compiled once into libexprgrad for float and double, so consumers include no POSIX or npy headers.
#include "checkpoint_internal.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <optional>
#include <sstream>
#include <system_error>

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

#include "exprgrad/format.hpp"
#include "file_io.hpp"

namespace exprgrad::nn {

std::uint64_t fnv1a64(std::string_view bytes) noexcept {
    std::uint64_t h = 0xcbf29ce484222325ULL;
    for (const char c : bytes) {
        h ^= static_cast<unsigned char>(c);
        h *= 0x100000001b3ULL;
    }
    return h;
}

namespace detail {

namespace fs = std::filesystem;
using exprgrad::detail::errno_text;
using exprgrad::detail::io_error;

namespace {

template <parameter_value T>
constexpr const char* dtype_name() {
    return std::is_same_v<T, float> ? "float32" : "float64";
}
template <parameter_value T>
constexpr const char* npy_descr() {
    return std::is_same_v<T, float> ? "<f4" : "<f8";
}

// The manifest's notation of a shape ("[2,3]", part of the file format); messages use exprgrad::format_shape.
template <class S>
std::string manifest_shape(const S& shape) {
    std::string s = "[";
    for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
    return s + "]";
}

std::string format_hex64(std::uint64_t v) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
    return buf;
}

// The shared writers throw io_error; checkpoint functions promise checkpoint_error naming the file.
template <class F>
void as_checkpoint_error(F&& f) {
    try {
        f();
    } catch (const io_error& e) {
        throw checkpoint_error(e.path(), 0, e.problem());
    }
}
void write_file_synced(const fs::path& p, std::string_view bytes) {
    as_checkpoint_error([&] { exprgrad::detail::write_new_file(p, bytes); });
}
void fsync_directory(const fs::path& p) {
    as_checkpoint_error([&] { exprgrad::detail::fsync_dir(p); });
}

void make_dir(const fs::path& path) {
    if (::mkdir(path.c_str(), 0755) != 0)
        throw checkpoint_error(path, 0, "cannot create directory: " + errno_text(errno));
}

using exprgrad::detail::fd_guard;

// Reads a whole regular file given relative to the open directory `dirfd`; `shown` is the path used in
// messages.
std::string read_file_at(int dirfd, const std::string& rel, const fs::path& shown) {
    // The type is checked before opening (opening a FIFO without a writer blocks forever; a device can
    // stream without end), and again on the open descriptor (O_NONBLOCK: a FIFO swapped in between the
    // two cannot block either).
    auto refuse_special = [&](mode_t m) {
        if (S_ISREG(m)) return;
        throw checkpoint_error(shown, 0, std::string(exprgrad::detail::file_kind(m)) + ", not a regular file");
    };
    struct stat st {};
    if (::fstatat(dirfd, rel.c_str(), &st, 0) != 0) {
        const int e = errno;
        throw checkpoint_error(shown, 0,
                               e == ENOENT ? std::string("missing file") : "cannot open file: " + errno_text(e));
    }
    refuse_special(st.st_mode);
    fd_guard fd(::openat(dirfd, rel.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
    if (fd.get() < 0) {
        const int e = errno;
        throw checkpoint_error(shown, 0,
                               e == ENOENT ? std::string("missing file") : "cannot open file: " + errno_text(e));
    }
    if (::fstat(fd.get(), &st) != 0) throw checkpoint_error(shown, 0, "cannot stat file: " + errno_text(errno));
    refuse_special(st.st_mode);
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

npy_header parse_npy_header(std::string_view bytes, const fs::path& file) {
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

std::string describe_descr(const std::string& d) {
    if (d == "<f4") return "'<f4' (float32)";
    if (d == "<f8") return "'<f8' (float64)";
    return "'" + d + "'";
}

}  // namespace

template <parameter_value T>
xt::xarray<T> parse_npy(std::string_view bytes, const fs::path& shown) {
    const npy_header h = parse_npy_header(bytes, shown);
    if (h.descr != npy_descr<T>())
        throw checkpoint_error(
            shown, 0, "wrong dtype " + describe_descr(h.descr) + ", expected " + describe_descr(npy_descr<T>()));
    std::size_t count = 1;
    for (const std::size_t d : h.shape) {
        if (d != 0 && count > (std::size_t(-1) / sizeof(T)) / d)
            throw checkpoint_error(shown, 0, "shape " + format_shape(h.shape) + " is too large");
        count *= d;
    }
    const std::size_t want = count * sizeof(T), have = bytes.size() - h.data_offset;
    if (have != want)
        throw checkpoint_error(shown, 0,
                               (have < want ? "truncated .npy file: " : "trailing bytes in .npy file: ") +
                                   std::to_string(have) + " data bytes, shape " + format_shape(h.shape) + " needs " +
                                   std::to_string(want));
    xt::xarray<T> a;
    try {
        std::istringstream in{std::string(bytes)};
        a = xt::load_npy<T>(in);
    } catch (const std::exception& e) {
        throw checkpoint_error(shown, 0, std::string("xtensor's npy reader failed: ") + e.what());
    }
    if (!std::equal(a.shape().begin(), a.shape().end(), h.shape.begin(), h.shape.end()))
        throw checkpoint_error(shown, 0, "xtensor's npy reader failed: it read shape " + format_shape(a.shape()));
    // A NaN or infinity in a parameter or optimizer buffer is a damaged or diverged state, never one to
    // continue from.
    const T* d = a.data();
    for (std::size_t i = 0; i < a.size(); ++i)
        if (!std::isfinite(d[i]))
            throw checkpoint_error(
                shown, 0, "value " + format_number(d[i]) + " at flat index " + std::to_string(i) + " is not finite");
    return a;
}

template xt::xarray<float> parse_npy<float>(std::string_view, const fs::path&);
template xt::xarray<double> parse_npy<double>(std::string_view, const fs::path&);

std::string escape_value(std::string_view raw) {
    if (raw.empty()) return "%";
    std::string out;
    for (const char c : raw) {
        const auto u = static_cast<unsigned char>(c);
        if (u <= 32 || u >= 127 || c == '%') {
            char b[4];
            std::snprintf(b, sizeof b, "%%%02X", u);
            out += b;
        } else {
            out += c;
        }
    }
    return out;
}

std::optional<std::string> unescape_value(std::string_view text) {
    if (text == "%") return std::string();
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '%') {
            out += text[i];
            continue;
        }
        unsigned v = 0;
        if (i + 2 >= text.size()) return std::nullopt;
        const auto r = std::from_chars(text.data() + i + 1, text.data() + i + 3, v, 16);
        if (r.ec != std::errc() || r.ptr != text.data() + i + 3) return std::nullopt;
        out += static_cast<char>(v);
        i += 2;
    }
    return out;
}

namespace {

// ---- manifest ----

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
            } else if (key == "meta") {
                arity(f, 2, ln);
                const std::string k = checked_name(f[1], ln);
                for (const auto& [mk, mv] : m.metadata)
                    if (mk == k) fail(ln, "duplicate meta \"" + k + "\"");
                const auto v = unescape_value(f[2]);
                if (!v) fail(ln, "malformed %-escaped value '" + std::string(f[2]) + "'");
                m.metadata.emplace_back(k, *v);
            } else if (key == "file") {
                arity(f, 1, ln);
                const std::string n = checked_name(f[1], ln);
                if (std::find(m.files.begin(), m.files.end(), n) != m.files.end())
                    fail(ln, "duplicate file \"" + n + "\"");
                m.files.push_back(n);
            } else if (key == "checksum") {
                arity(f, 2, ln);
                const std::string p = checked_path(f[1], ln);
                if (m.checksum_of(p) != nullptr) fail(ln, "duplicate checksum for \"" + p + "\"");
                m.checksums.push_back({p, parse_hex64(f[2], ln), ln});
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
    // A relative path inside the checkpoint: valid names separated by single '/'.
    std::string checked_path(std::string_view s, std::size_t ln) const {
        std::size_t pos = 0;
        for (;;) {
            const std::size_t slash = s.find('/', pos);
            const std::string_view part = s.substr(pos, slash == std::string_view::npos ? s.npos : slash - pos);
            if (!is_valid_parameter_name(part)) fail(ln, "invalid path '" + std::string(s) + "'");
            if (slash == std::string_view::npos) break;
            pos = slash + 1;
        }
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

// The directory a save replaces: `dir` made absolute, and a symbolic link followed (the link stays and
// its target is replaced, as for files), so staging happens next to the real directory.
fs::path target_path(const fs::path& dir) {
    auto usable = [&](fs::path p) {
        p = fs::absolute(p).lexically_normal();
        if (!p.has_filename()) p = p.parent_path();  // "ckpt/" -> "ckpt"
        if (!p.has_filename() || p.filename() == "." || p.filename() == "..")
            throw checkpoint_error(dir, 0, "not a usable checkpoint directory name");
        return p;
    };
    fs::path p = usable(dir);
    as_checkpoint_error([&] { p = exprgrad::detail::follow_symlinks(p); });
    return usable(p);
}

fs::path make_temp_dir(const fs::path& target, const char* tag) {
    std::string templ = target.string() + tag + "XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr)
        throw checkpoint_error(target.parent_path(), 0, "cannot create a temporary directory: " + errno_text(errno));
    return fs::path(templ);
}

// Refuses to replace anything but a checkpoint or an empty directory (a typo must not delete a home).
void check_replaceable(const fs::path& target) {
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
void commit_dir(const fs::path& tmp, const fs::path& target, const save_options& options) {
    const fs::path parent = target.parent_path();
    if (::rename(tmp.c_str(), target.c_str()) == 0) {
        fsync_directory(parent);
        return;
    }
    if (errno != EEXIST && errno != ENOTEMPTY)
        throw checkpoint_error(target, 0, "cannot rename " + tmp.string() + " into place: " + errno_text(errno));
    check_replaceable(target);
    std::error_code ec;
#if defined(__linux__) && defined(RENAME_EXCHANGE)
    if (options.use_rename_exchange) {
        if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, target.c_str(), RENAME_EXCHANGE) == 0) {
            fsync_directory(parent);
            exprgrad::detail::fault_point("ckpt_exchanged");
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
    fsync_directory(parent);
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

// Opens a checkpoint directory for reading relative to it.
int open_checkpoint_dir(const fs::path& root) {
    const int fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        const int e = errno;
        throw checkpoint_error(root, 0,
                               e == ENOENT ? std::string("no such checkpoint directory")
                                           : "cannot open checkpoint directory: " + errno_text(e));
    }
    return fd;
}

// Compares a file's bytes with its manifest checksum line (required for every file read).
void verify_checksum(const manifest& m, const fs::path& man_path, const std::string& rel, const fs::path& shown,
                     std::string_view bytes) {
    const auto* c = m.checksum_of(rel);
    if (c == nullptr) throw checkpoint_error(man_path, 0, "no checksum line for " + rel);
    const std::uint64_t h = fnv1a64(bytes);
    if (h != c->value)
        throw checkpoint_error(shown, 0,
                               "checksum " + format_hex64(h) + " does not match " + format_hex64(c->value) +
                                   " recorded on manifest line " + std::to_string(c->line) +
                                   " (the file was changed or damaged)");
}

// Structure first, then the caller's shape check (their messages say what is wrong), then the checksum
// (which catches the rest).
template <parameter_value T, class Check>
xt::xarray<T> read_npy(int dirfd, const manifest& m, const fs::path& root, const std::string& rel, Check&& check) {
    const fs::path shown = root / rel;
    const std::string bytes = read_file_at(dirfd, rel, shown);
    xt::xarray<T> a = parse_npy<T>(bytes, shown);
    check(a);
    verify_checksum(m, root / "manifest.txt", rel, shown, bytes);
    return a;
}

template <class A>
void require_finite(const A& a, const fs::path& target, const std::string& what) {
    for (std::size_t i = 0; i < a.size(); ++i)
        if (!std::isfinite(a.data()[i]))
            throw checkpoint_error(target, 0,
                                   what + " holds " + format_number(a.data()[i]) + " at flat index " +
                                       std::to_string(i) + "; refusing to save a non-finite state");
}

void check_names(const std::vector<std::pair<std::string, std::string>>& list, const fs::path& target,
                 const char* what) {
    for (std::size_t i = 0; i < list.size(); ++i) {
        if (!is_valid_parameter_name(list[i].first))
            throw checkpoint_error(target, 0, std::string("invalid ") + what + " name \"" + list[i].first + "\"");
        for (std::size_t j = 0; j < i; ++j)
            if (list[j].first == list[i].first)
                throw checkpoint_error(target, 0, std::string("duplicate ") + what + " \"" + list[i].first + "\"");
    }
}

}  // namespace

manifest parse_manifest(std::string_view text, const fs::path& shown) {
    // The last line, "manifest_checksum <16 hex digits>", is the FNV-1a 64 of every byte before it: a
    // hand-edited manifest (an rng word, a step) is refused like a changed .npy. The body is parsed
    // first, so that a malformed manifest gets its line-precise message.
    std::string_view body = text;
    std::optional<std::uint64_t> recorded;
    static constexpr std::string_view key = "manifest_checksum ";
    if (!text.empty() && text.back() == '\n') {
        const std::size_t prev = text.size() >= 2 ? text.rfind('\n', text.size() - 2) : std::string_view::npos;
        const std::size_t start = prev == std::string_view::npos ? 0 : prev + 1;
        const std::string_view last = text.substr(start, text.size() - 1 - start);
        if (last.substr(0, key.size()) == key) {
            const std::string_view hex = last.substr(key.size());
            const std::size_t line = static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
            std::uint64_t v = 0;
            const bool ok = hex.size() == 16 && std::all_of(hex.begin(), hex.end(), [](char c) {
                                return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
                            });
            if (!ok) throw checkpoint_error(shown, line, "manifest_checksum is not 16 lowercase hexadecimal digits");
            for (const char c : hex) v = v * 16 + static_cast<std::uint64_t>(c <= '9' ? c - '0' : c - 'a' + 10);
            recorded = v;
            body = text.substr(0, start);
        }
    }
    manifest m = manifest_reader(body, shown).read();
    const std::size_t after = static_cast<std::size_t>(std::count(body.begin(), body.end(), '\n')) + 1;
    if (!recorded)
        throw checkpoint_error(shown, after,
                               "no 'manifest_checksum' line after 'end': the manifest was cut or edited");
    const std::uint64_t h = fnv1a64(body);
    if (h != *recorded)
        throw checkpoint_error(shown, after,
                               "manifest checksum " + format_hex64(h) + " does not match the recorded " +
                                   format_hex64(*recorded) + " (the manifest was edited or damaged)");
    return m;
}

template <parameter_value T>
void save_checkpoint(const fs::path& dir, const parameter_set<T>& params, const checkpoint_items<T>& items,
                     const save_options& options) {
    const fs::path target = target_path(dir);
    for (std::size_t i = 0; i < items.generators.size(); ++i) {
        const auto& [name, g] = items.generators[i];
        if (!is_valid_parameter_name(name) || g == nullptr)
            throw checkpoint_error(target, 0, "invalid generator entry \"" + name + "\" (bad name or null pointer)");
        for (std::size_t j = 0; j < i; ++j)
            if (items.generators[j].first == name)
                throw checkpoint_error(target, 0, "duplicate generator \"" + name + "\"");
    }
    check_names(items.metadata, target, "metadata key");
    check_names(items.files, target, "file");
    if (items.opt != nullptr && !items.opt->param_names().empty()) {
        const auto& names = items.opt->param_names();
        bool same = names.size() == params.size();
        for (std::size_t i = 0; same && i < names.size(); ++i) same = names[i] == params[i].name;
        if (!same)
            throw checkpoint_error(target, 0, "the optimizer's state belongs to other parameters than the ones given");
    }
    for (const auto& p : params) require_finite(p.value, target, "parameter \"" + p.name + "\"");
    if (items.opt != nullptr)
        for (std::size_t b = 0; b < items.opt->buffers().size(); ++b)
            for (std::size_t p = 0; p < items.opt->buffers()[b].size(); ++p)
                require_finite(
                    items.opt->buffers()[b][p], target,
                    "optimizer buffer " + items.opt->buffer_names()[b] + " of \"" + items.opt->param_names()[p] + "\"");

    {
        std::error_code ec;
        fs::create_directories(target.parent_path(), ec);
        if (ec) throw checkpoint_error(target.parent_path(), 0, "cannot create directory: " + ec.message());
    }
    check_replaceable(target);  // fail early, before writing anything
    staging_dir tmp(make_temp_dir(target, ".tmp-"));
    const fs::path& root = tmp.path();

    std::ostringstream man, sums;
    // Every file goes through here: written, fsynced, and its checksum line recorded.
    auto put = [&](const std::string& rel, const std::string& bytes) {
        write_file_synced(root / rel, bytes);
        sums << "checksum " << rel << ' ' << format_hex64(fnv1a64(bytes)) << '\n';
    };
    man << "exprgrad-checkpoint " << checkpoint_format_version << '\n';
    man << "dtype " << dtype_name<T>() << '\n';
    make_dir(root / "params");
    for (const auto& p : params) {
        man << "parameter " << p.name << ' ' << manifest_shape(p.value.shape()) << '\n';
        put("params/" + p.name + ".npy", xt::dump_npy(p.value));
    }
    fsync_directory(root / "params");
    if (items.opt != nullptr) {
        const auto& o = *items.opt;
        man << "optimizer " << o.kind() << '\n';
        man << "optimizer.step " << o.step_count() << '\n';
        for (const auto& h : o.hyperparameters())
            man << "optimizer.hyper " << h.name << ' ' << format_number(h.value) << '\n';
        const auto bufs = o.buffer_names();
        for (const auto& b : bufs) man << "optimizer.buffer " << b << '\n';
        for (const auto& n : o.param_names()) man << "optimizer.param " << n << '\n';
        make_dir(root / "optimizer");
        for (std::size_t b = 0; b < bufs.size(); ++b) {
            make_dir(root / "optimizer" / bufs[b]);
            for (std::size_t p = 0; p < o.param_names().size(); ++p)
                put("optimizer/" + bufs[b] + "/" + o.param_names()[p] + ".npy", xt::dump_npy(o.buffers()[b][p]));
            fsync_directory(root / "optimizer" / bufs[b]);
        }
        fsync_directory(root / "optimizer");
    }
    if (items.sched != nullptr) {
        const auto& s = *items.sched;
        man << "schedule " << s.kind() << '\n';
        man << "schedule.step " << s.current_step() << '\n';
        for (const auto& h : s.hyperparameters())
            man << "schedule.hyper " << h.name << ' ' << format_number(h.value) << '\n';
    }
    for (const auto& [k, v] : items.metadata) man << "meta " << k << ' ' << escape_value(v) << '\n';
    if (!items.files.empty()) {
        make_dir(root / "files");
        for (const auto& [name, bytes] : items.files) {
            man << "file " << name << '\n';
            put("files/" + name, bytes);
        }
        fsync_directory(root / "files");
    }
    man << sums.str();
    // The generators stay last before 'end' (the format's documented order).
    for (const auto& [name, g] : items.generators) {
        man << "rng " << name;
        for (const std::uint64_t w : g->state()) man << ' ' << format_hex64(w);
        man << '\n';
    }
    man << "end\n";
    const std::uint64_t man_sum = fnv1a64(man.str());  // of the bytes before its line: see parse_manifest
    man << "manifest_checksum " << format_hex64(man_sum) << '\n';
    write_file_synced(root / "manifest.txt", man.str());
    fsync_directory(root);

    exprgrad::detail::fault_point("ckpt_staged");
    commit_dir(root, target, options);
    tmp.release();
}

}  // namespace detail

template <parameter_value T>
void save_checkpoint(const std::filesystem::path& dir, const parameter_set<T>& params,
                     const checkpoint_items<T>& items) {
    detail::save_checkpoint(dir, params, items, detail::save_options{});
}

template <parameter_value T>
void load_checkpoint(const std::filesystem::path& dir, parameter_set<T>& params, const checkpoint_items<T>& items) {
    namespace fs = std::filesystem;
    using namespace detail;
    const fs::path root = fs::absolute(dir).lexically_normal();
    fd_guard dirfd(open_checkpoint_dir(root));
    const fs::path man_path = root / "manifest.txt";
    const std::string text = read_file_at(dirfd.get(), "manifest.txt", man_path);
    const manifest m = parse_manifest(text, man_path);

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
                                   "parameter \"" + p.name + "\" has shape " + format_shape(mp->shape) +
                                       " in the checkpoint but " + format_shape(p.value.shape()) + " in the model");
        const std::string rel = "params/" + p.name + ".npy";
        values.push_back(read_npy<T>(dirfd.get(), m, root, rel, [&](const xt::xarray<T>& a) {
            if (!std::equal(mp->shape.begin(), mp->shape.end(), a.shape().begin(), a.shape().end()))
                throw checkpoint_error(
                    root / rel, 0,
                    "shape " + format_shape(a.shape()) + ", the manifest says " + format_shape(mp->shape));
        }));
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
                list.push_back(read_npy<T>(dirfd.get(), m, root, rel, [&](const xt::xarray<T>& a) {
                    if (a.shape() != params[p].value.shape())
                        throw checkpoint_error(root / rel, 0,
                                               "shape " + format_shape(a.shape()) + ", parameter \"" + params[p].name +
                                                   "\" has shape " + format_shape(params[p].value.shape()));
                    // Adam's second moments are averages of g²: a negative one makes sqrt(v) NaN at the
                    // next step, far from the cause.
                    if (b == "exp_avg_sq")
                        for (std::size_t k = 0; k < a.size(); ++k)
                            if (a.data()[k] < T(0))
                                throw checkpoint_error(root / rel, 0,
                                                       "second moment (exp_avg_sq) of parameter \"" +
                                                           params[p].name + "\" is negative at element " +
                                                           std::to_string(k) + "; it must be >= 0");
                }));
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

checkpoint_info read_checkpoint_info(const std::filesystem::path& dir) {
    namespace fs = std::filesystem;
    using namespace detail;
    const fs::path root = fs::absolute(dir).lexically_normal();
    fd_guard dirfd(open_checkpoint_dir(root));
    checkpoint_info info;
    info.manifest = root / "manifest.txt";
    const manifest m = parse_manifest(read_file_at(dirfd.get(), "manifest.txt", info.manifest), info.manifest);
    info.metadata = m.metadata;
    for (const auto& name : m.files) {
        const std::string rel = "files/" + name;
        std::string bytes = read_file_at(dirfd.get(), rel, root / rel);
        verify_checksum(m, info.manifest, rel, root / rel, bytes);
        info.files.emplace_back(name, std::move(bytes));
    }
    if (m.has_opt) info.optimizer_step = m.opt_step;
    if (m.has_sched) {
        info.schedule_step = m.sched_step;
        info.schedule_hyper = m.sched_hyper;
    }
    return info;
}

std::vector<std::filesystem::path> remove_stale_checkpoint_temporaries(const std::filesystem::path& dir) {
    namespace fs = std::filesystem;
    const fs::path target = detail::target_path(dir);
    const std::string base = target.filename().string();
    auto ours = [&](const std::string& name) {
        for (const char* tag : {".tmp-", ".old-"}) {
            const std::string prefix = base + tag;
            if (name.size() != prefix.size() + 6 || name.compare(0, prefix.size(), prefix) != 0) continue;
            // mkdtemp's alphabet: [A-Za-z0-9].
            return std::all_of(name.begin() + static_cast<std::ptrdiff_t>(prefix.size()), name.end(), [](char c) {
                return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
            });
        }
        return false;
    };
    std::vector<fs::path> removed;
    std::error_code ec;
    fs::directory_iterator it(target.parent_path(), ec), end;
    if (ec) {
        if (ec == std::errc::no_such_file_or_directory) return removed;
        throw checkpoint_error(target.parent_path(), 0, "cannot list the directory: " + ec.message());
    }
    for (; it != end; it.increment(ec)) {
        const fs::path p = it->path();
        if (!ours(p.filename().string()) || !it->is_directory(ec) || it->is_symlink(ec)) continue;
        fs::remove_all(p, ec);
        if (ec) throw checkpoint_error(p, 0, "cannot remove a stale temporary directory: " + ec.message());
        removed.push_back(p);
    }
    if (ec) throw checkpoint_error(target.parent_path(), 0, "cannot list the directory: " + ec.message());
    return removed;
}

template void save_checkpoint<float>(const std::filesystem::path&, const parameter_set<float>&,
                                     const checkpoint_items<float>&);
template void save_checkpoint<double>(const std::filesystem::path&, const parameter_set<double>&,
                                      const checkpoint_items<double>&);
template void load_checkpoint<float>(const std::filesystem::path&, parameter_set<float>&,
                                     const checkpoint_items<float>&);
template void load_checkpoint<double>(const std::filesystem::path&, parameter_set<double>&,
                                      const checkpoint_items<double>&);
template void detail::save_checkpoint<float>(const std::filesystem::path&, const parameter_set<float>&,
                                             const checkpoint_items<float>&, const detail::save_options&);
template void detail::save_checkpoint<double>(const std::filesystem::path&, const parameter_set<double>&,
                                              const checkpoint_items<double>&, const detail::save_options&);

}  // namespace exprgrad::nn
