"""Weights of the Facility pallet (FRAME's weights.rs): nanoseconds of block import on one
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

# Facility.register, plus W_PER_CAPABILITY a declared capability.
# Measured: 190,386 ns; charged x1.5.
W_REGISTER = 290_000

# a declared capability.
# Measured: 1,043 ns; charged x1.5.
W_PER_CAPABILITY = 1_600

# a call reading and writing a few values (update, rpc url, rule sets, validators, suspend).
# Measured: 206,394 ns; charged x1.5.
W_SMALL = 310_000

# an auditor's act: verify, assess, certify, report an incident.
# Measured: 195,249 ns; charged x1.5.
W_AUDIT = 300_000

# Facility.check_compliance, plus W_PER_CERT a certification held.
# Measured: 262,489 ns; charged x1.5.
W_COMPLIANCE_BASE = 400_000

# a certification read by a compliance check.
# Measured: 4,430 ns; charged x1.5.
W_PER_CERT = 6_700
