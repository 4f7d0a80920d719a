"""Weights of the Council pallet (FRAME's weights.rs): nanoseconds of block import on one core,
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

# Council.propose: membership checked, the call decoded and classified, the motion stored.
# Measured: 90,353 ns; charged x1.5.
W_PROPOSE = 140_000

# a byte of a proposed call (hashed and stored), per byte of the length bound.
# Measured: 16 ns; charged x1.5.
W_PROPOSE_PER_BYTE = 24

# Council.vote: the motion read and written back with the vote.
# Measured: 53,162 ns; charged x1.5.
W_VOTE = 80_000

# Council.close, on top of the weight bound of the call it may dispatch.
# Measured: 90,031 ns; charged x1.5.
W_CLOSE = 140_000

# Council.sync_member: membership and the open motions' votes updated, plus W_SYNC_PER_FACILITY
# a registered facility.
# Measured: 56,763 ns; charged x1.5.
W_SYNC_MEMBER = 86_000

# a registered facility read by Council.sync_member.
# Measured: 5,888 ns; charged x1.5.
W_SYNC_PER_FACILITY = 8_900

# Council.set_motion_duration.
# Measured: 12,538 ns; charged x1.5.
W_SET_MOTION_DURATION = 19_000
