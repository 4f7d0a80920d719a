"""Weights of the Multisig pallet (FRAME's weights.rs): nanoseconds of block import on one
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

# as_multi and as_multi_threshold_1 on top of the call they dispatch.
# Measured: 49,486 ns; charged x1.5.
MULTISIG_OVERHEAD = 75_000

# Multisig.approve_as_multi.
# Measured: 53,023 ns; charged x1.5.
W_APPROVE = 80_000

# Multisig.cancel_as_multi.
# Measured: 37,972 ns; charged x1.5.
W_CANCEL = 57_000
