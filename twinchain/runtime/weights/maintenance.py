"""Weights of the Maintenance pallet (FRAME's weights.rs): nanoseconds of block import on one
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

# a call reading and writing a few values (thresholds, dismiss_alert, assign).
W_SMALL = 120_000

# create, create_from_alert, start, claim_completion, cancel.
W_ORDER = 300_000

# Maintenance.submit_prediction: an alert raised.
W_PREDICT = 240_000

# schedule and set_line, plus W_SCHEDULE_PER_WINDOW a window of the line.
W_SCHEDULE_BASE = 120_000

# a scheduled window of the line iterated.
W_SCHEDULE_PER_WINDOW = 8_000

# inspect: payment, service record, parts, lifecycle, Analytics, facility.
W_COMPLETE = 900_000

# on_initialize: the block's expiry queue read.
W_INIT = 20_000

# a queued order read (and its queue entry removed).
W_EXPIRY_READ = 20_000

# an order expired: escrow returned, provider stats, indexes.
W_EXPIRE = 180_000
