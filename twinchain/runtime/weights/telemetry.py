"""Weights of the Telemetry pallet (FRAME's weights.rs): nanoseconds of block import on one
core, state root and database write included.

Written by ``python -m bench.weights`` (``make weights``), which measures them and rewrites
this module; do not edit the values by hand.

Machine: none: set by hand from bench/telemetry.py and bench/operations.py runs on one core
Date: 2026-11-23 (the last hand measurement), carried over on 2026-12-06

These values were carried over from the constants the pallets declared before weights were
generated, unchanged; the next `make weights` replaces them with measured ones. W_PER_SUMMARY
(2026-12, issue 19: the chain takes commitments, no readings) was set by hand, between
W_SMALL and W_PER_BATCH: a summary's checks and its merge into a window aggregate;
the disclosure calls and anchor share W_SMALL. Regenerating them is a runtime change: fees,
and so every state root, depend on them. Bump SPEC_VERSION
(twinchain/runtime/runtime.py) and re-record the golden chains
(tests/runtime/test_golden_roots.py, tests/node/test_golden_replay.py) in the same commit.
"""

# a submit, on top of its batches.
W_SUBMIT_BASE = 50_000

# a batch commitment: its signature checked, its records and its window.
W_PER_BATCH = 200_000

# a public summary of a batch: its checks, its window aggregate, its share of the state
# root.
W_PER_SUMMARY = 20_000

# a call reading and writing a few values (devices, metrics, capture settings, disclosure
# policies and grants, anchored results).
W_SMALL = 40_000

# a twin's window close run by on_initialize: its aggregates handed to Benchmark, Maintenance,
# Analytics and Simulation (worst case: an order completes, 7 alerts, a period closes).
W_WINDOW_CLOSE = 7_500_000

# queueing a window close (charged per batch).
W_CLOSE_QUEUE = 50_000

# on_initialize reading the close queue's bounds.
W_CLOSE_INIT = 10_000
