"""Simulation: twin models, anchored scenario results, challenges, twin state sync.

Models. ``register_model(model, equipment_class, kind, params, version)`` records a model by
hash (EquipmentManufacturer, FacilityOperator or PredictiveWorker). ``params`` must be one
canonical msgpack value (<= 4096 bytes). For ``kind == "degradation"`` (the kind the engine in
:mod:`twinchain.twinsim.engine` runs) the params must decode as a
:class:`~twinchain.twinsim.engine.DegradationModel` and ``model`` must equal
``engine.model_hash(equipment_class, kind, params, version)``, so that anyone can check the
id. Other kinds (off-chain predictive models the Maintenance pallet's predictions name) are
registered under any hash (of their artifact) with opaque params. The registrant or root
deactivates a model; :meth:`Simulation.model_active` is the API the Maintenance pallet asks.

Scenarios. ``anchor_scenario`` records a result computed off-chain: the twin, the active
degradation model of the twin's class, the kind (WhatIf / FailureRisk), the canonical inputs,
the seed, the output hash and the first schedule's headline figures. The sender is the twin's
owner, an OPERATE delegate, or a PredictiveWorker granted by root or by the operator of the
twin's facility; it reserves ``ScenarioBond``. Inputs whose work (paths x steps x schedules)
exceeds ``engine.MAX_WORK`` are rejected here, which bounds what a challenge re-runs.

Challenges. During ``ChallengeBlocks`` after anchoring, anyone may ``challenge``: the runtime
re-runs the engine on the anchored model params, inputs and seed (weight: a base plus
``W_PER_PATH_STEP`` per unit of work). If the output hash or a headline figure differs, the
scenario is Refuted and the whole bond goes to the challenger; if all match, the call fails
with ``ChallengeFailed`` and changes nothing (the challenger loses only the fee). After the
challenge period anyone may ``release_bond`` (it returns to the submitter, status Final).

Twin state. ``on_window_closed`` keeps each twin's latest state: the closed window's
per-metric count, mean (sum // count, floored), min, max and last; the health score from
``Benchmark.health_bp`` and the last alert from ``Maintenance.last_alert`` (None before
the twin has either). Scenarios start from it (the CLI reads it through ``twin_state``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from twinchain.primitives import codec
from twinchain.primitives.codec import (
    H256,
    I64,
    U16,
    U32,
    U64,
    U128,
    AccountId,
    Bool,
    Bytes,
    CodecError,
    Enum,
    Option,
    Record,
    Str,
    Vec,
)
from twinchain.primitives.keys import parse_account
from twinchain.runtime.framework import (
    ROOT_OR_SIGNED,
    SIGNED,
    DispatchError,
    Origin,
    Pallet,
    PalletErrors,
    PalletEvents,
    StorageDoubleMap,
    StorageMap,
    StorageValue,
    bad_origin,
    call,
    ensure_signed,
)
from twinchain.runtime.pallets.equipment.types import OPERATE, EquipmentClass, TwinId
from twinchain.runtime.pallets.roles import (
    EQUIPMENT_MANUFACTURER,
    FACILITY_OPERATOR,
    PREDICTIVE_WORKER,
)
from twinchain.runtime.weights import simulation as weights
from twinchain.twinsim import engine

if TYPE_CHECKING:
    from twinchain.runtime.traits import (
        AlertLog,
        Currency,
        FacilityRegistry,
        RoleRegistry,
        TwinHealth,
        TwinRegistry,
    )

MAX_KIND = 32
MAX_STATE_METRICS = 32
DEFAULT_BOND = 10 * 10**12  # 10 TWIN
DEFAULT_CHALLENGE_BLOCKS = 600

ScenarioKind = Enum("ScenarioKind", engine.KINDS)
ScenarioStatus = Enum("ScenarioStatus", ("Anchored", "Refuted", "Final"))
ModelKind = Str(MAX_KIND)


@dataclass
class ModelInfo(Record):
    equipment_class: str
    kind: str
    params: bytes
    version: int
    registered_by: bytes
    registered_at: int
    active: bool
    FIELDS: ClassVar = {
        "equipment_class": EquipmentClass,
        "kind": ModelKind,
        "params": Bytes(engine.MAX_PARAMS),
        "version": U32,
        "registered_by": AccountId,
        "registered_at": U64,
        "active": Bool,
    }


@dataclass
class Scenario(Record):
    twin: int
    model: bytes
    kind: str
    inputs: bytes
    seed: int
    output_hash: bytes
    failure_bp: int
    ttf_ms: int
    window_start: int | None
    window_end: int | None
    submitter: bytes
    bond: int
    block: int
    at: int
    status: str
    challenger: bytes | None
    FIELDS: ClassVar = {
        "twin": TwinId,
        "model": H256,
        "kind": ScenarioKind,
        "inputs": Bytes(engine.MAX_INPUTS),
        "seed": U64,
        "output_hash": H256,
        "failure_bp": U16,
        "ttf_ms": U64,
        "window_start": Option(U64),
        "window_end": Option(U64),
        "submitter": AccountId,
        "bond": U128,
        "block": U64,
        "at": U64,
        "status": ScenarioStatus,
        "challenger": Option(AccountId),
    }


@dataclass
class MetricState(Record):
    metric: int
    count: int
    mean: int
    min: int
    max: int
    last: int
    FIELDS: ClassVar = {
        "metric": U16,
        "count": U64,
        "mean": I64,
        "min": I64,
        "max": I64,
        "last": I64,
    }


@dataclass
class TwinState(Record):
    """A twin's latest synchronized state: what a simulation starts from."""

    window_start: int
    window_ms: int
    metrics: list[MetricState]
    health_bp: int | None
    last_alert: int | None
    block: int
    FIELDS: ClassVar = {
        "window_start": U64,
        "window_ms": U64,
        "metrics": Vec(MetricState.wire_type(), MAX_STATE_METRICS),
        "health_bp": Option(U16),
        "last_alert": Option(U64),
        "block": U64,
    }


