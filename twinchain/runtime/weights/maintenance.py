"""Weights of the Maintenance pallet (FRAME's weights.rs): nanoseconds of block import on one
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

# a call reading and writing a few values (thresholds, dismiss_alert, assign, the alarm
# lifecycle).
# Measured: 100,504 ns; charged x1.5.
W_SMALL = 160_000

# create, create_from_alert, start, claim_completion, cancel.
# Measured: 96,843 ns; charged x1.5.
W_ORDER = 150_000

# Maintenance.submit_prediction: an alert raised.
# Measured: 176,472 ns; charged x1.5.
W_PREDICT = 270_000

# schedule and set_line, plus W_SCHEDULE_PER_WINDOW a window of the line.
# Measured: 49,814 ns; charged x1.5.
W_SCHEDULE_BASE = 75_000

# a scheduled window of the line iterated.
# Measured: 3,162 ns; charged x1.5.
W_SCHEDULE_PER_WINDOW = 4_800

# inspect: payment, service record, parts, lifecycle, Analytics, facility.
# Measured: 410,590 ns; charged x1.5.
W_COMPLETE = 620_000

# on_initialize: the block's expiry queue read.
# Measured: 10,756 ns; charged x1.5.
W_INIT = 17_000

# a queued order read (and its queue entry removed).
# Measured: 11,106 ns; charged x1.5.
W_EXPIRY_READ = 17_000

# an order expired: escrow returned, provider stats, indexes.
# Measured: 75,874 ns; charged x1.5.
W_EXPIRE = 120_000

# Maintenance.submit_prognosis: an alert raised with its prognosis.
# Measured: 232,934 ns; charged x1.5.
W_PROGNOSIS = 350_000
