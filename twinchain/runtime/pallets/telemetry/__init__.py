"""Telemetry: device-signed commitments of the equipment twins' sensor and operational data.

The owner of a twin binds device keys to it (optionally pinned to one gateway). A device
signs each batch of its readings at the source; the readings go to the owner's facility
archive, and a gateway (Gateway role) submits only the batch's :class:`Commitment` (count,
time span, Merkle root, the summaries of the metrics the twin makes public, the device's
signature) in an extrinsic it signs itself. The wire format, the signing and the reading
proofs are the protocol's (:mod:`twinchain.protocol.telemetry`); on chain:

* every device signature is checked: all commitments of one extrinsic in one
  ``native.verify_batch`` call, or none at all when the executive verified them with the
  block's other signatures beforehand (:mod:`.signatures`); one bad signature fails the
  extrinsic;
* per-device sequence numbers reject duplicates and replays; gaps are recorded;
* a commitment lies in one aggregation window, and summarizes only metrics its twin makes
  public, consistently (at most its count, within its span);
* what needs no reading is checked here: a public summary outside the equipment's operating
  envelope, a batch from the future or stale raise ``BatchFlagged`` (no value): flagged,
  never dropped (:mod:`.ingest`). The per-reading rules (too fast, implausible jumps) are
  the archive's;
* each batch leaves its record (Merkle root, count, span); the public summaries merge into
  per-metric window aggregates (count, min, max, sum, last). Any single reading can be
  disclosed with a reading proof and checked against the on-chain root;
* a batch in a later window closes the twin's open one: the close is queued, and each
  block's ``on_initialize`` hands at most ``MAX_CLOSES_PER_BLOCK`` queued windows, oldest
  first, to the window-close listeners the runtime wires in (:mod:`.windows`), with the
  aggregates of the metrics public at the close.

Disclosure: each twin's policy (``set_disclosure``; default ``DEFAULT_PUBLIC``: condition
metrics public, production, scrap, material and energy private), later disclosures of a
metric's readings over a time range to one reader or everyone (``disclose``,
``withdraw_disclosure``), digests of results computed off chain (``anchor``: KPIs and
alerts of private metrics), and :meth:`Telemetry.may_read`, which the facility archive asks
before it serves raw readings.

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
    MAX_GRANTS,
    MAX_PUBLIC_METRICS,
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
    "MAX_GRANTS",
    "MAX_PUBLIC_METRICS",
    "Aggregate",
    "CaptureConfig",
    "DeviceInfo",
    "Telemetry",
    "forget_good_signatures",
    "remember_good_signatures",
]
