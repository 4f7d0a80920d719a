"""Weights of the Telemetry pallet (FRAME's weights.rs): nanoseconds of block import on one
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

# a submit, on top of its batches.
# Measured: 149,371 ns; charged x1.5.
W_SUBMIT_BASE = 230_000

# a batch commitment: its signature checked, its records and its window.
# Measured: 46,703 ns; charged x1.5.
W_PER_BATCH = 71_000

# a public summary of a batch: its checks, its window aggregate, its share of the state root.
# Measured: 9,506 ns; charged x1.5.
W_PER_SUMMARY = 15_000

# a call reading and writing a few values (devices, metrics, capture settings, disclosure
# policies and grants, anchored results).
# Measured: 156,835 ns; charged x1.5.
W_SMALL = 240_000

# a twin's window close run by on_initialize: its aggregates handed to Benchmark, Maintenance,
# Analytics and Simulation (worst case: an order completes, 7 alerts, a period closes).
# Measured: 2,807,085 ns; charged x1.5.
W_WINDOW_CLOSE = 4_300_000

# queueing a window close (charged per batch).
# Measured: 87,985 ns; charged x1.5.
W_CLOSE_QUEUE = 140_000

# on_initialize reading the close queue's bounds.
# Measured: 3,606 ns; charged x1.5.
W_CLOSE_INIT = 10_000
