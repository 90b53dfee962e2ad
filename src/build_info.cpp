// The compiled part of the library keeps xtensor and xsimd types out of its interface, so its
// ABI does not depend on the instruction set; it only reports how it was configured.
#include "exprgrad/config.hpp"

namespace exprgrad {

const char* build_info() noexcept { return "exprgrad " EXPRGRAD_VERSION " (" EXPRGRAD_MARCH ", xsimd)"; }

}  // namespace exprgrad
