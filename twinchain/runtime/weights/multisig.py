"""Weights of the Multisig pallet (FRAME's weights.rs): nanoseconds of block import on one
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

# as_multi and as_multi_threshold_1 on top of the call they dispatch.
MULTISIG_OVERHEAD = 60_000

# Multisig.approve_as_multi.
W_APPROVE = 50_000

# Multisig.cancel_as_multi.
W_CANCEL = 40_000
