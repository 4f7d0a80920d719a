"""The predictive-maintenance worker: finalized telemetry in, signed maintenance alerts out.

Loop (every ``poll_s`` seconds, against one node's JSON-RPC):

1. read the finalized head; nothing to do if it has not moved;
2. (re)discover the facility's twins whose equipment class has a model: twin ids run from 0
   to ``Equipment.NextTwinId`` (read with a verified read proof), each described by
   ``twin_equipment`` at the finalized block;
3. per twin, ``twin_telemetryAggregates`` at the finalized block for the metrics the twin
   makes public (``twin_disclosure``); the metrics it keeps private are read raw from the
   facility's archive (``twin_readings``, as the worker's key, which needs READ_TELEMETRY on
   the twin, or with an API key; every reading checked against its batch root on chain)
   and aggregated here exactly as the chain aggregates public ones. Windows are closed once
   a later window exists (the telemetry pallet closes a window when a reading of a later one
   arrives) and, when private metrics are read, once the archive has had
   ``archive_grace_ms`` after the window's end to receive them; each new closed window, in
   order, becomes a feature vector and goes through the class model's detector
   (:class:`~twinchain.offchain.models.DetectorState`);
4. when the model's alert rule fires, ``Maintenance.submit_prediction(twin, probability_bp,
   horizon_ms, model, evidence)`` signed by the worker key, watched to finality; the
   evidence hash commits to the model, the twin, the windows and the features used, and
   the evidence itself is written to ``evidence_dir`` for disclosure.

Twins of a class with a ``prognostic`` model (:mod:`twinchain.offchain.prognostics`, any
class) are served by that engine instead: the class's metrics are bound to the chain's ids
by name, the model's windows are built by :func:`twinchain.offchain.chainread.read_windows`
(public aggregates, merged when the model's window is a multiple of the chain's; private
metrics from the archive), each complete window goes through the twin's
:class:`~twinchain.offchain.prognostics.UnitState`, and an alert is
``Maintenance.submit_prognosis(twin, mode, probability_bp, horizon_ms, rul_p10_ms,
rul_p50_ms, rul_p90_ms, model, evidence)``, submitted again while the alarm lasts when the
prognosis moves (another mode, 10 points of probability, a quarter of the RUL).

Before the loop, each model's hash is registered with ``Simulation.register_model`` (unless
it already is; an inactive one is an error). Windows that ended before ``since_ms`` (default:
the chain time at start minus two windows) only warm the detectors up: a restarted worker does
not re-raise old alerts. A twin that stays stopped for :data:`RESET_AFTER_IDLE` windows (failed
or in repair) starts afresh: the old baseline and trend no longer apply.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from twinchain.client import Client, Reading
from twinchain.offchain.chainread import (
    Binding,
    ChainReadError,
    archive_readings,
    bind,
    read_windows,
)
from twinchain.offchain.features import FEATURE_METRICS, Agg, Rated, TwinFeatures
from twinchain.offchain.models import DEFAULT_KIND, KINDS, DetectorState, Model, ModelError
from twinchain.offchain.prognostics import FORMAT as PROGNOSTIC_FORMAT
from twinchain.offchain.prognostics import (
    RUL_HORIZONS,
    ModeEstimate,
    PrognosticModel,
    UnitState,
)
from twinchain.primitives import codec
from twinchain.primitives.hashing import blake3_hash
from twinchain.primitives.keys import Keypair
from twinchain.primitives.keystore import KeystoreError, load_keypair
from twinchain.primitives.types import extrinsic_hash
from twinchain.protocol.classdef import (
    BUILTIN_CLASSES,
    ClassDefError,
    EquipmentClass,
    class_from_record,
    load_class,
)
from twinchain.protocol.jsonrpc import OVERSIZED_RESPONSE, RpcError, from_hex, to_hex

log = logging.getLogger("twinchain.offchain.pdm")

RESET_AFTER_IDLE = 3
# A window's private readings reach the archive with their batches' finality (a few
# seconds); the worker waits this long after a window's end before it scores it.
ARCHIVE_GRACE_MS = 30_000
RESCAN_POLLS = 30
FEATURE_SCALE = 1_000_000  # features are committed as integers (micro-units) in evidence


class WorkerError(Exception):
    """The worker cannot go on: a model is inactive, a submission failed, bad config."""


@dataclass
class AlertRecord:
    twin: int
    window_start: int
    probability_bp: int
    horizon_ms: int
    model: bytes
    evidence: bytes
    block: bytes | None = None
    mode: str | None = None
    rul_ms: tuple[int, int, int] | None = None  # P10, P50, P90


@dataclass
class _Twin:
    id: int
    equipment_class: str
    model: Model
    features: TwinFeatures
    detector: DetectorState
    last_start: int = -1
    idle: int = 0
    recent: list[tuple[int, list[float]]] = field(default_factory=list)


@dataclass
class _ProgTwin:
    """A twin served by a prognostic model."""

    id: int
    equipment_class: str
    model: PrognosticModel
    binding: Binding
    state: UnitState
    next_start: int = 0  # the first model window not processed yet
    recent: list[tuple[int, list[float]]] = field(default_factory=list)
    submitted: ModeEstimate | None = None  # the last prognosis on chain (while alarmed)
    submitted_at: int = 0  # window index of that submission
    windows: int = 0


AnyModel = Model | PrognosticModel
UPDATE_PROBABILITY = 0.1  # a prognosis is submitted again when P moves this much ...
UPDATE_RUL = 0.25  # ... or the RUL P50 by this share, or the mode changes


def _duration(ms: int) -> str:
    """A horizon for people: hours when it is at least one, else seconds."""
    return f"{ms / 3_600_000:g} h" if ms >= 3_600_000 else f"{ms / 1000:g} s"


def load_models(folder: Path, kind: str = DEFAULT_KIND) -> dict[str, AnyModel]:
    """Per class, its newest ``prognostic`` model in ``folder`` (``*.json``), else its
    newest simulator model of ``kind``."""
    if kind not in KINDS:
        raise WorkerError(f"unknown model kind {kind!r} (one of {', '.join(KINDS)})")
    best: dict[str, Model] = {}
    prog: dict[str, PrognosticModel] = {}
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    for f in files:
        try:
            data = f.read_bytes()
            if PROGNOSTIC_FORMAT.encode() in data[:4096] and b'"prognostic"' in data:
                p = PrognosticModel.from_bytes(data)
                cur_p = prog.get(p.equipment_class)
                if cur_p is None or p.version > cur_p.version:
                    prog[p.equipment_class] = p
                continue
            m = Model.from_bytes(data)
        except OSError as exc:
            raise WorkerError(f"cannot read model file {f}: {exc}") from exc
        except ModelError as exc:
            raise WorkerError(f"{f.name}: {exc}") from exc
        cur = best.get(m.equipment_class)
        if m.kind == kind and (cur is None or m.version > cur.version):
            best[m.equipment_class] = m
    out: dict[str, AnyModel] = {**best, **prog}
    if not out:
        raise WorkerError(f"no {kind} or prognostic model files in {folder}")
    return out


def class_of_twin(client: Client, twin: int, at: bytes, spec: str | None = None) -> EquipmentClass:
    """The class of ``twin``: ``spec`` (a class file or built-in name) when given, else the
    twin's class as registered on chain, else the built-in class of that name."""
    try:
        if spec is not None:
            return load_class(spec)
        eq = client.call("twin_equipment", twin, to_hex(at))
        if eq is None:
            raise WorkerError(f"no twin {twin}")
        name = str(eq.get("equipmentClass"))
        try:
            rec = client.read_storage("Equipment", "Classes", name, at=at)
        except (KeyError, ValueError, RpcError):
            rec = None  # a runtime without registered classes
        if rec is not None:
            return class_from_record(rec.definition)
        if name in BUILTIN_CLASSES:
            return load_class(name)
    except ClassDefError as exc:
        raise WorkerError(f"class of twin {twin}: {exc}") from exc
    raise WorkerError(f"twin {twin}'s class {name!r} is not on chain: give its class file")


