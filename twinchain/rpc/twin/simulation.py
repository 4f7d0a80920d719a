"""``twin_*`` JSON-RPC reads of the Simulation pallet (registered by :mod:`twinchain.rpc.twin`).

twin_models([at])              registered models (degradation params decoded)
twin_scenario(id, [at])        one anchored scenario, its inputs decoded
twin_scenarios(twin, [at])     a twin's scenarios, oldest first
twin_state(twin, [at])         the twin's latest state: window means, health, last alert
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from twinchain.protocol.jsonrpc import to_hex
from twinchain.rpc.twin.common import (
    Params,
    TwinMethod,
    bind_params,
    int_param,
    read_at,
    to_json,
)
from twinchain.twinsim import engine

if TYPE_CHECKING:
    from twinchain.node.blockchain import Blockchain
    from twinchain.runtime.runtime import Runtime


MAX_SCENARIOS = 1000


def _model(model: bytes, info: Any) -> dict[str, Any]:
    out = {"model": to_hex(model), **to_json(info)}
    decoded = None
    if info.kind == engine.DEGRADATION:
        try:
            m = engine.DegradationModel.decode(info.params)
        except engine.EngineError:
            pass
        else:
            decoded = {k: getattr(m, k) for k in engine.DegradationModel.FIELDS}
    out["decoded"] = decoded
    return out


def models(client: Blockchain, params: Params) -> list[dict[str, Any]]:
    (at,) = bind_params(params, ("at",), 0)

    def read(rt: Runtime) -> list[dict[str, Any]]:
        return [_model(m, info) for m, info in sorted(rt.simulation.Models.iter())]

    return read_at(client, at, read)  # type: ignore[no-any-return]


def inputs_json(data: bytes) -> dict[str, Any] | None:
    """Decoded scenario inputs (None if they do not decode: never the case once anchored)."""
    try:
        inp = engine.ScenarioInputs.decode(data)
    except engine.EngineError:
        return None
    out = {k: v for k, v in asdict(inp).items() if k != "schedules"}
    out = {camel(k): v for k, v in out.items()}
    out["schedules"] = [
        [{"steps": s.steps, "loadPpm": s.load_ppm, "dutyPpm": s.duty_ppm} for s in sch]
        for sch in inp.schedules
    ]
    out["work"] = inp.work
    return out


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def _scenario(rt: Runtime, sid: int, s: Any) -> dict[str, Any]:
    out = {"id": sid, **to_json(s)}
    out["inputsDecoded"] = inputs_json(s.inputs)
    out["challengeUntilBlock"] = s.block + rt.simulation.ChallengeBlocks.get()
    return out


def scenario(client: Blockchain, params: Params) -> dict[str, Any] | None:
    sid_v, at = bind_params(params, ("id", "at"), 1)
    sid = int_param(sid_v, "scenario id")

    def read(rt: Runtime) -> dict[str, Any] | None:
        s = rt.simulation.scenario(sid)
        return None if s is None else _scenario(rt, sid, s)

    return read_at(client, at, read)  # type: ignore[no-any-return]


def scenarios(client: Blockchain, params: Params) -> list[dict[str, Any]]:
    tid_v, at = bind_params(params, ("twin", "at"), 1)
    tid = int_param(tid_v, "twin id")

    def read(rt: Runtime) -> list[dict[str, Any]]:
        sim = rt.simulation
        ids = sim.scenarios_of(tid)[-MAX_SCENARIOS:]
        return [_scenario(rt, sid, sim.scenario(sid)) for sid in ids]

    return read_at(client, at, read)  # type: ignore[no-any-return]


def state(client: Blockchain, params: Params) -> dict[str, Any] | None:
    tid_v, at = bind_params(params, ("twin", "at"), 1)
    tid = int_param(tid_v, "twin id")

    def read(rt: Runtime) -> dict[str, Any] | None:
        st = rt.simulation.twin_state(tid)
        if st is None:
            return None
        t = rt.equipment.twin(tid)
        out = {"twin": tid, **to_json(st)}
        out["equipmentClass"] = None if t is None else t.equipment_class
        out["now"] = rt.timestamp.Now.get()
        return out

    return read_at(client, at, read)  # type: ignore[no-any-return]


METHODS: dict[str, TwinMethod] = {
    "twin_models": models,
    "twin_scenario": scenario,
    "twin_scenarios": scenarios,
    "twin_state": state,
}
