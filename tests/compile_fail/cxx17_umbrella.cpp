// The README's build line without -std=c++20 (g++ 12 defaults to C++17) printed 3822 lines; the
// first error must say what to do.
// std: c++17
// expect: exprgrad needs C++20: compile with -std=c++20
#include <exprgrad/exprgrad.hpp>
int main() {}
