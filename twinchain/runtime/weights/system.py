"""Weights of the System pallet (FRAME's weights.rs): nanoseconds of block import on one core,
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

# charged to every extrinsic on top of its call: decode, signature, nonce, fee.
# Measured: 122,763 ns; charged x1.5.
EXTRINSIC_BASE_WEIGHT = 190_000

# System.remark, plus W_REMARK_PER_BYTE a byte.
# Measured: 3,676 ns; charged x1.5.
W_REMARK = 10_000

# a byte of a remark (hashed).
# Measured: 2 ns; charged x1.5.
W_REMARK_PER_BYTE = 3

# System.set_chain_name.
# Measured: -5,094 ns; charged x1.5.
W_SET_CHAIN_NAME = 10_000

# System.schedule_upgrade: the version and the schedule read, the schedule written.
# Measured: 9,308 ns; charged x1.5.
W_SCHEDULE_UPGRADE = 14_000

# System.cancel_upgrade: the schedule read and removed.
# Measured: 2,135 ns; charged x1.5.
W_CANCEL_UPGRADE = 10_000