def evidence_of(
    model: bytes, twin: int, windows: list[tuple[int, list[float]]], probability_bp: int
) -> tuple[bytes, bytes]:
    """(evidence hash, evidence bytes): canonical msgpack of the model id, the twin, the
    probability and each recent window's start with its features in micro-units."""
    body = codec.encode(
        [
            "twinchain-pdm-evidence/1",
            model,
            twin,
            probability_bp,
            [[start, [round(v * FEATURE_SCALE) for v in x]] for start, x in windows],
        ]
    )
    return blake3_hash(body), body


def prognosis_evidence(
    model: bytes,
    twin: int,
    estimate: ModeEstimate,
    probability_bp: int,
    rul_ms: tuple[int, int, int],
    windows: list[tuple[int, list[float]]],
) -> tuple[bytes, bytes]:
    """(evidence hash, evidence bytes) of a prognosis: canonical msgpack of the model id, the
    twin, the mode, the probability, the RUL quantiles (ms) and each recent
    window's start with its signal values in micro-units (None: no reading)."""
    body = codec.encode(
        [
            "twinchain-pdm-evidence/2",
            model,
            twin,
            estimate.mode,
            probability_bp,
            list(rul_ms),
            [
                [start, [None if v != v else round(v * FEATURE_SCALE) for v in x]]
                for start, x in windows
            ],
        ]
    )
    return blake3_hash(body), body


