"""Weights of the Equipment pallet (FRAME's weights.rs): nanoseconds of block import on one
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

# Equipment.mint, plus W_PER_SPEC_ENTRY a rated value or envelope entry.
# Measured: 248,733 ns; charged x1.5.
W_MINT = 380_000

# a rated value or envelope entry.
# Measured: 4,645 ns; charged x1.5.
W_PER_SPEC_ENTRY = 7_000

# a call reading and writing a few values (lifecycle, access, records, location).
# Measured: 209,574 ns; charged x1.5.
W_SMALL = 320_000

# Equipment.transfer.
# Measured: 222,873 ns; charged x1.5.
W_TRANSFER = 340_000

# Equipment.set_critical_multisig.
# Measured: 156,375 ns; charged x1.5.
W_MULTISIG = 240_000

# Equipment.register_class, plus W_PER_CLASS_METRIC a metric and W_PER_FAILURE_MODE a mode.
# Measured: 111,910 ns; charged x1.5.
W_REGISTER_CLASS = 170_000

# a metric of the class bound (or registered in Telemetry).
# Measured: 61,170 ns; charged x1.5.
W_PER_CLASS_METRIC = 92_000

# a failure mode of the class.
# Measured: 13,570 ns; charged x1.5.
W_PER_FAILURE_MODE = 21_000
