// The language-standard guard. exprgrad is written in C++20 (concepts, class-type template
// parameters, defaulted comparisons, <numbers>): under an older standard a header would otherwise fail
// with thousands of lines starting deep inside it (g++ 12 defaults to C++17). Every public header
// reaches this file before any C++20 construct of its own, directly or through the first header it
// includes, so this is the first error whichever exprgrad header comes first (tests/tools/
// compile_fail.py --headers checks each one). Not generated: headers that need no build configuration
// (text/, math/) include it from the source tree alone.
#pragma once

#if !defined(__cplusplus) || __cplusplus < 202002L
#error "exprgrad needs C++20: compile with -std=c++20 (`pkg-config --cflags exprgrad` includes it)"
#endif
