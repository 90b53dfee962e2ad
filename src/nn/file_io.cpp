// The project's one set of file writers (see file_io.hpp).
#include "file_io.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>
#include <system_error>

#include <exprgrad/text/vocab_io.hpp>

namespace exprgrad::detail {

namespace fs = std::filesystem;

std::string errno_text(int e) { return std::error_code(e, std::generic_category()).message(); }

namespace {

// Writes all of `bytes`, retrying short writes and EINTR; returns 0 or the errno of the failure.
int write_all(int fd, std::string_view bytes) {
    std::size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (w < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        if (w == 0) return EIO;
        done += static_cast<std::size_t>(w);
    }
    return 0;
}

enum class kind { missing, regular, chr, other_special, directory };

struct resolved {
    fs::path path;
    kind k;
    mode_t mode = 0;
};

const char* describe(mode_t m) {
    if (S_ISFIFO(m)) return "a FIFO";
    if (S_ISSOCK(m)) return "a socket";
    if (S_ISBLK(m)) return "a block device";
    return "not a regular file";
}

// What finally gets written, and what it is.
resolved resolve(const fs::path& given) {
    const fs::path p = follow_symlinks(given);
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0) {
        const int e = errno;
        if (e == ENOENT) return {p, kind::missing};
        throw io_error(p, "cannot inspect it: " + errno_text(e));
    }
    if (S_ISDIR(st.st_mode)) return {p, kind::directory, st.st_mode};
    if (S_ISREG(st.st_mode)) return {p, kind::regular, st.st_mode};
    if (S_ISCHR(st.st_mode)) return {p, kind::chr, st.st_mode};
    return {p, kind::other_special, st.st_mode};
}

// A character device is written in place: it cannot be replaced (that would turn /dev/null into a file),
// and it holds no old contents to protect.
void write_device(const fs::path& shown, const fs::path& dev, std::string_view bytes) {
    fd_guard fd(::open(dev.c_str(), O_WRONLY | O_NOCTTY | O_NOFOLLOW | O_CLOEXEC));
    if (fd.get() < 0) throw io_error(shown, "cannot open the device for writing: " + errno_text(errno));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0 || !S_ISCHR(st.st_mode))
        throw io_error(shown, "changed while being opened; not written");
    if (const int e = write_all(fd.get(), bytes)) throw io_error(shown, "write failed: " + errno_text(e));
    // Devices that cannot sync (EINVAL, EROFS, ENOTSUP) have nothing to make durable.
    if (::fsync(fd.get()) != 0 && errno != EINVAL && errno != EROFS && errno != ENOTSUP)
        throw io_error(shown, "cannot flush the device: " + errno_text(errno));
    if (fd.close_checked() != 0) throw io_error(shown, "cannot close the device: " + errno_text(errno));
}

}  // namespace

fs::path follow_symlinks(const fs::path& path) {
    fs::path p = path;
    for (int hops = 0; hops <= 40; ++hops) {
        struct stat st {};
        if (::lstat(p.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) return p;  // not a link (or missing)
        std::error_code ec;
        const fs::path link = fs::read_symlink(p, ec);
        if (ec) throw io_error(p, "cannot read the symbolic link: " + ec.message());
        p = link.is_absolute() ? link : p.parent_path() / link;
    }
    throw io_error(path, "too many levels of symbolic links");
}

void write_new_file(const fs::path& path, std::string_view bytes) {
    fd_guard fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (fd.get() < 0) throw io_error(path, "cannot create file: " + errno_text(errno));
    if (const int e = write_all(fd.get(), bytes)) throw io_error(path, "cannot write file: " + errno_text(e));
    if (::fsync(fd.get()) != 0) throw io_error(path, "cannot fsync file: " + errno_text(errno));
    if (fd.close_checked() != 0) throw io_error(path, "cannot close file: " + errno_text(errno));
}

void fsync_dir(const fs::path& path) {
    fd_guard fd(::open(path.empty() ? "." : path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd.get() < 0) throw io_error(path, "cannot open directory: " + errno_text(errno));
    if (::fsync(fd.get()) != 0 && errno != EINVAL) throw io_error(path, "cannot fsync directory: " + errno_text(errno));
}

void write_file_atomically(const fs::path& path, std::string_view bytes) {
    const resolved r = resolve(path);
    // Messages name what the user gave, and the resolved target where a link led elsewhere.
    const fs::path shown = r.path == path ? path : fs::path(path.string() + " (-> " + r.path.string() + ")");
    switch (r.k) {
        case kind::directory:
            throw io_error(shown, "is a directory; refusing to replace it with a file");
        case kind::other_special:
            throw io_error(shown, std::string("is ") + describe(r.mode) + "; refusing to write to or replace it");
        case kind::chr:
            write_device(shown, r.path, bytes);
            return;
        case kind::missing:
        case kind::regular:
            break;
    }
    std::string tmp = r.path.string() + ".tmp.XXXXXX";
    const int raw = ::mkstemp(tmp.data());
    if (raw < 0) throw io_error(shown, "cannot create a temporary file next to it: " + errno_text(errno));
    fd_guard fd(raw);
    auto fail = [&](const std::string& what, int e) {
        ::unlink(tmp.c_str());
        throw io_error(shown, what + ": " + errno_text(e));
    };
    if (const int e = write_all(fd.get(), bytes)) fail("write failed", e);
    // mkstemp creates 0600: keep the replaced file's permissions, or make an ordinary 0644 file.
    (void)::fchmod(fd.get(), r.k == kind::regular ? (r.mode & 07777) : 0644);
    if (::fsync(fd.get()) != 0) fail("cannot flush the temporary file", errno);
    if (fd.close_checked() != 0) fail("cannot close the temporary file", errno);
    if (::rename(tmp.c_str(), r.path.c_str()) != 0) fail("cannot rename the temporary file over it", errno);
    fsync_dir(r.path.parent_path());
}

void fault_point(std::string_view point) {
    const char* want = std::getenv("EXPRGRAD_FAULT");
    if (want != nullptr && point == want) ::_exit(86);
}

}  // namespace exprgrad::detail

namespace exprgrad::text {

// Declared in text/vocab_io.hpp; the one atomic writer lives in detail (file_io.hpp).
void write_file_atomically(const std::string& path, std::string_view content) {
    if (path.empty()) throw std::invalid_argument("write_file_atomically: empty path (no file name given)");
    detail::write_file_atomically(path, content);  // io_error is a std::runtime_error naming the file
}

}  // namespace exprgrad::text
