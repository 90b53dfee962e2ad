#!/usr/bin/env python3
# Exact log Z and entropy of notes T2 ("ABC"*k, A=1.0 B=1.2 C=1.5 AB=1.6 BC=1.7 ABC=1.8) with 60-digit
# Decimal arithmetic: Z and S = sum of weight*score by a forward DP, H = log Z - alpha * S / Z.
from decimal import Decimal, getcontext
getcontext().prec = 60
P = {'A': 1.0, 'B': 1.2, 'C': 1.5, 'AB': 1.6, 'BC': 1.7, 'ABC': 1.8}
def exact(text, a):
    n = len(text); Z = [Decimal(0)] * (n + 1); S = [Decimal(0)] * (n + 1); Z[0] = Decimal(1)
    a = Decimal(repr(a))
    for e in range(1, n + 1):
        for s in range(max(0, e - 3), e):
            t = text[s:e]
            if t in P:
                w = (a * Decimal(repr(P[t]))).exp()
                Z[e] += Z[s] * w; S[e] += S[s] * w + Z[s] * w * Decimal(repr(P[t]))
    lz = Z[n].ln(); return lz, lz - a * S[n] / Z[n]
for k, a in [(1, 0.0), (1, 1.0), (1, 30.0), (20, 30.0), (200, 40.0)]:
    lz, h = exact('ABC' * k, a)
    print(k, a, '%.20e' % lz, '%.20e' % h)
