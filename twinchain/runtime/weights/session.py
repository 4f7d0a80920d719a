"""Weights of the Session pallet (FRAME's weights.rs): nanoseconds of block import on one
core, state root and database write included.

Written by ``python -m bench.weights`` (``make weights``), which measures them and rewrites
this module; do not edit the values by hand.

Machine: none: set by hand on 2026-12-06 (not yet measured by ``make weights``), from the
Authority pallet's measured-by-hand weights: set_keys checks one BIP-340 signature (half an
equivocation report's two) and writes two map entries; one core
Date: 2026-12-06 (hand-set, not measured)

Regenerating them is a runtime change: fees, and so every state root, depend on them. Bump
SPEC_VERSION (twinchain/runtime/runtime.py) and re-record the golden chains
(tests/runtime/test_golden_roots.py, tests/node/test_golden_replay.py) in the same commit.
"""

# Session.set_keys: one signature verified, the authority sets read, two entries written.
W_SET_KEYS = 250_000

# Session.purge_keys: one entry read and up to two removed.
W_PURGE_KEYS = 30_000

# One queued key made active at a session boundary (Authority.on_initialize).
W_ENACT_KEY = 30_000

# One authority's entry read at a session boundary (its account, then its session key).
W_READ_KEY = 2_000