def keypair_from(spec: str) -> Keypair:
    """:func:`~twinchain.primitives.keystore.load_keypair`, failing as a WorkerError."""
    try:
        return load_keypair(spec)
    except KeystoreError as exc:
        raise WorkerError(str(exc)) from None


class PdmWorker:
    def __init__(
        self,
        client: Client,
        keypair: Keypair,
        facility: int,
        models: Mapping[str, AnyModel],
        *,
        since_ms: int | None = None,
        evidence_dir: Path | None = None,
        on_alert: Callable[[AlertRecord], None] | None = None,
        watch_timeout: float = 60.0,
        api_key: str | None = None,
        archive_grace_ms: int = ARCHIVE_GRACE_MS,
    ) -> None:
        self.client = client
        self.api_key = api_key
        self.archive_grace_ms = archive_grace_ms
        self.keypair = keypair
        self.facility = facility
        self.models = dict(models)
        self.since_ms = since_ms
        self.evidence_dir = evidence_dir
        self.on_alert = on_alert
        self.watch_timeout = watch_timeout
        self.twins: dict[int, _Twin] = {}
        self.prog_twins: dict[int, _ProgTwin] = {}
        self._bindings: dict[str, Binding] = {}
        self.alerts: list[AlertRecord] = []
        self._last_head: bytes | None = None
        self._next_twin = 0
        self._skipped: set[int] = set()
        self._polls = 0

    # ------------------------------------------------------------------ chain helpers
    def _submit(self, pallet: str, call: str, **args: Any) -> bytes:
        """Sign, submit, watch to finality; the block hash, or WorkerError with the reason.
        Signed for the version the next block runs: refused as ``Invalid:BadProof`` after a
        runtime upgrade, the client re-reads the version and signs it again, once."""
        xt, statuses = self.client.sign_and_watch(
            self.client.call_function(pallet, call, **args),
            self.keypair,
            timeout=self.watch_timeout,
        )
        final = statuses[-1]
        if final.kind != "finalized" or final.block is None:
            raise WorkerError(f"{pallet}.{call} ended {final.kind}: {final.raw!r}")
        error = self._failure(final.block, extrinsic_hash(xt.encode()))
        if error is not None:
            raise WorkerError(f"{pallet}.{call} failed on chain: {error}")
        return final.block

    def _failure(self, block: bytes, xt_hash: bytes) -> str | None:
        """The dispatch error of the extrinsic in ``block``, None if it succeeded."""
        data = self.client.call("chain_getBlock", to_hex(block))
        raws = [from_hex(x, "extrinsic") for x in data["block"]["extrinsics"]]
        index = next(i for i, r in enumerate(raws) if extrinsic_hash(r) == xt_hash)
        for e in self.client.events(block):
            if e["extrinsic"] == index and e["event"] == "ExtrinsicFailed":
                return f"{e['args']['module']}.{e['args']['error']}"
        return None

    def ensure_models_registered(self) -> None:
        for cls, m in sorted(self.models.items()):
            info = self.client.read_storage("Simulation", "Models", m.hash)
            if info is not None:
                if not info.active:
                    raise WorkerError(f"model {m.filename} ({m.hash.hex()}) is deactivated")
                continue
            try:
                self._submit(
                    "Simulation",
                    "register_model",
                    model=m.hash,
                    equipment_class=cls,
                    kind=m.kind,
                    params=m.chain_params(),
                    version=m.version,
                )
            except WorkerError as exc:
                # Workers of other facilities run the same model files and may have
                # registered this one first: that is the state we want.
                if "Simulation.ModelExists" not in str(exc):
                    raise
                log.info("model %s was registered by another worker", m.filename)
                continue
            log.info("registered model %s as 0x%s", m.filename, m.hash.hex())

    def _discover(self, at: bytes) -> None:
        """Follow new twins; twins skipped (other facility, no model) are looked at again
        every :data:`RESCAN_POLLS` polls, as they may be commissioned here later."""
        nxt = int(self.client.read_storage("Equipment", "NextTwinId", at=at))
        self._polls += 1
        todo = list(range(self._next_twin, nxt))
        if self._polls % RESCAN_POLLS == 0:
            todo = sorted(set(todo) | self._skipped)
        self._next_twin = nxt
        for tid in todo:
            eq = self.client.call("twin_equipment", tid, to_hex(at))
            model = None if eq is None else self.models.get(eq.get("equipmentClass"))
            if eq is None or eq.get("facility") != self.facility or model is None:
                self._skipped.add(tid)
                continue
            if isinstance(model, PrognosticModel):
                self._follow_prognostic_twin(tid, eq["equipmentClass"], model, at)
                continue
            try:
                rated = Rated.from_pairs((eq.get("spec") or {}).get("rated", []))
            except ValueError as exc:
                log.warning("twin %d: cannot score it: %s", tid, exc)
                self._skipped.add(tid)
                continue
            self._skipped.discard(tid)
            cls = eq["equipmentClass"]
            self.twins[tid] = _Twin(
                tid, cls, model, TwinFeatures(rated, model.window_ms), model.new_state()
            )
            log.info("following twin %d (%s)", tid, cls)

    def _follow_prognostic_twin(
        self, tid: int, cls: str, model: PrognosticModel, at: bytes
    ) -> None:
        binding = self._bindings.get(cls)
        if binding is None:
            try:
                binding = self._bindings[cls] = bind(self.client, model.metrics, at)
            except ChainReadError as exc:
                log.warning("twin %d: cannot score it: %s", tid, exc)
                self._skipped.add(tid)
                return
        try:
            rec = self.client.read_storage("Equipment", "Classes", cls, at=at)
        except (KeyError, ValueError, RpcError):
            rec = None  # a runtime without registered classes
        if rec is not None and bytes(rec.hash) != model.class_hash:
            log.warning(
                "twin %d: model %s was trained for another version of class %s",
                tid, model.filename, cls,
            )  # fmt: skip
            self._skipped.add(tid)
            return
        self._skipped.discard(tid)
        self.prog_twins[tid] = _ProgTwin(tid, cls, model, binding, model.new_state())
        log.info("following twin %d (%s, prognostic)", tid, cls)

    # ------------------------------------------------------------------ the loop
    def poll_once(self) -> list[AlertRecord]:
        """One pass over the finalized state; the alerts submitted in it."""
        head = self.client.rpc.finalized_head()
        if head == self._last_head:
            return []
        self._last_head = head
        if self.since_ms is None:
            now = int(self.client.read_storage("Timestamp", "Now", at=head))
            self.since_ms = now - 2 * max(m.window_ms for m in self.models.values())
        self._discover(head)
        out = []
        for tid in sorted(self.twins):
            out += self._follow(self.twins[tid], head)
        for tid in sorted(self.prog_twins):
            out += self._follow_prognostic(self.prog_twins[tid], head)
        return out

    def _readings(self, twin: int, metric: int, lo: int, hi: int) -> list[Reading]:
        """The twin's verified raw readings of ``metric`` in ``[lo, hi]``, asked in halves
        while the node finds the range too large for one answer."""
        try:
            return self.client.readings(
                twin, metric, lo, hi, key=None if self.api_key else self.keypair,
                api_key=self.api_key,
            )  # fmt: skip
        except RpcError as exc:
            if exc.code != OVERSIZED_RESPONSE or hi - lo < 2:
                raise
        mid = lo + (hi - lo) // 2
        return self._readings(twin, metric, lo, mid) + self._readings(twin, metric, mid + 1, hi)

    def _private_windows(
        self, t: _Twin, head: bytes, since: int, windows: dict[int, dict[int, Agg]]
    ) -> int | None:
        """Add the windows' aggregates of the feature metrics the twin keeps private, from
        the archive; the end of the time they are complete for (None: none are private)."""
        public = set(self.client.call("twin_disclosure", t.id, to_hex(head))["public"])
        private = [m for m in FEATURE_METRICS if m not in public]
        if not private:
            return None
        now = int(self.client.read_storage("Timestamp", "Now", at=head))
        complete = now - self.archive_grace_ms
        if complete <= since:
            return complete
        window_ms = t.model.window_ms
        for m in private:
            for r in self._readings(t.id, m, since, complete - 1):
                w = windows.setdefault(r.timestamp - r.timestamp % window_ms, {})
                agg = w.get(m)
                if agg is None:
                    agg = w[m] = Agg()
                agg.add(r.value)  # readings come in timestamp order, as the chain's last
        return complete

    def _follow(self, t: _Twin, head: bytes) -> list[AlertRecord]:
        # Only windows after the last one processed: the reply stays small as history grows.
        since = t.last_start + 1 if t.last_start >= 0 else 0
        rows = self.client.call("twin_telemetryAggregates", t.id, None, to_hex(head), since)
        windows: dict[int, dict[int, Agg]] = {}
        window_ms = t.model.window_ms
        for r in rows:
            if int(r["windowMs"]) != window_ms:
                raise WorkerError(
                    f"chain windows are {r['windowMs']} ms, model {t.model.filename} wants "
                    f"{window_ms} ms"
                )
            windows.setdefault(int(r["windowStart"]), {})[int(r["metric"])] = Agg.from_json(r)
        # A window's private readings start after the last window processed.
        lo = t.last_start + window_ms if t.last_start >= 0 else 0
        complete = self._private_windows(t, head, lo, windows)
        if not windows:
            return []
        newest = max(windows)  # still open
        out = []
        ready = sorted(
            s
            for s in windows
            if t.last_start < s < newest and (complete is None or s + window_ms <= complete)
        )
        for start in ready:
            t.last_start = start
            x = t.features.update(start, windows[start])
            if x is None:
                t.idle += 1
                if t.idle == RESET_AFTER_IDLE:
                    t.features.reset()
                    t.detector.reset()
                    t.recent.clear()
                continue
            t.idle = 0
            t.recent = [*t.recent, (start, x)][-t.model.confirm - 2 :]
            p, fire = t.detector.update(x)
            if fire and start + window_ms >= (self.since_ms or 0):
                out.append(self._alert(t, start, p))
        return out

    def _follow_prognostic(self, t: _ProgTwin, head: bytes) -> list[AlertRecord]:
        """Every complete model window since the last one, through the twin's engine."""
        m = t.model
        w = m.window_ms
        now = int(self.client.read_storage("Timestamp", "Now", at=head))
        public = set(self.client.call("twin_disclosure", t.id, to_hex(head))["public"])
        private = any(mid not in public for mid in t.binding.ids)
        from_chain = w % t.binding.chain_window_ms == 0
        reader = archive_readings(
            self.client, key=None if self.api_key else self.keypair, api_key=self.api_key
        )
        # Complete: the chain has moved past the window (its aggregates close when a later
        # window's reading arrives) and the archive has had its grace for private readings.
        complete = now - self.archive_grace_ms if private or not from_chain else now
        table = read_windows(
            self.client, t.id, t.binding, w, t.next_start, complete, head, reader, public
        )
        if from_chain and not private:
            newest = self.client.call(
                "twin_telemetryAggregates", t.id, None, to_hex(head), t.next_start
            )
            chain_newest = max((int(r["windowStart"]) for r in newest), default=0)
            complete = min(complete, chain_newest)
        out = []
        x = m.signal_values(table)
        for i, start in enumerate(table.starts.tolist()):
            if start + w > complete:
                break
            t.next_start = start + w
            t.windows += 1
            r = t.state.update(int(start), x[i])
            t.recent = [*t.recent, (int(start), x[i].tolist())][-m.confirm - 2 :]
            live = start + w >= (self.since_ms or 0)
            if t.state.above == 0:
                t.submitted = None
            elif live and t.state.above >= m.confirm:
                if t.submitted is None:  # the alert (or the first live window of one)
                    est = r.best if r.alert and r.best is not None else t.state.best()
                    if est is not None:
                        out.append(self._alert_prognostic(t, start, est))
                elif t.windows - t.submitted_at >= m.confirm:
                    est = self._moved(t)
                    if est is not None:
                        out.append(self._alert_prognostic(t, start, est))
        return out

    @staticmethod
    def _moved(t: _ProgTwin) -> ModeEstimate | None:
        """The prognosis now, if it moved enough from the one on chain to submit again."""
        best = t.state.best()
        old = t.submitted
        if best is None or old is None:
            return None
        if best.mode != old.mode or abs(best.probability - old.probability) >= UPDATE_PROBABILITY:
            return best
        a, b = best.rul_p50_s, old.rul_p50_s
        if (a is None) != (b is None):
            return best
        if a is not None and b is not None and abs(a - b) > UPDATE_RUL * max(b, 1.0):
            return best
        return None

    def _alert_prognostic(self, t: _ProgTwin, start: int, est: ModeEstimate) -> AlertRecord:
        m = t.model
        bp = min(10_000, max(0, round(est.probability * 10_000)))
        mode = next(md for md in m.modes if md.name == est.mode)
        # A quantile beyond the model's sight (RUL_HORIZONS horizons) goes on chain as that
        # many horizons: the chain keeps integers, and p10 <= p50 <= p90 still holds.
        far = RUL_HORIZONS * mode.horizon_ms
        p10, p50, p90 = (
            far if v is None else min(far, round(v * 1000))
            for v in (est.rul_p10_s, est.rul_p50_s, est.rul_p90_s)
        )
        rul = (p10, p50, p90)
        ev_hash, body = prognosis_evidence(m.hash, t.id, est, bp, rul, t.recent)
        if self.evidence_dir is not None:
            self.evidence_dir.mkdir(parents=True, exist_ok=True)
            (self.evidence_dir / f"{ev_hash.hex()}.msgpack").write_bytes(body)
        block = self._submit(
            "Maintenance",
            "submit_prognosis",
            twin=t.id,
            mode=est.mode,
            probability_bp=bp,
            horizon_ms=mode.horizon_ms,
            rul_p10_ms=rul[0],
            rul_p50_ms=rul[1],
            rul_p90_ms=rul[2],
            model=m.hash,
            evidence=ev_hash,
        )
        rec = AlertRecord(
            t.id,
            start,
            bp,
            mode.horizon_ms,
            m.hash,
            ev_hash,
            block,
            est.mode,
            rul,  # type: ignore[arg-type]
        )
        p50 = _duration(rul[1])
        log.info(
            "twin %d: %s, P(failure within %s) = %.2f %%, RUL P50 %s -> block 0x%s",
            t.id, est.mode, _duration(mode.horizon_ms), bp / 100, p50, block.hex()[:16],
        )  # fmt: skip
        t.submitted, t.submitted_at = est, t.windows
        self.alerts.append(rec)
        if self.on_alert is not None:
            self.on_alert(rec)
        return rec

    def _alert(self, t: _Twin, start: int, p: float) -> AlertRecord:
        bp = min(10_000, max(0, round(p * 10_000)))
        ev_hash, body = evidence_of(t.model.hash, t.id, t.recent, bp)
        if self.evidence_dir is not None:
            self.evidence_dir.mkdir(parents=True, exist_ok=True)
            (self.evidence_dir / f"{ev_hash.hex()}.msgpack").write_bytes(body)
        block = self._submit(
            "Maintenance",
            "submit_prediction",
            twin=t.id,
            probability_bp=bp,
            horizon_ms=t.model.horizon_ms,
            model=t.model.hash,
            evidence=ev_hash,
        )
        rec = AlertRecord(t.id, start, bp, t.model.horizon_ms, t.model.hash, ev_hash, block)
        log.info(
            "twin %d: P(failure within %s) = %.2f %% -> alert in block 0x%s",
            t.id,
            _duration(t.model.horizon_ms),
            bp / 100,
            block.hex()[:16],
        )
        self.alerts.append(rec)
        if self.on_alert is not None:
            self.on_alert(rec)
        return rec

    def run(self, *, poll_s: float = 2.0, until: Callable[[], bool] | None = None) -> None:
        self.ensure_models_registered()
        while until is None or not until():
            try:
                self.poll_once()
            except (OSError, httpx.TransportError) as exc:  # node restarting: poll again
                log.warning("poll failed: %s", exc)
            time.sleep(poll_s)
