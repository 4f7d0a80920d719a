"""``twin_*`` JSON-RPC reads of the Benchmark pallet (registered by :mod:`twinchain.rpc.twin`).

twin_benchmark(twin, [at])          a twin's benchmark: health, peer percentile, and per
                                    metric its class spec, standard, condition rules,
                                    baseline (or learning progress) and drift
twin_classBenchmark(class, [at])    a class's owner, specs, rules, standards and ranked peers
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twinchain.protocol.jsonrpc import to_hex
from twinchain.rpc.errors import invalid_params
from twinchain.rpc.twin.common import (
    Params,
    TwinMethod,
    bind_params,
    int_param,
    read_at,
    to_json,
)
from twinchain.runtime.pallets.equipment.types import MAX_CLASS

if TYPE_CHECKING:
    from twinchain.node.blockchain import Blockchain
    from twinchain.runtime.runtime import Runtime


def _class(value: Any) -> str:
    if type(value) is not str or not 0 < len(value.encode()) <= MAX_CLASS:
        raise invalid_params(f"class must be a non-empty string of at most {MAX_CLASS} bytes")
    return value


def _metric_specs(rt: Runtime, cls: str, metric: int) -> dict[str, Any]:
    b = rt.benchmark
    spec = b.ClassSpecs.get(cls, metric)
    std = b.Standards.get(cls, metric)
    return {
        "spec": None if spec is None else to_json(spec),
        "standard": None if std is None else to_json(std),
        "rules": to_json(b.ConditionRules.get(cls, metric) or []),
    }


def benchmark(client: Blockchain, params: Params) -> dict[str, Any] | None:
    """A twin's benchmark state (None for an unknown twin)."""
    tid_v, at = bind_params(params, ("twin", "at"), 1)
    tid = int_param(tid_v, "twin id")

    def read(rt: Runtime) -> dict[str, Any] | None:
        t = rt.equipment.twin(tid)
        if t is None:
            return None
        b = rt.benchmark
        cls = t.equipment_class
        summary = b.Twins.get(tid)
        pct = b.percentile_bp(tid)
        baselines = dict(b.Baselines.iter_prefix(tid))
        learning = dict(b.Learning.iter_prefix(tid))
        drifts = dict(b.Drifts.iter_prefix(tid))
        specs = {m for m, _ in b.ClassSpecs.iter_prefix(cls)}
        metrics = []
        for m in sorted(set(baselines) | set(learning) | set(drifts) | specs):
            info = rt.telemetry.Metrics.get(m)
            lr = learning.get(m)
            metrics.append(
                {
                    "metric": m,
                    "name": None if info is None else info.name,
                    **_metric_specs(rt, cls, m),
                    "baseline": None if m not in baselines else to_json(baselines[m]),
                    "learning": None if lr is None else {"windows": lr[0], "sum": lr[1]},
                    "drift": None if m not in drifts else to_json(drifts[m]),
                }
            )
        return {
            "twin": tid,
            "class": cls,
            "facility": t.facility,
            "health": b.health_bp(tid),
            "percentile": None if pct is None else {"bp": pct[0], "peers": pct[1]},
            "windows": 0 if summary is None else summary.windows,
            "lastStart": None if summary is None else summary.last_start,
            "standardViolations": 0 if summary is None else summary.violations,
            "baselineWindows": b.BaselineWindows.get(),
            "metrics": metrics,
        }

    return read_at(client, at, read)  # type: ignore[no-any-return]


def class_benchmark(client: Blockchain, params: Params) -> dict[str, Any]:
    """A class's specs, rules, standards and ranked peers (ascending health)."""
    cls_v, at = bind_params(params, ("class", "at"), 1)
    cls = _class(cls_v)

    def read(rt: Runtime) -> dict[str, Any]:
        b = rt.benchmark
        owner = b.ClassOwner.get(cls)
        metrics = sorted(
            {m for m, _ in b.ClassSpecs.iter_prefix(cls)}
            | {m for m, _ in b.ConditionRules.iter_prefix(cls)}
            | {m for m, _ in b.Standards.iter_prefix(cls)}
        )
        peers = []
        for health, tid in b.ClassPeers.get(cls) or []:
            t = rt.equipment.twin(tid)
            pct = b.percentile_bp(tid)
            peers.append(
                {
                    "twin": tid,
                    "health": health,
                    "facility": None if t is None else t.facility,
                    "percentileBp": None if pct is None else pct[0],
                }
            )
        return {
            "class": cls,
            "owner": None if owner is None else to_hex(owner),
            "metrics": [{"metric": m, **_metric_specs(rt, cls, m)} for m in metrics],
            "twins": sum(1 for _ in rt.equipment.ByClass.iter_prefix(cls)),
            "peers": peers,
        }

    return read_at(client, at, read)  # type: ignore[no-any-return]


METHODS: dict[str, TwinMethod] = {
    "twin_benchmark": benchmark,
    "twin_classBenchmark": class_benchmark,
}
