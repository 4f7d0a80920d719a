"""Telemetry's weights: nanoseconds of one core (a block holds ``MAX_BLOCK_WEIGHT``)."""

# Re-measured with bench/telemetry.py (2026-11-23, one core, cold import: every signature
# checked, state root and write included): 12-reading batches cost ~150 us each, 100-reading
# batches ~177 us (a reading adds well under 1 us: checks and aggregates run in C). Charged:
# 229 us and 400 us (1.5x and 2.3x); a block of 100-reading batches is full at 500,000
# readings. The old charge (14 us a reading) was set when import was 8x slower, and cut
# blocks on the devnet at ~2/3 of what the author could apply.
W_SUBMIT_BASE = 50_000
W_PER_BATCH = 200_000  # a signature check, a Merkle root, the batch's records
W_PER_READING = 2_000  # checks, aggregates, its share of the state root
W_SMALL = 40_000
# Closing a twin's window: its aggregates read once and handed to the operations pallets
# (benchmark, maintenance, analytics, simulation), in on_initialize, for the closes queued.
# bench/operations.py (import on one core, state root included; 15 metrics, a class of 256
# ranked peers, the Analytics period closing in it; 2026-11-23): 1.8-3.6 ms a close across
# runs, whether plain, raising 7 alerts or completing a work order (at most one per close);
# --repeat 5: 2.0, 2.6 and 2.7 ms; queued, run by on_initialize: 1.7, 2.6 and 2.6 ms. It was
# 7-10.7 ms when this was set at 15 ms; 7.5 ms keeps a 2x margin over the worst measured.
W_WINDOW_CLOSE = 7_500_000
# Queueing a close (an entry, the queue's bounds): charged per batch, the bound (a batch
# closes at most its twin's window). Counting the closes exactly, as the weight once did,
# cost ~5 % of a loaded validator's CPU: every batch's readings surveyed again to weigh it.
W_CLOSE_QUEUE = 50_000
W_CLOSE_INIT = 10_000  # on_initialize reading the queue's bounds
