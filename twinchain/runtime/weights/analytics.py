"""Weights of the Analytics pallet (FRAME's weights.rs): nanoseconds of block import on one
core, state root and database write included.

Written by ``python -m bench.weights`` (``make weights``), which measures them and rewrites
this module; do not edit the values by hand.

Machine: none: set by hand from bench/telemetry.py and bench/operations.py runs on one core
Date: 2026-11-23 (the last hand measurement), carried over on 2026-12-06

These values were carried over from the constants the pallets declared before weights were
generated, unchanged; the next `make weights` replaces them with measured ones. Regenerating
them is a runtime change: fees, and so every state root, depend on them. Bump SPEC_VERSION
(twinchain/runtime/runtime.py) and re-record the golden chains
(tests/runtime/test_golden_roots.py, tests/node/test_golden_replay.py) in the same commit.
"""

# a call reading and writing a few values (ideal rate, planned time, rules).
W_SMALL = 120_000

# Analytics.anchor_report.
W_REPORT = 150_000

# a reward claim, plus W_CLAIM_PER_PERIOD a period read.
W_CLAIM = 200_000

# a period read by a claim.
W_CLAIM_PER_PERIOD = 15_000

# on_initialize reading the due keys.
W_INIT = 20_000

# one Due entry read and removed.
W_SWEEP = 20_000

# one period close in on_initialize: KPI record, facility record, baseline.
W_CLOSE = 400_000
