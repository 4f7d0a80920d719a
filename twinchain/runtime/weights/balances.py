"""Weights of the Balances pallet (FRAME's weights.rs): nanoseconds of block import on one
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

# transfer, transfer_keep_alive, force_transfer (to a new account).
# Measured: 88,457 ns; charged x1.5.
W_TRANSFER = 140_000

# Balances.force_set_balance.
# Measured: 94,312 ns; charged x1.5.
W_FORCE_SET_BALANCE = 150_000
