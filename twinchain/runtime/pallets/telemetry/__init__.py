"""Telemetry: device-signed sensor and operational data of the equipment twins.

The owner of a twin binds device keys to it (optionally pinned to one gateway). A device
signs each batch of its readings at the source; a gateway (Gateway role) submits batches in
an extrinsic it signs itself. The wire format, the signing and the reading proofs are the
protocol's (:mod:`twinchain.protocol.telemetry`); on chain:

* every device signature is checked: all batches of one extrinsic in one
  ``native.verify_batch`` call, or none at all when the executive verified them with the
  block's other signatures beforehand (:mod:`.signatures`); one bad signature fails the
  extrinsic;
* per-device sequence numbers reject duplicates and replays; gaps are recorded;
* readings are checked against the equipment's operating envelope (manufacturer spec) and the
  twin's capture configuration; out-of-range, too-fast, stale, from-the-future and
  implausible-jump readings raise ``ReadingFlagged`` events: flagged, never dropped
  (:mod:`.ingest`);
* the raw readings are not stored: each batch leaves its Merkle root (over the readings'
  leaves) and the per-metric aggregates (count, min, max, sum, last) of fixed time windows.
  Any single reading can later be disclosed with a reading proof and checked against the
  on-chain root;
* a reading in a later window closes the twin's open one: the close is queued, and each
  block's ``on_initialize`` hands at most ``MAX_CLOSES_PER_BLOCK`` queued windows, oldest
  first, to the window-close listeners the runtime wires in (:mod:`.windows`).

Production counts, good and bad parts, material and energy use are metrics like the others
(see ``DEFAULT_METRICS`` in the protocol).

Laid out FRAME-style: :mod:`.pallet` (storage, events, errors, calls, hooks, API),
:mod:`.types` (constants, records, packed storage encodings), :mod:`.config` (the sibling
APIs it uses), the features :mod:`.ingest`, :mod:`.windows` and :mod:`.signatures`; its
weights are :mod:`twinchain.runtime.weights.telemetry`.
"""

from twinchain.runtime.pallets.telemetry.pallet import Telemetry
from twinchain.runtime.pallets.telemetry.signatures import (
    forget_good_signatures,
    remember_good_signatures,
)
from twinchain.runtime.pallets.telemetry.types import (
    DEFAULT_CAPTURE,
    DEFAULT_MAX_AGE_MS,
    DEFAULT_WINDOW_MS,
    FLAGS,
    I128,
    MAX_CLOSES_PER_BLOCK,
    MAX_DEVICES_PER_TWIN,
    Aggregate,
    CaptureConfig,
    DeviceInfo,
)

__all__ = [
    "DEFAULT_CAPTURE",
    "DEFAULT_MAX_AGE_MS",
    "DEFAULT_WINDOW_MS",
    "FLAGS",
    "I128",
    "MAX_CLOSES_PER_BLOCK",
    "MAX_DEVICES_PER_TWIN",
    "Aggregate",
    "CaptureConfig",
    "DeviceInfo",
    "Telemetry",
    "forget_good_signatures",
    "remember_good_signatures",
]
