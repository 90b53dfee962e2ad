// Internal (not installed): the one set of file writers of the project. Everything the library and its
// programs write goes through here: checkpoints (write_new_file + fsync_dir inside their staging
// directory), tokenizer vocabularies, tiny_lm's history, report and plot (write_file_atomically, which
// text::write_file_atomically forwards to).
#pragma once

#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>

#include <sys/stat.h>
#include <unistd.h>

namespace exprgrad::detail {

/// An I/O failure: what() is "<path>: <problem>"; path() and problem() give the parts.
class io_error : public std::runtime_error {
  public:
    io_error(std::filesystem::path path, const std::string& problem)
        : std::runtime_error(path.string() + ": " + problem), path_(std::move(path)), problem_(problem) {}
    const std::filesystem::path& path() const noexcept { return path_; }
    const std::string& problem() const noexcept { return problem_; }

  private:
    std::filesystem::path path_;
    std::string problem_;
};

/// strerror-like text of an errno value (locale independent).
std::string errno_text(int e);

/// Replaces what `path` names with `bytes`, so that a reader (or a crash) sees the old or the new
/// contents, never a mix, and never destroys what is not a regular file:
///  - a symbolic link is followed (a chain too, at most 40 links; a dangling one names the file to
///    create): the temporary file is made next to the final target and renamed onto it, so the link
///    stays a link and its target is updated;
///  - a missing file or a regular file: temporary `<target>.tmp.XXXXXX` in the same directory, written,
///    fsynced, renamed over the target, then the directory is fsynced; an existing file keeps its
///    permission bits, a new one gets 0644 (less the umask is not applied: as the old writer did);
///  - a character device (/dev/null, /dev/full, a terminal) is written directly, without truncation or
///    replacement; a write error (ENOSPC on /dev/full) is reported;
///  - a directory, a FIFO (opening it could block forever), a socket or a block device is refused.
/// Throws io_error naming the path (the one given; the resolved target when different) and the problem.
void write_file_atomically(const std::filesystem::path& path, std::string_view bytes);

/// Where a chain of symbolic links at `path` ends (the last component is followed, at most 40 links;
/// relative links from the link's directory): `path` itself if it is no link, the missing final name if
/// the chain dangles. Throws io_error on a loop or an unreadable link. Example: with `ckpt -> runs/7`,
/// follow_symlinks("ckpt") == "runs/7".
std::filesystem::path follow_symlinks(const std::filesystem::path& path);

/// Creates `path` (which must not exist: O_EXCL), writes `bytes`, fsyncs and closes it, checking every
/// step. For files inside a private staging directory. Throws io_error.
void write_new_file(const std::filesystem::path& path, std::string_view bytes);

/// Makes a directory's entries durable (fsync of the directory; EINVAL, a file system that cannot sync
/// directories, is ignored). Throws io_error.
void fsync_dir(const std::filesystem::path& path);

/// Testing hook (fault injection). If the environment variable EXPRGRAD_FAULT equals `point`, the process
/// ends at once with _exit(86): no unwinding, no flushing, no cleanup, as a SIGKILL at that instant would
/// leave the files. Points: "ckpt_staged" (save_checkpoint: the staging directory is complete, nothing
/// renamed yet), "ckpt_exchanged" (the new checkpoint is in place, the old one still under the staging
/// name), and tiny_lm's own "tokenizer_written" and "ckpt_saved" (checkpoint saved, history.tsv not yet
/// rewritten). Costs one getenv per call; not for production use.
void fault_point(std::string_view point);

/// What a file that is not a regular file is, for messages such as "PATH: is a FIFO, not a regular file":
/// "is a FIFO", "is a directory", "is a device", "is a socket" or "is of an unknown type".
inline const char* file_kind(mode_t m) {
    if (S_ISFIFO(m)) return "is a FIFO";
    if (S_ISDIR(m)) return "is a directory";
    if (S_ISCHR(m) || S_ISBLK(m)) return "is a device";
    if (S_ISSOCK(m)) return "is a socket";
    return "is of an unknown type";
}

/// Owns a file descriptor: closes it when destroyed; close_checked() closes it now and returns close's
/// result, where a deferred write error shows up.
class fd_guard {
  public:
    explicit fd_guard(int fd) : fd_(fd) {}
    fd_guard(const fd_guard&) = delete;
    fd_guard& operator=(const fd_guard&) = delete;
    ~fd_guard() {
        if (fd_ >= 0) ::close(fd_);
    }
    int get() const noexcept { return fd_; }
    // Closes now and reports close's error (a deferred write error shows up there).
    int close_checked() noexcept {
        const int r = ::close(fd_);
        fd_ = -1;
        return r;
    }

  private:
    int fd_;
};

}  // namespace exprgrad::detail
