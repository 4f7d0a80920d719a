"""Weights of the System pallet (FRAME's weights.rs): nanoseconds of block import on one core,
state root and database write included.

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

# charged to every extrinsic on top of its call: decode, signature, nonce, fee.
EXTRINSIC_BASE_WEIGHT = 40_000

# System.remark, plus W_REMARK_PER_BYTE a byte.
W_REMARK = 10_000

# a byte of a remark (hashed).
W_REMARK_PER_BYTE = 1

# System.set_chain_name.
W_SET_CHAIN_NAME = 20_000

# System.schedule_upgrade: the version and the schedule read, the schedule written.
W_SCHEDULE_UPGRADE = 30_000

# System.cancel_upgrade: the schedule read and removed.
W_CANCEL_UPGRADE = 25_000
