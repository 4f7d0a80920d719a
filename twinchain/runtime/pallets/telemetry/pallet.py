"""The Telemetry pallet: storage, events, errors, calls, hooks and its API to the others."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twinchain.primitives.codec import (
    H256,
    U8,
    U16,
    U32,
    U64,
    AccountId,
    Bool,
    Option,
    Str,
    Tuple,
    Vec,
)
from twinchain.primitives.keys import is_valid_public, parse_account
from twinchain.protocol.classdef import FIRST_CLASS_METRIC_ID
from twinchain.protocol.telemetry import (
    BATCH_CHUNK,
    DEFAULT_METRICS,
    DEFAULT_PUBLIC,
    MAX_BATCHES,
    MAX_FUTURE_DRIFT_MS,
    MAX_METRIC_NAME,
    MAX_PUBLIC,
    MAX_READINGS,
    MAX_UNIT,
    BatchRecord,
    Commitment,
    MetricInfo,
    MetricKind,
    Triple,
    chunk_record,
    verify_device_signatures,
)
from twinchain.runtime.framework import (
    ROOT,
    SIGNED,
    DecodedCall,
    DispatchError,
    Origin,
    Pallet,
    PalletErrors,
    PalletEvents,
    StorageDoubleMap,
    StorageMap,
    StorageValue,
    call,
    ensure_root,
    ensure_signed,
)
from twinchain.runtime.pallets.equipment.types import OPERATE, READ_TELEMETRY, TwinId
from twinchain.runtime.pallets.roles import DEVICE, FACILITY_OPERATOR, GATEWAY
from twinchain.runtime.pallets.telemetry import ingest, signatures, windows
from twinchain.runtime.pallets.telemetry.config import Config
from twinchain.runtime.pallets.telemetry.ingest import IngestContext
from twinchain.runtime.pallets.telemetry.types import (
    BATCH_LOG_CHUNK,
    BATCH_REF_SIZE,
    BATCH_WIDE,
    DEFAULT_CAPTURE,
    DEFAULT_MAX_AGE_MS,
    DEFAULT_WINDOW_MS,
    FLAGS,
    MAX_DEVICES_PER_TWIN,
    MAX_GRANTS,
    MAX_PUBLIC_METRICS,
    Aggregate,
    AnchoredResult,
    BatchRecords,
    BatchRefs,
    CaptureConfig,
    CaptureTable,
    DeviceInfo,
    DisclosureGrant,
    Flag,
    MetricSet,
    WindowAggregates,
)
from twinchain.runtime.weights import telemetry as weights

# Ids a class's new metric skips at most because governance took them (bounds the call).
MAX_ID_PROBES = 64


class Telemetry(Pallet):
    name = "Telemetry"
    config: Config

    Metrics = StorageMap(U16, MetricInfo.wire_type(), doc="Registered metrics.")
    WindowMs = StorageValue(U64, DEFAULT_WINDOW_MS, doc="Length of an aggregation window.")
    Devices = StorageMap(AccountId, DeviceInfo.wire_type(), doc="Device keys and their state.")
    TwinDevices = StorageDoubleMap(TwinId, AccountId, Bool, doc="Active devices of each twin.")
    TwinDeviceCount = StorageMap(TwinId, U32, 0, doc="Active devices per twin.")
    Capture = StorageMap(
        TwinId,
        CaptureTable(),
        doc="Capture frequency per twin, by metric (one value: a batch reads it once).",
    )
    BatchChunks = StorageDoubleMap(
        AccountId,
        U64,
        BatchRecords(BATCH_CHUNK),
        b"",
        doc="Batch records (roots) by device and chunk (sequence // BATCH_CHUNK), packed; "
        "read one with chunk_record.",
    )
    TwinBatchLog = StorageMap(
        TwinId,
        Tuple(U64, BatchRefs(BATCH_LOG_CHUNK)),
        (0, b""),
        doc="Batches accepted per twin, and the (device, seq) of the latest ones: those since "
        "the last full chunk.",
    )
    TwinBatchChunks = StorageDoubleMap(
        TwinId,
        U64,
        BatchRefs(BATCH_LOG_CHUNK),
        doc="(device, seq) of each twin's batches in order, in full chunks by chunk index.",
    )
    Aggregates = StorageDoubleMap(
        TwinId,
        U64,
        WindowAggregates(),
        doc="Per-metric aggregates of each twin's windows, by window start (ms).",
    )
    OpenWindow = StorageMap(
        TwinId, U64, doc="Start of each twin's latest window with readings (not yet closed)."
    )
    CloseQueue = StorageMap(
        U64,
        Tuple(TwinId, U64, U64),
        doc="Closed windows (twin, start, window ms) whose hooks have not run, by position.",
    )
    CloseQueueBounds = StorageValue(
        Tuple(U64, U64), (0, 0), doc="CloseQueue's first position and the next free one."
    )
    DefaultPublic = StorageValue(
        MetricSet(),
        DEFAULT_PUBLIC,
        doc="The disclosure policy of a twin that set none: its public metrics.",
    )
    Disclosure = StorageMap(
        TwinId, MetricSet(), doc="Each twin's public metrics, once its owner set them."
    )
    Grants = StorageDoubleMap(
        TwinId,
        U32,
        DisclosureGrant.wire_type(),
        doc="Later disclosures of a twin's readings (a metric, a time range, a reader), by id.",
    )
    GrantIds = StorageMap(
        TwinId, Tuple(U32, U32), (0, 0), doc="Each twin's next grant id and live grants."
    )
    Anchors = StorageDoubleMap(
        TwinId,
        U32,
        AnchoredResult.wire_type(),
        doc="Digests of results computed off chain over a twin's data, by id.",
    )
    AnchorCount = StorageMap(TwinId, U32, 0, doc="Results anchored per twin.")
    # Spec 5: equipment classes name their metrics; a class's metric binds the registered
    # metric of its name or gets the next free id at or above FIRST_CLASS_METRIC_ID.
    MetricIds = StorageMap(
        Str(MAX_METRIC_NAME), U16, doc="Each metric name's id (the lowest, if two share it)."
    )
    NextMetricId = StorageValue(
        U16, FIRST_CLASS_METRIC_ID, doc="Where the next metric a class brings looks for an id."
    )

    class Event(PalletEvents):
        MetricRegistered = (("metric", U16), ("name", Str(MAX_METRIC_NAME)))
        DeviceBound = (("device", AccountId), ("twin", TwinId), ("gateway", Option(AccountId)))
        DeviceUnbound = (("device", AccountId), ("twin", TwinId))
        CaptureConfigured = (
            ("twin", TwinId),
            ("metric", U16),
            ("min_interval_ms", U32),
            ("max_age_ms", U64),
        )
        BatchAccepted = (
            ("twin", TwinId),
            ("device", AccountId),
            ("seq", U64),
            ("root", H256),
            ("count", U32),
            ("flagged", U32),
        )
        SequenceGap = (("device", AccountId), ("expected", U64), ("got", U64))
        WindowClosed = (("twin", TwinId), ("start", U64))
        WindowCloseFailed = (("twin", TwinId), ("start", U64))
        BatchFlagged = (
            ("twin", TwinId),
            ("device", AccountId),
            ("seq", U64),
            ("metric", U16),
            ("flag", Flag),
        )
        DisclosureChanged = (("twin", TwinId), ("metric", U16), ("public", Bool))
        WindowDisclosed = (
            ("twin", TwinId),
            ("id", U32),
            ("metric", U16),
            ("from_ms", U64),
            ("to_ms", U64),
            ("reader", Option(AccountId)),
        )
        DisclosureWithdrawn = (("twin", TwinId), ("id", U32))
        ResultAnchored = (
            ("twin", TwinId),
            ("id", U32),
            ("kind", U8),
            ("from_ms", U64),
            ("to_ms", U64),
            ("digest", H256),
            ("by", AccountId),
        )

    class Error(PalletErrors):
        NotGateway = "the sender does not hold the Gateway role"
        NotOwner = "the sender is not the owner of the device's twin"
        NoPermission = "the sender is neither the twin's owner nor an OPERATE delegate"
        UnknownTwin = "no twin with this id"
        TwinNotOperational = "the twin is not commissioned, active or in maintenance"
        InvalidDeviceKey = "the device key is not a valid x-only public key"
        DeviceAlreadyBound = "the device key is bound to a twin already"
        TooManyDevices = "the twin has the maximum number of devices"
        UnknownDevice = "the device is not bound (or its Device role was revoked)"
        WrongGateway = "the device is pinned to another gateway"
        EmptyBatch = "no batches, or a batch without readings"
        UnknownMetric = "the metric is not registered"
        BadDeviceSignature = "a batch's device signature does not verify"
        SpansWindows = "a batch's time span crosses a window boundary (cut it there)"
        NotPublic = "a batch summarizes a metric its twin keeps private"
        BadSummary = "a batch's time span or public summaries are inconsistent"
        TooManyPublic = "a twin makes at most MAX_PUBLIC metrics public"
        InvalidRange = "the time range is empty (from_ms > to_ms)"
        TooManyGrants = "the twin has the maximum number of disclosure grants"
        UnknownGrant = "the twin has no disclosure grant with this id"
        NotOwnerOrOperator = "the sender is neither the twin's owner nor its facility's operator"
        DuplicateBatch = "the batch's sequence number was used already (replay)"
        InvalidCaptureConfig = "max_age_ms must be positive"
        MetricExists = "a metric with this id is registered already"
        MetricNameTaken = "a metric with this name is registered already"
        Overflow = "a counter overflowed"

    # ------------------------------------------------------------------ binding
    @call(
        0,
        weight=weights.W_SMALL,
        origin=SIGNED,
        args=(("twin", TwinId), ("device", AccountId), ("gateway", Option(AccountId))),
    )
    def bind_device(self, origin: Origin, twin: int, device: bytes, gateway: bytes | None) -> None:
        """Bind a device key to a twin (the twin's owner), optionally pinned to one gateway;
        grants the key the Device role."""
        who = ensure_signed(origin)
        t = self.config.twins.twin(twin)
        if t is None:
            raise self.Error.UnknownTwin()
        if t.owner != who:
            raise self.Error.NotOwner()
        if t.lifecycle == "Decommissioned":
            raise self.Error.TwinNotOperational()
        if not is_valid_public(device):
            raise self.Error.InvalidDeviceKey()
        d: DeviceInfo | None = self.Devices.get(device)
        if d is not None and d.active:
            raise self.Error.DeviceAlreadyBound()
        self.do_bind(twin, device, gateway, who, d)

    @call(1, weight=weights.W_SMALL, origin=SIGNED, args=(("device", AccountId),))
    def unbind_device(self, origin: Origin, device: bytes) -> None:
        """Unbind a device (the owner of its twin); its sequence state stays."""
        who = ensure_signed(origin)
        d: DeviceInfo | None = self.Devices.get(device)
        if d is None or not d.active:
            raise self.Error.UnknownDevice()
        t = self.config.twins.twin(d.twin)
        if t is None or t.owner != who:
            raise self.Error.NotOwner()
        d.active = False
        self.Devices.insert(device, d)
        self.TwinDevices.remove(d.twin, device)
        self.TwinDeviceCount.insert(d.twin, self.TwinDeviceCount.get(d.twin) - 1)
        self.config.roles.revoke_internal(device, DEVICE, who)
        self.deposit(self.Event.DeviceUnbound(device, d.twin))

    @call(
        2,
        weight=weights.W_SMALL,
        origin=SIGNED,
        args=(
            ("twin", TwinId),
            ("metric", U16),
            ("min_interval_ms", U32),
            ("max_age_ms", U64),
        ),
    )
    def set_capture_config(
        self, origin: Origin, twin: int, metric: int, min_interval_ms: int, max_age_ms: int
    ) -> None:
        """Configure the capture frequency of a metric (the owner or an OPERATE delegate)."""
        who = ensure_signed(origin)
        eq = self.config.twins
        t = eq.twin(twin)
        if t is None:
            raise self.Error.UnknownTwin()
        if t.lifecycle == "Decommissioned" or not eq.has_right(twin, who, OPERATE, t):
            raise self.Error.NoPermission()
        if not self.Metrics.contains(metric):
            raise self.Error.UnknownMetric()
        if max_age_ms == 0:
            raise self.Error.InvalidCaptureConfig()
        self._set_capture(twin, metric, CaptureConfig(min_interval_ms, max_age_ms))
        self.deposit(self.Event.CaptureConfigured(twin, metric, min_interval_ms, max_age_ms))

    @call(
        3,
        weight=weights.W_SMALL,
        origin=ROOT,
        args=(
            ("metric", U16),
            ("name", Str(MAX_METRIC_NAME)),
            ("unit", Str(MAX_UNIT)),
            ("scale", U8),
            ("kind", MetricKind),
        ),
    )
    def register_metric(
        self, origin: Origin, metric: int, name: str, unit: str, scale: int, kind: str
    ) -> None:
        """Register a new metric (root: governance)."""
        ensure_root(origin)
        if self.Metrics.contains(metric):
            raise self.Error.MetricExists()
        if self.runtime.spec_version >= 5:  # names are unique from spec 5 on (the index)
            if self.MetricIds.contains(name):
                raise self.Error.MetricNameTaken()
            self.MetricIds.insert(name, metric)
        self.Metrics.insert(metric, MetricInfo(name, unit, scale, kind))
        self.deposit(self.Event.MetricRegistered(metric, name))

    # ------------------------------------------------------------------ submission
    @call(
        4,
        weight=lambda rt, batches: (
            weights.W_SUBMIT_BASE
            + (weights.W_PER_BATCH + weights.W_CLOSE_QUEUE) * len(batches)
            + weights.W_PER_SUMMARY * sum(len(b.public) for b in batches)
        ),
        origin=SIGNED,
        args=(("batches", Vec(Commitment.wire_type(), MAX_BATCHES)),),
    )
    def submit(self, origin: Origin, batches: list[Commitment]) -> None:
        """Submit device-signed batch commitments (Gateway): the readings stay with the
        facility archive. Fails whole on any bad device signature, replayed sequence number,
        unknown device or metric, batch across a window boundary, summary of a private
        metric or inconsistent summary; flags odd batches in events."""
        gateway = ensure_signed(origin)
        roles = self.config.roles
        if not roles.has(gateway, GATEWAY):
            raise self.Error.NotGateway()
        if not batches:
            raise self.Error.EmptyBatch()
        window = self.WindowMs.get()
        # 1. Checks, no writes.
        devices: dict[bytes, DeviceInfo] = {}
        expected: dict[bytes, int] = {}
        public: dict[int, frozenset[int]] = {}  # twin -> its public metrics
        known_metrics: set[int] = set()
        for c in batches:
            d = devices.get(c.device)
            if d is None:
                d = self.Devices.get(c.device)
                if d is None or not d.active or not roles.has(c.device, DEVICE):
                    raise self.Error.UnknownDevice()
                if not self.config.twins.is_operational(d.twin):
                    raise self.Error.TwinNotOperational()
                devices[c.device] = d
                expected[c.device] = d.next_seq
            if d.gateway is not None and d.gateway != gateway:
                raise self.Error.WrongGateway()
            if c.count == 0:
                raise self.Error.EmptyBatch()
            if c.seq < expected[c.device]:
                raise self.Error.DuplicateBatch(f"seq {c.seq} < {expected[c.device]}")
            if c.seq >= U64.max:
                raise self.Error.Overflow("sequence number exhausted")
            expected[c.device] = c.seq + 1
            if c.first_ts > c.last_ts:
                raise self.Error.BadSummary("first_ts > last_ts")
            if c.first_ts // window != c.last_ts // window:
                raise self.Error.SpansWindows()
            if c.public:
                pub = public.get(d.twin)
                if pub is None:
                    pub = public[d.twin] = self.public_metrics(d.twin)
                self._check_summaries(c, pub, known_metrics)
        # 2. Device signatures: one batch verification for what the block did not pre-verify.
        genesis = self.runtime.genesis_hash
        triples: list[Triple] = [
            (c.device, c.message(genesis, devices[c.device].twin), c.signature) for c in batches
        ]
        if not signatures.check_submitted(self, triples):
            raise self.Error.BadDeviceSignature()
        # 3. Apply.
        ctx = IngestContext(self._now(), window)
        for c in batches:
            ingest.apply_batch(self, ctx, gateway, devices[c.device], c)
        for dev, d in devices.items():
            self.Devices.insert(dev, d)
        # 4. Windows: a batch in a later window closes the twin's open one (queued).
        ingest.queue_closes(self, ctx)

    def _check_summaries(self, c: Commitment, pub: frozenset[int], known: set[int]) -> None:
        """Each summary of a registered, public metric and consistent with the commitment
        and itself (the device signed it, but a device can be wrong): at most ``count``
        readings in all, its latest one within the span, ``min <= last <= max`` and a sum
        that ``count`` readings in ``[min, max]`` can give."""
        total = 0
        for s in c.public:
            if s.metric not in known:
                if not self.Metrics.contains(s.metric):
                    raise self.Error.UnknownMetric(str(s.metric))
                known.add(s.metric)
            if s.metric not in pub:
                raise self.Error.NotPublic(str(s.metric))
            total += s.count
            if (
                total > c.count
                or not c.first_ts <= s.last_ts <= c.last_ts
                or not s.min <= s.last <= s.max
                or not s.count * s.min <= s.sum <= s.count * s.max
            ):
                raise self.Error.BadSummary(f"metric {s.metric}")

    # ------------------------------------------------------------------ disclosure
    @call(
        5,
        weight=weights.W_SMALL,
        origin=SIGNED,
        args=(("twin", TwinId), ("metric", U16), ("public", Bool)),
    )
    def set_disclosure(self, origin: Origin, twin: int, metric: int, public: bool) -> None:
        """Make one of the twin's metrics public or private from now on (the twin's owner).
        A public metric's batch summaries, window aggregates and latest values are on chain
        for everyone; a private one's batches leave only their commitment."""
        who = ensure_signed(origin)
        self._ensure_owner(twin, who)
        if not self.Metrics.contains(metric):
            raise self.Error.UnknownMetric()
        pub = set(self.public_metrics(twin))
        if public:
            pub.add(metric)
        else:
            pub.discard(metric)
        if len(pub) > MAX_PUBLIC_METRICS:
            raise self.Error.TooManyPublic()
        self.Disclosure.insert(twin, frozenset(pub))
        self.deposit(self.Event.DisclosureChanged(twin, metric, public))

    @call(
        6,
        weight=weights.W_SMALL,
        origin=SIGNED,
        args=(
            ("twin", TwinId),
            ("metric", U16),
            ("from_ms", U64),
            ("to_ms", U64),
            ("reader", Option(AccountId)),
        ),
    )
    def disclose(
        self,
        origin: Origin,
        twin: int,
        metric: int,
        from_ms: int,
        to_ms: int,
        reader: bytes | None,
    ) -> None:
        """Let ``reader`` (None: everyone) read the twin's readings of ``metric`` in
        ``[from_ms, to_ms]`` from the owner's archive, with their proofs (the twin's owner)."""
        who = ensure_signed(origin)
        self._ensure_owner(twin, who)
        if not self.Metrics.contains(metric):
            raise self.Error.UnknownMetric()
        if from_ms > to_ms:
            raise self.Error.InvalidRange()
        next_id, live = self.GrantIds.get(twin)
        if live >= MAX_GRANTS:
            raise self.Error.TooManyGrants()
        if next_id >= U32.max:
            raise self.Error.Overflow("grant ids exhausted")
        self.Grants.insert(
            twin, next_id, DisclosureGrant(metric, from_ms, to_ms, reader, self._now())
        )
        self.GrantIds.insert(twin, (next_id + 1, live + 1))
        self.deposit(self.Event.WindowDisclosed(twin, next_id, metric, from_ms, to_ms, reader))

    @call(7, weight=weights.W_SMALL, origin=SIGNED, args=(("twin", TwinId), ("id", U32)))
    def withdraw_disclosure(self, origin: Origin, twin: int, id: int) -> None:
        """Withdraw a disclosure grant (the twin's owner): later reads need another right
        (what was read meanwhile stays read)."""
        who = ensure_signed(origin)
        self._ensure_owner(twin, who)
        if not self.Grants.contains(twin, id):
            raise self.Error.UnknownGrant()
        self.Grants.remove(twin, id)
        next_id, live = self.GrantIds.get(twin)
        self.GrantIds.insert(twin, (next_id, live - 1))
        self.deposit(self.Event.DisclosureWithdrawn(twin, id))

    @call(
        8,
        weight=weights.W_SMALL,
        origin=SIGNED,
        args=(
            ("twin", TwinId),
            ("kind", U8),
            ("from_ms", U64),
            ("to_ms", U64),
            ("digest", H256),
        ),
    )
    def anchor(
        self, origin: Origin, twin: int, kind: int, from_ms: int, to_ms: int, digest: bytes
    ) -> None:
        """Anchor the digest of a result computed off chain over the twin's data in
        ``[from_ms, to_ms]`` (``kind``: 0 KPI report, 1 alert, 2 other report; the twin's
        owner or its facility's operator). A private metric's KPIs and alerts live here."""
        who = ensure_signed(origin)
        t = self.config.twins.twin(twin)
        if t is None:
            raise self.Error.UnknownTwin()
        if t.owner != who and not self._is_operator(t.facility, who):
            raise self.Error.NotOwnerOrOperator()
        if from_ms > to_ms:
            raise self.Error.InvalidRange()
        n = self.AnchorCount.get(twin)
        if n >= U32.max:
            raise self.Error.Overflow("anchor ids exhausted")
        record = AnchoredResult(kind, from_ms, to_ms, digest, who, self.runtime.block.number)
        self.Anchors.insert(twin, n, record)
        self.AnchorCount.insert(twin, n + 1)
        self.deposit(self.Event.ResultAnchored(twin, n, kind, from_ms, to_ms, digest, who))

    def _ensure_owner(self, twin: int, who: bytes) -> None:
        t = self.config.twins.twin(twin)
        if t is None:
            raise self.Error.UnknownTwin()
        if t.owner != who:
            raise self.Error.NotOwner()

    def _is_operator(self, fid: int | None, who: bytes) -> bool:
        """Whether ``who`` operates facility ``fid`` (as Facility's own operator calls
        check: the record's operator, holding the role, the facility not revoked)."""
        f = None if fid is None else self.config.facilities.facility(fid)
        if f is None or f.status == "Revoked" or f.operator != who:
            return False
        return self.config.roles.has(who, FACILITY_OPERATOR)

    # ------------------------------------------------------------------ hooks
    def on_initialize(self, number: int) -> int:
        """Run queued window closes (:func:`.windows.run_queued_closes`)."""
        return windows.run_queued_closes(self)

    def queued_closes(self) -> int:
        """Closed windows whose hooks have not run yet."""
        return windows.queued_closes(self)

    # ------------------------------------------------------------------ block-level verification
    def extra_signatures(self, calls: Sequence[DecodedCall]) -> list[Triple]:
        """The device signatures of the batches ``calls`` submit, less those known good
        (:mod:`.signatures`); the executive verifies them with the block's own."""
        return signatures.unverified(self, signatures.collect_device_signatures(self, calls))

    def note_verified(self, checks: Sequence[Triple], oks: Sequence[bool]) -> None:
        """Remember the good ones, so that ``submit`` does not check them again."""
        signatures.note_verified(self, checks, oks)

    def pre_verify(self, calls: Sequence[DecodedCall]) -> int:
        """Verify every device signature ``calls`` carry in ONE ``native.verify_batch`` call
        (what the executive does with the block's other signatures merged in); returns how
        many it checked. It only ever saves work: ``submit`` checks what it did not."""
        triples = self.extra_signatures(calls)
        if triples:
            self.note_verified(triples, verify_device_signatures(triples))
        return len(triples)

    # ------------------------------------------------------------------ genesis
    def genesis(self, config: dict[str, Any]) -> None:
        """``window_ms``; ``metrics``: [[id, name, unit, scale, kind]] (default: the
        well-known set); ``devices``: [{device, twin, gateway?}]; ``capture``:
        [[twin, metric, min_interval_ms, max_age_ms]]."""
        window = int(config.get("window_ms", DEFAULT_WINDOW_MS))
        if window <= 0:
            raise ValueError("telemetry window_ms must be positive")
        self.WindowMs.put(window)
        for mid, name, unit, scale, kind in config.get("metrics", DEFAULT_METRICS):
            self.Metrics.insert(int(mid), MetricInfo(str(name), str(unit), int(scale), kind))
        if self.runtime.spec_version >= 5:
            self.index_metric_names()
        for spec in config.get("devices", []):
            device = parse_account(spec["device"])
            twin = int(spec["twin"])
            t = self.config.twins.twin(twin)
            if t is None:
                raise ValueError(f"genesis device bound to unknown twin {twin}")
            if self.Devices.contains(device):
                raise ValueError(f"genesis binds device {spec['device']!r} twice")
            gw = spec.get("gateway")
            try:
                self.do_bind(twin, device, None if gw is None else parse_account(gw), t.owner, None)
            except DispatchError as exc:  # chain specs report ValueError
                raise ValueError(f"genesis device {spec['device']!r}: {exc}") from exc
        for twin, metric, min_interval, max_age in config.get("capture", []):
            self._set_capture(
                int(twin), int(metric), CaptureConfig(int(min_interval), int(max_age))
            )
        if "default_public" in config:
            self.DefaultPublic.put(frozenset(int(m) for m in config["default_public"]))
        for twin, metrics in config.get("disclosure", []):
            if self.config.twins.twin(int(twin)) is None:
                raise ValueError(f"genesis disclosure for unknown twin {twin}")
            self.Disclosure.insert(int(twin), frozenset(int(m) for m in metrics))

    def _set_capture(self, twin: int, metric: int, config: CaptureConfig) -> None:
        table: dict[int, CaptureConfig] = self.Capture.get(twin) or {}
        table[metric] = config
        self.Capture.insert(twin, table)

    # ------------------------------------------------------------------ API
    def capture(self, twin: int, metric: int) -> CaptureConfig:
        """The capture settings of a twin's metric (the defaults unless configured)."""
        table: dict[int, CaptureConfig] = self.Capture.get_shared(twin) or {}
        return table.get(metric, DEFAULT_CAPTURE)

    def do_bind(
        self,
        twin: int,
        device: bytes,
        gateway: bytes | None,
        by: bytes,
        previous: DeviceInfo | None,
    ) -> None:
        count = self.TwinDeviceCount.get(twin)
        if count >= MAX_DEVICES_PER_TWIN:
            raise self.Error.TooManyDevices()
        d = previous or DeviceInfo(twin, by, gateway, True, 0, 0, 0, 0, 0, {})
        d.twin, d.bound_by, d.gateway, d.active = twin, by, gateway, True
        self.Devices.insert(device, d)
        self.TwinDevices.insert(twin, device, True)
        self.TwinDeviceCount.insert(twin, count + 1)
        self.config.roles.grant_internal(device, DEVICE, by)
        self.deposit(self.Event.DeviceBound(device, twin, gateway))

    def device(self, device: bytes) -> DeviceInfo | None:
        return self.Devices.get(device)  # type: ignore[no-any-return]

    def batch(self, device: bytes, seq: int) -> BatchRecord | None:
        if not 0 <= seq < 1 << 64:
            return None
        return chunk_record(self.BatchChunks.get(device, seq // BATCH_CHUNK), seq)

    def twin_batch_count(self, twin: int) -> int:
        """How many batches the twin's devices have had accepted."""
        return self.TwinBatchLog.get(twin)[0]  # type: ignore[no-any-return]

    def twin_batch(self, twin: int, n: int) -> tuple[bytes, int] | None:
        """(device, seq) of the twin's ``n``-th accepted batch (0: the first), None past the end."""
        count, tail = self.TwinBatchLog.get(twin)
        if not 0 <= n < count:
            return None
        chunk, i = divmod(n, BATCH_LOG_CHUNK)
        refs = tail if chunk == count // BATCH_LOG_CHUNK else self.TwinBatchChunks.get(twin, chunk)
        ref = refs[i * BATCH_REF_SIZE : (i + 1) * BATCH_REF_SIZE]
        return ref[:32], int.from_bytes(ref[32:], "big")

    def aggregates(self, twin: int) -> list[tuple[tuple[int, int], Aggregate]]:
        """All aggregates of a twin, sorted by (metric, window start)."""
        return sorted(
            ((m, start), agg)
            for start, table in self.Aggregates.iter_prefix(twin)
            for m, agg in table.items()
        )

    def window_aggregates(self, twin: int, start: int) -> dict[int, Aggregate]:
        """``{metric: aggregate}`` of the twin's window starting at ``start`` (ms)."""
        return self.Aggregates.get(twin, start) or {}  # type: ignore[no-any-return]

    def metric(self, metric: int) -> MetricInfo | None:
        """A registered metric, None if unknown."""
        return self.Metrics.get(metric)  # type: ignore[no-any-return]

    def metric_id(self, name: str) -> int | None:
        """The id of the metric called ``name`` (spec 5's index), None if there is none."""
        return self.MetricIds.get(name)  # type: ignore[no-any-return]

    def allocate_metric(self, name: str, unit: str, scale: int, kind: str) -> int | None:
        """Register a new metric under the next free id at or above ``NextMetricId`` (ids
        that governance took meanwhile are skipped, at most ``MAX_ID_PROBES`` of them);
        None if there is no free id."""
        mid = self.NextMetricId.get()
        for _ in range(MAX_ID_PROBES):
            if mid > U16.max:
                return None
            if not self.Metrics.contains(mid):
                break
            mid += 1
        else:
            return None
        self.Metrics.insert(mid, MetricInfo(name, unit, scale, kind))
        self.MetricIds.insert(name, mid)
        self.NextMetricId.put(min(mid + 1, U16.max))
        self.deposit(self.Event.MetricRegistered(mid, name))
        return mid

    def index_metric_names(self) -> int:
        """(Re)build the name index from the registered metrics, the lowest id of a name
        winning; returns the number of metrics read."""
        metrics = sorted(self.Metrics.iter())
        for mid, info in reversed(metrics):  # the lowest id written last
            self.MetricIds.insert(info.name, mid)
        return len(metrics)

    def window_ms(self) -> int:
        """Length of an aggregation window (ms)."""
        return int(self.WindowMs.get())

    def aggregate(self, twin: int, metric: int, start: int) -> Aggregate | None:
        """The twin's window aggregate of ``metric``; None for a metric it keeps private
        now (its aggregates from while it was public stay in storage)."""
        if metric not in self.public_metrics(twin):
            return None
        return self.window_aggregates(twin, start).get(metric)

    def last_readings(self, device: bytes) -> dict[int, tuple[int, int]]:
        """``{metric: (timestamp ms, value)}`` of the device's latest readings of the metrics
        its twin makes public now."""
        d: DeviceInfo | None = self.Devices.get(device)
        if d is None:
            return {}
        pub = self.public_metrics(d.twin)
        return {m: v for m, v in d.last.items() if m in pub}

    def public_metrics(self, twin: int) -> frozenset[int]:
        """The metrics the twin makes public (its policy, else the chain's default)."""
        pub: frozenset[int] | None = self.Disclosure.get_shared(twin)
        return self.DefaultPublic.get() if pub is None else pub

    def grants(self, twin: int) -> list[tuple[int, DisclosureGrant]]:
        """The twin's live disclosure grants, by id."""
        return list(self.Grants.iter_prefix(twin))

    def anchors(self, twin: int) -> list[tuple[int, AnchoredResult]]:
        """The results anchored for the twin, by id."""
        return list(self.Anchors.iter_prefix(twin))

    def may_read(
        self,
        twin: int,
        metric: int | None,
        who: bytes,
        from_ms: int,
        to_ms: int,
        now_ms: int,
    ) -> bool:
        """Whether ``who`` may read the twin's raw readings of ``metric`` (None: every
        metric) in ``[from_ms, to_ms]`` at ``now_ms``: the twin's owner; a holder of an
        unexpired ``READ_TELEMETRY`` right on it; the auditor of the twin's facility's
        unexpired verification; or a disclosure grant covering the metric and range, to
        ``who`` or to everyone. The facility archive asks this before it answers."""
        eq = self.config.twins
        t = eq.twin(twin)
        if t is None:
            return False
        if t.owner == who or eq.has_right(twin, who, READ_TELEMETRY, t, now_ms):
            return True
        f = None if t.facility is None else self.config.facilities.facility(t.facility)
        v = None if f is None else f.verification
        if v is not None and v.auditor == who and v.expires > now_ms and any(who):
            return True
        if metric is None:
            return False
        return any(g.covers(metric, who, from_ms, to_ms) for _, g in self.grants(twin))

    def last_reading(self, device: bytes, metric: int) -> tuple[int, int] | None:
        return self.last_readings(device).get(metric)

    def constants(self) -> dict[str, Any]:
        return {
            "MaxReadingsPerBatch": MAX_READINGS,
            "MaxBatchesPerExtrinsic": MAX_BATCHES,
            "MaxDevicesPerTwin": MAX_DEVICES_PER_TWIN,
            "DefaultMaxAgeMs": DEFAULT_MAX_AGE_MS,
            "MaxFutureDriftMs": MAX_FUTURE_DRIFT_MS,
            "Flags": list(FLAGS),
            "BatchWideMetric": BATCH_WIDE,
            "MaxPublicSummaries": MAX_PUBLIC,
            "MaxDisclosureGrants": MAX_GRANTS,
            "DefaultPublic": sorted(DEFAULT_PUBLIC),
            "ReadingLeaf": "u16 metric ‖ u64 timestamp_ms ‖ i64 value, big-endian",
        }
