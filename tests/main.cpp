// doctest's main, alone in its translation unit so that test files recompile quickly.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
