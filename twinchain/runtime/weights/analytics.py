"""Weights of the Analytics pallet (FRAME's weights.rs): nanoseconds of block import on one
core, state root and database write included.

Written by ``python -m bench.weights`` (``make weights``), which measures them and rewrites
this module; do not edit the values by hand.

Machine: AMD EPYC, one core of 2, Python 3.11.7, native extension, Linux 6.18.44-fc-v1272
Date: 2026-12-06

Measured by bench.weights (best of 3): each weight is its measured cost times the margin,
rounded up to two significant digits. Regenerating them is a runtime change: fees, and so
every state root, depend on them. Bump SPEC_VERSION (twinchain/runtime/runtime.py) and
re-record the golden chains (tests/runtime/test_golden_roots.py,
tests/node/test_golden_replay.py) in the same commit.
"""

# a call reading and writing a few values (ideal rate, planned time, rules).
# Measured: 28,463 ns; charged x1.5.
W_SMALL = 43_000

# Analytics.anchor_report.
# Measured: 119,570 ns; charged x1.5.
W_REPORT = 180_000

# a reward claim, plus W_CLAIM_PER_PERIOD a period read.
# Measured: 123,096 ns; charged x1.5.
W_CLAIM = 190_000

# a period read by a claim.
# Measured: 9,654 ns; charged x1.5.
W_CLAIM_PER_PERIOD = 15_000

# on_initialize reading the due keys.
# Measured: 6,270 ns; charged x1.5.
W_INIT = 10_000

# one Due entry read and removed.
# Measured: 10,245 ns; charged x1.5.
W_SWEEP = 16_000

# one period close in on_initialize: KPI record, facility record, baseline.
# Measured: 154,984 ns; charged x1.5.
W_CLOSE = 240_000
