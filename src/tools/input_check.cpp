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

void check_read(const std::istream& in, std::string_view what) {
    if (in.bad())
        throw std::runtime_error("cannot read " + std::string(what) +
                                 (errno ? std::string(": ") + std::strerror(errno) : std::string()));
}

}  // namespace exprgrad::tools
