"""Weights of the Equipment pallet (FRAME's weights.rs): nanoseconds of block import on one
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

# Equipment.mint, plus W_PER_SPEC_ENTRY a rated value or envelope entry.
W_MINT = 120_000

# a rated value or envelope entry.
W_PER_SPEC_ENTRY = 2_000

# a call reading and writing a few values (lifecycle, access, records, location).
W_SMALL = 40_000

# Equipment.transfer.
W_TRANSFER = 80_000

# Equipment.set_critical_multisig.
W_MULTISIG = 60_000
