"""Weights of the Facility pallet (FRAME's weights.rs): nanoseconds of block import on one
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

# Facility.register, plus W_PER_CAPABILITY a declared capability.
W_REGISTER = 80_000

# a declared capability.
W_PER_CAPABILITY = 2_000

# a call reading and writing a few values (update, rpc url, rule sets, validators,
# suspend).
W_SMALL = 40_000

# an auditor's act: verify, assess, certify, report an incident.
W_AUDIT = 60_000

# Facility.check_compliance, plus W_PER_CERT a certification held.
W_COMPLIANCE_BASE = 60_000

# a certification read by a compliance check.
W_PER_CERT = 3_000
