// A sub-header included first gets the same guard (every public header includes config.hpp first).
// std: c++17
// expect: exprgrad needs C++20: compile with -std=c++20
#include <exprgrad/nn/parameters.hpp>
#include <exprgrad/sym.hpp>
int main() {}
