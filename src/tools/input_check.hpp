// Checks of what a command-line program reads itself (standard input, file arguments), so that a directory,
// a closed descriptor or a missing file is refused with a message instead of reading as empty input.
#pragma once

#include <cstddef>
#include <iosfwd>
#include <string>
#include <string_view>

namespace exprgrad::tools {

/// Throws std::runtime_error("standard input is closed") when descriptor 0 is not open, and
/// std::runtime_error("standard input is a directory, not a file or a stream") when it is a directory
/// (reading one gives no bytes and no error through iostreams). Anything else (a file, a pipe, a terminal,
/// /dev/null) passes. Example: `exprgrad tok decode < /` is refused.
void check_stdin();

/// Throws std::runtime_error naming `what` and the path (e.g. "FILES: 'x' is a directory, not a file" or
/// "--vocab: 'x': No such file or directory") unless `path` names something that can be opened as a file
/// (a regular file, a FIFO, a device). Example: check_input_file("FILES", "/tmp") throws.
void check_input_file(std::string_view what, const std::string& path);

/// Reads one line of `in` (up to '\n', which is dropped) into `line`, like std::getline, but refuses a line
/// longer than `max_line` bytes instead of growing without bound (a device such as /dev/zero, a file with no
/// newline): throws std::runtime_error("WHAT: a line longer than N bytes; ..."), naming `what` and the limit.
/// Returns false at the end of the input (or on a read error: call check_read after the loop). Pipes,
/// terminals and /dev/fd/N work as with std::getline. Example: `while (read_line_capped(in, l, 1 << 20, "FILES:
/// 'a'")) ...`.
bool read_line_capped(std::istream& in, std::string& line, std::size_t max_line, std::string_view what);

/// Throws std::runtime_error("cannot read WHAT: ...") when `in` failed with a read error (badbit), which
/// std::getline reports only as the end of the input.
void check_read(const std::istream& in, std::string_view what);

}  // namespace exprgrad::tools
