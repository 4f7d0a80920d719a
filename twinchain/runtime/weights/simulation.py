"""Weights of the Simulation pallet (FRAME's weights.rs): nanoseconds of block import on one
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

# Simulation.register_model, plus W_PER_PARAM_BYTE a byte of params.
W_REGISTER = 120_000

# a byte of a model's params.
W_PER_PARAM_BYTE = 20

# a call reading and writing a few values (deactivate_model, release_bond).
W_SMALL = 120_000

# Simulation.anchor_scenario: inputs decoded and checked, the bond reserved.
W_ANCHOR = 300_000

# a challenge, plus W_PER_PATH_STEP a unit of the scenario's work.
W_CHALLENGE_BASE = 200_000

# a unit of work (path x step x schedule) of a challenge's re-run.
W_PER_PATH_STEP = 2_000
