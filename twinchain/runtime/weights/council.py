"""Weights of the Council pallet (FRAME's weights.rs): nanoseconds of block import on one core,
state root and database write included.

Written by ``python -m bench.weights`` (``make weights``), which measures them and rewrites
this module; do not edit the values by hand.

Machine: none: set by hand on 2026-12-06, when the pallet was added, by analogy with the
Multisig pallet's weights (a motion's record is read and written like a pending multisig
operation); bench/weights has no council measurement yet, one core
Date: 2026-12-06 (hand-set, not measured)

Regenerating them is a runtime change: fees, and so every state root, depend on them. Bump
SPEC_VERSION (twinchain/runtime/runtime.py) and re-record the golden chains
(tests/runtime/test_golden_roots.py, tests/node/test_golden_replay.py) in the same commit.
"""

# Council.propose: membership checked, the call decoded and classified, the motion stored.
W_PROPOSE = 80_000

# a byte of a proposed call (hashed and stored), per byte of the length bound.
W_PROPOSE_PER_BYTE = 2

# Council.vote: the motion read and written back with the vote.
W_VOTE = 50_000

# Council.close, on top of the weight bound of the call it may dispatch.
W_CLOSE = 60_000

# Council.sync_member: membership and the open motions' votes updated, plus
# W_SYNC_PER_FACILITY a registered facility (each is read to find the account's own).
W_SYNC_MEMBER = 200_000

# a registered facility read by Council.sync_member.
W_SYNC_PER_FACILITY = 2_000

# Council.set_motion_duration.
W_SET_MOTION_DURATION = 20_000
