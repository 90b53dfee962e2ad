// Checks of the inputs a command-line program reads itself (contract in input_check.hpp).
#include "input_check.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <istream>
#include <stdexcept>
#include <string>

#include "strict_number.hpp"

namespace exprgrad::tools {

void check_stdin() {
    struct stat st {};
    if (fstat(0, &st) != 0) {
        if (errno == EBADF) throw std::runtime_error("standard input is closed");
        throw std::runtime_error(std::string("standard input: ") + std::strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) throw std::runtime_error("standard input is a directory, not a file or a stream");
}

void check_input_file(std::string_view what, const std::string& path) {
    const std::string where = std::string(what) + ": " + shown(path);
    if (path.empty()) throw std::runtime_error(where + " is an empty path");
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) throw std::runtime_error(where + ": " + std::strerror(errno));
    if (S_ISDIR(st.st_mode)) throw std::runtime_error(where + " is a directory, not a file");
}

bool read_line_capped(std::istream& in, std::string& line, std::size_t max_line, std::string_view what) {
    line.clear();
    // istream::getline into a fixed buffer, chunk by chunk: the line never holds more than max_line + one chunk,
    // and read errors still set badbit as with std::getline.
    char buffer[1 << 16];
    bool any = false;
    for (;;) {
        in.getline(buffer, sizeof buffer);
        const auto n = static_cast<std::size_t>(in.gcount());
        any = any || n > 0;
        if (in.bad()) return false;
        const bool full = in.fail() && !in.eof() && n == sizeof buffer - 1;  // no '\n' in this chunk yet
        const bool delimited = !in.fail() && !in.eof();                       // '\n' extracted, not stored
        line.append(buffer, delimited ? n - 1 : n);
        if (line.size() > max_line)
            throw std::runtime_error(std::string(what) + ": a line longer than " + std::to_string(max_line) +
                                     " bytes; refusing to read it (is it a text file?)");
        if (full) {
            in.clear();
            continue;
        }
        if (!delimited && in.eof() && any) in.clear(std::ios::eofbit);  // last line without '\n' counts
        return any;
    }
}

void check_read(const std::istream& in, std::string_view what) {
    if (in.bad())
        throw std::runtime_error("cannot read " + std::string(what) +
                                 (errno ? std::string(": ") + std::strerror(errno) : std::string()));
}

}  // namespace exprgrad::tools
