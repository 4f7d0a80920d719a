"""Weights of the Session pallet (FRAME's weights.rs): nanoseconds of block import on one core,
state root and database write included.

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

# Session.set_keys: one signature verified, the authority sets read, two entries written.
# Measured: 104,501 ns; charged x1.5.
W_SET_KEYS = 160_000

# Session.purge_keys: one entry read and up to two removed.
# Measured: -24,338 ns; charged x1.5.
W_PURGE_KEYS = 10_000

# One queued key made active at a session boundary (Authority.on_initialize).
# Measured: 6,535 ns; charged x1.5.
W_ENACT_KEY = 9_900

# One authority's entry read at a session boundary (its account, then its session key).
# Measured: 1,860 ns; charged x1.5.
W_READ_KEY = 2_800
