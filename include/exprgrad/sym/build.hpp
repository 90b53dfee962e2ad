// Smart constructors: the DSL's operators and functions. Each looks at its argument types and
// returns the simplified expression type, so every expression (and every derivative) is simplified
// as it is built. Rewrites used, identities of real numbers (not all of IEEE arithmetic):
//   constants folded (exact rationals); 0 + x, x + 0, x - 0, 1*x, x/1, x^1 -> x; 0*x, 0/x, x - x -> 0;
//   x^0 -> 1; constants gathered to the left of products (c1*(c2*x) -> (c1c2)*x, x/c -> (1/c)*x);
//   like terms collected (x + x -> 2*x, a*x - b*x -> (a-b)*x); repeated factors into integer powers
//   (x*x -> x^2, x^m * x^n -> x^(m+n) for integers m, n of one sign); (x^m)^n -> x^(mn) for integers;
//   negations pulled outwards and cancelled.
// A rewrite can change a result (docs/guide.md, "Simplification and IEEE values", with measured
// cases): it removes inf - inf and 0*inf (x - x, 0*x, 2*x - x at inf), skips intermediates that would
// overflow or underflow (1/3*(3*x) at 1e308), and rounds reassociated constants once (x/3, (x+1)+2).
//
// The parts, one concept each: sym/simplify.hpp (the views the rewrites use), sym/arithmetic.hpp (the
// operators), sym/powers.hpp, sym/functions.hpp, sym/raw_numbers.hpp (the rejection of raw numbers).
#pragma once

#include "exprgrad/sym/arithmetic.hpp"
#include "exprgrad/sym/functions.hpp"
#include "exprgrad/sym/powers.hpp"
#include "exprgrad/sym/raw_numbers.hpp"
#include "exprgrad/sym/simplify.hpp"
