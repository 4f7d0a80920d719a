"""Weights of the Simulation pallet (FRAME's weights.rs): nanoseconds of block import on one
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

# Simulation.register_model, plus W_PER_PARAM_BYTE a byte of params.
# Measured: 43,642 ns; charged x1.5.
W_REGISTER = 66_000

# a byte of a model's params.
# Measured: 16 ns; charged x1.5.
W_PER_PARAM_BYTE = 25

# a call reading and writing a few values (deactivate_model, release_bond).
# Measured: 52,365 ns; charged x1.5.
W_SMALL = 79_000

# Simulation.anchor_scenario: inputs decoded and checked, the bond reserved.
# Measured: 93,778 ns; charged x1.5.
W_ANCHOR = 150_000

# a challenge, plus W_PER_PATH_STEP a unit of the scenario's work.
# Measured: 278,182 ns; charged x1.5.
W_CHALLENGE_BASE = 420_000

# a unit of work (path x step x schedule) of a challenge's re-run.
# Measured: 593 ns; charged x1.5.
W_PER_PATH_STEP = 890