def _challenge_weight(rt: Any, scenario_id: int) -> int:
    """Declared weight of a challenge: the base plus the anchored scenario's work."""
    s: Scenario | None = rt.simulation.Scenarios.get(scenario_id)
    if s is None:
        return weights.W_CHALLENGE_BASE
    try:
        work = engine.ScenarioInputs.decode(s.inputs).work
    except engine.EngineError:
        work = 0
    return weights.W_CHALLENGE_BASE + weights.W_PER_PATH_STEP * work


@dataclass(frozen=True)
class Config:
    """What Simulation uses of its siblings (its FRAME ``Config``), wired by the runtime."""

    twins: TwinRegistry  # twin records and rights (Equipment)
    facilities: FacilityRegistry  # a twin's facility and its operator (Facility)
    roles: RoleRegistry  # who may register models and run scenarios (Roles)
    currency: Currency  # scenario bonds (Balances)
    health: TwinHealth  # a twin's condition in its state (Benchmark)
    alerts: AlertLog  # a twin's latest alert in its state (Maintenance)


class Simulation(Pallet):
    name = "Simulation"
    config: Config

    Models = StorageMap(H256, ModelInfo.wire_type(), doc="Registered models by hash.")
    NextScenarioId = StorageValue(U64, 0, doc="Id the next anchored scenario gets.")
    Scenarios = StorageMap(U64, Scenario.wire_type(), doc="Anchored scenario results.")
    TwinScenarios = StorageDoubleMap(TwinId, U64, Bool, doc="Scenario ids per twin (an index).")
    TwinStates = StorageMap(TwinId, TwinState.wire_type(), doc="Latest state of each twin.")
    ScenarioBond = StorageValue(U128, DEFAULT_BOND, doc="Bond reserved per anchored scenario.")
    ChallengeBlocks = StorageValue(
        U32, DEFAULT_CHALLENGE_BLOCKS, doc="Blocks after anchoring during which it is open."
    )

    class Event(PalletEvents):
        ModelRegistered = (
            ("model", H256),
            ("class", EquipmentClass),
            ("kind", ModelKind),
            ("version", U32),
            ("by", AccountId),
        )
        ModelDeactivated = (("model", H256),)
        ScenarioAnchored = (
            ("id", U64),
            ("twin", TwinId),
            ("model", H256),
            ("kind", ScenarioKind),
            ("output_hash", H256),
            ("failure_bp", U16),
        )
        ScenarioRefuted = (
            ("id", U64),
            ("challenger", AccountId),
            ("expected", H256),
            ("slashed", U128),
        )
        BondReleased = (("id", U64), ("submitter", AccountId), ("amount", U128))
        TwinStateUpdated = (("twin", TwinId), ("window_start", U64), ("health_bp", Option(U16)))

    class Error(PalletErrors):
        NotAllowed = "the sender holds none of the roles that may register models"
        ModelExists = "a model with this hash is registered already"
        UnknownModel = "no model with this hash"
        ModelInactive = "the model is deactivated"
        NotRegistrant = "only the registrant (or root) may deactivate a model"
        InvalidModel = "empty class or kind, or params that are not one canonical value"
        InvalidParams = "the params are not a valid degradation model"
        InvalidModelHash = "a degradation model's hash must be engine.model_hash(...)"
        NotSimulatable = "only degradation models can be simulated"
        ModelClassMismatch = "the model is for another equipment class"
        UnknownTwin = "no twin with this id"
        NoPermission = "the sender is neither the owner, an OPERATE delegate nor a worker for it"
        InvalidInputs = "the scenario inputs do not decode or are out of bounds"
        ScenarioTooLarge = "paths x steps x schedules exceeds the engine's bound"
        InvalidSummary = (
            "failure_bp above 10000, or a window that is half set, reversed or past the horizon"
        )
        InsufficientBond = "the sender cannot reserve the scenario bond"
        UnknownScenario = "no scenario with this id"
        NotChallengeable = "the scenario is refuted or final already"
        ChallengePeriodOver = "the challenge period of this scenario is over"
        ChallengePeriodOpen = "the bond is released only after the challenge period"
        ChallengeFailed = "the re-run gives the anchored output: the result stands"
        Overflow = "too many scenarios"

    # ------------------------------------------------------------------ helpers
    def _may_register(self, who: bytes) -> bool:
        roles = self.config.roles
        return any(
            roles.has(who, r)
            for r in (EQUIPMENT_MANUFACTURER, FACILITY_OPERATOR, PREDICTIVE_WORKER)
        )

    def is_worker_for(self, who: bytes, facility: int | None) -> bool:
        """A PredictiveWorker granted by root/genesis, or by the operator of ``facility``."""
        g = self.config.roles.grant_of(who, PREDICTIVE_WORKER)
        if g is None:
            return False
        if g.granted_by is None:
            return True
        if facility is None:
            return False
        f = self.config.facilities.facility(facility)
        return f is not None and f.operator == g.granted_by

    # ------------------------------------------------------------------ calls
    @call(
        0,
        weight=lambda rt, model, cls, kind, params, version: (
            weights.W_REGISTER + weights.W_PER_PARAM_BYTE * len(params)
        ),
        origin=SIGNED,
        args=(
            ("model", H256),
            ("equipment_class", EquipmentClass),
            ("kind", ModelKind),
            ("params", Bytes(engine.MAX_PARAMS)),
            ("version", U32),
        ),
    )
    def register_model(
        self, origin: Origin, model: bytes, equipment_class: str, kind: str, params: bytes,
        version: int,
    ) -> None:  # fmt: skip
        """Register a model by hash (EquipmentManufacturer, FacilityOperator or
        PredictiveWorker); a degradation model is checked and must carry its own hash."""
        who = ensure_signed(origin)
        if not self._may_register(who):
            raise self.Error.NotAllowed()
        if self.Models.contains(model):
            raise self.Error.ModelExists()
        if not equipment_class or not kind:
            raise self.Error.InvalidModel()
        try:
            codec.decode(params, engine.MAX_PARAMS)
        except CodecError as exc:
            raise self.Error.InvalidModel(str(exc)) from None
        if kind == engine.DEGRADATION:
            try:
                engine.DegradationModel.decode(params)
            except engine.EngineError as exc:
                raise self.Error.InvalidParams(str(exc)) from None
            if model != engine.model_hash(equipment_class, kind, params, version):
                raise self.Error.InvalidModelHash()
        info = ModelInfo(
            equipment_class, kind, params, version, who, self.runtime.block.number, True
        )
        self.Models.insert(model, info)
        self.deposit(self.Event.ModelRegistered(model, equipment_class, kind, version, who))

    @call(1, weight=weights.W_SMALL, origin=ROOT_OR_SIGNED, args=(("model", H256),))
    def deactivate_model(self, origin: Origin, model: bytes) -> None:
        """Retire a model (its registrant, or root): no new scenarios or predictions use it."""
        if origin.kind not in ("root", "signed"):
            raise bad_origin(ROOT_OR_SIGNED)
        info: ModelInfo | None = self.Models.get(model)
        if info is None:
            raise self.Error.UnknownModel()
        if origin.kind == "signed" and origin.who != info.registered_by:
            raise self.Error.NotRegistrant()
        if not info.active:
            raise self.Error.ModelInactive()
        info.active = False
        self.Models.insert(model, info)
        self.deposit(self.Event.ModelDeactivated(model))

    @call(
        2,
        weight=weights.W_ANCHOR,
        origin=SIGNED,
        args=(
            ("twin", TwinId),
            ("model", H256),
            ("kind", ScenarioKind),
            ("inputs", Bytes(engine.MAX_INPUTS)),
            ("seed", U64),
            ("output_hash", H256),
            ("failure_bp", U16),
            ("ttf_ms", U64),
            ("window_start", Option(U64)),
            ("window_end", Option(U64)),
        ),
    )
    def anchor_scenario(
        self, origin: Origin, twin: int, model: bytes, kind: str, inputs: bytes, seed: int,
        output_hash: bytes, failure_bp: int, ttf_ms: int, window_start: int | None,
        window_end: int | None,
    ) -> None:  # fmt: skip
        """Anchor a scenario result with its model, inputs, seed and output hash (the twin's
        owner, an OPERATE delegate or a PredictiveWorker for its facility); reserves the
        bond until the challenge period is over."""
        who = ensure_signed(origin)
        eq = self.config.twins
        t = eq.twin(twin)
        if t is None:
            raise self.Error.UnknownTwin()
        if not eq.has_right(twin, who, OPERATE, t) and not self.is_worker_for(who, t.facility):
            raise self.Error.NoPermission()
        info: ModelInfo | None = self.Models.get(model)
        if info is None:
            raise self.Error.UnknownModel()
        if not info.active:
            raise self.Error.ModelInactive()
        if info.kind != engine.DEGRADATION:
            raise self.Error.NotSimulatable()
        if info.equipment_class != t.equipment_class:
            raise self.Error.ModelClassMismatch()
        try:
            decoded = engine.ScenarioInputs.decode(inputs, kind)
        except engine.ScenarioTooLarge as exc:
            raise self.Error.ScenarioTooLarge(str(exc)) from None
        except engine.EngineError as exc:
            raise self.Error.InvalidInputs(str(exc)) from None
        horizon = decoded.start_ms + decoded.steps * decoded.step_ms
        if (
            failure_bp > engine.BP
            or (window_start is None) != (window_end is None)
            or (window_start is not None and not window_start <= window_end <= horizon)  # type: ignore[operator]
        ):
            raise self.Error.InvalidSummary()
        sid = self.NextScenarioId.get()
        if sid >= U64.max:
            raise self.Error.Overflow()
        bond = self.ScenarioBond.get()
        if bond:
            try:
                self.config.currency.reserve(who, bond)
            except DispatchError:
                raise self.Error.InsufficientBond() from None
        self.NextScenarioId.put(sid + 1)
        s = Scenario(
            twin, model, kind, inputs, seed, output_hash, failure_bp, ttf_ms, window_start,
            window_end, who, bond, self.runtime.block.number, self._now(), "Anchored", None,
        )  # fmt: skip
        self.Scenarios.insert(sid, s)
        self.TwinScenarios.insert(twin, sid, True)
        self.deposit(self.Event.ScenarioAnchored(sid, twin, model, kind, output_hash, failure_bp))

    @call(3, weight=_challenge_weight, origin=SIGNED, args=(("scenario_id", U64),))
    def challenge(self, origin: Origin, scenario_id: int) -> None:
        """Re-run an anchored scenario on chain (anyone): a differing output hash or headline
        figure refutes it and pays its bond to the challenger; a match fails the call."""
        who = ensure_signed(origin)
        s: Scenario | None = self.Scenarios.get(scenario_id)
        if s is None:
            raise self.Error.UnknownScenario()
        if s.status != "Anchored":
            raise self.Error.NotChallengeable()
        if self.runtime.block.number > s.block + self.ChallengeBlocks.get():
            raise self.Error.ChallengePeriodOver()
        info: ModelInfo = self.Models.get(s.model)
        out, expected = engine.run_encoded(s.model, info.params, s.kind, s.inputs, s.seed)
        claimed = (s.failure_bp, s.ttf_ms, s.window_start, s.window_end)
        if expected == s.output_hash and out.summary() == claimed:
            raise self.Error.ChallengeFailed()
        slashed = s.bond
        if slashed:
            self.config.currency.repatriate_reserved(s.submitter, who, slashed)
        s.status, s.challenger, s.bond = "Refuted", who, 0
        self.Scenarios.insert(scenario_id, s)
        self.deposit(self.Event.ScenarioRefuted(scenario_id, who, expected, slashed))

    @call(4, weight=weights.W_SMALL, origin=SIGNED, args=(("scenario_id", U64),))
    def release_bond(self, origin: Origin, scenario_id: int) -> None:
        """After the challenge period, return the bond to the submitter (anyone may call)."""
        ensure_signed(origin)
        s: Scenario | None = self.Scenarios.get(scenario_id)
        if s is None:
            raise self.Error.UnknownScenario()
        if s.status != "Anchored":
            raise self.Error.NotChallengeable()
        if self.runtime.block.number <= s.block + self.ChallengeBlocks.get():
            raise self.Error.ChallengePeriodOpen()
        amount = s.bond
        if amount:
            self.config.currency.unreserve(s.submitter, amount)
        s.status, s.bond = "Final", 0
        self.Scenarios.insert(scenario_id, s)
        self.deposit(self.Event.BondReleased(scenario_id, s.submitter, amount))

    # ------------------------------------------------------------------ hooks
    def on_window_closed(self, twin: int, start: int, window_ms: int, aggs: dict[int, Any]) -> None:
        """Keep the twin's latest state (bounded: at most MAX_STATE_METRICS metrics)."""
        metrics = []
        for m in sorted(m for m, a in aggs.items() if a.count)[:MAX_STATE_METRICS]:
            a = aggs[m]
            mean = max(I64.lo, min(I64.hi, a.sum // a.count))
            metrics.append(MetricState(m, a.count, mean, a.min, a.max, a.last))
        health = self.config.health.health_bp(twin)
        alert = self.config.alerts.last_alert(twin)
        state = TwinState(start, window_ms, metrics, health, alert, self.runtime.block.number)
        self.TwinStates.insert(twin, state)
        self.deposit(self.Event.TwinStateUpdated(twin, start, health))

    # ------------------------------------------------------------------ genesis
    def genesis(self, config: dict[str, Any]) -> None:
        """``scenario_bond`` (u128, default 10 TWIN), ``challenge_blocks`` (default 600),
        ``models``: [{equipment_class, kind?: "degradation", params: {field: int} | hex,
        version?: 1, registered_by}] (the hash is computed for degradation models)."""
        self.ScenarioBond.put(int(config.get("scenario_bond", DEFAULT_BOND)))
        blocks = int(config.get("challenge_blocks", DEFAULT_CHALLENGE_BLOCKS))
        if not 0 < blocks <= U32.max:
            raise ValueError("simulation challenge_blocks must be 1..2^32-1")
        self.ChallengeBlocks.put(blocks)
        for spec in config.get("models", []):
            cls, kind = str(spec["equipment_class"]), str(spec.get("kind", engine.DEGRADATION))
            version = int(spec.get("version", 1))
            p = spec["params"]
            try:
                if isinstance(p, dict):
                    params = engine.DegradationModel(**{k: int(v) for k, v in p.items()}).encode()
                else:
                    params = bytes.fromhex(str(p).removeprefix("0x"))
                if kind == engine.DEGRADATION:
                    engine.DegradationModel.decode(params)
            except (engine.EngineError, TypeError, ValueError) as exc:
                raise ValueError(f"genesis model for {cls!r}: {exc}") from exc
            if kind == engine.DEGRADATION:
                model = engine.model_hash(cls, kind, params, version)
            else:
                model = bytes.fromhex(str(spec["model"]).removeprefix("0x"))
            by = parse_account(spec["registered_by"])
            self.Models.insert(model, ModelInfo(cls, kind, params, version, by, 0, True))

    # ------------------------------------------------------------------ API
    def model_active(self, model: bytes) -> bool:
        info: ModelInfo | None = self.Models.get(model)
        return info is not None and info.active

    def model(self, model: bytes) -> ModelInfo | None:
        return self.Models.get(model)  # type: ignore[no-any-return]

    def scenario(self, sid: int) -> Scenario | None:
        return self.Scenarios.get(sid)  # type: ignore[no-any-return]

    def twin_state(self, twin: int) -> TwinState | None:
        return self.TwinStates.get(twin)  # type: ignore[no-any-return]

    def scenarios_of(self, twin: int) -> list[int]:
        return sorted(sid for sid, _ in self.TwinScenarios.iter_prefix(twin))

    def constants(self) -> dict[str, Any]:
        return {
            "MaxParams": engine.MAX_PARAMS,
            "MaxInputs": engine.MAX_INPUTS,
            "MaxWork": engine.MAX_WORK,
            "WeightPerPathStep": weights.W_PER_PATH_STEP,
            "ScenarioKinds": list(engine.KINDS),
            "SimulatableKind": engine.DEGRADATION,
        }
